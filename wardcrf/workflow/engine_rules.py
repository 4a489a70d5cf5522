"""The ward's rules for a format-2 version: the protocol's declarations, run by the engine (docs/engine.md,
"Format 2 on a ward").

For a version with a model of its own (`Protocol.engine`), `service.submit`
asks `rule_for(proto, form)` instead of the format-1 rules keyed by form name.
Every form gets, in this order (docs/engine.md, section 4):

1. the field keys the engine runs: `required_when`, `applies_when`, then
   `compute` (after `forms.check` validated types, ranges, choices, ids);
2. the form's `[[rules]]` (`refuse`: the field's problem; `confirm`: needs
   `--confirm --reason`; `deviation`: saved, listed; `query`: saved, a data query opened by `open_queries`);
3. `unique` on the form (`[]`: once per participant; fields: once per value);
4. `[[dose_assessments]]` recorded on the form: one per administration, an
   `after` one only for an administration recorded;
5. what the form is to the engine:
   * `consent` (CONTRACT): the doctor and `[consent] witnesses` sign, as format 1;
   * the `[eligibility]` form: the criteria (`engine.eligibility`) fill
     `eligible` and `failed`, the failed criteria named by code;
   * `enrollment` (CONTRACT): once; not before the eligibility record's date;
     the criteria reassessed on the enrollment day (`reassess_at`); the gates
     before `enroll` (`engine.gates`) in declared order;
   * a regimen's recording form: the administration is placed in the
     participant's schedule (`engine.schedule` over the arm allocated), its
     number, day, due time, timing and prescribed dose computed; a kit once;
     `given_by` a user who may give doses; the `before` dose assessments that
     block; the `after` ones owed by earlier administrations; then the gates
     before `dose:REGIMEN`;
   * `ae` (CONTRACT): format 1's checks of seriousness, grade and dates, and
     `[safety] ae_link` naming an administration recorded.

Refusals are one line in the declaration's words; nothing is saved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import ids, kits, roles, users
from .. import protocol as protocols
from ..clock import zone
from ..engine import eligibility, gates, interpreter, schedule, visits
from ..engine.interpreter import EvalError, Rec, Snapshot
from ..engine.model import Administration, Model
from ..errors import Refused
from ..protocol import Protocol
from ..store import Store
from . import safety
from .base import FormRule, Participant, RuleContext
from .gatefacts import site_facts

if TYPE_CHECKING:
    from ..eventlog import Event
    from .status import AdministrationLine, ParticipantSummary, VisitLine, WorklistItem
from .participants import check_consent

ENROLLMENT, CONSENT, AE = "enrollment", "consent", "ae"


def rule_for(proto: Protocol, form: str) -> FormRule:
    """The rule a format-2 version's form runs under (`service.submit`, `service.amend`)."""
    m = proto.engine
    assert m is not None
    if form == CONSENT:
        return FormRule(action="consent.record", needs_consent=False, check=_consent)
    if form == _eligibility_form(m) or form == ENROLLMENT:
        return FormRule(action="participant.screen", amend_action="participant.screen", check=_checked)
    if form in (str(m.data.get("dsmg", {}).get("form", "")), _review_form(m)):
        return FormRule(action="dsmg.decide", amend_action="dsmg.decide", check=_checked)
    if form in _administration_forms(m):
        return FormRule(action="dose.record", check=_checked)
    return FormRule(check=_checked)


def import_actions(store: Store, event: Event, form: str) -> tuple[str, str] | None:
    """(submit, amend) actions a record of `form` needed where it was made, for sync's check on import
    (`authority.form_actions_of`): under the format-2 version named by the event (loaded here, exactly),
    what `rule_for` requires of a form it declares — an administration form `dose.record`, the
    eligibility form `participant.screen`, the `[dsmg] form` `dsmg.decide`. None for format 1, a
    version not loaded here, or a form the version does not declare (the names decide: the cold
    chain's forms, `signoff`)."""
    ref = event.protocol
    if not ref or form == "signoff":
        return None
    try:
        proto = protocols.loaded_version(store, str(ref.get("id", "")), str(ref.get("version", "")))
    except Refused:
        return None
    m = proto.engine
    if m is None or form not in m.data.get("forms", {}):
        return None
    rule = rule_for(proto, form)
    return rule.action, rule.amend_action


def _review_form(m: Model) -> str:
    """`[safety] dsmg_review`'s form: the DSMG's judgement of a serious AE (its permissions are the DSMG's)."""
    return str((m.data.get("safety", {}).get("dsmg_review") or {}).get("form", ""))


def _eligibility_form(m: Model) -> str:
    return str(m.data.get("eligibility", {}).get("form", ""))


def _administration_forms(m: Model) -> set[str]:
    return {str(a.record.get("form")) for r in m.regimens.values() for a in r.administrations}


# -- the participant's snapshot ---------------------------------------------------------------


