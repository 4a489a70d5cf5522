"""The UI message catalogue: complete in every language, placeholders agree."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from rich.cells import cell_len
from wardcrf.screens import i18n

SCREENS = Path(__file__).resolve().parents[2] / "screens"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_has_every_language_with_same_placeholders():
    for mid, entry in i18n.catalogue().items():
        assert set(entry) == set(i18n.LANGUAGES), mid
        assert _fields(entry["en"]) == _fields(entry["zh"]), mid
        assert all(v.strip() for v in entry.values()), mid


def test_every_id_used_in_screens_exists():
    used: set[str] = set()
    for path in SCREENS.glob("*.py"):
        text = path.read_text("utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text))
        used |= set(re.findall(r"""Binding\([^)]*["'](key\.[a-z_]+)["']""", text))
    missing = sorted(m for m in used if m not in i18n.catalogue())
    assert not missing
    assert len(used) > 30


def test_lookup_falls_back_and_formats():
    i18n.set_language("zh")
    try:
        assert i18n.t("audit.checked", n=3) == "已检查 3 项"
        assert i18n.t("no.such.id") == "no.such.id"
    finally:
        i18n.set_language("en")
    assert i18n.t("audit.checked", n=3) == "3 checked"


def test_unknown_language_refused():
    with pytest.raises(ValueError, match="allowed: en, zh"):
        i18n.set_language("fr")


def test_pad_counts_cells_for_cjk():
    assert i18n.pad("用户名", 8) == "用户名  "
    assert cell_len(i18n.pad("用户名", 8)) == cell_len(i18n.pad("User", 8)) == 8
    assert i18n.label_width(["密码", "User"]) == 4
