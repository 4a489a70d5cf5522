"""The form records' projections on both engines: SQLCipher and PostgreSQL (issue 19).

A ward's records (consent, screening, enrollment, skin test, vitals, doses,
adverse events, their amendments and signatures) are projected at a hub by
the same projectors and hooks on either engine (`wardcrf.sqlstore.common_dialect`).
Every test here runs on a real engine: a SQLCipher file, and a PostgreSQL
server started for this test process (`pgserver`; skipped only where no
PostgreSQL binaries are installed). What they hold: the same events give
the same rows, table by table; a bundle that fails half-way leaves nothing;
the import's holds (a record out of sequence, a participant-id clash) hold
alike; concurrent importers apply each bundle once; hostile text round-trips.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import ledgerkit
import pytest
from ledgerkit import Where
from wardcrf.sync.pgstore import PgStore

from wardcrf import eventlog, ingest, records
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.ingest import HoldForCoordinator
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

ENGINES = ("sqlcipher", "postgresql")
HERE = Path(__file__).parent

PROJECTED = (
    "users",
    "records",
    "amendments",
    "signatures",
    "protocols",
    "participants",
    "doses",
    "vitals",
    "adverse_events",
    "administration_kits",
    "photo_bindings",
    "photo_first_refs",
    "ward_queue",
    "counters",
)
"""The tables the form records' projectors write on a PostgreSQL hub (hub_pg.sql 0005)."""


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


@pytest.fixture(params=ENGINES)
def where(request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner) -> Where:
    w = ledgerkit.where_for(request.param, tmp_path, request)
    ledgerkit.create(w, signer).close()
    return w


@functools.cache
def _columns(table: str) -> tuple[str, ...]:
    """The table's columns as SQLCipher has them (PostgreSQL's `rowid` stand-in is not one)."""
    lite = Store.memory()
    try:
        lite.migrate()
        return tuple(str(r[1]) for r in lite.execute(f"PRAGMA table_info({table})").fetchall())
    finally:
        lite.close()


def _rows(store: SqlStore, table: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in _columns(table))
    return sorted((tuple(r) for r in store.execute(f"SELECT {cols} FROM {table}")), key=repr)


