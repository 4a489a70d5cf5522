"""`wardcrf draft ...`: see and purge the unsaved forms kept on this laptop (wardcrf.drafts)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from .. import drafts
from .common import DataDirOption, FiniteNumber, JsonOption, console, print_json, session

app = typer.Typer(
    help="Unsaved forms kept on this laptop: list them (never their content) and purge them (admin).",
    no_args_is_help=True,
)


@app.command("list")
def list_(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's drafts.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List drafts: whose, which form, when last saved, how big. An admin sees everyone's; others their own."""
    with session(data_dir) as s:
        rows = drafts.listing(s, user=user)
    if as_json:
        print_json([r.as_json() for r in rows])
        return
    if not rows:
        console.print("No drafts on this laptop.")
        return
    table = Table("user", "form", "context", "last saved (UTC)", "saves", "fields", "bytes")
    for r in rows:
        table.add_row(r.user, r.form, r.context, r.saved_at, str(r.saves), str(r.field_count), str(r.size))
    console.print(table)


@app.command("purge")
def purge(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Purge this user's drafts.")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Purge everyone's drafts.")] = False,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            parser=FiniteNumber(minimum=0),
            help="Only drafts last saved more than this many days ago.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete drafts (admin). Each owner's purge is an event (owner and count; never the content)."""
    with session(data_dir) as s:
        done = drafts.purge(
            s,
            user=user,
            everyone=everyone,
            older_than=timedelta(days=older_than) if older_than is not None else None,
        )
    if as_json:
        print_json([{"owner": p.owner, "count": p.count, "event": p.event.id} for p in done])
        return
    if not done:
        console.print("No drafts matched; nothing purged.")
        return
    for p in done:
        console.print(f"Purged {p.count} draft(s) of {p.owner} — event {p.event.id}", highlight=False)
