"""Products in the cold chain (issue 17): each lot belongs to a product of the protocol in force, and its
storage range, excursion limits, custody allowances and preparation steps are that product's.

PALM declares a -20 °C product (ZMapp) beside 2-8 °C ones (MAb114, REGN-EB3; not to be frozen) and a
2-30 °C one (remdesivir), so the shipped file is the test protocol. Every rule is tested accepted and
refused; MEXCOVID (one product, format 1) keeps its one range, as the other cold-chain tests assert.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from site_users import PASSWORD

from wardcrf import projections, records
from wardcrf.coldchain import config, custody, reports, samples, scenario, services
from wardcrf.engine import loading, model
from wardcrf.errors import Refused, ValidationFailed

SIGNERS = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician", "coordinator")}
ARRIVE = datetime(2020, 3, 15, 8, 0)  # site-local (Asia/Shanghai) wall times, as the other cold-chain tests
DOSE = datetime(2020, 3, 16, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="minutes")


@pytest.fixture
def palm(admin):
    loading.load(admin, model.shipped("palm.toml"))
    return admin


@pytest.fixture
def ph(session_for):
    return session_for("pharmacist")


def lot(ph, name: str, product: str, kits: list[str], **kw):
    return services.add_lot(
        ph, name, product=product, expiry="2021-03-31", release_ref="QP", kits=kits, quantity=len(kits), **kw
    )


def receive(ph, kits: list[str], to: str, *, frozen: bool, dry_ice: bool | None = None, logger_file=None):
    return services.receive_shipment(
        ph,
        shipper_id="SH-" + kits[0],
        kits=kits,
        received_at=iso(ARRIVE),
        to_location=to,
        delivered_by_user="coordinator",
        dry_ice=frozen if dry_ice is None else dry_ice,
        container_intact=True,
        product_frozen=frozen,
        logger_serial=None if logger_file else "LG-1",
        logger_file=logger_file,
        passwords=SIGNERS,
    )


def log_file(tmp_path: Path, name: str, temps: list[float], start: datetime = ARRIVE) -> Path:
    """A Fridge-tag file of 5-minute readings from `start` (site-local)."""
    rows = [(start + timedelta(minutes=5 * i), t) for i, t in enumerate(temps)]
    path = tmp_path / name
    path.write_bytes(samples.fridgetag(rows))
    return path


def excursion_rows(store) -> list[dict]:
    return store.rows("SELECT * FROM cc_excursions ORDER BY excursion_id")


# -- the products ---------------------------------------------------------------------------------


def test_products_come_from_the_protocol_in_force(admin, palm) -> None:
    found = config.products(palm.store)
    assert list(found) == ["ZMAPP", "RDV", "MAB114", "REGNEB3"]
    assert found["ZMAPP"].range_c == (-25.0, -15.0) and found["ZMAPP"].frozen
    assert [(s.code, s.within_s) for s in found["ZMAPP"].steps] == [("thaw", 86400), ("dilute", 28800)]
    assert found["MAB114"].range_c == (2.0, 8.0) and not found["MAB114"].frozen
    assert found["MAB114"].freezing == "discard" and found["MAB114"].tolerated_s == 0
    assert found["RDV"].range_c == (2.0, 30.0) and found["RDV"].target_c is None
    assert not config.single_range(palm.store)
    assert config.limits(palm.store).source == "protocol PALM 1.0 product ZMAPP"  # a new unit: the first's


def _one_code(store) -> str:
    """The MEXCOVID product's code: format 1 names it by its name; run on its format-2 file (the engine),
    by the file's declared `[[products]] code` (the name is the same, `haMSC-Exos`)."""
    from wardcrf import protocol

    return "HAMSC_EXOS" if protocol.active(store).engine is not None else "haMSC-Exos"


def test_a_format_1_protocol_keeps_its_one_product_and_range(admin) -> None:
    (only,) = config.products(admin.store).values()
    assert (only.code, only.range_c, only.target_c) == (_one_code(admin.store), (-25.0, -15.0), -20.0)
    assert [s.code for s in only.steps] == ["thaw"]
    assert config.single_range(admin.store)
    assert config.limits(admin.store).source.startswith("protocol MEXCOVID")


# -- a lot names its product ----------------------------------------------------------------------


