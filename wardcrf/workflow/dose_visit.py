"""A whole dose visit at the bedside: kit check, vitals before, the inhalation, vitals after, events.

The ward records a dose as four form records, in the order the rules need
them: pre-dose vitals (they name the next dose and must not follow its
start), the dose (sequencing, window, kit, every registered dose gate such
as the cold chain's custody check), post-dose vitals (they need the dose
recorded and must not precede its end), and the post-dose check of the
prespecified inhalation-associated events.

`record_dose_visit` submits the four through `service.submit` — so every
permission, field and sequencing rule runs exactly as for a single form —
inside ONE `store.transaction()`: either all four records exist afterwards
or none does. Why one transaction rather than four saves: a refusal of the
post-dose vitals (a time before the dose ended) after the dose was saved
would leave a dose without its vitals and make the person re-enter half a
visit; a dose gate refusing after the pre-dose vitals were saved would leave
vitals for a dose never given. The nested `submit` transactions become
savepoints of the outer one, and the store restores its pending chain heads
on rollback, so a refusal anywhere leaves the log exactly as it was.

`record_dose_visit(..., dry_run=True)` runs the same submissions and rolls
them back: the review step shows what the rules will say (the dose number,
its window, the deviations recording it creates) before anything is saved.

`check_kit` is the scan step's check: the kit id as a scanner typed it,
normalised, not already used, and accepted by every dose gate at the moment
of scanning (the gates run again at the dose's start when it is saved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict, cast

from .. import protocol as protocols
from ..clock import zone
from ..engine.schedule import Deviation
from ..errors import Refused, ValidationFailed, WardError
from ..kits import KitCheck as KitCheck  # the scan step's verdict, shared with the other wizard
from ..registration import require_installed
from . import amendments, service, status
from .base import now, require_participant
from .dosing import allocation_gates, call_dose_gate, dose_gates, kit_use

if TYPE_CHECKING:
    from ..site import Session

PARTS: tuple[tuple[str, str], ...] = (
    ("pre_vitals", "vitals"),
    ("dose", "dose"),
    ("post_vitals", "vitals"),
    ("post_dose_check", "post_dose_check"),
)
"""The visit's records in the order the rules require: (part, form)."""

PART_WORDS = {
    "pre_vitals": "pre-dose vitals",
    "dose": "dose",
    "post_vitals": "post-dose vitals",
    "post_dose_check": "post-dose check",
}


class VisitPartRefused(Refused):
    """One record of the visit was refused; nothing of the visit was saved.

    `part` names which record (`pre_vitals`, `dose`, `post_vitals`,
    `post_dose_check`) and `problems` its field problems (empty for a
    sequencing refusal), so a screen can point at the fields to correct.
    """

    def __init__(self, part: str, cause: WardError) -> None:
        self.part = part
        self.cause = cause
        self.problems: dict[str, str] = dict(getattr(cause, "problems", {}) or {})
        super().__init__(f"{PART_WORDS[part]}: {cause.message}; nothing of this dose visit was saved")
        self.exit_code = cause.exit_code


@dataclass
class DayCheck:
    """Whether a dose may be given today, decided before anything is typed (the wizard's step 1).

    `ok` False: `reason` is the rule's refusal, as saving would word it
    (DSMG hold, all doses given, no negative skin test, one dose per day,
    not enrolled or no longer eligible). `ok` True: the dose's number, due
    time and the window a dose starting at `start` falls in ("early",
    "late" — recorded as a deviation — or "on_time").
    """

    ok: bool
    reason: str | None = None
    dose_number: int | None = None
    due: str | None = None
    start: str | None = None
    window: str | None = None
    minutes_outside: int = 0


class VisitWarning(TypedDict):
    """A soft warning of one part of a visit: the part, and the warning as its record's event keeps it
    (`plausibility.SoftWarning.as_json`)."""

    part: str
    code: str
    fields: list[str]
    message: str


@dataclass
class DoseVisit:
    """What a dose visit records (or, for a dry run, would record)."""

    participant: str
    dose_number: int
    due: str
    window: str
    window_minutes: int
    start: str
    end: str
    deviations: list[Deviation]
    ae_expected: list[str]
    events: dict[str, str] = field(default_factory=dict)  # part -> event id; empty for a dry run
    saved: bool = False
    warnings: list[VisitWarning] = field(default_factory=list)
    """Soft warnings (`wardcrf.plausibility`) of the visit's records: part, code, fields, message."""


class _DryRun(Exception):
    def __init__(self, visit: DoseVisit) -> None:
        super().__init__("dry run")
        self.visit = visit


