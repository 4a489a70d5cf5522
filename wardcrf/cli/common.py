"""Shared CLI plumbing: data directory, credentials, output."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console

from .. import text as text_rule
from ..errors import AuthError, UsageError
from ..site import Session, Site, default_data_dir

# The styles the command line's own markup uses. Any other [tag] in what is
# printed came from data (a name typed as "Dr [acting]", a hostile "[link=...]")
# and is shown as typed, never read as markup.
_OWN_STYLES = frozenset({"red", "green", "yellow", "bold", "dim", "bold red", "bold green", "bold yellow"})
_TAG = re.compile(r"(\\*)\[([a-z#/@][^\[]*?)\]")


def markup_safe(value: str) -> str:
    """`value` with every markup tag that is not one of the CLI's own styles escaped.

    Closing tags are kept only when they close an open style of ours, so data
    holding "[/]" neither ends our colour early nor stops the command with a
    markup error.
    """
    out: list[str] = []
    pos = 0
    open_: list[str] = []
    for m in _TAG.finditer(value):
        if len(m.group(1)) % 2:
            continue  # already escaped
        tag = m.group(2).strip()
        if tag.startswith("/"):
            name = tag[1:].strip()
            if open_ and name in ("", open_[-1]):
                open_.pop()
                continue
        elif tag in _OWN_STYLES:
            open_.append(tag)
            continue
        bracket = m.start(2) - 1
        out += [value[pos:bracket], "\\"]
        pos = bracket
    out.append(value[pos:])
    return "".join(out)


# The widest a table may be laid out when it is not going to a terminal (a cell
# is never cut; this only bounds rich's layout arithmetic).
_UNBOUNDED_WIDTH = 100_000


class SafeConsole(Console):
    """A rich console that prints stored text as text, on one line when it is not a terminal.

    - Text is shown with control, bidirectional and zero-width characters
      spelled out (`text.for_terminal`), whatever old data still holds: an
      audit trail may never rewrite the auditor's terminal.
    - Markup tags that are not the CLI's own styles are shown as typed.
    - A line is never wrapped when the output is not a terminal (a pipe, a
      log file): one message stays one line.
    - A table is drawn at its full width when the output is not a terminal:
      no cell is cut ("sta…") or wrapped to fit 80 columns, whatever COLUMNS says.
    """

    def render_str(self, text: str, *args: Any, markup: bool | None = None, **kwargs: Any) -> Any:
        text = text_rule.for_terminal(text)
        if self._markup if markup is None else markup:
            text = markup_safe(text)
        return super().render_str(text, *args, markup=markup, **kwargs)

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        wide = 0 if self.is_terminal or kwargs.get("width") is not None else self._table_width(objects)
        saved = self._width
        if wide > self.width:
            self._width = wide  # for this print only: rich lays a table out within the console's width
        try:
            super().print(
                *objects, soft_wrap=(not self.is_terminal) if soft_wrap is None else soft_wrap, **kwargs
            )
        finally:
            self._width = saved

    def _table_width(self, objects: tuple[Any, ...]) -> int:
        """The widest natural width of the tables among `objects` (0 if none): every cell whole."""
        from rich.measure import Measurement
        from rich.table import Table

        options = self.options.update(width=_UNBOUNDED_WIDTH)
        return max(
            (Measurement.get(self, options, o).maximum for o in objects if isinstance(o, Table)), default=0
        )

    def _render_buffer(self, buffer: Any) -> str:
        # The last net, for Text objects built from data without render_str:
        # each refused character becomes U+FFFD (the layout is already done).
        from rich.segment import Segment

        return super()._render_buffer(
            s if s.control else Segment(text_rule.same_width(s.text), s.style, s.control) for s in buffer
        )


console = SafeConsole()
err_console = SafeConsole(stderr=True)


class FiniteNumber:
    """A command-line number that is a number: nan and inf are refused (exit 2, one line).

    `parser=finite_number` (or `FiniteNumber(minimum=0)`) on every float option:
    click's own float accepts "nan" and "inf". A test walks the command tree to
    hold every float option to it. (typer's `min=` does not apply with a parser:
    `minimum` does.)
    """

    def __init__(self, minimum: float | None = None) -> None:
        self.minimum = minimum

    def __call__(self, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(
                f"{text_rule.excerpt(str(value), quoted=True)} is not a number"
            ) from None
        if not math.isfinite(number):
            raise typer.BadParameter(f"{value!r} is not a finite number (nan and inf are not allowed)")
        if self.minimum is not None and number < self.minimum:
            raise typer.BadParameter(f"{value!r} is below the least allowed, {self.minimum:g}")
        return number


finite_number = FiniteNumber()


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        "-d",
        help="Site data directory (default: $WARDCRF_DATA_DIR, then the platform's user data dir).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def resolve_data_dir(data_dir: Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def _interactive() -> bool:
    return sys.stdin.isatty()


def ask_username() -> str:
    user = os.environ.get("WARDCRF_USER")
    if user:
        return user
    if not _interactive():
        raise AuthError("no user: set WARDCRF_USER and WARDCRF_PASSWORD, or run in a terminal")
    return str(typer.prompt("User"))


def ask_password(prompt: str = "Password", env: str = "WARDCRF_PASSWORD") -> str:
    pw = os.environ.get(env)
    if pw is not None:
        return pw
    if not _interactive():
        raise AuthError(f"no password: set {env}, or run in a terminal")
    return str(typer.prompt(prompt, hide_input=True))


def ask_new_password(env: str = "WARDCRF_NEW_PASSWORD", who: str = "new user") -> str:
    """A new password: from `env`, else prompted twice on a terminal."""
    pw = os.environ.get(env)
    if pw is not None:
        return pw
    if not _interactive():
        raise UsageError(f"no password for the {who}: set {env}, or run in a terminal")
    first = str(typer.prompt(f"Password for the {who}", hide_input=True))
    second = str(typer.prompt("Repeat the password", hide_input=True))
    if first != second:
        raise UsageError("the two passwords differ; nothing was saved")
    return first


@contextlib.contextmanager
def session(data_dir: Path | None) -> Iterator[Session]:
    """Open the site and sign in with WARDCRF_USER/WARDCRF_PASSWORD or prompts.

    At a hub whose wards' data is in PostgreSQL the session's store is the hub's
    file (its own events): a command reading the whole hub reads it through
    `whole_hub` or `sync.hub.ledger_store`.
    """
    site = Site.open(resolve_data_dir(data_dir))
    user = ask_username()
    password = ask_password()
    s = site.unlock(user, password)
    try:
        yield s
    finally:
        for w in s.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
        s.close()


@contextlib.contextmanager
def whole_hub(s: Session) -> Iterator[Session]:
    """The signed-in session as a command copying the whole site sees it (`export sqlite`): itself, or at a
    hub whose wards' data is in PostgreSQL the same sign-in
    over the hub's file and database read as one SQLCipher hub's file (`sync.hubview`), read-only:
    what the command writes goes through `s`, to the hub's file."""
    import dataclasses

    from ..sync import hubview

    with hubview.view(s) as store:
        yield s if store is s.store else dataclasses.replace(s, store=store)


@contextlib.contextmanager
def in_place(s: Session) -> Iterator[Session]:
    """The signed-in session as a command that queries the hub where its rows are sees it (one record, kit
    or lot; the cold chain's status and handovers; the reports): itself, or at a hub whose wards' data is in PostgreSQL
    the same sign-in over the database itself, in one read-only snapshot (`sync.hubview.direct`; never a
    copy of the hub, unlike `whole_hub`): what the command writes goes through `s`, to the hub's file."""
    import dataclasses

    from ..sync import hubview

    with hubview.direct(s) as store:
        yield s if store is s.store else dataclasses.replace(s, store=cast(Any, store))


def print_json(value: Any) -> None:
    """JSON as UTF-8 text, with every character a terminal would act on written as a \\u escape.

    JSON escapes C0 controls itself; DEL, C1, bidirectional and zero-width
    characters it writes raw, so they are escaped here: the same string once
    parsed, harmless when printed.
    """
    sys.stdout.write(text_rule.json_safe(json.dumps(value, indent=2, ensure_ascii=False, default=str)) + "\n")
