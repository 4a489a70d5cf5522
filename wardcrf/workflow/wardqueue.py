"""The ward queue: the ward list's order and totals from an indexed summary, not a scan.

The dashboard's first screen lists the participants with what needs doing
soonest first (overdue, due now, post-dose vitals owed, upcoming, held, the
rest) and says how many there are and how many need attention. Computing
that for every participant before the first screen shows cost 14 ms at 455
participants and 1.9 s at 45,455. Here each participant has one `ward_queue`
row holding what the order depends on besides the clock:

- the next dose's number and due time (UTC; under the active protocol's
  modelule), NULL when none is due (not enrolled, or every dose given);
- `held`: a hold of the participant's own (no longer eligible after
  enrollment; format 1's record that holds them, a positive skin test:
  `[ward_queue] hold` of format1-workflow.toml, `declared.format1_queue`);
  a DSMG hold holds everyone and is read at the time of asking;
- `vitals_owed`: doses given whose post-dose vitals are not recorded;
- `visit_due`, `visit_until` (a format-2 version's visits): from when the
  earliest visit form the participant owes is due (a calendar visit's window
  opening, an administration recorded whose visit still owes a form), and the
  earliest end of such a window; NULL when no visit owes anything. A
  participant owing only a visit form is due work like a dose: raised in the
  order and counted in the attention once the window has opened, never
  before (`engine_rules._visit_due`).

The row is recomputed from the projections (`participants`, `doses`,
`vitals`, the records of format 1's hold) by a form hook after each record that can
change it, in that record's transaction; a new protocol version recomputes
every row (its modelule moves the due times). `counters` holds the number of
participants. Both are derived from the projections alone: `db rebuild`
replays the log without that per-record upkeep and derives every row in one
pass at the end (`projections.derived_index`), and `db rebuild --check`
compares them.

At a given time, the order is five index range scans taken in turn
(`page`): the participants in the first segments are the ward's active ones,
so the cost follows them, not the site's history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import ids, projections
from .. import protocol as protocols
from ..engine import due
from ..errors import Refused
from ..eventlog import Event
from ..records import Record
from ..sqlstore import common_dialect
from ..store import Store
from . import declared

if TYPE_CHECKING:
    from ..features import Registry
    from .base import Participant
    from .engine_rules import QueueReads

MIGRATION = "0570-ward-queue-visits"
"""The migration that added the visit columns: a site upgraded through it re-derives every row."""
MIGRATION_NOT_LOADED = "0580-ward-queue-version-not-loaded"
"""A site upgraded through it re-derives every row: a row computed under the active version for a participant
on a version not loaded here (before such rows were left unplaced) does not outlive the upgrade."""

_CHUNK = 500
"""Participants whose rows `derive` reads together."""

PARTICIPANTS = "participants"
"""The `counters` row holding the number of participants on the site."""


def _forms() -> tuple[str, ...]:
    """Format 1's forms whose records move a row (`declared.format1_queue`: format1-workflow.toml)."""
    return declared.format1_queue().forms


_STATE = """
SELECT p.id, p.enrolled_on, p.enrollment_event, p.eligible,
  (SELECT count(*) FROM doses d WHERE d.participant = p.id),
  (SELECT count(DISTINCT d.dose_number) FROM doses d
    WHERE d.participant = p.id AND d.dose_number IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM vitals v WHERE v.participant = p.id
                        AND v.timepoint = 'post_dose' AND v.dose = d.dose_number)),
  EXISTS (SELECT 1 FROM ward_queue q WHERE q.participant = p.id)
FROM participants p
"""
"""A participant's state (`_row` adds whether a record holds them: `_held`, read in Python, where the
engines' JSON functions differ)."""

_HOLDING = "SELECT subject, data FROM records WHERE form = ?"


def _held(rows: Any, hold: declared.Format1Queue) -> set[str]:
    """The subjects among (subject, data) rows of the hold form whose hold field has the holding value
    (format 1: a positive skin test)."""
    out: set[str] = set()
    for subject, data in rows:
        try:
            values = json.loads(data)
        except ValueError:
            continue
        if isinstance(values, dict) and values.get(hold.hold_field) == hold.hold_value:
            out.add(str(subject))
    return out


