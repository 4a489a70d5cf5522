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
inserts a bundle's rows before projecting them), each record's hooks run as
it arrives (the ward queue kept up per record, not derived once at the end),
and `sync.engine.DEFERRED_PROJECTIONS` project nothing. Two things are not
from the log and are treated as such: the registry's copy (`sync_devices`,
from the hub's file) is not compared, and the protocol versions the hub
loaded itself (copied from its file by `hub init --database`, their
`protocol.loaded` events in the file) are taken as they are in the file
before the replay. A `rowid` (insertion order, docs/hub-postgres.md) is
compared as the row's rank in that order: a sequence skips numbers a rolled
back bundle took, the order is what the code reads.
"""

from __future__ import annotations

import bisect
from typing import Any

from wardcrf import eventlog, projections
from wardcrf.errors import VerificationFailed, WardError
from wardcrf.projections import Difference
from wardcrf.site import Session
from wardcrf.sqlstore import NotPortable, portable

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
    diffs = _seed_own_protocols(session, store, where)
    n, failed = _replay(store, where)
    if failed is not None:
        return n, [*diffs, failed]
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


def _seed_own_protocols(session: Session, store: PgStore, where: str) -> list[Difference]:
    """The hub's own protocol versions (`pghub.copy_own_protocols`, their load in the hub's file): put in
    the copy first, as `hub init --database` put them, from the file. One the database holds but the
    file does not is a difference."""
    cols = "protocol_id, version, sha256, source, loaded_event, active"
    own = store.rows(
        f"SELECT {cols} FROM public.protocols p"
        " WHERE NOT EXISTS (SELECT 1 FROM public.events e WHERE e.id = p.loaded_event) ORDER BY rowid"
    )
    diffs: list[Difference] = []
    for row in own:
        kept = session.store.one(
            f"SELECT {cols} FROM protocols WHERE protocol_id = ? AND version = ? AND loaded_event = ?",
            (row["protocol_id"], row["version"], row["loaded_event"]),
        )
        if kept is None or kept[2:4] != (row["sha256"], row["source"]):
            diffs.append(
                Difference(
                    "protocols",
                    f"{row['protocol_id']}/{row['version']}",
                    "loaded by no event in this database's log, and not the hub's own load in its file",
                    where,
                )
            )
            continue
        store.execute(f"INSERT INTO protocols ({cols}) VALUES (?,?,?,?,?,?)", kept)
    return diffs


def _replay(store: PgStore, where: str) -> tuple[int, Difference | None]:
    """Every event of the log, in its order, through the projectors import ran; (events, what failed)."""
    bundles: dict[str, list[tuple[int, int]]] = {}
    for device, first, last in store.execute(
        "SELECT device, first_seq, last_seq FROM public.sync_applied WHERE first_seq IS NOT NULL"
        " ORDER BY device, first_seq"
    ):
        bundles.setdefault(str(device), []).append((int(first), int(last)))
    shown: set[tuple[str, int, int]] = set()

    def show(device: str, seq: int) -> None:
        spans = bundles.get(device, [])
        i = bisect.bisect_right(spans, (seq, float("inf"))) - 1
        first, last = spans[i] if i >= 0 and spans[i][0] <= seq <= spans[i][1] else (seq, seq)
        if (device, first, last) not in shown:
            shown.add((device, first, last))
            store.execute(
                "INSERT INTO pg_temp.events SELECT * FROM public.events WHERE device = ? AND seq BETWEEN ? AND ?",
                (device, first, last),
            )

    n = 0
    cur: Any = store.conn.cursor(name="wardcrf_projection_check")
    cur.itersize = 2000
    try:
        cur.execute("SELECT device, seq, line FROM public.events ORDER BY pos")
        with eventlog.owned_bodies():
            for device, seq, line in cur:
                show(str(device), int(seq))
                event = eventlog.Event.from_line(line)
                n += 1
                if event.type in engine.DEFERRED_PROJECTIONS:
                    continue
                try:
                    for fn in eventlog.projectors_for(event.type):
                        portable(fn)(store, event)
                except (WardError, NotPortable) as exc:
                    return n, Difference(
                        "events", event.id, f"cannot be replayed ({event.type}): {exc}", where
                    )
    finally:
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
