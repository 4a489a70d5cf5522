"""Read models: a participant's state, the participant list, and what is due today.

Everything here is computed from the projections at the moment of asking
(never stored), so a deviation or a "missing dose" always reflects the
records as they are now, amendments included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from .. import protocol as protocols
from .. import text
from ..clock import zone
from ..engine.schedule import Deviation, NextDose
from ..errors import Refused
from ..registration import require_installed
from ..store import Store
from . import amendments, safety
from .base import Participant, get_participant, now, participant_from_row
from .declared import CumulativeDose
from .participants import age_on, sentinel_state

if TYPE_CHECKING:
    from ..site import Session


def _site_zone(store: Store) -> str | None:
    z = store.scalar("SELECT zone FROM site WHERE id = 1")
    return None if z is None else str(z)


class ConsentState(TypedDict):
    valid: bool
    detail: str
    """Why the consent is (not) valid, in the ward's words."""
    event: str | None
    time: str | None
    version: str | None


class DoseLine(TypedDict):
    """One dose given, as the participant screen lists it."""

    dose: int
    start: str
    day: int | None
    window: str
    kit_id: str | None
    amount: float | None
    """The amount given, in `unit`."""
    unit: str | None
    event: str


class AdministrationLine(TypedDict):
    """One slot of a format-2 participant's schedule and what fills it (`FormatTwoExtras.administrations`)."""

    number: int
    regimen: str
    """"blinded" on a blinded ward."""
    administration: str
    product: str
    """"blinded" on a blinded ward."""
    day: int
    due: str
    state: str
    timing: str | None
    """on_time, early or late, for a slot given."""
    event: str | None


class _CalendarWindow(TypedDict, total=False):
    window: list[str]
    """A calendar visit's window: its first and last local dates (inclusive)."""
    placed_from: str
    """A calendar visit not yet placed (state "not yet placed", `due` empty): the day its anchor's event
    will date it from, e.g. "day 8 after first dose"."""


class VisitLine(_CalendarWindow):
    """One occurrence of a visit on a format-2 ward (`FormatTwoExtras.visits`; `engine.visits`): a visit that
    repeats per administration, or a calendar visit (`anchor` + `day` + `window`, `worklist` true)."""

    visit: str
    """The visit's code (ODM SE.CODE)."""
    number: int
    """The administration it goes with, numbered across the regimen (ODM StudyEventRepeatKey); a calendar
    visit's occurrence, 1, 2, ... (1 when it does not repeat)."""
    visitnum: float
    name: str
    """SDTM VISIT: the label with {n} and {day} filled."""
    due: str
    """Local time (or date) it is due, or took place once its administration is recorded; a calendar
    visit's date (its `day` from the anchor)."""
    state: str
    """Before its administration is recorded, the administration's timing word (upcoming, due now, window
    closing, overdue, held, missed); once it is, "done", or "due now" / "overdue" while forms are owed.
    A calendar visit: upcoming before its window, due now in it, window closing on its last day, overdue
    after it while a required form is owed, done when none is; "not yet placed" while its anchor's event
    (a first dose, a declared anchor) has not happened."""
    event: str | None
    """The administration record it goes with (None for a calendar visit)."""
    owed: list[str]
    """Required forms it lists that no record placed in it fills."""


class FormatTwoExtras(TypedDict, total=False):
    """What a format-2 version of its own adds to a participant's summary (workflow/engine_rules.summary).

    A base with `total=False` rather than `NotRequired[...]`: under
    `from __future__ import annotations` Python 3.11 cannot see `NotRequired`
    in a string annotation, and `__optional_keys__` would be wrong at runtime.
    """

    protocol: dict[str, str]
    arm: str | None
    """The allocated arm; None when blinded (then `kit`) or not randomized."""
    kit: str
    administrations: list[AdministrationLine]
    """Each slot of the arm's schedule: number, regimen, administration, product, day, due, state..."""
    cumulative_dose: list[CumulativeDose]
    """The doses given, summed per unit."""
    visits: list[VisitLine]
    """Each occurrence of the visits that repeat per administration (`[[visits]] repeat.per`)."""


