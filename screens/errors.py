"""Turning a failed service call into the one line a person reads on a screen.

The domain words each refusal once, for every front end. Two things in those
words belong to the command line, not to a screen (issue 14): the flag to
pass (`(--logger-serial)`, `(see `wardcrf log`)`), written as an aside in
brackets or as a clause after a semicolon, which a screen leaves out; and UTC times, which a screen shows as
the ward's local time with the zone marked (`times.localised`). The log and
the CLI keep the words as they are.
"""

from __future__ import annotations

import re

from wardcrf.errors import WardError

from .times import localised

_CLI_ASIDE = re.compile(r"\s*\((?=[^()]*(?:--[a-z]|`wardcrf |\bwardcrf [a-z]))[^()]*\)")
"""A bracketed aside naming a command-line flag or command."""

_CLI_CLAUSE = re.compile(r";[^;]*`wardcrf [^`;]*`[^;]*")
"""A clause after a semicolon telling the reader which command to run ("; correct it with
`wardcrf amend`, ..."): the statement before it is the refusal, the clause is the CLI's."""


def for_screen(text: str) -> str:
    """The domain's words as a screen shows them (no CLI asides, local times)."""
    return localised(_CLI_CLAUSE.sub("", _CLI_ASIDE.sub("", text)))


def message_of(exc: BaseException) -> str:
    """A `WardError`'s own message, as a screen shows it; anything else names itself as a bug."""
    if isinstance(exc, WardError):
        return for_screen(exc.message)
    return f"internal error: {type(exc).__name__}: {exc}"
