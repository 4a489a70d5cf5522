"""`wardcrf report ...`: outcomes, safety and the auditor's PDF copy, from recorded values."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import DataDirOption, console, in_place, print_json, session

app = typer.Typer(
    help="Reports from recorded data: outcomes, endpoints, visits, safety, audit copy (PDF).",
    no_args_is_help=True,
)


class Format(StrEnum):
    html = "html"
    json = "json"
    md = "md"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format: html, json or md.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write to this file instead of standard output.")
]


def _emit(data: Mapping[str, Any], doc: Any, fmt: Format, out: Path | None) -> None:
    from .. import text as text_rule
    from ..reports import render

    if fmt is Format.json:
        if out is None:
            print_json(data)
            return
        import json

        text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    elif fmt is Format.md:
        text = render.markdown(doc) + "\n"
    else:
        text = render.to_html(doc) + "\n"
    if out is None:
        # On a terminal: what the records hold, spelled out where it could act on the terminal.
        typer.echo(text_rule.for_terminal(text), nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"[green]report written[/] → {out}", highlight=False)


class Quartiles(StrEnum):
    hf5 = "hf5"
    hf6 = "hf6"
    hf7 = "hf7"
    hf8 = "hf8"
    hf9 = "hf9"


class PairedTest(StrEnum):
    exact = "wilcoxon-exact"
    normal = "wilcoxon-normal"


@app.command("outcomes")
def outcomes(
    fmt: FormatOption = Format.md,
    out: OutOption = None,
    quartiles: Annotated[
        Quartiles | None,
        typer.Option(
            "--quartiles",
            help="Quartile definition (Hyndman–Fan type; hf6 = GraphPad Prism, hf7 = R/numpy). "
            "Default: the protocol's [analysis] quartiles.",
        ),
    ] = None,
    paired_test: Annotated[
        PairedTest | None,
        typer.Option(
            "--paired-test",
            help="wilcoxon-exact (exact with ties) or wilcoxon-normal (normal approximation). "
            "Default: the protocol's [analysis] paired_test.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """The trial's analyses: the participants, before/after per participant (Wilcoxon, Kruskal–Wallis) and,
    on a format-2 protocol, every declared endpoint per arm (proportions, mortality, time to event)."""
    from .. import protocol as protocols
    from ..exports.dataset import Dataset
    from ..reports import engine_outcomes, outcomes

    q = quartiles.value if quartiles else None
    t = paired_test.value if paired_test else None
    data: Mapping[str, Any]
    with session(data_dir) as signed_in, in_place(signed_in) as s:
        if protocols.active(s.store).engine is not None:  # format 2: from the protocol's declarations
            f2 = engine_outcomes.compute(s, quartiles=q, paired_test=t)
            data, doc = f2, engine_outcomes.document(f2)
        else:
            f1 = outcomes.compute(Dataset.for_session(s), quartiles=q, paired_test=t)
            data, doc = f1, outcomes.document(f1)
    _emit(data, doc, fmt, out)


@app.command("endpoints")
def endpoints_(fmt: FormatOption = Format.md, out: OutOption = None, data_dir: DataDirOption = None) -> None:
    """A format-2 protocol's declared endpoints per arm, from the records (mortality, proportions, time to event)."""
    from ..reports import engine_endpoints as rep

    with session(data_dir) as signed_in, in_place(signed_in) as s:
        data = rep.compute(s)
    _emit(data, rep.document(data), fmt, out)


@app.command("visits")
def visits_(fmt: FormatOption = Format.md, out: OutOption = None, data_dir: DataDirOption = None) -> None:
    """A format-2 protocol's visits now: the forms each participant owes (overdue, window closing, due now,
    upcoming) and the visits not yet placed (their anchor's event has not happened)."""
    from ..reports import visits as rep

    with session(data_dir) as signed_in, in_place(signed_in) as s:
        data = rep.compute(s)
    _emit(data, rep.document(data), fmt, out)