class ParticipantSummary(FormatTwoExtras):
    """Everything a ward needs to know about one participant now (`summary`, `show`: the
    participant screen, the dose wizard, `participant show --json`)."""

    id: str
    status: str
    sex: str | None
    age: int | None
    consent: ConsentState
    eligible: bool | None
    failed_criteria: list[str]
    enrolled_on: str | None
    doses_given: int
    doses_planned: int
    doses: list[DoseLine]
    next_dose: NextDose | None
    """`dose_schedule`'s next dose (number, due time, window, state), None when none is planned."""
    post_dose_vitals_due: list[int]
    deviations: list[Deviation]
    open_aes: list[safety.OpenAe]
    adverse_events: int
    ae_expected: list[safety.ExpectedAe]
    signoff: safety.Signoff
    dsmg_hold: str | None


def summary(
    store: Store, pid: str, at: datetime | None = None, proto: protocols.Protocol | None = None
) -> ParticipantSummary:
    """Everything a ward needs to know about one participant now.

    `proto`: the version to read them under when the caller has it (the ward list's `protocols_of`);
    else theirs, refused by name when it is not loaded here (`amendments.protocol_of`).
    """
    p = get_participant(store, pid)
    if p is None:
        raise Refused(f"unknown participant {text.excerpt(pid)} (see `wardcrf participant list`)")
    pid = p.id  # as stored, whatever case or padding was typed
    if proto is None:
        proto = amendments.protocol_of(store, p)  # theirs once enrolled, not necessarily the active one
    at = at or now()
    from .engine_rules import summary as engine_summary

    if proto.engine is not None:  # every version the engine runs (format 1's through `protocol.run_as`)
        return engine_summary(store, proto, p, at)
    return _read_as_stored(store, proto, p, at)


CANNOT_RUN = "cannot run"
"""The worklist state of a participant on a version the engine cannot run (`today`)."""


def cannot_run(proto: protocols.Protocol) -> str:
    """The one line a ward shows for a participant on a version the engine cannot run."""
    return (
        f"protocol {proto.id} {proto.version} cannot run on this wardcrf (a format-1 version stored before "
        "the engine ran format 1): nothing is due and no record is saved under it; write it in format 2, "
        "`wardcrf protocol load` it and `wardcrf protocol apply` it to the participant"
    )


def _read_as_stored(
    store: Store, proto: protocols.Protocol, p: Participant, at: datetime
) -> ParticipantSummary:
    """A participant on a format-1 version stored before the engine ran format 1 that the engine cannot
    run (`protocol.run_as` gives it as stored; docs/engine.md): their records read with the declarations of
    the re-encoding every format-1 version runs on (by format 1's contract the version's forms are its
    forms: `reencode_v1.base_model`), under their own version's id and consent rules; nothing is due (no
    record can be saved under it) and the status says why."""
    from dataclasses import replace

    from ..engine import reencode_v1, ward
    from .engine_rules import summary as engine_summary

    base = ward.of(reencode_v1.base_model())
    reading = replace(base, id=proto.id, version=proto.version, consent=proto.consent)
    s = engine_summary(store, reading, p, at)
    s["protocol"] = {"id": proto.id, "version": proto.version}
    s["status"] = f"{s['status']}; {CANNOT_RUN}: protocol {proto.id} {proto.version}"
    s["next_dose"] = None
    s["post_dose_vitals_due"] = []
    return s


class _WardRowExtras(TypedDict, total=False):
    cumulative_dose: list[CumulativeDose]
    """The doses given, summed per unit (`FormatTwoExtras.cumulative_dose`, as `participant show`); or, when
    the version names its one unit's column (`dose.cumulative`, docs/protocol.md), that column's key instead
    (the first trial's column gives its key, spaces as underscores: a name from the protocol, not the code)
    holding the sum given in that unit."""
    visits_owed: list[str]
    """Format 2: the forms the per-administration visits owe now (`VisitLine.owed`, named with the visit)."""
    version_not_loaded: str
    """The version the participant is on (``TRIAL 1.2``) when this laptop has not loaded it: the row
    then says so (`status` "version not loaded", `notice`) and holds only what is stored (open AEs,
    sign-off; `doses_given` counts stored records of format 1's `dose` form: a format-2 version's
    administration forms are its own, unknown here), nothing computed from a schedule (no next dose,
    nothing owed, no planned count: 0)."""
    notice: str
    """With `version_not_loaded`: the one line a ward shows (`amendments.not_loaded_notice`)."""


