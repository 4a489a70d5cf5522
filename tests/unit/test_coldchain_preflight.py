"""Check before you sign (issue 14, finding 5): every rule of a custody step runs before a password.

`services.preflight` runs the receipt or handover service without passwords
inside a transaction it rolls back: the refusal a save would give, in the
same words, and nothing kept (no event, no photo, no logger file).
"""

from __future__ import annotations

import pytest
from test_coldchain_custody import ARRIVE, OUT, SIGNERS, STORE, iso, setup_kits

from wardcrf.coldchain import services
from wardcrf.errors import Refused, UsageError


def _counts(s) -> tuple[int, int]:
    events = int(s.store.scalar("SELECT count(*) FROM events"))
    photos = int(s.store.scalar("SELECT count(*) FROM photos") or 0)
    return events, photos


def _handover(**extra):
    args = {
        "kits": ["K001"],
        "at": iso(OUT),
        "from_location": "FRZ-1",
        "to_location": "bedside:P-001",
        "from_user": "pharmacist",
        "to_user": "clinician",
    }
    args.update(extra)
    return args


def test_a_handover_that_passes_is_not_kept_and_says_who_signs(session_for, tmp_path):
    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)
    before = _counts(ph)
    got = services.preflight(ph, services.record_handover, **_handover())
    assert got.pending_signatures == ["pharmacist (handed over)", "clinician (received)"]
    assert _counts(ph) == before
    services.record_handover(ph, **_handover(), passwords=SIGNERS)  # and it saves as checked


def test_custody_ordering_refused_before_anyone_signs_in_the_saves_words(session_for, tmp_path):
    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)
    before = _counts(ph)
    early = _handover(at=iso(STORE))  # not after its last custody step
    with pytest.raises(Refused, match="is not after its last custody step") as checked:
        services.preflight(ph, services.record_handover, **early)
    with pytest.raises(Refused) as saved:
        services.record_handover(ph, **early, passwords=SIGNERS)
    assert checked.value.message == saved.value.message
    assert _counts(ph) == before


def test_a_photo_that_is_not_an_image_refused_before_anyone_signs(session_for, tmp_path):
    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)
    sheet = tmp_path / "sheet.jpg"
    sheet.write_text("not a picture")
    before = _counts(ph)
    with pytest.raises(Refused, match=r"sheet\.jpg"):
        services.preflight(
            ph,
            services.record_handover,
            **_handover(to_user=None, to_external="Porter"),
            photos=[f"@{sheet}"],
        )
    assert _counts(ph) == before


def test_a_good_photo_is_checked_and_not_kept(session_for, tmp_path):
    from PIL import Image

    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)
    sheet = tmp_path / "sheet.jpg"
    Image.new("RGB", (64, 48), "white").save(sheet, "JPEG")
    before = _counts(ph)
    blobs = int(ph.store.scalar("SELECT count(*) FROM photo_blobs"))
    handover = _handover(to_user=None, to_external="Porter")
    got = services.preflight(ph, services.record_handover, **handover, photos=[f"@{sheet}"])
    assert got.pending_signatures == ["pharmacist (handed over)"]
    assert _counts(ph) == before
    assert int(ph.store.scalar("SELECT count(*) FROM photo_blobs")) == blobs


def test_a_receipt_without_logger_metadata_refused_before_anyone_signs(session_for, tmp_path):
    ph = session_for("pharmacist")
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    before = _counts(ph)
    receipt = {
        "lot": "LOT7",
        "product": "haMSC-Exos",
        "expiry": "2021-03-31",
        "release_ref": "QP-7",
        "quantity": 1,
        "kits": ["K701"],
        "shipper_id": "SH1",
        "received_at": iso(ARRIVE),
        "to_location": "pharmacy",
        "delivered_by_user": "coordinator",
        "dry_ice": True,
        "container_intact": True,
        "product_frozen": True,
    }
    with pytest.raises(UsageError, match="logger serial"):
        services.preflight(ph, services.receive_lot, **receipt)
    assert _counts(ph) == before
    got = services.preflight(ph, services.receive_lot, **receipt, logger_serial="LG-7")
    assert got.pending_signatures == ["coordinator (handed over)", "pharmacist (received)"]
    assert _counts(ph) == before
    assert services.lot_info(ph.store, "LOT7") is None  # the lot is not registered either
