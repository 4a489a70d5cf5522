"""Plug the cold chain into the workflow: the pre-dose custody gate and the worklist's kits on the clock.

Registered with the cold-chain feature (`coldchain.feature`, every session
installs it), so a dose can never be recorded without its custody check, and
`today` lists every kit whose time outside a monitored unit is running.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .. import kits as kit_rule
from ..store import Store
from . import config, custody
from .custody import check_dose
from .loggers import get_zone

if TYPE_CHECKING:
    from ..features import Registry
    from ..workflow.status import WorklistItem


def kits_on_the_clock(store: Store, at: datetime) -> list[WorklistItem]:
    """`today` items: kits outside a monitored unit, with their deadline.

    A kit at the bedside is its own item, under the participant it is for: the one
    its place names (`bedside:<participant>`), else the one the records reserve it
    for (`kits.holder`: a randomized kit's participant), else none ("—"); a nurse
    reads this list to know which vial goes to whom. Kits in transit or prepared at
    the pharmacy are one item per place and arrival (they move together).
    """
    groups: dict[tuple[str, int, int, bool, str], list[custody.Clock]] = {}
    for c in custody.outside_units(store, int(at.timestamp())):
        # at the bedside each kit is its own row; elsewhere the kits that arrived together are one
        own = c.kit if c.bedside else ""
        groups.setdefault((c.location, c.since, c.allowed_s, c.prepared, own), []).append(c)
    items: list[WorklistItem] = []
    for (where, since, allowed, _prepared, _own), clocks in groups.items():
        kits = ", ".join(c.kit for c in clocks)
        deadline = custody.local_text(store, since + allowed)
        over = clocks[0].over
        pid = None
        if clocks[0].bedside:
            what = f"dose with kit {kits} at {where} by {deadline} ({allowed // 60} min at the bedside)"
            pid = where.split(":", 1)[1] if ":" in where else kit_rule.holder(store, clocks[0].kit)
        elif clocks[0].prepared:
            what = f"give prepared kit(s) {kits} from {where} by {deadline} (the preparation's use-within)"
        else:
            what = f"move kit(s) {kits} from {where} into a monitored storage unit by {deadline} ({allowed // 60} min)"
        if over:
            what += ": limit passed, they can no longer be dosed"
        due = datetime.fromtimestamp(since + allowed, get_zone(config.site_zone(store))).isoformat(
            timespec="minutes"
        )
        items.append(
            {"participant": pid, "what": what, "due": due, "state": "overdue" if over else "due now"}
        )
    return items


def register(registry: Registry) -> None:
    """The custody check before every dose and the kits on the clock in the worklist."""
    registry.dose_gate(check_dose)
    registry.today_source(kits_on_the_clock)