class WardRow(_WardRowExtras):
    """One participant's line of the ward list (dashboard, ward list, `participant list --json`)."""

    id: str
    status: str
    sex: str | None
    age: int | None
    enrolled_on: str | None
    doses_given: int
    doses_planned: int
    next_dose: NextDose | None
    """The next dose as `dose_schedule` gives it (due time, window, holds), None when none is planned."""
    post_dose_vitals_due: list[int]
    """Doses given whose post-dose vitals are owed."""
    deviations: int
    open_aes: int
    ae_expected: int
    """Prespecified events seen at a post-dose check that still lack their AE form."""
    signoff: str
    """The casebook sign-off state (``not signed`` ...)."""


class WardPage(TypedDict):
    """A page of the ward list in ward order, with the totals its title shows (`ward_page`)."""

    total: int
    attention: int
    offset: int
    rows: list[WardRow]


def list_row(s: ParticipantSummary) -> WardRow:
    """One participant's line of the ward list, from their `summary`."""
    row = _list_row(s)
    owed = [
        f"{v['name']}: {f} ({v['state']})"
        for v in s.get("visits", ())
        if v["state"] in ("due now", "window closing", "overdue")
        for f in v["owed"]
    ]
    if owed:
        row["visits_owed"] = owed
    return row


def _list_row(s: ParticipantSummary) -> WardRow:
    row = WardRow(
        id=s["id"],
        status=s["status"],
        sex=s["sex"],
        age=s["age"],
        enrolled_on=s["enrolled_on"],
        doses_given=s["doses_given"],
        doses_planned=s["doses_planned"],
        next_dose=s["next_dose"],
        post_dose_vitals_due=s["post_dose_vitals_due"],
        deviations=len(s["deviations"]),
        open_aes=len(s["open_aes"]),
        ae_expected=len(s["ae_expected"]),
        signoff=s["signoff"]["state"],
    )
    named = next((c for c in s.get("cumulative_dose", ()) if c.get("column")), None)
    if named is not None:  # the version names its one unit's column (`dose.cumulative`)
        row[named["column"].replace(" ", "_")] = float(named["value"])  # type: ignore[literal-required]
    else:  # per unit (products dosed in mg, mL...)
        row["cumulative_dose"] = s.get("cumulative_dose", [])
    return row


def list_participants(session: Session) -> list[WardRow]:
    """Every participant's line of the ward list (see `list_rows`), by participant number."""
    session.require("record.read", what="read participants")
    return list_rows(session.store, now())


def find_participant(session: Session, typed: str) -> str | None:
    """The participant a typed or scanned id names, or None.

    The id itself in any case, padded (a wristband scan, a hurried typist),
    or only its number when exactly one participant has it ("7", "007" ->
    WUH01-007 on a one-site laptop).
    """
    session.require("record.read", what="read participants")
    found = get_participant(session.store, typed)
    if found is not None:
        return found.id
    text = typed.strip()
    if text.isdigit():
        rows = session.store.rows("SELECT id FROM participants WHERE number = ?", (int(text),))
        if len(rows) == 1:
            return str(rows[0]["id"])
    return None


FIRST_SCREEN = 60
"""Participants on the dashboard's first screen (more than a 120x40 terminal shows)."""


def ward_page(
    session: Session, offset: int = 0, limit: int | None = FIRST_SCREEN, at: datetime | None = None
) -> WardPage:
    """A page of the ward list in ward order, with the totals its title shows.

    What needs doing soonest comes first: overdue (longest first), due now
    (least time left first) — a dose, or a visit form whose window has opened
    (a format-2 version's visits) — post-dose vitals owed, upcoming doses,
    then upcoming visits (soonest first), held, then everyone else by id.
    Returns ``{"total", "attention", "offset", "rows"}``: `rows` are
    `list_row`s (the same as `list_rows` gives) of `limit` participants from
    `offset` (None: all); `total` is every participant on the site and
    `attention` those with a dose or a visit form due now or overdue, or
    owing post-dose vitals. The order and totals come from the indexed ward
    queue (`wardqueue`), so the first screen costs the same on a site of
    45,000 participants as on one of 500.
    """
    session.require("record.read", what="read participants")
    from . import wardqueue

    store = session.store
    at = at or now()
    got = wardqueue.page(store, at, max(0, offset), limit, dsmg_hold=safety.hold(store) is not None)
    rows = list_rows(store, at, only=got.ids) if got.ids else []
    return WardPage(total=got.total, attention=got.attention, offset=offset, rows=rows)


