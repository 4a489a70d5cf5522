"""The ward list's first screen from the indexed ward queue: same rows, same order, flat cost.

`workflow.ward_page` (the dashboard's first screen) must say exactly what the
whole list says (`status.list_rows`, itself checked against `summary`), in
ward order, while the work it does stays the same however many participants
the site holds: the number of SQL statements is counted for sites of
different sizes, and the queries it runs are checked to use the queue's
indexes (EXPLAIN QUERY PLAN), never a scan of every participant. The queue
and the participant counter are projections: `db rebuild --check` re-derives
and compares them, and a process killed mid-write leaves them consistent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSWORD as SITE_PASSWORD
from wardcrf.sync import bundle, pending
from wf_support import Staff, _copy_site, evening_on_the_ward, make_ward, today

from wardcrf import projections, records, workflow
from wardcrf.clock import now_utc
from wardcrf.errors import PermissionDenied
from wardcrf.site import Site
from wardcrf.workflow import safety, status, wardqueue

URGENCY = {"overdue": 0, "due now": 1, "upcoming": 3, "held": 4}


@pytest.fixture(autouse=True)
def _evening(monkeypatch):
    evening_on_the_ward(monkeypatch)


def ward_key(row: dict) -> tuple[int, float, str]:
    """The ward order, written out independently of the queue: overdue (longest first), due now
    (least time left first), post-dose vitals owed, upcoming (soonest first), held, the rest."""
    nd = row.get("next_dose") or {}
    state = nd.get("state")
    rank = URGENCY.get(state, 5) if state else 5
    when = 0.0
    if state in ("overdue", "due now"):
        when = datetime.fromisoformat(nd["window"][1]).timestamp()
    elif state == "upcoming":
        when = datetime.fromisoformat(nd["due"]).timestamp()
    if rank > 2 and row.get("post_dose_vitals_due"):
        rank, when = 2, 0.0
    return rank, when, row["id"]


def attention(rows: list[dict]) -> int:
    return sum(
        1
        for r in rows
        if r["post_dose_vitals_due"] or (r["next_dose"] and r["next_dose"]["state"] in ("due now", "overdue"))
    )


@pytest.fixture
def site(data_dir: Path, _wf_template) -> Site:
    return _copy_site(_wf_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def _every_state(ward: Staff) -> dict[str, str]:
    clin = ward.clin
    names = {"only_consented": ward.consent()}
    names["failed"] = ward.consent()
    ward.screen(names["failed"], severity="mild")
    names["eligible"] = ward.consent()
    ward.screen(names["eligible"])
    sentinel, _ = ward.enrolled_participant(days_ago=6)
    ward.continue_(sentinel)
    names["sentinel"] = sentinel
    dosed, d0 = ward.enrolled_participant(days_ago=3)
    ward.dose(dosed, 1, d0 + timedelta(days=1))
    ward.dose(dosed, 2, d0 + timedelta(days=2), hh=11)
    names["dosed"] = dosed
    upcoming, _ = ward.enrolled_participant(days_ago=0)
    names["upcoming"] = upcoming
    positive = ward.consent()
    ward.screen(positive)
    ward.enroll(positive, today() - timedelta(days=1))
    ward.skin(positive, today() - timedelta(days=1), result="positive")
    names["positive"] = positive
    with clin.store.transaction():
        records.submit(
            clin,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-01T08:00:00+08:00",
                "witness_1": "a",
                "witness_2": "b",
                "photos": [],
            },
            subject="participant:WUH01-900",
        )
    return names


def _pages(session, at: datetime, size: int) -> list[dict]:
    rows, offset = [], 0
    while True:
        got = workflow.ward_page(session, offset=offset, limit=size, at=at)
        rows += got["rows"]
        if len(got["rows"]) < size:
            return rows
        offset += size


def test_first_screen_is_the_whole_list_in_ward_order_with_its_totals(ward):
    _every_state(ward)
    clin = ward.clin
    now = now_utc()
    for at in (now, now - timedelta(days=2), now + timedelta(days=1), now + timedelta(days=30)):
        everyone = sorted(status.list_rows(clin.store, at), key=ward_key)
        page = workflow.ward_page(clin, at=at)
        assert page["rows"] == everyone[: status.FIRST_SCREEN]
        assert page["total"] == len(everyone)
        assert page["attention"] == attention(everyone)
        # Page by page, in pieces of 2, the same list again: no one twice, no one left out.
        assert _pages(clin, at, 2) == everyone
        assert workflow.ward_page(clin, limit=None, at=at)["rows"] == everyone
    ranks = [ward_key(r)[0] for r in workflow.ward_page(clin, at=now)["rows"]]
    assert 0 in ranks or 1 in ranks  # someone due or overdue now, listed first
    assert ranks == sorted(ranks)


def test_a_dsmg_stop_holds_every_next_dose_and_only_vitals_need_attention(ward):
    names = _every_state(ward)
    ward.submit("dsmg_decision", who=ward.dsmg, participant=names["sentinel"], decision="stop", rationale="x")
    assert safety.hold(ward.clin.store)
    now = now_utc()
    everyone = sorted(status.list_rows(ward.clin.store, now), key=ward_key)
    page = workflow.ward_page(ward.clin, at=now)
    assert page["rows"] == everyone[: status.FIRST_SCREEN]
    assert page["attention"] == attention(everyone)
    assert all(r["next_dose"] is None or r["next_dose"]["state"] == "held" for r in page["rows"])


def test_an_amendment_moves_the_participant_in_the_queue(ward):
    dosed, d0 = ward.enrolled_participant(days_ago=3)
    event = ward.dose(dosed, 1, d0 + timedelta(days=1))
    before = workflow.ward_page(ward.clin)["rows"]
    assert next(r for r in before if r["id"] == dosed)["post_dose_vitals_due"] == [1]
    vit = ward.submit(
        "vitals",
        participant=dosed,
        timepoint="post_dose",
        dose=1,
        time=(datetime.fromisoformat(event.body["data"]["end"]) + timedelta(minutes=10)).isoformat(),
        temp="36.8",
        pulse="80",
        resp="16",
        oxysat="97",
    )
    assert workflow.ward_page(ward.clin)["attention"] == attention(
        status.list_rows(ward.clin.store, now_utc())
    )
    row = next(r for r in workflow.ward_page(ward.clin)["rows"] if r["id"] == dosed)
    assert row["post_dose_vitals_due"] == []
    # Amended into an unscheduled measurement: dose 1's post-dose vitals are owed again.
    workflow.amend(ward.clin, vit.id, {"timepoint": "unscheduled"}, reason="was a repeat measurement")
    row = next(r for r in workflow.ward_page(ward.clin)["rows"] if r["id"] == dosed)
    assert row["post_dose_vitals_due"] == [1]
    _n, diffs = projections.check(ward.clin.store)
    assert not diffs, diffs


def test_page_refused_without_read_permission(ward, monkeypatch):
    from wardcrf import roles

    monkeypatch.setattr(roles, "allowed", lambda role, action: action != "record.read")
    with pytest.raises(PermissionDenied):
        workflow.ward_page(ward.clin)


# -- work, not time --------------------------------------------------------------------------


def _bulk_participants(session, start: int, n: int, *, enrolled_days_ago: int | None = None) -> None:
    """Participants written straight through `records.submit` (fast): consent, screening, enrollment,
    five doses with post-dose vitals (treatment complete), unless `enrolled_days_ago` (in treatment)."""
    day0 = today() - timedelta(days=enrolled_days_ago or 400)
    with session.store.transaction():
        for i in range(start, start + n):
            subject = f"participant:WUH01-{i:05d}"
            records.submit(
                session,
                "consent",
                {
                    "consenter": "participant",
                    "form_version": "1.0",
                    "time": f"{day0}T08:00:00+08:00",
                    "witness_1": "a",
                    "witness_2": "b",
                    "photos": [],
                },
                subject=subject,
            )
            records.submit(
                session,
                "screening",
                {
                    "date": str(day0),
                    "dob": "1960-01-01",
                    "sex": "F",
                    "pcr_confirmed": True,
                    "severity": "severe",
                    "eligible": True,
                    "failed_criteria": [],
                },
                subject=subject,
            )
            records.submit(session, "enrollment", {"date": str(day0)}, subject=subject)
            if enrolled_days_ago is not None:
                continue
            for d in range(1, 6):
                t = f"{day0 + timedelta(days=d)}T09:00:00+08:00"
                records.submit(
                    session,
                    "dose",
                    {"kit_id": f"K{i}-{d}", "lot": "L1", "start": t, "end": t, "dose_number": d},
                    subject=subject,
                )
                records.submit(
                    session, "vitals", {"timepoint": "post_dose", "dose": d, "time": t}, subject=subject
                )


def _statements(store, fn) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        store.conn.set_trace_callback(None)
    return seen


def _vm_steps(store, fn) -> int:
    """SQLite virtual-machine steps (in hundreds) run by `fn`: the rows its queries touch, not time."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    store.conn.set_progress_handler(tick, 100)
    try:
        fn()
    finally:
        store.conn.set_progress_handler(None, 0)
    return steps[0]


