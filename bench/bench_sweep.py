"""The size sweep: what each whole-database job, and each thing that should not grow, costs at 10k, 100k, 1M events.

    python bench/run.py --only sweep                       # 10,000 / 100,000 / 1,000,000 events
    python bench/run.py --only sweep --quick               # 5,000 / 50,000
    python bench/run.py --only sweep --sizes 10000 100000  # any sizes, smallest first

One ward site grows through the sizes (`generate.py`: real records through
the real append path, 27 events a participant, 40 participants in treatment
now); at each size, every operation is alternated in one loop with its
stdlib baseline on the same rows (a plain copy made with `sqlcipher_export`):

| operation | should grow with | baseline |
|---|---|---|
| audit verify | the events (flat µs/event) | read, SHA-256, json-parse the same lines |
| db rebuild | the events (flat µs/event) | the same read + hash + parse floor |
| export csv / odm | the events (flat µs/event) | records to per-form CSV + audit-trail CSV + SHA-256 |
| incremental export (10 new events) | the 10 events: flat | stdlib: the 10 lines by index, tar, age, fsync |
| dashboard first screen (`workflow.ward_page`) | nothing: flat | stdlib: the first 60 participants |
| sync panel (`sync.ward.status`), every event unreceipted | nothing: flat | stdlib: this device's chain head |
| single append + commit (a vitals record) | nothing: flat | stdlib: canonical line, SHA-256, two rows, commit |

After the sizes, one "growth" row per operation compares the CPU cost per
unit at the largest size with the smallest: above 1.5x is flagged GROWS.

Generating is the sweep's set-up, timed and printed: about 150-200 µs of CPU
per event on the 2-core build machine (1,000,000 events: 3 minutes of CPU,
more wall under load). Set WARDCRF_BENCH_FIXTURES=DIR to keep each size's
generated site in DIR and copy it on the next run instead of generating it
again; a fixture is named after a hash of wardcrf's sources, schema and the
generator, so a code change generates afresh.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_exports import csv_floor
from bench_foundation import StdlibAppender, plain_copy, read_hash_parse, stdlib_log
from bench_sync import incremental_pair, set_test_hub
from generate import EVENTS_PER_PARTICIPANT, PASSWORD, generate, new_site, participant_records
from measure import Pair, alternate, once, row, single_row

from wardcrf import eventlog, features, projections, records, workflow
from wardcrf.exports.csv_export import export_csv
from wardcrf.exports.dataset import Dataset
from wardcrf.exports.odm import export_odm
from wardcrf.site import Site

GROWTH_LIMIT = 1.5
FLAT = ("incremental export", "dashboard first screen", "sync panel", "single append")


def _code_key() -> str:
    """A hash of everything that decides what a generated site holds."""
    import wardcrf

    h = hashlib.sha256()
    roots = [Path(wardcrf.__file__).parent]
    for extra in ("sync", "photos"):
        roots.append(Path(wardcrf.__file__).parent.parent / extra)
    for root in roots:
        for f in sorted(root.rglob("*")):
            if f.suffix in (".py", ".sql", ".toml") and f.is_file():
                h.update(f.read_bytes())
    h.update((Path(__file__).parent / "generate.py").read_bytes())
    return h.hexdigest()[:16]


class Sweep:
    """The growing site, its sessions, and the fixture cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "site"
        self.clinician = new_site(self.data)
        self.admin = Site.open(self.data).unlock("admin", PASSWORD)
        self.hub_keys = set_test_hub(self.admin)
        self.people = 0
        cache = os.environ.get("WARDCRF_BENCH_FIXTURES")
        self.cache = Path(cache) / _code_key() if cache else None

    def close(self) -> None:
        self.clinician.close()
        self.admin.close()

    def reopen(self) -> None:
        self.clinician = Site.open(self.data).unlock("clinician", PASSWORD)
        self.admin = Site.open(self.data).unlock("admin", PASSWORD)

    def grow_to(self, events: int) -> dict[str, Any]:
        """Append participants until the log holds about `events` events; a set-up row."""
        fixture = self.cache / f"{events}" if self.cache else None
        if fixture is not None and (fixture / "done").exists():
            self.close()
            shutil.rmtree(self.data)
            sample, _ = once(lambda: shutil.copytree(fixture / "site", self.data))
            self.reopen()
            self.people = int((fixture / "done").read_text())
            self.hub_keys = _hub_keys(fixture)
            return single_row(
                f"set-up: copy the {events:,}-event fixture", sample, unit="s", note="WARDCRF_BENCH_FIXTURES"
            )
        have = eventlog.count(self.clinician.store)
        sample, (people, written) = once(
            lambda: generate(
                self.clinician,
                max(EVENTS_PER_PARTICIPANT, events - have),
                start=self.people,
                batch=500,
                in_treatment=40 if self.people == 0 else 0,
            )
        )
        self.people += people
        self.clinician.store.checkpoint()
        if fixture is not None:
            self.close()
            if fixture.exists():
                shutil.rmtree(fixture)
            fixture.mkdir(parents=True)
            shutil.copytree(self.data, fixture / "site")
            _save_hub_keys(fixture, self.hub_keys)
            (fixture / "done").write_text(str(self.people))
            self.reopen()
        return single_row(
            f"set-up: generate {written:,} events ({people:,} participants) to reach {events:,}",
            sample,
            unit="µs/event",
            scale=1e6 / max(written, 1),
            note="set-up, real append path",
        )


