"""Why the hub import's cost per event grows with the hub: the same next bundles into hubs of two sizes.

    python bench/import_growth.py build DIR DEVICES EVENTS [--next 3] [--next-events 2000] [--engine sqlcipher]
    python bench/import_growth.py profile DIR [--top 40] [--out FILE]
    python bench/import_growth.py time DIR [DIR...] [--rounds 3] [--old OTHER_TREE/.venv/bin/python]

`build` makes a hub that has imported DEVICES x EVENTS events (`import_ab`'s bundles:
`bench_sync._chain`, one bundle per ward laptop), then seals the next bundles (new laptops,
registered at the hub now) and keeps them beside it, unimported. Build a big hub once: every
`profile` or `time` run works on a copy of DIR/hub (the file is copied, so every run starts
from the same bytes), imports DIR/next's bundles with `hub.import_files`, and throws the copy away.

`profile` runs that import under cProfile on the CPU clock (as `profile_jobs.py` does: on a
shared machine the wall clock charges a function for its neighbours) and prints the functions
by own time and by cumulative time. Compare two hubs' output function by function: what grows
with the hub is what costs more per bundle in the big one.

`time` imports the next bundles into a copy of each DIR in turn, alternated round by round,
each in a fresh interpreter (with `--old`, also by another tree's python: OLD and NEW alternated);
the first next bundle goes in untimed (what a process pays once), then the rest are timed: CPU and
wall per event, the bytes the process wrote per event (`wchar`: WAL frames, checkpoints), the load.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "unit"))


def _seal(root: Path, hs: Any, prefix: str, devices: int, events: int) -> list[Path]:
    """`bench_sync.seal_bundles`, with a device prefix so the next bundles' laptops are new ones."""
    from bench_sync import seal_bundles

    return seal_bundles(root, [hs], devices, events, prefix)[0]


def _import(hs: Any, files: list[Path]) -> None:
    from wardcrf.sync import hub

    for item in hub.import_files(hs, files):
        assert item.result is not None and item.result.outcome.status == "applied", item.refused


def build(out: Path, devices: int, events: int, nxt: int, next_events: int, engine: str) -> None:
    from import_floor import _hub

    from wardcrf import features

    features.install()
    dsn = ""
    if engine == "postgresql":
        raise SystemExit("build: SQLCipher only here (a PostgreSQL hub lives in its server)")
    out.mkdir(parents=True)
    hs = _hub(out / "hub", dsn)
    try:
        batch = 10  # seal and import in batches: the sealed files of 1M events need not all exist at once
        for start in range(0, devices, batch):
            tmp = out / "tmp"
            files = _seal(tmp, hs, f"AB{start // batch:03d}X", min(batch, devices - start), events)
            _import(hs, files)
            shutil.rmtree(tmp)
            print(f"{start + len(files)} of {devices} bundles", file=sys.stderr, flush=True)
        _seal(out / "next", hs, "NXT", nxt, next_events)
        hs.store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        hs.close()
    (out / "size.json").write_text(json.dumps({"devices": devices, "events": events}))


def _copy(src: Path) -> Path:
    dst = Path(tempfile.mkdtemp(prefix="bench-import-growth-")) / "hub"
    shutil.copytree(src / "hub", dst)
    # The copy leaves its pages dirty in the kernel's cache: the import's first fsync (a WAL
    # checkpoint's) would then write back the whole copy, and charge this process a CPU time
    # that grows with the file, not with the import. Written back here, before any timing.
    for f in dst.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return dst


def _next_files(src: Path) -> list[Path]:
    return sorted((src / "next").glob("*.tar.age"))


def profile(src: Path, top: int, out_file: Path | None) -> None:
    from import_floor import _reopen

    from wardcrf import features

    features.install()
    hub_dir = _copy(src)
    try:
        hs = _reopen(hub_dir)
        try:
            files = _next_files(src)
            _import(hs, files[:1])  # what a process pays once (protocol, schemas), outside the profile
            files = files[1:]
            prof = cProfile.Profile(time.process_time)
            c0, w0 = time.process_time(), time.perf_counter()
            prof.runcall(_import, hs, files)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        finally:
            hs.close()
    finally:
        shutil.rmtree(hub_dir.parent, ignore_errors=True)
    if out_file is not None:
        prof.dump_stats(str(out_file))
    buf = io.StringIO()
    print(
        f"{src}: {len(files)} next bundles, CPU {cpu:.2f} s, wall {wall:.2f} s (under the profiler)", file=buf
    )
    for key in ("tottime", "cumulative"):
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(top)
    print(buf.getvalue())


