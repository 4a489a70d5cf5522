"""The installed-tree mypy run checks every mapped folder's imports (issue 16).

Found while landing the screens/ move: a new screen importing
`from .footer import WardFooter` after footer.py had moved to widgets/ passed
CI's mypy, because the `ignore_missing_imports` override that plain `mypy`
needs for wardcrf.sync/.photos/.screens was applied in the installed tree too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("installed_tree", ROOT / "tools" / "installed_tree.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["installed_tree"] = module
    spec.loader.exec_module(module)
    return module


def test_the_installed_tree_config_keeps_third_party_overrides_and_drops_the_mapped_folders_one():
    ini = _tool().mypy_config()
    sections = [line for line in ini.splitlines() if line.startswith("[")]
    assert sections[0] == "[mypy]"
    assert any("sqlcipher3" in s for s in sections)  # a named third-party module without types
    assert not any(
        "wardcrf.screens" in s or "wardcrf.sync" in s or "wardcrf.photos" in s
        for s in sections
        if "typeahead" not in s and "transfer" not in s
    )
    assert "check_untyped_defs = True" in ini and "files = wardcrf" in ini
