"""SDTM's visits read the engine's placement (issue #17: one owner per concept).

The engine (`engine/visits.py`) plans calendar visits (`planned`: day, VISITNUM, VISIT), dates them for a
participant (`dated`), places records in them (`dated_place`) and gives the `first_dose` anchor
(`first_dose`); the ward's list, TV (`exports/sdtm/engine_design.py`), SV and every domain's VISITNUM and
ODM's StudyEventData (`exports/sdtm/engine_visits.py`) read those, and nothing computes them again. Pure
tests first (TV = the plan = the ward's numbers; placement accepted and refused), then a PALM variant's
ward through the CLI: a visit recorded inside its window but off its day keeps its planned VISITNUM with
SVSTDTC its own date, one outside every window is unscheduled, an infusion given after its window keeps its
visit per administration (VISITNUM 1.1, SVSTDTC the day it was given), a visit anchored on the first dose
moves with it (on the ward's list and in SV), an arm-limited visit takes no other arm's records; SV read
back by pyreadstat (XPT) and validated against the Dataset-JSON schema.
"""

from __future__ import annotations

import importlib.resources
import json
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wardcrf.engine import model, schedule, visits
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.exports.sdtm.engine_design import design_from_model

KIN = ZoneInfo("Africa/Kinshasa")
RANDOMIZED = datetime(2020, 3, 16, 9, 0, tzinfo=UTC)  # 10:00 in Kinshasa: day 1 is 2020-03-16
DAY1 = date(2020, 3, 16)
UNS = '[[visits]]\ncode = "UNS"'
EXTRA = """[[visits]]
code = "ZINF"
num = 1.1
label = "ZMAPP INFUSION {n}"
epoch = "TREATMENT"
repeat = { per = "administration", regimen = "zmapp", step = 0.1 }
forms = ["infusion"]

[[visits]]
code = "D14Z"
num = 15.5
label = "ZMAPP DAY 14"
epoch = "FOLLOW-UP"
anchor = "randomization"
day = 14
window = ["0d", "0d"]
arms = ["ZMAPP"]
forms = ["vital_status"]

[[visits]]
code = "PD3"
num = 15.7
label = "POST-DOSE DAY 3"
epoch = "TREATMENT"
anchor = "first_dose"
day = 3
window = ["0d", "+1d"]
forms = ["vital_status"]

"""


def _source(extra: str = EXTRA, *edits: tuple[str, str]) -> str:
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")
    assert text.count(UNS) == 1
    text = text.replace(UNS, extra + UNS)
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def _model(*edits: tuple[str, str]) -> model.Model:
    return model.parse(_source(EXTRA, *edits), "palm-sv.toml")


def _status(day: date, n: int = 1) -> Rec:
    return Rec("vital_status", {"date": day, "status": "alive"}, f"vs{n}", n)


def _infusion(start: datetime, n: int = 1, *, not_given: bool = False) -> Rec:
    return Rec("infusion", {"start": start, "not_given": not_given}, f"inf{n}", n)


def _place(m: model.Model, found: list[visits.Dated], rec: Rec, **kw: Any) -> visits.Dated | None:
    when = rec.when()
    local = when.astimezone(KIN).date() if isinstance(when, datetime) else when
    assert local is not None
    snap = Snapshot(records={rec.form: [rec]}, now=RANDOMIZED, zone=KIN, anchors={})
    i = visits.dated_place(found, rec, local, snap, **kw)
    return None if i is None else found[i]


# -- one plan: TV, the ward's list and SV number calendar visits alike -----------------------------


@pytest.mark.parametrize("name", ["palm.toml", "palm007.toml", "mexcovid.toml"])
def test_tv_lists_the_engines_plan_of_every_shipped_calendar_visit(name: str) -> None:
    m = model.shipped(name)
    codes = {c.code for c in visits.calendar(m)}
    tv = [(v.code, v.num, v.name) for v in design_from_model(m).visits if v.code in codes]
    assert tv == [(p.visit.code, p.num, p.name) for p in visits.planned(m)]
    if name != "mexcovid.toml":
        assert len(tv) >= 3
    anchors = {"consent": RANDOMIZED, "randomization": RANDOMIZED, "enrollment": DAY1}
    dated = visits.dated(m, anchors, KIN, arm=m.arms[0].code, worklist_only=False)
    assert [(d.visit.code, d.num, d.name) for d in dated] == [
        (p.visit.code, p.num, p.name) for p in visits.planned(m) if p.visit.anchor in anchors
    ]


