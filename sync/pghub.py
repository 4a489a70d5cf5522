"""A hub whose event log, ledger and transparency log live in PostgreSQL (`wardcrf hub init --database`).

The hub's directory is made as for every hub (`hub.init`): its SQLCipher
file keeps what must never leave the coordinator's machine — the users and
their key slots, the sealed signing and age keys, the trial's protocol, the
device registry and the hub's own events (registrations, forks flagged,
refusals). What wards send goes to PostgreSQL: their events (chains checked
as on SQLCipher), the chain heads, the bundle ledger (applied, held), the
transparency log and what receipts are made from — through the same code
(`sync.engine`, `wardcrf.eventlog`, `sync.hublog`, `sync.receipts`) on a
`PgStore`.

Where the database is: ``HUB_DIR/hub-database`` holds its DSN with any
password removed (a password is never written by wardcrf; it goes in
``~/.pgpass``, a service file, or ``WARDCRF_HUB_DATABASE`` in the importing
process's environment, which, when set, is used instead of the file). The
database must hold this hub's identity (site, device): a DSN naming another
hub's database is refused, never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from wardcrf.photos import store as pstore

from wardcrf import audit, eventlog
from wardcrf.coldchain import evidence as cc_evidence
from wardcrf.errors import Refused, StoreError, UsageError
from wardcrf.site import InitResult, Session
from wardcrf.sqlstore import is_portable, portable
from wardcrf.store import Store
from wardcrf.tlog import merkle

from . import engine, hublog, pgledger
from .pgstore import PgPool, PgStore, _psycopg, describe

DATABASE_FILE = "hub-database"
ENV = "WARDCRF_HUB_DATABASE"
MAX_DSN = 4096


def password_free(dsn: str) -> str:
    """The DSN without its password (kept in a file, shown nowhere): a libpq key=value string."""
    if len(dsn) > MAX_DSN:
        raise UsageError(f"--database: longer than {MAX_DSN} characters; give a DSN or a postgresql:// URL")
    if any(ord(c) < 32 or ord(c) == 127 for c in dsn):
        raise UsageError("--database: holds a control character (a DSN is one line of printable text)")
    psycopg = _psycopg()
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        # libpq's message may quote the whole string, password included: not repeated here.
        raise UsageError(
            "--database: libpq cannot parse it; give a DSN (host=... dbname=... user=...)"
            " or a postgresql://user@host:port/dbname URL"
        ) from None
    parts.pop("password", None)
    return str(make_conninfo("", **{k: v for k, v in parts.items() if v is not None}))


def configured(data_dir: Path) -> bool:
    """Does this hub keep its ward data in PostgreSQL?"""
    return (Path(data_dir) / DATABASE_FILE).is_file()


def dsn_of(data_dir: Path) -> str:
    """The DSN the hub's importing process connects with: `WARDCRF_HUB_DATABASE`, else the hub's file."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return env
    try:
        return (Path(data_dir) / DATABASE_FILE).read_text("utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read {Path(data_dir) / DATABASE_FILE}: {exc.strerror}") from None


def open_ledger(session: Session) -> PgStore:
    """The hub's PostgreSQL store, checked to be this hub's (its site row names this hub)."""
    store = PgStore(dsn_of(session.site.data_dir))
    try:
        _check_identity(session, store)
    except BaseException:
        store.close()
        raise
    return store


def _check_identity(session: Session, store: PgStore) -> None:
    from . import registry

    _, device, _kind = registry.own_site(session.store)[:3]
    held = store.one("SELECT site, device FROM site WHERE id = 1")
    if held is None or held[1] != device:
        raise Refused(
            f"the {store.name} is not this hub's"
            f" ({'no hub' if held is None else f'hub {held[0]}/{held[1]}'} there, this hub is {device});"
            " nothing read or written"
        )


_POOLS: dict[str, PgPool] = {}
"""Hub directory -> the pool its `hub serve` worker opened (`pooled`); `ledger` lends from it."""


def _pool_key(session: Session) -> str:
    return str(Path(session.site.data_dir).resolve())


