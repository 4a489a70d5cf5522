"""`wardcrf user ...`: manage the people who may use this site."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import users
from ..roles import ROLES
from .common import DataDirOption, JsonOption, ask_new_password, console, print_json, session

app = typer.Typer(help="Add, list, deactivate and unlock users; change passwords.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name (never reused).")],
    role: Annotated[str, typer.Option("--role", "-r", help=f"One of: {', '.join(ROLES)}.")],
    full_name: Annotated[str | None, typer.Option("--full-name", help="Printed name for signatures.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a user with a role (admin only). Password from WARDCRF_NEW_PASSWORD or prompt."""
    with session(data_dir) as s:
        users.check_new_user(s, name, role)
        password = ask_new_password(who=f"user {name}")
        event = users.add_user(s, name, full_name or name, role, password)
        console.print(f"Added {name} ({role}) — event {event.id}")


@app.command("list")
def list_(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List users with role and state."""
    with session(data_dir) as s:
        rows = users.list_users(s)
    if as_json:
        print_json(rows)
        return
    table = Table("user", "full name", "role", "state", "language")
    for r in rows:
        state = "deactivated" if not r["active"] else ("locked" if r["locked"] else "active")
        table.add_row(r["username"], r["full_name"], r["role"], state, r["language"])
    console.print(table)


@app.command("passwd")
def passwd(
    name: Annotated[str | None, typer.Argument(help="User (default: yourself; others need admin).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a password. Rewraps one key slot; the data is not re-encrypted."""
    with session(data_dir) as s:
        target = name or s.user
        users.check_password_change(s, target)
        password = ask_new_password(who=f"user {target}")
        users.change_password(s, target, password)
        console.print(f"Password of {target} changed.")


@app.command("deactivate")
def deactivate(
    name: Annotated[str, typer.Argument(help="User to deactivate.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")],
    data_dir: DataDirOption = None,
) -> None:
    """Deactivate a user (admin). The id stays reserved forever; their password stops working."""
    with session(data_dir) as s:
        users.deactivate(s, name, reason)
        console.print(f"Deactivated {name}.")


@app.command("unlock")
def unlock(
    name: Annotated[str, typer.Argument(help="Locked user.")],
    data_dir: DataDirOption = None,
) -> None:
    """Unlock an account locked after failed logins (admin)."""
    with session(data_dir) as s:
        users.unlock(s, name)
        console.print(f"Unlocked {name}.")
