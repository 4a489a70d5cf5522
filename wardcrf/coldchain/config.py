"""Cold-chain settings: the storage range and the time allowed outside a monitored unit.

The storage range comes from the active protocol file (``[product]
storage_min_c / storage_max_c / storage_target_c``); when no protocol is
loaded, or it states no range, the MEXCOVID values below apply (target
−20 °C, excursion outside −25 … −15 °C). A unit may be registered with its
own range; the protocol's is the default.

Between custody steps a kit is either in a storage unit (then the unit's
logger must cover the span) or in transit (a pharmacy bench, a corridor, a
courier's hands). Transit is allowed up to ``max_transit_minutes``; at the
bedside, thawing, reconstitution and the start of nebulisation are allowed
up to ``max_bedside_minutes``. Both can be set in the protocol's
``[product]`` table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..store import Store

DEFAULT_LOW_C = -25.0
DEFAULT_HIGH_C = -15.0
DEFAULT_TARGET_C = -20.0
DEFAULT_TRANSIT_MINUTES = 30
DEFAULT_BEDSIDE_MINUTES = 120
DEFAULT_INTERVAL_MINUTES = 5
FUTURE_TOLERANCE_S = 300

BEDSIDE = "bedside"


@dataclass(frozen=True)
class Limits:
    low_c: float
    high_c: float
    target_c: float | None
    transit_s: int
    bedside_s: int
    source: str  # "protocol <id> <version>" or "built-in MEXCOVID default"


def _product(store: Store) -> tuple[dict[str, Any], str] | None:
    try:
        protocol_mod = importlib.import_module("wardcrf.protocol")
    except ImportError:  # a build without protocol files: the default applies
        return None
    try:
        active = protocol_mod.active(store)
    except Exception:  # no protocol loaded yet: the default applies
        return None
    product = getattr(active, "product", None)
    if not isinstance(product, dict):
        return None
    return product, f"protocol {active.id} {active.version}"


def limits(store: Store) -> Limits:
    found = _product(store)
    product, source = found if found else ({}, "built-in MEXCOVID default")
    low = product.get("storage_min_c", DEFAULT_LOW_C)
    high = product.get("storage_max_c", DEFAULT_HIGH_C)
    if "storage_min_c" not in product and "storage_max_c" not in product:
        source = "built-in MEXCOVID default" if not found else source + " (range: built-in default)"
    return Limits(
        low_c=float(low),
        high_c=float(high),
        target_c=float(product.get("storage_target_c", DEFAULT_TARGET_C)),
        transit_s=int(product.get("max_transit_minutes", DEFAULT_TRANSIT_MINUTES)) * 60,
        bedside_s=int(product.get("max_bedside_minutes", DEFAULT_BEDSIDE_MINUTES)) * 60,
        source=source,
    )


def site_zone(store: Store) -> str:
    return str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")


def is_bedside(location: str) -> bool:
    return location == BEDSIDE or location.startswith(BEDSIDE + ":")
