"""A format-2 protocol file (docs/protocol.md) read, validated and frozen into one `Model`.

The model is the only thing that reads a format-2 file; everything else asks
the model. Reading reuses format 1's machinery (`wardcrf.protocol_file.read_source`:
the size, character and nesting limits before the TOML parser, finite numbers
and bounded strings after it, every problem as `FILE:LINE: key.path: problem`),
then checks, collecting every problem before refusing:

1. the structure against `protocol-2.schema.json` (shipped beside the files,
   also an editor's completion schema), expressions parsed as a JSON Schema
   format so a malformed one is named with its key path and column;
2. cross-references the schema cannot express (arm -> regimen, regimen ->
   product and form, record roles -> fields, visit -> form, anchors),
   windows with `before <= after`, dose bands that neither overlap nor leave
   a gap, unique codes;
3. the names in criteria and rules against the forms, fields and codes.

What the schedule engine needs is typed (`Regimen`, `Administration`,
`Dose`, `ScheduleSpec`, `Calendar`); every other table is kept validated and
frozen in `Model.data` until the part of the engine that runs it is built
(docs/engine.md says which parts exist).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wardcrf import protocol as format1
from wardcrf import protocol_file, protocol_review
from wardcrf.engine import expressions, form_sections, record_roles
from wardcrf.errors import Refused
from wardcrf.protocol_review import ReviewPlan

SCHEMA_FILE = "protocol-2.schema.json"
EXPRESSION_FORMAT = "wardcrf-expression"
DURATION_FORMAT = "wardcrf-duration"
SHIPPED = ("mexcovid.toml", "palm.toml", "palm007.toml")

REFUSAL_NAMES = {
    "course_complete": expressions.PROVIDED | {"n", "planned"},
    "per_day": expressions.PROVIDED | {"n", "record", "date", "per_day"},
    "before_first_day": expressions.PROVIDED | {"date", "first_day"},
    "kit_used": expressions.PROVIDED | {"kit", "holder", "n", "record"},
}
"""An administration's `refusals`: the engine's built-in refusals it words (docs/protocol.md, "Recording"),
and the names each provides besides the participant's expressions: `{n}` the administration number (the
one refused after a complete course; the other one's on a full day or a used kit), `{planned}` the
course's number of administrations, `{record}` the other record, `{date}` the local date of the start,
`{per_day}` the day's limit, `{first_day}` the local date of the first administration's day, `{kit}` the
kit's key and `{holder}` the participant who had it."""

ASSESSMENT_REFUSAL_NAMES = {
    "not_given": expressions.PROVIDED | {"n", "time"},
    "before_end": expressions.PROVIDED | {"n", "time", "end"},
    "not_next": expressions.PROVIDED | {"n", "time", "next"},
    "after_start": expressions.PROVIDED | {"n", "time", "start"},
}
"""A dose assessment's `refusals` (docs/protocol.md, "[[dose_assessments]]") and the names each provides:
`{n}` the administration it names, `{time}` when it was taken, `{end}`/`{start}` the administration's,
`{next}` the administration to give next."""

Path_ = tuple[str | int, ...]


# A file of either format that cannot be used: every problem, each `FILE:LINE: key.path: problem`.
ProtocolFileError = protocol_file.ProtocolFileError


# -- where a key path is in the file -------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


class _Reader(protocol_file._Reader):
    """Format 1's reader, locating array elements too (format 2 is mostly arrays of tables).

    Format 1's locator ignores indices: `regimens[2].window` would point at the
    first `[[regimens]]`. Here every `[[a.b]]` header is resolved to its
    element's index path as TOML does (a nested array belongs to the latest
    element of its parent), and the key path's longest header prefix wins.
    """

    def __init__(self, filename: str, source: str) -> None:
        super().__init__(filename, source)
        self._headers = list(_resolved_headers(self.lines))

    def line(self, path: Path_) -> int | None:
        best, start = -1, -1
        for index, resolved in self._headers:
            n = len(resolved)
            if n > best and tuple(path[:n]) == resolved:
                best, start = n, index
        if start < 0:
            return protocol_file._line_of(self.lines, path)
        pos = start
        for key in path[best:]:
            if isinstance(key, int):
                continue
            pat = re.compile(r"(^|[\s{,.])" + re.escape(key) + r"\s*[=.]")
            for j in range(pos, len(self.lines)):
                if j > start and _HEADER.match(self.lines[j]):
                    break
                if pat.search(self.lines[j]):
                    pos = j
                    break
            else:
                break
        return pos + 1


def _resolved_headers(lines: list[str]) -> Iterator[tuple[int, Path_]]:
    counts: dict[Path_, int] = {}
    for i, text in enumerate(lines):
        m = _HEADER.match(text)
        if not m:
            continue
        keys = [k.strip().strip('"') for k in m.group(2).split(".")]
        array = m.group(1) == "[["
        out: list[str | int] = []
        for j, key in enumerate(keys):
            out.append(key)
            prefix = tuple(out)
            if j == len(keys) - 1 and array:
                counts[prefix] = counts.get(prefix, 0) + 1
                out.append(counts[prefix] - 1)
            elif prefix in counts:
                out.append(counts[prefix] - 1)
        yield i, tuple(out)


# -- the typed parts the schedule engine runs ------------------------------------------------