def test_first_screen_work_does_not_grow_with_the_participants(session_for):
    clin = session_for("clinician")
    _bulk_participants(clin, 1, 10, enrolled_days_ago=2)  # the ward's active participants
    _bulk_participants(clin, 100, 60)
    small = _statements(clin.store, lambda: workflow.ward_page(clin))
    small_steps = _vm_steps(clin.store, lambda: workflow.ward_page(clin))
    whole_small = _vm_steps(clin.store, lambda: status.list_rows(clin.store, now_utc()))
    page_small = workflow.ward_page(clin)
    _bulk_participants(clin, 1000, 400)  # seven times the site's history
    large = _statements(clin.store, lambda: workflow.ward_page(clin))
    large_steps = _vm_steps(clin.store, lambda: workflow.ward_page(clin))
    whole_large = _vm_steps(clin.store, lambda: status.list_rows(clin.store, now_utc()))
    page_large = workflow.ward_page(clin)
    assert len(large) == len(small)  # the same statements
    # ... touching the same rows: the whole list's work grows with the site, the first screen's does not.
    assert whole_large > 4 * whole_small
    assert large_steps <= small_steps * 1.2 + 5, (small_steps, large_steps)
    assert page_large["total"] == page_small["total"] + 400 == wardqueue.count(clin.store)
    assert page_large["attention"] == page_small["attention"] == 10
    assert len(page_large["rows"]) == status.FIRST_SCREEN
    # Every statement on the queue or a projection reads through an index: no full scan.
    for sql in set(large):
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        plan = " | ".join(r[3] for r in clin.store.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
        for table in ("ward_queue", "participants", "doses", "vitals", "records", "adverse_events"):
            assert f"SCAN {table}" not in plan.replace(f"SCAN {table} USING", "USING"), (sql, plan)


def test_queue_segments_use_their_indexes():
    from wardcrf.store import Store

    store = Store.memory()
    store.migrate()
    for hold in (False, True):
        for where, params in wardqueue._segments(now_utc(), 120, hold):
            plan = " ".join(
                r[3]
                for r in store.conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT participant FROM ward_queue WHERE {where} LIMIT 60", params
                )
            )
            assert "USING" in plan and "INDEX ward_queue_" in plan, (where, plan)
    store.close()


