"""The hub import's floors, and its cost per event at scale, each beside `sha256sum` in one loop (issue 19).

    python bench/import_floor.py floors [--engine sqlcipher|postgresql] [--rounds 3] [--devices 10] [--events 2000]
    python bench/import_floor.py scale [--engine sqlcipher|postgresql] [--rounds 2] [--sizes 10x2000,100x1000,100x10000]

Issue 19 asks for a hub import within 15x `sha256sum`'s CPU. `import_ab.py` measures the
import; this says how much of it any import must pay, on the same bundles (`import_ab`'s
builders: `bench_sync._chain`, one bundle per ward laptop; sealed here to each hub the run makes, an age stanza
of some 200 bytes each, where `import_ab.py` seals to one):

`floors` — each round one fresh interpreter (as `import_ab.py` runs one, so the real import
pays what a process pays once) builds the bundles and times, in an order that rotates from
round to round, on the same files:

- `sha256sum` over the files (the child's CPU);
- the *security floor*: what the bundle format requires (/work/shared/BUNDLE-FORMAT.md,
  docs/sync.md) with the project's own primitives (`signing.verify`, `bundle.decrypt`,
  `bundle.read_archive`): the outer signature over the ciphertext, the age decryption, the
  archive's members, the inner signature over SHA256SUMS, events.jsonl against its SHA-256,
  then per line a JSON decode, its `prev` against the previous line's SHA-256 and its own
  SHA-256; the last against the manifest's `chain_last`. No canonical-spelling check, no
  body schemas, no projections;
- `bundle.verify`: the import's own verification (every rule on import, the canonical
  spelling and the bodies' schemas too), no apply;
- the *storage floor*: exactly the rows the real import wrote, written with plain
  `executemany` (INSERT, and UPDATE by primary key for a row the import updated in place) into a
  fresh hub of the same engine (`hub.init`: the same schema, indexes and triggers), one
  transaction per bundle, COMMIT included. The rows are read back from a real hub that imported
  the same files one by one (in a separate process, before, so this one stays cold): each
  table's rows before and after each bundle, every table that changed;
- the storage floor a second way: on SQLCipher every bundle in one transaction (the import
  commits its bundles in groups, one COMMIT every 5 s at most: `hub.GROUP_COMMIT_SECONDS`); on
  PostgreSQL its new rows by COPY (the import sends its events so), its updates as above;
- the real import, `hub.import_files` (as `wardcrf hub import` runs it).

On PostgreSQL (a throwaway server, fsync on, `tests/unit/pgserver.py`) the CPU of the storage
floor and of the import is the client's plus the server's (as `import_ab.py` counts it). On
SQLCipher, whose engine runs in this process, the storage floor's CPU is also given table by table,
and its COMMITs apart.

`scale` — the real import on SQLCipher (or, with `--engine postgresql`, a fresh database of one throwaway
server, fsync on, its CPU the client's plus the server's as `floors` counts it) at each size (devices x events per device), one fresh
interpreter per run, alternated with `sha256sum` (which goes first flips each round). The
import is called twice: the first bundle alone, then the rest. The rest's CPU per bundle is
the per-bundle cost; the first call's CPU minus one bundle's is what a process pays once on
its first import (protocol loading, schema checks); the interpreter and the modules it imports
before that are counted apart (`startup`).

Every run prints its figures as it ends (stderr), then the medians, each round, and the
1-minute load before and after every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
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

STEPS = ("sha", "security", "verify", "storage", "import")
SQ_STEPS = (*STEPS, "grouped")  # SQLCipher: the storage floor again, every bundle in one transaction
PG_STEPS = (*STEPS, "copy")  # PostgreSQL: the storage floor again, its new rows by COPY


def _seal_bundles(root: Path, hubs: list[Any], devices: int, events: int) -> tuple[list[Path], list[Any]]:
    """`import_ab.once`'s bundles: one per laptop, registered at every hub in `hubs`, sealed to all of them."""
    from bench_sync import seal_bundles

    return seal_bundles(root, hubs, devices, events)


def _hub(path: Path, dsn: str) -> Any:
    from bench_sync import PASSWORD
    from wardcrf.sync import hub

    res = hub.init(path, admin="admin", password=PASSWORD, database=dsn or None)
    return res.site.unlock("admin", PASSWORD)


def _reopen(path: Path) -> Any:
    from bench_sync import PASSWORD

    from wardcrf.site import Site

    return Site.open(path).unlock("admin", PASSWORD)


