"""Adverse events, DSMG review, sign-off, clinical forms and amendments."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from mexcovid_engine import CT_SEGMENTS
from wf_support import Staff, _copy_site, at, make_ward, today

from wardcrf import eventlog, projections, records, workflow
from wardcrf.errors import AuthError, PermissionDenied, Refused, UsageError, ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow import safety

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def d(days_ago: int) -> str:
    return (today() - timedelta(days=days_ago)).isoformat()


def ae(ward: Staff, **kw):
    values = {
        "term": "Fever",
        "onset": d(5),
        "grade": "1",
        "serious": "no",
        "causality": "possible",
        "outcome": "recovering",
        "first_known": d(5),
    }
    values.update(kw)
    return ward.submit("ae", participant=P1, **values)


# -- adverse events ----------------------------------------------------------------------------


def test_non_serious_ae_has_no_report_due_and_is_not_on_the_dsmg_list(ward):
    ev = ae(ward, prespecified="fever")
    assert "report_due" not in ev.body["data"]
    assert safety.review_list(ward.clin.store) == []
    info = workflow.show(ward.clin, P1)
    assert [a["term"] for a in info["open_aes"]] == ["Fever"]


@pytest.mark.parametrize(
    ("criterion", "days"),
    [("death", 7), ("life_threatening", 7), ("hospitalization", 15), ("medically_important", 15)],
)
def test_serious_ae_report_due_7_or_15_days_from_first_knowledge(ward, criterion, days):
    extra = {"grade": "5", "outcome": "fatal"} if criterion == "death" else {"grade": "4"}
    ev = ae(ward, serious="yes", first_known=d(3), **{criterion: "yes"}, **extra)
    due = today() - timedelta(days=3) + timedelta(days=days)
    assert ev.body["data"]["report_due"] == due.isoformat()
    assert [r["event_id"] for r in safety.review_list(ward.clin.store)] == [ev.id]


def test_serious_ae_leaves_the_dsmg_list_once_relatedness_is_recorded(ward):
    ev = ae(ward, serious="yes", hospitalization="yes", grade="3")
    items = [i["what"] for i in workflow.today(ward.clin)["items"]]
    assert f"DSMG relatedness review of SAE {ev.id}" in items
    with pytest.raises(PermissionDenied):
        ward.submit(
            "dsmg_ae_review",
            participant=P1,
            ae_event=ev.id,
            relatedness="unlikely",
            unexpected="no",
        )
    with pytest.raises(ValidationFailed, match="ae_event: X-1 is not an adverse event record"):
        ward.submit(
            "dsmg_ae_review",
            who=ward.dsmg,
            participant=P1,
            ae_event="X-1",
            relatedness="unlikely",
            unexpected="no",
        )
    ward.submit(
        "dsmg_ae_review",
        who=ward.dsmg,
        participant=P1,
        ae_event=ev.id,
        relatedness="unlikely",
        unexpected="no",
    )
    assert safety.review_list(ward.clin.store) == []


def test_ae_seriousness_grade_and_dates_must_agree(ward):
    with pytest.raises(ValidationFailed) as info:
        ae(ward, serious="yes", grade="5", end=d(7), first_known=d(6), dose="4")
    p = info.value.problems
    assert "needs at least one criterion" in p["serious"]
    assert "grade 5 is death" in p["death"]
    assert "before the onset" in p["end"] and "before the onset" in p["first_known"]
    assert "dose 4 has not been recorded" in p["dose"]
    with pytest.raises(ValidationFailed, match="serious: criteria hospitalization make the event serious"):
        ae(ward, hospitalization="yes")
    with pytest.raises(ValidationFailed, match="grade: 6 is outside the allowed range 1 to 5"):
        ae(ward, grade="6")
    with pytest.raises(ValidationFailed, match="causality: 'maybe' is not one of: certain, probable"):
        ae(ward, causality="maybe")


# -- sign-off ----------------------------------------------------------------------------------------


def test_investigator_signoff_then_amendment_shows_changed_since_signed(ward):
    ev = ward.submit("vitals", participant=P1, temp="37.1", pulse="88", resp="20", oxysat="95")
    with pytest.raises(PermissionDenied, match="role clinician may not submit signoff forms"):
        ward.submit("signoff", participant=P1)
    with pytest.raises(AuthError):
        workflow.submit(ward.inv, "signoff", {}, participant=P1, password_for=lambda u: "wrong-password-9")
    sig = ward.submit("signoff", who=ward.inv, participant=P1, note="reviewed")
    assert sig.body["meaning"] == "approved" and sig.body["target"] == f"participant:{P1}"
    assert workflow.show(ward.clin, P1)["signoff"]["state"] == "signed"
    workflow.amend(ward.clin, ev.id, {"temp": "37.3"}, reason="transcription error")
    state = workflow.show(ward.clin, P1)["signoff"]
    assert state["state"] == "changed since signed" and "[CHANGED SINCE SIGNED]" in state["manifestation"]


# -- clinical forms ------------------------------------------------------------------------------


def test_ct_score_total_is_computed_from_18_segments(ward):
    scores = dict.fromkeys(CT_SEGMENTS, "2")
    scores["r_upper_apical"] = "ne"
    ev = ward.submit(
        "ct_score",
        participant=P1,
        timepoint="baseline",
        date=d(9),
        lesion_form="ground_glass",
        lesion_shape="patchy,oval",
        **scores,
    )
    data = ev.body["data"]
    assert data["total"] == 34 and data["evaluable_segments"] == 17 and data["r_upper_apical"] == "ne"
    assert data["r_upper_posterior"] == 2 and data["lesion_shape"] == ["patchy", "oval"]
    with pytest.raises(ValidationFailed, match="total: computed by wardcrf"):
        ward.submit("ct_score", participant=P1, timepoint="baseline", total="72", **scores)
    bad = dict(scores, l_lower_superior="5")
    bad.pop("r_middle_medial")
    with pytest.raises(ValidationFailed) as info:
        ward.submit("ct_score", participant=P1, timepoint="baseline", **bad)
    assert info.value.problems == {
        "r_middle_medial": "required",
        "l_lower_superior": "'5' is not one of: 0, 1, 2, 3, 4, ne",
    }


def test_labs_need_at_least_one_value_with_units(ward):
    with pytest.raises(ValidationFailed, match="labs: enter at least one laboratory value"):
        ward.submit("labs", participant=P1, timepoint="baseline")
    ev = ward.submit(
        "labs", participant=P1, timepoint="baseline", date=d(9), lym="1.61", crp="12.5", il6="9.8"
    )
    assert ev.body["data"]["lym"] == {"value": 1.61, "unit": "10^9/L"}
    assert ev.body["data"]["crp"] == {"value": 12.5, "unit": "mg/L"}


def test_oxygen_once_per_day_and_step_down(ward):
    ward.submit("oxygen", participant=P1, date=d(7), support="hfnc", flow="40", fio2="50")
    ward.submit("oxygen", participant=P1, date=d(6), support="nasal_cannula", flow="3")
    with pytest.raises(Refused, match="one record per day"):
        ward.submit("oxygen", participant=P1, date=d(6), support="room_air")
    with pytest.raises(
        ValidationFailed, match="support: 'helmet' is not one of: room_air, nasal_cannula, hfnc"
    ):
        ward.submit("oxygen", participant=P1, date=d(5), support="helmet")


def test_convalescent_plasma_records_volume_titre_and_time(ward):
    with pytest.raises(ValidationFailed) as info:
        ward.submit("conmed", participant=P1, category="convalescent_plasma")
    assert set(info.value.problems) == {"plasma_volume", "plasma_titre", "plasma_time"}
    ev = ward.submit(
        "conmed",
        participant=P1,
        category="convalescent_plasma",
        plasma_volume="200",
        plasma_titre="640",
        plasma_time=at(today() - timedelta(days=8), 14),
    )
    assert ev.body["data"]["plasma_volume"] == {"value": 200.0, "unit": "mL"}
    with pytest.raises(ValidationFailed, match="name: required"):
        ward.submit("conmed", participant=P1, category="antiviral")
    ward.submit("conmed", participant=P1, category="corticosteroid", name="methylprednisolone", start=d(9))


def test_demographics_dates_in_order_and_onset_to_admission_computed(ward):
    with pytest.raises(ValidationFailed, match=r"admission: .* is before the symptom onset"):
        ward.submit("demographics", participant=P1, symptom_onset=d(30), admission=d(40))
    with pytest.raises(ValidationFailed, match="symptom_onset: 1950-01-01 is before the date of birth"):
        ward.submit("demographics", participant=P1, symptom_onset="1950-01-01", admission=d(40))
    ev = ward.submit(
        "demographics",
        participant=P1,
        symptom_onset=d(60),
        admission=d(30),
        symptoms="fever,cough",
        comorbidities="hypertension,diabetes",
    )
    assert ev.body["data"]["onset_to_admission"] == {"value": 30, "unit": "days"}
    with pytest.raises(Refused, match="already has demographics"):
        ward.submit("demographics", participant=P1, symptom_onset=d(60), admission=d(30))


# -- amendments ------------------------------------------------------------------------------------


def test_amendment_revalidates_and_recomputes(ward):
    scores = dict.fromkeys(CT_SEGMENTS, "1")
    ev = ward.submit(
        "ct_score",
        participant=P1,
        timepoint="baseline",
        date=d(9),
        lesion_form="ground_glass",
        **scores,
    )
    am = workflow.amend(ward.clin, ev.id, {"r_upper_apical": "4"}, reason="second reader consensus")
    assert am.body["changes"] == {
        "r_upper_apical": {"old": 1, "new": 4},
        "total": {"old": 18, "new": 21},
    }
    assert records.load(ward.clin.store, ev.id).data["total"] == 21
    with pytest.raises(ValidationFailed, match="total: computed by wardcrf"):
        workflow.amend(ward.clin, ev.id, {"total": "3"}, reason="x")


def test_amendment_needs_a_reason_and_a_permitted_role(ward):
    ev = ward.submit("vitals", participant=P1, temp="37.1", pulse="88", resp="20", oxysat="95")
    before = eventlog.count(ward.clin.store)
    with pytest.raises(UsageError, match="an amendment needs a reason"):
        workflow.amend(ward.clin, ev.id, {"temp": "37.2"}, reason=" ")
    with pytest.raises(PermissionDenied, match="role auditor may not amend vitals records"):
        workflow.amend(ward.aud, ev.id, {"temp": "37.2"}, reason="typo")
    with pytest.raises(ValidationFailed, match="temp: 372 C is outside the allowed range"):
        workflow.amend(ward.clin, ev.id, {"temp": "372"}, reason="typo")
    with pytest.raises(Refused, match="unknown event NOPE-1"):
        workflow.amend(ward.clin, "NOPE-1", {"temp": "37.2"}, reason="typo")
    assert eventlog.count(ward.clin.store) == before
    am = workflow.amend(ward.clin, ev.id, {"temp": "37.2"}, reason="typo")
    assert am.body["changes"]["temp"] == {
        "old": {"value": 37.1, "unit": "C"},
        "new": {"value": 37.2, "unit": "C"},
    }


def test_amending_a_dose_time_recomputes_its_window(ward):
    day = today() - timedelta(days=9)
    ev = ward.dose(P1, 1, day)
    am = workflow.amend(
        ward.clin, ev.id, {"start": at(day, 12), "end": at(day, 12, 30)}, reason="clock was wrong"
    )
    assert am.body["changes"]["window"] == {"old": "on_time", "new": "late"}
    assert ward.clin.store.scalar("SELECT window FROM doses WHERE event_id = ?", (ev.id,)) == "late"
    _n, diffs = projections.check(ward.clin.store)
    assert not diffs


def test_a_full_participant_rebuilds_identically(ward):
    day = today() - timedelta(days=9)
    ev = ward.dose(P1, 1, day)
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
    a = ae(ward, serious="yes", hospitalization="yes", grade="3")
    workflow.amend(ward.clin, a.id, {"outcome": "recovered", "end": d(2)}, reason="resolved")
    workflow.amend(ward.clin, ev.id, {"lot": "LOT-B2"}, reason="label misread")
    ward.submit("signoff", who=ward.inv, participant=P1)
    _n, diffs = projections.check(ward.clin.store)
    assert not diffs, diffs


def test_preview_checks_without_saving(ward):
    from wardcrf.workflow import service

    before = eventlog.count(ward.clin.store)
    scores = dict.fromkeys(CT_SEGMENTS, "3")
    prep = service.preview(ward.clin, "ct_score", {"timepoint": "baseline", **scores}, participant=P1)
    assert prep.computed == {"total": 54, "evaluable_segments": 18}
    assert prep.problems == {
        "lesion_form": "required when any segment scores above 0 (ground_glass, consolidation)"
    }
    prep = service.preview(ward.clin, "vitals", {"temp": "370"}, participant=P1)
    assert set(prep.problems) == {"temp", "pulse", "resp", "oxysat"}
    with pytest.raises(PermissionDenied):
        service.preview(ward.aud, "vitals", {}, participant=P1)
    assert eventlog.count(ward.clin.store) == before


def test_lab_and_ct_timepoints_follow_the_doses(ward):
    with pytest.raises(ValidationFailed, match="timepoint: no dose recorded for WUH01-001"):
        ward.submit("labs", participant=P1, timepoint="post_treatment", date=d(1), crp="3")
    ward.dose(P1, 1, today() - timedelta(days=9))
    with pytest.raises(ValidationFailed, match=r"date: .* is after dose 1"):
        ward.submit("labs", participant=P1, timepoint="baseline", date=d(2), crp="3")
    with pytest.raises(ValidationFailed, match=r"date: .* is before the last dose"):
        scores = dict.fromkeys(CT_SEGMENTS, "0")
        ward.submit("ct_score", participant=P1, timepoint="post_treatment", date=d(10), **scores)
    ward.submit("labs", participant=P1, timepoint="baseline", date=d(10), crp="30")
    ward.submit("labs", participant=P1, timepoint="post_treatment", date=d(2), crp="3")


# -- the same adverse event twice --------------------------------------------------------------------
# Needs a confirmation with a reason: a serious event submitted twice would get two expedited
# reports and two DSMG reviews.


AE = {
    "term": "Fever",
    "onset": "today",
    "grade": "1",
    "serious": "no",
    "causality": "possible",
    "action": "none",
    "outcome": "recovering",
}


def test_the_same_event_twice_is_refused_and_saves_nothing(ward):
    first = ward.submit("ae", participant=P1, **AE)
    before = ward.clin.store.scalar("SELECT count(*) FROM events")
    with pytest.raises(ValidationFailed) as exc:
        ward.submit("ae", participant=P1, **{**AE, "term": " fever "})
    assert "already has an adverse event 'fever' with onset" in exc.value.problems["term"]
    assert first.id in exc.value.problems["term"]
    assert ward.clin.store.scalar("SELECT count(*) FROM events") == before


def test_confirm_without_reason_is_not_enough(ward):
    ward.submit("ae", participant=P1, **AE)
    with pytest.raises(ValidationFailed):
        ward.submit("ae", participant=P1, confirm=True, **AE)


def test_a_separate_event_confirmed_with_a_reason_is_saved(ward):
    ward.submit("ae", participant=P1, **AE)
    ev = ward.submit("ae", participant=P1, confirm=True, reason="second febrile episode in the evening", **AE)
    assert ev.reason == "second febrile episode in the evening"


def test_another_term_or_onset_is_not_a_duplicate(ward):
    ward.submit("ae", participant=P1, **AE)
    assert ward.submit("ae", participant=P1, **{**AE, "term": "Diarrhoea"}).id
    assert ward.submit("ae", participant=P1, **{**AE, "onset": "yesterday"}).id


def test_the_duplicate_is_flagged_confirmable_and_other_ae_problems_are_not(ward):
    """A screen offers the reason for exactly the problems the domain flags (issue 14)."""
    from wardcrf.errors import is_confirmable

    ward.submit("ae", participant=P1, **AE)
    with pytest.raises(ValidationFailed) as exc:
        ward.submit("ae", participant=P1, **{**AE, "end": "2000-01-01"})
    problems = exc.value.problems
    assert is_confirmable(problems["term"])
    assert "end" in problems and not is_confirmable(problems["end"])
