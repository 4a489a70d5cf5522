"""Participants: consent, the participant projections, consent first, and the sentinel gate.

The order is the law of the ward (Part 11 §11.10(f) operational sequencing):
consent creates the participant (a new site-prefixed id, never reused) and is
valid only with the consenting doctor's and the `[consent] witnesses`
doctors' e-signatures (`check_consent`, run by the engine's consent rule), and
no other form is accepted for a participant before it. Eligibility,
enrollment and the sentinel gate are the protocol's declarations, run by the
engine (`engine_rules`: criteria, `[[gates]]`); format 1's own screening,
enrollment and demographics rules are gone with its workflow (every format-1
version runs on the engine, docs/engine.md). What stays here: the consent
rule, the `participants` projection from consent, eligibility and enrollment
records, the sentinel state, and consent-first at audit and sync import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from .. import audit, users
from ..errors import Refused
from ..eventlog import Event
from ..ingest import HoldForCoordinator
from ..records import Record
from ..sqlstore import common_dialect
from ..store import Store
from . import safety
from .base import RuleContext, records_of

if TYPE_CHECKING:
    from ..features import Registry


def new_participant_id(store: Store, site: str) -> str:
    """The next site-prefixed id: one above every id ever allocated on this site (never reused)."""
    top = store.scalar("SELECT max(number) FROM participants") or 0
    return f"{site}-{top + 1:03d}"


def _number_of(pid: str) -> int:
    tail = pid.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def age_on(dob: date, day: date) -> int:
    """Completed years of age on `day`."""
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def _date(v: Any) -> date | None:
    return date.fromisoformat(v) if isinstance(v, str) else None


# -- consent --------------------------------------------------------------------------


def check_consent(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    """Surrogate details when a surrogate signs; the doctor and `[consent] witnesses` witnesses sign, all distinct."""
    if v.get("consenter") == "surrogate":
        for key in ("surrogate_name", "surrogate_relationship"):
            if not v.get(key):
                ctx.problem(key, "required when a surrogate consents")
    elif v.get("consenter") == "participant":
        for key in ("surrogate_name", "surrogate_relationship"):
            if v.get(key):
                ctx.problem(key, "only for a surrogate's consent (consenter=surrogate)")
    rules = ctx.protocol.consent
    doctor = ctx.session.user
    if ctx.amending is None and ctx.session.role not in rules.doctor_roles:
        raise Refused(f"consent is taken by a study doctor (roles: {', '.join(rules.doctor_roles)})")
    seen = {doctor: "the consenting doctor"}
    signers: list[tuple[str, str]] = [(doctor, "authored")]
    keys = witness_fields(rules.witnesses)
    for key in keys:
        name = v.get(key)
        if not name:
            continue
        user = users.get(ctx.store, name)
        if user is None or not user["active"]:
            ctx.problem(key, f"{name} is not an active user of this site")
        elif user["role"] not in rules.doctor_roles:
            ctx.problem(
                key,
                f"{name} has the role {user['role']}; witnesses are study doctors ({', '.join(rules.doctor_roles)})",
            )
        elif name in seen:
            ctx.problem(
                key,
                f"{name} already signs as {seen[name]}; each of the "
                f"{_COUNT.get(1 + rules.witnesses, str(1 + rules.witnesses))} signatures must be by a different user",
            )
        else:
            seen[name] = _ORDINAL.get(key, f"witness {key.removeprefix('witness_')}")
            signers.append((name, "witnessed"))
    if ctx.amending is not None:
        old = ctx.store.scalar("SELECT data FROM records WHERE event_id = ?", (ctx.amending,))
        before = json.loads(old) if old else {}
        for key in keys:
            if v.get(key) != before.get(key):
                ctx.problem(key, "witnesses signed the original consent; record a new consent instead")
        if v.get("time"):
            _consent_still_first(ctx, ctx.local(v["time"]))
        return {}
    if not ctx.problems:
        if ctx.password_for is None:
            raise Refused("consent needs the e-signatures of the consenting doctor and both witnesses")
        ctx.carry["signers"] = [(n, m, ctx.password_for(n)) for n, m in signers]
    return {}


_COUNT = {1: "one", 2: "two", 3: "three", 4: "four"}
_ORDINAL = {
    "witness_1": "the first witness",
    "witness_2": "the second witness",
    "witness_3": "the third witness",
}


def witness_fields(witnesses: int) -> tuple[str, ...]:
    """The consent's witness fields, `witness_1` ... `witness_N` for `[consent] witnesses = N`."""
    return tuple(f"witness_{i}" for i in range(1, witnesses + 1))


