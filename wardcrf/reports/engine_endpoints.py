"""Every declared endpoint of a format-2 version, per arm, read out of the records (`wardcrf report endpoints`).

`reports.endpoints` analyses participant-level `Outcome`s; this module makes
them from the ward's records with the engine (docs/protocol.md, "[analysis]
and endpoints"):

* the origin is the endpoint's `from` anchor (randomization, enrollment,
  consent) of each participant, as the schedule reads it;
* `proportion`: the endpoint's `event` expression (true, false or unknown);
  with a `day`, only once the participant's study day N from `from` is over
  (before it the participant is not yet evaluable: an event not yet recorded
  is not yet false);
* `mortality` by day N: death is the `[disposition]` record whose status is
  the declared `death` code, on its `death_date`; a participant not known
  dead is known alive up to the latest date of any of their records, but
  those `[disposition] not_seen_alive` lists (a contact that did not reach
  them);
* `time_to_event`: `event_at` (a date: the event happened then), else
  `censor_at` (known free of it then), in days from the origin; without a
  `censor_at`, the latest date of any of the participant's records, the
  rule `mortality` follows (a time to death and a death by day N then
  censor each participant at the same date).

* `paired_change`: the endpoint's `form`.`field` before and after treatment,
  each participant's value chosen by `[analysis.baseline]` and
  `[analysis.post_treatment]` (the record's `timepoint_field` labels the
  visit, its `date_field` is the sample date, counted from the participant's
  first or last administration given; `regimen_complete` against the
  administrations their arm schedules; `evaluable`): the selection of format
  1's outcomes report (`outcomes.select`), the Wilcoxon signed-rank test of
  `stats.signed_rank` per arm (`endpoints.analyse`), the values left out
  listed with the reason.

The arm is the allocated one. On a blinded ward the arm is not known, so no
endpoint is split by arm: a proportion, mortality or time-to-event endpoint
is given once for all participants (under the arm key `all`, nothing
compared), a paired one counts everyone as not assigned, and the report
says the trial is blinded (the hub analyses after unblinding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, cast
from zoneinfo import ZoneInfo

from .. import protocol as protocols
from ..clock import now_utc, zone
from ..engine import eligibility, interpreter, visits
from ..engine.interpreter import EvalError, Snapshot
from ..errors import Refused
from . import endpoints, outcomes, proportions, stats, survival
from .render import Doc

if TYPE_CHECKING:
    from ..engine.model import Model
    from ..site import Session


ALL = "all"
"""The one group of a blinded ward's endpoints (every participant; no arm is known there)."""


class ProtocolRef(TypedDict):
    id: str
    version: str


class Methods(TypedDict):
    """The analysis' stated methods (the protocol's `[analysis]`, or the defaults)."""

    ci_level: float
    proportion_ci: str
    difference_ci: str
    survival_ci: str


class PairedValue(TypedDict):
    """One participant's value of a paired endpoint: used, or left out and why."""

    participant: str
    record: str
    visit: str
    """baseline or post_treatment."""
    date: str | None
    value: float
    reason: str


class PairedParticipant(outcomes.PairedRow):
    """One participant of a paired endpoint, with their arm (None: not assigned, or blinded)."""

    arm: str | None


class PairedEndpoint(endpoints.EndpointResult):
    """A `paired_change` endpoint: per arm before/after and the tests, "improved in k of n", each
    participant's values, the values per visit, and the values left out with their reason."""

    form: str
    field: str
    unit: str
    improves: str
    improved: dict[str, int]
    """Per arm: participants whose value moved strictly in the favourable direction."""
    excluded: list[PairedValue]
    participants: list[PairedParticipant]
    values: dict[str, outcomes.VisitCounts]
    """baseline and post_treatment: values labelled, used, excluded, in the window but not selected."""


