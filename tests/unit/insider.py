"""What an insider with a password holds: the database key a sign-in unlocked.

Tests that play the insider (tampering around wardcrf) take the key from
here; the session object itself never carries it (`wardcrf.sessionkeys`).
A module of its own, not `conftest`: the TUI tests have a `conftest` too, and
which one `import conftest` finds depends on the order tests are collected.
"""

from __future__ import annotations

from wardcrf import sessionkeys
from wardcrf.site import Session


def raw_key(session: Session) -> bytes:
    return sessionkeys.database_key(session)
