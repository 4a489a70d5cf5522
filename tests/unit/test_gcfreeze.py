"""`gcfreeze.long_lived_frozen`: a hub import keeps what was made before it out of the collector's full
passes, and leaves the collector as it found it — whether the import applies, refuses or fails."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest
from synckit import open_
from test_import_parse_once import _hub_with_ward, _import, _seal, _ward_chain
from wardcrf.sync import hub

from wardcrf import gcfreeze
from wardcrf.errors import Refused


@pytest.fixture(autouse=True)
def _nothing_frozen() -> None:
    gc.unfreeze()  # a test starts with nothing frozen, whatever ran before it


class _Node:
    def __init__(self) -> None:
        self.other: object = None


def test_the_block_freezes_what_was_made_before_it_and_unfreezes_after() -> None:
    before = _Node()

    def collected_generation() -> int | None:
        return next((g for g in range(3) if any(o is before for o in gc.get_objects(g))), None)

    assert collected_generation() is not None
    with gcfreeze.long_lived_frozen():
        assert gc.get_freeze_count() > 0
        assert collected_generation() is None  # out of every generation a collection walks
    assert gc.get_freeze_count() == 0
    assert collected_generation() == 2  # back in the oldest generation


def test_the_jobs_own_cycles_are_still_collected_inside_the_block() -> None:
    with gcfreeze.long_lived_frozen():
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a reference cycle made by the job: freed only by the collector
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
        assert gc.get_freeze_count() > 0  # still frozen: the collection did not undo the freeze


def test_nested_and_concurrent_jobs_share_one_freeze_undone_by_the_last() -> None:
    inner_done, outer_may_end = threading.Event(), threading.Event()

    def other_job() -> None:
        with gcfreeze.long_lived_frozen():
            outer_may_end.wait(timeout=30)
        inner_done.set()

    with gcfreeze.long_lived_frozen():
        with gcfreeze.long_lived_frozen():
            pass
        assert gc.get_freeze_count() > 0  # the nested block's end kept the outer's freeze
        t = threading.Thread(target=other_job)
        t.start()
    assert gc.get_freeze_count() > 0  # the other thread's job is still running
    outer_may_end.set()
    assert inner_done.wait(timeout=30)
    t.join(timeout=30)
    assert gc.get_freeze_count() == 0


def test_an_exception_in_the_block_unfreezes() -> None:
    with pytest.raises(RuntimeError), gcfreeze.long_lived_frozen():
        raise RuntimeError("the job failed")
    assert gc.get_freeze_count() == 0


def _freeze_seen_by_apply(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    pragmas = hub._import_pragmas

    def watching(store: object) -> None:
        seen.append(gc.get_freeze_count())
        pragmas(store)  # type: ignore[arg-type]

    monkeypatch.setattr(hub, "_import_pragmas", watching)
    return seen


def test_a_hub_import_runs_frozen_and_leaves_the_collector_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, keys, recipient = _hub_with_ward(tmp_path)
    path = _seal(tmp_path, keys, recipient, _ward_chain(keys.device, 40))
    seen = _freeze_seen_by_apply(monkeypatch)
    s = open_(h)
    try:
        items = hub.import_files(s, [path])
    finally:
        s.close()
    assert [i.result.outcome.status for i in items if i.result] == ["applied"]
    assert seen and seen[0] > 0  # the apply ran with the objects made before it frozen
    assert gc.get_freeze_count() == 0
    assert _import(h, path).outcome.status == "already"  # one bundle at a time (`import_bundle`) alike
    assert gc.get_freeze_count() == 0


def test_a_refused_import_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    h, keys, recipient = _hub_with_ward(tmp_path)
    respelled = _ward_chain(keys.device, 5, {3: lambda line: line.replace('"seq":', '"seq": ', 1)})
    bad = _seal(tmp_path, keys, recipient, respelled)
    with pytest.raises(Refused):
        _import(h, bad)
    assert gc.get_freeze_count() == 0