def test_a_repeat_with_a_step_numbers_the_wards_list_as_tv_does() -> None:
    """The engine's `dated` numbered a calendar repeat num, num + 1, ... whatever its `step`: the ward's
    list disagreed with TV (num + (n-1)·step). Both read `planned` now."""
    m = _model(
        (
            'repeat = { every = "1d", count = 14 }      # daily',
            'repeat = { every = "1d", count = 14, step = 0.5 }  #',
        ),
    )
    inpt = [
        d for d in visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="RDV") if d.visit.code == "INPT"
    ]
    assert [d.num for d in inpt] == [2 + i * 0.5 for i in range(14)]
    assert inpt[1].num == 2.5 and inpt[-1].num == 8.5  # not 3 and 15
    tv = [v.num for v in design_from_model(m).visits if v.code == "INPT" and not v.arms]
    assert tv == [d.num for d in inpt]


# -- placing a record ------------------------------------------------------------------------------


def test_a_record_inside_its_window_off_its_day_takes_the_planned_visit_and_outside_none() -> None:
    m = _model()
    found = visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="RDV", worklist_only=False)
    day28 = DAY1 + timedelta(days=27)
    off_day = _place(m, found, _status(day28 + timedelta(days=2)))
    assert off_day is not None and (off_day.name, off_day.num, off_day.target) == ("DAY 28", 16, day28)
    assert _place(m, found, _status(day28 + timedelta(days=4))) is None  # after the window: unscheduled
    assert _place(m, found, _status(day28 - timedelta(days=2))) is None  # before it: unscheduled


def test_an_administration_goes_to_the_visit_counted_from_its_schedules_anchor_for_sdtm_only() -> None:
    m = _model()
    found = visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="ZMAPP", worklist_only=False)
    day4 = datetime(2020, 3, 19, 11, 0, tzinfo=KIN)
    got = _place(m, found, _infusion(day4), administrations=m)
    assert got is not None and (got.name, got.num) == ("DAY 4", 5)
    assert _place(m, found, _infusion(day4)) is None  # the ward and ODM: no visit lists the infusion form
    late = datetime(2020, 4, 30, 11, 0, tzinfo=KIN)  # after every visit counted from randomization
    assert _place(m, found, _infusion(late), administrations=m) is None


def test_an_administration_given_after_its_window_keeps_its_visit_on_the_day_it_was_given() -> None:
    """A visit per administration: ZMapp infusion 1 (window days 1-2, late until infusion 2 opens on day 4)
    given on day 3 fills slot 1, so its occurrence keeps VISITNUM 1.1 and took place on day 3 (SV's
    SVSTDTC is the record's own date: the CLI test below); one given after infusion 2 opened is not it."""
    m = _model()
    stop = "exists(disposition where stage == 'end_of_treatment')"
    plan = schedule.plan(
        m, {"randomization": RANDOMIZED}, arm="ZMAPP", zone="Africa/Kinshasa", conditions={stop: False}
    )
    ((adm, slots),) = plan["zmapp"]
    day3 = datetime(2020, 3, 18, 11, 0, tzinfo=KIN)
    assert slots[0].closes < day3 < slots[1].opens  # outside its window, in its late period
    at = day3 + timedelta(hours=4)
    rows = schedule.states(adm, slots, [schedule.Given(day3.astimezone(UTC), record="E1")], at)
    assert (rows[0].filled_by is not None, rows[0].timing) == (True, "late")
    found = visits.occurrences(m, [("zmapp", adm, rows)], KIN, arm="ZMAPP")
    first = found[0]
    assert (first.name, first.num, first.day, first.local_date) == ("ZMAPP INFUSION 1", 1.1, 1, day3.date())
    snap = Snapshot(records={}, now=at, zone=KIN)
    assert visits.place(m, found, Rec("infusion", {"start": day3}, "E1"), day3.date(), snap) is first
    # the same infusion after infusion 2 opened fills slot 2, not slot 1
    day4 = datetime(2020, 3, 19, 11, 0, tzinfo=KIN)
    rows = schedule.states(adm, slots, [schedule.Given(day4.astimezone(UTC), record="E2")], day4)
    found = visits.occurrences(m, [("zmapp", adm, rows)], KIN, arm="ZMAPP")
    placed = visits.place(m, found, Rec("infusion", {"start": day4}, "E2"), day4.date(), snap)
    assert placed is not None and (placed.name, placed.num) == ("ZMAPP INFUSION 2", 1.2)


def test_an_arm_limited_visit_takes_only_its_arms_records() -> None:
    """SV placed records in every calendar visit whatever the participant's arm (TV plans an arm-limited
    visit for its arms only); the engine's `dated` leaves it out of the other arms."""
    m = _model()
    day14 = DAY1 + timedelta(days=13)
    for arm, expected in (("ZMAPP", ("ZMAPP DAY 14", 15.5)), ("RDV", None), (None, None)):
        found = visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm=arm, worklist_only=False)
        got = _place(m, found, _status(day14))
        assert (None if got is None else (got.name, got.num)) == expected, arm
    tv = {(v.code, v.arms) for v in design_from_model(m).visits if v.code == "D14Z"}
    assert tv == {("D14Z", ("ZMAPP",))}


