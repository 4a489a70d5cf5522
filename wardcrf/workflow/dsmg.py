"""What a DSMG member reviews, and the signed decision they record.

The DSMG looks at each participant's safety data before it lets the trial go
on (the sentinel gate) or stops it. `participant_safety` gathers one
participant's administrations (given, planned, the cumulative dose per
unit), adverse events (by grade, seriousness, causality), serious events
with their expedited-report due dates and the DSMG's own relatedness
reviews, the declared vital signs (`[safety] vital_signs`, read through
`workflow.declared`) outside their expected (soft) ranges, and the
decisions recorded about them. `gate_state` says what the decisions mean
for the ward now (a stop or an unresolved alter, the sentinel gate). Both
only read the records and projections, so they can be asked at any time and
always reflect the records as amended.

`decide` records a `dsmg_decision` and the member's e-signature over it in
one transaction: a wrong password saves nothing (the failed attempt is still
logged), so an unsigned decision never gates the trial.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict

from .. import protocol as protocols
from ..errors import AuthError
from ..eventlog import Event
from ..store import Store
from . import declared, safety
from .declared import CumulativeDose
from .participants import SentinelState, sentinel_state

if TYPE_CHECKING:
    from ..site import Session

DECISION_MEANING = "approved"
"""A DSMG member signs their decision as its approver (21 CFR 11.50 meaning)."""


class Relatedness(TypedDict):
    """The latest DSMG review of one adverse event (`_relatedness`)."""

    review: str
    relatedness: str | None
    unexpected: str | None


def _relatedness(store: Store) -> dict[str, Relatedness]:
    """AE event id -> the latest DSMG review of it (relatedness, unexpected, record)."""
    declared = safety.review_form(store)  # format 1's dsmg_ae_review, or `[safety] dsmg_review`
    if declared is None:
        return {}
    _form, _ae, rel, unexp = declared
    out: dict[str, Relatedness] = {}
    for event_id, ae, d in safety.reviews(store):
        out[ae] = {
            "review": event_id,
            "relatedness": d.get(rel) if rel else None,
            "unexpected": d.get(unexp) if unexp else None,
        }
    return out


class VitalsFlag(TypedDict):
    """A vital sign recorded outside the protocol's expected (soft) range (`vitals_flags`)."""

    event: str
    time: str
    timepoint: str | None
    dose: int | None
    """The administration the measurement was before or after (its number), or None."""
    form: str
    """The form of the declared vital signs (`[safety] vital_signs`), whose field `sign` is."""
    sign: str
    """A field of `[safety] vital_signs` (format 1: the vitals form's temp, pulse, ...)."""
    value: float
    low: float
    high: float
    unit: str | None


def vitals_flags(store: Store, proto: protocols.Protocol, pid: str) -> list[VitalsFlag]:
    """Every declared vital sign recorded outside the protocol's expected (soft) range, oldest first.

    Within one record, the signs in the order the form declares its fields.
    """
    vs = declared.vital_signs(proto)
    if vs is None or vs.form not in proto.forms:
        return []
    fields = proto.form(vs.form).fields
    ranges = {name: f.soft for name, f in fields.items() if name in vs.fields and f.soft}
    flags: list[VitalsFlag] = []
    rows = declared.vitals_rows(store, proto, pid)
    for row in sorted(rows, key=lambda r: (r["time"] or "", r["event"])):
        for name, soft in ranges.items():
            value = row["values"].get(name)
            assert soft is not None
            if value is not None and not soft[0] <= value <= soft[1]:
                flags.append(
                    {
                        "event": row["event"],
                        "time": row["time"] or "",
                        "timepoint": row["timepoint"],
                        "dose": row["number"],
                        "form": vs.form,
                        "sign": name,
                        "value": value,
                        "low": soft[0],
                        "high": soft[1],
                        "unit": fields[name].unit,
                    }
                )
    return flags


class SafetyAe(TypedDict):
    """One adverse event as the DSMG reviews it (`ParticipantSafety.aes`)."""

    event: str
    term: str
    onset: str | None
    end: str | None
    grade: int | None
    serious: bool
    causality: str | None
    outcome: str | None


class SaeReview(TypedDict):
    """A serious adverse event: its expedited report and the DSMG's relatedness review."""

    event: str
    term: str
    onset: str | None
    grade: int | None
    outcome: str | None
    report_due: str | None
    report_overdue: bool
    relatedness: str | None
    unexpected: str | None
    awaiting_review: bool


class DecisionSignature(TypedDict):
    """An e-signature over a DSMG decision (`decision_signatures`)."""

    user: str
    full_name: str
    meaning: str
    at: str
    valid: bool
    """False: the decision changed since it was signed."""


