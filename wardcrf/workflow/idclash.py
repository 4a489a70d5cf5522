"""Participant-id clashes between laptops of one site, caught where their data meets.

Participant ids are ``SITE-NNN``, allocated on the laptop one above every id
it holds (docs/workflow.md). Two laptops of one site that enroll independently
can allocate the same number to two different people. Each laptop is right on
its own; the clash appears only where both logs meet: at the hub, or on a
replacement laptop restored from it.

A consent that allocated its participant's id carries ``creates_participant:
true`` in its event body; a re-consent of a participant the laptop holds
carries ``false``. When such an event arrives from another device and
the importer already holds a participant of that id created by a *different*
event, merging would make one casebook out of two people (the second
screening, doses and adverse events would land on the first person). The
bundle is therefore held whole for the coordinator (`HoldForCoordinator`,
reason ``clash``), like a fork: both sides kept, the device flagged, the
ward told at its next sync (docs/sync.md).

Consents recorded before the marker existed carry no ``creates_participant``.
For those, a laptop can only know another device's participant when it was
restored from the hub (`sync restore`, a registered replacement); from any
other device, a consent naming a participant created elsewhere is a clash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..eventlog import Event
from ..ingest import HoldForCoordinator
from ..sqlstore import common_dialect
from ..store import Store

if TYPE_CHECKING:
    from ..features import Registry

CREATES = "creates_participant"


def _device_of(store: Store, event_id: str) -> str:
    return str(
        store.scalar("SELECT device FROM events WHERE id = ?", (event_id,)) or event_id.rsplit("-", 1)[0]
    )


def _is_replacement(store: Store, device: str) -> bool:
    if not store.has_table("sync_devices"):
        return False
    return bool(store.scalar("SELECT replaces FROM sync_devices WHERE device = ?", (device,)))


def _is_consent(event: Event) -> bool:
    return event.type == "record.submitted" and event.body.get("form") == "consent"


def _pid(event: Event) -> str:
    return (event.subject or "").removeprefix("participant:")


def clash_of(
    store: Store, event: Event, creators: Mapping[str, object] | None = None
) -> dict[str, str] | None:
    """What `event` clashes with, if it creates a participant another event already created here.

    `creators`, when given, is participant id -> its `consent_event` as `participants` holds it now,
    for at least this event's participant (`_creators`: read once for a bundle)."""
    if not _is_consent(event):
        return None
    pid = _pid(event)
    if creators is not None:
        creator = creators.get(pid)
    else:
        creator = store.scalar("SELECT consent_event FROM participants WHERE id = ?", (pid,))
    if creator is None or creator == event.id:
        return None
    creator_device = _device_of(store, str(creator))
    marked = event.body.get(CREATES)
    if marked is None:  # recorded before the marker: see the module docstring
        if creator_device == event.device or _is_replacement(store, event.device):
            return None
    elif marked is not True:
        return None
    return {
        "participant": pid,
        "event": event.id,
        "device": event.device,
        "created_by_event": str(creator),
        "created_by_device": creator_device,
    }


@common_dialect
def hold_participant_clashes(store: Store, events: Sequence[Event]) -> None:
    """After-ingest hook: refuse to merge two participants allocated the same id.

    The participants a bundle's consents name are read in one statement per 500 (nothing is written
    while the hook runs), not one per consent: a round trip each on a PostgreSQL hub."""
    creators = _creators(store, sorted({_pid(e) for e in events if _is_consent(e)}))
    for event in events:
        clash = clash_of(store, event, creators)
        if clash is None:
            continue
        raise HoldForCoordinator(
            "clash",
            f"participant id {clash['participant']} was allocated by device {clash['device']} "
            f"(consent {clash['event']}) but device {clash['created_by_device']} already created it "
            f"(consent {clash['created_by_event']}): two people under one id, not merged",
            body=clash,
        )


def _creators(store: Store, pids: list[str]) -> dict[str, object]:
    """participant id -> consent_event, for those of `pids` that `participants` holds."""
    found: dict[str, object] = {}
    for i in range(0, len(pids), 500):
        chunk = pids[i : i + 500]
        for pid, creator in store.execute(
            f"SELECT id, consent_event FROM participants WHERE id IN ({','.join('?' * len(chunk))})",
            tuple(chunk),
        ):
            found[pid] = creator
    return found


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.after_ingest(
        hold_participant_clashes,
        "record.submitted",
        holds="a participant id allocated by two laptops",
    )
