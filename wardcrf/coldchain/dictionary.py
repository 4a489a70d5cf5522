"""What each field of a cold-chain record means: the data dictionary of the ``coldchain.*`` forms.

Cold-chain records are not protocol forms: `services` writes them (a
storage unit, a lot, a shipment receipt, a handover, a manual reading, a
thaw, a preparation at the pharmacy, a disposition after an excursion). The CSV export describes their
columns from this catalogue; a test checks that every column the demo's
records produce is described here, so a new field cannot reach an export
undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass

from .services import (
    FORM_DISPOSITION,
    FORM_HANDOVER,
    FORM_LOT,
    FORM_PREPARATION,
    FORM_READING,
    FORM_RECEIPT,
    FORM_THAW,
    FORM_UNIT,
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # text | integer | number | boolean | date | datetime | list | json | photo
    label: str
    description: str
    unit: str = ""
    when_present: bool = False
    """A column exports carry only when some record holds it (a product-aware field a one-product trial never
    writes: its files keep the columns they always had)."""


_AT = "UTC ISO 8601 (Z)"
_KITS = Column("kits", "list", "Kits", "kit ids moved or decided on, joined by ';'")
_PARTIES = (
    Column(
        "from_party",
        "text",
        "Handed over by",
        "printed name of the party handing over (with role, or the external courier's name)",
    ),
    Column(
        "from_user",
        "text",
        "Handed over by (user)",
        "their wardcrf user name; blank for an external party with no account",
    ),
    Column("to_party", "text", "Received by", "printed name of the receiving party"),
    Column("to_user", "text", "Received by (user)", "their wardcrf user name; blank for an external party"),
    Column(
        "from_location",
        "text",
        "From",
        "where the kits came from (a storage unit id, 'pharmacy', 'shipper:<id>', ...)",
    ),
    Column(
        "to_location", "text", "To", "where the kits went (a storage unit id, 'bedside:<participant>', ...)"
    ),
)
_PHOTOS = Column(
    "photos", "photo", "Photographs", "sha256: references of the photographed signed sheet(s), joined by ';'"
)

COLUMNS: dict[str, tuple[Column, ...]] = {
    FORM_UNIT: (
        Column("unit_id", "text", "Storage unit", "id of the freezer or refrigerator"),
        Column("name", "text", "Name", "the unit's name as shown to people"),
        Column("location", "text", "Location", "where the unit stands"),
        Column(
            "low_c", "number", "Lowest allowed", "lower storage limit; readings below are excursions", "C"
        ),
        Column(
            "high_c", "number", "Highest allowed", "upper storage limit; readings above are excursions", "C"
        ),
        Column("target_c", "number", "Target", "target storage temperature", "C"),
        Column("zone", "text", "Time zone", "IANA zone of the unit's logger clock"),
        Column("interval_s", "integer", "Logging interval", "expected interval between logger readings", "s"),
        Column(
            "range_source",
            "text",
            "Range from",
            "where the limits come from: the protocol ('protocol ID version') or set for this unit ('unit')",
        ),
    ),
    FORM_LOT: (
        Column("lot", "text", "Lot", "manufacturer's lot number"),
        Column("product", "text", "Product", "product name and strength as labelled"),
        Column(
            "product_code",
            "text",
            "Product code",
            "the protocol's product the lot belongs to (its storage range, excursion limits and preparation), written when the protocol declares several; blank: the protocol's first (its only one)",
            when_present=True,
        ),
        Column("expiry", "date", "Expiry", "expiry date (blank when not labelled)"),
        Column(
            "release_ref", "text", "Release reference", "the qualified person's release certificate reference"
        ),
        Column("quantity", "integer", "Quantity", "number of kits in the lot, as stated"),
        _KITS,
    ),
    FORM_RECEIPT: (
        Column("shipper_id", "text", "Shipper", "id of the validated shipper the lot arrived in"),
        _KITS,
        Column("at", "datetime", "Received at", f"time of receipt, {_AT}"),
        *_PARTIES,
        Column("dry_ice_present", "boolean", "Dry ice present", "dry ice still present on arrival"),
        Column("container_intact", "boolean", "Container intact", "shipper and seals intact on arrival"),
        Column("product_frozen", "boolean", "Product frozen", "product still frozen on arrival"),
        Column(
            "arrival_expected",
            "json",
            "Arrival expected",
            "what the kits' product should arrive as: dry_ice (true, or null when not checked) and frozen (true or false), from its storage range (JSON); blank: a frozen product's (dry ice, frozen)",
            when_present=True,
        ),
        Column(
            "logger_serial", "text", "Transit logger", "serial number of the shipper's temperature logger"
        ),
        Column(
            "logger",
            "json",
            "Transit log summary",
            "the imported transit log: file name, SHA-256, readings, first/last, min/max/MKT °C, excursions and gaps (JSON); blank when only the serial was given",
        ),
        _PHOTOS,
        Column("condition", "text", "Condition", "condition on receipt, in words"),
    ),
    FORM_HANDOVER: (
        _KITS,
        Column("at", "datetime", "Handed over at", f"time of the handover, {_AT}"),
        *_PARTIES,
        Column("condition", "text", "Condition", "condition at handover, in words"),
        _PHOTOS,
    ),
    FORM_READING: (
        Column("unit_id", "text", "Storage unit", "the unit read"),
        Column("at", "datetime", "Read at", f"time of the manual reading, {_AT}"),
        Column("temp_c", "number", "Temperature", "temperature read from the unit's display", "C"),
        Column("low_c", "number", "Lowest allowed", "the unit's lower limit when read", "C"),
        Column("high_c", "number", "Highest allowed", "the unit's upper limit when read", "C"),
        Column(
            "products",
            "json",
            "Products judged",
            "products stored at another range than the unit's, each judged by its own: product, low_c, high_c (JSON); blank when the protocol's products share one range",
            when_present=True,
        ),
    ),
    FORM_THAW: (
        Column("kit_id", "text", "Kit", "the kit thawed"),
        Column("start", "datetime", "Thaw started", f"{_AT}"),
        Column("end", "datetime", "Thaw ended", f"{_AT}"),
        Column("by", "text", "Thawed by (user)", "wardcrf user name of who thawed it"),
        Column("reconstitution", "text", "Reconstitution", "how the product was reconstituted"),
    ),
    FORM_PREPARATION: (
        Column("kit_id", "text", "Kit", "the kit prepared at the pharmacy"),
        Column("product", "text", "Product", "the protocol's product code of the kit's lot"),
        Column(
            "steps",
            "list",
            "Steps",
            "the product's preparation steps done at the pharmacy (their codes), joined by ';'",
        ),
        Column("start", "datetime", "Preparation started", f"{_AT}"),
        Column("end", "datetime", "Preparation ended", f"{_AT}"),
        Column("by", "text", "Prepared by (user)", "wardcrf user name of the pharmacist, who signed it"),
        Column(
            "values",
            "json",
            "Preparation fields",
            "the fields the protocol asks with the steps (e.g. the diluted volume), as recorded (JSON)",
        ),
        Column(
            "use_by",
            "datetime",
            "Use by",
            f"the end plus the shortest use-within of the steps, {_AT}; blank when the protocol states none",
            when_present=True,
        ),
    ),
    FORM_DISPOSITION: (
        Column("excursion_id", "text", "Excursion", "the excursion decided on (<unit>/<start UTC>)"),
        _KITS,
        Column("decision", "text", "Decision", "release (the kits may be used) or discard (they may not)"),
        Column("reason", "text", "Reason", "why, with the evidence relied on"),
    ),
}
