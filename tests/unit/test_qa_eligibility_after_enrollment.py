"""A screening corrected after enrollment so that the criteria fail: flagged, and no further dose.

Found in QA: amending the date of birth of an enrolled participant to an age
outside 18-75 left them enrolled and dosable, with the status "screen failure"
and no deviation.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from wf_support import Ward, _copy_site, make_ward

from wardcrf import workflow
from wardcrf.errors import Refused
from wardcrf.site import Site
from wardcrf.workflow import status
from wardcrf.workflow.base import get_participant

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Ward:
    return make_ward(session_for, tmp_path)


def _screening_event(ward: Ward) -> str:
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


def test_participant_show_prints_the_eligibility_deviation(ward, site, cli):
    workflow.amend(ward.clin, _screening_event(ward), {"dob": "1930-01-01"}, reason="date of birth misread")
    out = cli("participant", "show", P1, user="clinician")
    assert out.code == 0, out.output
    assert "enrolled, no longer eligible" in out.output
    assert "deviation: ineligible after enrollment (failed: age" in out.output
