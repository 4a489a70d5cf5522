"""The database is SQLCipher 4: nothing readable outside, standard tools open it with the raw key."""

from __future__ import annotations

import sqlite3

import pytest
import sqlcipher3
from conftest import PASSWORD
from insider import raw_key

from wardcrf import users
from wardcrf.errors import StoreError
from wardcrf.site import Site
from wardcrf.store import Store, db_path

SECRET_MARK = "Zhang-Wei-Sentinel-Name"


def test_no_plaintext_in_database_or_wal(site, admin):
    users.add_user(admin, "nurse1", SECRET_MARK, "clinician", PASSWORD)
    # Keep the WAL populated (no checkpoint) and look at the raw bytes of both files.
    raw = db_path(site.data_dir).read_bytes()
    wal = site.data_dir / "wardcrf.db-wal"
    blobs = [raw] + ([wal.read_bytes()] if wal.exists() else [])
    for blob in blobs:
        assert SECRET_MARK.encode() not in blob
        assert b"user.added" not in blob
        assert b"SQLite format 3" not in blob[:16]


def test_plain_sqlite3_cannot_open(site):
    conn = sqlite3.connect(db_path(site.data_dir))
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def test_opens_in_a_standard_sqlcipher4_connection_with_the_raw_key(site, admin):
    from wardcrf import dbadmin

    key_hex = dbadmin.reveal_raw_key(admin)
    conn = sqlcipher3.connect(str(db_path(site.data_dir)))
    conn.execute(f"PRAGMA key = \"x'{key_hex}'\"")
    assert conn.execute("PRAGMA cipher_version").fetchone()[0].startswith("4.")
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
    # Disclosure of the raw key is itself in the audit trail.
    types = [r[0] for r in conn.execute("SELECT type FROM events ORDER BY pos")]
    assert "db.raw_key_shown" in types
    conn.close()


def test_raw_key_is_refused_for_non_admins(session_for):
    from wardcrf import dbadmin
    from wardcrf.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="role clinician may not print the raw database key"):
        dbadmin.reveal_raw_key(session_for("clinician"))


def test_pragmas_wal_full_sync_foreign_keys(admin):
    st = admin.store
    assert st.scalar("PRAGMA journal_mode") == "wal"
    assert st.scalar("PRAGMA synchronous") == 2  # FULL
    assert st.scalar("PRAGMA foreign_keys") == 1
    assert st.scalar("PRAGMA busy_timeout") >= 1000


def test_migrations_are_recorded_and_idempotent(admin):
    names = admin.store.applied_migrations()
    assert names[0] == "0001-foundation"
    assert admin.store.migrate() == []


def test_wrong_key_is_a_clear_error(site):
    with pytest.raises(StoreError, match="corrupt or not a wardcrf database"):
        Store(db_path(site.data_dir), b"\x00" * 32)


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "wardcrf.db"
    bad.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="corrupt or not a wardcrf database"):
        Store(bad, b"\x01" * 32)


def test_password_change_rewraps_one_slot_without_reencrypting(site, admin):
    before_db = db_path(site.data_dir).read_bytes()
    slots_before = dict(site.slots.data["slots"])
    admin.store.checkpoint()
    before_db = db_path(site.data_dir).read_bytes()
    users.change_password(admin, "clinician", "a-brand-new-pass")
    after = Site.open(site.data_dir)
    changed = [k for k in slots_before if slots_before[k] != after.slots.data["slots"].get(k)]
    assert changed == ["user:clinician"]
    # Only the event for the change is added; the key (and so every page's encryption) is unchanged.
    s = after.unlock("clinician", "a-brand-new-pass")
    assert raw_key(s) == raw_key(admin)
    s.close()
    assert len(before_db) > 0
