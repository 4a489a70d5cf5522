"""The same adverse event submitted twice needs a confirmation with a reason (found in QA).

A serious event submitted twice would get two expedited reports and two DSMG reviews.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wf_support import Ward, _copy_site, _wf_sentinel_template, _wf_template, make_ward

from wardcrf.errors import ValidationFailed
from wardcrf.site import Site

__all__ = ["_wf_sentinel_template", "_wf_template"]

P1 = "WUH01-001"
AE = {
    "term": "Fever",
    "onset": "today",
    "grade": "1",
    "serious": "no",
    "causality": "possible",
    "action": "none",
    "outcome": "recovering",
}


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Ward:
    return make_ward(session_for, tmp_path)


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
