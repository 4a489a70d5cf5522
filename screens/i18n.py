"""UI strings in English and Simplified Chinese, and CJK-aware padding.

Why a TOML catalogue and not gettext: the ward laptop build has no
compile step, a translator edits one file (`messages.toml`) where each
message id holds both languages side by side, so a missing translation is
visible in review and a test checks that every id has every language with
the same `{placeholders}`. Protocol labels (form and field names) do not
live here: they come from the protocol file's own translations.

`t("login.title")` looks up the current language, falling back to English;
an unknown id is returned as-is so a typo shows on screen instead of
crashing a clinician's form.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

from rich.cells import cell_len

LANGUAGES = ("en", "zh")
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}

_current = "en"


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


def set_language(language: str) -> None:
    global _current
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r} (allowed: {', '.join(LANGUAGES)})")
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
