"""Who may write a format-2 form, at the hub as on the ward (issue 17).

A format-2 version names its own forms: PALM records an administration on
`infusion` and the DSMB's decision on `dsmg_decision`. The ward's services
require what `workflow.engine_rules.rule_for` says of each (`dose.record`,
`dsmg.decide`, `participant.screen`); sync's check on import asks the same of
the record's protocol version (`authority.form_actions_of`), so a record the
ward would have refused is refused at the hub too, naming the action, and
nothing is applied. Before, every undeclared name took `record.submit`.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from forge import append_raw
from site_users import PASSWORD
from synckit import open_
from test_engine_ward_cli import Ward, _to_the_hub, _ward

from wardcrf.engine import model
from wardcrf.errors import Refused


@pytest.fixture
def palm(cli, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm")


@pytest.fixture
def palm_dsmb(cli, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    """PALM whose DSMB form is `dsmb_review`: a name no format-1 rule declares."""
    source = model.shipped_source("palm.toml").replace("dsmg_decision", "dsmb_review")
    return _ward(cli, tmp_path, monkeypatch, "palm-dsmb", source)


def _hub_rows(w: Ward, sql: str) -> list[dict[str, Any]]:
    assert w.hub is not None
    s = open_(w.hub, "admin")
    try:
        return s.store.rows(sql)
    finally:
        s.close()


def _participant(w: Ward) -> str:
    pid = w.consent()
    assert w.screen(pid).code == 0
    return pid


def test_an_administration_from_a_role_that_may_not_dose_is_refused_on_the_ward(palm: Ward) -> None:
    pid = _participant(palm)
    r = palm.run("submit", "infusion", "--participant", pid, "dose_mg=50", user="pharmacist")
    assert r.code == 1 and "role pharmacist may not submit infusion forms" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1
    r = palm.run("submit", "infusion", "--participant", pid, "dose_mg=50", user="coordinator")
    assert r.code == 1 and "role coordinator may not submit infusion forms" in r.err, r.err
    # (a clinician's infusions are accepted: test_engine_ward_cli.py, end to end)


def test_a_format_2_administration_from_a_role_that_may_not_dose_is_refused_at_the_hub(palm: Ward) -> None:
    pid = _participant(palm)
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    append_raw(
        palm.site(),
        "record.submitted",
        {"form": "infusion", "data": {"dose_mg": {"value": 50, "unit": "mg"}}},
        subject=f"participant:{pid}",
        role="pharmacist",
        user="pharmacist",
    )
    with pytest.raises(
        Refused, match=r"role pharmacist may not submit 'infusion' records .*\(dose\.record\)"
    ):
        _to_the_hub(palm)
    assert _hub_rows(palm, "SELECT * FROM records WHERE form = 'infusion'") == []


def test_a_format_2_administration_from_a_role_that_may_dose_reaches_the_hub(palm: Ward) -> None:
    pid = _participant(palm)
    append_raw(
        palm.site(),
        "record.submitted",
        {"form": "infusion", "data": {"dose_mg": {"value": 50, "unit": "mg"}}},
        subject=f"participant:{pid}",
        role="clinician",
        user="clinician",
    )
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    assert len(_hub_rows(palm, "SELECT * FROM records WHERE form = 'infusion'")) == 1


def test_the_dsmg_form_of_a_format_2_version_is_the_dsmgs_at_the_hub(palm_dsmb: Ward) -> None:
    """`[dsmg] form` takes `dsmg.decide`: the DSMG's record is applied (an undeclared name took
    `record.submit` before, which a DSMG may not), a clinician's is refused."""
    palm = palm_dsmb
    pid = _participant(palm)
    body = {"form": "dsmb_review", "data": {"decision": "continue", "rationale": "go on"}}
    append_raw(palm.site(), "record.submitted", body, subject=f"participant:{pid}", role="dsmg", user="dsmg")
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    assert len(_hub_rows(palm, "SELECT * FROM records WHERE form = 'dsmb_review'")) == 1
    forged = {"form": "dsmb_review", "data": {"decision": "stop", "rationale": "forged"}}
    append_raw(
        palm.site(),
        "record.submitted",
        forged,
        subject=f"participant:{pid}",
        role="clinician",
        user="clinician",
    )
    with pytest.raises(Refused, match=r"role clinician may not submit 'dsmb_review' records .*dsmg\.decide"):
        _to_the_hub(palm)
    assert len(_hub_rows(palm, "SELECT * FROM records WHERE form = 'dsmb_review'")) == 1


