"""The USB-style flow through the CLI: cards, registration, export, hub import, receipts, audit."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import PASSWORD, WARDCRF_MAIN, add_notes, connect, make_hub, make_ward, open_, subprocess_env

from wardcrf.cli import main

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def run(
    *args: str, user: str = "admin", data_dir: Path | None = None, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    env = {"WARDCRF_USER": user, "WARDCRF_PASSWORD": PASSWORD, "COLUMNS": "200"}
    if data_dir is not None:
        env["WARDCRF_DATA_DIR"] = str(data_dir)
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def _ward_local(at: str) -> str:
    """A UTC stamp as `sync status` prints it for a ward in the default zone (Asia/Shanghai, +08:00)."""
    from datetime import datetime, timedelta, timezone

    moment = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(timezone(timedelta(hours=8)))
    return f"{moment:%Y-%m-%d %H:%M} +08:00"


@pytest.mark.pg_gap(
    "a ward's `sync recipient add` (sync.recipient_added, registry._recipient not common_dialect) refuses"
    " its bundle, though docs/hub-postgres.md says every shipped projector is"
)
def test_usb_flow_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyrage

    hub_dir = tmp_path / "hub"
    code, out, err = run(
        "hub", "init", "--data-dir", str(hub_dir), "--admin", "admin", monkeypatch=monkeypatch
    )
    assert code == 0, err
    w = make_ward(tmp_path)
    wrun = lambda *a, **k: run(*a, data_dir=w.data_dir, monkeypatch=monkeypatch, **k)  # noqa: E731
    code, card, _ = wrun("device", "card", "--out", str(tmp_path / "ward.card"), "--qr")
    assert code == 0 and "fingerprint:" in card and "minisign-public-key:" in card
    assert "█" in card or "▀" in card  # the terminal QR code
    code, out, err = run(
        "hub",
        "register-device",
        str(tmp_path / "ward.card"),
        "--data-dir",
        str(hub_dir),
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    # Registering the same card twice is refused with a reason.
    code, out, err = run(
        "hub",
        "register-device",
        str(tmp_path / "ward.card"),
        "--data-dir",
        str(hub_dir),
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "already registered" in err
    code, out, err = run(
        "hub",
        "card",
        "--data-dir",
        str(hub_dir),
        "--out",
        str(tmp_path / "hub.card"),
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "kind: hub" in out
    assert wrun("sync", "set-hub", str(tmp_path / "hub.card"))[0] == 0
    auditor = pyrage.x25519.Identity.generate()
    (tmp_path / "auditor.key").write_text(f"# auditor\n{auditor}\n")
    assert wrun("sync", "add-recipient", str(auditor.to_public()), "--label", "monitor")[0] == 0
    code, out, err = wrun("sync", "add-recipient", "age1nonsense")
    assert code == 2 and "age X25519 recipient" in err
    add_notes(w, 3)
    usb = tmp_path / "usb"
    usb.mkdir()
    code, out, err = wrun("sync", "export", "--to", str(usb))
    assert code == 0, err
    bundles = sorted(usb.glob("*.tar.age"))
    assert len(bundles) == 1
    # The auditor verifies with the device card and their own identity, without any database.
    code, out, err = run(
        "audit",
        "verify-bundle",
        str(bundles[0]),
        "--device-card",
        str(tmp_path / "ward.card"),
        "--identity",
        str(tmp_path / "auditor.key"),
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "VERIFIED" in out, err
    stranger = pyrage.x25519.Identity.generate()
    (tmp_path / "stranger.key").write_text(f"{stranger}\n")
    code, out, err = run(
        "audit",
        "verify-bundle",
        str(bundles[0]),
        "--device-card",
        str(tmp_path / "ward.card"),
        "--identity",
        str(tmp_path / "stranger.key"),
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "not a recipient" in err and "Traceback" not in err
    # Hub import, receipt back on the stick, ward applies it.
    code, out, err = run(
        "hub",
        "import",
        str(bundles[0]),
        "--data-dir",
        str(hub_dir),
        "--receipts-to",
        str(usb),
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "applied" in out, err
    code, out, err = run(
        "hub", "import", str(bundles[0]), "--data-dir", str(hub_dir), monkeypatch=monkeypatch
    )
    assert code == 0 and "already applied" in out
    receipt = next(usb.glob("*-receipt.json"))
    exported = json.loads(wrun("sync", "status", "--json")[1])
    assert exported["state"] == "not synced yet" and exported["last_receipt"] is None
    code, out, _ = wrun("sync", "status")
    export_at = _ward_local(exported["last_export"]["at"])
    assert f"last export: {export_at} (1 file); last receipt: never\n" in out
    assert "hub: not probed yet; state: not synced yet\n" in out
    code, out, err = wrun("sync", "import", str(receipt))
    assert code == 0 and "receipt" in out, err
    code, out, _ = wrun("sync", "status", "--json")
    st = json.loads(out)
    assert st["events_pending"] == 0 and st["bundles_unreceipted"] == 0
    seq = st["last_receipt"]["seq"]
    # The hub's receipt by file says it holds every event, though no online sync ever ran.
    assert seq > 0 and st["state"] == f"received by the hub up to #{seq}"
    code, out, _ = wrun("sync", "status")
    assert code == 0
    receipt_at = _ward_local(st["last_receipt"]["at"])
    assert f"last export: {export_at} (1 file); last receipt: #{seq} at {receipt_at}\n" in out
    assert f"hub: not probed yet; state: received by the hub up to #{seq}\n" in out
    assert "{" not in out and not re.search(r"T\d\d:\d\d.*Z", out)  # no dict, no UTC stamp
    code, out, _ = run("hub", "status", "--data-dir", str(hub_dir), "--json", monkeypatch=monkeypatch)
    hs = json.loads(out)
    assert hs["devices"][0]["last_bundle"] == 1 and hs["forks"] == [] and hs["gaps_held"] == []
    # Hub -> ward over the stick: a DSMG decision.
    code, out, err = (
        run(
            "user",
            "add",
            "dsmg",
            "--full-name",
            "Dee",
            "--role",
            "dsmg",
            data_dir=hub_dir,
            monkeypatch=monkeypatch,
            user="admin",
        )
        if False
        else (0, "", "")
    )
    hub_out = tmp_path / "hub-usb"
    hub_out.mkdir()
    code, out, err = run(
        "hub",
        "export",
        "--device",
        st["device"],
        "--to",
        str(hub_out),
        "--data-dir",
        str(hub_dir),
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    code, out, err = wrun(
        "sync", "import", *map(str, sorted(hub_out.glob("*.tar.age"))), *map(str, hub_out.glob("*.json"))
    )
    assert code == 0 and "applied" in out, err


def test_bad_inputs_are_one_line_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_ward(tmp_path)
    (tmp_path / "bad.card").write_text("hello\n")
    code, _, err = run(
        "sync", "set-hub", str(tmp_path / "bad.card"), data_dir=w.data_dir, monkeypatch=monkeypatch
    )
    assert code == 1 and "not a wardcrf device card" in err  # what the file holds: refused, not usage
    code, _, err = run("sync", "export", "--to", str(tmp_path), data_dir=w.data_dir, monkeypatch=monkeypatch)
    assert code == 2 and "no hub configured" in err
    (tmp_path / "x.tar.age").write_bytes(b"")
    code, _, err = run(
        "sync", "import", str(tmp_path / "x.tar.age"), data_dir=w.data_dir, monkeypatch=monkeypatch
    )
    assert code == 1 and "signature file" in err and len(err.strip().splitlines()) == 1


def test_conflicting_amendments_listed_at_hub(tmp_path: Path) -> None:
    from wardcrf.sync import hub, registry, service, ward  # noqa: F401
    from wardcrf.sync.transport import Client  # noqa: F401

    from wardcrf import records

    h = make_hub(tmp_path)
    w1 = make_ward(tmp_path, "lap1")
    connect(w1, h)
    s = open_(w1)
    s.role = "clinician"  # records are a clinical role's to write (wardcrf.authority)
    # A record that is not a participant's (those need a signed consent first, checked at import).
    rec = records.submit(s, "qa_vitals", {"temp": 37.0}, subject="site:WUH01")
    s.close()
    # A second laptop of the same site gets the record through the hub, then both amend it.
    w2 = make_ward(tmp_path, "lap2")
    connect(w2, h)
    from test_sync_roundtrip import export, hub_import

    f = export(w1, tmp_path / "u1")[0]
    assert hub_import(h, f).outcome.status == "applied"
    from wardcrf import eventlog

    with ledger(h) as (_hs, store):
        ev = eventlog.Event.from_line(store.scalar("SELECT line FROM events WHERE id = ?", (rec.id,)))
    s2 = open_(w2)
    try:
        for line in [
            r[0]
            for r in open_(w1).store.execute(
                "SELECT line FROM events WHERE device = ? ORDER BY seq", (rec.device,)
            )
        ]:
            eventlog.ingest(s2.store, eventlog.Event.from_line(line))
    finally:
        s2.close()
    for site, value in ((w1, 37.5), (w2, 38.0)):
        s = open_(site)
        s.role = "clinician"
        records.amend(s, ev.id, {"temp": value}, "re-measured")
        s.close()
    for n, site in enumerate((w1, w2)):
        for f in export(site, tmp_path / f"c{n}"):
            hub_import(h, f)
    with ledger(h) as (hs, store):
        rows = hub.conflicts(hs)
        assert len(rows) == 1 and rows[0]["field"] == "temp"
        shown = records.load(store, ev.id).data["temp"]
        assert shown == 38.0  # the later amendment by HLC
        assert hub.status(hs)["conflicts"] == 1


def test_hub_killed_mid_import_is_all_or_nothing(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    add_notes(w, 20000)
    from test_sync_roundtrip import export, hub_events

    f = export(w, tmp_path / "usb")[0]
    s = open_(w)
    device, head = (
        s.ctx.device,
        s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,)),
    )
    s.close()
    env = subprocess_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WARDCRF_MAIN,
            "hub",
            "import",
            str(f),
            "--data-dir",
            str(h.data_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    applied_dir = h.data_dir / "sync" / "applied"
    for _ in range(600):  # bounded: up to 60 s for the import to reach its transaction
        if proc.poll() is not None or list(applied_dir.glob("*.tar.age")):
            break
        time.sleep(0.1)
    time.sleep(0.2)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    held = hub_events(h, device)
    print("after SIGKILL the hub holds", held, "of", head, "rc", proc.returncode)
    assert held in (0, head)  # fully applied or not at all
    hs = open_(h)
    try:
        ledger = hs.store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,))
        assert (ledger == 1) == (held == head)
    finally:
        hs.close()
    from test_sync_roundtrip import hub_import

    res = hub_import(h, f)
    assert res.outcome.status in ("applied", "already")
    assert hub_events(h, device) == head