def _save_hub_keys(fixture: Path, keys: Any) -> None:
    import pickle

    (fixture / "hub_keys.pickle").write_bytes(pickle.dumps(keys))


def _hub_keys(fixture: Path) -> Any:
    import pickle

    return pickle.loads((fixture / "hub_keys.pickle").read_bytes())  # our own file, written above


def _measure_size(sw: Sweep, size: int, quick: bool) -> dict[str, tuple[Pair, str, float]]:
    """{operation: (pair, unit, scale)} at the site's current size."""
    s, admin = sw.clinician, sw.admin
    total = eventlog.count(s.store)
    root = sw.root / f"at-{size}"
    root.mkdir()
    s.store.checkpoint()
    plain = plain_copy(s.store, root / "plain.db")
    heavy = 3 if total <= 150_000 else 1
    out: dict[str, tuple[Pair, str, float]] = {}

    def verify(_: int) -> None:
        n, problems = eventlog.verify_chains(s.store)
        assert n == total and not problems, problems[:3]

    out["audit verify"] = (
        alternate(verify, lambda _: read_hash_parse(plain), heavy, per=total),
        "µs/event",
        1e6,
    )

    def rebuild(_: int) -> None:
        assert projections.rebuild(s.store) == total

    out["db rebuild"] = (
        alternate(rebuild, lambda _: read_hash_parse(plain, "pos"), heavy, per=total),
        "µs/event",
        1e6,
    )
    ds = Dataset(s.store)

    def fresh(path: Path) -> Path:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        return path

    floor = root / "floor"
    out["export csv"] = (
        alternate(
            lambda _: export_csv(ds, fresh(root / "csv")), lambda _: csv_floor(plain, floor), heavy, per=total
        ),
        "µs/event",
        1e6,
    )
    out["export odm"] = (
        alternate(
            lambda _: export_odm(ds, fresh(root / "trial.xml")),
            lambda _: csv_floor(plain, floor),
            heavy,
            per=total,
        ),
        "µs/event",
        1e6,
    )
    out["incremental export"] = (incremental_pair(admin, s, root, sw.hub_keys, reps=5), "ms", 1e3)

    std = sqlite3.connect(plain)

    def first_screen(_: int) -> None:
        # What the dashboard waits for before its first screen: the first page of the ward list
        # and its totals (`ward_page`); a build without it lists everyone (`list_participants`).
        if hasattr(workflow, "ward_page"):
            assert workflow.ward_page(s)["rows"]
        else:
            assert workflow.list_participants(s)

    out["dashboard first screen"] = (
        alternate(
            first_screen,
            lambda _: std.execute("SELECT * FROM participants ORDER BY number LIMIT 60").fetchall(),
            5 if total > 150_000 else 10,
        ),
        "ms",
        1e3,
    )
    from wardcrf.sync import ward

    def panel(_: int) -> None:
        status = ward.status(admin)
        assert status["events_pending"] > 0

    out["sync panel"] = (
        alternate(
            panel,
            lambda _: std.execute(
                "SELECT seq FROM chain_heads WHERE device = ?", (admin.ctx.device,)
            ).fetchone(),
            5 if total > 150_000 else 10,
        ),
        "ms",
        1e3,
    )
    std.close()

    appender_db = stdlib_log(root / "append.db")
    appender = StdlibAppender(appender_db)
    vitals = {**next(d for f, d in participant_records(0) if f == "vitals"), "timepoint": "unscheduled"}

    def ours_append(i: int) -> None:
        records.submit(s, "vitals", vitals, subject=f"participant:BENCH-{1 + i % 50:05d}")

    def base_append(i: int) -> None:
        appender_db.execute("BEGIN")
        appender.append("vitals", vitals, f"participant:BENCH-{1 + i % 50:05d}")
        appender_db.execute("COMMIT")

    out["single append"] = (alternate(ours_append, base_append, 20 if quick else 50), "ms", 1e3)
    appender_db.close()
    shutil.rmtree(root)
    return out


