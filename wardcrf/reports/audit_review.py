"""The periodic audit-trail review (EMA 2023 §6.2.2): what a monitor must look at, found for them.

A monitor cannot read every entry of a trial's audit trail; the guideline
asks for a documented, risk-based review that finds entries at unexpected
hours, unauthorised access, manipulation, and capture that does not happen as
the protocol describes. `review` walks the trail of a period and returns
findings of each kind, each linked to its events; the thresholds are the
protocol's `[audit_review]` (`wardcrf.protocol_review`, with documented
defaults). The same review runs at a ward and at the hub (where it also sees
held bundles and forks of every device).

Kinds (the order of the report):

- ``unusual_hours``: entries in the protocol's night span, site time;
- ``late_entry``: a record entered long after the time it describes;
- ``critical_change``: an amendment of a critical field;
- ``many_amendments``: more amendments by one user, or to one participant, than the protocol allows;
- ``amended_after_signature``: a record amended after someone signed it;
- ``failed_login`` and ``locked``: failed and refused sign-ins, accounts locked;
- ``raw_key`` and ``plaintext_export``: the database key shown, data exported unencrypted;
- ``clock``: a laptop's clock that went backwards between two of its entries;
- ``gap_fork``: bundles held (a gap, a broken rule) and forks at the hub;
- ``unblinding``: an allocation revealed (`randomization.unblinded`, `randomization.trial_unblinded`);
- ``unexpected_role``: a record entered by a role the protocol does not expect for that form.

`sign` records the review (`audit.reviewed`: the period, the counts, the
SHA-256 of the findings as JSON) and the reviewer's e-signature on it with
the meaning "reviewed"; every report lists the past reviews.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from .. import eventlog
from ..canonical import dumps
from ..clock import iso_utc, parse_iso
from ..errors import UsageError
from ..eventlog import Event
from ..exports.dataset import Dataset
from ..protocol import Protocol, active
from ..site import Session

KINDS = (
    "unusual_hours",
    "late_entry",
    "critical_change",
    "many_amendments",
    "amended_after_signature",
    "failed_login",
    "locked",
    "raw_key",
    "plaintext_export",
    "clock",
    "gap_fork",
    "unblinding",
    "unexpected_role",
)
TITLES = {
    "unusual_hours": "Entries at unusual hours",
    "late_entry": "Late entries",
    "critical_change": "Changes to critical fields",
    "many_amendments": "Many amendments",
    "amended_after_signature": "Amended after a signature",
    "failed_login": "Failed sign-ins",
    "locked": "Accounts locked",
    "raw_key": "Database key disclosed",
    "plaintext_export": "Unencrypted exports",
    "clock": "Laptop clock went backwards",
    "gap_fork": "Gaps and forks",
    "unblinding": "Unblindings",
    "unexpected_role": "Entered by an unexpected role",
}
EVENT_REVIEWED = "audit.reviewed"


@dataclass(frozen=True)
class Finding:
    """One thing for the reviewer to look at, with the events that show it."""

    kind: str
    what: str
    events: tuple[str, ...]
    when: str  # UTC, of the first event
    who: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            "events": list(self.events),
            "when": self.when,
            "who": self.who,
        }


@dataclass
class Review:
    """The findings of one period, with how the review was done and the past reviews."""

    since: str
    until: str
    site: str
    checked: int
    method: list[str]
    findings: list[Finding] = field(default_factory=list)
    past: list[PastReview] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(f.kind for f in self.findings)
        return {k: c.get(k, 0) for k in KINDS}

    def as_json(self) -> dict[str, Any]:
        return {
            "format": "wardcrf-audit-review/1",
            "site": self.site,
            "since": self.since,
            "until": self.until,
            "events_checked": self.checked,
            "method": self.method,
            "counts": self.counts(),
            "findings": [f.as_json() for f in self.findings],
            "past_reviews": self.past,
        }

    def sha256(self) -> str:
        """The SHA-256 of the findings (what a signature on the review stands for)."""
        doc = self.as_json()
        doc.pop("past_reviews")
        return hashlib.sha256(dumps(doc).encode()).hexdigest()


def _bound(option: str, value: str) -> datetime:
    try:
        d = parse_iso(value if "T" in value else f"{value}T00:00:00+00:00")
    except (ValueError, TypeError):
        raise UsageError(f"{option}: {value[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if d.tzinfo is None:
        raise UsageError(f"{option}: {value[:40]!r} needs a time zone (e.g. Z or +08:00)")
    return d


def _local_minute(e: Event) -> int:
    try:
        t = parse_iso(e.ts).astimezone(ZoneInfo(e.zone))
    except (ValueError, KeyError, OSError):
        t = parse_iso(e.ts)
    return t.hour * 60 + t.minute


def _described_time(data: dict[str, Any], form: Any) -> datetime | None:
    """When a record says its event happened: its earliest date-time field, or its `date`.

    Other dates a form holds (a birth date, the date of a PCR before
    admission) are facts about the past, not the time of the entry's event,
    so only date-time fields and a field named `date` count.
    """
    best: datetime | None = None
    for name, f in form.fields.items() if form is not None else ():
        counts = f.type == "datetime" or (f.type == "date" and name == "date")
        if not counts or not isinstance(data.get(name), str):
            continue
        try:
            v = parse_iso(data[name] if f.type == "datetime" else f"{data[name]}T23:59:59+14:00")
        except (ValueError, TypeError):
            continue
        if v.tzinfo is not None and (best is None or v < best):
            best = v
    return best


def review(session: Session, since: str, until: str) -> Review:
    """The findings of the events recorded from `since` to `until` (UTC or dated; until inclusive)."""
    session.require("audit.review", what="review the audit trail")
    start, end = _bound("--from", since), _bound("--to", until)
    if "T" not in until:
        end += timedelta(days=1)
    if end <= start:
        raise UsageError("--to must be after --from")
    store = session.store
    proto = active(store)
    plan = proto.review
    lo, hi = iso_utc(start), iso_utc(end)
    site = str(store.scalar("SELECT site FROM site WHERE id = 1") or "")
    out = Review(lo, hi, site, 0, plan.describe())
    per_user: dict[str, list[str]] = defaultdict(list)
    per_participant: dict[str, list[str]] = defaultdict(list)
    last_ts: dict[str, tuple[str, str]] = {}
    signed: dict[str, str] = {}  # record event id -> first signature time
    for target, at in store.execute(
        "SELECT target_event, MIN(signed_at) FROM signatures GROUP BY target_event"
    ):
        signed[str(target)] = str(at)
    # The log in the order the site received it: at a PostgreSQL hub read in place, the wards' (its database)
    # and the hub's own (its file) merged as a SQLCipher hub's one log holds them (`Dataset.events`).
    for e in Dataset.over(store, "audit.review").events("ts >= ? AND ts < ?", (lo, hi)):
        out.checked += 1
        _check(e, proto, plan, out, per_user, per_participant, last_ts, signed)
    for who, evs in sorted(per_user.items()):
        if len(evs) > plan.amendments_per_user:
            out.findings.append(
                Finding(
                    "many_amendments",
                    f"{who} made {len(evs)} amendments (more than {plan.amendments_per_user})",
                    tuple(evs),
                    "",
                    who,
                )
            )
    for pid, evs in sorted(per_participant.items()):
        if len(evs) > plan.amendments_per_participant:
            out.findings.append(
                Finding(
                    "many_amendments",
                    f"{pid}'s records were amended {len(evs)} times (more than {plan.amendments_per_participant})",
                    tuple(evs),
                    "",
                )
            )
    if _is_hub(store):
        for r in store.rows(
            "SELECT device, bundle_seq, reason, detail, received_at FROM sync_held WHERE received_at >= ? AND received_at < ?",
            (lo, hi),
        ):
            out.findings.append(
                Finding(
                    "gap_fork",
                    f"{r['device']} bundle {r['bundle_seq']} held ({r['reason']}): {r['detail'][:160]}",
                    (),
                    str(r["received_at"]),
                )
            )
    out.findings.sort(key=lambda f: (KINDS.index(f.kind), f.when, f.events))
    out.past = past_reviews(store)
    return out


def _is_hub(store: Any) -> bool:
    return bool(store.scalar("SELECT count(*) FROM tlog_leaves")) or bool(
        store.scalar("SELECT count(*) FROM sync_devices")
    )


def _check(
    e: Event,
    proto: Protocol,
    plan: Any,
    out: Review,
    per_user: dict[str, list[str]],
    per_participant: dict[str, list[str]],
    last_ts: dict[str, tuple[str, str]],
    signed: dict[str, str],
) -> None:
    add = out.findings.append
    who = e.user
    prev = last_ts.get(e.device)
    if prev is not None and e.ts < prev[0] and parse_iso(prev[0]) - parse_iso(e.ts) > timedelta(seconds=1):
        add(
            Finding(
                "clock",
                f"{e.device}'s clock read {e.ts}, before its previous entry at {prev[0]}",
                (prev[1], e.id),
                e.ts,
                who,
            )
        )
    last_ts[e.device] = (max(e.ts, prev[0]) if prev else e.ts, e.id)
    if e.user and _is_entry(e) and plan.at_night(_local_minute(e)):
        m = _local_minute(e)
        add(
            Finding(
                "unusual_hours",
                f"{e.type} by {e.user} at {m // 60:02d}:{m % 60:02d} site time",
                (e.id,),
                e.ts,
                who,
            )
        )
    t = e.type
    if t == "record.submitted":
        form_name = str(e.body.get("form", ""))
        form = proto.forms.get(form_name)
        raw = e.body.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        described = _described_time(data, form)
        if described is not None:
            lag = parse_iso(e.ts) - described
            if lag > timedelta(hours=plan.late_entry_hours):
                hours = int(lag.total_seconds() // 3600)
                add(
                    Finding(
                        "late_entry",
                        f"{form_name} record entered {hours} h after the time it describes",
                        (e.id,),
                        e.ts,
                        who,
                    )
                )
        roles = plan.roles.get(form_name) or _expected_roles(form_name)
        if e.role and e.role not in roles:
            add(
                Finding(
                    "unexpected_role",
                    f"{form_name} record entered by a {e.role} (expected: {', '.join(roles)})",
                    (e.id,),
                    e.ts,
                    who,
                )
            )
    elif t == "record.amended":
        form_name = str(e.body.get("form", ""))
        form = proto.forms.get(form_name)
        got = e.body.get("changes")
        changes: dict[str, Any] = got if isinstance(got, dict) else {}
        critical = sorted(f for f in changes if plan.is_critical(form, form_name, f))
        if critical:
            add(
                Finding(
                    "critical_change",
                    f"{form_name}: {', '.join(critical)} changed ({(e.reason or '')[:80]})",
                    (e.id, e.amends or ""),
                    e.ts,
                    who,
                )
            )
        if who:
            per_user[who].append(e.id)
        if e.subject:
            per_participant[e.subject].append(e.id)
        first_sig = signed.get(e.amends or "")
        if first_sig is not None and first_sig <= e.ts:
            add(
                Finding(
                    "amended_after_signature",
                    f"{form_name} record {e.amends} amended after it was signed",
                    (e.id, e.amends or ""),
                    e.ts,
                    who,
                )
            )
    elif t in ("auth.login_failed", "auth.login_refused"):
        add(
            Finding(
                "failed_login",
                f"{t.split('.')[1].replace('_', ' ')}: {e.subject or e.body.get('user', '')}",
                (e.id,),
                e.ts,
                who,
            )
        )
    elif t == "user.locked":
        add(Finding("locked", f"{e.subject or ''} locked", (e.id,), e.ts, who))
    elif t == "db.raw_key_shown":
        add(Finding("raw_key", f"the database key was shown to {who}", (e.id,), e.ts, who))
    elif t == "export.plaintext":
        add(Finding("plaintext_export", f"{who} exported data unencrypted", (e.id,), e.ts, who))
    elif t in ("sync.fork_detected", "sync.bundle_held"):
        add(Finding("gap_fork", f"{t}: {json.dumps(e.body, sort_keys=True)[:160]}", (e.id,), e.ts, who))
    elif t in ("randomization.unblinded", "randomization.trial_unblinded"):
        add(Finding("unblinding", f"{t} by {who}", (e.id,), e.ts, who))


UNEXPECTED_ANYWHERE = frozenset({"admin", "coordinator"})
"""Roles that may hold broad rights but are not expected to enter a ward's records themselves."""


