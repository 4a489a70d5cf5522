"""What is due now, per participant: a regimen's slots and their states (docs/engine.md, section 2).

Pure: the caller gives the model, the participant's arm and anchors, the
administrations recorded and the moment of asking; nothing here reads the
store or the clock, so the whole ward is the same function applied per
participant, and every answer can be tested without a database.

Times are computed in UTC from local wall-clock due times: a window of
"±2h" is two hours of elapsed time either side even on the night the clocks
change, and comparisons never depend on which zone a datetime was given in.
A due time that does not exist locally (the spring-forward gap) falls at the
same offset as the hour before, i.e. later by the gap (zoneinfo's fold=0);
one that exists twice (autumn) is the first of the two.

Expressions (`when`, `stop_when`) are evaluated by the caller until the
interpreter exists: it passes their truth in `conditions`, keyed by the
expression's text; a condition the caller did not give is a refusal naming
it, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypedDict
from zoneinfo import ZoneInfo

from wardcrf.engine.model import Administration, Model, Regimen
from wardcrf.errors import Refused

_TICK = timedelta(microseconds=1)

# Timing words (docs/protocol.md, "Timing words"): the JSON values the worklist shows.
UPCOMING = "upcoming"
DUE_NOW = "due now"
WINDOW_CLOSING = "window closing"
OVERDUE = "overdue"
MISSED = "missed"
HELD = "held"
GIVEN = "given"
NOT_GIVEN = "not given"


@dataclass(frozen=True)
class Slot:
    """One scheduled administration: its number across the regimen, its protocol day and its window (UTC).

    `due` is None for an administration due on a day at any time; `opens` and
    `closes` bound the window, both inclusive. `required` is False for the
    conditional administrations of a variable course (`count = [min, max]`).
    """

    regimen: str
    administration: str
    number: int
    day: int
    date: date
    due: datetime | None
    opens: datetime
    closes: datetime
    closing_from: datetime  # "window closing" from here to `closes`
    required: bool = True


@dataclass(frozen=True)
class Given:
    """An administration record as the schedule sees it: when it started, or that it was not given."""

    start: datetime
    not_given: bool = False
    record: str | None = None  # the event id, shown to the ward


@dataclass(frozen=True)
class SlotState:
    slot: Slot
    state: str
    filled_by: Given | None = None
    timing: str | None = None  # on_time | early | late, for a slot given
    hold: str | None = None


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def earliest_start(slot: Slot, zone: ZoneInfo) -> datetime:
    """The earliest start a slot takes as its (early) administration: its window's opening, or the start of
    its local day when that is sooner. A start before it is refused by the recording service, never filed
    as the slot's early administration days ahead (a date typed wrong, or another slot's administration)."""
    return min(slot.opens, local_midnight(slot.date, zone))


def _anchor_date(anchors: Mapping[str, date | datetime | None], name: str, zone: ZoneInfo) -> date | None:
    value = anchors.get(name)
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"anchor {name}: a datetime must carry its zone")
        return value.astimezone(zone).date()
    return value


def expand(
    adm: Administration,
    regimen: str,
    anchor: date,
    *,
    anchor_day: int,
    zone: ZoneInfo,
    first_number: int = 1,
) -> list[Slot]:
    """Every slot of one administration, from the anchor's date, in due order."""
    spec = adm.schedule
    before, after = adm.window
    per_day = _per_day(adm)
    slots: list[Slot] = []
    for index, day in enumerate(slot_days(adm)):
        on = anchor + timedelta(days=day - anchor_day)
        i = index % per_day
        if spec.times:
            due: datetime | None = _due(adm, on, i, zone, slots[-1] if slots else None)
            assert due is not None
            opens, closes = due + before, due + after
        else:
            due = None
            opens = local_midnight(on, zone) + before
            closes = local_midnight(on + timedelta(days=1), zone) + after - _TICK
        number = first_number + len(slots)
        # default: the last quarter of the window as it falls (a day's window is the whole day)
        closing = adm.closing if adm.closing is not None else (closes - opens) / 4
        slots.append(
            Slot(
                regimen=regimen,
                administration=adm.code,
                number=number,
                day=day,
                date=on,
                due=due,
                opens=opens,
                closes=closes,
                closing_from=closes - closing if closing > timedelta(0) else closes + _TICK,
                required=len(slots) < spec.count_min,
            )
        )
    return slots


def _due(adm: Administration, on: date, i: int, zone: ZoneInfo, previous: Slot | None) -> datetime:
    """The instant of the day's i-th due time.

    A wall-clock time the clocks skip is read with the offset before the gap (RFC 5545 3.3.5: 02:30
    when 02:00 becomes 03:00 is 03:30), as the ward's clock would reach it. That alone can put a
    skipped time at or after the next one (02:30 and 03:00 both become 03:30 and 03:00): two doses at
    once, or out of order. So a due time moves later, only on such a night and only as far as the
    protocol's own promises need: at least `min_spacing` after the one before, and its window opening
    after the one before closes. Nothing else moves: 01:00 and 03:30 on that night are 1.5 h apart and
    stay at 03:30 on the clock, and the evening dose stays at its stated time.
    """
    due = datetime.combine(on, adm.schedule.times[i], zone).astimezone(UTC)
    if previous is not None and previous.due is not None:
        before, after = adm.window
        due = max(due, previous.due + max(adm.schedule.min_spacing, after - before + _TICK))
    return due


