"""`Store.batched_inserts`: projection rows written in batches, never missing for a reader.

A replay or a hub import collects the projectors' inserts and writes them as
one `executemany` per statement (issue 19: the row-at-a-time inserts were
most of their SQL cost). What must hold: a read inside sees every row
inserted before it; a savepoint rolled back drops its rows and keeps the
ones before it; a refused row (a constraint) refuses the transaction and
saves nothing; outside the context `insert` writes at once.
"""

from __future__ import annotations

import pytest

from wardcrf.store import IntegrityError, Store

INSERT = "INSERT INTO t (k, v) VALUES (?, ?)"


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    s.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    s.execute("CREATE TABLE u (k INTEGER PRIMARY KEY)")
    return s


def count(store: Store, table: str = "t") -> int:
    return int(store.scalar(f"SELECT count(*) FROM {table}"))


def test_a_read_inside_sees_every_row_inserted_before_it(store):
    with store.transaction(), store.batched_inserts():
        for i in range(5):
            store.insert(INSERT, (i, f"v{i}"))
        assert store._deferred  # collected, not yet written
        assert count(store) == 5  # the read wrote them first
        store.insert(INSERT, (5, "v5"))
        store.insert("INSERT INTO u (k) VALUES (?)", (1,))
        assert store.one("SELECT v FROM t WHERE k = 5") == ("v5",)
    assert count(store) == 6 and count(store, "u") == 1