@contextlib.contextmanager
def pooled(session: Session, size: int, *, timeout: float = 30.0) -> Iterator[PgPool | None]:
    """`hub serve`'s connections to a PostgreSQL hub: one bounded pool for this worker, closed at the end.

    Opened (the database checked to answer and to be this hub's, else one
    line says why) before the server answers anything; while it is open,
    every `ledger_store` of this hub in this process borrows from it instead
    of connecting. None, and nothing opened, for a hub on SQLCipher alone.
    """
    if not configured(session.site.data_dir):
        yield None
        return
    # One connection first, closed again: the server answers and holds this hub's log, or one line says why.
    open_ledger(session).close()
    pool = PgPool(
        dsn_of(session.site.data_dir),
        size,
        timeout=timeout,
        application_name=f"wardcrf hub serve {os.getpid()}",
    )
    key = _pool_key(session)
    _POOLS[key] = pool
    try:
        yield pool
    finally:
        if _POOLS.get(key) is pool:
            del _POOLS[key]
        pool.close()


@contextlib.contextmanager
def ledger(session: Session) -> Iterator[PgStore]:
    """The hub's PostgreSQL store: lent by this process's pool when `hub serve` opened one, else connected
    (and closed after) for this use alone, as `hub import` and the other commands do."""
    pool = _POOLS.get(_pool_key(session))
    if pool is not None:
        with pool.store() as store:
            store.beside = session.store
            yield store
        return
    store = open_ledger(session)
    store.beside = session.store  # the hub's keys and own events stay in its file (`sqlstore.own_keys_store`)
    try:
        yield store
    finally:
        store.close()


def check_reachable(dsn: str) -> str:
    """Before anything is created: the DSN parses, psycopg is installed, the server answers, the database is free.

    Returns the password-free DSN to keep. Every failure is a `UsageError` (exit 2), one line.
    """
    kept = password_free(dsn)
    try:
        store = PgStore(dsn)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    try:
        store.check_collation()
        holds = store.scalar("SELECT to_regclass('site') IS NOT NULL") and store.one(
            "SELECT site, device FROM site WHERE id = 1"
        )
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    if holds:
        raise UsageError(
            f"the {describe(dsn)} already holds hub {holds[0]}/{holds[1]}'s log;"
            " a new hub needs an empty database (CREATE DATABASE ...)"
        )
    return kept


def attach(
    data_dir: Path, dsn: str, create: Callable[[], InitResult], admin: str, password: str
) -> InitResult:
    """A hub whose ward data lives in PostgreSQL: `create()` makes the hub's directory, then the schema
    and the hub's identity go to the database and its DSN (password removed) to ``hub-database``.

    Nothing is left behind when a step fails: the server is checked before
    the directory is made, and what `create` made is removed again if the
    database then refuses the schema or the identity.
    """
    kept = check_reachable(dsn)
    data_dir = Path(data_dir)
    before = set(os.listdir(data_dir)) if data_dir.is_dir() else None
    res = create()
    try:
        store = PgStore(dsn)
        try:
            store.migrate()
            session = res.site.unlock(admin, password)
            try:
                with store.transaction():
                    store.lock("wardcrf.hub-init")
                    pgledger.copy_identity(session.store, store)
                    mirror_own_events(session.store, store)
            finally:
                session.close()
        finally:
            store.close()
        engine.atomic_write(data_dir / DATABASE_FILE, (kept + "\n").encode())
        os.chmod(data_dir / DATABASE_FILE, 0o600)
    except BaseException:
        if before is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:  # only what this init made: the folder held other files before
            for name in set(os.listdir(data_dir)) - before:
                target = data_dir / name
                with contextlib.suppress(OSError):
                    shutil.rmtree(target) if target.is_dir() else target.unlink()
        raise
    return res


_PROJECTED: dict[tuple[str, str], int] = {}
"""(hub file, database) -> the hub's own chain head this process last saw projected there (committed)."""

OWN_EVENTS_LOCK = "hub-own-events"


