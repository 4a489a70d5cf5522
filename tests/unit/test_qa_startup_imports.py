"""The CLI and TUI start-up path does not import numpy or pandas (found in QA: sqlite_utils did)."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_cli_loads_no_numpy():
    assert _loaded_after("import wardcrf.cli") == set()


def test_numpy_still_imports_afterwards_for_the_reports():
    try:
        import numpy  # noqa: F401
    except ImportError:
        return  # not installed here: nothing hidden to restore
    assert _loaded_after("import wardcrf.store, numpy") == {"numpy"}
