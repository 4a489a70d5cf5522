"""Randomization services: make a list at the hub, take the next entry on the ward.

Screens and commands call these; each checks the session's role first
(`roles.py` actions `randomization.make`, `randomization.allocate`).
Allocation is one transaction: read the next free entry of the stratum,
open its envelope, append `randomization.allocated` (whose projector takes
the slot, UNIQUE per list/stratum/position and per participant). A process
killed anywhere before the commit leaves nothing, so the next allocation
takes the same entry; after it, the entry is taken once and for all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, cast

from .. import devicekeys, ids, unblindkeys
from ..errors import Refused
from ..sqlstore import SqlStore
from . import levels as levels_mod
from . import lists, sealing
from .design import SITE, design_of

if TYPE_CHECKING:
    from ..engine.model import Model
    from ..eventlog import Event
    from ..site import Session
    from ..store import Store

NO_LIST = (
    "this laptop holds no allocation list: the hub sends one in its next bundle "
    "(`wardcrf hub randomization make`, then `wardcrf sync pull` or import the hub's bundle)"
)
MAX_ENTRIES = 10_000
"""Entries in one list at most (one event body; a larger trial gets several lists, taken in order)."""


def own_identity(store: Store) -> tuple[str, str, str]:
    """(site, device, kind) of this database."""
    row = store.one("SELECT site, device, kind FROM site WHERE id = 1")
    if row is None:
        raise Refused("this database has no site identity (not initialised)")
    return str(row[0]), str(row[1]), str(row[2])


# -- at the hub ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    """A list made and recorded at the hub."""

    event: Event
    list_id: str
    list_sha256: str
    strata: dict[str, int]
    """Entries per stratum (whole blocks, so at least the number asked for)."""


def make_list(
    session: Session,
    protocol: Model,
    site: str,
    device: str,
    per_stratum: int,
    *,
    wards: SqlStore | None = None,
) -> Made:
    """Generate, seal and sign a list for the ward laptop `device` of `site`; record it as a hub event.

    `wards`: where the hub keeps what its wards send (`sync.hub.ledger_store`: its file, or its PostgreSQL
    database), which holds the laptop's unblinding recipient a blinded list is sealed to; the hub's file
    when not given.
    """
    session.require("randomization.make", what="make allocation lists")
    store = session.store
    _, hub_device, kind = own_identity(store)
    if kind != "hub":
        raise Refused(
            "allocation lists are made at the hub (`wardcrf hub randomization make`), never on a ward"
        )
    design = design_of(protocol)
    row = store.one("SELECT site, kind, status, age_recipient FROM sync_devices WHERE device = ?", (device,))
    if row is None:
        raise Refused(f"device {device} is not registered at this hub (`wardcrf hub register-device`)")
    if row[0] != site or row[1] != "ward" or row[2] != "active":
        raise Refused(
            f"device {device} is not an active ward laptop of site {site} (it is {row[1]} of {row[0]}, {row[2]})"
        )
    strata = design.strata(site)
    if per_stratum < 1 or per_stratum * len(strata) > MAX_ENTRIES - len(strata) * max(design.block_sizes):
        raise Refused(
            f"{per_stratum} entries per stratum in {len(strata)} strata is more than one list holds "
            f"(at most {MAX_ENTRIES} entries with whole blocks); make several lists"
        )
    unblind_recipient = None
    if design.blinded:
        known = (wards or store).one("SELECT recipient FROM rand_unblinding_keys WHERE device = ?", (device,))
        if known is None:
            raise Refused(
                f"laptop {device} has not sent its unblinding key yet: an investigator signs in on it once and"
                " it syncs; a blinded list is sealed so that only the investigators' key slots open its arms"
            )
        unblind_recipient = str(known[0])
    hub_keys = devicekeys.load(store, hub_device)
    if hub_keys is None:
        raise Refused(f"hub device {hub_device} has no keys")
    signer = devicekeys.signer(session)
    seed = lists.new_seed()
    list_id = lists.new_list_id()
    alloc = lists.generate(design, site, per_stratum, seed, list_id)
    body = sealing.seal(
        alloc,
        seed,
        device=device,
        ward_recipient=str(row[3]),
        hub_recipient=hub_keys.age_recipient,
        unblind_recipient=unblind_recipient,
        sign_secret=signer.minisign_secret,
        key_id=signer.key_id,
    )
    event = session.append(type="randomization.list_issued", subject=f"site:{site}", body=body).event
    counts = {s: len(v) for s, v in alloc.by_stratum().items()}
    return Made(event, list_id, alloc.sha256(), counts)


# -- on the ward -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """What the ward may show of an allocation: the arm (open label) or the kit number only (blinded)."""

    participant: str
    stratum: str
    list_id: str
    position: int
    arm: str | None
    kit: str | None
    event_id: str

    def shown(self) -> str:
        what = f"kit {self.kit}" if self.kit is not None else f"arm {self.arm}"
        return (
            f"{self.participant} randomized: {what} (stratum {self.stratum}, entry {self.position} of list "
            f"{self.list_id}; event {self.event_id})"
        )


def allocate(session: Session, participant: str, levels: dict[str, str] | None = None) -> Allocation:
    """Take the next unused entry of the participant's stratum; refused, naming it, when it is exhausted."""
    session.require("randomization.allocate", what="randomize participants")
    store = session.store
    site, device, kind = own_identity(store)
    if kind != "ward":
        raise Refused("allocation happens on the ward laptop the list was issued to, not at the hub")
    pid = ids.normalise("participant", participant)
    if store.one("SELECT 1 FROM participants WHERE id = ?", (pid,)) is None:
        raise Refused(f"unknown participant {pid} at this site")
    _protocol_gates(store, pid)
    _lists_for(store, device, None)  # none at all: said first
    _already_randomized(store, pid)  # said before the levels are computed (and again inside the transaction)
    lists_here = _arms_planned(store, pid, _lists_for(store, device, pid))
    current = lists_here[-1]
    factors = json.loads(current.get("factors") or "[]")
    snap = levels_mod.snapshot(store, pid) if factors else None
    found = levels_mod.resolve(factors, json.loads(current["stratify_by"]), site, levels or {}, snap, pid)
    stratum = _stratum(current, site, found.levels)
    with store.transaction():
        _already_randomized(store, pid)
        entry = store.one(
            "SELECT e.list_id, e.position, e.sealed, e.digest, l.list_key, l.reveal FROM rand_entries e"
            " JOIN rand_lists l ON l.list_id = e.list_id"
            " LEFT JOIN rand_allocations a"
            "   ON a.list_id = e.list_id AND a.stratum = e.stratum AND a.position = e.position"
            " WHERE l.device = ? AND e.stratum = ? AND a.participant IS NULL"
            f" AND l.list_id IN ({','.join('?' * len(lists_here))})"
            " ORDER BY l.issued_at, l.rowid, e.position LIMIT 1",
            (device, stratum, *[str(r["list_id"]) for r in lists_here]),
        )
        if entry is not None:
            list_id, position, sealed, digest, list_key, reveal = entry
            keys = devicekeys.load(store, device)
            if keys is None:
                raise Refused(f"device {device} has no keys")
            key = sealing.open_key(list_key, keys.age_identity, "allocation list key")
            opened = sealing.open_entry(key, "entry", list_id, stratum, position, sealed, digest)
            body: dict[str, Any] = {
                "participant": pid,
                "list": list_id,
                "stratum": stratum,
                "position": position,
                "digest": digest,
                "salt": opened["salt"],
                "levels": dict(sorted(found.levels.items())),
                "computed": list(found.computed),
                "asked": list(found.asked),
            }
            body["kit" if reveal == "kit" else "arm"] = opened["kit" if reveal == "kit" else "arm"]
            event = session.append(
                type="randomization.allocated", subject=f"participant:{pid}", body=body
            ).event
            return Allocation(pid, stratum, list_id, position, body.get("arm"), body.get("kit"), event.id)
    _exhausted(session, stratum, pid, [str(r["list_id"]) for r in lists_here])
    raise Refused(
        f"stratum {stratum} is exhausted: every entry of this laptop's lists is allocated; "
        f"{pid} was not randomized, the hub is told at the next sync (ask the coordinator for a new list)"
    )


