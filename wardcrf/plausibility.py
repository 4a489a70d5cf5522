"""Soft warnings: values that are allowed but implausible, said at the moment of entry, with a reason.

A hard range refuses; a soft range asks for a confirmation and a reason. A
soft *warning* does neither: the record is saved, and the person is told why
the value looks wrong while they can still fix it (an inhalation of 5
minutes when the protocol says 30, a thaw shorter than the product's
minimum, a time a few minutes ahead of the laptop's clock, the photograph of
one record attached to a second). They are trial data, declared in the
protocol file (``[[warnings]]``, docs/protocol.md); a protocol that declares
none gets `DEFAULT_RULES`, written in the same format, and ``warnings = []``
turns them off.

Rules (``rule = ...``), each generic over forms and fields:

- ``duration_below``: ``to`` minus ``from`` (two date-time fields) is under
  a threshold: ``minutes = N``, or ``minutes_of = "schedule.duration_minutes"``
  / ``"product.<key>"`` times ``fraction`` (default 1), with
  ``default_minutes`` when the product states no value.
- ``future_time``: a date-time field lies ahead of the laptop's clock. Times
  more than the clock tolerance ahead are refused by validation; this warns
  inside the tolerance, where a typo (09:50 for 09:05) hides.
- ``photo_reused``: a photo (same SHA-256) is already attached to another
  record.

`evaluate` returns the warnings for one form's values; the workflow's submit
and amend, and the cold chain's services, store them in the record's event
(``warnings``: code, fields, message) so an auditor sees what the person was
told, and add them to the session's warnings (the CLI prints each as one
line on stderr). Nothing is refused and nothing needs acknowledging: a
warning that had to be acknowledged would be a soft range.
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import evidence
from .clock import zone

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .protocol import Form, Protocol, Schedule
    from .protocol_file import _Reader
    from .store import Store

RULES = ("duration_below", "future_time", "photo_reused")

PLACEHOLDERS: dict[str, frozenset[str]] = {
    "duration_below": frozenset({"minutes", "expected", "from", "to"}),
    "future_time": frozenset({"field", "time", "minutes"}),
    "photo_reused": frozenset({"field", "photo", "other", "other_form"}),
}
"""What a rule's reason may quote, e.g. ``{minutes}``."""

CODE_FORMS: dict[str, dict[str, str]] = {
    "coldchain.thaw": {"start": "datetime", "end": "datetime"},
    "coldchain.receipt": {"at": "datetime", "photos": "photo"},
    "coldchain.handover": {"at": "datetime", "photos": "photo"},
    "coldchain.reading": {"at": "datetime"},
}
"""Forms wardcrf's code defines (the cold chain's records) that warnings may name, with their fields' types."""

MIN_AHEAD_S = 60
"""A time less than a minute ahead is the seconds of "now", not a mistake."""

DEFAULT_RULES = """
[[warnings]]
code = "short_inhalation"
rule = "duration_below"
form = "dose"
from = "start"
to = "end"
minutes_of = "schedule.duration_minutes"
fraction = 0.5
reason = { en = "the inhalation lasted {minutes} min, far shorter than the protocol's {expected} min: correct the times, or record the interruption", zh = "雾化仅持续 {minutes} 分钟，远短于方案规定的 {expected} 分钟：请更正时间或记录中断" }

[[warnings]]
code = "short_thaw"
rule = "duration_below"
form = "coldchain.thaw"
from = "start"
to = "end"
minutes_of = "product.min_thaw_minutes"
default_minutes = 10
reason = { en = "the thaw took {minutes} min, shorter than the product's minimum of {expected} min: is the product fully thawed?", zh = "解冻仅用 {minutes} 分钟，短于产品最短解冻时间 {expected} 分钟：产品是否已完全解冻？" }

[[warnings]]
code = "time_ahead"
rule = "future_time"
form = "*"
reason = { en = "{field} {time} is {minutes} min ahead of this laptop's clock: check the time typed (or the clock)", zh = "{field} {time} 比本机时钟快 {minutes} 分钟：请核对输入的时间（或时钟）" }

[[warnings]]
code = "photo_reused"
rule = "photo_reused"
form = "*"
reason = { en = "photo {photo} in {field} is already attached to {other_form} record {other}: is it the right photograph?", zh = "{field} 中的照片 {photo} 已附于 {other_form} 记录 {other}：是否为正确的照片？" }
"""


