"""Where the whole-database jobs spend their time: cProfile of each on one generated site.

    python bench/profile_jobs.py [EVENTS] [--top N] [--only rebuild export verify import]

Profiles, on a ward site of about EVENTS real records (`generate.py`, default
30,000): `db rebuild` (`projections.rebuild`), the CSV export with its
audit trail (`export_csv`), the full `audit verify` chain check
(`eventlog.verify_chains`), and a hub import of 10 devices' bundles of
consents, signatures and vitals (`hub.import_files`, as `wardcrf hub import`).
Prints each job's CPU per event and its top functions by own time and by
cumulative time. A profiler's figures are inflated by its own overhead: it
says WHERE the time goes; `bench/run.py` says how much (against baselines).
Functions are timed in CPU time (the process's), so shares hold whatever the
machine's load.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

JOBS = ("rebuild", "export", "verify", "import")


def profile(name: str, fn: Callable[[], Any], per: int, top: int) -> None:
    # CPU time, not cProfile's default wall clock: on the shared machine the wall clock charges
    # each function with the neighbours' time, and shares from two runs could not be compared.
    prof = cProfile.Profile(time.process_time)
    t0 = time.process_time()
    prof.enable()
    fn()
    prof.disable()
    cpu = time.process_time() - t0
    print(f"\n=== {name}: {cpu:.2f} s CPU under the profiler, {cpu / per * 1e6:.1f} µs/event ({per:,} events)")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(top)
        body = out.getvalue()
        print(f"--- by {key}")
        print(body[body.find("   ncalls") :].rstrip())


def main() -> None:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("events", nargs="?", type=int, default=30_000)
    ap.add_argument("--top", type=int, default=18)
    ap.add_argument("--only", nargs="*", choices=JOBS, default=list(JOBS))
    args = ap.parse_args()
    from generate import generate, new_site

    from wardcrf import eventlog, projections

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        root = Path(tmp)
        s = new_site(root / "site")
        try:
            generate(s, args.events, batch=500)
            s.store.checkpoint()
            total = eventlog.count(s.store)
            if "rebuild" in args.only:
                profile("db rebuild", lambda: projections.rebuild(s.store), total, args.top)
            if "export" in args.only:
                from wardcrf.exports.csv_export import export_csv
                from wardcrf.exports.dataset import Dataset

                def export() -> None:
                    out = root / "csv"
                    if out.exists():
                        shutil.rmtree(out)
                    export_csv(Dataset(s.store), out)

                profile("export csv (with audit_trail.csv)", export, total, args.top)
            if "verify" in args.only:
                profile("audit verify (chains)", lambda: eventlog.verify_chains(s.store), total, args.top)
        finally:
            s.close()
        if "import" in args.only:
            _profile_import(root, args.events, args.top)


def _profile_import(root: Path, events: int, top: int) -> None:
    from bench_sync import _chain, _hub, _manifest, _register
    from wardcrf.sync import bundle, hub

    from wardcrf import devicekeys

    _site, hs = _hub(root / "hub")
    try:
        keys_of = devicekeys.load(hs.store, hs.ctx.device)
        assert keys_of is not None
        devices = 10
        files = []
        for i in range(devices):
            keys = devicekeys.generate(f"PROF{i:04d}")
            _register(hs, keys, "WUH01")
            lines = _chain(keys.device, "WUH01", events // devices)
            manifest = _manifest(keys, "WUH01", lines, [], [keys_of.age_recipient])
            name, cipher, sig = bundle.seal(manifest, lines, {}, keys.sign_secret)
            (root / name).write_bytes(cipher)
            (root / (name + ".minisig")).write_bytes(sig)
            files.append(root / name)

        def importing() -> None:
            for item in hub.import_files(hs, files):
                assert item.result is not None and item.result.outcome.status == "applied", item.refused

        profile(f"hub import ({devices} devices)", importing, devices * (events // devices), top)
    finally:
        hs.close()


if __name__ == "__main__":
    main()