def _consent_still_first(ctx: RuleContext, new_time: datetime) -> None:
    """A corrected consent time may not follow a trial procedure already recorded (§11.10(f)).

    The participant's earliest consent after the correction is compared with
    the screening and enrollment dates and the times of the procedures the
    version declares (`_procedures`: every administration, and the records a
    gate requires before one, such as a pre-dose skin test).
    """
    p = ctx.participant
    assert p is not None
    others = [ctx.local(c["time"]) for c in records_of(ctx.store, p.id, "consent", exclude=ctx.amending)]
    first = min([new_time, *others])
    procedures: list[tuple[datetime | date, str]] = []
    if p.screening_date:
        procedures.append((date.fromisoformat(p.screening_date), "the screening"))
    if p.enrolled_on:
        procedures.append((date.fromisoformat(p.enrolled_on), "the enrollment"))
    for form, key, label in _procedures(ctx.protocol):
        for r in records_of(ctx.store, p.id, form):
            if r.get(key):
                procedures.append((ctx.local(r[key]), f"{label} {r['_event']}"))
    for when, what in procedures:
        late = first.date() > when if not isinstance(when, datetime) else first > when
        if late:
            shown = when.isoformat(timespec="minutes") if isinstance(when, datetime) else when.isoformat()
            ctx.problem(
                "time",
                f"{first.isoformat(timespec='minutes')} is after {what} ({shown}); "
                "consent precedes every trial procedure",
            )
            return


def _procedures(proto: Any) -> list[tuple[str, str, str]]:
    """(form, time field, label) of the trial procedures a version declares, from its model: the forms a
    `require` gate reads before an administration (their first date-time field), then each administration
    form (its `start` role). Names come from the protocol, never from code."""
    from ..engine import expressions

    m = proto.engine
    if m is None:
        return []
    forms = m.data.get("forms", {})
    administered = {
        str(a.record.get("form")): a.record for r in m.regimens.values() for a in r.administrations
    }
    out: list[tuple[str, str, str]] = []
    for gate in m.data.get("gates", []):
        if gate.get("kind") != "require" or not set(gate.get("before", [])) & set(administered):
            continue
        for text in (gate.get("require"), gate.get("refuse_if")):
            names = [t.value for t in expressions.tokenize(str(text)) if t.kind == "name"] if text else []
            for name in names:
                fields = forms.get(name, {}).get("fields", {})
                when = next((k for k, f in fields.items() if f.get("type") == "datetime"), None)
                if name in administered or when is None or any(o[0] == name for o in out):
                    continue
                out.append((name, when, "the " + _label(forms[name], name)))
    for form, record in administered.items():
        start = record.get("start")
        if isinstance(start, str) and form in forms:
            out.append((form, start, _label(forms[form], form)))
    return out


def _label(form: Any, name: str) -> str:
    from .. import protocol as protocols

    label = form.get("label")
    return (protocols.tr(label, "en") if isinstance(label, Mapping) else str(label or name)).lower()


def sign_consent(ctx: RuleContext, event: Event) -> None:
    """Each signer re-enters their password (§11.200); runs inside the record's transaction.

    A wrong password rolls the whole consent back. The failed attempt was
    logged inside that transaction, so it is logged again after the
    rollback (`relog_failed_signature`): the audit trail keeps every failure.
    """
    from .. import signatures

    for name, meaning, pw in ctx.carry.get("signers", []):
        ctx.carry["signing"] = name
        signatures.sign(ctx.session, target=event.id, meaning=meaning, signer=name, password=pw)
    ctx.carry.pop("signing", None)


