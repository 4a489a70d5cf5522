"""The audit trail shows measured values with their unit, as people read them (found in QA)."""

from __future__ import annotations

from wardcrf import audit


def test_unit_values_read_as_number_and_unit():
    assert audit._shown({"value": 37.1, "unit": "C"}) == "37.1 C"
    assert audit._shown({"value": 60, "unit": "%"}) == "60 %"


def test_other_values_stay_json():
    assert audit._shown("hfnc") == '"hfnc"'
    assert audit._shown(["sha256:ab"]) == '["sha256:ab"]'
    assert audit._shown({"value": 1, "unit": "C", "extra": 2}) == '{"value": 1, "unit": "C", "extra": 2}'
