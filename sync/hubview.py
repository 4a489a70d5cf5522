"""A PostgreSQL hub read as one SQLCipher hub's file: the commands that read the whole hub (issue 19).

A SQLCipher hub holds everything in one file: its own events and the wards',
one log in the order it received them, and the projections both feed. A
PostgreSQL hub splits it: its file keeps its own events, its keys and its
registry; the database keeps the wards' events, the ledger, the log and the
projections of both (the hub's own events are projected there too,
`pghub.mirror_own_events`). `export sqlite` reads that whole: it reads it here,
through `view`, as the file a SQLCipher hub fed the same bundles would hold (the
reports, the cold chain's, `sdv` and `hub randomization export` read in place
instead, through `direct`, below):

- every table of the hub's file, with its schema (so the code reading it is
  the code a SQLCipher hub runs, unchanged);
- `events`: the two logs merged in the order the hub received them
  (`Dataset.merged_rows`: its own events at their time, each ward event at
  its bundle's `applied_at`, the hub's first on a tie), numbered in that order,
  the hub's own up to those the snapshot holds the projections of;
- `chain_heads`: the file's rows (the hub's own chain) and the database's (the wards');
- `site`, `sync_devices` (the registry, which the database holds a copy of),
  `device_keys` (the hub's own keys; the database holds their public half) and
  `schema_migrations`: the file's;
- every other table the database holds (the projections, the ledger, the
  transparency log): the database's rows, in their insertion order where the
  code orders by it (the `rowid` twins), else in their key's order.

The view is made in memory (never on disk: it holds the trial's data), from
one READ ONLY, REPEATABLE READ transaction of the database (`hub.wards_data`)
after the hub's own events were projected there, and is read-only itself
(`PRAGMA query_only`): a command writes to the hub's file (its session), never
to the view. It costs one read of the database and memory for its rows: a
whole-hub report reads every row anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from wardcrf.errors import Refused
from wardcrf.site import Session
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

from .pgstore import PgStore

FILE_TABLES = frozenset({"site", "sync_devices", "device_keys", "schema_migrations"})
"""Tables the database holds a copy of, or its own version of: the hub's file's rows are the hub's."""
UNION_TABLES = frozenset({"chain_heads"})
"""The hub's own rows in its file, the wards' in the database: both."""
ROWID_TWINS = frozenset(
    {"records", "protocols", "protocol_applications", "administration_kits", "rand_lists"}
)
"""The tables whose PostgreSQL twin keeps SQLite's `rowid` (docs/hub-postgres.md): copied in its order."""


def _columns(store: Store, table: str) -> list[str]:
    return [str(r[1]) for r in store.execute(f'PRAGMA table_info("{table}")')]


def _pg_columns(wards: SqlStore, table: str) -> set[str]:
    return {
        str(r[0])
        for r in wards.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " AND table_schema = current_schema()",
            (table,),
        )
    }


def _pg_key(wards: SqlStore, table: str) -> list[str]:
    """The primary key's columns of `table` in the database, in key order (empty when it has none)."""
    return [
        str(r[0])
        for r in wards.execute(
            "SELECT a.attname FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = to_regclass(?) AND i.indisprimary"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (table,),
        )
    ]


def require_columns(own: Store, wards: SqlStore) -> None:
    """Refuse, in one line, a database lacking a column the hub's file has in a table both hold: its schema
    is older than this wardcrf (not migrated). One query of the catalogue; nothing read of the trial."""
    held: dict[str, set[str]] = {}
    for table, column in wards.execute(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind = 'r'"
        " AND a.attnum > 0 AND NOT a.attisdropped"
    ):
        held.setdefault(str(table), set()).add(str(column))
    for (name,) in own.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ):
        if name in FILE_TABLES or name not in held:
            continue
        missing = [c for c in _columns(own, str(name)) if c not in held[str(name)]]
        if missing:
            raise Refused(
                f"the {getattr(wards, 'name', 'database')} lacks column {missing[0]} of table {name}:"
                " its schema is older than this wardcrf (migrate it as its owner); nothing read"
            )


