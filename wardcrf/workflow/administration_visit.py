"""A format-2 administration at the bedside, driven by the participant's regimen (issue 17).

The format-1 dose wizard records format 1's four forms (`dose_visit`). A
format-2 version of its own declares its administrations instead: the
product, the route, the dose (fixed, per kg or by weight band, from a
recorded weight, rounded and capped), the form that records it and the
roles of its fields (`record`), and the dose assessments owed before and
after each one (`[[dose_assessments]]`). This module turns the participant's
next administration, as the engine places it, into what a guided flow asks:

* `plan` — the next administration (number, what the worklist calls it,
  due time and window, the prescribed dose and how it was computed), its
  *kind* (an infusion: start, stop, rate, volume, interruptions; tablets or
  capsules: a count of units of the product's strength; an inhalation or any
  other route: start and end), the fields of each step taken from the
  recording form by role, the dose assessments to record before and after it
  with the values the protocol fixes for them (their `match` and `link`), and
  the refusal of the engine's gates *now* (DSMG hold, eligibility, a
  `require` gate such as a pre-dose check, the assessments owed by an earlier
  administration) in the protocol's words, before anything is typed;
* `check_kit` — a scanned kit, checked as the engine will check it: the
  kit id rule, a kit's use as its product says (`kit.use`), then the gates
  that need the kit (allocation: a blinded kit must be the participant's;
  custody: the cold chain's chain for the product);
* `record` — the assessments before, the administration, the assessments
  after, submitted through `service.submit` (every permission, field, rule
  and gate runs as for a single form) inside ONE transaction: all or none.
  `dry_run=True` runs the same and rolls back (the review step). A refusal
  names the part (`PartRefused.part`) and its field problems.

Format 1 (and a format-2 re-encoding of a format-1 version) keeps `dose_visit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

from .. import amounts, ids, kits
from .. import protocol as protocols
from ..clock import zone
from ..engine import eligibility, gates, interpreter, visits
from ..engine.interpreter import Snapshot
from ..engine.model import Administration, Model, Quantity
from ..errors import Refused, ValidationFailed, WardError
from ..kits import KitCheck as KitCheck  # the scan step's verdict, shared with the other wizard
from . import amendments, engine_rules, service, status
from .base import get_participant, now, require_participant
from .gatefacts import site_facts

if TYPE_CHECKING:
    from ..engine.schedule import Deviation
    from ..site import Session

INFUSION, TABLETS, INHALATION, OTHER = "infusion", "tablets", "inhalation", "other"
INFUSION_ROUTES = {"INTRAVENOUS", "INTRAVENOUS DRIP", "INTRAVENOUS BOLUS", "SUBCUTANEOUS", "INTRAMUSCULAR"}
UNIT_FORMS = ("TABLET", "CAPSULE")  # a CDISC dosage form counted in units of the product's strength
INHALATION_ROUTES = {"RESPIRATORY (INHALATION)", "INHALATION", "NASAL"}

PRODUCT_ROLES = ("lot", "dose", "volume")
"""Roles asked with the kit (what is in hand); the rest of the form's own fields follow them."""
TIME_ROLES = ("start", "end", "rate", "interruptions", "interruption_note", "given_by")
"""Roles asked for the administration itself, in this order (an infusion's stop, rate and interruptions)."""
COMPUTED_ROLES = ("number", "day", "due", "window", "prescribed")
NOT_GIVEN_ROLES = ("not_given", "not_given_reason")  # the not-given path is the form itself (`n`)

_EQUALS = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*'([^']*)'\s*$")


class PartRefused(Refused):
    """One record of the administration visit was refused; nothing of the visit was saved.

    `part` is `before:CODE`, `administration` or `after:CODE`; `problems` the field problems of that
    record (empty for a refusal by rule or gate), so a screen can mark the fields to correct.
    """

    def __init__(self, part: str, words: str, cause: WardError) -> None:
        self.part = part
        self.cause = cause
        self.problems: dict[str, str] = dict(getattr(cause, "problems", {}) or {})
        super().__init__(f"{words}: {cause.message}; nothing of this administration was saved")
        self.exit_code = cause.exit_code


