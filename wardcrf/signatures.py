"""Electronic signatures (Part 11 §11.50, §11.70, §11.200).

A signature is an event by the signer, made after re-entering their
password, with their printed name, the UTC time, a stated meaning and the
SHA-256 of exactly what was signed. What was signed is either one record
(an event plus all its amendments) or a whole subject (a participant's
casebook, a kit's custody chain): see `content_hash`. When an amendment
changes the signed content, the hash no longer matches and the record shows
"changed since signed"; the signature can never be carried to other content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import roles
from .errors import Refused, UsageError
from .eventlog import Author, Event, append
from .sqlstore import SqlStore, common_dialect
from .store import Store

if TYPE_CHECKING:
    from .features import Registry
    from .site import Session

MEANINGS = ("authored", "reviewed", "approved", "witnessed", "handed over", "received")


def content_hash(store: SqlStore, target: str) -> str:
    """SHA-256 over the hashes of everything that makes up `target`.

    An event id covers that event and every amendment of it; a subject (such
    as ``participant:P-001``) covers every non-signature event about it.
    """
    h = hashlib.sha256()
    if store.one("SELECT 1 FROM events WHERE id = ?", (target,)):
        rows = store.execute(
            "SELECT hash FROM events WHERE id = ? OR amends = ? ORDER BY pos", (target, target)
        )
    else:
        rows = store.execute(
            "SELECT hash FROM events WHERE subject = ? AND type NOT LIKE 'signature.%' ORDER BY pos",
            (target,),
        )
    n = 0
    for (hash_,) in rows:
        h.update(hash_.encode("ascii"))
        h.update(b"\n")
        n += 1
    if n == 0:
        raise Refused(f"nothing to sign: {target} is not a record or subject on this site")
    return h.hexdigest()


@dataclass(frozen=True)
class SignatureState:
    event_id: str
    target: str
    meaning: str
    user: str
    full_name: str
    signed_at: str
    valid: bool

    @property
    def status(self) -> str:
        return "valid" if self.valid else "changed since signed"

    def manifestation(self) -> str:
        """The printed form (§11.50): name, date/time, meaning."""
        state = "" if self.valid else " [CHANGED SINCE SIGNED]"
        return f"{self.full_name} ({self.user}) — {self.meaning} — {self.signed_at}{state}"


def sign(
    session: Session,
    *,
    target: str,
    meaning: str,
    signer: str | None = None,
    password: str,
    note: str | None = None,
) -> Event:
    """Re-authenticate `signer` (default: the session user) and sign `target`.

    A different signer (a witness at the bedside, the other party to a
    handover) signs on this laptop with their own name and password.
    """
    if meaning not in MEANINGS:
        raise UsageError(f"unknown signature meaning {meaning!r} (allowed: {', '.join(MEANINGS)})")
    from . import users

    signer = signer or session.user
    user = users.get(session.store, signer)
    if user is None or not user["active"]:
        raise Refused(f"{signer} is not an active user of this site")
    roles.require(user["role"], "signature.sign", what="sign records")
    session.site.verify_password(session, signer, password)
    signed_hash = content_hash(session.store, target)
    body: dict[str, Any] = {
        "target": target,
        "signed_hash": signed_hash,
        "meaning": meaning,
        "signer": signer,
        "full_name": user["full_name"],
    }
    if note:
        body["note"] = note
    author = Author(user=signer, role=user["role"], protocol=session.protocol)
    subject = _subject_of(session.store, target)
    result = append(session.store, session.ctx, author, type="signature.applied", subject=subject, body=body)
    session.warnings.extend(result.warnings)
    return result.event


def _subject_of(store: Store, target: str) -> str | None:
    row = store.one("SELECT subject FROM events WHERE id = ?", (target,))
    return row[0] if row else target


def for_target(store: Store, target: str) -> list[SignatureState]:
    rows = store.rows("SELECT * FROM signatures WHERE target_event = ? ORDER BY signed_at", (target,))
    return [_state(store, r) for r in rows]


def for_subject(store: Store, subject: str) -> list[SignatureState]:
    rows = store.rows(
        "SELECT * FROM signatures WHERE subject = ? OR target_event = ? ORDER BY signed_at",
        (subject, subject),
    )
    return [_state(store, r) for r in rows]


def of_subject(session: Session, subject: str) -> list[SignatureState]:
    """`for_subject` for a signed-in user (the participant screen lists the signatures)."""
    session.require("record.read", what="read signatures")
    return for_subject(session.store, subject)


def _state(store: Store, row: dict[str, Any]) -> SignatureState:
    try:
        current = content_hash(store, row["target_event"])
    except Refused:
        current = ""
    return SignatureState(
        event_id=row["event_id"],
        target=row["target_event"],
        meaning=row["meaning"],
        user=row["user_id"],
        full_name=row["full_name"],
        signed_at=row["signed_at"],
        valid=current == row["signed_hash"],
    )


@common_dialect
def _applied(store: Store, e: Event) -> None:
    b = e.body
    store.insert(
        "INSERT INTO signatures (event_id, target_event, subject, signed_hash, meaning, user_id,"
        " full_name, signed_at) VALUES (?,?,?,?,?,?,?,?)",
        (e.id, b["target"], e.subject, b["signed_hash"], b["meaning"], b["signer"], b["full_name"], e.ts),
    )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_applied, "signature.applied")