# -- the rows a real import wrote, bundle by bundle ------------------------------------------------


def _tables(store: Any) -> list[tuple[str, list[str], list[str], list[str]]]:
    """(table, columns read, columns written, primary key) of every table, in the order the schema made them."""
    from wardcrf.store import Store

    out = []
    if isinstance(store, Store):
        names = [
            r[0]
            for r in store.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        for t in names:
            info = list(store.conn.execute(f'PRAGMA table_info("{t}")'))
            cols = [r[1] for r in info]
            pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
            out.append((t, cols, cols, pk))
        return out
    names = [
        r[0]
        for r in store.conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.oid"
        )
    ]
    for t in names:
        info = list(
            store.conn.execute(
                "SELECT attname, attidentity, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"
                " ORDER BY attnum",
                (t,),
            )
        )
        pk = [
            r[0]
            for r in store.conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (t,),
            )
        ]
        # A json value is read as its text and written back as text: psycopg passes a str untyped.
        read = [f'"{r[0]}"::text' if r[2] in ("json", "jsonb") else f'"{r[0]}"' for r in info]
        written = [r[0] for r in info if r[1] != "a"]  # GENERATED ALWAYS: the database numbers it
        out.append((t, read, written, pk))
    return out


def _snapshot(
    store: Any, tables: list[tuple[str, list[str], list[str], list[str]]]
) -> dict[str, list[tuple]]:
    out = {}
    for t, read, _, _ in tables:
        cols = ", ".join(c if c.startswith('"') else f'"{c}"' for c in read)
        out[t] = [tuple(r) for r in store.conn.execute(f'SELECT {cols} FROM "{t}"')]
    return out


def _diff(
    before: dict[str, list[tuple]],
    after: dict[str, list[tuple]],
    tables: list[tuple[str, list[str], list[str], list[str]]],
) -> list[tuple[str, str, list[tuple]]]:
    """The writes from `before` to `after`: per table its new rows (INSERT) and changed ones (UPDATE by key)."""
    from collections import Counter

    writes = []
    for t, read, written, pk in tables:
        names = [c.split('"')[1] if c.startswith('"') else c for c in read]
        keep = [names.index(c) for c in written]
        if not pk:
            added = Counter(after[t]) - Counter(before[t])
            if Counter(before[t]) - Counter(after[t]):
                raise SystemExit(f"{t}: a row changed in a table without a primary key")
            rows = [tuple(r[i] for i in keep) for r in added.elements()]
            if rows:
                writes.append((t, "insert", rows))
            continue
        ki = [names.index(c) for c in pk]
        old = {tuple(r[i] for i in ki): r for r in before[t]}
        new = {tuple(r[i] for i in ki): r for r in after[t]}
        if old.keys() - new.keys():
            raise SystemExit(f"{t}: the import deleted a row")
        inserted = [tuple(r[i] for i in keep) for k, r in new.items() if k not in old]
        set_cols = [c for c in written if c not in pk]
        si = [names.index(c) for c in set_cols]
        updated = [(*(r[i] for i in si), *k) for k, r in new.items() if k in old and old[k] != r and set_cols]
        if inserted:
            writes.append((t, "insert", inserted))
        if updated:
            writes.append((t, "update", updated))
    return writes


def _statement(table: str, kind: str, written: list[str], pk: list[str], engine: str) -> str:
    mark = "?" if engine == "sqlcipher" else "%s"
    if kind == "insert":
        cols = ", ".join(f'"{c}"' for c in written)
        return f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join(mark for _ in written)})'
    sets = ", ".join(f'"{c}" = {mark}' for c in written if c not in pk)
    where = " AND ".join(f'"{c}" = {mark}' for c in pk)
    return f'UPDATE "{table}" SET {sets} WHERE {where}'


def _copy(table: str, written: list[str]) -> str:
    cols = ", ".join(f'"{c}"' for c in written)
    return f'COPY "{table}" ({cols}) FROM STDIN'


