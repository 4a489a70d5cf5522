"""The DSMG board and the safety report on a format-2 ward read the protocol's declarations (issue 17),
not MEXCOVID's names.

PALM (four arms, open label, infusions in mg by weight): the board counts the
infusions given and planned from the engine, sums the recorded doses in mg,
and flags the declared vital signs (`[safety] vital_signs`) outside their soft
range with the infusion they were measured before or after (the
`[[dose_assessments]]` on the vitals form). PALM007 (double blind): the board
shows tablets given and the daily vitals flagged, and nothing of the arm.
The safety report counts the administrations recorded by their declared roles
(`record = { dose, number, window, interruptions, not_given, ... }`): a dose
not given is no exposure, an interruption and a missed infusion (a deviation
of kind `missed`) are deviations, and PALM007's report names no arm either.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from site_users import PASSWORD
from test_engine_ward_cli import Ward, _infusion, _product, _tablets, _ward
from wf_support import ready_kit_on

from wardcrf import protocol
from wardcrf.engine import model, schedule
from wardcrf.site import Site
from wardcrf.workflow import declared, dsmg, vitals_series


@pytest.fixture
def palm(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm")


@pytest.fixture
def palm007(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm007")


def _board(w: Ward) -> dsmg.DsmgBoard:
    s = Site.open(w.dir).unlock("dsmg", PASSWORD)
    try:
        return dsmg.review(s, today=w.now.date())
    finally:
        s.close()


def _vitals(w: Ward, pid: str, *values: str):
    return w.run("submit", "vitals", "--participant", pid, *values, "--confirm", "--reason", "rechecked")


def _randomized(w: Ward, *, stratum: bool = True) -> tuple[str, str]:
    pid = w.consent()
    assert w.screen(pid).code == 0
    r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
    assert r.code == 0, r.err
    r = w.run("randomize", pid, *(["--stratum", "ct_np=HIGH"] if stratum else []))
    assert r.code == 0, r.err
    return pid, r.out


def test_palm_board_counts_infusions_sums_mg_and_flags_declared_vitals_by_infusion(
    palm: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = palm
    pid, out = _randomized(w)
    arm = out.split("randomized: arm ", 1)[1].split()[0]
    plan = schedule.plan(
        model.shipped("palm.toml"),
        {"randomization": w.now},
        arm=arm,
        zone="Africa/Kinshasa",
        conditions={"exists(disposition where stage == 'end_of_treatment')": False},
    )
    slot = next(s for adms in plan.values() for _adm, ss in adms for s in ss)
    start = max(slot.opens, w.now) + timedelta(minutes=30)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root, _product(arm))
    before = (start - timedelta(minutes=20)).isoformat()
    r = _vitals(w, pid, "timepoint=pre_infusion", f"infusion={slot.number}", f"time={before}", "temp=37.0",
                "pulse=96", "resp=20", "sysbp=112", "diabp=70", "oxysat=97")  # fmt: skip
    assert r.code == 0, r.err
    r = _infusion(w, pid, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    after = (start + timedelta(hours=2, minutes=15)).isoformat()
    r = _vitals(w, pid, "timepoint=post_infusion", f"infusion={slot.number}", f"time={after}", "temp=41.0",
                "pulse=96", "resp=20", "sysbp=112", "diabp=70", "oxysat=86")  # fmt: skip
    assert r.code == 0, r.err
    daily = (start + timedelta(hours=2, minutes=40)).isoformat()
    r = _vitals(w, pid, "timepoint=daily", f"time={daily}", "temp=37.0", "pulse=190", "resp=20", "oxysat=97")
    assert r.code == 0, r.err

    board = _board(w)
    [p] = [p for p in board["participants"] if p["participant"] == pid]
    shown = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    assert p["doses_given"] == 1 and p["doses_planned"] == shown["doses_planned"] >= 1
    assert p["cumulative_dose"] == [{"value": 3100.0, "unit": "mg"}]
    # the declared signs, in the form's order, each with the infusion it was measured after
    flags = [(f["sign"], f["value"], f["dose"], f["timepoint"], f["form"]) for f in p["vitals_flags"]]
    assert flags == [
        ("temp", 41.0, slot.number, "vitals after infusion", "vitals"),
        ("oxysat", 86.0, slot.number, "vitals after infusion", "vitals"),
        ("pulse", 190.0, None, None, "vitals"),  # a daily measurement: before or after no infusion
    ]
    assert (p["vitals_flags"][0]["low"], p["vitals_flags"][0]["high"], p["vitals_flags"][0]["unit"]) == (
        35.0,
        40.5,
        "C",
    )

    # the vitals chart reads the same declaration: each sign before and after each infusion
    a = Site.open(w.dir).unlock("auditor", PASSWORD)
    try:
        series = vitals_series.vitals_by_dose(a, pid)
    finally:
        a.close()
    assert (series.doses, series.doses_given) == (shown["doses_planned"], 1)
    assert [m.name for m in series.measures] == ["temp", "pulse", "resp", "sysbp", "diabp", "oxysat"]
    by = {m.name: m for m in series.measures}
    i = slot.number - 1
    assert (by["temp"].pre[i], by["temp"].post[i]) == (37.0, 41.0)
    assert (by["oxysat"].pre[i], by["oxysat"].post[i]) == (97.0, 86.0)
    assert (
        by["pulse"].post[i] == 96.0 and 190.0 not in by["pulse"].pre + by["pulse"].post
    )  # daily: no infusion


def test_palm007_board_shows_tablets_and_daily_vitals_and_never_the_arm(
    palm007: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = palm007
    pid, out = _randomized(w, stratum=False)
    kit = out.split("randomized: kit ", 1)[1].split()[0]
    m = model.shipped("palm007.toml")
    facts = {"screening.weight < 120": True, "screening.weight >= 120": False}
    plan = schedule.plan(
        m, {"randomization": w.now}, arm="TECOVIRIMAT", zone="Africa/Kinshasa", conditions=facts
    )
    slots = [s for adms in plan.values() for _adm, ss in adms for s in ss]
    s1 = next(s for s in slots if s.closes > w.now + timedelta(minutes=30))
    t1 = max(s1.opens, w.now) + timedelta(minutes=15)
    w.at(t1 + timedelta(minutes=30))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), kit, t1.isoformat(), w.root)
    r = _tablets(w, pid, kit, t1)
    assert r.code == 0, r.err
    r = _vitals(w, pid, f"date={w.now.date().isoformat()}", "temp=40.6", "pulse=90", "resp=20", "sysbp=60",
                "diabp=50", "oxysat=97")  # fmt: skip
    assert r.code == 0, r.err

    board = _board(w)
    [p] = [p for p in board["participants"] if p["participant"] == pid]
    assert p["doses_given"] == 1 and p["cumulative_dose"] == [{"value": 600.0, "unit": "mg"}]
    assert [(f["sign"], f["value"], f["dose"], f["time"]) for f in p["vitals_flags"]] == [
        ("temp", 40.6, None, w.now.date().isoformat()),
        ("sysbp", 60.0, None, w.now.date().isoformat()),
    ]
    text = json.dumps(board)
    for arm in m.arms:
        assert arm.code not in text
    for regimen in m.regimens.values():
        assert regimen.code not in text and regimen.label not in text
    for product in m.products:
        assert product not in text


def test_the_board_flags_nothing_for_a_version_that_declares_no_vital_signs(palm: Ward) -> None:
    """No `[safety] vital_signs`: no sign is guessed from the form's names."""
    pid, _out = _randomized(palm)
    r = _vitals(palm, pid, "timepoint=daily", f"time={palm.now.isoformat()}", "temp=41.5", "pulse=90",
                "resp=20", "oxysat=97")  # fmt: skip
    assert r.code == 0, r.err
    s = Site.open(palm.dir).unlock("dsmg", PASSWORD)
    try:
        proto = protocol.active(s.store)
        assert proto.engine is not None
        assert [f["sign"] for f in dsmg.vitals_flags(s.store, proto, pid)] == ["temp"]
        data = {**proto.engine.data, "safety": {"sae_clock": proto.engine.data["safety"]["sae_clock"]}}
        bare = replace(proto, engine=replace(proto.engine, data=data))
        assert declared.vital_signs(bare) is None
        assert declared.vitals_rows(s.store, bare, pid) == [] and dsmg.vitals_flags(s.store, bare, pid) == []
        monkey = pytest.MonkeyPatch()
        monkey.setattr(vitals_series.amendments, "protocol_of", lambda _store, _p: bare)
        try:
            assert vitals_series.vitals_by_dose(s, pid).measures == []  # no chart: no sign guessed
        finally:
            monkey.undo()
    finally:
        s.close()


