"""The `last_dose` and `treatment_end` anchors reach the exports from the engine (issue #17, one owner).

`engine.visits` owns the course's end: `treatment_ended` (the `[disposition]` records' end of treatment),
`course_end` (that, else the day after the last administration once every one placed is recorded or
missed) and `course_anchors` (`timeline` with `last_dose` = the latest start given and `treatment_end` =
the course end, blank while the course runs). SV and ODM date the visits counted from them through it, on
the days the ward's list dates them. Pure tests first (accept and refuse: each rule's day, and nothing
before the course is over), the ward's own reading compared on the same inputs, then a PALM variant's ward
through the CLI: a visit counted from the last dose and one counted from the end of treatment are on the
ward's list on their days and in SV (VISITNUM, SVSTDTC), TV and ODM (StudyEventData), SV read back by
pyreadstat and validated against the Dataset-JSON schema, ODM against the ODM 1.3.2 XSD.
"""

from __future__ import annotations

import importlib.resources
import json
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wardcrf.engine import model, schedule, visits
from wardcrf.engine.interpreter import Rec, Snapshot

KIN = ZoneInfo("Africa/Kinshasa")
UNS = '[[visits]]\ncode = "UNS"'
EXTRA = """[[visits]]
code = "PLD"
num = 15.8
label = "DAY AFTER LAST DOSE"
epoch = "FOLLOW-UP"
anchor = "last_dose"
day = 2
window = ["0d", "+1d"]
forms = ["vital_status"]

[[visits]]
code = "EOT7"
num = 15.9
label = "END OF TREATMENT + 7"
epoch = "FOLLOW-UP"
anchor = "treatment_end"
day = 8
window = ["-1d", "+1d"]
forms = ["vital_status"]

"""


def _source() -> str:
    text = model.shipped_source("palm.toml")
    assert text.count(UNS) == 1
    return text.replace(UNS, EXTRA + UNS)


def _model() -> model.Model:
    return model.parse(_source(), "palm-course.toml")


def _disp(n: int, stage: str, status: str, day: date | None) -> Rec:
    return Rec("disposition", {"stage": stage, "status": status, "date": day}, f"disp{n}", n)


def _infusion(n: int, start: datetime) -> Rec:
    return Rec("infusion", {"start": start, "not_given": False}, f"inf{n}", n)


def _slot(n: int, day: date, state: str, given: datetime | None = None) -> schedule.SlotState:
    opens = datetime(day.year, day.month, day.day, 8, tzinfo=KIN)
    closes = opens + timedelta(hours=12)
    slot = schedule.Slot("zmapp", "infusion", n, n, day, None, opens, closes, closes)
    filled = schedule.Given(given, record=f"inf{n}") if given is not None else None
    return schedule.SlotState(slot=slot, state=state, filled_by=filled)


# -- the owner: pure --------------------------------------------------------------------------------


def test_treatment_ends_on_the_earliest_end_of_treatment_or_study_or_death_record():
    m = _model()
    d = date(2020, 3, 16)
    assert visits.treatment_ended(m, {}, KIN) is None
    ongoing = {"disposition": [_disp(1, "end_of_study", "completed", None)]}  # no date: no end
    assert visits.treatment_ended(m, ongoing, KIN) is None
    eot = {
        "disposition": [
            _disp(1, "end_of_study", "completed", d + timedelta(days=9)),
            _disp(2, "end_of_treatment", "adverse_event", d + timedelta(days=2)),
        ]
    }
    assert visits.treatment_ended(m, eot, KIN) == d + timedelta(days=2)
    # a death ends treatment on its date, and a protocol without [disposition] has no such end
    dead = {"disposition": [_disp(1, "other_stage", "death", d + timedelta(days=4))]}
    assert visits.treatment_ended(m, dead, KIN) == d + timedelta(days=4)
    src = _source()
    block = src[src.index("\n[disposition]\n") : src.index("\n[safety]\n")]
    bare = model.parse(src.replace(block, "\n"), "x.toml")
    assert visits.treatment_ended(bare, eot, KIN) is None


def test_the_course_ends_when_every_administration_is_recorded_or_missed_and_not_before():
    d = date(2020, 3, 16)
    given = datetime(2020, 3, 16, 10, tzinfo=KIN)
    done = [
        (
            "zmapp",
            None,
            [_slot(1, d, schedule.GIVEN, given), _slot(2, d + timedelta(days=3), schedule.MISSED)],
        )
    ]
    assert visits.course_end(done, None, KIN) == d + timedelta(days=4)  # the day after the last slot
    running = [
        ("zmapp", None, [_slot(1, d, schedule.GIVEN, given), _slot(2, d + timedelta(days=3), "upcoming")])
    ]
    assert visits.course_end(running, None, KIN) is None
    assert visits.course_end([], None, KIN) is None  # nothing placed: no course to end
    # the disposition's end of treatment ends it, whatever remains
    assert visits.course_end(running, d + timedelta(days=1), KIN) == d + timedelta(days=1)