def test_first_dose_is_the_earliest_administration_given_and_dates_its_visits() -> None:
    m = _model()
    day2 = datetime(2020, 3, 17, 23, 30, tzinfo=KIN)
    records = {
        "infusion": [
            _infusion(datetime(2020, 3, 16, 10, tzinfo=KIN), 1, not_given=True),  # not given: not the anchor
            _infusion(datetime(2020, 3, 20, 10, tzinfo=KIN), 2),
            _infusion(day2, 3),
        ]
    }
    first = visits.first_dose(m, records)
    assert first == day2
    assert visits.first_dose(m, {}) is None
    assert visits.first_dose(m, {"infusion": records["infusion"][:1]}) is None
    pd3 = [
        d
        for d in visits.dated(m, {"first_dose": first}, KIN, arm="RDV", worklist_only=False)
        if d.visit.code == "PD3"
    ]
    assert [(d.target, d.opens, d.closes, d.num) for d in pd3] == [
        (date(2020, 3, 19), date(2020, 3, 19), date(2020, 3, 20), 15.7)
    ]
    assert not any(d.visit.code == "PD3" for d in visits.dated(m, {}, KIN, arm="RDV", worklist_only=False))
    tv = next(v for v in design_from_model(m).visits if v.code == "PD3")
    assert (tv.num, tv.day) == (15.7, 3)  # VISITDY: day 1 is the first dose's


def test_a_malformed_record_date_or_form_places_nothing() -> None:
    m = _model()
    found = visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="RDV", worklist_only=False)
    odd = Rec("vital_status", {"date": DAY1 + timedelta(days=27), "status": Decimal(7)}, "x", 1)
    assert _place(m, found, odd) is not None  # a visit lists the form; its value is the form's business
    other = Rec("nosuchform\x07", {"date": DAY1 + timedelta(days=27)}, "y", 2)
    assert _place(m, found, other) is None
    assert (
        visits.first_dose(m, {"infusion": [Rec("infusion", {"start": "2020-03-16T10:00"}, "z", 3)]}) is None
    )


# -- a PALM variant's ward through the CLI ---------------------------------------------------------


def _rows(out: Path, name: str) -> list[dict[str, Any]]:
    d = json.loads((out / f"{name}.json").read_text("utf-8"))
    cols = [c["name"] for c in d["columns"]]
    return [dict(zip(cols, row, strict=True)) for row in d["rows"]]


