"""`wardcrf audit ...` and `wardcrf log`: verify the record, read the trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import audit
from ..errors import UsageError, VerificationFailed
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


@app.command("verify-log")
def verify_log(
    chain: Annotated[Path, typer.Argument(help="A checkpoint chain written by `wardcrf hub log`.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="The hub's verifier key (printed by `wardcrf hub log`); default: this site's hub."
        ),
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(
            "--since", help="A checkpoint you kept earlier (a signed note): the chain must agree with it."
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Check a hub's checkpoint chain offline: every signature and every step's consistency proof.

    Exit 0 when the log only ever grew (and agrees with --since), 1 naming the first break.
    """
    from ..sync import hublog

    data = _read_small(chain, "checkpoint chain", 64 * 1024 * 1024)
    kept = _read_small(since, "kept checkpoint", 64 * 1024).decode("utf-8", "replace") if since else None
    if key is None:
        with session(data_dir) as s:
            s.require("audit.verify", what="verify the hub's log")
            try:
                v = hublog.hub_verifier(s.store)
            except UsageError:
                v = hublog.own_verifier(s.store)
        got = hublog.verify_chain(data, v, kept)
    else:
        got = hublog.verify_offline(data, key, kept)
    last = got[-1]
    console.print(
        f"[green]ok[/] {len(got)} checkpoint(s) of {escape(last.origin)}, each consistent with the one before;"
        f" the log holds {last.size} bundle(s)" + ("; agrees with the kept checkpoint" if kept else ""),
        highlight=False,
    )


@app.command("witness-key")
def witness_key(
    name: Annotated[
        str, typer.Argument(help="The witness's name, e.g. auditor.example.org/jane (no spaces or '+').")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the key file (never overwritten).")],
) -> None:
    """Make a witness's cosigning key (Ed25519, passphrase-encrypted); prints its verifier key.

    The passphrase comes from WARDCRF_WITNESS_PASSPHRASE or is asked twice.
    """
    from ..tlog import witnesskey
    from .common import ask_new_password

    signer = witnesskey.create(out, name, ask_new_password("WARDCRF_WITNESS_PASSPHRASE", "witness key"))
    console.print(f"wrote {out}", highlight=False)
    console.print(f"witness verifier key: {signer.verifier.vkey}", highlight=False)


@app.command("witness")
def witness(
    chain: Annotated[Path, typer.Argument(help="The hub's checkpoint chain (`wardcrf hub log`).")],
    key: Annotated[str, typer.Option("--key", help="The hub's verifier key.")],
    witness_key: Annotated[Path, typer.Option("--witness-key", help="This witness's key file.")],
    state: Annotated[
        Path,
        typer.Option("--state", help="This witness's last co-signed checkpoint (created at the first run)."),
    ],
) -> None:
    """Co-sign the hub's newest checkpoint, only if it extends the one this witness co-signed last.

    Writes the co-signed checkpoint to --state (the hub may be given a copy);
    exit 1 naming the break when the hub's history does not extend it.
    """
    import time

    from ..sync import engine, hublog
    from ..tlog import note, witnesskey
    from .common import ask_password

    data = _read_small(chain, "checkpoint chain", 64 * 1024 * 1024)
    last = (
        _read_small(state, "witness state", 64 * 1024).decode("utf-8", "replace") if state.exists() else None
    )
    signer = witnesskey.load(
        witness_key, ask_password("Witness key passphrase", "WARDCRF_WITNESS_PASSPHRASE")
    )
    done = hublog.witness(data, note.Verifier.parse(key), signer, last, int(time.time()))
    engine.atomic_write(state, done.note.encode())
    console.print(
        f"[green]co-signed[/] {escape(done.checkpoint.origin)} at {done.checkpoint.size} bundle(s)"
        + (
            ", consistent with the checkpoint co-signed before"
            if last
            else " (first checkpoint this witness signs)"
        ),
        highlight=False,
    )


def _read_small(path: Path, what: str, limit: int) -> bytes:
    try:
        if path.stat().st_size > limit:
            raise UsageError(f"{what} {path}: larger than {limit} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None


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
    if console.width < WIDE_LOG:
        _print_stacked(entries)
        return
    table = Table(show_lines=False)
    for title in ("when (local)", "who", "what", "change", "why"):
        # fold, never "…": a hash or a time an auditor compares must be shown whole
        table.add_column(title, overflow="fold")
    for e in entries:
        change = "\n".join(
            f"{c['field']}: {audit.shown_value(c['old'])} → {audit.shown_value(c['new'])}" for c in e.changes
        )
        table.add_row(
            e.local_time, _who(e), f"{e.type} {e.subject or ''}\n{e.summary}", change, e.reason or ""
        )
    console.print(table)


WIDE_LOG = 120
"""Below this many columns `log` prints one block per event instead of a table.

In a five-column table at 80 columns each cell is ~20 characters wide, so the
SHA-256 the README tells auditors to compare with `sha256sum` (64 characters)
and the local time's UTC offset were cut with "…". One block per event gives
each line the whole width: a hash fits on its own line.
"""


def _who(e: audit.TrailEntry) -> str:
    return f"{e.user or '—'} ({e.role})" if e.role else (e.user or "—")


def _print_stacked(entries: list[audit.TrailEntry]) -> None:
    from rich.text import Text

    def out(text: str, style: str = "") -> None:
        console.print(Text(text, style=style, overflow="fold"), highlight=False, soft_wrap=False)

    for e in entries:
        out(f"{e.local_time}  {_who(e)}", "bold")
        out(f"  {e.type} {e.subject or ''}".rstrip())
        # one line per body item: a 64-hex value after its key fits in 80 columns
        for part in _summary_parts(e.summary):
            out(f"    {part}")
        for c in e.changes:
            out(f"    {c['field']}: {audit.shown_value(c['old'])} → {audit.shown_value(c['new'])}")
        if e.reason:
            out(f"    why: {e.reason}")
        out("")


def _summary_parts(summary: str) -> list[str]:
    """`a=1, b="x, y", c=[1, 2]` as one item per line (commas inside quotes or brackets stay)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(summary):
        if ch == '"' and (i == 0 or summary[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "[{(":
            depth += 1
        elif not quoted and ch in "]})":
            depth -= 1
        elif not quoted and depth == 0 and summary.startswith(", ", i) and "=" in summary[i + 2 : i + 40]:
            parts.append(summary[start:i])
            start = i + 2
    parts.append(summary[start:])
    return [p for p in parts if p]


def register(root: typer.Typer) -> None:
    root.command("log")(log)
