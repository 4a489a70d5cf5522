"""Foundation benchmarks: append, bulk append, verify, rebuild, unlock.

Each wardcrf figure is printed beside the same operation on plain SQLite in the
same run: stdlib ``sqlite3`` doing the bare inserts/reads, and the wardcrf code
path itself on an unencrypted database (so the encryption cost shows alone).
"""

from __future__ import annotations

import hashlib
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from wardcrf import eventlog, projections, sessionkeys
from wardcrf.eventlog import Author, DeviceContext
from wardcrf.site import Site
from wardcrf.store import Store

PASSWORD = "bench-password-1"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _plain_store(path: Path) -> tuple[Store, DeviceContext]:
    """The same schema and code path on an unencrypted file (baseline only)."""
    store = Store(path, None)
    store.migrate()
    with store.transaction():
        store.execute(
            "INSERT INTO site VALUES (1, 'BENCH', 'PLAIN001', 'plain', 'ward', 'Asia/Shanghai', '')"
        )
    return store, DeviceContext.load(store)


def _stdlib(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (pos INTEGER PRIMARY KEY, id TEXT UNIQUE, hash TEXT UNIQUE, line TEXT)")
    return conn


def run(quick: bool = False) -> list[dict]:
    n_single = 200 if quick else 1000
    n_bulk = 20_000 if quick else 100_000
    rows: list[dict] = []
    author = Author(user="admin", role="admin")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        init = Site.init(
            tmp_path / "site", site="BENCH", device_name="bench", admin="admin", password=PASSWORD
        )
        site = Site.open(init.site.data_dir)
        # -- open + unlock
        unlock = []
        for _ in range(7):
            t = time.perf_counter()
            s = site.unlock("admin", PASSWORD)
            unlock.append(time.perf_counter() - t)
            s.close()
        plain_open = []
        for _ in range(7):
            t = time.perf_counter()
            c = sqlite3.connect(tmp_path / "p0.db")
            c.execute("SELECT count(*) FROM sqlite_master").fetchone()
            c.close()
            plain_open.append(time.perf_counter() - t)
        rows.append(
            dict(
                name="open + unlock (scrypt + SQLCipher)",
                value=statistics.median(unlock) * 1000,
                unit="ms",
                baseline=statistics.median(plain_open) * 1000,
                target="≤ 500 ms",
            )
        )

        s = site.unlock("admin", PASSWORD)
        ctx = s.ctx
        # -- single append with commit
        single = []
        for i in range(n_single):
            t = time.perf_counter()
            eventlog.append(s.store, ctx, author, type="bench.note", subject="site:BENCH", body={"i": i})
            single.append(time.perf_counter() - t)
        std = _stdlib(tmp_path / "std.db")
        base_single = []
        for i in range(n_single):
            line = f'{{"prev":"{"0" * 64}","i":{i}}}'
            t = time.perf_counter()
            std.execute("BEGIN")
            std.execute(
                "INSERT INTO events (id, hash, line) VALUES (?,?,?)",
                (f"s-{i}", hashlib.sha256(line.encode()).hexdigest(), line),
            )
            std.execute("COMMIT")
            base_single.append(time.perf_counter() - t)
        rows.append(
            dict(
                name="single append + commit, median",
                value=statistics.median(single) * 1000,
                unit="ms",
                baseline=statistics.median(base_single) * 1000,
                target="",
            )
        )
        rows.append(
            dict(
                name="single append + commit, p99",
                value=_pct(single, 0.99) * 1000,
                unit="ms",
                baseline=_pct(base_single, 0.99) * 1000,
                target="≤ 10 ms",
            )
        )

        # -- what the rollback counter adds to a commit: the same single append on the same
        # database, through a connection with the counter (a sign-in's) and one without,
        # alternated in one loop so the machine's noise falls on both alike.
        bare = Store(site.db_path, sessionkeys.database_key(s))
        guarded_wall, guarded_cpu, bare_wall, bare_cpu = [], [], [], []
        for i in range(n_single):
            for store, wall, cpu in ((s.store, guarded_wall, guarded_cpu), (bare, bare_wall, bare_cpu)):
                t, c = time.perf_counter(), time.process_time()
                with store.transaction():
                    eventlog.append(
                        store, ctx, author, type="bench.note", subject="site:BENCH", body={"r": i}
                    )
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
        bare.close()
        rows.append(
            dict(
                name="single append + commit with the rollback counter vs without, wall median",
                value=statistics.median(guarded_wall) * 1000,
                unit="ms",
                baseline=statistics.median(bare_wall) * 1000,
                target="",
            )
        )
        rows.append(
            dict(
                name="single append + commit with the rollback counter vs without, CPU median",
                value=statistics.median(guarded_cpu) * 1000,
                unit="ms",
                baseline=statistics.median(bare_cpu) * 1000,
                target="",
            )
        )

        # -- bulk append (one transaction per batch); the median of several batches,
        # interleaved with the baselines so a noisy neighbour hits both alike
        cpu_rates: dict[str, list[float]] = {"enc": [], "plain": []}

        def bulk(store: Store, dctx: DeviceContext, n: int) -> float:
            t, c = time.perf_counter(), time.process_time()
            with store.transaction():
                for i in range(n):
                    eventlog.append(
                        store, dctx, author, type="bench.note", subject="site:BENCH", body={"i": i}
                    )
            cpu_rates["plain" if store.path.name == "plain.db" else "enc"].append(
                n / max(time.process_time() - c, 1e-9)
            )
            return n / (time.perf_counter() - t)

        def std_bulk(batch: int, n: int) -> float:
            t = time.perf_counter()
            std.execute("BEGIN")
            for i in range(n):
                line = f'{{"prev":"{"0" * 64}","bulk":{batch},"i":{i}}}'
                std.execute(
                    "INSERT INTO events (id, hash, line) VALUES (?,?,?)",
                    (f"b-{batch}-{i}", hashlib.sha256(line.encode()).hexdigest(), line),
                )
            std.execute("COMMIT")
            return n / (time.perf_counter() - t)

        plain, pctx = _plain_store(tmp_path / "plain.db")
        batches = 3 if quick else 5
        per_batch = n_bulk // batches
        enc_rates, plain_rates, std_rates = [], [], []
        for b in range(batches):
            enc_rates.append(bulk(s.store, ctx, per_batch))
            plain_rates.append(bulk(plain, pctx, per_batch))
            std_rates.append(std_bulk(b, per_batch))
        enc_rate = statistics.median(enc_rates)
        plain_rate = statistics.median(plain_rates)
        std_rate = statistics.median(std_rates)
        rows.append(
            dict(
                name=f"bulk append, median of {batches} x {per_batch:,} (encrypted vs same path unencrypted)",
                value=enc_rate,
                unit="events/s",
                baseline=plain_rate,
                target="≥ 20,000/s; ratio ≤ 3",
                higher_is_better=True,
            )
        )
        rows.append(
            dict(
                # This process's CPU time: the same loop, unmoved by other processes on a busy machine.
                name=f"bulk append, CPU time, median of {batches} x {per_batch:,} (encrypted vs unencrypted)",
                value=statistics.median(cpu_rates["enc"]),
                unit="events/s",
                baseline=statistics.median(cpu_rates["plain"]),
                target="≥ 20,000/s",
                higher_is_better=True,
            )
        )
        rows.append(
            dict(
                name=f"bulk append, median of {batches} x {per_batch:,} (encrypted vs bare stdlib insert)",
                value=enc_rate,
                unit="events/s",
                baseline=std_rate,
                target="",
                higher_is_better=True,
            )
        )

        # -- audit verify
        total = eventlog.count(s.store)
        t = time.perf_counter()
        n, problems = eventlog.verify_chains(s.store)
        verify_rate = n / (time.perf_counter() - t)
        assert not problems
        t = time.perf_counter()
        m = 0
        for (line,) in std.execute("SELECT line FROM events"):
            hashlib.sha256(line.encode()).hexdigest()
            m += 1
        std_verify = m / (time.perf_counter() - t)
        rows.append(
            dict(
                name="audit verify (chains)",
                value=verify_rate,
                unit="events/s",
                baseline=std_verify,
                target="≥ 100,000/s",
                higher_is_better=True,
            )
        )

        # -- rebuild
        t = time.perf_counter()
        projections.rebuild(s.store)
        rebuild_rate = total / (time.perf_counter() - t)
        t = time.perf_counter()
        projections.rebuild(plain)
        plain_rebuild = eventlog.count(plain) / (time.perf_counter() - t)
        rows.append(
            dict(
                name="db rebuild (encrypted vs same path unencrypted)",
                value=rebuild_rate,
                unit="events/s",
                baseline=plain_rebuild,
                target="",
                higher_is_better=True,
            )
        )
        s.close()
        plain.close()
        std.close()
    for r in rows:
        hib = r.pop("higher_is_better", False)
        r["ratio"] = (r["baseline"] / r["value"]) if hib else (r["value"] / r["baseline"])
        r["ratio_meaning"] = "wardcrf cost / baseline cost"
    return rows
