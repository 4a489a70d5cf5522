"""One time convention on screen (issue 14): the ward's local time, its zone marked.

The domain stores and words times in UTC ("2020-03-16T00:50:00Z"); people on
the ward read the clock on the wall. Every time a screen shows is local; where
a time comes from the domain's words (a refusal: "handover at
2020-03-16T00:50:00Z is not after ...") it is turned into local time with the
zone marked — "2020-03-16 08:50 UTC+8" — so it can never be mistaken for the
UTC the log keeps. The zone is the signed-in site's (`set_zone` at sign-in).
"""

from __future__ import annotations

import re
from datetime import datetime

from wardcrf.clock import zone

_zone = "UTC"

UTC_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|\+00:00)(?![\w:])")
"""A UTC time as the domain writes it (ISO 8601 with Z or +00:00)."""


def set_zone(name: str) -> None:
    """The zone every screen shows times in (the site's, set when someone signs in)."""
    global _zone
    _zone = name


def zone_mark(at: datetime) -> str:
    """'UTC+8', 'UTC+5:30', 'UTC-3', 'UTC' for the local offset at `at`."""
    offset = at.utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"UTC{sign}{h}" + (f":{m:02d}" if m else "")


def local(iso: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M", *, marked: bool = False) -> str:
    """A stored time as the ward's local time ('—' for none); `marked`: with its zone."""
    if not iso:
        return "—"
    when = iso if isinstance(iso, datetime) else datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    if when.tzinfo is None:
        return when.strftime(fmt)
    here = when.astimezone(zone(_zone))
    text = here.strftime(fmt)
    return f"{text} {zone_mark(here)}" if marked else text


def localised(text: str) -> str:
    """The domain's words with each UTC time turned into local time, zone marked."""

    def one(m: re.Match[str]) -> str:
        return local(f"{m.group(1)}T{m.group(2)}:00+00:00", marked=True)

    return UTC_TIME.sub(one, text)
