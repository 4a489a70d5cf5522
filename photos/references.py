"""Photo references: what a person typed -> ``sha256:<hex>``, and which photos an event carries.

The core's records hold only references; this module is the photos
feature's side of that contract: `resolve_reference` (registered with the
core as the photo resolver) and `referenced_photos` / `refs_in` (what a
bundle must ship, what an audit-trail entry concerns).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wardcrf.clock import now_utc
from wardcrf.errors import Refused, UsageError
from wardcrf.eventlog import Event
from wardcrf.evidence import digest_of, is_reference, reference

from . import store as pstore
from .capture import capture_warnings
from .catalog import find
from .importing import checked_reference, import_photo
from .validate import PhotoLimits

if TYPE_CHECKING:
    from wardcrf.site import Session


def resolve_reference(
    session: Session,
    raw: str,
    *,
    record_time: datetime | None = None,
    limits: PhotoLimits | None = None,
) -> str:
    """What a person typed for a photo field -> ``"sha256:<64 hex>"`` of a stored photo.

    ``@path/to/file.jpg`` imports the file first (validated; a duplicate is
    reused); a tray id or ``sha256:<hex>`` must name a stored photo.
    Adds a warning to the session (never blocks) when the photo's EXIF
    capture time is further than the configured span from `record_time`
    (default: now, the time the record is being made).
    """
    raw = (raw or "").strip()
    limits = limits or PhotoLimits.from_env()
    if raw.startswith("@"):
        if len(raw) == 1:
            raise UsageError("photo path missing after '@' (give @path/to/photo.jpg)")
        sha = import_photo(session, Path(raw[1:]).expanduser(), limits=limits).sha256
    else:
        sha = find(session.store, raw)
        if not pstore.has_blob(session.store, sha):
            raise Refused(f"photo sha256:{sha} is recorded but its original is not in this store")
    session.warnings.extend(
        capture_warnings(
            session.store,
            [reference(sha)],
            record_time or now_utc(),
            span=limits.capture_span,
            zone_name=session.ctx.zone,
        )
    )
    return reference(sha)


def look_reference(session: Session, raw: str) -> str:
    """What `resolve_reference` would give, storing nothing (checks before the write, previews).

    `@path` must be a readable file that the import would accept (its hash is
    the reference it will get); anything else must name a photo already in
    the store.
    """
    raw = raw.strip()
    if raw.startswith("@"):
        if len(raw) == 1:
            raise UsageError("photo path missing after '@' (give @path/to/photo.jpg)")
        # Checked as the import will check it (a whole JPEG/PNG/HEIC within the limits),
        # so a file that is not a photo is refused before anyone signs.
        return checked_reference(Path(raw[1:]).expanduser())
    return reference(find(session.store, raw))


def referenced_photos(event: Event) -> set[str]:
    """Hashes of the photos an event carries or references (what a bundle must ship).

    ``photo.imported`` names its photo; a record names the photos in its
    data; an amendment names the photos in its new (and old) values.
    """
    b = event.body
    out: set[str] = set()
    if event.type == "photo.imported" and isinstance(b.get("sha256"), str):
        out.add(b["sha256"])
    if event.type == "record.submitted":
        out |= {sha for _, sha in pstore.references_in(b.get("data") or {})}
    if event.type == "record.amended":
        for name, change in (b.get("changes") or {}).items():
            if isinstance(change, dict):
                for side in ("old", "new"):
                    out |= {sha for _, sha in pstore.references_in({name: change.get(side)})}
    return out


def refs_in(value: Any) -> set[str]:
    """Every ``sha256:`` reference anywhere in an event body (records, cold-chain sheets...)."""
    if isinstance(value, dict):
        return set().union(*(refs_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(refs_in(v) for v in value)) if value else set()
    return {digest_of(value)} if is_reference(value) else set()


def imported_photo(body: dict[str, Any]) -> dict[str, str]:
    """The photo a ``photo.imported`` event carries (its body's ``sha256``), for a sync bundle to ship."""
    digest = body.get("sha256")
    return {digest: ""} if isinstance(digest, str) else {}
