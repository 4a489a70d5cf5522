"""Visits that repeat per administration of a regimen (docs/protocol.md, `[[visits]]`).

`repeat = { per = "administration", regimen = R }` makes one occurrence per
scheduled administration of R (a daily dose's DOSE 1–5): the occurrence is due
and windowed with its administration (the slot `engine.schedule` places), it
is numbered with it (VISITNUM `num`, `num + step`, ... by the administration's
number across the regimen; VISIT the label with `{n}` and `{day}` filled),
and once the administration is recorded the occurrence moves with it: it took
place at the administration's start, and the forms it lists are due that
local day. An arm without R has none of its occurrences.

A record belongs to an occurrence when its form is R's recording form and it
is the record that fills the occurrence's slot; when it is a dose assessment
of R linked to the occurrence's administration (`link`, `match`); otherwise
when the visit lists its form (its `when`, if any, holding) and it was taken
on the occurrence's local day. The ward's list of what is due (`owed`), SDTM
(SV, VISITNUM) and ODM (StudyEventData) all place records here.

Pure: the caller gives the slots' states (`schedule.states`, through the
ward's `engine_rules.place` or the exports), the records and the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from wardcrf.engine import interpreter, memo, schedule
from wardcrf.engine.interpreter import EvalError, Rec, Snapshot
from wardcrf.engine.model import Administration, Model, duration

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Entry:
    """A form the visit lists: its `when` (a record expression binding a record to the visit) and whether
    it is owed (`required`, default true)."""

    form: str
    when: str | None = None
    required: bool = True


@dataclass(frozen=True)
class PerAdministration:
    """A declared visit that repeats per administration of `regimen`."""

    code: str
    num: float
    step: float
    label: str
    epoch: str
    regimen: str
    forms: tuple[Entry, ...]
    worklist: bool
    arms: tuple[str, ...]  # the arms that have it: the visit's `arms` (or every arm) having the regimen
    twins: frozenset[str] = frozenset()  # the regimen and its `same_as` placebo twins: one schedule

    def number(self, n: int) -> float | int:
        """VISITNUM of the occurrence of administration `n` (1-based across the regimen)."""
        value = round(self.num + (n - 1) * self.step, 4)
        return int(value) if value == int(value) else value

    def name(self, n: int, day: int) -> str:
        """VISIT of the occurrence of administration `n` on protocol day `day`."""
        return self.label.replace("{n}", str(n)).replace("{day}", str(day))


_DECLARED: dict[int, tuple[Model, tuple[PerAdministration, ...]]] = {}


def declared(model: Model) -> tuple[PerAdministration, ...]:
    """The protocol's visits that repeat per administration, in declared order: worked out once per model (it
    is immutable; held here, so its id names no other), not once per participant placed (`calendar`)."""
    return memo.once_per(_DECLARED, model, lambda: _declared(model))


def _declared(model: Model) -> tuple[PerAdministration, ...]:
    out: list[PerAdministration] = []
    for v in model.data.get("visits", ()):
        repeat = v.get("repeat") or {}
        if "per" not in repeat:
            continue
        regimen = str(repeat["regimen"])
        twins = frozenset(
            {regimen}
            | {str(r["code"]) for r in model.data.get("regimens", ()) if r.get("same_as") == regimen}
        )
        having = tuple(a.code for a in model.arms if twins & set(a.regimens))
        listed = tuple(v.get("arms") or having)
        arms = tuple(a for a in listed if a in having)
        entries = tuple(
            Entry(f)
            if isinstance(f, str)
            else Entry(str(f["form"]), f.get("when"), bool(f.get("required", True)))
            for f in v.get("forms", ())
        )
        out.append(
            PerAdministration(
                code=str(v["code"]),
                num=float(v["num"]),
                step=float(repeat.get("step", 1)),
                label=str(v["label"]),
                epoch=str(v.get("epoch", "")),
                regimen=regimen,
                forms=entries,
                worklist=bool(v.get("worklist", True)),
                arms=arms,
                twins=twins,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a per-administration visit: administration `n` of the visit's regimen."""

    visit: PerAdministration
    n: int
    num: float | int
    name: str
    day: int  # the administration's protocol day
    due: datetime | None  # the administration's due time (None: due on a day)
    opens: datetime  # when its forms are due from: the slot's window, or the administration's start once recorded
    closes: datetime  # ... until: the window's end, or the end of the local day it was recorded on
    state: str  # the administration's: upcoming, due now, window closing, overdue, held, missed, given, not given
    record: str | None  # the administration record's event
    at: datetime | None  # when the administration started (None: not recorded)
    local_date: date  # the day it took place (or is due)


