"""Hub-side logger readings: what re-deriving `cc_readings` from synced evidence costs.

A ward imports a year of one-minute logger readings (525,600; a month with
--quick), exports its bundle, and a hub imports it; the hub parses the file
again and indexes the readings in the bundle's transaction. Figures:

- the hub's re-derivation alone (`readings.reindex_all` on the hub's store),
  against the ward's own import of the same file (parse, checks, index,
  event) measured in the same run: the ratio says what the hub pays per file
  relative to what the ward already paid;
- the whole hub import of that bundle (verify + apply + re-derive), against
  the ward's import.

Run: python bench/bench_hub_data.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_coldchain import MINUTES_PER_YEAR, year_file
from measure import seconds_row

PW = "bench-password-1"


def run(quick: bool = False) -> list[dict[str, Any]]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf.sync import hub, registry, ward

    from wardcrf import users
    from wardcrf.coldchain import readings, services
    from wardcrf.site import Site

    n = MINUTES_PER_YEAR // 12 if quick else MINUTES_PER_YEAR
    raw = year_file(n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        w = Site.init(root / "ward", site="BENCH", device_name="lap", admin="admin", password=PW).site
        h = hub.init(root / "hub", admin="admin", password=PW).site
        ws, hs = w.unlock("admin", PW), h.unlock("admin", PW)
        try:
            registry.register_device(hs, registry.own_card(ws.store))
            registry.set_hub(ws, registry.own_card(hs.store))
            users.add_user(ws, "pharm", "Bench Pharmacist", "pharmacist", PW)
        finally:
            ws.close()
        p = Site.open(w.data_dir).unlock("pharm", PW)
        try:
            services.add_unit(p, "FRZ-1", name="freezer", location="bench")
            path = root / "year.txt"
            path.write_bytes(raw)
            t0 = time.perf_counter()
            services.import_logger(p, path, "FRZ-1")
            ward_import = time.perf_counter() - t0
        finally:
            p.close()
        ws = Site.open(w.data_dir).unlock("admin", PW)
        usb = root / "usb"
        usb.mkdir()
        try:
            (bundle_file,) = ward.export(ws, usb).files
        finally:
            ws.close()
        try:
            t0 = time.perf_counter()
            res = hub.import_file(hs, bundle_file)
            hub_import = time.perf_counter() - t0
            assert res.ok, res.outcome.message
            assert hs.store.scalar("SELECT count(*) FROM cc_readings") == n
            t0 = time.perf_counter()
            with hs.store.transaction():
                added = readings.reindex_all(hs.store, hs.store)
            rederive = time.perf_counter() - t0
            assert added == n
        finally:
            hs.close()
    label = f"{n:,} readings"
    return [
        seconds_row(
            f"hub re-derives readings of a logger file ({label})",
            rederive,
            ward_import,
            target="≤ 1.0 x the ward's import of the same file",
        ),
        seconds_row(
            f"hub import of the bundle carrying it (verify, apply, re-derive; {label})",
            hub_import,
            ward_import,
            target="same order as the ward's import",
        ),
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['name']}: {row['value']} {row['unit']} (ward import {row['baseline']} s, ratio {row['ratio']})"
        )
