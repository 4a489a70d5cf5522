"""Bulk append without a savepoint per projector-less event keeps every atomicity promise (QA perf fix).

Inside a batch, an event type without projectors is appended without its own
savepoint (one INSERT is all or nothing); an event whose projector refuses still
rolls back alone. Either way a failed event leaves the chain as it was, the batch
can go on, and the committed log verifies.
"""

from __future__ import annotations

import pytest

from wardcrf import eventlog
from wardcrf.errors import Refused, StoreError


def _savepoints(store, monkeypatch) -> list[str]:
    seen: list[str] = []
    real = store.conn

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql.startswith("SAVEPOINT"):
                seen.append(sql)
            return real.execute(sql, *args)

    monkeypatch.setattr(store, "conn", Spy())
    return seen


def test_projectorless_events_in_a_batch_take_no_savepoint(admin, monkeypatch):
    seen = _savepoints(admin.store, monkeypatch)
    with admin.store.transaction():
        for i in range(5):
            admin.append(type="qa.note", subject="site:WUH01", body={"i": i})
    assert seen == []
    # an event type with projectors still gets its savepoint
    with admin.store.transaction():
        admin.append(
            type="user.language_set", subject="user:admin", body={"username": "admin", "language": "zh"}
        )
    assert len(seen) == 1


def test_a_failed_insert_in_a_batch_leaves_the_chain_as_it_was(admin, monkeypatch):
    store = admin.store
    before = eventlog.count(store)
    real = store.execute
    fail = {"left": 1}

    def flaky(sql, params=()):
        if sql.startswith("INSERT INTO events") and fail["left"]:
            fail["left"] -= 1
            raise StoreError("disk full: simulated")
        return real(sql, params)

    with store.transaction():
        first = admin.append(type="qa.note", subject="site:WUH01", body={"i": 1}).event
        monkeypatch.setattr(store, "execute", flaky)
        with pytest.raises(StoreError):
            admin.append(type="qa.note", subject="site:WUH01", body={"i": 2})
        monkeypatch.setattr(store, "execute", real)
        third = admin.append(type="qa.note", subject="site:WUH01", body={"i": 3}).event
    assert third.seq == first.seq + 1 and third.prev == first.hash
    assert eventlog.count(store) == before + 2
    n, problems = eventlog.verify_chains(store)
    assert n == before + 2 and problems == []


def test_a_refused_projector_in_a_batch_undoes_only_its_event(session_for):
    admin = session_for("clinician")
    store = admin.store
    before = eventlog.count(store)
    with store.transaction():
        first = admin.append(type="qa.note", subject="site:WUH01", body={"i": 1}).event
        with pytest.raises(Refused, match="names unknown record"):
            admin.append(
                type="record.amended", subject=None, body={"form": "x", "changes": {}}, amends="nope-1"
            )
        last = admin.append(type="qa.note", subject="site:WUH01", body={"i": 2}).event
    assert last.seq == first.seq + 1 and last.prev == first.hash
    assert eventlog.count(store) == before + 2
    assert eventlog.verify_chains(store)[1] == []


def test_a_rolled_back_batch_leaves_nothing(admin):
    store = admin.store
    before = eventlog.count(store)
    head = store.one("SELECT seq, hash FROM chain_heads")
    with pytest.raises(RuntimeError), store.transaction():
        for i in range(3):
            admin.append(type="qa.note", subject="site:WUH01", body={"i": i})
        raise RuntimeError("caller gives up")
    assert eventlog.count(store) == before and store.one("SELECT seq, hash FROM chain_heads") == head
    after = admin.append(type="qa.note", subject="site:WUH01", body={"i": 9}).event
    assert after.seq == head[0] + 1 and eventlog.verify_chains(store)[1] == []
