"""Cold-chain CLI, logger import as evidence, audit checks and db rebuild."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from wardcrf import projections
from wardcrf.coldchain import evidence, samples
from wardcrf.site import Site

PW = "test-password-1"
ENV = {f"WARDCRF_PASSWORD_{u.upper()}": PW for u in ("investigator", "clinician", "coordinator")}
T0 = datetime(2020, 3, 15, 8, 0)


def freezer(tmp_path, name="frz.txt", start=T0, hours=30, hot_at: int | None = None, fmt="fridgetag"):
    n = hours * 12
    temps = [-20.0] * n
    if hot_at is not None:
        temps[hot_at : hot_at + 3] = [-14.0, -12.5, -14.5]
    rows = samples.series(start, 5, temps)
    raw = {"fridgetag": samples.fridgetag, "elitech": samples.elitech, "csv": samples.csv}[fmt](rows)
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def base(cli, tmp_path):
    assert (
        cli(
            "coldchain", "add-unit", "FRZ-1", "--name", "freezer", "--location", "ward 3", user="pharmacist"
        ).code
        == 0
    )
    r = cli(
        "coldchain",
        "add-lot",
        "LOT1",
        "--product",
        "haMSC-Exos",
        "--expiry",
        "2021-03-31",
        "--release-ref",
        "QP-1",
        "--quantity",
        "2",
        "-k",
        "K001",
        "-k",
        "K002",
        user="pharmacist",
    )
    assert r.code == 0, r.err
    r = cli(
        "coldchain",
        "receive",
        "--shipper",
        "SH1",
        "-k",
        "K001",
        "-k",
        "K002",
        "--at",
        "2020-03-15T08:00",
        "--to",
        "pharmacy",
        "--dry-ice",
        "--intact",
        "--frozen",
        "--courier-user",
        "coordinator",
        "--logger-serial",
        "LG-1",
        user="pharmacist",
        env=ENV,
    )
    assert r.code == 0, r.err
    r = cli(
        "coldchain",
        "handover",
        "-k",
        "K001",
        "-k",
        "K002",
        "--at",
        "2020-03-15T08:15",
        "--from",
        "pharmacy",
        "--to",
        "FRZ-1",
        "--from-user",
        "pharmacist",
        "--to-user",
        "investigator",
        user="pharmacist",
        env=ENV,
    )
    assert r.code == 0, r.err


def test_full_cli_flow_custody_status_audit(cli, tmp_path):
    base(cli, tmp_path)
    r = cli("coldchain", "import-logger", str(freezer(tmp_path)), "--unit", "FRZ-1", user="pharmacist")
    assert r.code == 0, r.err
    assert "Imported 360 readings" in r.out and "MKT -20.0" in r.out
    r = cli(
        "coldchain",
        "handover",
        "-k",
        "K001",
        "--at",
        "2020-03-16T08:15",
        "--from",
        "FRZ-1",
        "--to",
        "bedside:P-001",
        "--from-user",
        "pharmacist",
        "--to-user",
        "clinician",
        user="pharmacist",
        env=ENV,
    )
    assert r.code == 0, r.err
    r = cli(
        "coldchain",
        "thaw",
        "K001",
        "--start",
        "2020-03-16T08:20",
        "--end",
        "2020-03-16T08:45",
        user="clinician",
    )
    assert r.code == 0, r.err
    r = cli("coldchain", "custody", "K001", "--at", "2020-03-16T09:00", "--json", user="auditor")
    assert r.code == 0, r.err
    chain = json.loads(r.out)[0]
    assert chain["complete"] and [ln["kind"] for ln in chain["links"]][:2] == ["receipt", "stay"]
    r = cli("coldchain", "custody", "LOT1", user="auditor")
    assert r.code == 0 and "kit K002" in r.out and "signed received by Investigator User" in r.out
    r = cli("coldchain", "status", "--json", user="auditor")
    st = json.loads(r.out)
    assert st["units"][0]["kits"] == ["K002"] and st["quarantined_kits"] == []
    assert st["units"][0]["last_reading"]["temp_c"] == -20.0
    r = cli("audit", "handovers", "--json", user="auditor")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["ok"] and len(report["transfers"]) == 3
    assert all(s["state"] == "valid" for t in report["transfers"] for s in t["signatures"])
    assert report["logger_files"][0]["state"] == "ok"
    r = cli("audit", "verify", user="auditor")
    assert r.code == 0 and "cold-chain logger files: 1 checked" in r.out


def test_excursion_cli_and_disposition(cli, tmp_path):
    base(cli, tmp_path)
    cli(
        "coldchain", "import-logger", str(freezer(tmp_path, hot_at=100)), "--unit", "FRZ-1", user="pharmacist"
    )
    r = cli("coldchain", "excursions", "--json", user="auditor")
    exc = json.loads(r.out)
    assert len(exc) == 1 and exc[0]["duration_min"] == 15 and exc[0]["max_c"] == -12.5
    assert exc[0]["awaiting_disposition"] == ["K001", "K002"]
    r = cli("coldchain", "custody", "K001", user="auditor")
    assert r.code == 1 and "quarantined" in r.err
    r = cli(
        "coldchain",
        "disposition",
        exc[0]["id"],
        "--decision",
        "release",
        "--reason",
        "within stability",
        user="clinician",
    )
    assert r.code == 1 and "may not" in r.err
    r = cli(
        "coldchain",
        "disposition",
        exc[0]["id"],
        "--decision",
        "release",
        "--reason",
        "within stability",
        user="pharmacist",
    )
    assert r.code == 0, r.err
    assert json.loads(cli("coldchain", "status", "--json").out)["quarantined_kits"] == []


def test_import_refusals_save_nothing(cli, tmp_path, session_for):
    base(cli, tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"timestamp,temp\n2020-03-15T08:00:00,-20\n2020-03-15T08:05:00,oops\n")
    r = cli("coldchain", "import-logger", str(bad), "--unit", "FRZ-1", user="pharmacist")
    assert r.code == 1 and "line 3" in r.err and "nothing imported" in r.err  # a refused file: 1
    r = cli("coldchain", "import-logger", str(bad), "--unit", "FRZ-9", user="pharmacist")
    assert r.code == 1 and "unknown storage unit" in r.err
    r = cli("coldchain", "import-logger", str(tmp_path / "missing.txt"), "--unit", "FRZ-1", user="pharmacist")
    assert r.code == 2 and "cannot read" in r.err
    s = session_for("pharmacist")
    assert s.store.scalar("SELECT count(*) FROM cc_evidence") == 0
    assert s.store.scalar("SELECT count(*) FROM cc_readings") == 0
    good = freezer(tmp_path, fmt="elitech")
    assert cli("coldchain", "import-logger", str(good), "--unit", "FRZ-1", user="pharmacist").code == 0
    r = cli("coldchain", "import-logger", str(good), "--unit", "FRZ-1", user="pharmacist")
    assert r.code == 1 and "already imported" in r.err
    # An overlapping file that agrees adds only its new readings...
    more = freezer(tmp_path, name="more.csv", start=T0 + timedelta(hours=29), hours=3, fmt="csv")
    r = cli("coldchain", "import-logger", str(more), "--unit", "FRZ-1", "--json", user="pharmacist")
    assert r.code == 0, r.err
    assert json.loads(r.out)["new_readings"] == 24
    # ...one that disagrees is refused whole.
    clash = tmp_path / "clash.csv"
    clash.write_bytes(b"2020-03-15T08:00:00,-19.0\n2020-03-15T08:05:00,-20.0\n")
    r = cli("coldchain", "import-logger", str(clash), "--unit", "FRZ-1", user="pharmacist")
    assert r.code == 1 and "disagree" in r.err
    r = cli("coldchain", "import-logger", str(good), "--unit", "FRZ-1", user="auditor")
    assert r.code == 1 and "may not" in r.err


def test_tampered_logger_file_fails_audit(cli, tmp_path, site: Site):
    base(cli, tmp_path)
    cli("coldchain", "import-logger", str(freezer(tmp_path)), "--unit", "FRZ-1", user="pharmacist")
    s = Site.open(site.data_dir).unlock("admin", PW)
    try:
        digest = s.store.scalar("SELECT sha256 FROM cc_evidence")
        assert evidence.read(s.store, digest).startswith(b"Device:")
        with pytest.raises(Exception, match="never change"):
            s.store.execute("UPDATE cc_evidence SET data = ? WHERE sha256 = ?", (b"forged", digest))
        s.store.execute("DROP TRIGGER cc_evidence_no_update")  # an attacker with the raw key
        s.store.execute("UPDATE cc_evidence SET data = ? WHERE sha256 = ?", (b"forged", digest))
        _n, diffs = projections.check(s.store)
        # The projections still match the log; the readings index cannot be re-derived from a forged file.
        assert [(d.table, "was altered" in d.what) for d in diffs] == [("cc_readings", True)]
    finally:
        s.close()
    r = cli("audit", "verify", user="auditor")
    assert r.code == 1 and "was altered" in r.out
    r = cli("audit", "handovers", user="auditor")
    assert r.code == 1 and "altered" in r.out


def test_changed_signature_fails_handover_audit(cli, tmp_path, session_for):
    base(cli, tmp_path)
    s = session_for("pharmacist")
    from wardcrf import records

    ev = s.store.scalar("SELECT event_id FROM cc_transfers WHERE kind = 'handover'")
    records.amend(s, ev, {"condition": "relabelled"}, reason="condition omitted")
    r = cli("audit", "handovers", "--json", user="auditor")
    assert r.code == 1
    report = json.loads(r.out)
    states = [sg["state"] for t in report["transfers"] if t["event_id"] == ev for sg in t["signatures"]]
    assert states == ["changed since signed", "changed since signed"]


def test_sign_later_then_sign(cli, tmp_path):
    base(cli, tmp_path)
    cli("coldchain", "import-logger", str(freezer(tmp_path)), "--unit", "FRZ-1", user="pharmacist")
    r = cli(
        "coldchain",
        "handover",
        "-k",
        "K001",
        "--at",
        "2020-03-16T08:15",
        "--from",
        "FRZ-1",
        "--to",
        "bedside",
        "--from-user",
        "pharmacist",
        "--to-user",
        "clinician",
        "--sign-later",
        user="pharmacist",
    )
    assert r.code == 0 and "awaiting signature: clinician (received)" in r.out
    assert "Recorded handover of 1 kit(s) — event" in r.out
    ev = r.out.split("event ")[1].split()[0]
    assert cli("audit", "handovers", user="auditor").code == 1
    assert cli("coldchain", "sign", ev, user="clinician").code == 0
    assert cli("audit", "handovers", user="auditor").code == 0


def test_manual_reading_and_usage_errors(cli, tmp_path):
    base(cli, tmp_path)
    r = cli("coldchain", "reading", "FRZ-1", "--at", "2020-03-15T12:00", "--temp", "-9.5", user="pharmacist")
    assert r.code == 0, r.err
    exc = json.loads(cli("coldchain", "excursions", "--json").out)
    assert exc[0]["kind"] == "manual" and exc[0]["awaiting_disposition"] == ["K001", "K002"]
    r = cli("coldchain", "reading", "FRZ-1", "--at", "15/03/2020", "--temp", "-20", user="pharmacist")
    assert r.code == 2 and "invalid time" in r.err
    r = cli(
        "coldchain", "disposition", exc[0]["id"], "--decision", "keep", "--reason", "x", user="pharmacist"
    )
    assert r.code == 2 and "allowed: release, discard" in r.err
    r = cli(
        "coldchain",
        "add-lot",
        "LOT2",
        "--product",
        "p",
        "--expiry",
        "2021-01-01",
        "--release-ref",
        "r",
        "--quantity",
        "1",
        "-k",
        "K001",
        user="pharmacist",
    )
    assert r.code == 1 and "already registered in lot LOT1" in r.err


def test_rebuild_reproduces_cold_chain_projections(cli, tmp_path):
    base(cli, tmp_path)
    cli("coldchain", "import-logger", str(freezer(tmp_path, hot_at=50)), "--unit", "FRZ-1", user="pharmacist")
    cli("coldchain", "reading", "FRZ-1", "--at", "2020-03-15T12:00", "--temp", "-21", user="pharmacist")
    exc = json.loads(cli("coldchain", "excursions", "--json").out)
    cli(
        "coldchain",
        "disposition",
        exc[0]["id"],
        "--decision",
        "discard",
        "--reason",
        "too warm",
        "-k",
        "K002",
        user="investigator",
    )
    before = cli("coldchain", "custody", "LOT1", "--json").out
    r = cli("db", "rebuild", "--check")
    assert r.code == 0, r.err
    assert cli("db", "rebuild").code == 0
    assert cli("coldchain", "custody", "LOT1", "--json").out == before
    assert json.loads(cli("coldchain", "status", "--json").out)["quarantined_kits"] == [
        {"kit": "K001", "excursion": exc[0]["id"]}
    ]


def test_receive_from_external_courier_with_photo_and_transit_log(cli, tmp_path):
    from wardcrf.coldchain import scenario

    cli(
        "coldchain",
        "add-lot",
        "LOT1",
        "--product",
        "p",
        "--expiry",
        "2021-03-31",
        "--release-ref",
        "QP",
        "--quantity",
        "1",
        "-k",
        "K001",
        user="pharmacist",
    )
    sheet = scenario.sheet_photo(tmp_path, "delivery")
    transit = tmp_path / "transit.txt"
    warm = [-70.0] * 10 + [-12.0, -11.0] + [-70.0] * 5
    transit.write_bytes(
        samples.fridgetag(samples.series(T0 - timedelta(hours=3), 10, warm), serial="100800001215")
    )
    args = [
        "coldchain",
        "receive",
        "--shipper",
        "SH1",
        "-k",
        "K001",
        "--at",
        "2020-03-15T08:00",
        "--to",
        "pharmacy",
        "--dry-ice",
        "--intact",
        "--frozen",
        "--courier",
        "Li Wei, SF Cold Chain",
    ]
    r = cli(*args, user="pharmacist")
    assert r.code == 1 and "attach a photo of the delivery sheet" in r.err
    r = cli(
        *args,
        "--logger-file",
        str(transit),
        "--logger-serial",
        "999",
        "--photo",
        f"@{sheet}",
        user="pharmacist",
    )
    assert r.code == 1 and "differs from the serial in the file (100800001215)" in r.err
    r = cli(*args, "--logger-file", str(transit), "--photo", f"@{sheet}", user="pharmacist")
    assert r.code == 0, r.err
    assert "Recorded receipt of 1 kit(s) — event" in r.out
    assert "transit log shows 1 excursion(s) above -15.0 °C" in r.out
    exc = json.loads(cli("coldchain", "excursions", "--json").out)
    assert (
        exc[0]["kind"] == "transit"
        and exc[0]["max_c"] == -11.0
        and exc[0]["awaiting_disposition"] == ["K001"]
    )
    report = json.loads(cli("audit", "handovers", "--json", user="auditor").out)
    t = report["transfers"][0]
    assert report["ok"] and t["photos"][0]["state"] == "ok" and t["logger_file"]["state"] == "ok"
    assert t["from"] == {"party": "Li Wei, SF Cold Chain", "user": None, "location": "shipper:SH1"}
