"""The trial design of a format-2 protocol (the engine's model) as SDTM's TA, TE, TV, TI and TS see it.

Format 1 declares no epochs or visits, so `design.design_of` derives them
from the dose schedule. A format-2 file declares them, and this module only
translates, with the rules SDTMIG 3.4 (section 7) gives, into the same
`Design` the subject datasets use:

* elements: one per epoch; the epoch whose `starts_at` is `first_dose` is the
  treatment epoch, with one element per arm when the arms differ (named after
  the arm's regimens, TA then walks SCREENING -> the arm's element ->
  FOLLOW-UP), a single `TRT` element in a one-arm trial;
* visits: every scheduled visit (`type = "unscheduled"` is not planned and
  has no TV row), a repeat expanded into its VISITNUMs (`num`, `num + step`,
  ...), the label's `{day}`/`{n}` filled, the window stated in TVSTRL (TV
  has no window variables) -- the engine's plan, not computed here
  (`engine.visits.planned` for a calendar visit, `schedule.slot_days` for a
  visit per administration), so TV, the ward's list and SV agree;
* VISITDY (planned study day, day 1 = first dose, no day 0) only where the
  protocol fixes the visit relative to the first dose: the visit's anchor is
  the anchor of every arm's first administration, or `first_dose`; a visit
  anchored to consent or to a recorded date has no planned study day;
* TI from `[[criteria]]`: IETESTCD the criterion's `ietestcd` or its code in
  capitals (8 characters), TIRL the criterion's `tirl` (the rule as the
  protocol states it to a reviewer: printable ASCII, at most 200 characters,
  checked when the file is read) or else the expression the engine evaluates.

TS parameters from `[trial]`, the arms, products and administrations are in
`trial.ts_rows`, which reads format 1 and format 2 through `TrialFacts`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ... import cdisc
from ...engine import schedule
from ...engine.model import Administration, Model, duration
from ...errors import Refused
from ...protocol import Protocol, tr
from .design import FOLLOW_UP, SCREENING, TREATMENT, Design, Element, Visit
from .trial import CT, ISO8601, Param, _registry, _trial_params, _ts, design_tables

ANCHORS = {
    "consent": "Informed consent",
    "screening": "Screening",
    "enrollment": "Enrollment",
    "randomization": "Randomization",
    "first_dose": "First administration of study treatment",
    "last_dose": "Last administration of study treatment",
    "treatment_end": "End of study treatment",
}
ELEMENT_CODES = {SCREENING: "SCRN", TREATMENT: "TRT", FOLLOW_UP: "FU"}
MAX_REPEAT_VISITS = 366


def label(text: Any) -> str:
    """English text of a label (a string, or a mapping of languages)."""
    return text if isinstance(text, str) else tr(dict(text))


def anchor_text(name: str) -> str:
    return ANCHORS.get(name, f"the recorded date '{name}'")


def design_from_model(model: Model) -> Design:
    """The SDTM trial design of a format-2 protocol version."""
    arms = tuple((a["code"], label(a["label"])) for a in model.data.get("arms", ()))
    elements, arm_elements = _elements(model)
    visits = tuple(_visits(model))
    _distinct_numbers(model, visits)
    return Design(visits=visits, arms=arms, elements=elements, source="protocol", arm_elements=arm_elements)


def _distinct_numbers(model: Model, visits: tuple[Visit, ...]) -> None:
    """Refuse two planned visits of one arm with the same VISITNUM (a repeat running into the next visit).

    The protocol reader does not check VISITNUMs yet (docs/engine.md); TV's
    key is (ARMCD, VISITNUM), so a clash would be a broken dataset.
    """
    for arm in model.arms:
        seen: dict[float, Visit] = {}
        for v in visits:
            if v.arms and arm.code not in v.arms:
                continue
            other = seen.setdefault(v.num, v)
            if other is not v:
                raise Refused(
                    f"{model.id} {model.version}: visits {other.code} ({other.name}) and {v.code} ({v.name}) "
                    f"both have VISITNUM {v.num}; give the later visit a number after the repeat's last"
                )


def _administrations(model: Model) -> list[Administration]:
    """Every administration of every regimen (a placebo twin's included)."""
    return [adm for reg in model.regimens.values() for adm in reg.administrations]


def _treatment_days(adms: list[Administration]) -> int | None:
    """Days from the first to the last administration, inclusive, when every count is fixed."""
    if not adms or any(a.schedule.count_min != a.schedule.count_max for a in adms):
        return None
    if len({a.schedule.anchor for a in adms}) != 1:
        return None
    first = min(a.schedule.first_day for a in adms)
    last = max((schedule.slot_days(a) or [a.schedule.first_day])[-1] for a in adms)
    return last - first + 1


def _element_code(text: str, taken: set[str]) -> str:
    base = (re.sub(r"[^A-Z0-9]", "", text.upper()) or "EL")[:8]
    code, n = base, 1
    while code in taken:
        n += 1
        code = f"{base[: 8 - len(str(n))]}{n}"
    taken.add(code)
    return code


def _elements(model: Model) -> tuple[tuple[Element, ...], dict[str, tuple[str, ...]]]:
    epochs = list(model.data.get("epochs", ()))
    taken: set[str] = set()
    elements: list[Element] = []
    per_arm: dict[str, list[str]] = {a.code: [] for a in model.arms}
    single = len(model.arms) == 1
    for i, ep in enumerate(epochs):
        ends = (
            anchor_text(epochs[i + 1]["starts_at"]) if i + 1 < len(epochs) else "End of study (disposition)"
        )
        starts = anchor_text(ep["starts_at"])
        if ep["starts_at"] != "first_dose":
            name = ep.get("element") or label(ep["label"])
            code = _element_code(ELEMENT_CODES.get(ep["code"], ep["code"]), taken)
            elements.append(Element(code, name, ep["code"], starts, ends))
            for walk in per_arm.values():
                walk.append(code)
            continue
        for arm in model.arms:
            regs = [model.regimens[r] for r in arm.regimens]
            adms = [a for r in regs for a in r.administrations]
            days = _treatment_days(adms)
            name = ep.get("element") if single and ep.get("element") else "; ".join(r.label for r in regs)
            code = _element_code("TRT" if single else arm.code, taken)
            elements.append(
                Element(
                    code,
                    name[:200] or arm.code,
                    ep["code"],
                    f"First administration of {name}"[:200] if not single else starts,
                    ends,
                    f"P{days}D" if days else "",
                )
            )
            per_arm[arm.code].append(code)
    return tuple(elements), {k: tuple(v) for k, v in per_arm.items()}


def _first_dose_anchor(model: Model) -> tuple[str, int] | None:
    """(anchor, day) of the first administration when every arm starts the same way."""
    starts = set()
    for arm in model.arms:
        adms = [a for r in arm.regimens for a in model.regimens[r].administrations]
        if not adms:
            return None
        first = min(adms, key=lambda a: a.schedule.first_day)
        starts.add((first.schedule.anchor, first.schedule.first_day))
    return next(iter(starts)) if len(starts) == 1 else None


def _study_day(model: Model, anchor: str, day: int) -> int | None:
    """SDTM planned study day (day 1 = first dose, no day 0) of `day` counted from `anchor`."""
    first = _first_dose_anchor(model)
    if anchor == "first_dose":
        delta = day - model.calendar.anchor_day
    elif first and anchor == first[0]:
        delta = day - first[1]
    else:
        return None
    return delta + 1 if delta >= 0 else delta


def _window_text(window: Any) -> str:
    if not window:
        return ""
    before, after = (duration(w) for w in window)
    if before == after == timedelta(0):
        return "on that day"
    return f"window {window[0]} to {window[1]}"


def _visits(model: Model) -> Iterator[Visit]:
    """TV's planned visits in declared order: a calendar visit's occurrences as the engine plans them
    (`engine.visits.planned`: days, VISITNUMs, names), a visit per administration's as its regimen's
    schedule does."""
    from ...engine import visits

    by_code: dict[str, list[visits.Planned]] = {}
    for p in visits.planned(model):
        by_code.setdefault(p.visit.code, []).append(p)
    for v in model.data.get("visits", ()):
        if v.get("type") in ("unscheduled", "common"):
            continue
        if "repeat" in v and "per" in v["repeat"]:
            yield from _per_administration(model, v)
            continue
        for p in by_code.get(str(v["code"]), ()):
            c = p.visit
            where = f"Day {p.day} after {anchor_text(c.anchor).lower()}"
            if len(c.anchors) > 1:  # a participant who never reaches the first anchor: the next one
                where += "".join(f" (else after {anchor_text(a).lower()})" for a in c.anchors[1:])
            window = _window_text(c.window)
            yield Visit(
                p.num,
                p.name,
                c.epoch,
                _study_day(model, c.anchor, p.day),
                f"{where}, {window}" if window else where,
                arms=c.arms,
                code=c.code,
            )


def _per_administration(model: Model, v: Mapping[str, Any]) -> Iterator[Visit]:
    """One planned occurrence per scheduled administration of the visit's regimen, numbered across the
    regimen as the schedule numbers them (`engine.visits`); only in the arms that have the regimen."""
    from ...engine import visits

    declared = next(d for d in visits.declared(model) if d.code == v["code"])
    regimen = model.regimens[declared.regimen]
    every = {a.code for a in model.arms}
    arms = () if set(declared.arms) == every else declared.arms
    if not declared.arms:
        return
    n = 0
    for adm in regimen.administrations:
        s = adm.schedule
        for day in schedule.slot_days(adm)[:MAX_REPEAT_VISITS]:
            n += 1
            yield Visit(
                _num(declared.number(n)),
                declared.name(n, day),
                declared.epoch,
                _study_day(model, s.anchor, day),
                f"{regimen.label}: administration {n}, due on day {day} after "
                f"{anchor_text(s.anchor).lower()}, with its window",
                arms=arms,
                code=declared.code,
            )


def _num(value: float) -> float:
    """VISITNUM as the protocol writes it: 2, not 2.0; a step of 0.5 gives 2.5."""
    rounded = round(value, 4)
    return int(rounded) if rounded == int(rounded) else rounded


def ti_rows(model: Model) -> Iterator[dict[str, Any]]:
    """One TI row per `[[criteria]]` entry: TIRL its declared `tirl`, else the rule the engine evaluates."""
    for c in model.data.get("criteria", ()):
        rule = c.get("tirl") or c.get("expr") or _parts(c)
        yield {
            "STUDYID": model.id,
            "DOMAIN": "TI",
            "IETESTCD": c.get("ietestcd") or re.sub(r"[^A-Z0-9]", "", c["code"].upper())[:8],
            "IETEST": label(c["label"])[:200],
            "IECAT": c["category"].upper(),
            "TIRL": rule,
            "TIVERS": model.version,
        }


def _parts(c: Mapping[str, Any]) -> str:
    """An `all`/`any` criterion as one expression (parts nest: `{ any = [...] }` inside `all`)."""
    key = "all" if "all" in c else "any"
    joiner = " and " if key == "all" else " or "
    return joiner.join(f"({p if isinstance(p, str) else _parts(p)})" for p in c[key])


def trial_rows(
    model: Model, dm: list[dict[str, Any]], now: datetime, *, all_ended: bool
) -> dict[str, list[dict[str, Any]]]:
    """TS, TA, TE, TV and TI of a format-2 protocol version (DM gives TS its dates and counts)."""
    design = design_from_model(model)
    return {
        "TS": _ts(model.id, ts_params(model), design, dm, now, all_ended=all_ended),
        **design_tables(model.id, design),
        "TI": list(ti_rows(model)),
    }


def _frequencies(adms: list[Administration]) -> dict[str, bool]:
    """Each frequency the administrations use, and whether it is a sponsor term (an extension of FREQ)."""
    out: dict[str, bool] = {}
    for a in adms:
        out[a.frequency] = out.get(a.frequency, False) or bool(a.frequency_extended)
    return out


def _dosfrq(value: str, sponsor: bool) -> Param:
    """A DOSFRQ row. A sponsor term (`frequency_extended`, e.g. Q3D) is not in CDISC CT: its row cites no
    reference terminology, where a published term cites CDISC CT and its version."""
    if sponsor:
        return ("DOSFRQ", "Dosing Frequency", value, "", "")
    return ("DOSFRQ", "Dosing Frequency", value, CT, cdisc.CT_VERSION)


def ts_params(model: Model) -> list[Param]:
    """TS parameters a format-2 file states: `[trial]`, products, routes, frequencies, endpoints."""
    d = model.data
    t = d.get("trial", {})
    out: list[Param] = [
        ("TITLE", "Trial Title", label(d["protocol"]["title"]), "", ""),
        *_trial_params(t),
        ("AGEMIN", "Planned Minimum Age of Subjects", t.get("age_min"), ISO8601, ""),
        ("AGEMAX", "Planned Maximum Age of Subjects", t.get("age_max"), ISO8601, ""),
        *regimen_params(model),
    ]
    for e in d.get("analysis", {}).get("endpoints", ()):
        text = _endpoint_text(d, e)
        if e.get("primary"):
            out.append(("OUTMSPRI", "Primary Outcome Measure", text, "", ""))
        else:
            out.append(("OUTMSSEC", "Secondary Outcome Measure", text, "", ""))
    return [*out, *_registry(d["protocol"].get("registry", ()))]


def regimen_params(model: Model) -> list[Param]:
    """TRT per product given, ROUTE and DOSFRQ per distinct term, and DOSE/DOSU from the regimens' `Dose`."""
    products = {p["code"]: p for p in model.data.get("products", ())}
    adms = _administrations(model)
    used = list(dict.fromkeys(a.product for a in adms))
    out: list[Param] = [
        *(("TRT", "Investigational Therapy or Treatment", products[c]["name"], "", "") for c in used),
        *(
            ("ROUTE", "Route of Administration", r, CT, cdisc.CT_VERSION)
            for r in dict.fromkeys(a.route for a in adms)
        ),
        *(_dosfrq(f, sponsor) for f, sponsor in _frequencies(adms).items()),
    ]
    # One dose and unit only when the trial has one administration of one fixed or per-kg dose:
    # TS cannot say which of several doses a DOSE row belongs to.
    if len(adms) == 1 and not adms[0].dose.bands:
        dose = adms[0].dose
        amount = dose.fixed if dose.fixed is not None else dose.per_kg
        value = int(amount) if amount is not None and amount == amount.to_integral() else amount
        unit = dose.unit if dose.fixed is not None else f"{dose.unit}/kg"
        out += [("DOSE", "Dose per Administration", value, "", ""), ("DOSU", "Dose Units", unit, "", "")]
    return out


def stored_v1_rows(
    proto: Protocol,
    regimen: Model,
    design: Design,
    dm: list[dict[str, Any]],
    now: datetime,
    *,
    all_ended: bool,
) -> dict[str, list[dict[str, Any]]]:
    """TS, TA, TE, TV and TI of a stored format-1 version the engine cannot run: `[protocol]`, `[trial]`, its
    ages, its regimen and criteria as the engine reads its `[schedule]` and `[eligibility]`
    (`engine.protocol_v1.upgrade`, `regimen`), and the documented default design (`design.design_of`)."""
    params: list[Param] = [
        ("TITLE", "Trial Title", tr(proto.title), "", ""),
        *_trial_params(proto.trial),
        ("AGEMIN", "Planned Minimum Age of Subjects", f"P{proto.eligibility.age_min}Y", ISO8601, ""),
        ("AGEMAX", "Planned Maximum Age of Subjects", f"P{proto.eligibility.age_max}Y", ISO8601, ""),
        *regimen_params(regimen),
        *_registry(proto.registry),
    ]
    return {
        "TS": _ts(proto.id, params, design, dm, now, all_ended=all_ended),
        **design_tables(proto.id, design),
        "TI": list(ti_rows(regimen)),
    }


def _endpoint_text(d: Mapping[str, Any], e: Mapping[str, Any]) -> str:
    """An endpoint's label; a paired endpoint without one is named by its field's label."""
    if "label" in e:
        return label(e["label"])
    if "form" in e and "field" in e:
        fd = d.get("forms", {}).get(e["form"], {}).get("fields", {}).get(e["field"], {})
        return f"{label(fd.get('label', e['field']))}: change from baseline after treatment"
    return str(e.get("code", ""))


@dataclass(frozen=True)
class ExTerms:
    """What EX says of an administration recorded on a form: from the protocol, not from code."""

    treatment: str  # EXTRT: the product's name
    route: str  # EXROUTE (CDISC term)
    frequency: str  # EXDOSFRQ (CDISC term); '' when the arm's administrations on the form differ
    dosage_form: str  # EXDOSFRM
    unit: str  # EXDOSU when the record's dose carries none


def ex_terms(model: Model) -> dict[tuple[str, str], ExTerms]:
    """(ARMCD, recording form) -> the EX terms of the arm's administrations recorded on that form.

    An arm whose administrations on one form differ in frequency (remdesivir's
    loading dose ONCE, then QD) gets no EXDOSFRQ rather than a wrong one;
    route, product and unit come from its first administration on the form.
    """
    products = {p["code"]: p for p in model.data.get("products", ())}
    out: dict[tuple[str, str], ExTerms] = {}
    for arm in model.arms:
        by_form: dict[str, list[Administration]] = {}
        for r in arm.regimens:
            for adm in model.regimens[r].administrations:
                by_form.setdefault(adm.record["form"], []).append(adm)
        for form, adms in by_form.items():
            first = adms[0]
            product = products.get(first.product, {})
            out[(arm.code, form)] = ExTerms(
                treatment=str(product.get("name", first.product)),
                route=first.route,
                frequency=first.frequency if len({a.frequency for a in adms}) == 1 else "",
                dosage_form=str(product.get("dosage_form", "")),
                unit=first.dose.unit,
            )
    return out
