"""Numbers as tired people in PPE type them (found in QA): the message says what to type instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wf_support import _copy_site

from wardcrf import forms
from wardcrf.forms import _number
from wardcrf.site import Site


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 consented and enrolled."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("37,5", "'37,5' is not a number: use a dot for decimals (37.5)"),
        ("37.0C", "'37.0C' is not a number: type the number only (37.0); the unit is set by the form"),
        ("37 °C", "'37 °C' is not a number: type the number only (37); the unit is set by the form"),
        (
            "2.0e8particles",
            "'2.0e8particles' is not a number: type the number only (2.0e8); the unit is set by the form",
        ),
        ("3_7", "'3_7' is not a number"),
        ("hot", "'hot' is not a number"),
    ],
)
def test_mistyped_numbers_are_refused_with_what_to_type(typed, message):
    with pytest.raises(forms._Bad) as exc:
        _number(typed)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("typed", "value"), [("37.5", 37.5), (" 37 ", 37.0), ("2.0e8", 2.0e8), ("-1.5", -1.5)]
)
def test_numbers_are_read(typed, value):
    assert _number(typed) == value


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
