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

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import ids, kits, record_values, roles, users
from .. import protocol as protocols
from ..clock import zone
from ..engine import eligibility, gates, interpreter, schedule, visits
from ..engine.interpreter import EvalError, Rec, Snapshot
from ..engine.model import Administration, Model
from ..errors import Refused, UsageError
from ..protocol import Protocol
from ..sqlstore import common_dialect
from ..store import Store
from . import safety
from .base import FormRule, Participant, RuleContext
from .gatefacts import site_facts

if TYPE_CHECKING:
    from ..eventlog import Event
    from .declared import CumulativeDose
    from .status import AdministrationLine, DoseLine, ParticipantSummary, VisitLine, WorklistItem
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


@common_dialect
def import_actions(
    store: Store, event: Event, form: str, arriving: Mapping[tuple[str, str], str] | None = None
) -> tuple[str, str] | None:
    """(submit, amend) actions a record of `form` needed where it was made, for sync's check on import
    (`authority.form_actions_of`): under the format-2 version named by the event (loaded here, exactly,
    or loaded by an earlier event of the same bundle, `arriving`: a ward's first bundle loads its site's
    first version and records under it), what `rule_for` requires of a form it declares — an
    administration form `dose.record`, the eligibility form `participant.screen`, the `[dsmg] form`
    `dsmg.decide`. A format-1 version the engine cannot run (stored before it ran format 1) has, by
    format 1's contract, the forms of the re-encoding every format-1 version runs on: that one's; so
    has a record whose version is neither loaded here nor in the bundle (the first trial's form names
    decide, as format 1's did). None for a form that declares none of them (the cold chain's forms,
    `signoff`: their own names decide)."""
    if form == "signoff":
        return None
    proto = version_of_import(store, event, arriving)
    if proto is None or proto.engine is None:
        proto = _format1_base()
    m = proto.engine if proto is not None else None
    if proto is None or m is None or form not in m.data.get("forms", {}):
        return None
    rule = rule_for(proto, form)
    return rule.action, rule.amend_action


def rule_by_name(form: str) -> FormRule | None:
    """The rule of one of the first trial's forms as the engine runs it (`base.rule_for` by name), or None."""
    base = _format1_base()
    return rule_for(base, form) if form in base.forms else None


@functools.cache
def _format1_base() -> Protocol:
    """The ward's `Protocol` of the shipped re-encoding every format-1 version runs on (`reencode_v1`)."""
    from ..engine import reencode_v1, ward

    return ward.of(reencode_v1.base_model())


@common_dialect
def version_of_import(
    store: Store, event: Event, arriving: Mapping[tuple[str, str], str] | None = None
) -> protocols.Protocol | None:
    """The version an imported record event was captured under: loaded here (exactly), or loaded by an
    earlier event of the same bundle (`arriving`); None when it names none, or neither holds it."""
    ref = event.protocol
    if not ref:
        return None
    key = (str(ref.get("id", "")), str(ref.get("version", "")))

    def loaded() -> protocols.Protocol | None:
        return protocols.loaded_version(store, *key) if protocols.is_loaded(store, ref) else None

    # Read once per version while the import's check runs (`authority.check_import`, which writes
    # nothing), not twice per record: on PostgreSQL each read is a round trip.
    held = store.memoized(f"engine_rules.version_of_import {key!r}", ("protocols",), loaded)
    if held is not None:
        return held
    source = (arriving or {}).get(key)
    if source is None:
        return None
    return _arriving_version(source, f"{key[0]} {key[1]} (arriving)")


@functools.lru_cache(maxsize=16)
def _arriving_version(source: str, name: str) -> protocols.Protocol | None:
    """A version a bundle loads before its records, read once per bundle, not once per record: the
    cache keys on the source string itself (whose hash Python keeps), where `parse_cached` encodes and
    hashes its tens of KB on every call."""
    try:
        return protocols.run_as(
            protocols.parse_cached(source, name)
        )  # a format-1 version as the engine runs it
    except (Refused, UsageError, ValueError):
        return None  # the bundle's own load of it is refused where it is projected


@common_dialect
def import_values(
    store: Store, event: Event, form: str, arriving: Mapping[tuple[str, str], str] | None = None
) -> str | None:
    """What is wrong with an imported record's values under its version's form (`record_values.problem`:
    each value in its field's stored representation), for sync's check on import
    (`authority.record_values_check`); None when they are, or the version or form is not known here."""
    proto = version_of_import(store, event, arriving)
    declared = proto.forms.get(form) if proto is not None else None
    if declared is None:
        return None
    values: Mapping[str, Any]
    if event.type == "record.amended":
        changes = event.body.get("changes")
        values = (
            {k: c.get("new") for k, c in changes.items() if isinstance(c, Mapping)}
            if isinstance(changes, Mapping)
            else {}
        )
    else:
        data = event.body.get("data")
        values = data if isinstance(data, Mapping) else {}
    found = record_values.problem(declared, values)
    return f"record {event.id[:40]}: {found}" if found else None


def _dose_line(
    rec: Mapping[str, Any], roles_: Mapping[str, str], number: int, day: int, timing: str | None
) -> DoseLine:
    """An administration given, as `participant show` lists a dose: its slot, start, window, kit and the
    amount given in the dose's unit (`amount`, `unit`)."""
    kit = rec.get(roles_.get("kit", ""))
    dose_v = rec.get(roles_.get("dose", ""))
    amount = dose_v.get("value") if isinstance(dose_v, Mapping) else dose_v
    return {
        "dose": number,
        "start": str(rec.get(roles_.get("start", "")) or ""),
        "day": day,
        "window": str(rec.get(roles_.get("window", "")) or timing or ""),
        "kit_id": str(kit) if kit else None,
        "amount": float(amount) if isinstance(amount, int | float) and not isinstance(amount, bool) else None,
        "unit": str(dose_v.get("unit")) if isinstance(dose_v, Mapping) and dose_v.get("unit") else None,
        "event": str(rec["_event"]),
    }


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
    anchors = {**anchors, **_dose_anchors(m, records, rec)}
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
    return replace(snap, anchors=visits.timeline(m, snap)), rec


