"""Users: add, change password, deactivate, lock and unlock (Part 11 §11.300).

User ids are user names, and a name is never reused: a deactivated user's
row stays, their slot is retired (their password no longer opens the
database; it only lets the login tell them they are deactivated, see
`keyslots`), and `add` refuses the name forever after.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import roles, sessionkeys, text, unblindkeys
from .errors import Refused, UsageError
from .eventlog import Author, DeviceContext, Event, append
from .keyslots import LOCKOUT_AFTER, check_password_rules
from .names import check_name as _check_name
from .sqlstore import common_dialect
from .store import Store

if TYPE_CHECKING:
    from .features import Registry
    from .site import Session

LANGUAGE_CODE = re.compile(r"^[a-z]{2}(-[A-Za-z]{2,8})?$")
"""A language code (format 2's schema for `protocol.languages`; format 1 is held to the same at load)."""


def get(store: Store, username: str) -> dict[str, Any] | None:
    rows = store.rows("SELECT * FROM users WHERE id = ?", (username,))
    return rows[0] if rows else None


def own_language(session: Session) -> str | None:
    """The language the signed-in user chose (`set_language`), or None."""
    session.require("record.read", what="read user settings")
    row = get(session.store, session.user)
    return row["language"] if row else None


def list_users(session: Session) -> list[dict[str, Any]]:
    session.require("record.read", what="list users")
    return session.store.rows(
        "SELECT id, username, full_name, role, active, locked, language FROM users ORDER BY username"
    )


def record_user_added(
    store: Store, ctx: DeviceContext, author: Author, username: str, full_name: str, role: str
) -> Event:
    return append(
        store,
        ctx,
        author,
        type="user.added",
        subject=f"user:{username}",
        body={"username": username, "full_name": full_name, "role": role},
    ).event


def check_new_user(session: Session, username: str, role: str) -> str:
    """Everything about a new user except the password; returns the clean name.

    Called before a password is asked for, so nobody types a password twice
    only to learn that the role is misspelt or they may not add users.
    """
    session.require("user.manage", what="add users")
    username = _check_name("user name", username)
    roles.check_role(role)
    if get(session.store, username) is not None or session.site.slots.has_user(username):
        raise Refused(
            f"user name {username} is already taken (names are never reused, even after deactivation)"
        )
    return username


def add_user(session: Session, username: str, full_name: str, role: str, password: str) -> Event:
    """Create a user with a role and a key slot for their password."""
    username = check_new_user(session, username, role)
    full_name = text.check(full_name.strip(), field="full name") or username
    check_password_rules(password)
    with session.store.transaction():
        event = record_user_added(session.store, session.ctx, session.author, username, full_name, role)
        # The slot is written inside the transaction: if saving it fails, the
        # event rolls back and no half-created user remains.
        with session.site.slots.locked():
            session.site.slots.set_user_slot(
                username,
                password,
                sessionkeys.database_key(session),
                signing_key_for(session, role),
                **unblindkeys.slot_terms(session, role),
            )
    return event


def signing_key_for(session: Session, role: str) -> bytes | None:
    """The signing key to wrap into a slot of `role`: the granting session's, only for a role that signs.

    On a site still being sealed (`devicekeys.settle_signing_key`) an admin
    may not hold it yet; the transition wrap has it then.
    """
    if not roles.allowed(role, "device.sign"):
        return None
    key = sessionkeys.signing_key(session)
    if key is None:
        key = session.site.slots.signing_from_transition(sessionkeys.database_key(session))
    return key


def check_password_change(session: Session, username: str) -> None:
    """May this session change `username`'s password? (Asked before the new password is typed.)"""
    if username != session.user:
        session.require("user.manage", what="change another user's password")
    else:
        session.require("user.passwd.self", what="change a password")
    user = get(session.store, username)
    if user is None or not user["active"]:
        raise Refused(f"{username} is not an active user")


def change_password(session: Session, username: str, new_password: str) -> Event:
    """Rewrap one slot under a new password. The data is not re-encrypted."""
    check_password_change(session, username)
    check_password_rules(new_password)
    with session.store.transaction():
        event = session.append(
            type="user.password_changed",
            subject=f"user:{username}",
            body={"username": username, "by_admin": username != session.user},
        ).event
        role = str((get(session.store, username) or {}).get("role", ""))
        with session.site.slots.locked():
            session.site.slots.set_user_slot(
                username,
                new_password,
                sessionkeys.database_key(session),
                signing_key_for(session, role),
                **unblindkeys.slot_terms(session, role),
            )
    return event


def deactivate(session: Session, username: str, reason: str) -> Event:
    session.require("user.manage", what="deactivate users")
    if not reason.strip():
        raise UsageError("a reason is required to deactivate a user")
    text.check(reason.strip(), field="reason")
    user = get(session.store, username)
    if user is None:
        raise Refused(f"unknown user {username}")
    if not user["active"]:
        raise Refused(f"{username} is already deactivated")
    if username == session.user:
        raise Refused("you cannot deactivate yourself; ask another admin")
    if user["role"] == "admin":
        admins = session.store.scalar("SELECT count(*) FROM users WHERE role='admin' AND active=1")
        if admins <= 1:
            raise Refused("cannot deactivate the last active admin")
    with session.store.transaction():
        event = session.append(
            type="user.deactivated",
            subject=f"user:{username}",
            body={"username": username},
            reason=reason.strip(),
        ).event
        with session.site.slots.locked():
            session.site.slots.retire_user_slot(username, sessionkeys.database_key(session))
            session.site.slots.clear_failures(username)
    return event


def unlock(session: Session, username: str, reason: str = "unlocked by admin") -> Event:
    session.require("user.manage", what="unlock accounts")
    text.check(reason.strip(), field="reason")
    user = get(session.store, username)
    if user is None:
        raise Refused(f"unknown user {username}")
    with session.store.transaction():
        event = session.append(
            type="user.unlocked",
            subject=f"user:{username}",
            body={"username": username},
            reason=reason,
        ).event
        with session.site.slots.locked():
            session.site.slots.clear_failures(username)
    return event


def languages(session: Session) -> tuple[str, ...]:
    """The languages a user of this ward may choose: those the active protocol declares for its labels
    (`protocol.languages`, English first), English alone when no protocol is loaded. The screens' own
    words may be in fewer (docs/tui.md, "Language"): they fall back to English string by string."""
    from . import protocol

    try:
        declared = protocol.active(session.store).languages
    except Refused:
        declared = ()
    return tuple(dict.fromkeys(["en", *(x for x in declared if LANGUAGE_CODE.match(x))]))


def set_language(session: Session, language: str) -> Event:
    allowed = languages(session)
    if language not in allowed:
        shown = repr(language[:20]) + ("…" if len(language) > 20 else "")
        raise UsageError(f"unknown language {shown}: this ward's protocol declares {', '.join(allowed)}")
    return session.append(
        type="user.language_set",
        subject=f"user:{session.user}",
        body={"username": session.user, "language": language},
    ).event


def record_login_failed(session: Session, username: str, at: str, *, count: int | None = None) -> None:
    """Log a failed attempt; lock the account at the fifth in a row."""
    with session.store.transaction():
        session.append(
            type="auth.login_failed", subject=f"user:{username}", body={"username": username, "at": at}
        )
        user = get(session.store, username)
        failures = count if count is not None else session.site.slots.failed_count(username)
        if user is not None and not user["locked"] and failures >= LOCKOUT_AFTER:
            session.append(
                type="user.locked",
                subject=f"user:{username}",
                body={"username": username, "failures": failures},
            )


def record_login_refused(session: Session, username: str, at: str, why: str) -> None:
    """Log a sign-in with the right password to an account that may not sign in (deactivated)."""
    session.append(
        type="auth.login_refused",
        subject=f"user:{username}",
        body={"username": username, "at": at, "why": why},
    )


# -- projections ------------------------------------------------------------------------


def _foreign(store: Store, e: Event) -> bool:
    """Accounts are per site. A hub merging wards' logs (or a ward reading the
    hub's chain) lists other sites' people by name, but their account events
    (locks, failed logins, deactivations) never touch this site's accounts."""
    return e.site != store.scalar("SELECT site FROM site WHERE id = 1")


@common_dialect
def _user_added(store: Store, e: Event) -> None:
    b = e.body
    # Another site's user is a directory entry here (full name and role for
    # reports), never an account (inactive; it has no key slot anyway). Two
    # laptops of one site each create their first admin: merged logs keep
    # whichever name was added first (log order); the other stays in the log.
    store.execute(
        "INSERT INTO users (id, username, full_name, role, active, locked, failed_logins, language,"
        " created_event, updated_event) VALUES (?,?,?,?,?,0,0,'en',?,?) ON CONFLICT DO NOTHING",
        (b["username"], b["username"], b["full_name"], b["role"], 0 if _foreign(store, e) else 1, e.id, e.id),
    )


def _own_account(store: Store, e: Event, assignments: str, *values: object) -> None:
    """`UPDATE users SET <assignments>` for the account an event names, when it is of this site."""
    if not _foreign(store, e):
        store.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*values, e.body["username"]))


