"""`wardcrf photo ...`: import, list, show, export and verify photo evidence.

Thin commands over the `wardcrf.photos` job modules (imported inside each command so
`wardcrf --help` never loads Pillow).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..errors import Refused, VerificationFailed
from .common import DataDirOption, JsonOption, console, err_console, finite_number, print_json, session

if TYPE_CHECKING:
    from wardcrf.photos.validate import PhotoLimits

app = typer.Typer(
    help="Photo evidence: import photographed records, verify, export and view them.",
    no_args_is_help=True,
)

HashArg = Annotated[
    str,
    typer.Argument(
        help="The photo: sha256:<64 hex>, the 64 hex digits, or its tray id (first 12 hex digits).",
        show_default=False,
    ),
]
MaxMbOption = Annotated[
    float | None,
    typer.Option(
        "--max-mb",
        parser=finite_number,
        help="Refuse files larger than this many MB (default 40, or $WARDCRF_PHOTO_MAX_MB).",
        show_default=False,
    ),
]
MaxMpOption = Annotated[
    float | None,
    typer.Option(
        "--max-megapixels",
        parser=finite_number,
        help="Refuse images with more pixels than this (default 60, or $WARDCRF_PHOTO_MAX_MEGAPIXELS).",
        show_default=False,
    ),
]


def _limits(max_mb: float | None = None, max_mp: float | None = None) -> PhotoLimits:
    from wardcrf.photos.validate import PhotoLimits

    return PhotoLimits.from_env().with_overrides(max_mb=max_mb, max_megapixels=max_mp)


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1024 / 1024:.1f} MB"


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Photo files and/or folders (a camera card, a phone export); folders are searched "
            "for .jpg .jpeg .png .heic .heif files.",
            show_default=False,
        ),
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    max_mb: MaxMbOption = None,
    max_megapixels: MaxMpOption = None,
) -> None:
    """Import photos into the unassigned tray. Exit 1 if any file failed (the rest are imported)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from wardcrf.photos import importing

    limits = _limits(max_mb, max_megapixels)
    with session(data_dir) as s:
        files, _ = importing.expand_paths(paths)
        progress = Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=err_console,
            transient=True,
            disable=as_json or not err_console.is_terminal,
        )
        with progress:
            task = progress.add_task("", total=len(files))

            def step(outcome: importing.ImportOutcome, done: int, total: int) -> None:
                if outcome.error:
                    progress.console.print(f"[red]failed:[/] {outcome.error}", highlight=False)
                progress.update(task, completed=done, description=outcome.path.name)

            report = importing.import_many(s, paths, limits=limits, on_progress=step)
    if as_json:
        print_json(report.as_json())
    else:
        for o in report.outcomes:
            if o.info is not None:
                what = "already stored, reused" if o.info.duplicate else "imported"
                console.print(
                    f"{o.info.short_id}  {o.path}  ({what}; {o.info.format} "
                    f"{o.info.width}x{o.info.height}, {_mb(o.info.size)})",
                    highlight=False,
                )
        console.print(
            f"{len(report.imported)} imported, {len(report.reused)} already stored (reused), "
            f"{len(report.failed)} failed"
            + (f", {len(report.skipped)} non-photo files skipped" if report.skipped else ""),
            highlight=False,
        )
    if not report.outcomes and not report.skipped:
        raise Refused("no photo files found in the paths given")
    if report.failed:
        raise Refused(
            f"{len(report.failed)} of {len(report.outcomes)} file(s) not imported "
            f"(first: {report.failed[0].error})"
        )


@app.command("list")
def list_(
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    tray: Annotated[
        bool, typer.Option("--tray", help="Only photos no record binds (the unassigned tray).")
    ] = False,
) -> None:
    """List stored photos: tray id, format, pixels, capture time, camera, bindings."""
    from wardcrf.photos import catalog
    from wardcrf.sync import hub

    with session(data_dir) as s, hub.reading_store(s) as held:
        photos = catalog.list_photos(s, tray=tray, store=held)
    if as_json:
        print_json([p.as_json() for p in photos])
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=12)  # what people type: never cut
    table.add_column("photo", min_width=10)
    table.add_column("taken (EXIF)", no_wrap=True)
    table.add_column("camera", min_width=8)
    table.add_column("imported (UTC)", no_wrap=True)
    table.add_column("by")
    table.add_column("bound", justify="right")
    for p in photos:
        table.add_row(
            p.short_id,
            f"{p.format} {p.width}x{p.height} {_mb(p.size)}",
            (p.captured_at or "—").replace("T", " "),
            p.camera or "—",
            p.imported_at[:16].replace("T", " "),
            p.imported_by or "—",
            str(p.bound),
        )
    console.print(table)
    console.print(f"{len(photos)} photo(s)" + (" in the unassigned tray" if tray else ""), highlight=False)


