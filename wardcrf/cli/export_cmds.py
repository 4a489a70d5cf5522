"""`wardcrf export ...`: the trial's data in the formats coordinators' tools read."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..text import for_terminal
from .common import DataDirOption, JsonOption, console, err_console, print_json, session, whole_hub

app = typer.Typer(
    help="Export the trial's data: CSV, CDISC ODM 1.3.2, SDTM (XPT, Dataset-JSON, define.xml), a plain SQLite copy.",
    no_args_is_help=True,
)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="New (or empty) directory to write into.")]
OutFile = Annotated[Path, typer.Option("--out", "-o", help="File to write (must not exist yet).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


class _RichProgress:
    """Adapter from the domain's progress calls to a rich progress bar (stderr)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, task: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(task, total=max(total, 1))

    def advance(self, n: int = 1) -> None:
        if self.task is not None and n:
            self.progress.advance(self.task, n)


@contextlib.contextmanager
def progress_bar(quiet: bool) -> Iterator[Any]:
    from ..exports.progress import NullProgress

    if quiet or not sys.stderr.isatty():
        yield NullProgress()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as p:
        yield _RichProgress(p)


@contextlib.contextmanager
def _dataset(s: Any) -> Iterator[Any]:
    """The export's dataset: the wards' records where this site keeps them (its file, or a PostgreSQL
    hub's database read in one snapshot, `hub.wards_data`), checked for permission and loaded versions."""
    from ..exports.dataset import Dataset
    from ..sync import hub

    with hub.wards_data(s) as wards:
        yield Dataset.for_session(s, wards=wards)


def _warn_conflicts(s: Any, ds: Any = None) -> None:
    """A version loaded with different files by different laptops (`protocol.content_conflicts`): the export
    is written (every record read under the file this database holds), and the line says so on stderr,
    loud, as for uncoded terms: a sponsor's reviewer must not miss it."""
    from rich.markup import escape

    from .. import protocol

    for c in protocol.content_conflicts(s.store, wards=ds.wards if ds is not None else None):
        err_console.print(
            f"[bold red]protocol conflict:[/] {escape(for_terminal(protocol.conflict_line(c)))}",
            highlight=False,
        )


def _done(result: Any, as_json: bool, what: str) -> None:
    uncoded = getattr(result, "uncoded", 0)
    if uncoded:
        # Loud, and on stderr so it survives --json: a statistician must not miss it.
        err_console.print(
            f"[bold yellow]uncoded: {uncoded}[/] verbatim term(s) have no valid MedDRA/WHODrug coding "
            "(see `wardcrf coding queue`)",
            highlight=False,
        )
    if as_json:
        print_json(result.as_json())
        return
    data = result.as_json()
    console.print(f"[green]{what}[/] → {data['out']}", highlight=False)
    for key in ("files", "datasets", "tables"):
        for name, n in (data.get(key) or {}).items():
            console.print(f"  {name}: {n} rows", highlight=False)
    for key in ("subjects", "records", "signatures", "audit_records", "sha256", "event"):
        if key in data:
            console.print(f"  {key}: {data[key]}", highlight=False)


@app.command("csv")
def csv_(
    out: OutDir, data_dir: DataDirOption = None, as_json: JsonOption = False, quiet: QuietOption = False
) -> None:
    """One CSV per form (long format), a data dictionary, the audit trail and SHA256SUMS."""
    from ..exports.csv_export import export_csv

    with session(data_dir) as s, _dataset(s) as ds, progress_bar(quiet or as_json) as p:
        result = export_csv(ds, out, p)
        _warn_conflicts(s, ds)
    _done(result, as_json, "CSV export written")


@app.command("odm")
def odm(
    out: OutFile, data_dir: DataDirOption = None, as_json: JsonOption = False, quiet: QuietOption = False
) -> None:
    """CDISC ODM 1.3.2 XML: metadata from the protocol, data with audit records and signatures."""
    from ..exports.odm import export_odm

    with session(data_dir) as s, _dataset(s) as ds, progress_bar(quiet or as_json) as p:
        result = export_odm(ds, out, p, model=_engine_model(ds.data))
        _warn_conflicts(s, ds)
    _done(result, as_json, "ODM 1.3.2 written")


