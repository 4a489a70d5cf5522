"""`hub serve` on a PostgreSQL hub reaches the database through one bounded pool per worker (issue 19).

On a real server (`pgserver`). What is counted is what the server sees
(`pg_stat_activity`, by the worker's application name), never a time: many
concurrent pushes through one serve process never hold more connections than
its pool; a connection killed in the middle of a request, or while idle in
the pool, is discarded and the next request is answered; a refused push gives
its connection back with its device lock released; the pool is closed when
the server stops.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pgserver
import pytest
from synckit import open_
from test_hub_pg_hub import _bundles, _ledger, _make_hub, _Req, _ward_head
from test_sync_cli import run

from wardcrf.errors import UsageError


def _dbname(h) -> str:
    from wardcrf.sync import pghub

    return dict(part.split("=", 1) for part in pghub.dsn_of(h.data_dir).split())["dbname"]


class _Watch:
    """Samples the backends a process holds on one database (`pg_stat_activity`, by application name)
    until stopped: the most seen at once, and every backend pid seen."""

    def __init__(self, server: pgserver.Server, dbname: str, app: str) -> None:
        import psycopg

        self.conn = psycopg.connect(server.admin_dsn, autocommit=True)
        self.dbname, self.app = dbname, app
        self.most = 0
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> set[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (self.dbname, self.app),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = self.now()
            self.most = max(self.most, len(seen))
            self.pids |= seen
            time.sleep(0.005)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        seen = self.now()
        self.most = max(self.most, len(seen))
        self.pids |= seen

    def until_none(self) -> set[int]:
        """Wait (bounded) until the process holds no backend; what it still holds then."""
        for _ in range(400):
            if not (left := self.now()):
                return left
            time.sleep(0.05)
        return self.now()

    def close(self) -> None:
        self.conn.close()


@pytest.mark.slow
def test_concurrent_pushes_through_one_serve_process_never_hold_more_connections_than_its_pool(
    pg_server, tmp_path
) -> None:
    """Six wards each push their bundle twice at once and ask for their receipt meanwhile (18 requests
    together) through one `hub serve --pool-size 2`: at most two backends, reused, never one per request;
    every bundle applied once; no backend left once the server has stopped."""
    from synckit import HubServer, add_notes, connect, make_ward
    from test_sync_roundtrip import export
    from wardcrf.sync.transport import Client

    from wardcrf import eventlog

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    wards = [make_ward(tmp_path, name=f"lap{i:02d}") for i in range(6)]
    files = []
    for w in wards:
        connect(w, h)
        add_notes(w, 3)
        files.append(export(w, tmp_path / f"out-{w.data_dir.name}")[-1])
    devices = [_ward_head(w)[0] for w in wards]
    server = HubServer(h.data_dir, "--pool-size", "2")
    watch = _Watch(pg_server, _dbname(h), f"wardcrf hub serve {server.proc.pid}")
    said: Counter[tuple[str, str]] = Counter()
    receipts = 0
    errors: list[BaseException] = []
    tally = threading.Lock()
    start = threading.Barrier(3 * len(files))

    def push(f: Path) -> None:
        try:
            cipher, sig = f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes()
            start.wait(60)
            status = Client(server.url, timeout=120).push(f.name, cipher, sig)["status"]
            with tally:
                said[(f.name, status)] += 1
        except BaseException as exc:
            errors.append(exc)

    def receipt(device: str) -> None:
        nonlocal receipts
        try:
            start.wait(60)
            data, _sig = Client(server.url, timeout=120).receipt(device)
            assert device.encode() in data
            with tally:
                receipts += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(f,)) for f in files for _ in range(2)]
    threads += [threading.Thread(target=receipt, args=(d,)) for d in devices]
    try:
        with watch:
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
        assert not errors, errors
        assert said == Counter(
            {(f.name, "applied"): 1 for f in files} | {(f.name, "already"): 1 for f in files}
        )
        assert receipts == len(devices)
        assert 1 <= watch.most <= 2, f"{watch.most} connections at once, pool of 2"
        assert 1 <= len(watch.pids) <= 2, f"{len(watch.pids)} connections opened for 18 requests, pool of 2"
    finally:
        server.stop()
    try:
        assert watch.until_none() == set()  # the pool is closed with the server
    finally:
        watch.close()
    with _ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM sync_applied") == len(files)
        assert eventlog.verify_chains(store)[1] == []


# -- in one process: the pool and the app ------------------------------------------------------


@pytest.fixture
def pooled_hub(pg_server, tmp_path: Path):
    """(hub site, its open session, a ward's device, an admin connection) with one bundle of the ward
    applied, so the ward has a receipt to ask for."""
    import psycopg
    from synckit import connect, make_ward
    from wardcrf.sync import hub

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    (f,) = _bundles(w, tmp_path, 1)
    s = open_(h)
    admin = psycopg.connect(pg_server.admin_dsn, autocommit=True)
    try:
        assert hub.import_file(s, f).outcome.status == "applied"
        yield h, s, w, _ward_head(w)[0], admin
    finally:
        admin.close()
        s.close()


def _mine(admin, h) -> set[int]:
    """The backends this test process's pool holds on the hub's database."""
    import os

    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        (_dbname(h), f"wardcrf hub serve {os.getpid()}"),
    ).fetchall()
    return {int(r[0]) for r in rows}


def _gone(admin, h) -> set[int]:
    """Wait (bounded) until the server has ended the backends of a closed pool; those still there then."""
    for _ in range(400):
        if not (left := _mine(admin, h)):
            return left
        time.sleep(0.05)
    return _mine(admin, h)


def _receipt(app, device: str) -> tuple[int, bytes]:
    from test_sync_restore_streaming import _get

    status, _headers, body = _get(app, f"/v1/devices/{device}/receipt")
    return status, body


def test_a_connection_killed_mid_request_is_discarded_and_the_next_request_is_answered(
    pooled_hub, monkeypatch
) -> None:
    from wardcrf.sync import pghub, receipts, server

    h, s, _w, device, admin = pooled_hub
    real = receipts.make

    def killed_midway(store, dev, signer):
        # The request holds its pooled connection, inside its snapshot; the server loses that backend now.
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (store.conn.info.backend_pid,))
        return real(store, dev, signer)

    with pghub.pooled(s, 1, timeout=5) as pool:
        assert pool is not None
        app = server.app(s)
        assert _receipt(app, device)[0] == 200
        (first,) = _mine(admin, h)
        monkeypatch.setattr(receipts, "make", killed_midway)
        status, body = _receipt(app, device)
        assert status == 503, body  # the hub's database failed it, not the ward: retried by the ward's client
        assert b"postgresql database" in body, body
        monkeypatch.setattr(receipts, "make", real)
        # The pool of one did not keep the dead connection: the next request gets a new one.
        status, body = _receipt(app, device)
        assert status == 200, body
        assert pool.stats().get("returns_bad", 0) >= 1
        now = _mine(admin, h)
        assert len(now) == 1 and first not in now
    assert pool.closed
    assert _gone(admin, h) == set()  # closed with the pool (a backend ends just after its client leaves)


def test_a_push_whose_connection_is_killed_mid_import_applies_nothing_and_goes_through_after(
    pooled_hub, tmp_path, monkeypatch
) -> None:
    """The backend dies inside the bundle's transaction (device lock held, events written): 503, nothing of
    it kept (the server rolled it back), no spool file; pushed again through the same pool of one, applied."""
    from test_sync_http_streaming import _push
    from wardcrf.sync import hublog, pghub, server

    h, s, w, device, admin = pooled_hub
    (second,) = _bundles(w, tmp_path, 1, tag="c")
    sig = second.with_name(second.name + ".minisig").read_bytes()
    real = hublog.log_bundle

    def killed_midway(store, *args, **kw):
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (store.conn.info.backend_pid,))
        return real(store, *args, **kw)

    with pghub.pooled(s, 1, timeout=5):
        app = server.app(s)
        monkeypatch.setattr(hublog, "log_bundle", killed_midway)
        status, answer = _push(app, second.name, sig, [second.read_bytes()])
        assert status == 503, answer
        monkeypatch.setattr(hublog, "log_bundle", real)
        with _ledger(h) as (_s, store):
            assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 1
            assert store.scalar("SELECT count(*) FROM tlog_leaves") == 1
        assert not list((h.data_dir / "sync" / ".incoming").glob("*.tar.age"))
        status, answer = _push(app, second.name, sig, [second.read_bytes()])
        assert status == 200 and answer["status"] == "applied", answer
    with _ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 2
        assert _ward_head(w)[1:] == tuple(
            store.one("SELECT seq, hash FROM chain_heads WHERE device = ?", (device,))
        )


def test_a_connection_killed_while_idle_in_the_pool_is_replaced_before_a_request_gets_it(pooled_hub) -> None:
    from wardcrf.sync import pghub, server

    h, s, _w, device, admin = pooled_hub
    with pghub.pooled(s, 2, timeout=5):
        app = server.app(s)
        assert _receipt(app, device)[0] == 200
        held = _mine(admin, h)
        assert 1 <= len(held) <= 2
        for pid in held:  # e.g. the database restarted, or an operator ended idle sessions
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        status, body = _receipt(app, device)
        assert status == 200, body
        assert not (_mine(admin, h) & held)


def test_a_push_refused_inside_its_transaction_gives_back_its_connection_and_its_device_lock(
    pooled_hub, tmp_path, monkeypatch
) -> None:
    """A bundle refused after its device's advisory lock was taken (it needs projections a PostgreSQL hub
    does not run: a laptop's scanner profile, given for the test a projector not declared common_dialect):
    422; with a pool of one connection, the next requests are still answered, and no advisory lock is
    left held."""
    from test_sync_http_streaming import _push
    from wardcrf.sync import pghub, server

    from wardcrf import eventlog, scanner

    def unported(store, e):  # SQL no one reviewed: never run on PostgreSQL
        raise AssertionError("ran on PostgreSQL")

    h, s, w, device, admin = pooled_hub
    ws = open_(w)
    try:
        scanner.set_profile(ws, "gap", 80)
    finally:
        ws.close()
    (second,) = _bundles(w, tmp_path, 1, tag="b")
    sig = second.with_name(second.name + ".minisig").read_bytes()
    # At the hub only (the ward projected its own profile already).
    monkeypatch.setattr(eventlog, "_PROJECTORS", {**eventlog._PROJECTORS})
    monkeypatch.setitem(
        eventlog._PROJECTORS, "device.scanner_set", [*eventlog._PROJECTORS["device.scanner_set"], unported]
    )
    monkeypatch.setattr(eventlog, "_FOR_TYPE", {})
    with pghub.pooled(s, 1, timeout=5):
        app = server.app(s)
        status, answer = _push(app, second.name, sig, [second.read_bytes()])
        assert status == 422 and "need projections" in answer["error"], answer
        assert admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
        assert _receipt(app, device)[0] == 200  # the one connection came back
        status, answer = _push(app, second.name, b"not a signature", [second.read_bytes()])
        assert status == 422, answer
        assert _receipt(app, device)[0] == 200
        assert len(_mine(admin, h)) == 1
    with _ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 1


def test_the_pool_size_is_bounded() -> None:
    from wardcrf.sync.pgstore import PgPool

    for size in (0, 65):
        with pytest.raises(UsageError, match="pool size must be 1 to 64"):
            PgPool("host=/nonexistent dbname=x", size)


def test_hub_serve_refuses_to_start_on_an_unreachable_database_in_one_line(
    pg_server, tmp_path, monkeypatch
) -> None:
    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    monkeypatch.setenv(
        "WARDCRF_HUB_DATABASE", f"host={tmp_path} dbname=nosuchdb user=postgres connect_timeout=2"
    )
    code, _out, err = run("hub", "serve", "-d", str(h.data_dir), "--pool-size", "2", monkeypatch=monkeypatch)
    assert code == 1, err
    assert "cannot connect to the postgresql database nosuchdb" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