def occurrences(
    model: Model,
    placed: Iterable[tuple[str, Administration, Sequence[schedule.SlotState]]],
    zone: ZoneInfo,
    *,
    arm: str | None = None,
) -> list[Occurrence]:
    """Every occurrence of the protocol's per-administration visits for a participant whose administrations
    are `placed` (regimen, administration, each slot's state), in visit then administration order.

    `arm`: the participant's (None: a blinded or single arm; the slots given decide)."""
    rows = [(reg, adm, st) for reg, adm, states in placed for st in states]
    out: list[Occurrence] = []
    for v in declared(model):
        if arm is not None and arm not in v.arms:
            continue
        for regimen, _adm, st in rows:
            if regimen not in v.twins:
                continue
            s = st.slot
            filled = st.filled_by
            if filled is not None:
                at: datetime | None = filled.start
                local = filled.start.astimezone(zone)
                opens = filled.start
                closes = datetime.combine(local.date() + timedelta(days=1), time(0), zone) - _TICK
                day = local.date()
            else:
                at, opens, closes, day = None, s.opens, s.closes, s.date
            out.append(
                Occurrence(
                    visit=v,
                    n=s.number,
                    num=v.number(s.number),
                    name=v.name(s.number, s.day),
                    day=s.day,
                    due=s.due,
                    opens=opens,
                    closes=closes,
                    state=st.state,
                    record=filled.record if filled is not None else None,
                    at=at,
                    local_date=day,
                )
            )
    return out


def _assessments(model: Model, regimens: frozenset[str], form: str) -> list[Mapping[str, Any]]:
    return [
        a
        for a in model.data.get("dose_assessments", ())
        if a.get("form") == form and (not a.get("regimens") or regimens & set(a["regimens"]))
    ]


def _recording_forms(model: Model, regimen: str) -> set[str]:
    reg = model.regimens.get(regimen)
    return {str(a.record.get("form")) for a in reg.administrations} if reg is not None else set()


def _true(expr: str, snap: Snapshot, rec: Rec) -> bool:
    try:
        return interpreter.truth(expr, snap.with_record(rec)) is True
    except EvalError:
        return False


class _Truths:
    """`_true(expr, snap, rec)` for one record, each expression evaluated once.

    Placing a record asks the same condition (a visit's `when` for the form, an assessment's `match`) of
    every occurrence of a repeating visit; the answer depends only on the expression, the snapshot and
    the record, which are the same for all of them, so it is computed once (and the record's snapshot,
    `with_record`, built once) instead of once per occurrence: `db rebuild` re-derives every
    participant's ward-queue row this way (`wardqueue.derive`). An expression of the record's own fields
    alone (`timepoint == 'post_dose'`) is answered once for all records holding the same values in them
    (`interpreter.record_truth`)."""

    __slots__ = ("_known", "_rec", "_snap", "_within")

    def __init__(self, snap: Snapshot, rec: Rec) -> None:
        self._snap, self._rec = snap, rec
        self._within: Snapshot | None = None
        self._known: dict[str, bool] = {}

    def _inside(self) -> Snapshot:
        if self._within is None:
            self._within = self._snap.with_record(self._rec)
        return self._within

    def __call__(self, expr: str) -> bool:
        hit = self._known.get(expr)
        if hit is None:
            try:
                hit = interpreter.record_truth(expr, self._snap, self._rec, self._inside) is True
            except EvalError:
                hit = False
            self._known[expr] = hit
        return hit


_About = tuple[Entry | None, bool, list[Mapping[str, Any]]]
_ABOUTS: dict[int, tuple[Model, dict[tuple[int, str], tuple[PerAdministration, _About]]]] = {}