_DURATION = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]+)?)(min|h|d|w)$")
_UNIT = {
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


MAX_DURATION = timedelta(days=3660)  # ten years: longer than any trial's follow-up


def duration(text: str) -> timedelta:
    """`"30min"`, `"+2h"`, `"-2d"`, `"1w"` as a timedelta, at most ten years either way."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 30min, +2h, -1d, 1w)")
    amount = float(m.group(2))
    if amount * (_UNIT[m.group(3)] / timedelta(days=1)) > MAX_DURATION.days:
        raise ValueError(f"{text!r} is longer than {MAX_DURATION.days} days")
    value = _UNIT[m.group(3)] * amount
    return -value if m.group(1) == "-" else value


class Quantity(TypedDict):
    """An amount with its unit, as a protocol writes one (`{ value = 50, unit = "mg" }`): a product's
    strength, a prescribed dose, a dose recorded."""

    value: float
    unit: str


@dataclass(frozen=True)
class Calendar:
    """How days are counted: the anchor's own date is day `anchor_day`; times are local to `zone`."""

    anchor_day: int = 0
    zone: str | None = None  # None: the site's zone


@dataclass(frozen=True)
class Band:
    """Weights in `[low, high)` kilograms get `dose` (fixed) or `per_kg` times the weight."""

    low: Decimal
    high: Decimal
    dose: Decimal | None = None
    per_kg: Decimal | None = None


@dataclass(frozen=True)
class Dose:
    """A regimen's dose: fixed, per kilogram, or by weight band; rounded half up to `round_to`, capped at `max`."""

    unit: str
    fixed: Decimal | None = None
    per_kg: Decimal | None = None
    bands: tuple[Band, ...] = ()
    weight: str | None = None  # a participant expression giving kilograms (evaluated by the caller)
    round_to: Decimal | None = None
    max: Decimal | None = None

    @property
    def by_weight(self) -> bool:
        return self.fixed is None

    def prescribe(self, weight_kg: Decimal | float | None = None) -> Decimal:
        """The prescribed dose for a weight (kg); a `Refused` naming the weight when no rule covers it.

        Decimal arithmetic: 2.5 mg/kg x 33.3 kg is 83.25 mg, never 83.24999.
        """
        if self.fixed is not None:
            return self.fixed
        if weight_kg is None:
            raise Refused(f"the dose is by weight ({self.unit}/kg) and no weight is recorded")
        w = Decimal(str(weight_kg))
        if not w.is_finite() or w <= 0:
            raise Refused(f"weight {weight_kg} kg: a weight must be a positive number of kilograms")
        value: Decimal
        if self.per_kg is not None:
            value = self.per_kg * w
        else:
            band = next((b for b in self.bands if b.low <= w < b.high), None)
            if band is None:
                bands = ", ".join(f"[{b.low}, {b.high})" for b in self.bands)
                raise Refused(f"weight {w} kg is in none of the dose's weight bands (kg: {bands})")
            value = band.dose if band.dose is not None else (band.per_kg or Decimal(0)) * w
        if self.round_to is not None:
            steps = (value / self.round_to).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            value = steps * self.round_to
        if self.max is not None and value > self.max:
            value = self.max
        return value.normalize() if value == value.to_integral() else value


@dataclass(frozen=True)
class ScheduleSpec:
    """Where an administration's slots fall: from `anchor`'s day `first_day`, `every` days, `count` in all."""

    anchor: str
    first_day: int
    every_days: int = 1
    count_min: int = 1
    count_max: int = 1
    times: tuple[time, ...] = ()  # due times of each day; () = due on the day, any time
    per_day: int = 1
    min_spacing: timedelta = timedelta(0)
    stop_when: str | None = None  # ends a variable course (evaluated by the caller)


@dataclass(frozen=True)
class Administration:
    code: str
    product: str
    route: str
    frequency: str
    dose: Dose
    schedule: ScheduleSpec
    window: tuple[timedelta, timedelta]
    closing: timedelta | None  # None: a quarter of the window
    late_until: str  # window | next | course_end
    numbering: str  # slot | given
    worklist: str
    record: Mapping[str, str]
    when: str | None = None
    frequency_extended: str = ""  # a sponsor term of CDISC FREQ (extensible): what `frequency` means


@dataclass(frozen=True)
class Regimen:
    code: str
    label: str
    administrations: tuple[Administration, ...]


@dataclass(frozen=True)
class Arm:
    code: str
    regimens: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    """One format-2 protocol version, validated and immutable."""

    id: str
    version: str
    sha256: str
    source: str
    calendar: Calendar
    arms: tuple[Arm, ...]
    regimens: Mapping[str, Regimen]
    products: frozenset[str]
    data: Mapping[str, Any]  # the whole file, frozen (mappings read-only, lists as tuples)
    review: ReviewPlan = field(default_factory=ReviewPlan)  # [audit_review]: what the trail review flags

    def regimens_of(self, arm: str | None = None) -> tuple[Regimen, ...]:
        """The regimens of an arm (None: a single-arm trial's only arm)."""
        if arm is None:
            if len(self.arms) != 1:
                raise Refused(f"the protocol has {len(self.arms)} arms: name the participant's arm")
            arm = self.arms[0].code
        for a in self.arms:
            if a.code == arm:
                return tuple(self.regimens[r] for r in a.regimens)
        raise Refused(
            f"arm {arm!r} is not an arm of {self.id} {self.version} ({', '.join(a.code for a in self.arms)})"
        )


# -- reading -------------------------------------------------------------------------------------


@cache
def _schema_text() -> str:
    return resources.files("wardcrf.protocols").joinpath("engine", SCHEMA_FILE).read_text("utf-8")


@cache
def schema() -> Mapping[str, Any]:
    loaded: dict[str, Any] = json.loads(_schema_text())
    return loaded


VOUCHED = frozenset(
    {
        "b6b5d458f6331c744b2a8cfb797aaee1f010647e3f26113c97c42b88cd8fb09e",  # mexcovid.toml
        "5ae3378bb2c6a2fe787193a86ef34c917f5957d88c0ead2c1183518c30e8cd2c",  # palm.toml
        "66553bd415bf4983f6c395670083a18876b888e80b3f29aa19c13b782cac6fba",  # palm007.toml
    }
)
"""`vouch_key` of each shipped file the JSON-schema check passes, as tests/unit/test_protocol_vouched.py
re-runs it on every run of the suite. The check (jsonschema's import and its walk over the file) was 0.09 of
the 0.145 s CPU a fresh process spends reading the format-1 re-encoding: a hub importing one bundle paid it
whole. A file not byte-identical to a vouched one (a user's, a bundle's, a shipped file
edited since) is checked as ever; so is every file once the schema's own text changes."""


def vouch_key(source: str) -> str:
    """SHA-256 of the schema's text and `source`: what `VOUCHED` holds for a file the check passed."""
    return hashlib.sha256(_schema_text().encode("utf-8") + b"\0" + source.encode("utf-8")).hexdigest()


def _expression_format(value: object) -> bool:
    if isinstance(value, str):
        expressions.parse(value)  # ExprError: the cause named in the problem
    return True


def _duration_format(value: object) -> bool:
    if isinstance(value, str):
        duration(value)  # ValueError: the cause named in the problem
    return True


@cache
def _validator() -> Any:
    # jsonschema is imported when a format-2 file is first read, not when the ward's schedule
    # (engine.due -> engine.schedule -> this module) is imported on the TUI's start-up path.
    import jsonschema

    formats = jsonschema.FormatChecker(formats=())
    formats.checks(EXPRESSION_FORMAT, raises=expressions.ExprError)(_expression_format)
    formats.checks(DURATION_FORMAT, raises=ValueError)(_duration_format)
    s = json.loads(json.dumps(schema()))
    s["$defs"]["expr"]["format"] = EXPRESSION_FORMAT
    s["$defs"]["duration"]["format"] = DURATION_FORMAT
    cls = jsonschema.validators.validator_for(s)
    return cls(s, format_checker=formats)


def shipped_source(name: str) -> str:
    return resources.files("wardcrf.protocols").joinpath("engine", name).read_text("utf-8")


def read_file(path: Path) -> Model:
    """Read and validate a format-2 file (size checked before reading, as format 1)."""
    return parse(format1.read_text(path), Path(path).name)


def parse(source: str, filename: str = "<protocol>") -> Model:
    """Validate a format-2 file and build its model; `ProtocolFileError` names every problem."""
    data, base = protocol_file.read_source(source, filename, _Reader)
    r: _Reader = base  # type: ignore[assignment]
    head = data.get("protocol")
    if isinstance(head, dict) and head.get("format") != 2:
        r.err(
            ("protocol", "format"), "must be 2 for this reader (a format-1 file is read by wardcrf.protocol)"
        )
    if vouch_key(source) not in VOUCHED:
        _schema_problems(r, data)
    review = ReviewPlan()
    if not r.problems:  # references assume the structure is right
        _references(r, data)
        review = protocol_review.parse(r, data, _form_fields(data))
    if r.problems:
        raise ProtocolFileError(r.problems)
    return replace(_build(data, source), review=review)


@dataclass(frozen=True)
class _FormFields:
    """What the shared `[audit_review]` reader asks of a form: its field names."""

    fields: Mapping[str, Any]


def _form_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _FormFields(dict(form.get("fields") or {})) for name, form in (data.get("forms") or {}).items()
    }


