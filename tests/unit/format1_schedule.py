"""The pre-engine MEXCOVID schedule formula, frozen: the oracle the engine is proven equal to.

Until issue 17 wired the engine, `workflow.status.dose_schedule` computed the
next dose and the missed doses with this formula (dose N on day N after
enrollment at the scheduled local time, ± the window, inclusive; the Nth dose
given is dose N). The ward now asks `engine.due`; the tests that proved the
engine gives these answers (test_engine_schedule.py, test_engine_protocol_v1.py)
compare against this copy, and bench/bench_engine.py times it as the baseline.
Nothing in wardcrf imports it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def due_time(enrolled_on: date, dose_number: int, at: Any, zone_name: str) -> datetime:
    """Dose N is due on day N (enrollment day = day 0) at the scheduled local time."""
    day = enrolled_on + timedelta(days=dose_number)
    return datetime.combine(day, at, ZoneInfo(zone_name))


def dose_schedule(
    p: Any, doses_given: int, holds: list[str], sched: Any, at: datetime
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The next dose (number, due time, window, state) and the doses already missed (verbatim, pre-engine)."""
    if not p.enrolled_on or doses_given >= sched.doses:
        return None, []
    enrolled = date.fromisoformat(p.enrolled_on)
    n = doses_given + 1
    due = due_time(enrolled, n, sched.time, sched.zone)
    win = timedelta(minutes=sched.window_minutes)
    local_now = at.astimezone(ZoneInfo(sched.zone))
    if holds:
        state = "held"
    elif local_now < due - win:
        state = "upcoming"
    elif local_now <= due + win:
        state = "due now"
    else:
        state = "overdue"
    next_dose: dict[str, Any] = {
        "dose": n,
        "due": due.isoformat(timespec="minutes"),
        "window": [
            (due - win).isoformat(timespec="minutes"),
            (due + win).isoformat(timespec="minutes"),
        ],
        "state": state,
    }
    if holds:
        next_dose["hold"] = "; ".join(holds)
    missing = []
    for m in range(n, sched.doses + 1):
        due_m = due_time(enrolled, m, sched.time, sched.zone)
        if local_now > due_m + win:
            missing.append(
                {
                    "kind": "missing dose",
                    "dose": m,
                    "due": due_m.isoformat(timespec="minutes"),
                    "given": None,
                    "event": None,
                }
            )
    return next_dose, missing
