"""The suite's layout: what pytest's default import mode needs of the test files.

The test folders have no `__init__.py`, so pytest imports each test file as a
top-level module named after its basename. Two files with one basename in two
folders (tests/unit/ and tests/tui/) make the second an "import file mismatch"
error at collection: its tests never run. A fresh-clone CI run found one
(`test_coldchain_products.py`), which each folder's own run could not show.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _clashes(paths: list[Path]) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_name[path.name].append(path.parent.name)
    return {name: sorted(folders) for name, folders in by_name.items() if len(folders) > 1}


def test_no_two_test_files_share_a_basename():
    assert _clashes(sorted(TESTS.rglob("test_*.py"))) == {}


def test_a_shared_basename_is_found():
    paths = [Path("tests/unit/test_a.py"), Path("tests/tui/test_a.py"), Path("tests/tui/test_b.py")]
    assert _clashes(paths) == {"test_a.py": ["tui", "unit"]}