def _schema_problems(r: _Reader, data: dict[str, Any]) -> None:
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        leaf = _leaf(error)
        path = tuple(leaf.absolute_path)
        if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
            extra = sorted(set(leaf.instance) - set(leaf.schema.get("properties", {})))
            path = (*path, extra[0]) if len(extra) == 1 else path  # the line of the unknown key itself
        r.err(path, _message(leaf))


def _leaf(error: Any) -> Any:
    """The most telling error of a `oneOf`/`anyOf`: a malformed expression before "matches none"."""
    if not error.context:
        return error
    for sub in error.context:
        if sub.validator == "format":
            return sub
    import jsonschema

    return jsonschema.exceptions.best_match(error.context)


def _message(error: Any) -> str:
    if error.validator == "format" and isinstance(error.cause, expressions.ExprError):
        return f"expression {error.cause}"
    if error.validator == "format" and isinstance(error.cause, ValueError):
        return str(error.cause)
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key {', '.join(map(repr, extra))} (allowed: {allowed})"
    if error.validator == "enum":
        return f"{_short(error.instance)} is not allowed (allowed: {', '.join(map(repr, error.validator_value))})"
    if error.validator == "pattern":
        return f"{_short(error.instance)} does not have the required form ({error.validator_value})"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return f"{_short(error.instance)}: {error.message.split(' is ', 1)[-1] if ' is ' in error.message else error.message}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _codes(items: Any, key: str = "code") -> list[str]:
    return [str(x.get(key)) for x in items or [] if isinstance(x, dict)]


def _references(r: _Reader, data: dict[str, Any]) -> None:
    """What refers to what, and the arithmetic the schema cannot state."""
    forms: dict[str, Any] = data.get("forms", {})
    for table in (
        "arms",
        "regimens",
        "products",
        "visits",
        "criteria",
        "gates",
        "rules",
        "deviations",
        "anchors",
    ):
        seen: set[str] = set()
        key = "name" if table == "anchors" else "code"
        for i, item in enumerate(data.get(table, [])):
            code = item.get(key)
            if code in seen:
                r.err((table, i, key), f"{code!r} is used twice: codes are unique")
            seen.add(code)
    zone = data.get("calendar", {}).get("zone")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            r.err(
                ("calendar", "zone"),
                f"{zone!r} is not a time zone of the IANA database (e.g. Africa/Kinshasa)",
            )
    regimens = set(_codes(data.get("regimens")))
    products = set(_codes(data.get("products")))
    anchors = expressions.BUILTIN_ANCHORS | set(_codes(data.get("anchors"), "name"))
    for i, arm in enumerate(data.get("arms", [])):
        for j, code in enumerate(arm.get("regimens", [])):
            if code not in regimens:
                r.err(("arms", i, "regimens", j), f"regimen {code!r} is not declared ({_list(regimens)})")
    for i, reg in enumerate(data.get("regimens", [])):
        p: Path_ = ("regimens", i)
        if "same_as" in reg and reg["same_as"] not in regimens:
            r.err((*p, "same_as"), f"regimen {reg['same_as']!r} is not declared ({_list(regimens)})")
        for key, product in (reg.get("products") or {}).items():
            if product not in products:
                r.err((*p, "products", key), f"product {product!r} is not declared ({_list(products)})")
        for j, adm in enumerate(reg.get("administrations", [])):
            _administration(r, (*p, "administrations", j), adm, products, anchors, forms)
    _cumulative_columns(r, data)
    for i, visit in enumerate(data.get("visits", [])):
        named = visit.get("anchor")
        several = "anchor" in visit and not isinstance(
            named, str
        )  # `anchor = [A, B]`: the first that happened
        for j, anchor in enumerate(named if several else [named] if "anchor" in visit else []):
            if anchor not in anchors:
                where: Path_ = ("visits", i, "anchor", j) if several else ("visits", i, "anchor")
                r.err(where, f"anchor {anchor!r} is not declared ({_list(anchors)})")
        if "window" in visit:
            _window(r, ("visits", i, "window"), visit["window"])
        _per_administration(r, i, visit, regimens, data)
        for j, form in enumerate(visit.get("forms", [])):
            name = form.get("form") if isinstance(form, dict) else form
            if name not in forms:
                r.err(("visits", i, "forms", j), f"form {name!r} is not declared")
    for i, da in enumerate(data.get("dose_assessments", [])):
        if da.get("form") not in forms:
            r.err(("dose_assessments", i, "form"), f"form {da.get('form')!r} is not declared")
    for i, anchor in enumerate(data.get("anchors", [])):
        _anchor(r, i, anchor, forms)
    for i, product in enumerate(data.get("products", [])):
        _preparation(r, i, product)
    _strata(r, data, forms)
    _safety(r, data, forms)
    record_roles.check(r.err, data, forms)
    for name, form in forms.items():
        if "sections" in form:  # a scored grid (docs/protocol.md, "Sections: a scored grid")
            fields = form_sections.shapes_of_spec(form.get("fields") or {})
            form_sections.check(r.err, ("forms", name, "sections"), form["sections"], fields)
    _names(r, data)
    _analysis_tables(r, data)


def _analysis_tables(r: _Reader, data: dict[str, Any]) -> None:
    """`[[analysis.characteristics]]` (participant expressions), `[[analysis.series]]` (number fields of a
    form recorded at declared dose assessments) and each endpoint's `from` (an anchor) name what exists: the
    reports read them."""
    analysis = data.get("analysis") or {}
    forms: dict[str, Any] = data.get("forms", {})
    once = frozenset(name for name, f in forms.items() if _once(f) or name == "enrollment")
    anchors = expressions.BUILTIN_ANCHORS | frozenset(_codes(data.get("anchors"), "name"))
    participant = expressions.Scope(forms, once, anchors)
    for i, ep in enumerate(analysis.get("endpoints", [])):
        if "from" in ep and ep["from"] not in anchors:  # the origin an endpoint's days are counted from
            r.err(
                ("analysis", "endpoints", i, "from"),
                f"{ep['from']!r} is not an anchor ({_list(set(anchors))})",
            )
    seen: set[str] = set()
    for i, item in enumerate(analysis.get("characteristics", [])):
        p: Path_ = ("analysis", "characteristics", i)
        code = item["code"]
        if code == "n":
            r.err(
                (*p, "code"), "'n' is the number of participants the report counts: name the characteristic"
            )
        elif code in seen:
            r.err((*p, "code"), f"{code!r} is used twice: codes are unique")
        seen.add(code)
        for problem in expressions.check(item["value"], participant):
            r.err((*p, "value"), problem)
    assessments = {str(da.get("code")): da for da in data.get("dose_assessments", [])}
    seen = set()
    for i, item in enumerate(analysis.get("series", [])):
        p = ("analysis", "series", i)
        if item["code"] in seen:
            r.err((*p, "code"), f"{item['code']!r} is used twice: codes are unique")
        seen.add(item["code"])
        form = item["form"]
        if form not in forms:
            r.err((*p, "form"), f"form {form!r} is not declared")
            continue
        fields = forms[form].get("fields") or {}
        for j, name in enumerate(item["fields"]):
            if (fields.get(name) or {}).get("type") not in ("number", "integer"):
                numbers = sorted(f for f, spec in fields.items() if spec.get("type") in ("number", "integer"))
                r.err(
                    (*p, "fields", j),
                    f"{name!r} is not a number or integer field of form {form!r} ({_list(set(numbers))})",
                )
        places: list[tuple[Path_, str]] = [((*p, "points", j), c) for j, c in enumerate(item["points"])]
        for where, code in [*places, ((*p, "compare"), item["compare"])]:
            da = assessments.get(code)
            if da is None:
                r.err(where, f"{code!r} is not a [[dose_assessments]] code ({_list(set(assessments))})")
            elif da.get("form") != form:
                r.err(where, f"dose assessment {code!r} records form {da.get('form')!r}, not {form!r}")
            elif not da.get("link"):
                r.err(where, f"dose assessment {code!r} has no `link`: its records name no administration")


