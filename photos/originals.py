"""Original photo bytes: read back hash-checked, stored or archived when they arrive by sync.

An original is evidence: it is never returned unless it hashes to its
name (`read_original`), and `checked_original` / `hash_status` say
``intact``, ``MISSING`` or ``MISMATCH`` without raising, for reports that
must go on to the next photo. Bytes from a bundle come authenticated, so
they get a structural check only (`store_original`, `archive_original`).
"""

from __future__ import annotations

from typing import Any

from wardcrf.errors import Refused, UsageError, VerificationFailed
from wardcrf.evidence import INTACT, MISMATCH, MISSING, HashCheck
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

from . import archive
from . import store as pstore
from .catalog import get_info
from .validate import (
    FORMATS,
    PhotoLimits,
    check_structure,
)


def read_original(store: SqlStore, sha256_hex: str, *, keys: Store | None = None) -> bytes:
    """The original bytes of a stored photo, after checking they hash to their name.

    Raises `VerificationFailed` naming the photo when the bytes were altered
    (or are missing although the photo was imported); `Refused` when no such
    photo exists. Never returns unchecked bytes. `keys`: the hub's SQLCipher
    file when `store` is its PostgreSQL database (`archive`).
    """
    sha = sha256_hex.lower().removeprefix("sha256:")
    data = pstore.get_blob(store, sha, keys=keys)
    if data is None:
        if get_info(store, sha) is not None:
            raise VerificationFailed(f"photo sha256:{sha}: recorded as imported but its original is missing")
        raise Refused(f"unknown photo sha256:{sha}: not in this photo store")
    if pstore.sha256_hex(data) != sha:
        raise VerificationFailed(
            f"photo sha256:{sha}: stored bytes do not match their hash (altered); not shown"
        )
    return data


def has_original(store: Store, sha256_hex: str) -> bool:
    """Whether the original bytes of a photo are held here (not checked: see `read_original`)."""
    return pstore.has_blob(store, sha256_hex.lower().removeprefix("sha256:"))


def store_original(
    store: Store,
    data: bytes,
    meta: dict[str, Any] | None = None,
    *,
    sha256: str | None = None,
    limits: PhotoLimits | None = None,
    hashed: bool = False,
) -> bool:
    """Store a photo that arrived from elsewhere (a sync bundle); True if newly stored.

    `meta` is the body of its ``photo.imported`` event (the event itself is
    ingested by sync through the event log, which projects the metadata).
    The bytes must hash to ``meta["sha256"]`` (or `sha256`) and match its
    size, else `VerificationFailed`. They come authenticated (hash plus the
    sending device's signature, and that device validated them fully on
    import), so here they get only a structural check (`check_structure`:
    format, pixel limit, header, truncation; `Refused` otherwise) and no
    preview: decoding every photo made hub imports slow, and the preview is
    derived on first view (`preview`). Runs in the caller's transaction.

    `hashed=True` is for a caller that has itself just hashed these bytes
    and found `sha256` (sync's bundle verification checks every member
    against the signed SHA256SUMS): the bytes are then not hashed again
    here. Reads still re-hash every time (`read_original`).
    """
    want = (sha256 or (meta or {}).get("sha256") or "").lower().removeprefix("sha256:")
    if not want:
        raise UsageError("store_original needs the photo's sha256 (from its photo.imported event)")
    actual = want if hashed else pstore.sha256_hex(data)
    if actual != want:
        raise VerificationFailed(f"photo sha256:{want}: received bytes hash to {actual}; not stored")
    if meta and meta.get("size") is not None and int(meta["size"]) != len(data):
        raise VerificationFailed(
            f"photo sha256:{want}: received {len(data)} bytes, its event says {meta['size']}"
        )
    if pstore.has_blob(store, want):
        return False
    _check_received(want, data, limits)
    with store.transaction():
        pstore.put_blob(store, want, data, hashed=True)  # hashed above, or by the caller
    return True


def archive_original(
    store: SqlStore,
    data: bytes,
    *,
    sha256: str,
    bundle: str,
    member: str,
    offset: int,
    device: str,
    bundle_seq: int,
    limits: PhotoLimits | None = None,
) -> bool:
    """Record a photo a hub keeps inside the bundle that brought it; True if newly recorded.

    The same checks as `store_original` (the bytes were hashed against the
    signed SHA256SUMS by the caller; here their structure), then the photo's
    place in the kept bundle is noted instead of a second copy of its bytes
    (`archive`). Runs in the caller's transaction, with the bundle's events.
    """
    want = sha256.lower().removeprefix("sha256:")
    if pstore.has_blob(store, want):
        return False
    _check_received(want, data, limits)
    return archive.record(store, want, len(data), bundle, member, offset, device, bundle_seq)


def _check_received(sha: str, data: bytes, limits: PhotoLimits | None) -> None:
    """The structure check for authenticated bytes from a bundle (their size was checked on the ward)."""
    limits = limits or PhotoLimits.from_env()
    check_structure(
        f"photo sha256:{sha}",
        data,
        PhotoLimits(
            max_bytes=max(limits.max_bytes, len(data)),
            max_pixels=limits.max_pixels,
            capture_span=limits.capture_span,
        ),
    )


def bundle_member(store: Store, sha256_hex: str) -> str:
    """The archive member name of a photo in a sync bundle: ``photos/<sha256>.<ext>``."""
    info = get_info(store, sha256_hex)
    ext = info.extension if info else sniff_extension(store, sha256_hex)
    return f"photos/{sha256_hex}.{ext}"


def sniff_extension(store: SqlStore, sha: str) -> str:
    from .validate import sniff

    row = (
        store.one("SELECT substr(data, 1, 32) FROM photo_blobs WHERE sha256 = ?", (sha,))
        if store.holds_projections
        else None
    )
    if row is None:
        loc = archive.locate(store, sha)
        return loc.extension if loc is not None else "bin"
    fmt = sniff(bytes(row[0]))
    return FORMATS.get(fmt or "", "bin")


def hash_status(store: SqlStore, sha256_hex: str, *, keys: Store | None = None) -> tuple[str, str | None]:
    """(``intact`` | ``MISSING`` | ``MISMATCH``, the problem in one line) — re-hashed now."""
    status, problem, _data = checked_original(store, sha256_hex, keys=keys)
    return status, problem


def checked_original(store: SqlStore, sha256_hex: str, *, keys: Store | None = None) -> HashCheck:
    """`hash_status` plus the bytes when they are intact: one read for a check and a thumbnail.

    Never raises for the evidence itself: a hub's kept bundle that is missing
    or cannot be decrypted is MISSING or MISMATCH with the reason, so a
    report can say so and go on to the next photo.
    """
    sha = sha256_hex.lower().removeprefix("sha256:")
    try:
        data = pstore.get_blob(store, sha, keys=keys)
    except VerificationFailed as exc:  # a kept bundle missing, altered or unreadable
        text = str(exc)
        return (MISSING if "missing" in text else MISMATCH), text, None
    if data is None:
        return MISSING, f"photo sha256:{sha}: its original is not in this store", None
    if pstore.sha256_hex(data) != sha:
        return MISMATCH, f"photo sha256:{sha}: stored bytes do not match their hash (altered)", None
    return INTACT, None, data