def rows_of(hub_dir: Path, files: list[Path], out: Path) -> None:
    """Import `files` one by one into the hub at `hub_dir`; pickle each bundle's writes (`_diff`) to `out`."""
    from wardcrf.sync import hub

    from wardcrf import features
    from wardcrf.store import Store

    features.install()
    hs = _reopen(hub_dir)
    try:
        per_bundle = []
        with hub.ledger_store(hs) as store:
            tables = _tables(store)
            before = _snapshot(store, tables)
            engine = "sqlcipher" if isinstance(store, Store) else "postgresql"
        for f in files:
            for item in hub.import_files(hs, [f]):
                assert item.result is not None and item.result.outcome.status == "applied", item.refused
            with hub.ledger_store(hs) as store:
                after = _snapshot(store, tables)
            per_bundle.append(_diff(before, after, tables))
            before = after
        stmts = {
            (t, kind): _statement(t, kind, written, pk, engine)
            for t, _, written, pk in tables
            for kind in ("insert", "update")
        }
        copies = {t: _copy(t, written) for t, _, written, _ in tables}
        plan = [
            [(stmts[(t, kind)], copies[t] if kind == "insert" else "", rows) for t, kind, rows in writes]
            for writes in per_bundle
        ]
        out.write_bytes(pickle.dumps(plan))
    finally:
        hs.close()


# -- one measured process --------------------------------------------------------------------------


def _security_floor(files: list[Path], laptops: list[Any], identity: str) -> None:
    """The checks the format requires, with the project's primitives, and nothing else."""
    from wardcrf.sync import bundle, signing

    for path, keys in zip(files, laptops, strict=True):
        cipher = path.read_bytes()
        signing.verify(
            keys.sign_public, cipher, (path.parent / (path.name + ".minisig")).read_bytes(), "outer"
        )
        members = bundle.read_archive(bundle.decrypt(cipher, [identity], "bundle"), "bundle")
        signing.verify(
            keys.sign_public, bytes(members[bundle.SUMS]), bytes(members[bundle.SUMS_SIG]), "inner"
        )
        sums = dict(reversed(ln.split("  ")) for ln in bytes(members[bundle.SUMS]).decode().splitlines())
        events = bytes(members[bundle.EVENTS])
        assert hashlib.sha256(events).hexdigest() == sums[bundle.EVENTS]
        m = json.loads(bytes(members[bundle.MANIFEST]))
        prev = m["chain_first_prev"]
        loads, sha = json.loads, hashlib.sha256
        for line in events.decode("utf-8").split("\n")[:-1]:
            if loads(line)["prev"] != prev:
                raise SystemExit(f"{path.name}: chain broken")
            prev = sha(line.encode("utf-8")).hexdigest()
        assert prev == m["chain_last"]


def _verify(files: list[Path], laptops: list[Any], identity: str) -> None:
    from wardcrf.sync import bundle

    for path, keys in zip(files, laptops, strict=True):
        signer = bundle.Signer(keys.device, "WUH01", keys.sign_public, keys.key_id)
        v = bundle.verify(
            path,
            (path.parent / (path.name + ".minisig")).read_bytes(),
            lambda key_id, s=signer: s if key_id == s.key_id else None,
            [identity],
        )
        assert len(v.lines) > 0


Plan = list[list[tuple[str, str, list[tuple]]]]
"""Per bundle, its writes in the order the schema made the tables: (statement, COPY of its table or "", rows)."""


def _storage_floor(
    engine: str,
    target: Any,
    plan: Plan,
    *,
    copy: bool = False,
    grouped: bool = False,
    spent: dict[str, float] | None = None,
) -> None:
    """Each bundle's rows by plain `executemany`, one transaction per bundle, committed.

    With `copy` (PostgreSQL), new rows go by COPY instead, as the import sends its events; with
    `grouped` (SQLCipher), every bundle in one transaction, as the import's group commit holds them.
    `spent` (SQLCipher, where the engine runs in this process) gathers the CPU per table and COMMIT."""
    if engine == "sqlcipher":
        conn = target
        clock = time.process_time
        for i, writes in enumerate(plan):
            if i == 0 or not grouped:
                conn.execute("BEGIN")
            for sql, _, rows in writes:
                c0 = clock()
                conn.executemany(sql, rows)
                if spent is not None:
                    table = sql.split('"')[1]
                    spent[table] = spent.get(table, 0.0) + clock() - c0
            if i == len(plan) - 1 or not grouped:
                c0 = clock()
                conn.execute("COMMIT")
                if spent is not None:
                    spent["COMMIT"] = spent.get("COMMIT", 0.0) + clock() - c0
        return
    for writes in plan:
        with target.transaction(), target.cursor() as cur:
            for sql, copy_sql, rows in writes:
                if copy and copy_sql:
                    with cur.copy(copy_sql) as cp:
                        for row in rows:
                            cp.write_row(row)
                else:
                    cur.executemany(sql, rows)