def _preparation(r: _Reader, i: int, product: dict[str, Any]) -> None:
    """A preparation step at the pharmacy is recorded by the pharmacist against a kit of the cold chain
    (`coldchain.services.record_preparation`), so its product is under custody (`storage`); its `fields` are
    what that record asks (the diluted volume, ...): a number's range in order, a choice with its choices."""
    for j, step in enumerate(product.get("preparation", [])):
        p: Path_ = ("products", i, "preparation", j)
        at = step.get("at", "bedside")
        if at == "pharmacy" and "storage" not in product:
            r.err(
                (*p, "at"),
                f"a step at the pharmacy is recorded against a kit in the cold chain: product "
                f"{product.get('code')} needs storage = {{ min_c, max_c }}",
            )
        fields = step.get("fields") or {}
        if fields and at != "pharmacy":
            r.err(
                (*p, "fields"),
                'fields are recorded with a preparation at the pharmacy (at = "pharmacy"); '
                "a step at the bedside records its start and end",
            )
        for name, spec in fields.items():
            q: Path_ = (*p, "fields", name)
            ftype = spec.get("type")
            numeric = ftype in ("number", "integer")
            if "hard" in spec and not numeric:
                r.err((*q, "hard"), f"ranges apply to number and integer fields, not {ftype}")
            elif "hard" in spec and spec["hard"][0] > spec["hard"][1]:
                r.err((*q, "hard"), f"the range's low end {spec['hard'][0]} is above its high end")
            if "unit" in spec and not numeric:
                r.err((*q, "unit"), f"units apply to number and integer fields, not {ftype}")
            if ftype == "choice" and not spec.get("choices"):
                r.err(q, "a choice field needs choices = [{ code = ..., label = ... }, ...]")
            if spec.get("choices") and ftype != "choice":
                r.err((*q, "choices"), f"choices apply to choice fields, not {ftype}")
            if "max_length" in spec and ftype != "text":
                r.err((*q, "max_length"), f"max_length applies to text fields, not {ftype}")


def _anchor(r: _Reader, i: int, anchor: Mapping[str, Any], forms: Mapping[str, Any]) -> None:
    """A declared anchor (`[[anchors]]`): a new name, the date or datetime field of a declared form, and
    which record gives it when the form can be recorded more than once (`pick`)."""
    p: Path_ = ("anchors", i)
    if anchor.get("name") in expressions.BUILTIN_ANCHORS:
        r.err(
            (*p, "name"),
            f"{anchor['name']!r} is a built-in anchor (the ward dates it itself): give this one another name",
        )
    form = forms.get(str(anchor.get("form")), {})
    if not form:
        r.err((*p, "form"), f"form {anchor.get('form')!r} is not declared")
        return
    field_ = form.get("fields", {}).get(anchor.get("field"))
    if field_ is None:
        r.err((*p, "field"), f"form {anchor['form']} has no field {anchor.get('field')!r}")
    elif field_.get("type") not in ("date", "datetime"):
        r.err(
            (*p, "field"),
            f"{anchor['form']}.{anchor['field']} is a {field_.get('type', 'text')} field: an anchor is a date "
            "or datetime field",
        )
    if "pick" not in anchor and not _once(form) and anchor.get("form") != "enrollment":
        r.err(
            (*p, "form"),
            f"form {anchor['form']} can be recorded more than once: say which record dates the anchor "
            '(pick = "first" or "last", with an optional where)',
        )


def _per_administration(
    r: _Reader, i: int, visit: dict[str, Any], regimens: set[str], data: dict[str, Any]
) -> None:
    """A visit that repeats per administration (`repeat = { per = "administration", regimen = R }`) is
    placed by R's schedule: one occurrence per administration, due and windowed with it, numbered with it."""
    repeat = visit.get("repeat")
    if not isinstance(repeat, dict) or "per" not in repeat:
        return
    p: Path_ = ("visits", i)
    if repeat.get("regimen") not in regimens:
        r.err(
            (*p, "repeat", "regimen"),
            f"regimen {repeat.get('regimen')!r} is not declared ({_list(regimens)})",
        )
    if visit.get("type", "scheduled") != "scheduled":
        r.err((*p, "type"), "a visit that repeats per administration is scheduled (its administrations are)")
    if "num" not in visit:
        r.err(p, "num is required: the first occurrence's VISITNUM (the next ones num + step, ...)")
    for key in ("anchor", "day", "window"):
        if key in visit:
            r.err(
                (*p, key),
                "a visit that repeats per administration is due and windowed with each administration of "
                f"regimen {repeat.get('regimen')}: remove {key}",
            )
    twins = {repeat.get("regimen")} | {
        reg.get("code") for reg in data.get("regimens", []) if reg.get("same_as") == repeat.get("regimen")
    }
    for j, arm in enumerate(visit.get("arms", [])):
        listed = next((a for a in data.get("arms", []) if a.get("code") == arm), None)
        if listed is not None and not twins & set(listed.get("regimens", [])):
            r.err(
                (*p, "arms", j),
                f"arm {arm} has no regimen {repeat.get('regimen')}: it can have no such visit",
            )


def _choice_codes(spec: Mapping[str, Any]) -> list[str]:
    return [str(c.get("code")) for c in spec.get("choices", []) if isinstance(c, dict)]


def _safety(r: _Reader, data: dict[str, Any], forms: dict[str, Any]) -> None:
    """`[safety]`: the AE link, the post-administration check and the DSMG review name forms, fields and
    codes of this file (docs/protocol.md, "`[dsmg]`, `[disposition]`, `[safety]`")."""
    safety = data.get("safety")
    if not isinstance(safety, dict):
        return
    ae_fields: dict[str, Any] = (forms.get("ae") or {}).get("fields", {})
    prespecified = _codes(safety.get("prespecified"))
    link = safety.get("ae_link")
    if link is not None and link not in ae_fields:
        r.err(("safety", "ae_link"), f"form ae has no field {link!r}")
    if prespecified and "prespecified" in ae_fields:
        listed = [c for c in _choice_codes(ae_fields["prespecified"]) if c != "no"]
        if sorted(listed) != sorted(prespecified):
            r.err(
                ("safety", "prespecified"),
                f"the prespecified codes ({', '.join(prespecified)}) differ from the choices of "
                f"ae.prespecified besides 'no' ({', '.join(listed) or 'none'})",
            )
    check = safety.get("check")
    if isinstance(check, dict):
        _safety_check(r, data, forms, check, prespecified, ae_fields)
    vital = safety.get("vital_signs")
    if isinstance(vital, dict):
        _vital_signs(r, forms, vital)
    review = safety.get("dsmg_review")
    if isinstance(review, dict):
        p: Path_ = ("safety", "dsmg_review")
        form = forms.get(review["form"])
        if form is None:
            r.err((*p, "form"), f"form {review['form']!r} is not declared")
            return
        fields = form.get("fields", {})
        for key in ("ae_field", "relatedness", "unexpected"):
            name = review.get(key)
            if name is not None and name not in fields:
                r.err((*p, key), f"form {review['form']} has no field {name!r}")
        ae_field = fields.get(review["ae_field"])
        if ae_field is not None and ae_field.get("type") != "text":
            r.err((*p, "ae_field"), f"{review['form']}.{review['ae_field']} names an AE record: a text field")


