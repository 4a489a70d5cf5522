"""The `wardcrf` console script: the ward app without loading the command line first."""

from __future__ import annotations

import subprocess
import sys

from wardcrf import entry

HEAVY = ("typer", "click", "sqlite_utils", "PIL", "numpy", "scipy", "pyrage", "httpx", "fpdf", "plotext")


def test_path_to_the_login_screen_loads_no_heavy_module():
    code = (
        "import sys\n"
        "import wardcrf.entry, wardcrf.screens.app, wardcrf.screens.login\n"
        f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_no_terminal_gets_the_command_line_help():
    code = "import sys; sys.argv = ['wardcrf']; from wardcrf.entry import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert out.returncode == 0
    assert "opens the ward app" in " ".join(out.stdout.split())


def test_arguments_go_to_the_command_line():
    code = "import sys; sys.argv = ['wardcrf', '--version']; from wardcrf.entry import main; main()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith("wardcrf ")


def test_missing_site_is_one_line_and_exit_2(tmp_path, capsys):
    code = entry.open_ward_app(tmp_path / "nowhere")
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("wardcrf: error: ") and "does not exist" in err and err.count("\n") == 1
