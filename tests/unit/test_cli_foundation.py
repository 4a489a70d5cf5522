"""The CLI contract of the foundation: help everywhere, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import typer.main
from conftest import PASSWORD

from wardcrf.cli import app


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))


def test_every_command_and_option_has_help():
    root = typer.main.get_command(app)
    missing = []
    for path, cmd in _all_commands(root):
        if not (cmd.help or "").strip():
            missing.append(" ".join(path))
        for p in cmd.params:
            if isinstance(p, click.Option) and not (p.help or "").strip():
                missing.append(f"{' '.join(path)} {p.opts[0]}")
    assert missing == []


def test_help_and_version(cli):
    r = cli("--help")
    assert r.code == 0 and "init" in r.out and "audit" in r.out
    r = cli("-h")
    assert r.code == 0
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("wardcrf ")


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