def _about(model: Model, v: PerAdministration, form: str) -> _About:
    """What placing a record of `form` asks of visit `v`: its entry for the form (None: it lists none),
    whether the form records the visit's administration, and the dose assessments on the form. A function
    of the model, the visit and the form alone, so worked out once per model (it is immutable; held here,
    so its id names no other) and kept with the visit it was worked out for (so a visit's id names no
    other either), not once per participant, record and occurrence."""
    known: dict[tuple[int, str], tuple[PerAdministration, _About]] = memo.once_per(_ABOUTS, model, dict)
    key = (id(v), form)
    found = known.get(key)
    if found is not None and found[0] is v:
        return found[1]
    entry = next((e for e in v.forms if e.form == form), None)
    about = (
        entry,
        form in _recording_forms(model, v.regimen),
        _assessments(model, v.twins, form) if entry is not None else [],
    )
    if len(known) > 4096:
        known.clear()
    known[key] = (v, about)
    return about


_Asked = tuple[bool, tuple[Any, ...]] | None


def _ask(model: Model, v: PerAdministration, rec: Rec, true: _Truths) -> _Asked:
    """What visit `v` answers of record `rec`, the same for every occurrence of the visit: None when it
    passes the record over (it lists no entry for the form, or the entry's `when` does not hold); else
    whether the form records the visit's administration, and the administration numbers the record is
    linked to (`link` of each dose assessment on the form whose `match` holds, in declared order, as
    recorded: a number or an integer; none, not linked)."""
    entry, recording, assessments = _about(model, v, rec.form)
    if entry is None or (entry.when is not None and not true(entry.when)):
        return None
    if recording:
        return True, ()
    links: list[Any] = []
    for a in assessments:
        if a.get("match") and not true(str(a["match"])):
            continue
        n = rec.values.get(str(a.get("link", "")))
        if isinstance(n, Decimal | int):
            links.append(n)
    return False, tuple(links)


def place(
    model: Model,
    found: Sequence[Occurrence],
    rec: Rec,
    day: date | None,
    snap: Snapshot,
) -> Occurrence | None:
    """The occurrence record `rec` (taken on local `day`) belongs to, or None (docstring of the module).

    In `found`'s order, the first occurrence whose visit does not pass the record over (`_ask`) and which
    is, for a form recording the administration, the occurrence its record filled; for a record linked to
    administrations, one of them; for any other record, the occurrence on its local day. What a visit
    answers is asked once per record, not once per occurrence: every occurrence of a repeating visit
    (five doses, five occurrences) asks the same."""
    true = _Truths(snap, rec)
    asked: dict[int, _Asked] = {}
    for occ in found:
        v = occ.visit
        key = id(v)
        if key in asked:
            answer = asked[key]
        else:
            answer = asked[key] = _ask(model, v, rec, true)
        if answer is None:
            continue
        recording, links = answer
        if recording:
            if occ.record is not None and occ.record == rec.event_id:
                return occ
            continue
        for n in links:
            if int(n) == occ.n:
                return occ
        if not links and day is not None and day == occ.local_date:
            return occ
    return None


@dataclass(frozen=True)
class Owed:
    """A form an occurrence lists and has not received: its state on the ward's list."""

    occurrence: Occurrence
    form: str
    state: str  # upcoming, due now, window closing, overdue, held, missed


def owed(
    model: Model,
    found: Sequence[Occurrence],
    records: Mapping[str, Sequence[Rec]],
    snap: Snapshot,
    at: datetime,
    zone: ZoneInfo,
) -> list[Owed]:
    """The required forms each occurrence lists that no record placed in it fills, with their state at `at`.

    The administration itself and its dose assessments are the administration's items (the next dose, the
    assessments owed before and after it), not repeated here. Before the administration is recorded the
    forms share its state (upcoming, due now, window closing, overdue, held; missed when it is); once it is
    recorded they are due that day and overdue after it.

    A visit whose every required form is the administration's own item (a daily dose's visit listing the
    dose, its vital signs, its post-dose check) owes nothing whatever the records: when no visit of `found`
    can owe a form, none is placed (a rebuild asks this of every participant)."""
    visits_of = list({id(occ.visit): occ.visit for occ in found}.values())
    skips = {id(v): _administration_items(model, v) for v in visits_of}
    if not any(e.required and e.form not in skips[id(v)] for v in visits_of for e in v.forms):
        return []
    filled: dict[tuple[str, int], set[str]] = {}
    for form, recs in records.items():
        # `place` passes over an occurrence whose visit lists no entry for the form: only the others are
        # asked, in their order (the same first match), not every occurrence for every record
        lists = {id(v) for v in visits_of if _about(model, v, form)[0] is not None}
        if not lists:
            continue
        listing = [occ for occ in found if id(occ.visit) in lists]
        if not listing:
            continue
        for rec in recs:
            taken = rec.when()
            local = taken.astimezone(zone).date() if isinstance(taken, datetime) else taken
            occ = place(model, listing, rec, local, snap)
            if occ is not None:
                filled.setdefault((occ.visit.code, occ.n), set()).add(form)
    out: list[Owed] = []
    for occ in found:
        v = occ.visit
        skip = skips[id(v)]
        for entry in v.forms:
            if not entry.required or entry.form in skip or entry.form in filled.get((v.code, occ.n), set()):
                continue
            out.append(Owed(occ, entry.form, _state(occ, at)))
    return out


