"""The protocol's ``[analysis]`` table: the statistical methods a statistician signs, as data.

A trial states in its protocol file how its outcomes are summarised and
tested, and wardcrf's reports follow it (`wardcrf.reports.outcomes`):

* ``quartiles``: the sample-quantile definition (Hyndman–Fan type);
* ``paired_test`` and ``zero_differences``: the Wilcoxon signed-rank variant;
* ``[analysis.baseline]`` / ``[analysis.post_treatment]``: the visit windows
  that decide, from sample dates, which value is a participant's baseline and
  which is their post-treatment value (never the order of entry), and whether
  a post-treatment value needs the full regimen first;
* ``[[analysis.endpoints]]``: which fields are compared before and after, the
  direction that counts as improvement, whether the paired test is run, and
  the rule for incomplete measurements (a CT with segments not evaluable).

Every key has a documented default (docs/protocol.md), so a protocol without
``[analysis]`` still gets a stated method; the table is validated with the
rest of the file, each problem named with its line and key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocol import Form
    from .protocol_file import Text, _Reader

QUARTILES = ("hf5", "hf6", "hf7", "hf8", "hf9")
PAIRED_TESTS = ("wilcoxon-exact", "wilcoxon-normal")
ZERO_METHODS = ("wilcox", "pratt")
RELATIVE_TO = ("first_dose", "last_dose")
PICKS = ("last", "first")
EVALUABLE_RULES = ("exclude", "prorate", "include")
DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class Window:
    """Which values count for a visit: its label on the form and its sample date against the dosing."""

    name: str
    timepoint: str  # the code of the form's timepoint choice that labels this visit
    relative_to: str  # "first_dose" | "last_dose": the participant's dose whose local date is day 0
    days: tuple[int, int]  # inclusive window, in days from that dose's date
    pick: str  # among several values in the window: "last" (latest sample date) or "first"
    regimen_complete: bool  # a value sampled before every scheduled dose was given is excluded

    def describe(self) -> str:
        anchor = "the first dose" if self.relative_to == "first_dose" else "the last dose"
        lo, hi = self.days
        span = f"day {lo:+d} to {hi:+d} from the date of {anchor}"
        text = (
            f"{self.name.replace('_', '-')}: values labelled '{self.timepoint}' sampled {span}; "
            f"the {'latest' if self.pick == 'last' else 'earliest'} sample date in the window is used"
        )
        if self.regimen_complete:
            text += "; values sampled before every scheduled dose was given are excluded"
        return text


@dataclass(frozen=True)
class Evaluable:
    """A measurement that is only complete when `field` reaches `of` (e.g. 18 evaluable CT segments)."""

    field: str
    of: int
    rule: str  # "exclude" | "prorate" | "include"
    max_missing: int  # prorate: at most this many missing, else excluded

    def describe(self, what: str) -> str:
        if self.rule == "exclude":
            return f"{what}: a value with fewer than {self.of} {self.field.replace('_', ' ')} is excluded"
        if self.rule == "prorate":
            return (
                f"{what}: a value with up to {self.max_missing} of {self.of} missing is prorated "
                f"(value × {self.of} / {self.field.replace('_', ' ')}); with more missing it is excluded"
            )
        return f"{what}: values with fewer than {self.of} {self.field.replace('_', ' ')} are used as recorded (flagged)"


@dataclass(frozen=True)
class Endpoint:
    form: str
    field: str
    label: Text
    improves: str  # "up" | "down"
    paired_test: bool
    timepoint_field: str
    date_field: str
    evaluable: Evaluable | None = None


def _default_windows() -> dict[str, Window]:
    return {
        "baseline": Window("baseline", "baseline", "first_dose", (-7, 0), "last", False),
        "post_treatment": Window("post_treatment", "post_treatment", "last_dose", (1, 14), "last", True),
    }


@dataclass(frozen=True)
class AnalysisPlan:
    quartiles: str = "hf6"
    paired_test: str = "wilcoxon-exact"
    zero_differences: str = "wilcox"
    windows: dict[str, Window] = field(default_factory=_default_windows)
    endpoints: tuple[Endpoint, ...] = ()


def parse(r: _Reader, data: dict[str, Any], forms: dict[str, Form]) -> AnalysisPlan:
    """The ``[analysis]`` table, validated; the documented defaults where it is silent."""
    if data.get("analysis") is None:
        return AnalysisPlan()
    t = r.table(data.get("analysis"), ("analysis",))
    p: tuple[str | int, ...] = ("analysis",)
    known = {"quartiles", "paired_test", "zero_differences", "baseline", "post_treatment", "endpoints"}
    r.only_keys(t, known, p)
    quartiles = _choice(r, t, "quartiles", p, QUARTILES, "hf6")
    paired = _choice(r, t, "paired_test", p, PAIRED_TESTS, "wilcoxon-exact")
    zeros = _choice(r, t, "zero_differences", p, ZERO_METHODS, "wilcox")
    defaults = _default_windows()
    windows = {name: _window(r, t.get(name), (*p, name), defaults[name]) for name in defaults}
    endpoints = []
    raw = t.get("endpoints", [])
    if not isinstance(raw, list):
        r.err((*p, "endpoints"), "must be an array of tables [[analysis.endpoints]]")
        raw = []
    seen: set[tuple[str, str]] = set()
    for i, spec in enumerate(raw):
        ep = _endpoint(r, spec, (*p, "endpoints", i), forms, windows)
        if ep is None:
            continue
        if (ep.form, ep.field) in seen:
            r.err((*p, "endpoints", i), f"{ep.form}.{ep.field} is listed twice")
        seen.add((ep.form, ep.field))
        endpoints.append(ep)
    return AnalysisPlan(quartiles, paired, zeros, windows, tuple(endpoints))


FORMAT2_KEYS = frozenset({"kind", "code", "primary"})  # what a format-2 endpoint adds to format 1's


def paired_endpoints(r: _Reader, data: dict[str, Any], forms: dict[str, Form]) -> AnalysisPlan:
    """A format-2 file's ``[analysis]`` as far as its `paired_change` endpoints need it (engine.ward): the
    methods, the two windows and each paired endpoint, validated as format 1 validates them and named by
    their place in the file; the other kinds are the engine's (`reports.engine_endpoints`)."""
    t = data.get("analysis")
    if not isinstance(t, dict):
        return AnalysisPlan()
    p: tuple[str | int, ...] = ("analysis",)
    defaults = _default_windows()
    windows = {name: _window(r, t.get(name), (*p, name), defaults[name]) for name in defaults}
    found: list[Endpoint] = []
    seen: set[tuple[str, str]] = set()
    for i, spec in enumerate(t.get("endpoints") or ()):
        if not isinstance(spec, dict) or spec.get("kind", "paired_change") != "paired_change":
            continue
        own = {k: v for k, v in spec.items() if k not in FORMAT2_KEYS}
        ep = _endpoint(r, own, (*p, "endpoints", i), forms, windows)
        if ep is None:
            continue
        if (ep.form, ep.field) in seen:
            r.err((*p, "endpoints", i), f"{ep.form}.{ep.field} is listed twice")
        seen.add((ep.form, ep.field))
        found.append(ep)
    return AnalysisPlan(
        str(t.get("quartiles", "hf6")),
        str(t.get("paired_test", "wilcoxon-exact")),
        str(t.get("zero_differences", "wilcox")),
        windows,
        tuple(found),
    )


