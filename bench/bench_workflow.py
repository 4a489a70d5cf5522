"""Workflow benchmarks: submitting forms, reading a participant, the ward worklist, the demo.

Baselines run in the same process on stdlib ``sqlite3`` (unencrypted, WAL,
synchronous=FULL): one committed row insert for a form submission, a
``SELECT`` of the same participant's rows for the read models. The ratio says
what validation, rules, hashing, encryption and projections cost on top.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-password-1"


def _stdlib(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, subject TEXT, form TEXT, data TEXT)")
    conn.execute("CREATE INDEX records_subject ON records (subject)")
    return conn


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def run(quick: bool = False) -> list[dict]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf import workflow
    from wardcrf.site import Site
    from wardcrf.workflow import demo, status

    n_submit = 50 if quick else 300
    n_read = 20 if quick else 100
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # -- demo seed (7 participants, ~400 events, 8 users: key derivations dominate)
        t = time.perf_counter()
        result = demo.seed(tmp_path / "demo", PASSWORD)
        seed_s = time.perf_counter() - t
        t = time.perf_counter()
        Site.init(tmp_path / "bare", site="B", device_name="b", admin="admin", password=PASSWORD)
        init_s = time.perf_counter() - t
        rows.append(
            dict(
                name=f"demo seed ({result.events} events) vs bare site init",
                value=seed_s,
                unit="s",
                baseline=init_s,
                target="≤ 15 s (runs in tests)",
            )
        )

        site = Site.open(result.data_dir)
        s = site.unlock("clinician", PASSWORD)
        pid = result.participants[-1]
        std = _stdlib(tmp_path / "std.db")
        raw = {"temp": "37.1", "pulse": "88", "resp": "20", "oxysat": "95"}

        # -- one vitals submission, committed (validation + rules + event + projections)
        submit = []
        for _ in range(n_submit):
            t = time.perf_counter()
            workflow.submit(s, "vitals", raw, participant=pid)
            submit.append(time.perf_counter() - t)
        base = []
        for i in range(n_submit):
            data = json.dumps({"temp": 37.1, "pulse": 88, "resp": 20, "oxysat": 95, "i": i})
            t = time.perf_counter()
            std.execute("BEGIN")
            std.execute("INSERT INTO records (subject, form, data) VALUES (?,?,?)", (pid, "vitals", data))
            std.execute("COMMIT")
            base.append(time.perf_counter() - t)
        rows.append(
            dict(
                name="submit vitals (validated, committed), median",
                value=_median_ms(submit),
                unit="ms",
                baseline=_median_ms(base),
                target="≤ 50 ms",
            )
        )
        rows.append(
            dict(
                name="submit vitals, p95",
                value=sorted(submit)[int(0.95 * len(submit))] * 1000,
                unit="ms",
                baseline=sorted(base)[int(0.95 * len(base))] * 1000,
                target="≤ 100 ms",
            )
        )

        # -- participant summary (state, doses, deviations, AEs, sign-off)
        show = []
        for _ in range(n_read):
            t = time.perf_counter()
            status.summary(s.store, pid)
            show.append(time.perf_counter() - t)
        base_read = []
        for _ in range(n_read):
            t = time.perf_counter()
            std.execute("SELECT data FROM records WHERE subject = ?", (pid,)).fetchall()
            base_read.append(time.perf_counter() - t)
        rows.append(
            dict(
                name=f"participant show ({n_submit} extra vitals)",
                value=_median_ms(show),
                unit="ms",
                baseline=_median_ms(base_read),
                target="≤ 100 ms",
            )
        )

        # -- today: the ward's worklist over all participants
        today = []
        for _ in range(n_read):
            t = time.perf_counter()
            workflow.today(s)
            today.append(time.perf_counter() - t)
        base_all = []
        for _ in range(n_read):
            t = time.perf_counter()
            std.execute("SELECT subject, data FROM records").fetchall()
            base_all.append(time.perf_counter() - t)
        rows.append(
            dict(
                name=f"today worklist ({len(result.participants)} participants)",
                value=_median_ms(today),
                unit="ms",
                baseline=_median_ms(base_all),
                target="≤ 250 ms",
            )
        )
        s.close()
        std.close()
    for r in rows:
        r["ratio"] = r["value"] / r["baseline"] if r["baseline"] else float("inf")
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
