"""Photos as a feature: the photo projector, bindings and evidence check, and the services the core calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardcrf.evidence import PhotoEvidence

from . import audit, originals, references, store

if TYPE_CHECKING:
    from wardcrf.features import Registry


def register(registry: Registry) -> None:
    store.register(registry)
    registry.photo_evidence(
        PhotoEvidence(
            resolve=references.resolve_reference,
            look=references.look_reference,
            checked_original=originals.checked_original,
            record_photos=audit.record_photos,
        )
    )
