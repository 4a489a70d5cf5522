"""Dosing's shared parts: the pre-dose gates, kits given once, and the dose and vitals projections.

The rules of an administration are the engine's (`engine_rules`: the protocol's
regimens, gates and dose assessments); format 1's own dose, skin-test, vitals
and post-dose-check rules are gone with its workflow (every format-1 version
runs on the engine, docs/engine.md). What stays here is what every version
shares: a kit is given once (`hold_kit_given_twice` at sync import, the
`kits used once` audit check), and the `doses` and `vitals` projections the
ward list, the exports and the reports read.

`dose_gates` is the pluggable pre-dose check list: functions
``(store, kit_id, when) -> None``, or with a keyword ``product`` (the product a
format-2 administration gives), that raise `Refused` with the reason
(`call_dose_gate` asks each in the shape it was written in).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from .. import ids
from ..audit import CheckResult
from ..eventlog import Event
from ..forms import plain
from ..ingest import HoldForCoordinator
from ..kits import (
    KitUse,
    administration_record_kit,
    administration_uses,
    course_holder,
    course_record,
    device_of,
    dose_uses,
    is_administration_record,
)
from ..kits import (
    kit_use as kit_use,  # `dosing.kit_use`: the one name every rule asks (engine_rules, dose_visit)
)
from ..records import Record
from ..sqlstore import common_dialect, upsert
from ..store import Store

if TYPE_CHECKING:
    from ..features import Registry


class DoseGate(Protocol):
    """`gate(store, kit_id, when, product=None, participant=None)` raises `Refused` with the reason; `product`
    is the code of the product the administration gives, `participant` whom it is for, when the caller knows
    them (format 2). A gate may take either keyword, both or neither (`call_dose_gate`)."""

    def __call__(
        self,
        store: Store,
        kit_id: str,
        when: datetime,
        *,
        product: str | None = None,
        participant: str | None = None,
    ) -> None: ...


PlainDoseGate = Callable[[Store, str, datetime], None]
"""A gate that does not tell products apart: `gate(store, kit_id, when)` (`features.Registry.dose_gate`'s
documented shape); it is called without `product`."""
AnyDoseGate = DoseGate | PlainDoseGate

dose_gates: list[AnyDoseGate] = []


def register_dose_gate(gate: AnyDoseGate) -> AnyDoseGate:
    """Add a pre-dose check (idempotent, usable as a decorator)."""
    if gate not in dose_gates:
        dose_gates.append(gate)
    return gate


def takes_product(gate: AnyDoseGate) -> bool:
    """Whether a registered gate accepts the `product` keyword (a `DoseGate`), or is a `PlainDoseGate`."""
    return takes(gate, "product")


def takes(gate: AnyDoseGate, keyword: str) -> bool:
    """Whether a registered gate accepts `keyword` (`product`, `participant`)."""
    try:
        params = inspect.signature(gate).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read: the plain shape
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == keyword and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in params
    )


def call_dose_gate(
    gate: AnyDoseGate,
    store: Store,
    kit_id: str,
    when: datetime,
    *,
    product: str | None = None,
    participant: str | None = None,
) -> None:
    """Ask one registered gate (raises `Refused`): with `product` and `participant` when they are known and
    the gate takes them; a gate of the plain shape is asked as it was written, `(store, kit_id, when)`,
    rather than crash."""
    known = {"product": product, "participant": participant}
    given = {k: v for k, v in known.items() if v is not None and takes(gate, k)}
    if given:
        cast(DoseGate, gate)(store, kit_id, when, **given)
    else:
        cast(PlainDoseGate, gate)(store, kit_id, when)


AllocationGate = Callable[[Store, str, str], None]
"""`gate(store, participant, kit)` raises `Refused` when the kit is not the one allocated to the participant."""
allocation_gates: list[AllocationGate] = []


def register_allocation_gate(gate: AllocationGate) -> AllocationGate:
    """Add a check of the scanned kit against the participant's allocation (randomization, issue 20)."""
    if gate not in allocation_gates:
        allocation_gates.append(gate)
    return gate


def _dose_kit(event: Event) -> tuple[str, str] | None:
    """(kit as recorded, the dose record's id) when `event` records or amends a dose's kit, else None."""
    if event.body.get("form") != "dose":
        return None
    if event.type == "record.submitted":
        kit = (event.body.get("data") or {}).get("kit_id")
        return (str(kit), event.id) if kit not in (None, "") else None
    if event.type == "record.amended" and event.amends:
        change = (event.body.get("changes") or {}).get("kit_id")
        kit = change.get("new") if isinstance(change, dict) else None
        return (str(kit), event.amends) if kit not in (None, "") else None
    return None


