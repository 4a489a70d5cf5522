"""`wardcrf init` and `wardcrf recover`: create a site, regain access to one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..site import DEFAULT_ZONE, Site
from .common import DataDirOption, ask_new_password, console, resolve_data_dir


def init(
    site: Annotated[str, typer.Option("--site", help="Site code, e.g. WUH01 (prefixes participant ids).")],
    device: Annotated[str, typer.Option("--device", help="A name for this laptop, e.g. ward3-laptop1.")],
    admin: Annotated[str, typer.Option("--admin", help="User name of the first administrator.")],
    data_dir: DataDirOption = None,
    full_name: Annotated[
        str | None, typer.Option("--full-name", help="The admin's full printed name.")
    ] = None,
    zone: Annotated[str, typer.Option("--zone", help="The ward's IANA time zone.")] = DEFAULT_ZONE,
    recovery_key_out: Annotated[
        Path | None,
        typer.Option("--recovery-key-out", help="Also write the recovery key to this file (mode 0600)."),
    ] = None,
    protocol_file: Annotated[
        Path | None,
        typer.Option(
            "--protocol",
            help="Start with this protocol file (format 1 or 2), or a shipped format-2 protocol by name "
            "(mexcovid, palm, palm007), instead of the shipped default (`mexcovid`, its format-1 text run on its "
            "format-2 file).",
        ),
    ] = None,
) -> None:
    """Create an encrypted site database with its first admin and a recovery key."""
    from ..engine import loading

    target = resolve_data_dir(data_dir)
    first = loading.read_named(protocol_file) if protocol_file is not None else None
    loading.first_protocol(first)  # refused before a password is asked or anything is created
    if recovery_key_out is not None and recovery_key_out.exists():
        raise UsageError(f"{recovery_key_out} already exists; refusing to overwrite a recovery key file")
    password = ask_new_password(env="WARDCRF_PASSWORD", who=f"admin {admin}")
    result = Site.init(
        target,
        site=site,
        device_name=device,
        admin=admin,
        password=password,
        admin_full_name=full_name,
        zone_name=zone,
        protocol_file=first,
    )
    if recovery_key_out is not None:
        fd = os.open(recovery_key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"wardcrf recovery key for site {site}, device {result.device}\n{result.recovery_key}\n")
    console.print(f"Created site [bold]{site}[/] on device {device} (id {result.device}) in {target}")
    console.print(
        "\n[bold red]Recovery key — shown once. Write it down and store it apart from this laptop:[/]"
    )
    console.print(f"\n    [bold]{result.recovery_key}[/]\n", highlight=False)
    console.print("With it, an admin can regain access if every password is lost (`wardcrf recover`).")


def recover(
    user: Annotated[str | None, typer.Option("--user", help="The user whose password is reset.")] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Only prove that the recovery key opens this site (logged); no reset."),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Reset a user's password with the recovery key (WARDCRF_RECOVERY_KEY or prompt), or --check it."""
    from ..recovery import check_recovery_key, reset_password_with_recovery_key
    from .common import ask_password

    if check == (user is not None):
        raise UsageError("give either --user NAME (reset that password) or --check (test the key only)")
    target = resolve_data_dir(data_dir)
    site = Site.open(target)
    key_text = ask_password("Recovery key", env="WARDCRF_RECOVERY_KEY")
    if user is None:
        console.print(check_recovery_key(site, key_text), highlight=False)
        return
    password = ask_new_password(who=f"user {user}")
    reset_password_with_recovery_key(site, key_text, user, password)
    console.print(f"Password of {user} reset with the recovery key; the event is in the audit trail.")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("recover")(recover)