@dataclass(frozen=True)
class Assessment:
    """A dose assessment recorded with the administration: its form and the values the protocol fixes."""

    code: str
    form: str
    label: str
    fixed: Mapping[str, Any]
    fields: tuple[str, ...]  # the form's fields still to type, in the form's order

    @property
    def part(self) -> str:
        return f"{self.code}"


@dataclass(frozen=True)
class SafetyCheck:
    """`[safety] check` asked after this administration: the `after` assessment that is the check (its step
    `after:CODE`), the field naming the events seen, the code meaning none, and whether each event named
    expects an AE form (`expect_ae`) carrying the administration's number in `ae_link`."""

    code: str
    form: str
    field: str
    none: str
    expect_ae: bool
    ae_link: str | None


@dataclass(frozen=True)
class VisitItem:
    """A form a visit owes the participant now, listed beside the administration (`status.VisitLine`)."""

    form: str
    visit: str  # VISIT: the occurrence's name ("DAY 28")
    state: str  # due now, window closing, overdue (or the administration's own word for its visit)
    due: str  # local date or time
    with_this: bool  # a form this administration records (an assessment before or after it) fills it today

    @property
    def what(self) -> str:
        """As `wardcrf today` says it: "FORM (VISIT)"."""
        return f"{self.form} ({self.visit})"


@dataclass(frozen=True)
class AdministrationPlan:
    """What the wizard asks for the participant's next administration (see the module doc)."""

    participant: str
    protocol: str
    regimen: str  # "blinded" on a blinded allocation
    administration: str
    product: str  # "blinded" on a blinded allocation
    route: str
    kind: str
    form: str
    roles: Mapping[str, str]
    number: int
    what: str
    due: str
    window: tuple[str, str]
    state: str
    prescribed: Quantity | None
    prescribed_how: str
    strength: Quantity | None  # per unit (tablets, capsules)
    units: int | None  # the prescribed dose in units of `strength`, when whole
    duration: str | None  # an infusion's declared duration ("60min", "2h")
    product_fields: tuple[str, ...]
    time_fields: tuple[str, ...]
    required: tuple[
        str, ...
    ]  # fields required of an administration given (`required`, or `required_when` true)
    before: tuple[Assessment, ...]
    after: tuple[Assessment, ...]
    refusal: str | None  # the first gate refusing now, in the protocol's words (None: may go on)
    check: SafetyCheck | None = None  # the post-administration check the protocol declares, if any
    visits: tuple[
        VisitItem, ...
    ] = ()  # the visit forms owed now (and with this administration), most urgent first
    dosage_form: str = ""  # the product's CDISC dosage form (blinded: only one every product shares)
    now: engine_rules.StartCheck | None = None
    """What the administration rule says of this administration started now (the wizard's first step): its
    refusal, or its timing (early, late: deviations it will carry). Not `refusal`: `record` checks the start
    as typed (a dose given earlier, recorded now), the wizard refuses going on with it (`refusal_now`)."""

    @property
    def refusal_now(self) -> str | None:
        """Why nothing can be given now: the gates' refusal, else the administration rule's of a start now."""
        return self.refusal or (self.now.refusal if self.now is not None else None)

    volume: Quantity | None = None
    """The volume the administration declares (`volume = { value, unit }`: e.g. 6 mL after
    dilution of an inhaled dose), filled in as the prescribed dose is; None when the protocol leaves it to the ward (PALM)."""

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(part, form) of the visit's records, in the order they are saved."""
        return (
            [(f"before:{a.code}", a.form) for a in self.before]
            + [("administration", self.form)]
            + [(f"after:{a.code}", a.form) for a in self.after]
        )


@dataclass
class AdministrationVisit:
    """What an administration visit records (or, for a dry run, would record)."""

    participant: str
    number: int
    what: str
    due: str
    timing: str | None
    start: str
    end: str | None
    dose: Quantity | None
    prescribed: Quantity | None
    deviations: list[Deviation]
    events: dict[str, str] = field(default_factory=dict)  # part -> event id; empty for a dry run
    saved: bool = False
    ae_expected: list[str] = field(default_factory=list)
    """The events the check named that expect an AE form each (`[safety] check` with `expect_ae`)."""


class _DryRun(Exception):
    def __init__(self, visit: AdministrationVisit) -> None:
        super().__init__("dry run")
        self.visit = visit


# -- the plan ------------------------------------------------------------------------------------


