"""A participant id typed in lower case or with spaces finds the participant (found in QA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wf_support import _copy_site

from wardcrf.site import Site


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


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