def test_a_lot_names_a_declared_product_by_code_or_name(palm, ph) -> None:
    lot(ph, "LZ", "ZMAPP", ["Z1"])
    lot(ph, "LM", "mab114 (ansuvimab)", ["M1"])  # its name, any case
    lot(ph, "LR", "placeholder label", ["R1"], product_code="RDV")  # the label's wording, the code chosen
    got = {r["lot"]: r["product_code"] for r in ph.store.rows("SELECT lot, product_code FROM cc_lots")}
    assert got == {"LZ": "ZMAPP", "LM": "MAB114", "LR": "RDV"}
    assert config.product_of_kit(ph.store, "M1").code == "MAB114"
    assert services.lot_info(ph.store, "LR")["product_code"] == "RDV"


@pytest.mark.parametrize(
    ("product", "code", "words"),
    [
        ("ZMAPP2", None, "unknown product 'ZMAPP2' (the protocol declares: ZMAPP, RDV, MAB114, REGNEB3)"),
        ("", None, "name the product (one of ZMAPP, RDV, MAB114, REGNEB3)"),
        ("ZMapp", "zmapp", "unknown product code 'zmapp'"),  # a code chosen is exact
        ("x", "NOPE", "unknown product 'NOPE'"),
        ("MAB\x00114", None, "printable text"),
        ("\x1b[31mZMAPP", None, "printable text"),
        ("Z" * 201, None, "at most 200 characters"),
    ],
)
def test_an_unknown_product_is_refused_and_nothing_saved(palm, ph, product, code, words) -> None:
    with pytest.raises(ValidationFailed) as got:
        lot(ph, "LX", product, ["X1"], product_code=code)
    assert words in got.value.problems["product"]
    assert ph.store.one("SELECT 1 FROM cc_lots") is None


def test_a_protocol_with_one_product_defaults_to_it(ph) -> None:
    lot(ph, "L1", "haMSC-Exos 2.0e8 particles", ["K1"])  # the label's wording
    lot(ph, "L2", "", ["K2"])  # nothing named: the one product
    rows = ph.store.rows("SELECT lot, product, product_code FROM cc_lots ORDER BY lot")
    # The one product is implied: the record stays as it always was (no product_code).
    assert [(r["product"], r["product_code"]) for r in rows] == [
        ("haMSC-Exos 2.0e8 particles", None),
        ("haMSC-Exos", None),
    ]
    assert {config.product_of_lot(ph.store, r["lot"]).code for r in rows} == {_one_code(ph.store)}
    # A frozen product's receipt records no arrival_expected either: checked as it always was.
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward")
    assert "arrival_expected" not in receive(ph, ["K1"], "FRZ-1", frozen=True).event.body["data"]


def test_receiving_a_registered_lot_as_another_product_is_refused(palm, ph) -> None:
    lot(ph, "LZ", "ZMAPP", ["Z1"])
    with pytest.raises(ValidationFailed) as got:
        services.receive_lot(
            ph,
            lot="LZ",
            product="MAB114",
            product_code="MAB114",
            expiry="2021-03-31",
            release_ref="QP",
            quantity=1,
            kits=["Z1"],
            shipper_id="SH1",
            received_at=iso(ARRIVE),
            to_location="pharmacy",
            delivered_by_user="coordinator",
            dry_ice=True,
            container_intact=True,
            product_frozen=True,
            logger_serial="LG-1",
            passwords=SIGNERS,
        )
    assert "lot LZ is registered as ZMAPP, not MAB114" in got.value.problems["product"]
    assert ph.store.one("SELECT 1 FROM cc_transfers") is None


# -- receipt: arrival and transit by the product's storage ----------------------------------------


def test_a_refrigerated_product_arrives_cold_not_frozen(palm, ph) -> None:
    services.add_unit(ph, "FRG-1", name="fridge", location="pharmacy", product="MAB114")
    lot(ph, "LM", "MAB114", ["M1"])
    lot(ph, "LN", "MAB114", ["M2"])
    rec = receive(ph, ["M1"], "FRG-1", frozen=False)  # cool packs, no dry ice: as it should
    assert rec.warnings == []
    assert rec.event.body["data"]["arrival_expected"] == {"dry_ice": None, "frozen": False}
    rec = receive(ph, ["M2"], "FRG-1", frozen=True)  # arrived frozen: quarantined
    assert any("arrival condition failed" in w for w in rec.warnings)
    (x,) = excursion_rows(ph.store)
    assert x["detail"] == "product frozen (it is stored above 0 °C)"
    assert custody.quarantined_kits(ph.store) == [("M2", x["excursion_id"])]


