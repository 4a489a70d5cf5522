"""`workflow.administration_visit`: a format-2 administration as the guided flow asks it (issue 17).

On a PALM007 demo ward (capsules every 12 h by weight band, blinded) at the
suite's moment when a patient's dose is due: the plan's kind, steps and
prescribed dose; the count of capsules (accepted, and hostile counts refused
naming the count); a dose typed against its count refused; the kit check; a
format-1 site refused (its dose wizard is format 1's). Pilot tests of the
screen: tests/tui/test_administration_wizard.py.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from site_users import PASSWORD

from wardcrf import workflow
from wardcrf.engine import model
from wardcrf.errors import PermissionDenied, Refused, ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow import administration_visit as av

SEEDED = "2020-03-16T01:00:00Z"
MORNING = "2020-03-16T07:05:00Z"  # 08:05 in Kinshasa: the 08:00 dose is due


@pytest.fixture(scope="module")
def _template(tmp_path_factory) -> Path:
    from wardcrf.sync import engine_demo

    data = tmp_path_factory.mktemp("palm007") / "site"
    engine_demo.seed(data, model.shipped("palm007.toml"), PASSWORD, now=datetime.fromisoformat(SEEDED))
    return data


@pytest.fixture
def ward(_template, tmp_path, monkeypatch):
    data = tmp_path / "site"
    shutil.copytree(_template, data, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", MORNING)
    s = Site.open(data).unlock("clinician", PASSWORD)
    due = [
        p["id"]
        for p in workflow.list_participants(s)
        if (workflow.show(s, p["id"]).get("next_dose") or {}).get("state") == "due now"
    ]
    yield s, due[0]
    s.close()


def test_the_plan_of_a_capsule_dose(ward) -> None:
    s, pid = ward
    p = av.plan(s, pid)
    assert (p.kind, p.form, p.route, p.product, p.regimen) == (
        "tablets",
        "treatment",
        "ORAL",
        "blinded",
        "blinded",
    )
    assert p.prescribed == {"value": 600, "unit": "mg"} and p.strength == {"value": 200, "unit": "mg"}
    assert p.units == 3 and "band 40-120 kg" in p.prescribed_how
    assert "dose_mg" not in p.product_fields  # counted: the dose is the count times the strength
    assert {"preparation", "with_food"} <= set(p.required) and p.refusal is None
    assert p.before == () and p.after == ()


@pytest.mark.parametrize(
    "units", ["0", "-1", "2.5", "1e3", "nan", "3\x1b[2J", "9" * 5000, "", "101", "three"]
)
def test_a_hostile_count_is_refused_naming_the_count(ward, units) -> None:
    s, pid = ward
    with pytest.raises(ValidationFailed) as got:
        av.dose_from_units(av.plan(s, pid), units)
    assert "whole number of units from 1 to 100" in got.value.problems["units"]


def test_a_count_gives_the_dose_and_a_dose_against_it_is_refused(ward) -> None:
    s, pid = ward
    p = av.plan(s, pid)
    assert av.dose_from_units(p, "3") == {"dose_mg": "600"}
    kit = str(workflow.show(s, pid)["kit"])
    given = {"kit_id": kit, "preparation": "whole", "with_food": True}
    with pytest.raises(av.PartRefused) as got:
        av.record(s, pid, before={}, administration={**given, "dose_mg": "400"}, after={}, units="3")
    assert got.value.part == "administration" and "does not match 3 units" in got.value.problems["dose_mg"]
    before = workflow.show(s, pid)["doses_given"]
    seen = av.record(s, pid, before={}, administration=given, after={}, units="3", dry_run=True)
    assert seen.dose == {"value": 600, "unit": "mg"} and seen.timing == "on_time" and not seen.saved
    assert workflow.show(s, pid)["doses_given"] == before  # the dry run saved nothing
    done = av.record(s, pid, before={}, administration=given, after={}, units="3")
    assert done.saved and done.events["administration"]
    assert workflow.show(s, pid)["doses_given"] == before + 1


def test_the_kit_check_asks_the_engine(ward) -> None:
    s, pid = ward
    mine = str(workflow.show(s, pid)["kit"])
    assert av.check_kit(s, pid, mine).ok
    assert av.check_kit(s, pid, f" {mine.lower()} ").ok  # as a scanner may send it: normalised
    bad = av.check_kit(s, pid, "K12\x00")
    assert not bad.ok and bad.reason
    other = next(
        str(workflow.show(s, p["id"])["kit"])
        for p in workflow.list_participants(s)
        if p["id"] != pid and workflow.show(s, p["id"]).get("kit")
    )
    refused = av.check_kit(s, pid, other)
    assert not refused.ok and refused.reason


def test_no_plan_without_an_administration_due(ward) -> None:
    s, _pid = ward
    failed = next(p["id"] for p in workflow.list_participants(s) if p["status"] == "screen failure")
    with pytest.raises(Refused, match="no administration due"):
        av.plan(s, failed)


def test_a_plan_needs_the_dose_permission(ward) -> None:
    s, pid = ward
    auditor = Site.open(s.site.data_dir).unlock("auditor", PASSWORD)
    try:
        with pytest.raises(PermissionDenied, match="record doses"):
            av.plan(auditor, pid)
        with pytest.raises(PermissionDenied, match="record doses"):
            av.check_kit(auditor, pid, "K000001")
    finally:
        auditor.close()
