"""How records refer to photographed evidence.

A photo field in a record holds a list of references ``"sha256:<64 hex>"``:
the hash of the original photo bytes, inside the event, so the event hash
(and every bundle signature) covers exactly which photos were bound. The
bytes themselves live in the photo store (`wardcrf.photos`): the photos
feature registers the resolver (`features.Registry.photo_resolver`) that
turns what a person typed (``@path/to/file.jpg``, a tray item, or a
reference) into a reference; the core calls it here without importing photos.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from .registration import require_installed

if TYPE_CHECKING:
    from .site import Session


REF_PREFIX = "sha256:"
_REF_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_reference(value: object) -> bool:
    return isinstance(value, str) and bool(_REF_RE.match(value))


def reference(sha256_hex: str) -> str:
    return REF_PREFIX + sha256_hex


def digest_of(ref: str) -> str:
    return ref[len(REF_PREFIX) :]


PhotoResolver = Callable[["Session", str], str]
_resolver: list[PhotoResolver] = []


def set_photo_resolver(fn: PhotoResolver) -> None:
    """The photos feature's `resolve_reference` (one per process; `features.install`)."""
    _resolver[:] = [fn]


def resolve_photo(session: Session, raw: str) -> str:
    """Turn `@path`, a tray item id or a reference into a stored photo's reference.

    Importing from a path stores the photo first (validated, hashed,
    encrypted); a reference must name a photo already in the store.
    """
    require_installed()
    return _resolver[0](session, raw)
