"""Regaining access with the recovery key when every password is lost."""

from __future__ import annotations

from .errors import Refused
from .eventlog import Author, DeviceContext, append
from .keyslots import check_password_rules
from .site import Site


def reset_password_with_recovery_key(site: Site, recovery_key: str, username: str, password: str) -> None:
    """Unwrap the database key with the recovery slot and give `username` a new slot.

    Also clears a lockout. Recorded as a `user.password_reset` event attributed
    to the recovery key, naming the user.
    """
    from . import users

    check_password_rules(password)
    key = site.slots.unwrap_with_recovery(recovery_key)
    store = site.unlock_key(key)
    try:
        user = users.get(store, username)
        if user is None or not user["active"]:
            raise Refused(f"{username} is not an active user of this site")
        ctx = DeviceContext.load(store)
        with store.transaction():
            append(
                store,
                ctx,
                Author(user=None, role=None),
                type="user.password_reset",
                subject=f"user:{username}",
                body={"username": username, "via": "recovery key"},
                reason="password reset with the site recovery key",
            )
            if user["locked"]:
                append(
                    store,
                    ctx,
                    Author(user=None, role=None),
                    type="user.unlocked",
                    subject=f"user:{username}",
                    body={"username": username},
                    reason="unlocked with the site recovery key",
                )
            with site.slots.locked():
                site.slots.set_user_slot(username, password, key)
                site.slots.clear_failures(username)
    finally:
        store.close()
