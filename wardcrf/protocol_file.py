"""Reading a protocol file: its limits, the reader that names every problem with its line, its errors.

Split from `protocol` so the parsers a protocol file calls (id formats in
`ids`, soft warnings in `plausibility`, field conditions, analysis and review
plans, format 2 in `engine.model`) share one reader without importing the
protocol model that calls them back: protocol -> ids / plausibility ->
protocol_file, with no loop.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Collection, Mapping
from typing import Any

from . import text as text_rule
from .errors import Refused

# Limits on a protocol file (docs/protocol-v1.md, also applied to format 2). A protocol comes from outside
# (a file an admin was sent, a hub's bundle): these keep a hostile or broken one
# from exhausting the parser or filling every screen and report it is shown on.
MAX_FILE_BYTES = 1024 * 1024
"""A whole file (the largest shipped protocol file is about 72 KB)."""
MAX_NESTING = 16
"""Arrays and inline tables inside one another (the shipped protocol uses 2)."""
MAX_LABEL_CHARS = 200
"""A title or label (each translation): one line, shown in forms, tables and reports."""
MAX_TEXT_CHARS = 4000
"""Any other string: help texts, product descriptions, patterns."""

Text = Mapping[str, str]


class ProtocolFileError(Refused):
    """A protocol file that cannot be used; `problems` lists every one found. Exit 1 (refused)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__("invalid protocol file: " + "; ".join(problems[:3]) + more)


_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _line_of(lines: list[str], path: tuple[str | int, ...]) -> int | None:
    """Best-effort line number of a key path in TOML source (1-based)."""
    keys = [str(p) for p in path if not isinstance(p, int)]
    start, depth = 0, 0
    for i, line in enumerate(lines):
        m = _HEADER_RE.match(line)
        if not m:
            continue
        header = [h.strip().strip('"') for h in m.group(1).split(".")]
        n = len(header)
        if n > depth and header == keys[:n]:
            start, depth = i, n
    rest = keys[depth:]
    if not rest:
        return start + 1 if depth else None
    pos = start
    for key in rest:
        pat = re.compile(r"(^|[\s{,])" + re.escape(key) + r"\s*=")
        for j in range(pos, len(lines)):
            if pat.search(lines[j]):
                pos = j
                break
        else:
            return pos + 1 if depth else None
    return pos + 1


