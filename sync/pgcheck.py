"""`db rebuild --check` at a PostgreSQL hub: the wards' projections re-derived from the database's log.

The same check as the SQLCipher file's (`wardcrf.projections.check`): replay
the log, in its order, into empty copies of the projection tables, and
compare them with the stored ones row by row, naming the first row that
differs in each table. Here the copies are temporary tables of the checking
connection (``CREATE TEMP TABLE ... (LIKE public.t INCLUDING ALL)``): the
session's temporary schema comes first in PostgreSQL's search path, so the
same `common_dialect` projectors that import ran write into the copies,
while the stored tables stay readable as ``public.t``. The whole check is one
REPEATABLE READ transaction (the log and the tables as of one moment, while
importers go on), rolled back at the end: nothing is written, whatever it finds.

What the replay reproduces is how import built the rows: each bundle's
events are visible to the projectors together (`eventlog.ingest_many`
inserts a bundle's rows before projecting them) and are projected in one
batch, as import projects them: the record hooks that take a batch are given
the bundle's records together and the ward queue's row of each participant
the bundle moves is computed once, at the bundle's end (kept up per bundle,
not derived once at the end), and `sync.engine.DEFERRED_PROJECTIONS` project
nothing. Two things are not
from the log and are treated as such: the registry's copy (`sync_devices`,
from the hub's file) is not compared, and the hub's own events (in its file,
projected into the database by `pghub.mirror_own_events` up to the marker
`hub_own_projected`) are replayed from the file where each run projected
them: after the log position it recorded (`hub_own_steps`); those projected
before runs were recorded (migration 0012), after the ward bundles applied
before their time, as the exports merge the two logs. A `rowid` (insertion
order, docs/hub-postgres.md) is compared as the row's rank in that order: a
sequence skips numbers a rolled back bundle took, the order is what the code
reads.
"""

from __future__ import annotations

import bisect
import contextlib
from typing import Any

from wardcrf import eventlog, projections
from wardcrf.errors import Refused, StoreError, UsageError, VerificationFailed, WardError
from wardcrf.projections import Difference
from wardcrf.site import Session
from wardcrf.sqlstore import NotPortable, is_portable, portable

from . import engine, pghub
from .pgstore import PgStore

NOT_FROM_THE_LOG = frozenset({"sync_devices"})
"""Projection tables a PostgreSQL hub copies from its file (`pghub.mirror_registry`), never derives."""


class _Discard(Exception):
    """Leaves the check's transaction (rolled back) with its result."""

    def __init__(self, n: int, diffs: list[Difference]) -> None:
        super().__init__()
        self.n = n
        self.diffs = diffs


def check_projections(session: Session) -> tuple[int, list[Difference]]:
    """(events replayed, first difference per table) of a PostgreSQL hub's database; (0, []) elsewhere."""
    session.require("audit.verify", what="check projections")
    if not pghub.configured(session.site.data_dir):
        return 0, []
    store = pghub.open_ledger(session)
    try:
        problem = eventlog.order_problem(store)
        if problem is not None:
            raise VerificationFailed(
                f"the event log in the {store.name} cannot be replayed: {problem}; nothing was compared"
                " (run `wardcrf audit verify`)"
            )
        try:
            # One snapshot: rows an importer commits meanwhile are neither replayed nor compared.
            with store.snapshot():
                n, diffs = _check(session, store)
                raise _Discard(n, diffs)  # roll back: the copies go with the transaction
        except _Discard as done:
            return done.n, done.diffs
    finally:
        store.close()


def tables(store: PgStore) -> list[str]:
    """The projection tables this database holds and its log derives."""
    names = [*projections.PROJECTION_TABLES, *projections.derived_tables()]
    return [
        t
        for t in dict.fromkeys(names)
        if t not in NOT_FROM_THE_LOG and store.scalar("SELECT to_regclass(?) IS NOT NULL", (f"public.{t}",))
    ]