def _state(store: Store, where: str = "", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """`_STATE` rows, each with whether a record of format 1's hold holds the participant inserted before
    its last column (the row's shape `_row` reads)."""
    rows = store.execute(_STATE + where, params).fetchall()
    if not rows:
        return []
    hold = declared.format1_queue()
    if where:
        subjects = ["participant:" + str(r[0]) for r in rows]
        marks = ",".join("?" * len(subjects))
        sql = _HOLDING + f" AND subject IN ({marks})"
        positive = _held(store.execute(sql, (hold.hold_form, *subjects)).fetchall(), hold)
    else:
        positive = _held(store.execute(_HOLDING, (hold.hold_form,)).fetchall(), hold)
    return [(*r[:-1], "participant:" + str(r[0]) in positive, r[-1]) for r in rows]


def _utc(moment: datetime) -> str:
    """A time as the queue stores it: UTC, to the second, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _model(store: Store) -> Any:
    """The engine's model of the active version (`engine.due` places each participant's next dose)."""
    try:
        # the page's window, the site's; `derive` reads each participant's version for their row
        return due.model_for(protocols.active(store))
    except Refused:
        return None  # no protocol yet: no due times (loading one recomputes every row)


def _row(state: tuple[Any, ...], model: Any) -> tuple[Any, ...]:
    """(participant, next_dose, next_due, held, vitals_owed, visit_due, visit_until) from a `_STATE` row."""
    pid, enrolled_on, enrollment_event, eligible, given, owed, positive, _known = state
    next_dose = next_due = None
    day0 = _day(enrolled_on)
    # One arm's schedule from enrollment (format 1 and single-arm trials); a trial of several arms places
    # each participant by the arm allocated (`engine_rules.plan_inputs`), which the queue does not read yet.
    if day0 is not None and model is not None and len(model.arms) == 1 and given < due.planned(model):
        next_dose = given + 1
        slot = due.slot(model, {"enrollment": day0}, next_dose)
        next_due = _utc(slot.due or slot.opens) if slot is not None else None
    held = int(bool(positive) or (bool(enrollment_event) and eligible == 0))
    return pid, next_dose, next_due, held, owed, None, None  # format 1 declares no visits


def _day(value: Any) -> date | None:
    """An enrollment date as recorded; None for one that is not an ISO date.

    A ward validates its own dates; the hub projects what wards sent, and a
    bundle's bytes are outside input (a fuzzed record held "0"): a row without
    a due time is shown, a crashed import is not.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


_UPSERT = (
    "INSERT INTO ward_queue (participant, next_dose, next_due, held, vitals_owed, visit_due, visit_until)"
    " VALUES (?,?,?,?,?,?,?)"
    " ON CONFLICT (participant) DO UPDATE SET next_dose = excluded.next_dose,"
    " next_due = excluded.next_due, held = excluded.held, vitals_owed = excluded.vitals_owed,"
    " visit_due = excluded.visit_due, visit_until = excluded.visit_until"
)


def _active(store: Store) -> protocols.Protocol | None:
    """The active version, None when none is loaded: read once per synced bundle, not twice per record
    (`SqlStore.memoized`: forgotten as soon as anything may write `protocols`)."""

    def read() -> protocols.Protocol | None:
        try:
            return protocols.active(store)
        except Refused:
            return None

    return store.memoized("protocols.active", ("protocols",), read)


def _format_2(store: Store) -> protocols.Protocol | None:
    """The active version when it is a format-2 version of its own (its rows come from the engine)."""
    proto = _active(store)  # which kind of rows the site keeps, not one participant's
    return proto if proto is not None and proto.engine is not None else None


def _engine_row(
    store: Store,
    proto: protocols.Protocol,
    state: tuple[Any, ...],
    p: Participant | None = None,
    reads: QueueReads | None = None,
) -> tuple[Any, ...]:
    """A format-2 participant's row: the first administration without a record in the schedule of the arm
    allocated, its due time, a hold of their own (ineligible after enrollment, or a gate their own records
    decide: `engine_rules.own_holds`), post-administration vital signs owed, and the visit forms owed
    (from, until). `p`, `reads`: the participant and what their row reads, already read with many others'
    (`derive`)."""
    from .base import get_participant
    from .engine_rules import queue_row

    pid, _enrolled_on, enrollment_event, eligible = state[:4]
    if p is None:
        p = get_participant(store, pid)
    q = queue_row(store, proto, p, reads) if p is not None else None
    if q is None:
        return pid, None, None, int(bool(enrollment_event) and eligible == 0), 0, None, None
    span = q.visit_due
    return (
        pid,
        q.number,
        _utc(q.due) if q.due is not None else None,
        int((bool(enrollment_event) and eligible == 0) or q.held),
        q.owed,
        _utc(span[0]) if span is not None else None,
        _utc(span[1]) if span is not None else None,
    )


NOT_LOADED = object()
"""`_theirs` of a participant on a version not loaded here: no due times (`_unplaced_row`)."""


