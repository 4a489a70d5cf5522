"""The hub suite on both engines (issue 19): a hub made in a test is a SQLCipher hub, or a PostgreSQL one.

A hub test module opts in with ``pytestmark = pytest.mark.usefixtures("hub_engine")`` (or a test
with ``@pytest.mark.usefixtures("hub_engine")``): each of its tests then runs twice,
``[sqlcipher]`` and ``[postgresql]``. In the PostgreSQL run every hub the test makes in this
process — `synckit.make_hub`, `export_support.make_hub`, `hub.init(...)`, the in-process
`wardcrf hub init` — is made with ``database=`` a fresh database of this worker's one throwaway
server (`pgserver`, started once per test process), copied from a template that holds the schema
already. Everything else the test does is unchanged (a `wardcrf` subprocess finds the database in
the hub's ``hub-database`` file): its hub keeps what wards send where `hub.ledger_store` says, and
the test reads it there.

A command that does not run at a PostgreSQL hub yet (docs/hub-postgres.md, "What is left") is
marked on the test that runs it: ``@pytest.mark.pg_not_yet("export sqlite")``. Its PostgreSQL run
is then an expected failure **only** when it failed on the command's own refusal ("... where
export sqlite does not run yet (issue 19, docs/hub-postgres.md)"): any other failure is reported
as a failure, and a pass as "now runs at a PostgreSQL hub: remove the mark" (a strict xfail), so
the mark is removed when the command lands.

``@pytest.mark.pg_gap("what differs")`` marks a test whose PostgreSQL run finds something a PostgreSQL
hub does not do as a SQLCipher one does, outside that list (a strict xfail naming it): each is in
the notes for the lead, to be fixed where the code is, then the mark removed.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgserver
import pytest

HUB_ENGINES = ("sqlcipher", "postgresql")

NOT_YET = "does not run yet (issue 19, docs/hub-postgres.md)"
"""The tail of the one line a command not yet ported says at a PostgreSQL hub (`cli.common`)."""


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    """One throwaway PostgreSQL server per test process (xdist worker), shared by every test in it."""
    yield from pgserver.serve()


def _on_postgresql(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hub made while `monkeypatch` holds is made on a fresh database of this process's server."""
    server: pgserver.Server = request.getfixturevalue("pg_server")
    from wardcrf.sync import hub

    made = hub.init

    def init(data_dir: Any, *, database: str | None = None, **kw: Any) -> Any:
        return made(data_dir, database=database or server.new_database(migrated=True), **kw)

    monkeypatch.setattr(hub, "init", init)


@pytest.fixture(params=HUB_ENGINES)
def hub_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine this run's hubs keep their wards' data in (see the module's docstring)."""
    gap = request.node.get_closest_marker("pg_gap")
    if request.param == "postgresql" and gap is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"at a PostgreSQL hub: {gap.args[0]}"))
    if request.param == "postgresql":
        _on_postgresql(request, monkeypatch)
    return str(request.param)


@pytest.fixture(scope="module", params=HUB_ENGINES)
def module_hub_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """`hub_engine` for a module whose hubs are made once (a module-scoped fixture takes this one):
    its tests run at the SQLCipher hubs, then at the PostgreSQL ones. No `pg_gap` here: mark a test's
    difference on the test with `hub_engine` instead."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        if request.param == "postgresql":
            _on_postgresql(request, monkeypatch)
        yield str(request.param)


def copy_hub(src: Path, dst: Path) -> None:
    """Copy a hub's directory to `dst` as a second hub in the same state: at a PostgreSQL hub its database
    too, on the same server (``CREATE DATABASE ... TEMPLATE``; no connection to it may be open), `dst`'s
    ``hub-database`` naming the copy. The copy holds the same identity and keys: wards' bundles sealed to
    the first hub open at it."""
    from wardcrf.sync import pghub

    shutil.copytree(src, dst)
    kept = dst / pghub.DATABASE_FILE
    if not kept.is_file():
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(kept.read_text("utf-8").strip())
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(make_conninfo(**{**parts, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE {name} TEMPLATE "{parts["dbname"]}"')
    kept.write_text(make_conninfo(**{**parts, "dbname": name}) + "\n", "utf-8")


def engine_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("hub_engine")


def not_yet_report(item: pytest.Item, call: pytest.CallInfo[None], rep: pytest.TestReport) -> None:
    """`pg_not_yet`: the PostgreSQL run's expected refusal (see the module's docstring)."""
    mark = item.get_closest_marker("pg_not_yet")
    if mark is None or call.when != "call" or engine_of(item) != "postgresql":
        return
    command = mark.args[0]
    reason = f"{command} does not run at a PostgreSQL hub yet (docs/hub-postgres.md, 'What is left')"
    if rep.failed and f"where {command} {NOT_YET}" in str(rep.longrepr):
        rep.outcome = "skipped"
        rep.wasxfail = reason  # type: ignore[attr-defined]
    elif rep.passed:
        rep.outcome = "failed"
        rep.longrepr = f"[XPASS(strict)] {reason}, but it ran: it runs there now, remove the pg_not_yet mark"


@contextlib.contextmanager
def ledger(h: Any, user: str = "admin") -> Iterator[tuple[Any, Any]]:
    """A session at hub `h` and the store its wards' data is in: its file, or its PostgreSQL database
    (`hub.ledger_store`); what a test reads of the wards' events, the ledger or their projections."""
    from synckit import open_
    from wardcrf.sync import hub

    s = open_(h, user)
    try:
        with hub.ledger_store(s) as store:
            yield s, store
    finally:
        s.close()


def nothing_applied(h: Any, device: str) -> None:
    """Nothing of `device`'s bundles is at hub `h`: not its events, not its ledger rows, no photo, no kept
    bundle (read where the hub keeps them, `ledger`)."""
    with ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == 0
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 0
        assert store.scalar("SELECT count(*) FROM photo_archive") == 0
    applied = h.data_dir / "sync" / "applied"
    assert not applied.exists() or not [p for p in applied.iterdir() if device in p.name]


def check_projections(session: Any) -> tuple[int, list[Any]]:
    """`db rebuild --check` as the command runs it, on either engine: the hub's file against its log,
    and at a PostgreSQL hub its database against the database's log (`sync.pgcheck`)."""
    from wardcrf.sync import pgcheck

    from wardcrf import dbadmin

    n, diffs = dbadmin.check_projections(session)
    more, found = pgcheck.check_projections(session)
    return n + more, diffs + found