def _already_randomized(store: Store, pid: str) -> None:
    taken = store.one("SELECT list_id, stratum, position FROM rand_allocations WHERE participant = ?", (pid,))
    if taken is not None:
        raise Refused(f"{pid} is already randomized (list {taken[0]}, stratum {taken[1]}, entry {taken[2]})")


class ListRow(TypedDict):
    """A row of `rand_lists`: a list issued to this laptop (schema.sql says what each column holds)."""

    list_id: str
    site: str
    device: str
    protocol_id: str
    protocol_version: str
    protocol_sha256: str
    reveal: str
    list_sha256: str
    stratify_by: str
    strata: str
    list_key: str
    unblind_key: str | None
    unblinding: str
    event_id: str
    issued_at: str
    factors: str  # JSON array of the factors' declarations ('[]' for a list made before they were sent)
    unblind_recipient: str | None
    kit_use: str


def _lists_for(store: Store, device: str, pid: str | None) -> list[ListRow]:
    """The laptop's lists a participant is allocated from, oldest first: those issued for the protocol version
    they are on (`amendments.protocol_of`: enrolled under it, or amended to it).

    A list is made at the hub from one version's design (arms, ratio, strata). A participant on PALM 1.0 is
    never allocated from a list issued for 1.1 (it may hold an arm 1.0 does not plan): refused, naming both,
    until the hub sends a list for their version or an investigator applies the amendment to them. Lists
    of another protocol only (a laptop whose lists name no version of the participant's protocol) are
    used as they come. An allocation is never moved: a participant amended after it keeps their arm
    (`amendments` refuses a version without it).
    """
    lists_here = cast(
        list[ListRow],
        store.rows("SELECT * FROM rand_lists WHERE device = ? ORDER BY issued_at, rowid", (device,)),
    )
    if not lists_here:
        raise Refused(NO_LIST)
    if pid is None:
        return lists_here
    from ..workflow.amendments import protocol_of
    from ..workflow.base import get_participant

    p = get_participant(store, pid)
    if p is None:
        return lists_here
    proto = protocol_of(store, p)
    same = [r for r in lists_here if r["protocol_id"] == proto.id]
    theirs = [r for r in same if r["protocol_version"] == proto.version]
    if theirs:
        return theirs
    if same:
        issued = sorted({str(r["protocol_version"]) for r in same})
        raise Refused(
            f"{p.id} is on protocol {proto.id} {proto.version}; this laptop's allocation lists were issued for "
            f"{proto.id} {', '.join(issued)}: ask the coordinator for a list for {proto.version}, or an "
            f"investigator applies the amendment first (`wardcrf protocol apply {p.id} VERSION --reason ...`)"
        )
    return lists_here


