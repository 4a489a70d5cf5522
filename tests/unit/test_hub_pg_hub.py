"""A hub whose wards' data lives in PostgreSQL (issue 19): `hub init --database`, `hub import`, `audit verify`.

On a real PostgreSQL server (`pgserver`, skipped only where its binaries are
not installed); where a behaviour is the hub's whatever its engine, the test
runs on both (the SQLCipher hub is the default).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from pathlib import Path

import pgserver
import pytest
from synckit import PASSWORD, open_
from test_sync_cli import run

from wardcrf.site import Site

ENGINES = ("sqlcipher", "postgresql")


def _pg(dsn: str):
    from wardcrf.sync.pgstore import PgStore

    return PgStore(dsn)


# -- hub init --database --------------------------------------------------------------------


def test_hub_init_with_a_database_keeps_the_dsn_without_its_password(pg_server, tmp_path, monkeypatch):
    dsn = pg_server.new_database()
    hub_dir = tmp_path / "hub"
    code, out, err = run(
        "hub", "init", "-d", str(hub_dir), "--admin", "admin", "--database", dsn + " password=s3cret-pw",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert "s3cret" not in out + err and "hub-database" in out
    dbname = dsn.split("dbname=")[1].split()[0]
    assert f"postgresql database {dbname} on" in out
    kept = hub_dir / "hub-database"
    assert "s3cret" not in kept.read_text() and dbname in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    session = Site.open(hub_dir).unlock("admin", PASSWORD)
    try:
        device = session.ctx.device
    finally:
        session.close()
    pg = _pg(dsn)
    try:
        assert pg.one("SELECT kind, device FROM site WHERE id = 1") == ("hub", device)
        assert pg.scalar("SELECT count(*) FROM device_keys") == 1
        assert {"0001-hub-ledger", "0003-event-log"} <= set(pg.applied_migrations())
    finally:
        pg.close()


def test_hub_init_takes_the_database_from_the_environment(pg_server, tmp_path, monkeypatch):
    dsn = pg_server.new_database()
    monkeypatch.setenv("WARDCRF_HUB_DATABASE", dsn)
    code, _out, err = run(
        "hub", "init", "-d", str(tmp_path / "hub"), "--admin", "admin", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert (tmp_path / "hub" / "hub-database").is_file()


def _refused(args, tmp_path, monkeypatch):
    hub_dir = tmp_path / "hub"
    code, out, err = run(
        "hub", "init", "-d", str(hub_dir), "--admin", "admin", *args, monkeypatch=monkeypatch
    )
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and "s3cret" not in out + err, err
    assert not hub_dir.exists()  # nothing created
    return err


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("postgresql://admin:s3cret@[::1/hub", "cannot parse"),
        ("nonsense s3cret", "cannot parse"),
        ("host=db.example dbname=hub password=s3cret\x00", "control character"),
        ("host=db.example\ndbname=hub password=s3cret", "control character"),
        ("user=x password=s3cret " + "a" * 5000, "longer than 4096"),
    ],
)
def test_hub_init_refuses_a_malformed_dsn_and_creates_nothing(tmp_path, monkeypatch, dsn, says):
    pytest.importorskip("psycopg")
    assert says in _refused(["--database", dsn], tmp_path, monkeypatch)


def test_hub_init_refuses_an_unreachable_server_and_creates_nothing(tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    dsn = f"host={tmp_path}/nowhere dbname=hub user=postgres password=s3cret connect_timeout=5"
    assert "cannot connect" in _refused(["--database", dsn], tmp_path, monkeypatch)


def test_hub_init_refuses_a_database_that_holds_a_hub_already(pg_server, tmp_path, monkeypatch):
    dsn = pg_server.new_database()
    code, _out, err = run(
        "hub", "init", "-d", str(tmp_path / "first"), "--admin", "admin", "--database", dsn, monkeypatch=monkeypatch
    )  # fmt: skip
    assert code == 0, err
    assert "already holds hub HUB/" in _refused(["--database", dsn], tmp_path, monkeypatch)


def test_hub_init_without_psycopg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    monkeypatch.setitem(sys.modules, "psycopg.conninfo", None)
    err = _refused(["--database", "host=db.example dbname=hub"], tmp_path, monkeypatch)
    assert "psycopg" in err and "wardcrf[postgres]" in err


def test_a_dsn_file_naming_another_hubs_database_is_refused(pg_server, tmp_path, monkeypatch):
    from synckit import open_
    from wardcrf.sync import pghub

    from wardcrf.errors import Refused

    for name in ("a", "b"):
        code, _o, err = run(
            "hub", "init", "-d", str(tmp_path / name), "--admin", "admin", "--database", pg_server.new_database(),
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 0, err
    (tmp_path / "a" / "hub-database").write_text((tmp_path / "b" / "hub-database").read_text())
    session = open_(Site.open(tmp_path / "a"))
    try:
        with pytest.raises(Refused, match="is not this hub's"):
            pghub.open_ledger(session)
    finally:
        session.close()
    assert os.environ.get("WARDCRF_HUB_DATABASE") is None


# -- hub import into PostgreSQL, and the same on SQLCipher ------------------------------------


def _make_hub(engine: str, root: Path, request: pytest.FixtureRequest) -> Site:
    """A hub on `engine` with a coordinator, as `synckit.make_hub` makes the SQLCipher one."""
    from synckit import make_hub
    from wardcrf.sync import hub

    from wardcrf import users

    if engine == "sqlcipher":
        return make_hub(root)
    dsn = request.getfixturevalue("pg_server").new_database()
    res = hub.init(root / "hub", admin="admin", password=PASSWORD, database=dsn)
    s = res.site.unlock("admin", PASSWORD)
    try:
        users.add_user(s, "coordinator", "Coco Ordinator", "coordinator", PASSWORD)
        users.add_user(s, "dsmg", "Dee Smg", "dsmg", PASSWORD)
    finally:
        s.close()
    return res.site


@pytest.fixture(params=ENGINES)
def pair(request: pytest.FixtureRequest, tmp_path: Path):
    from synckit import connect, make_ward

    h = _make_hub(request.param, tmp_path, request)
    w = make_ward(tmp_path)
    connect(w, h)
    return request.param, w, h


@contextlib.contextmanager
def _ledger(h: Site):
    """The hub's session and the store its wards' data is in (its file, or its PostgreSQL database)."""
    from synckit import open_
    from wardcrf.sync import hub

    s = open_(h)
    try:
        with hub.ledger_store(s) as store:
            yield s, store
    finally:
        s.close()


def _bundles(w: Site, root: Path, n: int, tag: str = "") -> list[Path]:
    """`n` consecutive bundles of a ward (its first holds its own start: site, admin, protocol)."""
    from synckit import add_notes, open_
    from test_sync_roundtrip import export

    files = []
    for i in range(n):
        add_notes(w, 3, text=f"{tag}batch {i}")
        files.append(export(w, root / f"{tag}u{i}")[-1])
        s = open_(w)
        try:
            s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
        finally:
            s.close()
    return files


def _ward_head(w: Site) -> tuple[str, int, str]:
    from synckit import open_

    s = open_(w)
    try:
        dev = s.ctx.device
        row = s.store.one("SELECT seq, hash FROM chain_heads WHERE device = ?", (dev,))
        return dev, int(row[0]), str(row[1])
    finally:
        s.close()


def test_real_ward_bundles_import_once_with_chains_checked_and_signed_receipts(pair, tmp_path):
    from wardcrf.sync import hub

    from wardcrf import eventlog

    engine, w, h = pair
    files = _bundles(w, tmp_path, 3)
    device, head, head_hash = _ward_head(w)
    with _ledger(h) as (s, store):
        items = hub.import_files(s, files)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"] * 3, [
            i.refused for i in items
        ]
        assert store.holds_projections is (engine == "sqlcipher")
        assert store.one("SELECT seq, hash FROM chain_heads WHERE device = ?", (device,)) == (head, head_hash)
        assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == head
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 3
        assert store.scalar("SELECT count(*) FROM tlog_leaves") == 3
        checked, problems = eventlog.verify_chains(store)
        assert problems == [] and checked >= head
        mine = next(d for d in hub.status(s)["devices"] if d["device"] == device)
        assert (mine["events"], mine["last_bundle"], mine["status"]) == (head, 3, "active")
        # The receipt, signed by the hub, names the ward's last event as held.
        _name, data, _sig = items[-1].result.receipt
        assert f'"seq":{head}' in data.decode() and head_hash in data.decode()
        if engine == "postgresql":
            # The wards' events are in PostgreSQL, not in the hub's file.
            assert s.store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == 0
        # Replay: the same files again change nothing.
        again = hub.import_files(s, files)
        assert [i.result.outcome.status for i in again if i.result] == ["already"] * 3
        assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == head
        assert store.scalar("SELECT count(*) FROM sync_applied") == 3


def test_a_gap_is_held_then_applied_when_it_fills(pair, tmp_path):
    from wardcrf.sync import hub

    _engine, w, h = pair
    files = _bundles(w, tmp_path, 3)
    device, head, _ = _ward_head(w)
    with _ledger(h) as (s, store):
        first = hub.import_files(s, [files[0], files[2]])
        assert [i.result.outcome.status for i in first] == ["applied", "held"]
        assert store.scalar("SELECT reason FROM sync_held WHERE device = ?", (device,)) == "gap"
        last = hub.import_file(s, files[1])
        assert last.outcome.status == "applied" and last.outcome.released == [3]
        assert store.scalar("SELECT max(seq) FROM events WHERE device = ?", (device,)) == head


def test_a_fork_is_held_and_flagged_on_both_engines(pair, tmp_path):
    import shutil

    from synckit import add_notes
    from test_sync_roundtrip import export
    from wardcrf.sync import hub

    _engine, w, h = pair
    old = tmp_path / "old-copy"
    shutil.copytree(w.data_dir, old)
    add_notes(w, 2)
    f1 = export(w, tmp_path / "u1")[0]
    shutil.rmtree(w.data_dir)
    shutil.copytree(old, w.data_dir)
    add_notes(w, 2, text="after restore")
    f1b = export(w, tmp_path / "u2")[0]
    device = _ward_head(w)[0]
    with _ledger(h) as (s, store):
        assert hub.import_file(s, f1).outcome.status == "applied"
        res = hub.import_file(s, f1b)
        assert res.outcome.status == "fork" and "FORK" in res.outcome.message
        assert store.one("SELECT bundle_seq, reason FROM sync_held WHERE device = ?", (device,)) == (
            1,
            "fork",
        )
        # The hub's own event flags the device in its registry, and the receipt (read from the ledger's store) says so.
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'sync.fork_detected'") == 1
        assert store.scalar("SELECT status FROM sync_devices WHERE device = ?", (device,)) == "flagged"
        assert b'"fork"' in res.receipt[1] or b"fork" in res.receipt[1]
        # The applied version is what the log holds; the held one is kept beside it.
        assert len(list((h.data_dir / "sync" / "held").glob("*.tar.age"))) == 1
        assert hub.import_file(s, f1b).outcome.status == "fork"
        assert store.scalar("SELECT count(*) FROM sync_held") == 1
        st = hub.status(s)
        assert [(f["device"], f["bundle_seq"]) for f in st["forks"]] == [(device, 1)]
        assert next(d for d in st["devices"] if d["device"] == device)["status"] == "flagged"


def test_a_bundle_that_needs_projections_is_refused_whole_at_a_postgresql_hub(pair, tmp_path, monkeypatch):
    """A user added and deactivated (the users directory) and a scanner profile set at the ward (0009)
    apply on both engines, with the same rows. An event whose projector is not in the common dialect —
    here a projector added to `device.scanner_set` for the test, undeclared — is refused on PostgreSQL,
    named, nothing of it kept; SQLCipher runs it."""
    from synckit import open_
    from wardcrf.sync import hub

    from wardcrf import eventlog, scanner, users

    engine, w, h = pair
    s = open_(w)
    try:
        users.add_user(s, "n.nurse", "Nia Nurse", "clinician", PASSWORD)
        users.deactivate(s, "n.nurse", "left the ward")
        scanner.set_profile(s, "gap", 80)
    finally:
        s.close()
    first = _bundles(w, tmp_path, 1)
    s = open_(w)
    try:
        scanner.set_profile(s, "enter")
    finally:
        s.close()
    second = _bundles(w, tmp_path, 1, tag="b")
    device = _ward_head(w)[0]
    ran: list[str] = []

    def unported(store, e):  # SQL no one reviewed: never run on PostgreSQL
        ran.append(e.id)

    with _ledger(h) as (hs, store):
        items = hub.import_files(hs, first)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"], [i.refused for i in items]
        # Another site's user: a directory entry, never an active account here.
        assert store.rows("SELECT full_name, role, active FROM users WHERE id = 'n.nurse'") == [
            {"full_name": "Nia Nurse", "role": "clinician", "active": 0}
        ]
        assert store.scalar("SELECT count(*) FROM events WHERE type = 'user.deactivated'") == 1
        assert store.rows("SELECT device, ends, gap_ms FROM device_scanner") == [
            {"device": device, "ends": "gap", "gap_ms": 80}
        ]
        monkeypatch.setattr(eventlog, "_PROJECTORS", {**eventlog._PROJECTORS})
        monkeypatch.setitem(
            eventlog._PROJECTORS,
            "device.scanner_set",
            [*eventlog._PROJECTORS["device.scanner_set"], unported],
        )
        monkeypatch.setattr(eventlog, "_FOR_TYPE", {})
        items = hub.import_files(hs, second)
        if engine == "sqlcipher":
            assert [i.result.outcome.status for i in items if i.result] == ["applied"]
            assert len(ran) == 1 and store.scalar("SELECT ends FROM device_scanner") == "enter"
            return
        assert items[0].result is None and ran == []
        assert "device.scanner_set events need projections" in items[0].refused
        assert "import it at a SQLCipher hub" in items[0].refused
        # Nothing of it applied; the coordinator sees the refusal in the hub's own log.
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 1
        assert store.scalar("SELECT count(*) FROM events WHERE type = 'device.scanner_set'") == 1
        assert store.scalar("SELECT ends FROM device_scanner") == "gap"
        assert hs.store.scalar("SELECT count(*) FROM events WHERE type = 'sync.bundle_refused'") == 1


def test_a_bundle_giving_one_kit_twice_is_held_alike_on_both_engines(pair, tmp_path):
    """The kit-twice hold (two participants, a single-use kit twice, or across protocol formats) reads the
    kit projections, which a PostgreSQL hub keeps in the common dialect (`sqlstore.common_dialect`): the
    bundle is held for the coordinator on both engines, nothing of it merged, and held once on replay."""
    from synckit import open_
    from wardcrf.sync import hub

    from wardcrf import records, users

    _engine, w, h = pair
    first = _bundles(w, tmp_path, 1)
    s = open_(w)
    try:
        users.add_user(s, "clinician", "Cleo Clinician", "clinician", PASSWORD)
    finally:
        s.close()
    s = open_(w, "clinician")
    try:
        for pid, hh in (("WUH01-001", "09"), ("WUH01-002", "10")):
            start = f"2026-11-30T{hh}:00:00+08:00"
            records.submit(
                s,
                "dose",
                {
                    "kit_id": "KIT-X1",
                    "start": start,
                    "end": start.replace(":00:00", ":30:00"),
                    "dose_number": 1,
                },
                subject=f"participant:{pid}",
            )
    finally:
        s.close()
    second = _bundles(w, tmp_path, 1, tag="b")
    device = _ward_head(w)[0]
    with _ledger(h) as (hs, store):
        items = hub.import_files(hs, first + second)
        assert items[0].result is not None and items[0].result.outcome.status == "applied"
        # the checks run on both engines: held for the coordinator, nothing merged
        assert items[1].result is not None and not items[1].result.ok
        assert items[1].result.outcome.status in ("sequencing", "kit")
        assert store.scalar("SELECT count(*) FROM doses") == 0
        held = store.scalar("SELECT count(*) FROM sync_held")
        assert held == 1
        again = hub.import_files(hs, second)
        assert again[0].result is not None and not again[0].result.ok
        assert store.scalar("SELECT count(*) FROM sync_held") == held
        assert store.scalar("SELECT count(*) FROM doses") == 0
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 1


def _cli_import(h: Site, files: list[Path], monkeypatch, *extra: str):
    return run("hub", "import", *map(str, files), "-d", str(h.data_dir), *extra, monkeypatch=monkeypatch)


def test_audit_verify_at_a_postgresql_hub_rehashes_its_chains_and_finds_a_superusers_edit(
    pg_server, tmp_path, monkeypatch
):
    import psycopg
    from synckit import connect, make_ward

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    files = _bundles(w, tmp_path, 2)
    device = _ward_head(w)[0]
    code, out, err = _cli_import(h, files, monkeypatch)
    assert code == 0 and out.count("ok ") == 2, (out, err)
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, (out, err)
    assert "ok event chains in PostgreSQL" in out and "ok append-only triggers in PostgreSQL" in out
    assert "ok transparency log in PostgreSQL" in out
    dsn = (h.data_dir / "hub-database").read_text().strip()
    # The owner (a superuser here) goes around the triggers and edits one ward event's line.
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("ALTER TABLE events DISABLE TRIGGER events_no_update")
        admin.execute(
            "UPDATE events SET line = replace(line, 'batch 0', 'batch X') WHERE device = %s AND seq = 5",
            (device,),
        )
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1, (code, out, err)
    assert f"device {device} seq 5: stored line does not match its hash (edited)" in out
    assert "events_no_update on events is disabled" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        # A middle event deleted: the next one no longer follows its predecessor.
        ("DELETE FROM events WHERE device = %(d)s AND seq = 4", "seq 5: missing event(s) before this one"),
        # The last event deleted: the log ends before its chain head.
        (
            "DELETE FROM events WHERE device = %(d)s AND seq = (SELECT max(seq) FROM events WHERE device = %(d)s)",
            "(events deleted at the end?)",
        ),
        # An event's line edited and its hash recomputed to match: the next event's link breaks.
        (
            "UPDATE events SET line = replace(line, 'batch 0', 'batch Y'),"
            " hash = encode(sha256(convert_to(replace(line, 'batch 0', 'batch Y'), 'UTF8')), 'hex')"
            " WHERE device = %(d)s AND seq = 5",
            "seq 6: chain broken: prev does not match the previous event's hash",
        ),
        # An indexed column edited, the hashed line left as it was.
        (
            "UPDATE events SET \"user\" = 'mallory' WHERE device = %(d)s AND seq = 4",
            "seq 4: column user differs",
        ),
        # An event moved before its predecessor in the log order.
        (
            "UPDATE events SET pos = -pos WHERE device = %(d)s AND seq = 6",
            "seq 6: stored before seq 5 in the log order (pos)",
        ),
    ],
    ids=["deleted-middle", "deleted-last", "rehashed", "column", "moved"],
)
def test_audit_verify_finds_each_kind_of_edit_a_superuser_makes_around_the_triggers(
    pg_server, tmp_path, monkeypatch, tamper, found
):
    """Every chain is re-hashed from PostgreSQL's rows: an event deleted (in the middle or at the end), edited
    with its hash recomputed, a column changed or the log order changed, each with the triggers disabled as
    only the owner or a superuser can, is reported by `audit verify` (exit 1), naming the device and seq."""
    import psycopg
    from synckit import connect, make_ward

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    code, out, err = _cli_import(h, _bundles(w, tmp_path, 2), monkeypatch)
    assert code == 0, (out, err)
    device = _ward_head(w)[0]
    dsn = (h.data_dir / "hub-database").read_text().strip()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("ALTER TABLE events DISABLE TRIGGER USER")
        admin.execute(tamper, {"d": device})
        admin.execute("ALTER TABLE events ENABLE TRIGGER USER")  # put back: only the chain check can tell
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (code, out, err)
    problem = next(line for line in out.splitlines() if f"device {device}" in line)
    assert found in problem, out
    assert "ok append-only triggers in PostgreSQL" in out


class _Req:
    """`getfixturevalue` for a test that already holds the server."""

    def __init__(self, server: pgserver.Server) -> None:
        self.server = server

    def getfixturevalue(self, name: str) -> pgserver.Server:
        assert name == "pg_server"
        return self.server


@pytest.mark.slow
def test_twenty_concurrent_hub_imports_apply_each_bundle_exactly_once(pair, tmp_path):
    """20 `wardcrf hub import` processes, each given the same bundles of two wards at once."""
    import json
    import subprocess

    from synckit import WARDCRF_MAIN, connect, make_ward, subprocess_env

    _engine, w, h = pair
    w2 = make_ward(tmp_path, name="lap2", site="WUH02")
    connect(w2, h)
    files = _bundles(w, tmp_path, 3) + _bundles(w2, tmp_path, 3, tag="w2")
    heads = [_ward_head(w), _ward_head(w2)]
    env = {**subprocess_env(), "WARDCRF_BUSY_TIMEOUT_MS": "300000"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WARDCRF_MAIN, "hub", "import", *map(str, files), "-d", str(h.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(20)
    ]
    applied: dict[str, int] = {}
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, (out[-2000:], err[-2000:])
        for line in out.splitlines():
            if line.startswith("ok ") and " applied: events " in line:
                name = line.split()[1].rstrip(":")
                applied[name] = applied.get(name, 0) + 1
    assert applied == {f.name: 1 for f in files}, json.dumps(applied)
    with _ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM sync_applied") == 6
        assert store.scalar("SELECT count(*) FROM tlog_leaves") == 6
        for device, head, head_hash in heads:
            assert store.one("SELECT seq, hash FROM chain_heads WHERE device = ?", (device,)) == (
                head,
                head_hash,
            )
            assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == head
        from wardcrf import eventlog

        assert eventlog.verify_chains(store)[1] == []


def test_an_importer_logged_in_as_the_import_role_imports_and_cannot_alter_what_it_imported(
    pg_server, tmp_path, monkeypatch
):
    """`WARDCRF_HUB_DATABASE` names a login role granted wardcrf_import: bundles apply; its rows stay as written."""
    import psycopg
    from synckit import connect, make_ward

    from wardcrf.errors import StoreError

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    owner = (h.data_dir / "hub-database").read_text().strip()
    login = "worker_" + os.urandom(4).hex()
    with psycopg.connect(owner, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        admin.execute(f"GRANT wardcrf_import TO {login}")
    worker = owner.replace("user=postgres", f"user={login}")
    monkeypatch.setenv("WARDCRF_HUB_DATABASE", worker)
    files = _bundles(w, tmp_path, 2)
    code, out, err = _cli_import(h, files, monkeypatch)
    assert code == 0 and out.count("ok ") == 2, (out, err)
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and "ok event chains in PostgreSQL" in out, (out, err)
    store = _pg(worker)
    try:
        for sql in (
            "UPDATE events SET line = line",
            "DELETE FROM events",
            "TRUNCATE events",
            "ALTER TABLE events DISABLE TRIGGER events_no_update",
            "DELETE FROM sync_applied",
        ):
            with pytest.raises(StoreError, match=r"permission denied|must be owner"):
                store.execute(sql)
        assert store.scalar("SELECT count(*) FROM sync_applied") == 2
    finally:
        store.close()


@pytest.mark.slow
def test_two_hub_serve_workers_on_one_postgresql_hub_apply_every_push_once(pg_server, tmp_path):
    """Two `hub serve` processes over one PostgreSQL hub; each of ten wards' bundles pushed to both at once.

    20 pushes start together: every bundle is applied by exactly one worker (the other answers
    "already"), the receipt either worker gives names the ward's whole chain, and the chains verify.
    """
    import threading
    from collections import Counter

    from synckit import HubServer, add_notes, connect, make_ward
    from test_sync_roundtrip import export
    from wardcrf.sync.transport import Client

    from wardcrf import eventlog

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    wards = [make_ward(tmp_path, name=f"lap{i:02d}") for i in range(10)]
    files = []
    for w in wards:
        connect(w, h)
        add_notes(w, 3)
        files.append(export(w, tmp_path / f"out-{w.data_dir.name}")[-1])
    servers = [HubServer(h.data_dir), HubServer(h.data_dir)]
    start = threading.Barrier(2 * len(files))
    said: Counter[tuple[str, str]] = Counter()
    errors: list[BaseException] = []
    tally = threading.Lock()

    def push(server: HubServer, f: Path) -> None:
        try:
            cipher, sig = f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes()
            start.wait(60)
            status = Client(server.url, timeout=120).push(f.name, cipher, sig)["status"]
            with tally:
                said[(f.name, status)] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(server, f)) for f in files for server in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors
        assert said == Counter(
            {(f.name, "applied"): 1 for f in files} | {(f.name, "already"): 1 for f in files}
        )
        for i, w in enumerate(wards):
            device, head, head_hash = _ward_head(w)
            data, _sig = Client(servers[i % 2].url).receipt(device)
            assert f'"seq":{head}' in data.decode() and head_hash in data.decode()
    finally:
        for server in servers:
            server.stop()
    with _ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM sync_applied") == 10
        assert store.scalar("SELECT count(*) FROM tlog_leaves") == 10
        assert eventlog.verify_chains(store)[1] == []


def test_hub_log_and_a_usb_receipt_come_from_the_database_at_a_postgresql_hub(
    pg_server, tmp_path, monkeypatch
):
    """`hub log` writes the database's checkpoint chain (verified offline with the printed key);
    `hub export` writes a receipt naming the ward's head as the database holds it."""
    from synckit import connect, make_ward

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    for i in range(2):
        code, out, err = _cli_import(h, _bundles(w, tmp_path, 1, tag=f"r{i}"), monkeypatch)
        assert code == 0, (out, err)
    device, head, head_hash = _ward_head(w)
    chain = tmp_path / "chain.json"
    code, out, err = run("hub", "log", "-d", str(h.data_dir), "--out", str(chain), monkeypatch=monkeypatch)
    assert code == 0, err
    vkey = out.split("verifier key: ")[1].strip()
    code, out, err = run("audit", "verify-log", str(chain), "--key", vkey, monkeypatch=monkeypatch)
    assert code == 0, (out, err)
    from wardcrf.sync import hublog

    assert [c.size for c in hublog.verify_offline(chain.read_bytes(), vkey)] == [1, 2]
    usb = tmp_path / "usb"
    code, out, err = run(
        "hub", "export", "--device", device, "--to", str(usb), "-d", str(h.data_dir), monkeypatch=monkeypatch
    )
    assert code == 0, err
    receipt = next(p for p in usb.iterdir() if p.name.endswith(".json"))
    assert f'"seq":{head}' in receipt.read_text() and head_hash in receipt.read_text()
    # Its ledger is on the server already: copying it there again is refused, nothing done.
    code, out, err = run("hub", "copy-to-postgres", "-d", str(h.data_dir), "--database", "host=/nowhere dbname=x",
                         monkeypatch=monkeypatch)  # fmt: skip
    assert code == 2 and "in PostgreSQL already" in err, (code, out, err)


