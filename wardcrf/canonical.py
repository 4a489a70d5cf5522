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

import msgspec

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


class _NotPythonsSpelling(ValueError):
    """A float written otherwise than Python's `repr` writes it (the canonical encoder's spelling)."""


def _float_as_python_spells_it(token: str) -> float:
    value = float(token)
    if repr(value) != token:
        raise _NotPythonsSpelling(token)
    return value


_FAST_DECODER = msgspec.json.Decoder(float_hook=_float_as_python_spells_it)
_FAST_ENCODER = msgspec.json.Encoder(order="sorted")


def canonical_fields(rest: str) -> dict[str, Any] | None:
    """The object ``"{" + rest`` spells, when it is its own canonical spelling and shown so cheaply; else None.

    An importer must refuse any event line that is not exactly `event_line` of its own content
    (two spellings of one event would be two hashes). The standard library's decode and
    re-encode cost two thirds of a synced line's chain check; msgspec does both in a fifth of
    the time. Its encoder spells everything as `dumps` does — strings (every code point but
    the lone surrogates, which it refuses), integers of any size, true/false/null, keys sorted
    by code point, no whitespace — except floats: it writes ``1e16`` and ``0.00001`` where
    Python writes ``1e+16`` and ``1e-05``. So a float is accepted here only when its token is
    Python's own spelling of it (`repr`, which `dumps` uses), and then only if msgspec wrote
    the same token back: every accepted line is one `dumps` spells byte for byte
    (tests/unit/test_canonical_fast.py holds the two to the same verdict on hostile lines).

    None means "not shown here", never "not canonical": the caller then decides with the
    standard library, as before, and words any refusal as before. `rest` is the line after its
    ``{"prev":"<hash>",`` head; an object holding a second "prev", or none but it (``{"prev":"…",}``
    is not JSON), is left to the caller too.
    """
    text = "{" + rest
    try:
        fields = _FAST_DECODER.decode(text)
        if (
            type(fields) is not dict
            or not fields
            or "prev" in fields
            or _FAST_ENCODER.encode(fields) != text.encode()
        ):
            return None
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
    return fields


def dumps_parsed(value: Any) -> str:
    """`dumps(value)` for a value parsed from a line `canonical_fields` accepted, and not changed since.

    Every float in such a line is spelled by msgspec as Python spells it (that is what accepting
    it showed), and msgspec spells strings, integers, keys and nesting as `dumps` does; so any
    part of the parsed object encodes here to the same bytes, at a fifth of the cost.
    """
    return _FAST_ENCODER.encode(value).decode()


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
