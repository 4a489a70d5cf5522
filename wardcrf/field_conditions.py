"""When a field applies: ``applies_when = { field = "consenter", in = ["surrogate"] }`` in a protocol file.

A form field that only makes sense for some answers of another field of the
same form (the surrogate's name when a surrogate consents, the plasma titre
for convalescent plasma, an AE's end date once it resolved) says so. The
exports use it to tell "not applicable" from "not recorded" when the value is
blank (`wardcrf.exports.missing`); the condition is validated with the
protocol file (the controlling field exists in the form and every listed
value is one of its codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocol import Field
    from .protocol_file import _Reader


@dataclass(frozen=True)
class Condition:
    field: str
    values: tuple[Any, ...]
    negate: bool = False  # `not_in`: applies unless the controlling field holds one of the values

    def holds(self, data: Mapping[str, Any]) -> bool | None:
        """Whether the field applies to a record with these values; None when the controlling field is blank."""
        value = data.get(self.field)
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        if value is None or value == "" or value == []:
            return None
        present = value if isinstance(value, list) else [value]
        hit = any(_same(v, w) for v in present for w in self.values)
        return not hit if self.negate else hit

    def describe(self) -> str:
        shown = ", ".join(_text(v) for v in self.values)
        return f"{self.field} {'not in' if self.negate else 'in'} ({shown})"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return str(a) == str(b)


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def parse(r: _Reader, spec: Any, p: tuple[str | int, ...]) -> Condition | None:
    """The shape of an ``applies_when`` table (its references are checked by `check`)."""
    t = r.table(spec, p)
    if not t:
        return None
    for key in t:
        if key not in ("field", "in", "not_in"):
            r.err((*p, key), "unknown key (allowed: field, in, not_in)")
    name = r.get(t, "field", p, str, default="")
    if ("in" in t) == ("not_in" in t):
        r.err(p, "give exactly one of in = [...] or not_in = [...]")
        return None
    key = "in" if "in" in t else "not_in"
    values = t[key]
    if not isinstance(values, list) or not values or not all(isinstance(v, str | int | bool) for v in values):
        r.err((*p, key), "must be a non-empty list of codes, whole numbers or true/false")
        return None
    return Condition(name, tuple(values), negate=key == "not_in")


def check(
    r: _Reader, cond: Condition, own: str, fields: Mapping[str, Field], p: tuple[str | int, ...]
) -> None:
    """The controlling field exists in the same form, is not the field itself, and the values fit it."""
    ctrl = fields.get(cond.field)
    if ctrl is None or cond.field == own:
        r.err((*p, "field"), f"the form has no other field {cond.field!r} to depend on")
        return
    key = "not_in" if cond.negate else "in"
    for v in cond.values:
        if ctrl.type == "choice" and ctrl.choice(v) is None:
            r.err(
                (*p, key), f"{_text(v)!r} is not a code of {cond.field} ({', '.join(map(str, ctrl.codes))})"
            )
        elif ctrl.type == "boolean" and not isinstance(v, bool):
            r.err((*p, key), f"{cond.field} is true or false, not {_text(v)!r}")
        elif ctrl.type == "integer" and (isinstance(v, bool) or not isinstance(v, int)):
            r.err((*p, key), f"{cond.field} is a whole number, not {_text(v)!r}")
        elif ctrl.type not in ("choice", "boolean", "integer"):
            r.err(
                (*p, "field"),
                f"{cond.field} is {ctrl.type}; a condition depends on a choice, boolean or integer",
            )
            return
