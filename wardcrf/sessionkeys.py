"""The keys a sign-in unlocked, held beside the `Session`, never on it.

A session is handed to every screen, service and report: anything reachable
from it ends up in tracebacks with locals, debug dumps, plugins and tests.
So the database key and the signing key live here, in a table keyed by the
session object, and leave it only through the few wardcrf services that need
them: wrapping a key slot (`users`, `recovery`), a backup's copy (`backup`),
a second connection for the same user (`Site.reopen`), the rollback
counter's MAC key (`rollback`), sealing and unsealing the device signing
secret (`devicekeys`), opening a blinded list's unblinding key (`unblindkeys`)
and the one logged disclosure, `dbadmin.reveal_raw_key`
(admin only, ``db.raw_key``).

This is an API boundary, not a wall: code running in the same Python process
can reach anything, and anyone with a password can unwrap the database key
from ``keyslots.json`` themselves. docs/security.md says what that leaves an
insider able to do, and why the answer to it is detection. The signing key
is different: a role that may not sign (``device.sign``) never has it in its
key slot, so no code run with that user's password can recover it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from .errors import AuthError


@dataclass(frozen=True, repr=False, eq=False)
class _Held:
    database: bytes
    signing: bytes | None
    unblinding: bytes | None = None


_HELD: weakref.WeakKeyDictionary[Any, _Held] = weakref.WeakKeyDictionary()


def hold(session: Any, database_key: bytes, signing_key: bytes | None) -> None:
    """Remember what `session`'s sign-in unlocked (until the session is garbage)."""
    _HELD[session] = _Held(database_key, signing_key)


def database_key(session: Any) -> bytes:
    """For wardcrf's own services only (see the module docstring); never returned to a caller."""
    held = _HELD.get(session)
    if held is None:
        raise AuthError("this session holds no key (it was closed): sign in again")
    return held.database


def signing_key(session: Any) -> bytes | None:
    """The key that seals the device signing secret, if this session's slot carries it."""
    held = _HELD.get(session)
    return held.signing if held else None


def set_signing_key(session: Any, signing: bytes) -> None:
    """A sign-in that picked up the signing key after opening (a site being sealed)."""
    held = _HELD.get(session)
    _HELD[session] = _Held(database_key(session), signing, held.unblinding if held else None)


def unblinding_identity(session: Any) -> bytes | None:
    """The ward's unblinding identity (`unblindkeys`), if this session's slot carries it."""
    held = _HELD.get(session)
    return held.unblinding if held else None


def set_unblinding_identity(session: Any, identity: bytes) -> None:
    held = _HELD.get(session)
    _HELD[session] = _Held(database_key(session), held.signing if held else None, identity)


def forget(session: Any) -> None:
    _HELD.pop(session, None)
