"""Cutting this device's own events into bundles for a peer, and rebuilding them.

A device's chain is cut into consecutive bundles per peer (the ward's hub,
or one ward for the hub's outbound bundles). Each cut is remembered in
`sync_outbox` with its manifest, so a bundle can be rebuilt byte-identical
inside (same manifest, events, photos, SHA256SUMS and signature) whenever it
must be sent again, until the peer's receipt covers it. Only the events
after the last cut are read, through the (device, seq) index: the cost of
an export follows the new events, not the history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from wardcrf import devicekeys
from wardcrf.canonical import dumps
from wardcrf.clock import now_utc
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.store import Store

from . import bundle, evidencestore, photostore

DEFAULT_LIMIT = 100 * 1024 * 1024
_TAR_OVERHEAD = 512 * 8 + 10240


@dataclass
class Cut:
    bundle_seq: int
    first: int
    last: int
    prev: str
    chain_last: str
    photos: list[str]
    size: int
    evidence: list[str]


def _created() -> str:
    return now_utc().isoformat(timespec="milliseconds")


def plan(
    store: Store,
    peer: str,
    recipients: list[str],
    *,
    limit: int = DEFAULT_LIMIT,
    protocol: dict[str, str] | None = None,
    kind: str = "events",
) -> list[dict[str, Any]]:
    """Cut new events of this device into outbox bundles for `peer`; returns the new rows."""
    site, device = store.one("SELECT site, device FROM site WHERE id = 1") or ("", "")
    keys = devicekeys.load(store, device)
    if keys is None:
        raise Refused(f"device {device} has no signing keys")
    with store.transaction():
        row = store.one(
            "SELECT bundle_seq, last_seq, manifest_sha FROM sync_outbox WHERE peer = ?"
            " ORDER BY bundle_seq DESC LIMIT 1",
            (peer,),
        )
        bseq, after, prev_sha = (row[0], row[1], row[2]) if row else (0, 0, "")
        cuts: list[Cut] = []
        cur: Cut | None = None
        photo_sizes: dict[str, int] = {}
        evidence_sizes: dict[str, int] = {}
        cursor = store.execute(
            "SELECT seq, prev, hash, line FROM events WHERE device = ? AND seq > ? ORDER BY seq",
            (device, after),
        )
        for seq, prev, hash_, line in cursor:
            refs = bundle.photo_refs([line]) if "sha256" in line else []
            logs = bundle.evidence_refs([line])
            add = len(line) + 1
            for digest in refs:
                if digest not in photo_sizes:
                    photo_sizes[digest] = len(photostore.load_original(store, digest)[1])
            for digest, name in logs.items():
                if digest not in evidence_sizes:
                    evidence_sizes[digest] = len(evidencestore.load(store, digest, name)[1])
            if cur is not None:
                add += sum(photo_sizes[d] + 512 for d in refs if d not in cur.photos)
                add += sum(evidence_sizes[d] + 512 for d in logs if d not in cur.evidence)
                if cur.size + add > limit:
                    cuts.append(cur)
                    cur = None
            if cur is None:
                bseq += 1
                cur = Cut(bseq, seq, seq, prev, hash_, [], _TAR_OVERHEAD, [])
                add = len(line) + 1 + sum(photo_sizes[d] + 512 for d in refs)
                add += sum(evidence_sizes[d] + 512 for d in logs)
            cur.last, cur.chain_last, cur.size = seq, hash_, cur.size + add
            for d in refs:
                if d not in cur.photos:
                    cur.photos.append(d)
            for d in logs:
                if d not in cur.evidence:
                    cur.evidence.append(d)
        if cur is not None:
            cuts.append(cur)
        created = _created()
        rows = []
        for c in cuts:
            m = {
                "format": bundle.FORMAT,
                "kind": kind,
                "site": site,
                "device": device,
                "key_id": keys.key_id,
                "bundle_seq": c.bundle_seq,
                "prev_manifest": prev_sha,
                "events": {"first": c.first, "last": c.last, "count": c.last - c.first + 1},
                "chain_first_prev": c.prev,
                "chain_last": c.chain_last,
                "protocol": protocol,
                "created": created,
                "recipients": sorted(set(recipients)),
                "photos": sorted(c.photos),
                "to": peer,
            }
            if c.evidence:  # only when present, so bundles without logger files keep their old bytes
                m["evidence"] = sorted(c.evidence)
            manifest = dumps(m) + "\n"
            prev_sha = bundle.sha256(manifest.encode("utf-8"))
            store.execute(
                "INSERT INTO sync_outbox (peer, bundle_seq, first_seq, last_seq, chain_last, manifest,"
                " manifest_sha, size, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (peer, c.bundle_seq, c.first, c.last, c.chain_last, manifest, prev_sha, c.size, created),
            )
            rows.append(
                {"bundle_seq": c.bundle_seq, "first_seq": c.first, "last_seq": c.last, "manifest": manifest}
            )
    return rows


def pending(store: Store, peer: str) -> list[dict[str, Any]]:
    """Outbox bundles for `peer` not yet covered by a receipt, oldest first."""
    return store.rows(
        "SELECT * FROM sync_outbox WHERE peer = ? AND receipted_at IS NULL ORDER BY bundle_seq", (peer,)
    )


def unreceipted(store: Store, peer: str) -> int:
    """How many outbox bundles for `peer` await a receipt (`pending`'s length, from its index alone)."""
    return int(
        store.scalar("SELECT count(*) FROM sync_outbox WHERE peer = ? AND receipted_at IS NULL", (peer,)) or 0
    )


def materialize(store: Store, row: dict[str, Any], signer: DeviceSigner) -> tuple[str, bytes, bytes]:
    """(file name, .tar.age bytes, .minisig bytes) of an outbox bundle, rebuilt from the database.

    `signer` is `devicekeys.signer(session)`: only a role that may sign has one.
    """
    return bundle.seal(*_sealing_inputs(store, row, signer))


def file_name(row: dict[str, Any]) -> str:
    """The bundle file name of an outbox row (known before the bundle is sealed)."""
    m = json.loads(row["manifest"])
    return bundle.bundle_name(m["site"], m["device"], m["bundle_seq"])


def materialize_into(
    store: Store, row: dict[str, Any], signer: DeviceSigner, out: BinaryIO
) -> tuple[str, bytes]:
    """`materialize`, streaming the .tar.age bytes into `out`; returns (file name, .minisig bytes)."""
    return bundle.seal_into(out, *_sealing_inputs(store, row, signer))


def _sealing_inputs(
    store: Store, row: dict[str, Any], signer: DeviceSigner
) -> tuple[bytes, list[str], dict[str, tuple[str, bytes]], str, dict[str, tuple[str, bytes]]]:
    device = store.scalar("SELECT device FROM site WHERE id = 1")
    if signer.device != device:
        raise Refused(f"a signer for device {signer.device} cannot sign device {device}'s bundles")
    manifest = row["manifest"].encode("utf-8")
    m = json.loads(manifest)
    lines = [
        r[0]
        for r in store.execute(
            "SELECT line FROM events WHERE device = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (device, row["first_seq"], row["last_seq"]),
        )
    ]
    if len(lines) != row["last_seq"] - row["first_seq"] + 1:
        raise Refused(f"events {row['first_seq']}-{row['last_seq']} of this device are not all present")
    photos = {d: photostore.load_original(store, d) for d in m["photos"]}
    names = bundle.evidence_refs(lines)
    evidence = {d: evidencestore.load(store, d, names.get(d, "")) for d in m.get("evidence") or []}
    return manifest, lines, photos, signer.minisign_secret, evidence
