"""Foundation benchmarks: open + unlock, single and bulk append, verify, rebuild.

Every figure times the real operation on real records (forms with their
projectors: records, participants, doses, vitals, photo bindings; see
`generate.py`), alternated in one loop with a baseline doing the same work
with the standard library on the same rows:

- open + unlock: `Site.unlock` (scrypt key slot, AES-GCM unwrap, SQLCipher
  open, schema check, rollback counter) vs `hashlib.scrypt` with the key
  slot's parameters plus stdlib `sqlite3` opening a plain copy of the same
  database and reading its schema;
- single append + commit: one vitals record through `records.submit`
  (canonical line, chain, body schema, projectors, one fsync'd commit) vs
  stdlib building the same canonical line (sorted JSON), hashing it and
  inserting the event row and the record row in one committed transaction
  (WAL, synchronous=FULL, as wardcrf);
- bulk append: the same per record, 1 commit per batch, both sides;
- audit verify: `eventlog.verify_chains` vs stdlib reading every line of the
  plain copy in chain order, hashing it (SHA-256) and parsing it (json);
- db rebuild: `projections.rebuild` vs the same read + hash + parse floor
  (the issue's floor for whole-database jobs).

Costs are per event (µs) unless the row says otherwise; the plain copy is made
with SQLCipher's own `sqlcipher_export`, so both sides read identical rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from generate import EVENTS_PER_PARTICIPANT, RECORDS_PER_PARTICIPANT, generate, new_site, participant_records
from measure import alternate, once, row, single_row

from wardcrf import canonical, eventlog, features, keyslots, projections, records, sessionkeys
from wardcrf.canonical import GENESIS
from wardcrf.site import Site
from wardcrf.store import Store

PASSWORD = "bench-password-1"


def plain_copy(store: Store, path: Path) -> Path:
    """An unencrypted copy of the same database, for the stdlib baselines (bench only)."""
    path.unlink(missing_ok=True)
    store.execute(f"ATTACH DATABASE '{path}' AS plain KEY ''")
    try:
        store.execute("SELECT sqlcipher_export('plain')")
    finally:
        store.execute("DETACH DATABASE plain")
    return path


def stdlib_log(path: Path) -> sqlite3.Connection:
    """A stdlib database shaped like the event log and the records projection (baseline writes)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (pos INTEGER PRIMARY KEY, id TEXT UNIQUE, device TEXT,"
        " seq INTEGER, prev TEXT, hash TEXT, type TEXT, subject TEXT, line TEXT, UNIQUE (device, seq))"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS records (event_id TEXT PRIMARY KEY, form TEXT, subject TEXT, data TEXT)"
    )
    return conn


class StdlibAppender:
    """The stdlib floor of appending a record: canonical line, SHA-256, event row, record row."""

    def __init__(self, conn: sqlite3.Connection, device: str = "STDLIB01") -> None:
        self.conn, self.device, self.seq, self.prev = conn, device, 0, GENESIS
        self.encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

    def append(self, form: str, data: dict[str, Any], subject: str) -> None:
        self.seq += 1
        eid = f"{self.device}-{self.seq}"
        body = {"form": form, "data": data}
        rest = self.encode(
            {
                "amends": None,
                "body": body,
                "device": self.device,
                "hlc": f"{1700000000000 + self.seq:015d}.00000",
                "id": eid,
                "protocol": None,
                "reason": None,
                "role": "clinician",
                "seq": self.seq,
                "site": "BENCH",
                "subject": subject,
                "ts": "2026-01-01T00:00:00.000Z",
                "type": "record.submitted",
                "tz": "+08:00",
                "user": "clinician",
                "zone": "Asia/Shanghai",
            }
        )
        line = '{"prev":"' + self.prev + '",' + rest[1:]
        digest = hashlib.sha256(line.encode()).hexdigest()
        self.conn.execute(
            "INSERT INTO events (id, device, seq, prev, hash, type, subject, line) VALUES (?,?,?,?,?,?,?,?)",
            (eid, self.device, self.seq, self.prev, digest, "record.submitted", subject, line),
        )
        self.conn.execute(
            "INSERT INTO records (event_id, form, subject, data) VALUES (?,?,?,?)",
            (eid, form, subject, self.encode(data)),
        )
        self.prev = digest