def once_floors(
    engine: str, devices: int, events: int, order: str, dsns: list[str], pid: int
) -> dict[str, float]:
    from import_ab import _children_cpu, _server_cpu
    from wardcrf.sync import hub

    from wardcrf import devicekeys, features

    features.install()
    root = Path(tempfile.mkdtemp(prefix="bench-import-floor-"))
    opened: list[Any] = []
    try:
        # The real import's hub, the storage floor's, the hub the rows are read from, and the
        # second floor's (COPY, or one transaction): each made by `hub.init`, each knowing the same laptops.
        names = ("real", "floor", "source", "second")
        opened += [_hub(root / n, d) for n, d in zip(names, dsns, strict=True)]
        real, floor, source, second = opened
        (root / "b").mkdir()
        files, laptops = _seal_bundles(root / "b", opened, devices, events)
        source.close()
        opened.remove(source)
        plan_file = root / "plan.pickle"
        subprocess.run(
            [sys.executable, __file__, "rows", str(root / "source"), str(plan_file), *map(str, files)],
            check=True,
            cwd="/",
        )
        plan = pickle.loads(plan_file.read_bytes())
        keys_of = devicekeys.load(real.store, real.ctx.device)
        assert keys_of is not None
        identity = keys_of.age_identity
        if engine == "sqlcipher":
            target: Any = floor.store.conn
            second_target: Any = second.store.conn
            for conn in (target, second_target):
                conn.execute("PRAGMA cache_size = -262144")  # as the import sets it (`hub._import_pragmas`)
        else:
            from wardcrf.sync.pgstore import PgStore

            # psycopg's own connections (autocommit: each `transaction()` a BEGIN and a COMMIT).
            stores = [PgStore(dsns[1]), PgStore(dsns[3])]
            target, second_target = (st.conn for st in stores)
        out: dict[str, float] = {
            "events": float(devices * events),
            "rows": float(sum(len(rows) for writes in plan for _, _, rows in writes)),
        }
        spent: dict[str, float] = {}
        for step in order.split(","):
            server = step in ("storage", "copy", "import") and pid
            s0 = _server_cpu(pid) if server else 0.0
            c0, k0, w0 = time.process_time(), _children_cpu(), time.perf_counter()
            if step == "sha":
                subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True)
            elif step == "security":
                _security_floor(files, laptops, identity)
            elif step == "verify":
                _verify(files, laptops, identity)
            elif step == "storage":
                _storage_floor(engine, target, plan, spent=spent)
            elif step == "copy":
                _storage_floor(engine, second_target, plan, copy=True)
            elif step == "grouped":
                _storage_floor(engine, second_target, plan, grouped=True)
            else:
                for item in hub.import_files(real, files):
                    assert item.result is not None and item.result.outcome.status == "applied", item.refused
            c1, k1, w1 = time.process_time(), _children_cpu(), time.perf_counter()
            if server:
                time.sleep(0.2)  # the server's helpers finish what the commits started
            s1 = _server_cpu(pid) if server else 0.0
            own = k1 - k0 if step == "sha" else c1 - c0
            out[f"{step}_cpu"], out[f"{step}_wall"], out[f"{step}_server"] = own + s1 - s0, w1 - w0, s1 - s0
        rows = {sql.split('"')[1]: 0 for writes in plan for sql, _, _ in writes}
        for writes in plan:
            for sql, _, r in writes:
                rows[sql.split('"')[1]] += len(r)
        out.update({f"table {t}": cpu for t, cpu in spent.items()})
        out.update({f"rows {t}": float(n) for t, n in rows.items()})
        if engine != "sqlcipher":
            for st in stores:
                st.close()
        return out
    finally:
        for hs in opened:
            hs.close()
        shutil.rmtree(root, ignore_errors=True)


