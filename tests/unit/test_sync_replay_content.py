"""Replays are recognised by content, not by manifest bytes (issue 15, finding 5).

A ward restored from a copy taken before an export has no record of the
bundles it sent; exporting again makes manifests that differ only in
`created` (or a bundle cut at another size). The hub holds exactly those
events already: that is a replay, answered "already applied", not a fork.
A bundle that reuses the seqs with other events is still a fork.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


@pytest.fixture
def pair(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    return w, h


def export(w, to: Path, **kw) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to, **kw).files
    finally:
        s.close()


def hub_import(h, path: Path) -> hub.ImportResult:
    s = open_(h)
    try:
        return hub.import_file(s, path)
    finally:
        s.close()


def hub_count(h, sql: str) -> int:
    with ledger(h) as (_s, store):
        return int(store.scalar(sql))


def restore(w, copy: Path) -> None:
    shutil.rmtree(w.data_dir)
    shutil.copytree(copy, w.data_dir)


def test_a_re_export_of_the_same_events_is_a_replay_not_a_fork(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 3)
    before_export = tmp_path / "copy"
    shutil.copytree(w.data_dir, before_export)
    first = export(w, tmp_path / "u1")
    assert [hub_import(h, f).outcome.status for f in first] == ["applied"]
    restore(w, before_export)  # the laptop comes back from the copy; the same events, re-exported
    again = export(w, tmp_path / "u2")
    assert again[0].name == first[0].name and again[0].read_bytes() != first[0].read_bytes()
    res = hub_import(h, again[0])
    assert res.outcome.status == "already", res.outcome.message
    assert "same events" in res.outcome.message
    assert hub_count(h, "SELECT count(*) FROM sync_held") == 0
    assert hub_count(h, "SELECT count(*) FROM events WHERE type = 'sync.fork_detected'") == 0
    # And the ward carries on: its next bundle follows the one the hub holds.
    add_notes(w, 2)
    res = hub_import(h, export(w, tmp_path / "u3")[-1])
    assert res.outcome.status == "applied", res.outcome.message


def test_the_same_events_cut_into_other_bundles_are_a_replay(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 40, text="x" * 2000)
    before_export = tmp_path / "copy"
    shutil.copytree(w.data_dir, before_export)
    big = export(w, tmp_path / "u1")
    assert [hub_import(h, f).outcome.status for f in big] == ["applied"]
    restore(w, before_export)
    small = export(w, tmp_path / "u2", limit=64 * 1024)
    assert len(small) > 1
    outcomes = [hub_import(h, f).outcome for f in small]
    assert all(o.status == "already" for o in outcomes), [o.message for o in outcomes]
    assert hub_count(h, "SELECT count(*) FROM sync_held") == 0


def test_other_events_under_the_same_seqs_are_still_a_fork(pair, tmp_path: Path) -> None:
    w, h = pair
    before_notes = tmp_path / "copy"
    shutil.copytree(w.data_dir, before_notes)
    add_notes(w, 3)
    first = export(w, tmp_path / "u1")
    assert hub_import(h, first[0]).outcome.status == "applied"
    restore(w, before_notes)
    add_notes(w, 3, text="only on the restored copy")
    res = hub_import(h, export(w, tmp_path / "u2")[0])
    assert res.outcome.status == "fork", res.outcome.message


def test_a_re_cut_bundle_straddling_held_and_new_events_applies_the_new_ones(pair, tmp_path: Path) -> None:
    """The restored ward adds events and exports: its bundle 1 now holds the 3 events the hub
    has and 2 new ones. The held part is a replay, the rest continues the chain: applied, no fork."""
    w, h = pair
    add_notes(w, 3)
    before_export = tmp_path / "copy"
    shutil.copytree(w.data_dir, before_export)
    assert [hub_import(h, f).outcome.status for f in export(w, tmp_path / "u1")] == ["applied"]
    restore(w, before_export)
    add_notes(w, 2, text="after the restore")
    (again,) = export(w, tmp_path / "u2")
    res = hub_import(h, again)
    assert res.outcome.status == "applied", res.outcome.message
    assert "already held" in res.outcome.message and res.outcome.events == 2
    assert hub_count(h, "SELECT count(*) FROM sync_held") == 0
    assert hub_count(h, "SELECT count(*) FROM events WHERE type = 'sync.fork_detected'") == 0
    assert hub_count(h, "SELECT count(*) FROM events WHERE type = 'note.added'") == 5
    # Both cuts are now answered as the same content, and the ward's next bundle follows.
    assert hub_import(h, again).outcome.status == "already"
    add_notes(w, 1)
    res = hub_import(h, export(w, tmp_path / "u3")[-1])
    assert res.outcome.status == "applied", res.outcome.message
    assert hub_count(h, "SELECT count(*) FROM events WHERE type = 'note.added'") == 6


def test_a_smaller_cut_straddling_the_hubs_head_applies_its_new_tail(pair, tmp_path: Path) -> None:
    """Cut at another size after the restore: bundle 1 is all held (a replay), bundle 2 starts
    inside what the hub holds and goes past it."""
    w, h = pair
    add_notes(w, 30, text="x" * 2000)
    before_export = tmp_path / "copy"
    shutil.copytree(w.data_dir, before_export)
    assert [hub_import(h, f).outcome.status for f in export(w, tmp_path / "u1")] == ["applied"]
    restore(w, before_export)
    add_notes(w, 30, text="y" * 2000)
    small = export(w, tmp_path / "u2", limit=64 * 1024)
    assert len(small) > 1
    statuses = [hub_import(h, f).outcome.status for f in small]
    assert "fork" not in statuses and statuses[0] == "already", statuses
    assert hub_count(h, "SELECT count(*) FROM events WHERE type = 'note.added'") == 60
    assert hub_count(h, "SELECT count(*) FROM sync_held") == 0


def test_a_bundle_that_differs_inside_what_the_hub_holds_is_a_fork_even_with_a_new_tail(
    pair, tmp_path: Path
) -> None:
    w, h = pair
    before_notes = tmp_path / "copy"
    shutil.copytree(w.data_dir, before_notes)
    add_notes(w, 3)
    assert [hub_import(h, f).outcome.status for f in export(w, tmp_path / "u1")] == ["applied"]
    restore(w, before_notes)  # other notes under the same seqs, and more of them
    add_notes(w, 5, text="another history")
    res = hub_import(h, export(w, tmp_path / "u2")[0])
    assert res.outcome.status == "fork", res.outcome.message
    assert hub_count(h, "SELECT count(*) FROM events WHERE type = 'note.added'") == 3