def test_the_eligibility_form_of_a_format_2_version_is_amended_only_by_who_screens_at_the_hub(
    palm: Ward,
) -> None:
    """The eligibility form's amendments take `participant.screen`, as on the ward: a pharmacist's
    amendment (which `record.amend` would allow) is refused at the hub, a clinician's applied."""
    _participant(palm)
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    held = _hub_rows(palm, "SELECT event_id FROM records WHERE form = 'screening'")
    assert len(held) == 1
    target = str(held[0]["event_id"])
    change = {"form": "screening", "changes": {"ct_np": {"old": 20, "new": 21}}}
    append_raw(palm.site(), "record.amended", change, role="pharmacist", user="pharmacist", amends=target)
    with pytest.raises(
        Refused, match=r"role pharmacist may not amend 'screening' records .*participant\.screen"
    ):
        _to_the_hub(palm)


# -- [[rules]] of severity `query`: saved, and a data query opened on the field ------------------------

QUERY_RULE = """[[rules]]
code = "pulse_check"
on = "vitals"
check = "pulse < 140"
field = "pulse"
severity = "query"
message = "pulse {pulse}/min at or above 140: please check the source"

[[rules]]"""


@pytest.fixture
def palm_query(cli, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    source = model.shipped_source("palm.toml").replace("[[rules]]", QUERY_RULE, 1)
    return _ward(cli, tmp_path, monkeypatch, "palm-query", source)


def _vitals(w: Ward, pid: str, pulse: int):
    return w.run(
        "submit",
        "vitals",
        "--participant",
        pid,
        "timepoint=daily",
        f"time={w.now.isoformat()}",
        "temp=37.2",
        f"pulse={pulse}",
        "resp=18",
        "sysbp=120",
        "diabp=70",
        "oxysat=97",
    )


def _queries(w: Ward) -> list[dict[str, Any]]:
    r = w.run("sync", "status", "--json", user="auditor")
    assert r.code == 0, r.err
    return list(json.loads(r.out)["open_queries"])


def test_a_query_rule_saves_the_record_and_opens_a_query_on_its_field(palm_query: Ward) -> None:
    w = palm_query
    pid = _participant(w)
    # accept: a pulse the rule allows opens nothing
    r = _vitals(w, pid, 96)
    assert r.code == 0, r.err
    assert _queries(w) == []
    # the rule fails: the record is saved, and a query is opened on `pulse`, raised by the rule
    r = _vitals(w, pid, 150)
    assert r.code == 0, r.err
    record = r.out.strip()
    (q,) = _queries(w)
    assert q["target_event"] == record and q["field"] == "pulse" and q["status"] == "open"
    assert q["question"] == "pulse 150/min at or above 140: please check the source"
    assert q["raised_by"] == "rule:pulse_check"
    # an amendment that still fails the rule does not open a second query on the record
    r = w.run("amend", record, "pulse=155", "--reason", "re-read the monitor")
    assert r.code == 0, r.err
    assert [x["query_id"] for x in _queries(w)] == [q["query_id"]]
    # one that passes leaves it for a person: answered on the ward, closed at the hub
    r = w.run("amend", record, "pulse=115", "--reason", "transcription: 115 on the chart")
    assert r.code == 0, r.err
    assert [(x["query_id"], x["status"]) for x in _queries(w)] == [(q["query_id"], "open")]
    r = w.run("sync", "answer-query", q["query_id"], "--answer", "115 on the chart; amended")
    assert r.code == 0, r.err
    assert [x["status"] for x in _queries(w)] == ["answered"]
    # the query is the log's: rebuilding the projections from the events gives the same table
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.err + r.out
    # the hub lists it with the record, and its coordinator closes it
    assert all(x.ok for x in _to_the_hub(w))  # type: ignore[attr-defined]
    rows = _hub_rows(w, "SELECT query_id, site, target_event, field, status, raised_by FROM sync_queries")
    assert rows == [
        {
            "query_id": q["query_id"],
            "site": "KIN01",
            "target_event": record,
            "field": "pulse",
            "status": "answered",
            "raised_by": "rule:pulse_check",
        }
    ]
    assert w.hub is not None
    hs = open_(w.hub, "coordinator")
    try:
        from wardcrf.sync import registry

        registry.close_query(hs, q["query_id"], "source checked")
    finally:
        hs.close()
    assert _hub_rows(w, "SELECT status FROM sync_queries") == [{"status": "closed"}]


def test_a_query_rule_on_another_sites_record_is_refused_at_the_hub(palm_query: Ward) -> None:
    """`query.opened` names the record it is about: a ward's query on a record it does not hold is
    refused whole, as its answers and amendments are."""
    w = palm_query
    pid = _participant(w)
    assert all(x.ok for x in _to_the_hub(w))  # type: ignore[attr-defined]
    (hub,) = _hub_rows(w, "SELECT site, device FROM site WHERE id = 1")
    assert hub["site"] != "KIN01"
    body = {
        "site": "KIN01",
        "target_event": f"{hub['device']}-1",
        "field": "pulse",
        "question": "?",
        "rule": "x",
    }
    append_raw(
        w.site(), "query.opened", body, subject=f"participant:{pid}", role="clinician", user="clinician"
    )
    with pytest.raises(Refused, match=r"opens a query on record .* of site"):
        _to_the_hub(w)
    assert _hub_rows(w, "SELECT * FROM sync_queries") == []


def test_a_query_opened_by_a_role_that_may_not_write_records_is_refused_at_the_hub(palm_query: Ward) -> None:
    w = palm_query
    pid = _participant(w)
    r = _vitals(w, pid, 150)
    assert r.code == 0, r.err
    body = {"site": "KIN01", "target_event": r.out.strip(), "field": "pulse", "question": "?", "rule": "x"}
    append_raw(w.site(), "query.opened", body, subject=f"participant:{pid}", role="auditor", user="auditor")
    with pytest.raises(Refused, match=r"role auditor may not originate query\.opened"):
        _to_the_hub(w)
    assert _hub_rows(w, "SELECT * FROM sync_queries") == []


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            'field = "nope"',
            "rules[0].field: 'nope' is not a field of form 'vitals' (omit it for the whole form)",
        ),
        ('field = "pulse\\u0007"', "rules[0].field: character U+0007 (BELL)"),
        ('field = "pulse"\nseverity = "ask"', "rules[0].severity: 'ask' is not allowed (allowed: 'refuse', "),
        ('field = "pulse"\non_query = "x"', "rules[0].on_query: unknown key 'on_query'"),
    ],
)
def test_a_malformed_query_rule_is_refused_with_its_file_and_line(line: str, says: str) -> None:
    rule = f'[[rules]]\ncode = "q1"\non = "vitals"\ncheck = "pulse < 140"\n{line}\nmessage = "m"\n\n[[rules]]'
    if "severity" not in line:
        rule = rule.replace('message = "m"', 'severity = "query"\nmessage = "m"')
    source = model.shipped_source("palm.toml").replace("[[rules]]", rule, 1)
    with pytest.raises(model.ProtocolFileError) as refused:
        model.parse(source, "bad.toml")
    start = source[: source.index('code = "q1"')].count("\n") + 1  # the rule's first line
    got = re.search(r"bad\.toml:(\d+): ", str(refused.value))
    assert got is not None and start - 1 <= int(got.group(1)) <= start + 6, str(refused.value)
    assert says in str(refused.value)


