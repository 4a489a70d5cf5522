"""Cold-chain screens: what each one asks of the domain, on a busy pharmacy's site.

A site with one freezer, L lots of 10 kits (each received and stored, the
signatures left pending so the home screen lists them all), and 30 days of
5-minute freezer readings with an excursion every 10 days. Measured, as
medians: the cold-chain home's three read models (`unit_status`,
`kit_states`, `pending_signatures`), one kit's custody view (chain + dose
gate), and a week of readings for the chart. Baseline, in the same run:
plain sqlite3 (unencrypted, in memory) reading the same number of readings
and kit rows, the least any screen must do. Targets: home ≤ 0.5 s (as the
dashboard), custody ≤ 0.2 s, chart data ≤ 0.3 s.

Run: python bench/bench_tui_coldchain.py [--quick]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

PW = "bench-password-1"


def _median(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _site(tmp: Path, lots: int) -> Any:
    from wardcrf import users
    from wardcrf.coldchain import samples, services
    from wardcrf.site import Site

    Site.init(
        tmp / "site", site="BENCH", device_name="lap", admin="admin", password=PW, zone_name="Asia/Shanghai"
    )
    admin = Site.open(tmp / "site").unlock("admin", PW)
    for role in ("pharmacist", "investigator", "coordinator"):
        users.add_user(admin, role, role.title(), role, PW)
    admin.close()
    ph = Site.open(tmp / "site").unlock("pharmacist", PW)
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    start = datetime(2020, 3, 1, 8, 0)
    for n in range(lots):
        kits = [f"K{n:03d}{i:02d}" for i in range(10)]
        at = start + timedelta(hours=n)
        services.add_lot(
            ph, f"LOT{n:03d}", product="p", expiry="2021-12-31", release_ref="r", kits=kits, quantity=10
        )
        services.receive_shipment(
            ph,
            shipper_id=f"SH{n}",
            kits=kits,
            received_at=at.isoformat(),
            to_location="pharmacy",
            delivered_by_user="coordinator",
            dry_ice=True,
            container_intact=True,
            product_frozen=True,
            logger_serial="LG",
        )
        services.record_handover(
            ph,
            kits=kits,
            at=(at + timedelta(minutes=15)).isoformat(),
            from_location="pharmacy",
            to_location="FRZ-1",
            from_user="pharmacist",
            to_user="investigator",
        )
    rows = []
    t = start - timedelta(minutes=30)
    i = 0
    while t <= start + timedelta(days=30):
        hot = (i % 2880) < 4  # 20 minutes every 10 days
        rows.append((t, -13.0 if hot else -20.0 + (i % 6) * 0.1))
        t += timedelta(minutes=5)
        i += 1
    path = tmp / "frz.txt"
    path.write_bytes(samples.fridgetag(rows))
    services.import_logger(ph, path, "FRZ-1")
    return ph


def _baseline(readings: int, kits: int) -> float:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE r (unit TEXT, t INTEGER, c REAL, PRIMARY KEY (unit, t))")
    db.execute("CREATE TABLE k (kit TEXT PRIMARY KEY, lot TEXT)")
    db.executemany("INSERT INTO r VALUES ('FRZ-1', ?, -20.0)", ((i * 300,) for i in range(readings)))
    db.executemany("INSERT INTO k VALUES (?, 'L')", ((f"K{i}",) for i in range(kits)))

    def read() -> None:
        db.execute("SELECT t, c FROM r WHERE unit = 'FRZ-1' ORDER BY t").fetchall()
        db.execute("SELECT kit, lot FROM k ORDER BY kit").fetchall()

    return _median(read, 7)


def run(quick: bool = False) -> list[dict[str, Any]]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf.coldchain import reports

    lots = 5 if quick else 20
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        ph = _site(Path(tmp), lots)
        try:
            store = ph.store
            last = int(store.scalar("SELECT max(t) FROM cc_readings"))
            week = int(store.scalar("SELECT count(*) FROM cc_readings WHERE t >= ?", (last - 7 * 86400,)))
            kits = lots * 10

            def home() -> None:
                reports.unit_status(store)
                reports.kit_states(store)
                reports.pending_signatures(store)

            timings = {
                "coldchain home (unit status, kit states, pending signatures)": (_median(home, repeats), 0.5),
                "coldchain custody view of one kit (chain + dose gate)": (
                    _median(lambda: reports.kit_report(ph, "K00000", last), repeats),
                    0.2,
                ),
                "coldchain chart data, 7 days": (
                    _median(
                        lambda: reports.unit_readings(store, "FRZ-1", since=last - 7 * 86400, until=last),
                        repeats,
                    ),
                    0.3,
                ),
            }
            base = _baseline(week, kits)
        finally:
            ph.close()
    return [
        {
            "name": f"{name} ({kits} kits, {week} readings/week)",
            "value": round(value, 4),
            "unit": "s",
            "baseline": round(base, 5),
            "ratio": round(value / base, 1) if base else None,
            "target": target,
        }
        for name, (value, target) in timings.items()
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['name']}: {row['value']} s (plain sqlite3 read {row['baseline']} s, ×{row['ratio']}; "
            f"target ≤ {row['target']} s)"
        )
