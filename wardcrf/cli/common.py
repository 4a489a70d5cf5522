"""Shared CLI plumbing: data directory, credentials, output."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..errors import AuthError, UsageError
from ..site import Session, Site, default_data_dir

console = Console()
err_console = Console(stderr=True)

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
    """Open the site and sign in with WARDCRF_USER/WARDCRF_PASSWORD or prompts."""
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


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
