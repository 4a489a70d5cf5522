"""Protocol amendments, per participant (issue 17; docs/protocol.md, "Versions and amendments").

Loading a new protocol version makes it the site's active one: new
participants are captured under it. A participant already enrolled stays on
the version their enrollment was captured under until an investigator
*applies* a newer loaded version to them, with a reason: one audited
`protocol.applied` event per participant, `{participant, protocol_id,
from_version, to_version}` with the reason in the event's envelope (so every
audit trail and export that lists events shows it). From then on the
participant's forms are checked against, and their new records captured
under, that version; the engine's view of them (what is due, the next dose,
eligibility, the gates) reads it. Records already saved keep the version they
were captured under, as always.

Who may apply it: `protocol.apply`, the investigator only (roles.py). Under
ICH E6 the investigator conducts the trial per the approved protocol and
implements an approved amendment for each participant (re-consent where the
ethics committee asks for it); a site administrator loads files but takes no
clinical decision, and no other role speaks for the protocol.

Refused, naming why and saving nothing: an unknown participant or one not
enrolled (before enrollment the active version governs them anyway), a
version not loaded on this site or of another protocol, the version they are
on, an older one (loaded before theirs: a participant only moves forward), an
empty reason or one holding control characters; and a version the
participant's data does not fit: their arm missing from it, a form holding
one of their records removed from it, or more administrations recorded than
it plans for their arm (`wardcrf protocol diff` shows the differences).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypedDict

from .. import protocol as protocols
from .. import text
from ..engine import due
from ..errors import Refused, UsageError
from ..eventlog import get
from ..sqlstore import common_dialect
from .base import Participant, get_participant, require_participant

if TYPE_CHECKING:
    from ..eventlog import Event
    from ..features import Registry
    from ..protocol import Protocol
    from ..site import Session
    from ..store import Store

EVENT = "protocol.applied"


class GoverningVersion(TypedDict):
    """The version a participant is on and how they came to it: enrollment, an amendment, or the
    active one (not enrolled yet)."""

    id: str
    version: str
    since: str


AppliedAmendment = TypedDict(
    "AppliedAmendment", {"event": str, "from": str, "to": str, "reason": str, "by": str, "at": str}
)
"""One amendment applied to a participant (`from` is a keyword: the functional form)."""


class VersionState(TypedDict):
    """What `participant show` adds about versions: the governing one and every amendment, oldest first."""

    protocol: GoverningVersion
    amendments: list[AppliedAmendment]


MAX_REASON = 2000


def participant_ref(store: Store, p: Participant) -> dict[str, str] | None:
    """The protocol version a participant is on ({"id", "version"}), or None before enrollment.

    The latest `protocol.applied` to them in log order; else the version their
    enrollment record was captured under.
    """
    # rows are inserted in log order (a rebuild replays the log in order): the last is the latest
    row = store.one(
        "SELECT protocol_id, to_version FROM protocol_applications WHERE participant = ?"
        " ORDER BY rowid DESC LIMIT 1",
        (p.id,),
    )
    if row is not None:
        return {"id": str(row[0]), "version": str(row[1])}
    if p.enrollment_event:
        e = get(store, p.enrollment_event)
        if e is not None and e.protocol:
            return {"id": str(e.protocol.get("id")), "version": str(e.protocol.get("version"))}
    return None


def protocol_of(store: Store, p: Participant | None) -> Protocol:
    """The version whose forms and rules govern a participant: theirs once enrolled, else the active one.

    A version the participant is on but this laptop has not loaded (their enrollment came by sync or a
    restore before the version's `protocol.loaded`) is refused in one line naming it: their forms,
    schedule and rules are that version's, and no other version stands in for it (`protocol.version`).
    """
    ref = participant_ref(store, p) if p is not None else None
    active = protocols.active(store)
    if ref is None or (ref["id"], ref["version"]) == (active.id, active.version):
        return active
    try:
        return protocols.version(store, ref)
    except protocols.VersionNotLoaded as missing:
        assert p is not None
        raise Refused(
            f"{p.id} is on {missing.named}, which is not loaded on this laptop: their forms, schedule and "
            "rules are that version's, so nothing is shown, checked or saved for them under another one; "
            "load it with `wardcrf protocol load FILE`"
        ) from None


def protocols_of(store: Store, people: list[Participant], *, log: Store | None = None) -> dict[str, Protocol]:
    """`protocol_of` for many participants in indexed queries: only those not on the active version.

    `log`: where the events are (a rebuild's check derives into a scratch store holding projections only).
    """
    if not people:
        return {}
    active = protocols.active(store)
    out: dict[str, Protocol] = {}
    loaded: dict[tuple[str, str], Protocol | None] = {}  # one look-up per version named
    for pid, (pr, ver) in _refs_of(store, people, log or store).items():
        if (pr, ver) == (active.id, active.version):
            continue
        if (pr, ver) not in loaded:
            ref = {"id": pr, "version": ver}
            loaded[(pr, ver)] = protocols.version(store, ref) if protocols.is_loaded(store, ref) else None
        theirs = loaded[(pr, ver)]
        if theirs is not None:
            out[pid] = theirs
    # A version not loaded here is left out: the ward's lists flag those participants (`not_loaded_of`) and
    # show nothing due for them; `participant show` and every form, wizard and save for them refuse,
    # naming it (`protocol_of`).
    return out


def not_loaded_of(store: Store, people: list[Participant], *, log: Store | None = None) -> dict[str, str]:
    """The participants among `people` on a version this laptop has not loaded, each with the version
    named (``TRIAL 1.2``): enrolled under it or moved to it by an amendment on another laptop, synced
    here without the version's `protocol.loaded`. Their schedule is that version's, so the ward list and
    `today` flag them and compute nothing due for them under another version."""
    if not people:
        return {}
    refs = _refs_of(store, people, log or store)
    # one look-up per version named, not per participant (a whole site's list asks)
    missing = {v for v in set(refs.values()) if not protocols.is_loaded(store, {"id": v[0], "version": v[1]})}
    return {
        pid: f"{text.excerpt(pr)} {text.excerpt(ver)}"
        for pid, (pr, ver) in refs.items()
        if (pr, ver) in missing
    }


def not_loaded_notice(named: str) -> str:
    """The ward's line for a participant on a version not loaded here (`not_loaded_of`)."""
    return (
        f"version {named} not loaded here: sync or load it (`wardcrf protocol load FILE`); "
        "nothing due is shown for them until then"
    )


def _refs_of(store: Store, people: list[Participant], events: Store) -> dict[str, tuple[str, str]]:
    """(protocol id, version) each enrolled participant is on: the latest amendment applied, else their
    enrollment's version (`participant_ref` for many, in indexed queries)."""
    refs: dict[str, tuple[str, str]] = {}
    enrolled = {p.enrollment_event: p.id for p in people if p.enrollment_event}
    for chunk in _chunks(list(enrolled), 500):
        # The line read in Python, not with SQLite's json_extract: a PostgreSQL hub's ward queue asks too.
        for event_id, line in events.execute(
            f"SELECT id, line FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ):
            ref = json.loads(line).get("protocol") or {}
            pr, ver = ref.get("id"), ref.get("version")
            if pr is not None and ver is not None:
                refs[enrolled[str(event_id)]] = (str(pr), str(ver))
    for chunk in _chunks([p.id for p in people], 500):
        for pid, pr, ver in store.execute(
            "SELECT participant, protocol_id, to_version FROM protocol_applications"
            f" WHERE participant IN ({','.join('?' * len(chunk))}) ORDER BY rowid",
            chunk,
        ):
            refs[str(pid)] = (str(pr), str(ver))
    return refs


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _load_order(store: Store, protocol_id: str) -> list[str]:
    """The versions of a protocol loaded on this site, oldest first (the order they were loaded)."""
    return [
        str(r[0])
        for r in store.execute(
            "SELECT p.version FROM protocols p JOIN events e ON e.id = p.loaded_event"
            " WHERE p.protocol_id = ? ORDER BY e.pos",
            (protocol_id,),
        )
    ]


def clean_reason(reason: str | None) -> str:
    """The reason as stored: trimmed, one line, no control characters; `UsageError`/`Refused` naming why not."""
    if reason is None or not reason.strip():
        raise UsageError(
            "applying a protocol amendment needs a reason (--reason): e.g. the amendment's approval "
            "and the participant's re-consent"
        )
    value = reason.strip()
    if len(value) > MAX_REASON:
        raise Refused(f"reason: {len(value):,} characters, at most {MAX_REASON:,} allowed; nothing was saved")
    return text.check(value, field="reason")


def runs(proto: protocols.Protocol) -> bool:
    """Whether the ward runs `proto`: the engine runs every version but a format-1 version stored before it
    ran format 1 that it cannot run (`protocol.run_as` gives that one as stored)."""
    return proto.engine is not None


def check_apply(
    session: Session, participant: str | None, version: str, reason: str | None
) -> dict[str, Any]:
    """Every rule of `apply`, nothing written: the event's body (and the reason) it would append."""
    session.require("protocol.apply", what="apply a protocol amendment to a participant")
    why = clean_reason(reason)
    store = session.store
    p = require_participant(store, participant)
    if not p.enrollment_event:
        raise Refused(
            f"{p.id} is not enrolled: a protocol amendment is applied to enrolled participants; until "
            "enrollment the site's active version governs them"
        )
    current = protocol_of(store, p)
    pid, wanted = current.id, version.strip()
    if "@" in wanted:
        named, _, wanted = wanted.partition("@")
        if named != pid:
            raise Refused(
                f"{p.id} is on protocol {pid} {current.version}; {text.excerpt(named)} is another protocol "
                "(an amendment moves a participant to a newer version of the same protocol)"
            )
    if not wanted:
        raise UsageError("name the version to apply (e.g. 1.1, as `wardcrf protocol show` lists them)")
    order = _load_order(store, pid)
    if wanted not in order:
        raise Refused(
            f"protocol {pid} version {text.excerpt(wanted)} is not loaded on this site "
            f"(loaded: {', '.join(order) or 'none'}; load it first with `wardcrf protocol load FILE`)"
        )
    if wanted == current.version:
        raise Refused(f"{p.id} is already on {pid} {wanted}; nothing to apply")
    if current.version in order and order.index(wanted) < order.index(current.version):
        raise Refused(
            f"{pid} {wanted} was loaded before {current.version}, the version {p.id} is on: a participant "
            f"only moves to a newer version (loaded after {current.version})"
        )
    target = protocols.loaded_version(store, pid, wanted)
    if not runs(target):  # a format-1 version stored before the engine ran format 1 (docs/engine.md)
        raise Refused(
            f"{pid} {wanted} is a format-1 version the engine cannot run: no record could be saved for {p.id} "
            "under it; write it in format 2, `wardcrf protocol load` it and apply that version"
        )
    _fits(store, p, current, target)
    return {
        "participant": p.id,
        "protocol_id": pid,
        "from_version": current.version,
        "to_version": target.version,
        "reason": why,
    }


def _fits(store: Store, p: Participant, current: Protocol, target: Protocol) -> None:
    """Refuse a version the participant's data does not fit (their arm, the forms holding their records)."""
    held = [
        str(r[0])
        for r in store.execute(
            "SELECT DISTINCT form FROM records WHERE subject = ? ORDER BY form", (f"participant:{p.id}",)
        )
    ]
    gone = [f for f in held if f not in target.forms]
    if gone:
        raise Refused(
            f"{target.id} {target.version} has no {', '.join(gone)} form, which holds records of {p.id}: "
            f"their records could not be read under it (see `wardcrf protocol diff {current.id}@{current.version} "
            f"{target.id}@{target.version}`)"
        )
    row = store.one("SELECT arm FROM rand_allocations WHERE participant = ?", (p.id,))
    arm = str(row[0]) if row is not None and row[0] is not None else None
    model = due.model_for(target)
    arms = [a.code for a in model.arms]
    if arm is not None and arm not in arms:
        raise Refused(
            f"{p.id} was allocated arm {arm}, which {target.id} {target.version} does not have "
            f"(arms: {', '.join(arms)})"
        )
    if arm is None and len(arms) > 1:
        return  # no arm yet: nothing was given against one
    planned = due.planned(model, arm if len(arms) > 1 else None)
    forms = {str(a.record.get("form")) for r in model.regimens_of(arm) for a in r.administrations}
    if not forms & set(held):
        return  # nothing administered yet
    given = int(
        store.scalar(
            f"SELECT count(*) FROM records WHERE subject = ? AND form IN ({','.join('?' * len(forms))})",
            (f"participant:{p.id}", *sorted(forms)),
        )
        or 0
    )
    if given > planned:
        raise Refused(
            f"{p.id} has {given} administrations recorded and {target.id} {target.version} plans "
            f"{planned}: their course does not fit the new schedule"
        )


def apply(session: Session, participant: str | None, version: str, reason: str | None) -> Event:
    """Move an enrolled participant to a newer loaded version of their protocol (investigator), with a reason.

    Checked and written under one write lock; the event is captured under the version applied.
    """
    session.require("protocol.apply", what="apply a protocol amendment to a participant")
    with session.store.transaction():
        body = check_apply(session, participant, version, reason)
        why = body.pop("reason")
        previous = session.protocol
        session.protocol = {"id": body["protocol_id"], "version": body["to_version"]}
        try:
            return session.append(
                type=EVENT, subject=f"participant:{body['participant']}", body=body, reason=why
            ).event
        finally:
            session.protocol = previous


def history(store: Store, participant: str) -> list[dict[str, Any]]:
    """Every amendment applied to a participant, oldest first."""
    p = get_participant(store, participant)
    if p is None:
        return []
    return store.rows(
        "SELECT event_id, protocol_id, from_version, to_version, reason, applied_by, applied_at"
        " FROM protocol_applications WHERE participant = ? ORDER BY rowid",
        (p.id,),
    )


def version_of(session: Session, participant: str) -> VersionState:
    """For `participant show`: the version a participant is on, how they came to it, and every amendment."""
    session.require("record.read", what="read participants")
    p = require_participant(session.store, participant)
    ref = participant_ref(session.store, p)
    governing = protocol_of(session.store, p)
    applied = history(session.store, p.id)
    if applied:
        how = "amendment"
    elif ref is not None:
        how = "enrollment"
    else:
        how = "active (not enrolled)"
    return {
        "protocol": {"id": governing.id, "version": governing.version, "since": how},
        "amendments": [
            {
                "event": a["event_id"],
                "from": a["from_version"],
                "to": a["to_version"],
                "reason": a["reason"],
                "by": a["applied_by"],
                "at": a["applied_at"],
            }
            for a in applied
        ],
    }


@common_dialect
def _applied(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        "INSERT INTO protocol_applications"
        " (event_id, participant, protocol_id, from_version, to_version, reason, applied_by, applied_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            e.id,
            b["participant"],
            b["protocol_id"],
            b["from_version"],
            b["to_version"],
            e.reason or "",
            e.user,
            e.ts,
        ),
    )


def register(registry: Registry) -> None:
    """The amendments' projection (`wardcrf.features`)."""
    registry.projector(_applied, EVENT)
