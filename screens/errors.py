"""Turning a failed service call into the one line a person reads."""

from __future__ import annotations

from wardcrf.errors import WardError


def message_of(exc: BaseException) -> str:
    """A `WardError`'s own message; anything else names itself as a bug."""
    if isinstance(exc, WardError):
        return exc.message
    return f"internal error: {type(exc).__name__}: {exc}"
