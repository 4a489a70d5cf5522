"""The CLI contract of the foundation: help everywhere, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer.main
from conftest import PASSWORD

from wardcrf.cli import app


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))


# Commands the features' own tests named when each checked its part of the tree (cold chain,
# photos, the workflow); the walk below covers them with every other command.
NAMED = [
    *[("coldchain", c) for c in ("add-unit", "add-lot", "receive", "handover", "sign", "import-logger")],
    *[("coldchain", c) for c in ("reading", "thaw", "disposition", "custody", "excursions", "status")],
    ("audit", "handovers"),
    ("photo",),
    *[("photo", c) for c in ("import", "list", "info", "show", "export", "verify", "record")],
    ("form",), ("form", "list"), ("form", "show"), ("submit",), ("amend",), ("participant",),
    ("participant", "list"), ("participant", "show"), ("today",), ("protocol", "load"),
    ("protocol", "show"), ("demo",),
]  # fmt: skip


def test_every_command_and_option_has_help_and_shows_it(cli):
    """One walk of the whole command tree: every group and command says what it does, every option
    has a help line, and `wardcrf ... --help` prints a usage with it (exit 0)."""
    root = typer.main.get_command(app)
    walked = dict(_all_commands(root))
    assert set(NAMED) <= set(walked), sorted(set(NAMED) - set(walked))
    missing = []
    for path, cmd in walked.items():
        if not (cmd.help or "").strip():
            missing.append(" ".join(path))
        for p in cmd.params:
            if isinstance(p, click.Option) and not (p.help or "").strip():
                missing.append(f"{' '.join(path)} {p.opts[0]}")
        r = cli(*path, "--help")
        if not (r.code == 0 and "Usage" in r.out and len(r.out) > 100):
            missing.append(f"{' '.join(path)} --help: exit {r.code}, {r.out[:80]!r}")
    assert missing == []
    assert "signature" in cli("audit", "handovers", "--help").out


def test_help_and_version(cli):
    r = cli("--help")
    assert r.code == 0 and "init" in r.out and "audit" in r.out
    r = cli("-h")
    assert r.code == 0
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("wardcrf ")
    r = cli("user", "--help")
    assert r.code == 0 and "deactivate" in r.out
    r = cli("user")  # no_args_is_help: the help, and no empty error line
    assert "deactivate" in r.out and "error" not in r.err


def test_wrong_password_is_one_line_exit_2(cli):
    r = cli("user", "list", password="wrong-password")
    assert r.code == 2
    assert r.err.strip().count("\n") == 0
    assert "wrong user name or password" in r.err and "Traceback" not in r.err


def test_wrong_data_dir_is_one_line_exit_2(cli, tmp_path):
    r = cli("user", "list", env={"WARDCRF_DATA_DIR": str(tmp_path / "nowhere")})
    assert r.code == 2 and "does not exist" in r.err
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("user", "list", env={"WARDCRF_DATA_DIR": str(empty)})
    assert r.code == 2 and "not a wardcrf data directory" in r.err


def test_missing_credentials_without_terminal(cli, monkeypatch):
    r = cli("user", "list", env={"WARDCRF_USER": ""})
    assert r.code == 2 and "WARDCRF_USER" in r.err


def test_corrupt_database_is_one_line(cli, site):
    (site.data_dir / "wardcrf.db").write_bytes(b"garbage" * 1000)
    for extra in ("wardcrf.db-wal", "wardcrf.db-shm"):
        (site.data_dir / extra).unlink(missing_ok=True)
    r = cli("user", "list")
    assert r.code == 1 and "corrupt or not a wardcrf database" in r.err


def test_init_refuses_bad_input_and_existing_site(tmp_path, cli, site):
    r = cli("init", "--site", "WUH 01", "--device", "d", "--admin", "a", "--data-dir", str(tmp_path / "x"))
    assert r.code == 2 and "site 'WUH 01' is invalid" in r.err
    r = cli(
        "init",
        "--site",
        "S",
        "--device",
        "d",
        "--admin",
        "a",
        "--data-dir",
        str(tmp_path / "y"),
        env={"WARDCRF_PASSWORD": "short"},
    )
    assert r.code == 2 and "at least 10 characters" in r.err
    assert not (tmp_path / "y" / "wardcrf.db").exists()
    r = cli("init", "--site", "S", "--device", "d", "--admin", "a", "--data-dir", str(site.data_dir))
    assert r.code == 2 and "already holds a wardcrf site" in r.err
    r = cli(
        "init",
        "--site",
        "S",
        "--device",
        "d",
        "--admin",
        "a",
        "--zone",
        "Mars/Base",
        "--data-dir",
        str(tmp_path / "z"),
    )
    assert r.code == 2 and "unknown time zone" in r.err


def test_init_writes_recovery_key_file(tmp_path, cli):
    out = tmp_path / "recovery.txt"
    r = cli(
        "init",
        "--site",
        "S1",
        "--device",
        "lap",
        "--admin",
        "boss",
        "--data-dir",
        str(tmp_path / "s"),
        "--recovery-key-out",
        str(out),
    )
    assert r.code == 0, r.err
    text = out.read_text()
    assert "WRK-" in text and text.split()[-1] in r.out
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_user_commands(cli):
    r = cli(
        "user",
        "add",
        "nurse2",
        "--role",
        "clinician",
        "--full-name",
        "Nurse Two",
        env={"WARDCRF_NEW_PASSWORD": "nurse-password"},
    )
    assert r.code == 0, r.err
    r = cli("user", "add", "nurse3", "--role", "surgeon", env={"WARDCRF_NEW_PASSWORD": "nurse-password"})
    assert r.code == 2 and "unknown role 'surgeon'" in r.err and "allowed: admin" in r.err
    r = cli(
        "user",
        "add",
        "nurse4",
        "--role",
        "clinician",
        user="auditor",
        env={"WARDCRF_NEW_PASSWORD": "nurse-password"},
    )
    assert r.code == 1 and "role auditor may not add users" in r.err
    r = cli("user", "list", "--json")
    names = {u["username"]: u for u in json.loads(r.out)}
    assert names["nurse2"]["role"] == "clinician"
    r = cli("user", "deactivate", "nurse2", "--reason", "left")
    assert r.code == 0
    r = cli("user", "passwd", env={"WARDCRF_NEW_PASSWORD": "admins-new-pass"})
    assert r.code == 0
    r = cli("user", "list", password="admins-new-pass")
    assert r.code == 0 and "deactivated" in r.out


def test_log_shows_who_when_what_and_amendments(cli, session_for):
    from wardcrf import records

    clin = session_for("clinician")
    rec = records.submit(clin, "vitals", {"temp": 37.1}, subject="participant:WUH01-001")
    records.amend(clin, rec.id, {"temp": 37.4}, reason="misread")
    clin.close()
    r = cli("log", "--json", "--subject", "participant:WUH01-001")
    assert r.code == 0, r.err
    entries = json.loads(r.out)
    am = entries[-1]
    assert am["type"] == "record.amended" and am["reason"] == "misread" and am["user"] == "clinician"
    assert am["changes"] == [{"field": "temp", "old": 37.1, "new": 37.4}]
    r = cli("log")
    assert "37.1" in r.out and "37.4" in r.out and "misread" in r.out


def test_audit_verify_and_rebuild_check_cli(cli):
    r = cli("audit", "verify")
    assert r.code == 0 and "event chains" in r.out
    r = cli("audit", "verify", "--json")
    assert json.loads(r.out)["ok"] is True
    r = cli("db", "rebuild", "--check")
    assert r.code == 0 and "match" in r.out
    r = cli("db", "rebuild", user="clinician")
    assert r.code == 1 and "may not rebuild projections" in r.err


def test_database_locked_by_another_process(cli, site, admin):
    # Another process holds the write lock; we wait (busy timeout) and then say so.
    admin.store.execute("BEGIN IMMEDIATE")
    try:
        r = cli(
            "user",
            "add",
            "x9",
            "--role",
            "clinician",
            env={"WARDCRF_NEW_PASSWORD": "password-123", "WARDCRF_BUSY_TIMEOUT_MS": "200"},
        )
    finally:
        admin.store.execute("ROLLBACK")
    assert r.code == 1 and "locked by another wardcrf process" in r.err, r.err


def test_core_is_importable_without_textual():
    code = (
        "import sys, wardcrf, wardcrf.cli, wardcrf.site, wardcrf.eventlog, wardcrf.records, "
        "wardcrf.audit, wardcrf.backup, wardcrf.features\n"
        "wardcrf.features.install()\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entry_point_runs_as_a_process(tmp_path):
    env = dict(os.environ, WARDCRF_PASSWORD=PASSWORD)
    exe = Path(sys.executable).with_name("wardcrf")
    r = subprocess.run(
        [
            str(exe),
            "init",
            "--site",
            "P1",
            "--device",
            "d1",
            "--admin",
            "a1",
            "--data-dir",
            str(tmp_path / "p"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [str(exe), "audit", "verify"],
        env=dict(
            env, WARDCRF_USER="a1", WARDCRF_PASSWORD="bad-password", WARDCRF_DATA_DIR=str(tmp_path / "p")
        ),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


# -- a data directory that is a file -----------------------------------------------------------------
# e.g. the database itself: named as such, with the folder to pass.


def test_data_dir_pointing_at_the_database_file_says_to_pass_its_folder(cli, site):
    r = cli("participant", "list", env={"WARDCRF_DATA_DIR": str(site.data_dir / "wardcrf.db")})
    assert r.code == 2
    assert "is a file, not a data directory; pass the folder that holds wardcrf.db" in r.err


def test_missing_data_dir_still_says_it_does_not_exist(cli, tmp_path):
    r = cli("participant", "list", env={"WARDCRF_DATA_DIR": str(tmp_path / "nowhere")}, password=PASSWORD)
    assert r.code == 2
    assert "does not exist" in r.err


# -- usage errors ------------------------------------------------------------------------------------
# Argument-parsing errors are one line on stderr naming the help, exit 2 (not a boxed panel).


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("user", "deactivate", "clinician"), "Missing option '--reason'"),
        (("submitt", "vitals"), "No such command 'submitt'"),
        (("db", "backup", "--too", "/tmp"), "No such option: --too"),
        (("participant", "show"), "Missing argument"),
    ],
)
def test_usage_errors_are_one_line_naming_the_help(cli, args, needle):
    r = cli(*args)
    assert r.code == 2
    assert r.out == ""
    assert r.err.count("\n") == 1, r.err
    assert r.err.startswith("wardcrf: error: ") and needle in r.err
    assert "--help" in r.err


# -- user add/passwd check permission, name and role before asking a password ------------------------
# Without WARDCRF_NEW_PASSWORD (and no terminal) the password cannot be asked for: a refusal
# that comes first proves the order.


def test_auditor_adding_a_user_is_refused_before_any_password(cli):
    r = cli("user", "add", "bob", "--role", "clinician", user="auditor")
    assert r.code == 1
    assert "role auditor may not add users" in r.err


def test_misspelt_role_is_named_before_any_password(cli):
    r = cli("user", "add", "bob", "--role", "clinican")
    assert r.code == 2
    assert "unknown role 'clinican'" in r.err


def test_taken_name_is_refused_before_any_password(cli):
    r = cli("user", "add", "clinician", "--role", "clinician")
    assert r.code == 1
    assert "already taken" in r.err


def test_clinician_changing_another_password_is_refused_before_any_password(cli):
    r = cli("user", "passwd", "admin", user="clinician")
    assert r.code == 1
    assert "may not change another user's password" in r.err


def test_admin_adds_a_user_with_a_password(cli):
    r = cli("user", "add", "bob", "--role", "clinician", env={"WARDCRF_NEW_PASSWORD": "bob-password-1"})
    assert r.code == 0, r.err
    r = cli("user", "passwd", env={"WARDCRF_NEW_PASSWORD": "admin-password-2"})
    assert r.code == 0, r.err
