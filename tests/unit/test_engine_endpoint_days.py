"""When a participant counts in an endpoint (issue #17): a proportion read at a day, and one follow-up rule.

* A `proportion` endpoint with a `day` (PALM007's `pcr_negative_d14`, read
  once study day 15 is over) counts in k of n only the participants whose
  day is over; before it their `exists(...)` is false only because the
  sample is not due yet, so they are "not yet evaluable", never a "0 of 2"
  (docs/exports.md: "never an invented number"). Without a `day` the
  expression is read as it stands (MEXCOVID's and PALM's proportions).
* PALM's `time_to_death` declares no `censor_at`: a participant without the
  event is followed to the latest date of any of their records, the date
  `mortality_d28` reads, so the two endpoints censor each participant on the
  same day (before: "no follow-up" in one, "censored alive" in the other).
  A declared `censor_at` still wins (PALM007's lesions).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wardcrf.engine import model
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.reports import endpoints
from wardcrf.reports.endpoints import Outcome, Settings
from wardcrf.reports.engine_endpoints import ALL, _outcome, document

KIN = ZoneInfo("Africa/Kinshasa")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=KIN)
ENGINE = Path(model.__file__).parent.parent / "protocols" / "engine"


def _model(name: str) -> model.Model:
    return model.parse((ENGINE / f"{name}.toml").read_text("utf-8"), f"{name}.toml")


def _endpoint(m: model.Model, code: str) -> dict:
    return next(e for e in m.data["analysis"]["endpoints"] if e["code"] == code)


def _snap(records: dict[str, list[Rec]], randomized: date | None, now: datetime = NOW) -> Snapshot:
    return Snapshot(records=records, now=now, zone=KIN, anchors={"randomization": randomized}, anchor_day=1)


def _pcr(on: date, result: str) -> Rec:
    return Rec("pcr", {"date": on, "specimen": "blood", "result": result}, f"pcr-{on}", 1)


# -- a proportion read at its day -----------------------------------------------------------------------


def test_palm007_pcr_negative_d14_counts_only_participants_whose_day_15_is_over() -> None:
    m = _model("palm007")
    ep = _endpoint(m, "pcr_negative_d14")
    assert (ep["day"], ep["from"]) == (15, "randomization")

    def outcome(randomized: date | None, records: dict[str, list[Rec]]) -> Outcome:
        snap = _snap(records, randomized)
        return _outcome(m, ep, ALL, {"randomization": randomized}, snap, KIN)

    today = NOW.date()
    # refused: randomized 6 days ago, no PCR yet: not "false", not yet evaluable
    early = outcome(today - timedelta(days=6), {})
    assert (early.pending, early.met) == (True, None)
    # refused even with the negative PCR already in (day 14): k would count it, n would not hold the others
    on_time = today - timedelta(days=13)  # today is study day 14
    assert outcome(on_time, {"pcr": [_pcr(today, "negative")]}).pending is True
    # refused on day 15 itself (the day is not over: a day-15 sample may still come), accepted on day 16
    day15, day16 = today - timedelta(days=14), today - timedelta(days=15)
    assert outcome(day15, {}).pending is True
    past = outcome(day16, {})
    assert (past.pending, past.met) == (False, False)  # day over, no negative PCR in 13..15: not met
    met = outcome(day16, {"pcr": [_pcr(day16 + timedelta(days=13), "negative")]})
    assert (met.pending, met.met) == (False, True)
    # not randomized yet: no origin, not evaluable
    assert outcome(None, {}).pending is True


def test_a_proportion_before_its_day_gives_no_invented_number_and_the_reason_in_words() -> None:
    ep = {"code": "pcr_negative_d14", "kind": "proportion", "day": 15, "compare": ["T", "P"]}
    res = endpoints.analyse(
        ep,
        ["T", "P"],
        [Outcome("T", pending=True), Outcome("T", pending=True), Outcome("P", pending=True)],
        Settings(),
    )
    t = res["arms"]["T"]
    assert (t["k"], t["n"], t["estimate"], t["unknown"], t["not_yet_evaluable"], t["day"]) == (
        0, 0, None, 0, 2, 15,
    )  # fmt: skip
    assert res["comparisons"][0]["reason"] == (
        "no participant of T evaluable at day 15 yet; no participant of P evaluable at day 15 yet"
    )
    text = [line for s in document(_report([res])).sections for line in s.text]
    assert text[0] == (
        "T: 0 of 0 evaluable at day 15, not estimable: no participant of T evaluable at day 15 yet;"
        " outcome not known: 0; not yet evaluable (day 15 not over): 2"
    )
    # accepted: the evaluable ones are k of n, the others still waiting are counted beside them
    mixed = endpoints.analyse(
        ep,
        ["T", "P"],
        [
            Outcome("T", met=True),
            Outcome("T", met=False),
            Outcome("T", pending=True),
            Outcome("P", met=False),
        ],
        Settings(),
    )
    t = mixed["arms"]["T"]
    assert (t["k"], t["n"], t["not_yet_evaluable"], t["estimate"]) == (1, 2, 1, 0.5)
    assert mixed["comparisons"][0]["estimate"] == 0.5
    # without a day nothing waits: the expression is read as it stands (and the line says nothing of a day)
    plain = endpoints.analyse(
        {"code": "serious_ae", "kind": "proportion"}, [ALL], [Outcome(ALL, met=False)], Settings()
    )
    assert (plain["arms"][ALL]["not_yet_evaluable"], plain["arms"][ALL]["day"]) == (0, None)
    line = document(_report([plain])).sections[0].text[0]
    assert line == "All participants: 0 of 1, 0.0% (95% CI 0.0% to 79.3%); outcome not known: 0"


def _report(results: list) -> dict:
    return {
        "protocol": {"id": "T", "version": "1"},
        "at": "2026-12-07T10:00+01:00",
        "participants": 3,
        "blinded": False,
        "methods": {
            "ci_level": 0.95,
            "proportion_ci": "wilson",
            "difference_ci": "newcombe",
            "survival_ci": "log-log",
        },
        "endpoints": results,
    }


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        ("day = 0", "day"),
        ('day = "15"', "day"),
        ("day = 1.5", "day"),
        ('from = "nowhere"', "from"),
    ],
)
def test_a_malformed_day_is_refused_by_protocol_check_in_one_line(
    cli, tmp_path: Path, new: str, problem: str
) -> None:
    text = (ENGINE / "palm007.toml").read_text("utf-8")
    old = "day = 15 " if new.startswith("day") else 'population = "randomized"\nfrom = "randomization"'
    if new.startswith("from"):
        new = f'population = "randomized"\n{new}'
    assert text.count(old) == 1, old
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new + " ", 1), "utf-8")
    r = cli("protocol", "check", str(bad))
    assert r.code == 1, r.out + r.err
    assert any("bad.toml:" in x and problem in x for x in r.err.splitlines()), r.err
    assert "Traceback" not in r.err


# -- one follow-up rule for death -----------------------------------------------------------------------


def test_palm_time_to_death_censors_where_mortality_does() -> None:
    m = _model("palm")
    ttd, mort = _endpoint(m, "time_to_death"), _endpoint(m, "mortality_d28")
    assert "censor_at" not in ttd  # the protocol's choice: the rule mortality follows (palm.toml says why)
    randomized = NOW.date() - timedelta(days=4)
    vitals = [
        Rec(
            "vitals",
            {"time": datetime.combine(randomized + timedelta(days=d), datetime.min.time(), KIN)},
            f"v{d}",
            d,
        )
        for d in (0, 1, 2, 3)
    ]
    records = {"vitals": vitals}  # an inpatient with daily vitals, no vital-status contact yet
    snap = _snap(records, randomized)
    a = _outcome(m, ttd, "ZMAPP", {"randomization": randomized}, snap, KIN)
    b = _outcome(m, mort, "ZMAPP", {"randomization": randomized}, snap, KIN)
    assert (a.time, a.event) == (b.time, b.event) == (3.0, False)  # both: censored alive on day 3
    res_t = endpoints.analyse(ttd, ["ZMAPP"], [a], Settings())
    res_m = endpoints.analyse(mort, ["ZMAPP"], [b], Settings())
    assert (res_t["arms"]["ZMAPP"]["n"], res_t["arms"]["ZMAPP"]["no_follow_up"]) == (1, 0)
    assert (res_m["arms"]["ZMAPP"]["censored_before_day"], res_m["arms"]["ZMAPP"]["no_follow_up"]) == (1, 0)
    # a death: the event on its date in both
    dead = {
        **records,
        "disposition": [
            Rec(
                "disposition",
                {"stage": "end_of_study", "status": "death", "date": NOW.date(), "death_date": NOW.date()},
                "d",
                9,
            )
        ],
    }
    snap = _snap(dead, randomized)
    a = _outcome(m, ttd, "ZMAPP", {"randomization": randomized}, snap, KIN)
    b = _outcome(m, mort, "ZMAPP", {"randomization": randomized}, snap, KIN)
    assert (a.time, a.event) == (b.time, b.event) == (4.0, True)
    # nothing recorded at all: no follow-up in both
    snap = _snap({}, randomized)
    a = _outcome(m, ttd, "ZMAPP", {"randomization": randomized}, snap, KIN)
    b = _outcome(m, mort, "ZMAPP", {"randomization": randomized}, snap, KIN)
    assert a.time is None and b.time is None


def test_a_declared_censor_at_still_wins() -> None:
    m = _model("palm")
    ttd = {**_endpoint(m, "time_to_death"), "censor_at": "latest(vital_status.date where status == 'alive')"}
    randomized = NOW.date() - timedelta(days=4)
    vitals = [Rec("vitals", {"time": NOW - timedelta(days=1)}, "v", 1)]
    snap = _snap({"vitals": vitals}, randomized)
    got = _outcome(m, ttd, "ZMAPP", {"randomization": randomized}, snap, KIN)
    assert got.time is None  # the protocol's own rule: only a vital-status contact follows them
    alive = Rec("vital_status", {"date": NOW.date(), "status": "alive"}, "vs", 2)
    snap = _snap({"vitals": vitals, "vital_status": [alive]}, randomized)
    assert _outcome(m, ttd, "ZMAPP", {"randomization": randomized}, snap, KIN).time == 4.0


# -- a contact that did not reach the participant ---------------------------------------------------


@pytest.mark.parametrize("name", ["palm", "palm007"])
def test_a_vital_status_contact_that_did_not_reach_the_patient_does_not_show_them_alive(name: str) -> None:
    """`[disposition] not_seen_alive`: before, any record's date counted, so "unknown (not reached)" on day 20
    followed a patient last seen on day 3 to day 20 (a reviewer's finding: "known alive counts any record")."""
    m = _model(name)
    mort = next(e for e in m.data["analysis"]["endpoints"] if e["kind"] == "mortality")
    randomized = NOW.date() - timedelta(days=30)
    seen = [Rec("vitals", {"date": randomized + timedelta(days=3)}, "v3", 1)]

    def followed(status: str) -> float | None:
        contact = Rec("vital_status", {"date": randomized + timedelta(days=20), "status": status}, "vs", 2)
        snap = _snap({"vitals": seen, "vital_status": [contact]}, randomized)
        return _outcome(m, mort, ALL, {"randomization": randomized}, snap, KIN).time

    assert followed("alive") == 20.0  # accepted: the contact saw them alive
    assert followed("unknown") == 3.0  # refused as evidence: followed to the last record that did
    assert followed("dead") == 3.0  # a death is the disposition's to record, with its date


def test_without_not_seen_alive_every_record_still_counts() -> None:
    source = (ENGINE / "palm.toml").read_text("utf-8")
    line = "not_seen_alive = [{ form = \"vital_status\", when = \"status != 'alive'\" }]\n"
    assert line in source
    m = model.parse(source.replace(line, ""), "palm.toml")
    mort = _endpoint(m, "mortality_d28")
    randomized = NOW.date() - timedelta(days=30)
    contact = Rec("vital_status", {"date": randomized + timedelta(days=20), "status": "unknown"}, "vs", 2)
    snap = _snap({"vital_status": [contact]}, randomized)
    assert _outcome(m, mort, ALL, {"randomization": randomized}, snap, KIN).time == 20.0
