"""The trial as data: protocol files, their validation and their loading into a site.

A protocol file is TOML (read with the standard library's `tomllib`). It
describes the trial (eligibility, consent, product, dose schedule, sentinel
rule, prespecified adverse events) and every form and field a ward fills in:
type, unit, required, hard range, soft range, choices with codes, CDISC name,
translated labels. `docs/protocol-v1.md` documents the format (format 1; format 2 is `wardcrf.engine`).

A file is validated completely when it is read: every problem is reported
with the file name, the line (where it can be found), the key path and what
is wrong, so a malformed file never reaches a ward half-understood.

Loading a protocol into a site is an event (``protocol.loaded``) whose body
carries the TOML source and its SHA-256; the `protocols` projection keeps
every version ever loaded and marks the newest one active. Events name the
protocol id and version they were captured under (`Session.protocol`), so a
new version never rewrites old events, and an old record is always read with
the definition it was entered under.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from . import ids
from .errors import Refused, UsageError
from .eventlog import Event
from .field_conditions import Condition
from .field_conditions import check as check_condition
from .field_conditions import parse as parse_condition
from .protocol_analysis import AnalysisPlan
from .protocol_analysis import parse as parse_analysis
from .protocol_file import (
    MAX_FILE_BYTES,
    ProtocolFileError,
    Text,
    _Reader,
    read_source,
)
from .protocol_review import ReviewPlan
from .protocol_review import parse as parse_review
from .protocols import format1_shape, format1_vocabulary
from .sqlstore import SqlStore, common_dialect
from .store import Store
from .text import excerpt as _excerpt

if TYPE_CHECKING:
    from .engine.model import Model
    from .features import Registry
    from .plausibility import WarningRule
    from .site import Session

DEFAULT_PROTOCOL = "mexcovid.toml"


FIELD_TYPES = ("number", "integer", "text", "choice", "date", "datetime", "boolean", "photo")
SUBJECTS = ("participant",)

# What every trial has, per form, with its type: the engine and the ward's
# services read these whatever the protocol (docs/engine.md, section 6). A
# protocol may add forms and fields freely; it may not drop or retype these.
CONTRACT: dict[str, dict[str, str]] = {
    "consent": {
        "consenter": "choice",
        "surrogate_name": "text",
        "surrogate_relationship": "choice",
        "form_version": "choice",
        "time": "datetime",
        "witness_1": "text",
        "witness_2": "text",
        "photos": "photo",
    },
    "enrollment": {"date": "date"},
    "ae": {
        "term": "text",
        "onset": "date",
        "grade": "integer",
        "serious": "boolean",
        "causality": "choice",
        "outcome": "choice",
        "first_known": "date",
        "report_due": "date",
    },
}


@cache
def format1_workflow_forms() -> Mapping[str, Mapping[str, str]]:
    """The forms and fields the format-1 workflow reads beyond `CONTRACT` (a data file, format 1's shape)."""
    forms: dict[str, dict[str, str]] = format1_shape()["forms"]
    return MappingProxyType({name: MappingProxyType(dict(fields)) for name, fields in forms.items()})


def format1_contract() -> dict[str, Mapping[str, str]]:
    """What a format-1 file must declare: `CONTRACT` and the format-1 workflow's forms."""
    return {**CONTRACT, **format1_workflow_forms()}


def tr(text: Text | None, lang: str = "en") -> str:
    """A translated string, falling back to English, then to any language given."""
    if not text:
        return ""
    return text.get(lang) or text.get("en") or next(iter(text.values()))


@dataclass(frozen=True)
class Choice:
    code: str | int
    label: Text
    cdisc: str | None = None  # the CDISC submission value this code maps to (e.g. "COMPLETED")


_TRAILING_PAREN = re.compile(r"\s*[(（]([^()（）]*)[)）]\s*$")
_ENTRY_HINT = re.compile(
    r"^\s*(?:user|scan|blank|event id|for |e\.g\.)|default|用户名|扫码|留空|事件编号|时必填|默认", re.I
)


@dataclass(frozen=True)
class Field:
    """One field of a form, as declared in the protocol file."""

    name: str
    type: str
    label: Text
    help: Text = field(default_factory=dict)
    unit: str | None = None
    required: bool = False
    hard: tuple[float, float] | None = None
    soft: tuple[float, float] | None = None
    choices: tuple[Choice, ...] = ()
    multiple: bool = False
    cdisc: str | None = None
    default: Any = None
    computed: bool = False
    pattern: str | None = None
    max_length: int | None = None
    min_items: int = 0
    allow_future: bool = False
    multiline: bool = False  # a text field that may hold tabs and line breaks
    applies_when: Condition | None = None  # blank when the condition fails = "not applicable" in exports
    id_kind: str | None = None  # "kit", "lot": the value is an identifier (wardcrf.ids)
    example: str | None = None  # an id that follows this field's pattern, quoted in messages
    cdisc_label: str | None = None  # the CDISC test name (--TEST, <= 40 characters)
    cdisc_cat: str | None = None  # the CDISC category (--CAT), e.g. HEMATOLOGY
    # Reference (normal) range: one [low, high] or one per sex code ({"M": (lo, hi), ...}).
    reference_range: dict[str, tuple[float, float]] | None = None

    def choice(self, code: object) -> Choice | None:
        for c in self.choices:
            if str(c.code) == str(code):
                return c
        return None

    @property
    def codes(self) -> list[str | int]:
        return [c.code for c in self.choices]

    def printed_label(self, lang: str = "en") -> str:
        """The label as a document prints it: without a trailing entry hint.

        Labels tell the person entering how to enter the value ("Given by
        (user; default: you)", "Kit id (scan)", "End date (blank if ongoing)");
        an inspector reading a casebook needs the question, not the
        instruction. A trailing parenthesis is an entry hint when it starts
        with user, scan, blank, event id, "for " or "e.g.", or mentions a
        default (and the same words in Chinese); any other parenthesis
        ("(per day)", "(WHO-UMC)") is part of the question and stays.
        """
        text = tr(self.label, lang)
        m = _TRAILING_PAREN.search(text)
        if m and _ENTRY_HINT.search(m.group(1)):
            return text[: m.start()].rstrip()
        return text

    def as_json(self, lang: str = "en") -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "label": tr(self.label, lang)}
        for key in ("unit", "cdisc", "default", "pattern", "max_length", "example"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.id_kind:
            out["id"] = self.id_kind
        if self.help:
            out["help"] = tr(self.help, lang)
        out["required"] = self.required
        if self.computed:
            out["computed"] = True
        if self.hard:
            out["hard_range"] = list(self.hard)
        if self.soft:
            out["soft_range"] = list(self.soft)
        if self.choices:
            out["choices"] = [{"code": c.code, "label": tr(c.label, lang)} for c in self.choices]
        if self.multiple:
            out["multiple"] = True
        if self.min_items:
            out["min_items"] = self.min_items
        if self.multiline:
            out["multiline"] = True
        if self.applies_when is not None:
            out["applies_when"] = self.applies_when.describe()
        return out


@dataclass(frozen=True)
class Form:
    name: str
    label: Text
    help: Text
    subject: str
    fields: dict[str, Field]

    def as_json(self, lang: str = "en") -> dict[str, Any]:
        return {
            "name": self.name,
            "label": tr(self.label, lang),
            "help": tr(self.help, lang),
            "subject": self.subject,
            "fields": [f.as_json(lang) for f in self.fields.values()],
        }


@dataclass(frozen=True)
class Schedule:
    doses: int
    dose_amount: float  # format 1's file key: `format1_vocabulary()["keys"]["dose_amount"]`
    dose_unit: str
    time: time
    zone: str
    window_minutes: int
    volume_ml: float
    duration_minutes: int
    device: str
    route: str
    diluent: str
    pre_dose_check_required: bool
    frequency: str = "QD"  # CDISC dosing frequency (EXDOSFRQ)


@dataclass(frozen=True)
class Eligibility:
    age_min: int
    age_max: int
    confirmation_required: bool  # the infection confirmed (format1-workflow.toml `[confirmation]`)
    severities: tuple[str, ...]


@dataclass(frozen=True)
class ConsentRules:
    witnesses: int
    min_photos: int
    doctor_roles: tuple[str, ...]


@dataclass(frozen=True)
class Arm:
    code: str  # ARMCD: <= 20 characters
    label: str  # ARM: <= 200 characters


@dataclass(frozen=True)
class Trial:
    """Facts about the trial a sponsor's submission states (SDTM TS), from the `[trial]` table.

    Values that are CDISC controlled terms are validated against
    `wardcrf.cdisc` when the file is read, so a submission never carries a
    phase or a blinding no reviewer's tool knows.
    """

    sponsor: str = ""
    phase: str = ""
    indication: str = ""
    indication_type: str = ""
    trial_types: tuple[str, ...] = ()
    study_type: str = "INTERVENTIONAL"
    intervention_type: str = ""
    intervention_model: str = ""
    blinding: str = ""
    control: str = ""
    randomized: bool | None = None
    add_on: bool | None = None
    healthy_volunteers: bool | None = None
    sex_population: str = ""
    countries: tuple[str, ...] = ()
    site_countries: dict[str, str] = field(default_factory=dict)
    planned_participants: int | None = None
    primary_objective: str = ""
    stopping_rule: str = ""
    arms: tuple[Arm, ...] = ()

    def country_of(self, site: str) -> str:
        """The ISO 3166-1 alpha-3 country of a site: mapped, else the trial's only country."""
        if site in self.site_countries:
            return self.site_countries[site]
        return self.countries[0] if len(self.countries) == 1 else ""


@dataclass(frozen=True)
class Protocol:
    """A parsed, validated protocol file."""

    id: str
    version: str
    title: Text
    languages: tuple[str, ...]
    registry: tuple[str, ...]
    eligibility: Eligibility
    consent: ConsentRules
    schedule: Schedule
    sentinel_participants: int
    prespecified_events: tuple[Choice, ...]
    product: dict[str, Any]
    forms: dict[str, Form]
    source: str
    sha256: str
    filename: str
    warnings: tuple[WarningRule, ...] = ()  # the soft warnings this trial declares
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)  # [analysis]: the stated methods
    review: ReviewPlan = field(default_factory=ReviewPlan)  # [audit_review]: what the trail review flags
    trial: Trial = field(default_factory=Trial)
    # A format-2 version (docs/engine.md, "Format 2 on a ward"): the engine's model, whose declarations
    # (gates, criteria, regimens, rules) the ward runs; the format-1 parts above are what the forms,
    # exports and screens read, projected from it. None for a format-1 version.
    engine: Model | None = None

    @property
    def ref(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version}

    def form(self, name: str) -> Form:
        form = self.forms.get(name)
        if form is None:
            raise UsageError(f"unknown form {name!r} (forms: {', '.join(self.forms)})")
        return form


