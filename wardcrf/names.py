"""Names people choose for a site, a device or a user: one rule, checked where they enter."""

from __future__ import annotations

from . import text
from .errors import UsageError


def check_name(kind: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > 40 or not all(c.isalnum() or c in "-_." for c in value):
        raise UsageError(
            f"{kind} {text.excerpt(value, quoted=True)} is invalid: use 1-40 letters, digits, '-', '_' or '.'"
        )
    return value