def _snapshot(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    return {table: _rows(store, table) for table in PROJECTED}


def _apply(store: SqlStore, events: list[eventlog.Event]) -> None:
    """What `sync.engine._apply` does with a bundle's events: ingest and project, then the import's checks."""
    with store.transaction():
        eventlog.ingest_many(store, events)
        ingest.after_ingest(store, events)


def _next(store: SqlStore, device: str, steps: list[dict[str, Any]]) -> list[eventlog.Event]:
    seq, prev = eventlog.head(store, device)
    return ledgerkit.chain(device, seq + 1, steps, prev)


def test_the_same_records_project_the_same_rows_on_both_engines(request, tmp_path, signer):
    """Two wards' participants, a bundle at a time, and two devices amending one field concurrently:
    every projection table holds the same rows on SQLCipher and PostgreSQL, and so do the hub's
    queries (conflicts, the records listing)."""
    seen = {}
    for engine in ENGINES:
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            outcomes = [
                ledgerkit.records_step(store, dev, seq) for seq in (1, 2, 3) for dev in ("lap1", "lap2")
            ]
            # lap2 corrects lap1's post-dose pulse without having seen lap1's own correction: a conflict.
            target = "lap1-11"
            concurrent = {
                "type": "record.amended",
                "subject": "participant:WUH01-002",
                "amends": target,
                "reason": "transcription",
                "body": {"form": "vitals", "changes": {"pulse": {"old": 88, "new": 90}}},
            }
            _apply(store, _next(store, "lap2", [concurrent]))
            conflicts = records.conflicts(store)
            listing = store.rows(
                "SELECT event_id, form, subject, version, last_event, data FROM records ORDER BY created_at, event_id"
            )
            seen[engine] = (outcomes, _snapshot(store), conflicts, listing, eventlog.verify_chains(store))
        finally:
            store.close()
    assert seen["sqlcipher"] == seen["postgresql"]
    outcomes, rows, conflicts, listing, (checked, problems) = seen["postgresql"]
    assert outcomes == ["applied"] * 6 and problems == [] and checked == 2 * 13 + 1
    assert [r[0] for r in rows["participants"]] == ["WUH01-002", "WUH01-003"]
    assert all(r[9] == 1 and r[11] for r in rows["participants"])  # eligible, enrolled
    assert len(rows["signatures"]) == 6 and len(rows["doses"]) == 2 and len(rows["adverse_events"]) == 2
    assert len(rows["vitals"]) == 4 and len(rows["records"]) == 16 and len(rows["amendments"]) == 3
    assert rows["counters"] == [("participants", 2)]
    assert [r[0] for r in rows["ward_queue"]] == ["WUH01-002", "WUH01-003"]
    assert [r[0] for r in rows["protocols"]] == ["MEXCOVID"]
    assert [(c["target_event"], c["field"]) for c in conflicts] == [(target, "pulse")]
    vitals = next(r for r in listing if r["event_id"] == target)
    assert vitals["version"] == 3 and json.loads(vitals["data"])["pulse"] == 90  # the later clock wins


def test_a_bundle_failing_mid_projection_leaves_nothing(where):
    """Records project, then an amendment of a record nobody holds refuses the bundle: nothing of it stays."""
    store = where.open()
    try:
        assert ledgerkit.records_step(store, "lap1", 1) == "applied"
        before = (_snapshot(store), eventlog.head(store, "lap1"), store.scalar("SELECT count(*) FROM events"))
        steps = ledgerkit.record_steps("lap1", 2, 7)
        steps.append(
            {
                "type": "record.amended",
                "subject": "participant:WUH01-002",
                "amends": "lap9-1",
                "reason": "wrong",
                "body": {"form": "vitals", "changes": {"pulse": {"old": 1, "new": 2}}},
            }
        )
        with pytest.raises(Refused, match="names unknown record lap9-1"):
            _apply(store, _next(store, "lap1", steps))
        after = (_snapshot(store), eventlog.head(store, "lap1"), store.scalar("SELECT count(*) FROM events"))
        assert after == before
        assert store.scalar("SELECT count(*) FROM doses") == 0
        # The same bundle without the stray amendment applies whole afterwards.
        assert ledgerkit.records_step(store, "lap1", 2) == "applied"
        assert store.scalar("SELECT count(*) FROM doses") == 1
    finally:
        store.close()


def test_a_dose_before_enrollment_is_held_alike_on_both_engines(request, tmp_path, signer):
    """The import's sequencing rule reads the projections: the same hold, the same words, nothing kept."""
    seen = {}
    for engine in ENGINES:
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            ledgerkit.records_step(store, "lap1", 1)
            before = _snapshot(store)
            dose = [s for s in ledgerkit.record_steps("lap1", 2, 7) if s["body"]["form"] == "dose"]
            with pytest.raises(HoldForCoordinator) as held:
                _apply(store, _next(store, "lap1", dose))
            assert _snapshot(store) == before
            seen[engine] = (held.value.reason, held.value.detail)
        finally:
            store.close()
    assert seen["sqlcipher"] == seen["postgresql"]
    assert seen["postgresql"][0] == "sequencing" and "has no enrollment before it" in seen["postgresql"][1]


def test_a_participant_id_clash_is_held_alike_on_both_engines(request, tmp_path, signer):
    """Two laptops allocate the same id to two people: the second consent is held on either engine."""
    seen = {}
    for engine in ENGINES:
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            ledgerkit.records_step(store, "lap1", 1)
            clash = ledgerkit.record_steps("lap1", 1, 1)[1]  # lap1's consent, WUH01-002, now from lap2
            with pytest.raises(HoldForCoordinator) as held:
                _apply(store, _next(store, "lap2", [clash]))
            seen[engine] = (held.value.reason, held.value.body)
            assert store.scalar("SELECT count(*) FROM records WHERE event_id LIKE 'lap2-%'") == 0
        finally:
            store.close()
    assert seen["sqlcipher"] == seen["postgresql"]
    assert seen["postgresql"][0] == "clash" and seen["postgresql"][1]["created_by_device"] == "lap1"


def test_the_users_directory_projects_the_same_on_both_engines(request, tmp_path, signer):
    """Wards' people (another site's: directory entries, their account events changing nothing here) and a
    device of the hub's own site (its accounts: locked, failed logins, language): the same rows."""
    seen = {}

    def user(type_: str, username: str, **body: Any) -> dict[str, Any]:
        return {"type": type_, "subject": f"user:{username}", "role": "admin", "user": "admin",
                "body": {"username": username, **body}}  # fmt: skip

    for engine in ENGINES:
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            ward = [
                user("user.added", "n.nurse", full_name="Nia Nurse", role="clinician"),
                user("auth.login_failed", "n.nurse", at="2026-12-06T08:00:00Z"),
                user("user.locked", "n.nurse", failures=5),
            ]
            _apply(store, _next(store, "lap1", ward))
            # The same name from another laptop: the first added is kept (log order).
            _apply(
                store,
                _next(store, "lap2", [user("user.added", "n.nurse", full_name="Other", role="monitor")]),
            )
            own = [
                {**step, "site": ledgerkit.HUB_SITE}
                for step in (
                    user("user.added", "h.coord", full_name="Hub Coordinator", role="coordinator"),
                    user("auth.login_failed", "h.coord", at="2026-12-06T08:00:00Z"),
                    user("user.language_set", "h.coord", language="zh"),
                    user("user.deactivated", "h.coord", reason="left"),
                )
            ]
            _apply(store, _next(store, "hubpeer", own))
            seen[engine] = _rows(store, "users")
        finally:
            store.close()
    assert seen["sqlcipher"] == seen["postgresql"]
    users = {r[0]: r for r in seen["postgresql"]}
    assert users["n.nurse"][2:8] == ("Nia Nurse", "clinician", 0, 0, 0, "en")
    assert users["h.coord"][2:8] == ("Hub Coordinator", "coordinator", 0, 0, 1, "zh")


def test_a_hub_made_before_the_records_migration_gets_its_rows_from_its_log(
    request, tmp_path, signer, monkeypatch
):
    """A PostgreSQL hub made before 0005 applied `protocol.loaded` and `user.added` without projections: the
    migration derives their rows from the log, the same rows the projectors give on SQLCipher."""
    from wardcrf.sync import pgstore

    loads = ledgerkit.record_steps("lap1", 1, 1)[:1]
    people = [
        {"type": "user.added", "subject": f"user:{u}", "role": "admin", "user": "admin",
         "body": {"username": u, "full_name": name, "role": role}}
        for u, name, role in (("n.nurse", "Nia Nurse", "clinician"), ("n.nurse", "Second", "monitor"),
                              ("d.doc", "Dee Doc", "investigator"))
    ]  # fmt: skip
    old = pgstore.schema_text()
    monkeypatch.setattr(pgstore, "schema_text", lambda: old[: old.index("-- migration: 0005-form-records")])
    pg = ledgerkit.create(ledgerkit.where_for("postgresql", tmp_path, request), signer)
    lite = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path, request), signer)
    try:
        assert "0005-form-records" not in pg.applied_migrations()
        for store, project in ((pg, False), (lite, True)):
            with store.transaction():
                eventlog.ingest_many(store, ledgerkit.chain("lap1", 1, loads + people), project=project)
        monkeypatch.setattr(pgstore, "schema_text", lambda: old)
        # 0005 and every migration after it, in file order (later ones may read what 0005 derived).
        assert pg.migrate() == [name for name, _sql in pgstore.migrations(old)][4:]
        assert pg.applied_migrations()[4] == "0005-form-records"
        for table in ("protocols", "users"):
            assert _rows(pg, table) == _rows(lite, table), table
        assert [r[0] for r in _rows(pg, "users")] == ["d.doc", "n.nurse"]
        assert pg.scalar("SELECT full_name FROM users WHERE id = 'n.nurse'") == "Nia Nurse"
        assert pg.scalar("SELECT active FROM protocols") == 1
    finally:
        pg.close()
        lite.close()


