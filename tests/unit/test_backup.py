"""Backups: consistent while in use, encrypted, verified, restorable with a password or the recovery key."""

from __future__ import annotations

import tarfile

import pytest
from conftest import PASSWORD

from wardcrf import backup, eventlog, records
from wardcrf.errors import AuthError, Refused, UsageError, VerificationFailed
from wardcrf.site import Site


def test_backup_while_in_use_and_restore_on_a_new_laptop(tmp_path, site, session_for):
    clin = session_for("clinician")
    for i in range(20):
        records.submit(clin, "vitals", {"temp": 36.5 + i / 10}, subject="participant:WUH01-001")
    # A second connection is mid-read while the backup runs.
    reader = session_for("auditor")
    cur = reader.store.execute("SELECT line FROM events")
    cur.fetchone()
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(clin, stick)
    assert result.path.name.startswith(f"WUH01-{clin.ctx.device}-") and result.path.suffix == ".wardbackup"
    assert not list(stick.glob("*.partial"))
    with tarfile.open(result.path) as tar:
        assert sorted(tar.getnames()) == ["keyslots.json", "wardcrf.db"]
        db_bytes = tar.extractfile("wardcrf.db").read()
    assert b"vitals" not in db_bytes and not db_bytes.startswith(b"SQLite format 3")
    n_in_backup = result.events

    laptop2 = tmp_path / "laptop2"
    restored = backup.restore(result.path, laptop2, username="clinician", password=PASSWORD)
    assert restored.events == n_in_backup and restored.replaced is None
    s = Site.open(laptop2).unlock("clinician", PASSWORD)
    assert eventlog.count(s.store) == n_in_backup + 1  # + the db.restored event
    temps = [r.data["temp"] for r in records.for_subject(s.store, "participant:WUH01-001")]
    assert len(temps) == 20
    s.close()


def test_restore_with_recovery_key_moves_existing_site_aside(tmp_path, site, admin):
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(admin, stick)
    admin.append(type="test.note", body={"after": "backup"})
    admin.close()
    restored = backup.restore(result.path, site.data_dir, recovery_key=site.recovery_key)
    assert restored.replaced is not None and (restored.replaced / "wardcrf.db").exists()
    # Nothing lost: the replaced database is intact and still opens.
    old = Site(restored.replaced, Site.open(site.data_dir).slots)
    assert old is not None
    # The replaced database holds an event the backup lacks: stopped until an admin says why.
    assert restored.behind is not None and restored.behind.newer > restored.behind.head
    s = Site.open(site.data_dir).unlock(
        "admin", PASSWORD, accept_rollback="the note after the backup is void"
    )
    assert s.store.scalar("SELECT count(*) FROM events WHERE type='test.note'") == 0
    s.close()


def test_a_backup_older_than_the_database_it_replaces_is_stopped_before_its_first_append(
    tmp_path, site, session_for, cli
):
    """Issue 21: a laptop restored from an old backup would reuse event numbers its newer
    database (and the hub, once synced) already holds: it must not append until an admin says why."""
    s = session_for("admin")
    made = backup.backup(s, tmp_path)
    s.close()
    later = session_for("clinician")
    later.append(type="note.added", subject="site:WUH01", body={"text": "after the backup"})
    later.close()

    restored = backup.restore(made.path, site.data_dir, username="admin", password=PASSWORD)

    assert restored.behind is not None and "replaced database" in restored.behind.holds
    before = restored.events
    again = Site.open(site.data_dir)
    plain = Site(site.data_dir, again.slots)
    store = plain.unlock_key(site_key := _key(again, "admin"))
    try:  # nothing appended: not even the record of the restore
        assert store.scalar("SELECT count(*) FROM events") == before
    finally:
        store.close()
    del site_key
    refused = cli("log", user="clinician")
    assert refused.code == 1 and refused.err.count("\n") == 1, refused.output
    assert "accept-rollback" in refused.err and "Traceback" not in refused.output
    nope = cli("db", "accept-rollback", "--reason", "old backup is right", user="clinician")
    assert nope.code == 1 and "admin" in nope.err, nope.output
    ok = cli("db", "accept-rollback", "--reason", "the laptop's disk failed after the backup")
    assert ok.code == 0, ok.output
    s = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        kinds = [r["type"] for r in s.store.rows("SELECT type FROM events ORDER BY pos")][before:]
        assert kinds == ["db.restored", "db.behind_accepted"], kinds
        (why,) = s.store.rows("SELECT line FROM events WHERE type = 'db.behind_accepted'")
        assert "disk failed" in why["line"]
    finally:
        s.close()


