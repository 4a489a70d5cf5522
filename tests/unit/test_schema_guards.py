"""The append-only tables' guard triggers: one owner (store.APPEND_ONLY), the schema main shipped.

The triggers refusing UPDATE and DELETE on the event log, the evidence and the
transparency log used to be written out in schema.sql's migrations; the store
now creates them from one template in the transaction of the migration that
creates (or rebuilds) each table. These tests hold that change to what those
migrations did: a fresh database, an upgraded one and `audit verify` see the
same sqlite_master, byte for byte in the triggers' text.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from wardcrf import appendonly
from wardcrf import store as store_mod
from wardcrf.errors import StoreError
from wardcrf.store import APPEND_ONLY, Store, append_only_defined, guard_triggers, migrations

# The migrations on main when the triggers moved out of schema.sql, and the
# SHA-256 of the sqlite_master they produced there (every table, index and
# trigger: type, name, table, SQL with its whitespace collapsed; sorted).
SHIPPED = [
    "0001-foundation",
    "0004-photos",
    "0010-workflow",
    "0011-coldchain",
    "0060-sync",
    "0061-sync-held-clash",
    "0062-cc-reading-conflicts",
    "0070-events-hash-not-unique",
    "0080-photo-archive",
    "0090-sync-refusals",
    "0091-sync-held-sequencing",
    "0090-rollback-guard",
    "0090-id-keys",
    "0091-drafts",
    "0180-coding",
    "0220-sdv",
    "0300-counters",
    "0400-tlog",
    "0345-sync-held-kit",
    "0310-sync-panel-indexes",
    "0350-protocol-encodings",
    "0500-randomization",
    "0510-randomization-factors",
    "0520-randomization-unblinding-keys",
    "0530-scanner-profile",
]
SHIPPED_SCHEMA_SHA256 = "a49f917f48bc7d20745b4d9a679671a9622dfe22c10e8b2bd15c07277cb680c1"
SHIPPED_OBJECTS = 170


def _schema(st: Store) -> list[tuple[str, str, str, str]]:
    return sorted(
        (kind, name, table, " ".join((sql or "").split()))
        for kind, name, table, sql in st.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
    )


def _digest(rows: list[tuple[str, str, str, str]]) -> str:
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _shipped(st: Store, upto: int | None = None) -> None:
    """Apply the shipped migrations (the first `upto` of them) as the store applies any migration."""
    by_name = dict(migrations())
    for name in SHIPPED[:upto]:
        st.apply_migration(name, by_name[name])


@pytest.fixture
def db(tmp_path: Path):
    opened: list[Store] = []

    def make(name: str = "s.db") -> Store:
        st = Store(tmp_path / name, os.urandom(32))
        opened.append(st)
        return st

    yield make
    for st in opened:
        st.close()


def test_the_shipped_migrations_still_build_the_schema_main_shipped(db) -> None:
    st = db()
    _shipped(st)
    rows = _schema(st)
    assert len(rows) == SHIPPED_OBJECTS
    assert _digest(rows) == SHIPPED_SCHEMA_SHA256, "\n".join(map(str, rows))


def test_every_guard_trigger_is_stored_exactly_as_its_template_writes_it(db) -> None:
    st = db()
    st.migrate()
    stored = dict(st.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
    for table in APPEND_ONLY:
        for name, sql in guard_triggers(table):
            assert stored[name] == sql  # byte for byte: "IF NOT EXISTS" is not kept
    assert appendonly.damaged(st) == []
    assert set(appendonly.expected()) == {n for t in APPEND_ONLY for n, _ in guard_triggers(t)}


@pytest.mark.parametrize(
    "upto", [1, 2, 3, 4, 7, 8, 9, 17, 18, len(SHIPPED)], ids=lambda n: f"from-{SHIPPED[n - 1]}"
)
def test_a_database_of_any_earlier_version_upgrades_to_the_same_schema(db, upto: int) -> None:
    fresh = db("fresh.db")
    fresh.migrate()
    old = db("old.db")
    _shipped(old, upto)
    applied = old.migrate()
    assert applied == [n for n, _ in migrations()][upto:]
    assert _schema(old) == _schema(fresh)
    assert old.migrate() == []  # an up-to-date database is left as it is
    assert _schema(old) == _schema(fresh)


def test_an_upgrade_never_quietly_puts_back_a_trigger_dropped_around_wardcrf(db) -> None:
    st = db()
    st.migrate()
    st.execute("DROP TRIGGER events_no_update")
    st.apply_migration("9999-test-later", "CREATE TABLE later_table (a INTEGER);")
    names = {r[0] for r in st.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "events_no_update" not in names  # left for `audit verify` to report and log
    assert [str(d) for d in appendonly.damaged(st)] == ["trigger events_no_update was missing"]


def test_a_migration_creating_a_table_of_the_list_gives_it_its_guards_in_the_same_transaction(
    db, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = db()
    st.migrate()
    monkeypatch.setitem(APPEND_ONLY, "later_log", ("later is append-only: it's kept", "later keeps all"))
    with pytest.raises(StoreError, match="no such table: nowhere"):  # a failing migration leaves nothing
        st.apply_migration(
            "9998-broken", "CREATE TABLE later_log (a INTEGER);\nINSERT INTO nowhere VALUES (1);"
        )
    assert st.scalar("SELECT count(*) FROM sqlite_master WHERE tbl_name = 'later_log'") == 0
    st.apply_migration("9999-later-log", "CREATE TABLE later_log (a INTEGER);")
    st.execute("INSERT INTO later_log (a) VALUES (1)")  # accepted: insert-only, not read-only
    with pytest.raises(store_mod.DatabaseError, match="later is append-only: it's kept"):
        st.execute("UPDATE later_log SET a = 2")
    with pytest.raises(store_mod.DatabaseError, match="later keeps all"):
        st.execute("DELETE FROM later_log")


def _a_row(st: Store, table: str) -> None:
    cols = [(r[1], r[2]) for r in st.execute(f"PRAGMA table_info({table})")]
    values = [1 if kind.upper() == "INTEGER" else "x" for _name, kind in cols]
    st.execute(
        f"INSERT INTO {table} ({', '.join(c for c, _ in cols)}) VALUES ({', '.join('?' for _ in cols)})",
        values,
    )


@pytest.mark.parametrize("table", list(APPEND_ONLY))
def test_each_append_only_table_takes_inserts_and_refuses_update_and_delete_in_its_words(
    db, table: str
) -> None:
    st = db()
    st.migrate()
    _a_row(st, table)
    assert st.scalar(f"SELECT count(*) FROM {table}") == 1
    on_update, on_delete = APPEND_ONLY[table]
    first = st.execute(f"PRAGMA table_info({table})").fetchone()[1]
    with pytest.raises(store_mod.DatabaseError) as refused:
        st.execute(f"UPDATE {table} SET {first} = {first}")
    assert str(refused.value) == on_update
    with pytest.raises(store_mod.DatabaseError) as refused:
        st.execute(f"DELETE FROM {table}")
    assert str(refused.value) == on_delete
    assert st.scalar(f"SELECT count(*) FROM {table}") == 1


def test_only_the_listed_tables_a_migration_creates_or_renames_into_get_guards() -> None:
    statements = [
        "CREATE TABLE events_rebuilt (pos INTEGER PRIMARY KEY)",
        "INSERT INTO events_rebuilt SELECT pos FROM events",
        "DROP TABLE events",
        "ALTER TABLE events_rebuilt RENAME TO events",
        "CREATE TABLE photo_previews (sha256 TEXT)",
        "create table if not exists tlog_nodes (level INTEGER)",
        "CREATE INDEX cc_evidence_x ON cc_evidence (sha256)",
    ]
    assert append_only_defined(statements) == ["events", "tlog_nodes"]
