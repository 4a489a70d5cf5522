"""The import's cheap canonical check accepts only what the standard library's check accepts (issue 19).

`canonical.canonical_fields` shows with msgspec that an event line is its own canonical
spelling; when it cannot, the importer decides with the standard library as before. So
the fast check may say "not shown" where the line is canonical (it then costs the old
price), but never "canonical" where the standard library would refuse, and what it
parses is the same value, of the same types. Held here on hostile spellings (floats in
every form, escapes, surrogates, whitespace, duplicate keys, deep nesting) and on
generated JSON, and through the whole chain check, verdict for verdict and word for word.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wardcrf.sync import bundle

from wardcrf import canonical
from wardcrf.errors import Refused

_STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _stdlib_fields(text: str) -> Any:
    """What the importer's old check concluded of ``text`` (an object's spelling): its value if canonical."""
    try:
        obj = bundle._DECODER.decode(text)
        return obj if _STDLIB.encode(obj) == text else None
    except (ValueError, TypeError, RecursionError):
        return None


HOSTILE = [
    '{"a":37.2}',
    '{"a":1e+16}',
    '{"a":1e16}',
    '{"a":1E16}',
    '{"a":1e-05}',
    '{"a":0.00001}',
    '{"a":1.50}',
    '{"a":1.5}',
    '{"a":-0.0}',
    '{"a":-0}',
    '{"a":0.0}',
    '{"a":1.0}',
    '{"a":1}',
    '{"a":1.7976931348623157e+308}',
    '{"a":1.7976931348623157e308}',
    '{"a":1e400}',
    '{"a":5e-324}',
    '{"a":123456789012345678901234567890}',
    '{"a":-9223372036854775809}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":-Infinity}',
    '{"a":"\\u00e9"}',
    '{"a":"\u00e9"}',
    '{"a":"\\/"}',
    '{"a":"/"}',
    '{"a":"\\ud800"}',
    '{"a":"\\ud83d\\ude00"}',
    '{"a":"\U0001f600"}',
    '{"a":"\\u0001"}',
    '{"a":"\\u001F"}',
    '{"a":"\\u001f"}',
    '{"a":"\\n\\t\\"\\\\"}',
    '{"a":"\u2028\u007f\ufeff"}',
    '{"a":true,"b":false,"c":null}',
    '{"b":1,"a":2}',
    '{"a":1,"a":2}',
    '{"a":1 }',
    '{ "a":1}',
    '{"a":1}\n',
    '{"a":1}x',
    '{"a":1,}',
    "{}",
    '{"prev":"x","a":1}',
    '{"a":1,"prev":"x"}',
    '{"\u00e9":1,"z":2}',
    '{"z":2,"\u00e9":1}',
    '{"\U0001f600":1,"\uffff":2}',
    '{"a":[1,2.5,{"c":"d","b":[]}]}',
    '{"a":' + "[" * 5000 + "]" * 5000 + "}",
    '{"a":' + "[" * 200_000 + "]" * 200_000 + "}",
    '{"a":"' + "x" * 300_000 + '"}',
    "[1]",
    '"a"',
    "",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_the_fast_check_accepts_only_what_the_standard_library_accepts_and_reads_it_the_same(
    text: str,
) -> None:
    fast = canonical.canonical_fields(text[1:])
    slow = _stdlib_fields(text)
    if fast is not None:
        assert slow is not None, f"fast accepted what the standard library refuses: {text[:80]!r}"
        assert repr(fast) == repr(slow)  # the same values of the same types (1 vs 1.0 vs True, -0.0)


def test_the_fast_check_shows_the_usual_lines_canonical() -> None:
    """Accept: what wards write (strings, integers, decimals as Python spells them) takes the cheap path."""
    for value in ({"a": 37.2, "b": [1, "x\u00e9\n"], "c": None}, {"temp": 36.6, "seq": 2**60, "ok": True}):
        text = canonical.dumps(value)
        assert canonical.canonical_fields(text[1:]) == value
    # Refuse (to the standard library, which decides): floats msgspec would spell otherwise.
    for value in ({"a": 1e16}, {"a": 1e-05}):
        text = canonical.dumps(value)
        assert canonical.canonical_fields(text[1:]) is None
        assert _stdlib_fields(text) == value


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _spellings(value: dict[str, Any]) -> list[str]:
    """The canonical spelling and others a hostile writer could send for the same object."""
    import msgspec

    out = [canonical.dumps(value)]
    out.append(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True))
    out.append(json.dumps(value, sort_keys=True))
    out.append(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    with contextlib.suppress(msgspec.EncodeError, UnicodeError):
        out.append(msgspec.json.encode(value, order="sorted").decode())
    return out


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _JSON, min_size=1, max_size=5))
def test_generated_objects_in_every_spelling_get_the_standard_librarys_verdict(value: dict[str, Any]) -> None:
    for text in _spellings(value):
        fast = canonical.canonical_fields(text[1:])
        if fast is not None:
            slow = _stdlib_fields(text)
            assert slow is not None, text
            assert repr(fast) == repr(slow)


def _line(prev: str, seq: int) -> str:
    fields = {
        "amends": None,
        "body": {
            "site": "WUH01",
            "target_event": "DEV00001-1",
            "field": "temp",
            "question": "Is 37.2 right?",
        },
        "device": "DEV00001",
        "hlc": f"0017000000000{seq:02d}.00000",
        "id": f"DEV00001-{seq}",
        "protocol": None,
        "reason": None,
        "role": "coordinator",
        "seq": seq,
        "site": "WUH01",
        "subject": None,
        "ts": "2026-01-01T00:00:00.000Z",
        "type": "query.raised",
        "tz": "+08:00",
        "user": "coord",
        "zone": "Asia/Shanghai",
    }
    return canonical.event_line(prev, fields)


def _verdict(lines: list[str], monkeypatch: pytest.MonkeyPatch, fast: bool) -> str:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(canonical, "canonical_fields", lambda rest: None)
        manifest = {
            "events": {"count": len(lines), "first": 1, "last": len(lines)},
            "chain_first_prev": canonical.GENESIS,
            "chain_last": canonical.line_hash(lines[-1]),
            "device": "DEV00001",
            "site": "WUH01",
        }
        try:
            return repr(bundle.check_chain(lines, manifest, "bundle"))
        except Refused as exc:
            return "refused: " + str(exc)
        except RecursionError:
            return "recursion"


MUTATIONS = [
    ("", ""),
    ('"seq":2', '"seq":2.0'),
    ('"seq":2', '"seq":2e0'),
    ('"seq":2', '"seq": 2'),
    ('"seq":2', '"seq":2,"seq":2'),
    ('"seq":2', '"seq":2,"prev":"' + "0" * 64 + '"'),
    ("Is 37.2 right?", "Is \\u0033 right?"),
    ("Is 37.2 right?", "Is \\u0007 right?"),
    ("Is 37.2 right?", "Is \\ud800 right?"),
    ("Is 37.2 right?", 'Is right?","x":1e+16,"y":"'),
    ("Is 37.2 right?", 'Is right?","x":1e16,"y":"'),
    ('"question":"Is 37.2 right?"', '"question":"Is 37.2 right?","z":' + "[" * 3000 + "]" * 3000),
    ('"zone":"Asia/Shanghai"}', '"zone":"Asia/Shanghai"} '),
    ('"zone":"Asia/Shanghai"}', '"zone":NaN}'),
    ('"amends":null,', ""),
]


@pytest.mark.parametrize(("old", "new"), MUTATIONS, ids=range(len(MUTATIONS)))
def test_the_chain_check_gives_the_same_verdict_in_the_same_words_either_way(
    old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _line(canonical.GENESIS, 1)
    second = _line(canonical.line_hash(first), 2)
    assert old in second
    lines = [first, second.replace(old, new, 1)]
    got = _verdict(lines, monkeypatch, fast=True)
    assert got == _verdict(lines, monkeypatch, fast=False)
    if not old:
        assert not got.startswith("refused"), got  # accept: the untouched chain
    else:
        assert got.startswith("refused"), got  # refuse: every mutation
