"""TUI benchmarks: start-up to the login screen, login to dashboard, form save.

Each figure is measured in fresh subprocesses (what a ward user waits for),
median of several runs, beside a same-run baseline:

- start-up: `wardcrf`'s app to a drawn login screen vs. a minimal Textual app
  (one Static) started the same way — the cost of our imports and layout.
- dashboard: from the unlocked session arriving (after the key derivation)
  to the first participants drawn on the dashboard, on a site with 1,000
  participants (the target, ≤ 0.5 s), and to all 1,000 listed (the table
  fills in batches after the first screenful; the other panels load after
  the participants). Baseline: a minimal Textual app, from process start,
  filling a DataTable with 1,000 rows read with stdlib sqlite3. The login
  screen loads the dashboard's modules while the password is typed (here
  typed by the pilot in a few milliseconds, so part of that work overlaps
  the key derivation, as it would on the ward).
- form save: one record saved through the screens' service path (`Ward.call`
  → domain service → encrypted store), vs. a stdlib sqlite3 insert of the
  same JSON with synchronous=FULL.

    python bench/bench_tui.py [--quick]
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-password-1"
PARTICIPANTS = 1000
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


def _child_dashboard(data_dir: str) -> None:
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
        print(json.dumps({"seconds": first - arrived[0], "all": done - arrived[0]}))
        pilot.app.exit()

    app.run(headless=True, auto_pilot=auto, size=(120, 40))


def _child_dashboard_baseline(db: str) -> None:
    t0 = time.perf_counter()
    from textual.app import App
    from textual.widgets import DataTable

    class Minimal(App[None]):
        def compose(self):
            yield DataTable()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("id", "data")
            conn = sqlite3.connect(db)
            table.add_rows(conn.execute("SELECT id, data FROM p ORDER BY id").fetchall())

    async def auto(pilot) -> None:
        await pilot.pause()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        pilot.app.exit()

    Minimal().run(headless=True, auto_pilot=auto, size=(120, 40))


# -- set-up -----------------------------------------------------------------------------
def _make_site(root: Path, participants: int) -> Path:
    """A site with `participants` consented, screened and enrolled participants.

    Written as plain records (the form hooks build the participant
    projection), not through the consent service: its three e-signatures
    each cost a key derivation, which would make set-up take minutes. The
    dashboard reads the same projection either way.
    """
    from wardcrf import records
    from wardcrf.site import Site

    data_dir = root / "site"
    init = Site.init(data_dir, site="BENCH", device_name="bench", admin="admin", password=PASSWORD)
    s = init.site.unlock("admin", PASSWORD)
    try:
        with s.store.transaction():
            for i in range(1, participants + 1):
                subject = f"participant:BENCH-{i:03d}"
                records.submit(
                    s,
                    "consent",
                    {
                        "consenter": "participant",
                        "form_version": "1.0",
                        "time": "2020-03-01T08:00:00+08:00",
                        "witness_1": "a",
                        "witness_2": "b",
                        "photos": [],
                    },
                    subject=subject,
                )
                records.submit(
                    s,
                    "screening",
                    {
                        "date": "2020-03-02",
                        "dob": "1960-01-01",
                        "sex": "F",
                        "pcr_confirmed": True,
                        "severity": "severe",
                        "age": 60,
                        "eligible": True,
                        "failed_criteria": [],
                    },
                    subject=subject,
                )
                records.submit(s, "enrollment", {"date": f"2020-03-{10 + i % 5:02d}"}, subject=subject)
        s.store.checkpoint()
    finally:
        s.close()
    return data_dir


def _median_child(args: list[str], runs: int, key: str = "seconds") -> float:
    values = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, str(HERE), *args],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TEXTUAL_ANIMATIONS": "none"},
        )
        line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
        values.append(json.loads(line)[key])
    return statistics.median(values)


def _median_children(args: list[str], runs: int, keys: tuple[str, ...]) -> tuple[float, ...]:
    """Like `_median_child`, for several figures printed by the same runs."""
    values: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, str(HERE), *args],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TEXTUAL_ANIMATIONS": "none"},
        )
        line = json.loads([x for x in out.stdout.splitlines() if x.startswith("{")][-1])
        for k in keys:
            values[k].append(line[k])
    return tuple(statistics.median(values[k]) for k in keys)


def _row(name: str, value: float, baseline: float, target: float | None, unit: str = "s") -> dict:
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": value / baseline if baseline else float("nan"),
        "target": f"≤ {target} {unit}" if target is not None else "",
    }


def _form_save(data_dir: Path, n: int) -> tuple[float, float]:
    from wardcrf.screens.ward import Ward

    from wardcrf import records
    from wardcrf.site import Site

    site = Site.open(data_dir)
    ward = Ward(site, site.unlock("admin", PASSWORD))
    data = {
        "temperature": 37.2,
        "heart_rate": 88,
        "resp_rate": 18,
        "sbp": 121,
        "dbp": 79,
        "spo2": 96,
        "o2_support": "none",
        "time": "09:00",
    }
    times = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            ward.call(
                lambda s, i=i: records.submit(
                    s, "vitals", data, subject=f"participant:BENCH-{1 + i % 50:04d}"
                )
            )
            times.append(time.perf_counter() - t0)
    finally:
        ward.close()
    conn = sqlite3.connect(data_dir.parent / "plain-save.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, data TEXT)")
    base = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("INSERT INTO r (data) VALUES (?)", (json.dumps(data),))
        base.append(time.perf_counter() - t0)
    conn.close()
    return statistics.median(times), statistics.median(base)


def run(quick: bool = False) -> list[dict]:
    runs = 5 if quick else 9
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = _make_site(root, PARTICIPANTS)
        plain = root / "plain.db"
        conn = sqlite3.connect(plain)
        conn.execute("CREATE TABLE p (id TEXT, data TEXT)")
        conn.executemany(
            "INSERT INTO p VALUES (?, ?)",
            [(f"BENCH-{i:04d}", json.dumps({"n": i})) for i in range(PARTICIPANTS)],
        )
        conn.commit()
        conn.close()
        start = _median_child(["startup", str(data_dir)], runs)
        start_base = _median_child(["startup-baseline"], runs)
        rows.append(_row("start-up to login screen (in-process)", start, start_base, TARGETS["start"]))
        dash, dash_all = _median_children(["dashboard", str(data_dir)], runs, ("seconds", "all"))
        dash_base = _median_child(["dashboard-baseline", str(plain)], runs)
        target = TARGETS["dashboard"]
        rows.append(
            _row(
                f"dashboard with participants on screen after unlock ({PARTICIPANTS} participants)",
                dash,
                dash_base,
                target,
            )
        )
        rows.append(_row(f"dashboard, all {PARTICIPANTS} participants listed", dash_all, dash_base, None))
        save, save_base = _form_save(data_dir, 30 if quick else 100)
        rows.append(_row("form save (Ward.call → records.submit)", save * 1000, save_base * 1000, 50, "ms"))
        wall = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, str(HERE), "startup", str(data_dir)], capture_output=True, check=True
            )
            wall.append(time.perf_counter() - t0)
        py = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
            py.append(time.perf_counter() - t0)
        rows.append(
            _row(
                "start-up incl. interpreter and exit (process wall)",
                statistics.median(wall),
                statistics.median(py),
                None,
            )
        )
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "startup":
        _child_startup(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "startup-baseline":
        _child_startup_baseline()
    elif len(sys.argv) > 1 and sys.argv[1] == "dashboard":
        _child_dashboard(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "dashboard-baseline":
        _child_dashboard_baseline(sys.argv[2])
    else:
        for r in run(quick="--quick" in sys.argv):
            print(
                f"{r['name']:55s} {r['value']:8.3f} {r['unit']:2s} baseline {r['baseline']:8.3f}"
                f"  ratio {r['ratio']:5.2f}  target {r['target']}"
            )
