"""The schedule engine (issue 17): slots, timing words and prescribed doses, pure.

Examples for MEXCOVID (the engine on engine/mexcovid.toml agrees with
the pre-engine `status.dose_schedule` (tests/unit/format1_schedule.py) on format 1, for any enrollment, doses given
and moment) and for PALM and PALM007 (every third day, loading then a
variable maintenance course, BID/TID with spacing, weight bands); properties
with Hypothesis over generated regimens and zones with daylight saving.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from format1_schedule import dose_schedule  # the pre-engine formula, frozen as the oracle
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from wardcrf import protocol
from wardcrf.engine import model, schedule
from wardcrf.engine.model import Administration, Band, Dose, ScheduleSpec
from wardcrf.engine.schedule import Given
from wardcrf.errors import Refused

MEX = model.shipped("mexcovid.toml")
PALM = model.shipped("palm.toml")
P007 = model.shipped("palm007.toml")
SHANGHAI = ZoneInfo("Asia/Shanghai")
KINSHASA = "Africa/Kinshasa"


def _only(plan: dict[str, list[tuple[Administration, list[schedule.Slot]]]], regimen: str, i: int = 0):
    return plan[regimen][i]


# -- MEXCOVID: the engine says what status.dose_schedule says ---------------------------------


def _today(enrolled: date, given_n: int, holds: list[str], at: datetime):
    sched = protocol.default_protocol().schedule
    p = SimpleNamespace(enrolled_on=enrolled.isoformat())
    return dose_schedule(p, given_n, holds, sched, at)  # type: ignore[arg-type]


def _engine(enrolled: date | None, given_n: int, holds: list[str], at: datetime):
    plan = schedule.plan(MEX, {"enrollment": enrolled})
    adm, slots = _only(plan, "exo_inhalation")
    records = [Given(start=s.due or s.opens) for s in slots[:given_n]]
    rows = schedule.states(adm, slots, records, at, holds=holds)
    return schedule.dose_view(rows, at, "Asia/Shanghai")


@settings(max_examples=300, deadline=None)
@given(
    enrolled=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    given_n=st.integers(min_value=0, max_value=5),
    minutes=st.integers(min_value=-24 * 60, max_value=9 * 24 * 60),
    held=st.booleans(),
)
def test_mexcovid_next_dose_and_missing_doses_are_todays(
    enrolled: date, given_n: int, minutes: int, held: bool
) -> None:
    at = datetime.combine(enrolled, time(0), SHANGHAI) + timedelta(minutes=minutes)
    holds = ["DSMG hold: pause (record ev1)", "a positive skin test"] if held else []
    assert _engine(enrolled, given_n, holds, at) == _today(enrolled, given_n, holds, at)


@pytest.mark.parametrize(
    ("clock", "state"),
    [("06:59", "upcoming"), ("07:00", "due now"), ("11:00", "due now"), ("11:01", "overdue")],
)
def test_mexcovid_window_edges_are_inclusive_as_today(clock: str, state: str) -> None:
    enrolled = date(2020, 3, 15)
    at = datetime.combine(date(2020, 3, 16), time.fromisoformat(clock), SHANGHAI)
    nxt, _ = _engine(enrolled, 0, [], at)
    assert nxt is not None and nxt["state"] == state and nxt["dose"] == 1
    assert nxt == _today(enrolled, 0, [], at)[0]


def test_mexcovid_an_instant_given_in_another_zone_means_the_same() -> None:
    at_utc = datetime(2020, 3, 16, 3, 30, tzinfo=UTC)  # 11:30 in Wuhan
    assert _engine(date(2020, 3, 15), 0, [], at_utc) == _engine(
        date(2020, 3, 15), 0, [], at_utc.astimezone(ZoneInfo("America/New_York"))
    )
    assert _engine(date(2020, 3, 15), 0, [], at_utc)[0]["state"] == "overdue"


def test_mexcovid_not_enrolled_and_course_complete_have_no_next_dose() -> None:
    at = datetime(2020, 3, 20, tzinfo=UTC)
    assert _engine(None, 0, [], at) == (None, []) == _today_none()
    assert _engine(date(2020, 3, 15), 5, [], at) == (None, [])


def _today_none():
    sched = protocol.default_protocol().schedule
    return dose_schedule(SimpleNamespace(enrolled_on=None), 0, [], sched, datetime(2020, 3, 20, tzinfo=UTC))  # type: ignore[arg-type]


def test_mexcovid_a_missed_dose_stays_overdue_until_the_course_ends() -> None:
    plan = schedule.plan(MEX, {"enrollment": date(2020, 3, 15)})
    adm, slots = _only(plan, "exo_inhalation")
    at = datetime(2020, 3, 25, 9, 0, tzinfo=SHANGHAI)
    assert {r.state for r in schedule.states(adm, slots, [], at)} == {"overdue"}
    ended = datetime(2020, 3, 24, tzinfo=SHANGHAI)
    assert {r.state for r in schedule.states(adm, slots, [], at, course_ended=ended)} == {"missed"}


def test_mexcovid_the_dose_is_fixed() -> None:
    adm = MEX.regimens["exo_inhalation"].administrations[0]
    assert schedule.prescribed(adm, None) == Decimal("2.0e8")


# -- PALM: every third day, loading then maintenance, weight -------------------------------


def test_zmapp_every_third_day_from_randomization_day_1() -> None:
    plan = schedule.plan(PALM, {"randomization": date(2019, 1, 10)}, arm="ZMAPP", zone=KINSHASA)
    _adm, slots = _only(plan, "zmapp")
    assert [(s.number, s.day, s.date) for s in slots] == [
        (1, 1, date(2019, 1, 10)),
        (2, 4, date(2019, 1, 13)),
        (3, 7, date(2019, 1, 16)),
    ]
    tz = ZoneInfo(KINSHASA)
    first = slots[0]
    assert first.due is None
    assert first.opens == datetime(2019, 1, 10, tzinfo=tz)  # window ["0d", "+1d"]: the day and the next
    assert first.closes == datetime(2019, 1, 12, tzinfo=tz) - timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("kg", "mg"), [(62.37, "3119"), (62.33, "3117"), (62.31, "3116"), (3.5, "175"), (70, "3500")]
)
def test_zmapp_50_mg_per_kg_rounded_half_up_to_1_mg(kg: float, mg: str) -> None:
    adm = PALM.regimens["zmapp"].administrations[0]
    assert schedule.prescribed(adm, kg) == Decimal(mg)


def test_remdesivir_loading_then_a_variable_maintenance_course_numbered_across_the_regimen() -> None:
    anchors = {"randomization": date(2019, 1, 10)}
    stop = PALM.regimens["remdesivir"].administrations[1].schedule.stop_when
    assert stop is not None
    running = schedule.plan(PALM, anchors, arm="RDV", zone=KINSHASA, conditions={stop: False})["remdesivir"]
    (_loading, l_slots), (_maint, m_slots) = running
    assert [(s.number, s.day) for s in l_slots] == [(1, 1)]
    assert [s.number for s in m_slots] == list(range(2, 15))
    assert [s.day for s in m_slots] == list(range(2, 15))
    assert [s.required for s in m_slots] == [True] * 9 + [False] * 4
    stopped = schedule.plan(PALM, anchors, arm="RDV", zone=KINSHASA, conditions={stop: True})["remdesivir"]
    assert [s.number for s in stopped[1][1]] == list(range(2, 11))


@pytest.mark.parametrize(
    ("kg", "loading", "maintenance"),
    [(30, "150", "75"), (39.9, "200", "100"), (40, "200", "100"), (70, "200", "100"), (12.3, "62", "31")],
)
def test_remdesivir_weight_bands_with_rounding_and_maximum(kg: float, loading: str, maintenance: str) -> None:
    load, maint = PALM.regimens["remdesivir"].administrations
    assert (schedule.prescribed(load, kg), schedule.prescribed(maint, kg)) == (
        Decimal(loading),
        Decimal(maintenance),
    )


def test_a_per_kg_dose_is_capped_at_its_maximum() -> None:
    dose = Dose(
        unit="mg", per_kg=Decimal(50), round_to=Decimal(1), max=Decimal(4000), weight="screening.weight"
    )
    assert dose.prescribe(90) == Decimal(4000)
    assert dose.prescribe(79.99) == Decimal(4000)  # 3999.5 rounds half up to 4000
    assert dose.prescribe(79.98) == Decimal(3999)


@pytest.mark.parametrize("kg", [2.9, 120, 0, -5, float("nan"), None])
def test_a_weight_no_band_covers_is_refused_naming_it(kg: float | None) -> None:
    adm = P007.regimens["tecovirimat"].administrations[0]
    with pytest.raises(Refused) as info:
        schedule.prescribed(adm, kg)
    assert "weight" in str(info.value)


def test_the_arm_decides_the_regimens_and_an_unknown_arm_is_refused() -> None:
    assert [r.code for r in PALM.regimens_of("MAB114")] == ["mab114"]
    with pytest.raises(Refused, match="arm 'NOPE' is not an arm of PALM"):
        PALM.regimens_of("NOPE")
    with pytest.raises(Refused, match="name the participant's arm"):
        schedule.plan(PALM, {"randomization": date(2019, 1, 10)}, zone=KINSHASA)


def test_an_administration_whose_anchor_has_not_happened_has_no_slots() -> None:
    plan = schedule.plan(PALM, {"randomization": None}, arm="MAB114", zone=KINSHASA)
    assert plan == {"mab114": [(PALM.regimens["mab114"].administrations[0], [])]}


def test_a_single_infusion_not_given_in_its_day_is_missed() -> None:
    adm, slots = schedule.plan(PALM, {"randomization": date(2019, 1, 10)}, arm="MAB114", zone=KINSHASA)[
        "mab114"
    ][0]
    tz = ZoneInfo(KINSHASA)
    assert [r.state for r in schedule.states(adm, slots, [], datetime(2019, 1, 10, 23, 59, tzinfo=tz))] == [
        "window closing"
    ]
    assert [r.state for r in schedule.states(adm, slots, [], datetime(2019, 1, 11, 0, 0, tzinfo=tz))] == [
        "missed"
    ]


# -- PALM007: BID for 14 days, TID at 120 kg or more -----------------------------------------


def _p007(kg: float, rand: date = date(2023, 5, 2)):
    tec = P007.regimens["tecovirimat"].administrations
    conditions = {tec[0].when: kg < 120, tec[1].when: kg >= 120}
    return schedule.plan(
        P007, {"randomization": rand}, arm="TECOVIRIMAT", zone=KINSHASA, conditions=conditions
    )  # type: ignore[dict-item]


def test_palm007_twice_daily_for_14_days_under_120_kg() -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    assert adm.code == "q12h" and len(slots) == 28
    tz = ZoneInfo(KINSHASA)
    assert [s.due.astimezone(tz).strftime("%d %H:%M") for s in slots[:3]] == [
        "02 08:00",
        "02 20:00",
        "03 08:00",
    ]  # type: ignore[union-attr]
    assert slots[-1].day == 14 and slots[-1].date == date(2023, 5, 15)
    assert schedule.prescribed(adm, 70) == Decimal(600)
    assert all(b.due - a.due >= adm.schedule.min_spacing for a, b in itertools.pairwise(slots))  # type: ignore[operator]


def test_palm007_three_times_daily_from_120_kg_and_the_condition_must_be_given() -> None:
    [(adm, slots)] = _p007(130)["tecovirimat"]
    assert adm.code == "q8h" and len(slots) == 42
    with pytest.raises(Refused, match=r"screening\.weight < 120"):
        schedule.plan(P007, {"randomization": date(2023, 5, 2)}, arm="TECOVIRIMAT", zone=KINSHASA)


def test_palm007_placebo_has_the_same_schedule() -> None:
    tec = P007.regimens["tecovirimat"].administrations
    conditions = {tec[0].when: True, tec[1].when: False}
    active = _p007(70)["tecovirimat"][0][1]
    placebo = schedule.plan(
        P007, {"randomization": date(2023, 5, 2)}, arm="PLACEBO", zone=KINSHASA, conditions=conditions
    )  # type: ignore[dict-item]
    assert [(s.number, s.due) for s in placebo["placebo"][0][1]] == [(s.number, s.due) for s in active]


def _at(day: int, clock: str) -> datetime:
    return datetime.combine(date(2023, 5, day), time.fromisoformat(clock), ZoneInfo(KINSHASA))


@pytest.mark.parametrize(
    ("clock", "first", "second"),
    [
        ("05:59", "upcoming", "upcoming"),
        ("06:00", "due now", "upcoming"),
        ("08:59", "due now", "upcoming"),
        ("09:00", "window closing", "upcoming"),  # the last quarter of a 4 h window
        ("10:00", "window closing", "upcoming"),
        ("10:01", "overdue", "upcoming"),  # late_until = "next": until the next one opens
        ("17:59", "overdue", "upcoming"),
        ("18:00", "missed", "due now"),
    ],
)
def test_palm007_timing_words_through_the_first_day(clock: str, first: str, second: str) -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    rows = schedule.states(adm, slots, [], _at(2, clock))
    assert (rows[0].state, rows[1].state) == (first, second)


def test_palm007_records_fill_the_slot_whose_window_or_late_period_holds_them() -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    records = [Given(_at(2, "12:00"), record="ev-late"), Given(_at(2, "19:00"), record="ev-early")]
    rows = schedule.states(adm, slots, records, _at(3, "07:00"))
    assert [(r.state, r.timing, r.filled_by.record if r.filled_by else None) for r in rows[:3]] == [
        ("given", "late", "ev-late"),
        ("given", "on_time", "ev-early"),
        ("due now", None, None),
    ]


def test_palm007_a_dose_after_its_late_period_does_not_take_the_missed_slot() -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    rows = schedule.states(adm, slots, [Given(_at(2, "19:00"))], _at(2, "19:30"))
    assert [r.state for r in rows[:3]] == ["missed", "given", "upcoming"]


def test_a_not_given_record_fills_its_slot_as_not_given() -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    rows = schedule.states(adm, slots, [Given(_at(2, "08:10"), not_given=True)], _at(2, "08:30"))
    assert (rows[0].state, rows[0].timing) == ("not given", None)


def test_holds_hold_only_the_next_slot_to_give() -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    rows = schedule.states(adm, slots, [], _at(2, "19:00"), holds=["DSMG hold", "custody"])
    assert [r.state for r in rows[:3]] == ["missed", "held", "upcoming"]
    assert rows[1].hold == "DSMG hold; custody"


def test_a_naive_moment_is_refused() -> None:
    [(adm, slots)] = _p007(70)["tecovirimat"]
    with pytest.raises(ValueError, match="zone"):
        schedule.states(adm, slots, [], datetime(2023, 5, 2, 8, 0))


# -- properties: generated regimens, zones with daylight saving --------------------------------

ZONES = ["UTC", "Asia/Shanghai", "Europe/London", "America/New_York", "Africa/Kinshasa", "Australia/Sydney"]
DST_DATES = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 4, 5),
    date(2026, 10, 4),
]


@st.composite
def regimens(draw: st.DrawFn) -> tuple[Administration, ZoneInfo, date]:
    minutes = sorted(draw(st.sets(st.integers(min_value=0, max_value=24 * 60 - 1), min_size=1, max_size=4)))
    times = tuple(time(m // 60, m % 60) for m in minutes)
    every = draw(st.integers(min_value=1, max_value=4))
    per_day = draw(st.integers(min_value=1, max_value=len(times)))
    used = minutes[:per_day]
    gaps = [b - a for a, b in itertools.pairwise(used)] + [every * 24 * 60 - used[-1] + used[0]]
    width = draw(
        st.integers(min_value=0, max_value=max(0, min(gaps) - 61))
    )  # leaves an hour for daylight saving
    before = draw(st.integers(min_value=0, max_value=width))
    count = draw(st.integers(min_value=1, max_value=30))
    adm = Administration(
        code="a",
        product="P",
        route="ORAL",
        frequency="QD",
        dose=Dose(unit="mg", fixed=Decimal(1)),
        schedule=ScheduleSpec(
            anchor="randomization",
            first_day=draw(st.integers(0, 3)),
            every_days=every,
            count_min=count,
            count_max=count,
            times=times,
            per_day=per_day,
        ),
        window=(timedelta(minutes=-before), timedelta(minutes=width - before)),
        closing=None,
        late_until=draw(st.sampled_from(["window", "next", "course_end"])),
        numbering=draw(st.sampled_from(["slot", "given"])),
        worklist="dose {n}",
        record={},
    )
    start = draw(st.sampled_from(DST_DATES)) - timedelta(days=draw(st.integers(0, 3)))
    return adm, ZoneInfo(draw(st.sampled_from(ZONES))), start


@settings(max_examples=200, deadline=None)
@given(regimens())
def test_slots_count_order_spacing_and_windows_never_overlap(
    case: tuple[Administration, ZoneInfo, date],
) -> None:
    adm, tz, start = case
    slots = schedule.expand(adm, "r", start, anchor_day=1, zone=tz)
    spec = adm.schedule
    assert len(slots) == spec.count_max
    assert [s.number for s in slots] == list(range(1, spec.count_max + 1))
    per_date: dict[date, int] = {}
    for s in slots:
        per_date[s.date] = per_date.get(s.date, 0) + 1
        assert s.due is not None
        assert s.closes - s.opens == adm.window[1] - adm.window[0]  # elapsed time, whatever the clocks do
        local = s.due.astimezone(tz)
        wanted = spec.times[(s.number - 1) % spec.per_day]
        # the stated wall-clock time, or later by the gap when the clocks skip it
        shift = datetime.combine(local.date(), local.time()) - datetime.combine(s.date, wanted)
        assert timedelta(0) <= shift <= timedelta(hours=1), (s, wanted)
    assert max(per_date.values()) <= spec.per_day
    for a, b in itertools.pairwise(slots):
        assert a.due < b.due  # type: ignore[operator]
        assert a.closes < b.opens, (a, b)


@settings(max_examples=150, deadline=None)
@given(
    regimens(),
    st.lists(st.integers(min_value=-2 * 24 * 60, max_value=130 * 24 * 60), max_size=8),
    st.integers(min_value=-3 * 24 * 60, max_value=130 * 24 * 60),
)
def test_states_are_one_word_per_slot_move_forward_in_time_and_count_records(
    case: tuple[Administration, ZoneInfo, date], record_minutes: list[int], at_minutes: int
) -> None:
    adm, tz, start = case
    slots = schedule.expand(adm, "r", start, anchor_day=1, zone=tz)
    origin = datetime.combine(start, time(0), tz).astimezone(UTC)
    records = [Given(origin + timedelta(minutes=m)) for m in record_minutes]
    order = ["upcoming", "due now", "window closing", "overdue", "missed"]
    earlier = None
    for at in (origin + timedelta(minutes=at_minutes), origin + timedelta(minutes=at_minutes + 600)):
        rows = schedule.states(adm, slots, records, at)
        assert [r.slot for r in rows] == slots
        filled = [r for r in rows if r.filled_by is not None]
        assert len(filled) <= min(len(records), len(slots))
        if adm.numbering == "given":
            assert len(filled) == min(len(records), len(slots))
        open_now = [r for r in rows if r.state in ("due now", "window closing")]
        assert len(open_now) <= 1  # windows do not overlap: at most one slot is open
        if earlier is not None:
            for a, b in zip(earlier, rows, strict=True):
                if a.filled_by is None and b.filled_by is None:
                    assert order.index(a.state) <= order.index(b.state)
        earlier = rows


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=Decimal("0.5"), max_value=Decimal("300"), places=2),
    st.sampled_from([Decimal("1"), Decimal("0.5"), Decimal("5"), Decimal("10")]),
)
def test_a_weight_dose_is_a_multiple_of_its_rounding_never_above_its_maximum(
    kg: Decimal, step: Decimal
) -> None:
    dose = Dose(unit="mg", per_kg=Decimal("2.5"), round_to=step, max=Decimal(200), weight="w")
    value = dose.prescribe(kg)
    assert value <= 200
    assert value % step == 0 or value == 200
    assume(kg * Decimal("2.5") < 190)
    assert abs(value - kg * Decimal("2.5")) <= step / 2


def test_bands_are_low_inclusive_high_exclusive() -> None:
    dose = Dose(
        unit="mg",
        bands=(
            Band(Decimal(0), Decimal(40), per_kg=Decimal(5)),
            Band(Decimal(40), Decimal(500), dose=Decimal(200)),
        ),
        weight="w",
    )
    assert dose.prescribe(39.99) == Decimal("199.95")
    assert dose.prescribe(40) == Decimal(200)
    with pytest.raises(Refused, match=r"\[0, 40\), \[40, 500\)"):
        dose.prescribe(500)


def _daily(clock: str, window: tuple[str, str]) -> Administration:
    return Administration(
        code="a",
        product="P",
        route="ORAL",
        frequency="QD",
        dose=Dose(unit="mg", fixed=Decimal(1)),
        schedule=ScheduleSpec(
            anchor="enrollment", first_day=1, count_min=3, count_max=3, times=(time.fromisoformat(clock),)
        ),
        window=(model.duration(window[0]), model.duration(window[1])),
        closing=None,
        late_until="window",
        numbering="slot",
        worklist="dose {n}",
        record={},
    )


def test_a_due_time_the_clocks_skip_falls_later_by_the_gap_and_the_window_keeps_its_length() -> None:
    ny = ZoneInfo("America/New_York")  # 2026-03-08 02:00 EST becomes 03:00 EDT
    slots = schedule.expand(_daily("02:30", ("-2h", "+2h")), "r", date(2026, 3, 6), anchor_day=0, zone=ny)
    skipped = slots[1]
    assert skipped.date == date(2026, 3, 8)
    assert skipped.due is not None and skipped.due.astimezone(ny).strftime("%H:%M %Z") == "03:30 EDT"
    assert skipped.closes - skipped.opens == timedelta(hours=4)
    assert [s.due.astimezone(ny).strftime("%H:%M") for s in slots] == ["02:30", "03:30", "02:30"]  # type: ignore[union-attr]


def test_a_due_time_that_happens_twice_is_the_first() -> None:
    ny = ZoneInfo("America/New_York")  # 2026-11-01 01:00-02:00 happens twice
    slots = schedule.expand(_daily("01:30", ("-1h", "+1h")), "r", date(2026, 10, 31), anchor_day=0, zone=ny)
    assert slots[0].due is not None and slots[0].due.astimezone(ny).strftime("%H:%M %Z") == "01:30 EDT"
    assert slots[0].closes - slots[0].opens == timedelta(hours=2)


# -- the night the clocks skip: a day's due times keep their order and spacing ------------------


def _twice_daily(
    first: time, second: time, width_minutes: int = 0, spacing_minutes: int = 0
) -> Administration:
    return Administration(
        code="a",
        product="P",
        route="ORAL",
        frequency="BID",
        dose=Dose(unit="mg", fixed=Decimal(1)),
        schedule=ScheduleSpec(
            anchor="randomization",
            first_day=1,
            every_days=1,
            count_min=6,
            count_max=6,
            times=(first, second),
            per_day=2,
            min_spacing=timedelta(minutes=spacing_minutes),
        ),
        window=(timedelta(0), timedelta(minutes=width_minutes)),
        closing=None,
        late_until="window",
        numbering="slot",
        worklist="dose {n}",
        record={},
    )


SYDNEY = ZoneInfo("Australia/Sydney")  # 2026-10-04 02:00 AEST becomes 03:00 AEDT


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # the skipped time falls later by the gap (RFC 5545); the next one comes after it, `min_spacing`
        # (30 minutes here) after it
        (time(2, 0), time(3, 0), ["03:00", "03:30"]),
        (time(2, 30), time(3, 0), ["03:30", "04:00"]),
        (time(2, 30), time(3, 45), ["03:30", "04:00"]),
        (time(2, 30), time(4, 15), ["03:30", "04:15"]),
        # nothing near the gap moves
        (time(8, 0), time(20, 0), ["08:00", "20:00"]),
        (time(1, 0), time(3, 30), ["01:00", "03:30"]),
    ],
)
def test_on_the_night_the_clocks_skip_a_days_due_times_keep_order_and_spacing(
    first: time, second: time, expected: list[str]
) -> None:
    adm = _twice_daily(first, second, spacing_minutes=30)
    slots = schedule.expand(adm, "r", date(2026, 10, 3), anchor_day=0, zone=SYDNEY)
    night = [s for s in slots if s.date == date(2026, 10, 4)]
    assert [s.due.astimezone(SYDNEY).strftime("%H:%M") for s in night] == expected  # type: ignore[union-attr]
    # the other days are read off the wall clock as stated
    other = [s for s in slots if s.date != date(2026, 10, 4)]
    assert {s.due.astimezone(SYDNEY).time() for s in other} == {first, second}  # type: ignore[union-attr]
    for a, b in itertools.pairwise(slots):
        assert a.due < b.due  # type: ignore[operator]
        assert a.closes < b.opens
        assert b.due - a.due >= timedelta(minutes=30)  # type: ignore[operator]


def test_a_skipped_time_without_min_spacing_still_comes_before_the_next_and_windows_stay_apart() -> None:
    adm = _twice_daily(time(2, 0), time(3, 0), width_minutes=0)
    night = [s for s in schedule.expand(adm, "r", date(2026, 10, 3), anchor_day=0, zone=SYDNEY) if s.day == 1]
    first, second = night
    assert first.due.astimezone(SYDNEY).strftime("%H:%M") == "03:00"  # type: ignore[union-attr]
    assert first.due < second.due and first.closes < second.opens  # type: ignore[operator]
    assert second.due - first.due == timedelta(microseconds=1)  # type: ignore[operator]


def test_when_the_clocks_go_back_a_23_hour_gap_between_days_moves_nothing() -> None:
    adm = _twice_daily(time(2, 30), time(14, 30), width_minutes=30)
    slots = schedule.expand(adm, "r", date(2026, 4, 4), anchor_day=0, zone=SYDNEY)  # 03:00 becomes 02:00
    assert [s.due.astimezone(SYDNEY).strftime("%d %H:%M") for s in slots] == [  # type: ignore[union-attr]
        "05 02:30",
        "05 14:30",
        "06 02:30",
        "06 14:30",
        "07 02:30",
        "07 14:30",
    ]
