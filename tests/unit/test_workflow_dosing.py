"""Skin test, daily dosing, dose window and deviations, vitals around doses, dose gates, eligibility after enrollment."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from typed_support import assert_shape, shape_problems
from wf_support import TZ, Staff, _copy_site, at, make_ward, on_format_two, today

from wardcrf import eventlog, workflow
from wardcrf.errors import PermissionDenied, Refused, ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow import status
from wardcrf.workflow.base import get_participant

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago with a negative skin test; the sentinel gate is open."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def day0() -> datetime:
    return today() - timedelta(days=10)


def _cumulative_particles(info) -> float:
    """The cumulative dose under the column MEXCOVID names for its one unit (`dose.cumulative`)."""
    (named,) = [c for c in info["cumulative_dose"] if c.get("column")]
    assert named["column"] == "cumulative particles" and named["unit"] == "particles"
    return float(named["value"])


def test_dose_computes_number_day_window_and_cumulative_particles(ward):
    ev = ward.dose(P1, 1, day0() + timedelta(days=1), mm=5)
    d = ev.body["data"]
    assert (d["dose_number"], d["day"], d["window"]) == (1, 1, "on_time")
    assert d["particles"] == {"value": 2.0e8, "unit": "particles"} and d["volume"] == {
        "value": 6.0,
        "unit": "mL",
    }
    assert d["due"].endswith("09:00:00+08:00") and d["given_by"] == "clinician"
    ward.dose(P1, 2, day0() + timedelta(days=2))
    given = ward.clin.store.scalar("SELECT sum(particles) FROM doses WHERE participant = ?", (P1,))
    assert given == pytest.approx(4.0e8)  # the doses projection: the sum of the recorded doses
    info = workflow.show(ward.clin, P1)
    assert info["doses_given"] == 2 and info["status"] == "in treatment"
    assert _cumulative_particles(info) == pytest.approx(4.0e8)
    # The summary is a TypedDict (the participant screen and the dose wizard read it): exactly
    # its required keys on a format-1 ward (the NotRequired ones are a format-2 version's extras:
    # on a format-2 ward those of an open-label trial besides), and those of its consent and dose
    # lines (a format-2 ward's dose lines are its administrations).
    from typing import get_type_hints

    two = on_format_two(ward)
    extras = {"protocol", "arm", "administrations", "cumulative_dose", "visits"} if two else set()
    assert set(info) == set(status.ParticipantSummary.__required_keys__) | extras
    assert set(status.ParticipantSummary.__optional_keys__) == {
        "protocol",
        "arm",
        "kit",
        "administrations",
        "cumulative_dose",
        "visits",
    }
    assert set(info["consent"]) == set(get_type_hints(status.ConsentState))
    lines = [a for a in info["administrations"] if a["event"]] if two else info["doses"]
    line = status.AdministrationLine if two else status.DoseLine
    assert all(set(d) == set(get_type_hints(line)) for d in lines) and lines


def test_cumulative_particles_cannot_be_typed(ward):
    with pytest.raises(ValidationFailed, match="dose_number: computed by wardcrf"):
        ward.dose(P1, 1, day0() + timedelta(days=1), dose_number="3")


def test_a_full_course_is_five_doses_and_a_sixth_is_refused(ward):
    for n in range(1, 6):
        ward.dose(P1, n, day0() + timedelta(days=n))
    info = workflow.show(ward.clin, P1)
    assert info["status"] == "treatment complete" and _cumulative_particles(info) == pytest.approx(1.0e9)
    with pytest.raises(Refused, match="has had all 5 doses; dose 6 is refused"):
        ward.dose(P1, 6, day0() + timedelta(days=6))


def test_second_dose_on_the_same_day_and_duplicate_submission_are_refused(ward):
    day = day0() + timedelta(days=1)
    ward.dose(P1, 1, day)
    before = eventlog.count(ward.clin.store)
    with pytest.raises(Refused, match=r"already had dose 1 on .* one dose per day"):
        ward.dose(P1, 1, day)  # the same dose submitted twice
    with pytest.raises(Refused, match="one dose per day"):
        ward.dose(P1, 2, day, hh=17)
    assert eventlog.count(ward.clin.store) == before


def test_a_kit_is_used_once(ward):
    ward.dose(P1, 1, day0() + timedelta(days=1), kit="EXO-0001")
    with pytest.raises(ValidationFailed, match="kit_id: kit EXO-0001 was already used for WUH01-001 dose 1"):
        ward.dose(P1, 2, day0() + timedelta(days=2), kit="EXO-0001")


def test_scanner_input_is_cleaned_and_checked(ward):
    ev = ward.dose(P1, 1, day0() + timedelta(days=1), kit=" EXO-0042\r\n")
    assert ev.body["data"]["kit_id"] == "EXO-0042"
    with pytest.raises(
        ValidationFailed, match="kit_id: kit id 'EXO 7' contains a space, which is not allowed"
    ):
        ward.dose(P1, 2, day0() + timedelta(days=2), kit="EXO 7")


@pytest.mark.parametrize(
    ("hh", "mm", "window"),
    [(7, 0, "on_time"), (6, 59, "early"), (11, 0, "on_time"), (11, 1, "late")],
)
def test_dose_window_is_two_hours_either_side_of_0900(ward, hh, mm, window):
    ev = ward.dose(P1, 1, day0() + timedelta(days=1), hh=hh, mm=mm)
    assert ev.body["data"]["window"] == window
    deviations = workflow.show(ward.clin, P1)["deviations"]
    kinds = [d["kind"] for d in deviations if d["dose"] == 1]
    assert kinds == ([] if window == "on_time" else [f"{window} dose"])


def test_missing_dose_is_flagged_as_a_deviation(ward):
    ward.dose(P1, 1, day0() + timedelta(days=1))
    info = workflow.show(ward.clin, P1)
    missing = [d["dose"] for d in info["deviations"] if d["kind"] == "missing dose"]
    assert missing == [2, 3, 4, 5] and info["next_dose"]["state"] == "overdue"
    # A dose given on a later day than due is late.
    ev = ward.dose(P1, 2, day0() + timedelta(days=3))
    assert ev.body["data"]["window"] == "late" and ev.body["data"]["day"] == 3


def test_due_now_upcoming_and_overdue_relative_to_a_given_time(ward):
    pid, d0 = ward.enrolled_participant(days_ago=1)
    due = datetime.combine(d0 + timedelta(days=1), datetime.min.time(), TZ).replace(hour=9)
    states = {
        h: status.summary(ward.clin.store, pid, due + timedelta(hours=h))["next_dose"]["state"]
        for h in (-3, -1, 2, 3)
    }
    assert states == {-3: "upcoming", -1: "due now", 2: "due now", 3: "overdue"}
    items = workflow.today(ward.clin, due)["items"]
    assert {
        "participant": pid,
        "what": "dose 1",
        "due": due.isoformat(timespec="minutes"),
        "state": "due now",
    } in items


def test_dose_before_enrollment_is_refused(ward):
    pid = ward.consent()
    ward.screen(pid)
    with pytest.raises(Refused, match="is not enrolled"):
        ward.dose(pid, 1, today() - timedelta(days=1))


def test_dose_on_the_enrollment_day_is_refused(ward):
    with pytest.raises(ValidationFailed, match=r"start: .* is not after the enrollment day"):
        ward.dose(P1, 1, day0())


def test_skin_test_must_precede_dose_1(ward):
    pid = ward.consent()
    ward.screen(pid)
    d0 = today() - timedelta(days=5)
    ward.enroll(pid, d0)
    with pytest.raises(Refused, match=r"no negative skin test recorded .* before this dose"):
        ward.dose(pid, 1, d0 + timedelta(days=1))
    ward.submit("skin_test", participant=pid, time=at(d0 + timedelta(days=1), 10), result="negative")
    with pytest.raises(Refused, match="no negative skin test"):  # read after the dose started
        ward.dose(pid, 1, d0 + timedelta(days=1))
    ward.dose(pid, 1, d0 + timedelta(days=1), hh=11)


def test_positive_skin_test_blocks_dosing(ward):
    ward.skin(P1, day0(), result="positive")
    with pytest.raises(Refused, match=r"dosing is blocked: the skin test .* was positive"):
        ward.dose(P1, 1, day0() + timedelta(days=1))


def test_dsmg_stop_halts_all_dosing_until_a_later_continue(ward):
    ward.dose(P1, 1, day0() + timedelta(days=1))
    ward.submit("dsmg_decision", who=ward.dsmg, participant=P1, decision="stop", rationale="grade 4 event")
    with pytest.raises(Refused, match="cannot record a dose: the DSMG recorded 'stop'"):
        ward.dose(P1, 2, day0() + timedelta(days=2))
    assert workflow.show(ward.clin, P1)["next_dose"]["state"] == "held"
    ward.continue_(P1)
    ward.dose(P1, 2, day0() + timedelta(days=2))


def test_dose_gates_are_called_and_can_refuse(ward):
    calls = []

    def custody(store, kit_id, when):
        calls.append((kit_id, when.hour))
        if kit_id == "EXO-WARM":
            raise Refused(f"kit {kit_id} had a temperature excursion; quarantined")

    workflow.register_dose_gate(custody)
    try:
        with pytest.raises(Refused, match="temperature excursion"):
            ward.dose(P1, 1, day0() + timedelta(days=1), kit="EXO-WARM")
        ward.dose(P1, 1, day0() + timedelta(days=1), kit="EXO-COLD")
    finally:
        workflow.dose_gates.remove(custody)
    # gates are pure checks: called before and again inside the write transaction
    assert set(calls) == {("EXO-WARM", 9), ("EXO-COLD", 9)}


def test_end_before_start_and_unknown_giver_are_reported_together(ward):
    day = day0() + timedelta(days=1)
    with pytest.raises(ValidationFailed) as info:
        ward.dose(P1, 1, day, end=at(day, 8), given_by="ghost", volume="abc", particles="2e12")
    p = info.value.problems
    assert set(p) == {"end", "given_by", "volume", "particles"}
    assert p["volume"] == "'abc' is not a number"
    assert p["particles"] == "2.0e12 particles is outside the allowed range 1.0e6 to 1.0e10 particles"


def test_soft_range_dose_needs_confirmation_with_reason(ward):
    day = day0() + timedelta(days=1)
    with pytest.raises(ValidationFailed, match=r"volume: 5 mL is outside the expected range 5.5 to 6.5 mL"):
        ward.dose(P1, 1, day, volume="5")
    with pytest.raises(ValidationFailed, match="with a reason"):
        ward.dose(P1, 1, day, volume="5", confirm=True)
    ev = ward.dose(P1, 1, day, volume="5", confirm=True, reason="1 ml spilled while filling")
    assert ev.body["overrides"] == {"volume": "1 ml spilled while filling"}


def test_pharmacist_and_auditor_cannot_record_doses(ward, session_for):
    with pytest.raises(PermissionDenied, match="role auditor may not submit dose forms"):
        workflow.submit(ward.aud, "dose", {"kit_id": "X"}, participant=P1)
    with pytest.raises(PermissionDenied):
        workflow.submit(session_for("pharmacist"), "dose", {"kit_id": "X"}, participant=P1)


# -- vitals -------------------------------------------------------------------------------------


def test_vitals_with_defaults_is_a_complete_submission(ward):
    ev = ward.submit("vitals", participant=P1, temp="37.1", pulse="88", resp="20", oxysat="95")
    d = ev.body["data"]
    assert d["timepoint"] == "unscheduled" and d["temp"] == {"value": 37.1, "unit": "C"}
    assert d["pulse"] == {"value": 88, "unit": "beats/min"} and "time" in d


def test_temperature_370_is_refused_with_the_allowed_range(ward):
    with pytest.raises(ValidationFailed) as info:
        ward.submit("vitals", participant=P1, temp="370", pulse="88", resp="20", oxysat="95")
    assert str(info.value) == "vitals not saved: temp: 370 C is outside the allowed range 30 to 45 C"


def test_soft_range_vitals_need_confirm_and_reason(ward):
    with pytest.raises(ValidationFailed, match=r"temp: 39.8 C is outside the expected range 35 to 39.5 C"):
        ward.submit("vitals", participant=P1, temp="39.8", pulse="88", resp="20", oxysat="95")
    ev = ward.submit(
        "vitals",
        participant=P1,
        temp="39.8",
        pulse="88",
        resp="20",
        oxysat="95",
        confirm=True,
        reason="rechecked with a second thermometer",
    )
    assert ev.body["overrides"] == {"temp": "rechecked with a second thermometer"}


def test_post_dose_vitals_cannot_precede_their_dose(ward):
    day = day0() + timedelta(days=1)
    with pytest.raises(ValidationFailed, match="dose: dose 1 has not been recorded"):
        ward.submit(
            "vitals",
            participant=P1,
            timepoint="post_dose",
            dose="1",
            time=at(day, 10),
            temp="37",
            pulse="80",
            resp="18",
            oxysat="95",
        )
    ward.dose(P1, 1, day)  # 09:00-09:30
    with pytest.raises(ValidationFailed, match=r"time: .* is before dose 1 ended"):
        ward.submit(
            "vitals",
            participant=P1,
            timepoint="post_dose",
            dose="1",
            time=at(day, 9, 20),
            temp="37",
            pulse="80",
            resp="18",
            oxysat="95",
        )
    ward.submit(
        "vitals",
        participant=P1,
        timepoint="post_dose",
        dose="1",
        time=at(day, 9, 45),
        temp="37",
        pulse="80",
        resp="18",
        oxysat="95",
    )


def test_pre_dose_vitals_name_the_next_dose_and_precede_it(ward):
    day = day0() + timedelta(days=1)
    with pytest.raises(ValidationFailed, match="dose: required for pre_dose vitals"):
        ward.submit(
            "vitals",
            participant=P1,
            timepoint="pre_dose",
            time=at(day, 8),
            temp="37",
            pulse="80",
            resp="18",
            oxysat="95",
        )
    with pytest.raises(ValidationFailed, match="the next dose for WUH01-001 is dose 1, not 3"):
        ward.submit(
            "vitals",
            participant=P1,
            timepoint="pre_dose",
            dose="3",
            time=at(day, 8),
            temp="37",
            pulse="80",
            resp="18",
            oxysat="95",
        )
    ward.submit(
        "vitals",
        participant=P1,
        timepoint="pre_dose",
        dose="1",
        time=at(day, 8, 40),
        temp="37",
        pulse="80",
        resp="18",
        oxysat="95",
    )


def test_every_failing_vitals_field_is_named(ward):
    with pytest.raises(ValidationFailed) as info:
        ward.submit(
            "vitals",
            participant=P1,
            temp="hot",
            pulse="88.5",
            oxysat="101",
            bloodgroup="A",
            time=(datetime.now(TZ) + timedelta(days=1)).isoformat(),
            sysbp="100",
            diabp="105",
        )
    p = info.value.problems
    assert p["temp"] == "'hot' is not a number"
    assert p["pulse"] == "88.5 is not a whole number"
    assert p["resp"] == "required"
    assert p["oxysat"] == "101 % is outside the allowed range 40 to 100 %"
    assert p["bloodgroup"].startswith("unknown field for vitals")
    assert "is in the future" in p["time"]
    assert p["diabp"] == "105 mmHg is not below the systolic 100 mmHg"


def test_vitals_before_birth_are_refused(ward):
    with pytest.raises(ValidationFailed, match="time: 1960-01-01 is before the date of birth 1965-05-01"):
        ward.submit(
            "vitals",
            participant=P1,
            time="1960-01-01T10:00",
            temp="37",
            pulse="80",
            resp="18",
            oxysat="95",
        )


def test_post_dose_check_asks_explicitly_and_once_per_dose(ward):
    day = day0() + timedelta(days=1)
    with pytest.raises(ValidationFailed, match="dose: dose 1 has not been recorded"):
        ward.submit("post_dose_check", participant=P1, dose="1", events="none", time=at(day, 10))
    ward.dose(P1, 1, day)
    items = [i["what"] for i in workflow.today(ward.clin)["items"] if i["participant"] == P1]
    assert "post-dose prespecified events (dose 1)" in items and "post-dose vitals (dose 1)" in items
    with pytest.raises(ValidationFailed, match="events: 'none' cannot be combined"):
        ward.submit("post_dose_check", participant=P1, dose="1", events="none,fever", time=at(day, 10))
    with pytest.raises(ValidationFailed, match="events: required"):
        ward.submit("post_dose_check", participant=P1, dose="1", time=at(day, 10))
    ward.submit("post_dose_check", participant=P1, dose="1", events="fever,diarrhoea", time=at(day, 10))
    worklist = workflow.today(ward.clin)
    assert_shape(worklist, status.Worklist)  # issue #16
    items = [i["what"] for i in worklist["items"] if i["participant"] == P1]
    assert "adverse event form for fever reported after dose 1" in items
    assert "adverse event form for diarrhoea reported after dose 1" in items
    ward.submit(
        "ae",
        participant=P1,
        term="Fever",
        prespecified="fever",
        dose="1",
        onset=day.isoformat(),
        grade="1",
        serious="no",
        causality="possible",
        outcome="recovered",
        end=day.isoformat(),
    )
    items = [i["what"] for i in workflow.today(ward.clin)["items"] if i["participant"] == P1]
    assert "adverse event form for fever reported after dose 1" not in items
    with pytest.raises(Refused, match="already recorded"):
        ward.submit("post_dose_check", participant=P1, dose="1", events="none", time=at(day, 11))


def test_interruptions_need_a_note(ward):
    day = day0() + timedelta(days=1)
    with pytest.raises(
        ValidationFailed, match="interruption_note: required when the inhalation was interrupted"
    ):
        ward.dose(P1, 1, day, interruptions="1")
    ev = ward.dose(P1, 1, day, interruptions="1", interruption_note="coughing fit, paused 2 min")
    assert ev.body["data"]["interruptions"] == 1


# -- after a dose: one vitals record per timepoint, an AE form per reported event --------------------
# One pre-/post-dose vitals record per dose (a second is refused pointing to amendment), and an AE form
# expected for every prespecified event the post-dose check reports (an open item that blocks sign-off).


VITALS = {"temp": "37", "pulse": "80", "resp": "18", "oxysat": "95"}


def day(n: int):
    return today() - timedelta(days=10) + timedelta(days=n)


def test_second_pre_dose_vitals_for_a_dose_is_refused_pointing_to_amendment(ward):
    first = ward.submit(
        "vitals", participant=P1, timepoint="pre_dose", dose="1", time=at(day(1), 8, 30), **VITALS
    )
    with pytest.raises(Refused) as info:
        ward.submit(
            "vitals", participant=P1, timepoint="pre_dose", dose="1", time=at(day(1), 8, 40), **VITALS
        )
    assert str(info.value) == (
        f"pre-dose vitals for dose 1 of {P1} are already recorded ({first.id}); amend that record with a "
        f"reason (wardcrf amend {first.id} --reason ...), or record a repeat measurement as timepoint=unscheduled"
    )
    assert info.value.exit_code == 1
    rows = ward.clin.store.rows("SELECT event_id FROM vitals WHERE participant = ? AND dose = 1", (P1,))
    assert rows == [{"event_id": first.id}]  # nothing saved


def test_pre_dose_vitals_are_corrected_by_amendment_and_repeats_are_unscheduled(ward):
    first = ward.submit(
        "vitals", participant=P1, timepoint="pre_dose", dose="1", time=at(day(1), 8, 30), **VITALS
    )
    workflow.amend(ward.clin, first.id, {"temp": "37.4"}, reason="misread the thermometer")
    ward.submit("vitals", participant=P1, timepoint="unscheduled", time=at(day(1), 8, 40), **VITALS)
    ward.dose(P1, 1, day(1))
    # dose 2's pre-dose vitals are a new timepoint
    ward.submit("vitals", participant=P1, timepoint="pre_dose", dose="2", time=at(day(2), 8, 30), **VITALS)


def test_an_unscheduled_record_cannot_be_amended_into_a_taken_timepoint(ward):
    ward.submit("vitals", participant=P1, timepoint="pre_dose", dose="1", time=at(day(1), 8, 30), **VITALS)
    other = ward.submit("vitals", participant=P1, timepoint="unscheduled", time=at(day(1), 8, 40), **VITALS)
    with pytest.raises(Refused, match="pre-dose vitals for dose 1 of WUH01-001 are already recorded"):
        workflow.amend(ward.clin, other.id, {"timepoint": "pre_dose", "dose": "1"}, reason="wrong timepoint")


def test_second_post_dose_vitals_for_a_dose_is_refused(ward):
    ward.dose(P1, 1, day(1))
    first = ward.submit(
        "vitals", participant=P1, timepoint="post_dose", dose="1", time=at(day(1), 10), **VITALS
    )
    with pytest.raises(
        Refused, match=rf"post-dose vitals for dose 1 of WUH01-001 are already recorded \({first.id}\)"
    ):
        ward.submit(
            "vitals", participant=P1, timepoint="post_dose", dose="1", time=at(day(1), 10, 30), **VITALS
        )


def _ae(ward, **kw):
    values = {
        "participant": P1,
        "term": "Fever after inhalation",
        "prespecified": "fever",
        "dose": "1",
        "onset": day(1).isoformat(),
        "grade": "1",
        "serious": "no",
        "causality": "possible",
        "outcome": "recovered",
        "end": day(2).isoformat(),
    }
    values.update(kw)
    return ward.submit("ae", **values)


def _checked(ward, events: str, n: int = 1):
    ward.dose(P1, n, day(n))
    return ward.submit("post_dose_check", participant=P1, dose=str(n), events=events, time=at(day(n), 10))


def test_reported_event_without_ae_is_an_open_item_in_show_and_today(ward, cli):
    check = _checked(ward, "fever")  # the check itself is always saved
    info = workflow.show(ward.clin, P1)
    assert [(m["event"], m["dose"], m["check"]) for m in info["ae_expected"]] == [("fever", 1, check.id)]
    worklist = workflow.today(ward.clin)
    assert_shape(worklist, status.Worklist)  # issue #16
    items = [i["what"] for i in worklist["items"] if i["participant"] == P1]
    assert "adverse event form for fever reported after dose 1" in items
    r = cli("participant", "show", P1, user="clinician")
    assert r.code == 0
    assert (
        f"open item: AE form expected: fever reported after dose 1 ({check.id}); record an adverse event "
        "with prespecified=fever dose=1" in " ".join(r.out.split())
    )
    listed = workflow.list_participants(ward.clin)
    assert next(p for p in listed if p["id"] == P1)["ae_expected"] == 1


def test_recording_the_ae_closes_the_item(ward):
    _checked(ward, "fever,diarrhoea")
    _ae(ward)
    left = workflow.show(ward.clin, P1)["ae_expected"]
    assert [m["event"] for m in left] == ["diarrhoea"]
    _ae(ward, term="Loose stools", prespecified="diarrhoea")
    assert workflow.show(ward.clin, P1)["ae_expected"] == []


def test_an_ae_of_another_dose_does_not_cover_a_new_report_unless_still_ongoing(ward):
    _checked(ward, "fever", 1)
    _ae(ward, end=day(1).isoformat())  # fever after dose 1, over the same day
    _checked(ward, "fever", 2)
    assert [(m["event"], m["dose"]) for m in workflow.show(ward.clin, P1)["ae_expected"]] == [("fever", 2)]
    _ae(ward, term="Fever again", dose="", onset=day(2).isoformat(), end="")  # ongoing since dose 2's day
    assert workflow.show(ward.clin, P1)["ae_expected"] == []


def test_amending_the_check_to_none_clears_the_item(ward):
    check = _checked(ward, "fever")
    workflow.amend(ward.clin, check.id, {"events": "none"}, reason="fever was before the dose, not after")
    assert workflow.show(ward.clin, P1)["ae_expected"] == []


def test_sign_off_is_refused_until_the_expected_ae_is_recorded(ward):
    check = _checked(ward, "fever")
    with pytest.raises(Refused) as info:
        ward.submit("signoff", who=ward.inv, participant=P1)
    assert str(info.value) == (
        f"cannot sign off {P1}: adverse event form(s) expected for prespecified events reported in post-dose "
        f"checks: fever after dose 1 ({check.id}); record them (form ae, prespecified=..., dose=...) first"
    )
    assert workflow.show(ward.clin, P1)["signoff"]["state"] == "not signed"
    _ae(ward)
    ward.submit("signoff", who=ward.inv, participant=P1)
    assert workflow.show(ward.clin, P1)["signoff"]["state"] == "signed"


# -- who may be named as having given a dose ---------------------------------------------------------
# The person a dose is `given_by` must be allowed to give doses (an auditor was accepted).


def _day1(ward: Staff) -> date:
    return date.fromisoformat(status.summary(ward.clin.store, P1)["enrolled_on"]) + timedelta(days=1)


def test_dose_given_by_another_study_doctor_is_recorded(ward):
    ev = ward.dose(P1, 1, _day1(ward), given_by="investigator")
    assert ev.body["data"]["given_by"] == "investigator"


@pytest.mark.parametrize("who", ["auditor", "dsmg", "pharmacist"])
def test_dose_given_by_someone_who_may_not_give_doses_is_refused(ward, who):
    with pytest.raises(ValidationFailed) as exc:
        ward.dose(P1, 1, _day1(ward), given_by=who)
    assert exc.value.problems["given_by"].startswith(f"{who} has the role {who}; doses are given by: ")
    assert "clinician" in exc.value.problems["given_by"]


# -- a screening corrected after enrollment so that the criteria fail --------------------------------
# Flagged, and no further dose: amending the date of birth of an enrolled participant to an age
# outside 18-75 left them enrolled and dosable, with the status "screen failure" and no deviation.


def _screening_event(ward: Staff) -> str:
    p = get_participant(ward.clin.store, P1)
    assert p is not None and p.screening_event
    return p.screening_event


def test_eligible_enrolled_participant_is_dosed(ward, site):
    day0 = status.summary(ward.clin.store, P1)["enrolled_on"]
    ev = ward.dose(P1, 1, date.fromisoformat(day0) + timedelta(days=1))
    assert ev.id
    info = status.summary(ward.clin.store, P1)
    assert info["status"] == "in treatment"
    assert not [d for d in info["deviations"] if d["kind"] == "ineligible after enrollment"]


def test_screening_corrected_to_ineligible_after_enrollment_is_flagged_and_blocks_dosing(ward, site):
    day0 = date.fromisoformat(status.summary(ward.clin.store, P1)["enrolled_on"])
    ward.dose(P1, 1, day0 + timedelta(days=1))
    workflow.amend(ward.clin, _screening_event(ward), {"dob": "1930-01-01"}, reason="date of birth misread")

    info = status.summary(ward.clin.store, P1)
    assert info["status"] == "enrolled, no longer eligible"
    flagged = [d for d in info["deviations"] if d["kind"] == "ineligible after enrollment"]
    assert flagged and flagged[0]["failed"] == ["age"]
    assert info["next_dose"]["state"] == "held"

    before = ward.clin.store.scalar("SELECT count(*) FROM events")
    with pytest.raises(Refused, match=r"no longer meets the eligibility criteria \(failed: age\)"):
        ward.dose(P1, 2, day0 + timedelta(days=2))
    assert ward.clin.store.scalar("SELECT count(*) FROM events") == before

    # correcting the screening back lifts the block
    workflow.amend(ward.clin, _screening_event(ward), {"dob": "1965-05-01"}, reason="checked the ID card")
    assert ward.dose(P1, 2, day0 + timedelta(days=2)).id
    assert status.summary(ward.clin.store, P1)["status"] == "in treatment"


def test_the_summary_is_typed_all_the_way_down_late_missing_and_ineligible(ward, site):
    """What the participant screen, the dose wizard and the ward list read (issue #16): the next dose
    (held, with why), each kind of format-1 deviation, an AE form expected and the sign-off are the
    TypedDicts the summary declares, with no key their types do not name."""
    from wardcrf.screens.participant import deviation_item

    from wardcrf.engine.schedule import Deviation, NextDose
    from wardcrf.workflow import safety

    day0 = date.fromisoformat(status.summary(ward.clin.store, P1)["enrolled_on"])
    ward.dose(P1, 1, day0 + timedelta(days=1), hh=11, mm=30)  # late; doses 2.. are missed by today
    ward.submit(
        "post_dose_check", participant=P1, dose="1", events="fever", time=at(day0 + timedelta(days=1), 12)
    )
    workflow.amend(ward.clin, _screening_event(ward), {"dob": "1930-01-01"}, reason="date of birth misread")

    info = status.summary(ward.clin.store, P1)
    assert_shape(info, status.ParticipantSummary)
    kinds = {d["kind"] for d in info["deviations"]}
    assert kinds == {"late dose", "missing dose", "ineligible after enrollment"}
    assert info["next_dose"] is not None and info["next_dose"]["hold"].startswith("no longer eligible")
    extras = {"what", "regimen"} if on_format_two(ward) else set()  # a format-2 version's (NextDose's type)
    assert set(info["next_dose"]) == set(NextDose.__required_keys__) | {"hold"} | extras
    assert [a["event"] for a in info["ae_expected"]] == ["fever"]
    assert set(info["signoff"]) == {"state"}
    # a key the type does not name is found, as is one it requires that the read leaves out
    assert shape_problems({**info["deviations"][0], "extra": 1}, Deviation) == [
        "$: Deviation has no key 'extra'"
    ]
    assert shape_problems({"dose": 1}, Deviation) == ["$: Deviation lacks 'kind'"]
    # the participant screen names each deviation: with its dose when it has one (it crashed on the
    # eligibility deviation, which has none, before the types said `dose` is not always there)
    assert [deviation_item(d) for d in info["deviations"] if d["kind"] != "missing dose"] == [
        "late dose 1",
        "ineligible after enrollment",
    ]
    [row] = [r for r in workflow.list_participants(ward.clin) if r["id"] == P1]
    # the one key the protocol names, not the type: the column of its one unit (`dose.cumulative`)
    assert isinstance(row.pop("cumulative_particles"), float)  # type: ignore[misc]
    assert_shape(row, status.WardRow)
    assert row["next_dose"] == info["next_dose"]
    # a signed casebook's sign-off names who, when and the printed signature
    _ae(
        ward,
        dose="1",
        onset=(day0 + timedelta(days=1)).isoformat(),
        end=(day0 + timedelta(days=2)).isoformat(),
    )
    ward.submit("signoff", who=ward.inv, participant=P1)
    signed = status.summary(ward.clin.store, P1)["signoff"]
    assert_shape(signed, safety.Signoff)
    assert set(signed) == set(safety.Signoff.__required_keys__) | set(safety.Signoff.__optional_keys__)


def test_participant_show_prints_the_eligibility_deviation(ward, site, cli):
    workflow.amend(ward.clin, _screening_event(ward), {"dob": "1930-01-01"}, reason="date of birth misread")
    out = cli("participant", "show", P1, user="clinician")
    assert out.code == 0, out.output
    assert "enrolled, no longer eligible" in out.output
    assert "deviation: ineligible after enrollment (failed: age" in out.output
