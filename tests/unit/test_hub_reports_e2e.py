"""A coordinator's day end to end, through the CLI: demo ward -> bundle on a stick -> hub -> exports.

The hub's merged data is the usual source of exports and audit copies; here the
hub is fed by a real signed, encrypted bundle (not a replay), and the audit PDF
says in which bundle each record arrived.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path

import pytest

from wardcrf.cli import main
from wardcrf.workflow import demo

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub

HUB_PASSWORD = "hub-password-1"


def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved = dict(os.environ)
    os.environ.update(env)
    os.environ["COLUMNS"] = "200"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_demo_ward_to_hub_then_exports_and_audit_copy(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    from pypdf import PdfReader

    ward_dir, hub_dir, stick = tmp_path / "ward", tmp_path / "hub", tmp_path / "usb"
    stick.mkdir()
    demo.seed(ward_dir)
    ward = {
        "WARDCRF_DATA_DIR": str(ward_dir),
        "WARDCRF_USER": "admin",
        "WARDCRF_PASSWORD": demo.DEMO_PASSWORD,
    }
    hubenv = {"WARDCRF_DATA_DIR": str(hub_dir), "WARDCRF_USER": "admin", "WARDCRF_PASSWORD": HUB_PASSWORD}

    code, _, err = run("hub", "init", "--data-dir", str(hub_dir), "--admin", "admin", env=hubenv)
    assert code == 0, err
    code, _, err = run("device", "card", "--out", str(tmp_path / "ward.card"), "--no-qr", env=ward)
    assert code == 0, err
    code, _, err = run(
        "hub", "register-device", str(tmp_path / "ward.card"), "--data-dir", str(hub_dir), env=hubenv
    )
    assert code == 0, err
    code, _, err = run(
        "hub", "card", "--data-dir", str(hub_dir), "--out", str(tmp_path / "hub.card"), "--no-qr", env=hubenv
    )
    assert code == 0, err
    code, _, err = run("sync", "set-hub", str(tmp_path / "hub.card"), env=ward)
    assert code == 0, err
    code, out, err = run("sync", "export", "--to", str(stick), env=ward)
    assert code == 0, err
    bundles = sorted(stick.glob("*.tar.age"))
    assert bundles
    code, out, err = run("hub", "import", *map(str, bundles), "--data-dir", str(hub_dir), env=hubenv)
    assert code == 0, out + err

    # The hub verifies what it holds: chains, photos, logger files, sequencing.
    code, out, err = run("audit", "verify", "--data-dir", str(hub_dir), env=hubenv)
    assert code == 0, out + err

    code, _, err = run(
        "export", "csv", "--out", str(tmp_path / "csv"), "--data-dir", str(hub_dir), env=hubenv
    )
    assert code == 0, err
    vitals = list(csv.DictReader((tmp_path / "csv" / "forms" / "vitals.csv").open(encoding="utf-8-sig")))
    assert {r["participant"] for r in vitals} >= {f"WUH01-00{i}" for i in range(1, 8)}

    pdf = tmp_path / "WUH01-001.pdf"
    code, _, err = run(
        "report",
        "audit",
        "--participant",
        "WUH01-001",
        "--out",
        str(pdf),
        "--data-dir",
        str(hub_dir),
        env=hubenv,
    )
    assert code == 0, err
    text = "\n".join(page.extract_text() or "" for page in PdfReader(str(pdf)).pages)
    assert "arrived from device" in " ".join(text.split())