@common_dialect
def _user_deactivated(store: Store, e: Event) -> None:
    _own_account(store, e, "active = 0, updated_event = ?", e.id)


@common_dialect
def _user_locked(store: Store, e: Event) -> None:
    _own_account(store, e, "locked = 1, updated_event = ?", e.id)


@common_dialect
def _user_unlocked(store: Store, e: Event) -> None:
    _own_account(store, e, "locked = 0, failed_logins = 0, updated_event = ?", e.id)


@common_dialect
def _login_failed(store: Store, e: Event) -> None:
    _own_account(store, e, "failed_logins = failed_logins + 1")


@common_dialect
def _password_changed(store: Store, e: Event) -> None:
    _own_account(store, e, "updated_event = ?", e.id)


@common_dialect
def _language_set(store: Store, e: Event) -> None:
    _own_account(store, e, "language = ?, updated_event = ?", e.body["language"], e.id)


@common_dialect
def _password_reset(store: Store, e: Event) -> None:
    _own_account(store, e, "updated_event = ?", e.id)


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_user_added, "user.added")
    registry.projector(_user_deactivated, "user.deactivated")
    registry.projector(_user_locked, "user.locked")
    registry.projector(_user_unlocked, "user.unlocked")
    registry.projector(_login_failed, "auth.login_failed")
    registry.projector(_password_changed, "user.password_changed")
    registry.projector(_language_set, "user.language_set")
    registry.projector(_password_reset, "user.password_reset")