def _snapshot(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> tuple[Snapshot, Rec]:
    """The participant's records (the one amended replaced by `v`) with `v` in hand as the record."""
    p = ctx.participant
    fields = m.data.get("forms", {}).get(ctx.form, {}).get("fields", {})
    rec = Rec(ctx.form, interpreter.typed_values(fields, v), ctx.amending or "", 1 << 60)
    records: dict[str, list[Rec]] = {}
    if p is not None:
        for form, recs in eligibility.participant_records(ctx.store, m, p.id).items():
            records[form] = [r for r in recs if r.event_id != ctx.amending]
    records.setdefault(ctx.form, []).append(rec)
    anchors, arm = plan_inputs(ctx.store, m, p, ctx.zone) if p is not None else ({}, None)
    site = ctx.store.scalar("SELECT site FROM site WHERE id = 1")
    snap = Snapshot(
        records=records,
        now=ctx.now,
        zone=zone(ctx.zone),
        anchors=anchors,
        participant={"id": p.id if p else None, "site": None if site is None else str(site), "arm": arm},
        record=rec,
        anchor_day=m.calendar.anchor_day,
    )
    return snap, rec


def plan_inputs(
    store: Store, m: Model, p: Participant | None, site_zone: str
) -> tuple[dict[str, date | datetime | None], str | None]:
    """(anchors, arm) of a participant's schedule: consent, enrollment and randomization as recorded, and the
    arm allocated (open label) — for a blinded allocation the first arm, whose schedule every arm repeats
    (`same_as`); a single-arm trial's only arm."""
    anchors: dict[str, date | datetime | None] = {}
    if p is None:
        return anchors, None
    if p.consent_time:
        anchors["consent"] = datetime.fromisoformat(p.consent_time)
    anchors["enrollment"] = p.enrolled_date
    row = store.one("SELECT arm, kit, ts FROM rand_allocations WHERE participant = ?", (ids.key(p.id),))
    arm: str | None = None
    if row is not None:
        anchors["randomization"] = datetime.fromisoformat(str(row[2]).replace("Z", "+00:00"))
        arm = str(row[0]) if row[0] else (m.arms[0].code if m.arms else None)
    elif len(m.arms) == 1:
        arm = m.arms[0].code
    return anchors, arm


def blinded_kit(store: Store, p: Participant) -> str | None:
    """The kit a blinded list allocated to the participant (the ward never sees their arm), or None."""
    row = store.one(
        "SELECT kit FROM rand_allocations WHERE participant = ? AND arm IS NULL AND kit IS NOT NULL",
        (ids.key(p.id),),
    )
    return str(row[0]) if row else None


# -- every form ---------------------------------------------------------------------------------


def _consent(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    """CONTRACT consent (format 1's rule: the doctor and `[consent] witnesses` sign), then the form's declarations."""
    m = ctx.protocol.engine
    assert m is not None
    out = check_consent(ctx, v)
    if ctx.problems:
        return out
    return {**out, **_declared(ctx, m, v)}


def _checked(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    m = ctx.protocol.engine
    assert m is not None
    computed = _declared(ctx, m, v)
    if ctx.problems:
        return computed
    merged = {**v, **computed}
    if ctx.form == _eligibility_form(m):
        computed.update(_eligibility_record(ctx, m, merged))
    if ctx.form == ENROLLMENT:
        _enrollment(ctx, m, merged)
    if ctx.form in _administration_forms(m) and not ctx.problems:
        computed.update(_administration(ctx, m, merged))
    if ctx.form == AE:
        computed.update(safety.check_ae(ctx, merged) or {})
        computed.update(_sae_clock(m, {**merged, **computed}))
        _ae_link(ctx, m, merged)
    if ctx.form == (safety.check_of(m) or {}).get("form"):  # `[safety] check`, by its declaration
        safety.check_none_alone(ctx, m, merged)
    if ctx.form == _review_form(m):
        safety.check_review(ctx, m, merged)
    return computed


def _declared(ctx: RuleContext, m: Model, v: dict[str, Any]) -> dict[str, Any]:
    """`required_when`, `applies_when`, `compute`, the form's `[[rules]]`, `unique` and dose assessments."""
    fields = m.data.get("forms", {}).get(ctx.form, {}).get("fields", {})
    snap, _rec = _snapshot(ctx, m, v)
    try:
        for name, spec in fields.items():
            blank = v.get(name) in (None, "", [])
            if (
                spec.get("required_when")
                and blank
                and interpreter.truth(str(spec["required_when"]), snap) is True
            ):
                ctx.problem(name, f"required when {spec['required_when']}")
            if (
                spec.get("applies_when")
                and not blank
                and interpreter.truth(str(spec["applies_when"]), snap) is False
            ):
                ctx.problem(name, f"does not apply here (only when {spec['applies_when']}); leave it blank")
        computed: dict[str, Any] = {}
        for name, spec in fields.items():
            if spec.get("compute"):
                computed[name] = _stored(interpreter.value_of(str(spec["compute"]), snap), spec)
        for rule in m.data.get("rules", ()):
            if rule.get("on") != ctx.form or interpreter.truth(str(rule["check"]), snap) is not False:
                continue
            words = interpreter.render(str(rule.get("message") or f"refused by rule {rule['code']}"), snap)
            severity = str(rule.get("severity", "refuse"))
            if severity == "refuse" or (severity == "confirm" and not ctx.confirmed):
                more = "" if severity == "refuse" else " (confirm with --confirm --reason if it is right)"
                ctx.problem(str(rule.get("field") or "_form"), words + more)
            elif severity == "query":  # saved; `open_queries` opens its data query with the record
                ctx.carry.setdefault(QUERIES, []).append(
                    (str(rule["code"]), str(rule.get("field") or "_form"), words)
                )
    except EvalError as exc:
        raise Refused(f"{m.id} {m.version}: form {ctx.form}: {exc}") from None
    if ctx.participant is not None and not ctx.problems:
        _unique(ctx, m, v)
        _assessment(ctx, m, snap)
    return computed


QUESTION_LIMIT = 2000
"""A rule-opened query's question at most (the rendered message; a hub coordinator's are free text)."""
QUERIES = "rule_queries"
"""`RuleContext.carry` key: (code, field, message) of each `query` rule the record fails."""


def open_queries(ctx: RuleContext, saved: Event) -> list[Event]:
    """Open a data query (`query.opened`) for each `[[rules]]` of severity `query` the record just saved
    or amended fails, in the same transaction: on the record (an amendment's: the original record), the
    rule's `field`, the rule's message as the question, raised by `rule:CODE`. Listed and answered as
    the hub's queries are (`wardcrf query list`, `query answer`), closed by a person at the hub.

    A query of the same rule on the same record still open (not closed at the hub) is not opened again:
    an amendment that still fails the rule adds nothing; one that passes it closes nothing either (a
    rule passing is not a person's review: the coordinator closes it, as OpenClinica's data manager
    closes a discrepancy note). Once closed, a later amendment failing the rule again opens a new one.
    """
    fired: list[tuple[str, str, str]] = ctx.carry.get(QUERIES, [])
    if not fired:
        return []
    target = ctx.amending or saved.id
    held = _open_rule_queries(ctx.store, saved.subject, target)
    out: list[Event] = []
    for code, field_name, words in fired:
        if code in held:
            continue
        held.add(code)
        if len(words) > QUESTION_LIMIT:  # a message quoting long text fields: the start, marked as cut
            words = words[: QUESTION_LIMIT - 1] + "…"
        body = {
            "site": ctx.session.ctx.site,
            "target_event": target,
            "field": field_name,
            "question": words,
            "rule": code,
        }
        out.append(ctx.session.append(type="query.opened", subject=saved.subject, body=body).event)
    return out


def _open_rule_queries(store: Store, subject: str | None, target: str) -> set[str]:
    """The rule codes of `query.opened` events on `target` not closed by a `query.closed` (from the log)."""
    opened: dict[str, str] = {}
    for (line,) in store.execute(
        "SELECT line FROM events WHERE type = 'query.opened' AND subject IS ? ORDER BY pos", (subject,)
    ):
        e = json.loads(line)
        if e["body"].get("target_event") == target:
            opened[str(e["id"])] = str(e["body"].get("rule"))
    if not opened:
        return set()
    closed = {
        json.loads(line)["body"].get("query")
        for (line,) in store.execute("SELECT line FROM events WHERE type = 'query.closed'")
    }
    return {code for qid, code in opened.items() if qid not in closed}


def _stored(value: Any, spec: Mapping[str, Any]) -> Any:
    """An interpreter value as a record stores it (numbers with a unit as a quantity)."""
    if isinstance(value, Decimal):
        plain: int | float = int(value) if value == value.to_integral() else float(value)
        return {"value": plain, "unit": spec["unit"]} if spec.get("unit") else plain
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _others(ctx: RuleContext, form: str) -> list[dict[str, Any]]:
    p = ctx.participant
    assert p is not None
    rows = ctx.store.execute(
        "SELECT r.event_id, r.data FROM records r WHERE r.subject = ? AND r.form = ? ORDER BY r.rowid",
        (p.subject, form),
    ).fetchall()
    return [{**json.loads(d), "_event": e} for e, d in rows if e != ctx.amending]


def _unique(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> None:
    spec = m.data.get("forms", {}).get(ctx.form, {}).get("unique")
    if spec is None:
        return
    keys = list(spec.get("fields", ()) if isinstance(spec, Mapping) else spec)
    p = ctx.participant
    assert p is not None
    for other in _others(ctx, ctx.form):
        if all(json.dumps(other.get(k)) == json.dumps(v.get(k)) for k in keys):
            same = f" for {', '.join(f'{k} {v.get(k)}' for k in keys)}" if keys else ""
            raise Refused(
                f"{p.id} already has {'an' if ctx.form[0] in 'aeiou' else 'a'} {ctx.form} record{same} ({other['_event']}); "
                "correct it with `wardcrf amend` instead"
            )


def _assessment(ctx: RuleContext, m: Model, snap: Snapshot) -> None:
    """A dose assessment recorded on this form: one per administration; `after` needs the administration."""
    rec = snap.record
    assert rec is not None
    for a in m.data.get("dose_assessments", ()):
        if a.get("form") != ctx.form or not _matches(a, snap):
            continue
        link = str(a.get("link", ""))
        n = rec.values.get(link)
        if n is None:
            continue
        for other in snap.records.get(ctx.form, ()):
            if other is rec or other.values.get(link) != n:
                continue
            if _matches(a, snap.with_record(other)):
                words = a.get("duplicate") or (
                    f"{a.get('label', a['code'])} of administration {n} are already recorded ({other.event_id}); "
                    "amend that record instead"
                )
                ctx.problem(link, str(words))
                return
        if a.get("when") == "after" and int(n) not in _given_numbers(ctx, m):
            ctx.problem(
                link, f"administration {n} is not recorded as given: {a.get('label', a['code'])} follow it"
            )
        elif a.get("when") == "after":
            _not_before_end(ctx, m, rec, int(n), str(a.get("label", a["code"])))


def _matches(a: Mapping[str, Any], snap: Snapshot) -> bool:
    """Whether the snapshot's record is the dose assessment `a`: its `match`, or any record of its form."""
    return not a.get("match") or interpreter.truth(str(a["match"]), snap) is True


def _not_before_end(ctx: RuleContext, m: Model, rec: Rec, n: int, label: str) -> None:
    """An `after` assessment is taken after its administration ended (or started, with no end recorded)."""
    when = _time_of(m, rec)
    if not isinstance(when, datetime):
        return
    for form in _administration_forms(m):
        roles_ = _roles(m, form)
        for r in _others(ctx, form):
            if r.get(roles_.get("number", "")) != n or r.get(roles_.get("not_given", "")) is True:
                continue
            ended = r.get(roles_.get("end", "")) or r.get(roles_.get("start", ""))
            if ended and when < datetime.fromisoformat(str(ended)):
                fields = m.data["forms"][rec.form]["fields"]
                field_ = next((k for k, f in fields.items() if f.get("type") == "datetime"), "_form")
                ctx.problem(
                    field_,
                    f"{when.isoformat(timespec='minutes')} is before administration {n} ended ({ended}): "
                    f"{label} follow it",
                )


def _given_numbers(ctx: RuleContext, m: Model) -> set[int]:
    out: set[int] = set()
    for form in _administration_forms(m):
        roles_ = _roles(m, form)
        for r in _others(ctx, form):
            if r.get(roles_.get("not_given", "")) is True:
                continue
            n = r.get(roles_.get("number", ""))
            if isinstance(n, int):
                out.add(n)
    return out


# -- eligibility and enrollment -----------------------------------------------------------------


def _eligibility_record(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> dict[str, Any]:
    el = m.data.get("eligibility", {})
    snap, _rec = _snapshot(ctx, m, v)
    on = snap.record.values.get(str(el.get("date", ""))) if snap.record else None
    snap = Snapshot(**{**snap.__dict__, "assessment": on if isinstance(on, date) else None})
    assessed = eligibility.assess(m, snap)
    return {str(el["eligible"]): assessed.eligible, str(el["failed"]): assessed.failed_codes}


def _enrollment(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> None:
    p = ctx.participant
    assert p is not None
    if p.enrollment_event and p.enrollment_event != ctx.amending:
        raise Refused(f"{p.id} is already enrolled (record {p.enrollment_event})")
    day = date.fromisoformat(str(v["date"])) if v.get("date") else None
    if day and p.screening_date and day < date.fromisoformat(p.screening_date):
        ctx.problem("date", f"{day} is before the screening date {p.screening_date}")
        return
    snap, _rec = _snapshot(ctx, m, v)
    facts = _facts(ctx, p)
    gates.require(gates.check(m, snap, "enroll", facts, participant=p.id))
    if day and ENROLLMENT in m.data.get("eligibility", {}).get("reassess_at", ()):
        again = eligibility.assess(m, Snapshot(**{**snap.__dict__, "record": None, "assessment": day}))
        if not again.eligible:
            ctx.problem("date", again.refusal(p.id) + " (criteria must hold on the enrollment day)")


def _facts(ctx: RuleContext, p: Participant) -> gates.SiteFacts:
    from .gatefacts import site_facts

    facts = site_facts(ctx.store, ctx.protocol, p)
    if ctx.amending is not None:  # an amendment corrects what happened: the gates of the day were passed
        return gates.SiteFacts()
    return facts


def require_gates(store: Store, proto: Protocol, pid: str, action: str, at: datetime) -> None:
    """Refuse `action` (`randomize`, ...) for a participant with the first of the protocol's gates before it
    that refuses now, in its words (`randomization.service.allocate` asks before taking an entry)."""
    from .base import get_participant

    m = proto.engine
    p = get_participant(store, pid)
    if m is None or p is None:
        return
    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    anchors, arm = plan_inputs(store, m, p, site_zone)
    snap = Snapshot(
        records=eligibility.participant_records(store, m, p.id),
        now=at,
        zone=zone(site_zone),
        anchors=anchors,
        participant={"id": p.id, "arm": arm},
        anchor_day=m.calendar.anchor_day,
    )
    gates.require(gates.check(m, snap, action, site_facts(store, proto, p), participant=p.id))


# -- administrations ----------------------------------------------------------------------------


def _roles(m: Model, form: str) -> Mapping[str, str]:
    for r in m.regimens.values():
        for a in r.administrations:
            if a.record.get("form") == form:
                return a.record
    return {}


@dataclass(frozen=True)
class Placed:
    regimen: str
    administration: Administration
    slot: schedule.Slot
    timing: str | None


def _given(m: Model, form: str, records: Sequence[Mapping[str, Any]]) -> list[schedule.Given]:
    roles_ = _roles(m, form)
    out: list[schedule.Given] = []
    for r in records:
        when = r.get(roles_.get("start", "")) or r.get(roles_.get("due", ""))
        if not when:
            continue
        out.append(
            schedule.Given(
                datetime.fromisoformat(str(when)),
                not_given=r.get(roles_.get("not_given", "")) is True,
                record=str(r.get("_event") or ""),
            )
        )
    return out


def place(
    m: Model,
    form: str,
    anchors: Mapping[str, date | datetime | None],
    arm: str | None,
    site_zone: str,
    records: Sequence[Mapping[str, Any]],
    new: schedule.Given | None,
    at: datetime,
    facts: Mapping[str, bool],
) -> tuple[list[tuple[str, Administration, list[schedule.SlotState]]], Placed | None]:
    """The states of every slot of the arm's administrations recorded on `form`, with `new` placed
    (`numbering` and `late_until` decide which slot a record fills); the slot `new` filled, if any."""
    plan = schedule.plan(m, anchors, arm=arm, zone=site_zone, conditions=facts)
    givens = sorted(_given(m, form, records) + ([new] if new else []), key=lambda g: g.start)
    out: list[tuple[str, Administration, list[schedule.SlotState]]] = []
    placed: Placed | None = None
    taken = 0
    for regimen, adms in plan.items():
        for adm, slots in adms:
            if adm.record.get("form") != form or not slots:
                continue
            mine = givens[taken : taken + len(slots)]
            rows = schedule.states(adm, slots, mine, at)
            taken += sum(1 for r in rows if r.filled_by is not None)
            out.append((regimen, adm, rows))
            for row in rows:
                if new is not None and row.filled_by is new:
                    placed = Placed(regimen, adm, row.slot, row.timing)
    return out, placed


def _administration(ctx: RuleContext, m: Model, v: dict[str, Any]) -> dict[str, Any]:
    p = ctx.participant
    assert p is not None
    roles_ = _roles(m, ctx.form)
    if not p.enrollment_event:
        raise Refused(f"{p.id} is not enrolled: administrations follow enrollment")
    anchors, arm = plan_inputs(ctx.store, m, p, ctx.zone)
    if arm is None:
        raise Refused(
            f"{p.id} has no allocated arm: randomize first (`wardcrf randomize {p.id}`); "
            f"the schedule of {m.id} depends on the arm"
        )
    out: dict[str, Any] = {}
    if "given_by" in roles_:
        given_by = v.get(roles_["given_by"]) or ctx.session.user
        user = users.get(ctx.store, given_by)
        if user is None or not user["active"]:
            ctx.problem(roles_["given_by"], f"{given_by} is not an active user of this site")
        elif not roles.allowed(user["role"], "dose.record"):
            allowed = ", ".join(r for r in roles.ROLES if roles.allowed(r, "dose.record"))
            ctx.problem(
                roles_["given_by"], f"{given_by} has the role {user['role']}; doses are given by: {allowed}"
            )
        out[roles_["given_by"]] = given_by
    not_given = v.get(roles_.get("not_given", "")) is True
    start_v = v.get(roles_.get("start", ""))
    end_v = v.get(roles_.get("end", ""))
    start = ctx.local(str(start_v)) if start_v else None
    end = ctx.local(str(end_v)) if end_v else None
    if start and end and end < start:
        ctx.problem(
            roles_["end"],
            f"{end.isoformat(timespec='minutes')} is before the start {start.isoformat(timespec='minutes')}",
        )
    kit = v.get(roles_.get("kit", ""))
    first_use = True
    if kit:
        first_use = _kit_rule(ctx, m, roles_["kit"], str(kit), arm)
    if ctx.problems:
        return out
    snap, _rec = _snapshot(ctx, m, v)
    from ..engine import due

    facts = due.conditions(m, Snapshot(**{**snap.__dict__, "record": None}), arm)
    others = _others(ctx, ctx.form)
    if not_given:
        rows, _ = place(m, ctx.form, anchors, arm, ctx.zone, others, None, ctx.now, facts)
        slot_row = next(
            (
                (reg, adm, r)
                for reg, adm, rs in rows
                for r in rs
                if r.filled_by is None and r.slot.opens <= ctx.now
            ),
            None,
        )
        if slot_row is None:
            raise Refused(f"{p.id} has no administration due or past to record as not given")
        regimen, adm, row = slot_row
        placed = Placed(regimen, adm, row.slot, None)
    else:
        if start is None:
            return out
        new = schedule.Given(start, record="(this record)")
        _rows, found = place(m, ctx.form, anchors, arm, ctx.zone, others, new, ctx.now, facts)
        if found is None:
            raise Refused(
                f"{start.isoformat(timespec='minutes')}: no administration of {p.id}'s schedule takes a record "
                "then (before the first, after the course, or past the late limit)"
            )
        placed = found
        if ctx.amending is None:
            _spacing(ctx, m, placed, start, roles_)  # a second one that day is named as such first
        if not _not_days_early(ctx, placed, start, roles_["start"], snap):
            return out
    s = placed.slot
    local = zone(m.calendar.zone or ctx.zone)
    due_at = (s.due or s.opens).astimezone(local)
    computed = {
        "number": s.number,
        "day": s.day,
        "due": due_at.isoformat(timespec="seconds"),
        "window": placed.timing,
    }
    for role, value in computed.items():
        if role in roles_ and value is not None:
            out[roles_[role]] = value
    if "prescribed" in roles_:
        out[roles_["prescribed"]] = _prescribed(m, placed.administration, snap)
    administration = {
        "number": Decimal(s.number),
        "regimen": placed.regimen,
        "product": placed.administration.product,
        "kit": str(kit) if kit else None,
        "start": start,
        "kit_first_use": first_use,
    }
    if not not_given and ctx.amending is None:
        _before_assessments(ctx, m, snap, placed, start)
        _after_owed(ctx, m, snap, s.number)
        if not ctx.problems:
            facts_ = _facts(ctx, p)
            gates.require(
                gates.check(
                    m, snap, f"dose:{placed.regimen}", facts_, participant=p.id, administration=administration
                )
            )
    return out


def _kit_rule(ctx: RuleContext, m: Model, field_: str, kit: str, arm: str | None) -> bool:
    """A kit's use as its product says (`kit.use`): `administration`, once; `course`, one participant's
    course (never another participant's). Returns whether this is the kit's first administration."""
    p = ctx.participant
    assert p is not None
    uses = {
        str(x["code"]): str((x.get("kit") or {}).get("use", "administration"))
        for x in m.data.get("products", ())
    }
    products = {a.product for r in m.regimens_of(arm) for a in r.administrations}
    course = bool(products) and all(uses.get(x) == "course" for x in products)
    key = ids.key(kit)
    first = True
    for use in kits.administration_uses(ctx.store, key, exclude=ctx.amending):  # every version's records
        who, event_id = use.participant, use.event_id
        if who != p.id:
            ctx.problem(
                field_, f"kit {key} belongs to {who} ({event_id}): a kit is never given to two participants"
            )
            return False
        if not course:
            ctx.problem(field_, f"kit {key} was already used ({event_id}): one kit, one administration")
            return False
        first = False
    return first


def _not_days_early(ctx: RuleContext, placed: Placed, start: datetime, field_: str, snap: Snapshot) -> bool:
    """Whether the start is not before the earliest its slot takes (`schedule.earliest_start`); else the
    problem, naming the slot and its window. One rule for the CLI, the administration wizard and a
    correction: the schedule would file such a start as the slot's early administration, days ahead."""
    s, local = placed.slot, zone(ctx.zone)
    earliest = schedule.earliest_start(s, local)
    if start >= earliest:
        return True
    adm = placed.administration
    what = interpreter.render(adm.worklist, snap, {"n": str(s.number)}) if adm.worklist else ""
    ctx.problem(
        field_,
        f"{start.astimezone(local).isoformat(timespec='minutes')} is before "
        f"{what or f'administration {s.number}'} (window {s.opens.astimezone(local).isoformat(timespec='minutes')}"
        f" to {s.closes.astimezone(local).isoformat(timespec='minutes')}): the earliest start it takes is "
        f"{earliest.astimezone(local).isoformat(timespec='minutes')}",
    )
    return False


def _prescribed(m: Model, adm: Administration, snap: Snapshot) -> Any:
    weight = None
    if adm.dose.weight:
        found = interpreter.value_of(adm.dose.weight, Snapshot(**{**snap.__dict__, "record": None}))
        weight = found if isinstance(found, Decimal) else None
    try:
        value = adm.dose.prescribe(weight)
    except Refused:
        return None  # no weight recorded: the form's required fields and the criteria say so
    plain: int | float = int(value) if value == value.to_integral() else float(value)
    return {"value": plain, "unit": adm.dose.unit}


def _before_assessments(
    ctx: RuleContext, m: Model, snap: Snapshot, placed: Placed, start: datetime | None
) -> None:
    for a in m.data.get("dose_assessments", ()):
        if a.get("when") != "before" or not a.get("blocks"):
            continue
        if a.get("regimens") and placed.regimen not in a["regimens"]:
            continue
        link = str(a.get("link", ""))
        found = [
            r
            for r in snap.records.get(str(a["form"]), ())
            if r.values.get(link) == Decimal(placed.slot.number) and _matches(a, snap.with_record(r))
        ]
        if not found:
            raise Refused(
                f"{a.get('label', a['code'])} for administration {placed.slot.number} are not recorded: "
                f"record the {a['form']} form ({a.get('match')}, {link}={placed.slot.number}) first"
            )
        when = _time_of(m, found[-1])
        if start is not None and isinstance(when, datetime) and when > start:
            raise Refused(
                f"{a.get('label', a['code'])} for administration {placed.slot.number} were recorded at "
                f"{when.astimezone(start.tzinfo).isoformat(timespec='minutes')}, after the start "
                f"{start.isoformat(timespec='minutes')}: they come before it"
            )


def _time_of(m: Model, rec: Rec) -> Any:
    """When an assessment record was taken: its form's first date-time field."""
    fields = m.data.get("forms", {}).get(rec.form, {}).get("fields", {})
    name = next((n for n, f in fields.items() if f.get("type") == "datetime"), None)
    return rec.values.get(name) if name else None


def _spacing(ctx: RuleContext, m: Model, placed: Placed, start: datetime, roles_: Mapping[str, str]) -> None:
    """`min_spacing` and `per_day` of the administration: refused when a given record is too close, or the
    local day already holds `per_day` of them."""
    spec = placed.administration.schedule
    local = zone(m.calendar.zone or ctx.zone)
    same_day = 0
    for other in _others(ctx, ctx.form):
        if other.get(roles_.get("not_given", "")) is True or not other.get(roles_.get("start", "")):
            continue
        t = datetime.fromisoformat(str(other[roles_["start"]]))
        if spec.min_spacing and abs(t - start) < spec.min_spacing:
            raise Refused(
                f"{start.isoformat(timespec='minutes')} is closer than {_hours(spec.min_spacing)} to the "
                f"administration of {t.astimezone(start.tzinfo).isoformat(timespec='minutes')} "
                f"({other['_event']}); the protocol's least spacing is {_hours(spec.min_spacing)}"
            )
        same_day += t.astimezone(local).date() == start.astimezone(local).date()
    if same_day + 1 > spec.per_day:
        raise Refused(
            f"{start.astimezone(local).date()} already holds {same_day} administration(s) of "
            f"{placed.regimen}: the protocol allows {spec.per_day} a day"
        )


def _hours(d: Any) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def _after_owed(ctx: RuleContext, m: Model, snap: Snapshot, number: int) -> None:
    blocking = {
        str(a["code"]): a
        for a in m.data.get("dose_assessments", ())
        if a.get("when") == "after" and a.get("blocks")
    }
    owed = [
        (code, n)
        for code, n in gates.owed_after(m, snap, sorted(_given_numbers(ctx, m)))
        if code in blocking and n < number
    ]
    if owed:
        code, n = owed[0]
        raise Refused(
            f"{blocking[code].get('label', code)} of administration {n} are not recorded: "
            f"record them before administration {number}"
        )


def _sae_clock(m: Model, v: Mapping[str, Any]) -> dict[str, Any]:
    """The expedited report's due date by `[safety] sae_clock` (format 1's 7 and 15 days when not declared)."""
    clock = m.data.get("safety", {}).get("sae_clock")
    if not clock or not v.get("report_due") or not v.get("first_known"):
        return {}
    from ..engine.model import duration

    fatal = bool(v.get("death")) or bool(v.get("life_threatening"))
    wait = duration(str(clock["fatal_or_life_threatening" if fatal else "other"]))
    known = date.fromisoformat(str(v["first_known"]))
    return {"report_due": (known + timedelta(days=wait.days)).isoformat()}


def _ae_link(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> None:
    link = m.data.get("safety", {}).get("ae_link")
    n = v.get(str(link)) if link else None
    if n is None:
        return
    if int(n) not in _given_numbers(ctx, m):
        ctx.problem(
            str(link),
            f"administration {n} has not been recorded as given for {ctx.participant.id if ctx.participant else ''}",
        )


# -- what a participant's record says, for `participant show` ---------------------------------------


def summary(store: Store, proto: Protocol, p: Participant, at: datetime) -> ParticipantSummary:
    """`participant show` of a format-2 participant: status, arm, each administration and its slot, what is
    next, and the deviations the protocol names (`[[deviations]]`: early, late, missed, wrong dose, declared)."""
    from .participants import consent_state

    m = proto.engine
    assert m is not None
    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    consent_ok, consent_why = consent_state(store, p, proto.consent.witnesses)
    anchors, arm = plan_inputs(store, m, p, site_zone)
    kit = blinded_kit(store, p)  # a blinded allocation: the schedule is every arm's, the product is not shown
    records = eligibility.participant_records(store, m, p.id)
    snap = Snapshot(
        records=records, now=at, zone=zone(site_zone), anchors=anchors, anchor_day=m.calendar.anchor_day
    )
    administrations: list[AdministrationLine] = []
    deviations: list[schedule.Deviation] = []
    next_item: schedule.NextDose | None = None
    declared = list(m.data.get("deviations", ()))
    kinds = {str(d.get("kind")): d for d in declared if d.get("kind")}
    planned = 0
    ended = _ended(m, records, zone(site_zone))
    cumulative: dict[str, float] = {}
    owed: list[int] = []
    given_times: dict[int, tuple[datetime, datetime]] = {}
    placed_all: list[tuple[str, Administration, list[schedule.SlotState]]] = []
    if arm is not None and p.enrollment_event:
        from ..engine import due

        facts = due.conditions(m, snap, arm)
        for form in sorted(_administration_forms(m)):
            roles_ = _roles(m, form)
            stored = [
                {**json.loads(d), "_event": e}
                for e, d in store.execute(
                    "SELECT r.event_id, r.data FROM records r"
                    " WHERE r.subject = ? AND r.form = ? ORDER BY r.rowid",
                    (p.subject, form),
                ).fetchall()
            ]
            by_event = {str(r["_event"]): r for r in stored}
            rows, _ = place(m, form, anchors, arm, site_zone, stored, None, at, facts)
            if ended.treatment_end is not None:  # after the end of treatment nothing more is due
                rows = [
                    (
                        reg,
                        adm,
                        [st for st in states if st.filled_by is not None or not ended.after(st.slot.opens)],
                    )
                    for reg, adm, states in rows
                ]
            planned += sum(len(states) for _r, _a, states in rows)  # the administrations that apply to them
            placed_all.extend(rows)
            for regimen, adm, states in rows:
                for st in states:
                    s = st.slot
                    rec = by_event.get(st.filled_by.record or "") if st.filled_by else None
                    item: AdministrationLine = {
                        "number": s.number,
                        "regimen": "blinded" if kit else regimen,
                        "administration": adm.code,
                        "product": "blinded" if kit else adm.product,
                        "day": s.day,
                        "due": (s.due or s.opens).astimezone(zone(site_zone)).isoformat(timespec="minutes"),
                        "state": st.state,
                        "timing": st.timing,
                        "event": rec["_event"] if rec else None,
                    }
                    administrations.append(item)
                    if st.timing in ("early", "late") and st.timing in kinds:
                        deviations.append(_deviation(kinds[st.timing], item))
                    if (st.state in (schedule.MISSED, schedule.NOT_GIVEN)) and "missed" in kinds:
                        deviations.append(_deviation(kinds["missed"], item))
                    if rec is not None and "wrong_dose" in kinds and st.state == schedule.GIVEN:
                        wrong = _wrong_dose(kinds["wrong_dose"], rec, roles_)
                        if wrong:
                            deviations.append({**_deviation(kinds["wrong_dose"], item), "detail": wrong})
                    if next_item is None and st.state not in (
                        schedule.GIVEN,
                        schedule.NOT_GIVEN,
                        schedule.MISSED,
                    ):
                        local = zone(site_zone)
                        next_item = {
                            "dose": s.number,
                            "what": interpreter.render(adm.worklist, snap, {"n": str(s.number)})
                            if adm.worklist
                            else f"administration {s.number}",
                            "due": item["due"],
                            "window": [
                                s.opens.astimezone(local).isoformat(timespec="minutes"),
                                s.closes.astimezone(local).isoformat(timespec="minutes"),
                            ],
                            "state": st.state,
                            "regimen": "blinded" if kit else regimen,
                        }
                    if rec is not None and st.state == schedule.GIVEN and rec.get(roles_.get("start", "")):
                        began = datetime.fromisoformat(str(rec[roles_["start"]]))
                        stopped = rec.get(roles_.get("end", ""))
                        given_times[s.number] = (
                            began,
                            datetime.fromisoformat(str(stopped)) if stopped else began,
                        )
                    if rec is not None and st.state == schedule.GIVEN:
                        dose_v = rec.get(roles_.get("dose", ""))
                        if isinstance(dose_v, dict) and isinstance(dose_v.get("value"), int | float):
                            unit = str(dose_v.get("unit") or adm.dose.unit)
                            cumulative[unit] = cumulative.get(unit, 0.0) + float(dose_v["value"])
            for d in declared:
                if d.get("on") != form or not d.get("when"):
                    continue
                for r in records.get(form, ()):
                    if interpreter.truth(str(d["when"]), snap.with_record(r)) is True:
                        deviations.append(
                            {
                                "kind": _label(d.get("label", d["code"])),
                                "code": d["code"],
                                "event": r.event_id,
                            }
                        )
        if "assessment_window" in kinds:
            deviations.extend(_assessment_windows(m, snap, kinds["assessment_window"], given_times))
        given_numbers = sorted(a["number"] for a in administrations if a["state"] == schedule.GIVEN)
        owed = sorted({n for _code, n in gates.owed_after(m, snap, given_numbers)})
        if p.eligible is False and "ineligible_after_enrollment" in kinds:
            d = kinds["ineligible_after_enrollment"]
            deviations.append(
                {"kind": _label(d.get("label", d["code"])), "code": d["code"], "failed": p.failed_criteria}
            )
        if next_item is not None:
            facts_ = site_facts(store, proto, p)
            held = gates.holds(
                m, replace(snap, participant={"id": p.id, "arm": arm}), facts_, participant=p.id
            )
            if held:
                next_item = {**next_item, "state": schedule.HELD, "hold": "; ".join(held)}
    for rule in m.data.get("rules", ()):  # severity `deviation`: saved, and listed here by the rule's code
        if rule.get("severity") != "deviation":
            continue
        for r in records.get(str(rule.get("on")), ()):
            if interpreter.truth(str(rule["check"]), snap.with_record(r)) is False:
                words = interpreter.render(str(rule.get("message") or rule["code"]), snap.with_record(r))
                deviations.append({"kind": words, "code": rule["code"], "event": r.event_id})
    given = sum(1 for a in administrations if a["state"] == schedule.GIVEN)
    visit_lines = _visit_lines(m, placed_all, records, snap, at, zone(site_zone), arm)
    if p.enrollment_event and not (ended.study_over and ended.treatment_end is None):
        visit_lines += _calendar_lines(m, placed_all, records, snap, at, zone(site_zone), arm, ended)
    if not consent_ok or p.eligible is None:
        status = "consented"
    elif not p.eligible:
        status = "enrolled, no longer eligible" if p.enrollment_event else "screen failure"
    elif not p.enrollment_event:
        status = "eligible, not enrolled"
    elif ended.died:
        status = "died"
    elif ended.study_over:
        status = f"off study ({ended.status})" if ended.status else "off study"
    elif arm is None:
        status = "enrolled, not randomized"
    elif ended.treatment_end is not None:
        status = "treatment ended"
    else:
        status = "enrolled" if given == 0 else ("in treatment" if given < planned else "treatment complete")
    aes = store.rows("SELECT * FROM adverse_events WHERE participant = ? ORDER BY onset, event_id", (p.id,))
    out: ParticipantSummary = {
        "id": p.id,
        "protocol": {"id": m.id, "version": m.version},
        "status": status,
        "sex": p.sex,
        "consent": {
            "valid": consent_ok,
            "detail": consent_why,
            "event": p.consent_event,
            "time": p.consent_time,
            "version": p.consent_version,
        },
        "eligible": p.eligible,
        "failed_criteria": p.failed_criteria,
        "enrolled_on": p.enrolled_on,
        "arm": None if kit else arm,
        "doses_given": given,
        "doses_planned": planned,
        "doses": [],  # format 1's dose lines; a format-2 record's are its `administrations`
        "administrations": administrations,
        "next_dose": next_item,
        "deviations": deviations,
        "post_dose_vitals_due": owed,
        "cumulative_dose": [{"value": v, "unit": u} for u, v in cumulative.items()],
        "visits": visit_lines,
        # the ward list's key (format 1's name): the cumulative dose in the regimen's one unit, 0 for several
        "cumulative_particles": next(iter(cumulative.values())) if len(cumulative) == 1 else 0.0,
        "age": _age(m, p, records),
        "open_aes": safety.open_ae_lines(store, aes),
        "ae_expected": safety.expected_aes(store, p.id, proto),  # `[safety] check` with `expect_ae`
        "signoff": safety.signoff_state(store, p.id),
        "adverse_events": len(aes),
        "dsmg_hold": safety.hold(store),
    }
    if kit:
        out["kit"] = kit  # blinded: the kit, never the arm
    return out


def _visit_lines(
    m: Model,
    placed: Sequence[tuple[str, Administration, Sequence[schedule.SlotState]]],
    records: Mapping[str, Sequence[Rec]],
    snap: Snapshot,
    at: datetime,
    tz: Any,
    arm: str | None,
) -> list[VisitLine]:
    """Each occurrence of the visits that repeat per administration (`engine.visits`), with the forms owed."""
    found = visits.occurrences(m, placed, tz, arm=arm)
    if not found:
        return []
    owed: dict[tuple[str, int], list[visits.Owed]] = {}
    for o in visits.owed(m, found, records, snap, at, tz):
        owed.setdefault((o.occurrence.visit.code, o.occurrence.n), []).append(o)
    out: list[VisitLine] = []
    for occ in found:
        mine = owed.get((occ.visit.code, occ.n), [])
        when = occ.at or occ.due or occ.opens
        state = occ.state if occ.at is None else mine[0].state if mine else "done"
        out.append(
            {
                "visit": occ.visit.code,
                "number": occ.n,
                "visitnum": float(occ.num),
                "name": occ.name,
                "due": when.astimezone(tz).isoformat(timespec="minutes")
                if occ.at or occ.due
                else occ.local_date.isoformat(),
                "state": state,
                "event": occ.record,
                "owed": [o.form for o in mine],
            }
        )
    return out


def _calendar_lines(
    m: Model,
    placed: Sequence[tuple[str, Administration, Sequence[schedule.SlotState]]],
    records: Mapping[str, Sequence[Rec]],
    snap: Snapshot,
    at: datetime,
    tz: Any,
    arm: str | None,
    ended: Ended,
) -> list[VisitLine]:
    """Each occurrence of the calendar visits (`anchor` + `day` + `window`; `engine.visits.dated`) on the
    ward's list, with the required forms owed. After the end of the study nothing that opens later is.
    A visit counted from `first_dose` is dated from the first administration given (`visits.first_dose`,
    the anchor SDTM's SV counts from too)."""
    anchors = {**snap.anchors, "first_dose": visits.first_dose(m, records)}
    found = visits.dated(m, anchors, tz, arm=arm)
    if ended.study_over and ended.treatment_end is not None:
        end = ended.treatment_end
        found = [occ for occ in found if occ.opens <= end]
    if not found:
        return []
    per = visits.occurrences(m, placed, tz, arm=arm)
    taken: set[str] = set()
    if per:  # records a visit per administration takes are not a calendar visit's
        for recs in records.values():
            for rec in recs:
                when = rec.when()
                local = when.astimezone(tz).date() if isinstance(when, datetime) else when
                if visits.place(m, per, rec, local, snap) is not None:
                    taken.add(rec.event_id)
    return [
        {
            "visit": d.occurrence.visit.code,
            "number": d.occurrence.n,
            "visitnum": float(d.occurrence.num),
            "name": d.occurrence.name,
            "due": d.occurrence.target.isoformat(),
            "state": d.state,
            "event": None,
            "owed": list(d.owed),
            "window": [d.occurrence.opens.isoformat(), d.occurrence.closes.isoformat()],
        }
        for d in visits.dated_owed(found, records, snap, at, tz, taken=frozenset(taken))
    ]


def queue_row(store: Store, proto: Protocol, p: Participant) -> tuple[int | None, datetime | None, int]:
    """(number, due time, after-assessments owed) of the participant's first administration without a
    record, for the ward queue: from the projections alone, whatever the clock (`wardqueue`)."""
    from ..engine import due

    m = proto.engine
    assert m is not None
    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    anchors, arm = plan_inputs(store, m, p, site_zone)
    if arm is None or not p.enrollment_event:
        return None, None, 0
    records = eligibility.participant_records(store, m, p.id)
    snap = Snapshot(records=records, now=datetime.now(UTC), zone=zone(site_zone), anchors=anchors)
    facts = due.conditions(m, snap, arm)
    ended = _ended(m, records, zone(site_zone))
    first: schedule.Slot | None = None
    given: list[int] = []
    for form in sorted(_administration_forms(m)):
        stored = [
            {**json.loads(d), "_event": e}
            for e, d in store.execute(
                "SELECT r.event_id, r.data FROM records r"
                " WHERE r.subject = ? AND r.form = ? ORDER BY r.rowid",
                (p.subject, form),
            ).fetchall()
        ]
        rows, _ = place(m, form, anchors, arm, site_zone, stored, None, _END_OF_TIME, facts)
        for _regimen, _adm, states in rows:
            for st in states:
                if st.filled_by is None and ended.after(st.slot.opens):
                    continue  # after the end of treatment: not due
                if st.filled_by is None and (first is None or st.slot.opens < first.opens):
                    first = st.slot
                elif st.filled_by is not None and not st.filled_by.not_given:
                    given.append(st.slot.number)
    owed = len(gates.owed_after(m, snap, sorted(given)))
    return (first.number, first.due or first.opens, owed) if first else (None, None, owed)


_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def _age(m: Model, p: Participant, records: Mapping[str, Sequence[Rec]]) -> int | None:
    """Age in years: from the date of birth at the eligibility record's date, else the age it records."""
    if p.dob_date and p.screening_date:
        from .participants import age_on

        return age_on(p.dob_date, date.fromisoformat(p.screening_date))
    held = records.get(_eligibility_form(m), ())
    found = held[-1].values.get("age") if held else None
    return int(found) if isinstance(found, Decimal) else None


def today_items(store: Store, proto: Protocol, at: datetime) -> list[WorklistItem]:
    """`wardcrf today`'s participant items on a format-2 ward: each participant's next administration
    (its worklist words), the `before` assessments it owes, and the `after` assessments owed."""
    from .amendments import protocols_of
    from .base import participant_from_row

    assert proto.engine is not None
    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    local_today = at.astimezone(zone(site_zone)).date()
    items: list[WorklistItem] = []
    people = [
        participant_from_row(row)
        for row in store.rows("SELECT * FROM participants WHERE enrollment_event IS NOT NULL ORDER BY number")
    ]
    theirs = protocols_of(store, people)  # each on their own version (amendments)
    for p in people:
        pproto = theirs.get(p.id, proto)
        if pproto.engine is None:
            continue  # a format-1 version's participant: `status.today` lists them
        m = pproto.engine
        s = summary(store, pproto, p, at)
        nd = s["next_dose"]
        if nd and (
            nd["state"] in ("overdue", "window closing", "due now", "held")
            or datetime.fromisoformat(nd["due"]).date() == local_today
        ):
            item: WorklistItem = {
                "participant": p.id,
                "what": nd["what"],
                "due": nd["due"],
                "state": nd["state"],
            }
            if nd.get("hold"):
                item["hold"] = nd["hold"]
            items.append(item)
            if nd["state"] != "held":
                items.extend(_before_owed(store, m, p, nd, at, site_zone))
        for v in s.get(
            "visits", ()
        ):  # the forms a per-administration visit owes: due, overdue, or missed today
            shown = [d for d in visits.declared(m) if d.code == v["visit"]]
            if not v["owed"] or (shown and not shown[0].worklist):
                continue
            if v["state"] in ("due now", "window closing", "overdue", "held") or (
                v["state"] == "missed" and v["due"][:10] == local_today.isoformat()
            ):
                for form in v["owed"]:
                    items.append(
                        {
                            "participant": p.id,
                            "what": f"{form} ({v['name']})",
                            "due": v["due"],
                            "state": v["state"],
                        }
                    )
        labels = {str(a["code"]): str(a.get("label", a["code"])) for a in m.data.get("dose_assessments", ())}
        recs = eligibility.participant_records(store, m, p.id)
        snap = Snapshot(records=recs, now=at, zone=zone(site_zone))
        given = sorted(a["number"] for a in s["administrations"] if a["state"] == schedule.GIVEN)
        for code, n in gates.owed_after(m, snap, given):
            items.append(
                {
                    "participant": p.id,
                    "what": f"{labels[code]} (administration {n})",
                    "due": None,
                    "state": "overdue",
                }
            )
        for missing in s["ae_expected"]:  # `[safety] check` with `expect_ae`: the AE form owed
            items.append(
                {
                    "participant": p.id,
                    "what": f"adverse event form for {missing['event']} reported after administration "
                    f"{missing['dose']}",
                    "due": missing["time"],
                    "state": "overdue",
                }
            )
    return items


def _before_owed(
    store: Store, m: Model, p: Participant, nd: schedule.NextDose, at: datetime, site_zone: str
) -> list[WorklistItem]:
    """The `before` assessments the next administration `nd` still needs, as worklist items."""
    recs = eligibility.participant_records(store, m, p.id)
    snap = Snapshot(records=recs, now=at, zone=zone(site_zone))
    out: list[WorklistItem] = []
    for a in m.data.get("dose_assessments", ()):
        regimen = nd.get("regimen")  # "blinded": the twins' assessments are every arm's
        if a.get("when") != "before" or (
            a.get("regimens") and regimen != "blinded" and regimen not in a["regimens"]
        ):
            continue
        link = str(a.get("link", ""))
        done = any(
            r.values.get(link) == Decimal(int(nd["dose"])) and _matches(a, snap.with_record(r))
            for r in recs.get(str(a["form"]), ())
        )
        if not done:
            out.append(
                {
                    "participant": p.id,
                    "what": f"{a.get('label', a['code'])} ({nd['what']})",
                    "due": nd["due"],
                    "state": nd["state"],
                }
            )
    return out


@dataclass(frozen=True)
class Ended:
    """What `[disposition]` records say of a participant: treatment or study over, and death."""

    treatment_end: date | None = None  # the end of treatment (or of the study, or death): nothing due after
    study_over: bool = False
    died: bool = False
    status: str | None = None  # the disposition's status code at the end of study
    tz: Any = None  # the ward's zone: the end is a local date

    def after(self, moment: datetime) -> bool:
        if self.treatment_end is None:
            return False
        local = moment.astimezone(self.tz) if self.tz is not None else moment
        return local.date() > self.treatment_end


def _ended(m: Model, records: Mapping[str, Sequence[Rec]], tz: Any) -> Ended:
    disp = m.data.get("disposition", {})
    if not disp:
        return Ended()
    stage, status_f, date_f = (str(disp.get(k, "")) for k in ("stage", "status", "date"))
    end: date | None = None
    study_over = died = False
    status: str | None = None
    for rec in records.get(str(disp.get("form", "")), ()):
        when = rec.values.get(date_f)
        day = (
            when.astimezone(tz).date()
            if isinstance(when, datetime)
            else when
            if isinstance(when, date)
            else None
        )
        code = rec.values.get(stage)
        if code == disp.get("end_of_study"):
            study_over, status = True, str(rec.values.get(status_f) or "") or None
        if rec.values.get(status_f) == disp.get("death"):
            died = True
        if code in (disp.get("end_of_treatment"), disp.get("end_of_study")) or died:
            end = day if end is None or (day is not None and day < end) else end
    return Ended(end, study_over or died, died, status, tz)


def _assessment_windows(
    m: Model, snap: Snapshot, d: Mapping[str, Any], given: Mapping[int, tuple[datetime, datetime]]
) -> list[schedule.Deviation]:
    """Deviation kind `assessment_window`: a dose assessment taken longer than its `within` before the
    administration's start (`before`) or after its end (`after`)."""
    from ..engine.model import duration

    out: list[schedule.Deviation] = []
    for a in m.data.get("dose_assessments", ()):
        if not a.get("within") or a.get("when") not in ("before", "after"):
            continue
        limit = duration(str(a["within"]))
        link = str(a.get("link", ""))
        for rec in snap.records.get(str(a["form"]), ()):
            n = rec.values.get(link)
            taken = _time_of(m, rec)
            if n is None or not isinstance(taken, datetime) or int(n) not in given:
                continue
            if not _matches(a, snap.with_record(rec)):
                continue
            start, end = given[int(n)]
            gap = start - taken if a["when"] == "before" else taken - end
            if gap > limit:
                out.append(
                    {
                        "kind": _label(d.get("label", d["code"])),
                        "code": d["code"],
                        "number": int(n),
                        "event": rec.event_id,
                        "detail": f"{a.get('label', a['code'])} {_hours(gap)} {a['when']} the administration "
                        f"(within {_hours(limit)})",
                    }
                )
    return out


def _label(text: Any) -> str:
    if isinstance(text, Mapping):
        return str(text.get("en") or next(iter(text.values()), ""))
    return str(text)


def _deviation(d: Mapping[str, Any], item: AdministrationLine) -> schedule.Deviation:
    return {
        "kind": _label(d.get("label", d["code"])),
        "code": d["code"],
        "number": item["number"],
        "event": item["event"],
    }


def _wrong_dose(d: Mapping[str, Any], rec: Mapping[str, Any], roles_: Mapping[str, str]) -> str | None:
    given, prescribed = rec.get(roles_.get("dose", "")), rec.get(roles_.get("prescribed", ""))
    g = given.get("value") if isinstance(given, dict) else given
    p_ = prescribed.get("value") if isinstance(prescribed, dict) else prescribed
    if not isinstance(g, int | float) or not isinstance(p_, int | float) or not p_:
        return None
    tolerance = float(str(d.get("tolerance", "0%")).rstrip("%")) / 100
    if abs(g - p_) > tolerance * p_:
        return f"{g} given, {p_} prescribed"
    return None