class EndpointsReport(TypedDict):
    """`wardcrf report endpoints`: every declared endpoint per arm (`compute`; `document` writes it)."""

    protocol: ProtocolRef
    at: str
    participants: int
    blinded: bool
    methods: Methods
    endpoints: list[endpoints.EndpointResult | PairedEndpoint]


class Person(NamedTuple):
    """One enrolled participant as the analyses read them."""

    id: str
    arm: str | None
    """The allocated arm; None when not allocated, or on a blinded ward."""
    anchors: Mapping[str, Any]
    snap: Snapshot
    scheduled: str | None
    """The arm whose schedule they follow (blinded: the first arm, whose schedule the others repeat)."""
    enrolled: bool = True
    """False: records of an administration given without an enrollment (entered as records, not through the
    ward's services): in the paired endpoints' and the outcomes report's analysis population ("received an
    administration", format 1's "at least one recorded dose"), not in the enrolled count or other endpoints."""


@dataclass(frozen=True)
class Population:
    """The enrolled participants of a format-2 ward and what their analysis needs (`read`)."""

    session: Session
    proto: protocols.Protocol
    model: Model
    at: datetime
    tz: ZoneInfo
    arms: list[str]
    blinded: bool
    settings: endpoints.Settings
    people: list[Person]


def read(
    session: Session,
    at: datetime | None = None,
    *,
    quartiles: str | None = None,
    paired_test: str | None = None,
) -> Population:
    """The active format-2 version's enrolled participants with their arm and records (refused on a format-1
    version, and for a role that may not report the trial's data). `quartiles`/`paired_test` replace the
    protocol's (a sensitivity analysis; the caller says so)."""
    from ..workflow.base import participant_from_row
    from ..workflow.engine_rules import plan_inputs

    session.require("export.data", what="export or report the trial's data")
    store = session.store
    proto = protocols.active(store)  # the trial's analysis: the active version declares the endpoints
    m = proto.engine
    if m is None:
        raise Refused(
            f"{proto.id} {proto.version} is a format-1 protocol, which declares no endpoints to report this way;"
            " its outcomes are the outcomes report ([wardcrf report outcomes])"
        )
    at = at or now_utc()
    site_zone = str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC")
    tz = zone(site_zone)
    settings = endpoints.Settings.of(m.data.get("analysis", {}))
    settings = replace(
        settings,
        quartiles=quartiles or settings.quartiles,
        paired_test=paired_test or settings.paired_test,
    )
    arms = [a.code for a in m.arms]
    blinded = bool(store.one("SELECT 1 FROM rand_allocations WHERE arm IS NULL AND kit IS NOT NULL"))
    people = []
    for row in store.rows("SELECT * FROM participants WHERE enrollment_event IS NOT NULL ORDER BY number"):
        p = participant_from_row(row)
        anchors, arm = plan_inputs(store, m, p, site_zone)
        arm_of_schedule = arm  # blinded: the first arm, whose schedule the others repeat
        allocated = store.one("SELECT arm FROM rand_allocations WHERE participant = ?", (p.id,))
        if len(arms) > 1:
            arm = str(allocated[0]) if allocated and allocated[0] else None
        records = eligibility.participant_records(store, m, p.id)
        snap = Snapshot(
            records=records,
            now=at,
            zone=tz,
            anchors=anchors,
            anchor_day=m.calendar.anchor_day,
            participant={"id": p.id, "arm": None if blinded else arm},
        )
        anchors = visits.timeline(m, snap)  # first dose, screening, declared anchors: an endpoint's `from`
        snap = replace(snap, anchors=anchors)
        people.append(Person(p.id, None if blinded else arm, anchors, snap, arm_of_schedule))
    people.extend(_dosed_not_enrolled(store, m, {p.id for p in people}, at, tz, blinded))
    return Population(session, proto, m, at, tz, arms, blinded, settings, people)