def uses_engine(session: Session, participant: str | None = None) -> bool:
    """Whether the engine runs the version governing `participant` (theirs once enrolled, else the active
    one): its administrations drive the wizard; a version it cannot run has none (`plan` says why)."""
    session.require("record.read", what="read the protocol")
    p = get_participant(session.store, participant) if participant else None
    return amendments.protocol_of(session.store, p).engine is not None


def _model(session: Session, participant: str) -> tuple[protocols.Protocol, Model]:
    """The version governing the participant (theirs once enrolled, until an amendment moves them) and its model.

    An unknown participant gets the active version's answer here, so a site on a version the engine cannot
    run is told before the participant is looked up.
    """
    proto = amendments.protocol_of(session.store, get_participant(session.store, participant))
    if proto.engine is None:  # a format-1 version stored before the engine ran format 1 (`service._runs`)
        raise Refused(
            f"{proto.id} {proto.version} is a format-1 protocol the engine cannot run: no administration is "
            "recorded under it; write the version in format 2, `wardcrf protocol load` it and "
            "`wardcrf protocol apply PARTICIPANT VERSION --reason ...`"
        )
    return proto, proto.engine


def kind_of(m: Model, adm: Administration) -> str:
    """An infusion, tablets (units of a strength), an inhalation, or another route, from the declaration."""
    route = adm.route.upper()
    if route in INFUSION_ROUTES or "rate" in adm.record:
        return INFUSION
    product = _product(m, adm.product)
    form = str(product.get("dosage_form", "")).upper()
    if route == "ORAL" and any(u in form for u in UNIT_FORMS) and product.get("strength"):
        return TABLETS
    if route in INHALATION_ROUTES:
        return INHALATION
    return OTHER


def _product(m: Model, code: str) -> Mapping[str, Any]:
    return next((x for x in m.data.get("products", ()) if str(x.get("code")) == code), {})


def _fixed_by(match: str) -> dict[str, str] | None:
    """The values a `match` of `field == 'code'` terms (joined by `and`) fixes; None for another shape."""
    out: dict[str, str] = {}
    for term in re.split(r"\band\b", match):
        got = _EQUALS.match(term)
        if got is None:
            return None
        out[got.group(1)] = got.group(2)
    return out


def _assessments(m: Model, regimen: str, number: int, when: str) -> tuple[Assessment, ...]:
    out = []
    for a in m.data.get("dose_assessments", ()):
        if a.get("when") != when or (a.get("regimens") and regimen not in a["regimens"]):
            continue
        form = str(a["form"])
        fixed: dict[str, Any] = dict(_fixed_by(str(a.get("match", ""))) or {})
        if a.get("link"):
            fixed[str(a["link"])] = number
        fields_ = m.data.get("forms", {}).get(form, {}).get("fields", {})
        typed = tuple(n for n, f in fields_.items() if n not in fixed and not f.get("computed"))
        out.append(Assessment(str(a["code"]), form, _words(a.get("label", a["code"])), fixed, typed))
    return tuple(out)


def _words(text: Any) -> str:
    if isinstance(text, Mapping):
        return str(text.get("en") or next(iter(text.values()), ""))
    return str(text)


def _snapshot(session: Session, m: Model, pid: str, at: datetime) -> tuple[Snapshot, str | None]:
    p = require_participant(session.store, pid)
    anchors, arm = engine_rules.plan_inputs(session.store, m, p, session.ctx.zone)
    snap = Snapshot(
        records=eligibility.participant_records(session.store, m, p.id),
        now=at,
        zone=zone(session.ctx.zone),
        anchors=anchors,
        participant={"id": p.id, "arm": arm},
        anchor_day=m.calendar.anchor_day,
    )
    return snap, arm


_URGENT = ("overdue", "window closing", "due now")


