"""Pieces the cold-chain screens share: times and signatures.

The scanned-entry list is `widgets/entry_list.py`, the path picker `dialogs/path.py`.

- `collect_passwords`: asks each in-system party to sign in the signature
  dialog. The dialog checks the password right away (`Site.verify_password`,
  which counts failures toward lockout like a login), so a wrong password
  keeps the dialog open; the service re-verifies it inside the save.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from wardcrf.clock import zone

if TYPE_CHECKING:
    from textual.screen import Screen

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


def yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("y", "yes", "1", "true", "是"):
        return True
    if v in ("n", "no", "0", "false", "否"):
        return False
    return None


# -- signatures --------------------------------------------------------------------------


async def collect_passwords(
    screen: Screen[Any], ward: Ward, what: str, parties: list[tuple[str, str]]
) -> dict[str, str] | None:
    """Each (user, meaning) signs in the dialog; returns their passwords, or None if one cancels."""
    from ..dialogs.sign import SignatureDialog

    passwords: dict[str, str] = {}
    for user, meaning in parties:
        if not user or user in passwords:
            continue

        def check(signer: str, password: str) -> str:
            ward.call(lambda s: ward.site.verify_password(s, signer, password))
            return password

        got = await screen.app.push_screen_wait(
            SignatureDialog(what=what, meaning=meaning, signer=user, sign=check)
        )
        if got is None:
            return None
        passwords[user] = got
    return passwords