RESERVED_CUMULATIVE = frozenset({"cumulative dose"})
"""`dose.cumulative` names a ward-list column and key of its own; "cumulative dose" is the per-unit list's."""


def _cumulative_columns(r: _Reader, data: Mapping[str, Any]) -> None:
    """`dose.cumulative`: one name for one unit across the version's administrations (the ward list shows the
    course's cumulative dose of that unit under it), and every administration dosed in a version that names one
    dosed in that unit (its column would leave the others out)."""
    named: tuple[str, str, Path_] | None = None
    unnamed: list[tuple[str, Path_]] = []
    for i, reg in enumerate(data.get("regimens", [])):
        for j, adm in enumerate(reg.get("administrations", [])):
            dose = adm.get("dose")
            if not isinstance(dose, Mapping):
                continue
            p: Path_ = ("regimens", i, "administrations", j, "dose", "cumulative")
            name, unit = dose.get("cumulative"), str(dose.get("unit", ""))
            if name is None:
                unnamed.append((unit, p))
                continue
            if name in RESERVED_CUMULATIVE:
                r.err(p, f"{name!r} is the ward list's per-unit column: name this unit's column otherwise")
            elif named is None:
                named = (str(name), unit, p)
            elif (str(name), unit) != named[:2]:
                r.err(
                    p,
                    f"{name!r} in {unit} differs from {named[0]!r} in {named[1]} (line {r.line(named[2])}): "
                    "one cumulative column, one unit",
                )
    other = next((u for u in unnamed if named is not None and u[0] != named[1]), None)
    if named is not None and other is not None:
        r.err(
            named[2],
            f"the ward list's {named[0]!r} counts {named[1]}, but an administration is dosed in {other[0]} "
            f"(line {r.line(other[1])}): every dose in one unit, or no cumulative column",
        )


def cumulative_column(m: Model) -> tuple[str, str] | None:
    """(column name, unit) the ward list shows the cumulative dose under (`dose.cumulative`), or None: then
    the per-unit `cumulative_dose`. Its JSON key is the name with `_` for spaces (`cumulative tablets` -> `cumulative_tablets`)."""
    for regimen in m.data.get("regimens", ()):
        for adm in regimen.get("administrations", ()):
            dose = adm.get("dose") or {}
            if dose.get("cumulative"):
                return str(dose["cumulative"]), str(dose["unit"])
    return None


def _vital_signs(r: _Reader, forms: dict[str, Any], vital: dict[str, Any]) -> None:
    """`[safety] vital_signs`: the vital signs the DSMG board flags against their soft range and the vitals
    series plots around each administration: numeric fields of one declared form, with its date or datetime field."""
    p: Path_ = ("safety", "vital_signs")
    form = forms.get(vital["form"])
    if form is None:
        r.err((*p, "form"), f"form {vital['form']!r} is not declared")
        return
    fields = form.get("fields", {})
    when = fields.get(vital["time"])
    if when is None:
        r.err((*p, "time"), f"form {vital['form']} has no field {vital['time']!r}")
    elif when.get("type") not in ("date", "datetime"):
        r.err(
            (*p, "time"),
            f"{vital['form']}.{vital['time']} is a {when.get('type', 'text')} field: when the signs were "
            "measured is a date or datetime field",
        )
    said = vital.get("timepoint")  # optional: a choice field naming the record when no assessment holds it
    if said is not None:
        spec = fields.get(said)
        if spec is None:
            r.err((*p, "timepoint"), f"form {vital['form']} has no field {said!r}")
        elif spec.get("type") != "choice":
            r.err(
                (*p, "timepoint"),
                f"{vital['form']}.{said} is a {spec.get('type', 'text')} field: the timepoint is a choice field",
            )
    for j, name in enumerate(vital["fields"]):
        spec = fields.get(name)
        if spec is None:
            r.err((*p, "fields", j), f"form {vital['form']} has no field {name!r}")
        elif spec.get("type") not in ("number", "integer"):
            r.err(
                (*p, "fields", j),
                f"{vital['form']}.{name} is a {spec.get('type', 'text')} field: a vital sign is a number "
                "or integer field",
            )


def _safety_check(
    r: _Reader,
    data: dict[str, Any],
    forms: dict[str, Any],
    check: dict[str, Any],
    prespecified: list[str],
    ae_fields: Mapping[str, Any],
) -> None:
    p: Path_ = ("safety", "check")
    form = forms.get(check["form"])
    if form is None:
        r.err((*p, "form"), f"form {check['form']!r} is not declared")
        return
    fields = form.get("fields", {})
    spec = fields.get(check["field"])
    if spec is None:
        r.err((*p, "field"), f"form {check['form']} has no field {check['field']!r}")
    elif spec.get("type") != "choice" or not spec.get("multiple"):
        r.err((*p, "field"), f"{check['form']}.{check['field']} is not a multiple-choice field")
    else:
        codes = _choice_codes(spec)
        events = [c for c in codes if c != check["none"]]
        if check["none"] not in codes:
            r.err(
                (*p, "none"),
                f"{check['none']!r} is not a code of {check['form']}.{check['field']} ({', '.join(codes)})",
            )
        elif sorted(events) != sorted(prespecified):
            r.err(
                (*p, "field"),
                f"the choices of {check['form']}.{check['field']} besides {check['none']!r} "
                f"({', '.join(events) or 'none'}) differ from [safety] prespecified ({', '.join(prespecified) or 'none'})",
            )
    if check["link"] not in fields:
        r.err((*p, "link"), f"form {check['form']} has no field {check['link']!r}")
    elif not any(
        da.get("form") == check["form"] and da.get("when") == "after" and da.get("link") == check["link"]
        for da in data.get("dose_assessments", [])
    ):
        r.err(
            p,
            f"the check is asked after each administration: declare a [[dose_assessments]] with "
            f'form = {check["form"]!r}, when = "after", link = {check["link"]!r}',
        )
    if check.get("expect_ae") and "prespecified" not in ae_fields:
        r.err(
            (*p, "expect_ae"), "an expected AE is recorded with its code: form ae has no field 'prespecified'"
        )


