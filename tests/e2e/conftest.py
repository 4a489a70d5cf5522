"""End-to-end tests: the real `wardcrf` run as a user runs it (in tmux, or from a wheel in a fresh venv).

They seed their sites with the TUI tests' helpers (tests/tui: `tui_helpers`, `dose_support`) under the
TUI tests' fixed clock and template site, so this folder uses tests/tui/conftest.py's fixtures: its
autouse clock and cursor, the template site that `site` copies, and the dose-ward template.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TUI = Path(__file__).resolve().parents[1] / "tui"
sys.path.insert(0, str(TUI))  # the TUI tests' helper modules (basenames are unique across tests/)


def _tui_conftest():
    """tests/tui/conftest.py as a module of its own name (every conftest is `conftest` to pytest)."""
    spec = importlib.util.spec_from_file_location("tui_conftest", TUI / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tui = _tui_conftest()
_fixed_clock = _tui._fixed_clock
_steady_cursor = _tui._steady_cursor
_template_site = _tui._template_site
_dose_template = _tui._dose_template
