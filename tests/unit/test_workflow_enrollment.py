"""Consent, screening, enrollment, the skin test's hold and the sentinel gate: each rule accepted and refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from wf_support import Staff, at, make_ward, site, today

from wardcrf import eventlog, projections, signatures, workflow
from wardcrf.errors import AuthError, PermissionDenied, Refused, ValidationFailed
from wardcrf.workflow import status
from wardcrf.workflow.base import get_participant

__all__ = ["site"]  # fixtures used by pytest


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def _count(ward: Staff) -> int:
    return eventlog.count(ward.clin.store)


# -- consent ------------------------------------------------------------------------------


def test_consent_creates_a_site_prefixed_participant_signed_by_three_doctors(ward):
    pid = ward.consent()
    assert pid == "WUH01-001"
    p = workflow.show(ward.clin, pid)
    assert p["consent"]["valid"] and p["status"] == "consented"
    sigs = signatures.for_target(ward.clin.store, p["consent"]["event"])
    assert sorted((s.user, s.meaning) for s in sigs) == [
        ("clinician", "authored"),
        ("clinician2", "witnessed"),
        ("investigator", "witnessed"),
    ]
    assert all(s.valid for s in sigs)
    assert ward.consent() == "WUH01-002"


def test_surrogate_consent_needs_name_and_relationship(ward):
    with pytest.raises(ValidationFailed) as info:
        ward.consent(consenter="surrogate")
    assert set(info.value.problems) == {"surrogate_name", "surrogate_relationship"}
    pid = ward.consent(consenter="surrogate", surrogate_name="Wang Hong", surrogate_relationship="spouse")
    rec = ward.clin.store.rows("SELECT data FROM records WHERE subject = ?", (f"participant:{pid}",))
    assert '"surrogate_relationship":"spouse"' in rec[0]["data"]


def test_consent_witnesses_must_be_distinct_doctors(ward):
    before = _count(ward)
    with pytest.raises(ValidationFailed) as info:
        ward.consent(witness_1="clinician", witness_2="pharmacist")
    assert "already signs as the consenting doctor" in info.value.problems["witness_1"]
    assert "witnesses are study doctors" in info.value.problems["witness_2"]
    with pytest.raises(ValidationFailed, match="witness_2: investigator already signs as the first witness"):
        ward.consent(witness_1="investigator", witness_2="investigator")
    with pytest.raises(ValidationFailed, match="witness_1: nobody is not an active user"):
        ward.consent(witness_1="nobody")
    assert _count(ward) == before


def test_consent_needs_a_photo_of_the_signed_pages(ward):
    with pytest.raises(ValidationFailed, match="photos: required"):
        ward.consent(photos="")
    with pytest.raises(ValidationFailed, match=r"photos: photo 'page.jpg' not understood"):
        ward.consent(photos="page.jpg")
    assert ward.consent(photos=f"{ward.page()},{ward.page()}")


def test_wrong_witness_password_saves_nothing(ward):
    before = _count(ward)
    with pytest.raises(AuthError, match="wrong password for clinician2"):
        workflow.submit(
            ward.clin,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": ward.page(),
            },
            password_for=lambda u: "wrong-password-x" if u == "clinician2" else "test-password-1",
        )
    assert ward.clin.store.scalar("SELECT count(*) FROM participants") == 0
    # only the failed login attempt is logged
    assert _count(ward) == before + 1


def test_auditor_and_pharmacist_cannot_take_consent(ward, session_for):
    with pytest.raises(PermissionDenied, match="role auditor may not submit consent forms"):
        ward.submit("consent", who=ward.aud, consenter="participant")
    with pytest.raises(PermissionDenied):
        ward.submit("consent", who=session_for("pharmacist"), consenter="participant")


def test_no_other_form_before_valid_consent(ward):
    """Part 11 §11.10(f): a participant without valid consent takes no other form."""
    pid = ward.consent()
    # Forge a participant row without signatures, as if consent were incomplete (e.g. synced half-way).
    from wardcrf import records

    bare = records.submit(ward.clin, "consent", {"consenter": "participant"}, subject="participant:WUH01-009")
    assert bare
    with pytest.raises(Refused, match=r"WUH01-009 has no valid consent .* no other form can be saved"):
        ward.screen("WUH01-009")
    assert ward.screen(pid)
    from wardcrf import audit

    assert audit.verify(ward.aud).ok
    # A record that bypassed the services is found by `audit verify`.
    records.submit(ward.clin, "vitals", {"temp": 37.0}, subject="participant:WUH01-009")
    report = audit.verify(ward.aud)
    assert report.problems == [
        "consent sequencing: WUH01-009: vitals record "
        + ward.clin.store.scalar("SELECT max(event_id) FROM records WHERE form = 'vitals'")
        + " has no signed consent before it"
    ]


def test_unknown_participant_is_refused(ward):
    with pytest.raises(Refused, match="unknown participant WUH01-404"):
        ward.submit("vitals", participant="WUH01-404", temp="37", pulse="80", resp="18", oxysat="96")
    with pytest.raises(Refused, match="name the participant"):
        ward.submit("vitals", temp="37")


# -- screening ------------------------------------------------------------------------------


def test_eligible_screening_records_age_and_result(ward):
    pid = ward.consent()
    ev = ward.screen(pid, dob="1960-06-01", date=(today() - timedelta(days=1)).isoformat())
    assert ev.body["data"]["eligible"] is True and ev.body["data"]["failed_criteria"] == []
    assert ev.body["data"]["age"]["unit"] == "years"
    assert workflow.show(ward.clin, pid)["status"] == "eligible, not enrolled"


def test_screen_failure_records_failed_criteria_and_is_never_enrolled(ward):
    pid = ward.consent()
    day = today() - timedelta(days=1)
    dob = day.replace(year=day.year - 17)
    ev = ward.screen(pid, dob=dob.isoformat(), date=day.isoformat(), pcr_confirmed="no", severity="moderate")
    assert ev.body["data"]["eligible"] is False
    assert ev.body["data"]["failed_criteria"] == ["age", "pcr", "severity"]
    assert workflow.show(ward.clin, pid)["status"] == "screen failure"
    with pytest.raises(Refused, match=r"screen failure .*age, pcr, severity.* never enrolled"):
        ward.enroll(pid, day)
    # the id is never reused
    assert ward.consent() == "WUH01-002"


@pytest.mark.parametrize(("age", "eligible"), [(17, False), (18, True), (75, True), (76, False)])
def test_age_limits_are_inclusive_18_to_75(ward, age, eligible):
    pid = ward.consent()
    day = today() - timedelta(days=1)
    dob = (
        day.replace(year=day.year - age)
        if not (day.month == 2 and day.day == 29)
        else day.replace(year=day.year - age, day=28)
    )
    ev = ward.screen(pid, dob=dob.isoformat(), date=day.isoformat())
    assert ev.body["data"]["eligible"] is eligible


def test_screening_twice_is_refused(ward):
    pid = ward.consent()
    ward.screen(pid)
    with pytest.raises(Refused, match="already screened"):
        ward.screen(pid)


def test_screening_dates_in_the_future_or_before_birth_are_refused(ward):
    pid = ward.consent()
    with pytest.raises(ValidationFailed) as info:
        ward.screen(pid, date=(today() + timedelta(days=2)).isoformat(), dob="2090-01-01")
    assert "is in the future" in info.value.problems["date"]
    assert "is in the future" in info.value.problems["dob"]
    with pytest.raises(ValidationFailed, match="dob: 1990-01-01 is after the screening date 1980-01-01"):
        ward.screen(pid, date="1980-01-01", dob="1990-01-01")


# -- enrollment and the sentinel gate ------------------------------------------------------------


def test_enrollment_needs_screening(ward):
    pid = ward.consent()
    with pytest.raises(Refused, match="has not been screened"):
        ward.enroll(pid, today())


def test_enrollment_cannot_precede_screening_and_is_once(ward):
    pid = ward.consent()
    ward.screen(pid, date=(today() - timedelta(days=3)).isoformat())
    with pytest.raises(ValidationFailed, match=r"date: .* is before the screening date"):
        ward.enroll(pid, today() - timedelta(days=5))
    ward.enroll(pid, today() - timedelta(days=2))
    with pytest.raises(Refused, match="already enrolled"):
        ward.enroll(pid, today())


def test_sentinel_gate_holds_participant_2_until_dsmg_continue(ward):
    p1, _ = ward.enrolled_participant()
    p2 = ward.consent()
    ward.screen(p2)
    before = _count(ward)
    with pytest.raises(
        Refused,
        match=f"sentinel rule: {p2} cannot be enrolled until a DSMG member records "
        f"a 'continue' decision on {p1}'s safety data",
    ):
        ward.enroll(p2, today() - timedelta(days=2))
    assert _count(ward) == before
    # a 'stop' or 'alter' is not a 'continue'
    ward.submit(
        "dsmg_decision",
        who=ward.dsmg,
        participant=p1,
        decision="alter",
        rationale="r",
        change="halve the dose",
    )
    with pytest.raises(Refused, match="'alter'"):
        ward.enroll(p2, today() - timedelta(days=2))
    ward.continue_(p1)
    ward.enroll(p2, today() - timedelta(days=2))
    assert workflow.show(ward.clin, p2)["status"] == "enrolled"


def test_clinician_cannot_record_a_dsmg_decision(ward):
    p1, _ = ward.enrolled_participant()
    with pytest.raises(PermissionDenied, match="role clinician may not submit dsmg_decision forms"):
        ward.submit("dsmg_decision", participant=p1, decision="continue", rationale="fine")


def test_alter_requires_the_change_and_a_protocol_amendment(ward):
    from wardcrf import protocol

    p1, _ = ward.enrolled_participant()
    with pytest.raises(ValidationFailed, match="change: required for 'alter'"):
        ward.submit("dsmg_decision", who=ward.dsmg, participant=p1, decision="alter", rationale="r")
    ward.submit("dsmg_decision", who=ward.dsmg, participant=p1, decision="continue", rationale="ok")
    ward.submit(
        "dsmg_decision",
        who=ward.dsmg,
        participant=p1,
        decision="alter",
        rationale="r",
        change="4 doses",
    )
    p2 = ward.consent()
    ward.screen(p2)
    with pytest.raises(Refused, match="load the amended protocol"):
        ward.enroll(p2, today() - timedelta(days=2))
    src = protocol.default_source().replace('version = "1.0"', 'version = "1.1"', 1)
    protocol.load(ward.inv, protocol.parse(src, "mexcovid-1.1.toml"))
    # the clinician's session was opened under 1.0; the new record is captured under 1.1
    ev = ward.enroll(p2, today() - timedelta(days=2))
    assert ev.protocol == {"id": "MEXCOVID", "version": "1.1"}


def test_workflow_projections_rebuild_identically(ward):
    p1, day0 = ward.enrolled_participant()
    ward.dose(p1, 1, day0 + timedelta(days=1))
    ward.submit(
        "vitals",
        participant=p1,
        timepoint="post_dose",
        dose=1,
        time=at(day0 + timedelta(days=1), 10),
        temp="37.0",
        pulse="80",
        resp="18",
        oxysat="95",
    )
    n, diffs = projections.check(ward.clin.store)
    assert n > 10 and not diffs


def test_consent_photo_is_stored_and_bound_only_when_the_consent_is_saved(ward):
    from wardcrf.photos import audit as photo_audit
    from wardcrf.photos import catalog
    from wardcrf.photos import verify as photo_verify

    page = ward.page()
    with pytest.raises(ValidationFailed):
        ward.consent(photos=page, witness_1="nobody")
    assert catalog.list_photos(ward.clin) == []
    pid = ward.consent(photos=page)
    consent_event = workflow.show(ward.clin, pid)["consent"]["event"]
    bound = photo_audit.record_photos(ward.clin, consent_event)
    assert len(bound) == 1 and bound[0].field == "photos" and bound[0].current
    assert catalog.list_photos(ward.clin, tray=True) == []
    assert not photo_verify.verify(ward.clin).problems


def test_consent_witnesses_cannot_be_amended(ward):
    pid = ward.consent()
    event = workflow.show(ward.clin, pid)["consent"]["event"]
    with pytest.raises(ValidationFailed, match="witness_1: witnesses signed the original consent"):
        workflow.amend(
            ward.clin, event, {"witness_1": "clinician2", "witness_2": "investigator"}, reason="swap"
        )
    am = workflow.amend(ward.clin, event, {"time": at(today() - timedelta(days=41))}, reason="clock")
    assert "time" in am.body["changes"]
    states = {s.status for s in signatures.for_target(ward.clin.store, event)}
    assert states == {"changed since signed"}
    assert workflow.show(ward.clin, pid)["consent"]["valid"]


# -- consent time amended against the trial procedures -----------------------------------------------
# An amended consent time may not follow the participant's screening or skin test: the record would
# say the participant was dosed before consenting, and log order (`audit verify`) does not show it.


def _consent_event(ward: Staff, pid: str) -> str:
    p = get_participant(ward.clin.store, pid)
    assert p is not None and p.consent_event
    return p.consent_event


def test_consent_time_corrected_but_still_before_the_screening_is_accepted(ward):
    pid = ward.consent()  # 40 days ago; screening 30 days ago
    ward.screen(pid)
    am = workflow.amend(
        ward.clin, _consent_event(ward, pid), {"time": at(today() - timedelta(days=35))}, reason="typo"
    )
    assert am.id


def test_consent_time_moved_after_the_screening_is_refused(ward):
    pid = ward.consent()
    ward.screen(pid)
    before = ward.clin.store.scalar("SELECT count(*) FROM events")
    with pytest.raises(ValidationFailed) as exc:
        workflow.amend(
            ward.clin, _consent_event(ward, pid), {"time": at(today() - timedelta(days=20))}, reason="typo"
        )
    assert "time" in exc.value.problems
    assert "after the screening" in exc.value.problems["time"]
    assert ward.clin.store.scalar("SELECT count(*) FROM events") == before


def test_consent_time_moved_after_the_skin_test_is_refused(ward):
    pid = ward.consent()  # 40 days ago
    ward.skin(pid, today() - timedelta(days=38))
    with pytest.raises(ValidationFailed) as exc:
        workflow.amend(
            ward.clin, _consent_event(ward, pid), {"time": at(today() - timedelta(days=37))}, reason="typo"
        )
    assert "after the skin test" in exc.value.problems["time"]


# -- a positive skin test holds the next dose --------------------------------------------------------
# In `participant show` and `today` too (not only at dosing), and a skin test corrected to positive
# after dose 1 is a deviation.


def _enrolled(ward: Staff, result: str) -> tuple[str, object]:
    pid = ward.consent()
    ward.screen(pid)
    day0 = today() - timedelta(days=3)
    ward.enroll(pid, day0)
    ev = ward.skin(pid, day0, result=result)
    return pid, ev


def test_negative_skin_test_leaves_the_dose_due(ward):
    pid, _ = _enrolled(ward, "negative")
    nd = status.summary(ward.clin.store, pid)["next_dose"]
    assert nd["state"] != "held" and "hold" not in nd


def test_positive_skin_test_holds_the_next_dose_everywhere(ward):
    pid, ev = _enrolled(ward, "positive")
    info = status.summary(ward.clin.store, pid)
    assert info["next_dose"]["state"] == "held"
    assert info["next_dose"]["hold"] == f"positive skin test {ev.id}"
    items = [i for i in workflow.today(ward.clin)["items"] if i["participant"] == pid and "dose" in i["what"]]
    assert [(i["what"], i["state"]) for i in items] == [("dose 1", "held")]  # no pre-dose vitals asked


def test_skin_test_corrected_to_positive_after_a_dose_is_a_deviation(ward):
    pid, ev = _enrolled(ward, "negative")
    ward.dose(pid, 1, today() - timedelta(days=2))
    workflow.amend(ward.clin, ev.id, {"result": "positive"}, reason="read again by the dermatologist")
    info = status.summary(ward.clin.store, pid)
    kinds = {d["kind"]: d for d in info["deviations"]}
    assert "dosed after a positive skin test" in kinds
    assert kinds["dosed after a positive skin test"]["event"] == ev.id
    assert info["next_dose"]["state"] == "held"


def test_cli_prints_the_hold_and_the_deviation(ward, cli):
    pid, ev = _enrolled(ward, "negative")
    ward.dose(pid, 1, today() - timedelta(days=2))
    workflow.amend(ward.clin, ev.id, {"result": "positive"}, reason="read again")
    r = cli("participant", "show", pid, user="clinician")
    assert r.code == 0, r.err
    assert f"held (positive skin test {ev.id})" in r.out
    assert f"deviation: dosed after a positive skin test ({ev.id})" in r.out
    r = cli("today", user="clinician")
    assert f"held: positive skin test {ev.id}" in r.out
