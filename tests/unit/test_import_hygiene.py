"""The import rules hold (issue #16): pyproject's [tool.importlinter] contracts, checked on the installed layout.

Modelled on harlequin's tests/unit_tests/test_import_hygiene.py: the same check CI runs
(`tools/installed_tree.py lint-imports`), so a broken layer or a new import loop fails here first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "installed_tree.py"), "lint-imports"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_import_contracts_are_kept() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    # Every contract named in pyproject was checked (a renamed contract is not silently dropped).
    for name in (
        "The core never imports the TUI",
        "Screens go through services",
        "Sync and photos",
        "No import cycles",
    ):
        assert name in done.stdout


def test_features_are_installed_explicitly_not_by_import() -> None:
    """Importing the core registers nothing; `features.install()` registers every feature once."""
    code = (
        "import wardcrf.site, wardcrf.eventlog as e, wardcrf.records as r\n"
        "from wardcrf import registration\n"
        "assert not registration._installed[0]\n"
        "try:\n"
        "    e.projectors_for('user.added')\n"
        "except RuntimeError as exc:\n"
        "    assert 'features.install()' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('projectors ran before the features were installed')\n"
        "from wardcrf import features\n"
        "features.install(); features.install()\n"
        "assert [f.__name__ for f in e._own_projectors('user.added')] == ['_user_added']\n"
        "assert len(e._own_projectors('protocol.loaded')) == 2\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT / "tests")