def once_scale(devices: int, events: int, order: str, dsn: str = "", pid: int = 0) -> dict[str, float]:
    from import_ab import _children_cpu, _server_cpu
    from wardcrf.sync import hub

    from wardcrf import features

    features.install()
    startup = time.process_time()  # the interpreter and the modules imported before any work
    root = Path(tempfile.mkdtemp(prefix="bench-import-scale-"))
    try:
        hs = _hub(root / "hub", dsn)
        try:
            files, _ = _seal_bundles(root, [hs], devices, events)
            out: dict[str, float] = {"events": float(devices * events), "startup_cpu": startup}
            for step in order.split(","):
                if step == "sha":
                    c0, w0 = _children_cpu(), time.perf_counter()
                    subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True)
                    out["sha_cpu"], out["sha_wall"] = _children_cpu() - c0, time.perf_counter() - w0
                    continue
                # On PostgreSQL each mark adds the server's CPU (read after its helpers finish, outside the wall).
                server = [_server_cpu(pid) if pid else 0.0]
                marks = [(time.process_time() + server[0], time.perf_counter())]
                for part in (files[:1], files[1:]):
                    for item in hub.import_files(hs, part):
                        assert item.result is not None and item.result.outcome.status == "applied", (
                            item.refused
                        )
                    c, w = time.process_time(), time.perf_counter()
                    if pid:
                        time.sleep(0.2)  # the server's helpers finish what the commits started
                        server.append(_server_cpu(pid))
                    marks.append((c + (server[-1] if pid else 0.0), w))
                out["server_cpu"] = server[-1] - server[0]
                (c0, w0), (c1, w1), (c2, w2) = marks
                per_bundle_cpu, per_bundle_wall = (c2 - c1) / (devices - 1), (w2 - w1) / (devices - 1)
                out["cpu"], out["wall"] = c2 - c0, w2 - w0
                out["first_cpu"], out["first_wall"] = c1 - c0, w1 - w0
                out["fixed_cpu"], out["fixed_wall"] = c1 - c0 - per_bundle_cpu, w1 - w0 - per_bundle_wall
                out["rest_cpu_per_event"] = per_bundle_cpu / events
            return out
        finally:
            hs.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- the loops ---------------------------------------------------------------------------------------


def _run(args: list[str]) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd="/"
    )
    got: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return got


def floors(engine: str, rounds: int, devices: int, events: int) -> None:
    server = None
    if engine == "postgresql":
        import pgserver

        server = pgserver.start(durable=True)
    try:
        runs, loads = [], []
        steps = PG_STEPS if server is not None else SQ_STEPS
        for r in range(rounds):
            order = ",".join(steps[r % len(steps) :] + steps[: r % len(steps)])
            args = ["once-floors", engine, str(devices), str(events), order]
            if server is not None:
                pid = (server.root / "data" / "postmaster.pid").read_text().split()[0]
                args += [*(server.new_database() for _ in range(4)), pid]
            load0 = os.getloadavg()[0]
            runs.append(_run(args))
            loads.append((load0, os.getloadavg()[0]))
            print(r, order, runs[-1], f"load {load0:.1f} -> {loads[-1][1]:.1f}", file=sys.stderr, flush=True)
        n = devices * events
        flat = [x for pair in loads for x in pair]
        print(
            f"hub import and its floors, {engine}, {devices} x {events:,} events ({runs[0]['rows']:.0f} rows written),"
            f" {rounds} rounds, one process each, steps in rotating order; 1-min load {min(flat):.1f}-{max(flat):.1f}"
        )
        for step in steps:
            cpu = [x[f"{step}_cpu"] for x in runs]
            ratio = [x[f"{step}_cpu"] / x["sha_cpu"] for x in runs]
            server_part = (
                f" (server {statistics.median(x[f'{step}_server'] for x in runs) / n * 1e6:.1f})"
                if server is not None and step in ("storage", "copy", "import")
                else ""
            )
            print(
                f"  {step:8} CPU {statistics.median(cpu) / n * 1e6:7.2f} µs/event{server_part},"
                f" wall {statistics.median(x[f'{step}_wall'] for x in runs) / n * 1e6:7.2f} µs/event;"
                f" x sha256sum median {statistics.median(ratio):5.1f} ({', '.join(f'{x:.1f}' for x in ratio)})"
            )
        if server is None:  # where the storage floor's CPU goes, table by table
            tables = sorted((k for k in runs[0] if k.startswith("table ")), key=lambda k: -runs[0][k])
            print("  storage floor by table (CPU per event of all events; rows):")
            for k in tables:
                name = k.split(" ", 1)[1]
                rows = runs[0].get(f"rows {name}", 0.0)
                print(
                    f"    {name:18} {statistics.median(x[k] for x in runs) / n * 1e6:6.2f} µs/event"
                    + (
                        f"  {rows:7.0f} rows, {statistics.median(x[k] for x in runs) / rows * 1e6:5.1f} µs a row"
                        if rows
                        else ""
                    )
                )
    finally:
        if server is not None:
            import pgserver

            pgserver.stop(server)


