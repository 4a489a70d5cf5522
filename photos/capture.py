"""Capture time: warn when a photo was taken far from the time of the record it supports.

A photo of the wrong patient's consent page is most often caught by its
EXIF capture time. The warning never blocks (cameras' clocks drift), it
asks the person to look; the span is configured with the photo limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from wardcrf.clock import parse_iso, zone
from wardcrf.evidence import digest_of, is_reference
from wardcrf.store import Store

from .catalog import get_info
from .validate import PhotoLimits

if TYPE_CHECKING:
    pass


def _as_utc(text: str, zone_name: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:  # EXIF without OffsetTimeOriginal: the camera's local time
        dt = dt.replace(tzinfo=zone(zone_name))
    return dt


def capture_gap(captured_at: str | None, record_time: datetime | str, zone_name: str) -> timedelta | None:
    """|EXIF capture time - record time|, or None when the photo has no capture time."""
    if not captured_at:
        return None
    shot = _as_utc(captured_at, zone_name)
    if shot is None:
        return None
    when = parse_iso(record_time) if isinstance(record_time, str) else record_time
    return abs(when - shot)


def capture_warnings(
    store: Store,
    refs: Iterable[str],
    record_time: datetime | str,
    *,
    span: timedelta | None = None,
    zone_name: str = "UTC",
) -> list[str]:
    """One warning per referenced photo taken further than `span` from the record time."""
    span = span or PhotoLimits.from_env().capture_span
    out = []
    for ref in refs:
        if not is_reference(ref):
            continue
        info = get_info(store, digest_of(ref))
        if info is None:
            continue
        gap = capture_gap(info.captured_at, record_time, zone_name)
        if gap is not None and gap > span:
            out.append(
                f"photo {info.short_id} was taken {info.captured_at} (EXIF), "
                f"{human_span(gap)} from the record's time; check it is the right photo"
            )
    return out


def human_span(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 72 else f"{hours / 24:.0f} days"
