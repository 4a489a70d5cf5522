"""Visits that repeat per administration (`[[visits]] repeat = { per = "administration", regimen = R }`).

One occurrence per scheduled administration of R, due and windowed with it,
numbered with it (VISITNUM num, num + step, ...; VISIT the label with {n}),
moving with the administration when it is given later in its window; an arm
without R has none. Proven on PALM with a visit per ZMapp infusion (a test
protocol: no shipped format-2 version of its own has such a visit; MEXCOVID's
re-encoding declares DOSE 1-5 this way, and its TV is checked unchanged in
test_sdtm_engine_design): the model accepts and refuses the declaration, the
pure occurrences and placement, a Hypothesis property (as many occurrences
as scheduled administrations), and a ward through the CLI (a delayed
infusion and the labs of its day, a missed one, `today`, the ward list, SDTM
SV/TV checked by the package's own check, ODM StudyEventData against the XSD).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from wardcrf.engine import model, schedule, visits
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.protocol_file import ProtocolFileError

KIN = ZoneInfo("Africa/Kinshasa")
STOP = "exists(disposition where stage == 'end_of_treatment')"
VISIT = """[[visits]]
code = "ZINF"
num = 20
label = "ZMAPP INFUSION {n}"
epoch = "TREATMENT"
repeat = { per = "administration", regimen = "zmapp" }
forms = ["infusion", "labs"]

[[visits]]
code = "RDVD"
num = 30
label = "RDV DOSE {n} (DAY {day})"
epoch = "TREATMENT"
repeat = { per = "administration", regimen = "remdesivir", step = 0.5 }
forms = ["infusion"]