def _theirs(store: Store, people: list[Participant]) -> dict[str, protocols.Protocol | object | None]:
    """The version each participant is on (`amendments`: their enrollment's, or the one applied to them), as
    `derive` reads it (`protocols_of`); `NOT_LOADED` for a version not loaded here: their schedule is
    unknown, so nothing is placed as due until it is (loading it recomputes every row), and a rebuild's
    rows equal these. None for all when no version is loaded (no due times; loading one recomputes every
    row)."""
    from .amendments import not_loaded_of, protocols_of

    active = _active(store)
    if active is None:
        return {}
    unloaded = not_loaded_of(store, people)
    theirs = protocols_of(store, [p for p in people if p.id not in unloaded])
    return {p.id: NOT_LOADED if p.id in unloaded else theirs.get(p.id, active) for p in people}


def _unplaced_row(state: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row of a participant on a version not loaded here: nothing due, owed or held under another
    version's schedule (the ward list flags them: `status.WardRow.version_not_loaded`); listed with the
    rest."""
    return state[0], None, None, 0, 0, None, None


def _queue_row(
    store: Store,
    proto: protocols.Protocol | object | None,
    state: tuple[Any, ...],
    p: Participant | None = None,
    reads: QueueReads | None = None,
) -> tuple[Any, ...]:
    """A participant's row under their version: the engine's for a format-2 version of its own."""
    if proto is NOT_LOADED:
        return _unplaced_row(state)
    assert proto is None or isinstance(proto, protocols.Protocol)
    if proto is not None and proto.engine is not None:
        return _engine_row(store, proto, state, p, reads)
    return _row(state, due.model_for(proto) if proto is not None else None)


def refresh(store: Store, pid: str) -> None:
    """Recompute one participant's queue row from the projections (and count a new participant)."""
    refresh_many(store, [pid])


def refresh_many(store: Store, pids: Sequence[str]) -> None:
    """Recompute these participants' queue rows from the projections (and count the new ones), reading
    _CHUNK of them at a time: a synced bundle moves many participants' rows, each read in the same few
    statements (a statement is a round trip to a PostgreSQL hub's server). A participant this site does
    not hold (a record about someone else) has no row."""
    from .base import get_participant, participant_from_row
    from .engine_rules import queue_reads

    wanted = list(dict.fromkeys(pids))
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        states = _state(store, f" WHERE p.id IN ({marks})", tuple(chunk))
        if not states:
            continue
        stored = {
            str(r["id"]): participant_from_row(r)
            for r in store.rows(f"SELECT * FROM participants WHERE id IN ({marks})", tuple(chunk))
        }
        found: dict[str, Participant | None] = {}
        for state in states:
            pid = str(state[0])
            # `get_participant`'s row: the one stored under the id (a stored id is its own key)
            found[pid] = stored.get(pid) if ids.key(pid) == pid else get_participant(store, pid)
        people = [p for p in found.values() if p is not None]
        theirs = _theirs(store, people)
        active = _active(store)
        engine = [
            p
            for p in people
            if isinstance(proto := theirs.get(p.id, active), protocols.Protocol) and proto.engine is not None
        ]
        reads = queue_reads(store, engine) if engine else None
        read = {p.id for p in engine}
        rows = []
        for state in states:
            p = found[str(state[0])]
            proto = theirs.get(p.id, active) if p is not None else active
            rows.append(_queue_row(store, proto, state, p, reads if p is not None and p.id in read else None))
        store.executemany(_UPSERT, rows)
        new = sum(1 for state in states if not state[-1])
        if new:
            store.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                (PARTICIPANTS, new),
            )


def _refresh(store: Store, pid: str) -> None:
    """`refresh` after a projected event: at once, or inside a batch (a synced bundle) once per participant
    when the batch ends (`SqlStore.later_each`), all the batch's participants together (`refresh_many`)
    — before anything reads the queue or its counter. The row is a function of the projections when it
    is computed (`derive` recomputes it so after a replay), so one computation after a bundle's last
    record of a participant gives the row one per record gave."""
    if not store.later_each(
        ("ward_queue", "rows"), ("ward_queue", "counters"), pid, lambda pids: refresh_many(store, pids)
    ):
        refresh(store, pid)