# -- reading and validating --------------------------------------------------------------


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}(-[A-Za-z]{2,8})?$")  # format 2's schema for protocol.languages


def parse(source: str, filename: str = "<protocol>") -> Protocol:
    """Parse and validate protocol TOML; raises `ProtocolFileError` naming every problem."""
    data, r = read_source(source, filename)
    head = r.table(data.get("protocol"), ("protocol",))
    langs = r.get(head, "languages", ("protocol",), list, default=["en"])
    if langs and all(isinstance(x, str) for x in langs):
        r.languages = tuple(langs)
        if "en" not in langs:
            r.err(("protocol", "languages"), 'must include "en"')
        for i, code in enumerate(langs):  # shown on screens and in the palette: a code, never free text
            if not _LANGUAGE_RE.match(code):
                shown = repr(code[:20]) + ("…" if len(code) > 20 else "")
                r.err(("protocol", "languages", i), f"{shown} is not a language code (e.g. fr, zh, pt-BR)")
        if len(set(langs)) != len(langs):
            r.err(("protocol", "languages"), "a language is listed twice")
    else:
        r.err(("protocol", "languages"), "must be a list of language codes")
    pid = r.get(head, "id", ("protocol",), str, default="")
    if pid and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$", pid):
        r.err(("protocol", "id"), "use 1-40 letters, digits, '.', '_' or '-'")
    version = r.get(head, "version", ("protocol",), str, default="")
    if version and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$", version):
        r.err(("protocol", "version"), "use 1-20 letters, digits, '.', '_' or '-'")
    title = r.text(head, "title", ("protocol",))
    registry = r.get(head, "registry", ("protocol",), list, required=False, default=[])
    eligibility = _eligibility(r, data)
    consent = _consent(r, data)
    schedule = _schedule(r, data)
    sentinel = r.table(data.get("sentinel"), ("sentinel",))
    sentinel_n = r.get(sentinel, "participants", ("sentinel",), int, default=1)
    if sentinel_n is not None and sentinel_n < 0:
        r.err(("sentinel", "participants"), "must be 0 or more")
    ae = r.table(data.get("adverse_events"), ("adverse_events",))
    prespecified = _choices(r, ae.get("prespecified"), ("adverse_events", "prespecified"))
    product = r.table(data.get("product"), ("product",))
    forms = _forms(r, data)
    analysis = parse_analysis(r, data, forms)
    review = parse_review(r, data, forms)
    _one_format_per_id(r, forms)
    from . import plausibility

    warnings = plausibility.parse_rules(r, data, forms, schedule, dict(product))
    trial = _trial(r, data)
    for form_name, fields in format1_contract().items():
        form = forms.get(form_name)
        if form is None:
            if "forms" in data and isinstance(data["forms"], dict):
                r.err(("forms", form_name), "missing: wardcrf's workflow needs this form")
            continue
        for fname, ftype in fields.items():
            f = form.fields.get(fname)
            if f is None:
                r.err(
                    ("forms", form_name, "fields", fname),
                    f"missing: the workflow needs a field of type {ftype} here",
                )
            elif f.type != ftype:
                r.err(
                    ("forms", form_name, "fields", fname, "type"),
                    f"must be {ftype} (the workflow reads it)",
                )
    if r.problems:
        raise ProtocolFileError(r.problems)
    return Protocol(
        id=pid,
        version=version,
        title=title,
        languages=tuple(langs),
        registry=tuple(registry),
        eligibility=eligibility,
        consent=consent,
        schedule=schedule,
        sentinel_participants=sentinel_n,
        prespecified_events=prespecified,
        product=dict(product),
        forms=forms,
        source=source,
        sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        filename=filename,
        warnings=warnings,
        analysis=analysis,
        review=review,
        trial=trial,
    )


