"""The core never loads Textual, nor numpy or pandas; the `wardcrf` command opens the TUI lazily."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "wardcrf",
    "wardcrf.cli",
    "wardcrf.site",
    "wardcrf.audit",
    "wardcrf.records",
    "wardcrf.signatures",
    "wardcrf.users",
    "wardcrf.projections",
    "wardcrf.eventlog",
    "wardcrf.cli.tui_cmds",
]


def test_core_and_cli_import_without_textual():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "from wardcrf.features import install\n"
        "install()\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'wardcrf.screens')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_command_outside_a_terminal_prints_help(cli):
    result = cli()
    assert result.code == 0
    assert "opens the ward app" in " ".join(result.out.split())
    assert "tui" in result.out


def test_tui_refuses_unknown_language(cli):
    # Not a language code: any code is accepted here (the ward's protocol may declare it), and an
    # accepted one would start the app in this test.
    result = cli("tui", "--language", "../fr")
    assert result.code == 2
    assert result.err.strip() == (
        "wardcrf: error: unknown language '../fr': give a language code (en, zh, fr, or one the ward's"
        " protocol declares, e.g. pt)"
    )


def test_tui_refuses_missing_data_dir(cli, tmp_path):
    result = cli("tui", "--data-dir", str(tmp_path / "nowhere"))
    assert result.code == 2
    assert "does not exist" in result.err and "Traceback" not in result.err


def test_tui_refuses_nonpositive_lock_after(cli):
    result = cli("tui", "--lock-after", "0")
    assert result.code == 2
    assert "--lock-after must be a positive number of seconds" in result.err


# -- no numpy or pandas on the start-up path ---------------------------------------------------------
# The CLI and TUI start-up path does not import numpy/pandas/scipy (sqlite_utils did); the reports
# still import numpy when they need it.


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
