"""`wardcrf sdv ...` and `wardcrf report sdv`: source-data verification by a monitor.

Marking re-enters the monitor's password (WARDCRF_PASSWORD or a prompt): the
mark is an e-signature with the meaning "verified".
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import sdv
from ..errors import UsageError
from .common import DataDirOption, JsonOption, ask_password, console, in_place, print_json, session

app = typer.Typer(
    help="Source-data verification: mark records verified against their photographs.", no_args_is_help=True
)


@app.command("verify")
def verify_cmd(
    record: Annotated[
        str | None, typer.Argument(help="The record's event id (or --participant with --form).")
    ] = None,
    participant: Annotated[
        str | None,
        typer.Option("--participant", "-p", help="With --form: that participant's one record of it."),
    ] = None,
    form: Annotated[
        str | None, typer.Option("--form", help="With --participant: the form, e.g. consent.")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="Verify only this field (repeat); default: every field."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="The photograph compared (sha256:<hex> or tray id; repeat); default: the record's own.",
        ),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="What was compared, in a sentence.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a record, or single fields, verified against the source photograph (monitor; e-signature "verified")."""
    if (record is None) == (participant is None or form is None) or (record and (participant or form)):
        raise UsageError("name the record: its event id, or --participant ID --form FORM (not both)")
    from ..sync.hubview import direct

    with session(data_dir) as s:
        # A PostgreSQL hub's database read for this record's rows only (`in_place`), never copied.
        with in_place(s) as reading:
            target = record or sdv.find_record(reading.store, str(participant), str(form))
            password = ask_password("Your password, to sign as verified", env="WARDCRF_PASSWORD")
            event = sdv.verify(
                s, target, password=password, fields=field or None, sources=source or None, note=note,
                reading=reading,
            )  # fmt: skip
        with direct(s) as wards:  # with the mark just made (the hub's own events projected there first)
            status = sdv.record(s, target, wards=wards)
    if as_json:
        print_json({"event": event.id, **status.as_json()})
        return
    console.print(
        f"Verified {', '.join(event.body['fields'])} of {status.form} record {status.event_id} — event {event.id}",
        highlight=False,
    )
    console.print(f"  {status.summary()}", highlight=False)


@app.command("show")
def show_cmd(
    record: Annotated[str, typer.Argument(help="The record's event id.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """One record's verification state, field by field, and every verification made on it."""
    from ..sync.hubview import direct

    # A PostgreSQL hub's records are in its database: read in place, one READ ONLY snapshot (a replica will do).
    with session(data_dir) as s, direct(s) as wards:
        st = sdv.record(s, record, wards=wards)
    if as_json:
        print_json(st.as_json())
        return
    console.print(f"[bold]{st.form} record {st.event_id}[/] — {st.state}", highlight=False)
    if st.notice:  # its version is not loaded here: field names and stored values, no other version's form
        console.print(f"[bold yellow]{escape(st.notice)}[/]", highlight=False)
    console.print(f"  {st.summary()}", highlight=False)
    for f in st.fields:
        mark = f" (by {f.mark.full_name}, {f.mark.at})" if f.mark else ""
        after = f"; amended after by {', '.join(f.changed_by)}" if f.changed_by else ""
        console.print(f"  {f.name}: {f.state}{mark}{after}", highlight=False)


def report_sdv(
    participant: Annotated[
        str | None, typer.Option("--participant", "-p", help="One participant: list each record too.")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verified, partly verified, changed since verified and unverified records, per participant and form."""
    from ..sync.hubview import direct

    # A PostgreSQL hub's records are in its database: read in place, one READ ONLY snapshot (a replica will do).
    with session(data_dir) as s, direct(s) as wards:
        data = sdv.overview(s, participant=participant, wards=wards)
    if as_json:
        print_json(data)
        return
    table = Table("participant", "form", "verified", "partly", "changed since verified", "unverified")
    for g in data["groups"]:
        table.add_row(
            g["participant"],
            g["form"],
            str(g[sdv.VERIFIED]),
            str(g[sdv.PARTLY]),
            f"[bold red]{g[sdv.CHANGED]}[/]" if g[sdv.CHANGED] else "0",
            str(g[sdv.UNVERIFIED]),
        )
    console.print(table)
    t = data["totals"]
    console.print(
        f"{t['records']} records: {t[sdv.VERIFIED]} verified, {t[sdv.PARTLY]} partly verified, "
        f"{t[sdv.CHANGED]} changed since verified, {t[sdv.UNVERIFIED]} unverified",
        highlight=False,
    )
    if participant:
        for r in data["records"]:
            console.print(f"  {r['form']} {r['record']}: {r['summary']}", highlight=False)


def register(root: typer.Typer, report_app: typer.Typer) -> None:
    root.add_typer(app, name="sdv")
    report_app.command("sdv")(report_sdv)