def list_arms(store: Store, lst: ListRow) -> list[str]:
    """The arms a list can give, from its signed header (the protocol's open arms it was made from)."""
    line = store.scalar("SELECT line FROM events WHERE id = ?", (lst["event_id"],))
    if line is None:
        raise Refused(f"randomization list {lst['list_id']}: its event {lst['event_id']} is not in this log")
    return [str(a["code"]) for a in json.loads(line)["body"].get("arms", ())]


def open_arms(m: Model) -> list[str]:
    """The arms a format-2 version plans for new participants: its `[[arms]]` not `closed` (a closed arm keeps
    the participants already on it and takes no one new)."""
    return [str(a["code"]) for a in m.data.get("arms", ()) if not a.get("closed", False)]


def _arms_planned(store: Store, pid: str, lists_here: list[ListRow]) -> list[ListRow]:
    """The lists the participant may be allocated from: those whose every arm their version plans (an open
    arm of it); refused, before any entry is opened, when no list is.

    Checked on a list's arms (its signed header), never on the entry that would come next: the refusal is
    the same whichever entry that is, so a blinded ward learns nothing of the arm the participant would have
    had; it names only the protocol's arms, which every ward holds in the header and the protocol file. A
    list that can give an arm the version does not plan (another trial's, or made from a file whose arms are
    not the version's: a `closed` arm still open in it) is never used for them. A format-1 version places
    nobody by arm (no check).
    """
    from ..workflow.amendments import protocol_of
    from ..workflow.base import get_participant

    p = get_participant(store, pid)
    proto = protocol_of(store, p)
    if proto.engine is None or p is None:
        return lists_here
    planned = open_arms(proto.engine)
    arms = {str(lst["list_id"]): list_arms(store, lst) for lst in lists_here}
    fit = [
        lst
        for lst in lists_here
        if arms[str(lst["list_id"])] and set(arms[str(lst["list_id"])]) <= set(planned)
    ]
    if fit:
        return fit
    lst = lists_here[-1]
    named = arms[str(lst["list_id"])]
    unplanned = [a for a in named if a not in planned] if named else ["nothing (its header names no arm)"]
    raise Refused(
        f"{p.id} is on {proto.id} {proto.version}, whose open arms are {', '.join(planned) or 'none'}; "
        f"allocation list {lst['list_id']} (made from {lst['protocol_id']} {lst['protocol_version']}) can "
        f"give {', '.join(unplanned)}: nobody randomized; ask the coordinator for a list made from "
        f"{proto.id} {proto.version}"
    )


def _protocol_gates(store: Store, pid: str) -> None:
    """A format-2 version's gates before `randomize` (eligibility, a DSMG hold...), in its words."""
    from ..clock import now_utc
    from ..workflow.amendments import protocol_of
    from ..workflow.base import get_participant

    proto = protocol_of(store, get_participant(store, pid))  # theirs: enrolled under it, or applied
    if proto.engine is not None:
        from ..workflow.engine_rules import require_gates

        require_gates(store, proto, pid, "randomize", now_utc())


