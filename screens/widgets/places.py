"""Where a user can go from the dashboard, who may go there, by which key.

A place is offered only to roles that hold its permission (the service
refuses anyway: hiding is a courtesy, `roles.PERMISSIONS` is the control).
Screens are imported when opened, not at start-up, to keep the login screen
quick to appear.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.screen import Screen

    from ..ward import Ward


@dataclass(frozen=True)
class Place:
    """A screen reachable from the dashboard and the command palette."""

    name: str
    key: str
    label: str  # message id
    permission: str  # action in wardcrf.roles
    target: str  # "module:Class" inside wardcrf.screens

    def open(self, ward: Ward) -> Screen:
        module, _, cls = self.target.partition(":")
        screen_cls = getattr(importlib.import_module(f"wardcrf.screens.{module}"), cls)
        return screen_cls(ward)


PLACES: tuple[Place, ...] = (
    Place("audit", "a", "place.audit", "audit.read", "audit_screen:AuditScreen"),
    # Every role may read the cold chain; recording in it is offered inside
    # the screen only to roles holding coldchain.record / coldchain.disposition.
    Place("coldchain", "c", "place.coldchain", "record.read", "coldchain.home:ColdChainScreen"),
    Place("dsmg", "d", "place.dsmg", "dsmg.decide", "dsmg:DsmgScreen"),
    Place("sync", "s", "place.sync", "sync.export", "sync_screen:SyncScreen"),
)


def by_name(name: str) -> Place:
    for place in PLACES:
        if place.name == name:
            return place
    raise KeyError(name)


def offered(ward: Ward) -> list[Place]:
    return [p for p in PLACES if ward.can(p.permission)]
