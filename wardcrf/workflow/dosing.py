"""Dosing: skin test, the daily inhalation, vitals around it, and the post-dose check.

Schedule (from the protocol's ``[schedule]``): the enrollment day is day 0;
dose N is due on day N at the scheduled local time (09:00 Asia/Shanghai for
MEXCOVID) within ± `window_minutes` (default 120). A dose given outside its
window is stored with ``window = early | late`` (a protocol deviation); a due
dose whose window has closed without a record is reported as "missing" by
`status`. The domain refuses: dosing before enrollment, without a negative
skin test recorded before dose 1, after a positive skin test, under a DSMG
stop or unresolved alter, a dose beyond the scheduled count, a second dose on
the same local day, a kit already used (`wardcrf.kits.kit_use`, the one
place that answers it), and anything a registered dose gate
refuses (the cold chain registers one). Cumulative particles are always the
sum of the recorded doses.

`dose_gates` is the pluggable pre-dose check list: functions
``(store, kit_id, when) -> None``, or with a keyword ``product`` (the product a
format-2 administration gives), that raise `Refused` with the reason
(`call_dose_gate` asks each in the shape it was written in).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from .. import ids, roles, users
from ..audit import CheckResult
from ..engine import due
from ..errors import Refused, ValidationFailed
from ..eventlog import Event
from ..forms import plain
from ..ingest import HoldForCoordinator
from ..kits import (
    KitUse,
    administration_record_kit,
    administration_uses,
    course_holder,
    course_record,
    device_of,
    dose_uses,
    is_administration_record,
    kit_use,
)
from ..records import Record
from ..registration import require_installed
from ..sqlstore import common_dialect, upsert
from ..store import Store
from . import safety
from .base import Participant, RuleContext, records_of, rule

if TYPE_CHECKING:
    from ..features import Registry


class DoseGate(Protocol):
    """`gate(store, kit_id, when, product=None, participant=None)` raises `Refused` with the reason; `product`
    is the code of the product the administration gives, `participant` whom it is for, when the caller knows
    them (format 2). A gate may take either keyword, both or neither (`call_dose_gate`)."""

    def __call__(
        self,
        store: Store,
        kit_id: str,
        when: datetime,
        *,
        product: str | None = None,
        participant: str | None = None,
    ) -> None: ...


PlainDoseGate = Callable[[Store, str, datetime], None]
"""A gate that does not tell products apart: `gate(store, kit_id, when)` (`features.Registry.dose_gate`'s
documented shape); it is called without `product`."""
AnyDoseGate = DoseGate | PlainDoseGate

dose_gates: list[AnyDoseGate] = []


def register_dose_gate(gate: AnyDoseGate) -> AnyDoseGate:
    """Add a pre-dose check (idempotent, usable as a decorator)."""
    if gate not in dose_gates:
        dose_gates.append(gate)
    return gate


def takes_product(gate: AnyDoseGate) -> bool:
    """Whether a registered gate accepts the `product` keyword (a `DoseGate`), or is a `PlainDoseGate`."""
    return takes(gate, "product")


def takes(gate: AnyDoseGate, keyword: str) -> bool:
    """Whether a registered gate accepts `keyword` (`product`, `participant`)."""
    try:
        params = inspect.signature(gate).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read: the plain shape
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == keyword and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in params
    )


def call_dose_gate(
    gate: AnyDoseGate,
    store: Store,
    kit_id: str,
    when: datetime,
    *,
    product: str | None = None,
    participant: str | None = None,
) -> None:
    """Ask one registered gate (raises `Refused`): with `product` and `participant` when they are known and
    the gate takes them; a gate of the plain shape is asked as it was written, `(store, kit_id, when)`,
    rather than crash."""
    known = {"product": product, "participant": participant}
    given = {k: v for k, v in known.items() if v is not None and takes(gate, k)}
    if given:
        cast(DoseGate, gate)(store, kit_id, when, **given)
    else:
        cast(PlainDoseGate, gate)(store, kit_id, when)


AllocationGate = Callable[[Store, str, str], None]
"""`gate(store, participant, kit)` raises `Refused` when the kit is not the one allocated to the participant."""
allocation_gates: list[AllocationGate] = []


def register_allocation_gate(gate: AllocationGate) -> AllocationGate:
    """Add a check of the scanned kit against the participant's allocation (randomization, issue 20)."""
    if gate not in allocation_gates:
        allocation_gates.append(gate)
    return gate