def build(own: Store, wards: SqlStore) -> Store:
    """The in-memory, read-only copy: `own` (the hub's file) and `wards` (its database) as one file."""
    from wardcrf.exports.dataset import Dataset

    view = Store.memory()
    try:
        tables = [
            (str(name), str(sql))
            for name, sql in own.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        extras = [
            str(sql)
            for (sql,) in own.execute(
                "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
            )
        ]
        ds = Dataset(own, wards=wards)
        with view.transaction():
            for name, sql in tables:
                view.execute(sql)
                cols = _columns(own, name)
                col_list = ",".join(f'"{c}"' for c in cols)
                verb = "INSERT OR IGNORE" if name in UNION_TABLES else "INSERT"  # the file's row first
                insert = f'{verb} INTO "{name}" ({col_list}) VALUES ({",".join("?" * len(cols))})'
                if name == "events":
                    _copy_rows(view, insert, _merged_events(ds, cols))
                    continue
                from_file = name in FILE_TABLES or name in UNION_TABLES or not wards.has_table(name)
                if from_file:
                    _copy_rows(view, insert, own.stream(f'SELECT {col_list} FROM "{name}"'))
                if name in FILE_TABLES or not wards.has_table(name):
                    continue
                missing = [c for c in cols if c not in _pg_columns(wards, name)]
                if missing:
                    raise Refused(
                        f"the {getattr(wards, 'name', 'database')} lacks column {missing[0]} of table {name}:"
                        " its schema is older than this wardcrf (migrate it as its owner); nothing read"
                    )
                order = ["rowid"] if name in ROWID_TWINS else _pg_key(wards, name)
                by = " ORDER BY " + ", ".join(f'"{c}"' for c in order) if order else ""
                _copy_rows(view, insert, wards.stream(f'SELECT {col_list} FROM "{name}"{by}'))
            for sql in extras:
                view.execute(sql)
        view.execute("PRAGMA query_only = ON")
        # The file it stands for: what is kept beside the hub's file (its kept bundles, `sync/applied/`,
        # holding the photos' originals) is found beside it, as at a SQLCipher hub.
        view.path = own.path
    except BaseException:
        view.close()
        raise
    return view


def _copy_rows(view: Store, insert: str, rows: Iterator[Any]) -> None:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(tuple(row))
        if len(batch) >= 5000:
            view.conn.executemany(insert, batch)
            batch = []
    if batch:
        view.conn.executemany(insert, batch)


def _merged_events(ds: Any, cols: list[str]) -> Iterator[tuple[Any, ...]]:
    """The two logs' rows merged as received (`Dataset.merged_rows`), `pos` renumbered in that order.

    The hub's own events up to the one the snapshot's projections hold (`hub_own_projected`): one the hub
    appended after they were projected (another process, meanwhile) is left for the next read, with its
    projection, never shown without it.
    """
    from . import registry

    device = str(registry.own_site(ds.store)[1])
    marker = ds.wards.scalar("SELECT seq FROM hub_own_projected WHERE device = ?", (device,))
    where, params = (
        ("NOT (device = ? AND seq > ?)", (device, int(marker))) if marker is not None else ("", ())
    )
    at = cols.index("pos")
    for n, row in enumerate(ds.merged_rows(cols, where, params), start=1):
        out = list(row)
        out[at] = n
        yield tuple(out)


def pending_own_events(session: Session, wards: SqlStore) -> list[Any]:
    """The hub's own events its file holds and `wards` (its database) does not project yet, in log order.

    Those after the marker the database holds (`hub_own_projected`) whose projections go there
    (`pghub.own_events`): none when every hub command since the last import only read. Read, never written.
    """
    from . import pghub, registry

    device = str(registry.own_site(session.store)[1])
    head = int(session.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,)) or 0)
    marker = wards.scalar("SELECT seq FROM hub_own_projected WHERE device = ?", (device,))
    if marker is not None and int(marker) >= head:
        return []
    return pghub.own_events(session.store, device, int(marker or 0), head)


def _may_project(wards: PgStore) -> bool:
    """Can this connection project the hub's own events (a primary, a role that may write the projections)?"""
    row = wards.one(
        "SELECT pg_is_in_recovery(), has_table_privilege(current_user, 'hub_own_projected', 'INSERT')"
    )
    return row is not None and not row[0] and bool(row[1])


@contextlib.contextmanager
def direct(session: Session) -> Iterator[SqlStore]:
    """Where a command about one item (a record, a kit, a lot) reads that item's rows: the hub's file at a
    SQLCipher hub, else its PostgreSQL database itself, queried for those rows only (never copied).

    The database is read in one READ ONLY, REPEATABLE READ transaction, on a connection of its own (or one
    `hub serve`'s pool lends), whose `beside` is the hub's file (the keys that open the kept bundles). The
    hub's own events its file holds and the database does not project yet (a protocol loaded, a query
    raised since the last import) are projected first (`pghub.mirror_own_events`, as before every read);
    when there are none nothing is written, so the command may run on a read replica or as a role that may
    only SELECT. When there are some and this connection cannot write them (a replica, a read-only role),
    it is refused in one line, nothing read: the database would answer without them.
    """
    from . import pghub

    if not pghub.configured(session.site.data_dir):
        yield session.store
        return
    with pghub.ledger(session) as wards:
        pending = pending_own_events(session, wards)
        if pending:
            if not _may_project(wards):
                raise Refused(
                    f"the {wards.name} does not hold the hub's own last {len(pending)} event(s) yet"
                    f" (the first: {pending[0].type} {pending[0].id}) and this connection may not write them"
                    " (a read replica, or a role that may only read): run the command against the primary"
                    " as the import role (or any hub command there first, e.g. `wardcrf hub status`)"
                )
            pghub.mirror_own_events(session.store, wards)
        with wards.snapshot():
            wards.execute("SET TRANSACTION READ ONLY")
            require_columns(session.store, wards)
            yield wards


@contextlib.contextmanager
def view(session: Session) -> Iterator[Store]:
    """The store a whole-hub read reads: the hub's file at a SQLCipher hub, else the merged view (`build`).

    At a PostgreSQL hub the hub's own events are projected to the database first (`hub.ledger_store`),
    then the database is read in one READ ONLY snapshot (`hub.wards_data`).
    """
    from . import hub, pghub

    if not pghub.configured(session.site.data_dir):
        yield session.store
        return
    with hub.ledger_store(session):
        pass  # the hub's own events made since the last import projected there, as before every read
    with hub.wards_data(session) as wards:
        built = build(session.store, wards)
    try:
        yield built
    finally:
        built.close()
