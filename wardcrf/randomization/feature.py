"""The randomization feature's projectors, registered in `wardcrf.features`.

- `randomization.list_issued` (hub only): the laptop the list is for checks
  the hub's signature over the whole body (a changed or dropped entry, or
  another key, is refused and the hub bundle with it) and keeps the sealed
  entries; other laptops keep nothing (the hub's chain reaches every ward).
  The hub keeps the list too, to check allocations against it.
- `randomization.allocated`: the slot is taken once (UNIQUE per list,
  stratum and position, and per participant). On the hub the allocation is
  checked against the list it made (opened with the hub's identity): an
  entry not from the list, not the next one of its stratum, a revealed arm or
  kit that differs, or a second use is written to `rand_flags`, and the
  bundle carrying it is then held whole for the coordinator like a fork
  (`hold_allocations_off_the_list`): never merged, never dropped.
- `randomization.stratum_exhausted`, `randomization.unblinded`: kept for
  the reports at the ward and the hub.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .. import devicekeys
from ..errors import Refused
from ..ingest import HoldForCoordinator
from ..sqlstore import common_dialect, own_keys_store
from . import sealing
from .gate import allocated_kit_holder, check_allocated_kit, course_kit_holder
from .service import open_arms, own_identity

if TYPE_CHECKING:
    from ..eventlog import Event
    from ..features import Registry
    from ..store import Store


def _hub_public(store: Store, kind: str, device: str) -> str:
    if kind == "hub":
        # The public half only: a PostgreSQL hub's database holds it too (its `device_keys`), never a secret.
        public = store.scalar("SELECT sign_public FROM device_keys WHERE device = ?", (device,))
        if public is None:
            raise Refused(f"hub device {device} has no keys")
        return str(public)
    row = store.one("SELECT sign_public FROM sync_hub WHERE id = 1")
    if row is None:
        raise Refused("randomization list: this laptop trusts no hub yet (`wardcrf sync set-hub`); refused")
    return str(row[0])


@common_dialect
def _list_issued(store: Store, e: Event) -> None:
    b = e.body
    _site, device, kind = own_identity(store)
    if kind == "ward" and b["device"] != device:
        return  # another laptop's list: sealed to it, nothing here can open it
    sealing.verify(b, _hub_public(store, kind, device))
    store.execute(
        "INSERT INTO rand_lists (list_id, site, device, protocol_id, protocol_version, protocol_sha256,"
        " reveal, list_sha256, stratify_by, strata, list_key, unblind_key, unblinding, event_id, issued_at,"
        " factors, unblind_recipient, kit_use) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            b["list"],
            b["site"],
            b["device"],
            b["protocol"]["id"],
            b["protocol"]["version"],
            b["protocol"]["sha256"],
            b["reveal"],
            b["list_sha256"],
            json.dumps(b.get("stratify_by", [])),
            json.dumps(b.get("strata", [])),
            b["list_key"],
            b.get("unblind_key"),
            json.dumps(b.get("unblinding", {}), sort_keys=True),
            e.id,
            e.ts,
            json.dumps(b.get("factors", []), sort_keys=True),
            b.get("unblind_recipient"),
            b.get("kit_use", "administration"),
        ),
    )
    for row in b["entries"]:
        store.execute(
            "INSERT INTO rand_entries (list_id, stratum, position, digest, sealed, arm_digest, arm_sealed)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                b["list"],
                row["stratum"],
                row["position"],
                row["digest"],
                row["sealed"],
                row.get("arm_digest"),
                row.get("arm_sealed"),
            ),
        )


@common_dialect
def _allocated(store: Store, e: Event) -> None:
    b = e.body
    _site, device, kind = own_identity(store)
    if kind == "hub":
        _check_at_hub(store, e, device)
        return
    known = store.one("SELECT reveal FROM rand_lists WHERE list_id = ?", (b["list"],))
    if known is None and e.device != device:
        return  # another laptop's allocation from a list this one never held
    try:
        _take(store, e, b.get("arm"))
    except Exception as exc:  # the UNIQUE constraints: the slot or the participant is taken
        if "UNIQUE" not in str(exc):
            raise
        raise Refused(
            f"entry {b['position']} of stratum {b['stratum']} (list {b['list']}) or participant "
            f"{b['participant']} is already allocated; nothing allocated twice"
        ) from None


def _take(store: Store, e: Event, arm: str | None) -> None:
    """The allocation's row: the slot and the participant, each UNIQUE (the arm: open label, or the hub's)."""
    b = e.body
    store.execute(
        "INSERT INTO rand_allocations (participant, list_id, stratum, position, kit, arm, event_id, device, ts)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (b["participant"], b["list"], b["stratum"], b["position"], b.get("kit"), arm, e.id, e.device, e.ts),
    )


@lru_cache(maxsize=16)
def _hub_list(list_sha256: str, for_hub: str, identity: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The hub's plaintext list by (stratum, position), opened once per list (cached by its SHA-256)."""
    record = sealing.hub_record({"for_hub": for_hub, "list_sha256": list_sha256, "list": "?"}, identity)
    return {(r["stratum"], int(r["position"])): r for r in record["document"]["entries"]}


