"""Which computer this site's data lives on, so a copied or moved database is noticed before it writes.

A ward laptop's data directory copied to a second computer (a clone "for
backup", a disk moved into a spare laptop) yields two devices with the same
identity: both append to the same chain, and the hub sees a fork only when
both have synced — days later, with records on both sides. The rollback
counter cannot tell (it is copied along with the database). So the database
remembers a fingerprint of the computer it was last used on: SHA-256 of the
operating system's machine id (``/etc/machine-id``; the host name where
there is none), the site and the device. At sign-in a different computer is
refused in one line, before anything is written, until an admin records why
(`wardcrf db accept-move --reason`, the event `device.moved`, which the hub
receives with the next bundle). A genuine move (the old laptop is dead) is
then one command; a clone is stopped on the laptop, not found at the hub.

What this does not stop: someone who edits the stored fingerprint with the
raw database key (docs/security.md, the insider), or a clone of the whole
computer including its machine id (a virtual machine image): the hub's fork
detection remains the check for those.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from .errors import Refused
from .store import Store

STATE_KEY = "machine"
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


class MachineChanged(Refused):
    """Signed in on another computer than the database was last used on. Exit 1, one line."""

    def __init__(self) -> None:
        super().__init__(
            "this site's data was last used on another computer (its disk moved, or the data copied):"
            " nothing can be recorded here until an admin records why, with"
            " `wardcrf db accept-move --reason TEXT` (if the other computer still holds this site,"
            " stop using one of them: two laptops with one identity fork its records)"
        )


def machine_id() -> str:
    """The operating system's id of this computer (stable across reboots), or its host name."""
    for path in MACHINE_ID_FILES:
        try:
            value = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return "host:" + socket.gethostname()


def fingerprint(site: str, device: str) -> str:
    """This computer, for this site and device (the machine id itself is never stored)."""
    return hashlib.sha256(f"wardcrf-machine/1\n{machine_id()}\n{site}\n{device}\n".encode()).hexdigest()


def stored(store: Store) -> str | None:
    value = store.scalar("SELECT value FROM sync_state WHERE key = ?", (STATE_KEY,))
    return None if value is None else str(value)


def remember(store: Store, value: str) -> None:
    with store.transaction():
        store.execute(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (STATE_KEY, value),
        )