def test_the_newest_backup_restores_without_a_stop(tmp_path, site, session_for):
    s = session_for("admin")
    made = backup.backup(s, tmp_path)
    s.close()
    restored = backup.restore(made.path, site.data_dir, username="admin", password=PASSWORD)
    assert restored.behind is None
    s = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'db.restored'") == 1
    finally:
        s.close()


def _key(site, user):
    opened = site.slots.check_password(user, PASSWORD).opened
    assert opened is not None
    return opened.key


def test_restore_refuses_wrong_password_and_non_backups(tmp_path, site, admin):
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(admin, stick)
    with pytest.raises(AuthError, match="wrong user name or password"):
        backup.restore(result.path, tmp_path / "n1", username="admin", password="nope-nope-nope")
    junk = tmp_path / "junk.wardbackup"
    junk.write_bytes(b"not a tar")
    with pytest.raises(Refused, match="not a readable wardcrf backup"):
        backup.restore(junk, tmp_path / "n2", username="admin", password=PASSWORD)
    with pytest.raises(UsageError, match="does not exist"):
        backup.restore(tmp_path / "missing.wardbackup", tmp_path / "n3", username="admin", password=PASSWORD)
    assert not (tmp_path / "n1" / "wardcrf.db").exists()


def test_restore_refuses_a_damaged_backup(tmp_path, site, admin):
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(admin, stick)
    raw = bytearray(result.path.read_bytes())
    # Flip bytes inside the encrypted database member (after the tar header).
    for i in range(4096, 4200):
        raw[i] ^= 0xFF
    result.path.write_bytes(bytes(raw))
    with pytest.raises((VerificationFailed, UsageError)):
        backup.restore(result.path, tmp_path / "n4", username="admin", password=PASSWORD)
    assert not (tmp_path / "n4" / "wardcrf.db").exists()


def test_backup_to_missing_folder_is_a_usage_error(tmp_path, admin):
    with pytest.raises(UsageError, match="does not exist"):
        backup.backup(admin, tmp_path / "no-stick")


def test_backup_cli(cli, tmp_path):
    stick = tmp_path / "usb"
    stick.mkdir()
    r = cli("db", "backup", "--to", str(stick), user="clinician")
    assert r.code == 0, r.err
    assert "verified" in r.out
    r = cli("db", "backup", "--to", str(stick), user="auditor")
    assert r.code == 1 and "may not make backups" in r.err


def test_two_restores_in_one_second_keep_both_replaced_folders(tmp_path, site, session_for):
    s = session_for("admin")
    made = backup.backup(s, tmp_path)
    s.close()
    first = backup.restore(made.path, site.data_dir, username="admin", password=PASSWORD)
    second = backup.restore(made.path, site.data_dir, username="admin", password=PASSWORD)
    assert first.replaced and second.replaced and first.replaced != second.replaced
    assert (first.replaced / "wardcrf.db").exists() and (second.replaced / "wardcrf.db").exists()
# -- restoring from the USB stick's folder instead of the backup file in it --------------------------
# Named as such, with the backup files inside it; an empty folder says there is no backup.


def test_restore_of_a_folder_names_the_backups_inside_it(tmp_path, site, admin):
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(admin, stick)
    with pytest.raises(
        UsageError, match=rf"{stick} is a folder; name the backup file in it: {result.path.name}"
    ):
        backup.restore(stick, tmp_path / "new", username="admin", password=PASSWORD)
    assert not (tmp_path / "new" / "wardcrf.db").exists()
    # the file itself restores
    assert backup.restore(result.path, tmp_path / "new", username="admin", password=PASSWORD).events > 0


def test_restore_of_an_empty_folder_says_there_is_no_backup(tmp_path, site):
    empty = tmp_path / "stick"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"is a folder with no \.wardbackup file"):
        backup.restore(empty, tmp_path / "new", username="admin", password=PASSWORD)


def test_restore_cli_of_a_folder_exits_2_with_one_line(cli, tmp_path):
    stick = tmp_path / "usb"
    stick.mkdir()
    assert cli("db", "backup", "--to", str(stick)).code == 0
    r = cli("db", "restore", str(stick), "--data-dir", str(tmp_path / "new"))
    assert r.code == 2
    assert r.err.count("\n") == 1 and "is a folder; name the backup file in it" in r.err