"""
UNS = '[[visits]]\ncode = "UNS"'


def _source(extra: str = VISIT) -> str:
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")
    assert text.count(UNS) == 1
    return text.replace(UNS, extra + UNS)


@pytest.fixture(scope="module")
def palm_visits() -> model.Model:
    return model.parse(_source(), "palm-visits.toml")


# -- the declaration ----------------------------------------------------------------------------


def test_a_visit_per_administration_is_accepted_and_declared_with_its_arms(palm_visits) -> None:
    got = {v.code: v for v in visits.declared(palm_visits)}
    assert got["ZINF"].arms == ("ZMAPP",) and got["RDVD"].arms == ("RDV",)  # only the arms with the regimen
    assert [got["ZINF"].number(n) for n in (1, 2, 3)] == [20, 21, 22]
    assert [got["RDVD"].number(n) for n in (1, 2, 3)] == [30, 30.5, 31]
    assert got["RDVD"].name(2, 2) == "RDV DOSE 2 (DAY 2)"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('regimen = "zmapp"', 'regimen = "nosuch"'),
        (
            'epoch = "TREATMENT"\nrepeat = { per',
            'epoch = "TREATMENT"\nanchor = "randomization"\nrepeat = { per',
        ),
        ('epoch = "TREATMENT"\nrepeat = { per', 'epoch = "TREATMENT"\nday = 3\nrepeat = { per'),
        ('epoch = "TREATMENT"\nrepeat = { per', 'epoch = "TREATMENT"\nwindow = ["0d", "1d"]\nrepeat = { per'),
        ("num = 20\n", ""),
        ('epoch = "TREATMENT"\nrepeat = { per', 'epoch = "TREATMENT"\ntype = "common"\nrepeat = { per'),
        ('{ per = "administration"', '{ per = "day"'),
        ('label = "ZMAPP INFUSION {n}"', 'label = "ZMAPP\\u0007INFUSION {n}"'),  # a control character
        ('label = "ZMAPP INFUSION {n}"', 'label = "' + "Z" * 300 + ' {n}"'),  # oversized
        ('regimen = "zmapp"', 'regimen = "zmapp\\nx"'),
        ('forms = ["infusion", "labs"]', 'arms = ["ZMAPP", "RDV"]\nforms = ["infusion", "labs"]'),
    ],
)
def test_a_malformed_visit_per_administration_is_refused_in_one_line_naming_the_file_and_line(
    change: str, problem: str
) -> None:
    first = VISIT.split("\n\n")[0] + "\n\n"
    broken = first.replace(change, problem, 1)
    assert broken != first
    with pytest.raises(ProtocolFileError) as caught:
        model.parse(_source(broken), "bad.toml")
    text = str(caught.value)
    assert "bad.toml:" in text and "visits[" in text, text


def test_the_shipped_mexcovid_re_encoding_declares_dose_1_to_5_per_inhalation() -> None:
    m = model.shipped("mexcovid.toml")
    (dose,) = visits.declared(m)
    assert (dose.code, dose.regimen, dose.arms) == ("DOSE", "exo_inhalation", ("HAMSCEXO",))
    assert [dose.name(n, n) for n in range(1, 6)] == [f"DOSE {n}" for n in range(1, 6)]
    assert [dose.number(n) for n in range(1, 6)] == [2, 3, 4, 5, 6]


# -- occurrences, pure ----------------------------------------------------------------------------

RANDOMIZED = datetime(2026, 3, 2, 9, 0, tzinfo=KIN)


def _placed(m: model.Model, arm: str, givens: list[schedule.Given], at: datetime, stop: bool = False):
    plan = schedule.plan(
        m, {"randomization": RANDOMIZED}, arm=arm, zone="Africa/Kinshasa", conditions={STOP: stop}
    )
    out = []
    taken = 0
    for regimen, adms in plan.items():
        for adm, slots in adms:
            rows = schedule.states(adm, slots, givens[taken : taken + len(slots)], at)
            taken += sum(1 for r in rows if r.filled_by is not None)
            out.append((regimen, adm, rows))
    return out


def test_occurrences_follow_the_slots_move_with_a_delayed_administration_and_miss_with_a_missed_one(
    palm_visits,
) -> None:
    m = palm_visits
    late = RANDOMIZED + timedelta(days=1, hours=1)  # infusion 1 on day 2: late in its window (day 1 to day 2)
    at = RANDOMIZED + timedelta(days=6, hours=1)  # day 7: infusion 2 (day 4, late until day 7) is missed
    placed = _placed(m, "ZMAPP", [schedule.Given(late.astimezone(UTC), record="E1")], at)
    found = visits.occurrences(m, placed, KIN, arm="ZMAPP")
    assert [(o.name, o.num, o.day, o.state) for o in found] == [
        ("ZMAPP INFUSION 1", 20, 1, "given"),
        ("ZMAPP INFUSION 2", 21, 4, "missed"),
        ("ZMAPP INFUSION 3", 22, 7, "due now"),
    ]
    first, second, _third = found
    assert first.local_date == date(2026, 3, 3) and first.at == late and first.record == "E1"  # moved
    assert second.local_date == date(2026, 3, 5) and second.at is None
    # records: the infusion that fills slot 1, the labs of the day it was given; not the labs of day 1
    snap = Snapshot(records={}, now=at, zone=KIN)
    infusion = Rec("infusion", {}, "E1")
    labs_moved = Rec("labs", {"date": date(2026, 3, 3)}, "L1")
    labs_early = Rec("labs", {"date": date(2026, 3, 2)}, "L0")
    assert visits.place(m, found, infusion, date(2026, 3, 3), snap) is first
    assert visits.place(m, found, labs_moved, date(2026, 3, 3), snap) is first
    assert visits.place(m, found, labs_early, date(2026, 3, 2), snap) is None
    assert (
        visits.place(m, found, Rec("vitals", {"infusion": Decimal(1)}, "V1"), date(2026, 3, 3), snap) is None
    )
    # what is owed: the labs of occurrences 2 (missed with its infusion) and 3 (due with it)
    owed = visits.owed(m, found, {"labs": [labs_moved]}, snap, at, KIN)
    assert [(o.occurrence.n, o.form, o.state) for o in owed] == [
        (2, "labs", "missed"),
        (3, "labs", "due now"),
    ]
    # the day after the delayed infusion, its labs are overdue
    owed = visits.owed(m, found, {}, snap, at, KIN)
    assert (1, "labs", "overdue") in [(o.occurrence.n, o.form, o.state) for o in owed]


def test_an_arm_without_the_regimen_has_no_occurrence(palm_visits) -> None:
    at = RANDOMIZED + timedelta(days=2)
    for arm in ("MAB114", "REGNEB3"):
        assert visits.occurrences(palm_visits, _placed(palm_visits, arm, [], at), KIN, arm=arm) == []
    rdv = visits.occurrences(palm_visits, _placed(palm_visits, "RDV", [], at), KIN, arm="RDV")
    assert {o.visit.code for o in rdv} == {"RDVD"}  # its own visit, numbered across loading and maintenance
    assert [o.num for o in rdv][:3] == [30, 30.5, 31] and rdv[0].name == "RDV DOSE 1 (DAY 1)"
    assert rdv[1].name == "RDV DOSE 2 (DAY 2)"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arm=st.sampled_from(["ZMAPP", "RDV", "MAB114", "REGNEB3"]),
    days=st.integers(min_value=0, max_value=20),
    given_n=st.integers(min_value=0, max_value=14),
    stop=st.booleans(),
)
def test_property_one_occurrence_per_scheduled_administration_of_the_regimen(
    palm_visits, arm: str, days: int, given_n: int, stop: bool
) -> None:
    m = palm_visits
    at = RANDOMIZED + timedelta(days=days)
    givens = [
        schedule.Given((RANDOMIZED + timedelta(days=i, hours=1)).astimezone(UTC), record=f"E{i}")
        for i in range(given_n)
    ]
    placed = _placed(m, arm, givens, at, stop)
    found = visits.occurrences(m, placed, KIN, arm=arm)
    for v in visits.declared(m):
        scheduled = [st_.slot for reg, _adm, rows in placed if reg == v.regimen for st_ in rows]
        mine = [o for o in found if o.visit.code == v.code]
        assert len(mine) == (len(scheduled) if arm in v.arms else 0)
        assert [o.n for o in mine] == [s.number for s in scheduled if arm in v.arms]
        assert len({o.num for o in mine}) == len(mine)  # distinct VISITNUMs
        for o in mine:
            if o.at is not None:  # moved with its administration, due that day
                assert o.local_date == o.at.astimezone(KIN).date() and o.opens == o.at


def test_tv_plans_one_row_per_administration_only_in_the_arms_with_the_regimen(palm_visits) -> None:
    from wardcrf.exports.sdtm import Package
    from wardcrf.exports.sdtm.check import check
    from wardcrf.exports.sdtm.engine_design import trial_rows

    now = datetime(2026, 12, 6, 12, 0)
    dm = [{"USUBJID": "X-001", "RFICDTC": "2019-01-05", "ARMCD": "ZMAPP", "RFPENDTC": "2019-03-04"}]
    rows = trial_rows(palm_visits, dm, now, all_ended=True)
    zinf = [
        (r["ARMCD"], r["VISITNUM"], r["VISIT"]) for r in rows["TV"] if str(r["VISIT"]).startswith("ZMAPP")
    ]
    assert zinf == [
        ("ZMAPP", 20, "ZMAPP INFUSION 1"),
        ("ZMAPP", 21, "ZMAPP INFUSION 2"),
        ("ZMAPP", 22, "ZMAPP INFUSION 3"),
    ]
    rdv = [r["VISITNUM"] for r in rows["TV"] if str(r["VISIT"]).startswith("RDV DOSE")]
    assert rdv == [30 + 0.5 * i if (30 + 0.5 * i) % 1 else int(30 + 0.5 * i) for i in range(14)]
    assert {r["ARMCD"] for r in rows["TV"] if str(r["VISIT"]).startswith("RDV DOSE")} == {"RDV"}
    pkg = Package("X", rows, [], 0, 0, {}, now, "1.0", "protocol")
    assert {f.rule for f in check(pkg) if f.severity == "error"} == set()


# -- a ward through the CLI -----------------------------------------------------------------------


def test_a_palm_ward_runs_its_visits_per_infusion_through_the_cli(cli, tmp_path: Path, monkeypatch) -> None:
    import importlib.resources

    import xmlschema
    from test_engine_ward_cli import _infusion, _vitals, _ward
    from typed_support import assert_shape
    from wf_support import ready_kit_on

    from wardcrf.workflow.status import VisitLine, WardRow, Worklist

    w = _ward(cli, tmp_path, monkeypatch, "palm", source=_source())
    m = model.parse(_source(), "palm-visits.toml")
    chosen: str | None = None
    others: list[str] = []
    for _ in range(8):
        pid = w.consent()
        assert w.screen(pid).code == 0
        assert (
            w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
        )
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        arm = r.out.split("randomized: arm ", 1)[1].split()[0]
        if arm == "ZMAPP":
            chosen = pid
            break
        others.append(pid)
    assert chosen is not None, "a block of at most 8 holds every arm"
    pid = chosen
    randomized = w.now
    plan = schedule.plan(
        m, {"randomization": randomized}, arm="ZMAPP", zone="Africa/Kinshasa", conditions={STOP: False}
    )
    s1, _s2, s3 = [s for adms in plan.values() for _a, ss in adms for s in ss]

    def show(who: str) -> dict[str, Any]:
        r = w.run("participant", "show", who, "--json", user="auditor")
        assert r.code == 0, r.err
        out = json.loads(r.out)
        assert_shape(out["visits"], list[VisitLine])  # typed (issue #16)
        # the calendar visits (INPT, D28 ...: a `window`) are test_engine_calendar_visits.py's
        out["visits"] = [v for v in out["visits"] if "window" not in v]
        return out

    def zmapp_owed(row: dict[str, Any]) -> list[str]:
        return [x for x in row.get("visits_owed", []) if x.startswith("ZMAPP")]

    first = show(pid)["visits"]
    assert [(v["name"], v["visitnum"], v["state"], v["owed"]) for v in first] == [
        ("ZMAPP INFUSION 1", 20, "due now", ["labs"]),
        ("ZMAPP INFUSION 2", 21, "upcoming", ["labs"]),
        ("ZMAPP INFUSION 3", 22, "upcoming", ["labs"]),
    ]
    for other in others:  # an arm without ZMapp has no ZMapp visit
        assert {v["visit"] for v in show(other)["visits"]} <= {"RDVD"}
    r = w.run("today", "--json")
    assert_shape(json.loads(r.out), Worklist)
    assert {"participant": pid, "what": "labs (ZMAPP INFUSION 1)", "state": "due now"}.items() <= next(
        i for i in json.loads(r.out)["items"] if i["participant"] == pid and "labs" in i["what"]
    ).items()

    # infusion 1 delayed to day 2 (late in its window): its visit moves with it, the labs of day 2 fill it
    start = s1.opens + timedelta(days=1, hours=10)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root)
    assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    assert _vitals(w, pid, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0
    v1 = show(pid)["visits"][0]
    assert (v1["state"], v1["owed"], v1["due"]) == (
        "due now",
        ["labs"],
        start.astimezone(KIN).isoformat(timespec="minutes"),
    )
    r = w.run("participant", "list", "--json")
    row = next(x for x in json.loads(r.out) if x["id"] == pid)
    assert_shape(row, WardRow)
    assert zmapp_owed(row) == ["ZMAPP INFUSION 1: labs (due now)"]
    r = w.run(
        "submit", "labs", "--participant", pid, f"date={start.astimezone(KIN).date().isoformat()}", "creat=80"
    )
    assert r.code == 0, r.err
    v1 = show(pid)["visits"][0]
    assert (v1["state"], v1["owed"]) == ("done", [])
    r = w.run("participant", "show", pid, user="auditor")
    assert r.code == 0 and "visit ZMAPP INFUSION 1 (" in r.out and "— done" in r.out, r.out
    assert "visit ZMAPP INFUSION 3 (" in r.out and "owed: labs" in r.out
    assert not zmapp_owed(
        next(x for x in json.loads(w.run("participant", "list", "--json").out) if x["id"] == pid)
    )

    # infusion 2 missed: its visit is missed with it; infusion 3 is due, its visit's labs with it
    w.at(s3.opens + timedelta(hours=9))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    got = show(pid)["visits"]
    assert [(v["state"], v["owed"]) for v in got] == [
        ("done", []),
        ("missed", ["labs"]),
        ("due now", ["labs"]),
    ]
    items = [i for i in json.loads(w.run("today", "--json").out)["items"] if i["participant"] == pid]
    assert [i["what"] for i in items if "labs" in i["what"]] == ["labs (ZMAPP INFUSION 3)"]
    assert {"ZMAPP INFUSION 2", "ZMAPP INFUSION 3"} <= {v["name"] for v in got}

    # SDTM: TV plans three ZMapp visits; SV has the occurrence with data (day 2), not the missed one
    out = w.root / "exports"
    r = w.run("export", "sdtm", "--out", str(out / "sdtm"), "--check", user="auditor")
    errors = [line for line in r.out.splitlines() if "[error]" in line]
    assert all("EXDOSFRQ: 'Q3D' is not in CDISC CT FREQ" in line for line in errors), r.out  # as PALM's test

    def rows(name: str) -> list[dict[str, object]]:
        d = json.loads((out / "sdtm" / f"{name}.json").read_text("utf-8"))
        cols = [c["name"] for c in d["columns"]]
        return [dict(zip(cols, row, strict=True)) for row in d["rows"]]

    tv = [(r["ARMCD"], r["VISITNUM"], r["VISIT"]) for r in rows("tv") if str(r["VISIT"]).startswith("ZMAPP")]
    assert tv == [("ZMAPP", 20 + i, f"ZMAPP INFUSION {i + 1}") for i in range(3)]
    sv = {r["VISIT"]: r for r in rows("sv") if r["USUBJID"] == f"PALM-{pid}"}
    assert sv["ZMAPP INFUSION 1"]["VISITNUM"] == 20
    assert str(sv["ZMAPP INFUSION 1"]["SVSTDTC"])[:10] == start.astimezone(KIN).date().isoformat()
    assert "ZMAPP INFUSION 2" not in sv and "ZMAPP INFUSION 3" not in sv
    ex = [r for r in rows("ex") if r["USUBJID"] == f"PALM-{pid}"]
    assert [(r["VISIT"], r["VISITNUM"]) for r in ex] == [("ZMAPP INFUSION 1", 20)]
    lb = {(r["VISIT"], r["VISITNUM"]) for r in rows("lb") if r["USUBJID"] == f"PALM-{pid}"}
    # the labs at the infusion's visit, and the screening's Ebola PCR Ct (LBTESTCD=EBOVCTNP) at SCREENING:
    # a domain is fed by every form whose fields declare its tests
    assert lb == {("SCREENING", 1), ("ZMAPP INFUSION 1", 20)}

    # ODM: one StudyEventData per occurrence with data, keyed by the infusion's number; valid against the XSD
    r = w.run("export", "odm", "--out", str(out / "odm.xml"), user="auditor")
    assert r.code == 0, r.err
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "odm.xml"))) == []
    odm = (out / "odm.xml").read_text("utf-8")
    assert '<StudyEventData StudyEventOID="SE.ZINF" StudyEventRepeatKey="1" TransactionType="Upsert">' in odm
    assert 'StudyEventOID="SE.ZINF" StudyEventRepeatKey="2"' not in odm
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.out + r.err


def test_a_placebo_twin_has_the_visit_of_the_regimen_it_repeats() -> None:
    """PALM007 (double blind): the placebo regimen is `same_as` tecovirimat, so a visit per tecovirimat
    dose is every arm's, and a blinded ward (which schedules the first arm) and the hub agree."""
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm007.toml").read_text("utf-8")
    visit = (
        '[[visits]]\ncode = "DOSEV"\nnum = 40\nlabel = "DOSE {n}"\nepoch = "TREATMENT"\n'
        'repeat = { per = "administration", regimen = "tecovirimat" }\nforms = ["treatment"]\n\n'
    )
    m = model.parse(text.replace(UNS, visit + UNS, 1), "palm007-visits.toml")
    (v,) = visits.declared(m)
    assert v.arms == ("TECOVIRIMAT", "PLACEBO") and v.twins == {"tecovirimat", "placebo"}
    facts = {"screening.weight < 120": True, "screening.weight >= 120": False}
    for arm in ("TECOVIRIMAT", "PLACEBO"):
        plan = schedule.plan(
            m, {"randomization": RANDOMIZED}, arm=arm, zone="Africa/Kinshasa", conditions=facts
        )
        placed = [
            (reg, adm, schedule.states(adm, slots, [], RANDOMIZED))
            for reg, adms in plan.items()
            for adm, slots in adms
        ]
        found = visits.occurrences(m, placed, KIN, arm=arm)
        assert len(found) == 28 and found[-1].name == "DOSE 28" and found[-1].num == 67