def _in(column: str, values: list[str] | None) -> tuple[str, tuple[Any, ...]]:
    """(" AND column IN (?, ...)", values), or no condition for every value (None)."""
    if values is None:
        return "", ()
    return f" AND {column} IN ({','.join('?' * len(values))})", tuple(values)


def list_rows(store: Store, at: datetime, only: list[str] | None = None) -> list[WardRow]:
    """`list_row(summary(store, pid, at))` for every participant (or those in `only`, in that order: a page
    of the ward list, `ward_page`), each from the summary of their own version; a participant on a version
    not loaded here gets the row saying so (`_not_loaded_row`)."""
    proto = protocols.active(store)
    by_id, ids = _in("id", only)
    people = [
        participant_from_row(r)
        for r in store.rows(f"SELECT * FROM participants WHERE 1 = 1{by_id} ORDER BY number", ids)
    ]
    # Participants on another version than the active one (enrolled under it, no amendment applied yet).
    theirs = amendments.protocols_of(store, people)
    # ... and those on a version this laptop has not loaded: flagged, nothing computed under another one
    unloaded = amendments.not_loaded_of(store, people)
    rows = {p.id: p for p in people}
    order = only if only is not None else list(rows)
    return [
        _not_loaded_row(store, rows[pid], unloaded[pid])
        if pid in unloaded
        else _list_row_of(store, theirs.get(pid, proto), rows[pid], at)
        for pid in order
        if pid in rows
    ]


def _not_loaded_row(store: Store, p: Participant, named: str) -> WardRow:
    """The ward-list row of a participant on a version not loaded here (`WardRow.version_not_loaded`):
    what is stored about them, and the line saying why nothing due is shown."""
    age = None
    if p.dob_date and p.screening_date:
        age = age_on(p.dob_date, date.fromisoformat(p.screening_date))
    from ..engine.model import cumulative_column
    from .dosing import amount_column

    given, amount = store.one(
        f'SELECT count(*), coalesce(sum("{amount_column()}"), 0) FROM doses WHERE participant = ?', (p.id,)
    ) or (0, 0)
    aes = store.rows("SELECT end, outcome FROM adverse_events WHERE participant = ?", (p.id,))
    row = WardRow(
        id=p.id,
        status="version not loaded",
        sex=p.sex,
        age=age,
        enrolled_on=p.enrolled_on,
        doses_given=int(given or 0),
        doses_planned=0,
        next_dose=None,
        post_dose_vitals_due=[],
        deviations=0,
        open_aes=sum(1 for a in aes if safety.is_open_ae(a)),
        ae_expected=0,
        signoff=safety.signoff_state(store, p.id)["state"],
        version_not_loaded=named,
        notice=amendments.not_loaded_notice(named),
    )
    # what was given, stored in the doses projection, under the column the ward list shows (the active
    # version's `dose.cumulative`), else per unit: none known here
    active = protocols.active(store).engine
    column = cumulative_column(active) if active is not None else None
    if column is not None:
        row[column[0].replace(" ", "_")] = float(amount or 0)  # type: ignore[literal-required]
    else:
        row["cumulative_dose"] = []
    return row


def _list_row_of(store: Store, proto: protocols.Protocol, p: Participant, at: datetime) -> WardRow:
    """One ward-list row from the summary of the participant's own version."""
    return list_row(summary(store, p.id, at, proto))


def show(session: Session, pid: str) -> ParticipantSummary:
    session.require("record.read", what="read participants")
    return summary(session.store, pid)


class _WorklistHold(TypedDict, total=False):
    hold: str
    """Why a held dose cannot be given now (the gates' refusals)."""