def doses_of(store: Store, pid: str) -> list[dict[str, Any]]:
    return store.rows("SELECT * FROM doses WHERE participant = ? ORDER BY dose_number, start", (pid,))


def _dose_kit(event: Event) -> tuple[str, str] | None:
    """(kit as recorded, the dose record's id) when `event` records or amends a dose's kit, else None."""
    if event.body.get("form") != "dose":
        return None
    if event.type == "record.submitted":
        kit = (event.body.get("data") or {}).get("kit_id")
        return (str(kit), event.id) if kit not in (None, "") else None
    if event.type == "record.amended" and event.amends:
        change = (event.body.get("changes") or {}).get("kit_id")
        kit = change.get("new") if isinstance(change, dict) else None
        return (str(kit), event.amends) if kit not in (None, "") else None
    return None


@common_dialect
def hold_kit_given_twice(store: Store, events: Sequence[Event]) -> None:
    """After-ingest hook: a dose arriving with a kit another dose already used is not merged.

    Each laptop refuses a used kit (`kit_use`), but two laptops, or one
    running a version that compared ids as typed (``kit-x1``, ``KIT-X1``),
    can each dose the same kit. Where their logs meet (the hub) the second
    is held whole for the coordinator (reason ``kit``), like a participant
    clash: both kept, the device flagged, the ward told at its next sync.
    The question is asked of the one source, `kit_use`, after the bundle's
    events are projected, so a kit used twice inside one bundle is caught too
    (the same queries `kit_use` makes: `kits.dose_uses`, `kits.administration_uses`).

    A format-2 version's administration record (or a correction of its kit)
    is asked of the `administration_kits` projection (`wardcrf.kits`: each
    record read under the version it was captured under): held when another
    participant's record gave the same kit, or when the same participant's
    other record did and the kit is single-use (`kits.course_record`: a
    course kit serves all of one participant's records; a correction of
    their own record is not another use). The two formats are compared too:
    a format-1 dose record and a format-2 administration record naming one
    kit (a participant amended from a format-1 version to a format-2 one, or
    two participants on different versions) are a double use, unless the
    randomization list allocated that kit to that participant for the whole
    course (`kits.course_holder`).
    """
    indexed = _indexed_records(store, events)
    for event in events:
        if _record_of(event) in indexed:
            _hold_administration_kit(store, event)
        dosed = _dose_kit(event)
        if dosed is None:
            continue
        kit, record = dosed
        if is_administration_record(store, record):
            continue  # a format-2 version's form named `dose`: asked above, under its version
        pid = (event.subject or "").removeprefix("participant:")
        used = next((u for u in dose_uses(store, kit, exclude=record) if not _course(store, u, pid)), None)
        if used is not None:
            raise HoldForCoordinator(
                "kit",
                f"dose record {record} from device {event.device} gives kit {_shown(used.kit)} to {pid}; the same "
                f"kit was given to {used.participant} dose {used.dose_number} ({used.event_id}) on device "
                f"{device_of(store, used.event_id)}: one kit, one dose; not merged",
                body=_held(used.kit, pid, event, record, used, store),
            )
        key = ids.key(kit)
        other = next(
            (u for u in administration_uses(store, key, exclude=record) if not _course(store, u, pid)), None
        )
        if other is not None:
            raise HoldForCoordinator(
                "kit",
                f"dose record {record} from device {event.device} gives kit {_shown(key)} to {pid}; the same kit was "
                f"given to {other.participant} ({other.event_id}) on device {device_of(store, other.event_id)} "
                "by an administration record of a format-2 version: one kit, one dose, whatever the "
                "protocol version; not merged",
                body=_held(
                    key, pid, event, record, other, store, across="format 1 dose, format 2 administration"
                ),
            )


