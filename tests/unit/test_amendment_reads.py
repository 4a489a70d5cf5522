"""Every read of a participant's protocol follows their version, not the site's active one (issue 17).

Two participants on one site, one enrolled under MEXCOVID 1.0 and one under 1.1 (loaded after the first
was enrolled): each sees their own version's vitals ranges and schedule, forms, wizard and SAE clock,
until an investigator applies the amendment to the first.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from test_protocol_amendments import FOLLOWUP, MEX, P1, _apply, _load, _load_1_1, _version
from wf_support import PASSWORD, _copy_site, at, make_ward, today

from wardcrf import protocol
from wardcrf.errors import Refused
from wardcrf.site import Site
from wardcrf.workflow import administration_visit, service, vitals_series


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago under MEXCOVID 1.0."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _enroll_second(session_for, tmp_path: Path) -> str:
    """A participant consented, screened and enrolled after the newer version was loaded: on it."""
    ward = make_ward(session_for, tmp_path)
    pid = ward.consent(time=at(today() - timedelta(days=2)))
    ward.screen(pid, date=(today() - timedelta(days=1)).isoformat())
    ward.enroll(pid, today())
    return pid


def _temp(series: vitals_series.VitalsSeries):
    return next(m.soft for m in series.measures if m.name == "temp")


def test_the_vitals_chart_shows_each_participants_ranges_and_schedule(cli, tmp_path, session_for):
    _load_1_1(cli, tmp_path)  # 1.1: temperature soft range from 36.5 (1.0: 35.0), four doses (1.0: five)
    second = _enroll_second(session_for, tmp_path)
    s = session_for("auditor")
    first = vitals_series.vitals_by_dose(s, P1)
    assert tuple(_temp(first)) == (35.0, 39.5) and first.doses == 5
    theirs = vitals_series.vitals_by_dose(s, second)
    assert tuple(_temp(theirs)) == (36.5, 39.5) and theirs.doses == 4
    assert _apply(cli, P1, "1.1").code == 0
    moved = vitals_series.vitals_by_dose(session_for("auditor"), P1)
    assert tuple(_temp(moved)) == (36.5, 39.5) and moved.doses == 4


def test_the_vitals_chart_refuses_an_unknown_participant(session_for):
    with pytest.raises(Refused, match="unknown participant"):
        vitals_series.vitals_by_dose(session_for("auditor"), "WUH01-999")


def test_a_form_screen_shows_the_participants_version_of_the_form(cli, tmp_path, session_for):
    _load_1_1(cli, tmp_path)
    second = _enroll_second(session_for, tmp_path)
    s = session_for("clinician")
    mine = service.protocol_for(s, P1, "vitals")
    theirs = service.protocol_for(s, second, "vitals")
    assert (mine.version, theirs.version) == ("1.0", "1.1")
    assert tuple(mine.form("vitals").fields["temp"].soft or ()) == (35.0, 39.5)
    assert tuple(theirs.form("vitals").fields["temp"].soft or ()) == (36.5, 39.5)
    # no participant, or one not enrolled yet: the site's active version
    assert service.protocol_for(s, None).version == "1.1"
    assert service.protocol_for(s, P1).version == "1.0"


def test_a_form_only_the_newer_version_has_is_refused_on_the_older_ones_screen(cli, tmp_path, session_for):
    _load(cli, tmp_path, _version(MEX, "1.1") + FOLLOWUP)
    s = session_for("clinician")
    with pytest.raises(Refused, match=f"{P1} is on protocol MEXCOVID 1.0, which has no followup form"):
        service.protocol_for(s, P1, "followup")
    assert "followup" not in service.protocol_for(s, P1).forms
    assert _apply(cli, P1, "1.1").code == 0
    assert "followup" in service.protocol_for(session_for("clinician"), P1, "followup").forms


def test_the_wizard_follows_the_participants_version(cli, tmp_path, session_for):
    """MEXCOVID 1.0 (format 1: the dose wizard) then a format-2 MEXCOVID 2.0 (the administration wizard)."""
    from wardcrf.engine import model

    source = model.shipped_source("mexcovid.toml").replace('version = "1.0"', 'version = "2.0"', 1)
    source = re.sub(r"\nreencodes = \[.*?\n\]\n", "\n", source, count=1, flags=re.S)  # a version of its own
    s = session_for("clinician")
    # 1.0 run by format 1's workflow: the dose wizard; run on its format-2 file (the engine): the
    # administration wizard. Either way P1 keeps 1.0's wizard after 2.0 is loaded.
    first = protocol.active(s.store).engine is not None
    assert administration_visit.uses_engine(s, P1) is first
    _load(cli, tmp_path, source)
    s = session_for("clinician")
    assert administration_visit.uses_engine(s, P1) is first  # enrolled under 1.0: 1.0's wizard
    assert administration_visit.uses_engine(s) is True  # no participant: the active version's wizard
    assert administration_visit.uses_engine(s, "WUH01-999") is True  # not one of ours: the active version


def test_the_wizard_question_needs_a_signed_in_reader(session_for):
    s = session_for("clinician")
    s.role = "nobody"  # type: ignore[misc]
    with pytest.raises(Exception, match="may not"):
        administration_visit.uses_engine(s, P1)


# -- a format-2 version of its own (PALM): the SAE clock is the participant's version's --------------


def _palm_clock(version: str, other: str) -> str:
    from wardcrf.engine import model

    src = model.shipped_source("palm.toml").replace('version = "1.0"', f'version = "{version}"', 1)
    old = 'sae_clock = { fatal_or_life_threatening = "7d", other = "15d" }'
    assert old in src
    return src.replace(old, f'sae_clock = {{ fatal_or_life_threatening = "7d", other = "{other}" }}', 1)


def _serious_ae(w, pid: str) -> str:
    day = w.now.date()
    r = w.run(
        "submit",
        "ae",
        "--participant",
        pid,
        "term=Hypotension",
        f"onset={day}",
        "grade=3",
        "serious=yes",
        "hospitalization=yes",
        "causality=not_related",
        "outcome=recovering",
        f"first_known={day}",
        "--confirm",
        "--reason",
        "a second episode",
    )
    assert r.code == 0, r.err
    s = w.site().unlock("auditor", PASSWORD)
    try:
        return str(
            s.store.scalar(
                "SELECT report_due FROM adverse_events WHERE participant = ? ORDER BY rowid DESC LIMIT 1",
                (pid,),
            )
        )
    finally:
        s.close()


def _enrolled(w) -> str:
    pid = w.consent()
    assert w.screen(pid).code == 0
    r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
    assert r.code == 0, r.err
    return pid


def test_each_participant_gets_their_versions_sae_clock(cli, tmp_path, monkeypatch):
    from test_engine_ward_cli import _ward

    w = _ward(cli, tmp_path, monkeypatch, "palm")
    first = _enrolled(w)  # under PALM 1.0: a serious event is reported within 15 days
    path = tmp_path / "palm-1.1.toml"
    path.write_text(_palm_clock("1.1", "10d"), "utf-8")
    r = w.run("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    second = _enrolled(w)  # under PALM 1.1: within 10 days
    day = w.now.date()
    assert _serious_ae(w, first) == str(day + timedelta(days=15))
    assert _serious_ae(w, second) == str(day + timedelta(days=10))
    r = w.run("protocol", "apply", first, "1.1", "--reason", "amendment 1 approved", user="investigator")
    assert r.code == 0, r.err
    assert _serious_ae(w, first) == str(day + timedelta(days=10))


def test_an_eligibility_record_amended_after_a_newer_version_is_projected_by_the_participants_version(
    cli, tmp_path, monkeypatch
):
    """PALM 1.0 names its eligibility form `eligibility_check`; 1.1 (active now) names another. A laboratory
    correction to an enrolled 1.0 participant's eligibility record still updates their eligibility."""
    from test_engine_ward_cli import _ward

    from wardcrf.engine import model

    v1 = model.shipped_source("palm.toml").replace("screening", "eligibility_check")
    w = _ward(cli, tmp_path, monkeypatch, "palm-renamed", source=v1)
    day = w.now.date().isoformat()
    pid = w.consent()
    r = w.run(
        "submit",
        "eligibility_check",
        "--participant",
        pid,
        f"date={day}",
        "age=34",
        "sex=F",
        "pregnant=no",
        "weight=62",
        f"symptom_onset={day}",
        "ct_np=20",
        "ebov_pcr_positive=yes",
        "prior_ebov_therapeutic=no",
    )
    assert r.code == 0, r.err
    checked = r.out.strip()
    assert w.run("submit", "enrollment", "--participant", pid, f"date={day}").code == 0
    path = tmp_path / "palm-1.1.toml"
    v2 = v1.replace('version = "1.0"', 'version = "1.1"', 1).replace(
        "eligibility_check", "eligibility_review"
    )
    path.write_text(v2, "utf-8")
    r = w.run("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    r = w.run("amend", checked, "ebov_pcr_positive=no", "--reason", "PCR result corrected by the laboratory")
    assert r.code == 0, r.err
    shown = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    assert shown["protocol"]["version"] == "1.0"
    assert (shown["eligible"], shown["failed_criteria"]) == (False, ["pcr"])
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.out + r.err


def test_the_dsmg_board_plans_each_participants_doses_by_their_version(cli, tmp_path, session_for):
    from wardcrf.workflow import dsmg

    _load_1_1(cli, tmp_path)  # 1.1 plans four doses, 1.0 five
    second = _enroll_second(session_for, tmp_path)
    board = dsmg.review(session_for("dsmg"), today=today())
    planned = {p["participant"]: p["doses_planned"] for p in board["participants"]}
    assert (planned[P1], planned[second]) == (5, 4)
    assert _apply(cli, P1, "1.1").code == 0
    board = dsmg.review(session_for("dsmg"), today=today())
    assert {p["participant"]: p["doses_planned"] for p in board["participants"]}[P1] == 4
