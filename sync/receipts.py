"""Receipts: the hub's signed statement of what it holds for a device.

    {"format":"wardreceipt/1", "hub":..., "site":..., "device":..., "created":...,
     "devices": {"<device>": {"seq":N, "hash":"<chain hash>", "bundle_seq":B, "manifest":"<sha>"}},
     "held": [...], "forks": [...], "status": "active|flagged|retired"}
    (+ "clashes": [...] when the hub holds bundles of this device that would merge two
    participants under one id; + "held_rules": [...] when it holds bundles whose records
    break the protocol's sequencing; + "tlog": the hub's signed checkpoint, inclusion
    proofs of this device's bundles and consistency proofs, see `hublog`)

Signed (prehashed minisign) by the hub key; the trusted comment binds the
device, seq, chain hash and the SHA-256 of the JSON. A ward marks its outbox
bundles receipted only when the hash at that seq is its own: a hub holding a
different chain is a fork the ward must hear about.
"""

from __future__ import annotations

import json
from typing import Any

from wardcrf import behind
from wardcrf.canonical import dumps
from wardcrf.clock import iso_utc, now_utc
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

from . import bundle, hublog, signing

FORMAT = "wardreceipt/1"


def receipt_name(site: str, device: str) -> str:
    return f"{site}-{device}-receipt.json"


HEADS_SQL = (
    "SELECT h.device, h.seq, h.hash, a.bundle_seq, a.manifest_sha FROM chain_heads h"
    " JOIN sync_devices d ON d.device = h.device"
    " LEFT JOIN sync_applied a ON a.device = h.device"
    " AND a.bundle_seq = (SELECT max(bundle_seq) FROM sync_applied WHERE device = h.device)"
    " WHERE d.site = ? ORDER BY h.device"
)
"""Every device of the site: its chain head and its last applied bundle, in one statement.

A receipt names them all (the format), so its cost grows with the site's devices; one
statement, each device's last bundle by the (device, bundle_seq) key, keeps that growth to
rows read, not a query per device per import (issue 19)."""


def make(store: SqlStore, device: str, signer: DeviceSigner) -> tuple[str, bytes, bytes]:
    """Hub: (file name, JSON bytes, .minisig bytes) of the receipt for one ward device.

    `signer` is the hub's `devicekeys.signer(session)` (a role that may sign).
    """
    hub_site, hub_dev = store.one("SELECT site, device FROM site WHERE id = 1") or ("", "")
    reg = store.one("SELECT site, status FROM sync_devices WHERE device = ?", (device,))
    if reg is None:
        raise Refused(f"unknown device {device}")
    site, status = reg
    devices: dict[str, Any] = {}
    for dev, seq, hash_, bundle_seq, manifest in store.execute(HEADS_SQL, (site,)):
        devices[dev] = {
            "seq": seq,
            "hash": hash_,
            "bundle_seq": bundle_seq if bundle_seq is not None else 0,
            "manifest": manifest if manifest is not None else "",
        }
    held = store.rows(
        "SELECT bundle_seq, reason, manifest_sha AS manifest, detail FROM sync_held"
        " WHERE device = ? AND resolved_at IS NULL ORDER BY bundle_seq",
        (device,),
    )
    body = {
        "format": FORMAT,
        "hub": hub_dev,
        "hub_site": hub_site,
        "site": site,
        "device": device,
        "created": now_utc().isoformat(timespec="milliseconds"),
        "status": status,
        "devices": devices,
        "held": [h for h in held if h["reason"] == "gap"],
        "forks": [h for h in held if h["reason"] == "fork"],
    }
    clashes = [h for h in held if h["reason"] == "clash"]
    if clashes:  # only when there are any, so receipts stay as they were otherwise
        body["clashes"] = clashes
    broken = [h for h in held if h["reason"] not in ("gap", "fork", "clash")]
    if broken:  # bundles held because their records break the protocol's sequencing
        body["held_rules"] = broken
    log = hublog.receipt_part(store, device)
    if log is not None:  # the hub's signed checkpoint, this device's inclusion and consistency proofs
        body["tlog"] = log
    data = (dumps(body) + "\n").encode("utf-8")
    mine = devices.get(device, {"seq": 0, "hash": ""})
    if signer.device != hub_dev:
        raise Refused(f"a signer for device {signer.device} cannot sign hub {hub_dev}'s receipts")
    comment = f"{FORMAT} device={device} seq={mine['seq']} hash={mine['hash']} sha={bundle.sha256(data)}"
    return receipt_name(site, device), data, signing.sign(signer.minisign_secret, data, comment)


