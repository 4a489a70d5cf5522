"""Read-only cold-chain views: custody, excursions, status and the handover audit."""

from __future__ import annotations

import json
from typing import Any

from ..site import Session
from ..store import Store
from . import config, custody, evidence
from .loggers import iso_z


def custody_of(session: Session, kit_or_lot: str, *, when: int | None = None) -> list[custody.Chain]:
    """The chain of one kit, or of every kit of a lot."""
    session.require("record.read", what="read custody records")
    key = kit_or_lot.strip().upper()
    store = session.store
    kits = [r[0] for r in store.execute("SELECT kit_id FROM cc_kits WHERE lot = ? ORDER BY kit_id", (key,))]
    if not kits:
        kits = [key]
    return [custody.chain(store, k, when) for k in kits]


def excursions(session: Session) -> list[dict[str, Any]]:
    session.require("record.read", what="read excursions")
    store = session.store
    return [
        excursion_view(store, x)
        for x in store.rows("SELECT * FROM cc_excursions ORDER BY start_t, excursion_id")
    ]


def excursion_view(store: Store, x: dict[str, Any]) -> dict[str, Any]:
    """One `cc_excursions` row with its affected kits and their dispositions."""
    kits = custody.affected_kits(store, x)
    disp = {
        r["kit_id"]: r
        for r in store.rows(
            "SELECT kit_id, decision, reason, by_user, event_id FROM cc_dispositions WHERE excursion_id = ?",
            (x["excursion_id"],),
        )
    }
    return {
        "id": x["excursion_id"],
        "kind": x["kind"],
        "unit": x["unit_id"],
        "receipt": x["receipt_event"],
        "start": iso_z(x["start_t"]),
        "end": iso_z(x["end_t"]),
        "duration_min": (x["end_t"] - x["start_t"]) // 60,
        "min_c": x["min_c"],
        "max_c": x["max_c"],
        "open": bool(x["is_open"]),
        "detail": x["detail"],
        "kits": [{"kit": k, "disposition": disp.get(k)} for k in kits],
        "awaiting_disposition": [k for k in kits if k not in disp],
    }


def unit_status(store: Store) -> list[dict[str, Any]]:
    """Each storage unit with its last reading and its unresolved excursions (pure read).

    "Unresolved" is what the pharmacist still has to act on, as in `status`:
    an excursion still open (the last reading is out of range) or one whose
    affected kits await a disposition. Receipt excursions belong to no unit
    and are not listed here (see `status`). What the dashboard's freezer
    panel and the cold-chain screens show.
    """
    units = []
    for u in store.rows("SELECT * FROM cc_units ORDER BY unit_id"):
        unit_id = u["unit_id"]
        last = store.one(
            "SELECT t, temp_c, 'logger' FROM cc_readings WHERE unit_id = ? UNION ALL"
            " SELECT at, temp_c, 'manual' FROM cc_manual_readings WHERE unit_id = ? ORDER BY 1 DESC LIMIT 1",
            (unit_id, unit_id),
        )
        unresolved = []
        for x in store.rows(
            "SELECT * FROM cc_excursions WHERE scope = 'unit' AND unit_id = ? ORDER BY start_t, excursion_id",
            (unit_id,),
        ):
            view = excursion_view(store, x)
            if view["open"] or view["awaiting_disposition"]:
                unresolved.append(view)
        reading = None
        if last:
            reading = {
                "at": iso_z(last[0]),
                "temp_c": last[1],
                "source": last[2],
                "in_range": u["low_c"] <= last[1] <= u["high_c"],
            }
        units.append(
            {
                "unit": unit_id,
                "name": u["name"],
                "location": u["location"],
                "range_c": [u["low_c"], u["high_c"]],
                "interval_min": u["interval_s"] // 60,
                "last_reading": reading,
                "open_excursions": unresolved,
            }
        )
    return units


def freezers(session: Session) -> dict[str, Any]:
    """The dashboard's freezer panel: `unit_status`, and receipt excursions still unresolved."""
    session.require("record.read", what="read cold-chain status")
    store = session.store
    receipts = [
        v
        for v in (
            excursion_view(store, x)
            for x in store.rows(
                "SELECT * FROM cc_excursions WHERE scope = 'receipt' ORDER BY start_t, excursion_id"
            )
        )
        if v["open"] or v["awaiting_disposition"]
    ]
    return {"units": unit_status(store), "receipt_excursions": receipts}


def status(session: Session) -> dict[str, Any]:
    """Units with their last reading, open excursions and quarantined kits."""
    session.require("record.read", what="read cold-chain status")
    store = session.store
    units = []
    for u in store.rows("SELECT * FROM cc_units ORDER BY unit_id"):
        last = store.one(
            "SELECT t, temp_c, 'logger' FROM cc_readings WHERE unit_id = ? UNION ALL"
            " SELECT at, temp_c, 'manual' FROM cc_manual_readings WHERE unit_id = ? ORDER BY 1 DESC LIMIT 1",
            (u["unit_id"], u["unit_id"]),
        )
        kits = [
            r[0]
            for r in store.execute("SELECT kit_id FROM cc_kits ORDER BY kit_id")
            if custody.location_at(store, r[0], 2**62) == u["unit_id"]
        ]
        units.append(
            {
                "unit": u["unit_id"],
                "name": u["name"],
                "location": u["location"],
                "range_c": [u["low_c"], u["high_c"]],
                "zone": u["zone"],
                "interval_min": u["interval_s"] // 60,
                "last_reading": {"at": iso_z(last[0]), "temp_c": last[1], "source": last[2]}
                if last
                else None,
                "kits": kits,
            }
        )
    exc = [x for x in excursions(session) if x["awaiting_disposition"] or x["open"]]
    lim = config.limits(store)
    return {
        "range_source": lim.source,
        "units": units,
        "open_excursions": exc,
        "quarantined_kits": [{"kit": k, "excursion": x} for k, x in custody.quarantined_kits(store)],
    }


def handover_audit(session: Session) -> dict[str, Any]:
    """Every receipt and handover: parties, each signature's state, each photo's hash check."""
    session.require("audit.verify", what="audit handovers")
    store = session.store
    items = []
    ok = True
    for t in store.rows("SELECT * FROM cc_transfers ORDER BY at, event_id"):
        problems, sigs, photos = custody.transfer_checks(store, t)
        details = json.loads(t["details"])
        logger = details.get("logger") or None
        logger_state = None
        if logger:
            logger_state = {"sha256": logger["sha256"], "state": evidence.status(store, logger["sha256"])}
            if logger_state["state"] != "ok":
                problems.append(f"receipt {t['event_id']}: logger file is {logger_state['state']}")
        ok = ok and not problems
        items.append(
            {
                "event_id": t["event_id"],
                "kind": t["kind"],
                "at": iso_z(t["at"]),
                "from": {"party": t["from_party"], "user": t["from_user"], "location": t["from_location"]},
                "to": {"party": t["to_party"], "user": t["to_user"], "location": t["to_location"]},
                "kits": json.loads(t["kits"]),
                "condition": t["condition"],
                "signatures": sigs,
                "photos": photos,
                "logger_file": logger_state,
                "ok": not problems,
                "problems": problems,
            }
        )
    files = []
    for f in store.rows("SELECT event_id, sha256, name, unit_id FROM cc_logger_files ORDER BY event_id"):
        state = evidence.status(store, f["sha256"])
        ok = ok and state == "ok"
        files.append({**f, "state": state})
    return {"ok": ok, "transfers": items, "logger_files": files}
