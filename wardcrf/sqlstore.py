"""The interface a store offers the code that runs on either hub engine.

The embedded SQLCipher `wardcrf.store.Store` is the default engine (every
ward, and a coordinator's one-laptop hub). A hub that outgrows one machine
keeps its ledger on PostgreSQL (`wardcrf.sync.pgstore.PgStore`). Code written
against `SqlStore` — the hub's transparency log (`sync/hublog.py`) and its
ledger — runs unchanged on both, so the two engines cannot drift apart in
what they accept or sign.

The SQL such code sends is the common subset of SQLite and PostgreSQL:
``?`` placeholders (the PostgreSQL store translates them), no ``rowid``, no
``INSERT OR REPLACE`` (``ON CONFLICT`` instead), an alias on every subquery
in FROM. `lock` is the one place the engines differ in kind: SQLite has one
writer at a time (``BEGIN IMMEDIATE`` holds the database's write lock until
the commit), PostgreSQL has many, and serialises writers of one device or of
the log with a transaction-scoped advisory lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    """What callers use of a query's result (sqlcipher3 and psycopg cursors both offer it)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlStore(Protocol):
    """An open store: nested transactions, statements, and named write locks."""

    holds_projections: bool
    """True where the projection tables live beside the event log (SQLCipher). A PostgreSQL
    hub holds the log, the ledger and the transparency log only, so far (docs/hub-postgres.md)."""

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """All writes inside commit together or not at all; nested use is a savepoint."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Any = ()) -> Any: ...

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