def _dose_anchors(m: Model, records: Mapping[str, Sequence[Rec]], in_hand: Rec) -> dict[str, datetime]:
    """The built-in anchors `@first_dose` and `@last_dose`: the first and last start of an administration
    recorded as given (on any regimen's recording form), the record in hand left out."""
    starts: list[datetime] = []
    for r in m.regimens.values():
        for adm in r.administrations:
            roles_ = adm.record
            for rec in records.get(str(roles_.get("form")), ()):
                start = rec.values.get(str(roles_.get("start", "")))
                if rec is in_hand or not isinstance(start, datetime):
                    continue
                if roles_.get("not_given") and rec.values.get(str(roles_["not_given"])) is True:
                    continue
                starts.append(start)
    return {"first_dose": min(starts), "last_dose": max(starts)} if starts else {}


def plan_inputs(
    store: Store,
    m: Model,
    p: Participant | None,
    site_zone: str,
    allocations: Mapping[str, tuple[Any, ...]] | None = None,
) -> tuple[dict[str, date | datetime | None], str | None]:
    """(anchors, arm) of a participant's schedule: consent, enrollment and randomization as recorded, and the
    arm allocated (open label) — for a blinded allocation the first arm, whose schedule every arm repeats
    (`same_as`); a single-arm trial's only arm. `allocations`: the `rand_allocations` rows (arm, kit, ts)
    by participant key already read for many participants (`QueueReads`), instead of one query here."""
    anchors: dict[str, date | datetime | None] = {}
    if p is None:
        return anchors, None
    if p.consent_time:
        anchors["consent"] = datetime.fromisoformat(p.consent_time)
    anchors["enrollment"] = p.enrolled_date
    key = ids.key(p.id)
    if allocations is not None:
        row = allocations.get(key)
    else:
        row = store.one("SELECT arm, kit, ts FROM rand_allocations WHERE participant = ?", (key,))
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
    if ctx.form in _administration_forms(m):  # checks of its own fields: reported with any other problem
        computed.update(_administration_fields(ctx, m, {**v, **computed}))
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
        computed: dict[str, Any] = {}
        for name, spec in fields.items():  # first: `required_when` and the rules read the computed values
            if spec.get("compute"):
                computed[name] = _stored(interpreter.value_of(str(spec["compute"]), snap), spec)
        if computed and not ctx.problems:  # values refused by their type or range compute nothing reliable
            snap, _rec = _snapshot(ctx, m, {**v, **computed})
        elif ctx.problems:
            computed = {}
        for name, spec in fields.items():
            blank = v.get(name) in (None, "", []) and computed.get(name) in (None, "", [])
            when, message = _required_when(spec.get("required_when"))
            if when and blank and interpreter.truth(when, snap) is True:
                ctx.problem(name, interpreter.render(message, snap) if message else f"required when {when}")
            if spec.get("applies_when") and not blank:
                holds, said = _applies(spec["applies_when"], snap, {**v, **computed})
                if holds is False:
                    ctx.problem(name, f"does not apply here (only when {said}); leave it blank")
        for rule in m.data.get("rules", ()):
            if rule.get("on") != ctx.form or interpreter.truth(str(rule["check"]), snap) is not False:
                continue
            words = interpreter.render(
                str(rule.get("message") or f"refused by rule {rule['code']}"),
                snap,
                {"participant": ctx.participant.id} if ctx.participant else {},
            )
            severity = str(rule.get("severity", "refuse"))
            if severity == "refuse" or (severity == "confirm" and not ctx.confirmed):
                more = "" if severity == "refuse" else " (confirm with --confirm --reason if it is right)"
                ctx.problem(str(rule.get("field") or ctx.form), words + more)  # no field: the form's problem
            elif severity == "query":  # saved; `open_queries` opens its data query with the record
                ctx.carry.setdefault(QUERIES, []).append(
                    (str(rule["code"]), str(rule.get("field") or "_form"), words)
                )
    except EvalError as exc:
        raise Refused(f"{m.id} {m.version}: form {ctx.form}: {exc}") from None
    if ctx.participant is not None and not ctx.problems:
        _unique(ctx, m, v, snap)
        _assessment(ctx, m, snap)
    return computed


def _applies(spec: Any, snap: Snapshot, values: Mapping[str, Any]) -> tuple[bool | None, str]:
    """(whether the field applies, the condition as the refusal says it) of `applies_when`: an expression over
    the record, or format 1's table `{ field, in / not_in }` over the record's values (None: unknown, the
    controlling value is blank)."""
    if isinstance(spec, Mapping):
        from ..field_conditions import Condition

        key = "in" if "in" in spec else "not_in"
        cond = Condition(str(spec["field"]), tuple(spec[key]), negate=key == "not_in")
        return cond.holds(values), cond.describe()
    return interpreter.truth(str(spec), snap), str(spec)


def _required_when(spec: Any) -> tuple[str | None, str | None]:
    """(condition, message template) of a field's `required_when`: `"EXPR"` or `{ when, message }`."""
    if isinstance(spec, Mapping):
        return str(spec["when"]), (str(spec["message"]) if spec.get("message") else None)
    return (str(spec), None) if spec else (None, None)


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


def _unique(ctx: RuleContext, m: Model, v: Mapping[str, Any], snap: Snapshot) -> None:
    """`unique` on the form: `[fields]`, or `{ fields, when, message }` — only records for which `when` holds
    count (the one in hand and the earlier ones), and the clash is refused in `message` when given."""
    spec = m.data.get("forms", {}).get(ctx.form, {}).get("unique")
    if spec is None:
        return
    keys = list(spec.get("fields", ()) if isinstance(spec, Mapping) else spec)
    when = str(spec["when"]) if isinstance(spec, Mapping) and spec.get("when") else None
    message = str(spec["message"]) if isinstance(spec, Mapping) and spec.get("message") else None
    p = ctx.participant
    assert p is not None
    if when and interpreter.truth(when, snap) is not True:
        return
    fields = m.data.get("forms", {}).get(ctx.form, {}).get("fields", {})
    for other in _others(ctx, ctx.form):
        if not all(json.dumps(other.get(k)) == json.dumps(v.get(k)) for k in keys):
            continue
        if when:
            theirs = Rec(ctx.form, interpreter.typed_values(fields, other), str(other["_event"]), 0)
            if interpreter.truth(when, snap.with_record(theirs)) is not True:
                continue
        if message:
            raise Refused(interpreter.render(message, snap, {"participant": p.id, "record": other["_event"]}))
        same = f" for {', '.join(f'{k} {v.get(k)}' for k in keys)}" if keys else ""
        raise Refused(
            f"{p.id} already has {'an' if ctx.form[0] in 'aeiou' else 'a'} {ctx.form} record{same} ({other['_event']}); "
            "correct it with `wardcrf amend` instead"
        )


