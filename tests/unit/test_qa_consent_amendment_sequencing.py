"""An amended consent time may not follow the participant's trial procedures (found in QA).

Amending the consent's time to after the screening and the first dose was
accepted: the record then said the participant was dosed before consenting,
and `audit verify` (which checks log order) did not notice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from wf_support import Ward, _copy_site, at, make_ward, today

from wardcrf import workflow
from wardcrf.errors import ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow.base import get_participant


@pytest.fixture
def site(data_dir: Path, _wf_template) -> Site:
    return _copy_site(_wf_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Ward:
    return make_ward(session_for, tmp_path)


def _consent_event(ward: Ward, pid: str) -> str:
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
