"""The `wardcrf` command line: thin commands over the domain services.

Commands parse arguments, open a session and call a service; they never run
SQL. Every `WardError` becomes one line on stderr and its exit code
(see `wardcrf.errors`); an unexpected exception is reported as an internal
error in one line (set WARDCRF_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import errno
import functools
import os
import sys

import typer
import typer.core
import typer.main

from .. import __version__, features, text
from ..errors import EXIT_REFUSED, WardError
from . import (
    audit_cmds,
    coding_cmds,
    coldchain_cmds,
    db_cmds,
    demo_cmds,
    device_cmds,
    draft_cmds,
    export_cmds,
    form_cmds,
    participant_cmds,
    photo_cmds,
    protocol_cmds,
    randomization_cmds,
    report_cmds,
    sdv_cmds,
    site_cmds,
    sync_cmds,
    tui_cmds,
    user_cmds,
)

EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="wardcrf",
    help="Offline electronic case report forms for clinical trials in isolation wards. "
    "With no command, opens the ward app (the TUI) in a terminal.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wardcrf {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Offline electronic case report forms for clinical trials in isolation wards.

    With no command, opens the ward app (the TUI) on the data directory
    ($WARDCRF_DATA_DIR, then the platform's user data dir).
    """
    if ctx.invoked_subcommand is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # Not a terminal (a pipe, a script): there is no screen to draw on.
            typer.echo(ctx.get_help())
            return
        tui_cmds.open_tui()  # the ward app installs the features at sign-in
        return
    # The command line's composition root: every command runs with every feature registered
    # (a site refuses to open its database before, `registration.require_installed`).
    features.install()


site_cmds.register(app)
app.add_typer(user_cmds.app, name="user")
app.add_typer(db_cmds.app, name="db")
app.add_typer(audit_cmds.app, name="audit")
app.add_typer(photo_cmds.app, name="photo")
audit_cmds.register(app)
app.add_typer(protocol_cmds.app, name="protocol")
app.add_typer(form_cmds.app, name="form")
form_cmds.register(app)
app.add_typer(participant_cmds.app, name="participant")
participant_cmds.register(app)
demo_cmds.register(app)
app.add_typer(export_cmds.app, name="export")
app.add_typer(report_cmds.app, name="report")
app.add_typer(draft_cmds.app, name="draft")
app.add_typer(coding_cmds.app, name="coding")
coldchain_cmds.register(app, audit_cmds.app)
sync_cmds.register(app, audit_cmds.app)
device_cmds.register(sync_cmds.device_app)
tui_cmds.register(app)
sdv_cmds.register(app, report_cmds.app)
randomization_cmds.register(app, sync_cmds.hub_app, report_cmds.app)


def _say(message: str, prefix: str = "wardcrf: error: ") -> None:
    """One line on stderr: whatever the message holds (a name typed with a line break or an
    escape sequence) is spelled out, never wrapped, never a second line."""
    print(prefix + text.one_line(message), file=sys.stderr)


@functools.cache
def _command() -> typer.core.TyperGroup:
    """The click command tree typer builds from `app`, built once per process.

    `app(...)` builds it again on every call, reading the type hints of every
    command's parameters (about 200 functions): over 100 ms, more than most
    commands take. A process runs the command line once, but whatever calls
    `main` repeatedly in one process (the test suite, a script) paid it each
    time. The tree holds no state of an invocation: click makes a new context
    for each `main` call.
    """
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)  # an app of sub-commands
    return command


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn user-facing failures into one line."""
    try:
        # Not click's standalone mode: its usage errors are a multi-line panel; ours are one line.
        code = _command().main(args=argv, prog_name="wardcrf", standalone_mode=False)
    except typer.TyperException as exc:  # bad arguments: typer's click raises these
        message = " ".join(exc.format_message().split())
        if not message:  # a group called without a command: its help is already printed
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _say(f"{message}{where}")
        sys.exit(exc.exit_code)
    except typer.Abort:  # Ctrl-C or Ctrl-D at a prompt
        _say("interrupted; nothing was saved by the interrupted step", "wardcrf: ")
        sys.exit(EXIT_INTERRUPTED)
    except WardError as exc:
        _say(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _say("interrupted; nothing was saved by the interrupted step", "wardcrf: ")
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:
        if os.environ.get("WARDCRF_DEBUG"):
            raise
        if exc.errno == errno.ENOSPC:
            _say("disk full; free space and retry (nothing was saved)")
        else:
            _say(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        sys.exit(EXIT_REFUSED)
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("WARDCRF_DEBUG"):
            raise
        _say(f"{type(exc).__name__}: {exc} (set WARDCRF_DEBUG=1 for details)", "wardcrf: internal error: ")
        sys.exit(EXIT_INTERNAL)
    sys.exit(
        code if isinstance(code, int) else 0
    )  # as click's standalone mode did: callers expect SystemExit
