"""Cold-chain settings: each product's storage range, excursion limits, preparation steps and the time
allowed outside a monitored unit.

Every lot belongs to a product (`Product`) of the protocol version in force:
a format-2 version declares them in ``[[products]]`` (``storage = { min_c,
max_c, target_c }``, ``excursion = { max_minutes, freezing }``, ``custody =
{ transit, bedside }``, ``preparation = [...]``); a format-1 version has its
one ``[product]`` (``storage_min_c / storage_max_c / storage_target_c``,
``max_transit_minutes``, ``max_bedside_minutes``; its one preparation step is
the thaw at the bedside). When no protocol is loaded, or it states no
range, the built-in values below apply (target −20 °C, excursion outside
−25 … −15 °C). A unit may be registered with its own range; the protocol's
first product's is the default (`limits`).

Between custody steps a kit is either in a storage unit (then the unit's
logger must cover the span) or in transit (a pharmacy bench, a corridor, a
courier's hands). Transit is allowed up to ``max_transit_minutes``; at the
bedside, thawing, reconstitution and the start of nebulisation are allowed
up to ``max_bedside_minutes``. Both can be set in the protocol's
``[product]`` table.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..sqlstore import SqlStore
from ..store import Store

DEFAULT_LOW_C = -25.0
DEFAULT_HIGH_C = -15.0
DEFAULT_TARGET_C = -20.0
DEFAULT_TRANSIT_MINUTES = 30
DEFAULT_BEDSIDE_MINUTES = 120
DEFAULT_INTERVAL_MINUTES = 5
FUTURE_TOLERANCE_S = 300

BEDSIDE = "bedside"
PHARMACY = "pharmacy"


@dataclass(frozen=True)
class Limits:
    low_c: float
    high_c: float
    target_c: float | None
    transit_s: int
    bedside_s: int
    source: str  # "protocol <id> <version>" or "built-in default"


def limits(store: Store, product: Product | None = None) -> Limits:
    """The range and allowances of `product`, by default the protocol's first (a new unit's range)."""
    p = product or first_product(store)
    return Limits(p.low_c, p.high_c, p.target_c, p.transit_s, p.bedside_s, p.source)


def _limits_of(product: dict[str, Any], source: str, *, found: bool) -> Limits:
    low = product.get("storage_min_c", DEFAULT_LOW_C)
    high = product.get("storage_max_c", DEFAULT_HIGH_C)
    if "storage_min_c" not in product and "storage_max_c" not in product:
        source = "built-in default" if not found else source + " (range: built-in default)"
    return Limits(
        low_c=float(low),
        high_c=float(high),
        target_c=float(product.get("storage_target_c", DEFAULT_TARGET_C)),
        transit_s=int(product.get("max_transit_minutes", DEFAULT_TRANSIT_MINUTES)) * 60,
        bedside_s=int(product.get("max_bedside_minutes", DEFAULT_BEDSIDE_MINUTES)) * 60,
        source=source,
    )


@dataclass(frozen=True)
class Step:
    """A preparation step a product declares (thaw, reconstitute, dilute), recorded before the dose."""

    code: str
    label: str
    at: str  # bedside or pharmacy
    within_s: int | None  # the step must end at most this long before the administration starts
    fields: tuple[tuple[str, Mapping[str, Any]], ...] = field(default=(), compare=False)
    """What the pharmacist records with a step at the pharmacy (`fields = { volume = { type = "number",
    unit = "mL", hard = [..] } }`), as the protocol declares them (schema-checked on load)."""


@dataclass(frozen=True)
class Product:
    """A product under custody: its storage range, excursion limits, allowances and preparation steps."""

    code: str
    name: str
    low_c: float
    high_c: float
    target_c: float | None
    transit_s: int
    bedside_s: int
    tolerated_s: int  # an excursion no longer than this does not quarantine (`excursion.max_minutes`)
    freezing: str | None  # "discard": a kit that went below 0 °C is never released; else None/"quarantine"
    steps: tuple[Step, ...]
    source: str
    placebo_for: str | None = None  # a blinded placebo and its active product are one at the bedside

    @property
    def range_c(self) -> tuple[float, float]:
        return (self.low_c, self.high_c)

    @property
    def frozen(self) -> bool:
        """Stored frozen (its range ends below 0 °C): it travels on dry ice and arrives frozen."""
        return self.high_c < 0

    def range_text(self) -> str:
        return f"{_num(self.low_c)} … {_num(self.high_c)} °C"

    @property
    def pharmacy_steps(self) -> tuple[Step, ...]:
        """The steps the pharmacist prepares and records (`at = "pharmacy"`) before the kit goes to the bedside."""
        return tuple(s for s in self.steps if s.at == PHARMACY)

    @property
    def bedside_steps(self) -> tuple[Step, ...]:
        """The steps recorded at the bedside (the thaw record), as before pharmacy steps existed."""
        return tuple(s for s in self.steps if s.at != PHARMACY)

    @property
    def use_within_s(self) -> int | None:
        """How long a product prepared at the pharmacy may wait for its administration: the shortest
        `within` of its pharmacy steps (None: the protocol states no use-within)."""
        limits_ = [s.within_s for s in self.pharmacy_steps if s.within_s is not None]
        return min(limits_) if limits_ else None


def _num(x: float) -> str:
    return f"{x:g}"


_DURATION = re.compile(r"^\+?([0-9]+(?:\.[0-9]+)?)(min|h|d|w)$")
_SECONDS = {"min": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: Any, default: int) -> int:
    """A protocol duration ("30min", "2h") in seconds; the default when absent (the schema checked it)."""
    m = _DURATION.match(str(text)) if text is not None else None
    return int(float(m.group(1)) * _SECONDS[m.group(2)]) if m else default


def _label(value: Any, code: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value:
        return str(value.get("en") or next(iter(value.values())))
    return code


def _active(store: SqlStore) -> Any | None:
    try:
        protocol_mod = importlib.import_module("wardcrf.protocol")
    except ImportError:  # a build without protocol files: the default applies
        return None
    try:
        return protocol_mod.active(store)
    except Exception:  # no protocol loaded yet: the default applies
        return None


def active_protocol(store: Store) -> Any | None:
    """The version in force (`protocol.Protocol`), or None when none is loaded."""
    return _active(store)


def _format1_product(product: dict[str, Any], source: str, *, found: bool = True) -> Product:
    lim = _limits_of(product, source, found=found)
    name = str(product.get("name") or "product")
    return Product(
        code=str(product.get("code") or name),
        name=name,
        low_c=lim.low_c,
        high_c=lim.high_c,
        target_c=lim.target_c,
        transit_s=lim.transit_s,
        bedside_s=lim.bedside_s,
        tolerated_s=0,
        freezing=None,
        steps=(Step("thaw", "Thaw and reconstitute at the bedside", BEDSIDE, None),),
        source=lim.source,
    )


def _format2_product(p: Any, source: str) -> Product:
    storage = p.get("storage") or {}
    custody = p.get("custody") or {}
    excursion = p.get("excursion") or {}
    has_range = "min_c" in storage and "max_c" in storage
    return Product(
        code=str(p["code"]),
        name=str(p.get("name", p["code"])),
        low_c=float(storage["min_c"]) if has_range else DEFAULT_LOW_C,
        high_c=float(storage["max_c"]) if has_range else DEFAULT_HIGH_C,
        target_c=float(storage["target_c"]) if "target_c" in storage else None,
        transit_s=_seconds(custody.get("transit"), DEFAULT_TRANSIT_MINUTES * 60),
        bedside_s=_seconds(custody.get("bedside"), DEFAULT_BEDSIDE_MINUTES * 60),
        tolerated_s=int(excursion.get("max_minutes", 0)) * 60,
        freezing=excursion.get("freezing"),
        steps=tuple(
            Step(
                str(s["code"]),
                _label(s.get("label"), str(s["code"])),
                str(s.get("at", BEDSIDE)),
                _seconds(s["within"], 0) if s.get("within") else None,
                tuple((str(name), dict(spec)) for name, spec in (s.get("fields") or {}).items()),
            )
            for s in p.get("preparation") or ()
        ),
        source=source if has_range else source + " (range: built-in default)",
        placebo_for=str(p["placebo_for"]) if p.get("placebo_for") else None,
    )


def products(store: SqlStore) -> dict[str, Product]:
    """The products of the protocol version in force, by code, in declared order (never empty).

    A format-2 version: its ``[[products]]``; a format-1 version: its one
    ``[product]``; no protocol: the built-in default (the first trial's −20 °C range).
    """
    return products_of(_active(store))


def products_of(active: Any | None) -> dict[str, Product]:
    """The products of a protocol version (`protocol.Protocol`; None: the built-in default), by code."""
    if active is None:
        default = _format1_product({}, "built-in default", found=False)
        return {default.code: default}
    source = f"protocol {active.id} {active.version}"
    model = getattr(active, "engine", None)
    declared = list(model.data.get("products", ())) if model is not None else []
    if declared:
        return {str(p["code"]): _format2_product(p, f"{source} product {p['code']}") for p in declared}
    product = getattr(active, "product", None)
    one = _format1_product(dict(product) if isinstance(product, dict) else {}, source)
    return {one.code: one}


def first_product(store: Store) -> Product:
    """The product a lot recorded before products were named belongs to: the protocol's first."""
    return next(iter(products(store).values()))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def product_named(store: Store, raw: str | None) -> Product:
    """The declared product a person named (its code or its name, any case); `ValueError` saying the choices.

    Blank: the protocol's one product, or refused when it declares several.
    """
    found = products(store)
    text = unicodedata.normalize("NFC", (raw or "").strip())
    if _CONTROL.search(text) or len(text) > 200:
        raise ValueError("a product is named by its code: printable text, at most 200 characters")
    choices = ", ".join(found)
    if not text:
        if len(found) == 1:
            return next(iter(found.values()))
        raise ValueError(f"name the product (one of {choices})")
    for p in found.values():
        if text.casefold() in (p.code.casefold(), p.name.casefold()):
            return p
    if len(found) == 1:  # the label's wording of the protocol's one product
        return next(iter(found.values()))
    raise ValueError(f"unknown product {text!r} (the protocol declares: {choices})")


def product_of_lot(store: SqlStore, lot: str | None) -> Product:
    """A lot's product under the version in force; a lot recorded before products were named
    (or a product no longer declared) has the protocol's first product."""
    found = products(store)
    if lot is not None:
        code = store.scalar("SELECT product_code FROM cc_lots WHERE lot = ?", (lot,))
        if code is not None and str(code) in found:
            return found[str(code)]
    return next(iter(found.values()))


def product_of_kit(store: SqlStore, kit: str) -> Product:
    lot = store.scalar("SELECT lot FROM cc_kits WHERE kit_id = ?", (kit,))
    return product_of_lot(store, str(lot) if lot is not None else None)


def serves(store: Store, kit_product: Product, code: str) -> bool:
    """Whether a kit of `kit_product` serves an administration of product `code`: the same product, or
    its blinded twin (a placebo and the product it stands for look alike at the bedside; the
    allocation gate checks the kit is the participant's)."""
    found = products(store)
    if len(found) == 1:  # one product (a format-1 ward whose engine names it by its format-2 code): it
        return True
    other = found.get(code)
    return code in (kit_product.code, kit_product.placebo_for) or (
        other is not None and other.placebo_for == kit_product.code
    )


def single_range(store: SqlStore) -> bool:
    """Whether every product shares one storage range (then each unit's own range judges every kit, as
    before products were told apart)."""
    return len({p.range_c for p in products(store).values()}) == 1


def site_zone(store: Store) -> str:
    return str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")


def is_bedside(location: str) -> bool:
    return location == BEDSIDE or location.startswith(BEDSIDE + ":")


def bedside_of(location: str) -> str | None:
    """The participant a bedside place names (`bedside:WUH01-002` -> `WUH01-002`); None for a bedside that
    names no one (`bedside`) and for any other place."""
    if not location.startswith(BEDSIDE + ":"):
        return None
    return location.split(":", 1)[1].strip() or None
