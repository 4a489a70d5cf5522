"""`db rebuild` against its two floors: reading the log, and writing the rows it writes (issue 19).

    python bench/rebuild_floor.py DIR [ROUNDS]      # DIR made by `python bench/rebuild_ab.py setup DIR [EVENTS]`
    python bench/rebuild_floor.py compare DIR OLD_PYTHON NEW_PYTHON [PROCESSES] [ROUNDS]

The issue's target is "rebuild within 4x of the stdlib floor", and `rebuild_ab.py`'s floor is a *reading*
floor: stdlib `sqlite3` reading every line of a plain copy, hashing and parsing it. A rebuild also
*writes*: it empties every projection and derived table and fills them again, in the site's SQLCipher
file, through its value-type triggers and indexes. This bench measures that second floor, so the ratio
can be split into what the storage engine costs for the rows alone and what our Python adds.

One process, one copy of the generated site, three jobs alternated in one loop (the order rotating each
round), CPU and wall medians per event of the log:

- **rebuild**: `projections.rebuild` itself (as `wardcrf db rebuild`), commit included;
- **read floor**: `bench_foundation.read_hash_parse` on a plain copy (what `rebuild_ab.py` divides by);
- **write floor** (`write_floor`): in one transaction on the same SQLCipher store, `DELETE` every table the rebuild
  empties (`projections.existing_tables(indexes=True)`), then `executemany` of exactly the rows the real
  rebuild left in each (read back once before the loop, in primary-key order), commit included. No
  Python per row beyond the driver's own binding: the least any rebuild writing those rows can cost here.
- **stdlib write floor** (`stdlib_write`): the same deletes and inserts by stdlib `sqlite3` into the plain
  (unencrypted) copy, `synchronous=FULL`, one transaction: what the rows cost without SQLCipher's pages.

`compare` runs the same in fresh interpreters of two code trees (each venv's python imports `wardcrf`
from its tree), OLD, NEW, NEW, OLD, ..., and prints each side's medians over its processes.

Each round checks the write floor left every table exactly as the rebuild had it (the same rows), so
the floor cannot time a cheaper job than the one it stands for.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _snapshot(store: Any, tables: list[str]) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every row of each table (its columns, its rows in primary-key order): what the write floor writes back."""
    from wardcrf import projections

    out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for table in tables:
        order = ", ".join(f"[{c}]" for c in projections._pk(store, table))
        cur = store.conn.execute(f"SELECT * FROM [{table}] ORDER BY {order}")
        cols = [d[0] for d in cur.description]
        out[table] = (cols, [tuple(r) for r in cur.fetchall()])
    return out


