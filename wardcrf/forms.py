"""Form validation: what a person typed -> typed, unit-bearing values, or every reason why not.

`check` accepts raw strings (the CLI's ``field=value``) or already-typed
values (the TUI's widgets) and returns the values as they are stored, plus
the soft-range overrides and a problem per failing field. The workflow
services add their cross-field and sequencing problems to the same dict and
raise one `ValidationFailed` naming every failing field, so a person fixes
everything in one go and nothing half-valid is ever saved.

Stored representations (JSON in the event body):
    number / integer with a unit   {"value": 37.1, "unit": "C"}
    number / integer without unit  37.1 / 88
    text                           "…" (trimmed; control, bidi and zero-width characters refused: `text`)
    id (text with id = kit/lot)    "KIT-X1" (wardcrf.ids: normalised, upper case)
    choice                         the code (string or integer), never the label;
                                   a list of codes when the field is multiple
    date                           "2020-03-16"
    datetime                       "2020-03-17T09:05:00+08:00" (ward offset, seconds)
    boolean                        true / false
    photo                          ["sha256:<hex>", ...]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from . import amounts, ids
from . import text as text_rule
from .clock import zone
from .errors import Confirmable, ValidationFailed
from .protocol import Field, Form

# Ward laptops drift; a time a few minutes "in the future" is a clock, not a typo.
FUTURE_TOLERANCE = timedelta(minutes=5)

_TRUE = {"y", "yes", "true", "1", "是", "on"}
_FALSE = {"n", "no", "false", "0", "否", "off"}


@dataclass
class Context:
    """What validation needs to know beyond the form: now, the ward's zone, the participant."""

    now: datetime
    zone: str
    dob: date | None = None
    user: str | None = None
    resolve_photo: Callable[[str], str] | None = None

    @property
    def today(self) -> date:
        return self.now.astimezone(zone(self.zone)).date()


@dataclass
class Checked:
    values: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def raise_if_problems(self, form: str) -> None:
        if self.problems:
            raise ValidationFailed(self.problems, form=form)


def check(
    form: Form,
    raw: Mapping[str, Any],
    ctx: Context,
    *,
    confirm: bool = False,
    reason: str | None = None,
    partial: bool = False,
) -> Checked:
    """Parse and check `raw` against `form`.

    `partial` (amendments) checks only the fields given and applies no
    defaults. Soft-range values are accepted only with `confirm` and a
    `reason`; they are returned in `overrides` (field -> reason) so the
    record carries why the unusual value was accepted.
    """
    out = Checked({})
    for name in raw:
        f = form.fields.get(name)
        if f is None:
            out.problems[name] = f"unknown field for {form.name} (see `wardcrf form show {form.name}`)"
        elif f.computed:
            out.problems[name] = "computed by wardcrf from other values; it cannot be entered"
    for f in form.fields.values():
        if f.computed:
            continue
        if f.name in raw:
            value = raw[f.name]
        elif partial:
            continue
        else:
            value = _default(f, ctx)
        if _blank(value):
            if f.required:
                out.problems[f.name] = "required" if f.name not in raw else "required; it cannot be blank"
            elif partial and f.name in raw:
                out.values[f.name] = None
            continue
        try:
            typed = _parse(f, value, ctx)
        except _Bad as bad:
            out.problems[f.name] = str(bad)
            continue
        problem = _limits(f, typed, ctx, confirm=confirm, reason=reason)
        if problem == "override":
            out.overrides[f.name] = (reason or "").strip()
        elif problem:
            out.problems[f.name] = problem
            continue
        out.values[f.name] = _store(f, typed)
    return out


