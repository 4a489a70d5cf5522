"""A positive skin test holds the next dose in `participant show` and `today` (found in QA).

Dosing was refused, but the worklist still said the dose was due now, and a
skin test corrected to positive after dose 1 left no trace among the deviations.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from wf_support import Ward, _copy_site, make_ward, today

from wardcrf import workflow
from wardcrf.site import Site
from wardcrf.workflow import status


@pytest.fixture
def site(data_dir: Path, _wf_template) -> Site:
    return _copy_site(_wf_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Ward:
    return make_ward(session_for, tmp_path)


def _enrolled(ward: Ward, result: str) -> tuple[str, object]:
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
