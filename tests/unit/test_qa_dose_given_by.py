"""The person a dose is `given_by` must be allowed to give doses (found in QA: an auditor was accepted)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from wf_support import Ward, _copy_site, make_ward

from wardcrf.errors import ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow import status

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Ward:
    return make_ward(session_for, tmp_path)


def _day1(ward: Ward) -> date:
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
