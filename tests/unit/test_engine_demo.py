"""`wardcrf demo --protocol palm|palm007`: a demo ward of a format-2 trial, randomized from its hub's list.

Built through the CLI (in-process), its clock pinned (`WARDCRF_FAKE_NOW`: the demo is seeded at the
moment the CLI reads, never at whatever time CI runs): participants across every arm (PALM, open label)
or a kit number each (PALM007, blinded), a screen failure named by its criterion, the administrations of
earlier days given and the next ones due with their kit at the bedside, the audit trail verified. Seeded
at instants around Kinshasa's midnight and before the morning round is over (23:30 UTC, 00:05 and 09:59
local), the ward's list at that moment is what a ward expects: nothing the demo should have given left
overdue or missed, what is due now due in its window with its kit at the bedside. The TUI opens on such a
site: tests/tui/test_administration_wizard.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from site_users import PASSWORD

from wardcrf.site import Site

KIN = ZoneInfo("Africa/Kinshasa")  # UTC+1 all year (no daylight saving): only the day boundary matters
INSTANTS = {
    "23:30 UTC": "2026-03-15T23:30:00+00:00",  # 00:30 in Kinshasa: a new local day, not yet in UTC
    "00:05 Kinshasa": "2026-03-16T00:05:00+01:00",  # 23:05 UTC the day before
    "09:59 Kinshasa": "2026-03-16T09:59:00+01:00",  # the morning round not over yet
    "14:00 Kinshasa": "2026-03-16T14:00:00+01:00",  # the afternoon: this morning's patients randomized
}
SEEDED = INSTANTS["14:00 Kinshasa"]


def _demo(cli, tmp_path, name: str, *more: str, at: str = SEEDED):
    target = tmp_path / name
    r = cli(
        "demo",
        "--protocol",
        name,
        "--no-tui",
        "--data-dir",
        str(target),
        "--password",
        PASSWORD,
        *more,
        env={"WARDCRF_FAKE_NOW": at},
    )
    assert r.code == 0, r.err
    return target, r.out


def _at(target, at: str) -> dict[str, str]:
    return {"WARDCRF_DATA_DIR": str(target), "WARDCRF_FAKE_NOW": at}


def test_palm_demo_has_every_arm_and_infusions_to_give(cli, tmp_path):
    target, out = _demo(cli, tmp_path, "palm")
    assert "KIN01 (PALM 1.0)" in out and "press d" in out
    env = _at(target, SEEDED)
    s = Site.open(target).unlock("auditor", PASSWORD)
    try:
        arms = {str(r[0]) for r in s.store.execute("SELECT arm FROM rand_allocations").fetchall()}
        infusions = int(s.store.scalar("SELECT count(*) FROM records WHERE form = 'infusion'"))
    finally:
        s.close()
    assert arms == {"ZMAPP", "RDV", "MAB114", "REGNEB3"}
    assert infusions >= 4
    r = cli("participant", "list", "--json", user="auditor", env=env)
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    statuses = [p["status"] for p in rows]
    assert "screen failure" in statuses and "eligible, not enrolled" in statuses
    failed = next(p for p in rows if p["status"] == "screen failure")
    r = cli("participant", "show", failed["id"], "--json", user="auditor", env=env)
    assert json.loads(r.out)["failed_criteria"] == ["pcr"]
    r = cli("today", "--json", user="clinician", env=env)
    assert r.code == 0, r.err
    items = json.loads(r.out)["items"]
    assert any("infusion" in i["what"] or "dose" in i["what"] for i in items), r.out
    assert not any("can no longer be dosed" in i["what"] for i in items)  # the vials given are used
    # each vial at the bedside is its own row under the participant it was handed over for (eyes D5: the
    # kits were one row with participant "—"); the demo's closing line names the same pairs
    ready = dict(re.findall(r"(KIN01-\d{3}) \((VIAL-[A-Z0-9]+-\d{4})\)", out))
    assert ready, out
    bedside = [i for i in items if "at bedside" in i["what"]]
    assert sorted((i["participant"], i["what"].split()[3]) for i in bedside) == sorted(ready.items())
    assert all(i["what"].startswith(f"dose with kit {ready[i['participant']]} at bedside:") for i in bedside)
    r = cli("audit", "verify", "--json", user="auditor", env=env)
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


def test_palm007_demo_is_blinded_with_doses_given(cli, tmp_path):
    target, out = _demo(cli, tmp_path, "palm007", "--hub", str(tmp_path / "hub"))
    assert "KIN01 (PALM007 1.0)" in out and "kit K" in out
    assert "Demo hub HUB" in out and "issued the ward's allocation list" in out  # --hub: the list's own hub
    env = _at(target, SEEDED)
    r = cli("participant", "list", "--json", user="clinician", env=env)
    rows = json.loads(r.out)
    randomized = [p for p in rows if p["status"] in ("in treatment", "enrolled")]
    assert len(randomized) == 4
    for p in randomized:
        shown = json.loads(cli("participant", "show", p["id"], "--json", user="clinician", env=env).out)
        assert shown["arm"] is None and shown["kit"].startswith("K")  # blinded: a kit, never the arm
    s = Site.open(target).unlock("auditor", PASSWORD)
    try:
        doses = [
            json.loads(d[0]) for d in s.store.execute("SELECT data FROM records WHERE form = 'treatment'")
        ]
    finally:
        s.close()
    assert doses and all(d["with_food"] is True and d["not_given"] is False for d in doses)
    r = cli("audit", "verify", "--json", user="auditor", env=env)
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


@pytest.mark.parametrize("name", ["palm", "palm007"])
def test_a_format2_ward_list_says_cumulative_dose_per_unit_never_particles(cli, tmp_path, name):
    """`participant list` on PALM and PALM007: the cumulative dose with its unit, as
    `participant show` says it ("6200 mg" of ZMapp), not MEXCOVID's "cumulative particles" (6.20e+03)."""
    target, _ = _demo(cli, tmp_path, name)
    env = _at(target, SEEDED)
    r = cli("participant", "list", "--json", user="clinician", env=env)
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert rows and all("cumulative_particles" not in p for p in rows)
    dosed = [p for p in rows if p["doses_given"]]
    assert dosed, "the demo has given doses"
    said = {}
    for p in rows:
        shown = json.loads(cli("participant", "show", p["id"], "--json", user="clinician", env=env).out)
        assert p["cumulative_dose"] == shown["cumulative_dose"]  # the same per-unit sums as `show`
        said[p["id"]] = ", ".join(f"{c['value']:g} {c['unit']}" for c in shown["cumulative_dose"]) or "0"
    for p in dosed:
        assert p["cumulative_dose"] and all(
            c["value"] > 0 and c["unit"] == "mg" for c in p["cumulative_dose"]
        )
    r = cli("participant", "list", user="clinician", env={**env, "COLUMNS": "250"})
    assert r.code == 0, r.err
    assert "cumulative dose" in r.out and "particles" not in r.out, r.out
    lines = r.out.splitlines()
    for p in dosed:  # e.g. "6200 mg" on the participant's own line
        line = next(x for x in lines if p["id"] in x)
        assert said[p["id"]] in line and "e+0" not in line, line


