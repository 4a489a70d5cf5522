"""Errors a user can see.

Every failure a person can cause (bad input, wrong password, missing
permission, a tampered file) is a `WardError` with a one-line message and an
exit code. The CLI prints the message on stderr and exits with the code; the
TUI shows the same message. Anything else is a bug and may show a traceback.

Exit codes (documented in README and `docs/cli.md`):
    0  success
    1  refused: a rule, a permission or a verification said no
    2  usage or authentication: bad arguments, wrong password, wrong data dir
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class WardError(Exception):
    """A failure to report to the user as one line, with an exit code."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class Refused(WardError):
    """A domain rule refused the action; nothing was saved."""

    exit_code = EXIT_REFUSED


class Confirmable(str):
    """A problem a person may confirm with a reason and go on (not a refusal).

    A value outside the protocol's expected (soft) range, an adverse event
    with the same term and onset as one already recorded: the save is
    refused until someone confirms it with a reason (the CLI's `--confirm`
    and `--reason`, a screen's reason dialog). Every other problem refuses.
    The flag travels with the words (a `str`, so every message, log line
    and `problems` dict stays as it was) and is read with `is_confirmable`,
    never guessed from the wording.
    """

    __slots__ = ()


def is_confirmable(problem: str) -> bool:
    """Whether `problem` may be confirmed with a reason (see `Confirmable`)."""
    return isinstance(problem, Confirmable)


class ValidationFailed(Refused):
    """One or more fields are invalid. `problems` maps field -> reason."""

    def __init__(self, problems: dict[str, str], *, form: str | None = None) -> None:
        self.problems = dict(problems)
        """field -> why; a `Confirmable` problem may be confirmed with a reason."""
        parts = [f"{field}: {why}" for field, why in self.problems.items()]
        prefix = f"{form} not saved: " if form else "not saved: "
        super().__init__(prefix + "; ".join(parts))


class PermissionDenied(Refused):
    """The signed-in user's role may not perform this action."""


class InternalError(Refused):
    """An input met an error nothing checked for: refused alone, as a bug to report.

    The hub applies each bundle in isolation; an unexpected exception while
    one is checked or applied rolls back that bundle only and is reported
    with this (one line, the exception named) instead of stopping the import.
    The schemas and checks are meant to refuse every bad input before that,
    and the hub's fuzz test fails if this is ever raised.
    """


class VerificationFailed(WardError):
    """An integrity check found a problem (audit verify, photo verify, ...)."""

    exit_code = EXIT_REFUSED


class UsageError(WardError):
    """Bad arguments, a missing or wrong data directory, a malformed file."""

    exit_code = EXIT_USAGE


class AuthError(WardError):
    """Authentication failed: wrong password, unknown, locked or inactive user."""

    exit_code = EXIT_USAGE


class StoreError(WardError):
    """The database could not be opened or written (locked, corrupt, disk full)."""

    exit_code = EXIT_REFUSED


class ColumnTypeError(StoreError):
    """A value written does not fit its column's type (text where an integer is kept): the data's fault.

    PostgreSQL refuses such a value itself (a data exception); a SQLCipher hub's import checks it
    with the same words (`sync.hub._install_type_checks`). `detail` is the engine's one line,
    e.g. ``invalid input syntax for type bigint: "fast"``; the hub refuses the bundle with it.
    """

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail
