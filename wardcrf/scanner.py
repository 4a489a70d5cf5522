"""The scanner profile: how this laptop's barcode scanner ends a code (issue 14, "Scanner input").

A USB barcode scanner types a code like a very fast keyboard. Most are set
to end each code with Enter; some send nothing after the code, and the only
sign that a code is complete is that the keys stop. Which of the two a
laptop's scanner does is a property of that laptop (its scanner), so it is
a per-device setting:

- ``enter`` (the default, and what a laptop with no setting does): a code
  is taken when Enter comes. Keys typed slowly by a person are never cut
  into scans.
- ``gap`` with ``gap_ms`` (``MIN_GAP_MS``–``MAX_GAP_MS``): a burst of keys
  followed by that long without a key is one complete scan. The list fields
  check it against the id rule at once (`wardcrf.ids`), list it or refuse it
  in one line, and clear the field for the next scan; the dose wizard checks
  the kit at once. Enter still ends a code too.

Setting the profile is an event (``device.scanner_set``: who, when, on which
device), admin only (`roles`: ``device.configure``); the screens read it
through `profile`, never from the store. The projection ``device_scanner``
is keyed by the device in the event's envelope, so a hub that receives
several laptops' events keeps each laptop's own and applies none to itself.

How the TUI tells a scanner's burst from a person typing is in
screens/widgets/scan_field.py (docs/tui.md, "Scanner profile").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import text
from .errors import UsageError
from .sqlstore import common_dialect

if TYPE_CHECKING:
    from .eventlog import Event
    from .features import Registry
    from .site import Session
    from .store import Store

EVENT = "device.scanner_set"
ENDS = ("enter", "gap")
MIN_GAP_MS = 30
"""Shorter than this, a busy laptop's own pauses between the keys of one code would cut it."""
MAX_GAP_MS = 1000
"""Longer than this, the next scan would wait a second: no scanner pauses that long inside a code."""


@dataclass(frozen=True)
class ScannerProfile:
    """How this laptop's scanner ends a code, and who said so (None: the default)."""

    ends: str = "enter"
    gap_ms: int | None = None
    set_by: str | None = None
    set_at: str | None = None
    event: str | None = None

    @property
    def gap_s(self) -> float | None:
        """The quiet time that ends a scan, in seconds (None: codes end on Enter only)."""
        return self.gap_ms / 1000 if self.ends == "gap" and self.gap_ms else None

    def describe(self) -> str:
        """One line: what the scanner does, and who set it."""
        what = (
            f"a code ends after {self.gap_ms} ms without a key (or on Enter)"
            if self.ends == "gap"
            else "a code ends on Enter"
        )
        who = f"set by {self.set_by} at {self.set_at}" if self.set_by else "the default"
        return f"scanner: {what} ({who})"

    def as_dict(self) -> dict[str, object]:
        return {
            "ends": self.ends,
            "gap_ms": self.gap_ms,
            "set_by": self.set_by,
            "set_at": self.set_at,
            "event": self.event,
        }


def checked(ends: object, gap_ms: object) -> tuple[str, int | None]:
    """The profile as stored, or `UsageError` in one line naming what is wrong and what is allowed.

    `gap_ms` may be the text typed on the command line ("120"): only plain digits are a number.
    """
    allowed = f"allowed: {MIN_GAP_MS}-{MAX_GAP_MS}"
    if not isinstance(ends, str) or ends.strip().lower() not in ENDS:
        shown = text.excerpt(ends, quoted=True) if isinstance(ends, str) else type(ends).__name__
        raise UsageError(f"unknown scanner end {shown} (allowed: enter, gap)")
    ends = ends.strip().lower()
    if ends == "enter":
        if gap_ms is not None:
            raise UsageError(
                "a scanner that ends a code on Enter has no gap (--gap-ms goes with --ends gap only)"
            )
        return "enter", None
    if gap_ms is None:
        raise UsageError(
            f"a scanner that ends a code after a gap needs the gap in milliseconds (--gap-ms, {allowed})"
        )
    typed = gap_ms.strip() if isinstance(gap_ms, str) else None
    if typed is not None and _WHOLE.fullmatch(typed):
        if len(typed) > 12:  # out of range whatever it is (and never handed to int(): 5 MB of digits)
            raise UsageError(f"scanner gap {text.excerpt(typed, 12)} ms is out of range ({allowed})")
        gap_ms = int(typed)
    if isinstance(gap_ms, bool) or not isinstance(gap_ms, int):
        shown = text.excerpt(gap_ms, quoted=True) if isinstance(gap_ms, str) else type(gap_ms).__name__
        raise UsageError(f"scanner gap {shown} is not a whole number of milliseconds ({allowed})")
    if not MIN_GAP_MS <= gap_ms <= MAX_GAP_MS:
        raise UsageError(f"scanner gap {text.excerpt(str(gap_ms), 12)} ms is out of range ({allowed})")
    return "gap", gap_ms


_WHOLE = re.compile(r"[-+]?[0-9]+")
"""A whole number as typed on the command line."""


def set_profile(session: Session, ends: str, gap_ms: int | str | None = None) -> ScannerProfile:
    """Record how this laptop's scanner ends a code (admin; an event with who and when)."""
    session.require("device.configure", what="set this laptop's scanner profile")
    ends, gap_ms = checked(ends, gap_ms)
    device = session.ctx.device
    session.append(
        type=EVENT,
        subject=f"device:{device}",
        body={"device": device, "ends": ends, "gap_ms": gap_ms},
    )
    return _read(session.store, device)


def profile(session: Session) -> ScannerProfile:
    """This laptop's scanner profile (the default, Enter, when none was set). Any signed-in role reads it."""
    session.require("record.read", what="read this laptop's scanner profile")
    return _read(session.store, session.ctx.device)


def _read(store: Store, device: str) -> ScannerProfile:
    row = store.one(
        "SELECT ends, gap_ms, set_by, set_at, set_event FROM device_scanner WHERE device = ?", (device,)
    )
    if row is None:
        return ScannerProfile()
    return ScannerProfile(
        ends=str(row[0]),
        gap_ms=None if row[1] is None else int(row[1]),
        set_by=str(row[2]),
        set_at=str(row[3]),
        event=str(row[4]),
    )


@common_dialect
def _scanner_set(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        "INSERT INTO device_scanner (device, ends, gap_ms, set_by, set_at, set_event) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(device) DO UPDATE SET ends = excluded.ends, gap_ms = excluded.gap_ms,"
        " set_by = excluded.set_by, set_at = excluded.set_at, set_event = excluded.set_event",
        (e.device, b["ends"], b.get("gap_ms"), e.user or "", e.ts, e.id),
    )


def register(registry: Registry) -> None:
    """Plug the profile's projection in (`wardcrf.features`)."""
    registry.projector(_scanner_set, EVENT)
