"""Hub import of real record bundles vs `sha256sum`, two code trees alternated process by process (issue 19).

    python bench/import_ab.py compare OLD_PYTHON NEW_PYTHON [--rounds 5] [--engine sqlcipher|postgresql]
                                      [--devices 10] [--events 2000] [--workers 1]
    python bench/import_ab.py once ENGINE DEVICES EVENTS ORDER WORKERS [DSN POSTMASTER_PID]   (one measured run)

    python bench/import_ab.py workers PYTHON [--rounds 3] [--devices 8] [--events 2000] [--counts 1,2,4]

With --workers N the bundles are shared among N importing processes started at once (each signed
in before the clock starts; the CPU is theirs summed, and the server's); OLD and NEW may be the
same python, to compare 1, 2 and 4 workers of one tree.

Each measured process is a fresh interpreter of one tree (its own venv's python: the
tree it imports `wardcrf` from) that makes a hub (`hub.init`, on SQLCipher or on a fresh
PostgreSQL database), registers DEVICES ward laptops and seals one bundle per laptop of
EVENTS events (`bench_sync._chain`: consents with their three e-signatures, then vitals
records), then, in ORDER, runs `sha256sum` over the same bundle files and imports them as
`wardcrf hub import` does (`hub.import_files`: verification, chain check, apply, receipts).
Only the import and the `sha256sum` are timed: this process's CPU for the import (and, on
PostgreSQL, the server's: the postmaster, its reaped backends and live helpers), the child's
CPU for `sha256sum`. `compare` runs OLD, NEW, NEW, OLD, ... (and flips which of sha256sum
and the import goes first each round), then prints each side's medians, the CPU ratio to
`sha256sum` and the load. PostgreSQL: a throwaway server with fsync on (tests/unit/pgserver.py).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "unit"))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _server_cpu(pid: int) -> float:
    from bench_hub_engines import _children, _proc_times

    own, reaped, _ = _proc_times(pid)
    live = 0.0
    for child in _children(pid):
        try:
            live += _proc_times(child)[0]
        except OSError:
            continue
    return own + reaped + live


def once(
    engine: str, devices: int, events: int, order: str, dsn: str = "", pid: int = 0, workers: int = 1
) -> dict[str, float]:
    from bench_sync import PASSWORD, seal_bundles
    from wardcrf.sync import hub

    from wardcrf import features

    features.install()
    root = Path(tempfile.mkdtemp(prefix="bench-import-ab-"))
    try:
        res = hub.init(root / "hub", admin="admin", password=PASSWORD, database=dsn or None)
        hs = res.site.unlock("admin", PASSWORD)
        try:
            files, _laptops = seal_bundles(root, [hs], devices, events)
            out: dict[str, float] = {"events": float(devices * events)}
            if workers > 1:
                hs.close()
                out.update(_in_workers(root, files, workers, pid))
                steps: list[str] = [x for x in order.split(",") if x == "sha"]
            else:
                steps = order.split(",")
            for step in steps:
                if step == "sha":
                    c0, w0 = _children_cpu(), time.perf_counter()
                    subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True)
                    out["sha_cpu"], out["sha_wall"] = _children_cpu() - c0, time.perf_counter() - w0
                else:
                    s0 = _server_cpu(pid) if pid else 0.0
                    c0, w0 = time.process_time(), time.perf_counter()
                    for item in hub.import_files(hs, files):
                        assert item.result is not None and item.result.outcome.status == "applied", (
                            item.refused
                        )
                    c1, w1 = time.process_time(), time.perf_counter()
                    time.sleep(0.2)  # the server's helpers finish what the commits started
                    s1 = _server_cpu(pid) if pid else 0.0
                    out["cpu"], out["wall"], out["server_cpu"] = c1 - c0 + (s1 - s0), w1 - w0, s1 - s0
            return out
        finally:
            if workers == 1:
                hs.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _in_workers(root: Path, files: list[Path], workers: int, pid: int) -> dict[str, float]:
    """`workers` processes, each signed in to the hub before the clock starts, importing every
    `workers`-th bundle at once (as several `hub import` runs or `hub serve` workers do)."""
    go = root / "go"
    procs = []
    for w in range(workers):
        part = [str(f) for f in files[w::workers]]
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "part", str(root / "hub"), str(go), *part],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 600
    while len(list(root.glob("ready-*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.05)
    s0 = _server_cpu(pid) if pid else 0.0
    w0 = time.perf_counter()
    go.write_text("go")
    cpu = 0.0
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"an importing process failed ({p.returncode})")
        cpu += float(stdout.strip().splitlines()[-1])
    w1 = time.perf_counter()
    time.sleep(0.2)
    s1 = _server_cpu(pid) if pid else 0.0
    return {"cpu": cpu + (s1 - s0), "wall": w1 - w0, "server_cpu": s1 - s0}


def part(hub_dir: Path, go: Path, files: list[Path]) -> float:
    """One importing process: sign in, say ready, wait for the start, import; its import's CPU."""
    from bench_sync import PASSWORD
    from wardcrf.sync import hub

    from wardcrf import features
    from wardcrf.site import Site

    features.install()
    hs = Site.open(hub_dir).unlock("admin", PASSWORD)
    try:
        (go.parent / f"ready-{os.getpid()}").write_text("")
        while not go.exists():
            time.sleep(0.01)
        c0 = time.process_time()
        for item in hub.import_files(hs, files):
            assert item.result is not None and item.result.outcome.status == "applied", item.refused
        return time.process_time() - c0
    finally:
        hs.close()


