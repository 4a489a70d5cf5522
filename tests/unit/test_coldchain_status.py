"""Read models for the ward app: unit status, kit states, pending signatures, readings, receive_lot."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from test_coldchain_custody import (
    OUT,
    PW,
    SIGNERS,
    STORE,
    dose_epoch,
    freezer_file,
    iso,
    setup_kits,
    to_bedside,
)
from typed_support import assert_shape

from wardcrf import records
from wardcrf.coldchain import custody, reports, services
from wardcrf.errors import AuthError, PermissionDenied, Refused, ValidationFailed


@pytest.fixture
def ph(session_for):
    return session_for("pharmacist")


def epoch_local(dt: datetime) -> int:
    return int(datetime.fromisoformat(iso(dt) + "+08:00").timestamp())


def only(rows, unit="FRZ-1"):
    return next(r for r in rows if r["unit"] == unit)


def test_unit_status_in_range_then_stale(ph, tmp_path):
    setup_kits(ph, tmp_path)
    last = epoch_local(OUT + timedelta(minutes=30))
    st = only(reports.unit_status(ph.store, now=last + 600))
    assert st["status"] == "in range"
    assert st["last_reading"]["t"] == last and st["last_reading"]["temp_c"] == -20.0
    assert st["last_reading"]["source"] == "logger"
    assert st["in_range"] is True and st["open_excursions"] == [] and st["unmonitored"] is None
    assert st["last_reading"]["in_range"] is True and st["range_c"] == [-25.0, -15.0]
    stale = only(reports.unit_status(ph.store, now=last + reports.STALE_AFTER_S + 1))
    assert stale["status"] == "unmonitored"
    assert stale["unmonitored"] == {"start": st["last_reading"]["at"], "end": None}


def test_unit_status_without_readings_is_unmonitored(ph, tmp_path):
    setup_kits(ph, tmp_path, log=False)
    st = only(reports.unit_status(ph.store, now=dose_epoch()))
    assert st["status"] == "unmonitored" and st["last_reading"] is None and st["in_range"] is None


def test_unit_status_logging_gap_in_the_last_day(ph, tmp_path):
    skip = (datetime(2020, 3, 16, 2, 0), datetime(2020, 3, 16, 3, 0))
    setup_kits(ph, tmp_path, skip=skip)
    st = only(reports.unit_status(ph.store, now=epoch_local(OUT + timedelta(minutes=40))))
    assert st["status"] == "unmonitored"
    assert st["unmonitored"]["end"] == "2020-03-15T19:00:00Z"  # 03:00 local


def test_unit_status_open_and_awaiting_excursions(ph, tmp_path):
    hot = (datetime(2020, 3, 15, 22, 0), datetime(2020, 3, 15, 22, 20))
    setup_kits(ph, tmp_path, hot=hot)
    now = epoch_local(OUT + timedelta(minutes=40))
    st = only(reports.unit_status(ph.store, now=now))
    # closed excursion, kits still quarantined: the unit is in range, the excursion awaits
    assert st["status"] == "in range"
    assert [x["id"] for x in st["open_excursions"]] == ["FRZ-1/2020-03-15T14:00:00Z"]
    assert st["awaiting_disposition"] == ["FRZ-1/2020-03-15T14:00:00Z"]
    assert st["open_excursions"][0]["awaiting_disposition"] == ["K001", "K002"]
    # a file that ends out of range leaves an open excursion
    start = OUT + timedelta(minutes=35)
    services.import_logger(
        ph,
        freezer_file(
            tmp_path,
            start,
            start + timedelta(minutes=20),
            hot=(start, start + timedelta(hours=1)),
            name="b.txt",
        ),
        "FRZ-1",
    )
    st = only(reports.unit_status(ph.store, now=now + 3600))
    assert st["status"] == "open excursion" and st["in_range"] is False
    assert [x["open"] for x in st["open_excursions"]] == [False, True]


def test_manual_reading_out_of_range_is_an_open_excursion_status(ph, tmp_path):
    setup_kits(ph, tmp_path)
    at = OUT + timedelta(minutes=35)
    services.record_reading(ph, "FRZ-1", at=iso(at), temp_c=-9.0)
    st = only(reports.unit_status(ph.store, now=epoch_local(at) + 60))
    assert st["status"] == "open excursion" and st["last_reading"]["source"] == "manual"
    assert st["last_reading"]["in_range"] is False
    # the manual excursion quarantines the kits in the unit until dispositions
    (x,) = st["open_excursions"]
    assert x["kind"] == "manual" and x["awaiting_disposition"] == ["K001", "K002"]
    for kit in ("K001", "K002"):
        services.record_disposition(ph, x["id"], decision="release", reason="door ajar 1 min", kits=[kit])
    assert only(reports.unit_status(ph.store, now=epoch_local(at) + 60))["open_excursions"] == []


def test_kit_states(ph, tmp_path, session_for):
    hot = (datetime(2020, 3, 15, 22, 0), datetime(2020, 3, 15, 22, 20))
    setup_kits(ph, tmp_path, kits=("K001", "K002", "K003"), hot=hot)
    services.add_lot(ph, "LOT2", product="p", expiry="2021-03-31", release_ref="r", kits=["K900"], quantity=1)
    states = {k["kit"]: k["state"] for k in reports.kit_states(ph.store)}
    assert states == {
        "K001": "quarantined",
        "K002": "quarantined",
        "K003": "quarantined",
        "K900": "awaiting receipt",
    }
    xid = reports.excursions(ph)[0]["id"]
    services.record_disposition(ph, xid, decision="release", reason="stability data", kits=["K001", "K003"])
    services.record_disposition(ph, xid, decision="discard", reason="sponsor", kits=["K002"])
    to_bedside(ph)
    records.submit(
        session_for("clinician"),
        "dose",
        {"kit_id": "K001", "start": "2020-03-16T01:00:00Z"},
        subject="participant:P-001",
    )
    rows = {k["kit"]: k for k in reports.kit_states(ph.store)}
    assert {k: r["state"] for k, r in rows.items()} == {
        "K001": "used",
        "K002": "discarded",
        "K003": "in stock",
        "K900": "awaiting receipt",
    }
    assert rows["K003"]["location"] == "FRZ-1" and rows["K900"]["location"] is None


def test_pending_signatures_then_the_other_party_signs_in_their_own_name(ph, tmp_path):
    setup_kits(ph, tmp_path)
    assert reports.pending_signatures(ph.store) == []
    h = services.record_handover(
        ph,
        kits=["K001"],
        at=iso(OUT),
        from_location="FRZ-1",
        to_location="bedside",
        from_user="pharmacist",
        to_user="clinician",
        passwords={"pharmacist": PW},
    )
    assert h.pending_signatures == ["clinician (received)"]
    pending = reports.pending_signatures(ph.store)
    assert [(p["event_id"], p["user"], p["meaning"], p["state"]) for p in pending] == [
        (h.event.id, "clinician", "received", "missing")
    ]
    with pytest.raises(AuthError, match="wrong password"):
        services.sign_transfer(ph, h.event.id, "wrong-password-1", signer="clinician")
    with pytest.raises(Refused, match="not a party"):
        services.sign_transfer(ph, h.event.id, PW, signer="investigator")
    services.sign_transfer(ph, h.event.id, PW, signer="clinician")
    assert reports.pending_signatures(ph.store) == []
    with pytest.raises(Refused, match="already signed"):
        services.sign_transfer(ph, h.event.id, PW, signer="clinician")


def test_unit_readings_window_summary_and_excursions(ph, tmp_path):
    hot = (datetime(2020, 3, 15, 22, 0), datetime(2020, 3, 15, 22, 20))
    setup_kits(ph, tmp_path, hot=hot)
    services.record_reading(ph, "FRZ-1", at=iso(datetime(2020, 3, 15, 23, 0)), temp_c=-19.0)
    since = epoch_local(datetime(2020, 3, 15, 21, 0))
    until = epoch_local(datetime(2020, 3, 16, 0, 0))
    r = reports.unit_readings(ph.store, "FRZ-1", since=since, until=until)
    assert r["times"][0] == since and r["times"][-1] == until and len(r["times"]) == 37
    assert max(r["temps"]) == -13.0 and (r["low_c"], r["high_c"]) == (-25.0, -15.0)
    assert r["manual"] == [{"t": epoch_local(datetime(2020, 3, 15, 23, 0)), "temp_c": -19.0}]
    assert [x["id"] for x in r["excursions"]] == ["FRZ-1/2020-03-15T14:00:00Z"]
    assert r["summary"]["readings"] == 37 and r["summary"]["max_c"] == -13.0
    empty = reports.unit_readings(ph.store, "FRZ-1", since=0, until=60)
    assert empty["times"] == [] and empty["summary"] is None and empty["excursions"] == []
    with pytest.raises(Refused, match="unknown storage unit"):
        reports.unit_readings(ph.store, "FRZ-9")


def _receipt(**over):
    args = dict(
        lot="lot9",
        product="haMSC-Exos",
        expiry="2021-03-31",
        release_ref="QP-9",
        quantity=2,
        kits=["k901", "K902"],
        shipper_id="SH9",
        received_at=iso(STORE),
        to_location="pharmacy",
        delivered_by_user="coordinator",
        dry_ice=True,
        container_intact=True,
        product_frozen=True,
        logger_serial="LG-1",
        passwords=SIGNERS,
    )
    args.update(over)
    return args


def test_receive_lot_registers_and_receives_together(ph):
    rec = services.receive_lot(ph, **_receipt())
    assert rec.pending_signatures == []
    info = services.lot_info(ph.store, "LOT9")
    assert info["kits"] == ["K901", "K902"] and info["quantity"] == 2
    assert services.lot_info(ph.store, "nope") is None


def test_receive_lot_refused_leaves_no_lot(ph):
    with pytest.raises(AuthError):
        services.receive_lot(ph, **_receipt(passwords={"pharmacist": "wrong-password-1", "coordinator": PW}))
    assert services.lot_info(ph.store, "LOT9") is None
    with pytest.raises(ValidationFailed):
        services.receive_lot(ph, **_receipt(quantity=3))
    assert services.lot_info(ph.store, "LOT9") is None


def test_receive_lot_for_a_registered_lot_checks_its_kits(ph, session_for):
    services.add_lot(
        ph, "LOT9", product="p", expiry="2021-03-31", release_ref="r", kits=["K901", "K902"], quantity=2
    )
    with pytest.raises(Refused, match="not in lot LOT9"):
        services.receive_lot(ph, **_receipt(kits=["K901", "K999"]))
    with pytest.raises(ValidationFailed):
        services.receive_lot(ph, **_receipt(kits=["K901"], quantity=2))
    rec = services.receive_lot(ph, **_receipt(kits=["K901"], quantity=1))
    assert custody.last_step(ph.store, "K901")["event_id"] == rec.event.id
    assert custody.last_step(ph.store, "K902") is None
    with pytest.raises(PermissionDenied):
        services.receive_lot(session_for("auditor"), **_receipt(kits=["K902"], quantity=1))


# -- the read models the cold-chain screens show are what their types say (issue #16) ------------


def test_the_screens_read_models_have_exactly_their_typed_keys(ph, tmp_path):
    """Each is a TypedDict: a key the type does not name (or one it names and the read leaves
    out) would reach a screen unchecked."""
    from typing import get_type_hints

    def keys(td) -> set[str]:
        return set(get_type_hints(td))

    hot = (datetime(2020, 3, 16, 2, 0), datetime(2020, 3, 16, 2, 30))
    setup_kits(ph, tmp_path, hot=hot)  # an excursion, its kits awaiting a disposition
    services.record_handover(  # a receiver who signs later
        ph,
        kits=["K001"],
        at=iso(OUT),
        from_location="FRZ-1",
        to_location="bedside",
        from_user="pharmacist",
        to_user="clinician",
        passwords={"pharmacist": PW},
    )
    [unit] = reports.units(ph)
    assert set(unit) == keys(reports.UnitStatus)
    assert unit["last_reading"] is not None and set(unit["last_reading"]) == keys(reports.LastReading)
    kits = reports.kits(ph)
    assert kits and all(set(k) == keys(reports.KitState) for k in kits)
    [pending] = reports.awaiting_signatures(ph)
    assert set(pending) == keys(reports.PendingSignature)
    [excursion] = reports.excursions(ph)
    assert set(excursion) == keys(reports.ExcursionView)
    assert excursion["kits"] and all(set(k) == keys(reports.AffectedKit) for k in excursion["kits"])
    panel = reports.freezers(ph)
    assert set(panel) == keys(reports.FreezerPanel)
    shown = reports.readings(ph, "FRZ-1")
    assert set(shown) == keys(reports.UnitReadings) and shown["times"]
    assert shown["summary"] is not None and set(shown["summary"]) == keys(reports.ReadingsSummary)
    assert set(reports.unit_defaults(ph)) == keys(reports.UnitDefaults)
    [report] = reports.kit_report(ph, "K002", dose_epoch())
    assert set(report) == keys(reports.KitReport) and report["chain"].kit == "K002"
    assert report["current"] is not None and set(report["current"]) == keys(reports.CurrentStay)
    lot = services.registered_lot(ph, "LOT1")
    assert lot is not None and set(lot) == keys(services.LotInfo) and lot["kits"] == ["K001", "K002"]
    # and all the way down: a kit's stay temperatures, the custody clocks outside a unit, a disposition
    assert_shape(report, reports.KitReport)  # the chain's links too: each detail is a LinkDetail
    assert report["current"]["temperatures"] is not None
    kinds = {link.kind for link in report["chain"].links}
    assert {"receipt", "handover", "stay"} <= kinds, kinds
    assert any(link.detail.get("signatures") for link in report["chain"].links)
    assert_shape(panel, reports.FreezerPanel)
    assert panel["outside_units"], "K001 went to the bedside: its custody clock runs"
    services.record_disposition(
        ph, excursion["id"], decision="release", reason="door ajar 1 min", kits=["K002"]
    )
    [excursion] = reports.excursions(ph)
    assert_shape(excursion, reports.ExcursionView)
    assert [k["disposition"] is not None for k in excursion["kits"]] == [False, True]
