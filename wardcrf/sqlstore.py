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

import abc
import contextlib
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


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
        """`insert`s made inside are collected and written in batches (`InsertBatches`)."""
        ...

    def insert(self, sql: str, params: Any) -> None: ...

    def flush(self) -> None: ...

    def memoized(self, key: str, tables: Iterable[str], compute: Callable[[], R]) -> R:
        """A read remembered while a batch runs, until its tables may be written (`InsertBatches.memoized`)."""
        ...

    def later(self, key: object, tables: Iterable[str], fn: Callable[[], None]) -> bool:
        """Work put off to the batch's end, once per key (`InsertBatches.later`); False outside a batch."""
        ...

    def later_each(self, key: object, tables: Iterable[str], item: T, fn: Callable[[list[T]], None]) -> bool:
        """`item` added to the work put off under `key`, done once for all of them (`InsertBatches.later_each`)."""
        ...


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


# -- projection rows written in batches (a replay, a synced bundle) ---------------------------

BATCH_ROWS = 2000
"""Collected rows written at the latest once this many are held (memory stays bounded)."""

LATER_ITEMS = 10_000
"""Items put off under one key (`later_each`: a replay's records) done at the latest once this many are held."""

_INSERT_INTO = re.compile(r"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+[\"\[]?(\w+)", re.IGNORECASE)
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


@functools.lru_cache(maxsize=1024)
def inserted_table(sql: str) -> str | None:
    """The table a plain ``INSERT ... VALUES`` writes (lower case); None for any other statement
    (one reading another table, ``INSERT ... SELECT``, is run at once, never collected)."""
    m = _INSERT_INTO.match(sql)
    if m is None or "select" in sql.lower():
        return None
    return m.group(1).lower()


@functools.cache
def _word(table: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w$])" + re.escape(table) + r"(?![\w$])")


@functools.lru_cache(maxsize=8192)
def may_touch(sql: str, tables: frozenset[str]) -> bool:
    """Could `sql` read or write a row of `tables`? True unless it is a plain statement naming none of them.

    Conservative by construction: a statement that is not ``SELECT``/``INSERT``/``UPDATE``/
    ``DELETE``/``WITH`` (a ``PRAGMA``, a savepoint, DDL) always may; otherwise it may when it
    names one of the tables as a word, in any case or quoting. Sound for this schema: it has
    no views and no foreign keys, and its only triggers refuse UPDATE and DELETE of the
    append-only tables without reading any other (tests/unit/test_store_batches.py holds
    the schema to that).
    """
    head = sql.lstrip()[:6].upper()
    if not head.startswith(_DML):
        return True
    low = sql.lower()
    return any(t in low and _word(t).search(low) for t in tables)


@functools.lru_cache(maxsize=8192)
def may_write(sql: str, tables: frozenset[str]) -> bool:
    """Could `sql` write a row of `tables`? `may_touch`, but a plain ``SELECT`` never writes."""
    return sql.lstrip()[:6].upper() != "SELECT" and may_touch(sql, tables)


