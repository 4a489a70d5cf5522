"""After a dose (found in QA): one pre-/post-dose vitals record per dose, and an AE form for
every prespecified event the post-dose check reports (an open item that blocks sign-off)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from wf_support import Ward, _copy_site, at, make_ward, today

from wardcrf import workflow
from wardcrf.errors import Refused
from wardcrf.site import Site

P1 = "WUH01-001"
VITALS = {"temp": "37", "pulse": "80", "resp": "18", "oxysat": "95"}


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago with a negative skin test; the sentinel gate is open."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Ward:
    return make_ward(session_for, tmp_path)


def day(n: int):
    return today() - timedelta(days=10) + timedelta(days=n)


# -- one vitals record per timepoint and dose ---------------------------------------------------


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


# -- prespecified events reported after a dose expect an AE form -------------------------------


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
    items = [i["what"] for i in workflow.today(ward.clin)["items"] if i["participant"] == P1]
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