def _visit_items(
    lines: Any, number: int, regimen: str, m: Model, forms_here: set[str]
) -> tuple[VisitItem, ...]:
    """The forms the participant's visits owe now (a calendar visit due now, closing or overdue; a visit per
    administration owing a form, or the one going with administration `number` of `regimen`), overdue first;
    `forms_here`: the forms this administration records (a visit open now is filled with them)."""
    per = {v.code: v.twins for v in visits.declared(m)}
    out: list[VisitItem] = []
    for v in lines:
        mine = v["number"] == number and regimen in per.get(v["visit"], frozenset())
        if not v["owed"] or not (v["state"] in _URGENT or mine):
            continue
        if v["state"] == "missed":
            continue
        for form in v["owed"]:
            # the administration's assessments, taken now, fill a visit open now (not one whose window closed)
            here = form in forms_here and v["state"] != "overdue"
            out.append(VisitItem(form, v["name"], v["state"], v["due"], here))
    rank = {s: i for i, s in enumerate(_URGENT)}
    return tuple(sorted(out, key=lambda i: (rank.get(i.state, len(rank)), i.due)))


def _next(
    session: Session, m: Model, pid: str, at: datetime
) -> tuple[str, Administration, int, dict[str, Any], Snapshot]:
    """The regimen, administration, number and summary item of the participant's next administration."""
    summary = status.summary(session.store, pid, at)
    nd = summary.get("next_dose")
    if nd is None:
        if summary["status"] in ("enrolled, not randomized",):
            raise Refused(f"{pid} has no allocated arm: randomize first; the schedule depends on the arm")
        planned, given = summary["doses_planned"], summary["doses_given"]
        raise Refused(
            f"{pid} has no administration due ({summary['status']}; {given} of {planned} given): "
            "nothing to record now"
        )
    snap, arm = _snapshot(session, m, summary["id"], at)
    number = int(nd["dose"])
    for regimen in m.regimens_of(arm):
        for adm in regimen.administrations:
            for item in summary.get("administrations", ()):
                if (
                    item["number"] == number
                    and item["administration"] == adm.code
                    and (item["regimen"] in (regimen.code, "blinded"))
                ):
                    return regimen.code, adm, number, {**nd, "_visits": summary.get("visits", [])}, snap
    raise Refused(f"{pid}: administration {number} is in none of the arm's regimens")  # pragma: no cover


def plan(session: Session, participant: str, when: datetime | None = None) -> AdministrationPlan:
    """The participant's next administration as the wizard asks it, with the gates' refusal now (or None)."""
    session.require("dose.record", what="record doses")
    proto, m = _model(session, participant)
    p = require_participant(session.store, participant)
    at = (when or now()).astimezone(zone(session.ctx.zone))
    regimen, adm, number, nd, snap = _next(session, m, p.id, at)
    roles_ = dict(adm.record)
    kind = kind_of(m, adm)
    fields_ = m.data.get("forms", {}).get(roles_["form"], {}).get("fields", {})
    role_of = {v: k for k, v in roles_.items() if k != "form"}
    skip = {roles_[r] for r in (*COMPUTED_ROLES, *NOT_GIVEN_ROLES, "kit") if r in roles_}
    if kind == TABLETS and "dose" in roles_:
        skip.add(roles_["dose"])  # counted in units of the strength, the dose computed from the count
    product_fields = [roles_[r] for r in PRODUCT_ROLES if r in roles_ and roles_[r] not in skip]
    time_fields = [roles_[r] for r in TIME_ROLES if r in roles_]
    for name, f in fields_.items():  # the form's own fields (how given, with food...) go with the product
        if name not in skip and name not in role_of and not f.get("computed"):
            product_fields.append(name)
    prescribed = engine_rules._prescribed(m, adm, replace(snap, participant={"id": p.id}))
    product = _product(m, adm.product)
    # the protocol file is schema-checked on load: a strength is `{ value, unit }`
    strength = (
        cast(Quantity, dict(product["strength"])) if kind == TABLETS and product.get("strength") else None
    )
    units = None
    if strength and prescribed and Decimal(str(strength["value"])) > 0:
        q = Decimal(str(prescribed["value"])) / Decimal(str(strength["value"]))
        units = int(q) if q == q.to_integral() else None
    blinded = nd.get("regimen") == "blinded"
    started = engine_rules.start_check(session, proto, p, str(roles_["form"]), at)
    return AdministrationPlan(
        participant=p.id,
        protocol=f"{m.id} {m.version}",
        regimen="blinded" if blinded else regimen,
        administration=adm.code,
        product="blinded" if blinded else adm.product,
        route=adm.route,
        kind=kind,
        form=roles_["form"],
        roles=roles_,
        number=number,
        what=str(nd.get("what") or f"administration {number}"),
        due=str(nd["due"]),
        window=(str(nd["window"][0]), str(nd["window"][1])),
        state=str(nd["state"]),
        prescribed=prescribed,
        prescribed_how=_how(m, adm, snap),
        strength=strength,
        units=units,
        duration=str(_administration_data(m, regimen, adm.code).get("duration") or "") or None,
        volume=_declared_volume(_administration_data(m, regimen, adm.code)),
        product_fields=tuple(product_fields),
        time_fields=tuple(time_fields),
        required=_required_when_given(fields_, roles_, snap),
        before=_assessments(m, regimen, number, "before"),
        after=(after := _assessments(m, regimen, number, "after")),
        refusal=_refusal(session, proto, m, p.id, regimen, number, snap),
        now=started,
        check=_safety_check(m, after),
        visits=_visit_items(
            nd.get("_visits", []),
            number,
            regimen,
            m,
            {a.form for a in (*_assessments(m, regimen, number, "before"), *after)},
        ),
        dosage_form=shown_dosage_form(m, product, blinded),
    )


