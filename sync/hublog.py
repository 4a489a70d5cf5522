"""The hub's transparency log: every bundle it applies or holds, in one signed Merkle tree.

Per-device hash chains catch an edit inside a chain; they cannot show that
the hub's whole history was never rewritten. So each bundle outcome the hub
records (applied, or held as a gap, a fork or a broken rule) becomes a leaf,
in arrival order, of an append-only RFC 9162 tree (`wardcrf.tlog.merkle`),
and after every import the hub signs a C2SP checkpoint of it
(`wardcrf.tlog.checkpoint`) with its Ed25519 device key — the key every ward
already trusts through the hub's minisign public key, so no new key travels.

Every receipt then carries the latest checkpoint, a tlog-proof for each of
the device's bundles logged since its last receipt, and consistency proofs
from the last checkpoints the hub sent that device. The ward verifies all of
it against the checkpoint it kept (`check_receipt`): a hub whose database was
rewritten with the raw key and re-signed cannot prove consistency with what
it told the ward before, and the ward says so in one line.

A leaf is the text::

    wardcrf-tlog-leaf/1
    device <device>
    bundle <bundle_seq>
    manifest <sha256 of manifest.json>
    status applied|held

which a ward can rebuild from its own outbox, so an inclusion proof shows the
hub logged *the manifest the ward made*, not just some bundle of that number.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from wardcrf.canonical import dumps
from wardcrf.clock import iso_utc, now_utc
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store
from wardcrf.tlog import checkpoint, merkle, note

from . import signing

LEAF_FORMAT = "wardcrf-tlog-leaf/1"
RECENT_SENT = 8
"""Consistency proofs a receipt carries: from each of the last checkpoints sent to the device
(a ward that missed a few receipts on a lost USB stick still finds the one it holds)."""
MAX_PROOFS = 64
"""Inclusion proofs a receipt carries (the device's latest bundles); older ones are in earlier receipts."""


def leaf_text(device: str, bundle_seq: int, manifest_sha: str, status: str) -> bytes:
    """The canonical text of one leaf (see the module docstring)."""
    return (
        f"{LEAF_FORMAT}\ndevice {device}\nbundle {bundle_seq}\nmanifest {manifest_sha}\nstatus {status}\n"
    ).encode()


def leaf_status(outcome_status: str) -> str | None:
    """What a bundle outcome logs as: applied, held (a gap, a fork, a rule), or nothing (a replay)."""
    return {"applied": "applied", "held": "held", "fork": "held"}.get(outcome_status)


class StoreNodes:
    """`merkle.Nodes` over the hub's tables (perfect-subtree hashes by level and index)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    @property
    def size(self) -> int:
        return int(self.store.scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_leaves"))

    def perfect(self, level: int, index: int) -> bytes:
        h = self.store.scalar("SELECT hash FROM tlog_nodes WHERE level = ? AND idx = ?", (level, index))
        if h is None:
            raise Refused(f"transparency log: node {level}/{index} is missing (the hub's log is damaged)")
        return bytes(h)


def origin_of(site: str, device: str) -> str:
    """The log's name for a hub: its checkpoints' origin line and its key name."""
    return f"wardcrf.hub/{site}/{device}"


def origin(store: SqlStore) -> str:
    """This hub's log name."""
    site, device = store.one("SELECT site, device FROM site WHERE id = 1") or ("", "")
    return origin_of(str(site), str(device))


def log_bundle(store: SqlStore, device: str, bundle_seq: int, status: str) -> int | None:
    """Add a bundle outcome as the next leaf (inside the import's transaction); returns its index.

    The manifest's SHA-256 is the one the hub recorded for the bundle
    (applied or held). A replay ("already") logs nothing: it is not news.
    """
    logged = leaf_status(status)
    if logged is None:
        return None
    # sync_applied holds one row per bundle; sync_held one per manifest held (the latest is logged).
    table = "sync_applied" if logged == "applied" else "sync_held"
    order = "" if logged == "applied" else " ORDER BY id DESC LIMIT 1"
    sha = store.scalar(
        f"SELECT manifest_sha FROM {table} WHERE device = ? AND bundle_seq = ?{order}",
        (device, bundle_seq),
    )
    if sha is None:
        raise Refused(f"transparency log: no {logged} bundle {bundle_seq} of {device} to log")
    store.lock("tlog")  # the next index is the size: one appender at a time (PostgreSQL has several)
    idx = StoreNodes(store).size
    h = merkle.leaf_hash(leaf_text(device, bundle_seq, str(sha), logged))
    store.execute(
        "INSERT INTO tlog_leaves (idx, leaf, device, bundle_seq, manifest_sha, status, logged_at)"
        " VALUES (?,?,?,?,?,?,?)",
        (idx, h.hex(), device, bundle_seq, str(sha), logged, iso_utc(now_utc())),
    )
    level, i = 0, idx
    store.execute("INSERT INTO tlog_nodes (level, idx, hash) VALUES (0, ?, ?)", (i, h))
    while i % 2:  # this leaf completes a perfect subtree: store its root, and so on up
        left = StoreNodes(store).perfect(level, i - 1)
        h = merkle.node_hash(left, h)
        level, i = level + 1, i // 2
        store.execute("INSERT INTO tlog_nodes (level, idx, hash) VALUES (?, ?, ?)", (level, i, h))
    return idx


def _log_signer(store: SqlStore, signer: DeviceSigner) -> note.Signer:
    return note.Signer(origin(store), signing.ed25519_private(signer.minisign_secret))


def verifier(log_origin: str, sign_public: str) -> note.Verifier:
    """The vkey a ward checks checkpoints with: the hub's minisign key as a note key."""
    return note.Verifier(log_origin, note.ED25519, signing.ed25519_public(sign_public))


def own_verifier(store: SqlStore) -> note.Verifier:
    """At the hub: the key its checkpoints verify with (`hub log export` prints it for auditors)."""
    device = store.scalar("SELECT device FROM site WHERE id = 1")
    public = store.scalar("SELECT sign_public FROM device_keys WHERE device = ?", (device,))
    if public is None:
        raise Refused("this site holds no signing key: it is not a hub that signs checkpoints")
    return verifier(origin(store), str(public))


def hub_verifier(store: Store) -> note.Verifier:
    """At a ward: the registered hub's checkpoint key (from the hub card this site trusts)."""
    from . import registry

    h = registry.require_hub(store)
    return verifier(origin_of(str(h["site"]), str(h["device"])), str(h["sign_public"]))


def sign_checkpoint(store: SqlStore, signer: DeviceSigner) -> str | None:
    """Sign a checkpoint of the tree if it grew since the last one (after each import); the latest note."""
    with store.transaction():
        store.lock("tlog")  # another worker may be growing the tree or signing this size
        nodes = StoreNodes(store)
        size = nodes.size
        last = store.one("SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
        if size == 0 or (last is not None and last[0] == size):
            return None if last is None else str(last[1])
        cp = checkpoint.Checkpoint(origin(store), size, merkle.root(nodes))
        signed = cp.sign(_log_signer(store, signer))
        store.execute(
            "INSERT INTO tlog_checkpoints (size, root, note, signed_at) VALUES (?,?,?,?)",
            (size, cp.root.hex(), signed, iso_utc(now_utc())),
        )
    return signed


def receipt_part(store: SqlStore, device: str) -> dict[str, Any] | None:
    """What a receipt to `device` carries of the log (None before the first checkpoint).

    ``{"checkpoint": note, "bundles": [{"bundle_seq", "manifest", "status",
    "proof": tlog-proof}], "consistency": [{"from": m, "proof": [base64]}]}``;
    records that this checkpoint went to the device.
    """
    last = store.one("SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
    if last is None:
        return None
    size, signed = int(last[0]), str(last[1])
    nodes = StoreNodes(store)
    sent = [
        int(r[0])
        for r in store.execute(
            "SELECT size FROM tlog_sent WHERE device = ? GROUP BY size ORDER BY MAX(id) DESC LIMIT ?",
            (device, RECENT_SENT),
        )
    ]
    since = sent[0] if sent else 0
    bundles = [
        {
            "bundle_seq": bundle_seq,
            "manifest": sha,
            "status": status,
            "proof": checkpoint.Proof(idx, tuple(merkle.inclusion_proof(nodes, idx, size)), signed).text(),
        }
        for idx, bundle_seq, sha, status in store.execute(
            "SELECT idx, bundle_seq, manifest_sha, status FROM (SELECT * FROM tlog_leaves"
            " WHERE device = ? AND idx >= ? AND idx < ? ORDER BY idx DESC LIMIT ?) AS recent ORDER BY idx",
            (device, min(since, size), size, MAX_PROOFS),
        )
    ]
    consistency = [
        {"from": m, "proof": [base64.b64encode(h).decode() for h in merkle.consistency_proof(nodes, m, size)]}
        for m in sorted(set(sent))
        if 0 < m < size
    ]
    with store.transaction():
        store.execute(
            "INSERT INTO tlog_sent (device, size, sent_at) VALUES (?,?,?)", (device, size, iso_utc(now_utc()))
        )
    return {"checkpoint": signed, "bundles": bundles, "consistency": consistency}


@dataclass(frozen=True)
class Seen:
    """What the ward verified: the checkpoint it now holds, and what it found wrong."""

    size: int
    problems: list[str]


def check_receipt(store: SqlStore, hub: str, hub_origin: str, sign_public: str, part: Any) -> Seen:
    """Ward: verify a receipt's log part against the checkpoint this laptop holds; keep the new one.

    Problems (each one line, for the ward's notices) are a rewritten or
    forked hub history, a bundle the hub says it logged under a different
    manifest than this laptop made, and a proof that does not verify. A
    receipt without a log part (an older hub) is no problem, but nothing is
    proven either.
    """
    v = verifier(hub_origin, sign_public)
    if not isinstance(part, dict) or not isinstance(part.get("checkpoint"), str):
        raise Refused("receipt: its transparency-log part is malformed")
    opened = checkpoint.open_checkpoint(part["checkpoint"], v)
    cp = opened.checkpoint
    problems: list[str] = []
    held = store.one("SELECT size, root FROM tlog_seen WHERE hub = ?", (hub,))
    if held is not None:
        old_size, old_root = int(held[0]), bytes.fromhex(str(held[1]))
        problems += _consistent(old_size, old_root, cp, part.get("consistency"))
    device = store.scalar("SELECT device FROM site WHERE id = 1")
    for b in part.get("bundles") or []:
        problems += _included(store, str(device), hub, b, v, cp)
    if not problems and (held is None or cp.size >= int(held[0])):
        with store.transaction():
            store.execute(
                "INSERT INTO tlog_seen (hub, size, root, note, seen_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT(hub) DO UPDATE SET size = excluded.size, root = excluded.root,"
                " note = excluded.note, seen_at = excluded.seen_at",
                (hub, cp.size, cp.root.hex(), part["checkpoint"], iso_utc(now_utc())),
            )
    return Seen(cp.size, problems)


def _consistent(old_size: int, old_root: bytes, cp: checkpoint.Checkpoint, proofs: Any) -> list[str]:
    if cp.size == old_size:
        if cp.root != old_root:
            return [
                f"the hub signed two different trees of {old_size} bundles (its history forked or was rewritten)"
            ]
        return []
    if cp.size < old_size:
        return [f"the hub's log shrank from {old_size} to {cp.size} bundles (its history was rewritten)"]
    for p in proofs or []:
        if isinstance(p, dict) and p.get("from") == old_size:
            try:
                hashes = [base64.b64decode(h, validate=True) for h in p.get("proof") or []]
                merkle.verify_consistency(old_size, cp.size, old_root, cp.root, hashes)
            except (Refused, ValueError, TypeError) as exc:
                return [f"the hub's history is not the one it signed before ({exc})"]
            return []
    return [
        f"the hub did not prove its log of {cp.size} bundles extends the {old_size} this laptop holds"
        " (its history may have been rewritten)"
    ]


def _included(
    store: SqlStore, device: str, hub: str, b: Any, v: note.Verifier, cp: checkpoint.Checkpoint
) -> list[str]:
    if not isinstance(b, dict):
        return ["receipt: a malformed bundle entry in its transparency-log part"]
    seq, status = b.get("bundle_seq"), b.get("status")
    mine = store.scalar("SELECT manifest_sha FROM sync_outbox WHERE peer = ? AND bundle_seq = ?", (hub, seq))
    if mine is None or seq is None:
        return []  # not a bundle this database made (a restored laptop): nothing to compare
    if status not in ("applied", "held"):
        return [f"receipt: bundle {seq} logged with status {str(status)[:20]!r}"]
    leaf = merkle.leaf_hash(leaf_text(device, int(seq), str(mine), str(status)))
    try:
        got = checkpoint.verify_proof(str(b.get("proof", "")), leaf, v)
    except Refused as exc:
        return [f"the hub's log does not hold bundle {seq} as this laptop made it ({exc})"]
    if got.checkpoint != cp:
        return [f"bundle {seq}'s proof is for another checkpoint than the receipt's"]
    return []


def export_chain(store: SqlStore) -> dict[str, Any]:
    """Every checkpoint, with the consistency proof from each to the next (`hub log export`)."""
    nodes = StoreNodes(store)
    rows = store.execute("SELECT size, note FROM tlog_checkpoints ORDER BY size").fetchall()
    chain = []
    for i, (size, signed) in enumerate(rows):
        entry: dict[str, Any] = {"checkpoint": signed}
        if i:
            prev = int(rows[i - 1][0])
            entry["consistency"] = [
                base64.b64encode(h).decode() for h in merkle.consistency_proof(nodes, prev, size)
            ]
        chain.append(entry)
    return {"format": "wardcrf-tlog-chain/1", "origin": origin(store), "checkpoints": chain}


def verify_chain(data: bytes, v: note.Verifier, since: str | None = None) -> list[checkpoint.Checkpoint]:
    """Check a checkpoint chain offline: every signature, every step's consistency.

    `since`, a checkpoint someone kept (an auditor's, a ward's), must be one
    of the chain's trees or be proven consistent with one. Returns the chain.
    """
    try:
        doc = json.loads(data)
    except RecursionError:
        raise Refused("checkpoint chain: nested too deeply to be one") from None
    except ValueError:
        raise Refused("checkpoint chain: not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != "wardcrf-tlog-chain/1":
        raise Refused("checkpoint chain: format is not wardcrf-tlog-chain/1")
    entries = doc.get("checkpoints")
    if not isinstance(entries, list) or not entries:
        raise Refused("checkpoint chain: no checkpoints")
    out: list[checkpoint.Checkpoint] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("checkpoint"), str):
            raise Refused(f"checkpoint chain: entry {i + 1} is malformed")
        cp = checkpoint.open_checkpoint(e["checkpoint"], v).checkpoint
        if out:
            prev = out[-1]
            proof = e.get("consistency")
            if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
                raise Refused(f"checkpoint chain: entry {i + 1} has no consistency proof")
            try:
                hashes = [base64.b64decode(h, validate=True) for h in proof]
            except ValueError:
                raise Refused(f"checkpoint chain: entry {i + 1}'s proof is not base64") from None
            try:
                merkle.verify_consistency(prev.size, cp.size, prev.root, cp.root, hashes)
            except Refused as exc:
                raise Refused(f"checkpoint chain: {prev.size} -> {cp.size} bundles: {exc}") from None
        out.append(cp)
    if since is not None:
        kept = checkpoint.open_checkpoint(since, v).checkpoint
        match = next((c for c in out if c.size == kept.size), None)
        if match is None:
            raise Refused(
                f"checkpoint chain: has no tree of {kept.size} bundles to compare the kept checkpoint with"
            )
        if match.root != kept.root:
            raise Refused(
                f"checkpoint chain: the hub's tree of {kept.size} bundles is not the one it signed before"
                " (its history was rewritten)"
            )
    return out


def dumps_chain(doc: dict[str, Any]) -> bytes:
    return (dumps(doc) + "\n").encode()


# -- services (role-checked) ---------------------------------------------------------------


def chain_for_auditor(session: Any, store: SqlStore | None = None) -> tuple[bytes, str]:
    """At the hub, any role that may verify: (the checkpoint chain as JSON, the hub's vkey).

    `store` is where the hub keeps its log (`hub.ledger_store`: its file, or its PostgreSQL database).
    """
    session.require("audit.verify", what="export the hub's checkpoint chain")
    held = session.store if store is None else store
    return dumps_chain(export_chain(held)), own_verifier(held).vkey


def verify_offline(data: bytes, vkey: str, since: str | None = None) -> list[checkpoint.Checkpoint]:
    """`audit verify-log` without a site: a chain file checked against a vkey (and a kept checkpoint)."""
    return verify_chain(data, note.Verifier.parse(vkey), since)


# -- witnesses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosigned:
    """What a witness did: the checkpoint it co-signed (the note with its line added)."""

    checkpoint: checkpoint.Checkpoint
    note: str


def witness(
    chain: bytes,
    log: note.Verifier,
    cosigner: note.Signer,
    last: str | None,
    now: int,
) -> Cosigned:
    """Co-sign the newest checkpoint of a chain, only if it extends `last` (what this witness co-signed before).

    The chain is verified whole (every signature, every step consistent);
    `last`, the witness's own state, must be one of the chain's trees with
    the same root — otherwise the hub showed this witness one history before
    and another now, and the witness refuses. A witness's stored cosigned
    checkpoint then proves what the hub held on the day it signed.
    """
    if cosigner.sig_type != note.COSIGNATURE_V1:
        raise Refused("a witness co-signs with a cosignature key (type 0x04)")
    if last is not None:
        kept = note.open_note(last, [cosigner.verifier]).text  # our own earlier cosignature
        signed_before = checkpoint.Checkpoint.parse(kept)
        if signed_before.origin != log.name:
            raise Refused(f"witness: its state is for log {signed_before.origin!r}, not {log.name!r}")
    got = verify_chain(chain, log, last)
    newest = got[-1]
    if last is not None and newest.size < signed_before.size:
        raise Refused(
            f"witness: the newest checkpoint ({newest.size} bundles) is older than the one already co-signed"
            f" ({signed_before.size})"
        )
    doc = json.loads(chain)
    signed = str(doc["checkpoints"][-1]["checkpoint"])
    line = cosigner.signature_line(newest.text(), timestamp=now)
    return Cosigned(newest, note.add_signature(signed, line))