BASELINES = {
    "audit verify": "stdlib: read, SHA-256, json-parse the same lines",
    "db rebuild": "stdlib: read, SHA-256, json-parse the same lines",
    "export csv": "stdlib: per-form CSV + audit-trail CSV + SHA-256",
    "export odm": "stdlib: per-form CSV + audit-trail CSV + SHA-256",
    "incremental export": "stdlib: 10 lines by index, tar, age, fsync",
    "dashboard first screen": "stdlib: first 60 participants",
    "sync panel": "stdlib: the device's chain head",
    "single append": "stdlib: canonical line, SHA-256, 2 rows, commit",
}


def run(
    quick: bool = False, sizes: list[int] | None = None, on_row: Callable[[dict], None] | None = None
) -> list[dict]:
    features.install()  # a benchmark is a program: it installs the features before it opens a site
    sizes = sorted(sizes or ([5_000, 50_000] if quick else [10_000, 100_000, 1_000_000]))
    rows: list[dict] = []
    by_op: dict[str, list[tuple[int, Pair, str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        sw = Sweep(Path(tmp))
        try:
            for size in sizes:
                rows.append(sw.grow_to(size))
                total = eventlog.count(sw.clinician.store)
                for op, (pair, unit, scale) in _measure_size(sw, size, quick).items():
                    r = row(
                        f"{op} @ {total:,} events",
                        pair,
                        unit=unit,
                        scale=scale,
                        baseline_name=BASELINES[op],
                    )
                    rows.append(r)
                    if on_row:
                        on_row(r)
                    by_op.setdefault(op, []).append((total, pair, unit, scale))
        finally:
            sw.close()
    for op, points in by_op.items():
        (n0, p0, unit, scale), (n1, p1, _u, _s) = points[0], points[-1]
        growth = p1.ours.cpu / p0.ours.cpu if p0.ours.cpu else float("nan")
        kind = "flat per call" if op in FLAT else "flat per event"
        flag = "GROWS" if growth > GROWTH_LIMIT else "ok"
        rows.append(
            {
                "name": f"growth {op}: CPU {unit} at {n1:,} vs {n0:,} events ({kind}) — {flag}",
                "value": p1.ours.cpu * scale,
                "unit": unit,
                "baseline": p0.ours.cpu * scale,
                "ratio": growth,
                "target": f"≤ {GROWTH_LIMIT}x",
                "baseline_name": f"same at {n0:,} events",
                "flag": flag,
            }
        )
    return rows


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(r)