def shown_dosage_form(m: Model, product: Mapping[str, Any], blinded: bool) -> str:
    """The product's CDISC dosage form as the wizard names it ("CAPSULE"); on a blinded allocation only a form
    every product of the protocol shares (a form that tells the products apart would unblind), else ""."""
    form = str(product.get("dosage_form", "")).upper()
    if blinded and len({str(x.get("dosage_form", "")).upper() for x in m.data.get("products", ())}) > 1:
        return ""
    return form


def _safety_check(m: Model, after: tuple[Assessment, ...]) -> SafetyCheck | None:
    """The `after` assessment that is `[safety] check` (its form, linked by the check's `link`), if any."""
    declared = m.data.get("safety", {})
    c = declared.get("check")
    if not c:
        return None
    for a in after:
        if a.form == c["form"] and str(c["link"]) in a.fixed:
            link = declared.get("ae_link")
            return SafetyCheck(
                a.code,
                a.form,
                str(c["field"]),
                str(c["none"]),
                bool(c.get("expect_ae")),
                None if link is None else str(link),
            )
    return None


def _required_when_given(
    fields_: Mapping[str, Any], roles_: Mapping[str, str], snap: Snapshot
) -> tuple[str, ...]:
    """The form's fields an administration given must have: `required`, or a `required_when` true of a record
    that says only that it was given (e.g. `not_given == false`); one that depends on other values
    (`interruptions > 0`) is left to the rules when the record is checked."""
    given: dict[str, Any] = {roles_["not_given"]: False} if "not_given" in roles_ else {}
    rec = interpreter.Rec(str(roles_["form"]), interpreter.typed_values(fields_, given), "", 1 << 60)
    out = []
    for name, f in fields_.items():
        if f.get("computed"):
            continue
        if f.get("required"):
            out.append(name)
        elif f.get("required_when"):
            when = f["required_when"]  # an expression, or `{ when, message }` (docs/protocol.md)
            text = when.get("when") if isinstance(when, Mapping) else when
            try:
                if interpreter.truth(str(text), replace(snap, record=rec)) is True:
                    out.append(name)
            except interpreter.EvalError:
                continue
    return tuple(out)


def _declared_volume(data: Mapping[str, Any]) -> Quantity | None:
    v = data.get("volume")
    if (
        not isinstance(v, Mapping)
        or not isinstance(v.get("value"), int | float)
        or isinstance(v.get("value"), bool)
    ):
        return None
    return cast(Quantity, {"value": v["value"], "unit": str(v.get("unit") or "")})


def _administration_data(m: Model, regimen: str, code: str) -> Mapping[str, Any]:
    for r in m.data.get("regimens", ()):
        if str(r.get("code")) == regimen:
            for a in r.get("administrations", ()):
                if str(a.get("code")) == code:
                    return dict(a)
    return {}


