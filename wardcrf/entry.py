"""The `wardcrf` console script: straight to the ward app, or the command line.

`wardcrf` with no arguments in a terminal is what a ward user runs many
times a day, and the login screen should be up in well under a second.
Loading the command line first (typer, click and every command module)
costs a noticeable fraction of that, only to find there is no command; so
this entry point opens the ward app directly in that one case and hands
everything else (any argument, or no terminal: help is printed) to
`wardcrf.cli.main`, which behaves exactly as before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    """Console-script entry point (see the module docstring)."""
    if len(sys.argv) == 1 and sys.stdin.isatty() and sys.stdout.isatty():
        sys.exit(open_ward_app())
    from wardcrf.cli import main as cli_main

    cli_main()


def open_ward_app(data_dir: str | Path | None = None) -> int:
    """Run the ward app on `data_dir` (default: `$WARDCRF_DATA_DIR`, then the platform's).

    Returns the exit code: 0, or the `WardError`'s documented code after one
    line on stderr (e.g. no site in the data directory), as the CLI would.
    """
    from wardcrf.errors import WardError

    try:
        from wardcrf.site import default_data_dir

        from .screens.app import run_app

        target = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
        from wardcrf.cli.tui_cmds import refuse_at_a_postgresql_hub

        refuse_at_a_postgresql_hub(target)  # its screens would show none of the wards' data
        run_app(target, user=os.environ.get("WARDCRF_USER", ""))
    except WardError as exc:
        from wardcrf.text import one_line

        print(f"wardcrf: error: {one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wardcrf: interrupted; nothing was saved by the interrupted step", file=sys.stderr)
        return 130
    return 0