@dataclass(frozen=True)
class WarningRule:
    """One declared warning, its threshold resolved against the protocol's facts."""

    code: str
    rule: str
    form: str  # a form name, or "*" for every form
    reason: dict[str, str]
    start: str | None = None
    end: str | None = None
    minutes: float | None = None  # duration_below: warn under this
    expected: float | None = None  # what {expected} shows (the protocol's duration, the product's minimum)

    def applies(self, form: str) -> bool:
        return self.form in ("*", form)


@dataclass(frozen=True)
class SoftWarning:
    """A warning about one record's values: which rule, which fields, and what to tell the person."""

    code: str
    fields: tuple[str, ...]
    message: str  # English
    messages: dict[str, str]  # per language

    def text(self, lang: str = "en") -> str:
        return self.messages.get(lang) or self.message

    def as_json(self) -> dict[str, Any]:
        """What the record's event keeps: the rule, the fields, the English words shown."""
        return {"code": self.code, "fields": list(self.fields), "message": self.message}


# -- reading the protocol's [[warnings]] ---------------------------------------------------------


_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def parse_rules(
    r: _Reader,
    data: dict[str, Any],
    forms: dict[str, Form],
    schedule: Schedule,
    product: dict[str, Any],
    *,
    regimens: Mapping[str, float | None] | None = None,
) -> tuple[WarningRule, ...]:
    """The protocol's ``[[warnings]]``, validated with file:line; `DEFAULT_RULES` when it has none.

    `regimens` (a format-2 version: each regimen's code and its first administration's duration in
    minutes, or None) lets ``minutes_of = "regimen.CODE.duration"`` name a threshold."""
    if "warnings" not in data:
        return default_rules(forms, schedule, product)
    raw = data["warnings"]
    if not isinstance(raw, list):
        r.err(("warnings",), "must be a list of tables: [[warnings]] code = ... rule = ...")
        return ()
    out: list[WarningRule] = []
    seen: set[str] = set()
    for i, spec in enumerate(raw):
        rule = _rule(r, spec, ("warnings", i), forms, schedule, product, regimens)
        if rule is None:
            continue
        if rule.code in seen:
            r.err(("warnings", i, "code"), f"duplicate warning code {rule.code!r}")
        seen.add(rule.code)
        out.append(rule)
    return tuple(out)


def default_rules(
    forms: dict[str, Form], schedule: Schedule, product: dict[str, Any]
) -> tuple[WarningRule, ...]:
    """The built-in set, read with the same validation as a protocol's own (a problem here is a bug)."""
    from .protocol_file import ProtocolFileError, _Reader

    r = _Reader("<built-in warnings>", DEFAULT_RULES)
    r.languages = ("en", "zh")
    data = tomllib.loads(DEFAULT_RULES)
    rules = [
        rule
        for i, spec in enumerate(data["warnings"])
        # a protocol without the form a default names (no dose form) simply lacks that warning
        if spec.get("form") in ("*", *forms, *CODE_FORMS)
        and (rule := _rule(r, spec, ("warnings", i), forms, schedule, product)) is not None
    ]
    if r.problems:
        raise ProtocolFileError(r.problems)
    return tuple(rules)