HOSTILE = {
    # What the bundle check lets through (tab, newline, CR; no other control, bidi or zero-width
    # character: `text.check_stored`) and what SQL and a driver could mistake for their own.
    "term": "fièvre 发烧\t\"quoted\" 'single' \\back\\slash\r\nline two ; DROP TABLE records; --",
    "causality": "? ?1 %s %(x)s %% $1 :name @p",
    "outcome": "🧪 e\u0301 \u00a0 \ufb01 عربى",
    "first_known": "x" * 300_000,
}


def test_hostile_record_text_round_trips_identically_on_both_engines(request, tmp_path, signer):
    """Quotes, placeholders, line breaks, astral and combining characters, 300 KB of text, and an
    amendment whose old value holds control characters (old text predating the rule): stored and
    read back byte for byte, the same on both engines."""
    seen = {}
    for engine in ENGINES:
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            ledgerkit.records_step(store, "lap1", 1)
            ledgerkit.records_step(store, "lap1", 2)
            ae = {
                "type": "record.submitted",
                "subject": "participant:WUH01-002",
                "body": {"form": "ae", "data": {"grade": 1, "serious": False, **HOSTILE}},
            }
            events = _next(store, "lap1", [ae])
            fix = {
                "type": "record.amended",
                "subject": "participant:WUH01-002",
                "amends": events[0].id,
                "reason": 'typed "again" ?',
                "body": {
                    "form": "ae",
                    "changes": {"term": {"old": "\x00\x1b[2J old", "new": HOSTILE["causality"]}},
                },
            }
            events += ledgerkit.chain("lap1", events[0].seq + 1, [fix], events[0].hash)
            _apply(store, events)
            rec = records.load(store, events[0].id)
            assert rec is not None
            seen[engine] = (
                rec.data,
                _rows(store, "adverse_events"),
                _rows(store, "amendments"),
                _rows(store, "records"),
            )
        finally:
            store.close()
    assert seen["sqlcipher"] == seen["postgresql"]
    data, aes, amendments, _records = seen["postgresql"]
    assert data == {"grade": 1, "serious": False, **HOSTILE, "term": HOSTILE["causality"]}
    ae_row = next(r for r in aes if r[2] == HOSTILE["causality"])
    assert ae_row[10] == HOSTILE["first_known"] and ae_row[9] == HOSTILE["outcome"]
    assert any(r[3] is not None and json.loads(r[3]) == "\x00\x1b[2J old" for r in amendments)