def once(src: Path) -> dict[str, float]:
    from import_floor import _reopen

    from wardcrf import features

    features.install()
    hub_dir = _copy(src)
    try:
        hs = _reopen(hub_dir)
        try:
            files = _next_files(src)
            _import(hs, files[:1])  # what a process pays once, apart
            c0, w0, b0, r0 = time.process_time(), time.perf_counter(), _io("wchar"), _io("rchar")
            u0 = resource.getrusage(resource.RUSAGE_SELF)
            _import(hs, files[1:])
            cpu, wall, written = time.process_time() - c0, time.perf_counter() - w0, _io("wchar") - b0
            read = _io("rchar") - r0
            u1 = resource.getrusage(resource.RUSAGE_SELF)
            n = int(hs.store.scalar("SELECT count(*) FROM events WHERE device LIKE 'NXT%'"))
            per = n * (len(files) - 1) / len(files)
        finally:
            hs.close()
    finally:
        shutil.rmtree(hub_dir.parent, ignore_errors=True)
    return {
        "cpu_per_event": cpu / per,
        "wall_per_event": wall / per,
        "user_per_event": (u1.ru_utime - u0.ru_utime) / per,
        "sys_per_event": (u1.ru_stime - u0.ru_stime) / per,
        "bytes_per_event": written / per,
        "read_per_event": read / per,
    }


def _io(field: str) -> int:
    """/proc/self/io's `wchar` (bytes passed to write(): WAL frames, checkpoints) or `rchar` (read())."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timing(srcs: list[Path], rounds: int, old: str) -> None:
    """Each hub in turn, and with `old` (another tree's python) each side in turn, alternated round by round."""
    sides = [("new", sys.executable)] + ([("old", old)] if old else [])
    runs = [(s, side) for s in srcs for side in sides]
    got: dict[tuple[Path, tuple[str, str]], list[dict[str, float]]] = {k: [] for k in runs}
    loads = []
    for r in range(rounds):
        for key in runs if r % 2 == 0 else list(reversed(runs)):
            src, (_name, python) = key
            load0 = os.getloadavg()[0]
            res = subprocess.run(
                [python, __file__, "once", str(src)], check=True, capture_output=True, text=True, cwd="/"
            )
            got[key].append(json.loads(res.stdout.strip().splitlines()[-1]))
            loads += [load0, os.getloadavg()[0]]
            print(
                r,
                src,
                key[1][0],
                got[key][-1],
                f"load {load0:.1f} -> {loads[-1]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"the next bundles after the first, {rounds} rounds alternated; 1-min load {min(loads):.1f}-{max(loads):.1f}"
    )
    for key in runs:
        cpu = [x["cpu_per_event"] * 1e6 for x in got[key]]
        wall = [x["wall_per_event"] * 1e6 for x in got[key]]
        written = [x["bytes_per_event"] for x in got[key]]
        user = [x["user_per_event"] * 1e6 for x in got[key]]
        kernel = [x["sys_per_event"] * 1e6 for x in got[key]]
        read = [x["read_per_event"] for x in got[key]]
        print(
            f"  {key[0]} {key[1][0]}: CPU {statistics.median(cpu):.1f} µs/event ({', '.join(f'{x:.1f}' for x in cpu)}),"
            f" wall {statistics.median(wall):.1f} ({', '.join(f'{x:.1f}' for x in wall)});"
            f" written {statistics.median(written):.0f} bytes/event ({', '.join(f'{x:.0f}' for x in written)}),"
            f" read {statistics.median(read):.0f};"
            f" user {statistics.median(user):.1f} ({', '.join(f'{x:.1f}' for x in user)}),"
            f" system {statistics.median(kernel):.1f} ({', '.join(f'{x:.1f}' for x in kernel)})"
        )


def main() -> None:
    a = sys.argv[1:]
    if not a:
        raise SystemExit(__doc__)
    if a[0] == "build":
        opts = dict(zip(a[4::2], a[5::2], strict=False))
        build(
            Path(a[1]),
            int(a[2]),
            int(a[3]),
            int(opts.get("--next", 3)),
            int(opts.get("--next-events", 2000)),
            opts.get("--engine", "sqlcipher"),
        )
        return
    if a[0] == "profile":
        opts = dict(zip(a[2::2], a[3::2], strict=False))
        out = opts.get("--out")
        profile(Path(a[1]), int(opts.get("--top", 40)), Path(out) if out else None)
        return
    if a[0] == "once":
        print(json.dumps(once(Path(a[1]))))
        return
    if a[0] == "time":
        opts = {a[i]: a[i + 1] for i in range(1, len(a) - 1) if a[i].startswith("--")}
        dirs = [x for i, x in enumerate(a[1:], 1) if not x.startswith("--") and not a[i - 1].startswith("--")]
        timing([Path(d) for d in dirs], int(opts.get("--rounds", 3)), opts.get("--old", ""))
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
