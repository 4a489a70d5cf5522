"""End to end in tmux on the engine's demo wards: the real `wardcrf tui` on `wardcrf demo --protocol palm`
and `--protocol palm007`, seeded through the CLI as a user would, under a fixed clock, with the machine busy.

PALM (Ebola, weight-based infusions): the clinician finds, through `wardcrf today --json`, a participant
whose infusion is due with its vial at the bedside, opens them, presses `d`, scans the vial (one burst of
keys ending in Enter), types each step key by key (volume, vitals before, start/stop with ctrl+t, rate,
vitals after), reads the timing on the review and saves; the CLI shows the infusion and both vitals with
their values, and `audit verify` passes. PALM007 (mpox, blinded): the capsules' count, how taken, with
food; saved; the CLI confirms; no screen ever names an arm or the placebo. An AE is recorded through the
TUI on the PALM007 participant and read back through the CLI.

Every wait is on the screen (`Terminal.wait_for`) or on a process, never on the clock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_e2e_tmux import FAKE_NOW, PASSWORD, WARDCRF, Terminal

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]

MORNING = "2020-03-16T07:05:00Z"  # 08:05 in Kinshasa: PALM007's 08:00 capsules are due


@pytest.fixture
def busy() -> Iterator[None]:
    """Every core kept busy for the test's duration by a CPU burner each; stopped (by pid) after."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
            p.wait()


