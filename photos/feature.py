"""Photos as a feature: the photo projector, bindings and evidence check, and the resolver the core calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import api, store

if TYPE_CHECKING:
    from wardcrf.features import Registry


def register(registry: Registry) -> None:
    store.register(registry)
    registry.photo_resolver(api.resolve_reference)
