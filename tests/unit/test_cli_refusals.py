"""Every command's refusals (issue 15, finding 10): exit code, one line on stderr, no traceback.

Walks the typer command tree, so a command added later is covered without
anyone remembering to: an unknown option and a missing argument (usage, 2),
a data directory that is not one (usage, 2), a wrong password (authentication,
2), a number that is not finite (usage, 2). Before: malformed logger files were
refused with exit 2, `hub import` refusal lines went to stdout, and messages
wrapped at 80 columns when piped.
"""

from __future__ import annotations

import enum
import math
import typing
from pathlib import Path
from typing import Any

import pytest
import typer

from wardcrf.cli import app
from wardcrf.cli.common import FiniteNumber, finite_number

# typer carries its own copy of click, and its parameters describe their type by annotation.
Command = Any


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _annotation(param: Any) -> Any:
    hint = param.type_descriptor.annotation
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def _parser(param: Any) -> Any:
    return getattr(param.type_descriptor.parameter_info, "parser", None)


def _is_number_option(param: Any) -> bool:
    return _is_option(param) and _annotation(param) is float


def _leaves(group: Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Command]]:
    if hasattr(group, "commands"):
        out = []
        for name, sub in sorted(group.commands.items()):
            out += _leaves(sub, (*path, name))
        return out
    return [(path, group)]


ROOT = typer.main.get_command(app)
COMMANDS = _leaves(ROOT)
IDS = [" ".join(p) for p, _ in COMMANDS]

# Commands that never open a site's data directory (they make one, or read files only).
NO_SITE = {
    ("init",),
    ("demo",),
    ("hub", "init"),
    ("hub", "verify-bundle"),
    ("db", "restore"),
    ("form", "show"),
    ("form", "list"),
    ("protocol", "check"),
}
# Commands that open the ward app (a terminal UI): only their argument parsing is walked here.
TUI = {("tui",), ("demo",)}


def _dummy(param: Any) -> list[str]:
    hint = _annotation(param)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        value = str(next(iter(hint)).value)
    elif hint in (int, float) or isinstance(_parser(param), FiniteNumber):
        value = "1"
    else:
        value = "x"
    return [param.opts[0], value] if _is_option(param) else [value]


def _required(cmd: Command, *, skip: frozenset[str] = frozenset()) -> list[str]:
    args: list[str] = []
    for p in cmd.params:
        if p.required and p.name not in skip:
            args += _dummy(p)
    return args


def _has(cmd: Command, opt: str) -> bool:
    return any(_is_option(p) and opt in p.opts for p in cmd.params)


def _one_line_refusal(res, code: int, args: list[str]) -> None:
    assert res.code == code, (args, res.code, res.output[-600:])
    assert res.err.endswith("\n") and res.err.count("\n") == 1, (args, res.err[-600:])
    assert "Traceback" not in res.output, args
    assert res.err.startswith("wardcrf: "), (args, res.err)


def test_the_walk_covers_the_command_tree():
    assert len(COMMANDS) > 60, IDS
    assert {("log",), ("user", "list"), ("hub", "import"), ("coldchain", "import-logger")} <= {
        p for p, _ in COMMANDS
    }


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_an_unknown_option_is_usage_in_one_line(cli, path, cmd):
    res = cli(*path, "--no-such-option")
    _one_line_refusal(res, 2, [*path, "--no-such-option"])


