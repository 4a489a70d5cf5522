"""What the safety views read from the protocol's declarations, for a version of either format.

The DSMG board (`workflow.dsmg`), the safety report (`reports.safety`) and
the vitals series (`workflow.vitals_series`) name no form or field of a
trial: they ask here, and here reads the version's declarations.

- `vital_signs`: a format-2 version's `[safety] vital_signs` (the form, its
  time field, the signs in the order the ward reads them); for a format-1
  version the same declaration from format 1's fixed shape
  (`wardcrf/protocols/format1-workflow.toml`, `[safety.vital_signs]`).
- `vitals_rows`: a participant's records of that form, each with the
  administration it was measured before or after: a format-2 version's
  `[[dose_assessments]]` on the form (`when`, `match`, `link`); format 1's
  vitals projection (its pre-/post-dose timepoints and dose number).
- `administration_forms`: the forms that record an administration, with the
  field of each role (`record = { form, dose, number, start, ... }` of every
  administration; format 1's dose form as `engine.protocol_v1.upgrade` reads it).
- `format1_queue`: format 1's ward-queue forms and a participant's own hold
  (`[ward_queue]` of format1-workflow.toml; a format-2 version's queue rows
  come from the engine).
- `exposure`: administrations given and planned and the cumulative dose per
  unit, from the records (never a typed total): a format-2 version's from the
  engine's summary of the participant (`engine_rules.summary`, the ward list's
  numbers), a format-1 version's from its dose records and `[schedule]`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict
from zoneinfo import ZoneInfo

from ..engine import due, interpreter
from ..engine.model import Model
from ..store import Store

if TYPE_CHECKING:
    from .. import protocol as protocols


class _CumulativeColumn(TypedDict, total=False):
    column: str
    """The ward list's name for this unit's sum when the version names one (`dose.cumulative`:
    e.g. "cumulative vials"); the list then shows it under that name (`status.list_row`)."""


class CumulativeDose(_CumulativeColumn):
    """The doses given of one unit, summed."""

    value: float
    unit: str


@dataclass(frozen=True)
class VitalSigns:
    """`[safety] vital_signs`: the form, the field saying when they were measured, the signs (in order)."""

    form: str
    time: str
    fields: tuple[str, ...]
    timepoint: str | None = None
    """A choice field of the form saying when the record was taken (`timepoint = FIELD`, optional): names a
    format-2 record no dose assessment holds (an unscheduled measurement) by its code, as format 1 does."""


def _format1() -> Mapping[str, Any]:
    from ..protocols import format1_shape

    return format1_shape()


@dataclass(frozen=True)
class Format1Queue:
    """Format 1's ward queue (`[ward_queue]` of format1-workflow.toml): the forms whose records move a
    participant's row, and the record that holds them (`hold_form`.`hold_field` == `hold_value`)."""

    forms: tuple[str, ...]
    hold_form: str
    hold_field: str
    hold_value: str


def format1_queue() -> Format1Queue:
    """Format 1's ward-queue declarations (a format-2 version's rows come from the engine)."""
    q = _format1()["ward_queue"]
    hold = q["hold"]
    return Format1Queue(tuple(q["forms"]), str(hold["form"]), str(hold["field"]), str(hold["value"]))


def _vital_signs_of(declared: Mapping[str, Any] | None) -> VitalSigns | None:
    if not declared:
        return None
    said = declared.get("timepoint")
    return VitalSigns(
        str(declared["form"]),
        str(declared["time"]),
        tuple(str(f) for f in declared["fields"]),
        None if said is None else str(said),
    )


def vital_signs(proto: protocols.Protocol) -> VitalSigns | None:
    """The version's declared vital signs, or None when it declares none (no flags, no series)."""
    if proto.engine is not None:
        return _vital_signs_of((proto.engine.data.get("safety") or {}).get("vital_signs"))
    return _vital_signs_of((_format1().get("safety") or {}).get("vital_signs"))


