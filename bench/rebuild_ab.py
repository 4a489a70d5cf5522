"""`db rebuild` and the CSV export against their stdlib floors, two code trees alternated process by process.

    python bench/rebuild_ab.py setup DIR [EVENTS]            # one generated ward site (bench/generate.py)
    python bench/rebuild_ab.py compare DIR OLD_PYTHON NEW_PYTHON [ROUNDS]
    python bench/rebuild_ab.py once DIR                      # one measured process (what compare runs)

`setup` generates a ward site of about EVENTS real records (default 10,000) once.
Each measured process is a fresh interpreter of one tree (its venv's python) that
copies the site, then alternates in one loop, three times each, exactly as
`bench_sweep` does: `projections.rebuild` with the read + SHA-256 + JSON-parse floor
(stdlib `sqlite3` on a plain copy of the same rows), and `export_csv` with its floor
(per-form CSV, the audit-trail rows, SHA-256). `compare` runs OLD, NEW, NEW, OLD, ...
and prints each side's CPU medians per event, the CPU ratio to the floor, the wall medians, and the load.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def setup(target: Path, events: int) -> None:
    from generate import generate, new_site

    from wardcrf import features

    features.install()
    s = new_site(target / "site")
    try:
        generate(s, events, batch=500, in_treatment=40)
        s.store.checkpoint()
    finally:
        s.close()


def once(source: Path) -> dict[str, float]:
    from bench_exports import csv_floor
    from bench_foundation import plain_copy, read_hash_parse
    from generate import PASSWORD
    from measure import alternate

    from wardcrf import eventlog, features, projections
    from wardcrf.exports.csv_export import export_csv
    from wardcrf.exports.dataset import Dataset
    from wardcrf.site import Site

    features.install()
    root = Path(tempfile.mkdtemp(prefix="bench-rebuild-ab-"))
    try:
        shutil.copytree(source / "site", root / "site")
        s = Site.open(root / "site").unlock("clinician", PASSWORD)
        try:
            total = eventlog.count(s.store)
            plain = plain_copy(s.store, root / "plain.db")

            def rebuild(_: int) -> None:
                assert projections.rebuild(s.store) == total

            reb = alternate(rebuild, lambda _: read_hash_parse(plain, "pos"), 3, per=total)
            ds = Dataset(s.store)

            def export(_: int) -> None:
                out = root / "csv"
                if out.exists():
                    shutil.rmtree(out)
                export_csv(ds, out)

            csv = alternate(export, lambda _: csv_floor(plain, root / "floor"), 3, per=total)
        finally:
            s.close()
        return {
            "events": total,
            "rebuild_cpu": reb.ours.cpu,
            "rebuild_floor_cpu": reb.base.cpu,
            "csv_cpu": csv.ours.cpu,
            "csv_floor_cpu": csv.base.cpu,
            "rebuild_wall": reb.ours.wall,
            "rebuild_floor_wall": reb.base.wall,
            "csv_wall": csv.ours.wall,
            "csv_floor_wall": csv.base.wall,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare(source: Path, old: str, new: str, rounds: int) -> None:
    from measure import two_trees

    got, loads = two_trees(old, new, rounds, lambda python, _r: [python, __file__, "once", str(source)])
    n = got["old"][0]["events"]
    print(f"db rebuild and CSV export @ {n:,.0f} events, {rounds} processes each, alternated; "
          f"1-min load {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    for side in ("old", "new"):
        runs = got[side]
        for job in ("rebuild", "csv"):
            ratio = [x[f"{job}_cpu"] / x[f"{job}_floor_cpu"] for x in runs]
            print(
                f"  {side} {job}: CPU {statistics.median(x[f'{job}_cpu'] for x in runs) * 1e6:.1f} µs/event,"
                f" floor {statistics.median(x[f'{job}_floor_cpu'] for x in runs) * 1e6:.1f} µs/event;"
                f" CPU ratio median {statistics.median(ratio):.2f} ({', '.join(f'{x:.2f}' for x in ratio)});"
                f" wall {statistics.median(x[f'{job}_wall'] for x in runs) * 1e6:.1f} µs/event,"
                f" floor {statistics.median(x[f'{job}_floor_wall'] for x in runs) * 1e6:.1f} µs/event"
            )


def main() -> None:
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "setup":
        setup(Path(a[1]), int(a[2]) if len(a) > 2 else 10_000)
    elif len(a) == 2 and a[0] == "once":
        print(json.dumps(once(Path(a[1]))))
    elif len(a) >= 4 and a[0] == "compare":
        compare(Path(a[1]), a[2], a[3], int(a[4]) if len(a) > 4 else 3)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