class SignedDecision(safety.Decision):
    """A DSMG decision with its e-signatures (`ParticipantSafety.decisions`)."""

    signatures: list[DecisionSignature]


class ParticipantSafety(TypedDict):
    """One participant's safety data as the DSMG reviews it (`participant_safety`)."""

    participant: str
    doses_given: int
    doses_planned: int
    cumulative_dose: list[CumulativeDose]
    """The doses given, summed per unit, from the records (`declared.exposure`)."""
    aes: list[SafetyAe]
    aes_total: int
    aes_by_grade: dict[str, int]
    """Grade ("?" when not graded) -> count, by grade."""
    aes_serious: int
    aes_by_causality: dict[str, int]
    """Causality ("not assessed" when none) -> count."""
    saes: list[SaeReview]
    sae_reports_overdue: int
    saes_awaiting_review: int
    vitals_flags: list[VitalsFlag]
    decisions: list[SignedDecision]
    latest_decision: str | None


class BoardParticipant(ParticipantSafety):
    """A participant's line of the DSMG board (`review`)."""

    sentinel: bool
    """Whether they are one of the protocol's sentinel participants."""
    version_not_loaded: str | None
    """The version they are on (``PALM 1.3``) when this laptop has not loaded it (`amendments.not_loaded_of`),
    else None. Then nothing is computed from a schedule: ``doses_planned`` is 0 (not known here) and
    ``doses_given``/``cumulative_dose`` are the administrations recorded (`declared.recorded_exposure`);
    their AEs, SAEs, vital-sign flags and decisions are shown as for everyone."""
    notice: str | None
    """The line saying so (`amendments.not_loaded_notice`), else None."""


def participant_safety(
    store: Store,
    proto: protocols.Protocol,
    pid: str,
    *,
    today: date,
    reviews: dict[str, Relatedness] | None = None,
    schedule_known: bool = True,
) -> ParticipantSafety:
    """One participant's safety data as the DSMG reviews it (reads projections only).

    `today` (the ward's local day) decides which expedited reports are overdue;
    `reviews` may be passed when summarising many participants at once.
    `schedule_known=False`: the participant's own version is not loaded here, so their doses are the
    administrations recorded and nothing is planned (`declared.recorded_exposure`).
    """
    reviews = _relatedness(store) if reviews is None else reviews
    owed = safety.review_form(store) is not None  # a format-2 version may declare no review of SAEs
    exposure = (
        declared.exposure(store, proto, pid)
        if schedule_known
        else declared.recorded_exposure(store, proto, pid)
    )
    aes = store.rows("SELECT * FROM adverse_events WHERE participant = ? ORDER BY onset, event_id", (pid,))
    by_grade = Counter(str(a["grade"]) if a["grade"] is not None else "?" for a in aes)
    by_causality = Counter(a["causality"] or "not assessed" for a in aes)
    saes: list[SaeReview] = []
    for a in aes:
        if not a["serious"]:
            continue
        review = reviews.get(a["event_id"])
        due = a["report_due"]
        saes.append(
            {
                "event": a["event_id"],
                "term": a["term"],
                "onset": a["onset"],
                "grade": a["grade"],
                "outcome": a["outcome"],
                "report_due": due,
                "report_overdue": bool(due) and date.fromisoformat(due) < today,
                "relatedness": review["relatedness"] if review else None,
                "unexpected": review["unexpected"] if review else None,
                "awaiting_review": review is None and owed,
            }
        )
    decisions = [
        SignedDecision(**d, signatures=decision_signatures(store, d["event"]))
        for d in safety.decisions(store, participant=pid)
    ]
    return {
        "participant": pid,
        "doses_given": exposure["given"],
        "doses_planned": exposure["planned"],
        "cumulative_dose": exposure["cumulative"],
        "aes": [
            {
                "event": a["event_id"],
                "term": a["term"],
                "onset": a["onset"],
                "end": a["end"],
                "grade": a["grade"],
                "serious": bool(a["serious"]),
                "causality": a["causality"],
                "outcome": a["outcome"],
            }
            for a in aes
        ],
        "aes_total": len(aes),
        "aes_by_grade": dict(sorted(by_grade.items())),
        "aes_serious": len(saes),
        "aes_by_causality": dict(sorted(by_causality.items())),
        "saes": saes,
        "sae_reports_overdue": sum(1 for s in saes if s["report_overdue"]),
        "saes_awaiting_review": sum(1 for s in saes if s["awaiting_review"]),
        "vitals_flags": vitals_flags(store, proto, pid),
        "decisions": decisions,
        "latest_decision": decisions[-1]["decision"] if decisions else None,
    }


