"""The bridge to cold-chain evidence: logger files out of it for bundles, into it from bundles.

A logger import keeps the original file in `cc_evidence` (addressed by its
SHA-256, re-hashed on every read, checked by `audit verify`). The event that
cites it is useless as evidence on another site without the file, so a
bundle carries the file beside the event and the importer stores it in the
same transaction as the event.
"""

from __future__ import annotations

from wardcrf.errors import Refused, VerificationFailed
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

from . import bundle


def load(store: Store, digest: str, name: str) -> tuple[str, bytes]:
    """(member extension, bytes) of a stored logger file, hash-checked on read."""
    from wardcrf.coldchain import evidence

    try:
        data = evidence.read(store, digest)
    except VerificationFailed as exc:
        raise Refused(f"cannot export: {exc}") from None
    return bundle.evidence_ext(name), data


def save(store: SqlStore, digest: str, name: str, data: bytes) -> None:
    """Store a logger file that arrived in a verified bundle (idempotent by content).

    `store`: a ward's or a SQLCipher hub's file, or a PostgreSQL hub's database
    (`cc_evidence` there too, docs/hub-postgres.md)."""
    from wardcrf.coldchain import evidence

    if evidence.status(store, digest) == "ok":
        return
    stored = evidence.put(store, name, bytes(data))
    if stored != digest:  # verify() already hashed the bytes; this guards the bridge itself
        raise Refused(f"logger file {digest} does not hash to its name; nothing applied")