@app.command("safety")
def safety(fmt: FormatOption = Format.md, out: OutOption = None, data_dir: DataDirOption = None) -> None:
    """Exposure, every AE/SAE with grade, causality, outcome and DSMG assessment, inhalation events by dose."""
    from ..exports.dataset import Dataset
    from ..reports import safety as rep

    # A PostgreSQL hub's database queried where it is (`in_place`), beside the hub's own events in its file.
    with session(data_dir) as signed_in, in_place(signed_in) as s:
        data = rep.compute(Dataset.for_session(s))
    _emit(data, rep.document(data), fmt, out)


@app.command("audit")
def audit_pdf(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="PDF file to write (must not exist yet); .json for a custody record as data."
        ),
    ],
    participant: Annotated[
        str | None, typer.Option("--participant", "-p", help="One participant's casebook, e.g. WUH01-001.")
    ] = None,
    kit: Annotated[
        str | None, typer.Option("--kit", "-k", help="One kit's custody record (receipt to dose).")
    ] = None,
    lot: Annotated[
        str | None, typer.Option("--lot", help="The custody record of every kit of a lot.")
    ] = None,
    shipment: Annotated[
        str | None,
        typer.Option(
            "--shipment", help="The custody record of a shipment's kits (shipper id or receipt event)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Audit copy (PDF): a casebook, or a kit's, lot's or shipment's custody record (also as JSON)."""
    from ..exports.dataset import Dataset
    from ..reports import audit_pdf as rep

    # A PostgreSQL hub's database queried where it is (`in_place`) for the subject's records and custody.
    with session(data_dir) as signed_in, in_place(signed_in) as s:
        result = rep.build(
            Dataset.for_session(s),
            out,
            printed_by=f"{s.full_name} ({s.user})",
            participant=participant,
            kit=kit,
            lot=lot,
            shipment=shipment,
        )
    if as_json:
        print_json(result.as_json())
        return
    console.print(f"[green]audit copy written[/] → {result.path}", highlight=False)
    console.print(
        f"  {len(result.subjects)} subject(s), {result.records} records, {result.signatures} "
        f"signature(s), {result.photos} photo(s)",
        highlight=False,
    )


@app.command("audit-review")
def audit_review(
    since: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, UTC) or an ISO 8601 time.")],
    until: Annotated[
        str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD, UTC) or an ISO 8601 time.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the review: .pdf for the monitor's file, .json as data."),
    ] = None,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign", help='Record the review and sign it (meaning "reviewed"; asks your password again).'
        ),
    ] = False,
    note: Annotated[
        str | None, typer.Option("--note", help="What the reviewer concluded (with --sign).")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the review as JSON.")] = False,
) -> None:
    """The periodic audit-trail review: unusual hours, late entries, critical changes, amendments,
    sign-in failures, key disclosures, clocks, gaps and forks, unexpected roles (thresholds: the protocol)."""
    from ..errors import UsageError
    from ..reports import audit_review as rev
    from .common import ask_password

    if out is not None and out.suffix.lower() not in (".pdf", ".json"):
        raise UsageError(f"--out {out.name}: write a .pdf or a .json file")
    if out is not None and out.exists():
        raise UsageError(f"--out {out}: exists; a review is never written over another file")
    with session(data_dir) as signed_in:
        with in_place(signed_in) as s:  # a PostgreSQL hub's database queried where it is, beside its file
            done = rev.review(s, since, until)
        if sign:  # in the site's own log (a hub's file), then the reviews read again with it
            rev.sign(signed_in, done, password=ask_password("Password to sign the review"), note=note)
            with in_place(signed_in) as s:
                done.past = rev.past_reviews(s.store)
    if out is not None:
        (rev.write_pdf if out.suffix.lower() == ".pdf" else rev.write_json)(done, out)
    if as_json:
        print_json(done.as_json())
        return
    counts = done.counts()
    console.print(
        f"audit-trail review of site {done.site}, {done.since} to {done.until}: {done.checked} events,"
        f" {len(done.findings)} finding(s)",
        highlight=False,
    )
    for kind, n in counts.items():
        if n:
            console.print(f"  {rev.TITLES[kind]}: {n}", highlight=False)
    if sign:
        console.print('[green]signed[/] (meaning "reviewed")', highlight=False)
    if out is not None:
        console.print(f"[green]written[/] → {out}", highlight=False)
