"""A kit's use: which dose record used it, the one answer to "kit already used".

Asked by the workflow's dose rule and scan step (`workflow.dosing`,
`workflow.dose_visit`), after a sync bundle (`dosing.hold_kit_given_twice`)
and by the cold chain's custody views and kit states (`coldchain.custody`).
It lives here, below both, because the cold chain must not import the
workflow (the workflow's dose visit reads the cold chain's custody): the
question is about the kit, and both ask it of the same query.

The answer reads the `doses` projection, which the workflow's dose hook keeps
(`workflow.dosing`), the `administration_kits` projection kept here (a format-2
version's administration records: each read under the version it was captured
under, its administration forms and their `kit` role), and the course-kit
answers a feature registers (`Registry.course_kit`: randomization's "this kit
serves one participant's whole course"). Every answer is one indexed lookup by
the kit's key: its cost does not grow with the site's records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from . import ids
from . import protocol as protocols
from .errors import Refused
from .eventlog import Event
from .sqlstore import common_dialect
from .store import Store

if TYPE_CHECKING:
    from .features import Registry

CourseKit = Callable[[Store, str], str | None]
"""`holder(store, kit)`: the participant whose allocated kit serves their whole course, or None."""
course_kits: list[CourseKit] = []


def register_course_kit(fn: CourseKit) -> CourseKit:
    """Add an answer to "whose course does this kit serve?" (randomization, issue 20: `kit.use = "course"`)."""
    if fn not in course_kits:
        course_kits.append(fn)
    return fn


def course_holder(store: Store, kit: str) -> str | None:
    """The participant a course kit is allocated to (their later doses reuse it), or None."""
    for fn in course_kits:
        holder = fn(store, kit)
        if holder is not None:
            return holder
    return None


@dataclass(frozen=True)
class KitUse:
    """A dose record that used a kit: who received it, which dose, which record."""

    kit: str
    participant: str
    dose_number: int | None
    event_id: str

    def __str__(self) -> str:
        return f"kit {self.kit} was already used for {self.participant} dose {self.dose_number} ({self.event_id})"


@dataclass(frozen=True)
class KitCheck:
    """A scan step's verdict on one kit: usable now for the participant's next dose or administration, or
    the reason it is not; the lot the cold chain knows it by. Both wizards' services answer with it."""

    kit: str
    ok: bool
    reason: str | None = None
    lot: str | None = None


def kit_use(
    store: Store, kit: str, *, exclude: str | None = None, participant: str | None = None
) -> KitUse | None:
    """The dose record that used `kit` (as typed, stored or scanned), or None.

    A kit allocated for a whole course (a blinded trial whose products say
    `kit = { use = "course" }`) is not used up by its participant's doses:
    asked for that `participant`, only a dose of someone else counts. Asked
    for anyone else, or without a participant, every dose counts.

    The one answer to "kit already used": the dose rule, the scan step, the
    custody gate and the cold-chain kit states all ask here. The `doses`
    projection stores each kit id's comparison key (`wardcrf.ids.key`), so a
    dose recorded as ``kit-x1`` (before ids were normalised, or on another
    laptop) and a scan of ``KIT-X1`` are the same kit. `exclude` is the record
    being amended.
    """
    k = ids.key(kit)
    holder = course_holder(store, k) if participant is not None and k else None
    if holder is not None and ids.same(holder, participant or ""):
        row = store.one(
            "SELECT participant, dose_number, event_id FROM doses WHERE kit_id = ? AND event_id != ?"
            " AND participant != ? ORDER BY start, event_id LIMIT 1",
            (k, exclude or "", holder),
        )
        return KitUse(k, row[0], row[1], row[2]) if row else None
    row = store.one(
        "SELECT participant, dose_number, event_id FROM doses WHERE kit_id = ? AND event_id != ?"
        " ORDER BY start, event_id LIMIT 1",
        (k, exclude or ""),
    )
    if row is None and participant is None:
        return _administration_kit_use(store, k, exclude)
    return KitUse(k, row[0], row[1], row[2]) if row else None


def _administration_kit_use(store: Store, key: str, exclude: str | None) -> KitUse | None:
    """A format-2 version's administration record naming the kit (its forms are not format 1's `dose`), so the
    cold chain sees a vial given by an infusion as used (not left at the bedside past its limit)."""
    uses = administration_uses(store, key, exclude=exclude, limit=1)
    return uses[0] if uses else None


def administration_uses(
    store: Store, kit: str, *, exclude: str | None = None, limit: int | None = None
) -> list[KitUse]:
    """The format-2 administration records naming `kit` (as typed, stored or scanned), oldest first.

    Every loaded version's records, each read under the version it was captured under: a kit given under
    an older version (whose administration form, or its kit field, a newer one renamed) is found after the
    newer one is loaded. One indexed lookup (`administration_kits_kit`). `exclude`: the record being amended.
    """
    # rowid: insertion order (PostgreSQL's twin has a `rowid` identity column); no LIMIT -1 there.
    rows = store.execute(
        "SELECT participant, event_id FROM administration_kits WHERE kit_id = ? AND event_id != ?"
        " ORDER BY rowid" + ("" if limit is None else " LIMIT ?"),
        (ids.key(kit), exclude or "", *(() if limit is None else (limit,))),
    ).fetchall()
    return [KitUse(ids.key(kit), str(r[0]), None, str(r[1])) for r in rows]