def test_the_ward_queue_builds_the_occurrences_for_its_visit_forms_only_where_a_visit_can_owe_one(
    palm_visits, monkeypatch
) -> None:
    """`engine_rules._visit_due` (the ward queue's `visit_due`) builds a visit per administration's occurrences
    only when one can owe a form (`visits.can_owe`): the same span either way."""
    from wardcrf.workflow import engine_rules

    only_its_own = model.parse(
        _source(VISIT.replace('["infusion", "labs"]', '["infusion"]')), "palm-own.toml"
    )
    optional = model.parse(
        _source(VISIT.replace('["infusion", "labs"]', '["infusion", { form = "labs", required = false }]')),
        "palm-optional.toml",
    )
    assert visits.can_owe(palm_visits)
    assert not visits.can_owe(only_its_own) and not visits.can_owe(optional)
    shipped = Path(model.__file__).parent.parent / "protocols" / "engine"
    for name in ("mexcovid.toml", "palm.toml", "palm007.toml"):  # no visit of theirs owes a form of its own
        assert not visits.can_owe(model.parse((shipped / name).read_text("utf-8"), name))

    late = RANDOMIZED + timedelta(days=1, hours=1)
    at = RANDOMIZED + timedelta(days=6, hours=1)
    snap = Snapshot(records={}, now=at, zone=KIN)  # no anchor: no calendar visit placed, only these

    def span(m: model.Model) -> Any:
        placed = _placed(m, "ZMAPP", [schedule.Given(late.astimezone(UTC), record="E1")], at)
        return engine_rules._visit_due(m, placed, {}, snap, KIN, "ZMAPP", engine_rules.Ended())

    owing = span(palm_visits)
    assert owing is not None and owing[0] == late.astimezone(UTC)  # infusion 1's labs, from its start
    assert span(only_its_own) is None and span(optional) is None
    with monkeypatch.context() as mp:  # the occurrences always built: the same answers
        mp.setattr(visits, "can_owe", lambda _m: True)
        assert (span(palm_visits), span(only_its_own), span(optional)) == (owing, None, None)
        mp.setattr(visits, "can_owe", lambda _m: False)  # what the shortcut would lose if it were wrong
        assert span(palm_visits) != owing


