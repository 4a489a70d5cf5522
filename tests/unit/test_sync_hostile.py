"""The hub never crashes on input, and keeps a record of what it refused (issue 15, findings 3 and 8).

A bundle whose signatures and chain are good can still carry an event no
projector can read. It must be refused alone, with one line naming the
event and the problem; the other bundles of a `hub import` go on; HTTP push
answers 4xx with the same line; and the hub records the refusal (what, why,
which device) and shows it in `hub status`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from forge import append_raw
from synckit import PASSWORD, HubServer, add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward
from wardcrf.sync.transport import SIG_HEADER

from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def export(w: Site, to: Path) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to).files
    finally:
        s.close()


def cli(*args: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from wardcrf.cli import main

    with monkeypatch.context() as m:
        for k, v in {"WARDCRF_USER": "admin", "WARDCRF_PASSWORD": PASSWORD, "COLUMNS": "300"}.items():
            m.setenv(k, v)
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


# An event a ward may originate (a manual cold-chain reading) whose data no projection can
# read: the time is not a time. On main this stopped `hub import` (exit 3) and HTTP (500).
BAD_READING: dict[str, Any] = {
    "form": "coldchain.reading",
    "data": {"unit_id": "FRZ-1", "at": "yesterday-ish", "temp_c": -20.0, "low_c": -25.0, "high_c": -15.0},
}


@pytest.fixture
def three(tmp_path: Path) -> dict[str, Any]:
    """A hub, two good bundles (two wards) and one malformed bundle from a registered ward."""
    h = make_hub(tmp_path)
    good1 = make_ward(tmp_path, "lap1", "WUH01")
    good2 = make_ward(tmp_path, "lap2", "XYZ02")
    bad = make_ward(tmp_path, "lap3", "WUH01")
    for w in (good1, good2, bad):
        connect(w, h)
        add_notes(w, 2)
    append_raw(bad, "record.submitted", BAD_READING, subject="unit:FRZ-1", role="pharmacist")
    files = {n: export(w, tmp_path / n)[0] for n, w in (("a", good1), ("b", bad), ("c", good2))}
    return {"hub": h, "files": files, "bad": bad}


def hub_events(h: Site, device: str) -> int:
    s = open_(h)
    try:
        return int(s.store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)))
    finally:
        s.close()


def device_of(site: Site) -> str:
    s = open_(site)
    try:
        return s.ctx.device
    finally:
        s.close()


def test_a_malformed_bundle_is_refused_alone_and_the_others_are_applied(three, monkeypatch) -> None:
    h, files = three["hub"], three["files"]
    code, out, err = cli(
        "hub",
        "import",
        *(str(f) for f in files.values()),
        "--data-dir",
        str(h.data_dir),
        monkeypatch=monkeypatch,
    )
    assert code == 1, out + err
    assert "internal error" not in out + err and "Traceback" not in out + err
    # (Whether a long line wraps when piped is the CLI's rendering, not this test's subject.)
    text = " ".join((out + err).split())
    assert f"refused {files['b'].name}:" in text, text
    assert "(record.submitted): coldchain.reading data Invalid RFC3339 encoded datetime - at `at`" in text, (
        text
    )
    # The good bundles on either side of it were applied.
    for key in ("a", "c"):
        assert f"ok {files[key].name}:" in text, text
    assert hub_events(h, device_of(three["bad"])) == 0


def test_the_refusal_is_recorded_and_shown_in_hub_status(three, monkeypatch) -> None:
    h, files, bad = three["hub"], three["files"], three["bad"]
    cli("hub", "import", str(files["b"]), "--data-dir", str(h.data_dir), monkeypatch=monkeypatch)
    # The same refusal again (a ward retrying) is not recorded twice.
    cli("hub", "import", str(files["b"]), "--data-dir", str(h.data_dir), monkeypatch=monkeypatch)
    _, out, _ = cli("hub", "status", "--json", "--data-dir", str(h.data_dir), monkeypatch=monkeypatch)
    refused = json.loads(out)["refused"]
    assert len(refused) == 1, refused
    assert refused[0]["device"] == device_of(bad) and refused[0]["file"] == files["b"].name
    assert "coldchain.reading data" in refused[0]["reason"]
    _, out, _ = cli("hub", "status", "--data-dir", str(h.data_dir), monkeypatch=monkeypatch)
    out = " ".join(out.split())
    assert f"REFUSED {device_of(bad)} {files['b'].name}" in out
    s = open_(h)
    try:
        (line,) = [
            r[0] for r in s.store.execute("SELECT line FROM events WHERE type = 'sync.bundle_refused'")
        ]
    finally:
        s.close()
    assert json.loads(line)["body"]["device"] == device_of(bad)


def test_bytes_from_an_unknown_key_are_refused_without_growing_the_log(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    stranger = make_ward(tmp_path, "lap9", "WUH01")
    other_hub = make_hub(tmp_path / "other")
    connect(stranger, other_hub)  # registered elsewhere only
    add_notes(stranger, 1)
    f = export(stranger, tmp_path / "usb")[0]
    s = open_(h)
    try:
        before = s.store.scalar("SELECT count(*) FROM events")
        with pytest.raises(Exception, match="unregistered key"):
            hub.import_file(s, f)
        assert s.store.scalar("SELECT count(*) FROM events") == before
    finally:
        s.close()


def test_http_push_of_a_malformed_bundle_answers_422_with_the_same_line(three) -> None:
    h, files = three["hub"], three["files"]
    server = HubServer(h.data_dir)
    try:
        f = files["b"]
        sig = f.with_name(f.name + ".minisig").read_bytes()
        r = httpx.post(
            f"{server.url}/v1/bundles/{f.name}",
            content=f.read_bytes(),
            headers={SIG_HEADER: base64.b64encode(sig).decode()},
            timeout=30,
        )
        assert r.status_code == 422, r.text
        assert "coldchain.reading data" in r.json()["error"] and "\n" not in r.json()["error"]
        # The server is still serving and applies the good one.
        g = files["a"]
        gsig = g.with_name(g.name + ".minisig").read_bytes()
        r = httpx.post(
            f"{server.url}/v1/bundles/{g.name}",
            content=g.read_bytes(),
            headers={SIG_HEADER: base64.b64encode(gsig).decode()},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    finally:
        server.stop()


DANGEROUS = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]"


@pytest.mark.parametrize(
    ("type_", "body"),
    [
        ("note\x1b]0;owned\x07\u202e", {"text": "x"}),  # the type the refusal names
        ("note.added", {"text": "Fever\x1b[2J\u202eevil\u200b"}),  # text the hub's floor refuses
    ],
    ids=["hostile-type", "hostile-text"],
)
def test_hostile_text_in_a_bundle_is_refused_recorded_and_shown_escaped(tmp_path, monkeypatch, type_, body):
    """A key holder's bundle carrying raw ESC/OSC and bidi characters: refused in one line with them
    spelled out, recorded at the hub (the refusal event's own text passes the floor), and `hub
    status` (table and JSON) prints none of them raw."""
    import re

    h = make_hub(tmp_path)
    w = make_ward(tmp_path, "lap1", "WUH01")
    connect(w, h)
    append_raw(w, type_, body, subject="site:WUH01", role="admin")
    (f,) = export(w, tmp_path / "usb")
    code, out, err = cli("hub", "import", str(f), "--data-dir", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and out == "" and "Traceback" not in err, out + err
    assert re.findall(DANGEROUS, err) == [], err
    assert err.startswith(f"refused {f.name}:") and len(err.splitlines()) == 2, err
    for args in (("hub", "status"), ("hub", "status", "--json")):
        code, out, err = cli(*args, "--data-dir", str(h.data_dir), monkeypatch=monkeypatch)
        assert code == 0 and re.findall(DANGEROUS, out + err) == [], out + err
        assert "REFUSED" in out or '"refused"' in out
    assert hub_events(h, device_of(w)) == 0
