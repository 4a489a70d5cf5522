"""`engine.memo.once_per`: an answer kept per frozen object, never given for another object."""

from __future__ import annotations

from wardcrf.engine import memo


class _Frozen:
    """Stands for a frozen model part: compared by identity, as the memo compares its owners."""


def test_an_answer_is_worked_out_once_per_owner() -> None:
    cache: dict[int, tuple[object, int]] = {}
    calls: list[object] = []
    a, b = _Frozen(), _Frozen()

    def work(owner: object) -> int:
        calls.append(owner)
        return len(calls)

    assert memo.once_per(cache, a, lambda: work(a)) == 1
    assert memo.once_per(cache, a, lambda: work(a)) == 1  # kept
    assert memo.once_per(cache, b, lambda: work(b)) == 2  # another owner: its own answer
    assert calls == [a, b]


def test_an_id_reused_by_a_later_object_does_not_answer_for_it() -> None:
    cache: dict[int, tuple[object, str]] = {}
    a = _Frozen()
    memo.once_per(cache, a, lambda: "a's")
    # A later object given the same id (CPython reuses a freed object's address): simulated by planting a's
    # entry under the new object's id, as a cache keyed by id alone would then answer.
    b = _Frozen()
    cache[id(b)] = cache.pop(id(a))
    assert memo.once_per(cache, b, lambda: "b's") == "b's"


def test_a_cache_past_its_limit_starts_again() -> None:
    cache: dict[int, tuple[object, int]] = {}
    owners = [_Frozen() for _ in range(5)]
    for i, o in enumerate(owners[:4]):
        memo.once_per(cache, o, lambda i=i: i, limit=3)
    assert len(cache) == 4
    memo.once_per(cache, owners[4], lambda: 4, limit=3)
    assert list(cache) == [id(owners[4])]  # cleared, then the new answer kept
    assert memo.once_per(cache, owners[0], lambda: 99, limit=3) == 99  # worked out again
