"""The interface a store offers the code that runs on either hub engine.

The embedded SQLCipher `wardcrf.store.Store` is the default engine (every
ward, and a coordinator's one-laptop hub). A hub that outgrows one machine
keeps its ledger on PostgreSQL (`wardcrf.sync.pgstore.PgStore`). Code written
against `SqlStore` — the hub's transparency log (`sync/hublog.py`) and its
ledger — runs unchanged on both, so the two engines cannot drift apart in
what they accept or sign.

The SQL such code sends is the common subset of SQLite and PostgreSQL:
``?`` placeholders (the PostgreSQL store translates them), no ``rowid`` (but
on the few tables whose PostgreSQL twin has a ``rowid`` column for it), no
``INSERT OR REPLACE`` (``ON CONFLICT`` instead: `upsert`), an alias on every
subquery in FROM. Projectors and hooks written so are declared
`common_dialect`; a PostgreSQL hub runs those and no others (`portable`). `lock` is the one place the engines differ in kind: SQLite has one
writer at a time (``BEGIN IMMEDIATE`` holds the database's write lock until
the commit), PostgreSQL has many, and serialises writers of one device or of
the log with a transaction-scoped advisory lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar


class Cursor(Protocol):
    """What callers use of a query's result (sqlcipher3 and psycopg cursors both offer it)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlStore(Protocol):
    """An open store: nested transactions, statements, and named write locks."""

    holds_projections: bool
    """True where every projection table lives beside the event log (SQLCipher). A PostgreSQL
    hub holds the log, the ledger, the transparency log and the projections whose code is
    declared `common_dialect` (the form records', docs/hub-postgres.md)."""

    def has_table(self, name: str) -> bool:
        """Does this database hold a table of that name (the engines' catalogues differ)?"""
        ...

    def json_text(self, column: str, *path: str) -> str:
        """SQL for the text at `path` (keys) in the JSON of `column`, NULL when absent (the engines'
        JSON functions differ): for reading a string an event line or a record holds, in SQL."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """All writes inside commit together or not at all; nested use is a savepoint."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Any = ()) -> Any: ...

    def stream(self, sql: str, params: Any = ()) -> Iterator[Any]:
        """The rows of a query, fetched as they are iterated, never all at once (an export's whole log)."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def one(self, sql: str, params: Any = ()) -> tuple[Any, ...] | None: ...

    def scalar(self, sql: str, params: Any = ()) -> Any: ...

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...

    def lock(self, name: str) -> None:
        """Serialise, until this transaction ends, every writer that takes the same `name`.

        Called inside a transaction, before the first read the write depends
        on (a device's ledger row, the log's size).
        """
        ...

    def migrate(self) -> list[str]:
        """Apply this engine's pending schema migrations; the names applied."""
        ...

    def close(self) -> None: ...

    # What the event log (`wardcrf.eventlog`) keeps per transaction, on both engines.
    pending_heads: dict[str, tuple[int, str, str]]
    """Chain heads touched in the open transaction; a rolled-back savepoint forgets its own."""
    before_commit: list[Any]
    """Hooks the outermost transaction runs inside it, just before its COMMIT."""
    after_commit: list[Any]
    """Hooks the outermost transaction runs once it committed."""

    def batched_inserts(self) -> contextlib.AbstractContextManager[None]:
        """`insert`s made inside may be collected and written together (SQLCipher) or at once."""
        ...

    def insert(self, sql: str, params: Any) -> None: ...

    def flush(self) -> None: ...


class _Executes(Protocol):
    def execute(self, sql: str, params: Any = ()) -> Any: ...


class Queries:
    """`one`, `scalar` and `rows` over a store's `execute`: the same on both engines.

    A mixin of both stores, so a row comes back in one shape (a tuple, a
    value, dicts by column name) whichever engine answered.
    """

    def one(self: _Executes, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def scalar(self: _Executes, sql: str, params: Any = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def rows(self: _Executes, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description or ()]  # DB-API: a column's name is its first item
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- code whose SQL both engines run ----------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
_COMMON: set[object] = set()


class NotPortable(TypeError):
    """Code not declared `common_dialect` was asked to run on a store that is not SQLCipher (a bug:
    the importer refuses such a bundle by name before anything runs, `sync.engine.check_portable`)."""


def common_dialect(fn: F) -> F:
    """Declare a projector, form hook or after-ingest hook whose SQL is in the common dialect.

    The common dialect: ``?`` placeholders (never ``?1``), ``INSERT ... ON CONFLICT (...) DO
    UPDATE/NOTHING`` (`upsert`) instead of ``INSERT OR REPLACE/IGNORE``, JSON read in Python,
    no ``PRAGMA`` or ``sqlite_master`` (`SqlStore.has_table`), the reserved words ``"end"``,
    ``"window"`` and ``"user"`` quoted, scalar ``max(a, b)`` compared in Python, ``IS NOT
    DISTINCT FROM`` (or ``=`` with both ``IS NULL``) for ``IS``. ``ORDER BY rowid`` is allowed only on the tables whose
    PostgreSQL twin has a ``rowid`` identity column (sync/hub_pg.sql says which). Such code
    runs on a PostgreSQL hub's store as well as on SQLCipher; everything it calls must
    hold to the same dialect (tests/unit/test_hub_pg_records.py runs it on both).
    """
    _COMMON.add(fn)
    return fn


def is_portable(fn: object) -> bool:
    return fn in _COMMON


def portable(fn: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[SqlStore, P], R]:
    """`fn`, checked to be `common_dialect`, as code any `SqlStore` may be given to.

    Raises `NotPortable` otherwise: never runs SQLite-only SQL on another engine.
    """
    if fn not in _COMMON:
        name = getattr(fn, "__qualname__", repr(fn))
        raise NotPortable(f"{getattr(fn, '__module__', '?')}.{name} is not declared common_dialect")
    return fn


def json_path(path: Sequence[str]) -> Sequence[str]:
    """`path` checked to be plain keys (`SqlStore.json_text` writes them into SQL)."""
    if not path or not all(k.isidentifier() and k.isascii() for k in path):
        raise ValueError(f"a JSON path of plain keys, not {list(path)!r}")
    return path


S = TypeVar("S")


def own_keys_store(store: S) -> S:
    """Where this hub's own keys and events are: the store itself on SQLCipher (one file holds all), or
    the hub's SQLCipher file a PostgreSQL database works beside (`PgStore.beside`, set where the hub
    opens its database, `sync.pghub.ledger`). A hub's secrets never go to a database server: the one
    check that needs one (an allocation against the hub's own copy of its randomization list, opened
    with the hub's age identity) reads it from the file."""
    return getattr(store, "beside", None) or store


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """SQLite's ``INSERT OR REPLACE`` of one row, for a table whose only unique key is `key`,
    in the dialect both engines run: ``INSERT ... ON CONFLICT (key) DO UPDATE SET`` every other
    column to the new row's value (the same row as a replace leaves). Quote reserved names
    (``"end"``) in `columns` as the SQL needs them."""
    rest = [c for c in columns if c not in key]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({', '.join(key)}) DO "
        + ("UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "NOTHING")
    )