def mirror_own_events(src: Store, dst: PgStore) -> int:
    """Project the hub's own events (its file's chain) into the database, in log order; the events projected.

    The hub's own events stay in its file, with its keys; what they project
    is what a ward's events meet at a SQLCipher hub, in the same tables: a
    protocol version the hub loads (`protocol load` at the hub, after `hub
    init --database` as at it), a query it raises or closes, a DSMG decision
    it sends, its own people, its coders' codings. Each event after the last
    one projected here (`hub_own_projected`) goes through its type's
    projectors, which must all be `common_dialect` (the others' — device
    registrations, flags, refusals — project the hub's registry, copied
    by `mirror_registry`, and the ledger, which is here already); the
    marker moves in the same transaction, under the advisory lock
    `hub-own-events`, so two importers project each event once.

    Called before every import and read (`hub.ledger_store`): when the hub's
    chain head is the one this process last saw projected, nothing is sent.
    A database made before migration 0010 holds the protocol versions `hub
    init --database` copied and no marker: a version held already is not
    loaded again (which would make it the active one).
    """
    from . import registry

    device = str(registry.own_site(src)[1])
    head = int(src.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,)) or 0)
    key = (str(src.path), dst.name)
    if _PROJECTED.get(key) == head:
        return 0
    outermost = not dst.in_transaction
    done = 0
    with dst.transaction():
        dst.lock(OWN_EVENTS_LOCK)
        marker = dst.scalar("SELECT seq FROM hub_own_projected WHERE device = ?", (device,))
        after = int(marker or 0)
        held: set[tuple[str, str]] = set()
        if marker is None:
            held = {(str(r[0]), str(r[1])) for r in dst.execute("SELECT protocol_id, version FROM protocols")}
        if after < head:
            for e in own_events(src, device, after, head):
                if e.type == "protocol.loaded" and (e.body.get("protocol_id"), e.body.get("version")) in held:
                    continue
                for fn in eventlog.projectors_for(e.type):
                    portable(fn)(dst, e)
                done += 1
            dst.execute(
                "INSERT INTO hub_own_projected (device, seq) VALUES (?, ?)"
                " ON CONFLICT (device) DO UPDATE SET seq = excluded.seq",
                (device, head),
            )
            # Where in the database's log this step fell (`pgcheck` replays it there): after every
            # event committed now, under the lock that orders the steps.
            dst.execute(
                "INSERT INTO hub_own_steps (device, from_seq, seq, after_pos)"
                " SELECT ?, ?, ?, coalesce(max(pos), 0) FROM events ON CONFLICT (device, seq) DO NOTHING",
                (device, after, head),
            )
    if outermost:  # committed: an enclosing transaction could still roll it back
        _PROJECTED[key] = head
    return done


def own_events(src: Store, device: str, after: int, upto: int) -> list[eventlog.Event]:
    """The hub's own events after seq `after` up to `upto` that the database projects, in log order.

    Those whose projectors are all `common_dialect` and not deferred: the
    others project the hub's registry (copied by `mirror_registry`) or the
    ledger, which is in the database already.
    """
    found = []
    for (line,) in src.execute(
        "SELECT line FROM events WHERE device = ? AND seq > ? AND seq <= ? ORDER BY seq",
        (device, after, upto),
    ).fetchall():
        e = eventlog.Event.from_line(line)
        fns = eventlog.projectors_for(e.type)
        if e.type in engine.DEFERRED_PROJECTIONS or not all(is_portable(fn) for fn in fns):
            continue
        found.append(e)
    return found


REGISTRY_COLUMNS = (
    "device",
    "site",
    "name",
    "kind",
    "sign_public",
    "key_id",
    "age_recipient",
    "status",
    "flag_reason",
    "replaces",
    "registered_event",
    "updated_event",
)


_MIRRORED: dict[tuple[str, str], str] = {}
"""(hub file, database) -> digest of the registry this process last copied there and saw commit."""


def mirror_registry(src: Store, dst: PgStore) -> int:
    """Copy the hub's device registry (its file's `sync_devices`) to PostgreSQL; the rows copied.

    Registered, flagged or retired in the hub's file (its own events) is what
    the database then holds, before a bundle is checked against it there.
    Rows are written in device order, so two importers copying at once wait
    for each other's rows and never for each other's locks in a circle.

    A `hub serve` worker calls this for every request: when the registry is
    the one this process last copied to this database (a digest of its rows,
    read from the local file), nothing is sent to the server. Only the hub's
    own events change the registry, and every process copies the file's
    current rows, so a copy another worker made is never older than the file.
    """
    cols = ", ".join(REGISTRY_COLUMNS)
    rows = src.execute(f"SELECT {cols} FROM sync_devices ORDER BY device").fetchall()
    if not rows:
        return 0
    key = (str(src.path), dst.name)
    digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    if _MIRRORED.get(key) == digest:
        return 0
    outermost = not dst.in_transaction
    with dst.transaction():
        dst.executemany(
            f"INSERT INTO sync_devices ({cols}) VALUES ({', '.join('?' * len(REGISTRY_COLUMNS))})"
            " ON CONFLICT (device) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in REGISTRY_COLUMNS[1:])
            + " WHERE ("
            + ", ".join(f"sync_devices.{c}" for c in REGISTRY_COLUMNS[1:])
            + ") IS DISTINCT FROM ("
            + ", ".join(f"excluded.{c}" for c in REGISTRY_COLUMNS[1:])
            + ")",
            rows,
        )
    if outermost:  # committed: an enclosing transaction could still roll the copy back
        _MIRRORED[key] = digest
    return len(rows)