def administration_record_kit(store: Store, event: Event) -> tuple[str, str, str] | None:
    """(kit key, participant, the administration record's id) when `event` records a format-2 administration
    record's kit, or corrects it; else None. Asked after the event is projected (a hub's after-ingest hook,
    `dosing.hold_kit_given_twice`): the answer is the projection's row, the record read under the version it
    was captured under (`_submitted`) and its current kit after concurrent corrections (`_amended`).
    One primary-key lookup per record event; none for any other event."""
    if event.type == "record.submitted":
        record = event.id
    elif event.type == "record.amended" and event.amends:
        record = event.amends
    else:
        return None
    row = store.one(
        "SELECT field, participant, kit_id FROM administration_kits WHERE event_id = ?", (record,)
    )
    if row is None or row[2] is None:
        return None
    if event.type == "record.amended" and row[0] not in (event.body.get("changes") or {}):
        return None  # a correction of another field: the kit is the record's, already asked about
    return str(row[2]), str(row[1]), record


# -- the projection: the kit each format-2 administration record names ---------------------------

MIGRATION = "0541-administration-kits"
"""The migration creating `administration_kits`; a site upgraded through it is filled once (`fill`)."""

_KIT_FIELDS: WeakKeyDictionary[Store, dict[tuple[str, str], Mapping[str, str]]] = WeakKeyDictionary()
"""Per store: the administration forms -> kit field of the version a record names. A loaded version's file
never changes; a version not loaded here (no fields) changes only when a version is loaded, which clears
the store's entries (`_protocol_loaded`). So a replay or a hub import asks no query
per record."""


def _kit_fields(store: Store, ref: Mapping[str, str] | None) -> Mapping[str, str]:
    """The administration forms of the version `ref` names and the field each records the kit in.

    The version a record was captured under (`protocol.version`), exactly; none for a format-1 version
    or its re-encoding (their doses are the `doses` projection's), and none for a version not loaded here:
    the active one's administration forms and kit field are not the record's. Bundles arrive in an order
    where a version precedes its records (a device's chain; a restore in the hub's order), so this only
    leaves out a record whose version never reached this device; `db rebuild` reads it once it has.
    """
    key = (str(ref.get("id", "")), str(ref.get("version", ""))) if ref else ("", "")
    known = _KIT_FIELDS.setdefault(store, {})
    if key in known:
        return known[key]
    try:
        m = protocols.version(store, ref).engine
    except Refused:  # no protocol loaded, or not the record's version: nothing to read the record under
        return {}
    fields = (
        {
            str(a.record["form"]): str(a.record["kit"])
            for r in m.regimens.values()
            for a in r.administrations
            if a.record.get("kit")
        }
        if m is not None
        else {}
    )
    known[key] = fields
    return fields


@common_dialect
def _protocol_loaded(store: Store, _e: Event) -> None:
    _KIT_FIELDS.pop(store, None)  # a version not loaded before (no fields remembered) may be now


def _row(event_id: str, subject: str | None, form: str, field_: str, kit: object) -> tuple[object, ...]:
    key = ids.key(kit) if kit not in (None, "") else None
    return (event_id, str(subject or "").removeprefix("participant:"), form, field_, key or None)


_INSERT = "INSERT INTO administration_kits (event_id, participant, form, field, kit_id) VALUES (?,?,?,?,?)"


@common_dialect
def _submitted(store: Store, e: Event) -> None:
    form = str(e.body.get("form", ""))
    field_ = _kit_fields(store, e.protocol).get(form)
    if field_ is None:
        return
    store.insert(_INSERT, _row(e.id, e.subject, form, field_, (e.body.get("data") or {}).get(field_)))


@common_dialect
def _amended(store: Store, e: Event) -> None:
    """A correction of an administration record's kit: the record's current value (the records projection
    ran first and resolved concurrent corrections by HLC)."""
    row = store.one("SELECT field FROM administration_kits WHERE event_id = ?", (e.amends,))
    if row is None or row[0] not in (e.body.get("changes") or {}):
        return
    data = store.scalar("SELECT data FROM records WHERE event_id = ?", (e.amends,))
    kit = json.loads(str(data)).get(row[0]) if data is not None else None
    key = ids.key(kit) if kit not in (None, "") else None
    store.execute("UPDATE administration_kits SET kit_id = ? WHERE event_id = ?", (key or None, e.amends))


def fill(store: Store) -> int:
    """Project every record already on the site (a site upgraded through `MIGRATION`); returns the rows.

    Each record under the version its submission was captured under, with its current values.
    """
    n = 0
    with store.transaction():
        for event_id, form, subject, data, pid, version in store.execute(
            "SELECT r.event_id, r.form, r.subject, r.data, json_extract(e.line, '$.protocol.id'),"
            " json_extract(e.line, '$.protocol.version') FROM records r JOIN events e ON e.id = r.event_id"
            " WHERE NOT EXISTS (SELECT 1 FROM administration_kits k WHERE k.event_id = r.event_id)"
            " ORDER BY e.pos"
        ).fetchall():
            ref = {"id": str(pid), "version": str(version)} if pid is not None else None
            field_ = _kit_fields(store, ref).get(str(form))
            if field_ is None:
                continue
            store.execute(
                _INSERT, _row(str(event_id), subject, str(form), field_, json.loads(data).get(field_))
            )
            n += 1
    return n


def register(registry: Registry) -> None:
    """Plug the kit projection in (`wardcrf.features`), after the records' own projectors."""
    registry.projector(_protocol_loaded, "protocol.loaded")
    registry.projector(_submitted, "record.submitted")
    registry.projector(_amended, "record.amended")