def _spawn(where: Where, signer: DeviceSigner, bundles: list[list[Any]]) -> subprocess.Popen[str]:
    spec = {
        "where": where.__dict__,
        "signer": {k: getattr(signer, k) for k in ("device", "key_id", "sign_public", "minisign_secret")},
        "bundles": bundles,
        "records": True,
    }
    path = os.pathsep.join((str(HERE), str(HERE.parent)))
    env = {**os.environ, "WARDCRF_BUSY_TIMEOUT_MS": "300000", "PYTHONPATH": path}
    return subprocess.Popen(
        [sys.executable, str(HERE / "ledgerkit.py"), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_concurrent_importers_of_record_bundles_apply_each_once(where, signer):
    """Two processes import the same wards' record bundles at once (one in reverse device order):
    each bundle is applied by exactly one, and the projections hold each record once."""
    devices = ["lap1", "lap2", "lap3"]
    bundles = [[d, seq, ""] for seq in (1, 2, 3) for d in devices]
    procs = [
        _spawn(where, signer, bundles),
        _spawn(where, signer, [[d, s, ""] for s in (1, 2, 3) for d in devices[::-1]]),
    ]
    outcomes: Counter[tuple[str, int, str]] = Counter()
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        for line in out.splitlines():
            d, seq, what = json.loads(line)
            outcomes[(d, seq, what)] += 1
    for d, seq, _ in bundles:
        assert (outcomes[(d, seq, "applied")], outcomes[(d, seq, "already")]) == (1, 1), (d, seq)
    store = where.open()
    try:
        assert eventlog.verify_chains(store) == (len(devices) * 13, [])
        assert store.scalar("SELECT count(*) FROM records") == len(devices) * 8
        assert store.scalar("SELECT count(*) FROM participants") == len(devices)
        assert store.scalar("SELECT value FROM counters WHERE name = 'participants'") == len(devices)
        assert store.scalar("SELECT count(*) FROM amendments") == len(devices)
        assert store.scalar("SELECT count(*) FROM doses") == len(devices)
    finally:
        store.close()


def test_the_import_role_projects_records_but_cannot_delete_them(pg_server, signer):
    """A login role granted wardcrf_import writes the records' projections; DELETE is not granted."""
    import psycopg

    from wardcrf.errors import StoreError

    dsn = pg_server.new_database()
    ledgerkit.create(Where("postgresql", dsn=dsn), signer).close()
    login = "worker_" + os.urandom(4).hex()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        admin.execute(f"GRANT wardcrf_import TO {login}")
    store = PgStore(dsn.replace("user=postgres", f"user={login}"))
    try:
        assert [ledgerkit.records_step(store, "lap1", n) for n in (1, 2, 3)] == ["applied"] * 3
        for sql in ("DELETE FROM records", "DELETE FROM participants", "TRUNCATE doses"):
            with pytest.raises(StoreError, match="permission denied"):
                store.execute(sql)
        assert store.scalar("SELECT count(*) FROM records") == 8
    finally:
        store.close()


@pytest.mark.parametrize("provider", ["icu", "libc"])
def test_a_database_that_does_not_sort_by_code_point_is_refused(pg_server, tmp_path, monkeypatch, provider):
    """Text order decides a record's later clock and a kit's first use: a language's collation (ICU's, or a
    libc locale's) is refused by `migrate` and by `hub init --database`, one line, nothing written."""
    import psycopg
    from test_sync_cli import run

    from wardcrf.errors import UsageError

    name = "t_" + os.urandom(6).hex()
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as admin:
        if provider == "icu":
            if not admin.execute("SELECT 1 FROM pg_collation WHERE collprovider = 'i' LIMIT 1").fetchone():
                pytest.skip("this PostgreSQL is built without ICU")
            admin.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
            )
        else:
            locales = [
                r[0] for r in admin.execute("SELECT collname FROM pg_collation WHERE collprovider = 'c'")
            ]
            other = next(
                (
                    c
                    for c in locales
                    if not c.upper().startswith(("C", "POSIX", "DEFAULT", "UCS")) and "utf" in c.lower()
                ),
                None,
            )
            if other is None:
                pytest.skip("the server's system has no libc locale but C")
            admin.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 LC_COLLATE '{other}' LC_CTYPE '{other}'"
            )
    store = PgStore(pg_server.dsn(name))
    try:
        with pytest.raises(UsageError, match="not by code point"):
            store.migrate()
        assert store.scalar("SELECT to_regclass('events')") is None
    finally:
        store.close()
    code, _out, err = run(
        "hub", "init", "-d", str(tmp_path / "hub"), "--admin", "admin", "--database", pg_server.dsn(name),
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "not by code point" in err and "LC_COLLATE 'C'" in err, err
    assert not (tmp_path / "hub").exists()