def derive(target: Store, source: Store) -> int:
    """Every row and the counter in one pass over the projections (after a replay)."""
    target.execute("DELETE FROM ward_queue")
    target.execute("DELETE FROM counters")
    from .amendments import not_loaded_of, protocols_of
    from .base import participant_from_row
    from .engine_rules import queue_reads

    try:
        active: protocols.Protocol | None = protocols.active(target)
    except Refused:
        active = None
    people = [participant_from_row(r) for r in target.rows("SELECT * FROM participants")]
    theirs: dict[str, protocols.Protocol | object] = {}
    if active is not None:
        theirs.update(protocols_of(target, people, log=source))
        theirs.update(dict.fromkeys(not_loaded_of(target, people, log=source), NOT_LOADED))
    by_id = {p.id: p for p in people}
    states = _state(target)
    rows: list[tuple[Any, ...]] = []
    # The engine's rows read each participant's records and allocation: read for _CHUNK participants at a
    # time (a few queries, not several per participant; the memory of one chunk's records, not the site's).
    for i in range(0, len(states), _CHUNK):
        chunk = states[i : i + _CHUNK]
        # (state, version, participant): `get_participant`'s row is the one stored under the id (a stored
        # id is its own key); one that is not is looked up (and reads its own records) as a hook does
        mine = [
            (
                state,
                theirs.get(str(state[0]), active),
                by_id.get(str(state[0])) if ids.key(str(state[0])) == state[0] else None,
            )
            for state in chunk
        ]
        engine = [
            p
            for _state_, proto, p in mine
            if p is not None and isinstance(proto, protocols.Protocol) and proto.engine is not None
        ]
        reads = queue_reads(target, engine) if engine else None
        rows += [
            _queue_row(target, proto, state, p, reads if p is not None else None) for state, proto, p in mine
        ]
    target.conn.executemany(_UPSERT, rows)
    if rows:
        target.execute("INSERT INTO counters (name, value) VALUES (?, ?)", (PARTICIPANTS, len(rows)))
    return len(rows)


@common_dialect
def _after_records(store: Store, recs: Sequence[Record]) -> None:
    """The rows a run of records moves (a synced bundle's, once per participant; `append`'s one record),
    after the forms' own hooks (a batch hook, `records.add_batch_hook`). A format-2 version's records: any
    participant form can move the row (its administration forms, its assessments, its eligibility form);
    format 1: its queue forms (`_forms`), but a new pre-dose or unmodelled measurement, which owes nothing
    and pays nothing."""
    if projections.replaying():
        return  # `derive` writes every row once the replay is done
    format_2 = _format_2(store) is not None  # the site's kind of rows, not one participant's
    forms = _forms()
    moved: dict[str, None] = {}
    for rec in recs:
        subject = rec.subject
        if not (subject and subject.startswith("participant:")):
            continue
        if not format_2 and (
            rec.form not in forms
            or (rec.form == "vitals" and rec.version == 1 and rec.data.get("timepoint") != "post_dose")
        ):
            continue
        moved[subject.removeprefix("participant:")] = None
    for pid in moved:
        _refresh(store, pid)


@common_dialect
def _allocated(store: Store, e: Event) -> None:
    """An allocation sets the arm whose schedule the row follows (after randomization's own projector)."""
    if e.type != "randomization.allocated" or projections.replaying():
        return
    pid = str((e.body or {}).get("participant") or "")
    if pid and _format_2(store) is not None:
        _refresh(store, pid)


@common_dialect
def _model_changed(store: Store, _e: Event) -> None:
    """A protocol version moves every due time: recompute every row (rare; O(participants))."""
    if projections.replaying():
        return
    for (pid,) in store.execute("SELECT id FROM participants").fetchall():
        _refresh(store, pid)


@common_dialect
def _applied(store: Store, e: Event) -> None:
    """An amendment applied to a participant moves their due times to their new version's."""
    if projections.replaying():
        return
    pid = str((e.body or {}).get("participant") or "")
    if pid:
        _refresh(store, pid)


# -- reading ------------------------------------------------------------------------------


def count(store: Store) -> int:
    """Participants on the site (a counter, not a count)."""
    return int(store.scalar("SELECT value FROM counters WHERE name = ?", (PARTICIPANTS,)) or 0)


@dataclass(frozen=True)
class Page:
    """Participant ids in ward order from `offset`, with the totals the list's title shows."""

    ids: list[str]
    total: int
    attention: int