class WorklistItem(_WorklistHold):
    """One thing due or overdue on the ward (`today`; a feature's `TodaySource` adds its own)."""

    participant: str | None
    """None: an item of the ward's, not of one participant (a kit to move into a storage unit)."""
    what: str
    due: str | None
    """Local time (or date); None when owed now, with no time of its own."""
    state: str
    """overdue, window closing, due now, upcoming, held, pending, due or version not loaded."""


class Worklist(TypedDict):
    """What is due or overdue now on this ward, most urgent first (`today`; `wardcrf today`)."""

    now: str
    zone: str
    dsmg_hold: str | None
    items: list[WorklistItem]


NOT_LOADED = "version not loaded"
"""`today`'s state of a participant on a version not loaded here (`amendments.not_loaded_of`): their items
cannot be computed, so one item says why, ranked after what is due now."""

TodaySource = Callable[[Store, datetime], list[WorklistItem]]
today_sources: list[TodaySource] = []


def register_today_source(fn: TodaySource) -> TodaySource:
    """Add worklist items from a feature (the cold chain's kits on the clock); idempotent.

    `fn(store, at)` returns items shaped like `today`'s: participant (or
    None), what, due (local ISO time), state (overdue, due now, ...).
    """
    if fn not in today_sources:
        today_sources.append(fn)
    return fn


def today(session: Session, at: datetime | None = None) -> Worklist:
    """What is due or overdue now on this ward, most urgent first."""
    session.require("record.read", what="read the ward's worklist")
    store = session.store
    # the ward's zone and kind; `today_items` reads each participant's version
    proto = protocols.active(store)
    at = at or now()
    ward_zone = proto.schedule.zone or _site_zone(store) or "UTC"
    tz = zone(ward_zone)
    local_today = at.astimezone(tz).date()
    items: list[WorklistItem] = []
    from .engine_rules import today_items

    items += today_items(store, proto, at)  # every participant on a version the engine runs
    # the engine's timing words, most urgent first ("window closing" is a regimen's last part of its window)
    rank = {
        "overdue": 0,
        "window closing": 1,
        "due now": 2,
        NOT_LOADED: 3,
        CANNOT_RUN: 3,
        "upcoming": 3,
        "held": 4,
    }
    people = [participant_from_row(r) for r in store.rows("SELECT * FROM participants ORDER BY number")]
    # On a version not loaded here: one item saying so, nothing due computed under another version.
    unloaded = amendments.not_loaded_of(store, people)
    for pid, named in unloaded.items():
        items.append(
            {
                "participant": pid,
                "what": amendments.not_loaded_notice(named),
                "due": None,
                "state": NOT_LOADED,
            }
        )
    # On a version the engine cannot run (a format-1 version stored before it ran format 1): one item
    # saying so; nothing is due under it.
    theirs = amendments.protocols_of(store, [p for p in people if p.id not in unloaded])
    for p in people:
        version = theirs.get(p.id, proto)
        if p.id not in unloaded and p.enrollment_event and version.engine is None:
            items.append({"participant": p.id, "what": cannot_run(version), "due": None, "state": CANNOT_RUN})
    for ae in safety.review_list(store):
        items.append(
            {
                "participant": ae["participant"],
                "what": f"DSMG relatedness review of SAE {ae['event_id']}",
                "due": ae["report_due"],
                "state": "pending",
            }
        )
        if ae["report_due"] and date.fromisoformat(ae["report_due"]) >= local_today - timedelta(days=1):
            items.append(
                {
                    "participant": ae["participant"],
                    "what": f"expedited report of SAE {ae['event_id']}",
                    "due": ae["report_due"],
                    "state": "due",
                }
            )
    sentinel = sentinel_state(store, proto.sentinel_participants)
    for s_id in sentinel["waiting_for_dsmg"]:
        items.append(
            {
                "participant": s_id,
                "what": "DSMG decision on sentinel safety data (enrollment gated)",
                "due": None,
                "state": "pending",
            }
        )
    require_installed()  # the features' worklist sources
    for source in today_sources:
        items += source(store, at)
    items.sort(key=lambda i: (rank.get(i["state"], 5), i["due"] or "", i["participant"] or ""))
    return {
        "now": at.astimezone(tz).isoformat(timespec="minutes"),
        "zone": ward_zone,
        "dsmg_hold": safety.hold(store),
        "items": items,
    }


