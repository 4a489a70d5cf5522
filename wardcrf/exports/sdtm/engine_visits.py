"""Which of a format-2 protocol's visits a record belongs to (SDTM SV, VISITNUM in every domain, ODM).

The engine owns visit placement (`engine.visits`); this module only gathers
a participant's inputs from the export's records and store, and asks it. Per
participant (`of_participant`): the anchors, the arm whose visits they have,
their records typed by the model, the occurrences of the visits that repeat
per administration (`visits.occurrences`, from the slots the ward's schedule
places) and of the calendar visits (`visits.dated`, every one, `worklist =
false` included). Per record (`place`): the per-administration occurrence
that takes it (`visits.place`: the administration, its linked assessments,
the visit's forms of its day), else the calendar occurrence
(`visits.dated_place`: the first whose window holds its local date, whose
visit lists its form and whose `when` holds; for SDTM an administration goes
to the occurrence counted from its schedule's anchor whose window holds it).
A record no occurrence takes is unscheduled (build.py numbers it after the
last planned visit before it). The occurrence's name and VISITNUM are the
ones TV gives it (`engine_design.design_from_model` reads the same plan).

Anchors, per participant: `consent` (the consent's time), `enrollment` (its
date), `randomization` (the allocation's time), `first_dose`
(`visits.first_dose`: the first administration given), `last_dose` and
`treatment_end` once the course is over (`visits.course_anchors`: the
disposition's end of treatment, or every administration recorded or missed),
and the protocol's `[[anchors]]` (`engine.visits.timeline`). The arm: the allocation's (a blinded
allocation: the first arm, whose schedule the others repeat, as the ward
places it), a one-arm trial's only arm, else none (no arm-limited visit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...clock import now_utc
from ...engine import due, interpreter, visits
from ...engine.interpreter import EvalError, Rec, Snapshot
from ...engine.model import Model


@dataclass(frozen=True)
class Placed:
    """The visit occurrence a record belongs to, as TV and ODM name it."""

    code: str  # the visit's code (ODM StudyEventOID SE.code)
    repeat: (
        int | None
    )  # ODM StudyEventRepeatKey: the occurrence (a repeat) or administration number; else None
    name: str  # VISIT
    num: float | int  # VISITNUM


@dataclass(frozen=True)
class Visits:
    """A participant's visit occurrences as the engine places them, and what places records in them."""

    per: tuple[visits.Occurrence, ...]  # visits that repeat per administration
    dated: tuple[visits.Dated, ...]  # calendar visits whose anchor has happened
    snap: Snapshot  # the participant's typed records and anchors (for `when`)
    # the day after the last administration once every one placed is recorded or missed, whatever the
    # disposition says (`visits.course_end` without it); None while one remains
    course_completed: date | None = None


def _local_day(value: Any, zone: ZoneInfo) -> date | None:
    text = str(value or "")
    if len(text) < 10:
        return None
    if "T" in text:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(zone).date()
    return date.fromisoformat(text[:10])


def _anchors(
    store: Any,
    pid: str,
    by_form: Mapping[str, Sequence[Any]],
    records: Mapping[str, Sequence[Rec]],
    model: Model,
    zone: ZoneInfo,
) -> dict[str, date | datetime | None]:
    """A participant's anchors, from their records (`rec.data`; typed: `records`) and their allocation."""
    consent = by_form.get("consent", ())
    enrolled = by_form.get("enrollment", ())
    row = store.one("SELECT ts FROM rand_allocations WHERE participant = ?", (pid,))
    first = visits.first_dose(model, records)
    out: dict[str, date | datetime | None] = {
        "consent": _local_day(consent[0].data.get("time"), zone) if consent else None,
        "enrollment": _local_day(enrolled[-1].data.get("date"), zone) if enrolled else None,
        "randomization": datetime.fromisoformat(str(row[0]).replace("Z", "+00:00"))
        if row is not None
        else None,
        "first_dose": first.astimezone(zone).date() if first is not None else None,
    }
    out.update(_declared_anchors(model, by_form, zone))
    return out


