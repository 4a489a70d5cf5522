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

KitAnswer = Callable[[Store, str], str | None]
"""`answer(store, kit)`: the participant the records tie `kit` to, or None."""


class FirstAnswer:
    """The features' answers to one question about a kit, asked in the order they registered: the first
    that knows says (the core asks without importing the feature that knows, e.g. randomization)."""

    def __init__(self) -> None:
        self.answers: list[KitAnswer] = []

    def register(self, fn: KitAnswer) -> KitAnswer:
        if fn not in self.answers:
            self.answers.append(fn)
        return fn

    def __call__(self, store: Store, kit: str) -> str | None:
        for fn in self.answers:
            found = fn(store, kit)
            if found is not None:
                return found
        return None


course_kits = FirstAnswer()
"""Whose course does this kit serve? (randomization, issue 20: `kit.use = "course"`; their later doses
reuse it)."""
kit_holders = FirstAnswer()
"""Whom is this kit for? (randomization: the kit a participant was allocated; `today`'s bedside rows)."""
register_course_kit = course_kits.register
course_holder = course_kits
register_kit_holder = kit_holders.register
holder = kit_holders


@dataclass(frozen=True)
class KitUse:
    """A dose record that used a kit: who received it, which dose, which record."""

    kit: str
    participant: str
    dose_number: int | None
    event_id: str
    administration: bool = False
    """A format-2 version's administration record (`administration_kits`), not a format-1 dose record only."""

    def __str__(self) -> str:
        dose = f" dose {self.dose_number}" if self.dose_number is not None else ""
        return f"kit {self.kit} was already used for {self.participant}{dose} ({self.event_id})"


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
    for anyone else, or without a participant, every dose counts. A format-2
    version's administration record naming the kit counts too (after the
    format-1 doses): one kit is used once whatever version recorded it.

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
            f"SELECT participant, dose_number, event_id, {_ALSO_ADMINISTRATION} FROM doses d"
            " WHERE kit_id = ? AND event_id != ? AND participant != ? ORDER BY start, event_id LIMIT 1",
            (k, exclude or "", holder),
        )
        if row is not None:
            return KitUse(k, row[0], row[1], row[2], bool(row[3]))
        return next(
            (u for u in administration_uses(store, k, exclude=exclude) if u.participant != holder), None
        )
    row = store.one(
        f"SELECT participant, dose_number, event_id, {_ALSO_ADMINISTRATION} FROM doses d"
        " WHERE kit_id = ? AND event_id != ? ORDER BY start, event_id LIMIT 1",
        (k, exclude or ""),
    )
    if row is None:
        return _administration_kit_use(store, k, exclude)
    return KitUse(k, row[0], row[1], row[2], bool(row[3]))


_ALSO_ADMINISTRATION = (
    "CASE WHEN EXISTS (SELECT 1 FROM administration_kits a WHERE a.event_id = d.event_id) THEN 1 ELSE 0 END"
)
"""A dose record that is a format-2 version's administration record too (a version of its own whose
administration form is named `dose` is indexed by both projections): `KitUse.administration`."""


def _administration_kit_use(store: Store, key: str, exclude: str | None) -> KitUse | None:
    """A format-2 version's administration record naming the kit (its forms are not format 1's `dose`), so the
    cold chain sees a vial given by an infusion as used (not left at the bedside past its limit), and a
    format-1 dose (a participant still on a format-1 version, another's kit) is refused a kit an
    administration record of a format-2 version gave."""
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
    return [KitUse(ids.key(kit), str(r[0]), None, str(r[1]), True) for r in rows]


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


def dose_uses(store: Store, kit: str, *, exclude: str | None = None) -> list[KitUse]:
    """The format-1 dose records (the `doses` projection) naming `kit`, oldest first; `exclude` is the record asked about.

    A record that is a format-2 version's administration record too (a version of its own whose
    administration form is named `dose`, so both projections index it) is left to `administration_uses`,
    which reads it under its version (a course kit, the kit's corrections).
    """
    rows = store.execute(
        "SELECT d.participant, d.dose_number, d.event_id FROM doses d WHERE d.kit_id = ? AND d.event_id != ?"
        " AND NOT EXISTS (SELECT 1 FROM administration_kits k WHERE k.event_id = d.event_id)"
        " ORDER BY d.start, d.event_id",
        (ids.key(kit), exclude or ""),
    ).fetchall()
    return [KitUse(ids.key(kit), str(r[0]), r[1], str(r[2])) for r in rows]