def verify(hub_public: str, data: bytes, sig: bytes) -> dict[str, Any]:
    """Ward: check the hub's signature and binding; returns the receipt body."""
    parsed = signing.verify(hub_public, data, sig, "receipt")
    try:
        body = json.loads(data)
    except ValueError:
        raise Refused("receipt is not JSON") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise Refused(f"receipt format is not {FORMAT}")
    if not parsed.trusted_comment.endswith(f"sha={bundle.sha256(data)}"):
        raise Refused("receipt signature was made for other content")
    return body


def record(store: Store, body: dict[str, Any], hub: dict[str, Any] | None = None) -> str:
    """Ward: apply a verified receipt to the outbox; returns a one-line summary.

    `hub` is the registered hub (device, site, sign_public): with it, the
    receipt's transparency-log part is checked against the checkpoint this
    laptop holds (`hublog.check_receipt`), and what is wrong joins the notices.
    """
    device = store.scalar("SELECT device FROM site WHERE id = 1")
    if body.get("device") != device:
        raise Refused(f"receipt is for device {body.get('device')}, this laptop is {device}")
    mine = (body.get("devices") or {}).get(device) or {"seq": 0, "hash": ""}
    seq, hash_ = int(mine["seq"]), str(mine["hash"])
    notes: list[str] = []
    if hub is not None and "tlog" in body:
        seen = hublog.check_receipt(
            store,
            str(hub["device"]),
            hublog.origin_of(str(hub["site"]), str(hub["device"])),
            str(hub["sign_public"]),
            body["tlog"],
        )
        notes += seen.problems
    with store.transaction():
        own = (
            store.scalar("SELECT hash FROM events WHERE device = ? AND seq = ?", (device, seq)) if seq else ""
        )
        mine = int(store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,)) or 0)
        if seq > mine:
            # The hub holds events this database does not: the file was replaced by an
            # older copy (or restored from an old backup). Not a fork of the hub's
            # making; the events after `mine` exist only at the hub now.
            notes.append(
                f"the hub holds events 1-{seq} of this laptop but this database ends at event {mine}: "
                f"it is an older copy (events {mine + 1}-{seq} are only at the hub); nothing more can be "
                "recorded here until an admin records why (a replacement laptop restored from the hub "
                "keeps them all)"
            )
            behind.stop(store, behind.Behind(mine, seq, "the hub", "receipt"))
        elif seq and own != hash_:
            notes.append(
                f"the hub holds a different event {seq} for this device (fork: this laptop's log was "
                "restored from a copy or cloned); ask the coordinator"
            )
        elif seq:
            store.execute(
                "UPDATE sync_outbox SET receipted_at = ? WHERE peer = ? AND last_seq <= ? AND receipted_at IS NULL",
                (iso_utc(now_utc()), body["hub"], seq),
            )
        store.execute(
            "INSERT INTO sync_receipts (hub, device, seq, hash, body, received_at) VALUES (?,?,?,?,?,?)",
            (body["hub"], device, seq, hash_, dumps(body), iso_utc(now_utc())),
        )
        if body.get("forks"):
            notes.append(
                f"the hub holds {len(body['forks'])} forked bundle(s) from this device: "
                "a coordinator must resolve them"
            )
        for c in [*(body.get("clashes") or []), *(body.get("held_rules") or [])]:
            notes.append(f"the hub holds bundle {c['bundle_seq']} from this device unmerged: {c['detail']}")
        if body.get("status") == "flagged":
            notes.append("the hub has flagged this device")
        store.execute(
            "INSERT INTO sync_state (key, value) VALUES ('hub_notices', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (json.dumps(notes),),
        )
    summary = f"receipt: the hub holds events 1-{seq} of this device"
    return summary + ("; " + "; ".join(notes) if notes else "")
