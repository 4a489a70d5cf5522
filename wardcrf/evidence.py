"""How records refer to photographed evidence.

A photo field in a record holds a list of references ``"sha256:<64 hex>"``:
the hash of the original photo bytes, inside the event, so the event hash
(and every bundle signature) covers exactly which photos were bound. The
bytes themselves live in the photo store (`wardcrf.photos`): the photos
feature registers its services (`PhotoEvidence`, `features.Registry.photo_evidence`):
turning what a person typed (``@path/to/file.jpg``, a tray item, or a
reference) into a reference, re-hashing an original, listing a record's
photos. The core calls them here without importing photos.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .registration import require_installed

if TYPE_CHECKING:
    from .site import Session
    from .store import Store


REF_PREFIX = "sha256:"
_REF_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_reference(value: object) -> bool:
    return isinstance(value, str) and bool(_REF_RE.match(value))


def reference(sha256_hex: str) -> str:
    return REF_PREFIX + sha256_hex


def digest_of(ref: str) -> str:
    return ref[len(REF_PREFIX) :]


INTACT, MISSING, MISMATCH = "intact", "MISSING", "MISMATCH"
"""A stored original's state, re-hashed now: the words every report and screen prints."""

HashCheck = tuple[str, "str | None", "bytes | None"]
"""(``INTACT`` | ``MISSING`` | ``MISMATCH``, the problem in one line, the bytes when intact)."""


@dataclass(frozen=True)
class RecordPhoto:
    """One photo bound (now or formerly) to a record, as an auditor checks it.

    A core read model (the audit desk and its screen read it) that the
    photos feature fills (`photos.audit.record_photos`).
    """

    record_event: str
    field: str
    sha256: str
    current: bool
    bound_event: str
    bound_by: str | None
    bound_at: str
    unbound_event: str | None
    unbound_by: str | None
    unbound_at: str | None
    captured_at: str | None
    camera: str | None
    format: str | None
    width: int | None
    height: int | None
    size: int | None
    hash_ok: bool
    problem: str | None
    capture_warning: str | None

    @property
    def ref(self) -> str:
        return reference(self.sha256)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        return d


@dataclass(frozen=True)
class PhotoEvidence:
    """What the core asks of the photo store; the photos feature registers it (`photos/feature.py`).

    The core (records, the cold chain, SDV, reports) reads and binds photos
    only through these, so it never imports the photos package.
    """

    resolve: Callable[[Session, str], str]
    """`@path` (imported now), a tray id or a reference -> a stored photo's reference."""
    look: Callable[[Session, str], str]
    """The same without storing anything: `@path` checked as the import would check it."""
    checked_original: Callable[[Store, str], HashCheck]
    """Re-hash one stored original now; never raises for the evidence itself."""
    record_photos: Callable[[Session, str], list[RecordPhoto]]
    """Every photo bound to one record, current first, each re-hashed."""


_photos: list[PhotoEvidence] = []


def set_photo_evidence(services: PhotoEvidence) -> None:
    """The photos feature's services (one per process; `features.install`)."""
    _photos[:] = [services]


def photo_evidence() -> PhotoEvidence | None:
    """The registered photo services, or None in a build whose features include no photo store."""
    require_installed()
    return _photos[0] if _photos else None


def photos() -> PhotoEvidence:
    """The registered photo services; refuses to go on (an internal error) when there are none."""
    found = photo_evidence()
    if found is None:
        raise RuntimeError("no photo store is registered: wardcrf.features lists the photos feature")
    return found


def resolve_photo(session: Session, raw: str) -> str:
    """Turn `@path`, a tray item id or a reference into a stored photo's reference.

    Importing from a path stores the photo first (validated, hashed,
    encrypted); a reference must name a photo already in the store.
    """
    return photos().resolve(session, raw)
