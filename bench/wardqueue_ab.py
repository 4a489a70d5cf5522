"""The ward queue's `derive` alone (what `db rebuild` does last), two code trees alternated process by process.

    python bench/wardqueue_ab.py compare DIR OLD_PYTHON NEW_PYTHON [ROUNDS]
    python bench/wardqueue_ab.py once DIR                      # one measured process (what compare runs)

DIR is a site made by `rebuild_ab.py setup DIR [EVENTS]`. Each measured process
is a fresh interpreter of one tree (its venv's python) that copies the site,
runs `projections.rebuild` once (the process is then as warm as a rebuild
leaves it: the protocol read, its expressions parsed), then times
`wardqueue.derive` three times, each in its own transaction, CPU and wall.
It prints the medians per event and a digest of the `ward_queue` and
`counters` rows it left: `compare` runs OLD, NEW, NEW, OLD, ... and refuses
to report when the two trees' rows differ.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def once(source: Path) -> dict[str, object]:
    from generate import PASSWORD
    from measure import once as timed

    from wardcrf import eventlog, features, projections
    from wardcrf.site import Site
    from wardcrf.workflow import wardqueue

    features.install()
    root = Path(tempfile.mkdtemp(prefix="bench-wardqueue-ab-"))
    try:
        shutil.copytree(source / "site", root / "site")
        s = Site.open(root / "site").unlock("clinician", PASSWORD)
        try:
            total = eventlog.count(s.store)
            projections.rebuild(s.store)
            samples = []
            for _ in range(3):
                with s.store.transaction():
                    sample, rows = timed(lambda: wardqueue.derive(s.store, s.store))
                samples.append(sample)
            queue = s.store.execute("SELECT * FROM ward_queue ORDER BY participant").fetchall()
            counters = s.store.execute("SELECT * FROM counters ORDER BY name").fetchall()
        finally:
            s.close()
        digest = hashlib.sha256(json.dumps([[list(r) for r in queue], [list(r) for r in counters]]).encode())
        return {
            "events": total,
            "participants": rows,
            "cpu": statistics.median(x.cpu for x in samples) / total,
            "wall": statistics.median(x.wall for x in samples) / total,
            "each_cpu": [x.cpu / total for x in samples],
            "rows": digest.hexdigest(),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare(source: Path, old: str, new: str, rounds: int) -> None:
    from measure import two_trees

    got, loads = two_trees(old, new, rounds, lambda python, _r: [python, __file__, "once", str(source)])
    digests = {str(x["rows"]) for runs in got.values() for x in runs}
    if len(digests) != 1:
        raise SystemExit(f"the two trees derived different rows: {sorted(digests)}")
    first = got["old"][0]
    print(f"the ward queue's derive @ {first['events']:,} events, {first['participants']:,} participants, "
          f"{rounds} processes each, alternated; 1-min load {min(loads):.1f}-{max(loads):.1f}; rows identical")  # fmt: skip
    for side in ("old", "new"):
        runs = got[side]
        cpu = [float(str(x["cpu"])) * 1e6 for x in runs]
        wall = [float(str(x["wall"])) * 1e6 for x in runs]
        print(
            f"  {side}: CPU {statistics.median(cpu):.1f} µs/event ({', '.join(f'{x:.1f}' for x in cpu)}),"
            f" wall {statistics.median(wall):.1f} µs/event ({', '.join(f'{x:.1f}' for x in wall)})"
        )


def main() -> None:
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "once":
        print(json.dumps(once(Path(a[1]))))
    elif len(a) >= 4 and a[0] == "compare":
        compare(Path(a[1]), a[2], a[3], int(a[4]) if len(a) > 4 else 3)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