def plain(value: Any) -> Any:
    """The number inside a stored ``{"value": .., "unit": ..}``, else the value itself."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def with_unit(value: Any, unit: str | None) -> str:
    """Human text for a stored value, unit included."""
    if isinstance(value, dict) and "value" in value:
        return f"{_fmt(value['value'])} {value.get('unit') or ''}".strip()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    return f"{_fmt(value)} {unit}".strip() if unit and isinstance(value, int | float) else str(value)


# -- internals ------------------------------------------------------------------------


class _Bad(Exception):
    pass


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _default(f: Field, ctx: Context) -> Any:
    if f.default is None:
        return None
    if f.default == "now":
        return ctx.now
    if f.default == "today":
        return ctx.today
    return f.default


def _fmt(x: Any) -> str:
    """A number as the ward reads it (`amounts.shown`: 2.0e8, 37.5), anything else as text."""
    return amounts.shown(x) if isinstance(x, int | float) and not isinstance(x, bool) else str(x)


def _parse(f: Field, value: Any, ctx: Context) -> Any:
    t = f.type
    if isinstance(value, dict) and "value" in value and t in ("number", "integer"):
        if value.get("unit") != f.unit:
            raise _Bad(f"unit {value.get('unit')!r} differs from the field's unit {f.unit!r}")
        value = value["value"]
    if t == "number":
        return _number(value)
    if t == "integer":
        return _integer(value)
    if t == "text":
        if not isinstance(value, str):
            raise _Bad(f"{value!r} is not text")
        if f.id_kind:
            # Kit ids, lot numbers: one rule and one stored form everywhere (wardcrf.ids).
            try:
                return ids.field_rule(f).normalise(value)
            except ids.InvalidId as exc:
                raise _Bad(exc.message) from None
        # A scanner's CR or Tab suffix is trimmed with the surrounding blanks;
        # inside the value, the text rule refuses what may not be stored.
        text = value.strip()
        if f.max_length and len(text) > f.max_length:  # the protocol's limit first: it is the field's
            raise _Bad(f"too long ({len(text):,} characters; at most {f.max_length:,})")
        why = text_rule.problem(text, multiline=f.multiline)
        if why is not None:
            raise _Bad(why)
        if f.pattern and not re.fullmatch(f.pattern, text):
            raise _Bad(
                f"{text_rule.excerpt(text, quoted=True)} is not a valid {f.name} (the protocol's format is {f.pattern})"
            )
        return text
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Bad(f"{value!r} is not yes/no (use yes, no, true or false)")
    if t == "choice":
        items = (
            value
            if isinstance(value, list | tuple)
            else ([v for v in value.split(",")] if isinstance(value, str) and f.multiple else [value])
        )
        if (
            not f.multiple
            and isinstance(value, str)
            and "," in value
            and all(f.choice(part.strip()) for part in value.split(","))
        ):
            items = value.split(",")
        if len(items) > 1 and not f.multiple:
            raise _Bad("only one choice allowed")
        codes = []
        for item in items:
            c = f.choice(item.strip() if isinstance(item, str) else item)
            if c is None and isinstance(item, str):
                c = next((c for c in f.choices if str(c.code).lower() == item.strip().lower()), None)
            if c is None:
                allowed = ", ".join(str(c.code) for c in f.choices)
                raise _Bad(f"{item!r} is not one of: {allowed}")
            if c.code not in codes:
                codes.append(c.code)
        if f.multiple:
            order = {str(c.code): i for i, c in enumerate(f.choices)}
            return sorted(codes, key=lambda c: order[str(c)])
        return codes[0]
    if t == "date":
        return _date(value, ctx)
    if t == "datetime":
        return _datetime(value, ctx)
    if t == "photo":
        items = value if isinstance(value, list | tuple) else [v for v in str(value).split(",") if v.strip()]
        refs = []
        for item in items:
            if ctx.resolve_photo is None:
                raise _Bad("photos cannot be attached here")
            try:
                ref = ctx.resolve_photo(str(item).strip())
            except Exception as exc:  # the photo store's refusal, as one line
                raise _Bad(str(exc)) from None
            if ref not in refs:
                refs.append(ref)
        return refs
    raise _Bad(f"unsupported field type {t}")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad(f"{value!r} is not a number")
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if "_" in text:  # float() reads "3_7" as 37: a typo, never a number someone meant
            raise _Bad(f"{text!r} is not a number")
        try:
            x = float(text)
        except ValueError:
            raise _Bad(_not_a_number(text)) from None
    else:
        raise _Bad(f"{value!r} is not a number")
    if math.isnan(x) or math.isinf(x):
        raise _Bad(f"{value!r} is not a finite number")
    return x


def _not_a_number(text: str) -> str:
    """Say what was typed wrong in the ways tired people type numbers: 37,5 and 37.5C."""
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        return f"{text!r} is not a number: use a dot for decimals ({text.replace(',', '.')})"
    m = re.fullmatch(r"([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*([^\d\s.,]\S*)", text, re.IGNORECASE)
    if m:
        return f"{text!r} is not a number: type the number only ({m.group(1)}); the unit is set by the form"
    return f"{text!r} is not a number"


def _integer(value: Any) -> int:
    x = _number(value)
    if x != int(x):
        raise _Bad(f"{_fmt(x)} is not a whole number")
    return int(x)


def _date(value: Any, ctx: Context) -> date:
    if isinstance(value, datetime):
        return value.astimezone(zone(ctx.zone)).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _Bad(f"{value!r} is not a date")
    text = value.strip().lower()
    if text == "today":
        return ctx.today
    if text == "yesterday":
        return ctx.today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{value.strip()!r} is not a date (use YYYY-MM-DD or today)") from None


def _datetime(value: Any, ctx: Context) -> datetime:
    tz = zone(ctx.zone)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() == "now":
            dt = ctx.now
        elif re.fullmatch(r"\d{1,2}:\d{2}", text):
            hh, mm = text.split(":")
            try:
                dt = datetime.combine(ctx.today, datetime.min.time(), tz).replace(
                    hour=int(hh), minute=int(mm)
                )
            except ValueError:
                raise _Bad(f"{text!r} is not a time of day") from None
        else:
            try:
                dt = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
            except ValueError:
                raise _Bad(f"{text!r} is not a date and time (use YYYY-MM-DDTHH:MM, HH:MM or now)") from None
    else:
        raise _Bad(f"{value!r} is not a date and time")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(tz).replace(microsecond=0)


def _range_text(lo: float, hi: float, unit: str | None) -> str:
    return f"{_fmt(lo)} to {_fmt(hi)}{' ' + unit if unit else ''}"


def _limits(f: Field, value: Any, ctx: Context, *, confirm: bool, reason: str | None) -> str | None:
    if f.type in ("number", "integer"):
        shown = f"{_fmt(value)}{' ' + f.unit if f.unit else ''}"
        if f.hard and not f.hard[0] <= value <= f.hard[1]:
            return f"{shown} is outside the allowed range {_range_text(*f.hard, f.unit)}"
        if f.soft and not f.soft[0] <= value <= f.soft[1]:
            if confirm and reason and reason.strip():
                return "override"
            return Confirmable(
                f"{shown} is outside the expected range {_range_text(*f.soft, f.unit)}; "
                "if it is right, confirm it (--confirm) with a reason (--reason)"
            )
    if f.type == "photo" and f.min_items and len(value) < f.min_items:
        return f"at least {f.min_items} photo(s) needed"
    if f.type in ("date", "datetime"):
        day = value if f.type == "date" else value.date()
        if not f.allow_future:
            if f.type == "date" and value > ctx.today:
                return f"{value.isoformat()} is in the future (today is {ctx.today.isoformat()})"
            if f.type == "datetime" and value > ctx.now + FUTURE_TOLERANCE:
                return f"{value.isoformat(timespec='minutes')} is in the future"
        if ctx.dob and f.name != "dob" and day < ctx.dob:
            return f"{day.isoformat()} is before the date of birth {ctx.dob.isoformat()}"
    return None


def _store(f: Field, value: Any) -> Any:
    if f.type == "date":
        return value.isoformat()
    if f.type == "datetime":
        return value.isoformat(timespec="seconds")
    if f.type in ("number", "integer") and f.unit:
        return {"value": value, "unit": f.unit}
    return value