def test_course_anchors_give_last_dose_and_treatment_end_only_once_the_course_is_over():
    m = _model()
    d = date(2020, 3, 16)
    first, second = datetime(2020, 3, 16, 10, tzinfo=KIN), datetime(2020, 3, 19, 10, tzinfo=KIN)
    records = {"infusion": [_infusion(1, first), _infusion(2, second)]}
    snap = Snapshot(records=records, now=datetime(2020, 4, 30, tzinfo=UTC), zone=KIN, anchors={})
    running = [
        ("zmapp", None, [_slot(1, d, schedule.GIVEN, first), _slot(2, d + timedelta(days=3), "due now")])
    ]
    got = visits.course_anchors(m, snap, running, KIN)
    assert got["first_dose"] == first and got.get("last_dose") is None and got.get("treatment_end") is None
    over = [
        (
            "zmapp",
            None,
            [_slot(1, d, schedule.GIVEN, first), _slot(2, d + timedelta(days=3), schedule.GIVEN, second)],
        )
    ]
    got = visits.course_anchors(m, snap, over, KIN)
    assert got["last_dose"] == second and got["treatment_end"] == date(2020, 3, 20)
    # the visits counted from them are dated: the day after the last dose (day 2 on anchor_day 1's numbering)
    # and 7 days after the end of treatment, with their windows
    dated = {o.visit.code: o for o in visits.dated(m, got, KIN, arm="ZMAPP", worklist_only=False)}
    assert (dated["PLD"].target, dated["PLD"].closes) == (date(2020, 3, 20), date(2020, 3, 21))
    assert (dated["EOT7"].opens, dated["EOT7"].target) == (date(2020, 3, 26), date(2020, 3, 27))
    before = {
        o.visit.code for o in visits.dated(m, visits.course_anchors(m, snap, running, KIN), KIN, arm="ZMAPP")
    }
    assert not before & {"PLD", "EOT7"}


@pytest.mark.parametrize(
    "disposition",
    [
        [],
        [("end_of_treatment", "adverse_event", 2)],
        [("end_of_study", "completed", 9), ("end_of_treatment", "completed", 5)],
        [("end_of_study", "death", 3)],
        [("end_of_study", "completed", None)],
    ],
    ids=["none", "end of treatment", "earliest of two", "death", "undated"],
)
@pytest.mark.parametrize("course", ["running", "over", "nothing placed"])
def test_the_owner_and_the_wards_list_end_the_course_on_the_same_day(disposition, course):
    """The ward's list reads the course end in workflow/engine_rules (`_ended`, `_course_end`); the exports
    read `engine.visits`. Same inputs, same day (until the ward's copy calls the owner)."""
    from wardcrf.workflow import engine_rules

    m = _model()
    d = date(2020, 3, 16)
    records = {
        "disposition": [
            _disp(i, stage, status, None if n is None else d + timedelta(days=n))
            for i, (stage, status, n) in enumerate(disposition)
        ]
    }
    first = datetime(2020, 3, 16, 10, tzinfo=KIN)
    second_state = schedule.GIVEN if course == "over" else "due now"
    placed: list[Any] = (
        []
        if course == "nothing placed"
        else [
            (
                "zmapp",
                None,
                [
                    _slot(1, d, schedule.GIVEN, first),
                    _slot(
                        2,
                        d + timedelta(days=3),
                        second_state,
                        first + timedelta(days=3) if course == "over" else None,
                    ),
                ],
            )
        ]
    )
    ward = engine_rules._course_end(placed, engine_rules._ended(m, records, KIN), KIN)
    assert visits.course_end(placed, visits.treatment_ended(m, records, KIN), KIN) == ward


# -- a PALM variant's ward through the CLI ---------------------------------------------------------


def _rows(out: Path, name: str) -> list[dict[str, Any]]:
    d = json.loads((out / f"{name}.json").read_text("utf-8"))
    cols = [c["name"] for c in d["columns"]]
    return [dict(zip(cols, row, strict=True)) for row in d["rows"]]


