"""What a device's unreceipted events bring to the hub, without reading them: an indexed summary.

The sync panel shows how many photos this laptop's events not yet receipted
by the hub will carry there. Reading those events to find out (`LIKE
'%sha256%'` over every line after the receipt) cost 3 s at a million
unreceipted events. `photo_first_refs` is kept instead: for each photo a
device's events reference (or carry, `photo.imported`), the first event of
that device that does, numbered in the device's order (its ordinal). A photo
whose first reference is receipted is at the hub already (that bundle carried
it), so the photos pending after receipted seq R are

    (the device's last ordinal) - (the ordinal of its last first-reference at or before R)

two index lookups, whatever the number of events. The table is a projection
(every event, `eventlog.every_event_projector`), so `db rebuild` re-derives it
and `db rebuild --check` compares it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardcrf.eventlog import Event
from wardcrf.sqlstore import common_dialect
from wardcrf.store import Store

from .bundle import photo_refs

if TYPE_CHECKING:
    from wardcrf.features import Registry


@common_dialect
def _index_photo_refs(store: Store, e: Event) -> None:
    line = e.line
    if "sha256:" not in line and e.type != "photo.imported":
        return
    for digest in photo_refs([line]):
        store.execute(
            "INSERT INTO photo_first_refs (device, sha256, seq, ordinal)"
            " SELECT ?, ?, ?, coalesce((SELECT ordinal FROM photo_first_refs WHERE device = ?"
            " ORDER BY seq DESC, ordinal DESC LIMIT 1), 0) + 1"
            " WHERE NOT EXISTS (SELECT 1 FROM photo_first_refs WHERE device = ? AND sha256 = ?)",
            (e.device, digest, e.seq, e.device, e.device, digest),
        )


def photos_after(store: Store, device: str, seq: int) -> int:
    """Photos first referenced by `device`'s events after `seq` (those the hub does not hold from it)."""
    last = store.scalar(
        "SELECT ordinal FROM photo_first_refs WHERE device = ? ORDER BY seq DESC, ordinal DESC LIMIT 1",
        (device,),
    )
    if not last:
        return 0
    upto = store.scalar(
        "SELECT ordinal FROM photo_first_refs WHERE device = ? AND seq <= ?"
        " ORDER BY seq DESC, ordinal DESC LIMIT 1",
        (device, seq),
    )
    return int(last) - int(upto or 0)


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.every_event_projector(_index_photo_refs)
