"""The hub's ledger on PostgreSQL 15+ through psycopg 3: a `SqlStore` for a hub that outgrew one laptop.

Several hub processes (``hub serve`` workers, ``hub import`` runs) may write
at once, so what SQLite gets from its single writer is taken here with
transaction-scoped advisory locks (`lock`): one per device (its bundles
apply in order, exactly once) and one for the transparency log (its next
index is its size). A transaction is ``READ COMMITTED``; every read a write
depends on comes after the lock that serialises it, so it sees what the
previous holder committed.

psycopg is an optional dependency (``pip install 'wardcrf[postgres]'``),
imported only when a PostgreSQL store is opened; the embedded SQLCipher hub
never loads it.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from typing import Any

from wardcrf.clock import iso_utc, now_utc
from wardcrf.errors import ColumnTypeError, StoreError, UsageError
from wardcrf.sqlstore import InsertBatches, Queries, json_path
from wardcrf.store import migrations

SCHEMA_FILE = "hub_pg.sql"
C_COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
"""libc collations that order text by code point, as SQLite's BINARY does (`PgStore.check_collation`)."""


def schema_text() -> str:
    return resources.files("wardcrf.sync").joinpath(SCHEMA_FILE).read_text("utf-8")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise UsageError(
            "a PostgreSQL hub needs psycopg 3: install wardcrf with the postgres extra"
            " (pip install 'wardcrf[postgres]')"
        ) from None
    return psycopg