def test_visits_counted_from_the_last_dose_and_the_end_of_treatment_are_in_sv_and_odm_as_on_the_ward(
    cli, tmp_path: Path, monkeypatch
) -> None:
    import jsonschema
    import pyreadstat
    import xmlschema
    from test_engine_ward_cli import _infusion as give
    from test_engine_ward_cli import _vitals, _ward
    from wf_support import ready_kit_on

    w = _ward(cli, tmp_path, monkeypatch, "palm", source=_source())
    pid: str | None = None
    for _ in range(8):
        candidate = w.consent()
        assert w.screen(candidate).code == 0
        r = w.run("submit", "enrollment", "--participant", candidate, f"date={w.now.date().isoformat()}")
        assert r.code == 0, r.err
        r = w.run("randomize", candidate, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        if r.out.split("randomized: arm ", 1)[1].split()[0] == "ZMAPP":
            pid = candidate
            break
    assert pid is not None, "a block of at most 8 holds every arm"
    day1 = w.now.astimezone(KIN).date()

    def on(n: int, hour: int = 10) -> datetime:
        d = day1 + timedelta(days=n - 1)
        return datetime(d.year, d.month, d.day, hour, tzinfo=KIN)

    def shown() -> dict[str, dict[str, Any]]:
        r = w.run("participant", "show", pid, "--json", user="auditor")
        assert r.code == 0, r.err
        return {v["name"]: v for v in json.loads(r.out)["visits"]}

    start = on(1)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root)
    assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = give(w, pid, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    assert _vitals(w, pid, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0
    # infusions 2 and 3 remain: the course is not over, so neither visit is placed yet (no date, nothing owed)
    visits_now = shown()
    assert {visits_now[n]["state"] for n in ("DAY AFTER LAST DOSE", "END OF TREATMENT + 7")} == {
        "not yet placed"
    }
    assert visits_now["DAY AFTER LAST DOSE"]["placed_from"] == "day 2 after last dose"

    # infusions 2 (day 4) and 3 (day 7, window to day 8) are missed: the course ended on day 8, the last dose
    # is infusion 1 (day 1). The ward dates the visit after the last dose on day 2 (overdue by now) and the
    # one 7 days after the end of treatment on day 15
    w.at(on(10))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    visits_now = shown()
    pld, eot = visits_now["DAY AFTER LAST DOSE"], visits_now["END OF TREATMENT + 7"]
    assert (pld["state"], pld["due"], pld["visitnum"]) == ("overdue", on(2).date().isoformat(), 15.8)
    assert (eot["state"], eot["due"], eot["visitnum"]) == ("upcoming", on(15).date().isoformat(), 15.9)

    def status(day: int) -> None:
        d = on(day).date().isoformat()
        r = w.run("submit", "vital_status", "--participant", pid, f"date={d}", "status=alive")
        assert r.code == 0, r.err

    for day in (3, 5, 10):  # the last day of the first window; then in no window, in treatment and after it
        status(day)
    assert shown()["DAY AFTER LAST DOSE"]["state"] == "done"
    w.at(on(16))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    status(14)  # the first day of the second window
    assert shown()["END OF TREATMENT + 7"]["state"] == "done"

    out = w.root / "exports" / "sdtm"
    r = w.run("export", "sdtm", "--out", str(out), "--check", user="auditor")
    errors = [line for line in r.out.splitlines() if "[error]" in line]
    assert all("EXDOSFRQ: 'Q3D' is not in CDISC CT FREQ" in line for line in errors), r.out  # as PALM's test
    sv = {r["VISIT"]: r for r in _rows(out, "sv") if r["USUBJID"] == f"PALM-{pid}"}
    assert (sv["DAY AFTER LAST DOSE"]["VISITNUM"], sv["DAY AFTER LAST DOSE"]["SVSTDTC"]) == (
        15.8,
        on(3).date().isoformat(),
    )
    assert (sv["END OF TREATMENT + 7"]["VISITNUM"], sv["END OF TREATMENT + 7"]["SVSTDTC"]) == (
        15.9,
        on(14).date().isoformat(),
    )
    assert {sv[n]["SVPRESP"] for n in ("DAY AFTER LAST DOSE", "END OF TREATMENT + 7")} == {"Y"}
    assert (sv["END OF TREATMENT + 7"]["EPOCH"], sv["DAY AFTER LAST DOSE"]["EPOCH"]) == (
        "FOLLOW-UP",
        "FOLLOW-UP",
    )
    # the records in no window are unscheduled, in the epoch their date falls in: treatment lasts until the
    # course ended (day 8, its last infusion missed), not the day after the last infusion given
    assert [
        (r["SVSTDTC"], r["EPOCH"], r["SVPRESP"]) for n, r in sv.items() if n.startswith("UNSCHEDULED")
    ] == [
        (on(5).date().isoformat(), "TREATMENT", ""),
        (on(10).date().isoformat(), "FOLLOW-UP", ""),
    ]
    tv = {(r["ARMCD"], r["VISIT"], r["VISITNUM"]) for r in _rows(out, "tv")}
    assert ("ZMAPP", "DAY AFTER LAST DOSE", 15.8) in tv and ("ZMAPP", "END OF TREATMENT + 7", 15.9) in tv
    df, _meta = pyreadstat.read_xport(str(next(out.rglob("sv.xpt"))))
    got = {(str(a), float(b)) for a, b in zip(df["VISIT"], df["VISITNUM"], strict=True)}
    assert {("DAY AFTER LAST DOSE", 15.8), ("END OF TREATMENT + 7", 15.9)} <= got
    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    doc = json.loads((out / "sv.json").read_text("utf-8"))
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(doc)) == []

    odm = w.root / "exports" / "odm.xml"
    r = w.run("export", "odm", "--out", str(odm), user="auditor")
    assert r.code == 0, r.err
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(odm))) == []
    ns = "{http://www.cdisc.org/ns/odm/v1.3}"
    subject = next(s for s in ET.parse(odm).getroot().iter(f"{ns}SubjectData") if s.get("SubjectKey") == pid)
    events = {
        e.get("StudyEventOID"): [f.get("FormOID") for f in e.iter(f"{ns}FormData")]
        for e in subject.iter(f"{ns}StudyEventData")
    }
    assert events["SE.PLD"] == ["F.vital_status"] and events["SE.EOT7"] == ["F.vital_status"]
