"""The audit trail as people and auditors read it: `wardcrf log` and `audit.trail`.

--json shows whole events (every value, unit and reason; an amendment's changes); --subject and
--type are literal (no SQL wildcards); --since/--until take dates and UTC times; measured values
read as number and unit.
"""

from __future__ import annotations

import json

from wardcrf import audit, records

# -- --json and the literal filters ----------------------------------------------------------------


def _note(session, subject: str, type_: str = "qa.note") -> str:
    return session.append(type=type_, subject=subject, body={"subject": subject}).event.id


def test_log_json_carries_every_value_unit_and_reason_of_a_record(admin, cli):
    data = {
        "timepoint": "post_dose",
        "dose": 2,
        "time": "2020-03-17T10:15:00+08:00",
        "temp": {"value": 38.6, "unit": "C"},
        "pulse": {"value": 131, "unit": "beats/min"},
        "resp": {"value": 24, "unit": "breaths/min"},
        "oxysat": {"value": 91, "unit": "%"},
        "sysbp": {"value": 150, "unit": "mmHg"},
        "diabp": {"value": 95, "unit": "mmHg"},
        "photos": ["sha256:" + "ab" * 32],
    }
    overrides = {"pulse": "re-measured twice, participant anxious", "temp": "tympanic, confirmed"}
    event = records.submit(
        admin, "qa_vitals", data, subject="participant:QA-001", extra={"overrides": overrides}
    )
    r = cli("log", "--json", "--subject", "participant:QA-001", user="auditor")
    assert r.code == 0, r.err
    (entry,) = json.loads(r.out)
    assert entry["event_id"] == event.id
    assert entry["body"] == {"form": "qa_vitals", "data": data, "overrides": overrides}
    assert entry["hash"] == event.hash and entry["hlc"] == event.hlc and entry["site"] == "WUH01"
    assert entry["protocol"] == event.protocol and entry["amends"] is None
    # The people's summary stays short; the table too.
    assert entry["summary"].endswith(" …")
    table = cli("log", "--subject", "participant:QA-001", user="auditor")
    assert table.code == 0 and "sysbp" not in table.out and "tympanic" not in table.out


def test_log_json_of_an_amendment_names_the_corrected_event_and_every_change(admin, session_for, cli):
    first = records.submit(admin, "qa_form", {"a": 1, "b": "x"}, subject="participant:QA-002")
    fix = (
        session_for("clinician")
        .append(
            type="record.amended",
            subject="participant:QA-002",
            body={"form": "qa_form", "changes": {"a": {"old": 1, "new": 2}}},
            reason="transcription error",
            amends=first.id,
        )
        .event
    )
    entries = json.loads(cli("log", "--json", "--subject", "participant:QA-002", user="auditor").out)
    amended = next(e for e in entries if e["event_id"] == fix.id)
    assert amended["amends"] == first.id and amended["reason"] == "transcription error"
    assert amended["changes"] == [{"field": "a", "old": 1, "new": 2}]
    assert amended["body"]["changes"] == {"a": {"old": 1, "new": 2}}


def test_subject_filter_treats_underscore_and_percent_literally(admin, session_for):
    wanted = _note(admin, "participant:WUH01_001")
    nested = _note(admin, "participant:WUH01_001/photo")
    _note(admin, "participant:WUH01-001")
    _note(admin, "participant:WUH01X001/photo")
    _note(admin, "participant:wuh01_001")  # another case is another subject
    auditor = session_for("auditor")
    got = [e.event_id for e in audit.trail(auditor, subject="participant:WUH01_001")]
    assert got == [wanted, nested]
    pct = _note(admin, "kit:LOT%1")
    _note(admin, "kit:LOT-A1")
    assert [e.event_id for e in audit.trail(auditor, subject="kit:LOT%1")] == [pct]
    assert list(audit.trail(auditor, subject="kit:LOT%")) == []


def test_type_filter_is_a_literal_prefix(admin, session_for):
    exact = _note(admin, "site:WUH01", type_="qa_x.note")
    _note(admin, "site:WUH01", type_="qaYx.note")
    _note(admin, "site:WUH01", type_="QA_X.note")
    auditor = session_for("auditor")
    assert [e.event_id for e in audit.trail(auditor, type_prefix="qa_x.")] == [exact]
    assert list(audit.trail(auditor, type_prefix="qa%")) == []


def test_cli_subject_with_underscore_matches_only_itself(admin, cli):
    wanted = _note(admin, "participant:WUH01_001")
    _note(admin, "participant:WUH01-001")
    r = cli("log", "--json", "--subject", "participant:WUH01_001", user="auditor")
    assert r.code == 0 and [e["event_id"] for e in json.loads(r.out)] == [wanted]
    r = cli("log", "--json", "--subject", "participant:WUH01%", user="auditor")
    assert r.code == 0 and json.loads(r.out) == []


# -- values with their unit, and the time filters ----------------------------------------------------
# Measured values read as number and unit; --since/--until take dates and UTC times and refuse
# what is not one (not an empty trail).


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