def check_kit(session: Session, participant: str, raw: str, when: datetime | None = None) -> KitCheck:
    """Whether the scanned kit can be used for this participant's next dose at `when` (default now).

    The scanner input is normalised by the protocol's kit id rule
    (`wardcrf.ids`); then "already used" (`dosing.kit_use`) and every
    registered dose gate. Refusals by rule come back as `ok=False` with the
    reason as the rules word it (unknown kit, quarantined, discarded, already
    used, custody broken, not thawed, temperatures...); a missing permission
    raises `PermissionDenied`.
    """
    session.require("dose.record", what="record doses")
    require_participant(session.store, participant)
    got = protocols.id_rule(session.store, "kit").check(raw)
    if not got.ok:
        return KitCheck(got.id, False, got.error)
    kit = got.id
    used = kit_use(session.store, kit, participant=participant)
    if used:
        return KitCheck(kit, False, str(used))
    require_installed()  # the features' dose gates (the cold chain)
    at = when or now()
    try:
        for allocation_gate in allocation_gates:
            allocation_gate(session.store, participant, kit)
        for gate in dose_gates:
            call_dose_gate(gate, session.store, kit, at, participant=participant)
    except Refused as exc:
        return KitCheck(kit, False, exc.message, _lot_of(session, kit))
    return KitCheck(kit, True, None, _lot_of(session, kit))


def check_day(session: Session, participant: str, when: datetime | None = None) -> DayCheck:
    """The rules of the day for this participant's next dose starting at `when` (default now).

    The engine's answer (`_engine_day`: the administration wizard's plan, then
    the save's own rules of that start), so a refusal here is the refusal a
    save would give, before a kit is scanned or a vital typed. A participant
    on a version the engine cannot run (a format-1 version stored before it
    ran format 1) is told so: nothing is saved under it. A missing permission
    raises `PermissionDenied`.
    """
    session.require("dose.record", what="record doses")
    p = require_participant(session.store, participant)
    proto = amendments.protocol_of(session.store, p)  # their version (enrolled under it, or applied)
    start = (when or now()).astimezone(zone(session.ctx.zone))
    if proto.engine is None:
        return DayCheck(False, status.cannot_run(proto), start=start.isoformat(timespec="seconds"))
    return _engine_day(session, p.id, start)


