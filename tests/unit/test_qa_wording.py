"""Small wording defects found in QA: boolean defaults and role names in messages."""

from __future__ import annotations


def test_form_show_prints_boolean_defaults_as_yes_no(cli):
    r = cli("form", "show", "ae", user="clinician")
    assert r.code == 0, r.err
    assert "default no" in r.out
    assert "default False" not in r.out
