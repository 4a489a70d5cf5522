"""Eligibility as the protocol's criteria (docs/protocol.md, "[eligibility] and [[criteria]]").

Each criterion is an expression over the participant's recorded fields, or an
`all`/`any` list of them, with a code and a label; none is code. Evaluated
with `interpreter.truth` at the assessment date (`@assessment`: the
eligibility record's date at screening, the day of a reassessment after).

A criterion is *met*, *not met* or *not assessable* (it reads a blank). A
participant is eligible when every inclusion criterion is met and no
exclusion criterion is met or not assessable; every other criterion is
*failed* and named by its code and label, with the blank facts when it is
not assessable, the failing part of an `all`/`any` list, and the protocol's
own `message` when it declares one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from wardcrf.engine import interpreter
from wardcrf.engine.interpreter import EvalError, Rec, Snapshot
from wardcrf.engine.model import Model
from wardcrf.errors import Refused
from wardcrf.store import Store

MET, NOT_MET, NOT_ASSESSABLE = "met", "not met", "not assessable"


@dataclass(frozen=True)
class Outcome:
    """One criterion assessed."""

    code: str
    label: str
    category: str  # inclusion | exclusion
    value: bool | None  # the expression's truth (exclusion: true = excluded)
    part: str | None = None  # the part of an all/any list that decided, when the criterion is a list
    blanks: tuple[str, ...] = ()
    message: str | None = None  # the protocol's message, its holes filled

    @property
    def state(self) -> str:
        if self.value is None:
            return NOT_ASSESSABLE
        return MET if self.value else NOT_MET

    @property
    def passed(self) -> bool:
        return self.value is (self.category == "inclusion")

    def explain(self) -> str:
        """`code (label): why` in the ward's words."""
        if self.message and self.value is not None:
            why = self.message
        elif self.value is None:
            why = f"not assessable: {', '.join(self.blanks) or 'a fact'} is blank"
        elif self.category == "exclusion":
            why = "excluded" + (f" ({self.part})" if self.part else "")
        else:
            why = "not met" + (f" ({self.part})" if self.part else "")
        return f"{self.code} ({self.label}): {why}"