def read_hash_parse(path: Path, order: str = "device, seq") -> int:
    """The stdlib floor of a whole-log job: read every line, SHA-256 it, parse it."""
    conn = sqlite3.connect(path)
    n = 0
    sha, loads = hashlib.sha256, json.loads
    for (line,) in conn.execute(f"SELECT line FROM events ORDER BY {order}"):
        sha(line.encode()).hexdigest()
        loads(line)
        n += 1
    conn.close()
    return n


def run(quick: bool = False) -> list[dict]:
    features.install()  # a benchmark is a program: it installs the features before it opens a site
    n_single = 100 if quick else 400
    n_base = 20_000 if quick else 100_000
    batches, per_batch = (4, 100) if quick else (6, 200)  # participants per bulk batch
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s = new_site(root / "site")
        site = Site.open(root / "site")
        sample, (_n, written) = once(lambda: generate(s, n_base, batch=500, in_treatment=0))
        rows.append(
            single_row(
                f"set-up: generate {written:,} real record events (real append path, 500 participants"
                " per commit)",
                sample,
                unit="µs/event",
                scale=1e6 / written,
                note="set-up, no baseline",
            )
        )
        next_pid = written // EVENTS_PER_PARTICIPANT + 1

        # -- open + unlock vs scrypt with the slot's parameters + stdlib open of the same rows
        s.store.checkpoint()
        plain = plain_copy(s.store, root / "plain.db")
        salt = b"\x00" * 16

        def unlock(_: int) -> None:
            site.unlock("clinician", PASSWORD).close()

        def open_plain(_: int) -> None:
            hashlib.scrypt(
                PASSWORD.encode(),
                salt=salt,
                n=keyslots.SCRYPT_N,
                r=keyslots.SCRYPT_R,
                p=keyslots.SCRYPT_P,
                maxmem=256 * 1024 * 1024,
                dklen=32,
            )
            c = sqlite3.connect(plain)
            c.execute("SELECT count(*) FROM sqlite_master").fetchone()
            c.close()

        pair = alternate(unlock, open_plain, 9)
        rows.append(
            row(
                "open + unlock (scrypt slot + SQLCipher + schema + rollback counter)",
                pair,
                unit="ms",
                scale=1000,
                target="≤ 500 ms",
                baseline_name="hashlib.scrypt, same N/r/p, + sqlite3 open of a plain copy",
            )
        )

        # -- single append + commit: one real vitals record vs the stdlib floor of the same
        std = stdlib_log(root / "std.db")
        appender = StdlibAppender(std)
        vitals = next(fd for fd in participant_records(0) if fd[0] == "vitals")[1]

        def ours_single(i: int) -> None:
            records.submit(s, "vitals", vitals, subject=f"participant:BENCH-{1 + i % 50:05d}")

        def base_single(i: int) -> None:
            std.execute("BEGIN")
            appender.append("vitals", vitals, f"participant:BENCH-{1 + i % 50:05d}")
            std.execute("COMMIT")

        pair = alternate(ours_single, base_single, n_single)
        rows.append(
            row(
                "single append + commit (vitals record, projectors, fsync), median",
                pair,
                unit="ms",
                scale=1000,
                target="p99 ≤ 10 ms",
                baseline_name="stdlib: canonical JSON + SHA-256 + event and record rows, committed",
            )
        )

        # -- what the rollback counter adds to a commit: the same vitals event appended on the
        # same database through the sign-in's connection (with the counter) and through a bare
        # connection (without), alternated in one loop.
        bare = Store(site.db_path, sessionkeys.database_key(s))
        body = {"form": "vitals", "data": vitals}

        def with_counter(i: int) -> None:
            with s.store.transaction():
                eventlog.append(
                    s.store,
                    s.ctx,
                    s.author,
                    type="record.submitted",
                    subject=f"participant:BENCH-{1 + i % 50:05d}",
                    body=body,
                )

        def without_counter(i: int) -> None:
            with bare.transaction():
                eventlog.append(
                    bare,
                    s.ctx,
                    s.author,
                    type="record.submitted",
                    subject=f"participant:BENCH-{1 + i % 50:05d}",
                    body=body,
                )

        pair = alternate(with_counter, without_counter, n_single)
        bare.close()
        rows.append(
            row(
                "single append + commit, with the rollback counter",
                pair,
                unit="ms",
                scale=1000,
                target="",
                baseline_name="the same append through a connection without the counter",
            )
        )

        # -- what the text floor (no control, bidi or zero-width character in any event) adds to
        # a bulk append: the same batches with the floor and with a plain canonical line. One
        # note in ten has a line break, so the floor walks the body as free text makes it.
        checked_line = eventlog._checked_line
        n_floor = 1000

        def floor_batch(on: bool) -> None:
            if not on:
                eventlog._checked_line = canonical.event_line  # type: ignore[assignment]
            try:
                with s.store.transaction():
                    for i in range(n_floor):
                        note = dict(vitals, notes="line one\nline two" if i % 10 == 0 else "one line")
                        eventlog.append(
                            s.store,
                            s.ctx,
                            s.author,
                            type="record.submitted",
                            subject="participant:BENCH-00001",
                            body={"form": "vitals", "data": note},
                        )
            finally:
                eventlog._checked_line = checked_line  # type: ignore[assignment]

        pair = alternate(
            lambda _: floor_batch(True), lambda _: floor_batch(False), 4 if quick else 6, per=n_floor
        )
        rows.append(
            row(
                f"bulk append with the text floor, {n_floor:,} events per batch",
                pair,
                unit="µs/event",
                scale=1e6,
                target="",
                baseline_name="the same batches with a plain canonical line (no floor)",
            )
        )

        # -- bulk append: batches of whole participants (23 records each), one commit per batch
        batch_events = per_batch * RECORDS_PER_PARTICIPANT
        counter = {"pid": next_pid, "std": 100_000_000}

        def ours_bulk(_: int) -> None:
            with s.store.transaction():
                for _p in range(per_batch):
                    subject = f"participant:BENCH-{counter['pid']:05d}"
                    for form, data in participant_records(counter["pid"]):
                        records.submit(s, form, data, subject=subject)
                    counter["pid"] += 1

        def base_bulk(_: int) -> None:
            std.execute("BEGIN")
            for _p in range(per_batch):
                subject = f"participant:STD-{counter['std']}"
                for form, data in participant_records(counter["std"]):
                    appender.append(form, data, subject)
                counter["std"] += 1
            std.execute("COMMIT")

        pair = alternate(ours_bulk, base_bulk, batches, per=batch_events)
        rows.append(
            row(
                f"bulk append, real records, {batches} batches x {batch_events:,} events, one commit each",
                pair,
                unit="µs/event",
                scale=1e6,
                target="≥ 20,000 events/s = ≤ 50 µs/event",
                baseline_name="stdlib: same lines, hashes, event and record rows",
            )
        )
        std.close()

        # -- whole-log jobs, on every event now in the log
        s.store.checkpoint()
        plain = plain_copy(s.store, root / "plain.db")
        total = eventlog.count(s.store)

        def verify(_: int) -> None:
            n, problems = eventlog.verify_chains(s.store)
            assert n == total and not problems, problems

        pair = alternate(verify, lambda _: read_hash_parse(plain), 3 if quick else 5, per=total)
        rows.append(
            row(
                f"audit verify (every chain), {total:,} events",
                pair,
                unit="µs/event",
                scale=1e6,
                target="",
                baseline_name="stdlib: read, SHA-256 and json-parse the same lines",
            )
        )

        def rebuild(_: int) -> None:
            assert projections.rebuild(s.store) == total

        pair = alternate(rebuild, lambda _: read_hash_parse(plain, "pos"), 3, per=total)
        rows.append(
            row(
                f"db rebuild, {total:,} events",
                pair,
                unit="µs/event",
                scale=1e6,
                target="≤ 4x the floor",
                baseline_name="stdlib: read, SHA-256 and json-parse the same lines",
            )
        )
        n, diffs = projections.check(s.store)
        assert n == total and not diffs, diffs[:3]
        s.close()
    return rows


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(r)