def _dosed_not_enrolled(
    store: Any, m: Model, enrolled: set[str], at: datetime, tz: ZoneInfo, blinded: bool
) -> list[Person]:
    """Participants with a record of an administration form but no enrollment, by id (`Person.enrolled`):
    their schedule is the only arm's (several arms: none known), their anchors what their records give."""
    forms = sorted(
        {str(adm.record.get("form")) for r in m.regimens.values() for adm in r.administrations} - {"None"}
    )
    if not forms:
        return []
    marks = ", ".join("?" for _ in forms)
    subjects = store.rows(
        f"SELECT DISTINCT subject FROM records WHERE form IN ({marks}) AND subject LIKE 'participant:%'"
        " ORDER BY subject",
        tuple(forms),
    )
    arm = m.arms[0].code if len(m.arms) == 1 else None
    out = []
    for row in subjects:
        pid = str(row["subject"]).removeprefix("participant:")
        if pid in enrolled:
            continue
        snap = Snapshot(
            records=eligibility.participant_records(store, m, pid),
            now=at,
            zone=tz,
            anchors={},
            anchor_day=m.calendar.anchor_day,
            participant={"id": pid, "arm": None if blinded else arm},
        )
        anchors = visits.timeline(m, snap)
        out.append(Person(pid, None if blinded else arm, anchors, replace(snap, anchors=anchors), arm, False))
    return out


def compute(session: Session, at: datetime | None = None) -> EndpointsReport:
    """Every endpoint of the active format-2 version, per arm, with what was left out and why."""
    return report(read(session, at))


def report(pop: Population) -> EndpointsReport:
    """Every declared endpoint of `pop`'s version, per arm (`compute`; the outcomes report builds on it)."""
    m, settings = pop.model, pop.settings
    results: list[endpoints.EndpointResult | PairedEndpoint] = []
    for ep in m.data.get("analysis", {}).get("endpoints", ()):
        if ep.get("kind", "paired_change") == "paired_change":
            results.append(_paired(pop, ep))
            continue
        if pop.blinded:  # no arm is known: one group of every participant, nothing compared
            ep = {k: v for k, v in ep.items() if k not in ("reference", "compare")}
            outcomes_ = [_outcome(m, ep, ALL, p.anchors, p.snap, pop.tz) for p in pop.people if p.enrolled]
            results.append(endpoints.analyse(ep, [ALL], outcomes_, settings))
            continue
        outcomes_ = [_outcome(m, ep, p.arm, p.anchors, p.snap, pop.tz) for p in pop.people if p.enrolled]
        results.append(endpoints.analyse(ep, pop.arms, outcomes_, settings))
    return {
        "protocol": {"id": m.id, "version": m.version},
        "at": pop.at.astimezone(pop.tz).isoformat(timespec="minutes"),
        "participants": sum(1 for p in pop.people if p.enrolled),
        "blinded": pop.blinded,
        "methods": {
            "ci_level": settings.level,
            "proportion_ci": settings.proportion_ci,
            "difference_ci": settings.difference_ci,
            "survival_ci": settings.survival_ci,
        },
        "endpoints": results,
    }


def given_dates(pop: Population, person: Person) -> list[date]:
    """Local dates of the participant's administrations given, in order (empty: not in the analysis
    population of the paired endpoints and the outcomes report)."""
    return sorted(_administered(pop.model, person.snap, pop.tz))


def planned(pop: Population, person: Person, given: int) -> int:
    """How many administrations the participant's arm plans (blinded, several arms: those given)."""
    from ..engine import due

    m = pop.model
    return due.planned(m, person.scheduled) if person.scheduled is not None or len(m.arms) == 1 else given