@common_dialect
def hold_kit_given_twice(store: Store, events: Sequence[Event]) -> None:
    """After-ingest hook: a dose arriving with a kit another dose already used is not merged.

    Each laptop refuses a used kit (`kit_use`), but two laptops, or one
    running a version that compared ids as typed (``kit-x1``, ``KIT-X1``),
    can each dose the same kit. Where their logs meet (the hub) the second
    is held whole for the coordinator (reason ``kit``), like a participant
    clash: both kept, the device flagged, the ward told at its next sync.
    The question is asked of the one source, `kit_use`, after the bundle's
    events are projected, so a kit used twice inside one bundle is caught too
    (the same queries `kit_use` makes: `kits.dose_uses`, `kits.administration_uses`).

    A format-2 version's administration record (or a correction of its kit)
    is asked of the `administration_kits` projection (`wardcrf.kits`: each
    record read under the version it was captured under): held when another
    participant's record gave the same kit, or when the same participant's
    other record did and the kit is single-use (`kits.course_record`: a
    course kit serves all of one participant's records; a correction of
    their own record is not another use). The two formats are compared too:
    a format-1 dose record and a format-2 administration record naming one
    kit (a participant amended from a format-1 version to a format-2 one, or
    two participants on different versions) are a double use, unless the
    randomization list allocated that kit to that participant for the whole
    course (`kits.course_holder`).
    """
    indexed = _indexed_records(store, events)
    for event in events:
        if _record_of(event) in indexed:
            _hold_administration_kit(store, event)
        dosed = _dose_kit(event)
        if dosed is None:
            continue
        kit, record = dosed
        if is_administration_record(store, record):
            continue  # a format-2 version's form named `dose`: asked above, under its version
        pid = (event.subject or "").removeprefix("participant:")
        used = next((u for u in dose_uses(store, kit, exclude=record) if not _course(store, u, pid)), None)
        if used is not None:
            raise HoldForCoordinator(
                "kit",
                f"dose record {record} from device {event.device} gives kit {_shown(used.kit)} to {pid}; the same "
                f"kit was given to {used.participant} dose {used.dose_number} ({used.event_id}) on device "
                f"{device_of(store, used.event_id)}: one kit, one dose; not merged",
                body=_held(used.kit, pid, event, record, used, store),
            )
        key = ids.key(kit)
        other = next(
            (u for u in administration_uses(store, key, exclude=record) if not _course(store, u, pid)), None
        )
        if other is not None:
            raise HoldForCoordinator(
                "kit",
                f"dose record {record} from device {event.device} gives kit {_shown(key)} to {pid}; the same kit was "
                f"given to {other.participant} ({other.event_id}) on device {device_of(store, other.event_id)} "
                "by an administration record of a format-2 version: one kit, one dose, whatever the "
                "protocol version; not merged",
                body=_held(
                    key, pid, event, record, other, store, across="format 1 dose, format 2 administration"
                ),
            )


SHOWN_KIT = 64
"""Characters of a kit id a hold's one line shows (a bundle's kit field is the ward's, not bounded here)."""


def _shown(kit: str) -> str:
    """The kit as a hold's line names it: whole when short, else its start and its length."""
    return kit if len(kit) <= SHOWN_KIT else f"{kit[:SHOWN_KIT]}… ({len(kit)} characters)"


def _course(store: Store, use: KitUse, participant: str) -> bool:
    """Across the formats: the same participant's use of a kit the randomization list allocated them for
    their whole course (`kits.course_holder`) is not another use; anything else is."""
    if use.participant != participant:
        return False
    holder = course_holder(store, use.kit)
    return holder is not None and ids.same(holder, participant)


class KitHeldBody(TypedDict, total=False):
    """The `sync.bundle_held` body of a kit given twice (`formats` only across protocol formats)."""

    kit: str
    participant: str
    event: str
    record: str
    record_device: str
    used_by_participant: str | None
    used_by_event: str
    used_by_device: str | None
    formats: str


def _held(
    kit: str,
    pid: str,
    event: Event,
    record: str,
    used: KitUse,
    store: Store,
    *,
    across: str | None = None,
) -> KitHeldBody:
    """The `sync.bundle_held` body of a kit given twice: the kit, both participants, records and devices."""
    body: KitHeldBody = {
        "kit": kit,
        "participant": pid,
        "event": event.id,
        "record": record,
        "record_device": event.device,
        "used_by_participant": used.participant,
        "used_by_event": used.event_id,
        "used_by_device": device_of(store, used.event_id),
    }
    if across is not None:
        body["formats"] = across
    return body