class VitalsRow(TypedDict):
    """One record of the declared vitals form (`vitals_rows`)."""

    event: str
    time: str | None
    timepoint: str | None
    """What the record says it is: format 1's timepoint code; a format-2 dose assessment's label, else the
    code of the declared `timepoint` field (`VitalSigns.timepoint`)."""
    when: str | None
    """"before" or "after" the administration `number`; None when it is not an assessment of one."""
    number: int | None
    values: dict[str, float | None]
    """Each declared sign's value (blank: None)."""


def _number(value: Any) -> float | None:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def vitals_rows(store: Store, proto: protocols.Protocol, pid: str) -> list[VitalsRow]:
    """The participant's records of the declared vitals form, by time then log order."""
    vs = vital_signs(proto)
    if vs is None:
        return []
    if proto.engine is None:
        return _format1_rows(store, vs, pid)
    m = proto.engine
    assessments = [a for a in m.data.get("dose_assessments", ()) if a.get("form") == vs.form]
    forms = m.data.get("forms", {})
    fields = forms.get(vs.form, {}).get("fields", {})
    rows = store.execute(
        "SELECT r.event_id, r.data, coalesce(e.pos, r.rowid) FROM records r LEFT JOIN events e ON e.id = r.event_id"
        " WHERE r.subject = ? AND r.form = ? ORDER BY r.rowid",
        (f"participant:{pid}", vs.form),
    ).fetchall()
    recs = [
        (interpreter.Rec(vs.form, interpreter.typed_values(fields, raw), str(event), int(pos)), raw, pos)
        for event, raw, pos in ((e, json.loads(d), p) for e, d, p in rows)
    ]
    snap = interpreter.Snapshot(
        records={vs.form: [r for r, _raw, _pos in recs]}, now=datetime.now(UTC), zone=ZoneInfo("UTC")
    )
    out: list[tuple[str, int, VitalsRow]] = []
    for rec, raw, pos in recs:
        when = timepoint = None
        number: int | None = None
        for a in assessments:
            if a.get("match") and interpreter.truth(str(a["match"]), snap.with_record(rec)) is not True:
                continue
            n = _number(raw.get(str(a.get("link", ""))))
            if n is None:
                continue
            when, timepoint, number = str(a.get("when")), str(a.get("label", a["code"])), int(n)
            break
        if timepoint is None and vs.timepoint and raw.get(vs.timepoint) not in (None, ""):
            timepoint = str(raw[vs.timepoint])  # no assessment holds it: the record's own timepoint code
        time = raw.get(vs.time)
        out.append(
            (
                _instant(time),
                int(pos),
                {
                    "event": rec.event_id,
                    "time": None if time is None else str(time),
                    "timepoint": timepoint,
                    "when": when,
                    "number": number,
                    "values": {name: _number(raw.get(name)) for name in vs.fields},
                },
            )
        )
    return [row for _t, _p, row in sorted(out, key=lambda x: (x[0], x[1]))]


