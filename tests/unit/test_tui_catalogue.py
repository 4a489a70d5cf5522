"""The UI message catalogue: complete in every language, placeholders agree."""

from __future__ import annotations

import ast
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
        assert set(entry) == set(i18n.CATALOGUED), mid
        assert all(_fields(entry["en"]) == _fields(entry[lang]) for lang in i18n.CATALOGUED), mid
        assert all(v.strip() for v in entry.values()), mid


def _column_ids(text: str) -> set[str]:
    """The message ids of a screen's `COLUMNS` tuples (a list's headers, declared as data)."""
    ids: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id.endswith("COLUMNS") for target in node.targets
        ):
            ids |= {
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return ids


def test_every_id_used_in_screens_exists():
    used: set[str] = set()
    columns: set[str] = set()
    for path in SCREENS.rglob("*.py"):
        text = path.read_text("utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text))
        used |= set(re.findall(r"""Binding\([^)]*["'](key\.[a-z_]+)["']""", text))
        columns |= _column_ids(text)
    missing = sorted(m for m in used | columns if m not in i18n.catalogue())
    assert not missing
    assert len(used) > 30
    assert {"dsmg.col_decision", "sync.col_question"} <= columns


def test_a_column_id_missing_from_the_catalogue_is_found():
    found = _column_ids('X_COLUMNS = ("col.participant", "no_such.column")\nOTHER = ("not.a_column",)')
    assert found == {"col.participant", "no_such.column"}
    assert "no_such.column" not in i18n.catalogue()


def test_lookup_falls_back_and_formats():
    i18n.set_language("zh")
    try:
        assert i18n.t("audit.checked", n=3) == "已检查 3 项"
        assert i18n.t("no.such.id") == "no.such.id"
    finally:
        i18n.set_language("en")
    assert i18n.t("audit.checked", n=3) == "3 checked"


def test_unknown_language_refused():
    with pytest.raises(ValueError, match="allowed: en, zh, fr"):
        i18n.set_language("pt")


def test_the_command_line_knows_the_catalogued_languages():
    from wardcrf.cli import tui_cmds

    assert tui_cmds.LANGUAGES == i18n.CATALOGUED


def test_pad_counts_cells_for_cjk():
    assert i18n.pad("用户名", 8) == "用户名  "
    assert cell_len(i18n.pad("用户名", 8)) == cell_len(i18n.pad("User", 8)) == 8
    assert i18n.label_width(["密码", "User"]) == 4


def test_feature_catalogues_are_loaded_and_may_not_redefine_ids(tmp_path, monkeypatch):
    """Files under screens/messages/ add ids; defining an existing id again is refused."""
    import shutil

    pkg = tmp_path / "pkg"
    shutil.copytree(SCREENS, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.tcss"))
    (pkg / "messages").mkdir(exist_ok=True)
    (pkg / "messages" / "zz_extra.toml").write_text(
        '[extra]\nhello = { en = "Hello", zh = "你好" }\n', "utf-8"
    )
    monkeypatch.setattr(i18n.resources, "files", lambda _pkg: pkg)
    i18n.catalogue.cache_clear()
    try:
        assert i18n.catalogue()["extra.hello"] == {"en": "Hello", "zh": "你好"}
        (pkg / "messages" / "zz_extra.toml").write_text(
            '[login]\ntitle = { en = "Again", zh = "再次" }\n', "utf-8"
        )
        i18n.catalogue.cache_clear()
        with pytest.raises(ValueError, match=r"message id defined twice: login\.title"):
            i18n.catalogue()
    finally:
        i18n.catalogue.cache_clear()
