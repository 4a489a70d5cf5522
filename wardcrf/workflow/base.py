"""The frame every form rule runs in: context, registry, shared look-ups.

Each form has a `FormRule`: the permission it needs, whether it belongs to a
participant and needs valid consent first, a `check` that adds cross-field
and sequencing problems and returns the computed fields, and an optional
`after` step run inside the same transaction as the record (the consent's
e-signatures). `service.submit` and `service.amend` drive them; the CLI and
the TUI call only those.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .. import ids, text
from ..clock import now_utc, zone
from ..errors import Refused
from ..eventlog import Event
from ..protocol import Protocol
from ..store import Store

if TYPE_CHECKING:
    from ..site import Session

PasswordFor = Callable[[str], str]


@dataclass
class Participant:
    """A participant's row in the `participants` projection."""

    id: str
    number: int
    consent_event: str | None
    consent_time: str | None
    consent_version: str | None
    screening_event: str | None
    screening_date: str | None
    sex: str | None
    dob: str | None
    eligible: bool | None
    failed_criteria: list[str]
    enrollment_event: str | None
    enrolled_on: str | None

    @property
    def subject(self) -> str:
        return f"participant:{self.id}"

    @property
    def dob_date(self) -> date | None:
        return date.fromisoformat(self.dob) if self.dob else None

    @property
    def enrolled_date(self) -> date | None:
        return date.fromisoformat(self.enrolled_on) if self.enrolled_on else None


def get_participant(store: Store, pid: str) -> Participant | None:
    """The participant with this id, also as typed in a hurry (" wuh01-001"); callers use `p.id` after.

    Ids are allocated as SITE-NNN and compared by their key (`wardcrf.ids`:
    blanks, case and Unicode width do not matter), so a lower-case, padded or
    full-width id finds the same person and never a different one. The id as
    stored is tried first (one index look-up); a site whose code was set in
    lower case is matched by key.
    """
    k = ids.key(pid)
    rows = store.rows("SELECT * FROM participants WHERE id = ?", (k,))
    if not rows:
        rows = store.rows("SELECT * FROM participants WHERE upper(id) = ? LIMIT 1", (k,))
    if not rows:
        return None
    return participant_from_row(rows[0])


def participant_from_row(r: dict[str, Any]) -> Participant:
    """A `participants` projection row as a `Participant`."""
    return Participant(
        id=r["id"],
        number=r["number"],
        consent_event=r["consent_event"],
        consent_time=r["consent_time"],
        consent_version=r["consent_version"],
        screening_event=r["screening_event"],
        screening_date=r["screening_date"],
        sex=r["sex"],
        dob=r["dob"],
        eligible=None if r["eligible"] is None else bool(r["eligible"]),
        failed_criteria=json.loads(r["failed_criteria"]) if r["failed_criteria"] else [],
        enrollment_event=r["enrollment_event"],
        enrolled_on=r["enrolled_on"],
    )


def require_participant(store: Store, pid: str | None) -> Participant:
    if not pid:
        raise Refused("this form belongs to a participant: name the participant (--participant ID)")
    p = get_participant(store, pid)
    if p is None:
        raise Refused(f"unknown participant {text.excerpt(pid)} (see `wardcrf participant list`)")
    return p


@dataclass
class RuleContext:
    """Everything a form rule may look at while checking one submission or amendment."""

    session: Session
    protocol: Protocol
    form: str
    participant: Participant | None
    now: datetime
    problems: dict[str, str] = field(default_factory=dict)
    amending: str | None = None  # the record's event id when this is an amendment
    password_for: PasswordFor | None = None
    # The person confirmed, with a reason, something a rule asks to be confirmed (--confirm --reason).
    confirmed: bool = False
    # Set by the rule for its `after` step (e.g. who signs a consent).
    carry: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.session.store

    @property
    def zone(self) -> str:
        return self.session.ctx.zone

    def local(self, iso: str) -> datetime:
        return datetime.fromisoformat(iso).astimezone(zone(self.zone))

    def problem(self, name: str, why: str) -> None:
        self.problems.setdefault(name, why)


Check = Callable[[RuleContext, dict[str, Any]], dict[str, Any]]
After = Callable[[RuleContext, Event], None]


@dataclass(frozen=True)
class FormRule:
    action: str = "record.submit"
    amend_action: str = "record.amend"
    participant: bool = True
    needs_consent: bool = True
    check: Check | None = None
    after: After | None = None
    # Forms whose "submission" is not a record (the casebook sign-off).
    special: Callable[..., Event] | None = None


RULES: dict[str, FormRule] = {}


def rule_for(form: str) -> FormRule:
    """A form's rule by its name alone, when no version is at hand (the sign-off's; the audit review's
    expected roles): `RULES`, else the first trial's forms as the engine runs them (the re-encoding
    every format-1 version runs on, read on first use), else the default."""
    hit = RULES.get(form)
    if hit is None and _BY_NAME:
        hit = _BY_NAME[0](form)
    return hit if hit is not None else FormRule()


_BY_NAME: list[Callable[[str], FormRule | None]] = []
"""`engine_rules.rule_by_name`, plugged in by `workflow.register` (the engine's rules load on use)."""


def rule_by_name_with(fn: Callable[[str], FormRule | None]) -> None:
    _BY_NAME[:] = [fn]


def now() -> datetime:
    return now_utc()


def event_pos(store: Store, event_id: str | None) -> int:
    if not event_id:
        return 0
    return int(store.scalar("SELECT pos FROM events WHERE id = ?", (event_id,)) or 0)


def records_of(store: Store, pid: str, form: str, *, exclude: str | None = None) -> list[dict[str, Any]]:
    """Current values of a participant's records of one form, oldest first (with `_event`)."""
    rows = store.execute(
        "SELECT r.event_id, r.data FROM records r JOIN events e ON e.id = r.event_id"
        " WHERE r.subject = ? AND r.form = ? ORDER BY e.pos",
        (f"participant:{pid}", form),
    ).fetchall()
    out = []
    for event_id, data in rows:
        if event_id == exclude:
            continue
        d = json.loads(data)
        d["_event"] = event_id
        out.append(d)
    return out
