"""A database behind its own chain: stopped before it forks what the hub or a newer copy holds.

A laptop restored from an old backup is internally perfect: its chains
verify, its rollback counter is made anew with it. But the events it wrote
after the backup still exist somewhere: in the database the restore moved
aside, and, once synced, at the hub. Appending now would give those sequence
numbers a second meaning — a fork of this laptop's own chain, found at the
hub days later with records on both sides. So the laptop stops itself, on
the laptop, before its first append (rows 2 and 4 of the threat list in
shared/DESIGN.md):

- `db restore` compares the backup with the database it replaces: when that
  one held more of this device's events (or a hub receipt for more), the
  restored database is *behind*;
- a hub receipt saying the hub holds more of this device than this database
  does (`sync.receipts.record`) makes it behind as well, at once for the
  session that applied it and at every later sign-in.

Behind, sign-in is refused in one line naming what holds the newer events
(`BehindDetected`) until an admin records why, with
`wardcrf db accept-rollback --reason` (the event `db.behind_accepted`, which
the hub receives with the next bundle and which explains the fork it will
see). The `db.restored` record of a restore that stopped is kept here and
written with the acceptance, so nothing is appended before it.

What this does not stop: a restore onto a laptop whose newer database is
gone and that never synced since the backup — then only the hub can tell,
and it does, at the next sync (the receipt path above).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import Any

from .errors import Refused
from .store import Store

STATE_KEY = "behind"

# Stores whose session learnt mid-way that the database is behind (a receipt):
# the one append function refuses on them (`check`), as sign-in does later.
_STOPPED: weakref.WeakSet[Store] = weakref.WeakSet()


@dataclass(frozen=True)
class Behind:
    """This database ends at `head`; `holds` says who holds this device's events up to `newer`."""

    head: int
    newer: int
    holds: str  # "the hub" or the folder holding the replaced database
    found: str  # "restore" or "receipt"
    restored: dict[str, Any] | None = field(default=None)  # the pending db.restored body

    def body(self) -> dict[str, Any]:
        return {"head": self.head, "newer": self.newer, "found": self.found}


class BehindDetected(Refused):
    """This database is behind its own chain elsewhere. Exit 1, one line."""

    def __init__(self, b: Behind) -> None:
        self.behind = b
        super().__init__(
            f"this database ends at this laptop's event {b.head:,} but {b.holds} holds its events up to"
            f" {b.newer:,}: recording here would fork this laptop's records. Put the newer database back,"
            " or an admin records why this one is kept, with `wardcrf db accept-rollback --reason TEXT`"
        )


def state(store: Store) -> Behind | None:
    raw = store.scalar("SELECT value FROM sync_state WHERE key = ?", (STATE_KEY,))
    if raw is None:
        return None
    d = json.loads(str(raw))
    return Behind(int(d["head"]), int(d["newer"]), str(d["holds"]), str(d["found"]), d.get("restored"))


def stop(store: Store, b: Behind) -> None:
    """Record that this database is behind (kept until an admin accepts); stops this store's appends now."""
    if state(store) is None:
        value = json.dumps(
            {"head": b.head, "newer": b.newer, "holds": b.holds, "found": b.found, "restored": b.restored}
        )
        with store.transaction():
            store.execute("INSERT INTO sync_state (key, value) VALUES (?, ?)", (STATE_KEY, value))
    _STOPPED.add(store)


def clear(store: Store) -> None:
    store.execute("DELETE FROM sync_state WHERE key = ?", (STATE_KEY,))
    _STOPPED.discard(store)


def check(store: Store) -> None:
    """Called by `eventlog.append`: nothing is appended by a session that learnt it is behind."""
    if store in _STOPPED:
        b = state(store)
        if b is not None:
            raise BehindDetected(b)
        _STOPPED.discard(store)  # accepted by another session meanwhile


def own_progress(store: Store) -> tuple[str, int, int]:
    """(device, last own event, last own event a hub receipt says the hub holds)."""
    device = str(store.scalar("SELECT device FROM site WHERE id = 1"))
    head = int(store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,)) or 0)
    at_hub = int(store.scalar("SELECT max(seq) FROM sync_receipts WHERE device = ?", (device,)) or 0)
    return device, head, at_hub
