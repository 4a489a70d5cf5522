"""The commit-order replay of a PostgreSQL hub (`db rebuild --check`) against its floor, on a large log.

    python bench/bench_pg_replay.py [--participants N] [--repeat R]     (or: python bench/run.py --only pg_replay)

One PostgreSQL hub (on a throwaway server this bench starts and stops, fsync on) fed a ward's real
bundles: N participants (`generate.generate`: consent with its photographed page and e-signatures,
screening, enrollment, labs, doses with vitals; 27 events each, every one through its projectors) and
one lot's cold chain (`bench_hub_items._hub_with`). Then, alternated in one loop (A B, B A, ...):

- ours: `sync.pgcheck.check_projections`, what `db rebuild --check` runs at such a hub: the database's
  log replayed in the order its bundles were committed (`pgcheck.COMMIT_ORDER`) into temporary copies of
  the projection tables, through the projectors import ran, then compared row by row, in one REPEATABLE
  READ transaction rolled back;
- the floor: the same lines read from the same server in the same order by the same query (a server-side
  cursor, 2,000 rows a round trip, as the replay reads them), each SHA-256'd and parsed as JSON: the
  read, hash and parse work any replay does, and nothing else.

Medians of CPU (this process's: the server's replay work is not in it, so wall is quoted beside it) and
wall, per event; `uptime`'s load before and after. Needs PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "unit"))  # the throwaway server

import pgserver  # noqa: E402
from bench_hub_items import _hub_with  # noqa: E402
from generate import PASSWORD  # noqa: E402
from measure import alternate, loadavg  # noqa: E402


def floor(session: Any) -> int:
    """Read every line of the database's log in commit order (the replay's query and cursor), hash, parse."""
    from wardcrf.sync import pghub
    from wardcrf.sync.pgcheck import COMMIT_ORDER

    store = pghub.open_ledger(session)
    try:
        n = 0
        sha, loads = hashlib.sha256, json.loads
        with store.snapshot():
            cur = store.conn.cursor(name="bench_floor")
            cur.itersize = 2000
            try:
                cur.execute(COMMIT_ORDER)
                for _device, _seq, line, _pos in cur:
                    sha(line.encode()).hexdigest()
                    loads(line)
                    n += 1
            finally:
                cur.close()
        return n
    finally:
        store.close()


def run(
    quick: bool = False, participants: int | None = None, repeat: int | None = None
) -> list[dict[str, Any]]:
    from wardcrf import features

    features.install()
    from wardcrf.sync import pgcheck

    from wardcrf.site import Site

    n = participants or (50 if quick else 1000)
    repeat = repeat or (2 if quick else 4)
    if pgserver.bin_dir() is None:
        return [{"name": "pg replay: no PostgreSQL server binaries (apt-get install postgresql)"}]
    server = pgserver.start(durable=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            hub_dir = _hub_with(Path(tmp), server, n)
            s = Site.open(hub_dir).unlock("admin", PASSWORD)
            try:
                events = floor(s)

                def ours(_: int) -> None:
                    replayed, diffs = pgcheck.check_projections(s)
                    assert replayed == events and not diffs, (replayed, events, diffs[:1])

                pair = alternate(ours, lambda _: floor(s), repeat, per=events)
            finally:
                s.close()
    finally:
        pgserver.stop(server)
    return [
        {
            "name": f"db rebuild --check at a PostgreSQL hub, commit-order replay, {events:,} events"
            f" ({n:,} participants and a lot's cold chain) vs reading, hashing and parsing the same lines in"
            " the same order",
            "value": pair.ours.wall * 1e6,
            "baseline": pair.base.wall * 1e6,
            "ratio": pair.wall_ratio,
            "cpu": pair.ours.cpu * 1e6,
            "cpu_baseline": pair.base.cpu * 1e6,
            "cpu_ratio": pair.cpu_ratio,
            "unit": "µs/event",
            "target": "≤ 4× the floor (issue 19, rebuild)",
            "baseline_name": "read + SHA-256 + JSON parse, same query and cursor",
            "runs": repeat,
            "load": list(pair.load),
        }
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--participants", type=int, default=1000, help="participants at the hub (27 events each)")
    p.add_argument("--repeat", type=int, default=4, help="rounds of each, alternated (medians quoted)")
    p.add_argument("--quick", action="store_true", help="50 participants, 2 rounds")
    a = p.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    load0 = loadavg()
    rows = run(
        quick=a.quick, participants=None if a.quick else a.participants, repeat=None if a.quick else a.repeat
    )
    for r in rows:
        if "unit" not in r:
            print(r["name"])
            continue
        print(
            f"{r['name']}: wall {r['value']:.1f} vs {r['baseline']:.1f} µs/event (×{r['ratio']:.2f}),"
            f" CPU {r['cpu']:.1f} vs {r['cpu_baseline']:.1f} µs/event (×{r['cpu_ratio']:.2f});"
            f" {r['runs']} runs each, load {r['load'][0]:.2f}→{r['load'][1]:.2f} (setup began at {load0:.2f})"
        )
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