def test_a_fork_whose_bundle_failed_after_it_was_flagged_is_recorded_once_on_re_import(
    pair, tmp_path, monkeypatch
):
    """The fork event goes to the hub's file, the held row to the ledger: a failure between the two
    (a later step raising, or the process killed before the ledger commits) and a re-import record
    the fork once, with its one held row."""
    import shutil

    from synckit import add_notes
    from test_sync_roundtrip import export
    from wardcrf.sync import hub, hublog

    from wardcrf.errors import WardError

    _engine, w, h = pair
    old = tmp_path / "old-copy"
    shutil.copytree(w.data_dir, old)
    add_notes(w, 2)
    f1 = export(w, tmp_path / "u1")[0]
    shutil.rmtree(w.data_dir)
    shutil.copytree(old, w.data_dir)
    add_notes(w, 2, text="after restore")
    f1b = export(w, tmp_path / "u2")[0]
    device = _ward_head(w)[0]
    with _ledger(h) as (s, store):
        assert hub.import_file(s, f1).outcome.status == "applied"
        # The step after the engine flagged the fork (its transparency-log leaf) fails: on PostgreSQL
        # the fork event is already in the hub's file, as it would be after a SIGKILL before COMMIT.
        real = hublog.log_bundle

        def broken(*args, **kwargs):
            raise RuntimeError("disk went away")

        monkeypatch.setattr(hublog, "log_bundle", broken)
        with pytest.raises(WardError, match="disk went away"):
            hub.import_file(s, f1b)
        assert store.scalar("SELECT count(*) FROM sync_held") == 0
        monkeypatch.setattr(hublog, "log_bundle", real)
        res = hub.import_file(s, f1b)
        assert res.outcome.status == "fork"
        assert store.rows(
            "SELECT bundle_seq, reason, resolved_at FROM sync_held WHERE device = ?", (device,)
        ) == [{"bundle_seq": 1, "reason": "fork", "resolved_at": None}]
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'sync.fork_detected'") == 1
        assert store.scalar("SELECT status FROM sync_devices WHERE device = ?", (device,)) == "flagged"
        # Imported again, still one.
        assert hub.import_file(s, f1b).outcome.status == "fork"
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'sync.fork_detected'") == 1