def _rule(
    r: _Reader,
    spec: Any,
    p: tuple[str | int, ...],
    forms: dict[str, Form],
    schedule: Schedule,
    product: dict[str, Any],
    regimens: Mapping[str, float | None] | None = None,
) -> WarningRule | None:
    if not isinstance(spec, dict):
        r.err(p, "must be a table { code = ..., rule = ..., form = ..., reason = ... }")
        return None
    known = {
        "code",
        "rule",
        "form",
        "from",
        "to",
        "minutes",
        "minutes_of",
        "fraction",
        "default_minutes",
        "reason",
    }
    r.only_keys(spec, known, p, "warning key")
    code = r.get(spec, "code", p, str, default="")
    if code and not _CODE_RE.fullmatch(code):
        r.err((*p, "code"), "warning codes are lower-case letters, digits and '_' (max 40)")
    rule = r.get(spec, "rule", p, str, default="")
    if rule and rule not in RULES:
        r.err((*p, "rule"), f"unknown rule {rule!r} (allowed: {', '.join(RULES)})")
        return None
    form = r.get(spec, "form", p, str, default="")
    fields = _fields_of(form, forms)
    if form and form != "*" and fields is None:
        r.err(
            (*p, "form"), f"unknown form {form!r} (a protocol form, one of {', '.join(CODE_FORMS)}, or '*')"
        )
        return None
    reason = dict(r.text(spec, "reason", p))
    for lang, text in reason.items():
        for name in _placeholders(text):
            if rule and name not in PLACEHOLDERS[rule]:
                allowed = ", ".join("{" + n + "}" for n in sorted(PLACEHOLDERS[rule]))
                r.err(
                    (*p, "reason", lang),
                    f"unknown placeholder {{{name}}} (a {rule} reason may use {allowed})",
                )
    if not (code and rule and form):
        return None
    if rule != "duration_below":
        for key in ("from", "to", "minutes", "minutes_of", "fraction", "default_minutes"):
            if key in spec:
                r.err((*p, key), f"applies to duration_below warnings, not {rule}")
        return WarningRule(code, rule, form, reason)
    if form == "*":
        r.err((*p, "form"), "a duration_below warning names one form")
        return None
    assert fields is not None
    ends = []
    for key in ("from", "to"):
        name = r.get(spec, key, p, str, default="")
        if name and fields.get(name) != "datetime":
            r.err((*p, key), f"{name!r} is not a date-time field of {form}")
        ends.append(name)
    minutes, expected = _threshold(r, spec, p, schedule, product, regimens)
    if not all(ends) or minutes is None:
        return None
    return WarningRule(code, rule, form, reason, ends[0], ends[1], minutes, expected)


def _threshold(
    r: _Reader,
    spec: dict[str, Any],
    p: tuple[str | int, ...],
    schedule: Schedule,
    product: dict[str, Any],
    regimens: Mapping[str, float | None] | None = None,
) -> tuple[float | None, float | None]:
    number = (int, float)
    if ("minutes" in spec) == ("minutes_of" in spec):
        r.err(
            p,
            "give the threshold as minutes = N or minutes_of = 'schedule.duration_minutes' / 'product.<key>'",
        )
        return None, None
    if "minutes" in spec:
        m = r.get(spec, "minutes", p, number)
        if m is not None and m <= 0:
            r.err((*p, "minutes"), "must be above 0")
            return None, None
        return (float(m), float(m)) if m is not None else (None, None)
    ref = r.get(spec, "minutes_of", p, str, default="")
    fraction = r.get(spec, "fraction", p, number, required=False, default=1.0)
    if fraction is not None and not 0 < fraction <= 1:
        r.err((*p, "fraction"), "must be above 0 and at most 1")
        return None, None
    default = r.get(spec, "default_minutes", p, number, required=False)
    if ref == "schedule.duration_minutes":
        base: Any = schedule.duration_minutes
    elif ref.startswith("product.") and len(ref) > len("product."):
        base = product.get(ref.removeprefix("product."), default)
    elif regimens is not None and (named := _REGIMEN_DURATION.fullmatch(ref)):
        if named.group(1) not in regimens:
            r.err(
                (*p, "minutes_of"),
                f"regimen {named.group(1)!r} is not declared (declared: {', '.join(regimens)})",
            )
            return None, None
        found = regimens[named.group(1)]
        base = found if found is not None else default
    else:
        also = ", 'regimen.<code>.duration'" if regimens is not None else ""
        r.err((*p, "minutes_of"), f"{ref!r} is not 'schedule.duration_minutes'{also} or 'product.<key>'")
        return None, None
    if base is None:
        r.err((*p, "minutes_of"), f"the protocol does not state {ref}: give default_minutes")
        return None, None
    if isinstance(base, bool) or not isinstance(base, number) or base < 0:
        r.err((*p, "minutes_of"), f"{ref} must be a number of minutes")
        return None, None
    return float(base) * float(fraction or 1.0), float(base)


_REGIMEN_DURATION = re.compile(r"regimen\.([a-z][a-z0-9_]*)\.duration")


