"""Audit: verify the record's integrity and read the audit trail.

`verify` runs every registered integrity check (the event chains here;
photo evidence and other stored hashes register their own checks) and
returns every problem found, each naming where it is. `trail` renders the
log as people read it: who, when, what, old -> new, why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from . import appendonly, eventlog
from .errors import UsageError
from .registration import require_installed
from .store import Store

if TYPE_CHECKING:
    from .features import Registry
    from .site import Session


@dataclass
class CheckResult:
    name: str
    checked: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth reading, not a failure (e.g. a past repair)


Check = Callable[[Store], CheckResult]
_CHECKS: list[tuple[str, Check]] = []
SiteCheck = Callable[["Session"], list[CheckResult]]
_SITE_CHECKS: list[SiteCheck] = []


def register_site_check(fn: SiteCheck) -> SiteCheck:
    """Add checks of what a site keeps beside its file (a PostgreSQL hub's database) to `audit verify`.

    `fn(session)` returns its results, none when the site keeps nothing there.
    """
    if fn not in _SITE_CHECKS:
        _SITE_CHECKS.append(fn)
    return fn


def register_check(name: str) -> Callable[[Check], Check]:
    """Add an integrity check to `audit verify` (photos, logger files, bundles...)."""

    def add(fn: Check) -> Check:
        if all(n != name for n, _ in _CHECKS):
            _CHECKS.append((name, fn))
        return fn

    return add


def _chains(store: Store) -> CheckResult:
    n, problems = eventlog.verify_chains(store)
    return CheckResult("event chains", n, [str(p) for p in problems])


TRIGGERS = "append-only triggers"


def _triggers(store: Store) -> CheckResult:
    """Every append-only trigger as the schema defines it (store.APPEND_ONLY); earlier repairs are listed as notes."""
    problems = [f"{d} (`wardcrf audit verify` puts it back)" for d in appendonly.damaged(store)]
    notes = [
        f"triggers {', '.join(t['name'] for t in e.body.get('triggers', []))} were found dropped or altered"
        f" and restored at {e.ts} by {e.user} (event {e.id}): the database was written around wardcrf then;"
        " the event chains say whether any event changed"
        for e in eventlog.iter_events(store, "type = ?", ("db.triggers_restored",))
    ]
    return CheckResult(TRIGGERS, len(appendonly.expected()), problems, notes)


def repair_triggers(session: Session) -> list[str]:
    """Put back missing or altered append-only triggers, with a `db.triggers_restored` event.

    Any role that may verify does it: restoring a protection is not a change
    to the record, and the event says who found it and when.
    """
    store = session.store
    with store.transaction():
        found = appendonly.damaged(store)
        if not found:
            return []
        appendonly.restore(store, found)
        session.append(
            type="db.triggers_restored",
            subject=f"site:{session.ctx.site}",
            body={"triggers": [{"name": d.name, "found": d.found} for d in found]},
        )
    return [
        f"{d}: restored now and logged (db.triggers_restored); the database was written around wardcrf"
        for d in found
    ]


@dataclass
class VerifyReport:
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(not r.problems for r in self.results)

    @property
    def problems(self) -> list[str]:
        return [f"{r.name}: {p}" for r in self.results for p in r.problems]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {"name": r.name, "checked": r.checked, "problems": r.problems, "notes": r.notes}
                for r in self.results
            ],
        }


def verify_store(store: Store) -> VerifyReport:
    require_installed()
    # The triggers last: when records were changed around wardcrf, what changed
    # is the finding to read first; the dropped trigger is how it was done.
    return VerifyReport([*(fn(store) for _, fn in _CHECKS), _triggers(store)])


def verify(session: Session) -> VerifyReport:
    """Every check on the database as found; then missing or altered triggers are put back (logged)."""
    session.require("audit.verify", what="verify the audit trail")
    report = verify_store(session.store)
    repaired = repair_triggers(session)
    if repaired:
        for r in report.results:
            if r.name == TRIGGERS:
                r.problems = repaired
    for fn in _SITE_CHECKS:
        report.results.extend(fn(session))
    return report


class FieldChange(TypedDict):
    """One field an amendment changed (`TrailEntry.changes`): the values as the records store them."""

    field: str
    old: Any
    new: Any


@dataclass
class TrailEntry:
    event_id: str
    device: str
    seq: int
    ts: str
    local_time: str
    user: str | None
    role: str | None
    type: str
    subject: str | None
    summary: str
    changes: list[FieldChange]
    reason: str | None
    body: dict[str, Any] = field(default_factory=dict)
    site: str = ""
    amends: str | None = None
    protocol: dict[str, str] | None = None
    hash: str = ""
    hlc: str = ""

    def as_json(self) -> dict[str, Any]:
        """Everything the event says: the summary for people plus the full body.

        The `summary` is abbreviated for the table; `body` is the event's body
        exactly as hashed (every value with its unit, overrides and their
        reasons, photo and signature references), so a script or an auditor
        reading `log --json` never sees less than the log holds.
        """
        return self.__dict__.copy()


def shown_value(v: Any) -> str:
    """A stored value as a reader of the trail says it: `37.1 C`, not `{"unit": "C", "value": 37.1}`."""
    if isinstance(v, dict) and set(v) == {"value", "unit"}:
        return f"{json.dumps(v['value'], ensure_ascii=False)} {v['unit']}"
    return json.dumps(v, ensure_ascii=False)


def _summary(e: eventlog.Event) -> tuple[str, list[FieldChange]]:
    b = e.body
    if e.type == "record.amended":
        changes: list[FieldChange] = [
            {"field": f, "old": c.get("old"), "new": c.get("new")} for f, c in sorted(b["changes"].items())
        ]
        return f"amended {b.get('form')} record {e.amends}", changes
    if e.type == "record.submitted":
        data = b.get("data") or {}
        shown = ", ".join(f"{k}={shown_value(v)}" for k, v in list(data.items())[:6])
        more = " …" if len(data) > 6 else ""
        return f"{b.get('form')}: {shown}{more}", []
    if e.type == "signature.applied":
        return f"signed {b['target']} as {b['meaning']} ({b['full_name']})", []
    if e.type == "sdv.verified":
        return (
            f"source-verified {b['form']} record {b['target']} ({', '.join(b['fields'])}) against "
            f"{', '.join(b['sources'])} as {b['meaning']} ({b['full_name']})",
            [],
        )
    keys = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in list(b.items())[:5])
    return keys, []


def _utc_bound(option: str, value: str | None) -> str | None:
    """A --since/--until bound as the stored UTC form; anything else is refused, never matched as text.

    (Compared as text, "yesterday" is later than every timestamp: the trail
    would come back empty and an auditor could believe nothing happened.)
    """
    if value is None:
        return None
    text = value.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not a UTC date or time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], e.g. 2026-11-25)"
        ) from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return (
        when.isoformat(timespec="milliseconds") + "Z"
        if "T" in text or " " in text
        else when.date().isoformat()
    )


def trail(
    session: Session,
    *,
    subject: str | None = None,
    user: str | None = None,
    type_prefix: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> Iterator[TrailEntry]:
    session.require("audit.read", what="read the audit trail")
    since, until = _utc_bound("--since", since), _utc_bound("--until", until)
    where, params = [], []
    # Exact text comparisons, never LIKE: in LIKE `_` and `%` are wildcards and
    # ASCII letters match either case, so `participant:WUH01_001` would also
    # return `participant:WUH01-001`'s events and an auditor would read a
    # stranger's trail as this subject's. `substr(...) = ?` is a literal prefix.
    if subject:
        nested = subject + "/"
        where.append("(subject = ? OR substr(subject, 1, ?) = ?)")
        params += [subject, len(nested), nested]
    if user:
        where.append("user = ?")
        params.append(user)
    if type_prefix:
        where.append("substr(type, 1, ?) = ?")
        params += [len(type_prefix), type_prefix]
    if since:
        where.append("ts >= ?")
        params.append(since)
    if until:
        where.append("ts < ?")
        params.append(until)
    sql = "SELECT line FROM events" + (" WHERE " + " AND ".join(where) if where else "")
    # With a limit, the most recent N events (by position), shown oldest first.
    sql += f" ORDER BY pos DESC LIMIT {int(limit)}" if limit else " ORDER BY pos"
    lines = [r[0] for r in session.store.execute(sql, params)]
    events = [eventlog.Event.from_line(line) for line in lines]
    events.sort(key=lambda e: (e.hlc, e.device, e.seq))
    for e in events:
        summary, changes = _summary(e)
        yield TrailEntry(
            event_id=e.id,
            device=e.device,
            seq=e.seq,
            ts=e.ts,
            local_time=e.local_time.isoformat(timespec="seconds"),
            user=e.user,
            role=e.role,
            type=e.type,
            subject=e.subject,
            summary=summary,
            changes=changes,
            reason=e.reason,
            body=e.body,
            site=e.site,
            amends=e.amends,
            protocol=e.protocol,
            hash=e.hash,
            hlc=e.hlc,
        )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.audit_check("event chains", _chains)