def test_the_registry_is_copied_to_postgresql_only_when_the_hubs_registry_changed(pair, monkeypatch):
    """Each `hub serve` request opens `ledger_store`: an unchanged registry costs no statement on the server."""
    from synckit import open_
    from wardcrf.sync import hub, registry
    from wardcrf.sync.pgstore import PgStore

    engine, w, h = pair
    if engine != "postgresql":
        pytest.skip("the registry is copied to a PostgreSQL hub only")
    written: list[int] = []
    real = PgStore.executemany

    def counting(self, sql, rows):
        rows = list(rows)
        if "sync_devices" in sql:
            written.append(len(rows))
        return real(self, sql, rows)

    monkeypatch.setattr(PgStore, "executemany", counting)
    device = _ward_head(w)[0]
    s = open_(h)
    try:
        for _ in range(3):
            with hub.ledger_store(s) as store:
                assert store.scalar("SELECT status FROM sync_devices WHERE device = ?", (device,)) == "active"
        assert len(written) <= 1  # the first request of this process copies it; the next two nothing
        written.clear()
        registry.retire_device(s, device, "laptop lost")
        with hub.ledger_store(s) as store:
            assert store.scalar("SELECT status FROM sync_devices WHERE device = ?", (device,)) == "retired"
        assert len(written) == 1 and written[0] >= 1
        written.clear()
        with hub.ledger_store(s) as store:
            pass
        assert written == []
    finally:
        s.close()