def _placeholders(text: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return ["<unbalanced braces>"]


def _fields_of(form: str, forms: dict[str, Form]) -> dict[str, str] | None:
    """Field name -> type of a protocol form or a code-defined form; None for an unknown form."""
    if form in forms:
        return {name: f.type for name, f in forms[form].fields.items()}
    return CODE_FORMS.get(form)


# -- evaluating ------------------------------------------------------------------------------


def evaluate(
    store: Store,
    proto: Protocol,
    form: str,
    values: dict[str, Any],
    *,
    now: datetime,
    zone_name: str,
    record: str | None = None,
) -> list[SoftWarning]:
    """The soft warnings `proto` declares for these stored values of `form` (never raises on odd values).

    `record` is the record's own event id when it exists (an amendment), so
    its own photos are not "already attached".
    """
    fields = _fields_of(form, proto.forms) or {}
    out: list[SoftWarning] = []
    for rule in proto.warnings:
        if not rule.applies(form):
            continue
        if rule.rule == "duration_below":
            out += _duration(rule, values)
        elif rule.rule == "future_time":
            out += _future(rule, fields, values, now, zone_name)
        elif rule.rule == "photo_reused":
            out += _reused(rule, store, values, record)
    return out


def _say(rule: WarningRule, fields: tuple[str, ...], **values: Any) -> SoftWarning:
    messages = {}
    for lang, text in rule.reason.items():
        try:
            messages[lang] = text.format(**values)
        except (KeyError, IndexError, ValueError):  # validated at load; never lose the warning itself
            messages[lang] = text
    return SoftWarning(rule.code, fields, messages.get("en", ""), messages)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _minutes(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _duration(rule: WarningRule, values: dict[str, Any]) -> list[SoftWarning]:
    assert rule.start and rule.end and rule.minutes is not None
    t0, t1 = _when(values.get(rule.start)), _when(values.get(rule.end))
    if t0 is None or t1 is None or t1 < t0:
        return []
    took = (t1 - t0).total_seconds() / 60
    if took >= rule.minutes:
        return []
    return [
        _say(
            rule,
            (rule.start, rule.end),
            minutes=_minutes(math.floor(took * 10) / 10),
            expected=_minutes(rule.expected or rule.minutes),
            **{"from": rule.start, "to": rule.end},
        )
    ]


def _future(
    rule: WarningRule, fields: dict[str, str], values: dict[str, Any], now: datetime, zone_name: str
) -> list[SoftWarning]:
    out = []
    for name, kind in fields.items():
        t = _when(values.get(name)) if kind == "datetime" else None
        if t is None:
            continue
        ahead = (t - now).total_seconds()
        if ahead >= MIN_AHEAD_S:
            local = t.astimezone(zone(zone_name))
            shown = (
                local.strftime("%Y-%m-%d %H:%M ") + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]
            )
            out.append(_say(rule, (name,), field=name, time=shown, minutes=math.ceil(ahead / 60)))
    return out


def _reused(rule: WarningRule, store: Store, values: dict[str, Any], record: str | None) -> list[SoftWarning]:
    out = []
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if not evidence.is_reference(item):
                continue
            row = store.one(
                "SELECT b.record_event, r.form FROM photo_bindings b LEFT JOIN records r ON r.event_id = b.record_event"
                " WHERE b.sha256 = ? AND b.unbound_event IS NULL AND b.record_event != ?"
                " ORDER BY b.bound_at, b.record_event LIMIT 1",
                (evidence.digest_of(item), record or ""),
            )
            if row is not None:
                short = f"sha256:{evidence.digest_of(item)[:12]}…"
                out.append(
                    _say(rule, (name,), field=name, photo=short, other=row[0], other_form=row[1] or "?")
                )
    return out


def noted(form: str, warnings: list[SoftWarning], told: list[str]) -> dict[str, Any]:
    """The record's ``warnings`` body key; each warning also appended to `told` as one line for the person.

    `told` is the session's warnings (the CLI prints them on stderr) or a
    service result's (`coldchain.services.Recorded.warnings`).
    """
    if not warnings:
        return {}
    told.extend(f"{form}: {w.message}" for w in warnings)
    return {"warnings": [w.as_json() for w in warnings]}