def _paired(pop: Population, ep: Mapping[str, Any]) -> PairedEndpoint:
    """A `paired_change` endpoint per arm: each participant's before and after values chosen as format 1's
    outcomes report chooses them, the statistics of `endpoints.paired_arm` per arm (module docstring)."""
    from ..exports.dataset import Dataset

    proto = pop.proto
    spec = next(e for e in proto.analysis.endpoints if (e.form, e.field) == (ep.get("form"), ep.get("field")))
    ds = Dataset.for_session(pop.session)
    outcomes_: list[endpoints.Outcome] = []
    chosen = outcomes.Selection()
    for person in pop.people:
        given = given_dates(pop, person)
        if not given:  # the analysis population: participants who received an administration
            outcomes_.append(endpoints.Outcome(person.arm))
            continue
        sel = outcomes.select(
            spec,
            proto.analysis.windows,
            {person.id: outcomes.Participant(person.id, dose_dates=given)},
            {person.id: list(ds.records(participant=person.id))},
            planned(pop, person, len(given)),
            str(pop.tz.key),
        )
        outcomes.merge(chosen, sel)
        b, a = sel.used["baseline"].get(person.id), sel.used["post_treatment"].get(person.id)
        outcomes_.append(
            endpoints.Outcome(person.arm, before=b.value if b else None, after=a.value if a else None)
        )
    result = endpoints.analyse(ep, pop.arms, outcomes_, pop.settings)
    arm_of = {p.id: p.arm for p in pop.people}
    rows = [
        PairedParticipant(**row, arm=arm_of.get(row["participant"]))
        for row in outcomes.paired_rows(chosen, [p.id for p in pop.people], spec.improves)
    ]
    arms = cast("dict[str, endpoints.PairedArm]", result.get("arms") or {})
    return {
        **result,
        "form": spec.form,
        "field": spec.field,
        "unit": outcomes.endpoint_unit(ds, spec),
        "improves": spec.improves,
        "improved": {a: x["improved"] for a, x in arms.items()},
        "excluded": [PairedValue(**x) for x in chosen.excluded],  # type: ignore[typeddict-item]
        "participants": rows,
        "values": outcomes.value_counts(chosen),
    }


def _administered(m: Any, snap: Snapshot, tz: Any) -> set[date]:
    """Local dates of the participant's administrations given (any regimen: the start of each record)."""
    out: set[date] = set()
    for regimen in m.regimens.values():
        for adm in regimen.administrations:
            roles = adm.record
            for rec in snap.records.get(str(roles.get("form")), ()):
                if rec.values.get(str(roles.get("not_given", ""))) is True:
                    continue
                day = _day(rec.values.get(str(roles.get("start", ""))), tz)
                if day is not None:
                    out.add(day)
    return out


def _day(value: Any, tz: Any) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(tz).date()
    if isinstance(value, date):
        return value
    return None


def _outcome(
    m: Any, ep: Mapping[str, Any], arm: str | None, anchors: Mapping[str, Any], snap: Snapshot, tz: Any
) -> endpoints.Outcome:
    origin = _day(anchors.get(str(ep.get("from", "randomization"))), tz)
    kind = ep.get("kind")
    try:
        if kind == "proportion":
            if "day" in ep and not _day_over(int(ep["day"]), origin, snap, tz):
                return endpoints.Outcome(arm, pending=True)  # before its day the event is not yet false
            return endpoints.Outcome(arm, met=interpreter.truth(str(ep["event"]), snap))
        if origin is None:
            return endpoints.Outcome(arm)
        if kind == "mortality":
            died, last = _death_and_last_known(m, snap, tz)
            if died is not None:
                return endpoints.Outcome(arm, time=float((died - origin).days), event=True)
            return endpoints.Outcome(arm, time=float((last - origin).days) if last else None)
        event_at = _day(interpreter.value_of(str(ep["event_at"]), snap), tz)
        if event_at is not None:
            return endpoints.Outcome(arm, time=float((event_at - origin).days), event=True)
        if ep.get("censor_at"):
            censor = _day(interpreter.value_of(str(ep["censor_at"]), snap), tz)
        else:  # no censor_at: followed to the latest date of any record, as mortality counts (one rule)
            censor = _death_and_last_known(m, snap, tz)[1]
        return endpoints.Outcome(arm, time=float((censor - origin).days) if censor else None)
    except EvalError as exc:
        raise Refused(f"{m.id} {m.version}: endpoint {ep.get('code')}: {exc}") from None


