"""`wardcrf device scanner`: how this laptop's barcode scanner ends a code.

The `device` group is sync's (`wardcrf device card`, sync_cmds.py); this adds
the laptop's own setting to it (`register`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import scanner
from .common import DataDirOption, JsonOption, console, print_json, session


def scanner_profile(
    ends: Annotated[
        str | None,
        typer.Option(
            "--ends",
            help="How this laptop's scanner ends a code: enter (the default) or gap (a quiet time, --gap-ms).",
            show_default=False,
        ),
    ] = None,
    gap_ms: Annotated[
        str | None,
        typer.Option(
            "--gap-ms",
            help=f"With --ends gap: the milliseconds without a key that end a code "
            f"({scanner.MIN_GAP_MS}-{scanner.MAX_GAP_MS}).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show or set how this laptop's barcode scanner ends a code (setting it: admin; logged)."""
    if ends is None and gap_ms is not None:
        raise typer.BadParameter("--gap-ms goes with --ends gap", param_hint="--gap-ms")
    if ends is not None:
        scanner.checked(ends, gap_ms)  # refused before a password is asked or anything is opened
    with session(data_dir) as s:
        profile = scanner.set_profile(s, ends, gap_ms) if ends is not None else scanner.profile(s)
    if as_json:
        print_json(profile.as_dict())
        return
    if ends is not None:
        console.print(f"Set: {profile.describe()}; event {profile.event}.", highlight=False)
    else:
        console.print(profile.describe(), highlight=False)


def register(device_app: typer.Typer) -> None:
    device_app.command("scanner")(scanner_profile)
