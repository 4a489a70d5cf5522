"""A crash loses no typed field: SIGKILL the real app in tmux mid-form, sign in again, resume.

The clinician types a temperature and a pulse into the vitals form (each
field left is kept as a draft), the app is killed with SIGKILL (a crash,
a power cut), started again; after signing in the dashboard says there is
unsaved work, `u` lists it and Enter reopens the form with both values.
Every wait is on a condition (the draft in the database, text on screen).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_e2e_tmux import FAKE_NOW, WARDCRF
from tui_helpers import PASSWORD, enroll

from wardcrf import drafts
from wardcrf.site import Site

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class App:
    """The real `wardcrf tui` alone in a tmux pane (its pid is the pane's)."""

    def __init__(self, socket: str, data: Path) -> None:
        self.socket = socket
        env = f"WARDCRF_FAKE_NOW={FAKE_NOW} TERM=xterm-256color"
        self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "w", "-x", "100", "-y", "34",
            f"exec env {env} {WARDCRF} tui -d {data}",
        )  # fmt: skip
        self.pid = int(self.tmux("display-message", "-p", "-t", "w", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "w")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout  # a bound for a broken app; the wait is on the screen
        while text not in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear:\n{self.screen()}")
            time.sleep(0.1)

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "w", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "w", "-l", text)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _kept(site: Site, pid: str):
    s = site.unlock("clinician", PASSWORD)
    try:
        return drafts.get(s, "vitals", context=f"participant:{pid}")
    finally:
        s.close()


def test_sigkill_mid_form_loses_no_field(site, tmp_path: Path) -> None:
    pid = enroll(site, tmp_path)
    # One tmux server per start: `kill-server` returns before the old server has
    # gone, and a new session on the same socket can reach the dying server
    # ("server exited unexpectedly").
    socket = f"wardcrf-draft-crash-{os.getpid()}"
    app = App(f"{socket}-first", site.data_dir)
    try:
        app.wait_for("Sign in")
        app.type("clinician")
        app.send("Tab")
        app.type(PASSWORD)
        app.send("Enter")
        app.wait_for(pid)
        app.type(pid)
        app.send("Enter")
        app.wait_for("Next: dose")
        app.send("v")
        app.wait_for("Temperature")
        app.send("Tab", "Tab", "Tab")  # timepoint, dose, time -> the temperature
        app.type("38.2")
        app.send("Tab")
        app.type("96")
        app.send("Tab")  # the pulse is left: kept
        deadline = time.monotonic() + 30
        while (got := _kept(site, pid)) is None or got.fields.get("pulse") != "96":
            assert time.monotonic() < deadline, f"no draft kept:\n{app.screen()}"
            time.sleep(0.1)
        os.kill(app.pid, signal.SIGKILL)  # a crash: nothing more is written
    finally:
        app.close()

    again = App(f"{socket}-again", site.data_dir)
    try:
        again.wait_for("Sign in")
        again.type("clinician")
        again.send("Tab")
        again.type(PASSWORD)
        again.send("Enter")
        again.wait_for("Unsaved work: 1 form")
        again.send("u")
        again.wait_for("Unsaved forms")
        again.send("Enter")
        again.wait_for("Temperature")
        shown = again.screen()
        assert "38.2" in shown and "96" in shown, shown
    finally:
        again.close()