def _engine_day(session: Session, pid: str, start: datetime) -> DayCheck:
    """A format-2 version of its own: the administration wizard's plan of the next administration (the
    protocol's gates in its words), then the save's own rules of a start at `start` (`engine_rules`, as
    `_administration` runs them: the course complete, a second one that day or too close, before the
    first day or days early), and the slot the save would file it under (number, due time, timing) —
    never format 1's dose rules, so both wizards and the save say the same about the same participant."""
    from dataclasses import replace

    from ..engine import due as engine_due
    from ..engine import schedule
    from . import engine_rules
    from .administration_visit import plan
    from .base import RuleContext

    at = start.isoformat(timespec="seconds")
    try:
        planned = plan(session, pid, start)
    except Refused as exc:
        return DayCheck(False, exc.message, start=at)
    if planned.refusal:
        return DayCheck(False, planned.refusal, start=at)
    p = require_participant(session.store, pid)
    proto = amendments.protocol_of(session.store, p)
    m = proto.engine
    assert m is not None
    roles_ = planned.roles
    ctx = RuleContext(session, proto, planned.form, p, now())
    snap, _rec = engine_rules._snapshot(ctx, m, {roles_["start"]: start.isoformat()})
    anchors, arm = engine_rules.plan_inputs(ctx.store, m, p, ctx.zone)
    facts = engine_due.conditions(m, replace(snap, record=None), arm)
    given = schedule.Given(start, record="(this record)")
    others = engine_rules._others(ctx, ctx.form)
    rows, found = engine_rules.place(m, ctx.form, anchors, arm, ctx.zone, others, given, ctx.now, facts)
    try:
        if found is None:
            engine_rules._course_complete(m, rows, snap, p.id)
            return DayCheck(
                False,
                f"{start.isoformat(timespec='minutes')}: no administration of {p.id}'s schedule takes a "
                "record then (before the first, after the course, or past the late limit)",
                start=at,
            )
        engine_rules._spacing(ctx, m, found, start, roles_, snap)
    except Refused as exc:
        return DayCheck(False, exc.message, start=at)
    if not engine_rules._not_days_early(ctx, m, found, start, roles_["start"], snap, rows):
        return DayCheck(False, next(iter(ctx.problems.values())), start=at)
    s = found.slot
    local = zone(m.calendar.zone or ctx.zone)
    due_at = (s.due or s.opens).astimezone(local)
    word = found.timing or "on_time"
    edge = s.closes if word == "late" else s.opens
    outside = 0 if word == "on_time" else int(abs((start - edge).total_seconds()) // 60)
    return DayCheck(True, None, s.number, due_at.isoformat(timespec="seconds"), at, word, outside)


def _lot_of(session: Session, kit: str) -> str | None:
    """The kit's lot as the cold chain registered it (None in a build without the cold chain)."""
    try:
        from ..coldchain import custody
    except ImportError:
        return None
    return custody.lot_of(session.store, kit)


def record_dose_visit(
    session: Session,
    participant: str,
    *,
    pre_vitals: Mapping[str, Any],
    dose: Mapping[str, Any],
    post_vitals: Mapping[str, Any],
    post_dose_check: Mapping[str, Any],
    reasons: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> DoseVisit:
    """Record the next dose with its vitals and post-dose check, atomically (see the module doc).

    The dose number is the participant's next dose; the vitals' `timepoint`
    and `dose` and the check's `dose` are filled in here (a different value
    typed for them is refused). `reasons` maps a part to the reason for its
    soft-range values (the service stores it per field). Raises
    `VisitPartRefused` naming the part that failed; nothing is saved then.
    """
    session.require("dose.record", what="record doses")
    p = require_participant(session.store, participant)
    reasons = dict(reasons or {})
    unknown = sorted(set(reasons) - {part for part, _ in PARTS})
    if unknown:
        raise ValueError(f"unknown visit part {unknown[0]}")
    before = status.summary(session.store, p.id)
    nd = before.get("next_dose")
    if nd is None:
        planned = before["doses_planned"]
        if before["doses_given"] >= planned:
            raise Refused(f"{p.id} has had all {planned} doses; there is no next dose to record")
        raise Refused(f"{p.id} is not enrolled; a dose needs an enrolled participant")
    number = int(nd["dose"])
    raws = {
        "pre_vitals": _fixed(pre_vitals, "pre_vitals", {"timepoint": "pre_dose", "dose": number}),
        "dose": dict(dose),
        "post_vitals": _fixed(post_vitals, "post_vitals", {"timepoint": "post_dose", "dose": number}),
        "post_dose_check": _fixed(post_dose_check, "post_dose_check", {"dose": number}),
    }
    events: dict[str, str] = {}
    warned: list[VisitWarning] = []
    told = len(session.warnings)
    dose_data: dict[str, Any] = {}
    try:
        with session.store.transaction():
            for part, form in PARTS:
                reason = reasons.get(part)
                try:
                    ev = service.submit(
                        session,
                        form,
                        raws[part],
                        participant=p.id,
                        reason=reason,
                        confirm=reason is not None,
                    )
                except WardError as exc:
                    raise VisitPartRefused(part, exc) from exc
                events[part] = ev.id
                warned += [cast(VisitWarning, {"part": part, **w}) for w in ev.body.get("warnings") or []]
                if part == "dose":
                    dose_data = dict(ev.body["data"])
            visit = _visit(session, p.id, dose_data, raws["post_dose_check"], before["deviations"])
            visit.warnings = warned
            if dry_run:
                raise _DryRun(visit)
    except _DryRun as done:
        del session.warnings[told:]  # nothing was saved: nothing to tell after the session
        return done.visit
    visit.events = events
    visit.saved = True
    return visit


def _fixed(raw: Mapping[str, Any], part: str, fixed: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    for name, value in fixed.items():
        typed = out.get(name)
        if typed not in (None, "") and str(typed) != str(value):
            raise VisitPartRefused(
                part,
                ValidationFailed({name: f"{typed} does not match this visit ({value})"}),
            )
        out[name] = value
    return out


def _visit(
    session: Session,
    pid: str,
    dose_data: dict[str, Any],
    check_raw: Mapping[str, Any],
    before: list[Deviation],
) -> DoseVisit:
    """The visit as recorded, with the deviations it leaves (computed after the records, in the transaction)."""
    sched = amendments.protocol_of(session.store, require_participant(session.store, pid)).schedule
    after = status.summary(session.store, pid)["deviations"]
    number = int(dose_data["dose_number"])
    known = {(d.get("kind"), d.get("dose")) for d in before if d.get("kind") != "missing dose"}
    deviations: list[Deviation] = []
    for d in after:
        key = (d.get("kind"), d.get("dose"))
        if d.get("kind") in ("early dose", "late dose") and d.get("dose") == number:
            deviations.append(_timing(d, sched.window_minutes))
        elif key not in known:
            deviations.append(d.copy())
    events = check_raw.get("events") or []
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    return DoseVisit(
        participant=pid,
        dose_number=number,
        due=str(dose_data["due"]),
        window=str(dose_data["window"]),
        window_minutes=sched.window_minutes,
        start=str(dose_data["start"]),
        end=str(dose_data["end"]),
        deviations=deviations,
        ae_expected=[str(e) for e in events if str(e) != "none"],
    )


def _timing(d: Deviation, window_minutes: int) -> Deviation:
    """An early/late deviation with how far outside the window, in minutes."""
    assert d["given"] is not None  # an early or late dose was given
    due = datetime.fromisoformat(d["due"])
    given = datetime.fromisoformat(d["given"])
    win = timedelta(minutes=window_minutes)
    outside = given - (due + win) if given > due else due - win - given
    return {**d, "window_minutes": window_minutes, "minutes_outside": int(outside.total_seconds() // 60)}
