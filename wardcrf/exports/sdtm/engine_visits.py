"""Which of a format-2 protocol's visits a record belongs to (SDTM SV, and VISITNUM in every domain).

A record belongs to the planned visit occurrence whose window, counted from
the participant's anchor, holds the record's date, among the visits that list
its form (a form's `when` must hold for the record); an administration
belongs to the scheduled visit, counted from the anchor its schedule counts
from, whose window holds it, whichever forms that visit lists. The occurrence's name is the one TV gives it
(`engine_design.design_from_model`: the label with `{day}` and `{n}` filled).
A record no visit takes is unscheduled (numbered after the last planned
visit before it, as format 1's derived design does).

Anchors, per participant: `consent` (the consent's time), `enrollment` (its
date), `randomization` (the allocation's time), `first_dose` (the first
administration given), and the protocol's `[[anchors]]` (`engine.visits.timeline`).
Visits that repeat per administration of a regimen (`repeat.per`) are placed by `engine.visits` (`per_administration`, `administration_occurrence`): one
occurrence per scheduled administration, taking the administration, its dose assessments and the
visit's forms of its day, tried before the calendar visits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ...clock import now_utc
from ...engine import due, interpreter, visits
from ...engine.interpreter import EvalError, Rec, Snapshot
from ...engine.model import Model, duration


@dataclass(frozen=True)
class Occurrence:
    name: str
    code: str  # the visit's code (ODM StudyEventOID SE.code)
    repeat: int | None  # 1, 2, ... for a visit that repeats (ODM StudyEventRepeatKey); None once
    anchor: str
    forms: Mapping[str, str | None]  # form -> its `when` (None: always)
    opens: date
    closes: date


def occurrences(model: Model, anchors: Mapping[str, date | None]) -> list[Occurrence]:
    """Every planned visit occurrence of a participant whose anchor has happened, in protocol order."""
    out: list[Occurrence] = []
    for v in model.data.get("visits", ()):
        if v.get("type") in ("unscheduled", "common") or "per" in v.get("repeat", {}):
            continue
        start = anchors.get(str(v.get("anchor", "")))
        if start is None:
            continue
        every = max(1, duration(v["repeat"]["every"]).days) if "repeat" in v else 1
        count = int(v["repeat"]["count"]) if "repeat" in v else 1
        before, after = (duration(w) for w in v.get("window", ("0d", "0d")))
        forms: dict[str, str | None] = {}
        for f in v.get("forms", ()):
            if isinstance(f, str):
                forms[f] = None
            else:
                forms[str(f["form"])] = f.get("when")
        for i in range(count):
            day = int(v["day"]) + i * every
            target = start + timedelta(days=day - model.calendar.anchor_day)
            name = str(v["label"]).replace("{day}", str(day)).replace("{n}", str(i + 1))
            out.append(
                Occurrence(
                    name,
                    str(v["code"]),
                    i + 1 if "repeat" in v else None,
                    str(v["anchor"]),
                    forms,
                    target + before,
                    target + after,
                )
            )
    return out


def occurrence_of(
    model: Model,
    found: Sequence[Occurrence],
    form: str,
    data: Mapping[str, Any],
    when: date,
    administration_forms: set[str],
    zone: ZoneInfo,
    anchors: Mapping[str, date | None] | None = None,
) -> Occurrence | None:
    """The planned visit occurrence a record of `form` taken on `when` belongs to, or None."""
    fields = model.data.get("forms", {}).get(form, {}).get("fields", {})
    for occ in found:
        if not occ.opens <= when <= occ.closes:
            continue
        if form in administration_forms:
            if occ.anchor in _schedule_anchors(model, form):
                return occ
            continue
        if form not in occ.forms:
            continue
        condition = occ.forms[form]
        if condition is None or _holds(model, condition, form, fields, data, zone, anchors or {}):
            return occ
    return None


def anchors_of(
    store: Any, pid: str, by_form: Mapping[str, Sequence[Any]], model: Model, zone: ZoneInfo
) -> dict[str, date | None]:
    """A participant's anchors as local dates, from their records (`rec.data`) and their allocation."""

    def day(value: Any) -> date | None:
        text = str(value or "")
        if len(text) < 10:
            return None
        if "T" in text:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(zone).date()
        return date.fromisoformat(text[:10])

    consent = by_form.get("consent", ())
    enrolled = by_form.get("enrollment", ())
    row = store.one("SELECT ts FROM rand_allocations WHERE participant = ?", (pid,))
    starts: list[date] = []
    for r in model.regimens.values():
        for a in r.administrations:
            roles = a.record
            for rec in by_form.get(str(roles.get("form")), ()):
                if rec.data.get(roles.get("not_given", "")) is True:
                    continue
                began = day(rec.data.get(roles.get("start", "")))
                if began is not None:
                    starts.append(began)
    out: dict[str, date | None] = {
        "consent": day(consent[0].data.get("time")) if consent else None,
        "enrollment": day(enrolled[-1].data.get("date")) if enrolled else None,
        "randomization": day(row[0]) if row is not None else None,
        "first_dose": min(starts) if starts else None,
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


def _schedule_anchors(model: Model, form: str) -> set[str]:
    """The anchors the administrations recorded on `form` are scheduled from."""
    return {
        a.schedule.anchor
        for r in model.regimens.values()
        for a in r.administrations
        if a.record.get("form") == form
    }


def _holds(
    model: Model,
    condition: str,
    form: str,
    fields: Mapping[str, Any],
    data: Mapping[str, Any],
    zone: ZoneInfo,
    anchors: Mapping[str, date | None],
) -> bool:
    rec = Rec(form, interpreter.typed_values(fields, data), "", 0)
    snap = Snapshot(
        records={form: [rec]},
        now=datetime.now(zone),
        zone=zone,
        record=rec,
        anchors=anchors,
        anchor_day=model.calendar.anchor_day,
    )
    try:
        return interpreter.truth(condition, snap) is True
    except EvalError:
        return False


@dataclass(frozen=True)
class PerAdministration:
    """A participant's occurrences of the visits that repeat per administration, and what places records."""

    found: tuple[visits.Occurrence, ...]
    snap: Snapshot


def per_administration(
    store: Any, pid: str, by_form: Mapping[str, Sequence[Any]], model: Model, zone: ZoneInfo
) -> PerAdministration:
    """The occurrences of a participant's per-administration visits (`engine.visits`), from their records
    (`rec.data`, `rec.event_id`) and allocation: the schedule of the arm allocated (blinded: the first
    arm's, which the others repeat; one arm: that arm)."""
    now = now_utc().astimezone(zone)
    if not visits.declared(model):
        return PerAdministration((), Snapshot(records={}, now=now, zone=zone))
    row = store.one("SELECT arm, ts FROM rand_allocations WHERE participant = ?", (pid,))
    arm: str | None = None
    anchors: dict[str, date | datetime | None] = dict(anchors_of(store, pid, by_form, model, zone))
    if row is not None:
        arm = str(row[0]) if row[0] else (model.arms[0].code if model.arms else None)
        anchors["randomization"] = datetime.fromisoformat(str(row[1]).replace("Z", "+00:00"))
    elif len(model.arms) == 1:
        arm = model.arms[0].code
    forms = model.data.get("forms", {})
    records = {
        form: [
            Rec(form, interpreter.typed_values(forms.get(form, {}).get("fields", {}), r.data), r.event_id, i)
            for i, r in enumerate(recs)
        ]
        for form, recs in by_form.items()
    }
    snap = Snapshot(
        records=records, now=now, zone=zone, anchors=anchors, anchor_day=model.calendar.anchor_day
    )
    if arm is None:
        return PerAdministration((), snap)
    try:
        facts = due.conditions(model, snap, arm)
    except EvalError:
        facts = {}
    raw = {form: [(r.event_id, r.data) for r in recs] for form, recs in by_form.items()}
    placed = visits.placed_of(model, anchors, arm, zone.key, raw, facts, now)
    return PerAdministration(tuple(visits.occurrences(model, placed, zone, arm=arm)), snap)


def administration_occurrence(
    model: Model, per: PerAdministration, form: str, data: Mapping[str, Any], event_id: str, when: date
) -> visits.Occurrence | None:
    """The per-administration visit occurrence a record belongs to, or None (then the calendar visits)."""
    if not per.found:
        return None
    fields = model.data.get("forms", {}).get(form, {}).get("fields", {})
    rec = Rec(form, interpreter.typed_values(fields, data), event_id, 0)
    return visits.place(model, per.found, rec, when, per.snap)