def test_a_frozen_product_still_needs_dry_ice(palm, ph) -> None:
    lot(ph, "LZ", "ZMAPP", ["Z1"])
    rec = receive(ph, ["Z1"], "pharmacy", frozen=True, dry_ice=False)
    assert any("arrival condition failed" in w for w in rec.warnings)
    assert [x["detail"] for x in excursion_rows(ph.store)] == ["no dry ice"]


def test_one_receipt_of_products_stored_at_different_temperatures_is_refused(palm, ph) -> None:
    lot(ph, "LZ", "ZMAPP", ["Z1"])
    lot(ph, "LM", "MAB114", ["M1"])
    with pytest.raises(
        Refused, match=r"stored at different temperatures \(ZMAPP -25 … -15 °C: Z1; MAB114 2 …"
    ):
        receive(ph, ["Z1", "M1"], "pharmacy", frozen=True)
    assert ph.store.one("SELECT 1 FROM cc_transfers") is None
    lot(ph, "LQ", "REGNEB3", ["Q1"])  # two products of one range travel together
    receive(ph, ["M1", "Q1"], "pharmacy", frozen=False)


def test_a_refrigerated_transit_log_is_judged_against_both_limits(palm, ph, tmp_path) -> None:
    lot(ph, "LM", "MAB114", ["M1"])
    lot(ph, "LN", "MAB114", ["M2"])
    ok = log_file(tmp_path, "ok.txt", [5.0, 5.5, 6.0, 5.0], ARRIVE - timedelta(hours=1))
    assert receive(ph, ["M1"], "pharmacy", frozen=False, logger_file=ok).warnings[-1].startswith("1 kit(s)")
    cold = log_file(tmp_path, "cold.txt", [5.0, -0.5, 5.0, 5.0], ARRIVE - timedelta(hours=1))
    rec = receive(ph, ["M2"], "pharmacy", frozen=False, logger_file=cold)
    assert "transit log shows 1 excursion(s) outside 2 … 8 °C: kits quarantined" in rec.warnings
    (x,) = excursion_rows(ph.store)
    assert x["detail"] == "transit log outside 2.0 … 8.0 °C" and x["min_c"] == -0.5


# -- storage: each lot judged by its own range ----------------------------------------------------


def _stock(ph, tmp_path):
    """ZMapp in the -20 °C freezer, MAb114 in the 2-8 °C fridge, remdesivir and MAb114 on a 2-30 °C shelf."""
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward", product="ZMAPP")
    services.add_unit(ph, "FRG-1", name="fridge", location="pharmacy", product="MAB114")
    services.add_unit(ph, "SHELF", name="2-30 °C cabinet", location="pharmacy", product="RDV")
    lot(ph, "LZ", "ZMAPP", ["Z1"])
    lot(ph, "LM", "MAB114", ["M1"])
    lot(ph, "LN", "MAB114", ["M2"])
    lot(ph, "LR", "RDV", ["R1"])
    receive(ph, ["Z1"], "FRZ-1", frozen=True)
    receive(ph, ["M1"], "FRG-1", frozen=False)
    receive(ph, ["M2"], "SHELF", frozen=False)
    receive(ph, ["R1"], "SHELF", frozen=False)


def test_a_fridge_and_a_freezer_are_each_judged_by_their_products_range(palm, ph, tmp_path) -> None:
    _stock(ph, tmp_path)
    frz = services.import_logger(ph, log_file(tmp_path, "frz.txt", [-20.0] * 12), "FRZ-1").event
    services.import_logger(ph, log_file(tmp_path, "frg.txt", [5.0] * 12), "FRG-1")
    # The freezer is out of a 2-8 °C product's range all the time: judged (the event says so) ...
    judged = {j["product"]: len(j["excursions"]) for j in frz.body["products"]}
    assert judged == {"RDV": 1, "MAB114": 1, "REGNEB3": 1} and frz.body["excursions"] == []
    mab = [x for x in excursion_rows(ph.store) if x["product"] == "MAB114" and x["unit_id"] == "FRZ-1"]
    assert len(mab) == 1 and mab[0]["is_open"] == 1
    # ... but no MAb114 kit was in it: nothing to show, nothing quarantined.
    assert reports.excursions(ph) == []
    assert custody.quarantined_kits(ph.store) == []
    status = {u["unit"]: u for u in reports.unit_status(ph.store)}
    assert status["FRZ-1"]["open_excursions"] == [] and status["FRG-1"]["open_excursions"] == []
    assert "open excursion" not in (status["FRZ-1"]["status"], status["FRG-1"]["status"])