def _write_rows(conn: Any, snap: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> None:
    for table in snap:
        conn.execute(f"DELETE FROM [{table}]")
    for table, (cols, rows) in snap.items():
        if rows:
            names = ", ".join(f"[{c}]" for c in cols)
            marks = ", ".join("?" for _ in cols)
            conn.executemany(f"INSERT INTO [{table}] ({names}) VALUES ({marks})", rows)


def _write_floor(store: Any, snap: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> None:
    with store.transaction():
        _write_rows(store.conn, snap)


def _stdlib_write_floor(path: Path, snap: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN")
        _write_rows(conn, snap)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def run(source: Path, rounds: int) -> dict[str, Any]:
    from bench_foundation import plain_copy, read_hash_parse
    from generate import PASSWORD

    from wardcrf import eventlog, features, projections
    from wardcrf.site import Site

    features.install()
    root = Path(tempfile.mkdtemp(prefix="bench-rebuild-floor-"))
    load0 = os.getloadavg()[0]
    try:
        shutil.copytree(source / "site", root / "site")
        s = Site.open(root / "site").unlock("clinician", PASSWORD)
        try:
            total = eventlog.count(s.store)
            plain = plain_copy(s.store, root / "plain.db")
            tables = projections.existing_tables(s.store, indexes=True)
            projections.rebuild(s.store)
            snap = _snapshot(s.store, tables)
            rows = sum(len(r) for _c, r in snap.values())
            jobs: dict[str, Callable[[], Any]] = {
                "rebuild": lambda: projections.rebuild(s.store),
                "read_floor": lambda: read_hash_parse(plain, "pos"),
                "write_floor": lambda: _write_floor(s.store, snap),
                "stdlib_write": lambda: _stdlib_write_floor(plain, snap),
            }
            got: dict[str, list[tuple[float, float]]] = {k: [] for k in jobs}
            order = list(jobs)
            for r in range(rounds):
                for name in order[r % len(order) :] + order[: r % len(order)]:
                    got[name].append(_timed(jobs[name]))
                    if name == "write_floor" and _snapshot(s.store, tables) != snap:
                        raise SystemExit("the write floor did not leave the rebuild's rows")
        finally:
            s.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {
        k: (statistics.median(c for c, _w in v) / total, statistics.median(w for _c, w in v) / total)
        for k, v in got.items()
    }
    return {
        "events": total,
        "rows": rows,
        "tables": len(tables),
        "load": (load0, os.getloadavg()[0]),
        "cpu_us": {k: round(c * 1e6, 1) for k, (c, _w) in med.items()},
        "wall_us": {k: round(w * 1e6, 1) for k, (_c, w) in med.items()},
        "rounds_cpu_us": {k: [round(c / total * 1e6, 1) for c, _w in v] for k, v in got.items()},
    }


def compare(source: Path, old: str, new: str, processes: int, rounds: int) -> None:
    from measure import two_trees

    got, _loads = two_trees(old, new, processes, lambda python, _p: [python, __file__, "once", str(source), str(rounds)])
    for side, runs in got.items():
        cpu = {k: statistics.median(r["cpu_us"][k] for r in runs) for k in runs[0]["cpu_us"]}
        wall = {k: statistics.median(r["wall_us"][k] for r in runs) for k in runs[0]["wall_us"]}
        same = [r["cpu_us"]["rebuild"] / (r["cpu_us"]["read_floor"] + r["cpu_us"]["stdlib_write"]) for r in runs]
        read = [r["cpu_us"]["rebuild"] / r["cpu_us"]["read_floor"] for r in runs]
        print(
            f"{side}: rebuild CPU {cpu['rebuild']:.1f} µs/event (wall {wall['rebuild']:.1f}); read floor"
            f" {cpu['read_floor']:.1f}, stdlib write {cpu['stdlib_write']:.1f}, SQLCipher write"
            f" {cpu['write_floor']:.1f}; x read floor {', '.join(f'{x:.2f}' for x in read)};"
            f" x (read + stdlib write) {', '.join(f'{x:.2f}' for x in same)}"
        )


def main() -> None:
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "compare":
        n = [int(x) for x in a[4:6]]
        compare(Path(a[1]), a[2], a[3], n[0] if n else 3, n[1] if len(n) > 1 else 3)
        return
    if a and a[0] == "once":
        print(json.dumps(run(Path(a[1]), int(a[2]))))
        return
    if not a or a[0].startswith("-"):
        raise SystemExit(__doc__)
    res = run(Path(a[0]), int(a[1]) if len(a) > 1 else 5)
    cpu, wall = res["cpu_us"], res["wall_us"]
    floor = cpu["read_floor"]
    print(
        f"db rebuild @ {res['events']:,} events ({res['rows']:,} rows in {res['tables']} tables); "
        f"1-min load {res['load'][0]:.1f} -> {res['load'][1]:.1f}"
    )
    for k in ("rebuild", "read_floor", "write_floor", "stdlib_write"):
        print(
            f"  {k:12} CPU {cpu[k]:7.1f} µs/event (wall {wall[k]:7.1f}) = {cpu[k] / floor:5.2f}x the read floor;"
            f" rounds {res['rounds_cpu_us'][k]}"
        )
    for w in ("write_floor", "stdlib_write"):
        both = cpu["read_floor"] + cpu[w]
        print(f"  read floor + {w} {both:.1f} µs/event; rebuild = {cpu['rebuild'] / both:.2f}x their sum")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
