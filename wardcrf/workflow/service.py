"""Submit and amend any form: the one entry point the CLI, the TUI and scripts share.

`submit` runs, in order: permission for the form, the participant (a consent
without one allocates a new id), the consent gate (§11.10(f): no participant
form before valid consent), field validation, the form's rule (cross-field
and sequencing checks, computed fields), then writes the record and any
follow-up (the consent's signatures) in one transaction. Every failing field
is reported at once in a `ValidationFailed`; a sequencing rule is one
`Refused` line. Nothing is saved unless everything passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import evidence, plausibility, records, text
from .. import protocol as protocols
from ..canonical import dumps
from ..errors import AuthError, Refused, UsageError, ValidationFailed
from ..eventlog import Event, get
from ..forms import Context, check
from ..plausibility import SoftWarning
from . import amendments
from .base import FormRule, PasswordFor, RuleContext, get_participant, now, require_participant, rule_for
from .idclash import CREATES as CREATES_PARTICIPANT
from .participants import consent_state, new_participant_id, relog_failed_signature, sign_consent

if TYPE_CHECKING:
    from ..site import Session


def _resolver(session: Session) -> Any:
    """Resolve photo fields for real: `@path` imports the photo (inside the record's transaction)."""

    def resolve(raw: str) -> str:
        return evidence.resolve_photo(session, raw)

    return resolve


def _looker(session: Session) -> Any:
    """Resolve photo fields without storing anything (checks before the write, previews).

    `@path` must be a readable file that the import would accept (its hash is
    the reference it will get); anything else must name a photo already in
    the store.
    """

    def look(raw: str) -> str:
        return evidence.photos().look(session, raw)

    return look


@dataclass
class Prepared:
    """A submission checked against the protocol and the rules, ready to write (or to preview)."""

    form: str
    values: dict[str, Any]
    computed: dict[str, Any]
    overrides: dict[str, str]
    problems: dict[str, str]
    subject: str | None
    ctx: RuleContext | None
    warnings: list[SoftWarning] = field(default_factory=list)
    """Allowed but implausible values (`wardcrf.plausibility`): shown, stored with the record, never refusing."""


def _prepare(
    session: Session,
    form: str,
    raw: Mapping[str, Any],
    participant: str | None,
    reason: str | None,
    confirm: bool,
    password_for: PasswordFor | None,
    *,
    store_photos: bool = False,
) -> Prepared:
    proto = _governing(session, form, participant)
    _runs(proto, None)  # a participant's own version was refused by `_governing`, naming them
    definition = proto.form(form)
    rule = _rule(proto, form)
    session.require(rule.action, what=f"submit {form} forms")
    p = None
    new_pid = None
    if rule.participant:
        if form == "consent" and not participant:
            new_pid = new_participant_id(session.store, session.ctx.site)
        else:
            p = require_participant(session.store, participant)
            if rule.needs_consent:
                valid, why = consent_state(session.store, p, proto.consent.witnesses)
                if not valid:
                    raise Refused(
                        f"{p.id} has no valid consent ({why}): no other form can be saved "
                        "before consent is recorded and signed"
                    )
    moment = now()
    vctx = Context(
        now=moment,
        zone=session.ctx.zone,
        dob=p.dob_date if p else None,
        user=session.user,
        resolve_photo=_resolver(session) if store_photos else _looker(session),
    )
    checked = check(definition, raw, vctx, confirm=confirm, reason=reason)
    rctx = RuleContext(
        session,
        proto,
        form,
        p,
        moment,
        problems=checked.problems,
        password_for=password_for,
        confirmed=confirm and _clean(reason) is not None,
    )
    computed: dict[str, Any] = {}
    if rule.check and (p is not None or new_pid is not None or not rule.participant):
        computed = rule.check(rctx, dict(checked.values)) or {}
    values = _ordered(definition, {**checked.values, **computed})
    return Prepared(
        form=form,
        values=values,
        computed=computed,
        overrides=checked.overrides,
        problems=rctx.problems,
        subject=f"participant:{p.id if p else new_pid}" if rule.participant else None,
        ctx=rctx,
        warnings=plausibility.evaluate(
            session.store, proto, form, values, now=moment, zone_name=session.ctx.zone
        ),
    )


def preview(
    session: Session,
    form: str,
    raw: Mapping[str, Any],
    *,
    participant: str | None = None,
    reason: str | None = None,
    confirm: bool = False,
) -> Prepared:
    """Check a form without saving: typed values, computed fields and every problem.

    For live feedback while a form is being filled in (the TUI). Permission
    and sequencing refusals still raise `Refused`; field problems are
    returned in `problems`. Nothing is written and no password is asked.
    """
    if form == "signoff":
        from .safety import signoff_check

        session.require(rule_for(form).action, what="sign off casebooks")
        p = signoff_check(session, participant)
        return Prepared(form, {}, {}, {}, {}, f"participant:{p.id}", None)
    return _prepare(session, form, raw, participant, reason, confirm, lambda _user: "")


def preflight(
    session: Session,
    form: str,
    raw: Mapping[str, Any],
    *,
    participant: str | None = None,
    reason: str | None = None,
    confirm: bool = False,
) -> Prepared:
    """Check before you sign: every rule `submit` will apply, before anyone is asked for a password.

    For forms that carry e-signatures (the consent's doctor and witnesses,
    the investigator's sign-off). Raises what `submit` would raise, in its
    words: `Refused` for a sequencing or permission rule, `ValidationFailed`
    for field problems (a photo that is not an image, a witness who may not
    witness; soft-range values without a reason are among them, marked
    soft, so a screen can ask for the reason after the signatures). Nothing
    is written, no photo is stored and no password is asked; only a wrong
    password is left to the save itself. Returns the checked submission.
    """
    prep = preview(session, form, raw, participant=participant, reason=reason, confirm=confirm)
    if prep.problems:
        raise ValidationFailed(prep.problems, form=form)
    return prep


def submit(
    session: Session,
    form: str,
    raw: Mapping[str, Any],
    *,
    participant: str | None = None,
    reason: str | None = None,
    confirm: bool = False,
    password_for: PasswordFor | None = None,
) -> Event:
    """Validate and save one form; returns the new record's event.

    `raw` maps field names to typed values or strings as typed. `confirm`
    with `reason` accepts soft-range values (the reason is stored per
    field). `password_for(user)` supplies passwords for e-signatures (the
    consent's doctor and witnesses, the investigator's sign-off).

    The checks run twice: once before the transaction (where passwords may
    be prompted for), and again inside it, under the write lock, so a
    second process cannot slip a conflicting record (a second dose that
    day) in between the check and the write.
    """
    if form == "signoff":
        proto = _governing(session, form, participant)  # their version's sign-off form
        session.require(rule_for(form).action, what=f"submit {form} forms")
        return _signoff(session, proto, raw, participant, password_for)
    asked: dict[str, str] = {}

    def remembered(user: str) -> str:
        if user not in asked:
            if password_for is None:
                raise Refused("this form needs e-signatures, and no password was supplied")
            asked[user] = password_for(user)
        return asked[user]

    first = _prepare(session, form, raw, participant, reason, confirm, remembered if password_for else None)
    if first.problems:
        raise ValidationFailed(first.problems, form=form)
    assert first.ctx is not None
    rule = _rule(first.ctx.protocol, form)
    rctx = first.ctx
    assert rctx is not None
    try:
        with session.store.transaction():
            prep = _prepare(
                session,
                form,
                raw,
                participant,
                reason,
                confirm,
                remembered if password_for else None,
                store_photos=True,
            )
            if prep.problems:
                raise ValidationFailed(prep.problems, form=form)
            assert prep.ctx is not None
            rctx = prep.ctx
            # New records are captured under the protocol version they were checked against.
            session.protocol = prep.ctx.protocol.ref
            extra: dict[str, Any] = {"overrides": prep.overrides} if prep.overrides else {}
            extra.update(plausibility.noted(form, prep.warnings, session.warnings))
            if form == "consent":
                # Whether this laptop allocated the id (True) or re-consents a participant
                # it holds (False): where logs meet, another laptop's allocation of the
                # same id is a clash, a re-consent is not (idclash).
                extra[CREATES_PARTICIPANT] = not participant
            event = records.submit(
                session, form, prep.values, subject=prep.subject, reason=_clean(reason), extra=extra or None
            )
            if form == "consent":
                sign_consent(rctx, event)
            if rctx.protocol.engine is not None:
                from .engine_rules import open_queries

                open_queries(rctx, event)
            if rule.after:
                rule.after(rctx, event)
    except AuthError as exc:
        relog_failed_signature(rctx, exc)
        raise
    return event


def amend(
    session: Session,
    event_id: str,
    raw: Mapping[str, Any],
    *,
    reason: str | None,
    confirm: bool = False,
) -> Event:
    """Correct fields of a record (mandatory reason); computed fields follow.

    The record is read with the protocol version it was captured under; the
    form's rules run on the corrected whole, so an amendment can never make a
    record that could not have been submitted.
    """
    if not reason or not reason.strip():
        raise UsageError("an amendment needs a reason (--reason): what was wrong and why it changes")
    text.check(reason.strip(), field="reason")
    with session.store.transaction():
        # Checked and written under one write lock; a photo imported for the
        # correction is stored only if the amendment is.
        return _amend(session, event_id, raw, reason=reason, confirm=confirm)


def _amend(session: Session, event_id: str, raw: Mapping[str, Any], *, reason: str, confirm: bool) -> Event:
    rec = records.load_for_amendment(session.store, event_id)
    original = get(session.store, event_id)
    assert original is not None
    try:
        proto = protocols.version(session.store, original.protocol)
    except protocols.VersionNotLoaded as missing:
        # Never checked against another version (the active one's ranges and choices are not the ones
        # the record was entered under): refused before anything is asked or written.
        raise Refused(
            protocols.record_not_loaded(
                event_id,
                missing,
                "it cannot be checked against its own forms, so it is not amended here; nothing was saved",
            )
        ) from None
    if proto.engine is None:
        raise Refused(
            f"record {event_id} was captured under protocol {proto.id} {proto.version}, {_CANNOT_RUN}: "
            "its rules cannot be checked, so it is not amended here; it stays readable (participant show, "
            "exports, audit verify); nothing was saved"
        )
    definition = proto.form(rec.form) if rec.form in proto.forms else None
    if definition is None:
        raise Refused(
            f"record {event_id} is a {rec.form} form, which protocol "
            f"{proto.id} {proto.version} does not define"
        )
    rule = _rule(proto, rec.form)
    session.require(rule.amend_action, what=f"amend {rec.form} records")
    if not raw:
        raise UsageError("nothing to amend: give field=value for each field to correct")
    pid = (rec.subject or "").removeprefix("participant:") or None
    p = get_participant(session.store, pid) if pid else None
    moment = now()
    dob = p.dob_date if p else None
    if rec.form == "screening":
        dob = None  # the date of birth itself may be what is being corrected
    vctx = Context(
        now=moment,
        zone=session.ctx.zone,
        dob=dob,
        user=session.user,
        resolve_photo=_resolver(session),
    )
    checked = check(definition, raw, vctx, confirm=confirm, reason=reason, partial=True)
    merged = {**rec.data, **checked.values}
    rctx = RuleContext(session, proto, rec.form, p, moment, problems=checked.problems, amending=event_id)
    computed: dict[str, Any] = {}
    if rule.check:
        computed = rule.check(rctx, dict(merged)) or {}
    if rctx.problems:
        raise ValidationFailed(rctx.problems, form=rec.form)
    changes = dict(checked.values)
    for k, value in computed.items():
        if dumps(rec.data.get(k)) != dumps(value):
            changes[k] = value
    extra: dict[str, Any] = {"overrides": checked.overrides} if checked.overrides else {}
    warnings = plausibility.evaluate(
        session.store,
        proto,
        rec.form,
        {**merged, **computed},
        now=moment,
        zone_name=session.ctx.zone,
        record=event_id,
    )
    # Only what this correction touches: a warning the original record already carried is not news.
    touched = [w for w in warnings if set(w.fields) & set(changes)]
    extra.update(plausibility.noted(rec.form, touched, session.warnings))
    # The correction is captured under the version its record was captured and is checked under (not the
    # site's active one, nor the participant's newer one): one version per record for exports and audits.
    session.protocol = proto.ref
    event = records.amend(session, event_id, changes, reason.strip(), extra=extra or None)
    if proto.engine is not None:
        from .engine_rules import open_queries

        open_queries(rctx, event)
    return event


def _signoff(
    session: Session,
    proto: Any,
    raw: Mapping[str, Any],
    participant: str | None,
    password_for: PasswordFor | None,
) -> Event:
    from .safety import sign_off

    unknown = [k for k in raw if k not in proto.form("signoff").fields]
    if unknown:
        raise ValidationFailed({k: "unknown field for signoff" for k in unknown}, form="signoff")
    if password_for is None:
        raise Refused("a sign-off is an e-signature: your password is needed")
    p = require_participant(session.store, participant)
    note = raw.get("note")
    return sign_off(session, p.id, password=password_for(session.user), note=str(note) if note else None)


def protocol_for(session: Session, participant: str | None, form: str | None = None) -> protocols.Protocol:
    """The version whose forms a screen shows for `participant` (None: the site's active one): the version
    their submissions are checked against (`_governing`), so the form a clinician fills is the one checked.

    Refused, naming the amendment, for a form their version does not have.
    """
    session.require("record.read", what="read the protocol")
    if form is not None:
        return _governing(session, form, participant)
    p = get_participant(session.store, participant) if participant else None
    return amendments.protocol_of(session.store, p)


def _governing(session: Session, form: str, participant: str | None) -> protocols.Protocol:
    """The version a submission is checked against and captured under: the participant's once they are
    enrolled (`amendments`: enrolled under it, or moved to it by an amendment), else the active one.

    A form that belongs to no participant (the cold chain's, the DSMG's without one) is the active
    version's whatever `--participant` says.
    """
    active = protocols.active(session.store)
    if not participant:
        return active
    p = get_participant(session.store, participant)
    if p is None:
        return active  # `require_participant` names the unknown id
    theirs = amendments.protocol_of(session.store, p)
    _runs(theirs, p.id)
    if theirs is active or theirs.sha256 == active.sha256:
        return active
    if form not in theirs.forms:
        if form in active.forms and not _rule(active, form).participant:
            return active
        raise Refused(
            f"{p.id} is on protocol {theirs.id} {theirs.version}, which has no {text.excerpt(form)} form "
            f"(the active version {active.version} has; an investigator applies it with "
            f"`wardcrf protocol apply {p.id} {active.version} --reason ...`)"
        )
    if not _rule(theirs, form).participant:
        return active
    return theirs


_CANNOT_RUN = "a format-1 version stored before the engine ran format 1, which the engine cannot run"


def _runs(proto: protocols.Protocol, participant: str | None) -> None:
    """Refuse a new record under a version the engine does not run (docs/engine.md, "Every format-1 version
    on the engine"): a format-1 version stored before the engine ran format 1 that it cannot run even with
    format 1's leniency (`protocol.run_as` gives it as stored). Its records stay readable; nothing is saved."""
    if proto.engine is not None:
        return
    who = f"{text.excerpt(participant)} is on protocol" if participant else "the active protocol is"
    move = (
        f", `wardcrf protocol load` it and `wardcrf protocol apply {text.excerpt(participant)} VERSION --reason ...`"
        if participant
        else " and `wardcrf protocol load` it"
    )
    raise Refused(
        f"{who} {proto.id} {proto.version}, {_CANNOT_RUN}: no new record is saved under it "
        f"(its records stay readable); write the version in format 2{move}"
    )


def _rule(proto: protocols.Protocol, form: str) -> FormRule:
    """The rule of a form under a version the engine runs (`engine_rules`; `_runs` refuses any other)."""
    _runs(proto, None)
    from .engine_rules import rule_for as engine_rule_for

    return engine_rule_for(proto, form)


def _clean(reason: str | None) -> str | None:
    return reason.strip() if reason and reason.strip() else None


def _ordered(definition: Any, values: dict[str, Any]) -> dict[str, Any]:
    order = list(definition.fields)
    return {k: values[k] for k in sorted(values, key=lambda k: order.index(k) if k in order else len(order))}
