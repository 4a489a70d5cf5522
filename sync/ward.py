"""Ward side of sync: export bundles, apply the hub's receipts and bundles, status.

Nothing is ever discarded here: a bundle stays in the outbox (rebuildable
from the database) until the hub's signed receipt covers its last event.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from wardcrf import devicekeys
from wardcrf.errors import Refused, UsageError
from wardcrf.store import Store

from . import bundle, engine, outbox, pending, receipts, registry
from .bundle import Signer

if TYPE_CHECKING:
    from wardcrf.site import Session


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    new_bundles: int = 0
    events: int = 0


def require_ward(session: Session) -> None:
    if registry.own_site(session.store)[2] != "ward":
        raise UsageError("this command runs on a ward laptop's data directory, not on a hub")


def recipients(store: Store) -> list[str]:
    hub = registry.require_hub(store)
    return [hub["age_recipient"], *(r["age_recipient"] for r in registry.recipients(store))]


def prepare(session: Session, *, limit: int = outbox.DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """Cut new events into bundles; returns every bundle not yet receipted."""
    session.require("sync.export", what="export sync bundles")
    require_ward(session)
    if limit < 64 * 1024:
        raise UsageError("bundle size limit must be at least 64 KiB")
    hub = registry.require_hub(session.store)
    outbox.plan(
        session.store, hub["device"], recipients(session.store), limit=limit, protocol=session.protocol
    )
    return outbox.pending(session.store, hub["device"])


Progress = Callable[[int, int, str], None]
"""progress(done, total, bundle name): called before each bundle is written and once at the end."""


def export(
    session: Session,
    to_dir: Path,
    *,
    limit: int = outbox.DEFAULT_LIMIT,
    progress: Progress | None = None,
) -> ExportResult:
    """Write all unreceipted bundles to `to_dir` (e.g. a USB stick), each file atomically.

    A folder that cannot be written (read-only stick, no permission, full
    disk) is refused with one line; bundles already written stay valid (each
    is whole or absent) and the rest go with the next export.
    """
    session.require("sync.export", what="export sync bundles")  # before looking at the folder
    to_dir = Path(to_dir)
    if not to_dir.is_dir():
        raise UsageError(f"{to_dir} is not a directory (mount the USB stick or create the folder)")
    if not os.access(to_dir, os.W_OK):
        raise UsageError(
            f"{to_dir} is not writable (a read-only stick, or no permission): choose another folder"
        )
    before = session.store.scalar("SELECT count(*) FROM sync_outbox")
    rows = prepare(session, limit=limit)
    signer = devicekeys.signer(session)
    result = ExportResult(new_bundles=int(session.store.scalar("SELECT count(*) FROM sync_outbox") - before))
    for i, row in enumerate(rows):
        name = outbox.file_name(row)
        if progress is not None:
            progress(i, len(rows), name)
        try:
            # The bundle streams into a temp file; then the signature is written,
            # and the bundle renamed last: a final-named .tar.age always has its .minisig.
            engine.atomic_write_stream(
                to_dir / name,
                functools.partial(outbox.materialize_into, session.store, row, signer),
                lambda made: engine.atomic_write(to_dir / (made[0] + ".minisig"), made[1]),
            )
        except OSError as exc:
            raise Refused(
                f"cannot write {name} to {to_dir}: {exc.strerror or exc}; "
                f"{len(result.files)} of {len(rows)} bundle(s) written, the rest stay in the outbox"
            ) from None
        result.files.append(to_dir / name)
        result.events += row["last_seq"] - row["first_seq"] + 1
    if progress is not None:
        progress(len(rows), len(rows), "")
    set_state(session.store, "last_export", json.dumps({"at": _now(), "files": len(result.files)}))
    return result


def _now() -> str:
    from wardcrf.clock import iso_utc, now_utc

    return iso_utc(now_utc())


def set_state(store: Store, key: str, value: str) -> None:
    store.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
        " value = excluded.value",
        (key, value),
    )


def get_state(store: Store, key: str) -> str | None:
    v = store.scalar("SELECT value FROM sync_state WHERE key = ?", (key,))
    return None if v is None else str(v)


def hub_signer(store: Store) -> Any:
    hub = registry.require_hub(store)

    def lookup(key_id: str) -> Signer | None:
        if key_id != hub["key_id"]:
            return None
        return Signer(hub["device"], hub["site"], hub["sign_public"], hub["key_id"], "hub")

    return lookup


def apply_receipt(session: Session, data: bytes, sig: bytes) -> str:
    session.require("sync.export", what="apply hub receipts")
    require_ward(session)
    hub = registry.require_hub(session.store)
    body = receipts.verify(hub["sign_public"], data, sig)
    if body.get("hub") != hub["device"]:
        raise Refused(f"receipt is from hub {body.get('hub')}, this site trusts {hub['device']}")
    return receipts.record(session.store, body, hub)


def apply_hub_bundle(
    session: Session, cipher: bytes | Path, sig: bytes, what: str = "hub bundle"
) -> engine.Outcome:
    """Verify a hub -> ward bundle with the hub's registered key and apply it.

    `cipher` is the bundle's bytes (HTTP pull) or its file (`sync import`): a
    file is copied into the laptop's spool and verified from the copy as a
    stream, never read whole (`engine.spooled_verify`).
    """
    session.require("sync.export", what="import hub bundles")
    require_ward(session)
    store = session.store
    keys = devicekeys.load(store, session.ctx.device)
    assert keys is not None

    def verify(c: bytes | Path, s: bytes) -> bundle.Verified:
        return bundle.verify(c, s, hub_signer(store), [keys.age_identity], what)

    files_dir = session.site.data_dir / "sync"
    with engine.spooled_verify(files_dir, cipher, sig, verify, what) as (v, spool):
        if v.manifest.get("to") not in (None, session.ctx.device):
            raise Refused(f"{what} is addressed to device {v.manifest.get('to')}, not this laptop")
        out = engine.accept(store, v, cipher, sig, files_dir, reverify=verify, spool=spool)
    set_state(store, "last_hub_bundle", json.dumps({"at": _now(), "bundle_seq": v.bundle_seq}))
    return out


def import_file(session: Session, path: Path) -> str:
    """`sync import FILE`: a hub bundle (.tar.age) or a receipt (.json), each with its .minisig."""
    session.require("sync.export", what="import hub bundles and receipts")  # before reading the file
    path = Path(path)
    if path.name.endswith(".json"):
        try:
            data = path.read_bytes()
            sig = path.with_name(path.name + ".minisig").read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
        return apply_receipt(session, data, sig)
    from .hub import read_sig

    # The name and size are checked and the signature read; the bundle itself is streamed, never read whole.
    sig = read_sig(path)
    out = apply_hub_bundle(session, path, sig, path.name)
    if not out.ok:
        raise Refused(out.message)
    return out.message


def last_hub_bundle(store: Store) -> int:
    hub = registry.hub(store)
    if hub is None:
        return 0
    return engine.last_applied(store, hub["device"])[0]


class LastReceipt(TypedDict):
    seq: int
    """The last of this laptop's events the hub's receipt covers."""
    at: str


class LastExport(TypedDict):
    """The last USB export as `export_usb` records it (the `last_export` sync state)."""

    at: str
    files: int


class HubProbe(TypedDict):
    """The background sync's last probe as `SyncService` records it (the `probe` sync state)."""

    state: str
    """offline, syncing, synced or error."""
    at: str
    detail: str
    url: str