def _check(session: Session, store: PgStore) -> tuple[int, list[Difference]]:
    where = f"PostgreSQL ({store.name})"
    names = tables(store)
    for t in names:
        store.execute(f"CREATE TEMP TABLE {t} (LIKE public.{t} INCLUDING ALL)")
    # The log as the projectors saw it at import: a bundle's events appear together, before it projects.
    store.execute(
        "CREATE TEMP TABLE events (LIKE public.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
    )
    diffs = _unloaded_protocols(session, store, where)
    n, failed = _replay(store, where, _own_steps(session, store))
    if failed is not None:
        return n, [*diffs, failed]
    # Derived indexes (the cold chain's readings, from the logger files), as SQLite's check derives
    # them after its replay: into the copies, from the replayed log and evidence (first in the path).
    for derived, derive in projections.DERIVED_INDEXES:
        if not is_portable(derive):
            continue  # kept up by the hooks the replay ran (the ward queue), not derived at a hub
        try:
            derive(store, store)  # type: ignore[arg-type]
        except WardError as exc:
            diffs += [Difference(t, "-", f"cannot be re-derived: {exc}", where) for t in derived]
    for t in names:
        if any(d.table == t for d in diffs):
            continue  # the first difference per table, as on SQLite
        pk = _key(store, t)
        found = projections.first_difference(
            t, _rows(store, f"public.{t}", pk), _rows(store, f"pg_temp.{t}", pk)
        )
        if found is not None:
            diffs.append(Difference(found.table, found.key, found.what, where))
    return n, diffs


def _unloaded_protocols(session: Session, store: PgStore, where: str) -> list[Difference]:
    """A protocol version the database holds that no event loaded, in its log or the hub's file: named
    as such (the replay would call it only "not derivable")."""
    own = {str(r[0]) for r in session.store.execute("SELECT id FROM events WHERE type = 'protocol.loaded'")}
    return [
        Difference(
            "protocols",
            f"{row['protocol_id']}/{row['version']}",
            "loaded by no event in this database's log, nor by the hub's own in its file",
            where,
        )
        for row in store.rows(
            "SELECT protocol_id, version, loaded_event FROM public.protocols p"
            " WHERE NOT EXISTS (SELECT 1 FROM public.events e WHERE e.id = p.loaded_event) ORDER BY rowid"
        )
        if row["loaded_event"] not in own
    ][:1]


OwnStep = tuple[int, bool, list[eventlog.Event]]
"""(the last log position committed when `pghub.mirror_own_events` projected them, first run, the events)."""


def _own_steps(session: Session, store: PgStore) -> list[OwnStep]:
    """The hub's own events the database holds the projections of (up to `hub_own_projected`), grouped
    as `pghub.mirror_own_events` projected them, at the log position each run recorded (`hub_own_steps`).

    Events projected before the runs were recorded (migration 0012) are
    placed by their time (`_unrecorded_steps`).
    """
    from . import registry

    device = str(registry.own_site(session.store)[1])
    marker = store.scalar("SELECT seq FROM public.hub_own_projected WHERE device = ?", (device,))
    if marker is None:
        return []
    runs = [
        (int(r[0]), int(r[1]), int(r[2]))
        for r in store.execute(
            "SELECT from_seq, seq, after_pos FROM public.hub_own_steps WHERE device = ? AND seq <= ?"
            " ORDER BY seq",
            (device, marker),
        )
    ]
    first = runs[0][0] if runs else int(marker)
    steps = _unrecorded_steps(store, pghub.own_events(session.store, device, 0, first)) if first else []
    return steps + [
        (after_pos, frm == 0, pghub.own_events(session.store, device, frm, upto))
        for frm, upto, after_pos in runs
    ]


def _unrecorded_steps(store: PgStore, events: list[eventlog.Event]) -> list[OwnStep]:
    """The hub's own events projected before migration 0012 recorded where (`hub_own_steps`), placed as
    the exports merge the two logs (`exports.dataset.Dataset.events`): each after the ward bundles
    applied before its time (`sync_applied.applied_at`), the hub's first on a tie. The import that
    followed an own event projected it first (`hub.ledger_store`), so that is where it met the log; a
    database upgraded to 0012 with versions loaded at the hub between ward bundles checks clean.

    Only the first step is replayed as a first run (a version the copies hold already not loaded
    again): `mirror_own_events`' first run at a database made before 0010.
    """
    applied = [
        (str(at), int(pos))
        for at, pos in store.execute(
            "SELECT a.applied_at, e.pos FROM public.sync_applied a JOIN public.events e"
            " ON e.device = a.device AND e.seq = a.last_seq WHERE a.first_seq IS NOT NULL ORDER BY a.applied_at"
        )
    ]
    times = [at for at, _pos in applied]
    reached = [0]  # reached[i]: the last log position of the first i bundles applied
    for _at, pos in applied:
        reached.append(max(reached[-1], pos))
    steps: list[OwnStep] = []
    for e in events:
        after_pos = reached[bisect.bisect_left(times, e.ts)]
        if steps and steps[-1][0] == after_pos:
            steps[-1][2].append(e)
        else:
            steps.append((after_pos, not steps, [e]))
    return steps