_CAN_OWE: dict[int, tuple[Model, bool]] = {}


def can_owe(model: Model) -> bool:
    """Whether a visit per administration of `model` can owe a form (`owed`): one lists a required form
    that is not its administration's own item. When none can, `owed` is empty whatever the records and
    occurrences, and the ward queue does not build the occurrences for it. Worked out once per model."""
    return memo.once_per(
        _CAN_OWE,
        model,
        lambda: any(
            e.required and e.form not in _administration_items(model, v)
            for v in declared(model)
            for e in v.forms
        ),
    )


def _administration_items(model: Model, v: PerAdministration) -> set[str]:
    """The forms of visit `v` that are its administration's own items, never owed by the visit: the
    administration's recording form and the dose assessments' forms (`owed`)."""
    return _recording_forms(model, v.regimen) | {
        str(a.get("form"))
        for a in model.data.get("dose_assessments", ())
        if not a.get("regimens") or v.twins & set(a["regimens"])
    }


def _state(occ: Occurrence, at: datetime) -> str:
    if occ.at is None:
        return occ.state  # the administration's own word: its visit is due (or missed) with it
    if at < occ.opens:
        return schedule.UPCOMING
    return schedule.DUE_NOW if at <= occ.closes else schedule.OVERDUE


def placed_of(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    arm: str | None,
    site_zone: str,
    records: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    facts: Mapping[str, bool],
    at: datetime,
) -> list[tuple[str, Administration, list[schedule.SlotState]]]:
    """The states of every slot of the arm's administrations from the administration records (`records`:
    form -> (event id, stored data) in log order), as the ward places them (`engine_rules.place`): the
    exports' view of a participant's schedule."""
    plan = schedule.plan(model, anchors, arm=arm, zone=site_zone, conditions=facts)
    out: list[tuple[str, Administration, list[schedule.SlotState]]] = []
    for form in sorted(
        {str(a.record.get("form")) for r in model.regimens.values() for a in r.administrations}
    ):
        givens: list[schedule.Given] = []
        for event_id, data in records.get(form, ()):
            roles = next(
                a.record
                for r in model.regimens.values()
                for a in r.administrations
                if a.record.get("form") == form
            )
            when = data.get(roles.get("start", "")) or data.get(roles.get("due", ""))
            if not when:
                continue
            givens.append(
                schedule.Given(
                    datetime.fromisoformat(str(when)),
                    not_given=data.get(roles.get("not_given", "")) is True,
                    record=event_id,
                )
            )
        givens.sort(key=lambda g: g.start)
        taken = 0
        for regimen, adms in plan.items():
            for adm, slots in adms:
                if adm.record.get("form") != form or not slots:
                    continue
                rows = schedule.states(adm, slots, givens[taken : taken + len(slots)], at)
                taken += sum(1 for r in rows if r.filled_by is not None)
                out.append((regimen, adm, rows))
    return out


# -- calendar visits ----------------------------------------------------------------------------------------
# A visit with `anchor` + `day` + `window` (and `repeat = { every, count, step }`). This section owns their
# placement for every reader (docs/engine.md, "one owner per concept"): `planned` is what TV lists (occurrence
# n on day `day + (n-1)·every`, VISITNUM `num + (n-1)·step`, VISIT the label filled); `dated` puts a
# participant's occurrences on local dates (the anchor's local date + day - anchor_day, across the window);
# `dated_place` says which occurrence a record belongs to; `first_dose` is the `first_dose` anchor. The ward's
# list (`dated_owed`, `workflow/engine_rules._calendar_lines`), SDTM (SV, VISITNUM in every domain) and ODM
# (StudyEventData) read them (`exports/sdtm/engine_visits.py`).