def _report(w: Ward, fmt: str = "json") -> str:
    r = w.run("report", "safety", "--format", fmt, user="auditor")
    assert r.code == 0, r.err
    return r.out


def test_palm_safety_report_counts_infusions_by_role_and_names_interruptions_and_misses(
    palm: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = palm
    pid, out = _randomized(w)
    arm = out.split("randomized: arm ", 1)[1].split()[0]
    plan = schedule.plan(
        model.shipped("palm.toml"),
        {"randomization": w.now},
        arm=arm,
        zone="Africa/Kinshasa",
        conditions={"exists(disposition where stage == 'end_of_treatment')": False},
    )
    slot = next(s for adms in plan.values() for _adm, ss in adms for s in ss)
    start = max(slot.opens, w.now) + timedelta(minutes=30)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root, _product(arm))
    before = (start - timedelta(minutes=20)).isoformat()
    r = _vitals(w, pid, "timepoint=pre_infusion", f"infusion={slot.number}", f"time={before}", "temp=37.0",
                "pulse=96", "resp=20", "sysbp=112", "diabp=70", "oxysat=97")  # fmt: skip
    assert r.code == 0, r.err
    r = _infusion(w, pid, "VIAL-0001", start, "3100", "interruptions=1", "interruption_note=line occluded")
    assert r.code == 0, r.err
    # a month on, every infusion of the course not given is missed (none for a single-infusion arm)
    w.at(w.now + timedelta(days=30))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    shown = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    missed = [
        f"dose {d['number']} missed (due {d['due']})"
        for d in shown["deviations"]
        if d["code"] == "missed_infusion"
    ]
    assert len(missed) == shown["doses_planned"] - 1

    # `participant show` says the dose in the regimen's unit, not format 1's particles
    text = w.run("participant", "show", pid, user="auditor").out
    assert "doses 1/" in text and ", cumulative dose 3100 mg" in text and "particles" not in text

    data = json.loads(_report(w))
    [e] = [e for e in data["exposure"] if e["participant"] == pid]
    assert e["doses"] == 1 and e["cumulative_dose"] == [{"value": 3100.0, "unit": "mg"}]
    assert e["deviations"] == ["dose 1 interrupted: 1 (line occluded)", *missed]
    assert data["schedule"]["doses"] is None and data["schedule"]["unit"] == "mg"  # four arms, four regimens
    assert data["totals"]["cumulative_dose"] == [{"value": 3100.0, "unit": "mg"}]
    md = _report(w, "md")
    assert "1 participants dosed, 1 doses recorded, 3100 mg in total (schedule: each arm's regimen" in md
    assert "## Prespecified events by dose" in md and "inhalation" not in md