def _factors(lst: ListRow) -> dict[str, list[str]]:
    """The list's stratification factors other than `site`, with their levels, in order."""
    declared: dict[str, list[str]] = {}
    for key in json.loads(lst["strata"]):
        for part in key.split(";"):
            name, _, level = part.partition("=")
            if name and name != SITE and level not in declared.setdefault(name, []):
                declared[name].append(level)
    return declared


def factors_needed(session: Session, participant: str | None = None) -> dict[str, list[str]]:
    """What the clinician must state to randomize on this laptop: each factor and its levels (may be empty).

    With a participant, a factor whose level their records give (or that the
    protocol computes and does not ask: `allocate` then names what is missing)
    is left out: only asked factors the records cannot settle yet, and the
    factors of a list made before factors travelled, are asked.
    """
    session.require("randomization.allocate", what="randomize participants")
    _site, device, _kind = own_identity(session.store)
    pid = ids.normalise("participant", participant) if participant is not None else None
    lst = _lists_for(session.store, device, pid)
    if pid is not None:
        lst = _arms_planned(session.store, pid, lst)  # said before any level is asked
    lst = lst[-1:]  # the latest list the participant is allocated from
    every = _factors(lst[0])
    declared = {str(f["code"]): f for f in json.loads(lst[0].get("factors") or "[]")}
    if not declared:
        return every
    snap = levels_mod.snapshot(session.store, pid) if pid is not None else None
    out: dict[str, list[str]] = {}
    for name, codes in every.items():
        factor = declared.get(name)
        if factor is None or (factor.get("asked") and not levels_mod.settled(factor, snap, pid or "")):
            out[name] = codes
    return out


def levels_known(session: Session, participant: str) -> list[tuple[str, str, str]]:
    """(factor, level, source) of each factor the participant's records already give, for the dialog to show."""
    session.require("randomization.allocate", what="randomize participants")
    _site, device, _kind = own_identity(session.store)
    pid = ids.normalise("participant", participant)
    try:
        lst = _arms_planned(session.store, pid, _lists_for(session.store, device, pid))[-1]
    except Refused:
        return []  # no list for them: `factors_needed` and `allocate` say why
    factors = json.loads(lst["factors"]) if lst.get("factors") else []
    if not factors:
        return []
    return levels_mod.known(factors, levels_mod.snapshot(session.store, pid), pid)


def randomizable(session: Session, participant: str) -> bool:
    """Whether to offer randomization for this participant here: a list, a role that may, not yet randomized."""
    from .. import roles

    if not roles.allowed(session.role, "randomization.allocate"):
        return False
    store = session.store
    _site, device, kind = own_identity(store)
    if kind != "ward" or store.one("SELECT 1 FROM rand_lists WHERE device = ?", (device,)) is None:
        return False
    return store.one("SELECT 1 FROM rand_allocations WHERE participant = ?", (ids.key(participant),)) is None


def _stratum(lst: ListRow, site: str, levels: dict[str, str]) -> str:
    """The stratum key of the participant, checked against the strata the list holds."""
    stratify_by = json.loads(lst["stratify_by"])
    strata = json.loads(lst["strata"])
    declared = _factors(lst)
    extra = sorted(set(levels) - set(declared))
    if extra:
        raise Refused(
            f"{extra[0]!r} is not a stratification factor of this trial (factors: {', '.join(declared) or 'none'})"
        )
    parts = []
    for name in stratify_by:
        if name == SITE:
            parts.append(f"{SITE}={site}")
            continue
        level = levels.get(name)
        if level is None:
            raise Refused(
                f"stratum factor {name} needs a level (one of {', '.join(declared[name])}) (--stratum {name}=LEVEL)"
            )
        if level not in declared[name]:
            raise Refused(
                f"{level!r} is not a level of stratum factor {name} (levels: {', '.join(declared[name])})"
            )
        parts.append(f"{name}={level}")
    key = ";".join(parts) if parts else "all"
    if key not in strata:
        raise Refused(f"stratum {key} is not in this laptop's allocation list (strata: {', '.join(strata)})")
    return key


def _exhausted(session: Session, stratum: str, pid: str, list_ids: list[str]) -> None:
    """Tell the hub (an event it receives at the next sync), once per stratum and participant."""
    store = session.store
    if store.one("SELECT 1 FROM rand_exhausted WHERE stratum = ? AND participant = ?", (stratum, pid)):
        return
    with store.transaction():
        session.append(
            type="randomization.stratum_exhausted",
            subject=f"participant:{pid}",
            body={"stratum": stratum, "lists": list_ids, "participant": pid},
        )


