"""The hub's ledger on either engine, for the tests that run the same steps on SQLCipher and PostgreSQL.

A ledger here is the hub's identity (site row, public signing key) and the
tables the transparency log and the bundle ledger use, in a SQLCipher store
with wardcrf's whole schema or in a PostgreSQL database with hub_pg.sql.
`worker` is the body of one importing process of the concurrency tests
(`python ledgerkit.py SPEC`): the ledger step of an apply, under the
device's lock, and the log leaf written in the same transaction.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wardcrf.sync import hublog
from wardcrf.sync.pgstore import PgStore

from wardcrf import canonical, eventlog
from wardcrf.clock import HLC, iso_utc, now_utc
from wardcrf.devicekeys import DeviceSigner
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

HUB_SITE, HUB_DEVICE = "HUB", "hub-dev-1"


@dataclass(frozen=True)
class Where:
    """How to open one ledger: an engine and its location (a DSN, or a file and its key)."""

    engine: str
    dsn: str = ""
    path: str = ""
    key_hex: str = ""

    def open(self) -> SqlStore:
        if self.engine == "postgresql":
            return PgStore(self.dsn)
        return Store(Path(self.path), bytes.fromhex(self.key_hex))


def hub_signer() -> DeviceSigner:
    """A fresh hub signing identity (`HUB_DEVICE`) for a ledger `create` makes."""
    from wardcrf import devicekeys

    keys = devicekeys.generate(HUB_DEVICE)
    return DeviceSigner(keys.device, keys.key_id, keys.sign_public, keys.sign_secret)


def where_for(engine: str, tmp_path: Path, request: Any = None) -> Where:
    """A new, empty place for a ledger on `engine`: a database of the session's PostgreSQL server
    (`request`'s `pg_server` fixture), or a SQLCipher file under `tmp_path` with a random key."""
    if engine == "postgresql":
        return Where("postgresql", dsn=request.getfixturevalue("pg_server").new_database())
    return Where(
        "sqlcipher", path=str(tmp_path / f"hub-{os.urandom(4).hex()}.db"), key_hex=os.urandom(32).hex()
    )


def create(where: Where, signer: DeviceSigner) -> SqlStore:
    """A new ledger with the hub's identity: the schema migrated, the site row, the public key."""
    store = where.open()
    store.migrate()
    now = iso_utc(now_utc())
    with store.transaction():
        store.execute(
            "INSERT INTO site (id, site, device, device_name, kind, zone, created_at)"
            " VALUES (1, ?, ?, 'hub', 'hub', 'UTC', ?)",
            (HUB_SITE, HUB_DEVICE, now),
        )
        if where.engine == "postgresql":
            store.execute(
                "INSERT INTO device_keys (device, sign_public, key_id, created_at) VALUES (?,?,?,?)",
                (HUB_DEVICE, signer.sign_public, signer.key_id, now),
            )
        else:
            store.execute(
                "INSERT INTO device_keys (device, sign_secret, sign_public, key_id, age_identity, age_recipient,"
                " created_at) VALUES (?, 'not-read-here', ?, ?, '', '', ?)",
                (HUB_DEVICE, signer.sign_public, signer.key_id, now),
            )
    return store


def apply_step(store: SqlStore, device: str, bundle_seq: int, manifest_sha: str) -> str:
    """The ledger's part of applying one bundle: applied, already (a replay) or fork (held), exactly once.

    What the hub's engine does for a bundle's ledger row (`sync.engine`),
    reduced to the ledger: under the device's lock, the bundle's row is read;
    absent, the bundle is recorded and logged; present with the same
    manifest, nothing changes; with another, the manifest is held as a fork
    (once) and logged.
    """
    with store.transaction():
        store.lock(f"device:{device}")
        got = store.scalar(
            "SELECT manifest_sha FROM sync_applied WHERE device = ? AND bundle_seq = ?", (device, bundle_seq)
        )
        if got == manifest_sha:
            return "already"
        now = iso_utc(now_utc())
        if got is None:
            store.execute(
                "INSERT INTO sync_applied (device, bundle_seq, manifest_sha, first_seq, last_seq, chain_last,"
                " file, applied_at) VALUES (?,?,?,?,?,?,?,?)",
                (device, bundle_seq, manifest_sha, bundle_seq * 10 - 9, bundle_seq * 10, "c" * 64, None, now),
            )
            hublog.log_bundle(store, device, bundle_seq, "applied")
            return "applied"
        if store.scalar(
            "SELECT 1 FROM sync_held WHERE device = ? AND bundle_seq = ? AND manifest_sha = ?",
            (device, bundle_seq, manifest_sha),
        ):
            return "already"
        store.execute(
            "INSERT INTO sync_held (device, bundle_seq, manifest_sha, reason, file, detail, received_at)"
            " VALUES (?,?,?,'fork',?,?,?)",
            (device, bundle_seq, manifest_sha, f"{device}-{bundle_seq}.tar.age", "a fork", now),
        )
        hublog.log_bundle(store, device, bundle_seq, "fork")
        return "fork"


def note_events(device: str, first: int, count: int, prev: str = canonical.GENESIS) -> list[eventlog.Event]:
    """`count` real event lines of a ward device's chain from seq `first` (after `prev`): scratch notes.

    Canonical lines, chained and hashed as a ward writes them, of a type
    with no projections: the event log's own rules (continuity, hashes,
    append-only) are what these exercise, on either engine.
    """
    out = []
    for seq in range(first, first + count):
        fields = {
            "amends": None,
            "body": {},
            "device": device,
            "hlc": HLC(1_790_000_000_000 + seq, 0).encode(),
            "id": f"{device}-{seq}",
            "protocol": None,
            "reason": None,
            "role": "nurse",
            "seq": seq,
            "site": "WUH01",
            "subject": "site:WUH01",
            "ts": "2026-12-06T10:00:00Z",
            "type": "note.added",
            "tz": "+00:00",
            "user": "n.nurse",
            "zone": "UTC",
        }
        event = eventlog.Event.from_line(canonical.event_line(prev, fields))
        out.append(event)
        prev = event.hash
    return out


def chain(
    device: str, first: int, steps: list[dict[str, Any]], prev: str = canonical.GENESIS
) -> list[eventlog.Event]:
    """Real event lines of a ward device's chain from seq `first`: each step's fields over a clinician's
    defaults (type, subject, body, role, user, amends, reason), chained and hashed as a ward writes them."""
    out = []
    for i, step in enumerate(steps):
        seq = first + i
        fields = {
            "amends": None,
            "body": {},
            "device": device,
            "hlc": HLC(1_790_000_000_000 + seq * 1000, 0).encode(),
            "id": f"{device}-{seq}",
            "protocol": {"id": "MEXCOVID", "version": "1.0"},
            "reason": None,
            "role": "clinician",
            "seq": seq,
            "site": "WUH01",
            "subject": None,
            "ts": f"2026-12-06T{8 + seq // 60 % 12:02d}:{seq % 60:02d}:00Z",
            "tz": "+08:00",
            "user": "clin",
            "zone": "Asia/Shanghai",
            **step,
        }
        event = eventlog.Event.from_line(canonical.event_line(prev, fields))
        out.append(event)
        prev = event.hash
    return out


def participant_of(device: str) -> str:
    """The participant a scratch ward device enrolls: one of its own (`WUH01-<its number>`)."""
    return f"WUH01-{int(''.join(c for c in device if c.isdigit()) or 0) + 1:03d}"


def record_steps(device: str, bundle_seq: int, first: int) -> list[dict[str, Any]]:
    """A MEXCOVID participant's path, a bundle at a time, as the ward's services record it:

    1. the protocol loaded, the consent (creating the participant) signed by the clinician and two
       witnesses, the screening (eligible);
    2. the enrollment, a negative skin test, pre-dose vitals, dose 1, post-dose vitals;
    3. an adverse event, and a correction of the post-dose pulse (with its reason).
    """
    from wardcrf.protocol import default_protocol

    pid = participant_of(device)
    subject = f"participant:{pid}"

    def record(form: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"type": "record.submitted", "subject": subject, "body": {"form": form, "data": data, **extra}}

    if bundle_seq == 1:
        p = default_protocol()
        consent = f"{device}-{first + 1}"
        signers = [("clin", "Cathy Clinician", "clinician"), ("inv", "Ivan Investigator", "investigator"),
                   ("clin2", "Chen Clinician", "clinician")]  # fmt: skip
        return [
            {"type": "protocol.loaded", "subject": f"protocol:{p.id}", "role": "admin", "user": "admin",
             "protocol": None, "body": {"protocol_id": p.id, "version": p.version, "sha256": p.sha256,
                                        "filename": p.filename, "source": p.source}},
            record("consent", {"consenter": "participant", "form_version": "1.0", "time": "2026-12-06T08:30:00+08:00",
                               "witness_1": "inv", "witness_2": "clin2", "photos": []}, creates_participant=True),
            *[{"type": "signature.applied", "subject": subject, "user": u, "role": role,
               "body": {"target": consent, "signed_hash": "c" * 64, "meaning": "witnessed", "signer": u,
                        "full_name": name}} for u, name, role in signers],
            record("screening", {"date": "2026-12-06", "dob": "1961-03-04", "sex": "F", "pcr_confirmed": True,
                                 "pcr_date": "2026-12-04", "severity": "severe", "eligible": True,
                                 "failed_criteria": []}),
        ]  # fmt: skip
    if bundle_seq == 2:
        kit = f"EXO-{device.upper()}"
        return [
            record("enrollment", {"date": "2026-12-06"}),
            record("skin_test", {"time": "2026-12-06T15:00:00+08:00", "result": "negative", "wheal": 3}),
            record("vitals", {"timepoint": "pre_dose", "dose": 1, "time": "2026-12-07T08:45:00+08:00",
                              "temp": 36.8, "pulse": 82, "resp": 20, "oxysat": 95, "sysbp": 128, "diabp": 78}),
            record("dose", {"dose_number": 1, "kit_id": kit, "lot": "HAMSC-2003-01", "particles": 2.0e8,
                            "volume": 6, "start": "2026-12-07T09:00:00+08:00", "end": "2026-12-07T09:30:00+08:00",
                            "given_by": "clin", "day": 1, "due": "2026-12-07T09:00:00+08:00", "window": "on_time"}),
            record("vitals", {"timepoint": "post_dose", "dose": 1, "time": "2026-12-07T10:15:00+08:00",
                              "temp": 37.4, "pulse": 88, "resp": 20, "oxysat": 96}),
        ]  # fmt: skip
    post_vitals = f"{device}-{first - 1}"
    return [
        record("ae", {"term": "Low-grade fever after inhalation", "prespecified": "fever", "dose": 1,
                      "onset": "2026-12-07", "end": "2026-12-08", "grade": 1, "serious": False,
                      "causality": "possible", "action": "none", "outcome": "recovered",
                      "first_known": "2026-12-07"}),
        {"type": "record.amended", "subject": subject, "amends": post_vitals, "reason": "misread the monitor",
         "body": {"form": "vitals", "changes": {"pulse": {"old": 88, "new": 86}}}},
    ]  # fmt: skip


def ingest_step(store: SqlStore, device: str, bundle_seq: int, per_bundle: int = 5) -> str:
    """A bundle's events appended to the log with its ledger row and log leaf, exactly once.

    Under the device's lock: a bundle already applied answers "already";
    else its events (`per_bundle` notes continuing the device's chain) go
    through `eventlog.ingest_many`, which checks they continue the chain
    as the log holds it, in the same transaction as the ledger row.
    """
    with store.transaction():
        store.lock(f"device:{device}")
        if store.scalar(
            "SELECT 1 FROM sync_applied WHERE device = ? AND bundle_seq = ?", (device, bundle_seq)
        ):
            return "already"
        first = (bundle_seq - 1) * per_bundle + 1
        prev = eventlog.head(store, device)[1]
        events = note_events(device, first, per_bundle, prev)
        eventlog.ingest_many(store, events)
        return _ledger_row(store, device, bundle_seq, first, events)


def records_step(store: SqlStore, device: str, bundle_seq: int) -> str:
    """`ingest_step` with a participant's records (`record_steps`): projected, and the import's
    after-ingest checks run, in the bundle's transaction, exactly once."""
    from wardcrf import ingest

    with store.transaction():
        store.lock(f"device:{device}")
        if store.scalar(
            "SELECT 1 FROM sync_applied WHERE device = ? AND bundle_seq = ?", (device, bundle_seq)
        ):
            return "already"
        seq, prev = eventlog.head(store, device)
        events = chain(device, seq + 1, record_steps(device, bundle_seq, seq + 1), prev)
        eventlog.ingest_many(store, events)
        ingest.after_ingest(store, events)
        return _ledger_row(store, device, bundle_seq, seq + 1, events)


def _ledger_row(
    store: SqlStore, device: str, bundle_seq: int, first: int, events: list[eventlog.Event]
) -> str:
    """The bundle's ledger row and log leaf, in the caller's transaction."""
    store.execute(
        "INSERT INTO sync_applied (device, bundle_seq, manifest_sha, first_seq, last_seq, chain_last,"
        " file, applied_at) VALUES (?,?,?,?,?,?,?,?)",
        (device, bundle_seq, f"{device}-{bundle_seq}".ljust(64, "0"), first, first + len(events) - 1,
         events[-1].hash, None, iso_utc(now_utc())),
    )  # fmt: skip
    hublog.log_bundle(store, device, bundle_seq, "applied")
    return "applied"


def worker(spec: dict[str, Any]) -> None:
    """One importing process: apply its bundles in order, print each outcome, sign a checkpoint.

    With ``pause_after`` it stops inside the transaction of that bundle,
    after its writes, says ``paused`` and waits for stdin: the SIGKILL test's
    moment.
    """
    where = Where(**spec["where"])
    signer = DeviceSigner(**spec["signer"])
    store = where.open()
    try:
        for device, seq, sha in spec["bundles"]:
            if spec.get("pause_after") == [device, seq]:
                with store.transaction():
                    store.lock(f"device:{device}")
                    apply_step(store, device, seq, sha)
                    print("paused", flush=True)
                    sys.stdin.readline()
                    raise SystemExit(3)
            if spec.get("records"):
                step = records_step(store, device, seq)
            elif spec.get("events"):
                step = ingest_step(store, device, seq)
            else:
                step = apply_step(store, device, seq, sha)
            print(json.dumps([device, seq, step]), flush=True)
        hublog.sign_checkpoint(store, signer)
    finally:
        store.close()


if __name__ == "__main__":
    import scratch_events  # noqa: F401  (note.added, declared for the event log)

    from wardcrf import features

    features.install()
    worker(json.loads(sys.argv[1]))