def _declared_anchors(
    model: Model, by_form: Mapping[str, Sequence[Any]], zone: ZoneInfo
) -> dict[str, date | None]:
    """The protocol's `[[anchors]]` as local dates, read from the records as the ward reads them
    (`engine.visits.timeline`: the first or last record of the form whose `where` holds)."""
    declared = model.data.get("anchors", ())
    if not declared:
        return {}
    forms = model.data.get("forms", {})
    typed: dict[str, list[Rec]] = {}
    for name in {str(a["form"]) for a in declared}:
        fields = forms.get(name, {}).get("fields", {})
        typed[name] = [
            Rec(name, interpreter.typed_values(fields, rec.data), str(getattr(rec, "event_id", "")), i)
            for i, rec in enumerate(by_form.get(name, ()))
        ]
    snap = Snapshot(records=typed, now=now_utc(), zone=zone, anchor_day=model.calendar.anchor_day)
    got = visits.timeline(model, snap)
    out: dict[str, date | None] = {}
    for a in declared:
        value = got.get(str(a["name"]))
        out[str(a["name"])] = value.astimezone(zone).date() if isinstance(value, datetime) else value
    return out


def _typed(model: Model, by_form: Mapping[str, Sequence[Any]]) -> dict[str, list[Rec]]:
    """The records (`rec.data`, `rec.event_id`) typed by the model's forms, by form, in the order given."""
    forms = model.data.get("forms", {})
    return {
        form: [
            Rec(form, interpreter.typed_values(forms.get(form, {}).get("fields", {}), r.data), r.event_id, i)
            for i, r in enumerate(recs)
        ]
        for form, recs in by_form.items()
    }


def of_participant(
    store: Any, pid: str, by_form: Mapping[str, Sequence[Any]], model: Model, zone: ZoneInfo
) -> Visits:
    """The occurrences of a participant's visits, from their records (`rec.data`, `rec.event_id`) and their
    allocation (module docstring)."""
    now = now_utc().astimezone(zone)
    row = store.one("SELECT arm FROM rand_allocations WHERE participant = ?", (pid,))
    arm: str | None = None
    if row is not None:
        arm = str(row[0]) if row[0] else (model.arms[0].code if model.arms else None)
    elif len(model.arms) == 1:
        arm = model.arms[0].code
    records = _typed(model, by_form)
    anchors = _anchors(store, pid, by_form, records, model, zone)
    snap = Snapshot(
        records=records, now=now, zone=zone, anchors=anchors, anchor_day=model.calendar.anchor_day
    )
    placed: list[tuple[str, Any, list[Any]]] = []
    if arm is not None:
        try:
            facts = due.conditions(model, snap, arm)
        except EvalError:
            facts = {}
        raw = {form: [(r.event_id, r.data) for r in recs] for form, recs in by_form.items()}
        placed = visits.placed_of(model, anchors, arm, zone.key, raw, facts, now)
    # `last_dose` and `treatment_end` once the course is over, as the ward dates the visits counted from them
    snap = Snapshot(
        records=records,
        now=now,
        zone=zone,
        anchors=visits.course_anchors(model, snap, placed, zone),
        anchor_day=model.calendar.anchor_day,
    )
    dated = tuple(visits.dated(model, snap.anchors, zone, arm=arm, worklist_only=False))
    completed = visits.course_end(placed, None, zone)
    if arm is None or not visits.declared(model):
        return Visits((), dated, snap, completed)
    return Visits(tuple(visits.occurrences(model, placed, zone, arm=arm)), dated, snap, completed)


def place(
    model: Model,
    found: Visits,
    form: str,
    data: Mapping[str, Any],
    event_id: str,
    when: date,
    *,
    administrations: bool,
) -> Placed | None:
    """The visit occurrence a record of `form` taken on local date `when` belongs to, or None (unscheduled).

    `administrations`: an administration record belongs to the calendar visit counted from its schedule's
    anchor whose window holds it (SDTM: EX has a VISITNUM), not only to one that lists its form (ODM)."""
    fields = model.data.get("forms", {}).get(form, {}).get("fields", {})
    rec = Rec(form, interpreter.typed_values(fields, data), event_id, 0)
    if found.per:
        occ = visits.place(model, found.per, rec, when, found.snap)
        if occ is not None:
            return Placed(occ.visit.code, occ.n, occ.name, occ.num)
    i = visits.dated_place(
        found.dated, rec, when, found.snap, administrations=model if administrations else None
    )
    if i is None:
        return None
    d = found.dated[i]
    return Placed(d.visit.code, d.n if d.visit.repeats else None, d.name, d.num)