def _choice(
    r: _Reader, t: dict[str, Any], key: str, p: tuple[str | int, ...], allowed: tuple[str, ...], default: str
) -> str:
    value = r.get(t, key, p, str, required=False, default=default)
    if value not in allowed:
        r.err((*p, key), f"unknown value {value!r} (allowed: {', '.join(allowed)})")
        return default
    return str(value)


def _days(
    r: _Reader, t: dict[str, Any], p: tuple[str | int, ...], default: tuple[int, int]
) -> tuple[int, int]:
    value = t.get("days")
    if value is None:
        return default
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        r.err((*p, "days"), "must be [first, last] with two whole numbers of days")
        return default
    lo, hi = value
    if lo > hi:
        r.err((*p, "days"), f"first day {lo} is after last day {hi}")
        return default
    if not (lo >= -366 and hi <= 366):
        r.err((*p, "days"), "days must lie within a year of the dose (-366..366)")
        return default
    return lo, hi


def _window(r: _Reader, spec: Any, p: tuple[str | int, ...], default: Window) -> Window:
    if spec is None:
        return default
    t = r.table(spec, p)
    known = {"timepoint", "relative_to", "days", "pick", "regimen_complete"}
    r.only_keys(t, known, p)
    return Window(
        default.name,
        r.get(t, "timepoint", p, str, required=False, default=default.timepoint),
        _choice(r, t, "relative_to", p, RELATIVE_TO, default.relative_to),
        _days(r, t, p, default.days),
        _choice(r, t, "pick", p, PICKS, default.pick),
        bool(r.get(t, "regimen_complete", p, bool, required=False, default=default.regimen_complete)),
    )


