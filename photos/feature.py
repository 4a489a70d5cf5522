"""Photos as a feature: the photo projector, bindings and evidence check, and the services the core calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardcrf import carried
from wardcrf.evidence import PhotoEvidence

from . import audit, originals, references, store

if TYPE_CHECKING:
    from wardcrf.features import Registry


def register(registry: Registry) -> None:
    store.register(registry)
    registry.carried_file(
        carried.Extractor(carried.PHOTO, carried.type_marker("photo.imported"), references.imported_photo)
    )
    registry.photo_evidence(
        PhotoEvidence(
            resolve=references.resolve_reference,
            look=references.look_reference,
            checked_original=originals.checked_original,
            record_photos=audit.record_photos,
        )
    )
