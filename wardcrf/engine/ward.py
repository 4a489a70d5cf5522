"""A format-2 version on a ward: the `Protocol` the ward's forms, exports and screens read, projected from
the model (docs/engine.md, "Format 2 on a ward").

The forms (fields, types, units, ranges, choices, required, ids, CDISC names)
are read by format 1's field reader from the format-2 file itself
(`protocol.forms_of`), so `forms.check` validates a format-2 record exactly as
it validates a format-1 one. The declarations only the engine runs
(`required_when`, `applies_when`, `[[rules]]`, `unique`, criteria, gates,
regimens, dose assessments) stay in `Protocol.engine`, the model, and
`workflow.engine_rules` runs them on every submission.

The format-1 summary parts (`eligibility`, `schedule`, `product`) are what a
format-1 reader shows of a trial; for a format-2 version they summarise the
model truthfully where format 1 has a word for it (ages from `[trial]`, the
first arm's first administration, the products) and are never what decides:
the engine reads the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time, timedelta
from typing import Any

from wardcrf import protocol as format1
from wardcrf.engine import model as engine_model
from wardcrf.engine.model import Model
from wardcrf.protocol_analysis import AnalysisPlan


def read(source: str, filename: str = "<protocol>") -> format1.Protocol:
    """A format-2 source as the ward's `Protocol` (validated by the format-2 reader first)."""
    return of(engine_model.parse_cached(source, filename), filename)


def of(m: Model, filename: str | None = None) -> format1.Protocol:
    """The ward's `Protocol` of a format-2 model."""
    data = m.data
    head = data["protocol"]
    name = filename or f"{m.id.lower()}-{m.version}.toml"
    consent = data.get("consent", {})
    forms = format1.forms_of(m.source, name)
    schedule, product = _schedule(m), _product(m)
    return format1.Protocol(
        id=m.id,
        version=m.version,
        title=_text(head.get("title", m.id)),
        languages=tuple(head.get("languages", ("en",))),
        registry=tuple(head.get("registry", ())),
        eligibility=_eligibility(data.get("trial", {})),
        consent=format1.ConsentRules(
            int(consent.get("witnesses", 2)),
            int(consent.get("min_photos", 1)),
            tuple(consent.get("doctor_roles", ("clinician", "investigator"))),
        ),
        schedule=schedule,
        sentinel_participants=_sentinels(data),
        prespecified_events=tuple(
            format1.Choice(str(c["code"]), _text(c.get("label", c["code"])))
            for c in data.get("safety", {}).get("prespecified", ())
        ),
        product=product,
        forms=forms,
        warnings=_warnings(m, name, forms, schedule, product),
        analysis=_analysis(m, name, forms),
        source=m.source,
        sha256=m.sha256,
        filename=name,
        review=m.review,
        trial=_trial(data),
        engine=m,
    )


def _warnings(
    m: Model, name: str, forms: dict[str, format1.Form], schedule: format1.Schedule, product: dict[str, Any]
) -> tuple[Any, ...]:
    """The soft warnings (`[[warnings]]`, format 1's reader and rules; without the key, the built-in set):
    shown at the moment of entry and kept with the record, never refusing (`wardcrf.plausibility`).
    ``minutes_of = "regimen.CODE.duration"`` is that regimen's first administration's `duration`."""
    from wardcrf import plausibility
    from wardcrf.protocol_file import ProtocolFileError

    data, r = format1.read_source(m.source, name)
    r.languages = tuple(str(x) for x in data.get("protocol", {}).get("languages", ["en"]))
    durations: dict[str, float | None] = {}
    for reg in data.get("regimens", ()):
        first: Mapping[str, Any] = next(iter(reg.get("administrations", ())), {})
        given = first.get("duration")
        durations[str(reg["code"])] = engine_model.duration(given) / timedelta(minutes=1) if given else None
    rules = plausibility.parse_rules(r, data, forms, schedule, product, regimens=durations)
    if r.problems:
        raise ProtocolFileError(r.problems)
    return rules


def _analysis(m: Model, name: str, forms: dict[str, format1.Form]) -> AnalysisPlan:
    """The `paired_change` endpoints and their windows (`[analysis]`), validated against the forms as format
    1 validates its endpoints: `wardcrf report endpoints` reads them (`reports.engine_endpoints`)."""
    from wardcrf import protocol_analysis
    from wardcrf.protocol_file import ProtocolFileError

    data, r = format1.read_source(m.source, name)
    r.languages = tuple(str(x) for x in data.get("protocol", {}).get("languages", ["en"]))
    plan = protocol_analysis.paired_endpoints(r, data, forms)
    if r.problems:
        raise ProtocolFileError(r.problems)
    return plan


