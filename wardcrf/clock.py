"""Time on a ward laptop: wall clock, zone and a hybrid logical clock.

Ward clocks drift and get reset. Every event records the wall time in UTC,
the device's offset and zone (so a reader sees the local time the clinician
saw), and a hybrid logical clock (HLC) value that never runs backwards on a
device and moves past every clock it has seen from other devices. The HLC
orders concurrent amendments from two devices; wall time is what people read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FAR_AHEAD = timedelta(hours=24)
"""A new event this far past the last one is suspicious (warn, never block)."""


_PINNED: ContextVar[datetime | None] = ContextVar("wardcrf_pinned_now", default=None)


@contextlib.contextmanager
def pinned(at: datetime) -> Iterator[None]:
    """Within the block, `now_utc()` is `at`: a demo seeds two weeks as if typed as they happened.

    Every record of a seeded history is then entered when it describes (the
    audit-trail review finds no late entries and no entries at night in it),
    and the entries' clock runs forward as a real ward's does.
    """
    token = _PINNED.set(at.astimezone(UTC))
    try:
        yield
    finally:
        _PINNED.reset(token)


def now_utc() -> datetime:
    """The current UTC time; `WARDCRF_FAKE_NOW` (ISO 8601) pins it for demos and tests."""
    pin = _PINNED.get()
    if pin is not None:
        return pin
    fake = os.environ.get("WARDCRF_FAKE_NOW")
    if fake:
        dt = datetime.fromisoformat(fake)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    return datetime.now(UTC)


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from exc


def iso_utc(dt: datetime) -> str:
    """UTC timestamp with milliseconds and a Z, e.g. 2020-03-16T01:00:00.000Z."""
    u = dt.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def utc_offset(dt: datetime, zone_name: str) -> str:
    """The zone's offset at `dt` as +HH:MM (what the clinician's wall clock showed)."""
    off = dt.astimezone(zone(zone_name)).utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text}")
    return dt


@dataclass(frozen=True, order=True)
class HLC:
    """A hybrid logical clock value: physical milliseconds and a counter.

    Encoded as a fixed-width string so that string order equals clock order.
    """

    millis: int
    counter: int

    def encode(self) -> str:
        return f"{self.millis:015d}.{self.counter:05d}"

    @classmethod
    def decode(cls, text: str) -> HLC:
        millis, _, counter = text.partition(".")
        return cls(int(millis), int(counter or 0))

    def tick(self, wall_millis: int) -> HLC:
        """The next local value: wall time if it moved forward, else counter + 1."""
        if wall_millis > self.millis:
            return HLC(wall_millis, 0)
        return HLC(self.millis, self.counter + 1)

    def merge(self, other: HLC, wall_millis: int) -> HLC:
        """The value after receiving `other` from another device."""
        top = max(self.millis, other.millis, wall_millis)
        if top == self.millis == other.millis:
            return HLC(top, max(self.counter, other.counter) + 1)
        if top == self.millis:
            return HLC(top, self.counter + 1)
        if top == other.millis:
            return HLC(top, other.counter + 1)
        return HLC(top, 0)


ZERO = HLC(0, 0)


def wall_millis(dt: datetime | None = None) -> int:
    dt = dt or now_utc()
    return int(dt.timestamp() * 1000)


def monotonic_ms() -> float:
    return time.monotonic() * 1000