class SafetyEvent(TypedDict):
    """An adverse event the ward must act on (the dashboard's safety panel, `safety_overview`)."""

    event: str
    participant: str
    term: str
    grade: int | None
    serious: bool
    onset: str | None
    open: bool
    report_due: str | None
    """The expedited report's due date (serious events), ISO."""
    days_left: int | None
    """Local days to `report_due` (negative: overdue)."""
    dsmg_review_pending: bool


class SafetyOverview(TypedDict):
    today: str
    events: list[SafetyEvent]
    open_aes: int
    saes: int
    reviews_pending: int


def safety_overview(session: Session, at: datetime | None = None) -> SafetyOverview:
    """Adverse events the ward must act on: every open AE, and every SAE still owing something.

    An SAE stays listed after it ends while the DSMG has not judged its
    relatedness; `days_left` counts local days to its expedited-report due
    date (negative: overdue). Serious events come first, soonest due first.
    """
    session.require("record.read", what="read adverse events")
    store = session.store
    # the ward's zone only: each SAE's due date was set by the version its record was captured under
    proto = protocols.active(store)
    local_today = (at or now()).astimezone(zone(proto.schedule.zone or _site_zone(store) or "UTC")).date()
    pending = {r["event_id"] for r in safety.review_list(store)}
    events: list[SafetyEvent] = []
    for a in store.rows("SELECT * FROM adverse_events ORDER BY onset, event_id"):
        is_open = safety.is_open_ae(a)
        if not is_open and a["event_id"] not in pending:
            continue
        due = a["report_due"]
        events.append(
            SafetyEvent(
                event=a["event_id"],
                participant=a["participant"],
                term=a["term"],
                grade=a["grade"],
                serious=bool(a["serious"]),
                onset=a["onset"],
                open=is_open,
                report_due=due,
                days_left=(date.fromisoformat(due) - local_today).days if due else None,
                dsmg_review_pending=a["event_id"] in pending,
            )
        )
    events.sort(key=lambda e: (not e["serious"], e["report_due"] or "9999", e["onset"] or "", e["event"]))
    return SafetyOverview(
        today=local_today.isoformat(),
        events=events,
        open_aes=sum(1 for e in events if e["open"]),
        saes=sum(1 for e in events if e["serious"]),
        reviews_pending=len(pending),
    )


class LastDecision(TypedDict):
    event: str
    participant: str
    decision: str
    time: str | None


class DsmgGate(TypedDict):
    """Where the DSMG's gates stand (the dashboard's gate panel, `dsmg_gate`)."""

    state: str
    """``stop`` / ``alter`` (dosing and enrollment held), ``sentinel``, or ``open``."""
    hold: str | None
    """Why dosing and enrollment are held now (`safety.hold`), or None."""
    last_decision: LastDecision | None
    sentinels: list[str]
    waiting_for_dsmg: list[str]
    """Sentinel participants still waiting for a DSMG 'continue'."""
    reviews_pending: int


def dsmg_gate(session: Session) -> DsmgGate:
    """Where the DSMG's gates stand: a hold (stop / alter), the sentinel gate, SAEs awaiting review.

    `state` is one word for the dashboard: "stop" or "alter" (dosing and
    enrollment held), "sentinel" (enrollment waits for a DSMG 'continue' on
    a sentinel), otherwise "open".
    """
    session.require("record.read", what="read DSMG decisions")
    store = session.store
    proto = protocols.active(store)  # the sentinel gate is the site's
    decided = safety.decisions(store)
    last = decided[-1] if decided else None
    held = safety.hold(store)
    sentinel = sentinel_state(store, proto.sentinel_participants)
    if held and last is not None:
        state = str(last["decision"])
    elif not sentinel["open"]:
        state = "sentinel"
    else:
        state = "open"
    return DsmgGate(
        state=state,
        hold=held,
        last_decision=(
            LastDecision(
                event=last["event"],
                participant=last["participant"],
                decision=last["decision"],
                time=last["time"],
            )
            if last is not None
            else None
        ),
        sentinels=sentinel["sentinels"],
        waiting_for_dsmg=sentinel["waiting_for_dsmg"],
        reviews_pending=len(safety.review_list(store)),
    )
