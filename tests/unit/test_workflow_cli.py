"""The scripting interface: form list/show, submit, amend, participant, today, demo."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from wf_support import PASSWORD, _copy_site, at, photo_file, ready_kit_on, today

from wardcrf.site import Site

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


def n_records(cli) -> int:
    r = cli("log", "--json", "--type", "record.", user="auditor")
    assert r.code == 0, r.err
    return len(json.loads(r.out))


def test_form_list_and_show(cli):
    r = cli("form", "list", user="clinician")
    assert r.code == 0, r.err
    for name in (
        "screening",
        "consent",
        "skin_test",
        "dose",
        "vitals",
        "labs",
        "ct_score",
        "oxygen",
        "conmed",
        "ae",
        "dsmg_decision",
        "signoff",
    ):
        assert name in r.out
    r = cli("form", "show", "vitals", "--json", user="clinician")
    assert r.code == 0, r.err
    form = json.loads(r.out)
    temp = next(f for f in form["fields"] if f["name"] == "temp")
    assert temp["unit"] == "C" and temp["hard_range"] == [30, 45] and temp["cdisc"] == "VSTESTCD=TEMP"
    r = cli("form", "show", "vitals", "--lang", "zh", user="clinician")
    assert r.code == 0 and "体温" in r.out
    r = cli("form", "show", "nosuch", user="clinician")
    assert r.code == 2 and "unknown form 'nosuch'" in r.err


def test_submit_vitals_with_defaults_prints_the_event_id(cli):
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=37.1",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        user="clinician",
    )
    assert r.code == 0, r.err
    event_id = r.out.strip()
    assert "-" in event_id and "\n" not in event_id
    r = cli("log", "--json", "--type", "record.", user="auditor")
    assert event_id in r.out


def test_refused_submit_names_each_field_on_one_line_and_saves_nothing(cli):
    before = n_records(cli)
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=370",
        "pulse=abc",
        "colour=red",
        user="clinician",
    )
    assert r.code == 1
    line = r.err.strip()
    assert "\n" not in line
    assert "temp: 370 C is outside the allowed range 30 to 45 C" in line
    assert "pulse: 'abc' is not a number" in line
    assert "resp: required" in line and "oxysat: required" in line
    assert "colour: unknown field for vitals" in line
    assert n_records(cli) == before


def test_soft_range_needs_confirm_and_reason_on_the_cli(cli):
    args = (
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=39.8",
        "pulse=88",
        "resp=20",
        "oxysat=95",
    )
    r = cli(*args, user="clinician")
    assert r.code == 1 and "expected range 35 to 39.5 C" in r.err
    r = cli(*args, "--confirm", "--reason", "repeated, same value", user="clinician")
    assert r.code == 0, r.err


def test_bad_input_unknown_participant_wrong_type_future_date_and_role(cli):
    r = cli("submit", "vitals", "--participant", "WUH01-999", "temp=37", user="clinician")
    assert r.code == 1 and "unknown participant WUH01-999" in r.err
    r = cli("submit", "vitals", "--participant", P1, "temp", user="clinician")
    assert r.code == 2 and "'temp' is not field=value" in r.err
    future = (today() + timedelta(days=3)).isoformat()
    r = cli("submit", "oxygen", "--participant", P1, f"date={future}", "support=hfnc", user="clinician")
    assert r.code == 1 and f"date: {future} is in the future" in r.err
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=37",
        "pulse=80",
        "resp=18",
        "oxysat=95",
        user="auditor",
    )
    assert r.code == 1 and "role auditor may not submit vitals forms" in r.err
    r = cli(
        "submit",
        "dsmg_decision",
        "--participant",
        P1,
        "decision=continue",
        "rationale=x",
        user="clinician",
    )
    assert r.code == 1 and "role clinician may not submit dsmg_decision forms" in r.err


def test_duplicate_dose_submission_is_refused(cli, site, tmp_path):
    day = today() - timedelta(days=9)
    ready_kit_on(site, "EXO-0001", at(day), tmp_path)
    args = (
        "submit",
        "dose",
        "--participant",
        P1,
        "kit_id=EXO-0001",
        "lot=L1",
        "particles=2e8",
        "volume=6",
        f"start={at(day)}",
        f"end={at(day, 9, 30)}",
    )
    assert cli(*args, user="clinician").code == 0
    before = n_records(cli)
    r = cli(*args, user="clinician")
    assert r.code == 1 and "one dose per day" in r.err
    assert n_records(cli) == before


def test_consent_on_the_cli_with_witness_passwords(cli, tmp_path):
    base = (
        "submit",
        "consent",
        "consenter=participant",
        "form_version=1.0",
        "witness_1=investigator",
        "witness_2=clinician2",
        f"photos=@{photo_file(tmp_path, 'signed consent')}",
        "--json",
    )
    r = cli(*base, user="clinician")
    assert r.code == 2 and "investigator must sign: set WARDCRF_PASSWORD_INVESTIGATOR" in r.err
    env = {"WARDCRF_PASSWORD_INVESTIGATOR": PASSWORD, "WARDCRF_PASSWORD_CLINICIAN2": PASSWORD}
    r = cli(*base, user="clinician", env=env)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["participant"] == "WUH01-002"
    r = cli("participant", "show", "WUH01-002", "--json", user="clinician")
    assert json.loads(r.out)["consent"]["valid"] is True


def test_amend_on_the_cli(cli):
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=37.1",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        user="clinician",
    )
    event_id = r.out.strip()
    r = cli("amend", event_id, "temp=37.3", user="clinician")
    assert r.code == 2 and "needs a reason" in r.err
    r = cli("amend", event_id, "temp=37.3", "--reason", "misread thermometer", user="clinician")
    assert r.code == 0, r.err
    assert "temp: 37.1 C -> 37.3 C" in r.err
    r = cli("amend", event_id, "temp=37.3", "--reason", "again", user="clinician")
    assert r.code == 1 and "nothing to amend" in r.err


def test_dose_without_cold_chain_is_refused_by_the_custody_gate(cli, site, tmp_path):
    day = today() - timedelta(days=9)
    args = (
        "submit",
        "dose",
        "--participant",
        P1,
        "lot=L1",
        "particles=2e8",
        "volume=6",
        f"start={at(day)}",
        f"end={at(day, 9, 30)}",
    )
    r = cli(*args, "kit_id=EXO-0009", user="clinician")
    assert r.code == 1 and "custody gate: kit EXO-0009 is not registered in any lot" in r.err
    ready_kit_on(site, "EXO-0009", at(day, 6), tmp_path)  # thawed three hours before
    r = cli(*args, "kit_id=EXO-0009", user="clinician")
    assert r.code == 1 and "reached the bedside 225 min before the dose (allowed 120 min)" in r.err
    rows = json.loads(cli("participant", "list", "--json", user="auditor").out)
    assert rows[0]["doses_given"] == 0


def test_participant_list_show_and_today(cli, site, tmp_path):
    day = today() - timedelta(days=9)
    ready_kit_on(site, "EXO-0001", at(day, 11, 30), tmp_path)
    cli(
        "submit",
        "dose",
        "--participant",
        P1,
        "kit_id=EXO-0001",
        "lot=L1",
        "particles=2e8",
        "volume=6",
        f"start={at(day, 11, 30)}",
        f"end={at(day, 12)}",
        user="clinician",
    )
    r = cli("participant", "list", "--json", user="auditor")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert rows[0]["id"] == P1 and rows[0]["doses_given"] == 1 and rows[0]["cumulative_particles"] == 2e8
    r = cli("participant", "show", P1, "--json", user="auditor")
    info = json.loads(r.out)
    assert info["deviations"][0]["kind"] == "late dose" and info["status"] == "in treatment"
    r = cli("participant", "show", P1, user="auditor")
    assert r.code == 0 and "late dose" in r.out
    r = cli("participant", "show", "WUH01-777", user="auditor")
    assert r.code == 1 and "unknown participant" in r.err
    r = cli("today", "--json", user="clinician")
    assert r.code == 0, r.err
    whats = [i["what"] for i in json.loads(r.out)["items"]]
    assert "dose 2" in whats and "post-dose vitals (dose 1)" in whats
    r = cli("today", user="clinician")
    assert r.code == 0 and "dose 2" in r.out


def test_signoff_on_the_cli(cli):
    r = cli("submit", "signoff", "--participant", P1, "note=all checked", user="clinician")
    assert r.code == 1 and "role clinician may not" in r.err
    r = cli("submit", "signoff", "--participant", P1, user="investigator", env={"WARDCRF_PASSWORD": PASSWORD})
    assert r.code == 0, r.err
    r = cli("participant", "show", P1, "--json", user="auditor")
    assert json.loads(r.out)["signoff"]["state"] == "signed"


# -- participant ids printed whole on a narrow terminal ----------------------------------------------
# On 80 and 60 columns (they were cut to "WUH…").


@pytest.mark.parametrize("columns", ["80", "60"])
def test_participant_list_keeps_ids_whole(cli, columns):
    r = cli("participant", "list", user="clinician", env={"COLUMNS": columns})
    assert r.code == 0, r.err
    assert "WUH01-001" in r.out


def test_today_keeps_ids_whole(cli):
    r = cli("today", user="clinician", env={"COLUMNS": "60"})
    assert r.code == 0, r.err
    assert "WUH01-001" in r.out  # enrolled 10 days ago, no dose: overdue


# -- a participant id typed in lower case or with spaces ---------------------------------------------
# It finds the participant and records under the stored id; an unknown id is still refused.


@pytest.mark.parametrize("typed", ["wuh01-001", " WUH01-001 ", "Wuh01-001"])
def test_typed_id_records_under_the_stored_id(cli, typed):
    r = cli(
        "submit",
        "vitals",
        "--participant",
        typed,
        "temp=37.1",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        "--json",
        user="clinician",
    )
    assert r.code == 0, r.err
    assert json.loads(r.out)["participant"] == "WUH01-001"
    shown = json.loads(cli("participant", "show", typed, "--json", user="clinician").out)
    assert shown["id"] == "WUH01-001" and shown["enrolled_on"]
    trail = json.loads(cli("log", "--json", user="auditor").out)
    assert trail[-1]["subject"] == "participant:WUH01-001"


def test_an_unknown_id_is_still_refused(cli):
    r = cli(
        "submit",
        "vitals",
        "--participant",
        "wuh01-099",
        "temp=37.1",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        user="clinician",
    )
    assert r.code == 1
    assert "unknown participant wuh01-099" in r.err


# -- a mistyped number in a submission ---------------------------------------------------------------
# Nothing saved, and the message says what to type instead (see test_forms.py for the rule).


def test_comma_decimal_in_a_submission_saves_nothing_and_says_why(cli, site):
    r = cli(
        "submit",
        "vitals",
        "--participant",
        "WUH01-001",
        "temp=37,5",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        user="clinician",
    )
    assert r.code == 1
    assert "use a dot for decimals (37.5)" in r.err
    after = json.loads(cli("log", "--json", user="auditor").out)
    assert not [e for e in after if e["summary"].startswith("vitals:")]


# -- wording: boolean defaults -----------------------------------------------------------------------
# `form show` prints a boolean default as people read it (no/yes), not Python's False/True.


def test_form_show_prints_boolean_defaults_as_yes_no(cli):
    r = cli("form", "show", "ae", user="clinician")
    assert r.code == 0, r.err
    assert "default no" in r.out
    assert "default False" not in r.out
