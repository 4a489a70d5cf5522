"""The receipt screen and the protocol's products (issue 17): with several products the lot's product is
chosen from them (code, name and storage range), a registered lot fills its product in, and a 2-8 °C
product arriving on cool packs, not frozen, is received without a quarantine; with one product
(MEXCOVID) the field stays the label's wording, as before."""

from __future__ import annotations

from test_coldchain import fill, open_home, scan, sign, until
from textual.widgets import Input, Select
from tui_helpers import settle
from wardcrf.screens.coldchain.home import ColdChainScreen
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.widgets.entry_list import EntryList

from wardcrf.coldchain import custody, services
from wardcrf.engine import loading, model


def _palm(session_for) -> None:
    loading.load(session_for("admin"), model.shipped("palm.toml"))


ARRIVED_COLD = dict(expiry="2021-06-30", at="2020-03-16 08:30", dry_ice="no", intact="yes", frozen="no")
"""A 2-8 °C shipment as it should arrive (the refrigerated counterpart of test_coldchain's ARRIVED_FROZEN):
cool packs, no dry ice, intact, not frozen."""


async def test_receipt_chooses_the_lots_product_among_several(app_for, site, tmp_path, session_for):
    _palm(session_for)
    ph = session_for("pharmacist")
    services.add_unit(ph, "FRG-1", name="2-8 °C fridge", location="pharmacy", product="MAB114")
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ReceiptScreen)
        choice = screen.query_one("#cc-product", Select)
        labels = [str(prompt) for prompt, _value in choice._options]
        assert "MAB114: MAb114 (ansuvimab) (2 … 8 °C)" in labels
        assert "ZMAPP: ZMapp (-25 … -15 °C)" in labels
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "M201")
        fill(
            screen,
            **ARRIVED_COLD,
            lot="LM2",
            product="MAB114",
            release_ref="QP-2",
            quantity="1",
            shipper="SH2",
            to="FRG-1",
            logger_serial="LG-2",
            courier_user="coordinator",
        )
        await pilot.press("ctrl+s")
        await sign(pilot)
        await sign(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    s = session_for("auditor")
    assert services.lot_info(s.store, "LM2")["product_code"] == "MAB114"
    assert custody.quarantined_kits(s.store) == []  # cool packs, not frozen: as a 2-8 °C product arrives


async def test_a_registered_lot_fills_its_product_choice(app_for, site, tmp_path, session_for):
    _palm(session_for)
    ph = session_for("pharmacist")
    services.add_lot(
        ph, "LZ1", product="ZMAPP", expiry="2021-06-30", release_ref="QP-1", kits=["Z101"], quantity=1
    )
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = pilot.app.screen
        lot = screen.query_one("#cc-lot", Input)
        lot.focus()
        await pilot.press(*"LZ1", "enter")
        await until(pilot, lambda: screen.query_one("#cc-product", Select).value == "ZMAPP")
        assert screen.query_one("#cc-release_ref", Input).value == "QP-1"


async def test_with_one_product_the_field_is_the_labels_wording(app_for, site, tmp_path):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(pilot.app.screen.query_one("#cc-product"), Input)