@pytest.mark.parametrize(
    ("path", "cmd"),
    [(p, c) for p, c in COMMANDS if any(x.required for x in c.params)],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_a_missing_argument_is_usage_in_one_line(cli, path, cmd):
    res = cli(*path)
    _one_line_refusal(res, 2, list(path))


SITE_COMMANDS = [(p, c) for p, c in COMMANDS if _has(c, "--data-dir") and p not in NO_SITE and p not in TUI]


@pytest.mark.parametrize(("path", "cmd"), SITE_COMMANDS, ids=[" ".join(p) for p, _ in SITE_COMMANDS])
def test_a_data_directory_that_is_not_one_is_usage_in_one_line(cli, tmp_path: Path, path, cmd):
    args = [*path, *_required(cmd, skip=frozenset({"data_dir"})), "--data-dir", str(tmp_path / "nowhere")]
    res = cli(*args)
    # usage either way: the data directory, or a dummy argument refused before it is opened
    _one_line_refusal(res, 2, args)


@pytest.mark.parametrize(("path", "cmd"), SITE_COMMANDS, ids=[" ".join(p) for p, _ in SITE_COMMANDS])
def test_a_wrong_password_is_authentication_in_one_line(cli, site, path, cmd):
    args = [*path, *_required(cmd, skip=frozenset({"data_dir"})), "--data-dir", str(site.data_dir)]
    res = cli(*args, password="not-the-password")
    if res.code == 2 and "wrong user name or password" not in res.err:
        # refused before signing in, on a dummy argument (a file that does not exist): still usage
        _one_line_refusal(res, 2, args)
        return
    _one_line_refusal(res, 2, args)
    assert "wrong user name or password" in res.err


FLOATS = [(p, c, o) for p, c in COMMANDS for o in c.params if _is_number_option(o)]


def test_every_number_option_refuses_what_is_not_a_finite_number():
    """Every float option goes through `finite_number` (plain click floats accept nan and inf)."""
    assert FLOATS, "the tree has number options"
    for path, _cmd, opt in FLOATS:
        assert isinstance(_parser(opt), FiniteNumber), (path, opt.opts)


@pytest.mark.parametrize(
    ("path", "cmd", "opt"), FLOATS, ids=[f"{' '.join(p)} {o.opts[0]}" for p, _, o in FLOATS]
)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e999", "abc"])
def test_a_number_option_given_nan_is_usage_in_one_line(cli, path, cmd, opt, bad):
    args = [*path, *_required(cmd, skip=frozenset({"data_dir", opt.name or ""})), opt.opts[0], bad]
    res = cli(*args)
    _one_line_refusal(res, 2, args)
    assert "finite" in res.err or "not a number" in res.err


def test_finite_number_accepts_numbers():
    assert finite_number("37.5") == 37.5 and finite_number(-20) == -20.0
    assert not math.isnan(finite_number("1e308"))


# -- the three found ----------------------------------------------------------------------------


def test_a_malformed_logger_file_is_refused_with_exit_1(cli, tmp_path: Path):
    assert (
        cli(
            "coldchain", "add-unit", "FRZ-1", "--name", "freezer", "--location", "ward", user="pharmacist"
        ).code
        == 0
    )
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"timestamp,temp\n2020-03-15T08:00:00,-20\n2020-03-15T08:05:00,oops\n")
    res = cli("coldchain", "import-logger", str(bad), "--unit", "FRZ-1", user="pharmacist")
    _one_line_refusal(res, 1, ["import-logger"])
    assert "line 3" in res.err


def test_long_messages_are_one_line_when_piped(cli):
    res = cli(
        "user",
        "add",
        "n" * 150,
        "--role",
        "clinician",
        env={"COLUMNS": "80", "WARDCRF_NEW_PASSWORD": "x" * 12},
    )
    _one_line_refusal(res, 2, ["user", "add"])
    assert len(res.err) > 80 and "(150 characters)" in res.err


def test_the_consoles_never_wrap_a_line_that_is_not_going_to_a_terminal():
    import io

    from wardcrf.cli.common import SafeConsole

    out = io.StringIO()
    console = SafeConsole(file=out, width=80)
    console.print("word " * 60 + "[red]end[/]")
    assert out.getvalue().count("\n") == 1 and out.getvalue().rstrip().endswith("end")


def test_hub_import_refusals_go_to_stderr_one_line_each(tmp_path: Path):
    from synckit import PASSWORD, make_hub

    from wardcrf.cli import main

    hub_site = make_hub(tmp_path)
    junk = tmp_path / "junk-000001.tar.age"
    junk.write_bytes(b"not a bundle")
    (tmp_path / "junk-000001.tar.age.minisig").write_bytes(b"not a signature")
    import contextlib
    import io
    import os

    out, err = io.StringIO(), io.StringIO()
    env = {"WARDCRF_USER": "admin", "WARDCRF_PASSWORD": PASSWORD, "COLUMNS": "60"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            pytest.raises(SystemExit) as exc,
        ):
            main(["hub", "import", str(junk), "--data-dir", str(hub_site.data_dir)])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert exc.value.code == 1
    assert "refused" not in out.getvalue()
    lines = err.getvalue().splitlines()
    assert (
        len(lines) == 2
        and lines[0].startswith("refused junk-000001.tar.age:")
        and lines[1].startswith("wardcrf: error:")
    )