# -- a ward's form records at a PostgreSQL hub (0005-form-records) ----------------------------


def _ward_records(w: Site, root: Path, *, tag: str = "r") -> tuple[list[Path], str]:
    """A participant's consent (signed by the clinician and two witnesses), screening, enrollment, skin test,
    vitals around dose 1, the dose and an adverse event, then a correction: two bundles of the ward's own
    records, as its clinicians write them (no photo: a bundle with one is refused at a PostgreSQL hub)."""
    from synckit import open_
    from test_sync_roundtrip import export

    from wardcrf import signatures, users

    s = open_(w)
    try:
        for name, full, role in (("clin", "Cathy Clinician", "clinician"), ("inv", "Ivan Investigator", "investigator"),
                                 ("clin2", "Chen Clinician", "clinician")):  # fmt: skip
            users.add_user(s, name, full, role, PASSWORD)
    finally:
        s.close()
    subject = "participant:WUH01-001"
    c = open_(w, "clin")
    try:

        def record(form: str, data: dict, **extra) -> str:
            body = {"form": form, "data": data, **extra}
            return c.append(type="record.submitted", subject=subject, body=body).event.id

        consent = record("consent", {"consenter": "participant", "form_version": "1.0",
                                     "time": "2026-12-06T08:30:00+08:00", "witness_1": "inv", "witness_2": "clin2",
                                     "photos": []}, creates_participant=True)  # fmt: skip
        for who, meaning in (("clin", "authored"), ("inv", "witnessed"), ("clin2", "witnessed")):
            signatures.sign(c, target=consent, meaning=meaning, signer=who, password=PASSWORD)
        record(
            "screening",
            {
                "date": "2026-12-06",
                "dob": "1961-03-04",
                "sex": "F",
                "pcr_confirmed": True,
                "pcr_date": "2026-12-04",
                "severity": "severe",
                "eligible": True,
                "failed_criteria": [],
            },
        )
        record("enrollment", {"date": "2026-12-06"})
        record("skin_test", {"time": "2026-12-06T15:00:00+08:00", "result": "negative", "wheal": 3})
        record(
            "vitals",
            {
                "timepoint": "pre_dose",
                "dose": 1,
                "time": "2026-12-07T08:45:00+08:00",
                "temp": 36.8,
                "pulse": 82,
                "resp": 20,
                "oxysat": 95,
                "sysbp": 128,
                "diabp": 78,
            },
        )
        record(
            "dose",
            {
                "dose_number": 1,
                "kit_id": "EXO-0001",
                "lot": "HAMSC-2003-01",
                "particles": 2.0e8,
                "volume": 6,
                "start": "2026-12-07T09:00:00+08:00",
                "end": "2026-12-07T09:30:00+08:00",
            },
        )
        post = record("vitals", {"timepoint": "post_dose", "dose": 1, "time": "2026-12-07T10:15:00+08:00",
                                 "temp": 37.4, "pulse": 88, "resp": 20, "oxysat": 96})  # fmt: skip
    finally:
        c.close()
    first = export(w, root / f"{tag}1")
    s = open_(w)
    try:  # as if the hub's receipt came back: the next export holds only what is new
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()
    c = open_(w, "clin")
    try:
        c.append(type="record.submitted", subject=subject, body={"form": "ae", "data": {
            "term": "Low-grade fever [red]after[/red] inhalation", "prespecified": "fever", "dose": 1, "onset": "2026-12-07",
            "end": "2026-12-08", "grade": 1, "serious": False, "outcome": "recovered"}})  # fmt: skip
        c.append(type="record.amended", subject=subject, amends=post, reason="misread the monitor",
                 body={"form": "vitals", "changes": {"pulse": {"old": 88, "new": 86}}})  # fmt: skip
    finally:
        c.close()
    return first + export(w, root / f"{tag}2"), post


