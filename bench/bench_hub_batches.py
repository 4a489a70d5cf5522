"""A hub's ingest of real record bundles on SQLCipher and PostgreSQL: projector rows batched vs one at a time.

    python bench/run.py --only hub_batches [--quick]

The bundles are `bench_sync`'s (10 devices x 2,000 events: consents, their
three e-signatures, vitals records; 200 events per device with --quick),
parsed once and applied as the hub applies a verified bundle: one
transaction per bundle, `eventlog.ingest_many` (events, chain heads, every
projector) and `ingest.after_ingest` (the import's checks). Two paths of the
same code, alternated in one loop, a fresh database each time:

- batched: what the hub does (`wardcrf.sqlstore.InsertBatches`: rows
  collected and written before whatever may touch their table; PostgreSQL by
  pipelined `executemany`, or `COPY` for 16 rows or more of a plain insert);
- one at a time: `batched_inserts` switched off, every projector row its own
  statement (on PostgreSQL its own round trip: what `PgStore` did before
  issue 19's batching; the per-batch memo of the active protocol is off too).

CPU is this process's and, on PostgreSQL, the throwaway server's (the
postmaster, its reaped backends and live helpers, `bench_hub_engines.ServerCpu`;
fsync on, as SQLCipher's synchronous=FULL). The "baseline" column is the
one-at-a-time path: the ratio is what batching saves (below 1 = cheaper).
Needs PostgreSQL's server binaries; without them that engine prints one row
saying so.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "unit"))  # the throwaway server and the ledger

import ledgerkit  # noqa: E402
import pgserver  # noqa: E402
from bench_hub_engines import ServerCpu  # noqa: E402
from bench_sync import _chain  # noqa: E402
from measure import Pair, Sample, loadavg, median, row, single_row  # noqa: E402

from wardcrf import devicekeys, eventlog, features, ingest  # noqa: E402
from wardcrf.devicekeys import DeviceSigner  # noqa: E402

MODES = ("batched", "one at a time")


def _apply_all(where: ledgerkit.Where, signer: DeviceSigner, bundles: list[list[Any]], mode: str) -> None:
    store = ledgerkit.create(where, signer)
    try:
        if mode == "one at a time":
            store.batched_inserts = contextlib.nullcontext  # type: ignore[method-assign]
        for events in bundles:
            with store.transaction():
                eventlog.ingest_many(store, events)
                ingest.after_ingest(store, events)
    finally:
        store.close()


def run(quick: bool = False) -> list[dict[str, Any]]:
    features.install()  # a benchmark is a program: it installs the features before it opens a site
    devices, per = 10, (200 if quick else 2000)
    repeat = 3
    keys = devicekeys.generate(ledgerkit.HUB_DEVICE)
    signer = DeviceSigner(keys.device, keys.key_id, keys.sign_public, keys.sign_secret)
    bundles = [
        [eventlog.Event.from_line(line) for line in _chain(f"BAT{i:04d}", "WUH01", per)]
        for i in range(devices)
    ]
    n = devices * per
    rows: list[dict[str, Any]] = []
    try:
        server: pgserver.Server | None = pgserver.start(durable=True)
    except BaseException as exc:  # pytest.skip's exception when the binaries are absent
        server = None
        rows.append(
            single_row(f"PostgreSQL not measured: {exc}", Sample(float("nan"), float("nan")), unit="")
        )
    try:
        server_cpu = ServerCpu(server) if server is not None else None
        with tempfile.TemporaryDirectory(prefix="bench-hub-batches-") as tmp:
            for engine in ("sqlcipher", "postgresql"):
                if engine == "postgresql" and server is None:
                    continue
                got: dict[str, list[Sample]] = {m: [] for m in MODES}
                load0 = loadavg()
                for r in range(repeat):
                    for mode in MODES if r % 2 == 0 else MODES[::-1]:
                        if server is not None and engine == "postgresql":
                            where = ledgerkit.Where("postgresql", dsn=server.new_database())
                        else:
                            path = Path(tmp) / f"hub-{r}-{mode[0]}.db"
                            where = ledgerkit.Where("sqlcipher", path=str(path), key_hex=os.urandom(32).hex())
                        s0 = server_cpu.total() if server_cpu and engine == "postgresql" else 0.0
                        c0, w0 = time.process_time(), time.perf_counter()
                        _apply_all(where, signer, bundles, mode)
                        c1, w1 = time.process_time(), time.perf_counter()
                        s1 = server_cpu.total() if server_cpu and engine == "postgresql" else 0.0
                        got[mode].append(Sample((w1 - w0) / n, ((c1 - c0) + (s1 - s0)) / n))
                pair = Pair(median(got["batched"]), median(got["one at a time"]), repeat, (load0, loadavg()))
                rows.append(
                    row(
                        f"hub ingest of {devices} x {per:,} record events on {engine}, projector rows batched",
                        pair,
                        unit="µs/event",
                        scale=1e6,
                        target="< 1 (batching saves)",
                        baseline_name="the same, every projector row its own statement",
                    )
                )
    finally:
        if server is not None:
            pgserver.stop(server)
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
