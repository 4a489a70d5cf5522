"""What a record's values may be, as stored: the check a synced record meets before anything is projected.

A ward's services store each value in its field's representation (`forms`,
"Stored representations"): a date as "2020-03-16", a number as 37.1 or
{"value": 37.1, "unit": "C"}, a choice as its code. A record arriving in a
bundle was stored by another device: a forged or damaged one can hold
`false` where a date is, and the projections and the ward queue that read it
would fail later (an internal error at the hub) or carry it into exports.
So an imported record's values are checked against the form of the version
it was captured under (`authority.check_import`, through the hook the
workflow registers) and the bundle is refused naming the field, the value's
kind and what the field stores.

Only the representation is checked, not the ward's rules (ranges, sequencing:
the ward's to enforce, and `audit verify`'s to report). A key that is not a
field of the form is left to the rules that read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocol import Field, Form

STORED = {
    "number": "a number, or {value, unit} with a number",
    "integer": "a whole number, or {value, unit} with one",
    "text": "text",
    "choice": "a choice code (text or a whole number)",
    "date": "an ISO 8601 date (YYYY-MM-DD)",
    "datetime": "an ISO 8601 date and time",
    "boolean": "true or false",
    "photo": "a list of photo references (sha256:HEX)",
}
"""Each field type's stored representation, in the words a refusal uses."""


def problem(form: Form, values: Mapping[str, Any]) -> str | None:
    """The first value of `values` that is not its field's stored representation, in one phrase; None if all are."""
    for name, value in values.items():
        f = form.fields.get(name)
        if f is None or value is None or value == "":
            continue  # blank: the rules decide whether it may be
        if not _stored(f, value):
            allowed = STORED.get(f.type, f.type)
            if f.multiple and f.type == "choice":
                allowed = "a list of choice codes"
            return f"{form.name}.{name[:60]} holds {_kind(value)}, where the field stores {allowed}"
    return None


def _stored(f: Field, value: Any) -> bool:
    t = f.type
    if t in ("number", "integer"):
        if isinstance(value, Mapping):
            value = value.get("value")
        return _number(value, whole=t == "integer")
    if t == "choice":
        if f.multiple:
            return isinstance(value, list) and all(_code(v) for v in value)
        return _code(value)
    if t == "date":
        return isinstance(value, str) and _parses(date.fromisoformat, value)
    if t == "datetime":
        return isinstance(value, str) and _parses(datetime.fromisoformat, value)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "photo":
        return isinstance(value, list) and all(isinstance(v, str) and v.startswith("sha256:") for v in value)
    return isinstance(value, str)  # text, and a type a newer wardcrf may add: stored as text


def _number(value: Any, *, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return not whole or isinstance(value, int) or float(value).is_integer()


def _code(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _parses(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the text {value[:24]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