class InsertBatches(abc.ABC):
    """`SqlStore.batched_inserts`, `insert` and `flush` for both engines: rows collected per statement.

    Inside `batched_inserts` an `insert` only collects its row; the rows are written with one
    `_write_batch` per statement (SQLite's ``executemany``, PostgreSQL's pipelined
    ``executemany`` or ``COPY``) before any statement that may touch their table runs
    (`may_touch`: a read of that table, a write to it, anything but plain DML), before a
    savepoint begins or ends and before the commit; a rollback drops them with the rest.
    So a reader never misses a row, and rows of one table keep the order they were
    inserted in (a second statement into a table with rows pending writes them first).
    What is gained: a projector's reads of *other* tables (the active protocol, a
    participant) no longer force a write per event, so a bundle's rows go to the engine
    in a few batches instead of one statement each.
    """

    _deferred: dict[str, list[Any]]
    _deferred_tables: dict[str, str]
    _pending: frozenset[str]
    _deferred_rows: int
    _batching: bool
    _memo: dict[str, tuple[frozenset[str], Any]]
    _memo_tables: frozenset[str]

    def _init_batches(self) -> None:
        self._deferred = {}  # sql -> rows, in first-use order
        self._deferred_tables = {}  # table -> the one statement whose rows are pending for it
        self._pending = frozenset()
        self._deferred_rows = 0
        self._batching = False
        self._memo = {}
        self._memo_tables = frozenset()
        self._later: dict[object, tuple[frozenset[str], Callable[[], None]]] = {}
        self._later_tables: frozenset[str] = frozenset()
        self._later_items: dict[object, list[Any]] = {}  # `later_each`'s items, by key

    # -- work done once per batch instead of once per event -------------------------------------
    def later(self, key: object, tables: Iterable[str], fn: Callable[[], None]) -> bool:
        """Inside `batched_inserts`: run `fn` once, later, instead of now, and return True; outside, False
        (the caller does the work now).

        For upkeep a projector would repeat for every event of a bundle and whose result depends
        only on the projections when it runs (the ward queue's row of a participant: recomputed
        from their doses, vitals and records). Work under one `key` is done once. It is done
        before any statement that may touch `tables` (what it writes: a reader sees its rows),
        before a savepoint begins (never inside one a rollback could drop) and when a
        transaction begins or ends, and when the batch ends; a rolled-back transaction drops it.
        """
        if not self._batching:
            return False
        if key not in self._later:
            names = frozenset(t.lower() for t in tables)
            if names == tables:
                names = tables  # the caller's own set: `later_each` knows an item naming it again at once
            self._later[key] = (names, fn)
            if not names <= self._later_tables:
                self._later_tables = self._later_tables | names
        return True

    def later_each(self, key: object, tables: Iterable[str], item: T, fn: Callable[[list[T]], None]) -> bool:
        """Inside `batched_inserts`: add `item` to the work put off under `key` and return True; `fn` is
        called once, later, with every item added under `key` since it last ran, in the order added
        (`later` says when). Outside a batch False: the caller does the work for `item` now.

        For a hook that takes a bundle's records at once (`records.add_batch_hook`): `tables` must name
        every table `fn` reads or writes, so that no statement touches them between an item's adding and
        `fn` (an `insert` into one of them, or any statement that may touch one, does the work first):
        `fn` sees what it would have seen item by item; an item may name more tables than those before
        it (the work under `key` has the union of its items' `tables`). Unlike `later`'s work, which
        recomputes from what is left, items added inside a savepoint that is rolled back are dropped with
        it. Once `LATER_ITEMS` items wait, the work is done at once.
        """
        if not self._batching:
            return False
        items = self._later_items.get(key)
        if items is None:
            items = self._later_items[key] = [item]
            self._later.pop(key, None)
            self.later(key, tables, lambda: fn(items))
        else:
            items.append(item)
            names, work = self._later[key]
            if tables is not names and not (isinstance(tables, frozenset) and tables <= names):
                # An item whose work reads or writes more tables than the items before it (the records'
                # run of batch hooks: each form's own): every one of them now runs the work first.
                more = frozenset(t.lower() for t in tables)
                if not more <= names:
                    self._later[key] = (names | more, work)
                    self._later_tables = self._later_tables | more
            if len(items) >= LATER_ITEMS:
                self.run_later()  # memory stays bounded: done now, as a statement touching its tables would
        return True

    def run_later(self) -> None:
        """Do the work `later` put off, in the order it was first asked for."""
        while self._later:
            work = self._later
            self._later = {}
            self._later_tables = frozenset()
            self._later_items = {}
            for _tables, fn in work.values():
                fn()

    def _drop_later(self) -> None:
        self._later = {}
        self._later_tables = frozenset()
        self._later_items = {}

    def _drop_later_items(self) -> None:
        """A savepoint rolled back: forget `later_each`'s items (all added inside it: a savepoint begins
        only after the put-off work is done); `later`'s work is kept (it recomputes from what is left)."""
        if self._later_items:
            for key in self._later_items:
                self._later.pop(key, None)
            self._later_items = {}
            self._later_tables = frozenset().union(*(names for names, _fn in self._later.values()))

    # -- reads remembered while a batch runs --------------------------------------------------
    def memoized(self, key: str, tables: Iterable[str], compute: Callable[[], R]) -> R:
        """`compute()`, remembered under `key` while `batched_inserts` runs, until anything may write `tables`.

        For a read a projector repeats for every event of a bundle or a replay (the active
        protocol: twice per record in the ward queue's upkeep) whose answer changes only when
        its tables are written. Forgotten when a statement that may write one of `tables` runs
        (`may_touch`, any statement but a SELECT), when a savepoint or the transaction is rolled
        back, when a transaction begins or ends and when the batch ends: the value returned is
        always what `compute()` would return now. Outside a batch it is not remembered at all.
        An exception `compute` raises is not remembered.
        """
        if not self._batching:
            return compute()
        hit = self._memo.get(key)
        if hit is not None:
            return cast(R, hit[1])
        value = compute()
        names = frozenset(t.lower() for t in tables)
        self._memo[key] = (names, value)
        self._memo_tables = self._memo_tables | names
        return value

    def forget_memo(self) -> None:
        """Forget every remembered read (`memoized`)."""
        if self._memo:
            self._memo = {}
            self._memo_tables = frozenset()

    def _note_write(self, sql: str) -> None:
        """A statement runs: forget remembered reads of tables it may write."""
        if self._memo and may_write(sql, self._memo_tables):
            self.forget_memo()

    @abc.abstractmethod
    def _write_batch(self, sql: str, rows: list[Any]) -> None:
        """Write one statement's collected rows: each engine its own way (SQLite's `executemany`;
        PostgreSQL's pipelined `executemany`, or `COPY` for a long plain insert)."""

    @contextlib.contextmanager
    def batched_inserts(self) -> Iterator[None]:
        """Collect the `insert`s made inside; write them in batches (the class's doc says when)."""
        if self._batching:
            yield
            return
        self._batching = True
        try:
            yield
            self.run_later()
        except BaseException:
            # Written as they would have been row by row (a caller may go on in this
            # transaction); a rolled-back savepoint drops them with its other writes.
            with contextlib.suppress(Exception):
                self.run_later()
            self._drop_later()
            with contextlib.suppress(Exception):
                self.flush()
            raise
        finally:
            self._batching = False
            self.forget_memo()
        self.flush()

    def insert(self, sql: str, params: Any) -> None:
        """An INSERT of one row: collected inside `batched_inserts`, else run at once."""
        if not self._batching:
            self.execute(sql, params)  # type: ignore[attr-defined]
            return
        if self._later and may_touch(sql, self._later_tables):
            self.run_later()  # put-off work that reads or writes this table sees it as it was
        rows = self._deferred.get(sql)
        if rows is None:
            table = inserted_table(sql)
            if table is None:
                self.execute(sql, params)  # type: ignore[attr-defined]
                return
            if table in self._deferred_tables or (self._pending and may_touch(sql, self._pending)):
                self.flush()  # another statement's rows for this table go first: the table's order holds
            rows = self._deferred[sql] = []
            self._deferred_tables[table] = sql
            self._pending = frozenset(self._deferred_tables)
        if self._memo:
            self._note_write(sql)
        rows.append(params)
        self._deferred_rows += 1
        if self._deferred_rows >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the rows `insert` collected (before anything that may read them, releases or commits)."""
        if not self._deferred:
            return
        batches = self._deferred
        self._drop_batches()
        for sql, rows in batches.items():
            self._write_batch(sql, rows)

    def flush_for(self, sql: str) -> None:
        """Do the put-off work and write the collected rows first, if `sql` may touch their tables (`may_touch`)."""
        if self._later and may_touch(sql, self._later_tables):
            self.run_later()
        if self._deferred and may_touch(sql, self._pending):
            self.flush()

    def _drop_batches(self) -> None:
        self._deferred = {}
        self._deferred_tables = {}
        self._pending = frozenset()
        self._deferred_rows = 0


# -- code whose SQL both engines run ----------------------------------------------------------

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
