"""Every declared endpoint of a format-2 version, per arm, read out of the records (`wardcrf report endpoints`).

`reports.endpoints` analyses participant-level `Outcome`s; this module makes
them from the ward's records with the engine (docs/protocol.md, "[analysis]
and endpoints"):

* the origin is the endpoint's `from` anchor (randomization, enrollment,
  consent) of each participant, as the schedule reads it;
* `proportion`: the endpoint's `event` expression (true, false or unknown);
* `mortality` by day N: death is the `[disposition]` record whose status is
  the declared `death` code, on its `death_date`; a participant not known
  dead is known alive up to the latest date of any of their records;
* `time_to_event`: `event_at` (a date: the event happened then), else
  `censor_at` (known free of it then), in days from the origin.

The arm is the allocated one. On a blinded ward the arm is not known, so no
endpoint is split by arm: every participant is counted as not assigned and
the report says the trial is blinded (the hub analyses after unblinding).
`paired_change` endpoints are format 1's outcomes report (`report outcomes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from .. import protocol as protocols
from ..clock import now_utc, zone
from ..engine import eligibility, interpreter
from ..engine.interpreter import EvalError, Snapshot
from ..errors import Refused
from . import endpoints
from .render import Doc

if TYPE_CHECKING:
    from ..site import Session


class ProtocolRef(TypedDict):
    id: str
    version: str


class Methods(TypedDict):
    """The analysis' stated methods (the protocol's `[analysis]`, or the defaults)."""

    ci_level: float
    proportion_ci: str
    difference_ci: str
    survival_ci: str


class EndpointNote(TypedDict):
    """An endpoint this report does not compute, and where it is (format 1's paired change)."""

    code: str | None
    kind: str
    note: str


class EndpointsReport(TypedDict):
    """`wardcrf report endpoints`: every declared endpoint per arm (`compute`; `document` writes it)."""

    protocol: ProtocolRef
    at: str
    participants: int
    blinded: bool
    methods: Methods
    endpoints: list[endpoints.EndpointResult | EndpointNote]


def compute(session: Session, at: datetime | None = None) -> EndpointsReport:
    """Every endpoint of the active format-2 version, per arm, with what was left out and why."""
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
    analysis = m.data.get("analysis", {})
    settings = endpoints.Settings.of(analysis)
    arms = [a.code for a in m.arms]
    blinded = bool(store.one("SELECT 1 FROM rand_allocations WHERE arm IS NULL AND kit IS NOT NULL"))
    people = []
    for row in store.rows("SELECT * FROM participants WHERE enrollment_event IS NOT NULL ORDER BY number"):
        p = participant_from_row(row)
        anchors, arm = plan_inputs(store, m, p, site_zone)
        allocated = store.one("SELECT arm FROM rand_allocations WHERE participant = ?", (p.id,))
        if len(arms) > 1:
            arm = str(allocated[0]) if allocated and allocated[0] else None
        records = eligibility.participant_records(store, m, p.id)
        snap = Snapshot(records=records, now=at, zone=tz, anchors=anchors, anchor_day=m.calendar.anchor_day)
        people.append((p.id, None if blinded else arm, anchors, snap))
    results: list[endpoints.EndpointResult | EndpointNote] = []
    for ep in analysis.get("endpoints", ()):
        if ep.get("kind") == "paired_change":
            results.append(
                {"code": ep.get("code"), "kind": "paired_change", "note": "format 1's outcomes report"}
            )
            continue
        outcomes = [_outcome(m, ep, arm, anchors, snap, tz) for _pid, arm, anchors, snap in people]
        results.append(endpoints.analyse(ep, arms, outcomes, settings))
    return {
        "protocol": {"id": m.id, "version": m.version},
        "at": at.astimezone(tz).isoformat(timespec="minutes"),
        "participants": len(people),
        "blinded": blinded,
        "methods": {
            "ci_level": settings.level,
            "proportion_ci": settings.proportion_ci,
            "difference_ci": settings.difference_ci,
            "survival_ci": settings.survival_ci,
        },
        "endpoints": results,
    }


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
        censor = _day(interpreter.value_of(str(ep["censor_at"]), snap), tz) if ep.get("censor_at") else None
        return endpoints.Outcome(arm, time=float((censor - origin).days) if censor else None)
    except EvalError as exc:
        raise Refused(f"{m.id} {m.version}: endpoint {ep.get('code')}: {exc}") from None


def _death_and_last_known(m: Any, snap: Snapshot, tz: Any) -> tuple[date | None, date | None]:
    """(date of death from `[disposition]`, latest date of any record) of the participant."""
    disp = m.data.get("disposition", {})
    died = None
    for rec in snap.records.get(str(disp.get("form", "")), ()):
        if rec.values.get(str(disp.get("status", ""))) == disp.get("death"):
            died = _day(rec.values.get(str(disp.get("death_date", ""))), tz) or _day(
                rec.values.get(str(disp.get("date", ""))), tz
            )
    last: date | None = None
    for recs in snap.records.values():
        for rec in recs:
            for v in rec.values.values():
                d = _day(v, tz)
                if d is not None and (last is None or d > last) and d <= snap.now.astimezone(tz).date():
                    last = d
    return died, last


def document(data: Mapping[str, Any]) -> Doc:
    """The report as a document (Markdown, HTML): each endpoint per arm with its interval and comparisons."""
    doc = Doc(
        f"Endpoints — {data['protocol']['id']} {data['protocol']['version']}",
        f"As of {data['at']}; {data['participants']} participants enrolled. "
        f"Confidence level {data['methods']['ci_level']:g}; proportions {data['methods']['proportion_ci']}, "
        f"differences {data['methods']['difference_ci']}.",
    )
    if data["blinded"]:
        doc.section("Blinded").text.append(
            "The trial is blinded on this ward: no endpoint is split by arm (the hub analyses after unblinding)."
        )
    for ep in data["endpoints"]:
        sec = doc.section(f"{ep['code']} ({ep['kind']}{', primary' if ep.get('primary') else ''})")
        if ep.get("note"):
            sec.text.append(str(ep["note"]))
            continue
        for arm, res in (ep.get("arms") or {}).items():
            shown = {k: v for k, v in res.items() if not isinstance(v, dict | list)}
            sec.text.append(f"{arm}: " + ", ".join(f"{k} {_num(v)}" for k, v in shown.items()))
        for c in ep.get("comparisons") or []:
            shown = {
                k: v for k, v in c.items() if k not in ("arm", "against") and not isinstance(v, dict | list)
            }
            sec.text.append(
                f"{c['arm']} vs {c['against']}: " + ", ".join(f"{k} {_num(v)}" for k, v in shown.items())
            )
        sec.text.append(f"Not assigned to an arm: {ep.get('not_assigned', 0)}")
    return doc


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