def _instant(value: Any) -> str:
    """A sort key of a stored date or date-time: an aware time in UTC (times typed in other zones order by
    the instant), a date or anything else as stored."""
    text = str(value or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.astimezone(UTC).isoformat() if moment.tzinfo is not None else text


_FORMAT1_WHEN = {"pre_dose": "before", "post_dose": "after"}


def _format1_rows(store: Store, vs: VitalSigns, pid: str) -> list[VitalsRow]:
    """Format 1's vitals projection (one table named after the form, its columns after the fields)."""
    out: list[VitalsRow] = []
    for row in store.rows(
        f"SELECT v.* FROM {vs.form} v JOIN events e ON e.id = v.event_id"
        " WHERE v.participant = ? ORDER BY v.time, e.pos",
        (pid,),
    ):
        tp = row.get("timepoint")
        out.append(
            {
                "event": row["event_id"],
                "time": row.get(vs.time),
                "timepoint": tp,
                "when": _FORMAT1_WHEN.get(str(tp)),
                "number": row.get("dose"),
                "values": {name: _number(row.get(name)) for name in vs.fields},
            }
        )
    return out


def model_of(proto: protocols.Protocol) -> Model:
    """The engine's model of the version (a format-1 version's upgraded once: `engine.due.model_for`)."""
    return due.model_for(proto)


def administration_forms(proto: protocols.Protocol) -> dict[str, Mapping[str, str]]:
    """Form -> {role: field} of every administration the version declares (first declaration of a form wins)."""
    m = due.model_for(proto)
    out: dict[str, Mapping[str, str]] = {}
    for regimen in m.regimens.values():
        for adm in regimen.administrations:
            form = adm.record.get("form")
            if form and form not in out:
                out[form] = {k: v for k, v in adm.record.items() if k != "form"}
    return out


def dose_unit(proto: protocols.Protocol) -> str:
    """The unit of the version's first administration's dose ("" when it declares none)."""
    m = due.model_for(proto)
    for regimen in m.regimens.values():
        for adm in regimen.administrations:
            return adm.dose.unit
    return ""


def fixed_dose(proto: protocols.Protocol) -> float | None:
    """The dose per administration when every administration gives one fixed dose, else None (by weight,
    by band, or differing between administrations or arms)."""
    doses = {
        adm.dose.fixed
        for regimen in due.model_for(proto).regimens.values()
        for adm in regimen.administrations
    }
    if len(doses) != 1:
        return None
    fixed = next(iter(doses))
    return None if fixed is None else float(fixed)


def quantity(value: Any, unit: str) -> tuple[float, str] | None:
    """A recorded dose as (amount, unit): a stored `{value, unit}` keeps its unit, a bare number takes `unit`."""
    amount = _number(value)
    if amount is None:
        return None
    if isinstance(value, dict) and value.get("unit"):
        unit = str(value["unit"])
    return amount, unit


class Exposure(TypedDict):
    given: int
    planned: int
    cumulative: list[CumulativeDose]
    """The doses given, summed per unit (one entry of 0 in the first administration's unit when none)."""


def exposure(store: Store, proto: protocols.Protocol, pid: str, at: datetime | None = None) -> Exposure:
    """Administrations given and planned, and the cumulative dose per unit, from the participant's records."""
    unit = dose_unit(proto)
    if proto.engine is not None:
        from .base import get_participant
        from .engine_rules import summary

        p = get_participant(store, pid)
        if p is None:
            return {"given": 0, "planned": 0, "cumulative": [{"value": 0.0, "unit": unit}]}
        s = summary(store, proto, p, at or datetime.now(UTC))
        cumulative = list(s.get("cumulative_dose") or [])
        return {
            "given": s["doses_given"],
            "planned": s["doses_planned"],
            "cumulative": cumulative or [{"value": 0.0, "unit": unit}],
        }
    return recorded_exposure(store, proto, pid, planned=proto.schedule.doses)


def recorded_exposure(store: Store, proto: protocols.Protocol, pid: str, *, planned: int = 0) -> Exposure:
    """The administrations recorded for the participant and their doses summed per unit, read from the
    records of the forms `proto` declares for administrations; nothing computed from a schedule (`planned`
    as given). The DSMG board's line for a participant on a version not loaded here (`dsmg.review`)."""
    unit = dose_unit(proto)
    given = 0
    totals: dict[str, float] = {}
    for form, roles in administration_forms(proto).items():
        for (raw,) in store.execute(
            "SELECT data FROM records WHERE subject = ? AND form = ? ORDER BY rowid",
            (f"participant:{pid}", form),
        ).fetchall():
            given += 1
            q = quantity(json.loads(raw).get(roles.get("dose", "")), unit)
            if q is not None:
                totals[q[1]] = totals.get(q[1], 0.0) + q[0]
    return {
        "given": given,
        "planned": planned,
        "cumulative": [{"value": v, "unit": u} for u, v in totals.items()] or [{"value": 0.0, "unit": unit}],
    }