def _how(m: Model, adm: Administration, snap: Snapshot) -> str:
    """How the prescribed dose follows from the protocol and the recorded weight, in words."""
    d = adm.dose
    if d.fixed is not None:
        return f"{_num(d.fixed)} {d.unit}, fixed by the protocol"
    weight = None
    if d.weight:
        found = interpreter.value_of(d.weight, replace(snap, record=None))
        weight = found if isinstance(found, Decimal) else None
    if weight is None:
        return f"by weight ({d.weight}): no weight recorded"
    try:
        value = d.prescribe(weight)
    except Refused as exc:
        return exc.message
    if d.per_kg is not None:
        how = f"{_num(d.per_kg)} {d.unit}/kg x {_num(weight)} kg"
    else:
        band = next(b for b in d.bands if b.low <= weight < b.high)
        per = f"{_num(band.dose)} {d.unit}" if band.dose is not None else f"{_num(band.per_kg)} {d.unit}/kg"
        how = f"{_num(weight)} kg in the band {_num(band.low)}-{_num(band.high)} kg: {per}"
    extra = []
    if d.round_to is not None:
        extra.append(f"rounded to {_num(d.round_to)} {d.unit}")
    if d.max is not None:
        extra.append(f"at most {_num(d.max)} {d.unit}")
    return f"{how} = {_num(value)} {d.unit}" + (f" ({', '.join(extra)})" if extra else "")


def _num(v: Any) -> str:
    """A number of the dose's words, every digit kept, as the wizard fills it in (`amounts.exact`: 2.0e8)."""
    return amounts.exact(v)


def _refusal(
    session: Session, proto: protocols.Protocol, m: Model, pid: str, regimen: str, number: int, snap: Snapshot
) -> str | None:
    """The first refusal of the gates before this administration that needs no kit, then owed assessments."""
    p = get_participant(session.store, pid)
    assert p is not None
    refused = gates.check(m, snap, f"dose:{regimen}", site_facts(session.store, proto, p), participant=pid)
    if refused:
        return refused[0].message
    given = sorted(
        int(a["number"])
        for a in status.summary(session.store, pid, snap.now).get("administrations", ())
        if a["state"] == "given"
    )
    blocking = {
        str(a["code"]): a
        for a in m.data.get("dose_assessments", ())
        if a.get("when") == "after" and a.get("blocks")
    }
    for code, n in gates.owed_after(m, snap, given):
        if code in blocking and n < number:
            return (
                f"{_words(blocking[code].get('label', code))} of administration {n} are not recorded: "
                f"record them before administration {number}"
            )
    return None


# -- given earlier, recorded now ----------------------------------------------------------------

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}$")