def _expected_roles(form: str) -> tuple[str, ...]:
    """Who is expected to enter a form when the protocol does not say: those whose job it is.

    The roles the form's own permission allows (the cold chain's for its
    records, the form rule's otherwise), less admin and coordinator: a
    coordinator allowed to correct a record is still worth a reviewer's look.
    """
    from .. import roles
    from ..workflow import base

    action = "coldchain.record" if form.startswith("coldchain.") else base.rule_for(form).action
    allowed = roles.PERMISSIONS.get(action, frozenset())
    return tuple(sorted(allowed - UNEXPECTED_ANYWHERE))


def _is_entry(e: Event) -> bool:
    """What a person did (not the system's own bookkeeping)."""
    return e.type.startswith(
        ("record.", "signature.", "auth.", "user.", "db.", "export.", "coldchain.", "photo.")
    )


class PastReview(TypedDict):
    """A signed audit-trail review of this site (`past_reviews`): listed by every later review."""

    event: str
    since: str | None
    until: str | None
    reviewer: str | None
    recorded_at: str
    findings: int
    signed: str
    """The printed signature: name (user) — meaning — time."""
    note: str | None


def past_reviews(store: Any) -> list[PastReview]:
    """Every signed review of this site: period, reviewer, when, counts, and whether the signature holds."""
    out: list[PastReview] = []
    for e in Dataset.over(store, "audit.review").events("type = ?", (EVENT_REVIEWED,)):
        b = e.body
        out.append(
            {
                "event": e.id,
                "since": e.body.get("since"),
                "until": e.body.get("until"),
                "reviewer": e.user,
                "recorded_at": e.ts,
                "findings": sum((e.body.get("counts") or {}).values()),
                "signed": f"{b.get('full_name')} ({b.get('signer')}) — {b.get('meaning')} — {e.ts}",
                "note": b.get("note"),
            }
        )
    return out