@pytest.mark.parametrize("name", ["palm", "palm007"])
def test_a_demo_is_not_seeded_over_a_site(cli, tmp_path, name):
    target = tmp_path / "taken"
    r = cli("init", "--site", "KIN01", "--device", "lap", "--admin", "admin", "--data-dir", str(target))
    assert r.code == 0, r.err
    r = cli("demo", "--protocol", name, "--no-tui", "--data-dir", str(target), "--password", PASSWORD)
    assert r.code in (1, 2) and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def _shown(cli, env: dict[str, str], pid: str) -> dict:
    r = cli("participant", "show", pid, "--json", user="clinician", env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)


@pytest.mark.parametrize("when", list(INSTANTS), ids=list(INSTANTS))
def test_palm_demo_seeded_at_any_hour_leaves_what_a_ward_expects(cli, tmp_path, when):
    """Every infusion of a day before the local one given on its day; those of the local day due now,
    each with its vial at the bedside; none overdue, missed or a missing-infusion deviation; the
    patients of the working day (the last whose morning round is over) randomized before the moment."""
    at = INSTANTS[when]
    local = datetime.fromisoformat(at).astimezone(KIN)
    target, out = _demo(cli, tmp_path, "palm", at=at)
    assert "press d" in out
    env = _at(target, at)
    rows = json.loads(cli("participant", "list", "--json", user="clinician", env=env).out)
    treated = [p for p in rows if p["status"] not in ("screen failure", "eligible, not enrolled")]
    assert len(treated) == 8, [p["status"] for p in rows]
    due_today = 0
    for p in treated:
        shown = _shown(cli, env, p["id"])
        assert not [d for d in shown["deviations"] if d["code"] in ("missed_infusion", "late_infusion")], (
            shown
        )
        for a in shown["administrations"]:
            day = datetime.fromisoformat(a["due"]).astimezone(KIN).date()
            if day < local.date():
                assert (a["state"], a["timing"]) == ("given", "on_time"), (p["id"], a)
            elif day == local.date() and a["state"] != "given":
                assert a["state"] in ("due now", "window closing"), (p["id"], a)
                due_today += 1
            elif day > local.date():
                assert a["state"] == "upcoming", (p["id"], a)
    assert due_today >= 1
    r = cli("today", "--json", user="clinician", env=env)
    assert r.code == 0, r.err
    items = json.loads(r.out)["items"]
    assert not [i for i in items if i["state"] in ("overdue", "missed")], items
    assert not any("can no longer be dosed" in i["what"] for i in items), items
    r = cli("audit", "verify", "--json", user="auditor", env=env)
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