@dataclass(frozen=True)
class Assessment:
    on: date | None
    outcomes: tuple[Outcome, ...]

    @property
    def eligible(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    @property
    def failed_codes(self) -> list[str]:
        return [o.code for o in self.failed]

    def refusal(self, participant: str) -> str:
        """One line naming every failed criterion by code and label."""
        on = f" on {self.on}" if self.on else ""
        return f"{participant} is not eligible{on}: " + "; ".join(o.explain() for o in self.failed)

    def require(self, participant: str) -> None:
        if not self.eligible:
            raise Refused(self.refusal(participant))


def assess(model: Model, snap: Snapshot) -> Assessment:
    """Every criterion of `model` over `snap` (whose `assessment` is the date assessed)."""
    outcomes = []
    for c in model.data.get("criteria", ()):
        outcomes.append(_criterion(model, c, snap))
    return Assessment(snap.assessment, tuple(outcomes))


def _criterion(model: Model, c: Mapping[str, Any], snap: Snapshot) -> Outcome:
    code, category = str(c["code"]), str(c.get("category", "inclusion"))
    label = _label(c.get("label", code))
    try:
        if "expr" in c:
            value, part = interpreter.truth(c["expr"], snap), None
            blanks = interpreter.blanks_of(c["expr"], snap) if value is None else []
        else:
            value, part, blanks = _parts(c, snap, category)
    except EvalError as exc:  # a type clash the reader could not see: refused naming the criterion
        raise Refused(f"{model.id} {model.version}: criterion {code}: {exc}") from None
    message = None
    if c.get("message") and value is not None and value is not (category == "inclusion"):
        message = interpreter.render(str(c["message"]), snap)
    return Outcome(code, label, category, value, part, tuple(blanks), message)


def _parts(
    node: Mapping[str, Any], snap: Snapshot, category: str
) -> tuple[bool | None, str | None, list[str]]:
    """Kleene all/any over a list; the part named is the first that decides against the criterion."""
    kind = "all" if "all" in node else "any"
    results: list[tuple[bool | None, str | None, list[str]]] = []
    for item in node[kind]:
        if isinstance(item, str):
            v = interpreter.truth(item, snap)
            results.append((v, item, interpreter.blanks_of(item, snap) if v is None else []))
        else:
            results.append(_parts(item, snap, category))
    values = [r[0] for r in results]
    if kind == "all":
        value = False if False in values else (None if None in values else True)
    else:
        value = True if True in values else (None if None in values else False)
    want = category == "inclusion"
    deciding = next((r for r in results if r[0] is not want), None)
    blanks = [b for r in results if r[0] is None for b in r[2]]
    return value, (deciding[1] if deciding and value is not want else None), blanks


def _label(text: Any) -> str:
    if isinstance(text, Mapping):
        return str(text.get("en") or next(iter(text.values()), ""))
    return str(text)


def of_record(
    model: Model, values: Mapping[str, Any], *, on: date, now: datetime, zone: ZoneInfo
) -> Assessment:
    """The criteria over an eligibility record being saved (its values as typed), assessed on `on`."""
    form = str(model.data.get("eligibility", {}).get("form", ""))
    fields = model.data.get("forms", {}).get(form, {}).get("fields", {})
    rec = Rec(form, interpreter.typed_values(fields, values), "", 0)
    return assess(model, Snapshot(records={form: [rec]}, now=now, zone=zone, assessment=on))


# -- a participant's snapshot from the store ---------------------------------------------------


def participant_records(store: Store, model: Model, pid: str) -> dict[str, list[Rec]]:
    """The participant's records, typed by the model's forms, by form, in log order.

    The order is the `records` projection's own (its rowid: records are inserted as their events are
    projected, in log order, and amended in place), so a projection derived from this reads the same
    whether the log is there or being replayed into a scratch copy (`db rebuild --check`).
    """
    rows = store.execute(
        "SELECT r.form, r.event_id, r.data, r.rowid FROM records r WHERE r.subject = ? ORDER BY r.rowid",
        (f"participant:{pid}",),
    ).fetchall()
    return typed_records(
        model, ((form, event_id, stored_values(data), pos) for form, event_id, data, pos in rows)
    )


_DECODER = msgspec.json.Decoder()


def stored_values(data: str | bytes) -> Any:
    """A record's stored data (the `records` projection's JSON text) as `json.loads` reads it.

    msgspec reads standard JSON to the same values as the standard library (objects as dicts, the last of
    a repeated key kept, integers of any size, floats correctly rounded) in about a quarter of the time,
    and every participant's records are read this way when `db rebuild` derives the ward queue. What
    msgspec refuses and the standard library reads (NaN, Infinity, a number too large for a float, a lone
    surrogate escape) is read by the standard library, to the same value as before."""
    try:
        return _DECODER.decode(data)
    except msgspec.MsgspecError:
        return json.loads(data)


def typed_records(
    model: Model, rows: Iterable[tuple[str, str, Mapping[str, Any], int]]
) -> dict[str, list[Rec]]:
    """`participant_records` of rows already read and parsed: (form, event id, stored values, rowid), in
    log order (the ward queue reads many participants' records in one query: `engine_rules.queue_reads`)."""
    forms = model.data.get("forms", {})
    out: dict[str, list[Rec]] = {}
    for form, event_id, values, pos in rows:
        fields = forms.get(form, {}).get("fields", {})
        out.setdefault(form, []).append(
            Rec(form, interpreter.typed_values(fields, values), event_id, int(pos))
        )
    return out


class TypedOnRead(Mapping[str, list[Rec]]):
    """`typed_records` of rows already read and parsed, each form's records typed when the form is first
    read: the same records, in the same order, for every form read.

    The ward queue's row reads a participant's records of a few forms (the administrations, the dose
    assessments, the eligibility and disposition records, the forms a gate or an anchor names), and a
    rebuild derives every participant's row: the records of a form no rule of the row reads (labs, CT
    scores, demographics) are not typed. Iterating it, or asking for its items or values, types every
    form, as `typed_records` does. Within a form, each record's values are typed as a rule reads them
    (`interpreter.values_on_read`): a vital signs record is read for its time point and its administration,
    not its five measurements."""

    __slots__ = ("_model", "_rows", "_typed")

    def __init__(self, model: Model, rows: Iterable[tuple[str, str, Mapping[str, Any], int]]) -> None:
        self._model = model
        self._rows: dict[str, list[tuple[str, str, Mapping[str, Any], int]]] = {}
        for row in rows:
            self._rows.setdefault(row[0], []).append(row)
        self._typed: dict[str, list[Rec]] = {}

    def __getitem__(self, form: str) -> list[Rec]:
        hit = self._typed.get(form)
        if hit is None:
            typing = interpreter.values_on_read(
                self._model.data.get("forms", {}).get(form, {}).get("fields", {})
            )
            hit = self._typed[form] = [
                Rec(form, typing(values), event_id, int(pos))
                for _form, event_id, values, pos in self._rows[form]
            ]
        return hit

    def get(self, form: str, default: Any = None) -> Any:
        return self[form] if form in self._rows else default

    def __contains__(self, form: object) -> bool:
        return form in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def snapshot(
    store: Store,
    model: Model,
    pid: str,
    *,
    now: datetime,
    zone: ZoneInfo,
    on: date | None = None,
    records: Mapping[str, Sequence[Rec]] | None = None,
) -> Snapshot:
    """What the criteria read for `pid`: their records, assessed on `on` (default: the eligibility record's date)."""
    recs = dict(records) if records is not None else participant_records(store, model, pid)
    if on is None:
        el = model.data.get("eligibility", {})
        held = recs.get(str(el.get("form", "")), [])
        found = held[-1].values.get(str(el.get("date", ""))) if held else None
        on = found if isinstance(found, date) and not isinstance(found, datetime) else None
    site = store.scalar("SELECT site FROM site WHERE id = 1")
    return Snapshot(
        records=recs,
        now=now,
        zone=zone,
        participant={"id": pid, "site": None if site is None else str(site), "arm": None},
        assessment=on,
        anchor_day=model.calendar.anchor_day,
    )