def _day_over(day: int, origin: date | None, snap: Snapshot, tz: Any) -> bool:
    """Whether the participant's study day `day` from `origin` is over (`[calendar] anchor_day` counting, as
    `day_of`): from then on a proportion read at that day is evaluable. No origin yet: not evaluable."""
    if origin is None:
        return False
    n = (snap.now.astimezone(tz).date() - origin).days
    today = n if snap.anchor_day == 1 and n < 0 else n + snap.anchor_day
    return today > day


def _death_and_last_known(m: Any, snap: Snapshot, tz: Any) -> tuple[date | None, date | None]:
    """(date of death from `[disposition]`, latest date of any record) of the participant; the records the
    protocol says do not show the participant alive (`[disposition] not_seen_alive`) are not counted."""
    disp = m.data.get("disposition", {})
    died = None
    for rec in snap.records.get(str(disp.get("form", "")), ()):
        if rec.values.get(str(disp.get("status", ""))) == disp.get("death"):
            died = _day(rec.values.get(str(disp.get("death_date", ""))), tz) or _day(
                rec.values.get(str(disp.get("date", ""))), tz
            )
    unseen = [(str(e["form"]), e.get("when")) for e in disp.get("not_seen_alive", ())]
    last: date | None = None
    for recs in snap.records.values():
        for rec in recs:
            if any(rec.form == form and _holds(when, snap, rec) for form, when in unseen):
                continue  # a contact that did not see the participant alive (`[disposition] not_seen_alive`)
            for v in rec.values.values():
                d = _day(v, tz)
                if d is not None and (last is None or d > last) and d <= snap.now.astimezone(tz).date():
                    last = d
    return died, last


def _holds(when: str | None, snap: Snapshot, rec: Any) -> bool:
    """A `not_seen_alive` entry's `when` over the record (none: every record of the form); unknown is false."""
    if when is None:
        return True
    try:
        return interpreter.truth(when, snap.with_record(rec)) is True
    except EvalError:
        return False


