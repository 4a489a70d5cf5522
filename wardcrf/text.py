"""Free text: what may be stored, how it is shown on a terminal, how much of it an error repeats.

The one owner of these rules, used by forms, services, the event log and the
command line. Text people type ends up on other people's terminals and
screens years later (the audit trail, user lists, casebooks), so characters
that can rewrite a terminal or the reading order are refused where text
enters, and escaped wherever it is shown (older data may still hold them):

- C0 controls (U+0000-U+001F) and DEL (U+007F): ESC starts terminal escape
  sequences (colours, cursor moves, OSC 8 links, window titles), CR and BS
  overwrite what was printed before;
- C1 controls (U+0080-U+009F): CSI and OSC in one byte on some terminals;
- bidirectional embeddings, overrides and isolates (U+202A-U+202E,
  U+2066-U+2069): they reorder what follows ("Trojan Source");
- zero-width characters (U+200B-U+200D, U+2060, U+FEFF): invisible, they
  make two different names look the same;
- line and paragraph separators (U+2028, U+2029): line breaks some tools
  honour and others do not.

Tab and newline are allowed only where a field allows several lines
(`multiline`). Refusals are one line that names the character by code point (U+001B), its
name and its position, so the person can find it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from .errors import Refused

_OTHERS = (
    "\u200b-\u200d\u2060\ufeff"  # zero-width
    "\u202a-\u202e\u2066-\u2069"  # bidi embeddings, overrides, isolates
    "\u2028\u2029"  # line and paragraph separators
)
_REFUSED_RANGES = "\x00-\x08\x0b-\x1f\x7f-\x9f" + _OTHERS  # C0 but TAB and LF, DEL, C1
_MULTILINE = re.compile(f"[{_REFUSED_RANGES}]")
_ONE_LINE = re.compile(f"[{_REFUSED_RANGES}\t\n]")
_STORED = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_OTHERS}]")
"""What the event log accepts at all: as `_MULTILINE`, plus CR (files written with CRLF line ends)."""

_C0_NAMES = {
    0x00: "NULL",
    0x07: "BELL",
    0x08: "BACKSPACE",
    0x09: "TAB",
    0x0A: "LINE FEED",
    0x0B: "LINE TABULATION",
    0x0C: "FORM FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
}


MAX_ONE_LINE = 2_000
"""Characters in one-line free text (an AE term, a reason, a name) unless the protocol sets a field's
`max_length`: a screenful, far above any real entry, far below what would slow every list it is shown in."""
MAX_SEVERAL_LINES = 20_000
"""Characters in a field that allows several lines (a narrative): about ten printed pages."""


class TextRefused(Refused):
    """Free text holding a character that may not be stored. Exit 1, one line."""


def char_name(ch: str) -> str:
    """`U+001B (ESCAPE)`: how a refusal or a display names one character."""
    code = ord(ch)
    name = _C0_NAMES.get(code) or unicodedata.name(ch, "")
    if not name:
        name = "C1 control" if 0x80 <= code <= 0x9F else "control character"
    return f"U+{code:04X} ({name})"


def first_refused(value: str, *, multiline: bool = False, crlf: bool = False) -> int | None:
    """Index of the first character `value` may not hold, or None.

    `crlf` (files: a protocol's source) lets CR through as well, with tab and newline.
    """
    pattern = _STORED if crlf else _MULTILINE if multiline else _ONE_LINE
    m = pattern.search(value)
    return None if m is None else m.start()


def problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` may not be stored as free text, or None when it may."""
    limit = MAX_SEVERAL_LINES if multiline else MAX_ONE_LINE
    if len(value) > limit:
        return f"{len(value):,} characters; at most {limit:,} here"
    m = (_MULTILINE if multiline else _ONE_LINE).search(value)
    if m is None:
        return None
    allowed = (
        "tab and line break are allowed here" if multiline else "this field is one line: no tab or line break"
    )
    return (
        f"character {char_name(m.group())} at position {m.start() + 1} is not allowed"
        f" (control, bidirectional-override and zero-width characters are refused; {allowed})"
    )


def check(value: str, *, field: str, multiline: bool = False) -> str:
    """`value` unchanged when it may be stored; else `TextRefused` naming the field, character and position."""
    why = problem(value, multiline=multiline)
    if why is not None:
        raise TextRefused(f"{field}: {why}; nothing was saved")
    return value


def check_stored(value: Any, *, where: str = "") -> None:
    """The event log's own check of everything an event carries (`eventlog.append`).

    Services check their fields first, with the field's own rule (one line or
    several); this is the floor under every path, so no service can store an
    escape sequence by forgetting to. Tab, newline and CR (a file's CRLF line
    ends) pass here. The field named is the innermost key.

    An amendment's `changes` carry each field's `old` value: a copy of what is
    stored, which may predate this rule. It is not new text, and refusing it
    would make old hostile text impossible to correct; the `new` value is
    checked like any other.
    """
    if isinstance(value, str):
        m = _STORED.search(value)
        if m is not None:
            raise TextRefused(
                f"{where or 'text'}: character {char_name(m.group())} at position {m.start() + 1}"
                " is not allowed (control, bidirectional-override and zero-width characters are refused);"
                " nothing was saved"
            )
    elif isinstance(value, Mapping):
        for k, v in value.items():
            check_stored(k, where=where or "field name")
            if k == "changes" and isinstance(v, Mapping):
                for name, change in v.items():
                    check_stored(name, where="field name")
                    if isinstance(change, Mapping):
                        change = {ck: cv for ck, cv in change.items() if ck != "old"}
                    check_stored(change, where=_named(name))
                continue
            check_stored(v, where=_named(k))
    elif isinstance(value, list | tuple):
        for v in value:
            check_stored(v, where=where)


def _named(key: object) -> str:
    """A field name as a refusal may print it: one line, even when the name itself is hostile."""
    text = str(key)
    return text if text.isprintable() and len(text) <= 80 else ascii(text)[:80]


_SUSPECT = re.compile(f"[{_REFUSED_RANGES}\\\\]")


def may_hold_refused(line: str) -> bool:
    """A quick look at a canonical event line: False means `check_stored` would find nothing.

    JSON escapes C0 controls (`\\u001b`, `\\n`), so a line without a backslash
    and without any raw refused character needs no walk of its body. Most
    lines are ASCII (`isascii` is a flag Python keeps): two byte scans then.
    """
    if line.isascii():
        return "\\" in line or "\x7f" in line
    return _SUSPECT.search(line) is not None


# -- showing ------------------------------------------------------------------------------

_SHOWN_ESCAPES = {
    **{c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]},
    **{c: f"<U+{c:04X}>" for c in [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, *range(0x202A, 0x202F)]},
    **{c: f"<U+{c:04X}>" for c in [*range(0x2066, 0x206A), 0x2028, 0x2029]},
}
_SHOWN_SAME_WIDTH = {c: "\ufffd" for c in _SHOWN_ESCAPES}


