"""Roles and the role x action permission table (Part 11 §11.10(d,g)).

This table is the authority: domain services call `require` before they
act, so the CLI and the TUI can only *ask*; hiding a button is a courtesy,
not the control. Auditors read and verify, never write. Monitors read and
mark source-data verification (`sdv.mark`), never enter or change data.
"""

from __future__ import annotations

from .errors import PermissionDenied

ROLES = (
    "admin",
    "clinician",
    "pharmacist",
    "investigator",
    "dsmg",
    "coordinator",
    "auditor",
    "monitor",
    "coder",
)

ROLE_LABELS = {
    "admin": "site administrator",
    "clinician": "ward clinician",
    "pharmacist": "pharmacist / cold-chain custodian",
    "investigator": "investigator",
    "dsmg": "DSMG member",
    "coordinator": "trial coordinator",
    "auditor": "auditor (read-only)",
    "monitor": "clinical monitor (source-data verification)",
    "coder": "medical coder (MedDRA, WHODrug)",
}

_ALL = frozenset(ROLES)
_CLINICAL = frozenset({"clinician", "investigator"})

PERMISSIONS: dict[str, frozenset[str]] = {
    # reading and verifying
    "record.read": _ALL,
    "audit.read": _ALL,
    "audit.verify": _ALL,
    # the periodic audit-trail review (wardcrf.reports.audit_review): those who review, not those who enter
    "audit.review": frozenset({"monitor", "auditor", "investigator", "coordinator"}),
    # administration
    "user.manage": frozenset({"admin"}),
    "user.passwd.self": _ALL,
    "db.raw_key": frozenset({"admin"}),
    "db.backup": frozenset({"admin", "coordinator", "clinician", "investigator", "pharmacist"}),
    "db.restore": frozenset({"admin"}),
    "db.accept_rollback": frozenset({"admin"}),
    "device.accept_move": frozenset({"admin"}),
    # how this laptop's barcode scanner ends a code (wardcrf.scanner)
    "device.configure": frozenset({"admin"}),
    "db.rebuild": frozenset({"admin"}),
    "protocol.load": frozenset({"admin", "investigator"}),
    # Moving an enrolled participant to a newer protocol version (an amendment applied to them,
    # wardcrf/workflow/amendments.py): a clinical decision the investigator takes and answers for.
    "protocol.apply": frozenset({"investigator"}),
    # clinical data capture
    "participant.screen": _CLINICAL,
    "consent.record": _CLINICAL,
    "record.submit": _CLINICAL,
    "dose.record": _CLINICAL,
    "record.amend": frozenset({"clinician", "investigator", "pharmacist", "coordinator"}),
    "record.comment": frozenset({"clinician", "investigator", "pharmacist", "coordinator", "dsmg"}),
    "signature.sign": frozenset({"clinician", "investigator", "pharmacist", "dsmg", "coordinator", "admin"}),
    "casebook.signoff": frozenset({"investigator"}),
    "dsmg.decide": frozenset({"dsmg"}),
    # drafts of forms not saved yet (wardcrf.drafts): everyone who fills in forms keeps their own
    "draft.keep": frozenset({"clinician", "pharmacist", "investigator", "dsmg", "coordinator", "admin"}),
    "draft.manage": frozenset({"admin"}),
    # source-data verification: the monitor's e-signature "verified" (wardcrf.sdv); never data entry
    "sdv.mark": frozenset({"monitor"}),
    # photos
    "photo.import": frozenset({"clinician", "investigator", "pharmacist", "coordinator"}),
    "photo.export": frozenset(
        {"clinician", "investigator", "pharmacist", "coordinator", "auditor", "monitor", "admin"}
    ),
    # cold chain
    "coldchain.record": frozenset({"pharmacist", "clinician", "investigator"}),
    "coldchain.disposition": frozenset({"pharmacist", "investigator"}),
    "coldchain.configure": frozenset({"pharmacist", "admin"}),
    # a step the protocol does at the pharmacy (`at = "pharmacy"`: dilute, reconstitute), e-signed
    "coldchain.prepare": frozenset({"pharmacist"}),
    # sync and hub
    "sync.export": frozenset({"admin", "coordinator", "clinician", "investigator", "pharmacist"}),
    "sync.configure": frozenset({"admin", "coordinator"}),
    "hub.manage": frozenset({"admin", "coordinator"}),
    # Holding the device's signing key (`devicekeys`): exactly the roles that export
    # bundles or run a hub. Whose key slot carries the key follows this row.
    "device.sign": frozenset({"admin", "coordinator", "clinician", "investigator", "pharmacist"}),
    "query.raise": frozenset({"coordinator"}),
    # Randomization (issue 20): lists are made at the hub, taken on the ward, unblinded by an investigator
    # (the protocol's `[randomization.unblinding] roles` narrows it further).
    "randomization.make": frozenset({"coordinator", "admin"}),
    "randomization.allocate": frozenset({"clinician", "investigator"}),
    "randomization.unblind": frozenset({"investigator"}),
    # At the hub only: the trial's unblinding and the statistician's unblinded export.
    "randomization.export": frozenset({"admin"}),
    # medical coding: a coder assigns dictionary codes to verbatim terms; the
    # dictionary (licensed distribution files) is loaded by a coder or admin
    "coding.code": frozenset({"coder"}),
    "coding.dictionary": frozenset({"coder", "admin"}),
    # exports that leave encryption behind
    "export.data": frozenset({"admin", "coordinator", "investigator", "auditor", "monitor"}),
    "export.plaintext": frozenset({"admin", "coordinator"}),
}


def allowed(role: str, action: str) -> bool:
    return role in PERMISSIONS.get(action, frozenset())


def require(role: str, action: str, *, what: str | None = None) -> None:
    """Raise `PermissionDenied` naming the role and who may do it instead."""
    if allowed(role, action):
        return
    who = sorted(PERMISSIONS.get(action, frozenset()))
    thing = what or action
    allowed_text = ", ".join(who) if who else "no role"
    raise PermissionDenied(f"role {role} may not {thing} (allowed: {allowed_text})")


def check_role(role: str) -> str:
    from .errors import UsageError

    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (allowed: {', '.join(ROLES)})")
    return role
