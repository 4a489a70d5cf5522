"""Amounts as people read and type them: the one owner of how a dose (or any recorded number) is written.

A dose of 2.0×10^8 cells printed as `200000000` is miscounted at the
bedside (seven zeros or eight?), and `2e+08` or `2.00e+08` are a program's
spellings. Format 1's wizard wrote its product's dose as `2.0e8`; every screen, report
and command line now writes every amount the same way, whatever the trial and
its unit (the unit always comes from the protocol):

- `shown(x)` — for reading: a number from 10^6 up (or below 10^-3) as a
  mantissa of at most three significant digits and a plain exponent (`2.0e8`,
  `1.25e9`, `4.0e-4`); other numbers as they are (`6200`, `37.5`, `0.25`);
- `exact(x)` — for a field filled in to be saved as shown (the prescribed
  dose in the wizard): the same form with every digit kept, so what is
  typed back is the value itself (`2.0e8` parses to 200000000.0);
- `quantity(q)` / `quantity(value, unit)` — `2.0e8 cells`, `6200 mg`.

Nothing here rounds what is stored: exports and the audit trail keep the
stored values.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

LARGE = Decimal(10) ** 6
"""From here up a number is written with an exponent (below, 999999 is read at a glance)."""
SMALL = Decimal(10) ** -3
"""Below this (and not zero) too: 0.0004 is read as 4.0e-4."""
SHOWN_DIGITS = 3
"""Significant digits of a mantissa for reading (a report's `1.25e9`)."""


def _decimal(x: Any) -> Decimal | None:
    if isinstance(x, bool) or not isinstance(x, int | float | Decimal | str):
        return None
    try:
        d = Decimal(repr(x)) if isinstance(x, float) else Decimal(str(x).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _scientific(d: Decimal) -> str:
    """`2.0e8`, `1.25e9`, `-4.0e-4`: at least one decimal in the mantissa, no `+`, no leading zeros."""
    sign, digits, exp = d.normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    mantissa = text[0] + "." + (text[1:] or "0")
    exponent = exp + len(digits) - 1
    return f"{'-' if sign else ''}{mantissa}e{exponent}"


def _needs_exponent(d: Decimal) -> bool:
    return d != 0 and (abs(d) >= LARGE or abs(d) < SMALL)


def shown(x: Any) -> str:
    """A number for reading (see the module doc); anything that is not a number as `str`."""
    d = _decimal(x)
    if d is None:
        return str(x)
    if _needs_exponent(d):
        return _scientific(Decimal(f"{d:.{SHOWN_DIGITS - 1}e}"))
    if isinstance(x, float):
        return f"{x:g}" if abs(x) < 1e5 else format(Decimal(f"{x:.6g}").normalize(), "f")
    return format(d.normalize(), "f") if d == d.to_integral() else format(d, "f")


def exact(x: Any) -> str:
    """A number as typed into a field to be saved as shown: `2.0e8`, `6200`, `12.5` (every digit kept)."""
    d = _decimal(x)
    if d is None:
        return str(x)
    if _needs_exponent(d):
        return _scientific(d)
    d = d.normalize()
    return format(d, "f")


def quantity(value: Any, unit: str | None = None) -> str:
    """`2.0e8 cells`, `6200 mg`, `6 mL`: a `{value, unit}` mapping, or a number and its unit."""
    if isinstance(value, Mapping):
        value, unit = value.get("value"), value.get("unit")
    return f"{shown(value)} {unit or ''}".strip()