class SyncStatus(TypedDict):
    """What the sync panel, the dashboard's sync panel and `sync status` show (`status`)."""

    device: str
    hub: str | None
    hub_url: str | None
    last_export: LastExport | None
    """The last USB export as recorded (``at``, ``files``), None before the first."""
    last_receipt: LastReceipt | None
    events_pending: int
    events_only_at_hub: int
    photos_pending: int
    bundles_unreceipted: int
    hub_bundles_applied: int
    hub_reachability: HubProbe | None
    """The background sync's last probe as recorded (``state``, ``at``, ``detail``, ``url``)."""
    state: str
    hub_notices: list[str]
    open_queries: list[registry.DataQuery]


def status(session: Session) -> SyncStatus:
    """What the sync panel and `sync status` show: pending events and photos, exports, receipts.

    Each figure is a counter or an index lookup (the chain head minus the last
    receipt, `pending.photos_after`, `outbox.unreceipted`), never a read of the
    unreceipted events: a laptop a million events behind its hub shows its
    panel as fast as one ten behind.
    """
    session.require("record.read", what="read sync status")
    store = session.store
    hub = registry.hub(store)
    me = session.ctx.device
    head = store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (me,)) or 0
    rec = store.one(
        "SELECT seq, received_at FROM sync_receipts WHERE device = ? ORDER BY id DESC LIMIT 1", (me,)
    )
    receipted = rec[0] if rec else 0
    # A receipt beyond this database's head means the file is older than what it
    # sent (copied back): nothing is pending; those events are only at the hub.
    pending_events = max(0, head - receipted)
    only_at_hub = max(0, receipted - head)
    # Photos the hub does not hold from this laptop: two index lookups, not a read of every
    # pending event (`pending`: a million unreceipted events cost the same as ten).
    pending_photos = pending.photos_after(store, me, receipted) if pending_events else 0
    last_export = get_state(store, "last_export")
    probe = get_state(store, "probe")
    return {
        "device": me,
        "hub": hub["device"] if hub else None,
        "hub_url": hub["url"] if hub else None,
        "last_export": cast(LastExport, json.loads(last_export)) if last_export else None,
        "last_receipt": {"seq": rec[0], "at": rec[1]} if rec else None,
        "events_pending": pending_events,
        "events_only_at_hub": only_at_hub,
        "photos_pending": pending_photos,
        "bundles_unreceipted": outbox.unreceipted(store, hub["device"]) if hub else 0,
        "hub_bundles_applied": last_hub_bundle(store),
        "hub_reachability": cast(HubProbe, json.loads(probe)) if probe else None,
        "state": sync_label(store, receipted),
        "hub_notices": json.loads(get_state(store, "hub_notices") or "[]"),
        "open_queries": [q for q in registry.queries(store) if q["status"] != "closed"],
    }