def test_sv_of_a_palm_ward_places_visits_as_the_engine_does(cli, tmp_path: Path, monkeypatch) -> None:
    import jsonschema
    import pyreadstat
    from test_engine_ward_cli import _infusion as give
    from test_engine_ward_cli import _vitals, _ward
    from wf_support import ready_kit_on

    w = _ward(cli, tmp_path, monkeypatch, "palm", source=_source())
    zmapp: str | None = None
    other: str | None = None
    for _ in range(8):
        pid = w.consent()
        assert w.screen(pid).code == 0
        assert (
            w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
        )
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        arm = r.out.split("randomized: arm ", 1)[1].split()[0]
        if arm == "ZMAPP" and zmapp is None:
            zmapp = pid
        elif arm != "ZMAPP" and other is None:
            other = pid
        if zmapp and other:
            break
    assert zmapp is not None and other is not None, "a block of at most 8 holds every arm"
    day1 = w.now.astimezone(KIN).date()

    def on(n: int, hour: int = 10) -> datetime:
        d = day1 + timedelta(days=n - 1)
        return datetime(d.year, d.month, d.day, hour, tzinfo=KIN)

    # ZMapp infusion 1 given on day 3, after its window (days 1-2), before infusion 2 opens: the first dose,
    # so POST-DOSE DAY 3 is days 5-6 (counted from randomization it would be days 3-4)
    start = on(3)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root)
    assert _vitals(w, zmapp, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = give(w, zmapp, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    assert _vitals(w, zmapp, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0

    w.at(on(5, 9))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    shown = json.loads(w.run("participant", "show", zmapp, "--json", user="auditor").out)["visits"]
    pd3 = next(v for v in shown if v["name"] == "POST-DOSE DAY 3")  # on the ward's list, dated from the dose
    assert (pd3["state"], pd3["due"], pd3["visitnum"]) == ("due now", on(5).date().isoformat(), 15.7)
    other_shown = json.loads(w.run("participant", "show", other, "--json", user="auditor").out)["visits"]
    # no dose yet: the visit is not placed (listed as waiting for its first dose, owing nothing)
    assert [v["state"] for v in other_shown if v["name"] == "POST-DOSE DAY 3"] in ([], ["not yet placed"])

    w.at(on(36))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    for pid, day in ((zmapp, 6), (zmapp, 14), (zmapp, 30), (zmapp, 35), (other, 14)):
        d = on(day).date().isoformat()
        r = w.run("submit", "vital_status", "--participant", pid, f"date={d}", "status=alive")
        assert r.code == 0, r.err
    shown = json.loads(w.run("participant", "show", zmapp, "--json", user="auditor").out)["visits"]
    assert next(v for v in shown if v["name"] == "POST-DOSE DAY 3")["state"] == "done"
    assert next(v for v in shown if v["name"] == "DAY 28")["state"] == "done"

    out = w.root / "exports" / "sdtm"
    r = w.run("export", "sdtm", "--out", str(out), "--check", user="auditor")
    errors = [line for line in r.out.splitlines() if "[error]" in line]
    assert all("EXDOSFRQ: 'Q3D' is not in CDISC CT FREQ" in line for line in errors), r.out  # as PALM's test

    sv = [r for r in _rows(out, "sv") if r["USUBJID"] in (f"PALM-{zmapp}", f"PALM-{other}")]
    mine = {r["VISIT"]: r for r in sv if r["USUBJID"] == f"PALM-{zmapp}"}
    # inside DAY 28's window (days 27-31) but not on day 28: the planned visit, on its own date
    assert (mine["DAY 28"]["VISITNUM"], mine["DAY 28"]["SVSTDTC"], mine["DAY 28"]["SVPRESP"]) == (
        16,
        on(30).date().isoformat(),
        "Y",
    )
    assert mine["POST-DOSE DAY 3"]["VISITNUM"] == 15.7
    assert mine["POST-DOSE DAY 3"]["SVSTDTC"] == on(6).date().isoformat()
    # infusion 1, given after its window: its visit keeps VISITNUM 1.1 and took place when it was given
    # (the visit lists the infusion only: the vitals around it are the calendar's DAY 3)
    inf1 = mine["ZMAPP INFUSION 1"]
    assert (inf1["VISITNUM"], inf1["SVPRESP"]) == (1.1, "Y")
    assert inf1["SVSTDTC"] == inf1["SVENDTC"] == start.strftime("%Y-%m-%dT%H:%M:%S")
    assert (mine["DAY 3"]["VISITNUM"], mine["DAY 3"]["SVSTDTC"]) == (
        4,
        (start - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    assert "ZMAPP INFUSION 2" not in mine
    assert mine["ZMAPP DAY 14"]["VISITNUM"] == 15.5
    # day 35: outside every window: unscheduled, numbered after DAY 28, the last planned visit before it
    unplanned = [r for r in mine.values() if r["SVSTDTC"] == on(35).date().isoformat()]
    assert [(r["VISIT"], r["VISITNUM"], r["SVPRESP"], r["SVUPDES"]) for r in unplanned] == [
        ("UNSCHEDULED 16.01", 16.01, "", "Unscheduled assessment")
    ]
    ex = [r for r in _rows(out, "ex") if r["USUBJID"] == f"PALM-{zmapp}"]
    assert [(r["VISIT"], r["VISITNUM"]) for r in ex] == [("ZMAPP INFUSION 1", 1.1)]
    # another arm's day 14 is not ZMapp's visit: unscheduled
    theirs = [r for r in sv if r["USUBJID"] == f"PALM-{other}" and r["SVSTDTC"] == on(14).date().isoformat()]
    assert [r["VISIT"].startswith("UNSCHEDULED") and r["SVPRESP"] == "" for r in theirs] == [True]
    tv = {
        (r["ARMCD"], r["VISIT"])
        for r in _rows(out, "tv")
        if r["VISIT"] in ("ZMAPP DAY 14", "POST-DOSE DAY 3")
    }
    assert ("ZMAPP", "ZMAPP DAY 14") in tv and not any(a != "ZMAPP" and v == "ZMAPP DAY 14" for a, v in tv)

    # the independent readers: pyreadstat reads SV's XPT back, Dataset-JSON validates against its schema
    xpt = next(out.rglob("sv.xpt"))
    df, meta = pyreadstat.read_xport(str(xpt))
    assert meta.table_name == "SV"
    got = {
        (str(a), float(b), str(c)) for a, b, c in zip(df["VISIT"], df["VISITNUM"], df["SVSTDTC"], strict=True)
    }
    assert ("DAY 28", 16.0, on(30).date().isoformat()) in got
    assert ("UNSCHEDULED 16.01", 16.01, on(35).date().isoformat()) in got
    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    doc = json.loads((out / "sv.json").read_text("utf-8"))
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(doc)) == []