def _eligibility(r: _Reader, data: dict[str, Any]) -> Eligibility:
    t = r.table(data.get("eligibility"), ("eligibility",))
    p = ("eligibility",)
    lo = r.get(t, "age_min", p, int, default=0)
    hi = r.get(t, "age_max", p, int, default=200)
    if lo is not None and hi is not None and lo > hi:
        r.err((*p, "age_min"), f"minimum age {lo} is above maximum age {hi}")
    sev = r.get(t, "severity", p, list, default=[])
    confirmed = r.get(t, format1_vocabulary()["keys"]["confirmation_required"], p, bool, default=True)
    return Eligibility(lo, hi, bool(confirmed), tuple(str(s) for s in sev))


def _consent(r: _Reader, data: dict[str, Any]) -> ConsentRules:
    t = r.table(data.get("consent"), ("consent",))
    p = ("consent",)
    witnesses = r.get(t, "witnesses", p, int, default=2)
    photos = r.get(t, "min_photos", p, int, default=1)
    roles_ = r.get(t, "doctor_roles", p, list, default=["clinician", "investigator"])
    from .roles import ROLES

    for i, role in enumerate(roles_):
        if role not in ROLES:
            r.err((*p, "doctor_roles", i), f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return ConsentRules(witnesses, photos, tuple(roles_))


def _schedule(r: _Reader, data: dict[str, Any]) -> Schedule:
    t = r.table(data.get("schedule"), ("schedule",))
    p = ("schedule",)
    at = r.get(t, "time", p, str, default="09:00")
    try:
        hh, mm = at.split(":")
        due = time(int(hh), int(mm))
    except ValueError:
        r.err((*p, "time"), f"{at!r} is not a time of day HH:MM")
        due = time(9, 0)
    zone_name = r.get(t, "zone", p, str, default="Asia/Shanghai")
    from .clock import zone

    try:
        zone(zone_name)
    except ValueError as exc:
        r.err((*p, "zone"), str(exc))
    doses = r.get(t, "doses", p, int, default=1)
    if doses is not None and not 1 <= doses <= 365:
        r.err((*p, "doses"), "must be between 1 and 365")
    window = r.get(t, "window_minutes", p, int, default=120)
    if window is not None and not 0 <= window <= 720:
        r.err((*p, "window_minutes"), "must be between 0 and 720")
    vocabulary = format1_vocabulary()
    key, default_unit = vocabulary["keys"], vocabulary["defaults"]["dose_unit"]
    return Schedule(
        doses=doses,
        dose_amount=float(r.get(t, key["dose_amount"], p, (int, float), default=0)),
        dose_unit=r.get(t, key["dose_unit"], p, str, required=False, default=default_unit),
        time=due,
        zone=zone_name,
        window_minutes=window,
        volume_ml=float(r.get(t, "volume_ml", p, (int, float), default=0)),
        duration_minutes=r.get(t, "duration_minutes", p, int, default=0),
        device=r.get(t, "device", p, str, default=""),
        route=r.get(t, "route", p, str, default=""),
        diluent=r.get(t, "diluent", p, str, default=""),
        pre_dose_check_required=r.get(t, key["pre_dose_check_required"], p, bool, default=True),
        frequency=_frequency(r, t, p),
    )


def _frequency(r: _Reader, t: dict[str, Any], p: tuple[str | int, ...]) -> str:
    from . import cdisc

    freq = r.get(t, "frequency", p, str, required=False, default="QD")
    if freq not in cdisc.FREQ:
        r.err(
            (*p, "frequency"), f"{freq!r} is not a CDISC dosing frequency (allowed: {', '.join(cdisc.FREQ)})"
        )
    return str(freq)


def _choices(r: _Reader, value: Any, path: tuple[str | int, ...]) -> tuple[Choice, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        r.err(path, "must be a non-empty list of { code = ..., label = ... }")
        return ()
    out: list[Choice] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            r.err((*path, i), "must be a table { code = ..., label = ... }")
            continue
        code = item.get("code")
        if isinstance(code, bool) or not isinstance(code, str | int) or code == "":
            r.err((*path, i, "code"), "must be a non-empty string or an integer")
            continue
        if str(code) in seen:
            r.err((*path, i, "code"), f"duplicate choice code {code!r}")
        seen.add(str(code))
        for key in item:
            if key not in ("code", "label", "cdisc"):
                r.err((*path, i, key), "unknown choice key (allowed: code, label, cdisc)")
        cdisc = r.get(item, "cdisc", (*path, i), str, required=False)
        if cdisc is not None:
            _check_cdisc_text(r, (*path, i, "cdisc"), cdisc, 200)
        out.append(Choice(code, r.text(item, "label", (*path, i)), cdisc))
    return tuple(out)


def _check_cdisc_text(r: _Reader, path: tuple[str | int, ...], value: str, limit: int) -> None:
    """SAS transport files carry ASCII only: a CDISC value must be printable ASCII within `limit`."""
    if not value or len(value) > limit or not all(" " <= ch <= "~" for ch in value):
        r.err(path, f"must be 1-{limit} printable ASCII characters (SAS transport v5 holds no other)")


_FIELD_KEYS = {
    "type",
    "label",
    "help",
    "unit",
    "required",
    "hard",
    "soft",
    "choices",
    "multiple",
    "cdisc",
    "default",
    "computed",
    "pattern",
    "max_length",
    "min_items",
    "allow_future",
    "multiline",
    "applies_when",
    "id",
    "example",
    "cdisc_label",
    "cdisc_cat",
    "reference_range",
}

# Contract fields that hold identifiers, whether or not the file says `id = ...`
# (files written before the key existed must mean the same thing).
CONTRACT_IDS: dict[tuple[str, str], str] = {("dose", "kit_id"): "kit", ("dose", "lot"): "lot"}


def _forms(r: _Reader, data: dict[str, Any]) -> dict[str, Form]:
    forms_t = r.table(data.get("forms"), ("forms",))
    forms: dict[str, Form] = {}
    for name, ft in forms_t.items():
        p: tuple[str | int, ...] = ("forms", name)
        if not _NAME_RE.match(name):
            r.err(p, "form names are lower-case letters, digits and '_' (max 40)")
        ft = r.table(ft, p)
        subject = r.get(ft, "subject", p, str, required=False, default="participant")
        if subject not in SUBJECTS:
            r.err(
                (*p, "subject"),
                f"unknown subject kind {subject!r} (allowed: {', '.join(SUBJECTS)})",
            )
        fields: dict[str, Field] = {}
        for fname, spec in r.table(ft.get("fields"), (*p, "fields"), required=False).items():
            f = _field(r, fname, spec, (*p, "fields", fname))
            if f is not None:
                fields[fname] = f
        for f in fields.values():
            if f.applies_when is not None:
                check_condition(r, f.applies_when, f.name, fields, (*p, "fields", f.name, "applies_when"))
        forms[name] = Form(
            name, r.text(ft, "label", p), r.text(ft, "help", p, required=False), subject, fields
        )
    return forms


# Keys of a format-2 field that are expressions the engine runs, not format 1's field keys.
FORMAT2_FIELD_KEYS = frozenset({"compute", "required_when", "applies_when", "exports_applies_when"})


def _exports_condition(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A format-2 field's condition the exports code a blank by as not applicable (NA), in format 1's table
    shape (`{ field, in / not_in }`, read as format 1's `applies_when`): its `exports_applies_when` (NA only),
    or an `applies_when` written as that table. An `applies_when` expression is the engine's only (not coded)."""
    for key in ("exports_applies_when", "applies_when"):
        if isinstance(spec.get(key), Mapping):
            return spec[key]
    return None


def forms_of(source: str, filename: str) -> dict[str, Form]:
    """The `[forms]` of a format-2 file as the ward's forms (`forms.check`, exports, screens) read them.

    Format 1's field reader builds each field from the same keys (types,
    ranges, choices, ids, CDISC names); the format-2 expressions
    (`required_when`, `applies_when`, `compute`) are left to the engine, which
    runs them on every submission (`workflow.engine_rules`); a field's
    `exports_applies_when`, or an `applies_when` written as format 1's table,
    is also its `Field.applies_when`, so the exports code a blank NA where it
    fails (`exports.missing`). The file was
    validated by the format-2 reader first; a problem here is still named
    `FILE:LINE: key.path: problem`.
    """
    data, r = read_source(source, filename)
    head = data.get("protocol") if isinstance(data.get("protocol"), dict) else {}
    r.languages = tuple(str(x) for x in (head or {}).get("languages", ["en"]))
    forms_t = data.get("forms") if isinstance(data.get("forms"), dict) else {}
    plain = {
        name: {
            **form,
            "fields": {  # a `compute` field is computed: refused as input (`forms.check`), filled by the engine
                fname: {k: v for k, v in spec.items() if k not in FORMAT2_FIELD_KEYS}
                | ({"computed": True} if "compute" in spec else {})
                | ({"applies_when": cond} if (cond := _exports_condition(spec)) is not None else {})
                for fname, spec in (form.get("fields") or {}).items()
            },
        }
        for name, form in (forms_t or {}).items()
    }
    forms = _forms(r, {"forms": plain})
    _one_format_per_id(r, forms)
    if r.problems:
        raise ProtocolFileError(r.problems)
    return forms


def _field(r: _Reader, name: str, spec: Any, p: tuple[str | int, ...]) -> Field | None:
    if not _NAME_RE.match(name):
        r.err(p, "field names are lower-case letters, digits and '_' (max 40)")
    spec = r.table(spec, p)
    if not spec:
        return None
    for key in spec:
        if key not in _FIELD_KEYS:
            r.err((*p, key), f"unknown field key (allowed: {', '.join(sorted(_FIELD_KEYS))})")
    ftype = r.get(spec, "type", p, str, default="text")
    if ftype not in FIELD_TYPES:
        r.err((*p, "type"), f"unknown field type {ftype!r} (allowed: {', '.join(FIELD_TYPES)})")
        return None
    hard = r.range_(spec, "hard", p)
    soft = r.range_(spec, "soft", p)
    if (hard or soft) and ftype not in ("number", "integer"):
        r.err(
            (*p, "hard" if hard else "soft"),
            f"ranges apply to number and integer fields, not {ftype}",
        )
    if hard and soft and (soft[0] < hard[0] or soft[1] > hard[1]):
        r.err(
            (*p, "soft"),
            f"soft range {soft[0]:g}..{soft[1]:g} must lie inside the hard range {hard[0]:g}..{hard[1]:g}",
        )
    choices = _choices(r, spec.get("choices"), (*p, "choices"))
    if ftype == "choice" and not choices:
        if "choices" not in spec:
            r.err((*p, "choices"), "a choice field needs choices = [{ code = ..., label = ... }, ...]")
    elif choices and ftype != "choice":
        r.err((*p, "choices"), f"choices apply to choice fields, not {ftype}")
    unit = r.get(spec, "unit", p, str, required=False)
    if unit is not None and ftype not in ("number", "integer"):
        r.err((*p, "unit"), f"units apply to number and integer fields, not {ftype}")
    pattern = r.get(spec, "pattern", p, str, required=False)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            r.err((*p, "pattern"), f"not a valid regular expression: {exc}")
            pattern = None
    if spec.get("multiline") and ftype != "text":
        r.err((*p, "multiline"), f"multiline applies to text fields, not {ftype}")
    id_kind, example = _id_field(r, spec, p, ftype, pattern)
    default = spec.get("default")
    if default is not None and ftype in ("date", "datetime") and default not in ("today", "now"):
        r.err((*p, "default"), 'date and datetime defaults are "today" or "now"')
    if (
        default is not None
        and ftype == "choice"
        and choices
        and not any(str(c.code) == str(default) for c in choices)
    ):
        r.err((*p, "default"), f"default {default!r} is not one of the choice codes")
    cdisc_name = r.get(spec, "cdisc", p, str, required=False)
    if cdisc_name and cdisc_name.startswith("SUPP"):
        # A supplemental qualifier: QNAM <= 8 characters and a QLABEL <= 40 (SAS transport v5).
        if not re.match(r"^SUPP[A-Z]{2}\.[A-Z][A-Z0-9]{0,7}$", cdisc_name):
            r.err((*p, "cdisc"), "a supplemental qualifier is SUPP<domain>.<QNAM>, QNAM 1-8 letters/digits")
        en = spec.get("label", {}).get("en") if isinstance(spec.get("label"), dict) else spec.get("label")
        qlabel = spec.get("cdisc_label") or en
        if not isinstance(qlabel, str) or len(qlabel) > 40:
            r.err((*p, "cdisc_label"), "a supplemental qualifier needs a label of at most 40 characters")
    return Field(
        name=name,
        type=ftype,
        label=r.text(spec, "label", p),
        help=r.text(spec, "help", p, required=False),
        unit=unit,
        required=bool(r.get(spec, "required", p, bool, required=False, default=False)),
        hard=hard,
        soft=soft,
        choices=choices,
        multiple=bool(r.get(spec, "multiple", p, bool, required=False, default=False)),
        cdisc=cdisc_name,
        default=default,
        computed=bool(r.get(spec, "computed", p, bool, required=False, default=False)),
        pattern=pattern,
        max_length=r.get(spec, "max_length", p, int, required=False),
        min_items=r.get(spec, "min_items", p, int, required=False, default=0) or 0,
        allow_future=bool(r.get(spec, "allow_future", p, bool, required=False, default=False)),
        multiline=bool(r.get(spec, "multiline", p, bool, required=False, default=False)),
        applies_when=parse_condition(r, spec["applies_when"], (*p, "applies_when"))
        if spec.get("applies_when") is not None
        else None,
        id_kind=id_kind,
        example=example,
        cdisc_label=_cdisc_text_key(r, spec, "cdisc_label", p, 40),
        cdisc_cat=_cdisc_text_key(r, spec, "cdisc_cat", p, 40),
        reference_range=_reference_range(r, spec, p, ftype),
    )


def _cdisc_text_key(
    r: _Reader, spec: dict[str, Any], key: str, p: tuple[str | int, ...], limit: int
) -> str | None:
    value = r.get(spec, key, p, str, required=False)
    if value is not None:
        _check_cdisc_text(r, (*p, key), value, limit)
    return value


def _reference_range(
    r: _Reader, spec: dict[str, Any], p: tuple[str | int, ...], ftype: str
) -> dict[str, tuple[float, float]] | None:
    """`reference_range = [lo, hi]` or `{ M = [lo, hi], F = [lo, hi] }` (number fields only)."""
    value = spec.get("reference_range")
    if value is None:
        return None
    if ftype not in ("number", "integer"):
        r.err((*p, "reference_range"), f"reference ranges apply to number and integer fields, not {ftype}")
        return None
    if isinstance(value, list):
        rng = r.range_(spec, "reference_range", p)
        return {"": rng} if rng else None
    if not isinstance(value, dict) or not value:
        r.err((*p, "reference_range"), "must be [low, high] or a table per sex, e.g. { M = [..], F = [..] }")
        return None
    out: dict[str, tuple[float, float]] = {}
    for sex in value:
        rng = r.range_(value, sex, (*p, "reference_range"))
        if rng:
            out[str(sex)] = rng
    return out or None


def _trial(r: _Reader, data: dict[str, Any]) -> Trial:
    """The optional `[trial]` table: what a sponsor's Trial Summary (SDTM TS) states."""
    from . import cdisc

    t = r.table(data.get("trial"), ("trial",), required=False)
    if not t:
        return Trial()
    p: tuple[str | int, ...] = ("trial",)
    allowed = {
        "sponsor": None,
        "phase": cdisc.TPHASE,
        "indication": None,
        "indication_type": cdisc.TINDTP,
        "study_type": cdisc.STYPE,
        "intervention_type": cdisc.INTTYPE,
        "intervention_model": cdisc.INTMODEL,
        "blinding": cdisc.TBLIND,
        "control": cdisc.TCNTRL,
        "sex_population": cdisc.SEXPOP,
        "primary_objective": None,
        "stopping_rule": None,
    }
    known = {*allowed, "trial_types", "randomized", "add_on", "healthy_volunteers", "countries"}
    known |= {"site_countries", "planned_participants", "arms"}
    r.only_keys(t, known, p, "trial key")
    texts: dict[str, str] = {}
    for key, terms in allowed.items():
        value = r.get(t, key, p, str, required=key in ("sponsor", "phase", "indication"), default="")
        if value and terms is not None and value not in terms:
            r.err((*p, key), f"{value!r} is not a CDISC term here (allowed: {', '.join(terms)})")
        elif value:
            _check_cdisc_text(r, (*p, key), value, 200)
        texts[key] = value or ""
    types = r.get(t, "trial_types", p, list, required=False, default=[])
    for i, v in enumerate(types):
        if v not in cdisc.TTYPE:
            r.err(
                (*p, "trial_types", i), f"{v!r} is not a CDISC trial type (allowed: {', '.join(cdisc.TTYPE)})"
            )
    countries = r.get(t, "countries", p, list, required=True, default=[])
    for i, c in enumerate(countries):
        if not isinstance(c, str) or not re.match(cdisc.COUNTRY_PATTERN, c):
            r.err((*p, "countries", i), f"{c!r} is not an ISO 3166-1 alpha-3 code (e.g. CHN)")
    site_countries = r.table(t.get("site_countries"), (*p, "site_countries"), required=False)
    for site, c in site_countries.items():
        if not isinstance(c, str) or c not in countries:
            r.err(
                (*p, "site_countries", site),
                f"{c!r} must be one of trial.countries ({', '.join(map(str, countries))})",
            )
    planned = r.get(t, "planned_participants", p, int, required=False)
    if planned is not None and planned < 1:
        r.err((*p, "planned_participants"), "must be 1 or more")
    arms: list[Arm] = []
    for i, a in enumerate(r.get(t, "arms", p, list, required=False, default=[])):
        if not isinstance(a, dict):
            r.err((*p, "arms", i), "must be a table { code = ..., label = ... }")
            continue
        code, label = a.get("code"), a.get("label")
        if not isinstance(code, str) or not re.match(r"^[A-Z0-9_]{1,20}$", code):
            r.err((*p, "arms", i, "code"), "ARMCD: 1-20 upper-case letters, digits or '_'")
        elif not isinstance(label, str):
            r.err((*p, "arms", i, "label"), "missing (the ARM description)")
        else:
            _check_cdisc_text(r, (*p, "arms", i, "label"), label, 200)
            arms.append(Arm(code, label))
    flags = {k: r.get(t, k, p, bool, required=False) for k in ("randomized", "add_on", "healthy_volunteers")}
    return Trial(
        sponsor=texts["sponsor"],
        phase=texts["phase"],
        indication=texts["indication"],
        indication_type=texts["indication_type"],
        trial_types=tuple(str(x) for x in types),
        study_type=texts["study_type"] or "INTERVENTIONAL",
        intervention_type=texts["intervention_type"],
        intervention_model=texts["intervention_model"],
        blinding=texts["blinding"],
        control=texts["control"],
        randomized=flags["randomized"],
        add_on=flags["add_on"],
        healthy_volunteers=flags["healthy_volunteers"],
        sex_population=texts["sex_population"],
        countries=tuple(str(c) for c in countries),
        site_countries={str(k): str(v) for k, v in site_countries.items()},
        planned_participants=planned,
        primary_objective=texts["primary_objective"],
        stopping_rule=texts["stopping_rule"],
        arms=tuple(arms),
    )


def _id_field(
    r: _Reader, spec: dict[str, Any], p: tuple[str | int, ...], ftype: str, pattern: str | None
) -> tuple[str | None, str | None]:
    """(id kind, example) of a field: declared with `id = "kit"`, or implied by `CONTRACT_IDS`.

    An id field's value is normalised and checked by `wardcrf.ids`; its
    `pattern` narrows that rule for this trial (matched ignoring case against
    the normalised id) and its `example` must follow both.
    """
    implied = CONTRACT_IDS.get((str(p[1]), str(p[-1]))) if len(p) == 4 and ftype == "text" else None
    declared = r.get(spec, "id", p, str, required=False)
    id_kind = declared or implied
    if declared is not None:
        if declared not in ids.DECLARABLE:
            r.err((*p, "id"), f"unknown id kind {declared!r} (allowed: {', '.join(ids.DECLARABLE)})")
            return None, None
        if implied and declared != implied:
            r.err((*p, "id"), f"must be {implied!r}: the workflow reads this field as a {implied} id")
            return None, None
        if ftype != "text":
            r.err((*p, "id"), f"ids are text fields, not {ftype}")
            return None, None
    example = r.get(spec, "example", p, str, required=False)
    if example is not None:
        if id_kind is None:
            r.err((*p, "example"), 'an example applies to id fields (id = "kit" or "lot")')
            return id_kind, None
        fmt = re.compile(pattern, re.IGNORECASE) if pattern else None
        try:
            ids.Rule(ids.kind(id_kind), fmt, None).normalise(example)
        except ids.InvalidId as exc:
            r.err((*p, "example"), f"the example does not follow the field's rule: {exc.message}")
            example = None
    return id_kind, example


def _one_format_per_id(r: _Reader, forms: dict[str, Form]) -> None:
    """One product, one label format: every field capturing a kind of id narrows it the same way."""
    seen: dict[str, tuple[str, str | None]] = {}
    for form in forms.values():
        for f in form.fields.values():
            if not f.id_kind:
                continue
            where = f"forms.{form.name}.fields.{f.name}"
            first = seen.setdefault(f.id_kind, (where, f.pattern))
            if first[1] != f.pattern:
                r.err(
                    ("forms", form.name, "fields", f.name, "pattern"),
                    f"differs from the {f.id_kind} id pattern of {first[0]}: one format per kind of id",
                )


_CACHE: dict[str, Protocol] = {}


Format2Reader = Callable[[str, str], Protocol]
_FORMAT2: list[Format2Reader] = []


def read_format_2_with(reader: Format2Reader) -> None:
    """How a stored format-2 source becomes the ward's `Protocol` (`engine.loading` plugs it in, `wardcrf.features`)."""
    _FORMAT2[:] = [reader]


Format1Through = Callable[[Protocol, bool], "Protocol | None"]
_THROUGH: list[Format1Through] = []
_READ_THROUGH: dict[str, Protocol] = {}


def read_format_1_through(reader: Format1Through) -> None:
    """How a stored format-1 version is run by the engine through its format-2 re-encoding (`engine.loading`
    plugs it in, `wardcrf.features`): `reader(p, strict)` gives the ward's `Protocol` the engine runs `p` as;
    when `p` cannot run on the engine it raises `ProtocolFileError` if `strict` (a file being loaded), else
    gives None (a version stored before: read as stored)."""
    _THROUGH[:] = [reader]
    _READ_THROUGH.clear()


def run_as(p: Protocol) -> Protocol:
    """A stored version as the ward runs it: every format-1 version is run by the engine — the one a shipped
    format-2 file re-encodes (its SHA-256 in `reencodes`) on that file, any other on the same declarations
    with its own forms, ranges, schedule and arms (`engine.reencode_v1`) — keeping the stored id, version,
    SHA-256 and source (its records' version reference and its exports' and audits' reading of the stored
    text do not change), with `engine` and the forms the engine reads. A format-2 version as read."""
    if p.engine is not None or not _THROUGH:
        return p
    hit = _READ_THROUGH.get(p.sha256)
    if hit is None:
        hit = _READ_THROUGH[p.sha256] = _THROUGH[0](p, False) or p
    return hit


def check_runs(p: Protocol) -> None:
    """Refuse, before anything is saved, a format-1 file the engine cannot run (`ProtocolFileError`, each
    problem at its line): `protocol load` and a new site's first protocol."""
    if p.engine is None and _THROUGH:
        _READ_THROUGH[p.sha256] = _THROUGH[0](p, True) or p


def declared_format(source: str, filename: str = "<protocol>") -> int:
    """The format a file declares (`[protocol] format`); 1 when it says none. Reads within format 1's limits."""
    data, _ = read_source(source, filename)
    head = data.get("protocol")
    declared = head.get("format", 1) if isinstance(head, dict) else 1
    return 2 if declared == 2 and not isinstance(declared, bool) else 1


def parse_cached(source: str, filename: str = "<protocol>") -> Protocol:
    """`parse`, remembered by content hash (a protocol is read on every form); a format-2 source is read
    by the engine's reader (`read_format_2_with`)."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    hit = _CACHE.get(digest)
    if hit is None:
        if "format" in source and declared_format(source, filename) == 2:
            if not _FORMAT2:
                raise Refused(f"{filename} is a format-2 protocol and the engine's reader is not installed")
            hit = _CACHE[digest] = _FORMAT2[0](source, filename)
        else:
            hit = _CACHE[digest] = parse(source, filename)
    return hit


def read_file(path: Path) -> Protocol:
    """Read and validate a protocol file from disk (at most `MAX_FILE_BYTES`, checked before reading)."""
    return parse(read_text(path), Path(path).name)


def read_text(path: Path) -> str:
    """A protocol file's text (any format): at most `MAX_FILE_BYTES`, checked before reading; UTF-8."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProtocolFileError(
                [
                    f"{Path(path).name}: the file is larger than {MAX_FILE_BYTES // 1024:,} KiB ({size:,} bytes)"
                ]
            )
        source = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise UsageError(f"protocol file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ProtocolFileError([f"{Path(path).name}: not UTF-8 text"]) from None
    except OSError as exc:
        raise UsageError(f"cannot read protocol file {path}: {exc.strerror}") from None
    return source


def default_source() -> str:
    return resources.files("wardcrf.protocols").joinpath(DEFAULT_PROTOCOL).read_text("utf-8")


def default_protocol() -> Protocol:
    return parse_cached(default_source(), DEFAULT_PROTOCOL)


# -- in a site ----------------------------------------------------------------------------


def active(store: SqlStore) -> Protocol:
    """The protocol new records are captured under; `Refused` if none is loaded."""
    row = store.one("SELECT sha256, protocol_id FROM protocols WHERE active = 1")
    if row is None:
        raise Refused("no protocol is loaded on this site (run `wardcrf protocol load FILE`)")
    return _loaded_protocol(store, "active = 1", (), row[0], row[1])


def id_rule(store: Store, kind: str | ids.Kind) -> ids.Rule:
    """The site's rule for a kind of id: its active protocol's format, the built-in one if none is loaded."""
    try:
        proto: Protocol | None = active(store)
    except Refused:  # no protocol loaded on this site: the built-in rule
        proto = None
    return ids.rule(proto, kind)


def id_rule_for(session: Session, kind: str | ids.Kind) -> ids.Rule:
    """`id_rule` for a signed-in user (a scan field checks each id as it goes)."""
    session.require("record.read", what="read the id rules")
    return id_rule(session.store, kind)


def active_for(session: Session) -> Protocol:
    """The active protocol, for a signed-in user (the screens build their forms from it)."""
    session.require("record.read", what="read the protocol")
    return active(session.store)


def _loaded_protocol(store: SqlStore, where: str, params: tuple[Any, ...], sha: str, name: str) -> Protocol:
    """A stored protocol, parsed once per content: its source (tens of KB) is read and hashed
    only until a parse is remembered under its stored SHA-256 (every form asks for it).

    `parse_cached` remembers a parse under the hash of the source it parsed, so a stored hash
    that does not name its source (a row edited around wardcrf) never finds a parse here.
    """
    hit = _CACHE.get(sha)
    if hit is None:
        source = store.scalar(f"SELECT source FROM protocols WHERE {where}", params)
        hit = parse_cached(str(source), f"{name} (loaded)")
    return run_as(hit)


class VersionNotLoaded(Refused):
    """An event names a protocol version this device has not loaded (it came by sync or a restore before
    the version's `protocol.loaded`, or from a laptop that loaded a version this one never did).

    Never stood in for by another version: its forms, labels, choices and ranges are unknown here, so a
    record captured under it is shown as stored, not validated, not amended and not exported
    (docs/protocol.md, "A record's own version").
    """

    def __init__(self, protocol_id: str, version_: str) -> None:
        self.protocol_id = protocol_id
        self.version = version_
        super().__init__(
            f"protocol {_excerpt(protocol_id)} {_excerpt(version_)} is not loaded on this laptop "
            "(load it with `wardcrf protocol load FILE`)"
        )

    @property
    def named(self) -> str:
        """The version as a sentence names it: its id and version, e.g. ``TRIAL 1.2``."""
        return f"{_excerpt(self.protocol_id)} {_excerpt(self.version)}"


def version(store: SqlStore, ref: Mapping[str, str] | None) -> Protocol:
    """The protocol version an event was captured under, exactly.

    An event that names no version (none was loaded when it was written) is read under the active one.
    An event naming a version not loaded here raises `VersionNotLoaded`: never the active one instead,
    which would read the record with another version's labels, choices and ranges.
    """
    if not ref:
        return active(store)
    key = (str(ref.get("id", "")), str(ref.get("version", "")))
    row = store.one("SELECT sha256, protocol_id FROM protocols WHERE protocol_id = ? AND version = ?", key)
    if row is None:
        raise VersionNotLoaded(*key)
    return _loaded_protocol(store, "protocol_id = ? AND version = ?", key, row[0], row[1])


def record_not_loaded(record_id: str, missing: VersionNotLoaded, consequence: str) -> str:
    """The one line for a record whose version is not loaded here: which record, which version, what
    follows (`consequence`: shown as stored, not amended, not exported) and how to load it."""
    return (
        f"record {record_id} was captured under {missing.named}, which is not loaded on this laptop: "
        f"{consequence}; load it with `wardcrf protocol load FILE`"
    )


def captured_under(store: Store, event_id: str) -> dict[str, str] | None:
    """The version an event names ({"id", "version"}), read from its line; None when it names none.

    The line is read in Python (either engine: a PostgreSQL hub's events too)."""
    line = store.scalar("SELECT line FROM events WHERE id = ?", (event_id,))
    if line is None:
        return None
    ref = json.loads(line).get("protocol")
    if not isinstance(ref, dict) or ref.get("id") is None or ref.get("version") is None:
        return None
    return {"id": str(ref["id"]), "version": str(ref["version"])}


SHOWN_AS_STORED = "shown as stored, not validated"


def record_definition(
    store: Store, event_id: str, form: str
) -> tuple[Form | None, dict[str, str] | None, str | None]:
    """The form a record was captured under, the version its event names, and the notice when that
    version is not loaded here (then no form: the record is read as stored, field codes and stored
    values, never under the active version's labels, choices and units). No protocol loaded at all:
    no form and no notice."""
    ref = captured_under(store, event_id)
    try:
        proto = version(store, ref)
    except VersionNotLoaded as missing:
        return None, ref, record_not_loaded(event_id, missing, SHOWN_AS_STORED)
    except Refused:  # no protocol loaded on this site: nothing to label with
        return None, ref, None
    return proto.forms.get(form), ref, None


def is_loaded(store: Store, ref: Mapping[str, str] | None) -> bool:
    """Whether the version `ref` names is loaded on this device (an event naming none: yes, the active)."""
    if not ref:
        return True
    return (
        store.one(
            "SELECT 1 FROM protocols WHERE protocol_id = ? AND version = ?",
            (str(ref.get("id", "")), str(ref.get("version", ""))),
        )
        is not None
    )


def loaded_version(store: Store, protocol_id: str, version_: str) -> Protocol:
    """A version loaded on this site, exactly (never the active one instead); `Refused` naming the loaded ones."""
    key = (protocol_id, version_)
    row = store.one("SELECT sha256, protocol_id FROM protocols WHERE protocol_id = ? AND version = ?", key)
    if row is None:
        have = ", ".join(f"{r['protocol_id']}@{r['version']}" for r in loaded_versions(store)) or "none"
        raise Refused(
            f"protocol {_excerpt(protocol_id)} version {_excerpt(version_)} is not loaded on this site "
            f"(loaded: {have})"
        )
    return _loaded_protocol(store, "protocol_id = ? AND version = ?", key, row[0], row[1])


def loaded_versions(store: Store) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT p.protocol_id, p.version, p.sha256, p.loaded_event, p.active, e.ts AS loaded_at"
        " FROM protocols p JOIN events e ON e.id = p.loaded_event ORDER BY e.pos"
    )


AfterLoad = Callable[[Any, Protocol | None], object]
"""`fn(session, previous)`: work a feature does in the load's transaction once a version is active (the
cold chain judges the readings already imported against the products it adds); `previous` is the version
active before, None on a site that had none."""
_AFTER_LOAD: list[AfterLoad] = []


def after_load(fn: AfterLoad) -> None:
    if fn not in _AFTER_LOAD:
        _AFTER_LOAD.append(fn)


class LoadedFile(TypedDict):
    """One file loaded under a version, and the devices that loaded it."""

    sha256: str
    devices: list[str]


class ContentConflict(TypedDict):
    """A version loaded with different files by different devices; `held` is the file records are read under."""

    protocol_id: str
    version: str
    held: str | None
    files: list[LoadedFile]


def content_conflicts(store: SqlStore, *, wards: SqlStore | None = None) -> list[ContentConflict]:
    """Versions loaded with different files under one id and version, by different devices (a hub's log).

    One laptop refuses a second file under a loaded version ("already loaded with different content"),
    but two laptops can each load their own file as the same version. The `protocols` projection keeps the first
    file a store received, and events name only the id and version, so the other laptop's records are
    read under a file they were not entered under. Said, not guessed: each conflict lists every file
    (SHA-256) with the devices that loaded it, and which one this store reads records under (`held`).
    """
    files: dict[tuple[str, str], dict[str, list[str]]] = {}
    for db in (
        (store,) if wards is None else (store, wards)
    ):  # a PostgreSQL hub: its own loads, then the wards'
        for pid, ver, sha, device in db.execute(
            f"SELECT {db.json_text('line', 'body', 'protocol_id')}, {db.json_text('line', 'body', 'version')},"
            f" {db.json_text('line', 'body', 'sha256')}, device FROM events WHERE type = 'protocol.loaded'"
            " ORDER BY pos"
        ):
            devices = files.setdefault((str(pid), str(ver)), {}).setdefault(str(sha), [])
            if device not in devices:
                devices.append(str(device))
    out: list[ContentConflict] = []
    for (pid, ver), by_sha in files.items():
        if len(by_sha) < 2:
            continue
        held = (wards or store).scalar(
            "SELECT sha256 FROM protocols WHERE protocol_id = ? AND version = ?", (pid, ver)
        )
        out.append(
            {
                "protocol_id": pid,
                "version": ver,
                "held": str(held) if held is not None else None,
                "files": [{"sha256": sha, "devices": devices} for sha, devices in by_sha.items()],
            }
        )
    return out


def conflict_line(c: Mapping[str, Any]) -> str:
    """One line for a `content_conflicts` entry."""
    files = "; ".join(f"sha256:{str(f['sha256'])[:12]}… by {', '.join(f['devices'])}" for f in c["files"])
    held = f"sha256:{str(c['held'])[:12]}…" if c.get("held") else "none"
    return (
        f"{_excerpt(str(c['protocol_id']))} {_excerpt(str(c['version']))} was loaded with different files "
        f"({files}): every record of it is read here under {held}; compare the files (`wardcrf protocol "
        "diff`) before trusting the other laptops' records, and give a changed file a new version"
    )


def load(session: Any, protocol: Protocol) -> Event:
    """Load a protocol version into the site (admin, investigator) and make it active.

    The features' `after_load` work runs in the same transaction: all of it is saved, or none.
    """
    session.require("protocol.load", what="load protocol files")
    check_runs(protocol)
    try:
        previous: Protocol | None = active(session.store)
    except Refused:
        previous = None
    before = session.protocol
    try:
        with session.store.transaction():
            event = record_loaded(session.store, session.ctx, session.author, protocol)
            session.protocol = protocol.ref
            for fn in _AFTER_LOAD:
                fn(session, previous)
    except BaseException:
        session.protocol = before
        raise
    return event


def record_loaded(store: Store, ctx: Any, author: Any, protocol: Protocol) -> Event:
    """Append `protocol.loaded` (also used by `Site.init`, before any session exists)."""
    from .eventlog import append

    row = store.one(
        "SELECT sha256 FROM protocols WHERE protocol_id = ? AND version = ?",
        (protocol.id, protocol.version),
    )
    if row is not None:
        if row[0] == protocol.sha256:
            raise Refused(f"protocol {protocol.id} version {protocol.version} is already loaded")
        raise Refused(
            f"protocol {protocol.id} version {protocol.version} is already loaded with different "
            "content; give the changed file a new version"
        )
    return append(
        store,
        ctx,
        author,
        type="protocol.loaded",
        subject=f"protocol:{protocol.id}",
        body={
            "protocol_id": protocol.id,
            "version": protocol.version,
            "sha256": protocol.sha256,
            "filename": protocol.filename,
            "source": protocol.source,
        },
    ).event


@common_dialect
def _loaded(store: Store, e: Event) -> None:
    b = e.body
    store.execute("UPDATE protocols SET active = 0 WHERE active = 1")
    store.execute(
        "INSERT INTO protocols (protocol_id, version, sha256, source, loaded_event, active)"
        " VALUES (?,?,?,?,?,1) ON CONFLICT (protocol_id, version) DO UPDATE SET active = 1",
        # The same version loaded on two laptops of a site arrives twice at a hub: keep the first.
        (b["protocol_id"], b["version"], b["sha256"], b["source"], e.id),
    )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_loaded, "protocol.loaded")
