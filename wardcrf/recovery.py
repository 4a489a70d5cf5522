"""Regaining access with the recovery key when every password is lost."""

from __future__ import annotations

from . import roles
from .devicekeys import close_transition_if_complete
from .errors import Refused
from .eventlog import Author, DeviceContext, append
from .keyslots import RECOVERY_SLOT, KeySlots, Opened, check_password_rules
from .site import Site


def reset_password_with_recovery_key(site: Site, recovery_key: str, username: str, password: str) -> None:
    """Unwrap the database key with the recovery slot and give `username` a new slot.

    Also clears a lockout. Recorded as a `user.password_reset` event attributed
    to the recovery key, naming the user. A user whose role may sign for the
    device gets the signing key in the new slot, from the recovery slot.
    """
    from . import users

    check_password_rules(password)
    opened = site.slots.open_recovery(recovery_key)
    key = opened.key
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
                signing = _recovery_signing_key(site.slots, opened)
                may_unblind = roles.allowed(user["role"], "randomization.unblind")
                site.slots.set_user_slot(
                    username,
                    password,
                    key,
                    signing if roles.allowed(user["role"], "device.sign") else None,
                    inbox=may_unblind,
                    unblinding=opened.unblinding if may_unblind else None,
                )
                site.slots.clear_failures(username)
    finally:
        store.close()


def check_recovery_key(site: Site, recovery_key: str) -> str:
    """Prove that the recovery key opens this site, without changing any password.

    Worth doing now and then (a recovery key found not to work on the day
    every password is lost is no recovery key). On a site created before the
    signing key was sealed, this is also when the recovery slot takes the
    signing key, so that the recovery key restores the right to sign as this
    device too. Logged as `recovery.key_checked`. Returns one line to print.
    """
    opened = site.slots.open_recovery(recovery_key)
    store = site.unlock_key(opened.key)
    try:
        ctx = DeviceContext.load(store)
        with site.slots.locked():
            sealed_now = not opened.signing and _recovery_signing_key(site.slots, opened) is not None
        append(
            store,
            ctx,
            Author(user=None, role=None),
            type="recovery.key_checked",
            subject=f"site:{ctx.site}",
            body={"signing_key_added": sealed_now},
        )
        close_transition_if_complete(site.slots, store)
    finally:
        store.close()
    extra = "; the recovery slot now carries the device signing key" if sealed_now else ""
    return f"the recovery key opens site {ctx.site} (device {ctx.device}){extra}"


def _recovery_signing_key(slots: KeySlots, opened: Opened) -> bytes | None:
    """The signing key from the recovery slot; taken from the transition wrap (and kept) if it lacks it.

    Called inside `slots.locked()`.
    """
    if opened.signing is not None:
        return opened.signing
    signing = slots.signing_from_transition(opened.key)
    if signing is not None:
        slots.add_signing_wrap(RECOVERY_SLOT, opened.kek, signing)
    return signing