def _assessment(ctx: RuleContext, m: Model, snap: Snapshot) -> None:
    """A dose assessment recorded on this form: one per administration (a second is refused, naming the
    first); an `after` one needs its administration recorded and may not precede its end; a `before` one
    names the next administration, or one recorded that it precedes. Each refusal in the assessment's
    `refusals` (or `duplicate`) words when declared, else the engine's (docs/protocol.md)."""
    rec = snap.record
    assert rec is not None
    p = ctx.participant
    for a in m.data.get("dose_assessments", ()):
        if a.get("form") != ctx.form or not _matches(a, snap):
            continue
        link = str(a.get("link", ""))
        n = rec.values.get(link)
        if n is None:
            continue
        label = str(a.get("label", a["code"]))
        for other in snap.records.get(ctx.form, ()):
            if other is rec or other.values.get(link) != n:
                continue
            if _matches(a, snap.with_record(other)):
                provided = {"n": str(n), "record": other.event_id, "participant": p.id if p else ""}
                raise Refused(
                    interpreter.render(str(a["duplicate"]), snap, provided)
                    if a.get("duplicate")
                    else f"{label} of administration {n} are already recorded "
                    f"({other.event_id}); amend that record instead"
                )
        given = _given_times(ctx, m)
        time_field = _time_field(m, ctx.form)
        when = _time_of(m, rec)
        words = {"n": str(n), "participant": p.id if p else "", "time": _minutes(when)}
        number = int(n)
        if a.get("when") == "after":
            if number not in given:
                ctx.problem(
                    link,
                    _assessment_words(a, "not_given", snap, words)
                    or f"administration {n} is not recorded as given: {label} follow it",
                )
            elif isinstance(when, datetime) and when < given[number][1]:
                ended = given[number][1]
                ctx.problem(
                    time_field,
                    _assessment_words(a, "before_end", snap, {**words, "end": _minutes(ended)})
                    or f"{_minutes(when)} is before administration {number} ended ({given[number][2]}): "
                    f"{label} follow it",
                )
        elif a.get("when") == "before":
            if number in given:
                began = given[number][0]
                if isinstance(when, datetime) and when > began:
                    ctx.problem(
                        time_field,
                        _assessment_words(a, "after_start", snap, {**words, "start": _minutes(began)})
                        or f"{_minutes(when)} is after administration {number} started ({_minutes(began)}): "
                        f"{label} precede it",
                    )
                continue
            upcoming = _next_number(m, a, set(given))
            if upcoming is not None and number != upcoming:
                ctx.problem(
                    link,
                    _assessment_words(a, "not_next", snap, {**words, "next": str(upcoming)})
                    or f"the next administration is {upcoming}, not {number}: {label} precede it",
                )


def _matches(a: Mapping[str, Any], snap: Snapshot) -> bool:
    """Whether the snapshot's record is the dose assessment `a`: its `match`, or any record of its form."""
    return not a.get("match") or interpreter.truth(str(a["match"]), snap) is True


def _assessment_words(
    a: Mapping[str, Any], key: str, snap: Snapshot, provided: Mapping[str, str]
) -> str | None:
    """The dose assessment's `refusals.KEY` with its holes filled, or None (the engine's words)."""
    text = (a.get("refusals") or {}).get(key)
    return interpreter.render(str(text), snap, provided) if text else None


def _minutes(when: Any) -> str:
    return when.isoformat(timespec="minutes") if isinstance(when, datetime) else str(when or "")


def _time_field(m: Model, form: str) -> str:
    """The field an assessment's time refusal is shown on: its form's first date-time field."""
    fields = m.data.get("forms", {}).get(form, {}).get("fields", {})
    return next((k for k, f in fields.items() if f.get("type") == "datetime"), "_form")


def _given_times(ctx: RuleContext, m: Model) -> dict[int, tuple[datetime, datetime, str]]:
    """number -> (start, end or start, the end as stored) of the participant's administrations given."""
    out: dict[int, tuple[datetime, datetime, str]] = {}
    for form in _administration_forms(m):
        roles_ = _roles(m, form)
        for r in _others(ctx, form):
            n = r.get(roles_.get("number", ""))
            start = r.get(roles_.get("start", ""))
            if r.get(roles_.get("not_given", "")) is True or not isinstance(n, int) or not start:
                continue
            ended = r.get(roles_.get("end", "")) or start
            out[n] = (ctx.local(str(start)), ctx.local(str(ended)), str(ended))
    return out