def _segments(at: datetime, window_minutes: int, dsmg_hold: bool) -> list[tuple[str, tuple[Any, ...]]]:
    """(WHERE ... ORDER BY, params) of the ward order's segments, most urgent first (disjoint; together
    every row).

    Due work first, one range: a dose overdue or due now (`next_due` up to now + the window) or a visit form
    owed whose window has opened (`visit_due` up to now), ordered by the dose's due time or the visit's
    window end, whichever is earlier (the longest overdue, then the least time left); then post-dose
    vitals owed; doses upcoming (soonest first); visits upcoming (their window opening soonest first);
    held; the rest. A DSMG hold puts every next dose in "held": the vitals owed come first, then the visit
    forms due (by their window's end), then the participants with a next dose, then the rest.
    """
    limit = _utc(at + timedelta(minutes=window_minutes))
    now = _utc(at)
    dose_now = "(held = 0 AND next_due IS NOT NULL AND next_due <= ?)"
    visit_now = "(visit_due IS NOT NULL AND visit_due <= ?)"
    if dsmg_hold:
        return [
            ("vitals_owed > 0 ORDER BY participant", ()),
            (f"vitals_owed = 0 AND {visit_now} ORDER BY visit_until, participant", (now,)),
            (
                f"next_due IS NOT NULL AND vitals_owed = 0 AND NOT {visit_now} ORDER BY participant",
                (now,),
            ),
            (f"next_due IS NULL AND vitals_owed = 0 AND NOT {visit_now} ORDER BY participant", (now,)),
        ]
    return [
        (
            f"({dose_now} OR {visit_now}) ORDER BY min("
            "CASE WHEN held = 0 AND next_due <= ? THEN next_due ELSE '~' END,"
            " CASE WHEN visit_due <= ? THEN visit_until ELSE '~' END), participant",
            (limit, now, limit, now),
        ),
        (
            f"vitals_owed > 0 AND NOT {dose_now} AND NOT {visit_now} ORDER BY participant",
            (limit, now),
        ),
        (
            f"held = 0 AND next_due IS NOT NULL AND next_due > ? AND vitals_owed = 0 AND NOT {visit_now}"
            " ORDER BY next_due, participant",
            (limit, now),
        ),
        (
            "visit_due IS NOT NULL AND visit_due > ? AND vitals_owed = 0"
            " AND NOT (held = 0 AND next_due IS NOT NULL) ORDER BY visit_due, participant",
            (now,),
        ),
        (
            "held = 1 AND next_due IS NOT NULL AND vitals_owed = 0 AND visit_due IS NULL ORDER BY participant",
            (),
        ),
        ("next_due IS NULL AND vitals_owed = 0 AND visit_due IS NULL ORDER BY participant", ()),
    ]


def page(store: Store, at: datetime, offset: int, limit: int | None, *, dsmg_hold: bool) -> Page:
    """The ids of the ward list from `offset` (`limit` of them; None: all), its total and attention.

    Reads the rows of the segments it returns, and counts the rows of the
    urgent segments (the ward's active participants); the rest, however many,
    are read only as far as the page goes.
    """
    model = _model(store)
    window = due.opens_before_minutes(model) if model is not None else 0
    segments = _segments(at, window, dsmg_hold)
    sizes: list[int | None] = []
    for i, (where, params) in enumerate(segments):
        last = i == len(segments) - 1
        cond = where.split(" ORDER BY ")[0]
        cond_params = params[: cond.count("?")]  # the order's own parameters follow the condition's
        sizes.append(
            None if last else int(store.scalar(f"SELECT count(*) FROM ward_queue WHERE {cond}", cond_params))
        )
    # Due now or overdue (a dose or a visit form), or owing post-dose vitals (under a DSMG hold no dose is
    # due: the vitals and the visit forms).
    attention = (sizes[0] or 0) + (sizes[1] or 0)  # the first two segments, with or without a DSMG hold
    ids: list[str] = []
    skip = offset
    for (where, params), size in zip(segments, sizes, strict=True):
        want = None if limit is None else limit - len(ids)
        if want is not None and want <= 0:
            break
        if size is not None and skip >= size:
            skip -= size
            continue
        sql = f"SELECT participant FROM ward_queue WHERE {where} LIMIT ? OFFSET ?"
        got = [r[0] for r in store.execute(sql, (*params, -1 if want is None else want, skip))]
        ids.extend(got)
        skip = 0
    return Page(ids, count(store), attention)


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.derived_index(derive, "ward_queue", "counters", migrations=(MIGRATION, MIGRATION_NOT_LOADED))
    # After every form's own hooks. It reads the active version (`protocols`) and writes, through `_refresh`,
    # the queue and its counter: a reader of those inside a batch has it run first (and the rows it moves).
    registry.record_batch_hook(_after_records, tables=("protocols", "ward_queue", "counters"))
    registry.every_event_projector(_allocated)
    registry.projector(_model_changed, "protocol.loaded")
    registry.projector(_applied, "protocol.applied")