@pytest.mark.parametrize("when", list(INSTANTS), ids=list(INSTANTS))
def test_palm007_demo_seeded_at_any_hour_leaves_what_a_ward_expects(cli, tmp_path, when):
    """Every dose whose window closed before the moment given with food; none missed; between midnight
    and the morning dose's window the next dose is upcoming (the night's list holds no dose), inside it
    the dose is due (the morning's list holds it); every bottle dispensed from a lot received."""
    at = INSTANTS[when]
    local = datetime.fromisoformat(at).astimezone(KIN)
    target, _out = _demo(cli, tmp_path, "palm007", at=at)
    env = _at(target, at)
    rows = json.loads(cli("participant", "list", "--json", user="clinician", env=env).out)
    randomized = [p for p in rows if p["status"] in ("in treatment", "enrolled")]
    assert len(randomized) == 4, rows
    for p in randomized:
        shown = _shown(cli, env, p["id"])
        assert shown["doses_given"] >= 1, shown
        assert not [d for d in shown["deviations"] if d["code"] in ("missed_dose", "late_dose")], shown
        states = [a["state"] for a in shown["administrations"]]
        assert "missed" not in states and "overdue" not in states, (p["id"], states)
        nd = shown["next_dose"]
        if local.hour < 6:
            assert nd["state"] == "upcoming", (p["id"], nd)
        elif local.hour < 10:
            assert nd["state"] in ("due now", "window closing"), (p["id"], nd)
    r = cli("today", "--json", user="clinician", env=env)
    assert r.code == 0, r.err
    items = json.loads(r.out)["items"]
    assert not [i for i in items if i["state"] in ("overdue", "missed")], items
    r = cli("audit", "verify", "--json", user="auditor", env=env)
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


def test_the_demo_is_seeded_at_a_moment_with_its_zone(tmp_path):
    """`now` is explicit and zoned: a naive moment (whose local day is unknown) is refused, nothing made."""
    from wardcrf.sync import engine_demo

    from wardcrf.engine import model

    with pytest.raises(ValueError, match="must carry its zone"):
        engine_demo.seed(
            tmp_path / "site", model.shipped("palm.toml"), PASSWORD, now=datetime(2026, 3, 16, 0, 5)
        )
    assert not (tmp_path / "site").exists()