def _check_at_hub(store: Store, e: Event, hub_device: str) -> None:
    b = e.body
    problems: list[str] = []
    source = store.one("SELECT device, event_id FROM rand_lists WHERE list_id = ?", (b["list"],))
    arm = None
    own = own_keys_store(store)  # the list's event and the key that opens the hub's copy: the hub's file
    line = None if source is None else own.scalar("SELECT line FROM events WHERE id = ?", (source[1],))
    if source is None or line is None:
        problems.append(f"list {b['list']} was not made by this hub")
    else:
        list_body = json.loads(line)["body"]
        keys = devicekeys.load(own, hub_device)
        entries = _hub_list(list_body["list_sha256"], list_body["for_hub"], keys.age_identity if keys else "")
        entry = entries.get((b["stratum"], int(b["position"])))
        if source[0] != e.device:
            problems.append(f"list {b['list']} was issued to device {source[0]}, not {e.device}")
        if entry is None:
            problems.append(f"entry {b['position']} of stratum {b['stratum']} is not in list {b['list']}")
        else:
            arm = entry["arm"]
            _refuse_unplanned(store, e, str(arm), str(list_body.get("reveal", "arm")))
            for key in ("arm", "kit"):
                if key in b and b[key] is not None and b[key] != entry.get(key):
                    problems.append(f"the {key} shown ({b[key]}) is not the list's for that entry")
            if b["salt"] != entry["salt"]:
                problems.append("the entry's salt differs from the list's (not opened from the list)")
        earlier = store.scalar(
            "SELECT COUNT(*) FROM rand_allocations WHERE list_id = ? AND stratum = ?",
            (b["list"], b["stratum"]),
        )
        if int(b["position"]) != int(earlier) + 1:
            problems.append(
                f"out of order: entry {b['position']} taken when entry {int(earlier) + 1} was the next"
            )
    taken = store.one(
        "SELECT event_id FROM rand_allocations WHERE participant = ?"
        " OR (list_id = ? AND stratum = ? AND position = ?)",
        (b["participant"], b["list"], b["stratum"], b["position"]),
    )
    if taken is not None:
        problems.append(f"repeated: the participant or the entry was already allocated by {taken[0]}")
    for problem in problems:
        store.execute(
            "INSERT INTO rand_flags (event_id, participant, problem) VALUES (?,?,?)",
            (e.id, b["participant"], problem),
        )
    if taken is None:
        _take(store, e, arm)