def test_rows_of_one_statement_keep_their_order(store):
    store.execute("CREATE TABLE log (n INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
    with store.transaction(), store.batched_inserts():
        for v in "abcde":
            store.insert("INSERT INTO log (v) VALUES (?)", (v,))
            store.insert("INSERT INTO u (k) VALUES (?)", (ord(v),))
    assert [r[0] for r in store.execute("SELECT v FROM log ORDER BY n")] == list("abcde")


def test_a_rolled_back_savepoint_drops_its_rows_and_keeps_the_earlier_ones(store):
    with store.transaction(), store.batched_inserts():
        store.insert(INSERT, (1, "kept"))
        with pytest.raises(RuntimeError), store.transaction():
            store.insert(INSERT, (2, "dropped"))
            raise RuntimeError("refused bundle")
        store.insert(INSERT, (3, "kept too"))
    assert [r[0] for r in store.execute("SELECT k FROM t ORDER BY k")] == [1, 3]


def test_a_refused_row_refuses_the_transaction_and_saves_nothing(store):
    with pytest.raises(IntegrityError), store.transaction(), store.batched_inserts():
        store.insert(INSERT, (1, "a"))
        store.insert(INSERT, (1, "the same key again"))
    assert count(store) == 0 and not store._deferred
    with pytest.raises(IntegrityError), store.transaction(), store.batched_inserts():
        store.insert(INSERT, (2, None))  # NOT NULL
    assert count(store) == 0


def test_outside_the_context_an_insert_is_written_at_once(store):
    with store.transaction():
        store.insert(INSERT, (1, "a"))
        assert not store._deferred
        assert store.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # no flush needed
    assert count(store) == 1


# -- the collected rows are written only before what may touch their tables (issue 19) --------


def test_a_read_of_another_table_leaves_the_rows_collected_and_one_of_theirs_writes_them(store):
    """Accept: reading `u` does not write `t`'s rows (a projector's reads of other tables cost no write);
    refuse: reading `t`, in any case or quoting, writes them first."""
    with store.transaction(), store.batched_inserts():
        store.insert(INSERT, (1, "a"))
        assert store.scalar("SELECT count(*) FROM u") == 0
        assert store._deferred  # still collected
        assert store.scalar('SELECT count(*) FROM "T"') == 1
        assert not store._deferred
        store.insert(INSERT, (2, "b"))
        assert store.scalar("SELECT count(*) FROM [t]") == 2


def test_a_write_naming_the_table_or_anything_but_plain_sql_writes_the_rows_first(store):
    """An UPDATE of the table, a PRAGMA, a table whose name only starts alike: the first two write the
    collected rows before they run, the third does not need to."""
    store.execute("CREATE TABLE t_x (k INTEGER PRIMARY KEY)")
    with store.transaction(), store.batched_inserts():
        store.insert(INSERT, (1, "a"))
        store.execute("INSERT INTO t_x (k) VALUES (1)")
        assert store._deferred  # t_x is not t
        store.execute("UPDATE t SET v = 'changed' WHERE k = 1")
        assert store.scalar("SELECT v FROM t WHERE k = 1") == "changed"
        store.insert(INSERT, (2, "b"))
        store.execute("PRAGMA foreign_keys")
        assert not store._deferred


def test_two_statements_into_one_table_keep_the_order_rows_were_inserted_in(store):
    store.execute("CREATE TABLE log (n INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
    with store.transaction(), store.batched_inserts():
        for v in "abc":
            store.insert("INSERT INTO log (v) VALUES (?)", (v,))
            store.insert("INSERT INTO log (v) VALUES (upper(?))", (v,))
    assert [r[0] for r in store.execute("SELECT v FROM log ORDER BY n")] == list("aAbBcC")


def test_an_insert_reading_another_table_runs_at_once(store):
    with store.transaction(), store.batched_inserts():
        store.insert("INSERT INTO u (k) VALUES (?)", (7,))
        store.insert("INSERT INTO t (k, v) SELECT k, 'from u' FROM u", ())
        assert store.one("SELECT k, v FROM t") == (7, "from u")


def test_may_touch_is_conservative():
    from wardcrf.sqlstore import may_touch

    tables = frozenset({"records"})
    assert may_touch("SELECT * FROM records WHERE x = 1", tables)
    assert may_touch('SELECT * FROM "Records"', tables)
    assert may_touch("select 1 from [records]", tables)
    assert may_touch("WITH r AS (SELECT 1) DELETE FROM records", tables)
    assert may_touch("PRAGMA table_info(x)", tables)  # not plain DML: always
    assert may_touch("SAVEPOINT sp1", tables)
    assert not may_touch("SELECT * FROM records_x JOIN my_records ON 1", tables)
    assert not may_touch("SELECT sha256 FROM protocols WHERE active = 1", tables)


def test_the_schema_has_no_views_foreign_keys_or_reading_triggers():
    """What makes `may_touch` sound: a statement reads only the tables it names (no views, no foreign keys,
    and the only triggers refuse UPDATE/DELETE of the append-only tables without reading another)."""
    from wardcrf.store import APPEND_ONLY, guard_triggers

    s = Store.memory()
    try:
        s.migrate()
        assert s.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'view'") == 0
        tables = [r[0] for r in s.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert all(not s.rows(f"PRAGMA foreign_key_list([{t}])") for t in tables)
        guards = {sql for table in APPEND_ONLY for _name, sql in guard_triggers(table)}
        triggers = {r[0] for r in s.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")}
        assert triggers <= guards
    finally:
        s.close()


# -- reads remembered while a batch runs (`memoized`) -------------------------------------------


def test_a_memoized_read_is_asked_once_per_batch_until_its_table_is_written(store):
    asked: list[int] = []

    def read() -> int:
        asked.append(1)
        return int(store.scalar("SELECT count(*) FROM u"))

    with store.transaction():
        assert store.memoized("u.count", ("u",), read) == 0
        assert store.memoized("u.count", ("u",), read) == 0
        assert len(asked) == 2  # outside a batch: never remembered
        with store.batched_inserts():
            assert [store.memoized("u.count", ("u",), read) for _ in range(3)] == [0, 0, 0]
            assert len(asked) == 3
            store.insert(INSERT, (1, "a"))  # another table: still remembered
            store.execute("UPDATE t SET v = 'b'")
            assert store.memoized("u.count", ("u",), read) == 0 and len(asked) == 3
            store.insert("INSERT INTO u (k) VALUES (?)", (1,))  # its table: forgotten
            assert store.memoized("u.count", ("u",), read) == 1 and len(asked) == 4
            store.execute("DELETE FROM U")
            assert store.memoized("u.count", ("u",), read) == 0 and len(asked) == 5


def test_a_rolled_back_savepoint_forgets_what_was_read_inside_it(store):
    def read() -> int:
        return int(store.scalar("SELECT count(*) FROM u"))

    with store.transaction(), store.batched_inserts():
        with pytest.raises(RuntimeError), store.transaction():
            store.execute("INSERT INTO u (k) VALUES (1)")
            assert store.memoized("u.count", ("u",), read) == 1
            raise RuntimeError("refused")
        assert store.memoized("u.count", ("u",), read) == 0  # the rollback's state, not the memo's


# -- work put off to the batch's end (`later`) -----------------------------------------------------


def test_work_put_off_runs_once_per_key_when_the_batch_ends(store):
    done: list[str] = []

    def work(name: str) -> None:
        done.append(name)
        store.execute("INSERT OR REPLACE INTO u (k) VALUES (?)", (len(name),))

    with store.transaction():
        assert store.later("a", ("u",), lambda: work("a")) is False  # outside a batch: the caller does it
        with store.batched_inserts():
            for _ in range(3):
                assert store.later("a", ("u",), lambda: work("a")) is True
            assert store.later("bb", ("u",), lambda: work("bb")) is True
            store.insert(INSERT, (1, "t is not u"))
            assert done == []
        assert done == ["a", "bb"]
    assert count(store, "u") == 2


def test_a_reader_of_its_tables_or_a_savepoint_has_the_work_done_first(store):
    done: list[int] = []

    def work() -> None:
        done.append(1)
        store.execute("INSERT INTO u (k) VALUES (?)", (len(done),))

    with store.transaction(), store.batched_inserts():
        store.later("w", ("u",), work)
        assert store.scalar("SELECT count(*) FROM t") == 0 and done == []  # another table: still put off
        assert store.scalar("SELECT count(*) FROM u") == 1  # its table: done first
        store.later("w", ("u",), work)
        with pytest.raises(RuntimeError), store.transaction():  # done before the savepoint, kept after it
            raise RuntimeError("refused")
        assert done == [1, 1] and count(store, "u") == 2


def test_a_rolled_back_transaction_drops_the_work_put_off(store):
    done: list[int] = []
    with pytest.raises(RuntimeError), store.transaction(), store.batched_inserts():
        store.later("w", ("u",), lambda: done.append(1))
        raise RuntimeError("refused bundle")
    with store.transaction():
        pass
    assert not store._later
