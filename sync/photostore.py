"""The bridge to the photo store: originals out of it for bundles, into it from bundles.

Photos travel as their original bytes named by SHA-256; the photo store
(`wardcrf.photos.originals`) keeps them encrypted and hash-checks every read.
"""

from __future__ import annotations

from wardcrf.photos import originals
from wardcrf.photos.validate import FORMATS, sniff

from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store


def load_original(store: Store, digest: str) -> tuple[str, bytes]:
    """(extension, original bytes) of a stored photo, hash-checked by the photo store."""
    data = originals.read_original(store, digest)
    fmt = sniff(bytes(data[:32]))
    if fmt is None or fmt not in FORMATS:
        raise Refused(f"photo {digest} is not JPEG, PNG or HEIC; bundles carry only those")
    # The member extension follows the bytes, as the photo store names them
    # (`originals.bundle_member`): jpg, png or heic, the names the importer whitelists.
    return FORMATS[fmt], data


def has_original(store: Store, digest: str) -> bool:
    try:
        originals.read_original(store, digest)
    except Exception:
        return False
    return True


def save_original(store: Store, digest: str, ext: str, data: bytes) -> None:
    """Store an original that arrived in a verified bundle (idempotent: a photo held already is kept).

    `bundle.verify` hashed these bytes against the signed SHA256SUMS and the
    member's name moments ago, so the photo store is told not to hash them
    again (it still checks their structure; every later read re-hashes them).
    """
    originals.store_original(store, data, sha256=digest, hashed=True)


def archive_original(
    store: SqlStore,
    digest: str,
    data: bytes,
    *,
    bundle: str,
    member: str,
    offset: int,
    device: str,
    bundle_seq: int,
) -> None:
    """At the hub: note where a verified photo sits in the kept bundle (no second copy of its bytes).

    `bundle.verify` hashed the bytes against the signed SHA256SUMS; the
    photo store checks their structure and records the place
    (`wardcrf.photos.archive`). A photo held already is kept as it is.
    `store` is where the hub keeps what wards send: its SQLCipher file, or
    its PostgreSQL database (the row there, the bytes in the kept bundle alike).
    """
    originals.archive_original(
        store,
        data,
        sha256=digest,
        bundle=bundle,
        member=member,
        offset=offset,
        device=device,
        bundle_seq=bundle_seq,
    )
