"""`wardcrf` with no command (and `wardcrf tui`): open the ward app.

Textual is imported inside `open_tui`, never at module level, so
`import wardcrf.cli` stays quick and the core never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import Refused, UsageError
from ..users import LANGUAGE_CODE
from .common import DataDirOption, finite_number, resolve_data_dir

LANGUAGES = ("en", "zh", "fr")
"""The languages the screens' own words are written in (screens/i18n.py CATALOGUED, a test keeps them equal);
a protocol may declare more for its labels, shown with the screens' words in English."""


def refuse_at_a_postgresql_hub(data_dir: Path) -> None:
    """Refuse the app at a hub whose wards' data is in PostgreSQL, before anything is shown (one line, exit 1).

    Its screens read the signed-in session's store, which at such a hub is the hub's own file: its own
    events, people and protocol versions, none of the wards' participants, adverse events, doses or cold
    chain (those are in the database). The dashboard showed "0 listed" at a hub holding a thousand
    participants, which a coordinator could take for nothing having arrived. The hub's commands read the
    database (docs/hub-postgres.md); a SQLCipher hub's app reads its one file, which holds everything.
    """
    from ..sync import pghub

    if pghub.configured(data_dir):
        raise Refused(
            "this hub keeps its wards' data in PostgreSQL, which the app's screens do not read yet (they would"
            " show the hub's own file only: no participants, adverse events or cold chain); use the hub's"
            " commands: `wardcrf hub status`, `wardcrf hub records`, `wardcrf report ...`, `wardcrf coldchain"
            " status`"
        )


def open_tui(
    data_dir: Path | None = None,
    *,
    lock_after: float | None = None,
    language: str | None = None,
    high_contrast: bool = False,
    user: str | None = None,
) -> None:
    """Run the TUI on a site directory (also used by `wardcrf demo`)."""
    refuse_at_a_postgresql_hub(resolve_data_dir(data_dir))
    if language is not None and not LANGUAGE_CODE.match(language):
        shown = repr(language[:20]) + ("…" if len(language) > 20 else "")
        raise UsageError(
            f"unknown language {shown}: give a language code ({', '.join(LANGUAGES)}, or one the ward's"
            " protocol declares, e.g. pt)"
        )
    if lock_after is not None and lock_after <= 0:
        raise UsageError("--lock-after must be a positive number of seconds")
    from ..screens.app import run_app

    run_app(
        resolve_data_dir(data_dir),
        lock_after=lock_after,
        language=language,
        high_contrast=high_contrast,
        user=user or os.environ.get("WARDCRF_USER", ""),
    )


def tui(
    data_dir: DataDirOption = None,
    lock_after: Annotated[
        float | None,
        typer.Option(
            "--lock-after",
            parser=finite_number,
            help="Seconds without input before the screen locks (default: $WARDCRF_LOCK_AFTER, then 300).",
            show_default=False,
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            "-l",
            help="Interface language: en, zh, fr, or another the ward's protocol declares for its labels"
            " (the screens' own words then in English); after sign-in, only those the protocol declares."
            " Default: the user's saved setting.",
            show_default=False,
        ),
    ] = None,
    high_contrast: Annotated[
        bool, typer.Option("--high-contrast", help="Start with the high-contrast theme.")
    ] = False,
) -> None:
    """Open the ward app (the same as `wardcrf` with no command)."""
    open_tui(data_dir, lock_after=lock_after, language=language, high_contrast=high_contrast)


def register(root: typer.Typer) -> None:
    root.command("tui")(tui)
