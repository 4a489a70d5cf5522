"""Cold-chain benchmark: a year of one-minute readings parsed, checked and summarized.

Target (issue 5): ≤ 10 s for ≈525,600 readings, import + excursion check +
summary. Baseline, measured in the same run: Python's `csv` module merely
splitting the same file into rows (the least any parser must do), so the
ratio says how much our validation, zone handling and analysis cost on top.

Run: python bench/bench_coldchain.py [--quick]
"""

from __future__ import annotations

import csv
import io
import statistics
import sys
import time
from datetime import datetime, timedelta

from measure import seconds_row

from wardcrf import features
from wardcrf.coldchain import analysis, loggers

MINUTES_PER_YEAR = 365 * 24 * 60


def year_file(n: int) -> bytes:
    """Elitech-style log: -20 °C with a daily wobble and one 20-minute excursion a month."""
    start = datetime(2020, 1, 1)
    out = ["Elitech RC-4", "Serial No: EL-BENCH", "No.\tTime\tTemperature(°C)"]
    step = timedelta(minutes=1)
    for i in range(n):
        t = -20.0 + ((i % 1440) - 720) / 720.0
        if i % 43200 < 20:
            t = -12.5
        out.append(f"{i + 1}\t{start + i * step:%Y-%m-%d %H:%M:%S}\t{t:.1f}")
    return ("\r\n".join(out) + "\r\n").encode()


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _full_import(raw: bytes, n: int) -> tuple[float, float]:
    """(seconds for `coldchain import-logger` through the service, seconds for plain sqlite3 inserts)."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from wardcrf import users
    from wardcrf.coldchain import services
    from wardcrf.site import Site

    with tempfile.TemporaryDirectory() as tmp:
        pw = "bench-password-1"
        Site.init(Path(tmp) / "site", site="BENCH", device_name="lap", admin="admin", password=pw)
        admin = Site.open(Path(tmp) / "site").unlock("admin", pw)
        try:
            users.add_user(admin, "pharm", "Bench Pharmacist", "pharmacist", pw)
        finally:
            admin.close()
        s = Site.open(Path(tmp) / "site").unlock("pharm", pw)
        try:
            services.add_unit(s, "FRZ-1", name="freezer", location="bench")
            path = Path(tmp) / "year.txt"
            path.write_bytes(raw)
            t0 = time.perf_counter()
            result = services.import_logger(s, path, "FRZ-1")
            ours = time.perf_counter() - t0
            assert result.readings == n
        finally:
            s.close()
        log = loggers.parse(raw, "Asia/Shanghai")
        con = sqlite3.connect(Path(tmp) / "plain.db")
        con.execute("CREATE TABLE r (unit TEXT, t INTEGER, temp REAL, PRIMARY KEY (unit, t)) WITHOUT ROWID")
        t0 = time.perf_counter()
        with con:
            con.executemany("INSERT INTO r VALUES ('FRZ-1', ?, ?)", zip(log.times, log.temps, strict=True))
        base = time.perf_counter() - t0
        con.close()
    return ours, base


def run(quick: bool) -> list[dict]:
    features.install()  # a benchmark is a program: it installs the features before it opens a site
    n = 60 * 24 * 30 if quick else MINUTES_PER_YEAR
    raw = year_file(n)
    repeats = 1 if quick else 3

    def ours() -> None:
        log = loggers.parse(raw, "Asia/Shanghai")
        s = analysis.summarize(log.times, log.temps, log.interval, -25.0, -15.0)
        assert s.readings == n and s.excursions

    def baseline() -> None:
        rows = list(csv.reader(io.StringIO(raw.decode()), delimiter="\t"))
        assert len(rows) > n

    ours_s = _median(ours, repeats)
    base_s = _median(baseline, repeats)
    full_s, insert_s = _full_import(raw, n)
    return [
        seconds_row(
            f"coldchain import-logger into the encrypted site ({n} readings, stored + checked)",
            full_s,
            insert_s,
            target="≤ 10 s",
        ),
        seconds_row(f"coldchain import+check+summary ({n} readings)", ours_s, base_s, target="≤ 10 s"),
        {
            "name": "coldchain readings per second",
            "value": round(n / ours_s),
            "unit": "readings/s",
            "baseline": round(n / base_s),
            "ratio": round(base_s / ours_s, 2),
            "target": "≥ 52,560/s",
        },
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