# -- refusals of values (exit 1), every command --------------------------------------------------

# Long-running commands (a server, a watcher) and terminal UIs: their argument parsing is walked above.
LONG_RUNNING = {("hub", "serve"), ("sync", "watch"), *TUI}
WALKED = [(p, c) for p, c in COMMANDS if p not in LONG_RUNNING]


def _values(cmd: Command, path_value: str, data_dir: str) -> list[str]:
    """Every required parameter given a value that names nothing real: an id, a record, a file."""
    args: list[str] = []
    for p in cmd.params:
        if not p.required:
            continue
        hint = _annotation(p)
        if p.name == "data_dir":
            value = data_dir
        elif hint is Path or typing.get_args(hint) == (Path,):
            value = path_value
        elif hint is bool and _is_option(p):
            args.append(p.opts[0])
            continue
        else:
            args += _dummy(p)
            continue
        args += [p.opts[0], value] if _is_option(p) else [value]
    return args


def _refused_or_done(res, args: list[str]) -> None:
    """Exit 0 (the command did it), or a refusal: exit 1 or 2, one line on stderr, nothing on stdout."""
    assert "Traceback" not in res.output, (args, res.output[-800:])
    assert res.code in (0, 1, 2), (args, res.code, res.output[-800:])
    if res.code:
        _one_line_refusal(res, res.code, args)
        assert res.out == "", (args, res.out[-600:])


@pytest.mark.parametrize(("path", "cmd"), WALKED, ids=[" ".join(p) for p, _ in WALKED])
def test_values_that_name_nothing_are_refused_in_one_line(cli, site, tmp_path: Path, path, cmd):
    """Unknown participant, record, kit, unit, user; a file that does not exist."""
    args = [*path, *_values(cmd, str(tmp_path / "no-such-file"), str(site.data_dir))]
    _refused_or_done(cli(*args), args)


PATH_TAKING = [
    (p, c)
    for p, c in WALKED
    if any(
        x.required
        and x.name != "data_dir"
        and (_annotation(x) is Path or typing.get_args(_annotation(x)) == (Path,))
        for x in c.params
    )
]


@pytest.mark.parametrize(("path", "cmd"), PATH_TAKING, ids=[" ".join(p) for p, _ in PATH_TAKING])
def test_a_malformed_file_is_refused_in_one_line(cli, site, tmp_path: Path, path, cmd):
    """Every file a command reads, given bytes that are no such file (a logger file, a card, a
    bundle, a protocol, a backup): refused with exit 1 (what the file holds is not usage), or
    usage when the command wants a folder there."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\xff garbage \x1b[2J\n" * 50)
    args = [*path, *_values(cmd, str(junk), str(site.data_dir))]
    res = cli(*args)
    _refused_or_done(res, args)
    assert "\x1b" not in res.output, args
    if path not in FILE_IS_NOT_READ:
        assert res.code == 1, (args, res.code, res.err)


# Where the junk file is not read as input: an output location (a folder or a new file), a name
# that must end in .tar.age or .pdf, or another argument refused first as usage.
FILE_IS_NOT_READ = {
    ("db", "backup"),  # a folder to write the backup into
    ("export", "csv"),  # an output folder
    ("export", "odm"),  # the file to write
    ("export", "sqlite"),  # asks --yes first
    ("sync", "export"),  # a folder (the USB stick)
    ("report", "audit"),  # a .pdf to write
    ("photo", "export"),  # the photo 'x' is refused first
    ("sync", "import"),  # a bundle is named *.tar.age
    ("hub", "import"),  # the data directory is a ward, not a hub
    ("hub", "export"),
    ("coding", "load"),  # the dictionary 'x' is refused first
}
