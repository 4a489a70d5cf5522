"""A kit's use: which dose record used it, the one answer to "kit already used".

Asked by the workflow's dose rule and scan step (`workflow.dosing`,
`workflow.dose_visit`), after a sync bundle (`dosing.hold_kit_given_twice`)
and by the cold chain's custody views and kit states (`coldchain.custody`).
It lives here, below both, because the cold chain must not import the
workflow (the workflow's dose visit reads the cold chain's custody): the
question is about the kit, and both ask it of the same query.

The answer reads the `doses` projection, which the workflow's dose hook keeps
(`workflow.dosing`), and the course-kit answers a feature registers
(`Registry.course_kit`: randomization's "this kit serves one participant's
whole course").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from . import ids
from . import protocol as protocols
from .errors import Refused
from .store import Store

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
    try:
        # the active version's forms; an older version's renamed administration forms are not searched
        m = protocols.active(store).engine
    except Refused:
        return None
    if m is None:
        return None
    kit_fields = {
        str(a.record["form"]): str(a.record["kit"])
        for r in m.regimens.values()
        for a in r.administrations
        if a.record.get("kit")
    }
    for form, field_ in sorted(kit_fields.items()):
        for event_id, subject, data in store.execute(
            "SELECT event_id, subject, data FROM records WHERE form = ? ORDER BY rowid", (form,)
        ).fetchall():
            kit = json.loads(data).get(field_)
            if kit not in (None, "") and ids.key(str(kit)) == key and event_id != (exclude or ""):
                return KitUse(key, str(subject or "").removeprefix("participant:"), None, str(event_id))
    return None