def _project_own(store: PgStore, step: OwnStep, where: str) -> Difference | None:
    """One run of `pghub.mirror_own_events`, into the copies (a first run skips a version held already)."""
    _pos, first, events = step
    held = {(str(r[0]), str(r[1])) for r in store.execute("SELECT protocol_id, version FROM protocols")}
    for e in events:
        if (
            first
            and e.type == "protocol.loaded"
            and (e.body.get("protocol_id"), e.body.get("version")) in held
        ):
            continue
        try:
            for fn in eventlog.projectors_for(e.type):
                portable(fn)(store, e)
        except (WardError, NotPortable) as exc:
            return Difference(
                "events", e.id, f"the hub's own event cannot be replayed ({e.type}): {exc}", where
            )
    return None


COMMIT_ORDER = (
    "SELECT e.device, e.seq, e.line, e.pos FROM public.events e"
    " LEFT JOIN public.sync_applied a ON a.device = e.device AND e.seq BETWEEN a.first_seq AND a.last_seq"
    " LEFT JOIN (SELECT device, bundle_seq, max(idx) AS leaf FROM public.tlog_leaves GROUP BY 1, 2) t"
    " ON t.device = a.device AND t.bundle_seq = a.bundle_seq"
    # The smallest leaf at or after each row, as a running minimum from the end of the log (a frame that
    # starts at UNBOUNDED PRECEDING: one pass). A frame from CURRENT ROW to UNBOUNDED FOLLOWING, as written
    # first, is recomputed row by row (min has no inverse): quadratic, minutes at 27,000 events
    # (bench/bench_pg_replay.py).
    " ORDER BY coalesce(t.leaf, min(t.leaf) OVER (ORDER BY e.pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))"
    " NULLS LAST, e.pos"
)
"""The log in the order its bundles were committed, each bundle's events in their order (`pos`).

Two importers at once take their events' positions as they insert them, and
project and commit in another order: lap1's bundle may hold the lower
positions and commit after lap2's, its rows projected after lap2's (a
`rowid` is insertion order; the protocol version it loads is the active one).
Commit order is the transparency log's: an importing transaction appends its
bundle's leaf under the lock `tlog`, held until it commits, so the leaf's
index orders the bundles. An event no bundle's leaf names (none wardcrf
makes) goes before the next one committed after it in the log; with no
leaves at all, the log order."""


class _Bundle:
    """The batch one bundle's events are projected in (`SqlStore.batched_inserts`), as import projects
    them (`eventlog.ingest_many`): the record hooks that take a batch are given its records together, and
    put-off work (the ward queue's row of each participant the bundle moves) is done once, at its end."""

    def __init__(self, store: PgStore) -> None:
        self.store = store
        self.span: tuple[str, int, int] | None = None
        self.last = ""  # the last event projected in it: a failure at its end is named by it
        self.kind = ""
        self._open: contextlib.ExitStack | None = None

    def enter(self, span: tuple[str, int, int]) -> None:
        """Begin the batch of `span`'s events (after ending the one before)."""
        if span == self.span and self._open is not None:
            return
        self.end()
        self._open = contextlib.ExitStack()
        self._open.enter_context(self.store.batched_inserts())
        self.span = span

    def end(self) -> None:
        """End the batch: the work it put off is done now (and may raise what a projector raises)."""
        opened, self._open, self.span = self._open, None, None
        if opened is not None:
            opened.close()

    def abort(self, exc: BaseException) -> None:
        """End the batch on a failure: its put-off work dropped, as a failing import's is."""
        opened, self._open, self.span = self._open, None, None
        if opened is not None:
            with contextlib.suppress(Exception):
                opened.__exit__(type(exc), exc, exc.__traceback__)


