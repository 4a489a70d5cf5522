"""Cold-chain projections: form hooks and the logger-import projector.

Every hook is keyed by the record's event id and rewrites that record's rows
(delete, then insert), so re-running it after an amendment, or replaying the
whole log in `db rebuild`, gives the same rows. No clock, no file access.
Kit ids and lot numbers are stored as their comparison key (`wardcrf.ids.key`),
whatever device or version wrote the event.

Every hook and projector here is declared `common_dialect`: a PostgreSQL hub
runs them too (docs/hub-postgres.md, `sync/hub_pg.sql` 0008-cold-chain). So
SQLite's ``INSERT OR REPLACE`` is `sqlstore.upsert` (every table here has one
unique key, its primary key, so the row left is the same), ``INSERT OR
IGNORE`` is ``ON CONFLICT DO NOTHING``, and the scalar ``max``/``min`` that
widen an excursion are `_wider` (a CASE both engines read alike).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from .. import ids
from ..canonical import dumps
from ..eventlog import Event
from ..records import Record
from ..sqlstore import common_dialect, upsert
from ..store import Store
from .rejudge import EVENT_JUDGED
from .services import (
    EVENT_LOGGER,
    FORM_DISPOSITION,
    FORM_HANDOVER,
    FORM_LOT,
    FORM_PREPARATION,
    FORM_READING,
    FORM_RECEIPT,
    FORM_THAW,
    FORM_UNIT,
    arrival_failures,
)

if TYPE_CHECKING:
    from ..features import Registry


def epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _wider(fn: str, col: str) -> str:
    """``col = max(col, excluded.col)`` (`fn` "max" or "min") of an excursion seen again, as SQLite's scalar
    max/min gives it (NULL when either is NULL), in SQL PostgreSQL runs too (its max/min are aggregates)."""
    held, new = f"cc_excursions.{col}", f"excluded.{col}"
    op = ">" if fn == "max" else "<"
    return f"{col} = CASE WHEN {held} IS NULL OR {new} IS NULL THEN NULL WHEN {new} {op} {held} THEN {new} ELSE {held} END"


_EXCURSION_SEEN_AGAIN = ", ".join((_wider("max", "end_t"), _wider("min", "min_c"), _wider("max", "max_c")))

_UNIT_SQL = upsert(
    "cc_units",
    ("unit_id", "name", "location", "low_c", "high_c", "target_c", "zone", "interval_s", "event_id"),
    ("unit_id",),
)
_LOT_SQL = upsert(
    "cc_lots",
    ("lot", "product", "expiry", "release_ref", "quantity", "event_id", "product_code"),
    ("lot",),
)
_KIT_SQL = upsert("cc_kits", ("kit_id", "lot", "event_id"), ("kit_id",))
_MANUAL_EXCURSION_SQL = upsert(
    "cc_excursions",
    (
        "excursion_id",
        "scope",
        "kind",
        "unit_id",
        "start_t",
        "end_t",
        "min_c",
        "max_c",
        "is_open",
        "source_event",
        "detail",
        "product",
    ),
    ("excursion_id",),
)
_THAW_SQL = upsert(
    "cc_thaws", ("event_id", "kit_id", "start_t", "end_t", "by_user", "reconstitution"), ("event_id",)
)
_PREPARATION_SQL = upsert(
    "cc_preparations",
    ("event_id", "kit_id", "product", "steps", "start_t", "end_t", "use_by_t", "by_user", "field_values"),
    ("event_id",),
)
_DISPOSITION_SQL = upsert(
    "cc_dispositions",
    ("excursion_id", "kit_id", "decision", "reason", "by_user", "event_id"),
    ("excursion_id", "kit_id"),
)
_LOGGER_FILE_SQL = upsert(
    "cc_logger_files",
    ("event_id", "sha256", "name", "unit_id", "format", "serial", "first_t", "last_t", "readings", "summary"),
    ("event_id",),
)


@common_dialect
def _unit(store: Store, rec: Record) -> None:
    d = rec.data
    store.execute("DELETE FROM cc_units WHERE event_id = ?", (rec.event_id,))
    store.execute(
        _UNIT_SQL,
        (
            d["unit_id"],
            d["name"],
            d["location"],
            d["low_c"],
            d["high_c"],
            d.get("target_c"),
            d["zone"],
            d["interval_s"],
            rec.event_id,
        ),
    )


@common_dialect
def _lot(store: Store, rec: Record) -> None:
    d = rec.data
    store.execute("DELETE FROM cc_lots WHERE event_id = ?", (rec.event_id,))
    store.execute("DELETE FROM cc_kits WHERE event_id = ?", (rec.event_id,))
    store.execute(
        _LOT_SQL,
        (
            ids.key(d["lot"]),
            d["product"],
            d["expiry"],
            d["release_ref"],
            d["quantity"],
            rec.event_id,
            d.get("product_code"),  # absent before products were told apart: the protocol's first
        ),
    )
    for kit in d.get("kits") or []:
        store.execute(_KIT_SQL, (ids.key(kit), ids.key(d["lot"]), rec.event_id))


def _transfer(store: Store, rec: Record, kind: str) -> None:
    d = rec.data
    at = epoch(d["at"])
    kits = [ids.key(k) for k in d.get("kits") or []]
    details = {
        k: d.get(k)
        for k in (
            "shipper_id",
            "dry_ice_present",
            "container_intact",
            "product_frozen",
            "logger_serial",
            "logger",
        )
        if k in d
    }
    store.execute("DELETE FROM cc_transfers WHERE event_id = ?", (rec.event_id,))
    store.execute("DELETE FROM cc_custody WHERE event_id = ?", (rec.event_id,))
    store.execute(
        "INSERT INTO cc_transfers (event_id, kind, at, from_party, from_user, to_party, to_user, from_location,"
        " to_location, condition, photos, kits, details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            rec.event_id,
            kind,
            at,
            d["from_party"],
            d.get("from_user"),
            d["to_party"],
            d.get("to_user"),
            d["from_location"],
            d["to_location"],
            d.get("condition") or "",
            dumps(d.get("photos") or []),
            dumps(kits),
            dumps(details),
        ),
    )
    for kit in kits:
        store.execute("INSERT INTO cc_custody (event_id, kit_id, at) VALUES (?,?,?)", (rec.event_id, kit, at))


@common_dialect
def _receipt(store: Store, rec: Record) -> None:
    _transfer(store, rec, "receipt")
    d = rec.data
    store.execute("DELETE FROM cc_excursions WHERE source_event = ?", (rec.event_id,))
    failed = arrival_failures(
        d.get("arrival_expected"),
        d.get("dry_ice_present"),
        d.get("container_intact"),
        d.get("product_frozen"),
    )
    at = epoch(d["at"])
    if failed:
        store.execute(
            "INSERT INTO cc_excursions (excursion_id, scope, kind, receipt_event, start_t, end_t, is_open,"
            " source_event, detail) VALUES (?,?,?,?,?,?,0,?,?)",
            (
                f"receipt/{rec.event_id}/arrival",
                "receipt",
                "arrival",
                rec.event_id,
                at,
                at,
                rec.event_id,
                "; ".join(failed),
            ),
        )
    logger = d.get("logger") or {}
    for i, e in enumerate(logger.get("excursions") or []):
        store.execute(
            "INSERT INTO cc_excursions (excursion_id, scope, kind, receipt_event, start_t, end_t, min_c, max_c,"
            " is_open, source_event, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                f"receipt/{rec.event_id}/transit-{i + 1}",
                "receipt",
                "transit",
                rec.event_id,
                epoch(e["start"]),
                epoch(e["end"]),
                e["min_c"],
                e["max_c"],
                int(bool(e.get("open"))),
                rec.event_id,
                f"transit log above {logger.get('high_c')} °C"
                if logger.get("low_c") is None
                else f"transit log outside {logger.get('low_c')} … {logger.get('high_c')} °C",
            ),
        )


@common_dialect
def _handover(store: Store, rec: Record) -> None:
    _transfer(store, rec, "handover")


@common_dialect
def _reading(store: Store, rec: Record) -> None:
    d = rec.data
    at = epoch(d["at"])
    store.execute("DELETE FROM cc_manual_readings WHERE event_id = ?", (rec.event_id,))
    store.execute("DELETE FROM cc_excursions WHERE source_event = ?", (rec.event_id,))
    store.execute(
        "INSERT INTO cc_manual_readings (event_id, unit_id, at, temp_c, by_user) VALUES (?,?,?,?,?)",
        (rec.event_id, d["unit_id"], at, d["temp_c"], rec.created_by),
    )
    for judged in d.get("products") or ():  # a product stored at another range, judged by its own
        if not (judged["low_c"] <= d["temp_c"] <= judged["high_c"]):
            _manual_excursion(store, rec, at, judged["low_c"], judged["high_c"], judged["product"])
    if not (d["low_c"] <= d["temp_c"] <= d["high_c"]):
        _manual_excursion(store, rec, at, d["low_c"], d["high_c"])


def _manual_excursion(
    store: Store, rec: Record, at: int, low_c: float, high_c: float, product: str | None = None
) -> None:
    """A manual reading outside a range: the unit's own (`product` None), or a product's kept there."""
    d = rec.data
    named = f"/{product}" if product else ""
    store.execute(
        _MANUAL_EXCURSION_SQL,
        (
            f"{d['unit_id']}/{d['at']}/manual{named}",
            "unit",
            "manual",
            d["unit_id"],
            at,
            at,
            d["temp_c"],
            d["temp_c"],
            0,
            rec.event_id,
            f"manual reading outside {low_c} … {high_c} °C" + (f" ({product})" if product else ""),
            product,
        ),
    )


@common_dialect
def _thaw(store: Store, rec: Record) -> None:
    d = rec.data
    store.execute(
        _THAW_SQL,
        (
            rec.event_id,
            ids.key(d["kit_id"]),
            epoch(d["start"]),
            epoch(d["end"]),
            d.get("by"),
            d.get("reconstitution"),
        ),
    )


@common_dialect
def _preparation(store: Store, rec: Record) -> None:
    d = rec.data
    store.execute(
        _PREPARATION_SQL,
        (
            rec.event_id,
            ids.key(d["kit_id"]),
            d["product"],
            dumps(d.get("steps") or []),
            epoch(d["start"]),
            epoch(d["end"]),
            epoch(d["use_by"]) if d.get("use_by") else None,
            d.get("by"),
            dumps(d.get("values") or {}),
        ),
    )


@common_dialect
def _readings_judged(store: Store, e: Event) -> None:
    """A unit's readings imported before a protocol version added products, judged by those products'
    ranges when the version was loaded: the same excursion rows an import judging them would have written
    (same ids, so a later file extending one keeps it)."""
    b = e.body
    unit = b["unit_id"]
    for judged in b["products"]:
        product, low, high = judged["product"], judged["low_c"], judged["high_c"]
        for x in judged.get("excursions") or []:
            store.execute(
                "INSERT INTO cc_excursions (excursion_id, scope, kind, unit_id, start_t, end_t, min_c, max_c,"
                " is_open, source_event, detail, product) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (excursion_id) DO UPDATE SET " + _EXCURSION_SEEN_AGAIN,
                (
                    f"{unit}/{x['start']}/{product}",
                    "unit",
                    "logger",
                    unit,
                    epoch(x["start"]),
                    epoch(x["end"]),
                    x["min_c"],
                    x["max_c"],
                    int(bool(x.get("open"))),
                    e.id,
                    f"logger outside {low} … {high} °C ({product})",
                    product,
                ),
            )
        for m in judged.get("manual") or []:
            at = epoch(m["at"])
            store.execute(
                "INSERT INTO cc_excursions (excursion_id, scope, kind, unit_id, start_t, end_t, min_c,"
                " max_c, is_open, source_event, detail, product) VALUES (?,?,?,?,?,?,?,?,0,?,?,?)"
                " ON CONFLICT (excursion_id) DO NOTHING",
                (
                    f"{unit}/{m['at']}/manual/{product}",
                    "unit",
                    "manual",
                    unit,
                    at,
                    at,
                    m["temp_c"],
                    m["temp_c"],
                    e.id,
                    f"manual reading outside {low} … {high} °C ({product})",
                    product,
                ),
            )


@common_dialect
def _disposition(store: Store, rec: Record) -> None:
    d = rec.data
    store.execute("DELETE FROM cc_dispositions WHERE event_id = ?", (rec.event_id,))
    for kit in d.get("kits") or []:
        store.execute(
            _DISPOSITION_SQL,
            (d["excursion_id"], ids.key(kit), d["decision"], d["reason"], rec.created_by, rec.event_id),
        )


@common_dialect
def _logger_imported(store: Store, e: Event) -> None:
    b = e.body
    s = b["summary"]
    store.execute(
        _LOGGER_FILE_SQL,
        (
            e.id,
            b["sha256"],
            b["name"],
            b["unit_id"],
            b["format"],
            b.get("serial"),
            epoch(s["first"]),
            epoch(s["last"]),
            s["readings"],
            json.dumps(s, sort_keys=True),
        ),
    )
    series = [(None, b["low_c"], b["high_c"], b.get("excursions") or [])]
    # Products stored at another range than the unit's, each judged by its own (absent before products
    # were told apart, and when the protocol's products share one range).
    series += [
        (j["product"], j["low_c"], j["high_c"], j.get("excursions") or []) for j in b.get("products") or []
    ]
    for product, low, high, found in series:
        for x in found:
            xid = f"{b['unit_id']}/{x['start']}" + (f"/{product}" if product else "")
            detail = f"logger outside {low} … {high} °C" + (f" ({product})" if product else "")
            # A later file may extend an excursion that an earlier one saw open.
            store.execute(
                "INSERT INTO cc_excursions (excursion_id, scope, kind, unit_id, start_t, end_t, min_c, max_c,"
                " is_open, source_event, detail, product) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (excursion_id) DO UPDATE SET " + _EXCURSION_SEEN_AGAIN + ","
                " is_open = excluded.is_open, source_event = excluded.source_event",
                (
                    xid,
                    "unit",
                    "logger",
                    b["unit_id"],
                    epoch(x["start"]),
                    epoch(x["end"]),
                    x["min_c"],
                    x["max_c"],
                    int(bool(x.get("open"))),
                    e.id,
                    detail,
                    product,
                ),
            )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.form_hook(_unit, FORM_UNIT)
    registry.form_hook(_lot, FORM_LOT)
    registry.form_hook(_receipt, FORM_RECEIPT)
    registry.form_hook(_handover, FORM_HANDOVER)
    registry.form_hook(_reading, FORM_READING)
    registry.form_hook(_thaw, FORM_THAW)
    registry.form_hook(_preparation, FORM_PREPARATION)
    registry.form_hook(_disposition, FORM_DISPOSITION)
    registry.projector(_logger_imported, EVENT_LOGGER)
    registry.projector(_readings_judged, EVENT_JUDGED)
