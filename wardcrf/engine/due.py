"""What is due now, per participant: the one domain service every view of the schedule asks.

The dashboard and the ward list (`workflow.status.summary`, `list_rows`),
`wardcrf today`, the ward queue's order (`workflow.wardqueue`), the dose
wizard's rules of the day (`workflow.dose_visit.check_day`) and the dose
record's derived fields (`workflow.engine_rules`) all read the
participant's schedule from here, and the schedule comes from the protocol
(`engine.schedule` over the version's model), never from a formula of one
trial.

A format-1 version is read through `engine.protocol_v1.upgrade` (its one
regimen as declared data); the upgrade and the format-2 re-encoding of the
shipped trial give equal schedules (tests/unit/test_engine_protocol_v1.py),
and the answers equal the pre-engine formula kept as the tests' oracle
(tests/unit/format1_schedule.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from wardcrf.engine import interpreter, protocol_v1, schedule
from wardcrf.engine.interpreter import Snapshot
from wardcrf.engine.model import Administration, Model
from wardcrf.engine.schedule import Given, Slot

if TYPE_CHECKING:
    from wardcrf.protocol import Protocol

_MODELS: dict[str, Model] = {}
_PLANS: dict[tuple[Any, ...], tuple[tuple[Administration, tuple[Slot, ...]], ...]] = {}
_PLANS_MAX = 20_000


def model_for(proto: Protocol) -> Model:
    """The engine's model of a loaded version: a format-2 version's own, a format-1 version upgraded once
    per content (cached by SHA-256)."""
    if proto.engine is not None:
        return proto.engine
    hit = _MODELS.get(proto.sha256)
    if hit is None:
        hit = _MODELS[proto.sha256] = protocol_v1.upgrade(proto)
    return hit


def zone_of(model: Model, site_zone: str | None = None) -> str:
    name = model.calendar.zone or site_zone
    if name is None:
        raise ValueError("the protocol states no zone and no site zone was given")
    return name


def conditions(model: Model, snap: Snapshot, arm: str | None = None) -> dict[str, bool]:
    """The `when` and `stop_when` of the arm's administrations over the participant's records.

    Unknown (a blank fact) counts as false: an administration whose `when`
    cannot be decided does not apply yet, a course whose `stop_when` cannot be
    decided goes on (docs/protocol.md, "Blank and unknown").
    """
    out: dict[str, bool] = {}
    for regimen in model.regimens_of(arm):
        for adm in regimen.administrations:
            for text in (adm.when, adm.schedule.stop_when):
                if text is not None and text not in out:
                    out[text] = interpreter.truth(text, snap) is True
    return out


def _administrations(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    arm: str | None,
    site_zone: str | None,
    facts: Mapping[str, bool] | None = None,
) -> list[tuple[Administration, list[Slot]]]:
    """Every administration of the participant's arm with its slots, regimens in declared order.

    Remembered per (version, anchors, arm, zone, conditions): the slots are
    frozen and depend on nothing else, and a ward asks for the same few
    enrollment days over and over (every list, every `today`). Bounded.
    """
    key = (
        model.sha256,
        tuple(sorted(anchors.items())),
        arm,
        site_zone,
        tuple(sorted(facts.items())) if facts else (),
    )
    hit = _PLANS.get(key)
    if hit is None:
        plan = schedule.plan(model, anchors, arm=arm, zone=site_zone, conditions=facts)
        hit = tuple((adm, tuple(slots)) for regimen in plan.values() for adm, slots in regimen)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[key] = hit
    return [(adm, list(slots)) for adm, slots in hit]


def planned(model: Model, arm: str | None = None) -> int:
    """How many administrations the arm's regimens plan (a variable course counts its maximum)."""
    return sum(a.schedule.count_max for r in model.regimens_of(arm) for a in r.administrations)


def opens_before_minutes(model: Model) -> int:
    """How long before its due time an administration's window opens (the widest of the protocol's):
    the ward queue counts a dose "due now" from then (`workflow.wardqueue` stores due times)."""
    widest = max(
        (-a.window[0] for r in model.regimens.values() for a in r.administrations),
        default=timedelta(0),
    )
    return max(0, int(widest.total_seconds() // 60))


def slot(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    number: int,
    *,
    arm: str | None = None,
    site_zone: str | None = None,
) -> Slot | None:
    """Administration `number` (counted across the regimen) of a participant: its day, due time and window."""
    for _, slots in _administrations(model, anchors, arm, site_zone):
        for s in slots:
            if s.number == number:
                return s
    return None


def timing(s: Slot, start: datetime) -> str:
    """`early`, `on_time` or `late` for an administration started at `start` (the window is inclusive)."""
    if start < s.opens:
        return "early"
    if start > s.closes:
        return "late"
    return "on_time"


def next_and_missing(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    given: Sequence[Given],
    holds: Sequence[str],
    at: datetime,
    *,
    arm: str | None = None,
    site_zone: str | None = None,
    facts: Mapping[str, bool] | None = None,
) -> tuple[schedule.NextDose | None, list[schedule.Deviation]]:
    """The next administration to give (number, due, window, state: upcoming, due now, window closing,
    overdue or held) and one `missing dose` item per administration past its window and not given.

    `given`: the participant's administration records, in the order given
    (numbered across the regimen, as the records number them). A participant
    whose anchor has not happened (not enrolled) has nothing due. `facts`:
    the administrations' conditions (`conditions`), needed when the regimen has any.
    """
    rows: list[schedule.SlotState] = []
    taken = 0
    for adm, slots in _administrations(model, anchors, arm, site_zone, facts):
        if not slots:
            continue
        mine = list(given[taken : taken + len(slots)])
        taken += len(mine)
        rows.extend(schedule.states(adm, slots, mine, at))
    if not rows:
        return None, []
    nxt = schedule.next_to_give(rows)
    if holds and nxt is not None:  # the gates' refusals hold the next administration, whichever it is
        rows[rows.index(nxt)] = schedule.SlotState(nxt.slot, schedule.HELD, hold="; ".join(holds))
    return schedule.dose_view(rows, at, zone_of(model, site_zone))


def placed(
    model: Model,
    anchors: Mapping[str, date | datetime | None],
    number: int,
    start: datetime,
    *,
    arm: str | None = None,
    site_zone: str | None = None,
) -> tuple[datetime, str, int]:
    """Administration `number` started at `start`: its due time (local to the protocol's zone), its
    timing (`early`, `on_time`, `late`) and the minutes outside the window (0 when on time).

    What the dose record stores and what the dose wizard tells before anything is typed.
    """
    s = slot(model, anchors, number, arm=arm, site_zone=site_zone)
    if s is None:
        raise ValueError(f"administration {number} is not in the schedule")
    local = ZoneInfo(zone_of(model, site_zone))
    due_at = (s.due or s.opens).astimezone(local)
    word = timing(s, start)
    edge = s.closes if word == "late" else s.opens
    outside = 0 if word == "on_time" else int(abs((start - edge).total_seconds()) // 60)
    return due_at, word, outside
