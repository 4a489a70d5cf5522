"""`wardcrf demo --protocol palm|palm007`: a demo ward of a format-2 trial, randomized from its hub's list.

Built through the CLI (in-process) at the suite's fixed clock: participants
across every arm (PALM, open label) or a kit number each (PALM007, blinded),
a screen failure named by its criterion, the administrations of earlier days
given and the next ones due with their kit at the bedside, the audit trail
verified. The TUI opens on such a site: tests/tui/test_administration_wizard.py.
"""

from __future__ import annotations

import json

import pytest
from site_users import PASSWORD

from wardcrf.site import Site


def _demo(cli, tmp_path, name: str, *more: str):
    target = tmp_path / name
    r = cli("demo", "--protocol", name, "--no-tui", "--data-dir", str(target), "--password", PASSWORD, *more)
    assert r.code == 0, r.err
    return target, r.out


def test_palm_demo_has_every_arm_and_infusions_to_give(cli, tmp_path):
    target, out = _demo(cli, tmp_path, "palm")
    assert "KIN01 (PALM 1.0)" in out and "press d" in out
    env = {"WARDCRF_DATA_DIR": str(target)}
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
    r = cli("audit", "verify", "--json", user="auditor", env=env)
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


def test_palm007_demo_is_blinded_with_doses_given(cli, tmp_path):
    target, out = _demo(cli, tmp_path, "palm007", "--hub", str(tmp_path / "hub"))
    assert "KIN01 (PALM007 1.0)" in out and "kit K" in out
    assert "Demo hub HUB" in out and "issued the ward's allocation list" in out  # --hub: the list's own hub
    env = {"WARDCRF_DATA_DIR": str(target)}
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
def test_a_demo_is_not_seeded_over_a_site(cli, tmp_path, name):
    target = tmp_path / "taken"
    r = cli("init", "--site", "KIN01", "--device", "lap", "--admin", "admin", "--data-dir", str(target))
    assert r.code == 0, r.err
    r = cli("demo", "--protocol", name, "--no-tui", "--data-dir", str(target), "--password", PASSWORD)
    assert r.code in (1, 2) and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