@functools.lru_cache(maxsize=512)
def to_pg(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``).

    Quoted text (``'...'``, ``"..."``) is copied as it is: a ``?`` inside a
    string literal is not a placeholder.
    """
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


_PLAIN_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+(\w+)\s*\(([^()]*)\)\s*VALUES\s*\(([^()]*)\)\s*", re.IGNORECASE
)
_LITERAL_INT = re.compile(r"-?\d+")
COPY_MIN_ROWS = 16
"""A batch this large goes by ``COPY``; a smaller one by pipelined ``executemany`` (COPY's
start and end are two more round trips than a pipeline's one)."""


@functools.lru_cache(maxsize=256)
def copy_plan(sql: str) -> tuple[str, tuple[int | None, ...], tuple[int, ...]] | None:
    """``COPY table (columns) FROM STDIN`` doing what a plain ``INSERT ... VALUES`` of one row does.

    Returns (the COPY statement, per column the row's parameter index or None for a constant,
    the constants) or None when the INSERT does more than insert (``ON CONFLICT``, ``RETURNING``,
    an expression): only ``?`` and integer literals are taken, so the rows COPY writes are the
    rows the INSERT would (tests/unit/test_store_batches.py compares them table by table).
    """
    m = _PLAIN_INSERT.fullmatch(sql)
    if m is None:
        return None
    columns = [c.strip() for c in m.group(2).split(",")]
    values = [v.strip() for v in m.group(3).split(",")]
    if len(columns) != len(values) or not all(columns):
        return None
    index: list[int | None] = []
    constants: list[int] = []
    at = 0
    for v in values:
        if v == "?":
            index.append(at)
            at += 1
        elif _LITERAL_INT.fullmatch(v):
            index.append(None)
            constants.append(int(v))
        else:
            return None
    return f"COPY {m.group(1)} ({', '.join(columns)}) FROM STDIN", tuple(index), tuple(constants)


def describe(dsn: str) -> str:
    """A DSN as it may be printed: host, port and database, never the password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:
        return "the PostgreSQL database"
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql database {parts.get('dbname') or '(default)'} on {host}{port}"


class PgStore(InsertBatches, Queries):
    """An open connection to a hub ledger on PostgreSQL (`wardcrf.sqlstore.SqlStore`)."""

    holds_projections = False
    """Not every projection: the event log, the ledger, the transparency log and the projections whose
    code is `common_dialect` (the form records', migration 0005; queries, coding, SDV and the rest a ward
    sends, 0009; randomization, 0011); `sync.engine.check_portable` refuses by name a bundle that needs
    any other (the cold chain's)."""

    beside: Any = None
    """The hub's SQLCipher file this database works beside (`sync.pghub.ledger` sets it): its keys and
    its own events, which never come here (`wardcrf.sqlstore.own_keys_store`)."""

    # What `wardcrf.eventlog` keeps per transaction, as on `wardcrf.store.Store` (`_init_heads`).
    pending_heads: dict[str, tuple[int, str, str]]
    _heads_stack: list[dict[str, tuple[int, str, str]]]
    before_commit: list[Any]
    after_commit: list[Any]

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        psycopg = _psycopg()
        self.name = describe(dsn)
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the {self.name}: {_first_line(exc)}") from None
        self._owned = True
        self._depth = 0
        self._init_heads()

    @classmethod
    def adopt(cls, conn: Any, name: str) -> PgStore:
        """A store on a connection lent by a `PgPool` (autocommit, outside a transaction); `close` leaves it open."""
        self = cls.__new__(cls)
        self.name = name
        self.conn = conn
        self._owned = False
        self._depth = 0
        self._init_heads()
        return self

    def close(self) -> None:
        """Close the connection this store opened (a pooled one goes back to its pool instead, `PgPool.store`)."""
        if self._owned:
            with contextlib.suppress(Exception):
                self.conn.close()

    # -- transactions ------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[PgStore]:
        """All writes inside commit together or not at all; nested use is a savepoint.

        As on SQLCipher (`wardcrf.store.Store.transaction`): the chain heads the
        event log touched (`pending_heads`) are forgotten with a rolled-back
        savepoint, and the outermost transaction runs `before_commit` hooks
        inside it (the event log writes its chain heads there) and
        `after_commit` hooks once it committed.
        """
        psycopg = _psycopg()
        outermost = self._depth == 0
        self.run_later()  # put-off work is the enclosing transaction's, never inside a savepoint
        self.flush()  # collected rows belong to the enclosing transaction, not this savepoint
        if outermost:
            self.forget_memo()  # what another process committed since is read afresh
        try:
            tx = self.conn.transaction()
            tx.__enter__()
        except psycopg.Error as exc:
            raise self._error(exc) from None
        self._depth += 1
        self._heads_stack.append(dict(self.pending_heads))
        try:
            yield self
            self.run_later()
            self.flush()  # rows collected inside (`batched_inserts`) are this savepoint's
            if outermost:
                for hook in self.before_commit:
                    hook(self)
        except BaseException as exc:
            self._depth -= 1
            self.pending_heads = self._heads_stack.pop()
            self._drop_batches()
            self.forget_memo()  # a read may have seen the rolled-back writes
            if outermost:
                self._drop_later()
            else:  # a savepoint's `later` work is kept (done later, it recomputes from what is left)
                self._drop_later_items()  # but not records it was given from inside the savepoint
            with contextlib.suppress(Exception):
                tx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._depth -= 1
        self._heads_stack.pop()
        if outermost:
            self.forget_memo()
        try:
            tx.__exit__(None, None, None)
        except psycopg.errors.IntegrityError:
            self.pending_heads = {}
            raise
        except psycopg.Error as exc:
            self.pending_heads = {}
            raise self._error(exc) from None
        if outermost:
            self.pending_heads = {}
            for hook in self.after_commit:
                hook(self)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PgStore]:
        """A transaction whose reads all see one committed state (REPEATABLE READ).

        For the reads `hub serve` makes beside an import (`hub.ledger_reader`):
        a receipt's chain heads, ledger rows and log proofs come from the same
        moment, never half of a bundle another process was committing.
        """
        with self.transaction():
            if self._depth == 1:
                self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield self

    # -- what the event log keeps per transaction (`wardcrf.eventlog`) ------------
    def _init_heads(self) -> None:
        self.pending_heads = {}
        self._heads_stack = []
        self.before_commit = []
        self.after_commit = []
        self._init_batches()

    def _write_batch(self, sql: str, rows: list[Any]) -> None:
        """`InsertBatches`: one statement's collected rows in one round trip (pipelined ``executemany``),
        or streamed by ``COPY`` when the batch is large and the INSERT only inserts (`copy_plan`)."""
        plan = copy_plan(sql) if len(rows) >= COPY_MIN_ROWS else None
        if plan is None:
            self._executemany(sql, rows)
            return
        psycopg = _psycopg()
        copy_sql, index, constants = plan
        try:
            with self.conn.cursor() as cur, cur.copy(copy_sql) as copy:
                if not constants:
                    for r in rows:
                        copy.write_row(r)
                else:
                    for r in rows:
                        more = iter(constants)
                        copy.write_row([next(more) if i is None else r[i] for i in index])
        except psycopg.errors.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from None

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def lock(self, name: str) -> None:
        """`SqlStore.lock`: a transaction-scoped advisory lock on `name` (released at commit or rollback)."""
        if not self.in_transaction:
            raise RuntimeError(f"lock({name!r}) outside a transaction")
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    def has_table(self, name: str) -> bool:
        """`SqlStore.has_table`: PostgreSQL's catalogue (the search path's schema)."""
        return self.scalar("SELECT to_regclass(?) IS NOT NULL", (name,)) is True

    def stream(self, sql: str, params: Any = ()) -> Iterator[Any]:
        """`SqlStore.stream`: a server-side cursor inside a transaction (2,000 rows a round trip); outside
        one, the rows of `execute`."""
        if not self.in_transaction:
            yield from self.execute(sql, params)
            return
        psycopg = _psycopg()
        PgStore._cursors += 1
        cur = self.conn.cursor(name=f"wardcrf_stream_{PgStore._cursors}")
        cur.itersize = 2000
        try:
            cur.execute(to_pg(sql), tuple(params))
            yield from cur
        except psycopg.Error as exc:
            raise self._error(exc) from None
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    _cursors = 0

    def json_text(self, column: str, *path: str) -> str:
        """`SqlStore.json_text`: PostgreSQL's ``#>>`` on the text read as ``json`` (keys kept as written)."""
        return f"(({column})::json #>> '{{{','.join(json_path(path))}}}')"

    # -- queries -----------------------------------------------------------------
    def execute(self, sql: str, params: Any = ()) -> Any:
        if self._deferred or self._later:
            self.flush_for(sql)  # collected rows first, if this may read or write their tables
        if self._memo:
            self._note_write(sql)
        psycopg = _psycopg()
        try:
            return self.conn.execute(to_pg(sql), tuple(params))
        except psycopg.errors.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Many rows of one statement: a long plain INSERT (a bundle's events) streamed by ``COPY``,
        anything else pipelined (`_write_batch`): the same rows, without a bind and execute per row."""
        if self._deferred or self._later:
            self.flush_for(sql)
        if self._memo:
            self._note_write(sql)
        self._write_batch(sql, rows if isinstance(rows, list) else list(rows))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        psycopg = _psycopg()
        try:
            with self.conn.cursor() as cur:
                cur.executemany(to_pg(sql), [tuple(r) for r in rows])
        except psycopg.errors.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> StoreError:
        line = _first_line(exc)
        if isinstance(exc, _psycopg().errors.DataError):
            # A value that does not fit its column (a forged record's "fast" for a pulse): the data's
            # fault, which the hub refuses its bundle for (`sync.hub`), as a SQLCipher hub does.
            return ColumnTypeError(f"{self.name}: {line}", line)
        return StoreError(f"{self.name}: {line}")

    # -- schema ------------------------------------------------------------------
    def check_collation(self) -> None:
        """Refuse a database whose text order is not SQLite's (byte / code point order): `UsageError`.

        The projections order and compare text (a record's clock, the first dose
        of a kit, the latest version loaded): under a language's collation
        (``en_US.UTF-8``, ICU) PostgreSQL would order some of them otherwise than
        the SQLCipher hub and the wards, and the same bundle would project
        differently. So the database is made with the C collation
        (docs/hub-postgres.md).
        """
        row = self.one(
            "SELECT datcollate, datlocprovider FROM pg_database WHERE datname = current_database()"
        )
        if row is None or (row[0] in C_COLLATIONS and row[1] == "c"):
            return
        raise UsageError(
            f"the {self.name} sorts text by {row[0]!r} ({'ICU' if row[1] == 'i' else 'libc'}), not by code point"
            " as SQLite does; create it with CREATE DATABASE ... TEMPLATE template0 LOCALE_PROVIDER libc"
            " LC_COLLATE 'C' LC_CTYPE 'C' (docs/hub-postgres.md); nothing written"
        )

    def applied_migrations(self) -> list[str]:
        if self.scalar("SELECT to_regclass('schema_migrations')") is None:
            return []
        return [r[0] for r in self.execute("SELECT name FROM schema_migrations ORDER BY applied_order")]

    def migrate(self) -> list[str]:
        """Apply pending migrations of hub_pg.sql, each in its own transaction; returns the names applied.

        Two hub processes starting at once both call this: the advisory lock
        makes the second wait, then find nothing left to apply.
        """
        self.check_collation()
        applied = []
        for name, sql in migrations(schema_text()):
            with self.transaction():
                self.lock("wardcrf.migrate")
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY,"
                    " applied_at text NOT NULL, applied_order bigint GENERATED ALWAYS AS IDENTITY)"
                )
                if self.scalar("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)):
                    continue
                self.conn.execute(sql)  # several statements, no parameters: one simple query
                self.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, iso_utc(now_utc())),
                )
            applied.append(name)
        return applied


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


DEFAULT_POOL_SIZE = 4
"""Connections one `hub serve` worker keeps to the hub's database at most (`--pool-size`, WARDCRF_HUB_POOL_SIZE)."""

MAX_POOL_SIZE = 64


class PgPool:
    """A bounded pool of connections to the hub's database for one `hub serve` worker (psycopg_pool).

    At most `size` connections are open at once (one is opened at start, more
    as requests need them); a request waits up to `timeout` seconds for one,
    then is answered that the database is busy. A connection goes back to the
    pool when its request ends, however it ends: one returned inside a
    transaction is rolled back first (so its transaction-scoped advisory
    locks, the per-device ones, are released as when a connection closes);
    one that broke (the server restarted, the backend was terminated) is
    discarded and replaced, and every connection is checked when it is lent,
    so one killed while idle is replaced before a request gets it. `close`
    closes them all (`hub serve` shutting down).
    """

    def __init__(
        self,
        dsn: str,
        size: int = DEFAULT_POOL_SIZE,
        *,
        timeout: float = 30.0,
        connect_timeout: int = 10,
        application_name: str = "wardcrf hub serve",
    ) -> None:
        psycopg = _psycopg()
        try:
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError:
            raise UsageError(
                "hub serve on a PostgreSQL hub needs psycopg_pool: install wardcrf with the postgres extra"
                " (pip install 'wardcrf[postgres]')"
            ) from None
        if not 1 <= size <= MAX_POOL_SIZE:
            raise UsageError(f"the pool size must be 1 to {MAX_POOL_SIZE} connections (got {size})")
        self.name = describe(dsn)
        self.size = size
        self.timeout = timeout
        self._timeout_error = PoolTimeout
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=size,
            open=False,
            timeout=timeout,
            check=ConnectionPool.check_connection,
            kwargs={
                "autocommit": True,
                "connect_timeout": connect_timeout,
                "application_name": application_name,
            },
            name="wardcrf-hub",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to the {self.name}: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def store(self) -> Iterator[PgStore]:
        """A `PgStore` on a pooled connection, returned to the pool when the block ends (raised or not)."""
        from psycopg_pool import PoolClosed

        try:
            conn = self._pool.getconn()
        except self._timeout_error:
            raise StoreError(
                f"the {self.name} is busy: no connection of this worker's {self.size} came free within"
                f" {self.timeout:g} s (hub serve --pool-size); try again"
            ) from None
        except PoolClosed:
            raise StoreError(
                f"the connections to the {self.name} are closed (hub serve is stopping)"
            ) from None
        try:
            yield PgStore.adopt(conn, self.name)
        finally:
            self._pool.putconn(conn)  # rolled back if left in a transaction; discarded if broken

    def stats(self) -> dict[str, int]:
        """psycopg_pool's counters (connections_num: opened so far, returns_bad, connections_lost, pool_size, ...)."""
        return dict(self._pool.get_stats())

    @property
    def closed(self) -> bool:
        return bool(self._pool.closed)

    def close(self) -> None:
        self._pool.close()
