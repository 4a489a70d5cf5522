"""CONTRACT keeps what every trial has (issue 17, step 5); format 1's fixed shape is data."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from wardcrf import protocol

ROOT = Path(__file__).resolve().parents[2]


def test_contract_is_consent_enrollment_and_adverse_events():
    assert list(protocol.CONTRACT) == ["consent", "enrollment", "ae"]


def test_a_format_1_file_still_needs_the_forms_its_workflow_reads():
    forms = protocol.format1_workflow_forms()
    assert "screening" in forms and forms["dose"]["start"] == "datetime"
    assert set(protocol.CONTRACT).isdisjoint(forms)
    src = protocol.default_source()
    protocol.parse(src, "m.toml")  # accepted as before
    dropped = re.sub(r"\[forms\.skin_test\]", "[forms.skin_check]", src)
    dropped = dropped.replace("[forms.skin_test.", "[forms.skin_check.")
    with pytest.raises(
        protocol.ProtocolFileError, match=r"forms\.skin_test: missing: wardcrf's workflow needs this form"
    ):
        protocol.parse(dropped, "m.toml")


def test_the_contract_forms_are_required_of_every_format_1_file():
    src = protocol.default_source().replace("[forms.ae.fields.term]", "[forms.ae.fields.what]", 1)
    with pytest.raises(protocol.ProtocolFileError, match=r"forms\.ae\.fields\.term: missing"):
        protocol.parse(src, "m.toml")


def test_the_trial_names_grep_comes_back_clean():
    """The issue's grep over the core (issue 17: `wardcrf screens sync photos`, Python sources): no trial's
    names. They are in protocol files and data only (format 1's vocabulary: protocols/format1-workflow.toml;
    a demo's: protocols/demo/)."""
    out = subprocess.run(
        # The sources only: a byte-compiled copy (__pycache__, written when bytecode is) says the same.
        [
            "grep",
            "-rlE",
            "--include=*.py",
            "pcr_confirmed|skin_test|particles|oxysat|ct_score|MEXCOVID",
            "wardcrf",
            "screens",
            "sync",
            "photos",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == []  # format 1's vocabulary is data (protocols/format1-workflow.toml)