def is_administration_record(store: Store, record: str) -> bool:
    """Whether `record` (a record's event id) is a format-2 administration record (`administration_kits`)."""
    return store.one("SELECT 1 FROM administration_kits WHERE event_id = ?", (record,)) is not None


def course_record(store: Store, record: str) -> bool:
    """Whether the administration record `record` gives a kit that serves its participant's whole course.

    Read under the version its submission was captured under: its form gives only products whose kit
    is one per course (`[[products]] kit = { use = "course" }`, as the ward's `kit.use` rule reads it).
    A participant's later administrations reuse such a kit; any other kit is used once.
    """
    row = store.one(
        "SELECT k.form, e.line FROM administration_kits k JOIN events e ON e.id = k.event_id"
        " WHERE k.event_id = ?",
        (record,),
    )
    if row is None:
        return False
    return str(row[0]) in _version_kits(store, Event.from_line(str(row[1])).protocol).course


def device_of(store: Store, event_id: str) -> str:
    """The device that recorded `event_id` (the hub names both laptops of a kit given twice)."""
    found = store.scalar("SELECT device FROM events WHERE id = ?", (event_id,))
    return str(found) if found is not None else "?"


# -- the projection: the kit each format-2 administration record names ---------------------------

MIGRATION = "0541-administration-kits"
"""The migration creating `administration_kits`; a site upgraded through it is filled once (`fill`)."""


@dataclass(frozen=True)
class _VersionKits:
    """What one version says of its administration records' kits: each form's kit field, and the forms
    whose every product is one kit for a participant's whole course (`[[products]] kit = { use = "course" }`)."""

    fields: Mapping[str, str]
    course: frozenset[str]


_KIT_FIELDS: WeakKeyDictionary[Store, dict[tuple[str, str], _VersionKits]] = WeakKeyDictionary()
"""Per store: the administration forms -> kit field of the version a record names. A loaded version's file
never changes; a version not loaded here (no fields) changes only when a version is loaded, which clears
the store's entries (`_protocol_loaded`). So a replay or a hub import asks no query
per record."""


def _version_kits(store: Store, ref: Mapping[str, str] | None) -> _VersionKits:
    """The administration forms of the version `ref` names, the field each records the kit in, and which
    of them give only course kits.

    The version a record was captured under (`protocol.version`), exactly; none for a format-1 version
    or its re-encoding (their doses are the `doses` projection's), and none for a version not loaded here:
    the active one's administration forms and kit field are not the record's. Bundles arrive in an order
    where a version precedes its records (a device's chain; a restore in the hub's order), so this only
    leaves out a record whose version never reached this device; `db rebuild` reads it once it has.
    A form is a course kit's when every product its administrations give says `kit.use = "course"` (a
    form giving a single-use product too is not: a second use of its kit is then a coordinator's question).
    """
    key = (str(ref.get("id", "")), str(ref.get("version", ""))) if ref else ("", "")
    known = _KIT_FIELDS.setdefault(store, {})
    if key in known:
        return known[key]
    try:
        m = protocols.version(store, ref).engine
    except Refused:  # no protocol loaded, or not the record's version: nothing to read the record under
        return _VersionKits({}, frozenset())
    if m is None:
        found = _VersionKits({}, frozenset())
    else:
        uses = {
            str(x.get("code")): str((x.get("kit") or {}).get("use", "administration"))
            for x in m.data.get("products", ())
        }
        products: dict[str, set[str]] = {}
        fields: dict[str, str] = {}
        for r in m.regimens.values():
            for a in r.administrations:
                if a.record.get("kit"):
                    form = str(a.record["form"])
                    fields[form] = str(a.record["kit"])
                    products.setdefault(form, set()).add(str(a.product))
        course = frozenset(f for f, ps in products.items() if ps and all(uses.get(x) == "course" for x in ps))
        found = _VersionKits(fields, course)
    known[key] = found
    return found


def _kit_fields(store: Store, ref: Mapping[str, str] | None) -> Mapping[str, str]:
    """The administration forms of the version `ref` names and the field each records the kit in."""
    return _version_kits(store, ref).fields


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