def document(data: Mapping[str, Any]) -> Doc:
    """The report as a document (Markdown, HTML): each endpoint per arm (a blinded ward: all participants)
    with its interval and comparisons, in words; "—" or "not estimable: <reason>" where there is no number."""
    m = data["methods"]
    doc = Doc(
        f"Endpoints — {data['protocol']['id']} {data['protocol']['version']}",
        f"As of {data['at']}; {data['participants']} participants enrolled. "
        f"Confidence level {m['ci_level']:g}; proportions: {proportions.ONE_METHODS.get(m['proportion_ci'], m['proportion_ci'])}; "
        f"differences: {proportions.DIFF_METHODS.get(m['difference_ci'], m['difference_ci'])}; "
        f"time to event: Kaplan–Meier, {survival.CI_METHODS.get(m['survival_ci'], m['survival_ci'])}, log-rank test.",
    )
    if data["blinded"]:
        doc.section("Blinded").text.append(
            "The trial is blinded on this ward: no endpoint is split by arm (the hub analyses after unblinding)."
        )
    for ep in data["endpoints"]:
        kind = ep["kind"]
        sec = doc.section(
            f"{ep['code']} ({kind.replace('_', ' ')}{', primary' if ep.get('primary') else ''})"
        )
        ci = f"{ep.get('level', m['ci_level']) * 100:g}% CI"
        for arm, res in (ep.get("arms") or {}).items():
            name = _group(arm)
            if kind == "paired_change":
                w = res["wilcoxon"]
                sec.text.append(
                    f"{name}: {res['pairs']} pairs of {res['n']}; before median {_num(res['before']['median'])}, "
                    f"after median {_num(res['after']['median'])}; {ep['improves']} in "
                    f"{ep['improved'].get(arm, 0)} of {res['pairs']}; {w['method']}, p {w['p_text']}"
                )
            elif kind == "proportion":
                day = res.get("day")
                waiting = res.get("not_yet_evaluable", 0)
                why = endpoints.no_estimate(
                    _who(arm), res["n"] + res["unknown"] + waiting, day if waiting else None
                )
                sec.text.append(
                    f"{name}: {res['k']} of {res['n']}{f' evaluable at day {day}' if day else ''}, "
                    f"{_estimate(res, ci, why)}; outcome not known: {res['unknown']}"
                    + (f"; not yet evaluable (day {day} not over): {waiting}" if day else "")
                )
            elif kind == "mortality":
                day = res["day"]
                km = res.get("kaplan_meier")
                total = res["n"] + res["censored_before_day"] + res["no_follow_up"]
                sec.text.append(
                    f"{name}: dead by day {day}: {res['k']} of {res['n']} evaluable, "
                    f"{_estimate(res, ci, endpoints.no_estimate(_who(arm), total, day))}; "
                    f"censored alive before day {day}: {res['censored_before_day']}; "
                    f"no follow-up: {res['no_follow_up']}; Kaplan–Meier 1 − S at day {day}: "
                    + (
                        _estimate(km, ci, "")
                        if km
                        else f"not estimable: {res.get('kaplan_meier_reason') or 'nobody followed yet'}"
                    )
                )
            else:
                censored = res["n"] - res["events"]
                median = (
                    f"median {_num(res['median'])} days"
                    if res.get("median") is not None
                    else "median not reached"
                    if res["n"]
                    else "median not estimable: nobody followed yet"
                )
                sec.text.append(
                    f"{name}: {res['n']} followed, {res['events']} with the event, {censored} censored; "
                    f"no follow-up: {res['no_follow_up']}; {median}"
                )
        if kind == "time_to_event" and len(ep.get("arms") or {}) > 1:
            sec.text.append(f"Log-rank test across every arm: {_logrank(ep.get('log_rank') or {})}")
        for c in ep.get("comparisons") or []:
            pair = f"{_group(c['arm'])} vs {_group(c['against'])}"
            if "log_rank" in c:
                sec.text.append(f"{pair}: log-rank test {_logrank(c['log_rank'])}")
            elif c.get("estimate") is None:
                sec.text.append(f"{pair}: difference not estimable: {c.get('reason') or 'no participant'}")
            else:
                sec.text.append(f"{pair}: difference {_pct(c['estimate'])} ({ci} {_ci(c)}; {c['method']})")
        if not data["blinded"] or kind == "paired_change":
            sec.text.append(f"Not assigned to an arm: {ep.get('not_assigned', 0)}")
        for x in ep.get("excluded") or []:
            sec.text.append(f"Left out: {x['participant']} {x['visit']} {x['date'] or ''}: {x['reason']}")
    return doc


def _who(arm: str) -> str | None:
    return None if arm == ALL else arm


def _group(arm: str) -> str:
    return "All participants" if arm == ALL else arm


def _estimate(x: Mapping[str, Any], ci: str, why: str) -> str:
    """A proportion with its interval, or "not estimable" with the reason."""
    if x.get("estimate") is None:
        return f"not estimable: {why}"
    return f"{_pct(x['estimate'])} ({ci} {_ci(x)})"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.1f}%"


def _ci(x: Mapping[str, Any]) -> str:
    lo, hi = x.get("lower"), x.get("upper")
    return "—" if lo is None or hi is None else f"{_pct(lo)} to {_pct(hi)}"


def _logrank(lr: Mapping[str, Any]) -> str:
    if lr.get("p") is None:
        return f"not computed ({lr.get('reason') or 'no events'})"
    return f"chi-square {lr['statistic']:.3f} on {lr['df']} df, {stats.format_p(lr['p'])}"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