def test_one_place_holding_two_ranges_judges_each_lot_by_its_own(palm, ph, tmp_path) -> None:
    _stock(ph, tmp_path)
    warm = [5.0, 5.0, 12.0, 12.0, 12.0, 5.0, 5.0]  # 2-30 °C for remdesivir, above 8 °C for MAb114
    event = services.import_logger(ph, log_file(tmp_path, "shelf.txt", warm), "SHELF").event
    assert [j["product"] for j in event.body["products"]] == ["ZMAPP", "MAB114", "REGNEB3"]
    (view,) = reports.excursions(ph)
    assert view["id"].endswith("/MAB114") and view["product"] == "MAB114"
    assert view["lots"] == ["LN"] and view["awaiting_disposition"] == ["M2"]
    assert custody.quarantined_kits(ph.store) == [("M2", view["id"])]
    assert not any("quarantined" in p for p in custody.chain(ph.store, "R1").problems)
    # A spot check on the shelf at 9 °C: an excursion for MAb114 only, the unit's own range holds.
    services.record_reading(ph, "SHELF", at=iso(ARRIVE + timedelta(hours=1)), temp_c=9.0)
    manual = [x for x in excursion_rows(ph.store) if x["kind"] == "manual"]
    assert [(x["product"], x["detail"]) for x in manual] == [
        ("MAB114", "manual reading outside 2.0 … 8.0 °C (MAB114)"),
        ("REGNEB3", "manual reading outside 2.0 … 8.0 °C (REGNEB3)"),
        ("ZMAPP", "manual reading outside -25.0 … -15.0 °C (ZMAPP)"),
    ]
    shown = {v["id"]: v["lots"] for v in reports.excursions(ph)}
    assert shown == {view["id"]: ["LN"], f"SHELF/{iso_z(ARRIVE + timedelta(hours=1))}/manual/MAB114": ["LN"]}