def test_a_wards_records_push_to_either_hub_and_the_coordinators_queries_read_them(
    pair, tmp_path, monkeypatch
):
    """Consent to adverse event, in two bundles: applied at a PostgreSQL hub as at a SQLCipher one, replayed
    as "already", and `hub records`, `hub status` and `hub conflicts` read the same projections."""
    from wardcrf.sync import hub

    engine, w, h = pair
    files, post = _ward_records(w, tmp_path)
    with _ledger(h) as (s, store):
        items = hub.import_files(s, files)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"] * len(files), [
            i.refused for i in items
        ]
        assert [i.result.outcome.status for i in hub.import_files(s, files) if i.result] == ["already"] * len(
            files
        )
        listed = hub.records_list(s)
        assert [r["form"] for r in listed] == [
            "consent", "screening", "enrollment", "skin_test", "vitals", "dose", "vitals", "ae",
        ]  # fmt: skip
        vitals = next(r for r in listed if r["event_id"] == post)
        assert (vitals["version"], vitals["data"]["pulse"]) == (2, 86)
        assert [r["form"] for r in hub.records_list(s, form="vitals")] == ["vitals", "vitals"]
        assert hub.records_list(s, participant="WUH01-999") == []
        participant = store.rows("SELECT eligible, enrolled_on FROM participants WHERE id = 'WUH01-001'")
        assert participant == [{"eligible": 1, "enrolled_on": "2026-12-06"}]
        assert store.scalar("SELECT count(*) FROM signatures") == 3
        # The hub's own version first (loaded at `hub init`, copied to the database there), the ward's
        # load of the same version leaving it active: the same `protocols` rows on both engines.
        own = s.store.scalar("SELECT id FROM events WHERE type = 'protocol.loaded' ORDER BY pos LIMIT 1")
        assert own.startswith(s.ctx.device)
        assert store.rows(
            "SELECT protocol_id, version, loaded_event, active FROM protocols ORDER BY rowid"
        ) == [{"protocol_id": "MEXCOVID", "version": "1.0", "loaded_event": own, "active": 1}]
        assert store.scalar('SELECT "end" FROM doses') == "2026-12-07T09:30:00+08:00"
        assert hub.status(s)["conflicts"] == 0 and hub.conflicts(s) == []
        if engine == "postgresql":
            # The wards' records are in PostgreSQL, not in the hub's file.
            assert s.store.scalar("SELECT count(*) FROM records") == 0
    code, out, err = run(
        "hub", "records", "-d", str(h.data_dir), "--form", "ae", "--json", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert [r["data"]["term"] for r in json.loads(out)] == ["Low-grade fever [red]after[/red] inhalation"]
    # Printed for a terminal: a ward's text is shown as typed, never taken for the console's markup.
    code, out, err = run("hub", "records", "-d", str(h.data_dir), "--form", "ae", monkeypatch=monkeypatch)
    assert code == 0 and "[red]after[/red]" in out, (out, err)
    code, out, err = run("hub", "records", "-d", str(h.data_dir), "--limit", "0", monkeypatch=monkeypatch)
    assert code == 2 and err.count("\n") == 1 and "--limit" in err, (code, out, err)


def test_a_record_out_of_sequence_is_held_at_either_hub(pair, tmp_path):
    """A dose recorded before the participant's consent was signed: the bundle is held for the coordinator
    (reason sequencing), nothing of it merged, on PostgreSQL as on SQLCipher."""
    from synckit import open_
    from test_sync_roundtrip import export
    from wardcrf.sync import hub

    _engine, w, h = pair
    s = open_(w)
    try:
        from wardcrf import users

        users.add_user(s, "clin", "Cathy Clinician", "clinician", PASSWORD)
    finally:
        s.close()
    c = open_(w, "clin")
    try:
        c.append(type="record.submitted", subject="participant:WUH01-001", body={"form": "dose", "data": {
            "dose_number": 1, "kit_id": "EXO-0009", "start": "2026-12-07T09:00:00+08:00"}})  # fmt: skip
    finally:
        c.close()
    files = export(w, tmp_path / "seq")
    device = _ward_head(w)[0]
    with _ledger(h) as (s, store):
        outcomes = [i.result.outcome.status for i in hub.import_files(s, files) if i.result]
        assert outcomes[-1] == "sequencing", outcomes
        assert store.one("SELECT reason FROM sync_held WHERE device = ?", (device,)) == ("sequencing",)
        assert store.scalar("SELECT count(*) FROM doses") == 0
        assert store.scalar("SELECT count(*) FROM events WHERE type = 'record.submitted'") == 0
        assert hub.status(s)["held_rules"][0]["reason"] == "sequencing"


def test_a_cold_chain_record_applies_alike_at_either_hub(pair, tmp_path):
    """A cold-chain form (its hooks ported to the common dialect, 0008-cold-chain): applied on both
    engines, the same unit row (tests/unit/test_hub_pg_evidence.py covers the whole chain)."""
    from synckit import open_
    from test_sync_roundtrip import export
    from wardcrf.sync import hub

    _engine, w, h = pair
    s = open_(w)
    try:
        from wardcrf import users

        users.add_user(s, "ph", "Pat Pharmacist", "pharmacist", PASSWORD)
    finally:
        s.close()
    c = open_(w, "ph")
    try:
        unit = c.append(type="record.submitted", subject="unit:FRZ-1", body={"form": "coldchain.unit", "data": {
            "unit_id": "FRZ-1", "name": "Pharmacy freezer", "location": "pharmacy", "low_c": -90, "high_c": -60,
            "zone": "Asia/Shanghai", "interval_s": 300}}).event.id  # fmt: skip
    finally:
        c.close()
    files = export(w, tmp_path / "cc")
    with _ledger(h) as (s, store):
        items = hub.import_files(s, files)
        assert all(i.result is not None for i in items), [i.refused for i in items]
        assert store.rows("SELECT * FROM cc_units") == [
            {"unit_id": "FRZ-1", "name": "Pharmacy freezer", "location": "pharmacy", "low_c": -90.0,
             "high_c": -60.0, "target_c": None, "zone": "Asia/Shanghai", "interval_s": 300, "event_id": unit}
        ]  # fmt: skip
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'sync.bundle_refused'") == 0


def test_the_hubs_own_version_query_and_decision_meet_the_wards_answer_at_either_hub(
    pair, tmp_path, monkeypatch
):
    """After `hub init`: the hub loads MEXCOVID 1.1, its coordinator raises a query on a ward's record
    (found where the wards' events are) and its DSMG sends a decision; the ward gets them in the hub's
    bundle and answers. At a PostgreSQL hub the hub's own events are projected into the database before
    the answer is imported (`pghub.mirror_own_events`): the same `protocols`, `sync_queries` and
    `sync_decisions` rows as in a SQLCipher hub's file, and `hub status` counts the answered query."""
    from synckit import open_
    from test_sync_roundtrip import export
    from wardcrf.sync import hub, registry, ward

    from wardcrf import protocol

    engine, w, h = pair
    files, post = _ward_records(w, tmp_path)
    device = _ward_head(w)[0]
    with _ledger(h) as (s, _store):
        assert all(i.result and i.result.outcome.status == "applied" for i in hub.import_files(s, files))
    v11 = protocol.parse(
        protocol.default_protocol().source.replace('version = "1.0"', 'version = "1.1"', 1),
        "mexcovid-1.1.toml",
    )
    hs = open_(h)
    try:
        loaded = protocol.load(hs, v11)
    finally:
        hs.close()
    ask = ("hub", "raise-query", "-d", str(h.data_dir), "--site", "WUH01", "--field", "pulse", "--question")
    code, out, err = run(
        *ask, "which?", "--record", f"{device}-999", user="coordinator", monkeypatch=monkeypatch
    )
    assert code == 1 and "has not received it" in err and err.count("\n") == 1, (code, out, err)
    code, out, err = run(
        *ask, "Pulse 86 or 88? 'quoted'", "--record", post, user="coordinator", monkeypatch=monkeypatch
    )
    assert code == 0, err
    query_id = out.split()[1]  # "Query <id> raised for WUH01."
    hs = open_(h, "dsmg")
    try:
        decision = registry.send_decision(hs, "WUH01", "continue enrolment", "no safety signal")
    finally:
        hs.close()
    hs = open_(h, "coordinator")
    try:
        stick = tmp_path / "stick"
        stick.mkdir()
        hub.outbound_files(hs, device, stick)
    finally:
        hs.close()
    s = open_(w)
    try:
        for f in sorted(stick.glob("*.tar.age")):
            assert "applied" in ward.import_file(s, f)
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()
    c = open_(w, "clin")
    try:
        answer = registry.answer_query(c, query_id, "86: re-read on the monitor")
    finally:
        c.close()
    answered = export(w, tmp_path / "answer")
    with _ledger(h) as (s, store):
        items = hub.import_files(s, answered)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"] * len(answered), [
            i.refused for i in items
        ]
        assert store.rows("SELECT version, loaded_event, active FROM protocols ORDER BY rowid")[1:] == [
            {"version": "1.1", "loaded_event": loaded.id, "active": 1}
        ]
        assert store.rows("SELECT query_id, status, raised_by, answer_event FROM sync_queries") == [
            {
                "query_id": query_id,
                "status": "answered",
                "raised_by": "coordinator",
                "answer_event": answer.id,
            }
        ]
        assert store.rows("SELECT event_id, decision, decided_by FROM sync_decisions") == [
            {"event_id": decision.id, "decision": "continue enrolment", "decided_by": "dsmg"}
        ]
        assert hub.status(s)["open_queries"] == 1
        if engine == "postgresql":
            # The hub's own events stay in its file; their projections are in the database too.
            assert store.scalar("SELECT count(*) FROM events WHERE id = ?", (query_id,)) == 0
            assert store.scalar("SELECT seq FROM hub_own_projected") == s.store.scalar(
                "SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,)
            )
    hs = open_(h, "coordinator")
    try:
        registry.close_query(hs, query_id, "accepted")
    finally:
        hs.close()
    with _ledger(h) as (s, store):
        assert store.scalar("SELECT status FROM sync_queries") == "closed"
        assert hub.status(s)["open_queries"] == 0