_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _SHOWN_ESCAPES if c >= 0x7F}


def json_safe(dumped: str) -> str:
    """JSON text with DEL, C1, bidi and zero-width characters as \\u escapes (JSON escapes C0 itself).

    The same strings once parsed; harmless when the JSON itself is printed.
    """
    return dumped.translate(_JSON_ESCAPES)


def for_terminal(value: str) -> str:
    """`value` with every refused character spelled out (`\\x1b`, `<U+202E>`); tab and newline kept."""
    return value.translate(_SHOWN_ESCAPES)


def same_width(value: str) -> str:
    """`for_terminal` for text already laid out: each refused character becomes U+FFFD."""
    return value.translate(_SHOWN_SAME_WIDTH)


def one_line(value: str) -> str:
    """A message for one line of stderr: refused characters spelled out, line breaks and tabs as spaces."""
    return " ".join(for_terminal(value).replace("\t", " ").split("\n")).strip()


def excerpt(value: str, limit: int = 40, *, quoted: bool = False) -> str:
    """What someone typed, for an error, without repeating all of it: `WUH01-00… (2,000 characters)`.

    Refused characters are spelled out (`for_terminal`); `quoted` puts the text in quotes as repr does.
    """
    shown = for_terminal(value if len(value) <= limit else value[:limit])
    if quoted:
        shown = repr(shown)
    return shown if len(value) <= limit else f"{shown}… ({len(value):,} characters)"
