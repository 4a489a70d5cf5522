"""The hub's ledger step on SQLCipher and on PostgreSQL, with 1, 2 and 4 importing processes (issue 19).

What is measured is what runs on both engines today: for each of N devices
× M bundles, the ledger's part of an apply (`tests/unit/ledgerkit.apply_step`:
the device's lock, its ledger row read, the bundle recorded, its
transparency-log leaf and the perfect subtrees it completes written by
`hublog.log_bundle`, one transaction per bundle) and a signed checkpoint
after every 10 bundles of a process (`hublog.sign_checkpoint`). The records
and projections of a full import are not in it: they run on SQLCipher only
(docs/hub-postgres.md).

Every configuration runs in one loop, in rotating order, `repeat` times;
medians are quoted. The baseline is the default engine, SQLCipher with one
importing process. CPU is the bench's and its worker processes' and, for
PostgreSQL, the server's too (the postmaster's own and reaped children's
time, and its live helpers', from /proc: the server is the throwaway one
this bench starts, so all of its work is this bench's; fsync on, as
SQLCipher's synchronous=FULL). Needs PostgreSQL's
server binaries (Debian: apt-get install postgresql); without them the suite
prints one row saying so.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "unit"))  # the throwaway server and the ledger step

import ledgerkit  # noqa: E402
import pgserver  # noqa: E402
from measure import Sample, loadavg, median, once, single_row  # noqa: E402
from wardcrf.sync import hublog  # noqa: E402

from wardcrf import devicekeys  # noqa: E402
from wardcrf.devicekeys import DeviceSigner  # noqa: E402

CHECKPOINT_EVERY = 10
TICK = os.sysconf("SC_CLK_TCK")


def _proc_times(pid: int) -> tuple[float, float, int]:
    """(own CPU, reaped children's CPU) in seconds, and the parent pid, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK, ppid


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _proc_times(int(entry))[2] == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


class ServerCpu:
    """The throwaway server's CPU: the postmaster, its reaped backends, its live helpers."""

    def __init__(self, server: pgserver.Server) -> None:
        self.pid = int((server.root / "data" / "postmaster.pid").read_text().split()[0])
        self.helpers = len(_children(self.pid))  # checkpointer, walwriter, ... (no client yet)

    def total(self) -> float:
        deadline = time.monotonic() + 30
        while len(_children(self.pid)) > self.helpers and time.monotonic() < deadline:
            time.sleep(0.01)  # a closed client's backend is still exiting: wait until it is reaped
        own, reaped, _ = _proc_times(self.pid)
        live = 0.0
        for child in _children(self.pid):
            try:
                live += _proc_times(child)[0]
            except OSError:
                continue
        return own + reaped + live


def _part(where: ledgerkit.Where, signer: DeviceSigner, bundles: list[tuple[str, int, str]]) -> None:
    store = where.open()
    try:
        for i, (device, seq, sha) in enumerate(bundles, 1):
            if ledgerkit.apply_step(store, device, seq, sha) != "applied":
                raise SystemExit(f"bundle {seq} of {device} not applied")
            if i % CHECKPOINT_EVERY == 0:
                hublog.sign_checkpoint(store, signer)
        hublog.sign_checkpoint(store, signer)
    finally:
        store.close()


def _import(where: ledgerkit.Where, signer: DeviceSigner, bundles: list, workers: int) -> None:
    """Devices shared round-robin among `workers` processes; each applies its devices' bundles in order."""
    devices = sorted({b[0] for b in bundles})
    parts = [[b for b in bundles if devices.index(b[0]) % workers == w] for w in range(workers)]
    if workers == 1:
        _part(where, signer, parts[0])
        return
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_part, args=(where, signer, p)) for p in parts]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"an importing process failed ({p.exitcode})")


def run(quick: bool = False) -> list[dict[str, Any]]:
    try:
        server = pgserver.start(durable=True)
    except BaseException as exc:  # pytest.skip's exception when the binaries are absent
        return [single_row(f"PostgreSQL not measured: {exc}", Sample(float("nan"), float("nan")), unit="")]
    try:
        return _run(server, quick)
    finally:
        pgserver.stop(server)


def _run(server: pgserver.Server, quick: bool) -> list[dict[str, Any]]:
    from wardcrf import store as sqlcipher_store

    # Several processes on one SQLCipher file wait for its one write lock; at a load of 20 on two
    # cores the default 5 s wait runs out ("database is locked"). Measured here: the waiting, not the error.
    sqlcipher_store.BUSY_TIMEOUT_MS = 600_000
    devices, per_device, repeat = (8, 25, 3) if quick else (20, 50, 5)
    bundles = [
        (f"lap{d:02d}", seq, f"lap{d:02d}-{seq}".ljust(64, "0"))
        for seq in range(1, per_device + 1)
        for d in range(devices)
    ]
    keys = devicekeys.generate(ledgerkit.HUB_DEVICE)
    signer = DeviceSigner(keys.device, keys.key_id, keys.sign_public, keys.sign_secret)
    cpu = ServerCpu(server)
    configs = [("sqlcipher", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4), ("sqlcipher", 4)]
    samples: dict[tuple[str, int], list[Sample]] = {c: [] for c in configs}
    load0 = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            order = configs[i % len(configs) :] + configs[: i % len(configs)]
            for engine, workers in order:
                if engine == "postgresql":
                    where = ledgerkit.Where("postgresql", dsn=server.new_database())
                else:
                    path = Path(tmp) / f"hub-{i}-{workers}.db"
                    where = ledgerkit.Where("sqlcipher", path=str(path), key_hex=os.urandom(32).hex())
                ledgerkit.create(where, signer).close()
                before = cpu.total() if engine == "postgresql" else 0.0
                sample, _ = once(lambda w=where, n=workers: _import(w, signer, bundles, n))
                server_cpu = cpu.total() - before if engine == "postgresql" else 0.0
                samples[(engine, workers)].append(Sample(sample.wall, sample.cpu + server_cpu))
    load1 = loadavg()
    base = median(samples[("sqlcipher", 1)])
    n = len(bundles)
    rows = []
    for engine, workers in configs:
        got = median(samples[(engine, workers)])
        name = f"ledger step, {devices} devices x {per_device} bundles: {engine}, {workers} process(es)"
        rows.append(
            {
                "name": name,
                "value": got.wall / n * 1e6,
                "baseline": base.wall / n * 1e6,
                "ratio": got.wall / base.wall,
                "cpu": got.cpu / n * 1e6,
                "cpu_baseline": base.cpu / n * 1e6,
                "cpu_ratio": got.cpu / base.cpu,
                "unit": "µs/bundle",
                "target": f"throughput {base.wall / got.wall:.2f}x SQLCipher 1 process (wall)",
                "baseline_name": "SQLCipher, 1 process",
                "runs": repeat,
                "load": [load0, load1],
            }
        )
    return rows
