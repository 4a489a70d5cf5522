"""The core never loads Textual; the `wardcrf` command opens the TUI lazily."""

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
    result = cli("tui", "--language", "fr")
    assert result.code == 2
    assert result.err.strip() == "wardcrf: error: unknown language 'fr' (allowed: en, zh)"


def test_tui_refuses_missing_data_dir(cli, tmp_path):
    result = cli("tui", "--data-dir", str(tmp_path / "nowhere"))
    assert result.code == 2
    assert "does not exist" in result.err and "Traceback" not in result.err


def test_tui_refuses_nonpositive_lock_after(cli):
    result = cli("tui", "--lock-after", "0")
    assert result.code == 2
    assert "--lock-after must be a positive number of seconds" in result.err