def apply_restored(
    session: Session,
    cipher: bytes | Path,
    sig: bytes,
    what: str = "restored bundle",
    *,
    received: bool = False,
) -> engine.Outcome:
    """A device's original bundle relayed by the hub (replacement laptop): hub outer
    signature, device inner signature checked against the registry from the hub's chain.

    A file (`sync restore --from`) is copied into the laptop's spool and verified
    from the copy as a stream, its photos stored one at a time: never the bundle whole.
    `received`: the file is already in the spool, streamed there from the hub
    (`Client.restore_fetch_into`): it is adopted, not copied.
    """
    session.require("sync.configure", what="restore site data from the hub")
    require_ward(session)
    store = session.store
    keys = devicekeys.load(store, session.ctx.device)
    assert keys is not None

    def device_lookup(key_id: str) -> Signer | None:
        row = store.one(
            "SELECT device, site, sign_public, key_id, kind FROM sync_devices WHERE key_id = ?", (key_id,)
        )
        return Signer(*row) if row else None

    def verify(c: bytes | Path, s: bytes) -> bundle.Verified:
        return bundle.verify(c, s, device_lookup, [keys.age_identity], what, relay=hub_signer(store))

    files_dir = session.site.data_dir / "sync"
    with engine.spooled_verify(files_dir, cipher, sig, verify, what, received=received) as (v, spool):
        if v.manifest["site"] != session.ctx.site:
            raise Refused(f"{what} belongs to site {v.manifest['site']}, this laptop is {session.ctx.site}")
        return engine.accept(store, v, cipher, sig, files_dir, reverify=verify, spool=spool)


def sync_label(store: Store, receipted: int = 0) -> str:
    """What the dashboard shows: 'no hub', 'offline', 'syncing', 'synced <time>', or
    'received by the hub up to #<seq>' when no online sync has run but the hub's
    receipt (a USB bundle's, or a one-off `sync push`'s) covers this laptop's events
    up to `receipted`; 'not synced yet' only when the hub has acknowledged nothing.

    Read from the state the `SyncService` (TUI worker or `sync watch`) last wrote.
    """
    if registry.hub(store) is None:
        return "no hub"
    probe = get_state(store, "probe")
    if not probe:
        return f"{RECEIVED_UP_TO}{receipted}" if receipted else "not synced yet"
    p = json.loads(probe)
    return f"synced {p['at']}" if p["state"] == "synced" else str(p["state"])


RECEIVED_UP_TO = "received by the hub up to #"
"""The prefix of `sync_label` when only a receipt says the hub has this laptop's events."""