@app.command("info")
def info(hash_: HashArg, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Show a photo's metadata and whether its stored bytes match its hash."""
    from wardcrf.errors import WardError
    from wardcrf.photos import catalog, originals
    from wardcrf.sync import hub

    with session(data_dir) as s, hub.reading_store(s) as rows:
        s.require("record.read", what="view photos")
        sha = catalog.find(rows, hash_)
        meta = catalog.get_info(rows, sha)
        try:
            originals.read_original(rows, sha, keys=s.store)
            problem = None
        except WardError as exc:
            problem = exc.message
    data: dict[str, Any] = meta.as_json() if meta else {"sha256": sha}
    data["hash_ok"] = problem is None
    data["problem"] = problem
    if as_json:
        print_json(data)
    else:
        for k, v in data.items():
            console.print(f"{k:>14}: {v}", highlight=False)
    if problem:
        raise VerificationFailed(problem)


@app.command("show")
def show(
    hash_: HashArg,
    data_dir: DataDirOption = None,
    width: Annotated[int | None, typer.Option("--width", help="At most this many columns.")] = None,
    rows: Annotated[int | None, typer.Option("--rows", help="At most this many text rows.")] = None,
    graphics: Annotated[
        bool,
        typer.Option(
            "--graphics",
            help="Use the terminal's graphics protocol (Sixel/Kitty) via textual-image.",
        ),
    ] = False,
) -> None:
    """Draw a photo in the terminal (after checking its hash; a mismatch is an error)."""
    from wardcrf.photos import catalog, viewing
    from wardcrf.photos.render import HalfBlockImage, graphics_renderable
    from wardcrf.sync import hub

    with session(data_dir) as s, hub.reading_store(s) as held:
        sha = catalog.find(held, hash_)
        pv = viewing.preview(s, sha, held)
        meta = catalog.get_info(held, sha)
    if meta:
        console.print(
            f"photo {meta.short_id} · {meta.format} {meta.width}x{meta.height} · "
            f"taken {meta.captured_at or 'unknown'} · {meta.camera or 'camera unknown'} · "
            "hash checked",
            highlight=False,
        )
    renderable = (
        graphics_renderable(pv.data) if graphics else HalfBlockImage(pv.data, max_width=width, max_rows=rows)
    )
    console.print(renderable)


@app.command("export")
def export(
    hash_: HashArg,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="File (or folder) to write the original to.", show_default=False),
    ],
    data_dir: DataDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write the original bytes, unchanged; the file's SHA-256 equals the photo's name."""
    from wardcrf.photos import viewing
    from wardcrf.sync import hub

    with session(data_dir) as s, hub.reading_store(s) as rows:
        result = viewing.export_original(s, hash_, out, overwrite=force, store=rows)
    if as_json:
        print_json(
            {
                "path": str(result.path),
                "sha256": result.sha256,
                "size": result.size,
                "has_gps": result.has_gps,
            }
        )
        return
    console.print(f"wrote {result.path} ({result.size} bytes, sha256 {result.sha256})", highlight=False)
    if result.has_gps:
        err_console.print(
            "[yellow]note:[/] this original carries GPS coordinates in its EXIF; it is "
            "exported unchanged because it is the source record",
            highlight=False,
        )


@app.command("verify")
def verify(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Re-hash every stored photo and check every record's photo references.

    Exit 1 naming each problem.
    """
    from wardcrf.photos import verify as photo_verify
    from wardcrf.sync import hub

    with session(data_dir) as s, hub.reading_store(s) as rows:
        result = photo_verify.verify(s, rows)
    if as_json:
        print_json(result.as_json())
    else:
        mark = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
        console.print(f"{mark} photo evidence: {result.checked} checked")
        for p in result.problems:
            console.print(f"    {p}", highlight=False)
    if not result.ok:
        raise VerificationFailed(
            f"photo verify found {len(result.problems)} problem(s): {'; '.join(result.problems)}"
        )


@app.command("record")
def record(
    event_id: Annotated[
        str, typer.Argument(help="The record's event id (e.g. K3J9ZQ2M-14).", show_default=False)
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """An auditor's view of one record's photos: hash, capture time, who bound it, does it check."""
    from wardcrf.photos import audit as photo_audit

    with session(data_dir) as s:
        items = photo_audit.record_photos(s, event_id)
    if as_json:
        print_json([i.as_json() for i in items])
    else:
        table = Table("field", "photo", "status", "taken (EXIF)", "bound by", "bound at", "hash")
        for i in items:
            status = "current" if i.current else f"replaced by {i.unbound_event}"
            hash_ok = "[green]ok[/]" if i.hash_ok else f"[red]{i.problem}[/]"
            taken = (i.captured_at or "—") + (
                f"\n[yellow]{i.capture_warning}[/]" if i.capture_warning else ""
            )
            table.add_row(i.field, i.sha256, status, taken, i.bound_by or "—", i.bound_at, hash_ok)
        console.print(table)
        if not items:
            console.print(f"record {event_id} binds no photos", highlight=False)
    bad = [i for i in items if not i.hash_ok]
    if bad:
        raise VerificationFailed(f"record {event_id}: {bad[0].problem}")
