"""End to end, as a person would: the real `wardcrf` in tmux, keys typed one by one.

A demo site is seeded; a clinician signs in, records a new participant's
consent (both witnesses sign with their own passwords, the page photo comes
from a path), screening, enrollment and skin test, then gives dose 1 with the
kit id arriving as fast typing (a barcode scanner), and the result is
checked through the CLI. The clock is pinned (WARDCRF_FAKE_NOW) so times are
predictable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tui_helpers import page_photo

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]

FAKE_NOW = "2020-03-16T01:00:00Z"  # 09:00 on the ward
PASSWORD = "demo-password"
WARDCRF = str(Path(sys.executable).with_name("wardcrf"))


class Terminal:
    """A tmux session on its own server socket, driven by keys."""

    def __init__(self, socket: str, command: str, env: dict[str, str]) -> None:
        self.socket = socket
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self._tmux(
            "new-session", "-d", "-s", "w", "-x", "100", "-y", "34", f"env {exports} {command}; sleep 30"
        )

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "w")

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; the screen shows:\n{self.screen()}")

    def type(self, text: str) -> None:
        """Type like a person: one key at a time."""
        for ch in text:
            self._tmux("send-keys", "-t", "w", "-l", ch)
            time.sleep(0.01)

    def scan(self, text: str) -> None:
        """A barcode scanner: the whole code at once, as fast typing."""
        self._tmux("send-keys", "-t", "w", "-l", text)

    def keys(self, *keys: str) -> None:
        # A person glances at the screen between keys that move the focus.
        for k in keys:
            self._tmux("send-keys", "-t", "w", k)
            time.sleep(0.3)

    def choose(self, nth: int) -> None:
        """Open the focused drop-down and pick its nth option."""
        self.keys("Enter", *["Down"] * nth, "Enter")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _kit_at_bedside(data: Path, tmp_path: Path) -> None:
    """The pharmacy's part, through the cold-chain services: one kit received,
    stored and handed to the bedside before the dose, so the custody gate passes."""
    code = f"""
import tempfile
from datetime import datetime
from pathlib import Path
from wardcrf import features
from wardcrf.site import Site
from wardcrf.coldchain import scenario
features.install()
site = Site.open(Path({str(data)!r}))
ph, clin = site.unlock("pharmacist", {PASSWORD!r}), site.unlock("clinician", {PASSWORD!r})
pw = {{u: {PASSWORD!r} for u in ("pharmacist", "investigator", "clinician")}}
tmp = Path({str(tmp_path)!r})
got = scenario.receive_and_store(ph, pw, lot="E2E-LOT-1", kits=["KIT-E2E-0001"],
    received_at=datetime.fromisoformat("2020-03-15T10:00:00+08:00"), workdir=tmp)
scenario.to_bedside(ph, pw, "KIT-E2E-0001", datetime.fromisoformat("2020-03-16T08:20:00+08:00"),
    bedside=clin, workdir=tmp, since=got.stored_at)
"""
    env = {**os.environ, "WARDCRF_FAKE_NOW": FAKE_NOW}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def seed_demo(data: Path) -> None:
    """The demo site, seeded in this process under the fixed clock (as `wardcrf demo --no-tui` does).

    In-process, its key slots get the tests' lower derivation cost (tests/conftest.py), so the
    hundred signatures of the seeding take a second, not ten; the app in tmux opens it as any site.
    """
    from wardcrf.workflow import demo

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        demo.seed(data, PASSWORD)


def test_enrol_and_dose_a_participant_in_the_tui(tmp_path: Path) -> None:
    data = tmp_path / "site"
    env = {**os.environ, "WARDCRF_FAKE_NOW": FAKE_NOW}
    seed_demo(data)
    _kit_at_bedside(data, tmp_path)
    photo = page_photo(tmp_path / "page.jpg")
    term = Terminal(
        f"wardcrf-e2e-{os.getpid()}",
        f"{WARDCRF} tui -d {data}",
        {"WARDCRF_FAKE_NOW": FAKE_NOW, "TERM": "xterm-256color"},
    )
    try:
        term.wait_for("Sign in")
        term.type("clinician")
        term.keys("Enter")
        term.type(PASSWORD)
        term.keys("Enter")
        term.wait_for("WUH01-007")

        # Consent: a new participant.
        term.keys("n")
        term.wait_for("Consent given by")
        term.choose(1)  # participant
        term.keys("Tab", "Tab", "Tab")
        term.choose(1)  # version 1.0
        term.keys("Tab")
        term.type("2020-03-14 07:00")
        term.keys("Tab")
        term.type("investigator")
        term.keys("Tab")
        term.type("clinician2")
        term.keys("Tab")
        term.type(photo)
        term.keys("C-s")
        for signer in ("clinician", "investigator", "clinician2"):
            term.wait_for("Signing: Informed consent")
            assert signer in term.screen()
            term.type(PASSWORD)
            term.keys("Enter")
            time.sleep(0.5)
        # Saving the consent opens the new participant.
        term.wait_for("WUH01-008 ·")
        term.wait_for("Signatures:")

        def new_record(form: str, title: str) -> None:
            # The picker lists the forms this role may enter, in protocol order.
            order = ["screening", "enrollment", "demographics", "skin_test", "dose"]
            term.keys("n")
            term.wait_for("New record for WUH01-008")
            term.keys("Home", *["Down"] * order.index(form), "Enter")
            term.wait_for(title)

        new_record("screening", "Date of birth")
        term.type("2020-03-14")
        term.keys("Tab")
        term.type("1965-05-01")
        term.keys("Tab")
        term.choose(1)  # M
        term.keys("Tab")
        term.choose(1)  # PCR confirmed: yes
        term.keys("Tab", "Tab")
        term.choose(3)  # severe
        term.keys("C-s")
        term.wait_for("Signatures:")

        new_record("enrollment", "Enrollment")
        term.type("2020-03-15")  # yesterday: dose 1 falls on day 1, today
        term.keys("C-s")
        term.wait_for("Next: dose 1")

        new_record("skin_test", "Skin test")
        term.type("2020-03-15 15:00")
        term.keys("Tab")
        term.choose(1)  # negative
        term.keys("C-s")
        term.wait_for("Signatures:")

        # Dose 1: the kit id arrives from the scanner as one burst of keys.
        new_record("dose", "Kit")
        term.scan("KIT-E2E-0001\r")  # scanners end the code with Enter: on to the next field
        term.wait_for("KIT-E2E-0001")
        term.type("E2E-LOT-1")
        term.keys("Tab")
        term.type("2.0e8")
        term.keys("Tab")
        term.type("6")
        term.keys("Tab", "Tab", "Tab")
        term.type("08:20")
        term.keys("Tab")
        term.type("08:50")
        term.keys("C-s")
        term.wait_for("doses 1/5")
    finally:
        term.close()

    out = subprocess.run(
        [WARDCRF, "participant", "show", "WUH01-008", "--json", "-d", str(data)],
        env={**env, "WARDCRF_USER": "auditor", "WARDCRF_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
        text=True,
    )
    shown = json.loads(out.stdout)
    assert shown["status"] == "in treatment"
    assert shown["doses_given"] == 1
    assert shown["doses"][0]["kit_id"] == "KIT-E2E-0001"
    assert shown["consent"]["valid"] is True