def iso_z(local: datetime) -> str:
    return (
        local.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
        .astimezone(ZoneInfo("UTC"))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def test_a_product_that_must_not_freeze_is_discarded_not_released(palm, ph, tmp_path) -> None:
    _stock(ph, tmp_path)
    services.import_logger(ph, log_file(tmp_path, "frg.txt", [5.0, 5.0, -1.5, 5.0, 5.0]), "FRG-1")
    (x,) = reports.excursions(ph)
    assert x["product"] is None and x["lots"] == ["LM"]  # the fridge's own range is MAb114's
    with pytest.raises(Refused, match=r"kit M1 is MAB114, which the protocol says to discard once frozen"):
        services.record_disposition(ph, x["id"], decision="release", reason="short")
    services.record_disposition(ph, x["id"], decision="discard", reason="frozen: the protocol says discard")
    assert custody.is_discarded(ph.store, "M1")


def test_a_warm_excursion_of_a_refrigerated_product_may_still_be_released(palm, ph, tmp_path) -> None:
    _stock(ph, tmp_path)
    services.import_logger(ph, log_file(tmp_path, "frg.txt", [5.0, 5.0, 9.0, 5.0, 5.0]), "FRG-1")
    (x,) = reports.excursions(ph)
    services.record_disposition(ph, x["id"], decision="release", reason="9 °C for 5 min, stability data")
    assert custody.quarantined_kits(ph.store) == []


def test_an_excursion_within_the_products_tolerance_quarantines_nothing(admin, ph, tmp_path) -> None:
    source = model.shipped_source("palm.toml").replace(
        'excursion = { max_minutes = 0, freezing = "discard" }          # do not freeze [L]\npreparation = [\n'
        '  { code = "reconstitute"',
        'excursion = { max_minutes = 10, freezing = "discard" }\npreparation = [\n  { code = "reconstitute"',
        1,
    )
    assert "max_minutes = 10" in source
    loading.load(admin, model.parse(source, "palm-tolerant.toml"))
    _stock(ph, tmp_path)
    services.import_logger(
        ph, log_file(tmp_path, "frg.txt", [5.0, 5.0, 9.0, 9.0, 5.0, 9.0, 9.0, 9.0, 5.0]), "FRG-1"
    )
    views = {(v["duration_min"], tuple(v["awaiting_disposition"])) for v in reports.excursions(ph)}
    assert views == {(10, ()), (15, ("M1",))}  # 10 min tolerated; 15 min is not


# -- the custody gate ---------------------------------------------------------------------------------


def test_the_gate_checks_the_product_the_administration_gives(palm, ph, tmp_path) -> None:
    scenario.ready_kit(ph, SIGNERS, "Z1", DOSE, workdir=tmp_path, product="ZMAPP")
    scenario.ready_kit(ph, SIGNERS, "M1", DOSE + timedelta(hours=1), workdir=tmp_path, product="MAB114")
    custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")
    custody.check_dose(ph.store, "M1", DOSE + timedelta(hours=1), product="MAB114")
    custody.check_dose(ph.store, "Z1", DOSE)  # a caller that does not know the product: the chain alone
    with pytest.raises(
        Refused, match=r"custody gate: kit Z1 is ZMAPP \(lot LOT-Z1\); this administration gives MAB114"
    ):
        custody.check_dose(ph.store, "Z1", DOSE, product="MAB114")
    assert scenario.unit_for(config.products(ph.store)["MAB114"])[0] == "CC-2-8"
    assert custody.location_at(ph.store, "M1", int((DOSE - timedelta(hours=2)).timestamp())) == "CC-2-8"


def test_the_protocols_custody_gate_asks_for_the_administrations_product(palm, ph, tmp_path) -> None:
    """The engine's `custody` gate (PALM's names every product) passes the administration's product on."""
    from dataclasses import fields

    from wardcrf import protocol
    from wardcrf.workflow.base import Participant
    from wardcrf.workflow.gatefacts import site_facts

    scenario.ready_kit(ph, SIGNERS, "Z1", DOSE, workdir=tmp_path, product="ZMAPP")
    nobody = Participant(**{f.name: None for f in fields(Participant)})
    facts = site_facts(ph.store, protocol.active(ph.store), nobody)
    assert facts.custody is not None
    (gate,) = [g for g in protocol.active(ph.store).engine.data["gates"] if g["kind"] == "custody"]

    def ask(product: str, named: list[str] | None = None) -> str | None:
        adm = {"kit": "Z1", "start": DOSE, "product": product, "kit_first_use": True}
        return facts.custody({"gate": {**gate, "products": named or gate["products"]}, "administration": adm})

    assert ask("ZMAPP") is None
    assert ask("MAB114") == "custody gate: kit Z1 is ZMAPP (lot LOT-Z1); this administration gives MAB114"
    assert ask("MAB114", ["ZMAPP"]) is None  # a product the gate does not name is not under custody


def test_a_product_given_as_it_comes_needs_no_thaw(admin, ph, tmp_path) -> None:
    loading.load(admin, model.shipped("palm007.toml"))
    scenario.ready_kit(ph, SIGNERS, "K000001", DOSE, workdir=tmp_path, product="TECOVIRIMAT")
    assert ph.store.one("SELECT 1 FROM cc_thaws") is None
    custody.check_dose(ph.store, "K000001", DOSE, product="TECOVIRIMAT")
    custody.check_dose(ph.store, "K000001", DOSE, product="PLACEBO")  # the blinded twin: one at the bedside
    with pytest.raises(
        Refused, match="which the protocol gives as it comes: no thaw or preparation to record"
    ):
        services.record_thaw(
            ph,
            "K000001",
            start=iso(DOSE.replace(tzinfo=None) - timedelta(minutes=30)),
            end=iso(DOSE.replace(tzinfo=None) - timedelta(minutes=20)),
        )


def test_a_preparation_older_than_its_steps_within_is_refused(admin, ph, tmp_path) -> None:
    label = 'label = "Reconstitute with sterile water; dilute in normal saline", within = "4h"'
    source = model.shipped_source("palm.toml").replace(label, label.replace('"4h"', '"20min"'), 1)
    assert '"20min"' in source
    loading.load(admin, model.parse(source, "palm-quick.toml"))
    scenario.ready_kit(
        ph, SIGNERS, "M1", DOSE, workdir=tmp_path, product="MAB114"
    )  # prepared by 15 min before
    custody.check_dose(ph.store, "M1", DOSE, product="MAB114")
    later = DOSE + timedelta(minutes=10)  # 25 min after the preparation ended
    with pytest.raises(
        Refused, match=r"kit M1 was prepared 25 min before the dose: MAB114 step 'reconstitute'"
    ):
        custody.check_dose(ph.store, "M1", later, product="MAB114")


# -- events written before products were told apart ---------------------------------------------------


def test_a_lot_and_receipt_recorded_before_this_change_keep_the_first_product(palm, ph) -> None:
    records.submit(
        ph,
        services.FORM_LOT,
        {
            "lot": "OLD",
            "product": "vials",
            "expiry": "2021-03-31",
            "release_ref": "QP",
            "quantity": 1,
            "kits": ["O1"],
        },
        subject="lot:OLD",
    )
    assert ph.store.scalar("SELECT product_code FROM cc_lots WHERE lot = 'OLD'") is None
    assert config.product_of_lot(ph.store, "OLD").code == "ZMAPP"
    old = {
        "shipper_id": "SH-OLD",
        "kits": ["O1"],
        "at": "2020-03-15T00:00:00Z",
        "from_party": "courier",
        "from_user": None,
        "to_party": "Pharmacist User (pharmacist)",
        "to_user": "pharmacist",
        "from_location": "shipper:SH-OLD",
        "to_location": "pharmacy",
        "dry_ice_present": False,
        "container_intact": True,
        "product_frozen": True,
        "logger_serial": "LG",
        "logger": None,
        "photos": [],
        "condition": "",
    }
    records.submit(ph, services.FORM_RECEIPT, old, subject="lot:OLD")
    assert [x["detail"] for x in excursion_rows(ph.store)] == ["no dry ice"]  # as it was judged then
    _, differences = projections.check(ph.store)
    assert differences == []


# -- the command line -------------------------------------------------------------------------------


def test_cli_add_lot_and_add_unit_name_the_product(palm, cli) -> None:
    r = cli(
        "coldchain",
        "add-unit",
        "FRG-1",
        "--name",
        "fridge",
        "--location",
        "pharmacy",
        "--product",
        "MAB114",
        user="pharmacist",
    )
    assert r.code == 0 and "(2.0 … 8.0 °C)" in r.out, r.err
    r = cli(
        "coldchain",
        "add-lot",
        "LM",
        "--product",
        "MAB114",
        "--expiry",
        "2021-03-31",
        "--release-ref",
        "QP",
        "--quantity",
        "1",
        "-k",
        "M1",
        user="pharmacist",
    )
    assert r.code == 0 and "(MAB114)" in r.out, r.err
    r = cli(
        "coldchain",
        "add-lot",
        "LX",
        "--product",
        "aspirin",
        "--expiry",
        "2021-03-31",
        "--release-ref",
        "QP",
        "--quantity",
        "1",
        "-k",
        "X1",
        user="pharmacist",
    )
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1, r.err
    assert "unknown product 'aspirin' (the protocol declares: ZMAPP, RDV, MAB114, REGNEB3)" in r.err
    r = cli(
        "coldchain",
        "add-unit",
        "FRG-2",
        "--name",
        "f",
        "--location",
        "p",
        "--product",
        "\x1b[2J",
        user="pharmacist",
    )
    assert r.code == 2 and "printable text" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert json.loads(json.dumps(r.code)) == 2


def test_with_one_product_any_administration_gives_it(ph, tmp_path) -> None:
    """A format-1 ward whose engine names the product by its format-2 code (MEXCOVID: HAMSC_EXOS)."""
    scenario.ready_kit(ph, SIGNERS, "K001", DOSE, workdir=tmp_path)
    custody.check_dose(ph.store, "K001", DOSE, product="HAMSC_EXOS")
    custody.check_dose(ph.store, "K001", DOSE, product="haMSC-Exos")
