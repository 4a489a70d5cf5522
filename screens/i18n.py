"""UI strings in English, Simplified Chinese and French, and CJK-aware padding.

Why a TOML catalogue and not gettext: the ward laptop build has no
compile step, a translator edits one file (`messages.toml`) where each
message id holds both languages side by side, so a missing translation is
visible in review and a test checks that every id has every language with
the same `{placeholders}`. Protocol labels (form and field names) do not
live here: they come from the protocol file's own translations.

`t("login.title")` looks up the current language, falling back to English;
an unknown id is returned as-is so a typo shows on screen instead of
crashing a clinician's form.

Which languages a user may choose (docs/tui.md, "Language"): before sign-in, the
languages these catalogues hold (`CATALOGUED`: English, 中文, Français); once signed
in, the languages the ward's protocol declares for its labels (`protocol.languages`,
`offer`), in the protocol's order: mexcovid.toml English and 中文, PALM and PALM007 (Kinshasa)
English and Français. A declared language these catalogues do not hold (say `pt`) is
offered all the same: the protocol's labels show in it and the screens' own words fall
back, string by string, to English; the palette says so ("Language: Português
(protocol labels; screens in English)"). A language the catalogues hold but the
protocol does not declare (中文 on PALM, Français on mexcovid.toml) is not offered on that ward.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from rich.cells import cell_len

CATALOGUED = ("en", "zh", "fr")
"""The languages these catalogues hold for every id (a test checks each id has each of them)."""
LANGUAGES = CATALOGUED  # the name screens and tests used before protocol languages were offered
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "中文",
    "fr": "Français",
    "pt": "Português",
    "es": "Español",
    "sw": "Kiswahili",
    "ln": "Lingála",
}
"""Each language's name in itself, for the palette; a code not listed is shown as the code."""
LANGUAGE_CODE = re.compile(r"^[a-z]{2}(-[A-Za-z]{2,8})?$")
"""A language code as a protocol file may declare one (format 2's schema: `protocol.languages`)."""

_current = "en"
_offered: tuple[str, ...] = CATALOGUED


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """Message id -> {language: text}, from messages.toml and messages/*.toml.

    Each screen family keeps its strings in its own file under `messages/`
    (`messages/coldchain.toml`...), so a translator reviews one workflow at a
    time; an id defined twice is a mistake and raises at start-up.
    """
    root = resources.files("wardcrf.screens")
    texts = [root.joinpath("messages.toml").read_text("utf-8")]
    extra = root.joinpath("messages")
    if extra.is_dir():
        for item in sorted(extra.iterdir(), key=lambda x: x.name):
            if item.name.endswith(".toml"):
                texts.append(item.read_text("utf-8"))
    out: dict[str, dict[str, str]] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        if all(isinstance(v, str) for v in node.values()) and "en" in node:
            out[prefix] = dict(node)
            return
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f"{prefix}.{key}" if prefix else key, value)

    for text in texts:
        before = dict(out)
        walk("", tomllib.loads(text))
        clash = sorted(k for k in before if k in out and before[k] is not out[k])
        if clash:
            raise ValueError(f"message id defined twice: {clash[0]}")
    return out


def offer(declared: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Offer the languages a ward's protocol declares (None: the catalogues' own, before sign-in).

    English first, then the protocol's order; a code that is not a language code is left out
    (the protocol readers refuse one at load; this is the last guard before it reaches a screen).
    The current language is kept when still offered, else English. Returns what is offered.
    """
    global _offered, _current
    if declared is None:
        _offered = CATALOGUED
    else:
        codes = [c for c in declared if isinstance(c, str) and LANGUAGE_CODE.match(c)]
        _offered = tuple(dict.fromkeys(["en", *codes]))
    if _current not in _offered:
        _current = "en"
    return _offered


def offered() -> tuple[str, ...]:
    """The languages a user may choose now (`offer`)."""
    return _offered


def has_catalogue(language: str) -> bool:
    """Whether the screens' own words exist in this language (else they show in English)."""
    return language in CATALOGUED


def name_of(language: str) -> str:
    """The language's name in itself ("Français"), else its code."""
    return LANGUAGE_NAMES.get(language, language)


def set_language(language: str) -> None:
    global _current
    if language not in _offered:
        raise ValueError(f"unknown language {language!r} (allowed: {', '.join(_offered)})")
    _current = language


def language() -> str:
    return _current


def t(message_id: str, **values: Any) -> str:
    """The message in the current language, with `{name}` placeholders filled."""
    entry = catalogue().get(message_id)
    if entry is None:
        return message_id
    text = entry.get(_current) or entry["en"]
    return text.format(**values) if values else text


def t_count(message_id: str, count: int, **values: Any) -> str:
    """`t`, with the `<id>_one` form when `count` is one ("1 file", never "1 files"): English says one
    for 1 only; a language without the form (中文 has no plural) reads the id itself."""
    if count == 1 and f"{message_id}_one" in catalogue():
        return t(f"{message_id}_one", **values)
    return t(message_id, **values)


def t_or(message_id: str, default: str) -> str:
    """The message if the catalogue has it, else `default` (domain words we may not translate yet)."""
    entry = catalogue().get(message_id)
    if entry is None:
        return default
    return entry.get(_current) or entry["en"]


def domain_word(kind: str, word: str) -> str:
    """A status or state the services return in English, translated when catalogued."""
    return t_or(f"{kind}.{word.replace(' ', '_').replace(',', '')}", word)


def pad(text: str, cells: int) -> str:
    """Pad to a width in terminal cells (a CJK character takes two)."""
    return text + " " * max(0, cells - cell_len(text))


def label_width(texts: list[str]) -> int:
    """The cell width of the widest label, so a column of labels lines up."""
    return max((cell_len(x) for x in texts), default=0)
