"""Pieces the cold-chain screens share: times.

The scanned-entry list is `widgets/entry_list.py`, the path picker
`dialogs/path.py`; the custody forms' signatures are the form framework's
(`FieldForm.collect_signatures`, screens/field_form.py: the dialog checks each
password right away, `Site.verify_password`, which counts failures toward
lockout like a login; the service re-verifies it inside the save).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from wardcrf.clock import zone

if TYPE_CHECKING:
    from ..ward import Ward


# -- times ------------------------------------------------------------------------------


def local_time(ward: Ward, iso: str | None, *, seconds: bool = False) -> str:
    """A UTC ISO time from the domain as the ward's local 'YYYY-MM-DD HH:MM'."""
    if not iso:
        return "—"
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone(ward.session.ctx.zone))
    return dt.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_epoch(ward: Ward, t: int, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(t, zone(ward.session.ctx.zone)).strftime(fmt)


def now_text(ward: Ward) -> str:
    """The default for a time field: now, local, to the minute (people correct it if needed)."""
    return ward.local_now().strftime("%Y-%m-%d %H:%M")


def stamped_field(focused_id: str | None, fields: tuple[str, ...] = ("start", "end")) -> str:
    """Which time field ctrl+t stamps with now: the focused one of `fields`, else the last (the end)."""
    return next((n for n in fields if focused_id == f"cc-{n}"), fields[-1])


def yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("y", "yes", "1", "true", "是"):
        return True
    if v in ("n", "no", "0", "false", "否"):
        return False
    return None