# -- rebuild and crash consistency -------------------------------------------------------------


def test_rebuild_check_rederives_the_queue_and_the_counter(ward):
    _every_state(ward)
    store = ward.admin.store
    _n, diffs = projections.check(store)
    assert not diffs, diffs
    store.execute("UPDATE counters SET value = value + 1 WHERE name = 'participants'")
    pid = store.scalar("SELECT participant FROM ward_queue WHERE next_due IS NOT NULL LIMIT 1")
    store.execute("UPDATE ward_queue SET next_due = '2000-01-01T00:00:00Z' WHERE participant = ?", (pid,))
    _n, diffs = projections.check(store)
    assert {d.table for d in diffs} >= {"counters", "ward_queue"}
    before = workflow.ward_page(ward.clin)
    projections.rebuild(store)
    assert not projections.check(store)[1]
    after = workflow.ward_page(ward.clin)
    assert after["total"] == before["total"] - 1
    assert after["total"] == store.scalar("SELECT count(*) FROM participants")


WRITER = r"""
import io, sys
from datetime import date, timedelta
from PIL import Image
from wardcrf import records
from wardcrf.photos import importing
from wardcrf import features
from wardcrf.site import Site
features.install()
s = Site.open(sys.argv[1]).unlock("clinician", sys.argv[2])
round_ = int(sys.argv[3])
print("ready", flush=True)
i = 0
day0 = date.today() - timedelta(days=2)
while True:
    i += 1
    subject = f"participant:WUH01-{round_:02d}{i:04d}"
    page = io.BytesIO()
    Image.new("RGB", (16, 12), ((i * 40) % 256, (round_ * 60) % 256, (i * 7) % 256)).save(page, "JPEG")
    with s.store.transaction():
        ref = importing.import_bytes(s, f"page-{i}.jpg", page.getvalue()).ref
        records.submit(s, "consent", {"consenter": "participant", "form_version": "1.0",
            "time": f"{day0}T08:00:00+08:00", "witness_1": "a", "witness_2": "b", "photos": [ref]},
            subject=subject)
        records.submit(s, "screening", {"date": str(day0), "dob": "1960-01-01", "sex": "F",
            "pcr_confirmed": True, "severity": "severe", "eligible": True, "failed_criteria": []},
            subject=subject)
        records.submit(s, "enrollment", {"date": str(day0)}, subject=subject)
    t = f"{day0 + timedelta(days=1)}T09:00:00+08:00"
    records.submit(s, "dose", {"kit_id": f"K{round_}-{i}", "lot": "L1", "start": t, "end": t,
        "dose_number": 1}, subject=subject)
    if i % 2:
        records.submit(s, "vitals", {"timepoint": "post_dose", "dose": 1, "time": t}, subject=subject)
    print(i, flush=True)
"""