def started_at(session: Session, text: str) -> datetime:
    """When an administration given earlier started, as typed on the ward: `HH:MM` (the latest such
    moment not after now: at 00:10, 23:50 is yesterday's) or `YYYY-MM-DD HH:MM`, the ward's local time.

    Refused, one line naming what is allowed: anything else, and a moment after now (a start not yet
    reached is not "given earlier")."""
    typed = text.strip()
    tz = zone(session.ctx.zone)
    at_now = now().astimezone(tz)
    clock = _CLOCK.match(typed)
    try:
        if clock:
            at = at_now.replace(hour=int(clock[1]), minute=int(clock[2]), second=0, microsecond=0)
            if at > at_now:
                at -= timedelta(days=1)  # the same wall time yesterday (aware arithmetic is wall time)
        elif _LOCAL.match(typed):
            at = datetime.strptime(typed, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
        else:
            raise ValueError
    except ValueError:
        raise Refused(
            f"{typed[:40]!r} is not a start: type it as HH:MM or YYYY-MM-DD HH:MM (the ward's time)"
        ) from None
    if at > at_now:
        raise Refused(
            f"{at.strftime('%Y-%m-%d %H:%M')} is after now ({at_now.strftime('%Y-%m-%d %H:%M')}): "
            "an administration given earlier started before now"
        )
    return at


def plan_given_at(session: Session, participant: str, text: str) -> AdministrationPlan:
    """The wizard's plan judged at the start typed (`started_at`), not at now: a dose given before its
    window closed (or before midnight) and recorded after is told what its record will be told. The role
    first, before anything typed is read (as `plan`)."""
    session.require("dose.record", what="record doses")
    return plan(session, participant, when=started_at(session, text))


# -- the kit -------------------------------------------------------------------------------------


def check_kit(session: Session, participant: str, raw: str, when: datetime | None = None) -> KitCheck:
    """Whether the scanned kit can be used for the participant's next administration at `when` (default now).

    The engine's own rules, as saving will run them: the kit id rule, the product's `kit.use` (once per
    administration, or one participant's course), then the gates needing the kit (allocation, custody).
    """
    session.require("dose.record", what="record doses")
    proto, m = _model(session, participant)
    p = require_participant(session.store, participant)
    got = protocols.id_rule(session.store, "kit").check(raw)
    if not got.ok:
        return KitCheck(got.id, False, got.error)
    kit = got.id
    at = (when or now()).astimezone(zone(session.ctx.zone))
    regimen, adm, number, _nd, snap = _next(session, m, p.id, at)
    key = ids.key(kit)
    uses = {
        str(x["code"]): str((x.get("kit") or {}).get("use", "administration")) for x in m.data["products"]
    }
    first = True
    for use in kits.administration_uses(session.store, key):
        who, event_id = use.participant, use.event_id
        if who != p.id:
            return KitCheck(
                kit,
                False,
                f"kit {key} belongs to {who} ({event_id}): a kit is never given to two participants",
            )
        if uses.get(adm.product) != "course":
            return KitCheck(
                kit, False, f"kit {key} was already used ({event_id}): one kit, one administration"
            )
        first = False
    administration = {
        "number": Decimal(number),
        "regimen": regimen,
        "product": adm.product,
        "kit": kit,
        "start": at,
        "kit_first_use": first,
    }
    refused = gates.check(
        m,
        snap,
        f"dose:{regimen}",
        site_facts(session.store, proto, require_participant(session.store, p.id)),
        participant=p.id,
        administration=administration,
    )
    lot = _lot_of(session, kit)
    if refused:
        return KitCheck(kit, False, refused[0].message, lot)
    return KitCheck(kit, True, None, lot)


def _lot_of(session: Session, kit: str) -> str | None:
    try:
        from ..coldchain import custody
    except ImportError:
        return None
    return custody.lot_of(session.store, kit)


# -- recording -----------------------------------------------------------------------------------


def dose_from_units(p: AdministrationPlan, units: Any) -> dict[str, str]:
    """The dose field's value for `units` tablets or capsules of the product's strength (a ValidationFailed
    naming the count otherwise)."""
    dose_field = p.roles.get("dose", "units")
    if p.strength is None:
        raise ValidationFailed({dose_field: f"{p.product} is not counted in units"})
    try:
        n = Decimal(str(units).strip())
    except InvalidOperation:
        n = Decimal(-1)
    if not n.is_finite() or n != n.to_integral() or n < 1 or n > 100:
        raise ValidationFailed({"units": f"{units!r}: a whole number of units from 1 to 100"})
    value = n * Decimal(str(p.strength["value"]))
    return {dose_field: _num(value)}


def record(
    session: Session,
    participant: str,
    *,
    before: Mapping[str, Mapping[str, Any]],
    administration: Mapping[str, Any],
    after: Mapping[str, Mapping[str, Any]],
    units: Any = None,
    reasons: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> AdministrationVisit:
    """Record the next administration with its dose assessments, atomically (see the module doc).

    `before`/`after` map an assessment's code to its typed values (the values the protocol fixes are filled
    in here; a different value typed for one is refused). `units`: the count of tablets or capsules, the
    dose computed from the product's strength. `reasons` maps a part to the reason for its soft-range values.
    Raises `PartRefused` naming the part that failed; nothing is saved then.
    """
    session.require("dose.record", what="record doses")
    pl = plan(session, participant)
    if pl.refusal:
        raise Refused(pl.refusal)
    reasons = dict(reasons or {})
    parts = dict(pl.parts)
    unknown = sorted(set(reasons) - set(parts))
    if unknown:
        raise ValueError(f"unknown visit part {unknown[0]}")
    raws: dict[str, dict[str, Any]] = {}
    for a in pl.before:
        raws[f"before:{a.code}"] = _fixed(before.get(a.code, {}), f"before:{a.code}", a)
    adm = dict(administration)
    if pl.kind == TABLETS and units not in (None, ""):
        try:
            counted = dose_from_units(pl, units)
        except ValidationFailed as exc:
            raise PartRefused("administration", pl.what, exc) from exc
        dose_field = pl.roles["dose"]
        if adm.get(dose_field) not in (None, "") and str(adm[dose_field]) != counted[dose_field]:
            raise PartRefused(
                "administration",
                pl.what,
                ValidationFailed({dose_field: f"{adm[dose_field]} does not match {units} units"}),
            )
        adm.update(counted)
    if "not_given" in pl.roles:
        adm.setdefault(pl.roles["not_given"], False)
    raws["administration"] = adm
    for a in pl.after:
        raws[f"after:{a.code}"] = _fixed(after.get(a.code, {}), f"after:{a.code}", a)
    before_summary = status.summary(session.store, pl.participant)
    events: dict[str, str] = {}
    data: dict[str, Any] = {}
    checked: dict[str, Any] = {}
    try:
        with session.store.transaction():
            for part, form in pl.parts:
                reason = reasons.get(part)
                try:
                    ev = service.submit(
                        session,
                        form,
                        raws[part],
                        participant=pl.participant,
                        reason=reason,
                        confirm=reason is not None,
                    )
                except WardError as exc:
                    raise PartRefused(part, _part_words(pl, part), exc) from exc
                events[part] = ev.id
                if part == "administration":
                    data = dict(ev.body["data"])
                    _same_slot(pl, data)
                elif pl.check is not None and part == f"after:{pl.check.code}":
                    checked = dict(ev.body["data"])
            visit = _visit(session, pl, data, before_summary["deviations"])
            c = pl.check
            if c is not None and c.expect_ae:  # the events the check saved names, as validated
                named = checked.get(c.field) or []
                visit.ae_expected = [str(x) for x in named if str(x) != c.none]
            if dry_run:
                raise _DryRun(visit)
    except _DryRun as done:
        return done.visit
    visit.events = events
    visit.saved = True
    return visit


def _same_slot(p: AdministrationPlan, data: Mapping[str, Any]) -> None:
    """The visit records the administration it planned: a start the schedule places in another slot (days
    away, in an earlier administration's window) is refused naming the start, not recorded as that one."""
    placed = data.get(p.roles.get("number", ""))
    if placed is None or int(placed) == p.number:
        return
    start = p.roles.get("start", "start")
    opens, closes = (datetime.fromisoformat(w) for w in p.window)
    raise PartRefused(
        "administration",
        p.what,
        ValidationFailed(
            {
                start: f"{data.get(start)} falls to administration {placed} of the schedule, not {p.what} "
                f"(window {opens.isoformat(timespec='minutes')} to {closes.isoformat(timespec='minutes')})"
            }
        ),
    )


def _part_words(p: AdministrationPlan, part: str) -> str:
    if part == "administration":
        return p.what
    kind, _, code = part.partition(":")
    for a in p.before if kind == "before" else p.after:
        if a.code == code:
            return a.label
    return part


def _fixed(raw: Mapping[str, Any], part: str, a: Assessment) -> dict[str, Any]:
    out = dict(raw)
    for name, value in a.fixed.items():
        typed = out.get(name)
        if typed not in (None, "") and str(typed) != str(value):
            raise PartRefused(
                part,
                a.label,
                ValidationFailed({name: f"{typed} does not match this administration ({value})"}),
            )
        out[name] = value
    return out


def _visit(
    session: Session, p: AdministrationPlan, data: Mapping[str, Any], before: list[Deviation]
) -> AdministrationVisit:
    """The visit as recorded, with the deviations it leaves (computed in the transaction, after the records)."""
    r = p.roles
    after = status.summary(session.store, p.participant)["deviations"]
    known = [_key(d) for d in before]
    new = [d for d in after if _key(d) not in known]
    dose = data.get(r.get("dose", ""))
    return AdministrationVisit(
        participant=p.participant,
        number=int(data.get(r.get("number", ""), p.number)),
        what=p.what,
        due=str(data.get(r.get("due", ""), p.due)),
        timing=data.get(r.get("window", "")),
        start=str(data.get(r.get("start", ""), "")),
        end=str(data[r["end"]]) if r.get("end") and data.get(r["end"]) else None,
        dose=cast(Quantity, dose)
        if isinstance(dose, dict)
        else None,  # a quantity field holds `{ value, unit }`
        prescribed=data.get(r.get("prescribed", "")) or p.prescribed,
        deviations=new,
    )


def _key(d: Mapping[str, Any]) -> tuple[Any, ...]:
    return (d.get("code"), d.get("kind"), d.get("number"), d.get("event"))
