"""What the audit report says about photos and sync, whichever of those features a build has.

The photo store (its services registered in `wardcrf.evidence`) and sync (`sync_applied`,
`sync_outbox` tables) are separate features; an audit report must still
print on a site that lacks them, and must never claim a check it could not
make. Each lookup therefore returns a status sentence stating exactly what
was checked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from .. import evidence
from ..store import Store

THUMB_PX = 240


@dataclass(frozen=True)
class PhotoCheck:
    sha256: str
    verified: bool | None  # True re-hashed ok, False failed, None not checkable here
    status: str
    thumbnail: bytes | None = None  # JPEG
    word: str = "not checked"  # intact | MISSING | MISMATCH | not checked (the photo store's words)
    problem: str | None = None  # what is wrong, in one line, when it does not verify


def check_photo(store: Store, ref: str) -> PhotoCheck:
    """Re-hash a referenced photo's stored bytes now and make a thumbnail of them (one read)."""
    sha = ref.lower().removeprefix("sha256:")
    photos = evidence.photo_evidence()
    if photos is None:
        return PhotoCheck(
            sha, None, "not checked: this build has no photo store; the hash is the one recorded in the event"
        )
    word, problem, data = photos.checked_original(store, sha)
    if data is None:
        return PhotoCheck(sha, False, f"{word} - FAILED: {problem}", word=word, problem=problem)
    return PhotoCheck(
        sha, True, "verified: the stored original hashes to this SHA-256", _thumbnail(data), word=word
    )


def _thumbnail(data: bytes) -> bytes | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            im.convert("RGB").save(out, "JPEG", quality=80)
            return out.getvalue()
    except Exception:  # a photo that verifies but will not decode is still evidence: hash only
        return None


def _has_table(store: Store, name: str) -> bool:
    return store.has_table(name)  # either engine's catalogue (a PostgreSQL hub read in place)


def arrival(store: Store, device: str, seq: int, *, this_device: str) -> str:
    """How an event reached this database: created here, or in which sync bundle."""
    if device == this_device:
        if _has_table(store, "sync_outbox"):
            rows = store.rows(
                "SELECT peer, bundle_seq, manifest_sha, receipted_at FROM sync_outbox"
                " WHERE first_seq <= ? AND last_seq >= ? ORDER BY bundle_seq",
                (seq, seq),
            )
            if rows:
                r = rows[0]
                rec = f", receipted {r['receipted_at']}" if r.get("receipted_at") else ", no receipt yet"
                return (
                    f"created on this device; sent to {r['peer']} in bundle {r['bundle_seq']} "
                    f"(manifest sha256:{r['manifest_sha']}){rec}"
                )
            return "created on this device; not yet in a sync bundle"
        return "created on this device"
    if _has_table(store, "sync_applied"):
        applied: list[dict[str, Any]] = store.rows(
            "SELECT bundle_seq, manifest_sha, file, applied_at FROM sync_applied"
            " WHERE device = ? AND first_seq <= ? AND last_seq >= ? ORDER BY bundle_seq",
            (device, seq, seq),
        )
        if applied:
            r = applied[0]
            return (
                f"arrived from device {device} in bundle {r['bundle_seq']} "
                f"(manifest sha256:{r['manifest_sha']}), applied {r['applied_at']}"
            )
        return f"from device {device}; no bundle record on this site"
    return f"from device {device} (this build keeps no sync bundle records)"