@dataclass(frozen=True)
class Calendar:
    """A declared visit counted from an anchor (`anchor`, `day`, `window`, `repeat = { every, count, step }`)."""

    code: str
    num: float
    label: str
    epoch: str
    anchor: str  # the anchor it is counted from (the first of `anchors`: TV's rule and study day)
    day: int
    before: timedelta  # the window, as offsets from the visit's date
    after: timedelta
    every: int  # days between occurrences
    count: int
    step: float  # VISITNUM between occurrences
    repeats: bool
    forms: tuple[Entry, ...]
    worklist: bool
    arms: tuple[str, ...]  # empty: every arm
    window: tuple[str, str] | None  # as written (None: no `window`), for TV's TVSTRL
    # `anchor = [A, B]`: counted from the first of these that has happened, in the order written (a
    # participant who never reaches A, a screen failure never enrolled, has the visit counted from B)
    anchors: tuple[str, ...] = ()

    def start(self, known: Mapping[str, date | datetime | None]) -> date | datetime | None:
        """The moment the visit is counted from for a participant whose anchors are `known` (None: none has
        happened)."""
        for name in self.anchors or (self.anchor,):
            found = known.get(name)
            if found is not None:
                return found
        return None


_CALENDARS: dict[int, tuple[Model, tuple[Calendar, ...]]] = {}


def calendar(model: Model) -> tuple[Calendar, ...]:
    """The protocol's scheduled visits counted from an anchor, in declared order: worked out once per
    model (it is immutable; held here, so its id names no other), not once per participant placed."""
    return memo.once_per(_CALENDARS, model, lambda: _calendar(model))


