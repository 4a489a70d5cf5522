"""The encrypted store: one SQLCipher 4 database per data directory.

Opened with the raw 256-bit key (no passphrase KDF inside SQLCipher: the
key-slot KDF already did that work), in WAL mode with ``synchronous=FULL``,
foreign keys on and a busy timeout so a second process waits rather than
fails. The schema comes from ``schema.sql`` as named migrations, each applied
once and recorded in ``schema_migrations``.

This is the only module that talks to sqlcipher3 directly; everything else
uses the `Store` (SQL through its helpers; ``Store.db`` offers
``sqlite_utils.Database`` where a table API helps).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from importlib import resources
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import sqlcipher3

from .clock import iso_utc, now_utc
from .errors import ColumnTypeError, StoreError, UsageError
from .sqlstore import InsertBatches, Queries, json_path, may_write


def _import_sqlite_utils() -> Any:
    """sqlite_utils without numpy and pandas.

    sqlite_utils imports numpy and pandas at import time when they are
    installed (the report extras install numpy), only to map their scalar
    types; wardcrf never stores numpy values. Importing numpy costs ~0.1-0.2 s
    on every command and on the TUI's start-up, so it is hidden while
    sqlite_utils loads and left importable for the reports afterwards.

    Imported on first use of `Store.db` only: sqlite_utils brings click,
    dateutil and pluggy (~0.1 s), and nothing on the start-up path of the
    ward app or of a CLI command needs it.
    """
    hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import sqlite_utils as module
    finally:
        for name in hidden:
            del sys.modules[name]
    return module


DB_FILENAME = "wardcrf.db"
# How long a second process waits for a write lock before saying "locked".
BUSY_TIMEOUT_MS = int(os.environ.get("WARDCRF_BUSY_TIMEOUT_MS", "5000"))

_MIGRATION_RE = re.compile(r"^-- migration: (\S+)\s*$", re.MULTILINE)

DatabaseError = sqlcipher3.DatabaseError
IntegrityError = sqlcipher3.IntegrityError
OperationalError = sqlcipher3.OperationalError


TYPE_MARK = "wardcrf value type: "
"""How a `Store.check_value_types` trigger's refusal starts (then PostgreSQL's words for it)."""

_PG_TYPE = {"INTEGER": "bigint", "REAL": "double precision"}
"""What PostgreSQL's schema (`sync/hub_pg.sql`) keeps for a column of each SQLite affinity it checks."""


_FITS = frozenset({type(None), int, float, bool})
"""Python values no `check_value_types` trigger ever refuses: bound as NULL, an integer or a real, never
text or a blob, whatever the column's affinity makes of them."""