LOG_TRIGGERS = {
    "events": ("events_no_update", "events_no_truncate"),
    "tlog_leaves": ("tlog_leaves_no_update", "tlog_leaves_no_truncate"),
    "tlog_nodes": ("tlog_nodes_no_update", "tlog_nodes_no_truncate"),
    "tlog_checkpoints": ("tlog_checkpoints_no_update", "tlog_checkpoints_no_truncate"),
    "photo_archive": ("photo_archive_no_update", "photo_archive_no_truncate"),
    "cc_evidence": ("cc_evidence_no_update", "cc_evidence_no_truncate"),
}
"""The append-only tables of hub_pg.sql and their triggers (row: UPDATE/DELETE; statement: TRUNCATE)."""


def photo_bundles(session: Session) -> list[str]:
    """The kept bundles (``applied/NAME``) a PostgreSQL hub's photo archive points to; none on SQLCipher alone.

    `db backup` at the hub refuses to leave one out (`wardcrf.backup`): the photos' bytes are there only.
    """
    if not configured(session.site.data_dir):
        return []
    store = open_ledger(session)
    try:
        return [str(r[0]) for r in store.execute("SELECT DISTINCT bundle FROM photo_archive ORDER BY bundle")]
    finally:
        store.close()


def audit_checks(session: Session) -> list[audit.CheckResult]:
    """`audit verify` at a PostgreSQL hub: every chain re-hashed from the database's rows, its triggers, its log.

    Nothing for a hub on SQLCipher alone (its file's checks cover it). The
    same chain check as the file's (`eventlog.verify_chains`): each stored
    line hashed again, linked to its predecessor, agreeing with its columns,
    in log order, ending at its chain head; so a row a superuser changed with
    the triggers disabled is found. A trigger missing or disabled is a
    problem too (it is not put back from here: the import role cannot, and
    the owner should see how it happened first).
    """
    if not configured(session.site.data_dir):
        return []
    store = open_ledger(session)
    try:
        n, problems = eventlog.verify_chains(store)
        where = f"PostgreSQL ({store.name})"
        chains = audit.CheckResult(f"event chains in {where}", n, [str(p) for p in problems])
        found = {
            (str(r[0]), str(r[1])): str(r[2])
            for r in store.execute(
                "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE NOT t.tgisinternal AND c.relname IN ('events', 'tlog_leaves', 'tlog_nodes', 'tlog_checkpoints',"
                " 'photo_archive', 'cc_evidence')"
            )
        }
        missing = []
        for table, names in LOG_TRIGGERS.items():
            for name in names:
                state = found.get((table, name))
                if state is None:
                    missing.append(f"{name} on {table} is missing: the table is not append-only")
                elif state == "D":
                    missing.append(f"{name} on {table} is disabled: the table is not append-only")
        triggers = audit.CheckResult(
            f"append-only triggers in {where}", sum(len(v) for v in LOG_TRIGGERS.values()), missing
        )
        size = hublog.StoreNodes(store).size
        tree: list[str] = []
        if size:
            leaves = merkle.Tree()
            for (leaf,) in store.execute("SELECT leaf FROM tlog_leaves ORDER BY idx"):
                leaves.append_hash(bytes.fromhex(leaf))
            if leaves.size != size or merkle.root(leaves) != merkle.root(hublog.StoreNodes(store)):
                tree.append("the transparency log's stored tree is not the tree of its leaves (altered)")
        log = audit.CheckResult(f"transparency log in {where}", size, tree)
        # The wards' photos: every archived original read from its kept bundle (opened with the
        # identity in the hub's file) and re-hashed, every recorded or bound photo held.
        held, altered = pstore.verify_store(store, keys=session.store)
        photos = audit.CheckResult(f"photo evidence in {where}", held, altered)
        # The wards' logger files kept in the database: re-hashed, each import's file present.
        loggers = cc_evidence.check_files(store, f"cold-chain logger files in {where}")
        return [chains, triggers, log, photos, loggers]
    finally:
        store.close()
