"""Format-1 protocols upgraded to the engine's model (issue 17, docs/engine.md "Format 1 files").

The upgrade of the shipped format-1 MEXCOVID equals engine/mexcovid.toml in
everything the schedule engine runs; any format-1 schedule, upgraded, gets
from the engine the answers the pre-engine `status.dose_schedule` (tests/unit/format1_schedule.py) gives today.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from format1_schedule import dose_schedule  # the pre-engine formula, frozen as the oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf import protocol
from wardcrf.engine import model, protocol_v1, schedule

V1 = protocol.default_protocol()
ENGINE = model.shipped("mexcovid.toml")


def test_the_upgrade_of_format_1_mexcovid_equals_the_format_2_file() -> None:
    up = protocol_v1.upgrade(V1)
    assert (up.id, up.version) == (ENGINE.id, ENGINE.version) == ("MEXCOVID", "1.0")
    assert up.calendar == ENGINE.calendar
    assert [a.code for a in up.arms] == [a.code for a in ENGINE.arms] == ["HAMSCEXO"]
    assert up.products == ENGINE.products == {"HAMSC_EXOS"}
    [mine] = up.regimens_of()
    [theirs] = ENGINE.regimens_of()
    assert len(mine.administrations) == len(theirs.administrations) == 1
    # format 1 names no regimen or administration: everything else is equal
    assert (
        dataclasses.replace(mine.administrations[0], code=theirs.administrations[0].code)
        == theirs.administrations[0]
    )


def test_the_format_2_file_lists_the_shipped_format_1_file_it_reencodes() -> None:
    digest = hashlib.sha256(protocol.default_source().encode("utf-8")).hexdigest()
    assert f"sha256:{digest}" in ENGINE.data["protocol"]["reencodes"]


def test_the_upgraded_and_the_format_2_schedules_are_the_same_slots() -> None:
    anchors = {"enrollment": date(2020, 3, 15)}
    [(_a, up)] = schedule.plan(protocol_v1.upgrade(V1), anchors)["schedule"]
    [(_b, engine)] = schedule.plan(ENGINE, anchors)["exo_inhalation"]
    strip = [dataclasses.replace(s, regimen="", administration="") for s in up]
    assert strip == [dataclasses.replace(s, regimen="", administration="") for s in engine]


@pytest.mark.parametrize(
    ("name", "code"), [("haMSC-Exos", "HAMSC_EXOS"), ("ZMapp", "ZMAPP"), ("", "PRODUCT"), ("!!", "PRODUCT")]
)
def test_product_codes_from_names(name: str, code: str) -> None:
    assert protocol_v1.product_code(name) == code


def _variant(doses: int, clock: str, zone: str, window: int) -> protocol.Protocol:
    src = protocol.default_source()
    for old, new in (
        ("doses = 5", f"doses = {doses}"),
        ('time = "09:00"', f'time = "{clock}"'),
        ('zone = "Asia/Shanghai"', f'zone = "{zone}"'),
        ("window_minutes = 120", f"window_minutes = {window}"),
    ):
        assert old in src
        src = src.replace(old, new, 1)
    return protocol.parse(src, "variant.toml")


@settings(max_examples=60, deadline=None)
@given(
    doses=st.integers(min_value=1, max_value=7),
    clock=st.sampled_from(["00:00", "06:30", "09:00", "23:45"]),
    zone=st.sampled_from(["Asia/Shanghai", "Africa/Kinshasa", "UTC", "Asia/Kolkata"]),
    window=st.integers(min_value=0, max_value=600),
    given_n=st.integers(min_value=0, max_value=7),
    minutes=st.integers(min_value=-600, max_value=10 * 24 * 60),
)
def test_any_format_1_schedule_upgraded_gives_todays_answers(
    doses: int, clock: str, zone: str, window: int, given_n: int, minutes: int
) -> None:
    p = _variant(doses, clock, zone, window)
    enrolled = date(2024, 2, 27)
    at = datetime.combine(enrolled, time(0), ZoneInfo(zone)) + timedelta(minutes=minutes)
    today = dose_schedule(
        SimpleNamespace(enrolled_on=enrolled.isoformat()), given_n, [], p.schedule, at
    )  # type: ignore[arg-type]
    [(adm, slots)] = schedule.plan(protocol_v1.upgrade(p), {"enrollment": enrolled})["schedule"]
    rows = schedule.states(adm, slots, [schedule.Given(s.opens) for s in slots[:given_n]], at)
    assert schedule.dose_view(rows, at, zone) == today
