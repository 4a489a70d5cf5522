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

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from .errors import Refused
from .eventlog import Event
from .registration import require_installed
from .sqlstore import SqlStore, portable
from .store import Store

AfterIngest = Callable[[Store, Sequence[Event]], None]
_HOOKS: list[AfterIngest] = []
_TYPES: dict[AfterIngest, frozenset[str]] = {}
"""Hooks that look only at some event types: they run for a bundle holding one of them."""
_HOLDS: dict[AfterIngest, str] = {}
"""Per hook that may hold a bundle: what it holds, in people's words."""


class HoldForCoordinator(Refused):
    """A valid bundle that must not be merged: held whole, both sides kept, the device flagged.

    `reason` is the short kind (``clash``), `detail` one line for people and
    `body` what the importer records in its event about it.
    """

    def __init__(self, reason: str, detail: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.body: dict[str, Any] = dict(body or {})


def after_ingest_hook(fn: AfterIngest, *types: str, holds: str | None = None) -> AfterIngest:
    """Register a function called with every run of events a sync bundle brought (with `types`: only
    with a run holding an event of one of them).

    `holds`: what the hook holds for the coordinator (e.g. "a kit given twice"); an importer that cannot
    run the hook (a PostgreSQL hub, for a hook not yet in the common dialect) names it when it refuses
    such a bundle (`described`, `holds_reading`).
    """
    if fn not in _HOOKS:
        _HOOKS.append(fn)
    if types:
        _TYPES[fn] = frozenset(types)
    if holds is not None:
        _HOLDS[fn] = holds
    return fn


def described(fn: AfterIngest) -> str:
    """A hook in people's words when it holds something for the coordinator, else its qualified name."""
    return _HOLDS.get(fn) or f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def holds_reading(types: Iterable[str]) -> list[str]:
    """What the registered hooks would hold for the coordinator, run for events of `types` (hook order)."""
    return [_HOLDS[fn] for fn in hooks_for(set(types)) if fn in _HOLDS]


def hooks_for(types: Collection[str]) -> list[AfterIngest]:
    """The hooks a run of events of these types runs, in registration order."""
    require_installed()
    return [fn for fn in _HOOKS if fn not in _TYPES or not _TYPES[fn].isdisjoint(types)]


def after_ingest(store: SqlStore, events: Sequence[Event]) -> None:
    """Run every registered hook on the events just ingested (inside their transaction).

    On another engine than SQLCipher (a PostgreSQL hub) only hooks declared
    `common_dialect` run; one that is not raises `NotPortable` before it runs
    (its importer refused such a bundle by name already, `sync.engine.check_portable`).
    """
    hooks = hooks_for({e.type for e in events})
    if not isinstance(store, Store):
        for runner in [portable(fn) for fn in hooks]:
            runner(store, events)
        return
    for fn in hooks:
        fn(store, events)
