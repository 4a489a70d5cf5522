"""The dose gate of a blinded trial: the scanned kit must be the kit the list allocated.

On a blinded ward the allocation is a kit number; giving the participant any
other kit would break the randomization without anyone seeing it. So before
any signature the dose is refused, in the ward's words, when a randomized
participant's scanned kit is not theirs. Participants not randomized by kit
on this laptop (open label, or no list) are not this gate's concern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import ids
from ..errors import Refused

if TYPE_CHECKING:
    from ..store import Store


def course_kit_holder(store: Store, kit: str) -> str | None:
    """The participant whose allocated kit this is, when the list says one kit serves the whole course."""
    row = store.one(
        "SELECT a.participant FROM rand_allocations a JOIN rand_lists l ON l.list_id = a.list_id"
        " WHERE a.kit = ? AND l.reveal = 'kit' AND l.kit_use = 'course'",
        (ids.key(kit),),
    )
    return None if row is None else str(row[0])


def allocated_kit_holder(store: Store, kit: str) -> str | None:
    """The participant a randomization list allocated this kit to (a list that reveals kits), or None."""
    row = store.one(
        "SELECT a.participant FROM rand_allocations a JOIN rand_lists l ON l.list_id = a.list_id"
        " WHERE a.kit = ? AND l.reveal = 'kit'",
        (ids.key(kit),),
    )
    return None if row is None else str(row[0])


def check_allocated_kit(store: Store, participant: str, kit: str) -> None:
    """Refuse a kit other than the participant's allocated one, and a kit allocated to someone else."""
    pid = ids.key(participant)
    other = store.one(
        "SELECT a.participant FROM rand_allocations a JOIN rand_lists l ON l.list_id = a.list_id"
        " WHERE a.kit = ? AND l.reveal = 'kit' AND a.participant != ?",
        (ids.key(kit), pid),
    )
    if other is not None:
        raise Refused(
            f"kit {ids.key(kit)} is allocated to {other[0]}, not to {pid}: a randomized kit is given only to"
            " its participant; nothing was signed"
        )
    row = store.one(
        "SELECT a.kit, a.list_id, a.position FROM rand_allocations a"
        " JOIN rand_lists l ON l.list_id = a.list_id WHERE a.participant = ? AND l.reveal = 'kit'",
        (pid,),
    )
    if row is None or row[0] is None:
        return
    allocated = str(row[0])
    if not ids.same(allocated, kit):
        raise Refused(
            f"kit {ids.key(kit) or '(none)'} is not the kit allocated to {pid}: scan kit {allocated} "
            f"(entry {row[2]} of randomization list {row[1]}); nothing was signed"
        )
