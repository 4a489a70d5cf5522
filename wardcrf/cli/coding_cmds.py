"""`wardcrf coding ...`: load a licensed dictionary, see the queue, code terms, list codings."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .common import DataDirOption, JsonOption, console, err_console, print_json, session

app = typer.Typer(
    help="Medical coding: MedDRA for adverse events, WHODrug for medications (licensed files, loaded here).",
    no_args_is_help=True,
)

DictionaryArg = Annotated[str, typer.Argument(help="meddra or whodrug.")]
VersionOption = Annotated[
    str | None, typer.Option("--version", help="Dictionary version (default: the one loaded).")
]


def shown(text: Any) -> str:
    """Text from records or dictionaries, safe for a terminal: controls spelled out (<U+001B>), markup escaped."""
    s = "" if text is None else str(text)
    s = "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c)[0] == "C" else c for c in s)
    return escape(s)


@app.command("load")
def load(
    dictionary: DictionaryArg,
    directory: Annotated[
        Path, typer.Argument(help="Folder of the distribution files (MedAscii, or the B3 .txt files).")
    ],
    version: Annotated[
        str | None,
        typer.Option("--version", help='WHODrug only: the release, e.g. "Global B3 March 1, 2024".'),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load a dictionary version from its licensed distribution files (coder, admin)."""
    from ..coding import service

    with session(data_dir) as s:
        loaded = service.load_dictionary(s, dictionary, directory, version=version)
    _print_done(
        loaded,
        as_json,
        f"Loaded {loaded.dictionary} {shown(loaded.version)}: {loaded.terms} terms from "
        f"{', '.join(loaded.files)} — event {loaded.event_id}",
    )