def scale(rounds: int, sizes: list[tuple[int, int]], engine: str = "sqlcipher") -> None:
    server = None
    if engine == "postgresql":
        import pgserver

        server = pgserver.start(durable=True)
    try:
        _scale(rounds, sizes, engine, server)
    finally:
        if server is not None:
            import pgserver

            pgserver.stop(server)


def _scale(rounds: int, sizes: list[tuple[int, int]], engine: str, server: Any) -> None:
    got: dict[tuple[int, int], list[dict[str, float]]] = {s: [] for s in sizes}
    loads: dict[tuple[int, int], list[float]] = {s: [] for s in sizes}
    for r in range(rounds):
        for devices, events in sizes:
            order = "sha,import" if r % 2 == 0 else "import,sha"
            args = ["once-scale", str(devices), str(events), order]
            if server is not None:  # a fresh database each run, dropped with the server at the end
                args += [
                    server.new_database(),
                    (server.root / "data" / "postmaster.pid").read_text().split()[0],
                ]
            load0 = os.getloadavg()[0]
            got[(devices, events)].append(_run(args))
            loads[(devices, events)] += [load0, os.getloadavg()[0]]
            print(
                devices,
                events,
                r,
                got[(devices, events)][-1],
                f"load {load0:.1f} -> {loads[(devices, events)][-1]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"hub import on {engine} at each size, {rounds} rounds, sha256sum alternated (first each other round)"
        + ("; CPU = client + server (fsync on)" if server is not None else "")
    )
    for s in sizes:
        runs, n = got[s], s[0] * s[1]
        ratio = [x["cpu"] / x["sha_cpu"] for x in runs]
        rest = [x["rest_cpu_per_event"] / (x["sha_cpu"] / n) for x in runs]
        fixed = ", ".join(f"{x['fixed_cpu']:.2f}" for x in runs)
        print(
            f"  {s[0]} x {s[1]:,}: CPU {statistics.median(x['cpu'] for x in runs) / n * 1e6:.1f} µs/event,"
            f" wall {statistics.median(x['wall'] for x in runs) / n * 1e6:.1f};"
            f" x sha256sum {statistics.median(ratio):.1f} ({', '.join(f'{x:.1f}' for x in ratio)});"
            f" after the first bundle {statistics.median(x['rest_cpu_per_event'] for x in runs) * 1e6:.1f} µs/event"
            f" (x sha256sum {statistics.median(rest):.1f});"
            f" once per process {statistics.median(x['fixed_cpu'] for x in runs):.2f} s CPU"
            f" ({fixed}), startup {statistics.median(x['startup_cpu'] for x in runs):.2f} s;"
            f" sha256sum {statistics.median(x['sha_cpu'] for x in runs) / n * 1e6:.2f} µs/event;"
            + (
                f" server {statistics.median(x['server_cpu'] for x in runs) / n * 1e6:.1f} µs/event;"
                if server is not None
                else ""
            )
            + f" load {min(loads[s]):.1f}-{max(loads[s]):.1f}"
        )


def main() -> None:
    a = sys.argv[1:]
    if a and a[0] == "rows":
        rows_of(Path(a[1]), [Path(x) for x in a[3:]], Path(a[2]))
        return
    if a and a[0] == "once-floors":
        dsns, pid = (a[5:9], int(a[9])) if len(a) > 5 else (["", "", "", ""], 0)
        print(json.dumps(once_floors(a[1], int(a[2]), int(a[3]), a[4], dsns, pid)))
        return
    if a and a[0] == "once-scale":
        dsn, pid = (a[4], int(a[5])) if len(a) > 4 else ("", 0)
        print(json.dumps(once_scale(int(a[1]), int(a[2]), a[3], dsn, pid)))
        return
    opts = dict(zip(a[1::2], a[2::2], strict=False))
    if a and a[0] == "floors":
        floors(
            opts.get("--engine", "sqlcipher"),
            int(opts.get("--rounds", 3)),
            int(opts.get("--devices", 10)),
            int(opts.get("--events", 2000)),
        )
        return
    if a and a[0] == "scale":
        sizes = [
            tuple(int(x) for x in s.split("x"))
            for s in opts.get("--sizes", "10x2000,100x1000,100x10000").split(",")
        ]
        scale(int(opts.get("--rounds", 2)), [(s[0], s[1]) for s in sizes], opts.get("--engine", "sqlcipher"))
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