def _cli(data: Path, now: str, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WARDCRF_FAKE_NOW": now, "WARDCRF_USER": user, "WARDCRF_PASSWORD": PASSWORD}
    return subprocess.run(
        [WARDCRF, *args, "-d", str(data)], env=env, capture_output=True, text=True, timeout=600
    )


def _json(data: Path, now: str, user: str, *args: str) -> dict:
    got = _cli(data, now, user, *args, "--json")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def _seed(data: Path, protocol: str) -> None:
    """`wardcrf demo --protocol X --no-tui`, as a user seeds a demo ward."""
    env = {**os.environ, "WARDCRF_FAKE_NOW": FAKE_NOW}
    got = subprocess.run(
        [WARDCRF, "demo", "--protocol", protocol, "--no-tui", "-d", str(data), "--password", PASSWORD],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert got.returncode == 0, got.stderr


def _sign_in(term: Terminal, user: str = "clinician") -> None:
    term.wait_for("Sign in")
    term.type(user)
    term.keys("Enter")
    term.type(PASSWORD)
    term.keys("Enter")


def _open(term: Terminal, pid: str, shows: str) -> None:
    term.wait_for(pid)
    term.type(pid)  # typed on the dashboard: straight to the participant
    term.keys("Enter")
    term.wait_for(shows)


def _tui(data: Path, now: str, name: str) -> Terminal:
    return Terminal(
        f"wardcrf-e2e-{name}-{os.getpid()}",
        f"{WARDCRF} tui -d {data}",
        {"WARDCRF_FAKE_NOW": now, "TERM": "xterm-256color"},
    )


def _submitted(data: Path, now: str, pid: str, form: str) -> list[dict]:
    """The data of every record of this form submitted about the participant, oldest first (`wardcrf log --json`)."""
    got = _cli(data, now, "auditor", "log", "--json", "--subject", f"participant:{pid}", "--type", "record.")
    assert got.returncode == 0, got.stderr
    return [e["body"]["data"] for e in json.loads(got.stdout) if e["body"].get("form") == form]


def _audit_verifies(data: Path, now: str) -> None:
    got = _cli(data, now, "auditor", "audit", "verify")
    assert got.returncode == 0, got.stdout + got.stderr


BEDSIDE = re.compile(r"dose with kit (\S+) at bedside:(\S+) by ")


def test_palm_infusion_through_the_wizard_in_the_real_app(tmp_path: Path, busy: None) -> None:
    data = tmp_path / "site"
    _seed(data, "palm")
    today = _json(data, FAKE_NOW, "clinician", "today")
    ready = sorted(m.groups() for i in today["items"] if (m := BEDSIDE.match(i["what"])))
    assert ready, today
    kit, pid = ready[0]
    before = _json(data, FAKE_NOW, "auditor", "participant", "show", pid)
    term = _tui(data, FAKE_NOW, "palm")
    try:
        _sign_in(term)
        _open(term, pid, f"{pid} ·")
        term.keys("d")
        term.wait_for("Prescribed:")
        term.scan(kit + "\r")
        term.wait_for(f"Kit {kit}")  # checked at once; the lot is filled from the kit, the dose prescribed
        term.type("250")  # the volume: the first field still empty has the focus
        term.keys("C-n")
        term.wait_for(
            "Step 2/5"
        )  # vitals before: the step opens on its time (left blank: stamped on leaving)
        term.keys("Tab")
        for value in ("37.9", "96", "22"):
            term.type(value)
            term.keys("Tab")
        term.keys("C-n")
        term.wait_for("Step 3/5")
        term.keys("C-t", "Tab")  # started and stopped now (the focus on the start); then the rate
        term.type("125")
        term.keys("Tab")
        term.type("0")  # not interrupted
        term.keys("C-n")
        term.wait_for("Step 4/5")
        term.keys("C-t", "Tab")  # vitals after: their time now, then the values
        for value in ("37.6", "90"):
            term.type(value)
            term.keys("Tab")
        term.keys("C-n")
        shown = term.wait_for("Timing:")
        assert "Timing: on time" in shown, shown
        term.keys("C-s")
        # The participant again, the dose counted (the wizard's own header names the participant too).
        term.wait_for(f"doses {before['doses_given'] + 1}/")
    finally:
        term.close()

    after = _json(data, FAKE_NOW, "auditor", "participant", "show", pid)
    assert after["doses_given"] == before["doses_given"] + 1, after
    given = after["doses"][-1]
    assert given["kit_id"] == kit and given["window"] == "on_time", given
    infusion = _submitted(data, FAKE_NOW, pid, "infusion")[-1]
    assert infusion["kit_id"] == kit and infusion["volume"]["value"] == 250, infusion
    assert infusion["rate"]["value"] == 125 and infusion["interruptions"] == 0, infusion
    assert infusion["dose_mg"]["value"] == infusion["prescribed_mg"]["value"], infusion
    vitals = [
        v
        for v in _submitted(data, FAKE_NOW, pid, "vitals")
        if v.get("infusion") == infusion["infusion_number"]
    ]
    assert {v["timepoint"]: (v["temp"]["value"], v["pulse"]["value"]) for v in vitals} == {
        "pre_infusion": (37.9, 96),
        "post_infusion": (37.6, 90),
    }, vitals
    _audit_verifies(data, FAKE_NOW)


#: What a blinded ward must never read: the arms' codes and labels, and the placebo.
UNBLINDING = ("PLACEBO", "Placebo", "placebo", "TECOVIRIMAT", "Tecovirimat orally", "matching tecovirimat")


def test_palm007_blinded_capsules_and_an_ae_in_the_real_app(tmp_path: Path, busy: None) -> None:
    data = tmp_path / "site"
    _seed(data, "palm007")
    today = _json(data, MORNING, "clinician", "today")
    due = sorted(
        i["participant"] for i in today["items"] if i["state"] == "due now" and i["what"].startswith("dose ")
    )
    assert due, today
    pid = due[0]
    before = _json(data, MORNING, "clinician", "participant", "show", pid)
    assert before["arm"] is None  # blinded: not even the CLI names it to the ward
    kit = str(before["doses"][-1]["kit_id"])
    screens: list[str] = []
    term = _tui(data, MORNING, "palm007")

    def seen(text: str) -> str:
        shown = term.wait_for(text)
        screens.append(shown)
        return shown

    try:
        _sign_in(term)
        _open(term, pid, f"{pid} ·")
        screens.append(term.screen())
        term.keys("d")
        seen("Step 1/3")
        term.scan(kit + "\r")
        seen(f"Kit {kit}")
        # The focus is on the first field still empty (how given); the count is prefilled with the
        # prescribed one: counted again, key by key.
        term.keys("BTab", "BSpace")
        term.type("3")
        seen("= 600 mg")
        term.keys("Tab")
        term.choose(1)  # capsules swallowed whole
        term.keys("Tab")
        term.choose(1)  # with food: yes
        seen("Capsules swallowed whole")
        term.keys("C-n")
        seen("Step 2/3")
        term.keys("C-s")
        shown = seen("Timing:")
        assert "Timing: on time" in shown and "Dose given 600 mg" in shown, shown
        term.keys("C-s")
        # The participant again, the dose counted (the wizard's own header names the participant too).
        seen(f"doses {before['doses_given'] + 1}/")

        # An adverse event, through the new-record picker (the forms in protocol order).
        term.keys("n")
        seen(f"New record for {pid}")
        term.keys("Home", *["Down"] * 8, "Enter")  # Adverse event
        seen("Event term")
        term.type("Nausea")
        term.keys("Tab")
        term.type("2020-03-16")
        term.keys("Tab", "Tab")  # no end date: ongoing
        term.type("1")
        term.keys("Tab")
        term.choose(2)  # serious: no
        term.keys(*["Tab"] * 7)  # the seriousness criteria keep their default (no)
        term.choose(1)  # related
        term.keys("Tab")
        term.choose(2)  # recovering
        term.keys("Tab")
        term.type("2020-03-16")
        term.keys("C-s")
        seen(f"open AEs {len(before['open_aes']) + 1}")  # the participant again, one more AE open
    finally:
        term.close()

    for shown in screens:
        for word in UNBLINDING:
            assert word not in shown, (word, shown)
    after = _json(data, MORNING, "auditor", "participant", "show", pid)
    assert after["doses_given"] == before["doses_given"] + 1, after
    dose = _submitted(data, MORNING, pid, "treatment")[-1]
    assert dose["kit_id"] == kit and dose["dose_mg"]["value"] == 600 and dose["window"] == "on_time", dose
    assert dose["preparation"] == "whole" and dose["with_food"] is True, dose
    assert [a for a in after["open_aes"] if "Nausea" in json.dumps(a)], after["open_aes"]
    ae = _submitted(data, MORNING, pid, "ae")[-1]
    assert ae["term"] == "Nausea" and ae["grade"] == 1 and ae["serious"] is False, ae
    assert ae["causality"] == "related" and ae["outcome"] == "recovering", ae
    _audit_verifies(data, MORNING)