def _per_day(adm: Administration) -> int:
    spec = adm.schedule
    return max(1, min(spec.per_day, len(spec.times)) if spec.times else spec.per_day)


def slot_days(adm: Administration) -> list[int]:
    """The day of each of an administration's slots (all `count` of them, the most a variable course
    has), on its anchor's day numbering: `first_day`, then every `every` days, `per_day` (or one per time)
    on each. What `expand` places and TV plans (`exports/sdtm/engine_design.py`)."""
    spec = adm.schedule
    per_day = _per_day(adm)
    return [spec.first_day + (i // per_day) * spec.every_days for i in range(spec.count_max)]


def plan(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    *,
    arm: str | None = None,
    zone: str | None = None,
    conditions: Mapping[str, bool] | None = None,
) -> dict[str, list[tuple[Administration, list[Slot]]]]:
    """The slots of every regimen of the participant's arm, by regimen code.

    `zone` is the site's zone, used when the protocol states none. An
    administration whose anchor has not happened has no slots yet; one whose
    `when` is false does not apply. Administrations of a regimen are numbered
    across it (a loading dose is 1, the maintenance doses 2, 3...).
    """
    conditions = conditions or {}
    name = model.calendar.zone or zone
    if name is None:
        raise Refused("the protocol states no zone and no site zone was given")
    tz = _zone(name)
    out: dict[str, list[tuple[Administration, list[Slot]]]] = {}
    for regimen in model.regimens_of(arm):
        out[regimen.code] = _plan_regimen(regimen, anchors, model.calendar.anchor_day, tz, conditions)
    return out


def _truth(conditions: Mapping[str, bool], expr: str, what: str) -> bool:
    if expr not in conditions:
        raise Refused(f"{what}: the value of {expr!r} is needed (give it in conditions)")
    return bool(conditions[expr])


def _plan_regimen(
    regimen: Regimen,
    anchors: Mapping[str, date | datetime | None],
    anchor_day: int,
    tz: ZoneInfo,
    conditions: Mapping[str, bool],
) -> list[tuple[Administration, list[Slot]]]:
    out: list[tuple[Administration, list[Slot]]] = []
    number = 1
    for adm in regimen.administrations:
        what = f"regimen {regimen.code}, administration {adm.code}"
        if adm.when is not None and not _truth(conditions, adm.when, what):
            continue
        start = _anchor_date(anchors, adm.schedule.anchor, tz)
        if start is None:
            out.append((adm, []))
            continue
        slots = expand(adm, regimen.code, start, anchor_day=anchor_day, zone=tz, first_number=number)
        stop = adm.schedule.stop_when
        if stop is not None and _truth(conditions, stop, what):
            slots = [s for s in slots if s.required]
        number += len(slots) if slots else adm.schedule.count_max
        out.append((adm, slots))
    return out


def states(
    adm: Administration,
    slots: Sequence[Slot],
    records: Sequence[Given],
    at: datetime,
    *,
    holds: Sequence[str] = (),
    course_ended: datetime | None = None,
) -> list[SlotState]:
    """Each slot's state at `at`, given the administration's records (docs/protocol.md, "Timing words").

    `numbering = "given"`: the Nth record (by start) fills slot N, whatever
    happened before. `"slot"`: a record fills the first unfilled slot whose
    late limit it does not pass; a record no slot can take is not placed (the
    recording service refuses it). `holds` (the refusals of the gates before a
    dose, in declared order) hold the next slot to give. `course_ended` ends
    `late_until = "course_end"` (the treatment-end anchor); without it a
    missed administration may still be given, late.
    """
    if at.tzinfo is None:
        raise ValueError("`at` must carry its zone")
    at = at.astimezone(UTC)
    ordered = sorted(records, key=lambda g: g.start)
    filled: dict[int, Given] = {}
    if adm.numbering == "given":
        filled = {i: g for i, g in enumerate(ordered[: len(slots)])}
    else:
        for g in ordered:
            for i in range(len(slots)):
                if i not in filled and g.start <= _late_limit(adm, slots, i, course_ended):
                    filled[i] = g
                    break
    out: list[SlotState] = []
    held = False
    for i, slot in enumerate(slots):
        given = filled.get(i)
        if given is not None:
            g = given
            timing = "early" if g.start < slot.opens else "late" if g.start > slot.closes else "on_time"
            out.append(
                SlotState(slot, NOT_GIVEN if g.not_given else GIVEN, g, None if g.not_given else timing)
            )
            continue
        state = _timing_word(adm, slots, i, at, course_ended)
        if holds and not held and state != MISSED:
            held = True
            out.append(SlotState(slot, HELD, hold="; ".join(holds)))
            continue
        held = held or state != MISSED
        out.append(SlotState(slot, state))
    return out


def _late_limit(
    adm: Administration, slots: Sequence[Slot], i: int, course_ended: datetime | None
) -> datetime:
    slot = slots[i]
    if adm.late_until == "window":
        return slot.closes
    if adm.late_until == "next":
        return slots[i + 1].opens - _TICK if i + 1 < len(slots) else slot.closes
    return course_ended.astimezone(UTC) if course_ended is not None else datetime.max.replace(tzinfo=UTC)


def _timing_word(
    adm: Administration, slots: Sequence[Slot], i: int, at: datetime, course_ended: datetime | None
) -> str:
    slot = slots[i]
    if at < slot.opens:
        return UPCOMING
    if at <= slot.closes:
        return WINDOW_CLOSING if at >= slot.closing_from else DUE_NOW
    return OVERDUE if at <= _late_limit(adm, slots, i, course_ended) else MISSED


def next_to_give(rows: Sequence[SlotState]) -> SlotState | None:
    """The slot the ward gives next: the first neither given, not given nor missed."""
    return next((r for r in rows if r.state not in (GIVEN, NOT_GIVEN, MISSED)), None)


def dose_view(rows: Sequence[SlotState], at: datetime, zone: str) -> tuple[NextDose | None, list[Deviation]]:
    """The next dose and the doses past their window, in the JSON shape `workflow.status` shows today.

    `{"dose", "due", "window": [opens, closes], "state", "hold"?}` with local
    times to the minute, and one `missing dose` item per unfilled slot past
    its window, so the wiring can replace `status.dose_schedule` without the
    ward or the tests seeing a difference.
    """
    tz = _zone(zone)
    at = at.astimezone(UTC)

    def local(t: datetime) -> str:
        return t.astimezone(tz).isoformat(timespec="minutes")

    nxt = next_to_give(rows)
    view: NextDose | None = None
    if nxt is not None:
        s = nxt.slot
        view = {
            "dose": s.number,
            "due": local(s.due) if s.due else s.date.isoformat(),
            "window": [local(s.opens), local(s.closes)],
            "state": nxt.state,
        }
        if nxt.hold:
            view["hold"] = nxt.hold
    missing: list[Deviation] = [
        {
            "kind": "missing dose",
            "dose": r.slot.number,
            "due": local(r.slot.due) if r.slot.due else r.slot.date.isoformat(),
            "given": None,
            "event": None,
        }
        for r in rows
        if r.filled_by is None and at > r.slot.closes
    ]
    return view, missing


class _NextDoseExtras(TypedDict, total=False):
    """What a next dose may add (`total=False`: Python 3.11 cannot see `NotRequired` in a string annotation)."""

    hold: str
    """Why it cannot be given now (the gates' refusals, `; `-joined); present only when `state` is held."""
    what: str
    """A format-2 administration's worklist words (`workflow.engine_rules.summary`)."""
    regimen: str
    """A format-2 administration's regimen ("blinded" on a blinded ward)."""


class NextDose(_NextDoseExtras):
    """The administration the ward gives next (`dose_view`; the participant screen, the ward list, the
    dose wizard, `participant show --json`)."""

    dose: int
    due: str
    """Local time to the minute (a date for a day-only administration)."""
    window: list[str]
    """[opens, closes], local times to the minute (a list: the JSON shape)."""
    state: str
    """A timing word: upcoming, due now, window closing, overdue or held."""


class _DeviationDetails(TypedDict, total=False):
    """What a deviation names besides its kind; which keys depends on the kind."""

    code: str
    """A format-2 protocol's deviation (or rule) code."""
    dose: int
    """The dose number of a deviation about one dose (early, late, missing dose); on a format-2 ward the
    administration's `number` again, so that readers of either format find it under one key."""
    number: int
    """A format-2 administration's number."""
    due: str
    given: str | None
    """When the dose was given, as recorded (None: not given)."""
    event: str | None
    """The record that shows it (None for a dose never given)."""
    failed: list[str]
    """The eligibility criteria failed (ineligible after enrollment)."""
    detail: str
    window_minutes: int
    """The dose window either side of the due time (the dose wizard's early/late deviations)."""
    minutes_outside: int


class Deviation(_DeviationDetails):
    """A protocol deviation a participant's record shows now (`participant show`, the participant
    screen, the dose wizard's review): computed from the records, never stored."""

    kind: str
    """In the ward's words: "late dose", "missing dose", a format-2 protocol's label..."""


def prescribed(adm: Administration, weight_kg: Decimal | float | None) -> Decimal:
    """The dose to give at this administration (fixed, per kg, or by band; rounded, capped)."""
    return adm.dose.prescribe(weight_kg)