def _endpoint(
    r: _Reader, spec: Any, p: tuple[str | int, ...], forms: dict[str, Form], windows: dict[str, Window]
) -> Endpoint | None:
    t = r.table(spec, p)
    if not t:
        return None
    known = {
        "form",
        "field",
        "label",
        "improves",
        "paired_test",
        "timepoint_field",
        "date_field",
        "evaluable",
    }
    r.only_keys(t, known, p)
    form_name = r.get(t, "form", p, str, default="")
    field_name = r.get(t, "field", p, str, default="")
    form = forms.get(form_name)
    if form is None:
        if form_name:
            r.err((*p, "form"), f"unknown form {form_name!r}")
        return None
    fd = form.fields.get(field_name)
    if fd is None:
        r.err((*p, "field"), f"form {form_name} has no field {field_name!r}")
        return None
    if fd.type not in ("number", "integer"):
        r.err((*p, "field"), f"{form_name}.{field_name} is {fd.type}; endpoints are number or integer fields")
    improves = _choice(r, t, "improves", p, DIRECTIONS, "down")
    if "improves" not in t:
        r.err((*p, "improves"), 'missing: "up" or "down" (the direction that counts as improvement)')
    tp_name = r.get(t, "timepoint_field", p, str, required=False, default="timepoint")
    date_name = r.get(t, "date_field", p, str, required=False, default="date")
    tp = form.fields.get(tp_name)
    if tp is None or tp.type != "choice":
        r.err(
            (*p, "timepoint_field"), f"form {form_name} needs a choice field {tp_name!r} labelling the visit"
        )
    else:
        for w in windows.values():
            if tp.choice(w.timepoint) is None:
                r.err(
                    (*p, "timepoint_field"),
                    f"{form_name}.{tp_name} has no choice {w.timepoint!r} (the {w.name} window's timepoint)",
                )
    dt = form.fields.get(date_name)
    if dt is None or dt.type not in ("date", "datetime"):
        r.err((*p, "date_field"), f"form {form_name} needs a date field {date_name!r} (the sample date)")
    evaluable = None
    if t.get("evaluable") is not None:
        evaluable = _evaluable(r, t["evaluable"], (*p, "evaluable"), form)
    label = r.text(t, "label", p, required=False) or fd.label
    return Endpoint(
        form_name,
        field_name,
        label,
        improves,
        bool(r.get(t, "paired_test", p, bool, required=False, default=False)),
        tp_name,
        date_name,
        evaluable,
    )


def _evaluable(r: _Reader, spec: Any, p: tuple[str | int, ...], form: Form) -> Evaluable | None:
    t = r.table(spec, p)
    known = {"field", "of", "rule", "max_missing"}
    r.only_keys(t, known, p)
    name = r.get(t, "field", p, str, default="")
    fd = form.fields.get(name)
    if fd is None or fd.type != "integer":
        r.err((*p, "field"), f"form {form.name} needs an integer field {name!r} counting what was evaluable")
        return None
    of = r.get(t, "of", p, int, default=1)
    if of is None or of < 1:
        r.err((*p, "of"), "must be 1 or more")
        return None
    rule = _choice(r, t, "rule", p, EVALUABLE_RULES, "exclude")
    max_missing = r.get(t, "max_missing", p, int, required=False, default=0)
    if max_missing is None or not 0 <= max_missing < of:
        r.err((*p, "max_missing"), f"must be between 0 and {of - 1}")
        max_missing = 0
    if rule == "prorate" and "max_missing" not in t:
        r.err(
            (*p, "max_missing"),
            "prorating needs max_missing: how many may be missing before a value is excluded",
        )
    return Evaluable(name, of, rule, max_missing)
