"""How records refer to photographed evidence.

A photo field in a record holds a list of references ``"sha256:<64 hex>"``:
the hash of the original photo bytes, inside the event, so the event hash
(and every bundle signature) covers exactly which photos were bound. The
bytes themselves live in the photo store (`wardcrf.photos`), which this
module calls; it resolves what a person typed (``@path/to/file.jpg``, a tray
item, or a reference) into a reference.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

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


def resolve_photo(session: Session, raw: str) -> str:
    """Turn `@path`, a tray item id or a reference into a stored photo's reference.

    Importing from a path stores the photo first (validated, hashed,
    encrypted); a reference must name a photo already in the store.
    """
    from .photos import api

    return api.resolve_reference(session, raw)
