"""The audit trail shows measured values with their unit, as people read them (found in QA)."""

from __future__ import annotations

from wardcrf import audit


def test_unit_values_read_as_number_and_unit():
    assert audit.shown_value({"value": 37.1, "unit": "C"}) == "37.1 C"
    assert audit.shown_value({"value": 60, "unit": "%"}) == "60 %"


def test_other_values_stay_json():
    assert audit.shown_value("hfnc") == '"hfnc"'
    assert audit.shown_value(["sha256:ab"]) == '["sha256:ab"]'
    assert audit.shown_value({"value": 1, "unit": "C", "extra": 2}) == '{"value": 1, "unit": "C", "extra": 2}'


def test_log_since_accepts_dates_and_utc_times(cli):
    assert cli("log", "--since", "2000-01-01", "--json", user="auditor").out.count('"event_id"') >= 1
    assert cli("log", "--since", "2000-01-01T00:00", "--json", user="auditor").out.count('"event_id"') >= 1
    r = cli("log", "--until", "2000-01-01T08:00+08:00", "--json", user="auditor")
    assert r.code == 0 and r.out.count('"event_id"') == 0


def test_log_since_that_is_not_a_time_is_refused_not_an_empty_trail(cli):
    r = cli("log", "--since", "yesterday", user="auditor")
    assert r.code == 2
    assert "--since 'yesterday' is not a UTC date or time" in r.err
    assert r.out == ""