def _refuse_unplanned(store: Store, e: Event, arm: str, reveal: str) -> None:
    """The hub refuses the bundle of an allocation whose arm the participant's version does not plan (an open
    arm of it), as the ward refuses the list (`service.allocate`): nothing of the bundle is merged. The arm is
    named for an open-label list only: the hub's people read a blinded trial's counts, never an arm."""
    from ..workflow.amendments import protocol_of
    from ..workflow.base import get_participant

    b = e.body
    p = get_participant(store, str(b["participant"]))
    if p is None:
        return  # not a participant of this hub's records: the other checks speak
    proto = protocol_of(store, p)
    if proto.engine is None:
        return  # a format-1 version places nobody by arm
    planned = open_arms(proto.engine)
    if arm in planned:
        return
    if reveal == "arm":
        what, plans = f"arm {arm}", f" (open arms: {', '.join(planned) or 'none'})"
    else:  # blinded: neither the arm nor the arms planned (with one left, they would name it)
        what, plans = "the arm of its kit (blinded: no arm named)", ""
    raise Refused(
        f"allocation {e.id} of {p.id} from device {e.device} gives {what} from list {b['list']}, which "
        f"{proto.id} {proto.version} (their version) does not plan{plans}; the bundle is refused, nothing merged"
    )


@common_dialect
def _unblinding_key(store: Store, e: Event) -> None:
    """A laptop's unblinding recipient, from its own chain only; the latest one counts."""
    b = e.body
    if b["device"] != e.device:
        raise Refused(
            f"event {e.id}: device {e.device} publishes an unblinding key for device {b['device']}; refused"
        )
    store.execute(
        "INSERT INTO rand_unblinding_keys (device, recipient, event_id) VALUES (?,?,?)"
        " ON CONFLICT (device) DO UPDATE SET recipient = excluded.recipient, event_id = excluded.event_id",
        (b["device"], b["recipient"], e.id),
    )


@common_dialect
def _exhausted(store: Store, e: Event) -> None:
    store.execute(
        "INSERT INTO rand_exhausted (event_id, stratum, participant, site, ts) VALUES (?,?,?,?,?)",
        (e.id, e.body["stratum"], e.body["participant"], e.site, e.ts),
    )


@common_dialect
def _unblinded(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        'INSERT INTO rand_unblindings (event_id, participant, arm, kit, reason, detail, "user", witness, site, ts)'
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            e.id,
            b["participant"],
            b["arm"],
            b.get("kit"),
            b["reason"],
            b["detail"],
            e.user or "",
            b.get("witness"),
            e.site,
            e.ts,
        ),
    )


@common_dialect
def hold_allocations_off_the_list(store: Store, events: Sequence[Event]) -> None:
    """After-ingest hook at the hub: a bundle carrying an allocation off its list is held whole, like a fork.

    The projector has written what is wrong with each allocation (`rand_flags`);
    a bundle with any is rolled back and kept for the coordinator with those
    problems as its detail (reason ``sequencing``: the allocation breaks the
    list's order or content), the device flagged, the ward told at its next
    sync. Nothing of it is merged.
    """
    if own_identity(store)[2] != "hub":
        return
    for e in events:
        if e.type != "randomization.allocated":
            continue
        problems = [
            str(r[0]) for r in store.execute("SELECT problem FROM rand_flags WHERE event_id = ?", (e.id,))
        ]
        if problems:
            pid = e.body.get("participant")
            raise HoldForCoordinator(
                "sequencing",
                f"allocation {e.id} of {pid} from device {e.device} does not follow randomization list "
                f"{e.body.get('list')}: {'; '.join(problems)}; held, not merged",
                body={"event": e.id, "participant": pid, "problems": problems},
            )


def register(registry: Registry) -> None:
    """Plug randomization's projectors in (`wardcrf.features`)."""
    registry.projector(_list_issued, "randomization.list_issued")
    registry.projector(_allocated, "randomization.allocated")
    registry.projector(_exhausted, "randomization.stratum_exhausted")
    registry.projector(_unblinding_key, "randomization.unblinding_key")
    registry.projector(_unblinded, "randomization.unblinded")
    registry.allocation_gate(check_allocated_kit)
    registry.course_kit(course_kit_holder)
    registry.kit_holder(allocated_kit_holder)
    registry.after_ingest(
        hold_allocations_off_the_list, "randomization.allocated", holds="an allocation off the list"
    )  # it reads nothing else