def test_a_blinded_list_is_sealed_to_the_unblinding_key_a_ward_sent_to_either_hub(pair, tmp_path):
    """A blinded list needs the laptop's unblinding recipient, which its bundle brought to where the hub
    keeps what wards send (its file, or its database): `randomization make` finds it there on both engines;
    looked for in the hub's file alone at a PostgreSQL hub, the list is refused with the reason."""
    from rand_support import blinded_two_to_one
    from wardcrf.sync import hub

    from wardcrf import users
    from wardcrf.errors import Refused
    from wardcrf.randomization import service

    engine, w, h = pair
    s = open_(w)
    try:
        users.add_user(s, "investigator", "Ivy Investigator", "investigator", PASSWORD)
    finally:
        s.close()
    open_(w, "investigator").close()  # the first sign-in makes the laptop's unblinding key
    files = _bundles(w, tmp_path, 1)
    device = _ward_head(w)[0]
    with _ledger(h) as (hs, store):
        assert [i.result.outcome.status for i in hub.import_files(hs, files) if i.result] == ["applied"]
        recipient = store.scalar("SELECT recipient FROM rand_unblinding_keys WHERE device = ?", (device,))
        assert recipient and recipient.startswith("age1")
    c = open_(h, "coordinator")
    try:
        if engine == "postgresql":
            with pytest.raises(Refused, match="has not sent its unblinding key yet"):
                service.make_list(c, blinded_two_to_one(), "WUH01", device, 6)
        with hub.ledger_store(c) as wards:
            made = service.make_list(c, blinded_two_to_one(), "WUH01", device, 6, wards=wards)
        assert (
            c.store.scalar("SELECT unblind_recipient FROM rand_lists WHERE list_id = ?", (made.list_id,))
            == recipient
        )
    finally:
        c.close()
    with _ledger(h) as (_hs, store):  # the hub's list, projected where the allocations will be checked
        assert (
            store.scalar("SELECT unblind_recipient FROM rand_lists WHERE list_id = ?", (made.list_id,))
            == recipient
        )