def test_a_query_rules_question_quoting_long_text_is_cut_to_its_limit(cli, tmp_path, monkeypatch) -> None:
    """A message quoting free text (up to 2,000 characters, twice) opens a query whose question is the
    first 2,000 characters, marked as cut; the record is saved whole."""
    rule = QUERY_RULE.replace('on = "vitals"', 'on = "dsmg_decision"').replace(
        'check = "pulse < 140"\nfield = "pulse"', 'check = "decision != \'alter\'"\nfield = "rationale"'
    )
    rule = rule.replace(
        'message = "pulse {pulse}/min at or above 140: please check the source"',
        'message = "alter: {rationale} / {rationale}"',
    )
    source = model.shipped_source("palm.toml").replace("[[rules]]", rule, 1)
    w = _ward(cli, tmp_path, monkeypatch, "palm-long", source)
    pid = _participant(w)
    long = "x" * 1990
    r = w.run(
        "submit", "dsmg_decision", "--participant", pid, "decision=alter", f"rationale={long}", "change=y",
        user="dsmg",
    )  # fmt: skip
    assert r.code == 0, r.err
    (q,) = _queries(w)
    assert (
        len(q["question"]) == 2000 and q["question"].startswith("alter: xxx") and q["question"].endswith("…")
    )
    assert q["field"] == "rationale"