_PLAIN_INSERT = re.compile(
    r"""\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(?:main\.)?["`\[]?(\w+)["`\]]?\s*\(([^)]*)\)\s*VALUES\s*\(([^)]*)\)(.*)""",
    re.IGNORECASE | re.DOTALL,
)
_ROW_VALUES = re.compile(
    r"""\s*(ON\s+CONFLICT\s*\([^()]*\)\s*DO\s+(NOTHING|UPDATE\s+SET\s+([\w\s",.=]+)))?\s*;?\s*""",
    re.IGNORECASE,
)
"""What may follow a plain INSERT's values for `check_value_types`'s check per batch: nothing, or an upsert
whose update sets columns (`_SET_ROW` says to which values)."""
_SET_ROW = re.compile(r"""\s*"?(\w+)"?\s*=\s*excluded\."?(\w+)"?\s*;?\s*""", re.IGNORECASE)
_TYPED_LITERAL = re.compile(r"NULL|[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.IGNORECASE)
"""A literal in an INSERT's values no trigger refuses: NULL or a number (never text after affinity)."""
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

PerRow = Callable[[Sequence[Any]], Sequence[Any]]
"""A row's values in the checked columns of a plain INSERT (`Store._per_batch_plan`)."""


def _affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (https://sqlite.org/datatype3.html, 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def _type_error(exc: sqlcipher3.IntegrityError) -> ColumnTypeError:
    """A `check_value_types` refusal (its message starts with `TYPE_MARK`) as `ColumnTypeError`."""
    detail = str(exc)[len(TYPE_MARK) :]
    return ColumnTypeError(f"the database refused a value: {detail}", detail)


def _one(at: int, row: Sequence[Any]) -> tuple[Any]:
    """`row`'s value at `at`, as `itemgetter` of two or more gives its values (a plain INSERT's one
    checked column)."""
    return (row[at],)


def schema_text() -> str:
    return resources.files("wardcrf").joinpath("schema.sql").read_text("utf-8")


def migrations(text: str | None = None) -> list[tuple[str, str]]:
    """(name, sql) for every migration in schema.sql (or in `text`), in file order."""
    text = schema_text() if text is None else text
    marks = list(_MIGRATION_RE.finditer(text))
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((m.group(1), text[m.end() : end]))
    return out


APPEND_ONLY: dict[str, tuple[str, str]] = {
    "events": (
        "the event log is append-only: corrections are amendments",
        "the event log is append-only: nothing is deleted",
    ),
    "photo_blobs": (
        "photo originals are never changed: import the new photo and amend the record",
        "photo originals are never deleted: they are source records",
    ),
    "cc_evidence": (
        "logger files are evidence and never change: import the corrected file",
        "logger files are evidence and are never deleted",
    ),
    "photo_archive": ("photo originals are never changed", "photo originals are never deleted"),
    "tlog_leaves": ("the transparency log is append-only", "the transparency log is append-only"),
    "tlog_nodes": ("the transparency log is append-only", "the transparency log is append-only"),
    "tlog_checkpoints": ("the transparency log is append-only", "the transparency log is append-only"),
}
"""The insert-only tables (event log, evidence, transparency log): table -> what UPDATE and DELETE are told.

One owner for their guard triggers (`guard_triggers`): the migration that
creates a table named here (or rebuilds it, as 0070 rebuilt `events`) gets
its two triggers in the same transaction (`Store.apply_migration`), and
`audit verify` (wardcrf/appendonly.py) compares the database with the same
text. The names, text and messages are those schema.sql's migrations stated
when they shipped (tests/unit/test_schema_guards.py holds a fresh database
to that schema). A new insert-only table is one entry here.
"""

_DEFINES_RE = re.compile(
    r"^(?:CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?|ALTER\s+TABLE\s+\w+\s+RENAME\s+TO\s+)(\w+)",
    re.IGNORECASE,
)


def guard_triggers(table: str) -> list[tuple[str, str]]:
    """(name, CREATE TRIGGER statement) of the triggers refusing UPDATE and DELETE on an APPEND_ONLY table.

    The statement as sqlite_master keeps it, so `audit verify` can compare it
    with what a database holds.
    """
    out = []
    for op, message in zip(("update", "delete"), APPEND_ONLY[table], strict=True):
        name = f"{table}_no_{op}"
        raise_ = "'" + message.replace("'", "''") + "'"
        out.append(
            (
                name,
                f"CREATE TRIGGER {name} BEFORE {op.upper()} ON {table}\nBEGIN\n    SELECT RAISE(ABORT, {raise_});\nEND",
            )
        )
    return out


def append_only_defined(statements: list[str]) -> list[str]:
    """The APPEND_ONLY tables that `statements` create, or rebuild under their name, in order."""
    out: list[str] = []
    for statement in statements:
        m = _DEFINES_RE.match(statement)
        if m and m.group(1) in APPEND_ONLY and m.group(1) not in out:
            out.append(m.group(1))
    return out


def translate_error(exc: BaseException, path: Path | str) -> StoreError:
    """Turn a driver or OS error into one line a ward user can act on."""
    msg = str(exc)
    low = msg.lower()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in low:
        return StoreError(f"disk full: could not write {path}; free space and retry (nothing was saved)")
    if "database is locked" in low or "database is busy" in low:
        return StoreError(f"database {path} is locked by another wardcrf process; close it or wait and retry")
    if "file is not a database" in low or "malformed" in low or "file is encrypted" in low:
        return StoreError(f"{path} is corrupt or not a wardcrf database")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"{path} is read-only: check permissions of the data directory")
    if "unable to open" in low:
        return StoreError(f"cannot open {path}: check that the data directory exists and is writable")
    return StoreError(f"database error on {path}: {msg}")


def copy_encrypted(
    source: Store, path: Path, key: bytes, then: Callable[[sqlcipher3.Connection], None]
) -> None:
    """Copy an open database into a new file encrypted with `key` (SQLite's online backup, page by page).

    A consistent copy while the site keeps working (`backup.py`); `then(copy)`
    runs on the copy before it is closed (the backup strips what must not
    leave the laptop). Kept here so this stays the one module using sqlcipher3.
    """
    target = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        target.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        source.conn.backup(target)
        then(target)
    finally:
        target.close()


def connect(path: Path, key: bytes | None, *, readonly: bool = False) -> sqlcipher3.Connection:
    """Open and unlock a SQLCipher 4 database with a raw key.

    ``key=None`` opens an unencrypted SQLite file: only for the plain copies a
    coordinator exports on purpose and for benchmark baselines, never a site.
    """
    if key is not None and len(key) != 32:
        raise ValueError("database key must be 32 bytes")
    try:
        if readonly:
            conn = sqlcipher3.connect(
                f"file:{path}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            conn = sqlcipher3.connect(
                str(path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        if key is not None:
            conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        # Reading the schema is the first operation that decrypts a page: a
        # wrong key or a non-database file fails here.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except (sqlcipher3.DatabaseError, OSError) as exc:
        raise translate_error(exc, path) from exc
    return conn


LARGE_PAGE_CACHE_KIB = 262_144
"""SQLite's page cache (KiB) for the jobs that touch a whole large database: a hub's imports (a hub's indexes
outgrow the default 2 MB after a few hundred thousand events) and `db rebuild` (`Store.large_page_cache`)."""


class Store(InsertBatches, Queries):
    """An open, unlocked database with transactions that nest (savepoints)."""

    holds_projections = True
    """The whole schema: the event log and every projection (`SqlStore.holds_projections`)."""

    _value_types_checked = False  # `check_value_types` made its triggers on this connection
    _per_batch: dict[str, tuple[list[tuple[str, str]], dict[str, str | None]]]
    """`check_value_types`'s checked tables: (kind, CREATE) of the triggers made per statement, and the
    checked columns' defaults."""
    _per_batch_tables: frozenset[str]
    _no_update_trigger: frozenset[str]
    _per_batch_plans: dict[str, PerRow | bool]

    def __init__(self, path: Path, key: bytes | None, *, readonly: bool = False) -> None:
        self.path = path
        self.conn = connect(path, key, readonly=readonly)
        self._depth = 0
        self._init_heads()

    def _init_heads(self) -> None:
        # Chain heads touched in the open transaction, flushed once at commit
        # (see eventlog): one write per transaction instead of one per event.
        # A stack of snapshots so a rolled-back savepoint forgets its heads.
        self.pending_heads: dict[str, tuple[int, str, str]] = {}
        self._heads_stack: list[dict[str, tuple[int, str, str]]] = []
        # Hooks of the outermost transaction: just before its COMMIT (inside it),
        # and just after it succeeded (the rollback counter's file, `rollback`).
        self.before_commit: list[Any] = []
        self.after_commit: list[Any] = []
        self.changes_at_begin = 0
        self._init_batches()
        self._per_batch = {}  # none until `check_value_types` names some (a hub's import)
        self._per_batch_tables = frozenset()
        self._no_update_trigger = frozenset()
        self._per_batch_plans = {}

    @classmethod
    def memory(cls) -> Store:
        """A scratch in-memory database (never touches disk; used by rebuild checks)."""
        self = cls.__new__(cls)
        self.path = Path(":memory:")
        self.conn = sqlcipher3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._depth = 0
        self._init_heads()
        return self

    @functools.cached_property
    def db(self) -> Any:
        """The connection as a ``sqlite_utils.Database`` (imported on first use)."""
        return _import_sqlite_utils().Database(self.conn)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    @contextlib.contextmanager
    def large_page_cache(self) -> Iterator[None]:
        """SQLite's page cache raised to `LARGE_PAGE_CACHE_KIB` for a whole-database job, then put back.

        The default cache is 2 MB. A job that writes every projection of a large log (`db rebuild`) looks
        up index pages all over a file of gigabytes; each page the cache has dropped is read again and,
        with SQLCipher, decrypted again. On a 97,632-event site a rebuild cost 58-62 µs/event with the
        default cache and 50-51 with 256 MB (docs/performance.md). The cache only holds pages read, so a
        small site pays nothing for the larger limit, and the limit is put back when the job ends."""
        before = int(self.conn.execute("PRAGMA cache_size").fetchone()[0])
        self.conn.execute(f"PRAGMA cache_size = {-LARGE_PAGE_CACHE_KIB}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size = {before}")

    # -- transactions ------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all.

        Nested use becomes a savepoint, so a service that appends several
        events can call others that append too, and still be atomic.
        """
        conn = self.conn
        depth = self._depth
        self.run_later()  # put-off work is the enclosing transaction's, never inside a savepoint
        self.flush()  # collected rows belong to the enclosing transaction, not this savepoint
        if depth == 0:
            self.forget_memo()  # what another process wrote since is read afresh
        try:
            if depth == 0:
                conn.execute("BEGIN IMMEDIATE")
                self.changes_at_begin = conn.total_changes
            else:
                conn.execute(f"SAVEPOINT sp{depth}")
        except (sqlcipher3.DatabaseError, OSError) as exc:
            raise translate_error(exc, self.path) from exc
        self._depth += 1
        self._heads_stack.append(dict(self.pending_heads))
        try:
            yield self
            self.run_later()
            self.flush()  # rows collected inside (`batched_inserts`) are this savepoint's
            if depth == 0:
                for hook in self.before_commit:
                    hook(self)
        except BaseException:
            self._depth -= 1
            self.pending_heads = self._heads_stack.pop()
            self._drop_batches()
            self.forget_memo()  # a read may have seen the rolled-back writes
            if depth == 0:
                self._drop_later()
            else:  # a savepoint's `later` work is kept (done later, it recomputes from what is left)
                self._drop_later_items()  # but not records it was given from inside the savepoint
            with contextlib.suppress(Exception):
                if depth == 0:
                    conn.execute("ROLLBACK")
                else:
                    conn.execute(f"ROLLBACK TO sp{depth}")
                    conn.execute(f"RELEASE sp{depth}")
            raise
        self._depth -= 1
        self._heads_stack.pop()
        if depth == 0:
            self.forget_memo()
        try:
            if depth == 0:
                conn.execute("COMMIT")
                self.pending_heads = {}
            else:
                conn.execute(f"RELEASE sp{depth}")
        except (sqlcipher3.DatabaseError, OSError) as exc:
            self.pending_heads = {}
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise translate_error(exc, self.path) from exc
        if depth == 0:
            for hook in self.after_commit:
                hook(self)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    # -- queries -----------------------------------------------------------------
    def execute(self, sql: str, params: Any = ()) -> sqlcipher3.Cursor:
        if self._deferred or self._later:
            self.flush_for(sql)  # collected rows first, if this may read or write their tables
        if self._memo:
            self._note_write(sql)
        try:
            if (
                self._per_batch_tables
                and may_write(sql, self._per_batch_tables)
                and self._checked_per_batch(sql, (params,))
            ):
                with self._insert_triggers(sql):
                    return self.conn.execute(sql, params)
            return self.conn.execute(sql, params)
        except sqlcipher3.IntegrityError as exc:
            if str(exc).startswith(TYPE_MARK):
                raise _type_error(exc) from None
            raise
        except (sqlcipher3.DatabaseError, OSError) as exc:
            raise translate_error(exc, self.path) from exc

    def executemany(self, sql: str, rows: Any) -> None:
        """One statement over many rows (after the rows `insert` collected, if it may touch them)."""
        if self._deferred or self._later:
            self.flush_for(sql)
        if self._memo:
            self._note_write(sql)
        self._executemany(sql, rows)

    def _write_batch(self, sql: str, rows: list[Any]) -> None:
        """`InsertBatches`: one statement's collected rows, one ``executemany``."""
        self._executemany(sql, rows)

    def _executemany(self, sql: str, rows: Any) -> None:
        try:
            if self._per_batch_tables and may_write(sql, self._per_batch_tables):
                rows = rows if isinstance(rows, list | tuple) else list(rows)
                if self._checked_per_batch(sql, rows):
                    with self._insert_triggers(sql):
                        self.conn.executemany(sql, rows)
                    return
            self.conn.executemany(sql, rows)
        except sqlcipher3.IntegrityError as exc:
            if str(exc).startswith(TYPE_MARK):
                raise _type_error(exc) from None
            raise
        except (sqlcipher3.DatabaseError, OSError) as exc:
            raise translate_error(exc, self.path) from exc

    def check_value_types(
        self, tables: Iterable[str], computed: Collection[str] = (), per_batch: Collection[str] = ()
    ) -> None:
        """Refuse, on this connection, a value written into `tables` that PostgreSQL's column would refuse.

        SQLite keeps text in an INTEGER or REAL column as sent (column affinity);
        PostgreSQL's ``bigint`` and ``double precision`` refuse it. A hub's import
        calls this so that a forged record carrying "fast" for a pulse is refused
        alike on both engines (`ColumnTypeError`, with PostgreSQL's words). Text
        that reads as a number ("82") is stored as the number by both, a real in an
        integer column kept by both (PostgreSQL rounds it), NULL allowed: only what
        stays text (or a blob) after affinity is refused. `computed` ("table.column")
        names columns only wardcrf's own code fills (a record's version), left
        unchecked, as is a rowid alias (SQLite refuses text there itself).

        The rule is one TEMP trigger per table and kind (BEFORE INSERT, and BEFORE
        UPDATE OF the checked columns), evaluated by SQLite itself, worked out once
        per connection and never stored in the file: a ward's database and a backup
        are unchanged. Which of them stay on the connection, and which are made only
        for a statement that needs them, follows.

        A trigger costs every row it guards a sub-program's run, whether it refuses or not (about
        2 µs a vitals row, docs/performance.md), an upsert's every row the UPDATE trigger's too, and
        the connection's every trigger the import's statements even where it guards none of their
        rows (docs/performance.md, the fourth pass). So no table keeps an INSERT trigger: each plain ``INSERT ... VALUES`` of ``?`` and number
        or NULL literals (or such an upsert whose update sets each column to the row's value) is
        checked once for its batch in Python, whichever way it runs (`execute`, `executemany`, the
        rows `insert` collected): rows whose checked values are all NULL, integers, reals or
        booleans are what the trigger lets through, and are written as they are; a batch holding
        anything else (text, a blob, what SQLite cannot bind), and any other statement inserting
        into a checked table (INSERT ... SELECT, text literals, expressions), runs with the INSERT
        trigger made for that statement and dropped after, so that SQLite itself refuses exactly
        what it refused before, at the same row, in the same words
        (tests/unit/test_value_types_per_batch.py). The UPDATE triggers stay, but on `per_batch`:
        tables the code never updates in place (no UPDATE, no upsert setting another value than the
        row's own: `sync.hub.CHECKED_PER_BATCH`), whose UPDATEs run with theirs made for them too.
        """
        if self._value_types_checked:
            return  # made on this connection already (every import calls this; the tables do not change)
        made = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_temp_master WHERE type = 'trigger'")}
        batched: dict[str, tuple[list[tuple[str, str]], dict[str, str | None]]] = {}
        for table in tables:
            info = list(self.conn.execute(f'PRAGMA main.table_info("{table}")'))
            rowid = [r[1] for r in info if r[5]] if sum(1 for r in info if r[5]) == 1 else []
            kept = [
                (r[1], _PG_TYPE[_affinity(r[2])])
                for r in info
                if _affinity(r[2]) in _PG_TYPE
                and f"{table}.{r[1]}" not in computed
                and not (r[1] in rowid and r[2].upper() == "INTEGER")
            ]
            if not kept:
                continue
            misfit = " OR ".join(f"typeof(NEW.\"{c}\") IN ('text', 'blob')" for c, _t in kept)
            which = " ".join(
                f"WHEN typeof(NEW.\"{c}\") IN ('text', 'blob') THEN"
                f" 'invalid input syntax for type {t}: \"' || CAST(NEW.\"{c}\" AS TEXT) || '\"'"
                for c, t in kept
            )
            columns = ", ".join(f'"{c}"' for c, _t in kept)
            defaults = {str(r[1]): r[4] for r in info}
            checked = {c.lower(): defaults[c] for c, _t in kept}  # SQL's names ignore case
            batched[table] = ([], checked)
            for kind, op in (("insert", "INSERT"), ("update", f"UPDATE OF {columns}")):
                create = (
                    f'CREATE TEMP TRIGGER IF NOT EXISTS "wardcrf_types_{table}_{kind}" BEFORE {op}'
                    f' ON main."{table}" WHEN {misfit} BEGIN'
                    f" SELECT RAISE(ABORT, '{TYPE_MARK}' || CASE {which} END); END"
                )
                if kind == "insert" or table in per_batch:
                    batched[table][0].append((kind, create))  # made for a statement that needs it
                elif f"wardcrf_types_{table}_{kind}" not in made:
                    self.conn.execute(create)
        self._per_batch = batched
        self._per_batch_tables = frozenset(batched)
        self._no_update_trigger = frozenset(t for t in batched if t in per_batch)
        self._per_batch_plans = {}
        self._value_types_checked = True

    def _per_batch_plan(self, sql: str) -> PerRow | bool:
        """How `sql` is checked when it may write a checked table (`check_value_types`): a plain INSERT of
        ``?`` (and number or NULL literals) into one (an upsert's update setting each column to the row's
        value), the getter of a row's values in its checked columns; False when it needs no check here (a
        DELETE, an UPDATE of a table keeping its UPDATE trigger, an INSERT writing no checked column);
        True when it runs with the triggers made for it (any other INSERT, one leaving a checked column
        to a default that is not a number, an UPDATE of a `per_batch` table). Worked out once per statement."""
        plan = self._per_batch_plans.get(sql)
        if plan is not None:
            return plan
        head = sql.lstrip()[:7].upper()
        m = _PLAIN_INSERT.match(sql)
        tail = _ROW_VALUES.fullmatch(m.group(4)) if m is not None else None
        if head.startswith("DELETE"):
            plan = False
        elif head.startswith("UPDATE"):
            plan = bool(self._no_update_trigger) and may_write(sql, self._no_update_trigger)
        elif not head.startswith(("INSERT", "REPLACE", "WITH")):
            plan = False  # not DML (a pragma, a savepoint, DDL): it writes no row
        elif m is None or tail is None or m.group(1).lower() not in self._per_batch:
            plan = True
        else:
            columns = [c.strip().strip('"`[]').lower() for c in m.group(2).split(",")]
            values = [v.strip() for v in m.group(3).split(",")]
            sets = [_SET_ROW.fullmatch(a) for a in (tail.group(3) or "").split(",") if a.strip()]
            checked = self._per_batch[m.group(1).lower()][1]
            params = [i for i, v in enumerate(values) if v == "?"]  # a column's value -> its parameter
            at = [params.index(i) for i, c in enumerate(columns) if c in checked and values[i] == "?"]
            left = [d for c, d in checked.items() if c not in columns and d is not None]
            if len(values) != len(columns) or any(
                v != "?" and not _TYPED_LITERAL.fullmatch(v) for v in values
            ):
                plan = True
            elif any(a is None or a.group(1) != a.group(2) for a in sets):
                plan = True  # an update setting a column to anything but the row's own value
            elif any(not _NUMBER.fullmatch(str(d)) for d in left):
                plan = True
            elif not at:
                plan = False
            else:
                plan = itemgetter(*at) if len(at) > 1 else functools.partial(_one, at[0])
        self._per_batch_plans[sql] = plan
        return plan

    def _checked_per_batch(self, sql: str, rows: Sequence[Any]) -> bool:
        """Whether `sql` over `rows` must run with the INSERT triggers made for it (`_per_batch_plan`)."""
        plan = self._per_batch_plan(sql)
        if isinstance(plan, bool):
            return plan
        try:
            return not _FITS.issuperset(map(type, chain.from_iterable(map(plan, rows))))
        except (IndexError, KeyError, TypeError):
            return True  # a row not as the statement reads it: the engine says what is wrong with it

    @contextlib.contextmanager
    def _insert_triggers(self, sql: str) -> Iterator[None]:
        """The triggers made per statement (`check_value_types`) of the checked tables `sql` names, for as
        long as it runs (TEMP triggers made and dropped inside the caller's transaction: a rollback
        leaves none either)."""
        names = [t for t in self._per_batch if may_write(sql, frozenset({t}))]
        for table in names:
            for _kind, create in self._per_batch[table][0]:
                self.conn.execute(create)
        try:
            yield
        finally:
            for table in names:
                for kind, _create in self._per_batch[table][0]:
                    self.conn.execute(f'DROP TRIGGER IF EXISTS temp."wardcrf_types_{table}_{kind}"')

    def lock(self, name: str) -> None:
        """`SqlStore.lock`: nothing to take here, the transaction already holds the write lock.

        A transaction begins with ``BEGIN IMMEDIATE``: the database's one
        write lock is held from its start to its end, so every writer is
        already serialised against every other.
        """
        if not self.in_transaction:
            raise RuntimeError(f"lock({name!r}) outside a transaction")

    def has_table(self, name: str) -> bool:
        """`SqlStore.has_table`: SQLite's catalogue."""
        return self.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    def stream(self, sql: str, params: Any = ()) -> Iterator[Any]:
        """`SqlStore.stream`: SQLite's cursor steps through the rows as they are read."""
        yield from self.execute(sql, params)

    def json_text(self, column: str, *path: str) -> str:
        """`SqlStore.json_text`: SQLite's ``json_extract``."""
        return f"json_extract({column}, '$.{'.'.join(json_path(path))}')"

    # -- schema ------------------------------------------------------------------
    def applied_migrations(self) -> list[str]:
        exists = self.scalar(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        )
        if not exists:
            return []
        return [r[0] for r in self.execute("SELECT name FROM schema_migrations ORDER BY rowid")]

    def migrate(self) -> list[str]:
        """Apply pending migrations from schema.sql; returns the names applied."""
        done = set(self.applied_migrations())
        applied = []
        for name, sql in migrations():
            if name in done:
                continue
            self.apply_migration(name, sql)
            applied.append(name)
        return applied

    def apply_migration(self, name: str, sql: str) -> None:
        """Apply one migration and record it, in one transaction.

        An APPEND_ONLY table the migration creates (or rebuilds under its
        name) gets its guard triggers in that transaction: no moment exists at
        which it is committed without them. Only those tables: a trigger
        dropped around wardcrf on another table stays missing for `audit
        verify` to report and log, never quietly put back by an upgrade.
        """
        with self.transaction():
            statements = split_sql(sql)
            for statement in statements:
                self.execute(statement)
            for table in append_only_defined(statements):
                for _trigger, create in guard_triggers(table):
                    self.execute(create.replace("CREATE TRIGGER ", "CREATE TRIGGER IF NOT EXISTS ", 1))
            self.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (name, iso_utc(now_utc())),
            )

    def integrity_check(self) -> str:
        return str(self.scalar("PRAGMA integrity_check"))

    def checkpoint(self) -> None:
        self.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def split_sql(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buf: list[str] = []
    for line in sql.splitlines():
        if not buf and (not line.strip() or line.strip().startswith("--")):
            continue
        buf.append(line)
        candidate = "\n".join(buf)
        if sqlcipher3.complete_statement(candidate):
            statements.append(candidate.strip())
            buf = []
    if any(s.strip() and not s.strip().startswith("--") for s in buf):
        raise UsageError("schema.sql ends with an incomplete statement")
    return statements


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_FILENAME
