"""Drafts: the cost of keeping a form's values after each field (wardcrf.drafts.save).

The ward app saves the open form's draft every time a field is completed, so
a save must be cheap next to a person typing. Measured: `drafts.save` on the
encrypted site (permission check, value checks, JSON, one upsert committed
with synchronous=FULL in WAL) against the same work on stdlib ``sqlite3``
(unencrypted, WAL, synchronous=FULL): the same JSON text upserted into the
same table shape in one committed transaction. The two alternate in one loop,
so load on the machine hits both alike; wall and CPU medians and the load
average are reported.

    python bench/bench_drafts.py [--quick]      # or: python bench/run.py --only drafts
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-password-1"


def _fields(i: int) -> dict[str, str]:
    """A vitals form filled one field further each save (what the TUI saves), with a free-text note."""
    values = ["36.8", "88", "20", "95", "128", "82", f"{i} note typed on the ward, in PPE"]
    names = ["temp", "pulse", "resp", "oxysat", "sysbp", "diabp", "note"]
    k = 1 + i % len(names)
    return dict(zip(names[:k], values[:k], strict=True))


def _baseline(root: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(root / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE drafts (user TEXT, form TEXT, context TEXT, fields TEXT, focus TEXT, saved_at TEXT,"
        " saves INTEGER, PRIMARY KEY (user, form, context))"
    )
    return conn


def run(quick: bool = False) -> list[dict]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf import drafts, users
    from wardcrf.site import Site

    n = 200 if quick else 1000
    wall, cpu, bwall, bcpu = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        res = Site.init(root / "site", site="B", device_name="b", admin="admin", password=PASSWORD)
        admin = res.site.unlock("admin", PASSWORD)
        users.add_user(admin, "clinician", "C", "clinician", PASSWORD)
        admin.close()
        s = Site.open(root / "site").unlock("clinician", PASSWORD)
        plain = _baseline(root)
        load_before = os.getloadavg()[0]
        try:
            for i in range(n):
                fields = _fields(i)
                context = f"participant:B-{i % 5:03d}"
                w, c = time.perf_counter(), time.process_time()
                drafts.save(s, "vitals", fields, context=context, focus="pulse")
                wall.append(time.perf_counter() - w)
                cpu.append(time.process_time() - c)
                text = json.dumps(fields, sort_keys=True)
                w, c = time.perf_counter(), time.process_time()
                plain.execute("BEGIN IMMEDIATE")
                plain.execute(
                    "INSERT INTO drafts VALUES (?,?,?,?,?,?,1) ON CONFLICT (user, form, context) DO UPDATE SET"
                    " fields = excluded.fields, focus = excluded.focus, saved_at = excluded.saved_at,"
                    " saves = drafts.saves + 1",
                    ("clinician", "vitals", context, text, "pulse", str(i)),
                )
                plain.execute("COMMIT")
                bwall.append(time.perf_counter() - w)
                bcpu.append(time.process_time() - c)
        finally:
            s.close()
            plain.close()
        load_after = os.getloadavg()[0]
    med = {k: statistics.median(v) * 1000 for k, v in (("w", wall), ("c", cpu), ("bw", bwall), ("bc", bcpu))}
    load = f"load {load_before:.1f} → {load_after:.1f}"
    return [
        {
            "name": f"draft save after a field, wall (n={n}, {load})",
            "value": med["w"],
            "unit": "ms",
            "baseline": med["bw"],
            "ratio": med["w"] / med["bw"],
            "target": "≤ 20 ms (a keystroke is ~100 ms)",
        },
        {
            "name": f"draft save after a field, CPU (n={n})",
            "value": med["c"],
            "unit": "ms",
            "baseline": med["bc"],
            "ratio": med["c"] / med["bc"],
            "target": "",
        },
        {
            "name": "draft save, p95 wall",
            "value": sorted(wall)[int(0.95 * n)] * 1000,
            "unit": "ms",
            "baseline": sorted(bwall)[int(0.95 * n)] * 1000,
            "ratio": sorted(wall)[int(0.95 * n)] / sorted(bwall)[int(0.95 * n)],
            "target": "",
        },
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['name']:58s} {r['value']:8.3f} {r['unit']:2s} baseline {r['baseline']:8.3f}"
            f"  ratio {r['ratio']:6.2f}  target {r['target']}"
        )
