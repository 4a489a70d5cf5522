"""The canonical form of an event line (../BUNDLE-FORMAT: events.jsonl).

A line is UTF-8 JSON with no insignificant whitespace that begins with
``{"prev":"<64 hex>",`` followed by the remaining keys in sorted order. The
event's hash is the SHA-256 of the line's bytes. Storing exactly this line in
the database means the bytes that are hashed on the ward are the bytes that
travel in bundles and are verified at the hub and by auditors.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64
"""The `prev` of a device's first event."""


_HEX = frozenset("0123456789abcdef")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# One encoder for every call: `json.dumps` with options builds a new one each
# time, which a hub ingesting a million events pays twice per record.


def dumps(value: Any) -> str:
    """Compact, sorted, UTF-8 JSON for any value inside an event.

    NaN and Infinity have no JSON spelling: they are refused (ValueError)
    rather than emitted in a form another verifier would parse differently.
    """
    return _ENCODER.encode(value)


def event_line(prev: str, fields: dict[str, Any]) -> str:
    """Build the canonical line for an event whose other keys are `fields`."""
    if len(prev) != 64 or not _HEX.issuperset(prev):
        raise ValueError("prev must be 64 lowercase hex characters")
    if "prev" in fields:
        raise ValueError("fields must not contain 'prev'")
    rest = dumps(fields)
    if rest == "{}":
        return '{"prev":"' + prev + '"}'
    return '{"prev":"' + prev + '",' + rest[1:]


def line_hash(line: str) -> str:
    """SHA-256 (lowercase hex) of a line's UTF-8 bytes, without newline."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def is_canonical(line: str) -> bool:
    """True when `line` is exactly the canonical spelling of its own content."""
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    if not isinstance(obj, dict) or not isinstance(obj.get("prev"), str):
        return False
    prev = obj.pop("prev")
    try:
        return event_line(prev, obj) == line
    except ValueError:
        return False
