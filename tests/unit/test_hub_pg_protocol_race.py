# ruff: noqa: F811  (the twins fixture is imported from test_hub_pg_twins and named by each test)
"""Protocol versions loaded at once at a PostgreSQL hub end with exactly one active (issue 19).

A SQLCipher hub applies one writer at a time: the later load deactivates the earlier and is the active
version. At a PostgreSQL hub two transactions project a `protocol.loaded` at once: the hub's own load
(`pghub.mirror_own_events`, under its lock) and a ward's bundle (under its device's lock), or two wards'
bundles. Each deactivated the versions it saw active and inserted its own as active; neither saw the
other's insert, so both ended active, and every later read of "the active version" (the ward queue, the
reports, a new participant's version) depended on which row it met first. Now the database serialises
them (migration `0014-one-active-version`: the second waits for the first to commit, then deactivates
it), as on SQLCipher: the later is the one active.
"""

from __future__ import annotations

import threading

from synckit import PASSWORD, open_
from test_hub_pg_twins import _version, twins  # noqa: F401  (fixtures; `pg_server` is the conftest's)


def _loaded_events(h, versions: list[str]):
    """`protocol.loaded` events of `versions`, loaded at hub `h` (real lines, signed in its chain)."""
    from wardcrf import eventlog, protocol

    s = open_(h)
    try:
        for v in versions:
            protocol.load(s, _version(v))
        return list(
            eventlog.iter_events(s.store, "type = 'protocol.loaded' AND subject = 'protocol:MEXCOVID'")
        )[-len(versions) :]
    finally:
        s.close()


def _project(store, e) -> None:
    from wardcrf import eventlog
    from wardcrf.sqlstore import portable

    for fn in eventlog.projectors_for(e.type):
        portable(fn)(store, e)


def _waiting(admin, pid: int) -> bool:
    row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_two_versions_projected_at_once_at_a_postgresql_hub_leave_exactly_one_active_the_later(twins):
    """Two connections project two loads at once (the first holds its transaction open until the second is
    seen waiting on it): one version active, the one committed last, as a SQLCipher hub applies them."""
    import psycopg
    from wardcrf.sync.pgstore import PgStore

    _w, hubs = twins
    e11, e12 = _loaded_events(hubs["sqlcipher"], ["1.1", "1.2"])
    dsn = (hubs["postgresql"].data_dir / "hub-database").read_text().strip()
    first, second = PgStore(dsn), PgStore(dsn)
    admin = psycopg.connect(dsn, autocommit=True)
    failed: list[BaseException] = []

    def later() -> None:
        try:
            with second.transaction():
                _project(second, e12)
        except BaseException as exc:  # reported by the test
            failed.append(exc)

    try:
        t = threading.Thread(target=later)
        with first.transaction():
            _project(first, e11)
            t.start()
            for _ in range(10_000):  # until the second waits on the first (a condition, not a time)
                if _waiting(admin, second.conn.info.backend_pid) or not t.is_alive():
                    break
                threading.Event().wait(0.005)
            assert t.is_alive(), failed  # it waited for the first to commit
        t.join()
        assert failed == []
        rows = admin.execute("SELECT version, active FROM protocols ORDER BY rowid").fetchall()
    finally:
        first.close()
        second.close()
        admin.close()
    assert rows == [("1.0", 0), ("1.1", 0), ("1.2", 1)], rows


def _load_at_once(h, files) -> list[tuple[int, str, str]]:
    """`wardcrf protocol load FILE -d HUB`, one process per file, started together: (exit, stdout, stderr)."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "WARDCRF_USER": "admin",
        "WARDCRF_PASSWORD": PASSWORD,
        "WARDCRF_BUSY_TIMEOUT_MS": "300000",
    }
    code = "from wardcrf.entry import main; main()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, "protocol", "load", str(f), "-d", str(h.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for f in files
    ]
    return [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]


def _active(h) -> tuple[list[str], list[str]]:
    """The active version(s) in the hub's file and in its database (the hub's own events projected first)."""
    from wardcrf.sync import hub

    s = open_(h)
    try:
        own = [str(r[0]) for r in s.store.execute("SELECT version FROM protocols WHERE active = 1")]
        with hub.ledger_store(s) as store:
            return own, [str(r[0]) for r in store.execute("SELECT version FROM protocols WHERE active = 1")]
    finally:
        s.close()


def test_two_protocol_loads_at_once_at_a_postgresql_hub(twins, tmp_path):
    """`protocol load` run twice at once at a PostgreSQL hub: the same file, one loads it and the other is
    refused in one line (exit 1, nothing written); two versions, both load, one after the other, and the
    later is the one active, in the hub's file and in its database alike."""
    _w, hubs = twins
    h = hubs["postgresql"]
    same = tmp_path / "mexcovid-1.1.toml"
    same.write_text(_version("1.1").source, encoding="utf-8")
    got = sorted(_load_at_once(h, [same, same]), key=lambda r: r[0])
    assert [r[0] for r in got] == [0, 1], got
    assert got[1][2].count("\n") == 1 and "already loaded" in got[1][2] and "Traceback" not in got[1][2], got
    assert _active(h) == (["1.1"], ["1.1"])
    files = []
    for v in ("1.2", "1.3"):
        files.append(tmp_path / f"mexcovid-{v}.toml")
        files[-1].write_text(_version(v).source, encoding="utf-8")
    got = _load_at_once(h, files)
    assert [r[0] for r in got] == [0, 0], got
    own, database = _active(h)
    assert len(own) == 1 and own == database and own[0] in ("1.2", "1.3"), (own, database)
