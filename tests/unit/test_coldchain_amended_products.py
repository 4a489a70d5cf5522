"""A product added by a later protocol amendment is judged against the readings imported before it (issue 17).

A logger import judges a unit's readings against the products of the version in force. PALM 1.1
(`tests/palm_pharmacy.py`) adds a 2-8 °C remdesivir solution (`RDVSOL`) to PALM 1.0; the logger file of a
2-30 °C cabinet was imported under 1.0. Loading 1.1 judges that file's readings (and the manual readings)
against RDVSOL: a 12 °C reading is an excursion of RDVSOL, which quarantines a kit of it recorded in the
cabinet at the time (custody entered after the file); readings within 2-8 °C are none.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from palm_pharmacy import amended_model, amended_source
from site_users import PASSWORD

from wardcrf import projections
from wardcrf.coldchain import custody, rejudge, reports, samples, services
from wardcrf.engine import loading, model

SIGNERS = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician", "coordinator")}
ARRIVE = datetime(2020, 3, 15, 8, 0)  # site-local (Asia/Shanghai)
WARM = [5.0, 5.0, 12.0, 12.0, 12.0, 5.0, 5.0]  # within 2-30 °C (the cabinet), above 8 °C for 15 min
COLD = [5.0, 5.5, 6.0, 7.9, 2.0, 5.0, 5.0]  # within 2-8 °C throughout


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="minutes")


def iso_z(local: datetime) -> str:
    return (
        local.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
        .astimezone(ZoneInfo("UTC"))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


@pytest.fixture
def ph(admin, session_for):
    loading.load(admin, model.shipped("palm.toml"))
    pharmacist = session_for("pharmacist")
    services.add_unit(pharmacist, "SHELF", name="2-30 °C cabinet", location="pharmacy", product="RDV")
    return pharmacist


def import_log(ph, tmp_path: Path, name: str, temps: list[float], unit: str = "SHELF") -> None:
    rows = [(ARRIVE + timedelta(minutes=5 * i), t) for i, t in enumerate(temps)]
    path = tmp_path / name
    path.write_bytes(samples.fridgetag(rows))
    services.import_logger(ph, path, unit)


def stock_the_added_product(ph) -> None:
    """A lot of the added product received into the cabinet when the file starts (recorded after it)."""
    services.add_lot(
        ph, "LS", product="RDVSOL", expiry="2021-03-31", release_ref="QP", kits=["S1"], quantity=1
    )
    services.receive_shipment(
        ph,
        shipper_id="SH-S1",
        kits=["S1"],
        received_at=iso(ARRIVE),
        to_location="SHELF",
        delivered_by_user="coordinator",
        dry_ice=False,
        container_intact=True,
        product_frozen=False,
        logger_serial="LG-1",
        passwords=SIGNERS,
    )


def judged_events(store) -> list[dict]:
    from wardcrf.eventlog import Event

    lines = store.execute("SELECT line FROM events WHERE type = ? ORDER BY pos", (rejudge.EVENT_JUDGED,))
    return [Event.from_line(r[0]).body for r in lines]


def rows_of(store, product: str) -> list[dict]:
    return store.rows("SELECT * FROM cc_excursions WHERE product = ? ORDER BY excursion_id", (product,))


def test_a_product_added_later_is_judged_against_the_file_imported_before(admin, ph, tmp_path) -> None:
    import_log(ph, tmp_path, "shelf.txt", WARM)
    assert rows_of(ph.store, "RDVSOL") == []
    loading.load(admin, amended_model())
    [body] = judged_events(ph.store)
    assert (body["unit_id"], body["protocol_id"], body["version"]) == ("SHELF", "PALM", "1.1")
    [judged] = body["products"]
    assert (judged["product"], judged["low_c"], judged["high_c"]) == ("RDVSOL", 2.0, 8.0)
    [found] = judged["excursions"]
    start = ARRIVE + timedelta(minutes=10)
    assert (found["start"], found["max_c"], found["open"]) == (iso_z(start), 12.0, False)
    # The cabinet's kit of the new product, recorded after the file: quarantined by that excursion.
    stock_the_added_product(ph)
    (view,) = reports.excursions(ph)
    assert view["id"] == f"SHELF/{iso_z(start)}/RDVSOL" and view["product"] == "RDVSOL"
    assert view["lots"] == ["LS"] and view["awaiting_disposition"] == ["S1"]
    assert custody.quarantined_kits(ph.store) == [("S1", view["id"])]
    _, differences = projections.check(ph.store)
    assert differences == []


def test_readings_within_the_added_products_range_are_no_excursion(admin, ph, tmp_path) -> None:
    import_log(ph, tmp_path, "shelf.txt", COLD)
    loading.load(admin, amended_model())
    [body] = judged_events(ph.store)
    assert body["products"][0]["product"] == "RDVSOL" and body["products"][0]["excursions"] == []
    stock_the_added_product(ph)
    assert rows_of(ph.store, "RDVSOL") == []
    assert reports.excursions(ph) == [] and custody.quarantined_kits(ph.store) == []


def test_a_manual_reading_before_the_amendment_is_judged_too(admin, ph, tmp_path) -> None:
    import_log(ph, tmp_path, "shelf.txt", COLD)
    at = ARRIVE + timedelta(minutes=12)
    services.record_reading(ph, "SHELF", at=iso(at), temp_c=10.5)  # 2-30 °C: the cabinet's range holds
    assert rows_of(ph.store, "RDVSOL") == []
    loading.load(admin, amended_model())
    [row] = rows_of(ph.store, "RDVSOL")
    assert row["excursion_id"] == f"SHELF/{iso_z(at)}/manual/RDVSOL" and row["kind"] == "manual"
    assert row["detail"] == "manual reading outside 2.0 … 8.0 °C (RDVSOL)"
    stock_the_added_product(ph)
    assert custody.quarantined_kits(ph.store) == [("S1", row["excursion_id"])]


def test_a_unit_kept_at_the_added_products_range_is_not_judged_again(admin, ph, tmp_path) -> None:
    """A 2-8 °C fridge judges its kits by its own range already: no second judgement for RDVSOL there."""
    services.add_unit(ph, "FRG-1", name="fridge", location="pharmacy", product="MAB114")
    import_log(ph, tmp_path, "frg.txt", WARM, unit="FRG-1")
    loading.load(admin, amended_model())
    assert judged_events(ph.store) == []  # the cabinet has no readings, the fridge is at 2-8 °C
    assert rows_of(ph.store, "RDVSOL") == []
    products = ph.store.rows("SELECT product FROM cc_excursions WHERE unit_id = 'FRG-1' ORDER BY product")
    # the fridge's own excursion (product NULL: it covers every 2-8 °C product's kits) and ZMapp's
    assert [x["product"] for x in products] == [None, "ZMAPP"]


def test_a_version_adding_no_product_judges_nothing_again(admin, ph, tmp_path) -> None:
    import_log(ph, tmp_path, "shelf.txt", WARM)
    loading.load(admin, amended_model("1.1"))
    loading.load(admin, amended_model("1.2"))  # the same products: judged already
    assert len(judged_events(ph.store)) == 1
    assert len(rows_of(ph.store, "RDVSOL")) == 1


def test_judging_at_load_needs_no_readings(admin, ph) -> None:
    loading.load(admin, amended_model())
    assert judged_events(ph.store) == []


def test_cli_protocol_load_judges_the_readings_already_imported(ph, tmp_path, cli) -> None:
    import_log(ph, tmp_path, "shelf.txt", WARM)
    path = tmp_path / "palm-1.1.toml"
    path.write_text(amended_source(), encoding="utf-8")
    r = cli("protocol", "load", str(path), user="admin")
    assert r.code == 0, r.err
    assert len(rows_of(ph.store, "RDVSOL")) == 1


def test_a_load_refused_judges_nothing(admin, ph, tmp_path, cli) -> None:
    """Refusal side of the load: the same version twice is refused, and nothing is judged again."""
    import_log(ph, tmp_path, "shelf.txt", WARM)
    loading.load(admin, amended_model())
    path = tmp_path / "palm-1.1.toml"
    path.write_text(amended_source(), encoding="utf-8")
    r = cli("protocol", "load", str(path), user="admin")
    assert r.code == 1 and "already loaded" in r.err
    assert len(judged_events(ph.store)) == 1