# -- emergency unblinding ----------------------------------------------------------------------


@dataclass(frozen=True)
class Unblinding:
    """One participant's arm, revealed on the ward in an emergency, and the events that record it."""

    participant: str
    arm: str
    kit: str | None
    event_id: str
    signatures: tuple[str, ...]


def unblind(
    session: Session,
    participant: str,
    *,
    reason: str,
    detail: str,
    password: str,
    witness: str | None = None,
    witness_password: str | None = None,
) -> Unblinding:
    """Reveal one blinded participant's arm: the protocol's roles, a coded reason and text, e-signatures.

    The investigator signs with their password, and a witness signs too when
    the protocol asks (`[randomization.unblinding] witness`). Passwords are
    checked before the envelope is opened; the unblinding event and its
    signatures are one transaction. Only this participant's envelope is
    opened (its own key, derived for its slot); no other arm is read.
    """
    from .. import signatures, text

    session.require("randomization.unblind", what="unblind a participant")
    store = session.store
    pid = ids.normalise("participant", participant)
    row = store.one(
        "SELECT a.list_id, a.stratum, a.position, a.kit, l.reveal, l.unblind_key, l.unblinding,"
        " e.arm_sealed, e.arm_digest, l.unblind_recipient"
        " FROM rand_allocations a JOIN rand_lists l ON l.list_id = a.list_id"
        " JOIN rand_entries e ON e.list_id = a.list_id AND e.stratum = a.stratum AND e.position = a.position"
        " WHERE a.participant = ?",
        (pid,),
    )
    if row is None:
        raise Refused(f"{pid} is not randomized on this laptop: nothing to unblind")
    list_id, stratum, position, kit, reveal, unblind_key, rules_json, arm_sealed, arm_digest, sealed_to = row
    if reveal != "kit" or unblind_key is None or arm_sealed is None:
        raise Refused(
            f"{pid}'s trial is open label: the arm was shown at allocation, there is nothing to unblind"
        )
    rules = json.loads(rules_json)
    allowed = rules.get("roles") or []
    if allowed and session.role not in allowed:
        raise Refused(f"the protocol lets only {', '.join(allowed)} unblind; you are {session.role}")
    reasons = rules.get("reasons") or []
    if reason not in reasons:
        raise Refused(
            f"unblinding needs a reason from the protocol's list ({', '.join(reasons) or 'none declared'}), not {reason!r}"
        )
    detail = text.check(detail, field="detail", multiline=True).strip()
    if not detail:
        raise Refused("unblinding needs a written explanation (--detail) beside the coded reason")
    if rules.get("witness"):
        if not witness or witness_password is None:
            raise Refused("this protocol needs a witness to unblind: a second person signs (--witness USER)")
        if witness == session.user:
            raise Refused("the witness must be another person than the investigator who unblinds")
    if store.one("SELECT 1 FROM rand_unblindings WHERE participant = ?", (pid,)):
        raise Refused(f"{pid} is already unblinded (see `wardcrf report randomization`)")
    session.site.verify_password(session, session.user, password)
    if witness and witness_password is not None:
        session.site.verify_password(session, witness, witness_password)
    if sealed_to is not None:  # only an unblinding role's key slot opens it (`unblindkeys`)
        identity = unblindkeys.identity_for(session)
    else:  # a list made before the laptop published its unblinding key: sealed to the laptop itself
        keys = devicekeys.load(store, own_identity(store)[1])
        if keys is None:
            raise Refused("this laptop has no keys")
        identity = keys.age_identity
    key = sealing.open_key(unblind_key, identity, "unblinding key")
    opened = sealing.open_entry(key, "arm", list_id, stratum, position, arm_sealed, arm_digest)
    body = {
        "participant": pid,
        "list": list_id,
        "stratum": stratum,
        "position": position,
        "kit": kit,
        "arm": opened["arm"],
        "arm_digest": arm_digest,
        "salt": opened["salt"],
        "reason": reason,
        "detail": detail,
    }
    if witness:
        body["witness"] = witness
    with store.transaction():
        event = session.append(type="randomization.unblinded", subject=f"participant:{pid}", body=body).event
        signed = [signatures.sign(session, target=event.id, meaning="authored", password=password).id]
        if witness and witness_password is not None:
            signed.append(
                signatures.sign(
                    session, target=event.id, meaning="witnessed", signer=witness, password=witness_password
                ).id
            )
    return Unblinding(pid, str(opened["arm"]), kit, event.id, tuple(signed))