def test_palm007_safety_report_leaves_out_doses_not_given_and_never_names_the_arm(
    palm007: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = palm007
    pid, out = _randomized(w, stratum=False)
    kit = out.split("randomized: kit ", 1)[1].split()[0]
    m = model.shipped("palm007.toml")
    facts = {"screening.weight < 120": True, "screening.weight >= 120": False}
    plan = schedule.plan(
        m, {"randomization": w.now}, arm="TECOVIRIMAT", zone="Africa/Kinshasa", conditions=facts
    )
    slots = [s for adms in plan.values() for _adm, ss in adms for s in ss]
    s1 = next(s for s in slots if s.closes > w.now + timedelta(minutes=30))
    t1 = max(s1.opens, w.now) + timedelta(minutes=15)
    w.at(t1 + timedelta(minutes=30))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), kit, t1.isoformat(), w.root)
    assert _tablets(w, pid, kit, t1).code == 0
    s2 = slots[slots.index(s1) + 1]
    w.at(s2.due + timedelta(minutes=10))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = w.run("submit", "treatment", "--participant", pid, f"kit_id={kit}", f"time={w.now.isoformat()}",
              "not_given=yes", "not_given_reason=vomited")  # fmt: skip
    assert r.code == 0, r.err

    text = _report(w)
    data = json.loads(text)
    [e] = [e for e in data["exposure"] if e["participant"] == pid]
    assert e["doses"] == 1 and e["cumulative_dose"] == [{"value": 600.0, "unit": "mg"}]
    for arm in m.arms:
        assert arm.code not in text
    for regimen in m.regimens.values():
        assert regimen.code not in text and regimen.label not in text
    for product in m.products:
        assert product not in text
    md = _report(w, "md")
    assert all(a.code not in md for a in m.arms) and all(p not in md for p in m.products)


def test_vitals_order_by_the_instant_not_the_text_of_times_typed_in_other_zones() -> None:
    """07:00 in Wuhan is 23:00 UTC the day before: it comes before 01:00 in Kinshasa that day (00:00 UTC)."""
    wuhan, kinshasa = "2020-03-16T07:00:00+08:00", "2020-03-16T01:00:00+01:00"
    assert sorted([kinshasa, wuhan], key=declared._instant) == [wuhan, kinshasa]
    assert declared._instant("2020-03-16") == "2020-03-16"  # a daily record's date, as stored
    assert declared._instant("not a time\x1b[2J") == "not a time\x1b[2J"  # never raises on stored junk