SHOWN_KIT = 64
"""Characters of a kit id a hold's one line shows (a bundle's kit field is the ward's, not bounded here)."""


def _shown(kit: str) -> str:
    """The kit as a hold's line names it: whole when short, else its start and its length."""
    return kit if len(kit) <= SHOWN_KIT else f"{kit[:SHOWN_KIT]}… ({len(kit)} characters)"


def _course(store: Store, use: KitUse, participant: str) -> bool:
    """Across the formats: the same participant's use of a kit the randomization list allocated them for
    their whole course (`kits.course_holder`) is not another use; anything else is."""
    if use.participant != participant:
        return False
    holder = course_holder(store, use.kit)
    return holder is not None and ids.same(holder, participant)


class KitHeldBody(TypedDict, total=False):
    """The `sync.bundle_held` body of a kit given twice (`formats` only across protocol formats)."""

    kit: str
    participant: str
    event: str
    record: str
    record_device: str
    used_by_participant: str | None
    used_by_event: str
    used_by_device: str | None
    formats: str


def _held(
    kit: str,
    pid: str,
    event: Event,
    record: str,
    used: KitUse,
    store: Store,
    *,
    across: str | None = None,
) -> KitHeldBody:
    """The `sync.bundle_held` body of a kit given twice: the kit, both participants, records and devices."""
    body: KitHeldBody = {
        "kit": kit,
        "participant": pid,
        "event": event.id,
        "record": record,
        "record_device": event.device,
        "used_by_participant": used.participant,
        "used_by_event": used.event_id,
        "used_by_device": device_of(store, used.event_id),
    }
    if across is not None:
        body["formats"] = across
    return body


def _record_of(event: Event) -> str | None:
    """The record an event writes or corrects (`kits.administration_record_kit` asks about the same one)."""
    if event.type == "record.submitted":
        return event.id
    if event.type == "record.amended":
        return event.amends
    return None


