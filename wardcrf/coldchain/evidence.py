"""Logger files kept as evidence: stored byte for byte inside the encrypted database.

A logger export is source data (ICH E6(R3)): wardcrf keeps the original
file, addressed by its SHA-256, and every read re-hashes the bytes. `audit
verify` re-hashes every stored file and checks that each import event's
hash names a stored file.

At a PostgreSQL hub (docs/hub-postgres.md) the logger files its wards send
are kept in its database's `cc_evidence` the same way (insert-only there too),
and every function here runs on that store as on the SQLCipher file.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ..audit import CheckResult
from ..clock import iso_utc, now_utc
from ..errors import VerificationFailed
from ..sqlstore import SqlStore

if TYPE_CHECKING:
    from ..features import Registry


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(store: SqlStore, name: str, data: bytes) -> str:
    """Store a file (idempotent by content) and return its SHA-256."""
    digest = sha256_hex(data)
    store.execute(
        "INSERT INTO cc_evidence (sha256, name, size, data, stored_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (sha256) DO NOTHING",
        (digest, name, len(data), data, iso_utc(now_utc())),
    )
    return digest


def read(store: SqlStore, digest: str) -> bytes:
    """The stored bytes, refused when they no longer hash to their address."""
    row = store.one("SELECT data FROM cc_evidence WHERE sha256 = ?", (digest,))
    if row is None:
        raise VerificationFailed(f"logger file sha256:{digest} is not stored on this site")
    data = bytes(row[0])
    if sha256_hex(data) != digest:
        raise VerificationFailed(f"logger file sha256:{digest} was altered: its bytes no longer match")
    return data


def status(store: SqlStore, digest: str) -> str:
    """'ok', 'missing' or 'altered' for one stored file."""
    row = store.one("SELECT data FROM cc_evidence WHERE sha256 = ?", (digest,))
    if row is None:
        return "missing"
    return "ok" if sha256_hex(bytes(row[0])) == digest else "altered"


def _check(store: SqlStore) -> CheckResult:
    return check_files(store, "cold-chain logger files")


def check_files(store: SqlStore, title: str) -> CheckResult:
    """Every stored logger file re-hashed, every import's file present (`audit verify`; at a PostgreSQL
    hub, also on its database: `sync.pghub.audit_checks`)."""
    result = CheckResult(title, 0)
    if not store.has_table("cc_evidence"):
        return result
    for digest, data in store.execute("SELECT sha256, data FROM cc_evidence ORDER BY sha256"):
        result.checked += 1
        if sha256_hex(bytes(data)) != digest:
            result.problems.append(f"logger file sha256:{digest} was altered (bytes no longer match)")
    for event_id, digest in store.execute("SELECT event_id, sha256 FROM cc_logger_files ORDER BY event_id"):
        if store.one("SELECT 1 FROM cc_evidence WHERE sha256 = ?", (digest,)) is None:
            result.problems.append(f"event {event_id} imported logger file sha256:{digest}, which is missing")
    return result


def cited_by_import(body: dict[str, Any]) -> dict[str, str]:
    """The logger file a ``coldchain.logger_imported`` event names (``sha256``, ``name``)."""
    return _cited(body)


def cited_by_receipt(body: dict[str, Any]) -> dict[str, str]:
    """The transit logger's file a shipment receipt record carries under ``data.logger``."""
    data = body.get("data")
    return _cited(data.get("logger") if isinstance(data, dict) else None)


def _cited(found: Any) -> dict[str, str]:
    if not isinstance(found, dict):
        return {}
    digest, name = found.get("sha256"), found.get("name")
    return {digest: name} if isinstance(digest, str) and isinstance(name, str) else {}


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.audit_check("cold-chain logger files", _check)