class _Reader:
    """Walks the parsed TOML, collecting every problem with its location."""

    def __init__(self, filename: str, source: str) -> None:
        self.filename = filename
        self.lines = source.splitlines()
        self.problems: list[str] = []
        self.languages: tuple[str, ...] = ("en",)

    def line(self, path: tuple[str | int, ...]) -> int | None:
        """The line of a key path; format 2's reader (wardcrf.engine.model) counts array elements too."""
        return _line_of(self.lines, path)

    def err(self, path: tuple[str | int, ...], problem: str) -> None:
        line = self.line(path)
        where = f"{self.filename}:{line}" if line else self.filename
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        self.problems.append(f"{where}: {key}: {problem}")

    def only_keys(
        self, data: dict[str, Any], known: Collection[str], path: tuple[str | int, ...], noun: str = "key"
    ) -> None:
        """Name each key of `data` that is not `known` (a misspelt key must never be silently ignored)."""
        allowed = ", ".join(sorted(known))
        for key in data:
            if key not in known:
                self.err((*path, key), f"unknown {noun} (allowed: {allowed})")

    def table(self, data: Any, path: tuple[str | int, ...], *, required: bool = True) -> dict[str, Any]:
        if data is None:
            if required:
                self.err(path, "missing table")
            return {}
        if not isinstance(data, dict):
            self.err(path, "must be a table")
            return {}
        return data

    def get(
        self,
        data: dict[str, Any],
        key: str,
        path: tuple[str | int, ...],
        types: Any,
        *,
        required: bool = True,
        default: Any = None,
    ) -> Any:
        value = data.get(key)
        if value is None:
            if required:
                self.err((*path, key), "missing")
            return default
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            self.err((*path, key), f"must be {_type_name(types)}, not a boolean")
            return default
        if not isinstance(value, types):
            self.err((*path, key), f"must be {_type_name(types)}, not {type(value).__name__}")
            return default
        return value

    def text(
        self, data: dict[str, Any], key: str, path: tuple[str | int, ...], *, required: bool = True
    ) -> Text:
        value = data.get(key)
        if value is None:
            if required:
                self.err((*path, key), "missing")
            return {}
        if isinstance(value, str):
            return {"en": value}
        if not isinstance(value, dict):
            self.err(
                (*path, key),
                'must be a string or a table of translations, e.g. { en = "...", zh = "..." }',
            )
            return {}
        out: dict[str, str] = {}
        for lang, s in value.items():
            if lang not in self.languages:
                self.err(
                    (*path, key, lang),
                    f"language {lang!r} is not declared in protocol.languages ({', '.join(self.languages)})",
                )
            elif not isinstance(s, str) or not s.strip():
                self.err((*path, key, lang), "translation must be a non-empty string")
            else:
                out[lang] = s
        if "en" not in value:
            self.err((*path, key), "needs an English text (en = ...)")
        return out

    def range_(
        self, data: dict[str, Any], key: str, path: tuple[str | int, ...]
    ) -> tuple[float, float] | None:
        value = data.get(key)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            self.err((*path, key), "must be [min, max] with two numbers")
            return None
        lo, hi = float(value[0]), float(value[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return None  # named by `_check_values`: numbers must be finite
        if lo > hi:
            self.err((*path, key), f"minimum {value[0]} is above maximum {value[1]}")
            return None
        return lo, hi


def _type_name(types: Any) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    seq = types if isinstance(types, tuple) else (types,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in seq))


def _line_at(source: str, index: int) -> int:
    return source.count("\n", 0, index) + 1


def _scan_source(source: str, filename: str) -> list[str]:
    """What is wrong with the file as text, before the TOML parser sees it.

    Its size, any character no text may hold (a bidirectional override in a
    comment reorders what a reviewer reads, "Trojan Source"), and arrays or
    inline tables nested deeper than `MAX_NESTING`: the standard library's
    parser recurses once per level and a file nested 5,000 deep would end
    it with a RecursionError. The scan skips strings and comments, so only
    real brackets count; the line of the first bracket too deep is named.
    """
    if len(source) > MAX_FILE_BYTES:
        return [
            f"{filename}: the file is larger than {MAX_FILE_BYTES // 1024:,} KiB ({len(source):,} characters)"
        ]
    bad = text_rule.first_refused(source, crlf=True)
    if bad is not None:
        why = text_rule.char_name(source[bad])
        return [f"{filename}:{_line_at(source, bad)}: character {why} is not allowed in a protocol file"]
    depth, i, n = 0, 0, len(source)
    line_start = True
    while i < n:
        c = source[i]
        if c == "\n":
            line_start = True
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "\"'":
            i = _skip_string(source, i)
            line_start = False
            continue
        if c == "[" and depth == 0 and line_start:  # a table header, [a.b] or [[a]]
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return [
                    f"{filename}:{_line_at(source, i)}: arrays or inline tables nested more than"
                    f" {MAX_NESTING} deep (at most {MAX_NESTING})"
                ]
        elif c in "]}":
            depth = max(0, depth - 1)
        line_start = False
        i += 1
    return []


def _skip_string(source: str, i: int) -> int:
    """Index just past the TOML string starting at `i` (basic or literal, one line or multi-line)."""
    quote = source[i]
    if source.startswith(quote * 3, i):
        end = source.find(quote * 3, i + 3)
        while quote == '"' and end > 0 and _escaped(source, end):
            end = source.find(quote * 3, end + 1)
        return len(source) if end < 0 else end + 3
    j = i + 1
    while j < len(source) and source[j] not in (quote, "\n"):
        j += 2 if quote == '"' and source[j] == "\\" else 1
    return j + 1


def _escaped(source: str, index: int) -> bool:
    """Whether the character at `index` follows an odd number of backslashes."""
    k = index - 1
    while k >= 0 and source[k] == "\\":
        k -= 1
    return (index - 1 - k) % 2 == 1


def _check_values(r: _Reader | _Found, data: dict[str, Any]) -> None:
    """Every number finite and every string within its limits, wherever it sits in the file.

    Iterative (the nesting is already bounded, but a walk should not depend on it).
    """
    todo: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            todo.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            r.err(path, f"{value} is not allowed: numbers must be finite (no nan or inf)")
        elif isinstance(value, str):
            keys = [p for p in path if isinstance(p, str)]
            label = bool(keys) and (keys[-1] in ("label", "title") or keys[-2:-1] in (["label"], ["title"]))
            limit = MAX_LABEL_CHARS if label else MAX_TEXT_CHARS
            kind = "a label or title" if label else "a text"
            if len(value) > limit:
                r.err(path, f"{len(value):,} characters; {kind} is at most {limit:,} characters")
                continue
            why = text_rule.problem(value, multiline=not label)
            if why is not None:
                r.err(path, why)


def read_source(
    source: str, filename: str, reader: type[_Reader] = _Reader
) -> tuple[dict[str, Any], _Reader]:
    """The TOML of a protocol file of any format, bounded and read, and a reader holding its problems so far.

    The limits (size, characters, nesting) are checked before the parser runs
    and refuse at once; the values' limits (label and text lengths, finite
    numbers) are collected in the reader, so every problem is named together.
    Format 2 (`wardcrf.engine.model`) reads through here with its own reader.
    """
    hit = _READ.get(source)
    if hit is None:
        problems = _scan_source(source, filename)
        if problems:
            raise ProtocolFileError(problems)
        try:
            parsed = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise ProtocolFileError([f"{filename}: not valid TOML: {exc}"]) from None
        except RecursionError:  # the scan above should have said so; never a crash either way
            raise ProtocolFileError([f"{filename}: nested too deeply to read"]) from None
        found = _Found()
        _check_values(found, parsed)
        if len(_READ) >= _READ_KEPT:
            _READ.clear()
        hit = _READ[source] = (parsed, tuple(found.problems))
    parsed, found_problems = hit
    r = reader(filename, source)
    for path, problem in found_problems:  # its problems join the rest: every problem is named at once
        r.err(path, problem)
    return _copy(parsed), r


_READ: dict[str, tuple[dict[str, Any], tuple[tuple[tuple[str | int, ...], str], ...]]] = {}
"""`read_source`'s work by source text: the parsed TOML and its values' problems (a stored version is read
four times by the process that first runs it: the engine's reader, the forms, the warnings, the analysis).
Only a source that parsed is kept; each caller gets its own copy of the tables and its own reader."""
_READ_KEPT = 16


class _Found:
    """`_check_values`'s problems, kept as (path, problem) to be told to each reader in its own words."""

    def __init__(self) -> None:
        self.problems: list[tuple[tuple[str | int, ...], str]] = []

    def err(self, path: tuple[str | int, ...], problem: str) -> None:
        self.problems.append((path, problem))


def _copy(value: Any) -> Any:
    """A parsed TOML value, its tables and arrays copied (every other TOML value is immutable)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