def test_sigkill_while_writing_leaves_queue_counter_and_photo_index_consistent(site):
    """Every counter and summary (ward queue, participants, photos pending) equals a replay of the log."""
    rng = random.Random(19)
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(site.data_dir), SITE_PASSWORD, str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        for _ in range(rng.randint(2, 8)):  # a number of acknowledged participants, not a timer
            line = proc.stdout.readline()
            assert line.endswith("\n"), proc.stderr.read() if proc.stderr else "the writer stopped"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        s = Site.open(site.data_dir).unlock("auditor", SITE_PASSWORD)
        try:
            _n, diffs = projections.check(s.store)
            assert not diffs, f"round {round_}: {diffs}"
            assert wardqueue.count(s.store) == s.store.scalar("SELECT count(*) FROM participants")
            assert s.store.scalar("SELECT count(*) FROM ward_queue") == wardqueue.count(s.store)
            lines = [
                r[0] for r in s.store.execute("SELECT line FROM events WHERE device = ?", (s.ctx.device,))
            ]
            assert pending.photos_after(s.store, s.ctx.device, 0) == len(bundle.photo_refs(lines))
        finally:
            s.close()


def test_an_enrollment_date_that_is_not_a_date_gives_no_due_time_and_no_crash():
    """Found by the sync fuzzer: a hub projecting a ward's record with enrollment date "0" crashed
    the import (ValueError) instead of listing the participant without a due time."""
    assert wardqueue._day("0") is None and wardqueue._day(None) is None and wardqueue._day("") is None
    assert str(wardqueue._day("2026-03-16")) == "2026-03-16"
