"""A full chain with photos: external courier, signed sheets, and photo tampering found."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wardcrf.coldchain import custody, reports, scenario, services
from wardcrf.errors import Refused

PW = "test-password-1"
SIGNERS = {u: PW for u in ("pharmacist", "investigator", "clinician")}
TZ = ZoneInfo("Asia/Shanghai")
DOSES = [datetime(2020, 3, 17, 9, 0, tzinfo=TZ), datetime(2020, 3, 18, 9, 0, tzinfo=TZ)]


def test_scenario_kits_pass_the_gate_and_the_audit(session_for, tmp_path):
    ph = session_for("pharmacist")
    ready = scenario.ready_kits(
        ph,
        SIGNERS,
        lot="LOT-A1",
        kits=["KIT-1", "KIT-2"],
        dose_times=DOSES,
        workdir=tmp_path,
        bedside=session_for("clinician"),
    )
    for kit, when in zip(ready.kits, DOSES, strict=True):
        custody.check_dose(ph.store, kit, when)
    audit = reports.handover_audit(session_for("auditor"))
    assert audit["ok"], json.dumps(audit, indent=1)
    receipt = next(t for t in audit["transfers"] if t["kind"] == "receipt")
    assert receipt["from"]["user"] is None and receipt["photos"][0]["state"] == "ok"
    assert receipt["logger_file"]["state"] == "ok"
    assert [s["meaning"] for s in receipt["signatures"]] == ["received"]


def test_tampered_photo_breaks_chain_and_audit(session_for, tmp_path):
    ph = session_for("pharmacist")
    ready = scenario.ready_kits(
        ph, SIGNERS, lot="LOT-A1", kits=["KIT-1"], dose_times=DOSES[:1], workdir=tmp_path
    )
    ref = json.loads(ph.store.scalar("SELECT photos FROM cc_transfers WHERE event_id = ?", (ready.receipt,)))[
        0
    ]
    ph.store.execute("DROP TRIGGER photo_blobs_no_update")  # an attacker with the raw key
    ph.store.execute(
        "UPDATE photo_blobs SET data = ? WHERE sha256 = ?", (b"forged", ref.removeprefix("sha256:"))
    )
    with pytest.raises(Refused, match=r"photo sha256:.* is altered"):
        custody.check_dose(ph.store, "KIT-1", DOSES[0])
    assert not reports.handover_audit(session_for("auditor"))["ok"]


def test_external_party_with_photo_is_accepted(session_for, tmp_path):
    ph = session_for("pharmacist")
    scenario.ready_kits(ph, SIGNERS, lot="LOT-A1", kits=["KIT-1"], dose_times=DOSES[:1], workdir=tmp_path)
    sheet = scenario.sheet_photo(tmp_path, "porter")
    out = DOSES[0] + timedelta(hours=2)
    h = services.record_handover(
        ph,
        kits=["KIT-1"],
        at=out.isoformat(),
        from_location="bedside",
        to_location="disposal",
        from_user="pharmacist",
        to_external="Porter Wang",
        photos=[f"@{sheet}"],
        passwords=SIGNERS,
    )
    assert h.pending_signatures == []
    chain = custody.chain(ph.store, "KIT-1")
    assert chain.complete, chain.problems


def test_short_freezer_excursion_quarantines_until_released(session_for, tmp_path):
    ph = session_for("pharmacist")
    hot = (DOSES[0] - timedelta(hours=10), 15)
    scenario.ready_kits(
        ph, SIGNERS, lot="LOT-A1", kits=["KIT-1"], dose_times=DOSES[:1], workdir=tmp_path, excursion=hot
    )
    with pytest.raises(Refused, match="quarantined"):
        custody.check_dose(ph.store, "KIT-1", DOSES[0])
    xid = reports.excursions(ph)[0]["id"]
    services.record_disposition(
        ph, xid, decision="release", reason="15 min at -13.5 °C: within stability data"
    )
    custody.check_dose(ph.store, "KIT-1", DOSES[0])


def test_ready_kit_per_dose_shares_the_freezer_log(session_for, tmp_path):
    ph = session_for("pharmacist")
    for i, when in enumerate(DOSES):
        scenario.ready_kit(ph, SIGNERS, f"KIT-P1-{i + 1}", when, workdir=tmp_path)
    for i, when in enumerate(DOSES):
        custody.check_dose(ph.store, f"KIT-P1-{i + 1}", when)
    assert ph.store.scalar("SELECT count(*) FROM cc_logger_files") == 2
    with pytest.raises(ValueError, match="already has a custody record"):
        scenario.ready_kit(ph, SIGNERS, "KIT-P1-1", DOSES[0], workdir=tmp_path)


def test_ready_kit_out_of_chronological_order(session_for, tmp_path):
    ph = session_for("pharmacist")
    scenario.ready_kit(ph, SIGNERS, "KIT-B", DOSES[1], workdir=tmp_path)
    scenario.ready_kit(ph, SIGNERS, "KIT-A", DOSES[0] - timedelta(days=3), workdir=tmp_path)
    custody.check_dose(ph.store, "KIT-A", DOSES[0] - timedelta(days=3))
    custody.check_dose(ph.store, "KIT-B", DOSES[1])