def _replay(store: PgStore, where: str, own: list[OwnStep]) -> tuple[int, Difference | None]:
    """Every event of the log, in its order, through the projectors import ran, each bundle's in one batch
    (`_Bundle`), and the hub's own events (`own`) where they were projected among them; (the log's
    events, what failed)."""
    bundles: dict[str, list[tuple[int, int]]] = {}
    for device, first, last in store.execute(
        "SELECT device, first_seq, last_seq FROM public.sync_applied WHERE first_seq IS NOT NULL"
        " ORDER BY device, first_seq"
    ):
        bundles.setdefault(str(device), []).append((int(first), int(last)))
    shown: set[tuple[str, int, int]] = set()

    def show(device: str, seq: int) -> tuple[str, int, int]:
        spans = bundles.get(device, [])
        i = bisect.bisect_right(spans, (seq, float("inf"))) - 1
        first, last = spans[i] if i >= 0 and spans[i][0] <= seq <= spans[i][1] else (seq, seq)
        if (device, first, last) not in shown:
            shown.add((device, first, last))
            store.execute(
                "INSERT INTO pg_temp.events SELECT * FROM public.events WHERE device = ? AND seq BETWEEN ? AND ?",
                (device, first, last),
            )
        return device, first, last

    batch = _Bundle(store)

    def ended() -> Difference | None:
        try:
            batch.end()
        except (WardError, NotPortable) as exc:
            return Difference("events", batch.last, f"cannot be replayed ({batch.kind}): {exc}", where)
        return None

    pending = list(reversed(own))
    n = 0
    cur: Any = store.conn.cursor(name="wardcrf_projection_check")
    cur.itersize = 2000
    try:
        cur.execute(COMMIT_ORDER)
        with eventlog.owned_bodies():
            for device, seq, line, pos in cur:
                # A run goes before the first event committed after it (past its position).
                while pending and pending[-1][0] < pos:
                    failed = ended() or _project_own(store, pending.pop(), where)
                    if failed is not None:
                        return n, failed
                span = show(str(device), int(seq))
                event = eventlog.Event.from_line(line)
                n += 1
                if event.type in engine.DEFERRED_PROJECTIONS:
                    continue
                if span != batch.span:
                    failed = ended()
                    if failed is not None:
                        return n, failed
                    batch.enter(span)
                batch.last, batch.kind = event.id, event.type
                try:
                    for fn in eventlog.projectors_for(event.type):
                        portable(fn)(store, event)
                except (WardError, NotPortable) as exc:
                    batch.abort(exc)
                    return n, Difference(
                        "events", event.id, f"cannot be replayed ({event.type}): {exc}", where
                    )
            failed = ended()
            if failed is not None:
                return n, failed
            while pending:
                failed = _project_own(store, pending.pop(), where)
                if failed is not None:
                    return n, failed
    finally:
        batch.abort(StoreError("the replay stopped"))
        cur.close()
    return n, None


def _key(store: PgStore, table: str) -> list[str]:
    """The table's primary key columns, else all its columns (as `projections._pk` on SQLite)."""
    pk = [
        str(r[0])
        for r in store.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisprimary"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (f"public.{table}",),
        )
    ]
    if pk:
        return pk
    return [
        str(r[0])
        for r in store.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0"
            " AND NOT attisdropped AND attname != 'rowid' ORDER BY attnum",
            (f"public.{table}",),
        )
    ]


def _rows(store: PgStore, table: str, pk: list[str]) -> projections.Rows:
    """The table's rows by key; a `rowid` (an identity: insertion order) as the row's rank in that order."""
    rows = store.rows(f"SELECT * FROM {table}")
    if rows and "rowid" in rows[0]:
        for rank, r in enumerate(sorted(rows, key=lambda r: r["rowid"]), 1):
            r["rowid"] = rank
    return {tuple(r[c] for c in pk): r for r in rows}


# -- `db rebuild` itself ---------------------------------------------------------------------------

REBUILD_LOCK = "wardcrf.db-rebuild"


