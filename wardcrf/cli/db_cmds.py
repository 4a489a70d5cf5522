"""`wardcrf db ...`: backups, restore, projections and the raw key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import backup as backups
from .. import dbadmin
from ..errors import VerificationFailed
from ..site import Site
from .common import (
    DataDirOption,
    JsonOption,
    ask_password,
    console,
    print_json,
    resolve_data_dir,
    session,
)

app = typer.Typer(help="Backups, restore, projection rebuild and the raw key.", no_args_is_help=True)


@app.command("backup")
def backup(
    to: Annotated[Path, typer.Option("--to", help="Folder to write the backup into (e.g. a USB stick).")],
    data_dir: DataDirOption = None,
) -> None:
    """Write a verified, encrypted, consistent backup while the app may be running."""
    with session(data_dir) as s:
        result = backups.backup(s, to)
    console.print(
        f"Backup written and verified: {result.path} ({result.events} events, sha256 {result.sha256})"
    )


@app.command("restore")
def restore(
    file: Annotated[Path, typer.Argument(help="A .wardbackup file.")],
    data_dir: DataDirOption = None,
    recovery: Annotated[
        bool, typer.Option("--recovery-key", help="Open it with the recovery key instead of a password.")
    ] = False,
) -> None:
    """Put a backup in place (a new or repaired laptop). An existing site is moved aside, not deleted."""
    import os

    target = resolve_data_dir(data_dir)
    if recovery:
        result = backups.restore(
            file, target, recovery_key=ask_password("Recovery key", env="WARDCRF_RECOVERY_KEY")
        )
    else:
        user = os.environ.get("WARDCRF_USER") or typer.prompt("User")
        result = backups.restore(file, target, username=user, password=ask_password())
    console.print(
        f"Restored site {result.site} (device {result.device}) into {result.data_dir}: {result.events} events verified."
    )
    if result.replaced:
        console.print(f"The previous contents were kept in {result.replaced}.")
    if result.behind is not None:
        b = result.behind
        console.print(
            f"Stopped: this backup ends at this laptop's event {b.head:,}, but {b.holds} holds its events"
            f" up to {b.newer:,}. Nothing can be recorded here until an admin records why this backup is"
            " kept (`wardcrf db accept-rollback --reason TEXT`), or put the newer database back.",
            highlight=False,
        )
    else:
        console.print(
            "If this laptop syncs with a hub, run `wardcrf sync status`: a restored laptop must not reuse a device seq the hub already holds."
        )


@app.command("rebuild")
def rebuild(
    check: Annotated[
        bool, typer.Option("--check", help="Only compare: replay into a scratch copy and report differences.")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-derive every projection table from the event log (or --check that they match).

    At a PostgreSQL hub, --check compares the database's projections with its log as well as the hub's
    file's with its own, and a rebuild rewrites both: the database's as its owner, with the importers
    stopped (docs/hub-postgres.md).
    """
    with session(data_dir) as s:
        if check:
            from ..sync import pgcheck

            n, diffs = dbadmin.check_projections(s)
            in_database, more = pgcheck.check_projections(s)
            n, diffs = n + in_database, diffs + more
            if as_json:
                print_json({"events": n, "ok": not diffs, "differences": [str(d) for d in diffs]})
            if diffs:
                raise VerificationFailed(f"projections differ from the log: {diffs[0]}")
            if not as_json:
                console.print(f"Projections match the log ({n} events replayed).")
        else:
            from ..sync import pgcheck

            in_database = pgcheck.rebuild_projections(s)  # first: refused there, nothing is changed here
            n = dbadmin.rebuild_projections(s, also=in_database)
            console.print(f"Projections rebuilt from {n} events.")


@app.command("accept-rollback")
def accept_rollback(
    reason: Annotated[
        str, typer.Option("--reason", help="Why this older database is the one to keep (in the audit trail).")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Keep a database older than this laptop's record of it, or behind the hub (admin; logged). See docs/security.md."""
    from .common import ask_username

    site = Site.open(resolve_data_dir(data_dir))
    s = site.unlock(ask_username(), ask_password(), accept_rollback=reason)
    s.close()
    console.print(
        "Accepted: this database is now the reference on this laptop. Records written after its copy"
        " was taken are not in it; the hub holds what it received (`wardcrf sync status`).",
        highlight=False,
    )


@app.command("accept-move")
def accept_move(
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why this site's data is now on this computer (in the audit trail)."),
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Keep using this site's data on this computer after it was moved or copied here (admin; logged)."""
    from .common import ask_username

    site = Site.open(resolve_data_dir(data_dir))
    s = site.unlock(ask_username(), ask_password(), accept_move=reason)
    s.close()
    console.print(
        "Accepted: this computer now holds this site. If the computer it came from still has a copy,"
        " stop using it: two laptops with one identity fork the site's records.",
        highlight=False,
    )


@app.command("raw-key")
def raw_key(data_dir: DataDirOption = None) -> None:
    """Print the raw SQLCipher key (admin; recorded as an event). Use with any SQLCipher 4 tool."""
    with session(data_dir) as s:
        key = dbadmin.reveal_raw_key(s)
    typer.echo(f"x'{key}'")
    console.print(
        "Open with: sqlcipher wardcrf.db, then PRAGMA key = \"x'…'\";"
        " — this disclosure is in the audit trail.",
        style="dim",
        highlight=False,
    )