def _record_of(event: Event) -> str | None:
    """The record an event writes or corrects (`kits.administration_record_kit` asks about the same one)."""
    if event.type == "record.submitted":
        return event.id
    if event.type == "record.amended":
        return event.amends
    return None


def _indexed_records(store: Store, events: Sequence[Event]) -> set[str]:
    """Which of the records `events` write or correct have a row in `administration_kits` (a format-2
    administration record's kit): one query per 500 records instead of one per record a hub imports.
    Only those can be held by `_hold_administration_kit`; every other record's lookup finds no row."""
    wanted = sorted({r for r in map(_record_of, events) if r})
    found: set[str] = set()
    for at in range(0, len(wanted), 500):
        chunk = wanted[at : at + 500]
        found.update(
            str(r[0])
            for r in store.execute(
                f"SELECT event_id FROM administration_kits WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    return found


def _hold_administration_kit(store: Store, event: Event) -> None:
    """Hold the bundle when `event` gives a format-2 administration record a kit already given: by another
    participant's administration record, by the same participant's other record when the kit is
    single-use (not a course kit under both records' versions), or by a format-1 dose record.
    One indexed lookup per projection (`kits.administration_uses`, `kits.dose_uses`)."""
    given = administration_record_kit(store, event)
    if given is None:
        return
    kit, pid, record = given
    uses = administration_uses(store, kit, exclude=record)
    other = next((u for u in uses if u.participant != pid), None)
    if other is not None:
        raise HoldForCoordinator(
            "kit",
            f"administration record {record} from device {event.device} gives kit {_shown(kit)} to {pid}; the same "
            f"kit was given to {other.participant} ({other.event_id}) on device "
            f"{device_of(store, other.event_id)}: a kit is never given to two participants; not merged",
            body=_held(kit, pid, event, record, other, store),
        )
    course = bool(uses) and course_record(store, record)
    again = next((u for u in uses if not (course and course_record(store, u.event_id))), None)
    if again is not None:
        raise HoldForCoordinator(
            "kit",
            f"administration record {record} from device {event.device} gives kit {_shown(kit)} to {pid}; the same "
            f"kit was already given to {pid} ({again.event_id}) on device {device_of(store, again.event_id)}:"
            " a single-use kit (not one kit for the course) is given once; not merged",
            body=_held(kit, pid, event, record, again, store),
        )
    dosed = next((u for u in dose_uses(store, kit, exclude=record) if not _course(store, u, pid)), None)
    if dosed is not None:
        raise HoldForCoordinator(
            "kit",
            f"administration record {record} from device {event.device} gives kit {_shown(kit)} to {pid}; the same "
            f"kit was given to {dosed.participant} dose {dosed.dose_number} ({dosed.event_id}) on device "
            f"{device_of(store, dosed.event_id)} by a dose record of a format-1 version: one kit, one dose, "
            "whatever the protocol version; not merged",
            body=_held(
                kit, pid, event, record, dosed, store, across="format 2 administration, format 1 dose"
            ),
        )


def _kits_used_once(store: Store) -> CheckResult:
    """Every kit is given to one participant once.

    The ward refuses a second dose with a used kit; this finds what the ward
    could not see: two laptops' doses of one kit merged at a hub, or doses
    recorded before kit ids were normalised (``kit-x1`` and ``KIT-X1``). Both
    projections: the `doses` one and the administration records'
    (`administration_kits`; a record in both, the first trial's dose form, counted
    once).
    """
    uses: dict[str, list[tuple[str, str, str]]] = {}  # kit -> (participant, which dose, record), oldest first
    seen: set[str] = set()
    for kit, pid, number, event in store.execute(
        "SELECT kit_id, participant, dose_number, event_id FROM doses WHERE kit_id IS NOT NULL"
        " ORDER BY start, event_id"
    ).fetchall():
        seen.add(str(event))
        uses.setdefault(str(kit), []).append(
            (str(pid), f"dose {number if number is not None else '?'}", str(event))
        )
    for kit, pid, event in store.execute(
        "SELECT kit_id, participant, event_id FROM administration_kits WHERE kit_id IS NOT NULL ORDER BY rowid"
    ).fetchall():
        if str(event) not in seen:
            uses.setdefault(str(kit), []).append((str(pid), "administration", str(event)))
    problems = []
    for kit in sorted(uses):
        given = uses[kit]
        who = {pid for pid, _n, _e in given}
        # a course kit given only to the participant it is allocated to is used as the protocol says
        if len(given) < 2 or (len(who) == 1 and course_holder(store, kit) in who):
            continue
        listed = "; ".join(f"{pid} {n} ({e})" for pid, n, e in given)
        problems.append(f"kit {kit} was given {len(given)} times: {listed}")
    return CheckResult("kits used once", len(uses), problems)


# -- the doses projection -----------------------------------------------------------------------


DOSE_FORM, VITALS_FORM = "dose", "vitals"
"""The forms these projections read: the first trial's, which every format-1 version has by its contract."""
VITALS_NUMBER = "dose"
"""The vitals field naming the administration they were taken around (format 1's contract)."""
_DOSE_ROLES = ("number", "kit", "lot", "dose", "volume", "start", "end", "given_by", "day", "due", "window")
_KEYED = ("kit", "lot")  # comparison keys: a dose stored as typed before ids were normalised compares equal
_COLUMN_OF = {"volume": "volume_ml"}  # a column named otherwise than the field it holds


@cache
def _dose_projection() -> tuple[str, tuple[tuple[str, str], ...]]:
    """The `doses` upsert and (role, field) of what it reads, from the record roles of the dose
    administration of the re-encoding every format-1 version runs on (`reencode_v1.base_model`): each
    column is named after the field it holds (the amount's, the `dose` role's field), the volume's in mL.
    Names come from the protocol, not from code; the schema's columns are never renamed."""
    from ..engine import reencode_v1

    m = reencode_v1.base_model()
    record = next(
        a.record for r in m.regimens.values() for a in r.administrations if a.record.get("form") == DOSE_FORM
    )
    fields = tuple((role, str(record[role])) for role in _DOSE_ROLES)
    columns = [f'"{_COLUMN_OF.get(role, field)}"' for role, field in fields]
    return upsert("doses", ("event_id", "participant", *columns), ("event_id",)), fields


def amount_column() -> str:
    """The `doses` column holding the amount given (the `dose` role's field; `_dose_projection`)."""
    return dict(_dose_projection()[1])["dose"]


@common_dialect
def _dose_rows(store: Store, recs: Sequence[Record]) -> None:
    """The `doses` rows of a run of dose records (a batch hook, `records.add_batch_hook`): built in one pass,
    written by one statement over them, in the order given (a record amended in the same batch comes twice:
    its later state is the row that stays, as record by record). Nothing here refuses: the kit given twice
    is asked after the rows are written (`hold_kit_given_twice`, whose reads of `doses` have this run first)."""
    sql, fields = _dose_projection()
    keyed = tuple(role in _KEYED for role, _field in fields)
    names = tuple(field for _role, field in fields)
    key = ids.key
    rows = []
    for rec in recs:
        d = rec.data
        values: list[Any] = [rec.event_id, (rec.subject or "").removeprefix("participant:")]
        for k, field in zip(keyed, names, strict=True):
            v = d.get(field)
            values.append(key(v) if k and v is not None else plain(v))
        rows.append(values)
    store.executemany(sql, rows)


# -- the vitals projection ----------------------------------------------------------------------


@cache
def _vitals_projection() -> tuple[str, tuple[str, ...]]:
    """The `vitals` upsert and the fields it reads: the timepoint, the administration's number, the time and
    the signs of the re-encoding's `[safety] vital_signs` (`reencode_v1.base_model`), each column named
    after its field."""
    from ..engine import reencode_v1

    vs = reencode_v1.base_model().data["safety"]["vital_signs"]
    fields = (str(vs["timepoint"]), VITALS_NUMBER, str(vs["time"]), *map(str, vs["fields"]))
    return upsert("vitals", ("event_id", "participant", *(f'"{f}"' for f in fields)), ("event_id",)), fields


@common_dialect
def _vitals_rows(store: Store, recs: Sequence[Record]) -> None:
    """The `vitals` rows of a run of vitals records (a batch hook, as `_dose_rows`): one pass, one statement."""
    sql, fields = _vitals_projection()
    rows = []
    for rec in recs:
        get = rec.data.get
        row: list[Any] = [rec.event_id, (rec.subject or "").removeprefix("participant:")]
        # `plain` spelled out: nine fields a record, a bundle's thousands of records.
        for f in fields:
            v = get(f)
            row.append(v["value"] if isinstance(v, dict) and "value" in v else v)
        rows.append(row)
    store.executemany(sql, rows)


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.audit_check("kits used once", _kits_used_once)
    # Batch hooks: a synced bundle's or a replay's dose and vitals records are written in one statement per
    # run of them, before anything reads or writes the table (the kit check's reads of `doses` included).
    registry.record_batch_hook(_dose_rows, DOSE_FORM, tables=("doses",))
    registry.record_batch_hook(_vitals_rows, VITALS_FORM, tables=("vitals",))
    registry.after_ingest(
        hold_kit_given_twice,
        "record.submitted",
        "record.amended",
        holds="a kit given twice (two participants, a single-use kit twice, or across protocol formats)",
    )
