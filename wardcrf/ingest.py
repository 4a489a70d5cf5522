"""After-ingest hooks: domain work that must follow events arriving from another device.

`eventlog.ingest_many` writes synced events and runs their projectors, which
see nothing but the log. Some domain state needs more than the log:

- cold chain's readings index (`cc_readings`) is derived from the logger
  files kept as evidence, which a bundle carries beside the events;
- the participant-id clash check compares a participant-creating consent
  with the participant the importer already holds from another device.

Sync calls `after_ingest(store, events)` once per applied bundle, inside the
bundle's transaction, after its photos, logger files and events are stored,
so a hook sees everything the bundle brought and anything it raises rolls the
whole bundle back (all or nothing). Hooks live in their domain modules and
register here, so sync never imports them. They must be deterministic and
idempotent, like projectors.

A hook raises `Refused` to refuse a bundle, or `HoldForCoordinator` when the
bundle is valid but must not be merged until a person decides (like a fork:
kept, never dropped, the device is told).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import Refused
from .eventlog import Event
from .registration import require_installed
from .store import Store

AfterIngest = Callable[[Store, Sequence[Event]], None]
_HOOKS: list[AfterIngest] = []
_HOLDS: dict[AfterIngest, tuple[str, frozenset[str]]] = {}
"""Per hook that may hold a bundle: what it holds, in people's words, and the event types it reads."""


class HoldForCoordinator(Refused):
    """A valid bundle that must not be merged: held whole, both sides kept, the device flagged.

    `reason` is the short kind (``clash``), `detail` one line for people and
    `body` what the importer records in its event about it.
    """

    def __init__(self, reason: str, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.body = body or {}


def after_ingest_hook(fn: AfterIngest, *, holds: str | None = None, reads: Iterable[str] = ()) -> AfterIngest:
    """Register a function called with every run of events a sync bundle brought.

    `holds`: what the hook holds for the coordinator (e.g. "a kit given twice"), read from events of the
    `reads` types; an importer that cannot run the hook (a PostgreSQL hub, without projections) names it
    when it refuses such a bundle (`holds_reading`).
    """
    if fn not in _HOOKS:
        _HOOKS.append(fn)
    if holds is not None:
        _HOLDS[fn] = (holds, frozenset(reads))
    return fn


def holds_reading(types: Iterable[str]) -> list[str]:
    """What the registered hooks would hold for the coordinator, reading events of `types` (hook order)."""
    wanted = set(types)
    return [what for fn in _HOOKS if fn in _HOLDS for what, reads in [_HOLDS[fn]] if reads & wanted]


def after_ingest(store: Store, events: Sequence[Event]) -> None:
    """Run every registered hook on the events just ingested (inside their transaction)."""
    require_installed()
    for fn in list(_HOOKS):
        fn(store, events)
