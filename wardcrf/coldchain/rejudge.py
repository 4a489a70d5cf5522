"""Readings judged again when a protocol version adds products (issue 17).

A logger import judges a unit's readings against the unit's range and every
product of the version in force whose range is not the unit's (`services.
import_logger`); a manual reading likewise. A product that a later amendment
adds was in no version when the files already imported were judged, so its
kits, once recorded in that unit (custody steps may be entered after the
file), would be judged by nothing. When a version is loaded, each unit's
readings already imported (logger files and manual readings) are judged
against every product the new version judges that the previous one did not:
one ``coldchain.readings_judged`` event per unit with readings, in the load's
transaction, recording the product's range and the excursions found (none
is a finding too). Its projector writes the same excursion rows an import
would have (``<unit>/<start UTC>/<PRODUCT>``; manual
``<unit>/<at>/manual/<PRODUCT>``), so they quarantine that product's kits
found in the unit during them, and a later file extending one keeps its id.

A hub does not judge: it receives the ward's events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..eventlog import Event
from . import analysis, config
from .loggers import iso_z
from .services import excursion_items

if TYPE_CHECKING:
    from ..site import Session

EVENT_JUDGED = "coldchain.readings_judged"


def _several_ranges(found: dict[str, config.Product]) -> bool:
    return len({p.range_c for p in found.values()}) > 1


def added_products(previous: Any | None, current: Any | None) -> list[config.Product]:
    """The products `current` (a `protocol.Protocol`) judges readings against that `previous` did not.

    When every product of `current` shares one range, the units' own ranges judge all kits: none. A product
    already judged under `previous` (several ranges there, same code and same range) is not judged again.
    """
    now = config.products_of(current)
    if not _several_ranges(now):
        return []
    before = config.products_of(previous) if previous is not None else {}
    judged_before = _several_ranges(before)
    return [
        p
        for p in now.values()
        if not (judged_before and p.code in before and before[p.code].range_c == p.range_c)
    ]


def judge_loaded(session: Session, previous: Any | None) -> list[Event]:
    """After a version is loaded (`protocol.load`): judge each unit's readings already imported against the
    products it adds (see the module doc); the events appended, one per unit with readings."""
    store = session.store
    if store.scalar("SELECT kind FROM site WHERE id = 1") == "hub":
        return []
    current = config.active_protocol(store)
    added = added_products(previous, current) if current is not None else []
    if current is None or not added:
        return []
    events: list[Event] = []
    for unit in store.rows("SELECT unit_id, low_c, high_c FROM cc_units ORDER BY unit_id"):
        uid = unit["unit_id"]
        own = (unit["low_c"], unit["high_c"])
        judged = [p for p in added if p.range_c != own]
        if not judged:
            continue
        rows = store.execute(
            "SELECT t, temp_c FROM cc_readings WHERE unit_id = ? ORDER BY t", (uid,)
        ).fetchall()
        manual = store.rows(
            "SELECT event_id, at, temp_c FROM cc_manual_readings WHERE unit_id = ? ORDER BY at, event_id",
            (uid,),
        )
        if not rows and not manual:
            continue
        times = [int(r[0]) for r in rows]
        temps = [float(r[1]) for r in rows]
        body: dict[str, Any] = {
            "unit_id": uid,
            "protocol_id": current.id,
            "version": current.version,
            "products": [
                {
                    "product": p.code,
                    "low_c": p.low_c,
                    "high_c": p.high_c,
                    "excursions": excursion_items(analysis.excursions(times, temps, p.low_c, p.high_c)),
                    "manual": [
                        {"event": m["event_id"], "at": iso_z(m["at"]), "temp_c": m["temp_c"]}
                        for m in manual
                        if not (p.low_c <= m["temp_c"] <= p.high_c)
                    ],
                }
                for p in judged
            ],
        }
        events.append(session.append(type=EVENT_JUDGED, subject=f"unit:{uid}", body=body).event)
    return events