def _indexed_records(store: Store, events: Sequence[Event]) -> set[str]:
    """Which of the records `events` write or correct have a row in `administration_kits` (a format-2
    administration record's kit): one query per 500 records instead of one per record a hub imports.
    Only those can be held by `_hold_administration_kit`; every other record's lookup finds no row."""
    wanted = sorted({r for r in map(_record_of, events) if r})
    found: set[str] = set()
    for at in range(0, len(wanted), 500):
        chunk = wanted[at : at + 500]
        found.update(
            str(r[0])
            for r in store.execute(
                f"SELECT event_id FROM administration_kits WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    return found


def _hold_administration_kit(store: Store, event: Event) -> None:
    """Hold the bundle when `event` gives a format-2 administration record a kit already given: by another
    participant's administration record, by the same participant's other record when the kit is
    single-use (not a course kit under both records' versions), or by a format-1 dose record.
    One indexed lookup per projection (`kits.administration_uses`, `kits.dose_uses`)."""
    given = administration_record_kit(store, event)
    if given is None:
        return
    kit, pid, record = given
    uses = administration_uses(store, kit, exclude=record)
    other = next((u for u in uses if u.participant != pid), None)
    if other is not None:
        raise HoldForCoordinator(
            "kit",
            f"administration record {record} from device {event.device} gives kit {_shown(kit)} to {pid}; the same "
            f"kit was given to {other.participant} ({other.event_id}) on device "
            f"{device_of(store, other.event_id)}: a kit is never given to two participants; not merged",
            body=_held(kit, pid, event, record, other, store),
        )
    course = bool(uses) and course_record(store, record)
    again = next((u for u in uses if not (course and course_record(store, u.event_id))), None)
    if again is not None:
        raise HoldForCoordinator(
            "kit",
            f"administration record {record} from device {event.device} gives kit {_shown(kit)} to {pid}; the same "
            f"kit was already given to {pid} ({again.event_id}) on device {device_of(store, again.event_id)}:"
            " a single-use kit (not one kit for the course) is given once; not merged",
            body=_held(kit, pid, event, record, again, store),
        )
    dosed = next((u for u in dose_uses(store, kit, exclude=record) if not _course(store, u, pid)), None)
    if dosed is not None:
        raise HoldForCoordinator(
            "kit",
            f"administration record {record} from device {event.device} gives kit {_shown(kit)} to {pid}; the same "
            f"kit was given to {dosed.participant} dose {dosed.dose_number} ({dosed.event_id}) on device "
            f"{device_of(store, dosed.event_id)} by a dose record of a format-1 version: one kit, one dose, "
            "whatever the protocol version; not merged",
            body=_held(
                kit, pid, event, record, dosed, store, across="format 2 administration, format 1 dose"
            ),
        )


def _kits_used_once(store: Store) -> CheckResult:
    """Every kit is given to one participant once.

    The ward refuses a second dose with a used kit; this finds what the ward
    could not see: two laptops' doses of one kit merged at a hub, or doses
    recorded before kit ids were normalised (``kit-x1`` and ``KIT-X1``). Both
    formats' records: format 1's `dose` records (`doses`) and a format-2
    version's administration records (`administration_kits`; a record in both,
    MEXCOVID's `dose` on the engine, counted once).
    """
    uses: dict[str, list[tuple[str, str, str]]] = {}  # kit -> (participant, which dose, record), oldest first
    seen: set[str] = set()
    for kit, pid, number, event in store.execute(
        "SELECT kit_id, participant, dose_number, event_id FROM doses WHERE kit_id IS NOT NULL"
        " ORDER BY start, event_id"
    ).fetchall():
        seen.add(str(event))
        uses.setdefault(str(kit), []).append(
            (str(pid), f"dose {number if number is not None else '?'}", str(event))
        )
    for kit, pid, event in store.execute(
        "SELECT kit_id, participant, event_id FROM administration_kits WHERE kit_id IS NOT NULL ORDER BY rowid"
    ).fetchall():
        if str(event) not in seen:
            uses.setdefault(str(kit), []).append((str(pid), "administration", str(event)))
    problems = []
    for kit in sorted(uses):
        given = uses[kit]
        who = {pid for pid, _n, _e in given}
        # a course kit given only to the participant it is allocated to is used as the protocol says
        if len(given) < 2 or (len(who) == 1 and course_holder(store, kit) in who):
            continue
        listed = "; ".join(f"{pid} {n} ({e})" for pid, n, e in given)
        problems.append(f"kit {kit} was given {len(given)} times: {listed}")
    return CheckResult("kits used once", len(uses), problems)


def cumulative_particles(store: Store, pid: str) -> float:
    """Total particles given: the sum of recorded doses, never a typed total."""
    return float(store.scalar("SELECT coalesce(sum(particles), 0) FROM doses WHERE participant = ?", (pid,)))


# -- skin test ------------------------------------------------------------------------------


@rule("skin_test", action="dose.record")
def check_skin_test(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    p = ctx.participant
    assert p is not None
    first = ctx.store.one("SELECT start FROM doses WHERE participant = ? AND dose_number = 1", (p.id,))
    if first and v.get("time") and ctx.local(v["time"]) > ctx.local(first[0]):
        ctx.problem("time", f"after dose 1 ({first[0]}); the skin test precedes dose 1")
    return {}


def skin_test_gate(ctx: RuleContext, pid: str, start: datetime) -> None:
    tests = records_of(ctx.store, pid, "skin_test")
    positive = [t for t in tests if t.get("result") == "positive"]
    if positive:
        raise Refused(f"dosing is blocked: the skin test {positive[0]['_event']} was positive")
    if not ctx.protocol.schedule.pre_dose_check_required:
        return
    before = [t for t in tests if t.get("result") == "negative" and ctx.local(t["time"]) <= start]
    if not before:
        raise Refused(
            f"no negative skin test recorded for {pid} before this dose; record the skin test before dose 1"
        )


# -- dose ---------------------------------------------------------------------------------------


def _may_be_dosed(ctx: RuleContext, p: Participant) -> None:
    """Enrolled, and still eligible (refused otherwise)."""
    if not p.enrolled_on:
        raise Refused(f"{p.id} is not enrolled; a dose needs an enrolled participant")
    if p.eligible is False and not ctx.amending:
        raise Refused(
            f"{p.id} no longer meets the eligibility criteria (failed: {', '.join(p.failed_criteria)}) "
            f"since the screening {p.screening_event} was corrected; no further dose is given. "
            "If the correction is wrong, amend the screening; otherwise the investigator records the deviation"
        )


def _after_enrollment(ctx: RuleContext, start: datetime, enrolled: date) -> None:
    if start.date() <= enrolled:
        ctx.problem(
            "start",
            f"{start.date()} is not after the enrollment day {enrolled} (dose 1 is on day 1)",
        )


def day_rules(ctx: RuleContext, p: Participant, start: datetime, others: list[dict[str, Any]]) -> int:
    """The rules of the day a dose starts on; returns its number (raises `Refused`).

    No DSMG hold, doses left, a negative skin test before it, and one dose per
    day. They depend only on the participant and the start, so the dose
    wizard checks them when it opens (`dose_visit.check_day`), before anything
    is typed, with the words the save would use.
    """
    if ctx.amending:
        number = int(ctx.store.scalar("SELECT dose_number FROM doses WHERE event_id = ?", (ctx.amending,)))
    else:
        planned = due.planned(due.model_for(ctx.protocol))
        safety.require_no_hold(ctx.store, "record a dose")
        if len(others) >= planned:
            raise Refused(f"{p.id} has had all {planned} doses; dose {len(others) + 1} is refused")
        number = len(others) + 1
        skin_test_gate(ctx, p.id, start)
    for d in others:
        if ctx.local(d["start"]).date() == start.date():
            raise Refused(
                f"{p.id} already had dose {d['dose_number']} on {start.date()} "
                f"(record {d['event_id']}); one dose per day"
            )
    return number


def day_check(ctx: RuleContext, start: datetime) -> int:
    """Every rule of the dose's day for `ctx.participant` at `start` (raises `Refused`;
    a problem with the start itself is a `ValidationFailed`); returns the dose number."""
    p = ctx.participant
    assert p is not None
    _may_be_dosed(ctx, p)
    _after_enrollment(ctx, start, date.fromisoformat(str(p.enrolled_on)))
    if ctx.problems:
        raise ValidationFailed(dict(ctx.problems), form="dose")
    return day_rules(ctx, p, start, doses_of(ctx.store, p.id))


@rule("dose", action="dose.record")
def check_dose(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    """Sequencing, count, one per day, kit not reused, gates; computes number, day and window."""
    p = ctx.participant
    assert p is not None
    _may_be_dosed(ctx, p)
    given_by = v.get("given_by") or ctx.session.user
    user = users.get(ctx.store, given_by)
    if user is None or not user["active"]:
        ctx.problem("given_by", f"{given_by} is not an active user of this site")
    elif not roles.allowed(user["role"], "dose.record"):
        # the person named as giving the inhalation must be someone who may give it
        allowed = ", ".join(r for r in roles.ROLES if roles.allowed(r, "dose.record"))
        ctx.problem("given_by", f"{given_by} has the role {user['role']}; doses are given by: {allowed}")
    v["given_by"] = given_by
    if (v.get("interruptions") or 0) > 0 and not v.get("interruption_note"):
        ctx.problem("interruption_note", "required when the inhalation was interrupted: what happened")
    start = ctx.local(v["start"]) if v.get("start") else None
    end = ctx.local(v["end"]) if v.get("end") else None
    if start and end and end < start:
        ctx.problem(
            "end",
            f"{end.isoformat(timespec='minutes')} is before the start {start.isoformat(timespec='minutes')}",
        )
    enrolled = date.fromisoformat(str(p.enrolled_on))
    if start:
        _after_enrollment(ctx, start, enrolled)
    if ctx.problems or start is None:
        return {}
    others = [d for d in doses_of(ctx.store, p.id) if d["event_id"] != ctx.amending]
    number = day_rules(ctx, p, start, others)
    for d in others:
        if d["dose_number"] < number and ctx.local(d["start"]) > start:
            ctx.problem("start", f"before dose {d['dose_number']} ({d['start']})")
        if d["dose_number"] > number and ctx.local(d["start"]) < start:
            ctx.problem("start", f"after dose {d['dose_number']} ({d['start']})")
    kit = str(v.get("kit_id") or "")
    used = kit_use(ctx.store, kit, exclude=ctx.amending, participant=p.id)
    if used:
        ctx.problem("kit_id", str(used))
    require_installed()  # the features' gates (randomization's allocated kit)
    for allocation_gate in allocation_gates:
        try:
            allocation_gate(ctx.store, p.id, kit)
        except Refused as exc:
            ctx.problem("kit_id", exc.message)
    if ctx.problems:
        return {}
    if not ctx.amending:
        require_installed()  # the features' gates (the cold chain's custody)
        for gate in dose_gates:
            call_dose_gate(gate, ctx.store, kit, start, participant=p.id)
    due_at, window, _ = due.placed(due.model_for(ctx.protocol), {"enrollment": enrolled}, number, start)
    return {
        "given_by": given_by,
        "dose_number": number,
        "day": (start.date() - enrolled).days,
        "due": due_at.isoformat(timespec="seconds"),
        "window": window,
    }


_DOSE_UPSERT = upsert(
    "doses",
    ("event_id", "participant", "dose_number", "kit_id", "lot", "particles", "volume_ml", "start", '"end"',
     "given_by", "day", "due", '"window"'),
    ("event_id",),
)  # fmt: skip


@common_dialect
def _dose_hook(store: Store, rec: Record) -> None:
    d = rec.data
    store.insert(
        _DOSE_UPSERT,
        (
            rec.event_id,
            (rec.subject or "").removeprefix("participant:"),
            d.get("dose_number"),
            # Comparison keys: a dose stored as typed before ids were normalised compares equal.
            ids.key(d.get("kit_id")) if d.get("kit_id") is not None else None,
            ids.key(d.get("lot")) if d.get("lot") is not None else None,
            plain(d.get("particles")),
            plain(d.get("volume")),
            d.get("start"),
            d.get("end"),
            d.get("given_by"),
            d.get("day"),
            d.get("due"),
            d.get("window"),
        ),
    )


# -- vitals -------------------------------------------------------------------------------------


@rule("vitals")
def check_vitals(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    """Pre/post-dose vitals name their dose; post-dose vitals cannot precede the dose's end.

    Each dose has one pre-dose and one post-dose vitals record (the protocol's
    "before and after each inhalation"): a second one for the same dose is
    refused with the first one's event id, because a wrong value is corrected
    by amending that record (with a reason, kept in the audit trail) and a
    repeat measurement is an unscheduled one. Two records for one timepoint
    would leave the dose's safety data ambiguous in reports and exports.
    """
    p = ctx.participant
    assert p is not None
    tp, n = v.get("timepoint"), v.get("dose")
    sys_, dia = plain(v.get("sysbp")), plain(v.get("diabp"))
    if sys_ is not None and dia is not None and dia >= sys_:
        ctx.problem("diabp", f"{dia} mmHg is not below the systolic {sys_} mmHg")
    if tp in ("pre_dose", "post_dose"):
        if n is None:
            ctx.problem("dose", f"required for {tp} vitals: which dose (1 to {ctx.protocol.schedule.doses})")
            return {}
        earlier = ctx.store.one(
            "SELECT event_id FROM vitals WHERE participant = ? AND timepoint = ? AND dose = ? AND event_id != ?",
            (p.id, tp, n, ctx.amending or ""),
        )
        if earlier:
            what = "pre-dose" if tp == "pre_dose" else "post-dose"
            raise Refused(
                f"{what} vitals for dose {n} of {p.id} are already recorded ({earlier[0]}); "
                f"amend that record with a reason (wardcrf amend {earlier[0]} --reason ...), "
                "or record a repeat measurement as timepoint=unscheduled"
            )
        dose = ctx.store.one(
            "SELECT start, end, event_id FROM doses WHERE participant = ? AND dose_number = ?",
            (p.id, n),
        )
        when = ctx.local(v["time"]) if v.get("time") else None
        if tp == "post_dose":
            if dose is None:
                ctx.problem("dose", f"dose {n} has not been recorded for {p.id}; post-dose vitals follow it")
            elif when and when < ctx.local(dose[1]):
                ctx.problem(
                    "time",
                    f"{when.isoformat(timespec='minutes')} is before dose {n} ended "
                    f"({ctx.local(dose[1]).isoformat(timespec='minutes')}); post-dose vitals follow the dose",
                )
        else:
            given = int(ctx.store.scalar("SELECT count(*) FROM doses WHERE participant = ?", (p.id,)))
            if dose is None and n != given + 1:
                ctx.problem("dose", f"the next dose for {p.id} is dose {given + 1}, not {n}")
            elif dose is not None and when and when > ctx.local(dose[0]):
                ctx.problem(
                    "time",
                    f"{when.isoformat(timespec='minutes')} is after dose {n} started "
                    f"({ctx.local(dose[0]).isoformat(timespec='minutes')}); pre-dose vitals precede it",
                )
    return {}


_VITALS_UPSERT = upsert(
    "vitals",
    (
        "event_id",
        "participant",
        "timepoint",
        "dose",
        "time",
        "temp",
        "pulse",
        "resp",
        "oxysat",
        "sysbp",
        "diabp",
    ),
    ("event_id",),
)


@common_dialect
def _vitals_hook(store: Store, rec: Record) -> None:
    d = rec.data
    store.insert(
        _VITALS_UPSERT,
        (
            rec.event_id,
            (rec.subject or "").removeprefix("participant:"),
            d.get("timepoint"),
            d.get("dose"),
            d.get("time"),
            plain(d.get("temp")),
            plain(d.get("pulse")),
            plain(d.get("resp")),
            plain(d.get("oxysat")),
            plain(d.get("sysbp")),
            plain(d.get("diabp")),
        ),
    )


# -- post-dose check of prespecified events -----------------------------------------------------


@rule("post_dose_check")
def check_post_dose(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    p = ctx.participant
    assert p is not None
    n, events = v.get("dose"), v.get("events") or []
    if "none" in events and len(events) > 1:
        ctx.problem("events", "'none' cannot be combined with events")
    if n is not None:
        dose = ctx.store.one("SELECT end FROM doses WHERE participant = ? AND dose_number = ?", (p.id, n))
        if dose is None:
            ctx.problem("dose", f"dose {n} has not been recorded for {p.id}")
        elif v.get("time") and ctx.local(v["time"]) < ctx.local(dose[0]):
            ctx.problem("time", f"before dose {n} ended ({dose[0]})")
        earlier = [
            r
            for r in records_of(ctx.store, p.id, "post_dose_check", exclude=ctx.amending)
            if r.get("dose") == n
        ]
        if earlier:
            raise Refused(
                f"the post-dose check for dose {n} is already recorded ({earlier[0]['_event']}); "
                "amend it instead"
            )
    return {}


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.audit_check("kits used once", _kits_used_once)
    registry.form_hook(_dose_hook, "dose")
    registry.form_hook(_vitals_hook, "vitals")
    registry.after_ingest(
        hold_kit_given_twice,
        "record.submitted",
        "record.amended",
        holds="a kit given twice (two participants, a single-use kit twice, or across protocol formats)",
    )