def _strata(r: _Reader, data: dict[str, Any], forms: dict[str, Any]) -> None:
    """How each stratum factor's level follows from recorded data, or that it is asked (docs/protocol.md).

    A factor's level is a recorded choice field's code (`field`), or the one
    level whose `when` holds, or, only when the factor says `asked = true`,
    what the clinician states at randomization (checked against `field` or the
    `when`s when those can be computed). Anything else could not be computed
    and is refused here, not at the bedside.
    """
    codes = _codes(data.get("strata"))
    for i, stratum in enumerate(data.get("strata", [])):
        p: Path_ = ("strata", i)
        if stratum.get("code") in codes[:i]:
            r.err((*p, "code"), f"{stratum['code']!r} is used twice: codes are unique")
        levels = stratum.get("levels", [])
        level_codes = _codes(levels)
        for j, code in enumerate(level_codes):
            if code in level_codes[:j]:
                r.err((*p, "levels", j, "code"), f"level {code!r} is used twice in factor {stratum['code']}")
        with_when = [j for j, lv in enumerate(levels) if "when" in lv]
        field = stratum.get("field")
        if field is not None:
            for j in with_when:
                r.err(
                    (*p, "levels", j, "when"),
                    f"factor {stratum['code']} takes its level from {field}: a level has no `when` besides",
                )
            form_name, _, name = str(field).partition(".")
            form = forms.get(form_name)
            if form is None or not (_once(form) or form_name == "enrollment"):
                r.err(
                    (*p, "field"),
                    f"{field}: {form_name!r} is not a once-per-participant form (unique = []) of this file",
                )
                continue
            spec = form.get("fields", {}).get(name)
            if spec is None:
                r.err((*p, "field"), f"form {form_name} has no field {name!r}")
                continue
            if spec.get("type") != "choice" or spec.get("multiple"):
                r.err((*p, "field"), f"{field} is not a single-choice field: a level is one of its codes")
                continue
            allowed = [str(c.get("code")) for c in spec.get("choices", [])]
            for j, code in enumerate(level_codes):
                if code not in allowed:
                    r.err(
                        (*p, "levels", j, "code"),
                        f"{code!r} is not a code of {field} ({', '.join(allowed)})",
                    )
        elif not stratum.get("asked", False) and len(with_when) < len(levels):
            missing = next(j for j in range(len(levels)) if j not in with_when)
            r.err(
                (*p, "levels", missing),
                f"level {level_codes[missing]!r} of factor {stratum['code']} says neither how it follows from the"
                " records (`when`, or the factor's `field`) nor that it is asked at randomization"
                " (the factor's `asked = true`)",
            )
        elif with_when and len(with_when) < len(levels):
            missing = next(j for j in range(len(levels)) if j not in with_when)
            r.err(
                (*p, "levels", missing),
                f"level {level_codes[missing]!r} of factor {stratum['code']} has no `when` while others have:"
                " give every level a `when`, or none (asked only)",
            )
    rand = data.get("randomization")
    if isinstance(rand, dict):
        for j, name in enumerate(rand.get("stratify_by", [])):
            if name != "site" and name not in codes:
                r.err(
                    ("randomization", "stratify_by", j),
                    f'{name!r} is neither "site" nor a [[strata]] code ({", ".join(codes) or "none declared"})',
                )


