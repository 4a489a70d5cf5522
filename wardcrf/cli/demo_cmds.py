"""`wardcrf demo`: a complete MEXCOVID demo site, seeded through the ward's own services."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .common import DataDirOption, console, resolve_data_dir


def demo(
    data_dir: DataDirOption = None,
    password: Annotated[
        str, typer.Option("--password", help="Password of every demo user.")
    ] = "demo-password",
    no_tui: Annotated[
        bool, typer.Option("--no-tui", help="Only seed the site; do not open the TUI.")
    ] = False,
) -> None:
    """Seed a demo site: one user per role, 7 participants shaped like the MEXCOVID cohort, a DSMG decision."""
    from ..workflow import demo as seeding

    target = resolve_data_dir(data_dir)
    started = time.monotonic()
    result = seeding.seed(target, password)
    took = time.monotonic() - started
    console.print(
        f"Demo site WUH01 seeded in {target}: {len(result.participants)} participants, "
        f"{result.events} events ({took:.1f} s).",
        highlight=False,
    )
    console.print(
        "Users (password " + ("as given" if password != "demo-password" else "demo-password") + "): "
        "admin, clinician, clinician2, pharmacist, investigator, dsmg, coordinator, auditor.",
        highlight=False,
    )
    console.print(f"Recovery key (demo only): {result.recovery_key}", highlight=False)
    if no_tui:
        return
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # No terminal to draw on (a script, a pipe): say how to open it later.
        console.print(f"Open the ward app in a terminal with:  wardcrf tui -d {target}", highlight=False)
        return
    from .tui_cmds import open_tui

    console.print("Opening the ward app: sign in as clinician (or any user above).", highlight=False)
    open_tui(target, user="clinician")


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