def _text(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {"en": str(value)}


_YEARS = re.compile(r"^P(\d+)Y$")


def _years(iso: Any, default: int) -> int:
    """Whole years of an ISO 8601 age (`P18Y`); a younger bound (`P0D`, `P6M`) is 0 years."""
    if not isinstance(iso, str):
        return default
    m = _YEARS.match(iso)
    return int(m.group(1)) if m else 0


def _eligibility(trial: Mapping[str, Any]) -> format1.Eligibility:
    # Format 1's age bounds, from [trial] age_min/age_max (SDTM TS AGEMIN/AGEMAX); the criteria decide.
    return format1.Eligibility(_years(trial.get("age_min"), 0), _years(trial.get("age_max"), 200), False, ())


def _first_administration(m: Model) -> Any:
    for arm in m.arms:
        for regimen in arm.regimens:
            for adm in m.regimens[regimen].administrations:
                return adm
    return None


def _schedule(m: Model) -> format1.Schedule:
    """Format 1's one-regimen summary: the first arm's first administration (the engine plans every one)."""
    zone = m.calendar.zone or ""  # "" = the site's zone
    adm = _first_administration(m)
    if adm is None:
        return format1.Schedule(1, 0.0, "", time(0, 0), zone, 0, 0.0, 0, "", "", "", False)
    doses = sum(a.schedule.count_max for r in m.regimens_of(m.arms[0].code) for a in r.administrations)
    # Format 1's fields in order: doses, dose per administration, its unit, due time, zone, window (min),
    # volume, duration, device, route, diluent, pre-dose check required, frequency.
    return format1.Schedule(
        max(1, doses),
        float(adm.dose.fixed) if adm.dose.fixed is not None else 0.0,
        adm.dose.unit,
        adm.schedule.times[0] if adm.schedule.times else time(0, 0),
        zone,
        int(max(-adm.window[0], adm.window[1]).total_seconds() // 60),
        0.0,
        _duration_minutes(m),
        "",
        adm.route,
        "",
        False,
        adm.frequency,
    )


def _duration_minutes(m: Model) -> int:
    """The first administration's `duration` in whole minutes, 0 when it states none: format 1's
    `schedule.duration_minutes`, the built-in short-administration warning's threshold (`plausibility`)."""
    for arm in m.arms:
        for code in arm.regimens:
            raw = {str(r["code"]): r for r in m.data.get("regimens", ())}
            spec = raw.get(code, {})
            spec = raw.get(str(spec.get("same_as", code)), spec)  # a placebo regimen: its twin's
            first: Mapping[str, Any] = next(iter(spec.get("administrations", ())), {})
            given = first.get("duration")
            return int(engine_model.duration(str(given)) / timedelta(minutes=1)) if given else 0
    return 0


def _sentinels(data: Mapping[str, Any]) -> int:
    for gate in data.get("gates", ()):
        if gate.get("kind") == "sentinel":
            return int(gate.get("participants", 1))
    return 0


def _product(m: Model) -> dict[str, Any]:
    """The first administration's product (format 1 names one product; the model keeps them all)."""
    adm = _first_administration(m)
    for p in m.data.get("products", ()):
        if adm is not None and p["code"] == adm.product:
            return {"name": str(p.get("name", p["code"])), "code": str(p["code"])}
    return {}


def _trial(data: Mapping[str, Any]) -> format1.Trial:
    t = data.get("trial", {})
    arms = tuple(
        format1.Arm(
            str(a["code"]),
            str(a.get("label", a["code"]))
            if isinstance(a.get("label"), str)
            else format1.tr(dict(a.get("label") or {})) or str(a["code"]),
        )
        for a in data.get("arms", ())
    )

    def flag(key: str) -> bool | None:
        v = t.get(key)
        return v if isinstance(v, bool) else None

    return format1.Trial(
        sponsor=str(t.get("sponsor", "")),
        phase=str(t.get("phase", "")),
        indication=str(t.get("indication", "")),
        indication_type=str(t.get("indication_type", "")),
        trial_types=tuple(str(x) for x in t.get("trial_types", ())),
        study_type=str(t.get("study_type", "INTERVENTIONAL")),
        intervention_type=str(t.get("intervention_type", "")),
        intervention_model=str(t.get("intervention_model", "")),
        blinding=str(t.get("blinding", "")),
        control=str(t.get("control", "")),
        randomized=flag("randomized"),
        add_on=flag("add_on"),
        healthy_volunteers=flag("healthy_volunteers"),
        sex_population=str(t.get("sex_population", "")),
        countries=tuple(str(c) for c in t.get("countries", ())),
        site_countries={str(k): str(v) for k, v in (t.get("site_countries") or {}).items()},
        planned_participants=t.get("planned_participants")
        if isinstance(t.get("planned_participants"), int)
        else None,
        primary_objective=str(t.get("primary_objective", "")),
        stopping_rule=str(t.get("stopping_rule", "")),
        arms=arms,
    )