def _calendar(model: Model) -> tuple[Calendar, ...]:
    out: list[Calendar] = []
    for v in model.data.get("visits", ()):
        repeat = v.get("repeat") or {}
        if v.get("type") in ("unscheduled", "common") or "per" in repeat or "anchor" not in v:
            continue
        window = v.get("window")
        before, after = (duration(str(w)) for w in (window or ("0d", "0d")))
        named = v["anchor"]
        anchors = (str(named),) if isinstance(named, str) else tuple(str(a) for a in named)
        out.append(
            Calendar(
                code=str(v["code"]),
                num=float(v.get("num", 0)),
                label=str(v["label"]),
                epoch=str(v.get("epoch", "")),
                anchor=anchors[0],
                anchors=anchors,
                day=int(v["day"]),
                before=before,
                after=after,
                every=max(1, duration(str(repeat["every"])).days) if repeat else 1,
                count=int(repeat["count"]) if repeat else 1,
                step=float(repeat.get("step", 1)),
                repeats=bool(repeat),
                forms=tuple(
                    Entry(f)
                    if isinstance(f, str)
                    else Entry(str(f["form"]), f.get("when"), bool(f.get("required", True)))
                    for f in v.get("forms", ())
                ),
                worklist=bool(v.get("worklist", True)),
                arms=tuple(str(a) for a in v.get("arms", ()) or ()),
                window=(str(window[0]), str(window[1])) if window else None,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Planned:
    """One planned occurrence of a calendar visit, before any participant: a TV row of each arm that has it."""

    visit: Calendar
    n: int  # 1, 2, ... (1 for a visit that does not repeat)
    num: float | int  # VISITNUM: num + (n-1)·step (2, not 2.0)
    name: str  # VISIT: the label with {day} and {n} filled
    day: int  # the day counted from the visit's anchor, on [calendar] anchor_day's numbering


def planned(model: Model) -> tuple[Planned, ...]:
    """Every planned occurrence of the calendar visits, in declared then occurrence order (every arm's)."""
    out: list[Planned] = []
    for v in calendar(model):
        for i in range(v.count):
            day = v.day + i * v.every
            value = round(v.num + i * v.step, 4)
            out.append(
                Planned(
                    visit=v,
                    n=i + 1,
                    num=int(value) if value == int(value) else value,
                    name=v.label.replace("{day}", str(day)).replace("{n}", str(i + 1)),
                    day=day,
                )
            )
    return tuple(out)


@dataclass(frozen=True)
class Dated:
    """One occurrence of a calendar visit for a participant: local dates."""

    visit: Calendar
    n: int  # 1, 2, ... (1 for a visit that does not repeat)
    num: float | int  # VISITNUM: num + (n-1)·step, as TV numbers it
    name: str
    day: int  # protocol day
    target: date
    opens: date
    closes: date


def dated(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    zone: ZoneInfo,
    *,
    arm: str | None,
    worklist_only: bool = True,
) -> list[Dated]:
    """Every occurrence of the calendar visits whose anchor has happened, in declared then date order.

    A visit with `arms` is the arm's only (`arm` None: a participant not allocated has none of them);
    `worklist = false` visits are left out with `worklist_only` (the ward's list)."""
    out: list[Dated] = []
    for p in planned(model):
        v = p.visit
        if worklist_only and not v.worklist:
            continue
        if v.arms and (arm is None or arm not in v.arms):
            continue
        start = v.start(anchors)
        if start is None:
            continue
        first = start.astimezone(zone).date() if isinstance(start, datetime) else start
        target = first + timedelta(days=p.day - model.calendar.anchor_day)
        out.append(
            Dated(
                visit=v,
                n=p.n,
                num=p.num,
                name=p.name,
                day=p.day,
                target=target,
                opens=target + timedelta(days=v.before.days),
                closes=target + timedelta(days=v.after.days),
            )
        )
    return out


def first_dose(model: Model, records: Mapping[str, Sequence[Rec]]) -> datetime | None:
    """The `first_dose` anchor: the earliest start of an administration given (a record of a regimen's
    recording form with a start, not marked not given), or None before any (`timeline` counts the same)."""
    starts = administration_starts(model, records)
    return min(starts) if starts else None


def _administered_from(model: Model, form: str) -> set[str] | None:
    """The anchors the administrations recorded on `form` are scheduled from (None: not a recording form)."""
    found = [
        a.schedule.anchor
        for r in model.regimens.values()
        for a in r.administrations
        if a.record.get("form") == form
    ]
    return set(found) if found else None


def dated_place(
    found: Sequence[Dated],
    rec: Rec,
    local: date,
    snap: Snapshot,
    *,
    administrations: Model | None = None,
) -> int | None:
    """The index in `found` of the calendar occurrence record `rec`, taken on local date `local`, belongs to:
    the first (declared order) whose window holds `local`, whose visit lists the record's form and whose
    `when` for it holds; None: no planned occurrence (unscheduled).

    `administrations` (the model; SDTM, so that EX has a VISITNUM): a record of an administration belongs
    instead to the first occurrence whose window holds it among the visits counted from the anchor its
    schedule counts from, whichever forms they list. A record outside every window is in none: it is
    unscheduled, and the occurrence it missed stays owed (docs/protocol.md)."""
    anchors = _administered_from(administrations, rec.form) if administrations is not None else None
    true = _Truths(snap, rec)
    for i, occ in enumerate(found):
        if not occ.opens <= local <= occ.closes:
            continue
        if anchors is not None:
            if occ.visit.anchor in anchors:
                return i
            continue
        entry = next((e for e in occ.visit.forms if e.form == rec.form), None)
        if entry is None or (entry.when is not None and not true(entry.when)):
            continue
        return i
    return None


@dataclass(frozen=True)
class DatedOwed:
    """A calendar occurrence on the ward's list: the required forms it lists that no record fills."""

    occurrence: Dated
    owed: tuple[str, ...]
    filled: tuple[str, ...]  # the forms recorded in it (required or not)
    state: str  # upcoming, due now, window closing, overdue; done when nothing is owed


def dated_owed(
    found: Sequence[Dated],
    records: Mapping[str, Sequence[Rec]],
    snap: Snapshot,
    at: datetime,
    zone: ZoneInfo,
    *,
    taken: frozenset[str] = frozenset(),
) -> list[DatedOwed]:
    """Each occurrence with what it owes at `at`. A record fills the first occurrence (declared order) whose
    window holds its local date, whose visit lists its form and whose `when` holds; `taken` (event ids) are
    records another visit took (a visit per administration)."""
    filled: dict[int, set[str]] = {}
    for form, recs in records.items():
        for rec in recs:
            if rec.event_id in taken:
                continue
            when = rec.when()
            if when is None:
                continue
            local = when.astimezone(zone).date() if isinstance(when, datetime) else when
            i = dated_place(found, rec, local, snap)
            if i is not None:
                filled.setdefault(i, set()).add(form)
    today = at.astimezone(zone).date()
    out: list[DatedOwed] = []
    for i, occ in enumerate(found):
        got = filled.get(i, set())
        owed = tuple(e.form for e in occ.visit.forms if e.required and e.form not in got)
        if today < occ.opens:
            state = schedule.UPCOMING
        elif not owed:
            state = "done"
        elif today > occ.closes:
            state = schedule.OVERDUE
        elif today == occ.closes:
            state = schedule.WINDOW_CLOSING
        else:
            state = schedule.DUE_NOW
        out.append(DatedOwed(occ, owed, tuple(sorted(got)), state))
    return out


# -- the participant's timeline: what a calendar visit counts from ------------------------------------------
# docs/protocol.md, "Anchors": the ward knows consent, enrollment and randomization from its projections; the
# rest come from the participant's records here. A visit whose anchor has not happened is not yet placed
# (`waiting`): the ward says so, with the day it will be counted from, never leaves it out silently.

ANCHOR_WORDS = {
    "consent": "consent",
    "screening": "screening",
    "enrollment": "enrollment",
    "randomization": "randomization",
    "first_dose": "first dose",
    "last_dose": "last dose",
    "treatment_end": "end of treatment",
    "end_of_study": "end of study",
    "death": "death",
}


def anchor_words(name: str) -> str:
    """An anchor as the ward says it: a built-in's words, a declared anchor's name with spaces."""
    return ANCHOR_WORDS.get(name, name.replace("_", " "))


def administration_starts(model: Model, records: Mapping[str, Sequence[Rec]]) -> list[datetime]:
    """The start of every administration recorded as given (not `not_given`), of any regimen."""
    roles = {str(a.record.get("form")): a.record for r in model.regimens.values() for a in r.administrations}
    starts: list[datetime] = []
    for form, role in roles.items():
        for rec in records.get(form, ()):
            if rec.values.get(str(role.get("not_given", ""))) is True:
                continue
            began = rec.values.get(str(role.get("start", "")))
            if isinstance(began, datetime):
                starts.append(began)
    return starts


def treatment_ended(model: Model, records: Mapping[str, Sequence[Rec]], zone: ZoneInfo) -> date | None:
    """The local date `[disposition]` records end treatment: the earliest dated record of the end of
    treatment or of the study, or of any stage from a death record on (the ward reads it so: nothing is due
    after it). None without one, or when the protocol declares no `[disposition]`."""
    disp = model.data.get("disposition", {})
    if not disp:
        return None
    stage, status, day_field = (str(disp.get(k, "")) for k in ("stage", "status", "date"))
    ends = (disp.get("end_of_treatment"), disp.get("end_of_study"))
    end: date | None = None
    died = False
    for rec in records.get(str(disp.get("form", "")), ()):
        when = rec.values.get(day_field)
        day = when.astimezone(zone).date() if isinstance(when, datetime) else when
        died = died or rec.values.get(status) == disp.get("death")
        if (rec.values.get(stage) in ends or died) and isinstance(day, date):
            end = day if end is None or day < end else end
    return end


def course_end(
    placed: Sequence[tuple[str, Administration, Sequence[schedule.SlotState]]],
    ended: date | None,
    zone: ZoneInfo,
) -> date | None:
    """The local date the course of treatment ended, once it has (`treatment_end`): `ended` (the
    disposition's, `treatment_ended`), else the day after the last administration once every one `placed`
    (`placed_of`'s states) is recorded (given or not given) or missed. None while one remains to give, or
    none is placed."""
    if ended is not None:
        return ended
    states = [st for _r, _a, rows in placed for st in rows]
    settled = (schedule.GIVEN, schedule.NOT_GIVEN, schedule.MISSED)
    if not states or any(st.filled_by is None and st.state not in settled for st in states):
        return None
    days = [
        st.filled_by.start.astimezone(zone).date() if st.filled_by is not None else st.slot.date
        for st in states
    ]
    return max(days) + timedelta(days=1)


def course_anchors(
    model: Model,
    snap: Snapshot,
    placed: Sequence[tuple[str, Administration, Sequence[schedule.SlotState]]],
    zone: ZoneInfo,
) -> dict[str, date | datetime | None]:
    """`timeline` with the course's end: `last_dose` (the latest start given) and `treatment_end`
    (`course_end`) once the course is over, blank before. What SV and ODM date the visits counted from them
    by; the ward's list reads the same course end (docs/protocol.md, "Anchors")."""
    ended = course_end(placed, treatment_ended(model, snap.records, zone), zone)
    return timeline(model, snap, course_end=ended)


def _dated_value(value: Any) -> date | datetime | None:
    return value if isinstance(value, date) else None  # a datetime is a date too


def timeline(
    model: Model,
    snap: Snapshot,
    *,
    course_end: date | None = None,
    starts: Sequence[datetime] | None = None,
) -> dict[str, date | datetime | None]:
    """The participant's anchors: `snap.anchors` (what the ward knows: consent, enrollment, randomization)
    with those the records in `snap` give.

    * `screening`: the eligibility form's date;
    * `first_dose`: the start of the first administration given (of any regimen; `not_given` ones are not);
    * `last_dose` and `treatment_end` only once the course is over (`course_end`: the caller's end of
      treatment, a local date): the latest start, and `course_end`;
    * each `[[anchors]]`: `field` of the first record (`pick = "last"`: the last, by record date) of `form`
      whose `where` holds and whose field holds a date or datetime; blank until one does.

    `starts`: `administration_starts(model, snap.records)`, when the caller has them (the ward queue asks
    the timeline twice of the same records: before and after the course's end is known).
    """
    out: dict[str, date | datetime | None] = dict(snap.anchors)
    el = model.data.get("eligibility", {})
    held = snap.records.get(str(el.get("form", "")), ())
    if "screening" not in out and held:
        out["screening"] = _dated_value(held[-1].values.get(str(el.get("date", ""))))
    if starts is None:
        starts = administration_starts(model, snap.records)
    out["first_dose"] = min(starts) if starts else None  # `first_dose`, from the starts in hand
    if course_end is not None:
        out["last_dose"] = max(starts) if starts else None
        out.setdefault("treatment_end", course_end)
    for a in model.data.get("anchors", ()):
        name, form, field_ = str(a["name"]), str(a["form"]), str(a["field"])
        found: list[tuple[Rec, date | datetime]] = []
        for rec in interpreter.in_record_order(snap.records.get(form, ())):
            value = _dated_value(rec.values.get(field_))
            if value is None:
                continue
            if a.get("where") and not _true(str(a["where"]), snap, rec):
                continue
            found.append((rec, value))
        if found:
            out[name] = found[-1][1] if a.get("pick") == "last" else found[0][1]
        else:
            out[name] = None
    return out


@dataclass(frozen=True)
class Waiting:
    """A calendar visit whose anchor has not happened: not yet placed, and what it will be counted from."""

    visit: Calendar
    name: str  # its first occurrence's VISIT
    num: float | int
    words: str  # "day 8 after first dose" (a repeat: "days 1 to 14 after ...")


def waiting(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    *,
    arm: str | None,
    worklist_only: bool = True,
) -> list[Waiting]:
    """The calendar visits `dated` leaves out because their anchor is blank, in declared order (the same
    `arms` and `worklist` rules)."""
    out: list[Waiting] = []
    for v in calendar(model):
        if worklist_only and not v.worklist:
            continue
        if v.arms and (arm is None or arm not in v.arms):
            continue
        if v.start(anchors) is not None:
            continue
        last = v.day + (v.count - 1) * v.every
        days = f"days {v.day} to {last}" if v.repeats and v.count > 1 else f"day {v.day}"
        num = round(v.num, 4)
        out.append(
            Waiting(
                visit=v,
                name=v.label.replace("{day}", str(v.day)).replace("{n}", "1"),
                num=int(num) if num == int(num) else num,
                words=f"{days} after {anchor_words(v.anchor)}",
            )
        )
    return out