class GateState(TypedDict):
    """What the DSMG's decisions mean for the ward now (`gate_state`)."""

    hold: str | None
    """Why dosing and enrollment are held (a stop, an alter awaiting its protocol version), or None."""
    sentinel: SentinelState
    """`participants.sentinel_state`: the sentinels and those still waiting for a "continue"."""
    latest: safety.Decision | None
    """The decision that governs (`safety.decisions`' last)."""
    decisions: list[safety.Decision]
    saes_awaiting_review: int


class DsmgBoard(TypedDict):
    """The DSMG review board (`review`): the gate, and each participant's `participant_safety`
    with ``sentinel`` (whether they are one)."""

    gate: GateState
    participants: list[BoardParticipant]


def gate_state(store: Store, proto: protocols.Protocol) -> GateState:
    """What the DSMG's decisions mean for the ward now.

    `hold`: why dosing and enrollment are held (a stop, an alter awaiting its
    protocol version), or None. `sentinel`: the sentinels and those still
    waiting for a "continue". `latest`: the decision that governs.
    """
    all_ = safety.decisions(store)
    sentinel = sentinel_state(store, proto.sentinel_participants)
    return {
        "hold": safety.hold(store),
        "sentinel": sentinel,
        "latest": all_[-1] if all_ else None,
        "decisions": all_,
        "saes_awaiting_review": len(safety.review_list(store)),
    }


def review(session: Session, *, today: date) -> DsmgBoard:
    """The DSMG review board: the gate and every participant's safety summary."""
    session.require("record.read", what="read safety data")
    store = session.store
    from .amendments import not_loaded_notice, not_loaded_of, protocols_of
    from .base import participant_from_row

    proto = protocols.active(store)  # the gate and the sentinels are the site's
    reviews = _relatedness(store)
    enrolled = [participant_from_row(r) for r in store.rows("SELECT * FROM participants ORDER BY number")]
    theirs = protocols_of(store, enrolled)  # each participant's doses planned: their version's
    # on a version not loaded here: flagged as the ward list flags them, nothing planned under another version
    missing = not_loaded_of(store, enrolled)
    sentinels = set(sentinel_state(store, proto.sentinel_participants)["sentinels"])
    people = [
        BoardParticipant(
            **participant_safety(
                store,
                theirs.get(p.id, proto),
                p.id,
                today=today,
                reviews=reviews,
                schedule_known=p.id not in missing,
            ),
            sentinel=p.id in sentinels,
            version_not_loaded=missing.get(p.id),
            notice=not_loaded_notice(missing[p.id]) if p.id in missing else None,
        )
        for p in enrolled
    ]
    return {"gate": gate_state(store, proto), "participants": people}


def sae_review_form(session: Session) -> tuple[str, str] | None:
    """(form, field naming the AE) on which the DSMG reviews a serious AE here (format 1's
    `dsmg_ae_review`, a format-2 version's `[safety] dsmg_review`), or None when the version declares none."""
    session.require("record.read", what="read safety data")
    declared = safety.review_form(session.store)
    return None if declared is None else (declared[0], declared[1])


def decide(
    session: Session,
    participant: str,
    raw: Mapping[str, Any],
    *,
    password: str,
    draft: tuple[str, str] | None = None,
) -> Event:
    """Record a DSMG decision about `participant`, signed by the member ("approved").

    `raw` holds the `dsmg_decision` form's fields (decision, rationale,
    change for an alter, time). Saved with its signature or not at all.
    `draft` (form, context): the member's draft of this decision, ended in
    the same transaction (a saved decision and a leftover draft of it never
    both exist). It is ended here, not by the caller wrapping this call in
    a transaction of its own: a wrong password's failure record must be
    written after this transaction rolls back, outside any other.
    """
    from .. import drafts, signatures, users
    from ..clock import iso_utc, now_utc
    from .service import submit

    session.require("dsmg.decide", what="record DSMG decisions")
    try:
        with session.store.transaction():
            form = safety.dsmg_form(session.store)[0]  # the protocol's DSMG form (`[dsmg] form`)
            event = submit(session, form, raw, participant=participant)
            signatures.sign(session, target=event.id, meaning=DECISION_MEANING, password=password)
            if draft is not None:
                drafts.discard(session, draft[0], context=draft[1])
    except AuthError as exc:
        # The failure logged inside the rolled-back transaction is logged again.
        if str(exc).startswith("wrong password"):
            users.record_login_failed(session, session.user, iso_utc(now_utc()))
        raise
    return event


def decision_signatures(store: Store, event_id: str) -> list[DecisionSignature]:
    """The e-signatures over one decision record (valid, or changed since signed)."""
    from .. import signatures

    return [
        {"user": s.user, "full_name": s.full_name, "meaning": s.meaning, "at": s.signed_at, "valid": s.valid}
        for s in signatures.for_target(store, event_id)
    ]
