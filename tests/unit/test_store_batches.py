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
