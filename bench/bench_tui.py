"""TUI benchmarks: start-up to the login screen, process start to the dashboard, form save.

Each figure is measured in fresh subprocesses (what a ward user waits for),
ours and its baseline alternated in one loop, wall and CPU medians:

- start-up: `wardcrf`'s app to a drawn login screen vs a minimal Textual app
  (one Static) started the same way: the cost of our imports and layout.
- dashboard: from the child process's first line (before any import) to the
  first participants drawn on the dashboard, sign-in included (the password
  typed by the pilot, the scrypt key slot, SQLCipher), on a site of
  1,000 real participants (`generate.py`). Baseline, from the same starting
  point: a minimal Textual app that derives a key with `hashlib.scrypt` at
  the key slot's parameters (the sign-in's own cost), opens a plain copy of
  the same database with stdlib sqlite3 and fills a DataTable with the first
  screenful of participants. CPU is the child process's whole CPU time.
- form save: one vitals record saved as the form screen saves it
  (`Ward.call(workflow.submit, ...)`: validation, clinical rules under the
  write lock, event, projections, commit) on real fields of real, enrolled
  participants, vs stdlib sqlite3 committing one insert of the same values
  as JSON (WAL, synchronous=FULL).

    python bench/bench_tui.py [--quick]
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A child's starting point: after the standard library's few imports, before any of ours or Textual's.
T0_IMPORT = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Pair, Sample, alternate, loadavg, median, once, row  # noqa: E402

PASSWORD = "bench-password-1"
PARTICIPANTS = 1000
FIRST_SCREEN = 60  # the dashboard's first screenful (workflow.status.FIRST_SCREEN)
HERE = Path(__file__).resolve()

TARGETS = {"start": 0.6, "dashboard": 0.5, "save": 0.050}


# -- child processes --------------------------------------------------------------------
def _child_startup(data_dir: str) -> None:
    t0 = time.perf_counter()
    from wardcrf.screens.app import make_app
    from wardcrf.screens.login import LoginScreen

    app = make_app(data_dir)

    async def auto(pilot) -> None:
        while not isinstance(pilot.app.screen, LoginScreen) or not pilot.app.screen.is_mounted:
            await pilot.pause(0.005)
        await pilot.pause()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        pilot.app.exit()

    app.run(headless=True, auto_pilot=auto, size=(80, 24))


def _child_startup_baseline() -> None:
    t0 = time.perf_counter()
    from textual.app import App
    from textual.widgets import Static

    class Minimal(App[None]):
        def compose(self):
            yield Static("hello")

    async def auto(pilot) -> None:
        await pilot.pause()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        pilot.app.exit()

    Minimal().run(headless=True, auto_pilot=auto, size=(80, 24))


def _child_dashboard(data_dir: str, t0: float) -> None:
    from textual.widgets import DataTable
    from wardcrf.screens import app as app_mod
    from wardcrf.screens import dashboard as dash_mod
    from wardcrf.screens.app import make_app
    from wardcrf.screens.dashboard import DashboardScreen

    app = make_app(data_dir, user="admin")
    arrived: list[float] = []
    on_screen: list[float] = []
    original = app_mod.WardApp._signed_in

    def timed(self, ward):  # the unlocked session arrives here
        arrived.append(time.perf_counter())
        return original(self, ward)

    app_mod.WardApp._signed_in = timed  # type: ignore[method-assign]
    add_rows = dash_mod.DashboardScreen._add_participants

    def first_rows(self, *args):  # the first participants drawn: after the next refresh
        add_rows(self, *args)
        if not on_screen:
            self.call_after_refresh(lambda: on_screen.append(time.perf_counter()))

    dash_mod.DashboardScreen._add_participants = first_rows  # type: ignore[method-assign]

    async def auto(pilot) -> None:
        await pilot.pause()
        await pilot.press(*PASSWORD, "enter")
        while True:
            screen = pilot.app.screen
            if (
                isinstance(screen, DashboardScreen)
                and screen.query_one("#participants", DataTable).row_count == PARTICIPANTS
            ):
                break
            await pilot.pause(0.002)
        done = time.perf_counter()
        first = on_screen[0] if on_screen else done  # drawn at the latest when all are listed
        print(json.dumps({"seconds": first - t0, "all": done - t0, "after_unlock": first - arrived[0]}))
        pilot.app.exit()

    app.run(headless=True, auto_pilot=auto, size=(120, 40))


def _child_dashboard_baseline(db: str, t0: float) -> None:
    import hashlib

    from textual.app import App
    from textual.widgets import DataTable

    from wardcrf import keyslots

    class Minimal(App[None]):
        def compose(self):
            yield DataTable()

        def on_mount(self) -> None:
            hashlib.scrypt(
                PASSWORD.encode(),
                salt=b"\0" * 16,
                n=keyslots.SCRYPT_N,
                r=keyslots.SCRYPT_R,
                p=keyslots.SCRYPT_P,
                maxmem=256 * 1024 * 1024,
                dklen=32,
            )
            table = self.query_one(DataTable)
            table.add_columns("id", "enrolled", "sex", "status")
            conn = sqlite3.connect(db)
            table.add_rows(
                conn.execute(
                    "SELECT id, enrolled_on, sex, eligible FROM participants ORDER BY number LIMIT ?",
                    (FIRST_SCREEN,),
                ).fetchall()
            )

    async def auto(pilot) -> None:
        await pilot.pause()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        pilot.app.exit()

    Minimal().run(headless=True, auto_pilot=auto, size=(120, 40))


# -- set-up -----------------------------------------------------------------------------
def _make_site(root: Path, participants: int) -> Path:
    """A site of `participants` real participants (`generate.py`: 23 records each, the last 40
    in treatment now), and a plain copy of it for the baselines."""
    from bench_foundation import plain_copy
    from generate import EVENTS_PER_PARTICIPANT, generate, new_site

    data_dir = root / "site"
    s = new_site(data_dir)
    try:
        generate(s, participants * EVENTS_PER_PARTICIPANT, batch=500)
        s.store.checkpoint()
        plain_copy(s.store, root / "plain.db")
    finally:
        s.close()
    return data_dir


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TEXTUAL_ANIMATIONS": "none"},
    )
    return json.loads([x for x in out.stdout.splitlines() if x.startswith("{")][-1])


def _alternate_children(ours: list[str], base: list[str], runs: int, key: str = "seconds") -> Pair:
    """Child processes in turn; wall = the time each reports from its first line, CPU = its whole CPU."""
    load0 = loadavg()
    a: list[Sample] = []
    b: list[Sample] = []
    for i in range(runs):
        for args, acc in ((ours, a), (base, b)) if i % 2 == 0 else ((base, b), (ours, a)):
            sample, reported = once(lambda args=args: _child(args))
            acc.append(Sample(reported[key], sample.cpu))
    return Pair(median(a), median(b), runs, (load0, loadavg()))


def _form_save(root: Path, data_dir: Path, n: int) -> Pair:
    from wardcrf.screens.ward import Ward

    from wardcrf import workflow
    from wardcrf.site import Site

    site = Site.open(data_dir)
    ward = Ward(site, site.unlock("clinician", PASSWORD))
    raw = {"timepoint": "unscheduled", "temp": "37.2", "pulse": "88", "resp": "18", "oxysat": "96"}
    conn = sqlite3.connect(root / "plain-save.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, participant TEXT, form TEXT, data TEXT)")

    def ours(i: int) -> None:
        pid = f"BENCH-{1 + i % PARTICIPANTS:05d}"
        ward.call(
            workflow.submit,
            "vitals",
            {**raw, "time": f"2020-05-01T{i % 24:02d}:00:00+08:00"},
            participant=pid,
        )

    def base(i: int) -> None:
        conn.execute(
            "INSERT INTO r (participant, form, data) VALUES (?, 'vitals', ?)",
            (f"BENCH-{1 + i % PARTICIPANTS:05d}", json.dumps(raw)),
        )

    try:
        return alternate(ours, base, n)
    finally:
        ward.close()
        conn.close()


def run(quick: bool = False) -> list[dict]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    runs = 5 if quick else 9
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = _make_site(root, PARTICIPANTS)
        pair = _alternate_children(["startup", str(data_dir)], ["startup-baseline"], runs)
        rows.append(
            row(
                "start-up to login screen (from the child's first line)",
                pair,
                unit="s",
                target=f"≤ {TARGETS['start']} s",
                baseline_name="minimal Textual app, one Static",
            )
        )
        pair = _alternate_children(
            ["dashboard", str(data_dir)], ["dashboard-baseline", str(root / "plain.db")], runs
        )
        rows.append(
            row(
                f"process start → sign-in → first participants on the dashboard ({PARTICIPANTS:,} participants)",
                pair,
                unit="s",
                target=f"≤ {TARGETS['dashboard']} s after the key derivation",
                baseline_name="Textual app: scrypt at the slot's cost + stdlib sqlite3 + DataTable of the first screen",
            )
        )
        pair = _form_save(root, data_dir, 30 if quick else 100)
        rows.append(
            row(
                "form save: vitals through Ward.call → workflow.submit (validated, rules, committed)",
                pair,
                unit="ms",
                scale=1000,
                target=f"≤ {TARGETS['save'] * 1000:.0f} ms",
                baseline_name="stdlib sqlite3: one committed insert of the same values as JSON",
            )
        )
        pair = alternate(
            lambda _: subprocess.run(
                [sys.executable, str(HERE), "startup", str(data_dir)], capture_output=True, check=True
            ),
            lambda _: subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True),
            runs,
        )
        rows.append(
            row(
                "start-up incl. interpreter and exit (whole process)",
                pair,
                unit="s",
                baseline_name="python -c pass",
            )
        )
    return rows


if __name__ == "__main__":
    T0 = T0_IMPORT
    if len(sys.argv) > 1 and sys.argv[1] == "startup":
        _child_startup(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "startup-baseline":
        _child_startup_baseline()
    elif len(sys.argv) > 1 and sys.argv[1] == "dashboard":
        _child_dashboard(sys.argv[2], T0)
    elif len(sys.argv) > 1 and sys.argv[1] == "dashboard-baseline":
        _child_dashboard_baseline(sys.argv[2], T0)
    else:
        for r in run(quick="--quick" in sys.argv):
            print(
                f"{r['name']:55s} {r['value']:8.3f} {r['unit']:2s} baseline {r['baseline']:8.3f}"
                f"  ratio {r['ratio']:5.2f}  target {r['target']}"
            )
