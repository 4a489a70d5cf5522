"""`wardcrf demo`: a complete demo site (the default protocol's cohort, or a shipped format-2 trial), seeded through the ward's own services."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..clock import now_utc
from ..errors import UsageError
from .common import DataDirOption, console, resolve_data_dir


def demo(
    data_dir: DataDirOption = None,
    password: Annotated[
        str, typer.Option("--password", help="Password of every demo user.")
    ] = "demo-password",
    no_tui: Annotated[
        bool, typer.Option("--no-tui", help="Only seed the site; do not open the TUI.")
    ] = False,
    hub_dir: Annotated[
        Path | None,
        typer.Option(
            "--hub",
            help="Also create a coordinator's hub in this new folder, fed by the demo ward's bundles.",
        ),
    ] = None,
    protocol_name: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="A shipped format-2 protocol to start the site with (mexcovid, palm, palm007): "
            "mexcovid seeds the first trial's cohort; palm and palm007 a ward of that trial, randomized from a "
            "list its hub issued.",
        ),
    ] = None,
) -> None:
    """Seed a demo site: one user per role, 7 participants shaped like the first trial's cohort, a DSMG decision;
    with --protocol palm or palm007, a ward of that trial randomized from its hub's list."""
    from ..engine import loading, model
    from ..text import excerpt
    from ..workflow import demo as seeding

    chosen = None
    if protocol_name is not None:
        names = [n.removesuffix(".toml") for n in model.SHIPPED]
        if protocol_name not in names:
            raise UsageError(
                f"--protocol {excerpt(protocol_name, quoted=True)}: not a shipped protocol "
                f"(shipped: {', '.join(names)})"
            )
        chosen = model.shipped(f"{protocol_name}.toml")
        loading.first_protocol(chosen)  # refused, naming why, before anything is created
    target = resolve_data_dir(data_dir)
    if hub_dir is not None and (
        hub_dir.resolve() == target.resolve() or (hub_dir.exists() and any(hub_dir.iterdir()))
    ):
        raise UsageError(f"--hub {hub_dir}: give a new or empty folder, apart from the ward's")
    if chosen is not None and not loading.reencodes(chosen):
        _engine_demo(target, chosen, password, hub_dir, no_tui)
        return
    started = time.monotonic()
    result = seeding.seed(target, password, protocol_file=chosen)
    took = time.monotonic() - started
    console.print(
        f"Demo site WUH01 seeded in {target}: {len(result.participants)} participants, "
        f"{result.events} events ({took:.1f} s).",
        highlight=False,
    )
    console.print(
        "Users (password " + ("as given" if password != "demo-password" else "demo-password") + "): "
        "admin, clinician, clinician2, pharmacist, investigator, dsmg, coordinator, auditor, monitor.",
        highlight=False,
    )
    console.print(f"Recovery key (demo only): {result.recovery_key}", highlight=False)
    if hub_dir is not None:
        from ..sync import demo as hub_demo

        made = hub_demo.seed_hub(target, hub_dir, password)
        console.print(
            f"Demo hub HUB in {hub_dir}: {made.bundles} bundle(s), {made.events} events from the ward applied. "
            "Users: admin, coordinator, auditor, monitor (same password).",
            highlight=False,
        )
        console.print(f"Hub recovery key (demo only): {made.recovery_key}", highlight=False)
    _open(target, no_tui)


def _engine_demo(target: Path, chosen: Any, password: str, hub_dir: Path | None, no_tui: bool) -> None:
    """A format-2 protocol's demo ward (PALM, PALM007), its allocation list from the trial's hub."""
    from ..sync import engine_demo

    started = time.monotonic()
    result = engine_demo.seed(target, chosen, password, now=now_utc(), hub_dir=hub_dir)  # the real clock
    took = time.monotonic() - started
    arms = ", ".join(f"{pid} {arm}" for pid, arm in result.arms.items())
    console.print(
        f"Demo site {engine_demo.SITE} ({chosen.id} {chosen.version}) seeded in {target}: "
        f"{len(result.participants)} participants, {result.events} events ({took:.1f} s). Randomized: {arms}.",
        highlight=False,
    )
    if result.ready:
        ready = ", ".join(f"{pid} ({kit})" for pid, kit in result.ready.items())
        console.print(
            f"Due today, the kit at the bedside: {ready}. Open the participant and press d "
            "for the guided administration.",
            highlight=False,
        )
    console.print(
        "Users (password " + ("as given" if password != "demo-password" else "demo-password") + "): "
        "admin, " + ", ".join(u for u, _n, _r in engine_demo.USERS) + ".",
        highlight=False,
    )
    console.print(f"Recovery key (demo only): {result.recovery_key}", highlight=False)
    if hub_dir is not None:
        console.print(
            f"Demo hub HUB in {hub_dir}: it issued the ward's allocation list; {result.hub_events} events "
            "from the ward applied. Users: admin, coordinator (same password).",
            highlight=False,
        )
    _open(target, no_tui)


def _open(target: Path, no_tui: bool) -> None:
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