def _next_number(m: Model, a: Mapping[str, Any], given: set[int]) -> int | None:
    """The administration a `before` assessment may name when not yet given: with `numbering = "given"` the
    next to give (one more than those given); with slot numbering, None (any later slot: a missed one keeps
    its number)."""
    regimens = set(a.get("regimens") or m.regimens)
    numbering = {
        adm.numbering for code in regimens if code in m.regimens for adm in m.regimens[code].administrations
    }
    if numbering != {"given"}:
        return None
    return len(given) + 1


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
    not_given = v.get(roles_.get("not_given", "")) is True
    start_v = v.get(roles_.get("start", ""))
    start = ctx.local(str(start_v)) if start_v else None
    kit = v.get(roles_.get("kit", ""))
    first_use = True
    snap, _rec = _snapshot(ctx, m, v)
    if ctx.problems:
        return out
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
        rows, found = place(m, ctx.form, anchors, arm, ctx.zone, others, new, ctx.now, facts)
        if found is None:
            _course_complete(m, rows, snap, p.id)
            raise Refused(
                f"{start.isoformat(timespec='minutes')}: no administration of {p.id}'s schedule takes a record "
                "then (before the first, after the course, or past the late limit)"
            )
        placed = found
        if ctx.amending is None:
            _spacing(ctx, m, placed, start, roles_, snap)  # a second one that day is named as such first
        if not _not_days_early(ctx, m, placed, start, roles_["start"], snap, rows):
            return out
    if kit:  # after the day's refusals: the same administration sent twice is refused as a second that day
        first_use = _kit_rule(ctx, m, roles_["kit"], str(kit), arm, snap)
        if ctx.problems:
            return out
    s = placed.slot
    local = zone(m.calendar.zone or ctx.zone)
    due_at = (s.due or s.opens).astimezone(local)
    # the study day it was given, counted as the schedule counts the slot's (a late one: a later day)
    given_day = (
        s.day if not_given or start is None else s.day + (start.astimezone(local).date() - s.date).days
    )
    computed = {
        "number": s.number,
        "day": given_day,
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


@dataclass(frozen=True)
class StartCheck:
    """What the administration rule says of an administration started at `start`, before anything else is
    typed (the wizard's first step): the refusal in the protocol's words, or where the schedule files it."""

    refusal: str | None
    number: int | None = None  # the administration it would be
    timing: str | None = None  # on_time, early, late
    opens: datetime | None = None  # that administration's window
    closes: datetime | None = None
    start: datetime | None = None  # the start asked about

    @property
    def minutes_outside(self) -> int:
        """How far outside its window the start is (0 on time)."""
        if self.start is None or self.opens is None or self.closes is None:
            return 0
        if self.timing == "late":
            return int((self.start - self.closes).total_seconds() // 60)
        if self.timing == "early":
            return int((self.opens - self.start).total_seconds() // 60)
        return 0


def start_check(session: Any, proto: Protocol, p: Participant, form: str, start: datetime) -> StartCheck:
    """The administration rule's refusals of a record of `form` for `p` started at `start`, with nothing
    else typed: the course already complete, a second one the day allows not (`per_day`), one closer than
    the least spacing, one before the earliest start its slot takes (days early, before the first day), or
    after the late limit — in the words `record` would refuse it with (the same functions); else the slot
    it fills and its timing (early and late are deviations the record will carry)."""
    m = proto.engine
    assert m is not None
    ctx = RuleContext(session=session, protocol=proto, form=form, participant=p, now=start)
    roles_ = _roles(m, form)
    anchors, arm = plan_inputs(ctx.store, m, p, ctx.zone)
    snap, _rec = _snapshot(ctx, m, {})
    from ..engine import due

    facts = due.conditions(m, Snapshot(**{**snap.__dict__, "record": None}), arm)
    new = schedule.Given(start, record="(this record)")
    rows, found = place(m, form, anchors, arm, ctx.zone, _others(ctx, form), new, start, facts)
    try:
        if found is None:
            _course_complete(m, rows, snap, p.id)
            return StartCheck(
                f"{start.isoformat(timespec='minutes')}: no administration of {p.id}'s schedule takes a record "
                "then (before the first, after the course, or past the late limit)"
            )
        _spacing(ctx, m, found, start, roles_, snap)
    except Refused as exc:
        return StartCheck(exc.message)
    if "start" in roles_ and not _not_days_early(ctx, m, found, start, roles_["start"], snap, rows):
        return StartCheck(next(iter(ctx.problems.values())))
    s = found.slot
    return StartCheck(None, s.number, found.timing, s.opens, s.closes, start)


def _administration_fields(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> dict[str, str]:
    """The administration record's checks of its own fields, run whatever else is wrong with the record (the
    form's other problems are reported with them): `given_by` an active user who may give doses (the user
    recording, when blank), and the end not before the start. Returns `given_by` as saved."""
    roles_ = _roles(m, ctx.form)
    out: dict[str, str] = {}
    if "given_by" in roles_ and roles_["given_by"] not in ctx.problems:
        given_by = str(v.get(roles_["given_by"]) or ctx.session.user)
        user = users.get(ctx.store, given_by)
        if user is None or not user["active"]:
            ctx.problem(roles_["given_by"], f"{given_by} is not an active user of this site")
        elif not roles.allowed(user["role"], "dose.record"):
            allowed = ", ".join(r for r in roles.ROLES if roles.allowed(r, "dose.record"))
            ctx.problem(
                roles_["given_by"], f"{given_by} has the role {user['role']}; doses are given by: {allowed}"
            )
        out[roles_["given_by"]] = given_by
    start_v, end_v = v.get(roles_.get("start", "")), v.get(roles_.get("end", ""))
    if start_v and end_v and not {roles_["start"], roles_["end"]} & set(ctx.problems):
        start, end = ctx.local(str(start_v)), ctx.local(str(end_v))
        if end < start:
            ctx.problem(
                roles_["end"],
                f"{end.isoformat(timespec='minutes')} is before the start {start.isoformat(timespec='minutes')}",
            )
    return out


def _kit_rule(ctx: RuleContext, m: Model, field_: str, kit: str, arm: str | None, snap: Snapshot) -> bool:
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
    if not course:
        return _kit_once(ctx, m, field_, key, arm, snap)
    first = True
    for use in kits.administration_uses(ctx.store, key, exclude=ctx.amending):  # every version's records
        who, event_id = use.participant, use.event_id
        said = None if course else _kit_used(ctx, m, arm, key, who, event_id, snap)
        if said:
            ctx.problem(field_, said)
            return False
        if who != p.id:
            ctx.problem(
                field_, f"kit {key} belongs to {who} ({event_id}): a kit is never given to two participants"
            )
            return False
        if not course:
            ctx.problem(field_, f"kit {key} was already used ({event_id}): one kit, one administration")
            return False
        first = False
    # A format-1 version's dose record (a participant still on it, or this one before an amendment moved
    # them): one kit, one use whatever the version; a kit the list allocated to them for the course excepted.
    holder = kits.course_holder(ctx.store, key)
    for use in kits.dose_uses(ctx.store, key, exclude=ctx.amending):
        if use.participant == p.id and holder is not None and ids.same(holder, p.id):
            first = False
            continue
        ctx.problem(
            field_,
            f"{use}, a dose record of a format-1 version: one kit, one administration, whatever the version",
        )
        return False
    return first


def _kit_once(ctx: RuleContext, m: Model, field_: str, key: str, arm: str | None, snap: Snapshot) -> bool:
    """A kit of a product used once per administration: refused when any record used it before (a format-2
    administration record of any version, or a format-1 dose record), asked once of the one answer to "kit
    already used" (`kits.kit_use`, as the scan step and format 1's dose rule ask). Returns True (its first
    use) when it is not refused."""
    from . import dosing  # `dosing.kit_use` is `kits.kit_use`: one name for every rule that asks

    p = ctx.participant
    assert p is not None
    use = dosing.kit_use(ctx.store, key, exclude=ctx.amending, participant=p.id)
    if use is None:
        return True
    if not use.administration:
        ctx.problem(
            field_,
            f"{use}, a dose record of a format-1 version: one kit, one administration, whatever the version",
        )
    elif said := _kit_used(ctx, m, arm, key, use.participant, use.event_id, snap):
        ctx.problem(field_, said)
    elif use.participant != p.id:
        ctx.problem(
            field_,
            f"kit {key} belongs to {use.participant} ({use.event_id}): a kit is never given to two participants",
        )
    else:
        ctx.problem(field_, f"kit {key} was already used ({use.event_id}): one kit, one administration")
    return False


def _refusal(
    m: Model, regimen: str, adm: Administration, key: str, snap: Snapshot, **provided: str
) -> str | None:
    """The administration's `refusals.KEY` with its holes filled (`model.REFUSAL_NAMES`), or None when the
    protocol leaves that refusal in the engine's words. A placebo regimen (`same_as`) words it as its twin."""
    raw = {str(r["code"]): r for r in m.data.get("regimens", ())}
    spec = raw.get(regimen, {})
    spec = raw.get(str(spec.get("same_as", regimen)), spec)
    for a in spec.get("administrations", ()):
        if a.get("code") == adm.code and (a.get("refusals") or {}).get(key):
            return interpreter.render(str(a["refusals"][key]), snap, provided)
    return None


def _course_complete(
    m: Model, rows: Sequence[tuple[str, Administration, list[schedule.SlotState]]], snap: Snapshot, pid: str
) -> None:
    """Refused in the administration's `refusals.course_complete` when every slot of the course on this form is
    filled (the record in hand took none); nothing when the protocol leaves it in the engine's words."""
    planned = sum(len(rs) for _r, _a, rs in rows)
    filled = sum(1 for _r, _a, rs in rows for r in rs if r.filled_by is not None)
    if not rows or filled < planned:
        return
    regimen, adm, _rs = rows[-1]
    said = _refusal(
        m, regimen, adm, "course_complete", snap, participant=pid, n=str(planned + 1), planned=str(planned)
    )
    if said:
        raise Refused(said)


def _kit_used(
    ctx: RuleContext, m: Model, arm: str | None, key: str, holder: str, event_id: str, snap: Snapshot
) -> str | None:
    """A kit of a product used once per administration, already given: the `refusals.kit_used` of the
    administration recorded on this form, naming who had it, which administration and the record."""
    for regimen in m.regimens_of(arm):
        for adm in regimen.administrations:
            if adm.record.get("form") != ctx.form:
                continue
            row = ctx.store.one("SELECT data FROM records WHERE event_id = ?", (event_id,))
            data = json.loads(row[0]) if row else {}
            number = data.get(adm.record.get("number", ""), "")
            return _refusal(
                m,
                regimen.code,
                adm,
                "kit_used",
                snap,
                participant=ctx.participant.id if ctx.participant else "",
                kit=key,
                holder=holder,
                n=str(number),
                record=event_id,
            )
    return None


def _not_days_early(
    ctx: RuleContext,
    m: Model,
    placed: Placed,
    start: datetime,
    field_: str,
    snap: Snapshot,
    rows: Sequence[tuple[str, Administration, list[schedule.SlotState]]] = (),
) -> bool:
    """Whether the start is not before the earliest its slot takes (`schedule.earliest_start`); else the
    problem, naming the slot and its window (or, before the regimen's first day, in the administration's
    `refusals.before_first_day` when declared). One rule for the CLI, the administration wizard and a
    correction: the schedule would file such a start as the slot's early administration, days ahead."""
    s, local = placed.slot, zone(ctx.zone)
    earliest = schedule.earliest_start(s, local)
    if start >= earliest:
        return True
    adm = placed.administration
    firsts = [r.slot for reg, _a, rs in rows if reg == placed.regimen for r in rs]
    first = min(firsts, key=lambda x: x.number) if firsts else s
    on = start.astimezone(zone(m.calendar.zone or ctx.zone)).date()
    said = (
        _refusal(
            m,
            placed.regimen,
            adm,
            "before_first_day",
            snap,
            participant=ctx.participant.id if ctx.participant else "",
            date=on.isoformat(),
            first_day=first.date.isoformat(),
        )
        if on < first.date
        else None
    )
    if said:
        ctx.problem(field_, said)
        return False
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


def _spacing(
    ctx: RuleContext, m: Model, placed: Placed, start: datetime, roles_: Mapping[str, str], snap: Snapshot
) -> None:
    """`min_spacing` and `per_day` of the administration: refused when a given record is too close, or the
    local day already holds `per_day` of them."""
    spec = placed.administration.schedule
    local = zone(m.calendar.zone or ctx.zone)
    same_day = 0
    last: dict[str, Any] = {}
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
        if t.astimezone(local).date() == start.astimezone(local).date():
            same_day += 1
            last = other
    if same_day + 1 > spec.per_day:
        said = _refusal(
            m,
            placed.regimen,
            placed.administration,
            "per_day",
            snap,
            participant=ctx.participant.id if ctx.participant else "",
            n=str(last.get(roles_.get("number", ""), "")),
            record=str(last.get("_event", "")),
            date=start.astimezone(local).date().isoformat(),
            per_day=str(spec.per_day),
        )
        if said:
            raise Refused(said)
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
    snap = replace(snap, anchors=visits.timeline(m, snap))  # first dose, screening, declared anchors
    administrations: list[AdministrationLine] = []
    deviations: list[schedule.Deviation] = []
    next_item: schedule.NextDose | None = None
    declared = list(m.data.get("deviations", ()))
    kinds = {str(d.get("kind")): d for d in declared if d.get("kind")}
    planned = course = 0
    ended = _ended(m, records, zone(site_zone))
    cumulative: dict[str, float] = {}
    owed: list[int] = []
    given_times: dict[int, tuple[datetime, datetime]] = {}
    dose_lines: list[DoseLine] = []
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
            course += sum(len(states) for _r, _a, states in rows)  # the whole course, before any end
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
                    started = (
                        str(rec[roles_["start"]])
                        if rec is not None and st.state == schedule.GIVEN and rec.get(roles_.get("start", ""))
                        else None
                    )
                    if st.timing in ("early", "late") and st.timing in kinds:
                        deviations.append(_deviation(kinds[st.timing], item, started))
                    # `missed`: a slot whose window closed without a record (overdue or missed), or not given
                    window_closed = st.filled_by is None and s.closes < at
                    if "missed" in kinds and (
                        st.state in (schedule.MISSED, schedule.NOT_GIVEN) or window_closed
                    ):
                        deviations.append(_deviation(kinds["missed"], item, None))
                    if rec is not None and "wrong_dose" in kinds and st.state == schedule.GIVEN:
                        wrong = _wrong_dose(kinds["wrong_dose"], rec, roles_)
                        if wrong:
                            deviations.append(
                                {**_deviation(kinds["wrong_dose"], item, started), "detail": wrong}
                            )
                    if next_item is None and st.state not in (
                        schedule.GIVEN,
                        schedule.NOT_GIVEN,
                        schedule.MISSED,
                    ):
                        local = zone(site_zone)
                        next_item = {
                            "dose": s.number,
                            "what": _worklist_words(adm, snap, s.number),
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
                        dose_lines.append(_dose_line(rec, roles_, s.number, s.day, st.timing))
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
        deviations.extend(_declared_deviations(m, declared, records, snap))
        if "assessment_window" in kinds:
            deviations.extend(_assessment_windows(m, snap, kinds["assessment_window"], given_times))
        given_numbers = sorted(a["number"] for a in administrations if a["state"] == schedule.GIVEN)
        owed = sorted({n for _code, n in gates.vitals_owed(m, snap, given_numbers)})
        if p.eligible is False and "ineligible_after_enrollment" in kinds:
            d = kinds["ineligible_after_enrollment"]
            deviations.append(
                {
                    "kind": _label(d.get("label", d["code"])),
                    "code": d["code"],
                    "failed": p.failed_criteria,
                    "detail": f"failed: {', '.join(p.failed_criteria)}; {p.screening_event}",
                    "event": p.screening_event,
                }
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
        course_end = _course_end(placed_all, ended, zone(site_zone))
        dated_snap = replace(snap, anchors=visits.timeline(m, snap, course_end=course_end))
        visit_lines += _calendar_lines(m, placed_all, records, dated_snap, at, zone(site_zone), arm, ended)
    if not consent_ok:  # a consent without its signatures or witnesses (`consent_state`), as format 1 says
        status = "consent incomplete"
    elif p.eligible is None:
        status = "consented"
    elif not p.eligible:
        status = "enrolled, no longer eligible" if p.enrollment_event else "screen failure"
    elif not p.enrollment_event:
        status = "eligible, not enrolled"
    elif ended.died:
        status = "died"
    elif course and given >= course:  # the whole course given: said so whatever the disposition says after it
        status = "treatment complete"
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
        "doses": sorted(
            dose_lines, key=lambda d: (d["start"], d["dose"])
        ),  # what was given, as format 1 lists it
        "administrations": administrations,
        "next_dose": next_item,
        "deviations": deviations,
        "post_dose_vitals_due": owed,
        "cumulative_dose": _cumulative(m, cumulative),
        "visits": visit_lines,
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


def _cumulative(m: Model, given: Mapping[str, float]) -> list[CumulativeDose]:
    """The doses given per unit; the unit the version names a ward-list column for (`dose.cumulative`) is
    listed even when nothing is given yet (0), with its column's name."""
    from ..engine.model import cumulative_column

    named = cumulative_column(m)
    out: list[CumulativeDose] = [{"value": v, "unit": u} for u, v in given.items()]
    if named is not None:
        column, unit = named
        mine = next((c for c in out if c["unit"] == unit), None)
        if mine is None:
            mine = {"value": 0.0, "unit": unit}
            out.insert(0, mine)
        mine["column"] = column
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
    per: Sequence[visits.Occurrence] | None = None,
) -> list[VisitLine]:
    """Each occurrence of the calendar visits (`anchor` + `day` + `window`; `engine.visits.dated`) on the
    ward's list, with the required forms owed, then those whose anchor has not happened ("not yet placed",
    with the day they will be counted from; `engine.visits.waiting`). After the end of the study nothing
    that opens later is owed, and nothing is waiting. `per`: the occurrences of the visits per
    administration of `placed` (`engine.visits.occurrences`), when the caller has them already."""
    found = visits.dated(m, snap.anchors, tz, arm=arm)
    if ended.study_over and ended.treatment_end is not None:
        end = ended.treatment_end
        found = [occ for occ in found if occ.opens <= end]
    pending: list[VisitLine] = (
        []
        if ended.study_over
        else [
            {
                "visit": w.visit.code,
                "number": 1,
                "visitnum": float(w.num),
                "name": w.name,
                "due": "",
                "state": NOT_PLACED,
                "event": None,
                "owed": [],
                "placed_from": w.words,
            }
            for w in visits.waiting(m, snap.anchors, arm=arm)
        ]
    )
    if not found:
        return pending
    if per is None:
        per = visits.occurrences(m, placed, tz, arm=arm)
    taken: set[str] = set()
    if per:  # records a visit per administration takes are not a calendar visit's
        for recs in records.values():
            for rec in recs:
                when = rec.when()
                local = when.astimezone(tz).date() if isinstance(when, datetime) else when
                if visits.place(m, per, rec, local, snap) is not None:
                    taken.add(rec.event_id)
    lines: list[VisitLine] = [
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
    return lines + pending


NOT_PLACED = "not yet placed"
"""A calendar visit's state while its anchor has not happened (no date yet; `VisitLine.placed_from`)."""


def _course_end(
    placed: Sequence[tuple[str, Administration, Sequence[schedule.SlotState]]], ended: Ended, tz: Any
) -> date | None:
    """The local date treatment ended, once it has (`engine.visits.course_end`, the one rule SV and ODM
    date `treatment_end` by too). The ward queue places the slots at the end of time, where every one not
    recorded is missed: the date this gives once the course has run out, which is when a visit counted
    from it can open."""
    return visits.course_end(placed, ended.treatment_end, tz)


def _visit_due(
    m: Model,
    placed: Sequence[tuple[str, Administration, Sequence[schedule.SlotState]]],
    records: Mapping[str, Sequence[Rec]],
    snap: Snapshot,
    tz: Any,
    arm: str | None,
    ended: Ended,
) -> tuple[datetime, datetime] | None:
    """For the ward queue, whatever the clock: (from, until) in UTC — the earliest moment from which a visit
    form the participant owes is due, and the earliest end of such a visit's window (the queue's order) —
    over the calendar visits' windows (local midnight of the first day to the midnight after the last) with
    a required form not recorded, and the administrations recorded whose visit still owes a form (their
    start to the midnight after their day). None when no visit owes anything (or none is placed yet)."""
    spans: list[tuple[datetime, datetime]] = []

    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)

    # The occurrences, read by both kinds of visit: built here when a visit per administration can owe a
    # form; else (a daily dose's visit listing only the dose's own items) `owed` is empty whatever they are,
    # and the calendar lines build them only when a calendar visit is placed.
    found = visits.occurrences(m, placed, tz, arm=arm) if visits.can_owe(m) else None
    for line in _calendar_lines(m, placed, records, snap, _END_OF_TIME, tz, arm, ended, found):
        if line["owed"] and line.get("window"):
            first, last = (date.fromisoformat(d) for d in line["window"])
            spans.append((midnight(first), midnight(last + timedelta(days=1))))
    for o in visits.owed(m, found, records, snap, _END_OF_TIME, tz) if found else ():
        occ = o.occurrence
        if occ.at is not None and occ.visit.worklist:
            spans.append((occ.opens.astimezone(UTC), midnight(occ.local_date + timedelta(days=1))))
    if not spans:
        return None
    return min(a for a, _ in spans), min(b for _, b in spans)


@dataclass(frozen=True)
class QueueRow:
    """What the ward queue keeps of a format-2 participant (`queue_row`)."""

    number: int | None
    """The first administration without a record (None: none to give)."""
    due: datetime | None
    owed: int
    """`after` assessments owed on the `[safety] vital_signs` form (`gates.vitals_owed`)."""
    visit_due: tuple[datetime, datetime] | None
    """The visit forms owed: from, until (`_visit_due`)."""
    held: bool = False
    """A gate of the participant's own holds their next administration (`own_holds`)."""


def own_holds(m: Model, snap: Snapshot, participant: str, arm: str | None) -> list[str]:
    """The holds of the participant's next administration decided by their own records alone: the gates
    before `dose` of kinds `require` and `eligibility` (a positive skin test, no longer eligible). A DSMG
    hold is the site's (the queue reads it when asked); sentinel, consent, custody and allocation are the
    site's facts or need the administration in hand, so they are not a participant's own."""
    return gates.holds(
        m,
        replace(snap, participant={"id": participant, "arm": arm}),
        gates.SiteFacts(),
        participant=participant,
    )


@dataclass(frozen=True)
class QueueReads:
    """What `queue_row` reads of the store, read for many participants in a few queries (`queue_reads`):
    a rebuild derives every participant's row, and one query per participant for their records, one per
    administration form and one for their allocation cost more than the row's own work."""

    zone: str
    """The site's zone (`site.zone`)."""
    allocations: Mapping[str, tuple[Any, ...]]
    """(arm, kit, ts) of `rand_allocations` by participant key."""
    records: Mapping[str, Sequence[tuple[str, str, str, int]]]
    """(form, event id, data, rowid) of each participant's records by subject, in the projection's order."""


def queue_reads(store: Store, people: Sequence[Participant]) -> QueueReads:
    """`QueueReads` of `people`: the site's zone, their allocations and their records, in queries of at most
    500 participants each (the rows are those `queue_row` reads one participant at a time, in the same
    order)."""
    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    allocations: dict[str, tuple[Any, ...]] = {}
    records: dict[str, list[tuple[str, str, str, int]]] = {}
    for i in range(0, len(people), 500):
        chunk = people[i : i + 500]
        keys = list(dict.fromkeys(ids.key(p.id) for p in chunk))
        marks = ",".join("?" * len(keys))
        for participant, arm, kit, ts in store.execute(
            f"SELECT participant, arm, kit, ts FROM rand_allocations WHERE participant IN ({marks})", keys
        ).fetchall():
            allocations.setdefault(str(participant), (arm, kit, ts))
        subjects = list(dict.fromkeys(p.subject for p in chunk))
        marks = ",".join("?" * len(subjects))
        for subject, form, event_id, data, pos in store.execute(
            "SELECT r.subject, r.form, r.event_id, r.data, r.rowid FROM records r"
            f" WHERE r.subject IN ({marks}) ORDER BY r.rowid",
            subjects,
        ).fetchall():
            records.setdefault(str(subject), []).append((form, event_id, data, int(pos)))
    return QueueReads(site_zone, allocations, records)


def queue_row(store: Store, proto: Protocol, p: Participant, reads: QueueReads | None = None) -> QueueRow:
    """The participant's first administration without a record (number, due time), the `after` assessments
    on the vital signs form owed, the visits they owe (`_visit_due`: from, until) and whether a gate of their
    own holds them, for the ward queue: from the projections alone, whatever the clock (`wardqueue`).
    `reads`: what it reads of the store, already read for many participants (`queue_reads`)."""
    from ..engine import due

    m = proto.engine
    assert m is not None
    if reads is None:
        reads = queue_reads(store, [p])
    site_zone = reads.zone
    anchors, arm = plan_inputs(store, m, p, site_zone, reads.allocations)
    if not p.enrollment_event:
        return QueueRow(None, None, 0, None)
    # Each record's stored values parsed once: typed for the expressions (a form's records when a rule of
    # the row first reads the form), and as stored for placing the administrations (in the projection's
    # order, as `eligibility.participant_records` reads them).
    stored_all = [
        (f, e, eligibility.stored_values(d), pos) for f, e, d, pos in reads.records.get(p.subject, ())
    ]
    records = eligibility.TypedOnRead(m, stored_all)  # the forms the row's rules read, typed
    tz = zone(site_zone)
    snap = Snapshot(
        records=records, now=datetime.now(UTC), zone=tz, anchors=anchors, anchor_day=m.calendar.anchor_day
    )
    starts = visits.administration_starts(m, records)  # the timeline's, asked twice below
    snap = replace(snap, anchors=visits.timeline(m, snap, starts=starts))
    ended = _ended(m, records, tz)
    no_visits = ended.study_over and ended.treatment_end is None  # as `summary` lists them
    if (
        arm is None
    ):  # not allocated yet: no administration, but a visit may be owed (one counted from consent)
        return QueueRow(
            None, None, 0, None if no_visits else _visit_due(m, [], records, snap, tz, arm, ended)
        )
    facts = due.conditions(m, snap, arm)
    first: schedule.Slot | None = None
    given: list[int] = []
    placed_all: list[tuple[str, Administration, list[schedule.SlotState]]] = []
    for form in sorted(_administration_forms(m)):
        stored = [{**values, "_event": e} for f, e, values, _pos in stored_all if f == form]
        rows, _ = place(m, form, anchors, arm, site_zone, stored, None, _END_OF_TIME, facts)
        if ended.treatment_end is not None:
            rows = [
                (
                    reg,
                    adm,
                    [st for st in states if st.filled_by is not None or not ended.after(st.slot.opens)],
                )
                for reg, adm, states in rows
            ]
        placed_all.extend(rows)
        for _regimen, _adm, states in rows:
            for st in states:
                if st.filled_by is None and (first is None or st.slot.opens < first.opens):
                    first = st.slot
                elif st.filled_by is not None and not st.filled_by.not_given:
                    given.append(st.slot.number)
    owed = len(gates.vitals_owed(m, snap, sorted(given)))
    course_end = _course_end(placed_all, ended, tz)
    dated_snap = replace(snap, anchors=visits.timeline(m, snap, course_end=course_end, starts=starts))
    visit_due = None if no_visits else _visit_due(m, placed_all, records, dated_snap, tz, arm, ended)
    if first is None:
        return QueueRow(None, None, owed, visit_due)
    held = bool(own_holds(m, snap, p.id, arm))
    return QueueRow(first.number, first.due or first.opens, owed, visit_due, held)


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
    from .amendments import not_loaded_of, protocols_of
    from .base import participant_from_row

    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    local_today = at.astimezone(zone(site_zone)).date()
    items: list[WorklistItem] = []
    people = [
        participant_from_row(row)
        for row in store.rows("SELECT * FROM participants WHERE enrollment_event IS NOT NULL ORDER BY number")
    ]
    theirs = protocols_of(store, people)  # each on their own version (amendments)
    unloaded = not_loaded_of(store, people)  # `status.today` says why nothing is listed for them
    for p in people:
        if p.id in unloaded:
            continue
        pproto = theirs.get(p.id, proto)
        if pproto.engine is None:
            continue  # a version the engine cannot run: `status.today` says so
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
                    "what": f"{labels[code]} ({_given_words(m, snap, s['administrations'], n)})",
                    "due": None,
                    "state": "overdue",
                }
            )
        for missing in s["ae_expected"]:  # `[safety] check` with `expect_ae`: the AE form owed
            items.append(
                {
                    "participant": p.id,
                    "what": f"adverse event form for {missing['event']} reported after "
                    f"{_given_words(m, snap, s['administrations'], missing['dose'])}",
                    "due": missing["time"],
                    "state": "overdue",
                }
            )
    return items


def _worklist_words(adm: Administration, snap: Snapshot, n: int) -> str:
    """How the worklist names administration number `n` of `adm`: its `worklist` text with `{n}` filled
    ("dose 3", "ZMapp infusion 2"), or "administration N" when it declares none."""
    return interpreter.render(adm.worklist, snap, {"n": str(n)}) if adm.worklist else f"administration {n}"


def _given_words(m: Model, snap: Snapshot, lines: Sequence[AdministrationLine], n: Any) -> str:
    """The worklist words of the participant's administration number `n` given (`_worklist_words` of the
    administration whose slot it filled; on a blinded ward the regimen is hidden, its code names it)."""
    for line in lines:
        if line["number"] != n or line["state"] != schedule.GIVEN:
            continue
        regimens = sorted(m.regimens.values(), key=lambda r: r.code != line["regimen"])  # its own first
        for regimen in regimens:
            for adm in regimen.administrations:
                if adm.code == line["administration"]:
                    return _worklist_words(adm, snap, int(n))
    return f"administration {n}"


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
                        "dose": int(n),
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


def _declared_deviations(
    m: Model, declared: Sequence[Mapping[str, Any]], records: Mapping[str, Sequence[Rec]], snap: Snapshot
) -> list[schedule.Deviation]:
    """The declared deviations (`when`, no built-in `kind`) other than those on an administration form (listed
    with the administrations): with `on = FORM` one per record of FORM its `when` holds for; without, one for
    the participant when `when` holds, naming the record its `record` expression finds (docs/protocol.md)."""
    out: list[schedule.Deviation] = []
    on_administrations = _administration_forms(m)
    for d in declared:
        if d.get("kind") or not d.get("when") or d.get("on") in on_administrations:
            continue
        kind = _label(d.get("label", d["code"]))
        if d.get("on"):
            for r in records.get(str(d["on"]), ()):
                if interpreter.truth(str(d["when"]), snap.with_record(r)) is True:
                    out.append({"kind": kind, "code": d["code"], "event": r.event_id, "detail": r.event_id})
            continue
        if interpreter.truth(str(d["when"]), snap) is not True:
            continue
        found = interpreter.value_of(str(d["record"]), snap) if d.get("record") else None
        event = found.event_id if isinstance(found, Rec) else None
        line: schedule.Deviation = {"kind": kind, "code": d["code"], "event": event}
        if event:
            line["detail"] = event
        out.append(line)
    return out


def _deviation(d: Mapping[str, Any], item: AdministrationLine, given: str | None) -> schedule.Deviation:
    """A deviation of one administration: its number (`dose` too, the key format 1's readers and the dose
    wizard read), when it was due, when it was given (None: not given) and the record that shows it."""
    return {
        "kind": _label(d.get("label", d["code"])),
        "code": d["code"],
        "number": item["number"],
        "dose": item["number"],
        "due": item["due"],
        "given": given,
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
