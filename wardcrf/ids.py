"""Identifiers people scan or type: kit ids, lot numbers, shipper ids, participant ids.

The one owner of what an identifier is. Every place that takes one in (the
CLI, the TUI's scanner fields, the cold chain, the dose rules, projections of
events that arrived from other devices, exports) goes through this module, so
an id means the same thing everywhere and "already used" can never be
fooled by the way it was typed.

Three operations:

- **normalise** (`normalise`, `Rule.normalise`): what a person or a scanner
  typed -> the stored, canonical id, or `InvalidId` with one line saying what
  is wrong and what is allowed. Control and format characters are dropped (a
  scanner's CR/LF/TAB suffix, a GS1 group separator, a zero-width space
  pasted from a document), the text is put in Unicode normal form NFKC (a
  Chinese input method's full-width ``ＫＩＴ－０１`` is ``KIT-01``), surrounding
  blanks are trimmed and letters are upper-cased. What remains must be ASCII:
  a look-alike letter from another script (Cyrillic ``К``) is refused by name,
  never silently taken for another id.
- **compare** (`key`, `same`): the comparison key of any stored value, valid
  or not: the same cleaning and upper-casing without validation. Events
  written before this rule existed (a dose stored as ``kit-x1``) are never
  rewritten; projections store the key, and look-ups compare keys, so
  ``kit-x1`` and ``KIT-X1 `` are one kit wherever they are compared.
- **scan** (`scan`): one burst of scanner input, which may hold several ids
  separated by Enter/Tab (or typed with commas), split and checked at once;
  a burst that looks like several scans run together with no separator is
  refused whole rather than taken as one long id.

The rule for kits, lots and shippers: after normalisation 1 to 40 characters,
letters A-Z, digits, ``.``, ``_``, ``-`` and ``/``, starting with a letter or
a digit; ids differing only in case or surrounding blanks are the same id.
(It unifies the two rules that existed: the protocol's 40 characters in mixed
case and the cold chain's 48 in upper case. A kit the cold chain registered
must be one the dose form accepts, and the protocol's limit is the trial's
word, so 40; ids stored before, of any length, still compare by `key`.)
Participant ids are allocated by wardcrf (``SITE-NNN``); typed ones follow
the same cleaning, without ``/``.

Why the character set and length live in code and not in the protocol: they
define identity (subjects ``kit:<ID>``, comparisons, the hub merging several
wards, exports), which must be the same for every trial and every protocol
version. What a *product's* labels look like is trial data: a protocol may
narrow the rule with a ``pattern`` (and an ``example``) on the field that
captures the id (``forms.dose.fields.kit_id``; docs/protocol.md). The
narrowing is matched case-insensitively against the normalised id, applies
wherever that kind of id is taken in (the dose form, lot registration,
receipts), and lets a burst of merged scans be recognised exactly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .protocol import Field, Protocol

MAX_LENGTH = 40
"""Characters in an id after normalisation (GS1 serial and batch numbers are at most 20)."""

MAX_INPUT = 1024
"""Input longer than this is refused before any Unicode processing (hostile or a stuck key)."""

_LABEL_CHARS = "A-Z0-9._/-"
_PARTICIPANT_CHARS = "A-Z0-9._-"


@dataclass(frozen=True)
class Kind:
    """One kind of identifier and its built-in rule."""

    name: str
    word: str  # how messages name it: "kit id"
    chars: str  # regex character class body of the allowed characters
    allowed: str  # the rule in words, for messages

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compiled(self.chars)


def _allowed_words(punct: str) -> str:
    return f"1-{MAX_LENGTH} letters A-Z, digits, {punct}, starting with a letter or digit"


KIT = Kind("kit", "kit id", _LABEL_CHARS, _allowed_words("'.', '_', '-' or '/'"))
LOT = Kind("lot", "lot number", _LABEL_CHARS, _allowed_words("'.', '_', '-' or '/'"))
SHIPPER = Kind("shipper", "shipper id", _LABEL_CHARS, _allowed_words("'.', '_', '-' or '/'"))
PARTICIPANT = Kind("participant", "participant id", _PARTICIPANT_CHARS, _allowed_words("'.', '_' or '-'"))

KINDS: dict[str, Kind] = {k.name: k for k in (KIT, LOT, SHIPPER, PARTICIPANT)}
"""Kinds a protocol field may declare with ``id = "<kind>"`` (participant ids are allocated, not declared)."""

DECLARABLE = ("kit", "lot")


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(chars: str) -> re.Pattern[str]:
    pat = _PATTERNS.get(chars)
    if pat is None:
        pat = _PATTERNS[chars] = re.compile(f"[A-Z0-9][{chars}]{{0,{MAX_LENGTH - 1}}}")
    return pat


def kind(name: str | Kind) -> Kind:
    if isinstance(name, Kind):
        return name
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown id kind {name!r} (kinds: {', '.join(KINDS)})") from None


class InvalidId(UsageError):
    """An id that does not follow its rule; the message is one line: what is wrong, what is allowed."""

    def __init__(self, kind: Kind, shown: str, why: str) -> None:
        self.kind = kind
        self.shown = shown
        self.why = why
        subject = f"{kind.word} {shown!r}" if shown else kind.word
        super().__init__(f"{subject} {why}")


# -- cleaning and comparing ---------------------------------------------------------------


def clean(raw: object) -> str:
    """Scanner/keyboard noise removed: control and format characters dropped, NFKC, trimmed.

    Not validated and not upper-cased: what `key` and `normalise` start from.
    """
    text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    if text.isascii() and text.isprintable():
        # The common case, a stored or scanned id of printable ASCII: it holds no control or format
        # character (in ASCII, the non-printable characters are exactly the control ones) and NFKC leaves
        # ASCII as it is, so only the trim is left to do; a projection keys every record's subject this way.
        return text.strip()
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))
    text = unicodedata.normalize("NFKC", text)
    # NFKC can expose new format characters (rare compatibility forms): drop again.
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))
    return text.strip()


def key(raw: object) -> str:
    """The comparison key of an id, stored or typed, valid or not: `clean`, upper-cased.

    Projections store it and look-ups compare it, so ids differing only in
    case, surrounding blanks or Unicode width are one id, including those
    stored before this rule existed. Never raises.
    """
    return clean(raw).upper()


def same(a: object, b: object) -> bool:
    """Whether two ids (of one kind) are the same id."""
    return key(a) == key(b)


# -- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """The rule for one kind of id: the built-in one, optionally narrowed by the protocol.

    `format` is the protocol's pattern for this kind (matched against the
    normalised id, ignoring case); `example` an id that follows it, quoted in
    messages.
    """

    kind: Kind
    format: re.Pattern[str] | None = None
    example: str | None = None

    @property
    def allowed(self) -> str:
        """The rule in words (for messages and field help)."""
        if self.format is None:
            return self.kind.allowed
        if self.example:
            return f"this trial's {self.kind.word} format, e.g. {self.example}"
        return f"this trial's {self.kind.word} format {self.format.pattern}"

    def empty(self) -> InvalidId:
        """Nothing typed: say what to type (the example when there is one, else the built-in rule)."""
        return InvalidId(
            self.kind,
            "",
            f"is empty: scan or type it ({self.allowed if self.example else self.kind.allowed})",
        )

    def normalise(self, raw: object) -> str:
        """The canonical id, or `InvalidId` naming what is wrong and what is allowed."""
        k = self.kind
        text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
        if len(text) > MAX_INPUT:
            raise InvalidId(k, "", f"is too long ({len(text)} characters; at most {MAX_LENGTH})")
        cleaned = clean(text)
        shown = _shown(cleaned)
        if not cleaned:
            raise self.empty()
        for c in cleaned:
            if not c.isascii():
                name = unicodedata.name(c, "")
                what = f"{c!r} (U+{ord(c):04X}{' ' + name if name else ''})"
                raise InvalidId(k, shown, f"contains {what}, which is not allowed: use {k.allowed}")
        text = cleaned.upper()
        if len(text) > MAX_LENGTH:
            raise InvalidId(k, shown, f"is too long ({len(text)} characters; at most {MAX_LENGTH})")
        if not k.pattern.fullmatch(text):
            bad = next((c for c in text if not re.fullmatch(f"[{k.chars}]", c)), None)
            if bad == " ":
                why = "contains a space"
            elif bad is not None:
                why = f"contains {bad!r}"
            else:
                why = "does not start with a letter or digit"
            raise InvalidId(k, shown, f"{why}, which is not allowed: use {k.allowed}")
        if self.format is not None and not self.format.fullmatch(text):
            raise InvalidId(k, shown, f"does not match {self.allowed}")
        return text

    def check(self, raw: object) -> Checked:
        """`normalise` as a verdict (for live fields): never raises."""
        try:
            return Checked(True, self.normalise(raw), None)
        except InvalidId as exc:
            return Checked(
                False, key(raw) if isinstance(raw, str) and len(raw) <= MAX_INPUT else "", exc.message
            )


@dataclass(frozen=True)
class Checked:
    ok: bool
    id: str
    error: str | None


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "…"


def builtin(name: str | Kind) -> Rule:
    """The built-in rule of a kind, with no protocol narrowing."""
    return Rule(kind(name))


def normalise(name: str | Kind, raw: object, rule: Rule | None = None) -> str:
    """`raw` as the canonical id of kind `name` (under `rule`, default the built-in one)."""
    return (rule or builtin(name)).normalise(raw)


def check(name: str | Kind, raw: object, rule: Rule | None = None) -> Checked:
    """The verdict on one id as typed (the TUI's scanner fields call this on every burst)."""
    return (rule or builtin(name)).check(raw)


def rule(proto: Protocol | None, name: str | Kind) -> Rule:
    """The rule for a kind of id under a protocol (none: the built-in rule).

    A site's rule, under its active protocol, is `protocol.id_rule(store, kind)`:
    this module reads protocols it is given and never looks one up (the protocol
    parser calls it to check the id formats a file declares).

    The protocol narrows a kind with the ``pattern`` and ``example`` of the
    field that captures it (``id = "kit"``, implied for the dose's
    ``kit_id`` and ``lot``); protocol validation ensures one format per kind.
    """
    k = kind(name)
    if proto is None:
        return Rule(k)
    for form in proto.forms.values():
        for f in form.fields.values():
            if f.id_kind == k.name and f.pattern:
                return field_rule(f)
    return Rule(k)


def field_rule(f: Field) -> Rule:
    """The rule of a protocol field that holds an id (`Field.id_kind`)."""
    assert f.id_kind, f"{f.name} is not an id field"
    return Rule(kind(f.id_kind), re.compile(f.pattern, re.IGNORECASE) if f.pattern else None, f.example)


# -- scanner bursts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    """What one scanner burst holds: the ids in it, or why it is refused (then `ids` is empty)."""

    ids: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


SEPARATORS = "\r\n\t\v\f,;"
"""What ends one id in a burst: a scanner's Enter or Tab suffix, or a comma/semicolon typed between ids.

Not a blank: ``EXO 0102`` is a mistyped id to refuse, never two ids.
"""


def pieces(raw: str) -> list[str]:
    """A burst split where a scanner's Enter/Tab, a comma or a semicolon ends an id (blank pieces dropped)."""
    out: list[str] = []
    cur: list[str] = []
    for c in [*raw, SEPARATORS[0]]:
        if c in SEPARATORS:
            piece = "".join(cur).strip()
            if clean(piece):
                out.append(piece)
            cur = []
        else:
            cur.append(c)
    return out


def scan(raw: str, rule: Rule, *, like: Iterable[str] = ()) -> Scan:
    """Check one burst of scanner (or keyboard) input against `rule`, all or nothing.

    Ids separated by Enter, Tab, a comma or a semicolon are split and each
    normalised (blanks around an id are trimmed; inside one, refused). A piece that looks like several ids run together with no
    separator (a scanner set up without a suffix, scanning faster than the
    field ends a burst) is refused, naming the ids it seems to hold, so
    nothing is added and the person scans again one at a time. "Run
    together" is recognised exactly when the protocol declares the format
    (several format matches back to back), else when the piece is two or
    more copies of the shape of an id already in the list (`like`), else
    when it is two or more same-shaped chunks that each carry a separator
    and share a letter prefix (``EXO-0101EXO-0102``).
    """
    if len(raw) > MAX_INPUT:
        return Scan([], InvalidId(rule.kind, "", f"burst is too long ({len(raw)} characters)").message)
    parts = pieces(raw)
    if not parts:
        return Scan([], rule.empty().message)
    known = [key(x) for x in like]
    out: list[str] = []
    for part in parts:
        text = key(part)
        merged = _merged(text, rule, known + out)
        if merged:
            names = ", ".join(merged[:4]) + (", …" if len(merged) > 4 else "")
            return Scan(
                [],
                f"{text[:40]!r} looks like {len(merged)} {rule.kind.word}s scanned with no gap ({names}): "
                "nothing added; scan them one at a time",
            )
        try:
            out.append(rule.normalise(part))
        except InvalidId as exc:
            return Scan([], exc.message)
    return Scan(out, None)


def _shape(text: str) -> str:
    return "".join("A" if c.isalpha() else "9" if c.isdigit() else c for c in text)


def _merged(text: str, rule: Rule, known: Sequence[str]) -> list[str]:
    """The ids `text` seems to be made of when it is several run together, else []."""
    if rule.format is not None and not rule.format.fullmatch(text):
        return _split_by_format(text, rule.format)
    # One id under the format, or no format: a format as loose as the built-in rule (a protocol's
    # kit id pattern such as `^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$`) matches ids run together too, so the
    # shapes are still compared.
    if not text.isascii():
        return []
    for other in known:
        n = len(other)
        if n >= 2 and len(text) >= 2 * n and len(text) % n == 0:
            chunks = [text[i : i + n] for i in range(0, len(text), n)]
            if all(_shape(c) == _shape(other) for c in chunks):
                return chunks
    return _self_similar(text)


def _split_by_format(text: str, fmt: re.Pattern[str]) -> list[str]:
    """A split of `text` into two or more matches of `fmt`, or []."""
    n = len(text)
    if n > 16 * MAX_LENGTH:
        return []
    # best[i]: a split of text[i:] into format matches (fewest parts), or None.
    best: list[list[str] | None] = [None] * (n + 1)
    best[n] = []
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, min(n, i + MAX_LENGTH) + 1):
            rest = best[j]
            if rest is not None and fmt.fullmatch(text[i:j]):
                cand = [text[i:j], *rest]
                if best[i] is None or len(cand) < len(best[i] or ()):
                    best[i] = cand
    found = best[0]
    return found if found is not None and len(found) >= 2 else []


def _self_similar(text: str) -> list[str]:
    n = len(text)
    for k in range(2, n // 4 + 1):
        if n % k:
            continue
        size = n // k
        chunks = [text[i : i + size] for i in range(0, n, size)]
        shape = _shape(chunks[0])
        if not all(_shape(c) == shape for c in chunks):
            continue
        if not (any(c.isalpha() for c in shape) and "9" in shape and any(c in "._-/" for c in shape)):
            continue
        prefix = re.match(r"[A-Z]+", chunks[0])
        if prefix and all(c.startswith(prefix.group(0)) for c in chunks):
            return chunks
    return []