def relog_failed_signature(ctx: RuleContext, exc: Exception) -> None:
    from ..clock import iso_utc, now_utc

    name = ctx.carry.get("signing")
    if name and str(exc).startswith("wrong password"):
        users.record_login_failed(ctx.session, name, iso_utc(now_utc()))


def consent_state(store: Store, p: Any, witnesses: int = 2) -> tuple[bool, str]:
    """(valid, why): a consent record signed by its doctor and `witnesses` other users."""
    if not p.consent_event:
        return False, "no consent recorded"
    rows = store.execute(
        "SELECT user_id, meaning FROM signatures WHERE target_event = ?", (p.consent_event,)
    ).fetchall()
    authored, witnessed = _consent_signers(rows)
    if not authored or len(witnessed) < witnesses:
        return False, (
            f"consent {p.consent_event} lacks signatures (doctor: {len(authored)}, "
            f"witnesses: {len(witnessed)} of {witnesses})"
        )
    return True, "valid"


def _consent_signers(rows: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """(doctors who authored, other users who witnessed) among (user, meaning) signatures."""
    authored = {u for u, m in rows if m == "authored"}
    witnessed = {u for u, m in rows if m == "witnessed"} - authored
    return authored, witnessed


def signed_consent(rows: list[tuple[str, str]], witnesses: int = 2) -> bool:
    """Whether a consent's (user, meaning) signatures make it valid (see `consent_state`)."""
    authored, witnessed = _consent_signers(rows)
    return bool(authored) and len(witnessed) >= witnesses


def _consent_columns(rec: Record) -> dict[str, Any]:
    """The participant's columns a consent record sets."""
    return {"consent_event": rec.event_id, "consent_time": rec.data.get("time"),
            "consent_version": rec.data.get("form_version")}  # fmt: skip


# -- screening ------------------------------------------------------------------------


def _eligibility_columns(rec: Record, names: dict[str, str]) -> dict[str, Any]:
    """The participant's screening facts from their eligibility record; `names`: a format-2 version's
    `[eligibility]` field names (`date`, `eligible`, `failed`) where they differ from format 1's."""
    d = rec.data
    eligible = d.get(names.get("eligible", "eligible"))
    return {
        "screening_event": rec.event_id,
        "screening_date": d.get(names.get("date", "date")),
        "sex": d.get("sex"),
        "dob": d.get("dob"),
        "eligible": None if eligible is None else int(bool(eligible)),
        "failed_criteria": json.dumps(d.get(names.get("failed", "failed_criteria")) or []),
    }


@common_dialect
def _participant_rows(store: Store, recs: Sequence[Record]) -> None:
    """The `participants` rows a run of records moves (a batch hook for every form, `records.add_batch_hook`):
    consent creates the participant (their first consent; a later state of that consent, an amendment,
    updates it, another consent leaves it), screening and enrollment records set their facts, and a
    format-2 version's eligibility form named other than `screening` projects the screening facts too.

    That eligibility form is the eligibility form of the active version, or else of an earlier version of
    the same protocol (newest first): a participant enrolled under that version and not amended stays on
    it, and a correction to their eligibility record made after a newer version was loaded must still
    reach their eligibility. Asked of the versions loaded when the record is projected (on a replay, those
    loaded at that point of the log; the `protocols` projection, not the events, so `db rebuild --check`,
    which replays into a copy holding projections only, derives the same rows). A run loads no version (a
    load writes `protocols`, which runs this hook first): each form's names are asked once per run.

    One hook for the four, in log order (two hooks writing one table could not keep it): each record's
    writes are folded into its participant's row in Python, the last write of a column winning as it would
    row by row, and written at the run's end by one query for the rows there are and one statement per
    shape of write. A record of another form of format 1, or not of a participant, is passed over.
    """
    moving: list[tuple[str, Record]] = []
    for rec in recs:
        subject = rec.subject or ""
        if rec.form in _OWN_FORMS or (rec.form not in _FORMAT1_FORMS and subject.startswith("participant:")):
            moving.append((subject.removeprefix("participant:"), rec))
    if not moving:
        return
    consent_of = _consent_events(store, list(dict.fromkeys(pid for pid, _rec in moving)))
    created: dict[str, dict[str, Any]] = {}
    changed: dict[str, dict[str, Any]] = {}

    def update(pid: str, columns: dict[str, Any]) -> None:
        """`UPDATE participants SET columns WHERE id = pid`, folded (no row: nothing, as the UPDATE)."""
        if pid in created:
            created[pid].update(columns)
        elif pid in consent_of:
            changed.setdefault(pid, {}).update(columns)

    names_of: dict[str, dict[str, str] | None] = {}
    for pid, rec in moving:
        if rec.form == "consent":
            if pid not in consent_of:
                created[pid] = {"id": pid, "number": _number_of(pid), **_consent_columns(rec)}
                consent_of[pid] = rec.event_id
            elif consent_of[pid] in (None, rec.event_id):
                update(pid, _consent_columns(rec))
                consent_of[pid] = rec.event_id
        elif rec.form == "screening":
            update(pid, _eligibility_columns(rec, {}))
        elif rec.form == "enrollment":
            update(pid, {"enrollment_event": rec.event_id, "enrolled_on": rec.data.get("date")})
        if rec.form in _FORMAT1_FORMS or not (rec.subject or "").startswith("participant:"):
            continue
        if rec.form in names_of:
            names = names_of[rec.form]
        else:
            names = names_of[rec.form] = _eligibility_names_loaded(store, rec.form)
        if names is not None:
            update(pid, _eligibility_columns(rec, names))
    _write_rows(store, created, changed)


_OWN_FORMS = frozenset({"consent", "screening", "enrollment"})
_ASK_AT_ONCE = 500
"""Participants asked for in one query (SQLite's oldest builds take 999 parameters)."""


def _consent_events(store: Store, pids: list[str]) -> dict[str, Any]:
    """Each of `pids` that has a row: their consent event (None if the row has none)."""
    held: dict[str, Any] = {}
    for at in range(0, len(pids), _ASK_AT_ONCE):
        some = pids[at : at + _ASK_AT_ONCE]
        marks = ",".join("?" * len(some))
        for pid, event in store.execute(
            f"SELECT id, consent_event FROM participants WHERE id IN ({marks})", some
        ).fetchall():
            held[str(pid)] = event
    return held


def _write_rows(store: Store, created: dict[str, dict[str, Any]], changed: dict[str, dict[str, Any]]) -> None:
    """The rows a run created, in the order it created them (one statement over the columns any of them
    set; a column none set stays NULL, as when only the consent's were inserted), then the rows it changed,
    one statement per set of columns changed."""
    if created:
        columns = list(dict.fromkeys(c for row in created.values() for c in row))
        store.executemany(
            f"INSERT INTO participants ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [[row.get(c) for c in columns] for row in created.values()],
        )
    shapes: dict[tuple[str, ...], list[list[Any]]] = {}
    for pid, row in changed.items():
        shapes.setdefault(tuple(row), []).append([*row.values(), pid])
    for shape, rows in shapes.items():  # column names from this module's own dicts, never from a record
        store.executemany(
            f"UPDATE participants SET {', '.join(f'{c} = ?' for c in shape)} WHERE id = ?", rows
        )


def _eligibility_names_loaded(store: Store, form: str) -> dict[str, str] | None:
    """`_eligibility_names` of the active version, else of the newest earlier version of its protocol that
    has `form` as its eligibility form; None when none has (or no protocol is loaded)."""
    from .. import protocol as protocols

    try:
        proto = protocols.active(store)
    except Refused:
        return None
    names = _eligibility_names(proto, form)
    if names is None:
        for (version,) in store.execute(
            # rowid: load order (PostgreSQL's twin has a `rowid` identity column)
            "SELECT version FROM protocols WHERE protocol_id = ? AND version != ? ORDER BY rowid DESC",
            (proto.id, proto.version),
        ).fetchall():
            names = _eligibility_names(protocols.loaded_version(store, proto.id, str(version)), form)
            if names is not None:
                break
    return names


def _eligibility_names(proto: Any, form: str) -> dict[str, str] | None:
    """A format-2 version's `[eligibility]` field names when `form` is its eligibility form, else None."""
    el = proto.engine.data.get("eligibility", {}) if proto.engine is not None else {}
    if el.get("form") != form:
        return None
    return {k: str(el[k]) for k in ("date", "eligible", "failed") if k in el}


def _format1_forms() -> frozenset[str]:
    from ..protocol import format1_contract

    return frozenset(format1_contract())


_FORMAT1_FORMS = _format1_forms()  # forms whose projection is their own hook's (never an eligibility form)


# -- enrollment -----------------------------------------------------------------------


def enrolled_in_order(store: Store) -> list[str]:
    return [
        r[0]
        for r in store.execute(
            "SELECT p.id FROM participants p JOIN events e ON e.id = p.enrollment_event ORDER BY e.pos"
        )
    ]


def sentinel_gate(store: Store, sentinels: int, pid: str) -> None:
    """Refuse enrolling past the sentinel(s) until the DSMG said "continue" on each."""
    others = [x for x in enrolled_in_order(store) if x != pid]
    if len(others) < sentinels:
        return
    for s in others[:sentinels]:
        if not safety.decisions(store, participant=s, decision="continue"):
            raise Refused(
                f"sentinel rule: {pid} cannot be enrolled until a DSMG member records a "
                f"'continue' decision on {s}'s safety data"
            )


class SentinelState(TypedDict):
    """The sentinel gate (`sentinel_state`): enrollment past the sentinels waits for a DSMG "continue"."""

    sentinels: list[str]
    """The first participants enrolled, up to the protocol's number of sentinels."""
    waiting_for_dsmg: list[str]
    """Sentinels still without a DSMG "continue" decision about them."""
    open: bool


def sentinel_state(store: Store, sentinels: int) -> SentinelState:
    enrolled = enrolled_in_order(store)
    waiting = [
        s for s in enrolled[:sentinels] if not safety.decisions(store, participant=s, decision="continue")
    ]
    return {
        "sentinels": enrolled[:sentinels],
        "waiting_for_dsmg": waiting,
        "open": len(enrolled) < sentinels or not waiting,
    }


# -- consent first: audit and import -----------------------------------------------------

SEQUENCING = "sequencing"
"""The hold reason of a bundle whose records break the protocol's sequencing."""


def consent_problems(
    store: Store, subjects: Iterable[str] | None = None
) -> tuple[int, list[tuple[str, str]]]:
    """(records checked, [(event id, problem)]): participant records written before a consent
    signed by its doctor and the witnesses its protocol version asks for (`[consent] witnesses`:
    with two, three distinct users), in log order, for `subjects` (every participant if None).

    The services refuse anything else; this finds records that reached the
    log another way (an edited import, a bug). `audit verify` runs it over
    the whole log; sync import over the participants a bundle touches.
    """
    where = "r.subject LIKE 'participant:%'"
    params: tuple[str, ...] = ()
    if subjects is not None:
        wanted = sorted(set(subjects))
        if not wanted:
            return 0, []
        where = f"r.subject IN ({','.join('?' * len(wanted))})"
        params = tuple(wanted)
    rows = store.execute(
        f"SELECT r.subject, r.form, r.event_id, e.pos FROM records r JOIN events e ON e.id = r.event_id"
        f" WHERE {where} ORDER BY e.pos",
        params,
    ).fetchall()
    problems: list[tuple[str, str]] = []
    first_valid = _first_valid_consents(store, where, params) if rows else {}
    for subject, form, event_id, pos in rows:
        if form == "consent":
            continue
        start = first_valid.get(subject)
        if start is None or pos < start:
            pid = subject.removeprefix("participant:")
            problems.append((event_id, f"{pid}: {form} record {event_id} has no signed consent before it"))
    return len(rows), problems


def _first_valid_consents(store: Store, where: str, params: tuple[str, ...]) -> dict[str, int]:
    """subject -> log position of its first consent (in log order) signed by at least 1 + the witnesses
    its protocol version asks for, distinct users; subjects without one are absent.

    Read per call, not per participant: the consents of every subject `where` selects, their
    signatures and each protocol version's witnesses in three reads (signatures 500 consents at a
    time), where one participant at a time cost four statements each — on a PostgreSQL hub four
    round trips per participant a bundle touches (tests/unit/test_consent_prefetch.py holds it to
    the per-participant reading).
    """
    consents = store.execute(
        "SELECT r.subject, r.event_id, e.pos, e.line FROM records r JOIN events e ON e.id = r.event_id"
        f" WHERE {where} AND r.form = 'consent' ORDER BY e.pos",
        params,
    ).fetchall()
    signers: dict[str, set[str]] = {}
    ids = [row[1] for row in consents]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for target, user in store.execute(
            f"SELECT target_event, user_id FROM signatures WHERE target_event IN ({','.join('?' * len(chunk))})",
            tuple(chunk),
        ):
            signers.setdefault(target, set()).add(user)
    witnesses: dict[object, int] = {}
    first: dict[str, int] = {}
    for subject, cid, cpos, line in consents:
        if subject in first:
            continue
        ref = Event.from_line(line).protocol
        key = tuple(sorted(ref.items())) if ref else None
        if key not in witnesses:
            witnesses[key] = _witnesses_under(store, ref)
        if len(signers.get(cid, ())) >= 1 + witnesses[key]:
            first[subject] = cpos
    return first


def _witnesses_under(store: Store, ref: dict[str, str] | None) -> int:
    """The witnesses a consent's protocol version asks for (`[consent] witnesses`; format 1's default 2)."""
    from .. import protocol as protocols

    try:
        return protocols.version(store, ref).consent.witnesses
    except Refused:
        return 2


def _consent_first(store: Store) -> audit.CheckResult:
    """Every participant record was written after a consent signed by three distinct users."""
    checked, problems = consent_problems(store)
    return audit.CheckResult("consent sequencing", checked, [p for _, p in problems])


@common_dialect
def hold_records_before_consent(store: Store, events: Sequence[Event]) -> None:
    """After-ingest hook: a bundle whose records break consent-first is held, not merged.

    What `audit verify` would find later (a record with no consent signed by
    three people before it) is found while the bundle can still be kept
    apart: the hub holds it for the coordinator with the reason and tells
    the ward, as for a fork.
    """
    hold_on_problems(store, events, consent_problems)


ProblemsOf = Callable[[Store, Iterable[str]], tuple[int, list[tuple[str, str]]]]


def hold_on_problems(store: Store, events: Sequence[Event], problems_of: ProblemsOf) -> None:
    """Raise `HoldForCoordinator` (sequencing) if `problems_of` finds any of these events out of order.

    `problems_of(store, participant subjects)` runs on the participants the
    records among `events` touch, after they were ingested; only problems
    with one of these events hold the bundle (older ones were judged when
    they came).
    """
    subjects = {
        e.subject
        for e in events
        if e.type in ("record.submitted", "record.amended")
        and e.subject is not None
        and e.subject.startswith("participant:")
    }
    if not subjects:
        return
    ours = {e.id for e in events}
    _checked, problems = problems_of(store, subjects)
    found = [p for event_id, p in problems if event_id in ours]
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise HoldForCoordinator(
            SEQUENCING,
            f"{found[0]}{more}",
            {"problems": found[:20]},
        )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    # One batch hook for every form (`records.add_batch_hook`): a bundle's or a replay's consents, screening,
    # enrollment and format-2 eligibility records are projected once their run ends, before anything reads
    # or writes `participants` (or loads a version: `protocols`).
    registry.record_batch_hook(_participant_rows, tables=("participants", "protocols"))
    registry.audit_check("consent sequencing", _consent_first)
    registry.after_ingest(
        hold_records_before_consent,
        "record.submitted",
        "record.amended",
        holds="a record before its consent",
    )