def test_the_coding_queue_list_status_and_code_at_either_hub_read_the_wards_terms(
    pair, tmp_path, monkeypatch
):
    """`coding queue`, `coding list`, `coding status` and `coding code` at the hub read where the wards' records and
    codings are: the ward's adverse event term waits for a coder at a PostgreSQL hub as at a SQLCipher one, and
    once the hub's coder codes it, it is listed and leaves the queue."""
    from wardcrf.sync import hub

    from wardcrf import users

    _engine, w, h = pair
    files, _post = _ward_records(w, tmp_path)
    with _ledger(h) as (s, _store):
        assert all(i.result and i.result.outcome.status == "applied" for i in hub.import_files(s, files))
    code, out, err = run("coding", "queue", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    waiting = json.loads(out)
    assert [(u["form"], u["field"], u["verbatim"], u["dictionary"]) for u in waiting] == [
        ("ae", "term", "Low-grade fever [red]after[/red] inhalation", "MedDRA")
    ]
    code, out, err = run("coding", "list", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out) == [], (out, err)
    code, out, err = run("coding", "status", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    st = json.loads(out)
    assert (st["uncoded"], st["dictionaries"]["MedDRA"]["uncoded"], st["loaded_here"]) == (1, 1, [])
    # The hub's coder loads MedDRA (licensed: in the hub's file only) and codes the ward's term: a hub event,
    # in its file, projected where the wards' codings are.
    import coding_support as cs

    s = open_(h)
    try:
        users.add_user(s, "coder", "Cody Coder", "coder", PASSWORD)
    finally:
        s.close()
    meddra = cs.write_meddra(tmp_path / "MedAscii")
    code, out, err = run(
        "coding", "load", "meddra", str(meddra), "-d", str(h.data_dir), user="coder", monkeypatch=monkeypatch
    )
    assert code == 0, err
    ae = waiting[0]["record"]
    code, out, err = run(
        "coding",
        "code",
        "nope-1",
        "--llt",
        "10037377",
        "-d",
        str(h.data_dir),
        user="coder",
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "unknown record" in err and err.count("\n") == 1, (code, out, err)
    code, out, err = run(
        "coding",
        "code",
        ae,
        "--llt",
        "10037377",
        "-d",
        str(h.data_dir),
        user="coder",
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    code, out, err = run("coding", "list", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    assert [(c["record"], c["codes"]["llt_code"], c["coded_by"]) for c in json.loads(out)] == [
        (ae, 10037377, "coder")
    ]
    code, out, err = run("coding", "queue", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out) == [], (out, err)


def test_sdv_show_and_report_at_either_hub_read_the_wards_records(pair, tmp_path, monkeypatch):
    """`sdv show` and `report sdv` at the hub read the wards' records where they are (a PostgreSQL hub's
    database): every record of the ward's participant listed, unverified, its fields in its form's order."""
    from wardcrf.sync import hub

    _engine, w, h = pair
    files, post = _ward_records(w, tmp_path)
    with _ledger(h) as (s, _store):
        assert all(i.result and i.result.outcome.status == "applied" for i in hub.import_files(s, files))
    code, out, err = run("report", "sdv", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    assert report["totals"]["records"] == 8 and report["totals"]["unverified"] == 8, report["totals"]
    assert [r["form"] for r in report["records"]][:3] == ["consent", "screening", "enrollment"]
    code, out, err = run("sdv", "show", post, "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["state"] == "unverified" and "notice" not in shown  # its version is loaded there
    assert [f["field"] for f in shown["fields"]][:3] == ["timepoint", "dose", "time"]
    code, out, err = run("sdv", "show", "nope-1", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1, (code, out, err)