def compare(
    old: str, new: str, rounds: int, engine: str, devices: int, events: int, workers: int = 1
) -> None:
    server = None
    if engine == "postgresql":
        import pgserver

        server = pgserver.start(durable=True)
    try:
        from measure import two_trees

        def argv(python: str, r: int) -> list[str]:
            order = "sha,import" if r % 2 == 0 else "import,sha"
            args = [python, __file__, "once", engine, str(devices), str(events), order, str(workers)]
            if server is not None:
                pid = (server.root / "data" / "postmaster.pid").read_text().split()[0]
                args += [server.new_database(), pid]
            return args

        got, loads = two_trees(old, new, rounds, argv)
        n = devices * events
        print(
            f"hub import, {engine}, {workers} importing process(es), {devices} x {events:,} events,"
            f" {rounds} runs each, alternated; "
            f"1-min load {min(loads):.1f}-{max(loads):.1f}"
        )
        for side in ("old", "new"):
            runs = got[side]
            ratio = [x["cpu"] / x["sha_cpu"] for x in runs]
            print(
                f"  {side}: CPU {statistics.median(x['cpu'] for x in runs) / n * 1e6:.1f} µs/event"
                f" (server {statistics.median(x['server_cpu'] for x in runs) / n * 1e6:.1f}),"
                f" wall {statistics.median(x['wall'] for x in runs) / n * 1e6:.1f} µs/event,"
                f" sha256sum CPU {statistics.median(x['sha_cpu'] for x in runs) / n * 1e6:.2f} µs/event;"
                f" CPU ratio median {statistics.median(ratio):.1f} ({', '.join(f'{x:.1f}' for x in ratio)})"
            )
    finally:
        if server is not None:
            import pgserver

            pgserver.stop(server)


def workers_sweep(python: str, rounds: int, devices: int, events: int, counts: list[int]) -> None:
    """One tree's import on PostgreSQL with each number of importing processes, in rotating order per round."""
    import pgserver

    server = pgserver.start(durable=True)
    try:
        pid = (server.root / "data" / "postmaster.pid").read_text().split()[0]
        got: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
        loads = [os.getloadavg()[0]]
        for r in range(rounds):
            for n in counts[r % len(counts) :] + counts[: r % len(counts)]:
                args = [python, __file__, "once", "postgresql", str(devices), str(events), "import", str(n)]
                res = subprocess.run(
                    [*args, server.new_database(), pid], check=True, capture_output=True, text=True, cwd="/"
                )
                got[n].append(json.loads(res.stdout.strip().splitlines()[-1]))
                loads.append(os.getloadavg()[0])
                print(n, r, got[n][-1], f"load {loads[-1]:.1f}", file=sys.stderr, flush=True)
        total = devices * events
        base = statistics.median(x["wall"] for x in got[counts[0]])
        print(
            f"hub import on PostgreSQL, {devices} x {events:,} events, importing processes {counts},"
            f" {rounds} rounds in rotating order; 1-min load {min(loads):.1f}-{max(loads):.1f}; {os.cpu_count()} cores"
        )
        for n in counts:
            wall = statistics.median(x["wall"] for x in got[n])
            print(
                f"  {n} process(es): wall {wall / total * 1e6:.1f} µs/event"
                f" (throughput {base / wall:.2f}x {counts[0]} process),"
                f" CPU {statistics.median(x['cpu'] for x in got[n]) / total * 1e6:.1f} µs/event"
                f" of which server {statistics.median(x['server_cpu'] for x in got[n]) / total * 1e6:.1f}"
            )
    finally:
        pgserver.stop(server)


def main() -> None:
    a = sys.argv[1:]
    if a and a[0] == "workers":
        opts = dict(zip(a[2::2], a[3::2], strict=False))
        workers_sweep(
            a[1],
            int(opts.get("--rounds", 3)),
            int(opts.get("--devices", 8)),
            int(opts.get("--events", 2000)),
            [int(x) for x in opts.get("--counts", "1,2,4").split(",")],
        )
        return
    if a and a[0] == "part":
        print(part(Path(a[1]), Path(a[2]), [Path(x) for x in a[3:]]))
        return
    if a and a[0] == "once":
        engine, devices, events, order, workers = a[1], int(a[2]), int(a[3]), a[4], int(a[5])
        dsn, pid = (a[6], int(a[7])) if len(a) > 7 else ("", 0)
        print(json.dumps(once(engine, devices, events, order, dsn, pid, workers)))
        return
    if len(a) < 3 or a[0] != "compare":
        raise SystemExit(__doc__)
    opts = dict(zip(a[3::2], a[4::2], strict=False))
    compare(
        a[1],
        a[2],
        int(opts.get("--rounds", 5)),
        opts.get("--engine", "sqlcipher"),
        int(opts.get("--devices", 10)),
        int(opts.get("--events", 2000)),
        int(opts.get("--workers", 1)),
    )


if __name__ == "__main__":
    main()