@app.command("version")
def version(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Dictionary versions loaded on this device and the versions the codings use."""
    from ..coding import service

    with session(data_dir) as s:
        s.require("record.read", what="read the codings")
        st = service.status(s.store)
    data = {
        "loaded_here": st["loaded_here"],
        "in_use": {d: v["versions_in_use"] for d, v in st["dictionaries"].items()},
    }
    if as_json:
        print_json(data)
        return
    if not data["loaded_here"]:
        console.print("No dictionary loaded on this device.", highlight=False)
    for d in data["loaded_here"]:
        console.print(
            f"{d['dictionary']} {shown(d['version'])}: {d['terms']} terms, loaded {d['loaded_at'] or '?'} "
            f"by {shown(d['loaded_by'] or '?')}",
            highlight=False,
        )
    for d, versions in data["in_use"].items():
        console.print(f"{d} codings use: {', '.join(map(shown, versions)) or 'none yet'}", highlight=False)


@app.command("status")
def status(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """How many terms are coded, uncoded, or need recoding because the verbatim changed."""
    from ..coding import service
    from ..sync.hub import ledger_store

    with session(data_dir) as s, ledger_store(s) as wards:  # a PostgreSQL hub's records are in its database
        s.require("record.read", what="read the codings")
        st = service.status(wards, local=s.store)
    if as_json:
        print_json(st)
        return
    for d, v in st["dictionaries"].items():
        console.print(
            f"{d}: coded {v['coded']}, uncoded {v['uncoded']}, recode {v['recode']}", highlight=False
        )
    if st["uncoded"] or st["recode"]:
        err_console.print(
            f"[bold yellow]uncoded: {st['uncoded'] + st['recode']}[/] — see `wardcrf coding queue`",
            highlight=False,
        )


@app.command("queue")
def queue(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Verbatim terms waiting for a coder: never coded, or changed since they were coded."""
    from ..coding import service
    from ..sync.hub import ledger_store

    with session(data_dir) as s, ledger_store(s) as wards:  # a PostgreSQL hub's records are in its database
        s.require("record.read", what="read the coding queue")
        items = service.queue(wards)
    listed = _print_items(
        items,
        as_json,
        "Nothing to code.",
        ("record", "form.field", "subject", "verbatim", "dictionary", "status"),
        lambda u: (
            u.record,
            f"{u.form}.{u.field}",
            shown(u.subject or ""),
            shown(u.verbatim),
            u.dictionary,
            f"recode (was coded for {shown(u.stale.verbatim)!s})" if u.stale else "uncoded",
        ),
    )
    if listed:
        console.print(f"{len(items)} term(s) to code", highlight=False)


@app.command("search")
def search(
    dictionary: DictionaryArg,
    text: Annotated[str, typer.Argument(help="Part of a term or drug name.")],
    version: VersionOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many results.")] = 20,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find dictionary entries to code with (LLTs with their PT and primary SOC; drug codes)."""
    from ..coding import service

    with session(data_dir) as s:
        s.require("record.read", what="search the coding dictionaries")
        hits = service.search(s.store, dictionary, text, version=version, limit=limit)
    if as_json:
        print_json(hits)
        return
    if not hits:
        console.print("No match.", highlight=False)
        return
    if "llt_code" in hits[0]:
        table = Table("LLT", "LLT name", "current", "PT", "PT name", "primary SOC")
        for h in hits:
            table.add_row(
                str(h["llt_code"]),
                shown(h["llt_name"]),
                "yes" if h["llt_current"] else "no",
                str(h["pt_code"]),
                shown(h["pt_name"]),
                shown(h["soc_name"]),
            )
    else:
        table = Table("drug code", "drug name", "preferred name", "ATC")
        for h in hits:
            table.add_row(
                h["drug_code"],
                shown(h["drug_name"]),
                shown(h["preferred_name"]),
                shown(", ".join(f"{c} {t}" for c, t in h["atc"])),
            )
    console.print(table)


@app.command("code")
def code(
    record: Annotated[
        str, typer.Argument(help="The record (event id) whose term is coded; see `coding queue`.")
    ],
    llt: Annotated[str | None, typer.Option("--llt", help="MedDRA: the LLT code (8 digits).")] = None,
    drug: Annotated[
        str | None, typer.Option("--drug", help="WHODrug: the drug code (11 characters).")
    ] = None,
    atc: Annotated[
        str | None, typer.Option("--atc", help="WHODrug: the ATC class, when the drug has several.")
    ] = None,
    field: Annotated[
        str | None, typer.Option("--field", help="The coded field, when the form has several.")
    ] = None,
    version: VersionOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the coding changes (re-coding only).")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Code one verbatim term (coder). Re-coding an already coded term is an amendment: give --reason."""
    from ..coding import CodingIndex, service
    from ..sync.hub import ledger_store

    with session(data_dir) as s, ledger_store(s) as wards:  # a PostgreSQL hub's records are in its database
        event = service.code(
            s, record, field=field, llt=llt, drug=drug, atc=atc, version=version, reason=reason, wards=wards
        )
        coded = CodingIndex.load(s.store).latest(
            record, event.body["field"]
        )  # projected where it was appended
    assert coded is not None
    _print_done(
        coded,
        as_json,
        f"Coded {shown(coded.verbatim)} → {shown(coded.term)} ({coded.dictionary} {shown(coded.version)}) "
        f"— event {event.id}",
    )


@app.command("list")
def list_(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every current coding: verbatim, standard term, codes, dictionary version, who and when."""
    from ..coding import service
    from ..sync.hub import ledger_store

    with session(data_dir) as s, ledger_store(s) as wards:  # a PostgreSQL hub's codings are in its database
        s.require("record.read", what="read the codings")
        items = service.codings(wards)
    _print_items(
        items,
        as_json,
        "No term is coded yet.",
        ("record", "verbatim", "term", "code", "dictionary", "coded by", "coded at"),
        lambda c: (
            c.record,
            shown(c.verbatim),
            shown(c.term),
            c.code,
            f"{c.dictionary} {shown(c.version)}",
            shown(c.coded_by or ""),
            c.coded_at,
        ),
    )


def _print_items(
    items: Sequence[Any],
    as_json: bool,
    empty: str,
    columns: tuple[str, ...],
    row: Callable[[Any], tuple[str, ...]],
) -> bool:
    """A listing as JSON (each item's `as_json`), one line when there is nothing, or a table; True for a table."""
    if as_json:
        print_json([item.as_json() for item in items])
        return False
    if not items:
        console.print(empty, highlight=False)
        return False
    table = Table(*columns)
    for item in items:
        table.add_row(*row(item))
    console.print(table)
    return True


def _print_done(result: Any, as_json: bool, line: str) -> None:
    """What a command did: the result's `as_json`, or one line for a person."""
    if as_json:
        print_json(result.as_json())
        return
    console.print(line, highlight=False)