# -- [[warnings]] on a format-2 ward: shown at save, kept with the record, nothing blocked ---------------

WARNINGS = """
[[warnings]]
code = "vitals_ahead"
rule = "future_time"
form = "vitals"
reason = "{field} {time} is {minutes} min ahead of this laptop's clock"

[[warnings]]
code = "short_infusion"
rule = "duration_below"
form = "infusion"
from = "start"
to = "end"
minutes_of = "regimen.mab114.duration"
fraction = 0.5
reason = "the infusion lasted {minutes} min, far shorter than the regimen's {expected} min"
"""


def _with_warnings(extra: str = WARNINGS) -> str:
    return model.shipped_source("palm.toml").replace("[[rules]]", extra.strip() + "\n\n[[rules]]", 1)


def test_a_format_2_wards_warnings_are_shown_at_save_and_kept_never_refusing(
    cli, tmp_path, monkeypatch
) -> None:
    from wardcrf.engine import ward

    declared = ward.read(_with_warnings(), "palm-warn.toml").warnings
    assert [(w.code, w.rule, w.form, w.minutes) for w in declared] == [
        ("vitals_ahead", "future_time", "vitals", None),
        ("short_infusion", "duration_below", "infusion", 30.0),  # half of MAb114's 60min
    ]
    w = _ward(cli, tmp_path, monkeypatch, "palm-warn", _with_warnings())
    pid = _participant(w)
    r = _vitals(w, pid, 96)  # accept: the time is now
    assert r.code == 0 and "warning" not in r.err, r.err
    r = w.run(
        "submit", "vitals", "--participant", pid, "timepoint=daily",
        f"time={(w.now + timedelta(minutes=4)).isoformat()}",
        "temp=37.2", "pulse=96", "resp=18", "sysbp=120", "diabp=70", "oxysat=97",
    )  # fmt: skip
    assert r.code == 0, r.err  # saved: a warning never refuses
    assert "warning:" in r.err and "min ahead of this laptop's clock" in r.err, r.err
    s = w.site().unlock("auditor", PASSWORD)
    try:
        body = json.loads(s.store.scalar("SELECT line FROM events WHERE id = ?", (r.out.strip(),)))["body"]
    finally:
        s.close()
    assert [x["code"] for x in body["warnings"]] == ["vitals_ahead"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ('minutes_of = "regimen.mab114.duration"', 'minutes_of = "regimen.nope.duration"'),
            "warnings[1].minutes_of: regimen 'nope' is not declared",
        ),
        (('form = "vitals"', 'form = "nope"'), "warnings[0].form: unknown form 'nope'"),
        (("{minutes} min ahead", "{expected} min ahead"), "warnings[0].reason"),
    ],
)
def test_a_malformed_format_2_warning_is_refused_with_its_file_and_line(
    cli, tmp_path, change: tuple[str, str], says: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_with_warnings(WARNINGS.replace(*change)), "utf-8")
    r = cli("protocol", "check", str(path))
    assert r.code == 1 and says in r.err and re.search(r"bad\.toml:\d+: ", r.err), r.err
    assert len(r.err.strip().splitlines()) >= 1 and "Traceback" not in r.err
