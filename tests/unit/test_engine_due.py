"""What is due now (issue 17, step 3): `engine.due` is the one service the ward list, `today`, the
ward queue, the dose wizard and the dose record ask; for MEXCOVID it gives the pre-engine answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from format1_schedule import dose_schedule, due_time
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf import protocol
from wardcrf.engine import due, interpreter, model
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.engine.schedule import Given
from wardcrf.errors import Refused

SHANGHAI = ZoneInfo("Asia/Shanghai")
V1 = protocol.default_protocol()


@settings(max_examples=300, deadline=None)
@given(
    enrolled=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    given_n=st.integers(min_value=0, max_value=5),
    minutes=st.integers(min_value=-24 * 60, max_value=9 * 24 * 60),
    late=st.integers(min_value=-180, max_value=600),
    held=st.booleans(),
)
def test_the_service_gives_the_pre_engine_next_dose_and_missing_doses(enrolled, given_n, minutes, late, held):
    at = datetime.combine(enrolled, time(0), SHANGHAI) + timedelta(minutes=minutes)
    holds = ["DSMG hold", "positive skin test ev1"] if held else []
    # real start times, early or late: the Nth given is dose N whatever its time (format 1)
    starts = [
        due_time(enrolled, n, V1.schedule.time, "Asia/Shanghai") + timedelta(minutes=late)
        for n in range(1, given_n + 1)
    ]
    ours = due.next_and_missing(
        due.model_for(V1), {"enrollment": enrolled}, [Given(s) for s in starts], holds, at
    )
    before = dose_schedule(SimpleNamespace(enrolled_on=enrolled.isoformat()), given_n, holds, V1.schedule, at)
    assert ours == before


@settings(max_examples=200, deadline=None)
@given(
    enrolled=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    number=st.integers(min_value=1, max_value=5),
    minutes=st.integers(min_value=-600, max_value=600),
)
def test_a_dose_is_placed_as_before_due_time_and_timing(enrolled, number, minutes):
    due_at = due_time(enrolled, number, V1.schedule.time, "Asia/Shanghai")
    start = due_at + timedelta(minutes=minutes)
    placed_at, word, outside = due.placed(due.model_for(V1), {"enrollment": enrolled}, number, start)
    assert placed_at == due_at and placed_at.isoformat() == due_at.isoformat()
    w = V1.schedule.window_minutes
    assert word == ("early" if minutes < -w else "late" if minutes > w else "on_time")
    assert outside == max(0, abs(minutes) - w)


def test_nothing_is_due_before_enrollment_or_after_the_course():
    at = datetime(2020, 3, 20, tzinfo=SHANGHAI)
    m = due.model_for(V1)
    assert due.next_and_missing(m, {"enrollment": None}, [], [], at) == (None, [])
    five = [Given(at - timedelta(days=d)) for d in range(5)]
    assert due.next_and_missing(m, {"enrollment": date(2020, 3, 1)}, five, [], at) == (None, [])
    assert due.planned(m) == V1.schedule.doses == 5
    assert due.slot(m, {"enrollment": date(2020, 3, 1)}, 6) is None


def _palm_snapshot(ended: bool) -> Snapshot:
    palm = model.shipped("palm.toml")
    fields = palm.data["forms"]["disposition"]["fields"]
    recs = [Rec("disposition", interpreter.typed_values(fields, {"stage": "end_of_treatment"}), "ev-d", 5)]
    return Snapshot(
        records={"disposition": recs if ended else []}, now=datetime.now(UTC), zone=ZoneInfo("UTC")
    )


def test_a_regimen_of_loading_then_a_variable_maintenance_course_with_its_stop_condition():
    """PALM remdesivir: a loading dose then 9 to 13 maintenance doses until end of treatment; the
    engine evaluates `stop_when` over the records, numbers across the regimen and holds the next one."""
    palm = model.shipped("palm.toml")
    randomized = datetime(2019, 1, 10, 12, 0, tzinfo=UTC)
    anchors = {"randomization": randomized}
    at = randomized + timedelta(days=3, hours=1)
    going = due.conditions(palm, _palm_snapshot(False), "RDV")
    assert list(going.values()) == [False]
    stopped = due.conditions(palm, _palm_snapshot(True), "RDV")
    assert list(stopped.values()) == [True]
    one = [Given(randomized)]  # the loading dose given
    nxt, missing = due.next_and_missing(
        palm, anchors, one, [], at, arm="RDV", site_zone="Africa/Kinshasa", facts=going
    )
    assert nxt is not None and nxt["dose"] == 2 + len(missing)
    assert [m["dose"] for m in missing] == list(range(2, nxt["dose"]))
    held, _ = due.next_and_missing(
        palm, anchors, one, ["DSMG hold"], at, arm="RDV", site_zone="Africa/Kinshasa", facts=going
    )
    assert held is not None and held["state"] == "held" and held["hold"] == "DSMG hold"
    assert due.planned(palm, "RDV") == 14
    # after end of treatment only the required doses (loading + 9) remain in the plan
    late = randomized + timedelta(days=40)
    _, gone = due.next_and_missing(
        palm, anchors, one, [], late, arm="RDV", site_zone="Africa/Kinshasa", facts=stopped
    )
    assert [m["dose"] for m in gone] == list(range(2, 11))
    with pytest.raises(Refused, match="is needed"):
        due.next_and_missing(palm, anchors, one, [], at, arm="RDV", site_zone="Africa/Kinshasa")