def test_the_timeline_of_starts_in_hand_is_the_timeline(palm_visits) -> None:
    """`visits.timeline(..., starts=)` (the ward queue asks it twice of one participant's records) gives what
    it gives reading the starts itself, before and after the course's end."""
    m = palm_visits
    roles = next(a.record for r in m.regimens.values() for a in r.administrations)
    start, not_given = str(roles.get("start", "")), str(roles.get("not_given", ""))
    form = str(roles["form"])
    recs = [
        Rec(form, {start: RANDOMIZED + timedelta(days=3)}, "E2", 2),
        Rec(form, {start: RANDOMIZED + timedelta(days=1)}, "E1", 1),
        Rec(form, {start: RANDOMIZED, **({not_given: True} if not_given else {})}, "E0", 0),
    ]
    for records in ({}, {form: recs}):
        snap = Snapshot(records=records, now=RANDOMIZED, zone=KIN, anchors={"randomization": RANDOMIZED})
        starts = visits.administration_starts(m, records)
        for end in (None, date(2026, 3, 9)):
            assert visits.timeline(m, snap, course_end=end, starts=starts) == visits.timeline(
                m, snap, course_end=end
            )
    assert visits.administration_starts(m, {form: recs})[:2] == [recs[0].values[start], recs[1].values[start]]
