"""Projections: current-state tables derived from the event log.

The features register their projectors (`wardcrf.features`); every derived
table is listed in `PROJECTION_TABLES`. `rebuild` replays the whole log
(in the order it was written) through the projectors, then re-derives the
derived indexes (`derived_index`) from stored evidence; `check` does the same
into a scratch in-memory database and compares every table row by row, so a
projector bug or a hand-edited projection row is found and named.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from . import eventlog
from .errors import Refused, VerificationFailed
from .store import Store

PROJECTION_TABLES = [
    "users",
    "signatures",
    "amendments",
    "records",
    "protocols",
    "protocol_encodings",
    "protocol_applications",
    "administration_kits",
    "photos",
    "photo_bindings",
    "participants",
    "doses",
    "vitals",
    "adverse_events",
    "cc_units",
    "cc_lots",
    "cc_kits",
    "cc_transfers",
    "cc_custody",
    "cc_logger_files",
    "cc_manual_readings",
    "cc_excursions",
    "cc_dispositions",
    "cc_thaws",
    "cc_preparations",
    "sync_devices",
    "sync_hub",
    "sync_recipients",
    "sync_queries",
    "sync_decisions",
    "sync_refusals",
    "coding_dictionaries",
    "codings",
    "sdv_marks",
    "photo_first_refs",
    "rand_lists",
    "rand_entries",
    "rand_allocations",
    "rand_exhausted",
    "rand_unblindings",
    "rand_flags",
    "rand_unblinding_keys",
    "device_scanner",
]

# Derived indexes: tables re-derivable from stored evidence rather than from
# the log alone (cold chain's readings, parsed from the logger files kept in
# `cc_evidence`). `rebuild` re-derives them after replaying the log; `check`
# derives them into the scratch copy, reading the evidence from the live store.
DerivedIndex = Callable[[Store, Store], int]
DERIVED_INDEXES: list[tuple[tuple[str, ...], DerivedIndex]] = []


def derived_index(*tables: str) -> Callable[[DerivedIndex], DerivedIndex]:
    """Add (`features.Registry.derived_index`) `fn(target, source)`: clear `tables` in target, re-derive them from source's log and evidence."""

    def register(fn: DerivedIndex) -> DerivedIndex:
        DERIVED_INDEXES.append((tables, fn))
        return fn

    return register


REDERIVED_AFTER: dict[str, list[DerivedIndex]] = {}
"""migration name -> the derived indexes a store re-derives once it has applied that migration (a column
added to an index that only a derivation fills: `rederive_after`)."""


def rederive_when_migrated(migration: str, fn: DerivedIndex) -> None:
    """Add (`features.Registry.derived_index(..., migrations=...)`): re-derive `fn` after `migration`."""
    found = REDERIVED_AFTER.setdefault(migration, [])
    if fn not in found:
        found.append(fn)


def rederive_after(store: Store, applied: list[str]) -> int:
    """Re-derive, from the store itself, the indexes a migration just `applied` asks for (a site upgraded
    at sign-in, `Site.unlock_key`); returns how many were. One its data refuses (a protocol that no longer
    loads) keeps its rows as they were, each in its own transaction: the sign-in goes on, and `db rebuild`
    names the refusal."""
    fns: list[DerivedIndex] = []
    for name in applied:
        fns += [fn for fn in REDERIVED_AFTER.get(name, ()) if fn not in fns]
    done = 0
    for fn in fns:
        try:
            with store.transaction():
                fn(store, store)
            done += 1
        except Refused:
            continue
    return done


def derived_tables() -> list[str]:
    return [t for tables, _fn in DERIVED_INDEXES for t in tables]


def existing_tables(store: Store, *, indexes: bool = False) -> list[str]:
    present = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    tables = PROJECTION_TABLES + (derived_tables() if indexes else [])
    return [t for t in tables if t in present]


def _derive_indexes(target: Store, source: Store, failed: dict[str, str] | None = None) -> None:
    """Re-derive every derived index; with `failed`, note refusals per table instead of raising."""
    present = set(existing_tables(target, indexes=True))
    for tables, fn in DERIVED_INDEXES:
        if not set(tables) <= present:
            continue
        if failed is None:
            fn(target, source)
            continue
        try:
            with target.transaction():
                fn(target, source)
        except Refused as exc:
            failed[tables[0]] = str(exc)
            for table in tables[1:]:
                failed[table] = ""  # same cause, named once


_REPLAYING: ContextVar[bool] = ContextVar("replaying", default=False)


def replaying() -> bool:
    """True while `replay` applies a whole log (in this thread).

    A summary that a derived index re-derives in one pass after the replay
    (`derived_index`: the ward queue) skips its per-event upkeep meanwhile:
    recomputing a participant's row after each of their records, a million
    times, only to overwrite it.
    """
    return _REPLAYING.get()


