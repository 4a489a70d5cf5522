"""A kit's custody record (issue 22), on the demo ward and on a hub fed by its bundles.

Found: `report audit --kit` showed no stays, no min/max/MKT, "0 photo(s)" for a
kit whose receipt has a photographed delivery sheet, and an empty audit trail.
Done when: the demo kit's PDF shows every stay, temperature and photo with
statuses re-hashed as it is made (a photo tampered with at the hub reads MISMATCH).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from wardcrf.workflow import demo

PASSWORD = demo.DEMO_PASSWORD
KIT = "EXO-0001"
LOCAL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d \([A-Za-z_/]+\)$")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from wardcrf.sync import demo as hub_demo

    base = tmp_path_factory.mktemp("custody")
    ward, hub = base / "ward", base / "hub"
    demo.seed(ward, PASSWORD)
    hub_demo.seed_hub(ward, hub, PASSWORD)
    return ward, hub


@pytest.fixture
def hub_copy(sites: tuple[Path, Path], tmp_path: Path) -> Path:
    dst = tmp_path / "hub"
    shutil.copytree(sites[1], dst, ignore=shutil.ignore_patterns("*.lock"))
    return dst


def run(data_dir: Path, *args: str, user: str = "auditor") -> tuple[int, str, str]:
    from wardcrf.cli import main

    env = {
        "WARDCRF_DATA_DIR": str(data_dir),
        "WARDCRF_USER": user,
        "WARDCRF_PASSWORD": PASSWORD,
        "COLUMNS": "200",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def record_json(data_dir: Path, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
    code, _, err = run(data_dir, "report", "audit", *args, "--out", str(out))
    assert code == 0, err
    return json.loads(out.read_text(encoding="utf-8"))


def pdf_text(data_dir: Path, out: Path, *args: str) -> str:
    from pypdf import PdfReader

    code, _, err = run(data_dir, "report", "audit", *args, "--out", str(out))
    assert code == 0, err
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(str(out)).pages).split())


def test_hub_kit_record_has_every_step_stay_temperature_photo_and_bundle(sites, tmp_path):
    _ward, hub = sites
    rec = record_json(hub, tmp_path, "--kit", KIT)
    assert rec["source"] == "hub" and rec["kit"] == KIT and rec["complete"] and rec["state"] == "used"
    assert [s["kind"] for s in rec["steps"]] == ["receipt", "handover", "handover"]
    for step in rec["steps"]:
        assert LOCAL.match(step["at"]["local"]) and step["at"]["utc"].endswith("Z")
        assert len(step["parties"]) == 2
        assert step["arrival"]["bundle"]["manifest_sha256"]  # the bundle it arrived in
        assert "arrived from device" in step["arrival"]["text"]
        for party in step["parties"]:
            if party["user"]:
                assert party["state"] == "signed"
                assert [s["meaning"] for s in party["signatures"]] == [
                    "handed over" if party["side"] == "from" else "received"
                ]
            else:  # the courier: named, with the photographed sheet
                assert party["state"].startswith("no account here: signed the paper sheet")
    receipt = rec["steps"][0]
    assert receipt["photos"] and receipt["transit_logger"]["status"] == "ok"
    assert all(p["status"] == "intact" for p in rec["photos"]) and len(rec["photos"]) == 3

    # Stays: the freezer's min/max/MKT exactly as `coldchain custody` computes them (one implementation).
    code, out, err = run(hub, "coldchain", "custody", KIT, "--json")
    assert code == 0, err
    chain_stays = [ln for ln in json.loads(out)[0]["links"] if ln["kind"] == "stay"]
    assert [s["location"] for s in rec["stays"]] == [s["location"] for s in chain_stays]
    freezer = next(s for s in rec["stays"] if s["monitored_unit"])
    assert freezer["temperatures"] == next(s for s in chain_stays if "temperatures" in s)["temperatures"]
    assert freezer["temperatures"]["mkt_c"] is not None and freezer["logger_files"]
    for f in freezer["logger_files"]:
        assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) and f["status"] == "ok"

    # The night's excursion with the pharmacist's release; the thaw; the dose.
    (exc,) = rec["excursions"]
    assert exc["disposition"]["decision"] == "release" and exc["disposition"]["reason"]
    assert LOCAL.match(exc["disposition"]["at"]["local"])
    (thaw,) = rec["thaws"]
    assert thaw["by"] == "clinician" and LOCAL.match(thaw["start"]["local"])
    assert rec["dose"]["participant"] == "WUH01-001"
    types = [e["type"] for e in rec["audit_trail"]]
    assert "record.submitted" in types and "signature.applied" in types


def test_kit_pdf_says_what_the_json_says(sites, tmp_path):
    _ward, hub = sites
    rec = record_json(hub, tmp_path, "--kit", KIT)
    text = pdf_text(hub, tmp_path / "kit.pdf", "--kit", KIT)
    assert f"Custody record of kit {KIT}" in text
    for step in rec["steps"]:
        assert step["event_id"] in text and step["at"]["local"] in text
        assert step["arrival"]["bundle"]["manifest_sha256"] in text
    for photo in rec["photos"]:
        assert photo["sha256"] in text
    assert text.count("intact: the stored original re-hashes to this SHA-256") == 3
    for stay in rec["stays"]:
        if stay["temperatures"]:
            t = stay["temperatures"]
            assert (
                f"min {t['min_c']} °C, max {t['max_c']} °C, mean kinetic temperature {t['mkt_c']} °C" in text
            )
        for f in stay["logger_files"]:
            assert f["sha256"] in text
    assert rec["excursions"][0]["id"] in text and rec["excursions"][0]["disposition"]["reason"] in text
    assert "Thawed by" in text and "Used for participant WUH01-001" in text
    assert re.search(r"page 1 of \d+", text)


def test_a_photo_tampered_with_at_the_hub_reads_mismatch_in_the_kit_pdf(hub_copy, tmp_path):
    import pyrage
    from wardcrf.photos import archive

    from wardcrf import devicekeys
    from wardcrf.site import Site

    rec = record_json(hub_copy, tmp_path, "--kit", KIT)
    sheet = rec["steps"][0]["photos"][0]["sha256"]  # the courier's delivery sheet
    s = Site.open(hub_copy).unlock("admin", PASSWORD)
    try:
        loc = archive.locate(s.store, sheet)
        assert loc is not None  # the hub keeps it in the ward's bundle
        plain = bytearray(archive._decrypted(s.store, loc.bundle))
        # An insider with the hub's identity re-encrypts the kept bundle with one byte of the photo changed.
        plain[loc.offset + loc.size // 2] ^= 0xFF
        device = s.store.scalar("SELECT device FROM site WHERE id = 1")
        identity = pyrage.x25519.Identity.from_str(devicekeys.load(s.store, device).age_identity)
    finally:
        s.close()
    kept = hub_copy / "sync" / loc.bundle
    kept.write_bytes(pyrage.encrypt(bytes(plain), [identity.to_public()]))

    text = pdf_text(hub_copy, tmp_path / "tampered.pdf", "--kit", KIT)
    assert "MISMATCH" in text and sheet in text
    assert text.count("intact: the stored original re-hashes to this SHA-256") == 2  # the other two
    after = record_json(hub_copy, tmp_path, "--kit", KIT)
    assert after["photos_not_intact"] == [sheet]
    assert next(p for p in after["photos"] if p["sha256"] == sheet)["status"] == "MISMATCH"


def test_ward_kit_record_says_each_record_was_created_here(sites, tmp_path):
    ward, _hub = sites
    rec = record_json(ward, tmp_path, "--kit", KIT)
    assert rec["source"] == "ward"
    assert all(s["arrival"]["text"].startswith("created on this device") for s in rec["steps"])
    assert all("bundle" not in s["arrival"] for s in rec["steps"])


def test_lot_and_shipment_records_list_their_kits(sites, tmp_path):
    ward, hub = sites
    lot = record_json(hub, tmp_path, "--lot", "HAMSC-2003-01")
    kits = [k["kit"] for k in lot["kits"]]
    assert KIT in kits and len(kits) == lot["lot"]["quantity"]
    assert {r["kit"] for r in lot["kit_records"]} == set(kits)
    used = next(k for k in lot["kits"] if k["kit"] == KIT)
    assert used["state"] == "used" and used["complete"]
    shipper = lot["kit_records"][0]["steps"][0]["shipment"]["shipper_id"]
    ship = record_json(ward, tmp_path, "--shipment", shipper)
    assert [r["shipper_id"] for r in ship["receipts"]] == [shipper]
    assert sorted(k["kit"] for k in ship["kits"]) == sorted(ship["receipts"][0]["kits"])
    by_event = record_json(ward, tmp_path, "--shipment", ship["receipts"][0]["event_id"])
    assert [k["kit"] for k in by_event["kits"]] == [k["kit"] for k in ship["kits"]]
    text = pdf_text(hub, tmp_path / "lot.pdf", "--lot", "HAMSC-2003-01")
    assert "Custody record of lot HAMSC-2003-01" in text and f"{KIT}: used" in text


def test_custody_record_refusals_write_nothing(sites, tmp_path):
    ward, _hub = sites
    cases = [
        (("--lot", "NOPE"), 1, "unknown lot NOPE"),
        (("--shipment", "NOPE"), 1, "unknown shipment NOPE"),
        (("--kit", "NOPE-9"), 1, "unknown kit NOPE-9"),
        (("--kit", KIT, "--lot", "HAMSC-2003-01"), 2, "--kit and --lot"),
    ]
    for args, want, words in cases:
        code, _, err = run(ward, "report", "audit", *args, "--out", str(tmp_path / "x.json"))
        assert code == want and words in err, (args, err)
    code, _, err = run(ward, "report", "audit", "-p", "WUH01-001", "--out", str(tmp_path / "x.json"))
    assert code == 2 and ".pdf" in err
    code, _, err = run(ward, "report", "audit", "--kit", KIT, "--out", str(tmp_path / "x.txt"))
    assert code == 2 and ".json" in err
    assert not list(tmp_path.iterdir())


def test_json_is_the_pdf_content_without_images(sites, tmp_path):
    ward, _hub = sites
    out = tmp_path / "k.json"
    code, _, err = run(ward, "report", "audit", "--kit", KIT, "--out", str(out))
    assert code == 0, err
    raw = out.read_text(encoding="utf-8")
    assert "_thumbnails" not in raw and "thumbnail" not in raw
    data = json.loads(raw)
    assert data["schema"] == "wardcrf.custody-record/1"
    assert hashlib.sha256(raw.encode()).hexdigest()  # plain UTF-8 text
