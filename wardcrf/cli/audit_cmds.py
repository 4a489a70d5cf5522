"""`wardcrf audit ...` and `wardcrf log`: verify the record, read the trail."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import audit
from ..errors import VerificationFailed
from .common import DataDirOption, JsonOption, console, print_json, session

app = typer.Typer(help="Verify integrity: event chains, stored hashes, signatures.", no_args_is_help=True)


@app.command("verify")
def verify(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Check every chain and stored hash. Exit 0 when intact, 1 naming the first bad event."""
    with session(data_dir) as s:
        report = audit.verify(s)
    if as_json:
        print_json(report.as_json())
    else:
        for r in report.results:
            mark = "[green]ok[/]" if not r.problems else "[red]FAILED[/]"
            console.print(f"{mark} {r.name}: {r.checked} checked")
            for p in r.problems:
                console.print(f"    {p}", highlight=False)
            for n in r.notes:
                console.print(f"    note: {n}", highlight=False)
    if not report.ok:
        raise VerificationFailed(f"audit verify failed: {report.problems[0]}")


def log(
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help="Only events about exactly this subject (and its sub-subjects SUBJECT/...),"
            " e.g. participant:WUH01-001; no wildcards: '_' and '%' match only themselves.",
        ),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only events by this user.")] = None,
    type_: Annotated[
        str | None,
        typer.Option("--type", help="Only event types starting with this literal text, e.g. record."),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this UTC time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this UTC time (ISO 8601).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="Only the last N events.")] = None,
) -> None:
    """Show the audit trail: who, when, what, old → new, why.

    The table abbreviates each event; --json gives every event in full (its whole body: all values with
    units, override reasons, photo and signature references) beside the same summary.
    """
    with session(data_dir) as s:
        entries = list(
            audit.trail(
                s, subject=subject, user=user, type_prefix=type_, since=since, until=until, limit=limit
            )
        )
    if as_json:
        print_json([e.as_json() for e in entries])
        return
    table = Table("when (local)", "who", "what", "change", "why", show_lines=False)
    for e in entries:
        change = "\n".join(
            f"{c['field']}: {audit.shown_value(c['old'])} → {audit.shown_value(c['new'])}" for c in e.changes
        )
        who = f"{e.user or '—'} ({e.role})" if e.role else (e.user or "—")
        table.add_row(e.local_time, who, f"{e.type} {e.subject or ''}\n{e.summary}", change, e.reason or "")
    console.print(table)


def register(root: typer.Typer) -> None:
    root.command("log")(log)
