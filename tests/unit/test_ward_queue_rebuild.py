"""The ward queue kept up record by record is the queue a rebuild derives, on every shipped trial's demo.

Each participant's `ward_queue` row is computed by the record hooks as the
ward works (one participant at a time, reading their own records), and by
`wardqueue.derive` after a replay (many participants' records read together,
`engine_rules.queue_reads`, a chunk of them at a time). Both must give the
same rows: on the demo wards of MEXCOVID (the default protocol, run on the
engine), PALM (open label, several arms) and PALM007 (blinded), the rows the
demo's appends left equal those a participant's own refresh gives and those
`db rebuild` derives, with chunks small enough that participants' records
are read beside others'.
"""

from __future__ import annotations

import pytest
from site_users import PASSWORD

from wardcrf import projections
from wardcrf.site import Site
from wardcrf.workflow import wardqueue

SEEDED = "2026-03-16T14:00:00+01:00"  # the demo's clock, pinned (tests/unit/test_engine_demo.py)


def _queue(store) -> list[tuple]:
    return [
        tuple(r)
        for r in store.execute(
            "SELECT participant, next_dose, next_due, held, vitals_owed, visit_due, visit_until"
            " FROM ward_queue ORDER BY participant"
        ).fetchall()
    ]


def _counter(store) -> int:
    return int(store.scalar("SELECT value FROM counters WHERE name = 'participants'") or 0)


@pytest.mark.parametrize("name", [None, "palm", "palm007"], ids=["mexcovid", "palm", "palm007"])
def test_the_queue_kept_up_live_is_what_a_rebuild_derives(cli, tmp_path, monkeypatch, name):
    target = tmp_path / (name or "mexcovid")
    chosen = ("--protocol", name) if name else ()
    r = cli(
        "demo", *chosen, "--no-tui", "--data-dir", str(target), "--password", PASSWORD,
        env={"WARDCRF_FAKE_NOW": SEEDED},
    )  # fmt: skip
    assert r.code == 0, r.err
    s = Site.open(target).unlock("admin", PASSWORD)
    try:
        store = s.store
        live = _queue(store)
        people = store.scalar("SELECT count(*) FROM participants")
        # a queue worth comparing: every participant has a row, some a dose to give, some vital signs owed
        assert len(live) == people == _counter(store) >= 4
        assert any(row[1] is not None for row in live) and any(row[2] is not None for row in live)
        # each participant's row recomputed alone, as a record's hook does: the same rows, no new count
        with store.transaction():
            for pid, *_ in live:
                wardqueue.refresh(store, pid)
        assert _queue(store) == live and _counter(store) == people
        # derived after a replay, reading two participants' records at a time: the same rows
        monkeypatch.setattr(wardqueue, "_CHUNK", 2)
        assert projections.rebuild(store) > 0
        assert _queue(store) == live and _counter(store) == people
        assert projections.check(store)[1] == []
    finally:
        s.close()


def test_a_row_the_rebuild_would_not_derive_is_found(cli, tmp_path):
    target = tmp_path / "palm"
    r = cli(
        "demo", "--protocol", "palm", "--no-tui", "--data-dir", str(target), "--password", PASSWORD,
        env={"WARDCRF_FAKE_NOW": SEEDED},
    )  # fmt: skip
    assert r.code == 0, r.err
    s = Site.open(target).unlock("admin", PASSWORD)
    try:
        store = s.store
        pid = store.scalar("SELECT participant FROM ward_queue WHERE next_dose IS NOT NULL LIMIT 1")
        store.execute("UPDATE ward_queue SET next_dose = next_dose + 1 WHERE participant = ?", (pid,))
        diffs = projections.check(store)[1]
        assert [d.table for d in diffs] == ["ward_queue"] and pid in diffs[0].key
    finally:
        s.close()


def test_an_amendment_moving_a_record_off_its_dose_moves_the_row_live_and_at_a_rebuild(
    cli, tmp_path, monkeypatch
):
    """A record's conditions are answered from its values as they stand (`interpreter.record_truth` keeps
    an answer by the values it reads, never by the record): amended from a dose's post-dose vital signs to
    an unscheduled reading, the dose owes its post-dose vitals again, live, recomputed alone and at a
    rebuild; amended back, it owes nothing. The record keeps its place in the projection (amended in
    place), and the same values were answered before in the same process."""
    target = tmp_path / "mexcovid"
    env = {"WARDCRF_FAKE_NOW": SEEDED, "WARDCRF_DATA_DIR": str(target)}
    r = cli("demo", "--no-tui", "--data-dir", str(target), "--password", PASSWORD, env=env)
    assert r.code == 0, r.err
    s = Site.open(target).unlock("admin", PASSWORD)
    try:
        store = s.store
        pid, event = store.execute(
            "SELECT q.participant, r.event_id FROM ward_queue q JOIN records r"
            " ON r.subject = 'participant:' || q.participant AND r.form = 'vitals'"
            " WHERE q.next_dose IS NOT NULL AND q.vitals_owed = 0 AND r.data LIKE '%\"post_dose\"%'"
            " ORDER BY r.rowid DESC LIMIT 1"
        ).fetchone()

        def owed() -> int:
            return int(store.scalar("SELECT vitals_owed FROM ward_queue WHERE participant = ?", (pid,)))

        for timepoint, want in (("unscheduled", 1), ("post_dose", 0)):
            r = cli(
                "amend", event, f"timepoint={timepoint}", "--reason", "the reading's timepoint corrected",
                user="clinician", env=env,
            )  # fmt: skip
            assert r.code == 0, r.err
            live = _queue(store)
            assert owed() == want
            with store.transaction():
                wardqueue.refresh(store, pid)
            assert _queue(store) == live
            monkeypatch.setattr(wardqueue, "_CHUNK", 2)
            assert projections.rebuild(store) > 0
            assert _queue(store) == live and owed() == want
            assert projections.check(store)[1] == []
    finally:
        s.close()