def _engine_model(store: Any) -> Any:
    """The active version's model when it is a format-2 version of its own (its visits, arms and trial
    design go into the exports); None for a format-1 version, whose exports stay as they were."""
    from .. import protocol

    return protocol.active(store).engine


@app.command("sdtm")
def sdtm(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="New (or empty) directory to write into.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Run the offline conformance rules and print the report.")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """SDTMIG 3.4 datasets as XPT v5 and Dataset-JSON 1.1 with define.xml; --check runs the conformance rules.

    Exit 1 when --check finds an error (pending work such as uncoded AE terms is reported, not an error).
    """
    from ..errors import UsageError
    from ..exports.csv_export import prepare_dir
    from ..exports.sdtm import check as conformance
    from ..exports.sdtm import package, write_package

    if out is None and not check:
        raise UsageError("give --out DIR to write the datasets, --check to check them, or both")
    with session(data_dir) as s, _dataset(s) as ds:
        if out is not None:
            prepare_dir(out)  # refuse a used directory before any work
        with progress_bar(quiet or as_json) as p:
            pkg = package(ds, p, model=_engine_model(ds.data))
            result = write_package(ds, pkg, out) if out is not None else None
        _warn_conflicts(s, ds)
    if result is not None:
        _done(result, as_json and not check, "SDTM datasets written")
        _warn_sdtm(result.uncoded_ae, result.transliterated)
    if check:
        findings = conformance.check(pkg)
        text = conformance.report(findings, pkg)
        if out is not None:
            (Path(out) / "conformance.txt").write_text(text, encoding="utf-8")
        if as_json:
            print_json(
                {
                    "out": str(out) if out else None,
                    "clean": not any(f.severity == "error" for f in findings),
                    "findings": [f.__dict__ for f in findings],
                }
            )
        else:
            sys.stdout.write(for_terminal(text))  # findings quote values from the data
        if result is None:
            _warn_sdtm(pkg.uncoded_ae, pkg.changes)
        if any(f.severity == "error" for f in findings):
            raise typer.Exit(1)


def _warn_sdtm(uncoded: int, changes: list[Any]) -> None:
    """Say on stderr, loudly, what a reviewer must know: uncoded terms and every transliteration."""
    if uncoded:
        err_console.print(
            f"[bold yellow]uncoded: {uncoded}[/] adverse event term(s) have no MedDRA coding: AEDECOD is "
            "empty for them until a coder codes them (`wardcrf coding`)",
            highlight=False,
        )
    for c in changes[:20]:
        err_console.print(
            f"[yellow]{c.rule}:[/] {c.dataset} {c.usubjid} seq {c.seq} {c.variable}: "
            f"{c.original!r} -> {c.written!r}",
            highlight=False,
            markup=True,
        )
    if len(changes) > 20:
        err_console.print(f"... and {len(changes) - 20} more (transliterations.csv)", highlight=False)


@app.command("sqlite")
def sqlite(
    out: OutFile,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm: the copy is NOT encrypted.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """A plain, UNENCRYPTED SQLite copy for analysis tools (asks for confirmation; recorded in the log)."""
    from ..exports.plaintext import export_sqlite

    with session(data_dir) as s:
        s.require("export.plaintext", what="export an unencrypted copy of the data")
        confirmed = yes
        if not confirmed and sys.stdin.isatty():
            confirmed = typer.confirm(
                f"{out} will hold the trial's data WITHOUT encryption. Write it?", default=False
            )
        # A PostgreSQL hub's file and database as one SQLCipher hub's file (`sync.hubview`): copied whole.
        with whole_hub(s) as reading, progress_bar(quiet or as_json) as p:
            result = export_sqlite(s, out, confirmed=confirmed, progress=p, reading=reading)
            _warn_conflicts(reading)
    _done(result, as_json, "unencrypted SQLite copy written")
    if not as_json:
        err_console.print(
            "[yellow]warning:[/] this file is not encrypted: keep it on an encrypted disk "
            "and delete it when the analysis is done",
            highlight=False,
        )
