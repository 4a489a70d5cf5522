"""PALM's regimens as the published sources give them (wardcrf/protocols/engine/palm.toml, its header).

ClinicalTrials.gov NCT03719586's summary [S]: ZMapp "given 3 times, 3 days apart"; MAb114 and REGN-EB3
"1 time"; remdesivir daily. Mulangu et al., NEJM 2019 [P]: remdesivir's loading dose on day 1 then a daily
maintenance dose from day 2 for 9 to 13 days. The engine places slots from `schedule` alone (the
`frequency` term is EX's text), so these pin the days and doses the ward will ask for.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from wardcrf.engine import model, schedule
from wardcrf.protocol_file import ProtocolFileError

RANDOMIZED = datetime(2020, 3, 16, 9, 0, tzinfo=UTC)  # 10:00 in Kinshasa: day 1 is 2020-03-16
STOP = "exists(disposition where stage == 'end_of_treatment')"
ADULT = Decimal(62)
CHILD = Decimal(20)


def _palm() -> model.Model:
    return model.shipped("palm.toml")


def _text() -> str:
    return (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")


def _adms(arm: str) -> list[model.Administration]:
    return [a for r in _palm().regimens_of(arm) for a in r.administrations]


def _dates(arm: str) -> list[date]:
    plan = schedule.plan(
        _palm(), {"randomization": RANDOMIZED}, arm=arm, zone="Africa/Kinshasa", conditions={STOP: False}
    )
    return [s.date for adms in plan.values() for _a, slots in adms for s in slots]


def test_zmapp_is_three_infusions_three_days_apart_on_days_1_4_and_7() -> None:
    (adm,) = _adms("ZMAPP")
    assert schedule.slot_days(adm) == [1, 4, 7]
    assert (adm.schedule.count_min, adm.schedule.count_max, adm.schedule.anchor) == (3, 3, "randomization")
    day1 = date(2020, 3, 16)
    assert _dates("ZMAPP") == [day1, day1 + timedelta(days=3), day1 + timedelta(days=6)]
    assert not {2, 3, 5, 6, 8, 9, 10} & set(schedule.slot_days(adm))  # nothing between or after
    assert (adm.dose.per_kg, adm.dose.unit, adm.route) == (Decimal(50), "mg", "INTRAVENOUS")
    assert adm.dose.prescribe(ADULT) == Decimal(3100)


def test_remdesivir_is_a_loading_dose_on_day_1_then_daily_from_day_2_for_9_to_13_days() -> None:
    loading, maintenance = _adms("RDV")
    assert schedule.slot_days(loading) == [1]
    assert schedule.slot_days(maintenance) == list(range(2, 15))  # at most 13 daily doses, days 2-14
    assert (maintenance.schedule.count_min, maintenance.schedule.count_max) == (9, 13)
    assert maintenance.schedule.stop_when == STOP
    assert (loading.dose.prescribe(ADULT), maintenance.dose.prescribe(ADULT)) == (Decimal(200), Decimal(100))
    assert loading.dose.prescribe(CHILD) < Decimal(200)  # weight-adjusted in children
    day1 = date(2020, 3, 16)
    assert _dates("RDV") == [day1 + timedelta(days=n) for n in range(14)]


@pytest.mark.parametrize(("arm", "per_kg", "minutes"), [("MAB114", 50, 60), ("REGNEB3", 150, 120)])
def test_the_antibodies_are_one_infusion_on_day_1(arm: str, per_kg: int, minutes: int) -> None:
    (adm,) = _adms(arm)
    assert schedule.slot_days(adm) == [1]
    assert (adm.dose.per_kg, adm.frequency) == (Decimal(per_kg), "ONCE")
    assert adm.dose.prescribe(ADULT) == ADULT * per_kg
    assert _dates(arm) == [date(2020, 3, 16)]
    spec = _palm().data["regimens"]
    declared = next(a for r in spec for a in r["administrations"] if a["product"] == arm)
    assert model.duration(declared["duration"]) == timedelta(minutes=minutes)  # [S]: 30-60 min; about 2 h


def test_the_file_names_the_source_of_each_regimen_and_what_it_says() -> None:
    text = _text()
    assert "[S] ClinicalTrials.gov NCT03719586, brief summary" in text
    assert "given 3 times, 3 days" in text and "It will be given 1 time." in text
    for arm in ("ZMapp", "remdesivir", "MAb114", "REGN-EB3"):
        assert f"#   {arm} " in text, arm  # each regimen's check, in the header
    zmapp = text[text.index('code = "q3d"') : text.index('worklist = "ZMapp infusion {n}"')]
    assert "days 1, 4, 7 [S][Z]" in zmapp and "3 days apart" in zmapp


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ('first_day = 1, every = "3d", count = 3 }', 'first_day = 1, every = "3d", count = 0 }'),
        ('first_day = 1, every = "3d", count = 3 }', 'first_day = 1, every = "3x", count = 3 }'),
        ('first_day = 1, every = "3d", count = 3 }', 'first_day = "one", every = "3d", count = 3 }'),
    ],
)
def test_a_malformed_zmapp_schedule_is_refused_naming_the_file_and_line(edit: str, problem: str) -> None:
    text = _text()
    assert text.count(edit) == 1
    with pytest.raises(ProtocolFileError) as err:
        model.parse(text.replace(edit, problem), "palm-bad.toml")
    line = text[: text.index(edit)].count("\n") + 1
    assert f"palm-bad.toml:{line}" in str(err.value), str(err.value)
    assert "\n" not in str(err.value).strip()
