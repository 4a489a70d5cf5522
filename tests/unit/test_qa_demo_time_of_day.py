"""The demo tells the same story whatever the hour it is seeded (found in QA: participant 7 was
"overdue" when seeded after 11:00 Asia/Shanghai). The clock is pinned with WARDCRF_FAKE_NOW."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from wardcrf import protocol, workflow
from wardcrf.reports import audit_review
from wardcrf.site import Site
from wardcrf.workflow import demo

TZ = ZoneInfo("Asia/Shanghai")
MID = demo.COHORT[-1]


@pytest.mark.parametrize(
    ("local", "days_ago"),
    [
        ("2026-03-16T00:05", 3),  # just after midnight: dose 3 today, upcoming
        ("2026-03-16T06:59", 3),
        ("2026-03-16T10:29", 3),  # 31 min of the window left: dose 3 is still today's
        ("2026-03-16T10:30", 2),  # from here dose 2 was this morning, dose 3 tomorrow
        ("2026-03-16T15:00", 2),
        ("2026-03-16T23:59", 2),
    ],
)
def test_mid_course_enrollment_follows_the_hour(local, days_ago):
    schedule = protocol.default_protocol().schedule
    now = datetime.fromisoformat(local).replace(tzinfo=TZ)
    assert demo._enrolled_days_ago(MID, now, schedule) == days_ago
    assert demo._enrolled_days_ago(demo.COHORT[0], now, schedule) == demo.COHORT[0].enrolled_days_ago


@pytest.mark.parametrize(
    ("fake_now", "state", "in_today"),
    [
        ("2026-03-15T21:00:00Z", "upcoming", True),  # 05:00 on the ward
        ("2026-03-16T01:30:00Z", "due now", True),  # 09:30
        ("2026-03-16T07:00:00Z", "upcoming", False),  # 15:00: dose 3 is tomorrow morning
    ],
)
def test_seeded_demo_is_consistent_at_any_hour(tmp_path, monkeypatch, fake_now, state, in_today):
    monkeypatch.setenv("WARDCRF_FAKE_NOW", fake_now)
    result = demo.seed(tmp_path / "site")
    s = Site.open(tmp_path / "site").unlock("auditor", demo.DEMO_PASSWORD)
    try:
        rows = {r["id"]: r for r in workflow.list_participants(s)}
        mid = rows[result.participants[-1]]
        assert mid["status"] == "in treatment" and mid["doses_given"] == 2
        assert mid["next_dose"]["dose"] == 3 and mid["next_dose"]["state"] == state
        # the only deviation in the demo is participant 5's late dose 4; nothing is missing
        deviations = {pid: workflow.show(s, pid)["deviations"] for pid in rows}
        assert [(pid, d["kind"], d["dose"]) for pid, ds in deviations.items() for d in ds] == [
            (result.participants[4], "late dose", 4)
        ]
        items = workflow.today(s)["items"]
        assert all(i["state"] != "overdue" for i in items), items
        assert any(i["what"] == "dose 3" for i in items) is in_today
        assert all(r["ae_expected"] == 0 for r in rows.values())
    finally:
        s.close()
    # Seeded at any hour, the history reads as typed when it happened: nothing for a monitor to find.
    m = Site.open(tmp_path / "site").unlock("monitor", demo.DEMO_PASSWORD)
    try:
        found = audit_review.review(m, "2026-01-01", "2026-03-17")
    finally:
        m.close()
    assert found.findings == [], [(f.kind, f.what) for f in found.findings[:5]]