def replay(store: Store, lines: Any, on_progress: Callable[[int], None] | None = None) -> int:
    """Apply events (canonical lines, in log order) to the projections of `store`."""
    n = 0
    token = _REPLAYING.set(True)
    try:
        with eventlog.owned_bodies(), store.batched_inserts():
            for line in lines:
                event = eventlog.Event.from_line(line)
                for fn in eventlog.projectors_for(event.type):
                    fn(store, event)
                n += 1
                if on_progress and n % 10000 == 0:
                    on_progress(n)
    finally:
        _REPLAYING.reset(token)
    return n


def rebuild(store: Store, on_progress: Callable[[int], None] | None = None) -> int:
    """Clear and re-derive every projection table from the log, in one transaction."""
    _require_log_order(store, "nothing was rebuilt")
    with store.large_page_cache(), store.transaction():
        for table in existing_tables(store):
            store.execute(f"DELETE FROM [{table}]")
        lines = (r[0] for r in store.conn.execute("SELECT line FROM events ORDER BY pos"))
        n = replay(store, lines, on_progress)
        _derive_indexes(store, store)
        return n


def _require_log_order(store: Store, outcome: str) -> None:
    """Refuse to replay a log whose order (`pos`) disagrees with its chains: it would replay the wrong story."""
    problem = eventlog.order_problem(store)
    if problem is not None:
        raise VerificationFailed(
            f"the event log cannot be replayed: {problem}; {outcome} (run `wardcrf audit verify`)"
        )


@dataclass(frozen=True)
class Difference:
    table: str
    key: str
    what: str
    where: str = ""
    """Empty for the site's file; else the store the table is in (a PostgreSQL hub's database)."""

    def __str__(self) -> str:
        return f"table {self.table}{' in ' + self.where if self.where else ''}, row {self.key}: {self.what}"


Rows = dict[tuple[Any, ...], dict[str, Any]]
"""A table's rows by their key (`_table_rows`)."""


def _pk(store: Store, table: str) -> list[str]:
    cols = store.rows(f"PRAGMA table_info([{table}])")
    pk = [c["name"] for c in sorted(cols, key=lambda c: c["pk"]) if c["pk"]]
    return pk or [c["name"] for c in cols]


def _table_rows(store: Store, table: str, pk: list[str]) -> Rows:
    order = ", ".join(f"[{c}]" for c in pk)
    return {tuple(r[c] for c in pk): r for r in store.rows(f"SELECT * FROM [{table}] ORDER BY {order}")}


def scratch_copy(store: Store) -> Store:
    """An in-memory database with the same schema, site row and events, projections empty."""
    scratch = Store.memory()
    scratch.migrate()
    with scratch.transaction():
        for row in store.rows("SELECT * FROM site"):
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            scratch.execute(f"INSERT INTO site ({cols}) VALUES ({marks})", tuple(row.values()))
    return scratch


def check(store: Store, on_progress: Callable[[int], None] | None = None) -> tuple[int, list[Difference]]:
    """Replay into a scratch copy; return (events replayed, differences, first per table)."""
    _require_log_order(store, "nothing was compared")
    scratch = scratch_copy(store)
    try:
        with scratch.transaction():
            cur = store.conn.execute("SELECT line FROM events ORDER BY pos")
            n = replay(scratch, (r[0] for r in cur), on_progress)
            failed: dict[str, str] = {}
            _derive_indexes(scratch, store, failed)
        diffs = [
            Difference(table, "-", f"cannot be re-derived: {why}") for table, why in failed.items() if why
        ]
        for table in existing_tables(store, indexes=True):
            if table in failed:
                continue
            pk = _pk(store, table)
            found = first_difference(table, _table_rows(store, table, pk), _table_rows(scratch, table, pk))
            if found is not None:
                diffs.append(found)
        return n, diffs
    finally:
        scratch.close()


def first_difference(table: str, live: Rows, fresh: Rows) -> Difference | None:
    """The first row (by key) where a table as stored (`live`) and as the log gives it (`fresh`) differ.

    Both engines' checks compare so (`db rebuild --check`; at a PostgreSQL hub, `sync.pgcheck`).
    """
    for key in sorted(set(live) | set(fresh), key=repr):
        name = "/".join(str(k) for k in key)
        if key not in fresh:
            return Difference(table, name, "present in the database but not derivable from the log")
        if key not in live:
            return Difference(table, name, "derivable from the log but missing in the database")
        if live[key] != fresh[key]:
            col = next(c for c in fresh[key] if live[key].get(c) != fresh[key][c])
            return Difference(
                table, name, f"column {col} is {live[key].get(col)!r}, the log gives {fresh[key][col]!r}"
            )
    return None