def _list(names: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _window(r: _Reader, path: Path_, window: list[str]) -> None:
    before, after = duration(window[0]), duration(window[1])
    if before > after:
        r.err(path, f"the window opens ({window[0]}) after it closes ({window[1]})")


def _frequency(r: _Reader, p: Path_, adm: Mapping[str, Any]) -> None:
    """EXDOSFRQ is a term of CDISC's FREQ codelist (C71113), which is extensible: a frequency CDISC has no term
    for is the sponsor's own, declared with its meaning (`frequency_extended`); define.xml then marks it
    def:ExtendedValue and the SDTM check accepts it. A CDISC term declared as an extension is refused."""
    from .. import cdisc

    freq, meaning = str(adm.get("frequency", "")), str(adm.get("frequency_extended", "")).strip()
    if freq in cdisc.FREQ and "frequency_extended" in adm:
        r.err(
            (*p, "frequency_extended"),
            f"{freq!r} is a CDISC FREQ term: frequency_extended is for a term the codelist does not have",
        )
    elif freq not in cdisc.FREQ and not meaning:
        r.err(
            (*p, "frequency"),
            f"{freq!r} is not a CDISC FREQ term ({', '.join(cdisc.FREQ)}): use one, or declare it a sponsor"
            ' term of the extensible codelist with frequency_extended = "<what it means>"',
        )


def _administration(
    r: _Reader,
    p: Path_,
    adm: dict[str, Any],
    products: set[str],
    anchors: frozenset[str] | set[str],
    forms: dict[str, Any],
) -> None:
    if adm.get("product") not in products:
        r.err((*p, "product"), f"product {adm.get('product')!r} is not declared ({_list(products)})")
    _frequency(r, p, adm)
    sched = adm.get("schedule", {})
    if sched.get("anchor") not in anchors:
        r.err(
            (*p, "schedule", "anchor"), f"anchor {sched.get('anchor')!r} is not declared ({_list(anchors)})"
        )
    every = duration(sched.get("every", "1d"))
    if every < timedelta(days=1) or every % timedelta(days=1):
        r.err(
            (*p, "schedule", "every"),
            f"{sched['every']}: days between administration days, a whole number (1d, 3d, 1w)",
        )
    else:
        spec = _schedule(sched)
        last = abs(spec.first_day) + spec.every_days * (-(-spec.count_max // spec.per_day))
        if last > MAX_DURATION.days:
            r.err((*p, "schedule"), f"the course would end on day {last}: at most {MAX_DURATION.days} days")
    count = sched.get("count")
    if isinstance(count, list) and (len(count) != 2 or count[0] > count[1]):
        r.err((*p, "schedule", "count"), "a variable course is [min, max] with min <= max")
    if isinstance(count, list) and "stop_when" not in sched:
        r.err((*p, "schedule", "count"), "a variable course [min, max] needs stop_when")
    if "window" in adm:
        _window(r, (*p, "window"), adm["window"])
    _spacing(r, p, adm)
    bands = adm.get("dose", {}).get("bands", [])
    ordered = sorted(bands, key=lambda b: b["weight"][0])
    for a, b in itertools.pairwise(ordered):
        if a["weight"][1] != b["weight"][0]:
            what = "overlap" if a["weight"][1] > b["weight"][0] else "leave a gap"
            r.err((*p, "dose", "bands"), f"weight bands {a['weight']} and {b['weight']} {what}")
    for band in bands:
        if band["weight"][0] >= band["weight"][1]:
            r.err((*p, "dose", "bands"), f"weight band {band['weight']}: [low, high) with low < high")
    record = adm.get("record", {})
    form = forms.get(record.get("form"))
    if form is None:
        r.err((*p, "record", "form"), f"form {record.get('form')!r} is not declared")
        return
    for role, fld in record.items():
        if role != "form" and fld not in form.get("fields", {}):
            r.err((*p, "record", role), f"form {record['form']} has no field {fld!r}")


def _spacing(r: _Reader, p: Path_, adm: dict[str, Any]) -> None:
    """Due times at least `min_spacing` apart, and windows that do not run into the next slot's.

    Measured on the wall clock: the night the clocks change moves a due time
    by the gap, so the schedule engine's windows stay apart only if they are
    apart by more than that (the property tests allow an hour).
    """
    sched = adm.get("schedule", {})
    times = sorted(sched.get("times", []))
    if not times:
        return
    if len(set(times)) != len(times):
        r.err((*p, "schedule", "times"), "a due time is listed twice")
        return
    per_day = int(sched.get("per_day", len(times)))
    used = [int(t[:2]) * 60 + int(t[3:]) for t in times[:per_day]]
    every = int(duration(sched.get("every", "1d")) / timedelta(minutes=1))
    gaps = [b - a for a, b in itertools.pairwise(used)] + [every - used[-1] + used[0]]
    gap = timedelta(minutes=min(gaps))
    spacing = sched.get("min_spacing")
    if spacing is not None and duration(spacing) > gap:
        r.err(
            (*p, "schedule", "min_spacing"),
            f"{spacing}: the due times {', '.join(times)} are closer than that",
        )
    window = adm.get("window")
    if window is not None and duration(window[1]) - duration(window[0]) >= gap:
        r.err(
            (*p, "window"),
            f"{window[0]} to {window[1]} is as long as the {_minutes(gap)} between two due times: "
            "the windows of consecutive administrations would overlap",
        )


def _minutes(d: timedelta) -> str:
    m = int(d / timedelta(minutes=1))
    return f"{m // 60} h {m % 60} min" if m % 60 else f"{m // 60} h"


def _names(r: _Reader, data: dict[str, Any]) -> None:
    """Criteria (participant context) and rules (the record of their form) name what exists."""
    forms: dict[str, Any] = data.get("forms", {})
    once = frozenset(name for name, f in forms.items() if _once(f) or name == "enrollment")
    anchors = expressions.BUILTIN_ANCHORS | frozenset(_codes(data.get("anchors"), "name"))
    participant = expressions.Scope(forms, once, anchors)

    def check(path: Path_, text: Any, scope: expressions.Scope) -> None:
        if isinstance(text, str):
            for problem in expressions.check(text, scope):
                r.err(path, problem)

    def template(
        path: Path_, text: Any, scope: expressions.Scope, provided: frozenset[str] = expressions.PROVIDED
    ) -> None:
        """A message's `{...}` holes: names the kind provides, or expressions of the same context."""
        if isinstance(text, str):
            for problem in expressions.check_template(text, scope, provided):
                r.err(path, problem)

    criteria = expressions.Scope(forms, once, anchors, criteria=True)

    def parts(path: Path_, node: Any) -> None:  # `all`/`any` lists: every expression in them, nested
        if isinstance(node, str):
            check(path, node, criteria)
            return
        for kind in ("all", "any"):
            for j, item in enumerate(node.get(kind, [])):
                parts((*path, kind, j), item)

    for i, crit in enumerate(data.get("criteria", [])):
        if "expr" in crit:
            check(("criteria", i, "expr"), crit["expr"], criteria)
        else:
            parts(("criteria", i), crit)
        template(("criteria", i, "message"), crit.get("message"), criteria)
    for i, gate in enumerate(data.get("gates", [])):
        scope = expressions.Scope(forms, once, anchors, administration="dose" in gate.get("before", []))
        for key in ("when", "require", "refuse_if"):
            check(("gates", i, key), gate.get(key), scope)
        for key in ("message", "hold"):
            template(("gates", i, key), gate.get(key), scope)
    for i, rule in enumerate(data.get("rules", [])):
        if rule.get("on") in forms:
            scope = expressions.Scope(forms, once, anchors, record=rule["on"])
            template(("rules", i, "message"), rule.get("message"), scope)
    for name, form in forms.items():
        unique = form.get("unique")
        if isinstance(unique, dict):
            scope = expressions.Scope(forms, once, anchors, record=name)
            template(("forms", name, "unique", "message"), unique.get("message"), scope)
    for i, stratum in enumerate(data.get("strata", [])):
        for j, level in enumerate(stratum.get("levels", [])):
            check(("strata", i, "levels", j, "when"), level.get("when"), participant)
    for i, reg in enumerate(data.get("regimens", [])):
        for j, adm in enumerate(reg.get("administrations", [])):
            p: Path_ = ("regimens", i, "administrations", j)
            check((*p, "when"), adm.get("when"), participant)
            check((*p, "schedule", "stop_when"), adm.get("schedule", {}).get("stop_when"), participant)
            check((*p, "dose", "weight"), adm.get("dose", {}).get("weight"), participant)
            template((*p, "worklist"), adm.get("worklist"), participant)
            for key, text in (adm.get("refusals") or {}).items():
                template(
                    (*p, "refusals", key), text, participant, REFUSAL_NAMES.get(key, expressions.PROVIDED)
                )
    for i, visit in enumerate(data.get("visits", [])):
        for j, entry in enumerate(visit.get("forms", [])):
            if isinstance(entry, dict) and entry.get("form") in forms:
                check(
                    ("visits", i, "forms", j, "when"),
                    entry.get("when"),
                    expressions.Scope(forms, once, anchors, record=entry["form"]),
                )
    for i, entry in enumerate(data.get("disposition", {}).get("not_seen_alive", [])):
        if entry.get("form") in forms:
            check(
                ("disposition", "not_seen_alive", i, "when"),
                entry.get("when"),
                expressions.Scope(forms, once, anchors, record=entry["form"]),
            )
    for i, anchor in enumerate(data.get("anchors", [])):
        if anchor.get("form") in forms:
            check(
                ("anchors", i, "where"),
                anchor.get("where"),
                expressions.Scope(forms, once, anchors, record=anchor["form"]),
            )
    for i, da in enumerate(data.get("dose_assessments", [])):
        if da.get("form") in forms:
            scope = expressions.Scope(forms, once, anchors, record=da["form"])
            check(("dose_assessments", i, "match"), da.get("match"), scope)
            template(("dose_assessments", i, "duplicate"), da.get("duplicate"), scope)
            for key, text in (da.get("refusals") or {}).items():
                names = ASSESSMENT_REFUSAL_NAMES.get(key, expressions.PROVIDED)
                template(("dose_assessments", i, "refusals", key), text, scope, names)
    for i, dev in enumerate(data.get("deviations", [])):
        on = dev.get("on")
        if on is not None and on not in forms:
            r.err(("deviations", i, "on"), f"form {on!r} is not declared")
            continue
        check(
            ("deviations", i, "when"),
            dev.get("when"),
            expressions.Scope(forms, once, anchors, record=on) if on else participant,
        )
    for i, rule in enumerate(data.get("rules", [])):
        on = rule.get("on")
        if on not in forms:
            r.err(("rules", i, "on"), f"form {on!r} is not declared")
            continue
        scope = expressions.Scope(forms, once, anchors, record=on)
        for problem in expressions.check(rule["check"], scope):
            r.err(("rules", i, "check"), problem)
        field = rule.get("field")  # where the problem is shown, the query opened
        if field is not None and field not in (forms[on].get("fields") or {}):
            r.err(
                ("rules", i, "field"),
                f"{field!r} is not a field of form {on!r} (omit it for the whole form)",
            )
    for name, form in forms.items():  # a field's expressions read the record being checked
        scope = expressions.Scope(forms, once, anchors, record=name)
        for fname, spec in form.get("fields", {}).items():
            for key in ("compute", "required_when", "applies_when"):
                value = spec.get(key)
                text = value.get("when") if isinstance(value, dict) else value
                if isinstance(text, str):
                    for problem in expressions.check(text, scope):
                        r.err(("forms", name, "fields", fname, key), problem)
                if key == "applies_when" and isinstance(value, dict):  # format 1's `{ field, in / not_in }`
                    _condition_table(r, ("forms", name, "fields", fname, key), value, fname, form)
                elif isinstance(value, dict):  # `required_when = { when, message }`: the refusal's template
                    template(("forms", name, "fields", fname, key, "message"), value.get("message"), scope)
            exported = spec.get(
                "exports_applies_when"
            )  # the exports' NA only: the engine refuses nothing by it
            if isinstance(exported, dict):
                where = ("forms", name, "fields", fname, "exports_applies_when")
                _condition_table(r, where, exported, fname, form)
                if "applies_when" in spec:
                    r.err(
                        where,
                        "declare one of applies_when (refuses a value where it fails, and codes NA)"
                        " and exports_applies_when (codes NA only)",
                    )
    _eligibility(r, data, forms)


def _condition_table(
    r: _Reader, p: Path_, cond: Mapping[str, Any], own: str, form: Mapping[str, Any]
) -> None:
    """Format 1's `applies_when = { field, in / not_in }` in a format-2 file: another field of the same form,
    and exactly one of `in` and `not_in` (the engine runs it: `workflow.engine_rules`)."""
    fields = form.get("fields") or {}
    if cond.get("field") == own or cond.get("field") not in fields:
        r.err((*p, "field"), f"the form has no other field {cond.get('field')!r} to depend on")
    if ("in" in cond) == ("not_in" in cond):
        r.err(p, "give exactly one of in = [...] or not_in = [...]")


def _eligibility(r: _Reader, data: dict[str, Any], forms: dict[str, Any]) -> None:
    """The eligibility form's `failed` field names exactly the criteria, so a failed one is stored by code."""
    elig = data.get("eligibility")
    if not isinstance(elig, dict):
        return
    form = forms.get(str(elig.get("form")))
    if form is None:
        r.err(("eligibility", "form"), f"form {elig.get('form')!r} is not declared")
        return
    fields = form.get("fields", {})
    for role in ("date", "eligible", "failed"):
        if role in elig and elig[role] not in fields:
            r.err(("eligibility", role), f"form {elig['form']} has no field {elig[role]!r}")
    failed = fields.get(str(elig.get("failed")), {})
    codes = [str(c.get("code")) for c in failed.get("choices", [])]
    criteria = _codes(data.get("criteria"))
    if failed and sorted(codes) != sorted(criteria):
        missing = sorted(set(criteria) - set(codes))
        extra = sorted(set(codes) - set(criteria))
        what = "; ".join(
            x
            for x in (
                f"no choice for {', '.join(missing)}" if missing else "",
                f"no criterion {', '.join(extra)}" if extra else "",
            )
            if x
        )
        r.err(
            ("forms", elig["form"], "fields", elig["failed"], "choices"),
            f"the choices must be the criteria codes: {what}",
        )


def _once(form: Mapping[str, Any]) -> bool:
    """A form recorded at most once per participant: `unique = []` or `unique = { fields = [] }`."""
    unique = form.get("unique")
    return unique == [] or (isinstance(unique, dict) and unique.get("fields") == [])


def freeze(value: Any) -> Any:
    """Parsed TOML made read-only: tables as mapping proxies, arrays as tuples (the model is shared)."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _dose(spec: Mapping[str, Any]) -> Dose:
    bands = tuple(
        Band(
            Decimal(str(b["weight"][0])),
            Decimal(str(b["weight"][1])),
            _dec(b.get("dose")),
            _dec(b.get("per_kg")),
        )
        for b in spec.get("bands", [])
    )
    return Dose(
        unit=spec["unit"],
        fixed=_dec(spec.get("fixed")),
        per_kg=_dec(spec.get("per_kg")),
        bands=tuple(sorted(bands, key=lambda b: b.low)),
        weight=spec.get("weight"),
        round_to=_dec(spec.get("round_to")),
        max=_dec(spec.get("max")),
    )


def _schedule(spec: Mapping[str, Any]) -> ScheduleSpec:
    times = tuple(time.fromisoformat(t) for t in spec.get("times", []))
    per_day = int(spec.get("per_day", len(times) or 1))
    count = spec.get("count")
    if count is None:  # `days`: every day of the course, per_day each
        days = int(spec["days"])
        count = days * per_day
    lo, hi = (count[0], count[1]) if isinstance(count, list | tuple) else (count, count)
    return ScheduleSpec(
        anchor=spec["anchor"],
        first_day=int(spec.get("first_day", 0)),
        every_days=int(duration(spec.get("every", "1d")) / timedelta(days=1)),
        count_min=int(lo),
        count_max=int(hi),
        times=times,
        per_day=per_day,
        min_spacing=duration(spec["min_spacing"]) if "min_spacing" in spec else timedelta(0),
        stop_when=spec.get("stop_when"),
    )


def _administration_model(spec: Mapping[str, Any], product: str) -> Administration:
    window = spec.get("window", ["0d", "0d"])
    return Administration(
        code=spec["code"],
        product=product,
        route=spec.get("route", ""),
        frequency=spec.get("frequency", ""),
        frequency_extended=str(spec.get("frequency_extended", "")),
        dose=_dose(spec["dose"]),
        schedule=_schedule(spec["schedule"]),
        window=(duration(window[0]), duration(window[1])),
        closing=duration(spec["closing"]) if "closing" in spec else None,
        late_until=spec.get("late_until", "window"),
        numbering=spec.get("numbering", "slot"),
        worklist=spec.get("worklist", spec["code"]),
        record=MappingProxyType(dict(spec.get("record", {}))),
        when=spec.get("when"),
    )


def _label(text: str | Mapping[str, str]) -> str:
    return text if isinstance(text, str) else format1.tr(dict(text))


def _build(data: dict[str, Any], source: str) -> Model:
    head = data["protocol"]
    raw = {r["code"]: r for r in data.get("regimens", [])}
    regimens: dict[str, Regimen] = {}
    for code, reg in raw.items():
        twin = raw[reg["same_as"]] if "same_as" in reg else reg
        swap = reg.get("products", {})
        regimens[code] = Regimen(
            code=code,
            label=_label(reg.get("label") or twin.get("label") or code),
            administrations=tuple(
                _administration_model(a, swap.get(a["product"], a["product"]))
                for a in twin.get("administrations", [])
            ),
        )
    cal = data.get("calendar", {})
    return Model(
        id=head["id"],
        version=head["version"],
        sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        source=source,
        calendar=Calendar(anchor_day=int(cal.get("anchor_day", 0)), zone=cal.get("zone")),
        arms=tuple(Arm(a["code"], tuple(a.get("regimens", []))) for a in data.get("arms", [])),
        regimens=MappingProxyType(regimens),
        products=frozenset(_codes(data.get("products"))),
        data=freeze(data),
    )


_CACHE: dict[str, Model] = {}


def parse_cached(source: str, filename: str = "<protocol>") -> Model:
    """`parse`, remembered by content hash: a version is read once, then every record asks the model."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    hit = _CACHE.get(digest)
    if hit is None:
        hit = _CACHE[digest] = parse(source, filename)
    return hit


@cache
def shipped(name: str) -> Model:
    """A format-2 file shipped in `wardcrf/protocols/engine/` (mexcovid.toml, palm.toml, palm007.toml)."""
    return parse_cached(shipped_source(name), name)
