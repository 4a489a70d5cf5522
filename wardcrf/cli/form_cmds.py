"""`wardcrf form ...`, `wardcrf submit`, `wardcrf amend`: forms as a scripting API."""

from __future__ import annotations

import os
import re
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import protocol, workflow
from ..errors import UsageError
from ..forms import with_unit
from ..text import for_terminal
from .common import DataDirOption, JsonOption, ask_password, console, print_json, session

app = typer.Typer(
    help="The forms of the active protocol: list them, show their fields.", no_args_is_help=True
)

FieldArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="field=value pairs, e.g. temp=37.1 pulse=88 (see `wardcrf form show FORM`).",
        show_default=False,
    ),
]


def parse_pairs(pairs: list[str] | None) -> dict[str, str]:
    """`field=value` arguments -> dict; a missing '=' or a repeated field is a usage error."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"{pair!r} is not field=value (e.g. temp=37.1)")
        if name in out:
            raise UsageError(f"field {name} is given twice")
        out[name] = value
    return out


def password_for(session_user: str):
    """Passwords for e-signatures: yours from WARDCRF_PASSWORD, others' from WARDCRF_PASSWORD_<USER> or a prompt."""

    def get(user: str) -> str:
        if user == session_user:
            return ask_password(f"Password of {user} (e-signature)")
        env = "WARDCRF_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()
        if env in os.environ:
            return os.environ[env]
        if not sys.stdin.isatty():
            raise UsageError(f"{user} must sign: set {env}, or run in a terminal so {user} can type it")
        return str(typer.prompt(f"{user}, type your password to sign", hide_input=True))

    return get


@app.command("list")
def list_(
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    lang: Annotated[str, typer.Option("--lang", help="Language of labels: en or zh.")] = "en",
) -> None:
    """List the forms of the active protocol."""
    with session(data_dir) as s:
        s.require("record.read", what="read the protocol")
        p = protocol.active(s.store)
    rows: list[dict[str, Any]] = [
        {"name": f.name, "label": protocol.tr(f.label, lang), "fields": len(f.fields)}
        for f in p.forms.values()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("form", "label", "fields", title=f"{p.id} {p.version}")
    for r in rows:
        table.add_row(r["name"], r["label"], str(r["fields"]))
    console.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Form name, e.g. vitals.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    lang: Annotated[str, typer.Option("--lang", help="Language of labels: en or zh.")] = "en",
) -> None:
    """Show a form's fields: type, unit, required, ranges, choices, CDISC name."""
    with session(data_dir) as s:
        s.require("record.read", what="read the protocol")
        form = protocol.active(s.store).form(name)
    data = form.as_json(lang)
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{form.name}[/] — {data['label']}", highlight=False)
    if data["help"]:
        console.print(data["help"], style="dim", highlight=False)
    table = Table(
        "field", "type", "unit", "req", "allowed", "expected", "choices / default", "CDISC", "label"
    )
    for f in data["fields"]:
        rng = f.get("hard_range")
        soft = f.get("soft_range")
        choices = ", ".join(str(c["code"]) for c in f.get("choices", []))
        if f.get("multiple"):
            choices += " (several, comma-separated)"
        if "default" in f:
            default = f["default"]
            if isinstance(default, bool):  # typed as yes/no, so shown as yes/no
                default = "yes" if default else "no"
            choices = (choices + f"; default {default}").lstrip("; ")
        kind = f["type"] + (" (computed)" if f.get("computed") else "")
        table.add_row(
            f["name"],
            kind,
            f.get("unit", ""),
            "yes" if f["required"] else "",
            f"{rng[0]:g}..{rng[1]:g}" if rng else "",
            f"{soft[0]:g}..{soft[1]:g}" if soft else "",
            choices,
            f.get("cdisc", ""),
            f["label"],
        )
    console.print(table)


def submit(
    form: Annotated[str, typer.Argument(help="Form name (see `wardcrf form list`).")],
    fields: FieldArgs = None,
    participant: Annotated[
        str | None,
        typer.Option(
            "--participant",
            "-p",
            help="Participant id, e.g. WUH01-001 (a consent without it creates a new participant).",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why (needed with --confirm for values outside the expected range)."),
    ] = None,
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="Accept values outside the expected (soft) range; needs --reason."),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Save one form through the domain rules; prints the new event id. Refused: exit 1, nothing saved."""
    raw = parse_pairs(fields)
    with session(data_dir) as s:
        event = workflow.submit(
            s,
            form,
            raw,
            participant=participant,
            reason=reason,
            confirm=confirm,
            password_for=password_for(s.user),
        )
    pid = (event.subject or "").removeprefix("participant:")
    if as_json:
        print_json({"event": event.id, "participant": pid or None, "form": form})
        return
    typer.echo(event.id)
    if form == "consent" and not participant:
        typer.echo(f"participant {pid} created", err=True)


def amend(
    event_id: Annotated[str, typer.Argument(help="The record's event id (as printed by submit).")],
    fields: FieldArgs = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the value changes (required).")] = None,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Accept values outside the expected (soft) range.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Correct fields of a record with a reason; the old values stay in the audit trail."""
    raw = parse_pairs(fields)
    if not reason or not reason.strip():
        raise UsageError("an amendment needs a reason (--reason): what was wrong and why it changes")
    with session(data_dir) as s:
        event = workflow.amend(s, event_id, raw, reason=reason, confirm=confirm)
    typer.echo(event.id)
    for name, change in event.body["changes"].items():
        # The old value may predate the text rule: spelled out, never raw on the terminal.
        typer.echo(
            for_terminal(
                f"  {name}: {with_unit(change.get('old'), None)} -> {with_unit(change.get('new'), None)}"
            ),
            err=True,
        )


def register(root: typer.Typer) -> None:
    root.command("submit")(submit)
    root.command("amend")(amend)
