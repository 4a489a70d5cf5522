"""Gates declared in the protocol, evaluated by the engine (issue 17, step 4): consent first, the DSMG
hold and the sentinel, the pre-dose check (MEXCOVID's skin test), eligibility, custody, and the
assessments owed after an administration. On a real MEXCOVID site the engine's holds are the ward's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from wf_support import TZ, at, make_ward, today
from wf_support import _wf_template as _wf_template  # the fixture `site` builds on
from wf_support import site as site  # the workflow template site: MEXCOVID, users of every role

from wardcrf import workflow
from wardcrf.engine import eligibility, gates, interpreter, model
from wardcrf.engine.gates import SiteFacts
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.errors import Refused
from wardcrf.protocol import default_protocol
from wardcrf.workflow import status
from wardcrf.workflow.base import get_participant
from wardcrf.workflow.gatefacts import site_facts

MEX = model.shipped("mexcovid.toml")
NOW = datetime(2020, 3, 20, 2, 0, tzinfo=UTC)


def _recs(form: str, rows: list[dict]) -> list[Rec]:
    fields = MEX.data["forms"][form]["fields"]
    return [Rec(form, interpreter.typed_values(fields, r), f"ev-{form}-{i}", i) for i, r in enumerate(rows)]


def _snap(
    skin: list[dict] | None = None, eligible: bool = True, failed: list[str] | None = None, **more
) -> Snapshot:
    screening = {
        "date": "2020-03-10",
        "dob": "1965-05-01",
        "pcr_confirmed": True,
        "severity": "severe",
        "eligible": eligible,
        "failed_criteria": failed or [],
    }
    records = {"screening": _recs("screening", [screening]), "skin_test": _recs("skin_test", skin or [])}
    records.update({k: _recs(k, v) for k, v in more.items()})
    return Snapshot(records=records, now=NOW, zone=TZ)


NEG = {"time": "2020-03-15T15:00:00+08:00", "result": "negative"}
POS = {"time": "2020-03-15T15:00:00+08:00", "result": "positive"}
DOSE1 = {"number": 1, "start": datetime(2020, 3, 16, 9, 0, tzinfo=TZ), "kit": "KIT-1"}


def test_a_participant_with_a_negative_skin_test_passes_every_dose_gate():
    assert gates.check(MEX, _snap([NEG]), "dose", SiteFacts(), participant="P1", administration=DOSE1) == []
    assert gates.holds(MEX, _snap([NEG]), SiteFacts(), participant="P1") == []


def test_a_positive_skin_test_refuses_and_holds_naming_the_record():
    refused = gates.check(MEX, _snap([NEG, POS]), "dose", SiteFacts(), participant="P1", administration=DOSE1)
    assert [r.code for r in refused] == ["skin_test_not_positive"]
    assert refused[0].message == "dosing is blocked: the skin test ev-skin_test-1 was positive"
    assert refused[0].hold == "positive skin test ev-skin_test-1"
    assert gates.holds(MEX, _snap([POS]), SiteFacts(), participant="P1") == [
        "positive skin test ev-skin_test-0"
    ]
    with pytest.raises(Refused, match="dosing is blocked"):
        gates.require(refused)


def test_the_pre_dose_check_must_come_before_the_administration():
    late = {"time": "2020-03-16T10:00:00+08:00", "result": "negative"}  # after the 09:00 start
    refused = gates.check(MEX, _snap([late]), "dose", SiteFacts(), participant="P1", administration=DOSE1)
    assert [r.code for r in refused] == ["negative_skin_test_first"]
    assert "no negative skin test recorded for P1 before this dose" in refused[0].message
    assert gates.check(MEX, _snap([]), "dose", SiteFacts(), participant="P1", administration=DOSE1)[
        0
    ].code == ("negative_skin_test_first")
    # without an administration in hand (the worklist) a gate that reads it is not decided
    assert gates.holds(MEX, _snap([]), SiteFacts(), participant="P1") == []


def test_eligibility_gates_read_the_eligibility_record():
    snap = _snap([NEG], eligible=False, failed=["age"])
    refused = gates.check(MEX, snap, "dose", SiteFacts(), participant="P1", administration=DOSE1)
    assert [r.code for r in refused] == ["still_eligible"]
    assert refused[0].hold == "no longer eligible: age"
    assert "P1 no longer meets the eligibility criteria (failed: age) since the screening ev-screening-0" in (
        refused[0].message
    )
    enroll = gates.check(MEX, snap, "enroll", SiteFacts(), participant="P1")
    assert [r.code for r in enroll] == ["eligible_to_enroll"]
    assert "screen failure (failed: age)" in enroll[0].message
    unscreened = Snapshot(records={}, now=NOW, zone=TZ)
    assert (
        "has not been screened"
        in gates.check(MEX, unscreened, "enroll", SiteFacts(), participant="P1")[0].message
    )


def test_site_fact_gates_ask_their_owner_and_keep_the_declared_order():
    asked: list[str] = []

    def dsmg(ask):
        asked.append(ask["gate"]["code"])
        return "the DSMG recorded 'stop'"

    def custody(ask):
        return f"kit {ask['administration']['kit']} has no chain of custody"

    def consent(ask):
        return "P1: no consent recorded"

    facts = SiteFacts(dsmg_hold=dsmg, custody=custody, consent=consent)
    refused = gates.check(MEX, _snap([POS]), "dose", facts, participant="P1", administration=DOSE1)
    assert [r.code for r in refused] == [
        "dsmg_hold",
        "skin_test_not_positive",
        "negative_skin_test_first",
        "custody",
    ]
    assert refused[0].message == "the DSMG recorded 'stop'" and refused[0].hold == "DSMG hold"
    assert refused[3].message == "kit KIT-1 has no chain of custody"
    assert gates.holds(MEX, _snap([POS]), facts, participant="P1") == [
        "DSMG hold",
        "positive skin test ev-skin_test-0",
    ]  # custody needs the kit in hand: checked when the dose is recorded, never a hold
    assert [r.code for r in gates.check(MEX, _snap(), "record", facts, participant="P1")] == ["consent_first"]
    assert [r.code for r in gates.check(MEX, _snap(), "enroll", facts, participant="P1")] == ["dsmg_hold"]


def test_assessments_owed_after_each_administration():
    snap = _snap(
        vitals=[
            {"time": "2020-03-16T08:30:00+08:00", "timepoint": "pre_dose", "dose": 1},
            {"time": "2020-03-16T10:00:00+08:00", "timepoint": "post_dose", "dose": 1},
        ],
        post_dose_check=[{"time": "2020-03-16T10:05:00+08:00", "dose": 2, "events": ["none"]}],
    )
    assert gates.owed_after(MEX, snap, [1, 2]) == [("post_dose_vitals", 2), ("post_dose_check", 1)]
    assert gates.owed_after(MEX, snap, []) == []


# -- a real site: the engine's holds are the ward's ------------------------------------------------


@pytest.fixture
def ward(session_for, tmp_path):
    return make_ward(session_for, tmp_path)


def _engine_holds(ward, pid: str) -> list[str]:
    store = ward.clin.store
    p = get_participant(store, pid)
    snap = eligibility.snapshot(store, MEX, pid, now=datetime.now(UTC), zone=TZ)
    return gates.holds(MEX, snap, site_facts(store, default_protocol(), p), participant=pid)


def _ward_holds(ward, pid: str) -> list[str]:
    nxt = status.summary(ward.clin.store, pid)["next_dose"]
    return nxt["hold"].split("; ") if nxt and nxt.get("hold") else []


@pytest.mark.parametrize(
    "scenario", ["clean", "positive skin test", "ineligible after enrollment", "dsmg stop"]
)
def test_on_a_real_site_the_engine_holds_what_the_ward_holds(ward, scenario):
    pid = ward.consent()
    ward.screen(pid)
    day0 = today() - timedelta(days=3)
    ward.enroll(pid, day0)
    ward.skin(pid, day0, "positive" if scenario == "positive skin test" else "negative")
    if scenario == "ineligible after enrollment":
        ev = get_participant(ward.clin.store, pid).screening_event
        workflow.amend(ward.clin, ev, {"dob": "1930-01-01"}, reason="date of birth misread")
    if scenario == "dsmg stop":
        ward.submit(
            "dsmg_decision", who=ward.dsmg, participant=pid, decision="stop", rationale="a safety signal"
        )
    expected = _ward_holds(ward, pid)
    assert (expected == []) == (scenario == "clean")
    assert _engine_holds(ward, pid) == expected


def test_on_a_real_site_post_dose_assessments_owed_are_the_wards(ward):
    pid, day0 = ward.enrolled_participant(days_ago=5)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    ward.dose(pid, 2, day0 + timedelta(days=2))
    ward.submit(
        "vitals",
        participant=pid,
        time=at(day0 + timedelta(days=1), 11),
        timepoint="post_dose",
        dose="1",
        sysbp="120",
        diabp="80",
        pulse="80",
        resp="16",
        temp="36.8",
        oxysat="96",
    )
    store = ward.clin.store
    snap = eligibility.snapshot(store, MEX, pid, now=datetime.now(UTC), zone=TZ)
    owed = [n for code, n in gates.owed_after(MEX, snap, [1, 2]) if code == "post_dose_vitals"]
    assert owed == status.summary(store, pid)["post_dose_vitals_due"] == [2]


def test_on_a_real_site_the_custody_gate_asks_the_cold_chain(ward):
    pid, _ = ward.enrolled_participant(days_ago=5)
    store = ward.clin.store
    snap = eligibility.snapshot(store, MEX, pid, now=datetime.now(UTC), zone=TZ)
    facts = site_facts(store, default_protocol(), get_participant(store, pid))
    start = datetime.now(TZ)
    unknown = {"number": 1, "start": start, "kit": "KIT-NEVER-RECEIVED"}
    refused = gates.check(MEX, snap, "dose", facts, participant=pid, administration=unknown)
    assert [r.code for r in refused] == ["custody"]
    ward.freezer()
    ward.custody("KIT-READY-1", start.isoformat())
    ready = {"number": 1, "start": start, "kit": "KIT-READY-1"}
    assert gates.check(MEX, snap, "dose", facts, participant=pid, administration=ready) == []