def sign(session: Session, done: Review, *, password: str, note: str | None = None) -> Event:
    """The reviewer's e-signature on the review: one `audit.reviewed` event, meaning "reviewed".

    Part 11 §11.50 as for records (`wardcrf.signatures`): the password is
    entered again, and the event carries the printed name, the meaning and
    the SHA-256 of exactly what was reviewed (the findings as JSON), so a
    later review of the same period that differs shows it. It is its own
    event type, not `signature.applied`, because reviewers (monitors,
    auditors) sign reviews but never records.
    """
    from .. import users

    session.require("audit.review", what="sign an audit-trail review")
    session.site.verify_password(session, session.user, password)
    user = users.get(session.store, session.user) or {}
    body: dict[str, Any] = {
        "since": done.since,
        "until": done.until,
        "counts": done.counts(),
        "findings_sha256": done.sha256(),
        "meaning": "reviewed",
        "signer": session.user,
        "full_name": str(user.get("full_name") or session.user),
    }
    if note:
        body["note"] = note
    e = eventlog.append(
        session.store,
        session.ctx,
        session.author,
        type=EVENT_REVIEWED,
        subject=f"site:{done.site}",
        body=body,
    ).event
    return e


def write_json(done: Review, out: Path) -> Path:
    out.write_text(json.dumps(done.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def write_pdf(done: Review, out: Path) -> Path:
    """The review as a PDF a monitor files: method, counts, each finding with its events, past reviews."""
    from .pdf import Document

    doc = Document(f"wardcrf audit-trail review · site {done.site} · {done.since} to {done.until}")
    doc.add_page()
    doc.heading(f"Audit-trail review, site {done.site}")
    doc.rows(
        [
            ("Period (UTC)", f"{done.since} to {done.until}"),
            ("Events checked", str(done.checked)),
            ("Findings", str(len(done.findings))),
            ("Findings SHA-256", done.sha256()),
        ]
    )
    doc.heading("Method (the protocol's [audit_review])", 11)
    for m in done.method:
        doc.line(f"- {m}")
    doc.heading("Counts", 11)
    doc.rows([(TITLES[k], str(v)) for k, v in done.counts().items()])
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for f in done.findings:
        by_kind[f.kind].append(f)
    for kind in KINDS:
        doc.heading(f"{TITLES[kind]} ({len(by_kind[kind])})", 11)
        if not by_kind[kind]:
            doc.line("none")
        for f in by_kind[kind]:
            doc.line(f"{f.when or '-'}  {f.what}", char_wrap=True)
            if f.events:
                doc.line("    events: " + ", ".join(x for x in f.events if x), size=7.5, char_wrap=True)
    doc.heading("Past reviews", 11)
    if not done.past:
        doc.line("none signed yet")
    for p in done.past:
        doc.line(
            f"{p['since']} to {p['until']}: {p['findings']} finding(s), recorded {p['recorded_at']} by {p['reviewer']}"
        )
        doc.line(f"    signed: {p['signed']}", size=8)
        if p.get("note"):
            doc.line(f"    note: {p['note']}", size=8, char_wrap=True)
    doc.save(out)
    return out
