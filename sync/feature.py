"""Sync as a feature: the device registry's and queries' projectors and the photo-reference index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import pending, pghub
from . import registry as device_registry

if TYPE_CHECKING:
    from wardcrf.features import Registry


def register(registry: Registry) -> None:
    device_registry.register(registry)
    pending.register(registry)
    registry.audit_site_check(pghub.audit_checks)
    registry.backup_kept_elsewhere(pghub.photo_bundles)