def rebuild_projections(session: Session) -> int:
    """`db rebuild` at a PostgreSQL hub: every projection the database's log derives rewritten from it; the
    events replayed (0 at a hub without a database).

    The same replay as the check (`_replay`: the log in its order, each bundle's
    events visible together, the hub's own events where they were projected),
    into the temporary copies; then, in the same transaction, each stored
    table's rows replaced by its copy's (a `rowid` twin keeps the replay's
    order, and its sequence continues after it). All of it commits or none.

    A maintenance job, not an import:

    - it runs as the database's owner: the import role may not delete
      projection rows (`wardcrf_import`), so connected as it (or a role that may
      only read) the rebuild is refused before anything is read — one line, exit 2;
    - importers must be stopped: it takes the log and every table it rewrites
      in EXCLUSIVE mode without waiting (`NOWAIT`), so while a bundle is being
      applied (an importer's transaction holds the log) it is refused, one line,
      exit 1, nothing changed; a `hub import` or `hub serve` push started while
      it runs waits for it and then applies on the rebuilt rows; readers (an
      export, a report) go on reading the rows as they were until it commits;
    - the log is never written: `events`, the ledger and the transparency log
      are only read (and their triggers stay enabled).
    """
    session.require("db.rebuild", what="rebuild projections")
    if not pghub.configured(session.site.data_dir):
        return 0
    store = pghub.open_ledger(session)
    try:
        pghub.mirror_registry(session.store, store)
        pghub.mirror_own_events(session.store, store)  # the hub's own events up to now are the log's too
        problem = eventlog.order_problem(store)
        if problem is not None:
            raise VerificationFailed(
                f"the event log in the {store.name} cannot be replayed: {problem}; nothing was rebuilt"
                " (run `wardcrf audit verify`)"
            )
        names = [t for t in tables(store) if not _insert_only(store, t)]
        denied = [
            t for t in names if not store.scalar("SELECT has_table_privilege(?, 'DELETE')", (f"public.{t}",))
        ]
        if denied:
            raise UsageError(
                f"db rebuild at a PostgreSQL hub rewrites the projection rows, which this role may not"
                f" delete (table {denied[0]}): connect as the database's owner (WARDCRF_HUB_DATABASE or"
                " HUB_DIR/hub-database), not the import role; nothing was changed"
            )
        with store.transaction():
            store.lock(REBUILD_LOCK)
            store.lock(pghub.OWN_EVENTS_LOCK)  # no run of `mirror_own_events` meanwhile
            try:
                store.execute(
                    "LOCK TABLE public.events, "
                    + ", ".join(f"public.{t}" for t in names)
                    + " IN EXCLUSIVE MODE NOWAIT"
                )
            except StoreError as exc:
                if "could not obtain lock" not in str(exc) and "lock_not_available" not in str(exc):
                    raise
                raise Refused(
                    "db rebuild: an importer is applying a bundle now (hub import or hub serve): stop the"
                    " importing processes and run this again; nothing was changed"
                ) from None
            where = f"PostgreSQL ({store.name})"
            for t in names:
                store.execute(f"CREATE TEMP TABLE {t} (LIKE public.{t} INCLUDING ALL) ON COMMIT DROP")
            store.execute(
                "CREATE TEMP TABLE events (LIKE public.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
                " INCLUDING INDEXES) ON COMMIT DROP"
            )
            n, failed = _replay(store, where, _own_steps(session, store))
            if failed is not None:
                raise VerificationFailed(f"db rebuild: {failed}; nothing was changed")
            for t in names:
                _replace(store, t)
        return n
    finally:
        store.close()


def _insert_only(store: PgStore, table: str) -> bool:
    """Does a trigger refuse every DELETE of `table` (evidence kept as received, `photo_archive`, `cc_evidence`)?"""
    return bool(
        store.scalar(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(?) AND NOT tgisinternal"
            " AND tgenabled <> 'D' AND (tgtype::int & 8) <> 0",  # a trigger on DELETE
            (f"public.{table}",),
        )
    )


def _replace(store: PgStore, table: str) -> None:
    """`public.table`'s rows replaced by the replay's (`pg_temp.table`), a `rowid` twin's sequence after them."""
    cols = [
        str(r[0])
        for r in store.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            (f"public.{table}",),
        )
    ]
    listed = ", ".join(f'"{c}"' for c in cols)
    store.execute(f"DELETE FROM public.{table}")
    store.execute(
        f"INSERT INTO public.{table} ({listed}) OVERRIDING SYSTEM VALUE SELECT {listed} FROM pg_temp.{table}"
    )
    if "rowid" in cols:
        store.execute(
            "SELECT setval(pg_get_serial_sequence(?, 'rowid'),"
            f" coalesce((SELECT max(rowid) FROM public.{table}), 0) + 1, false)",
            (f"public.{table}",),
        )
