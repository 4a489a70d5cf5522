"""Finding 7 on the home screen: kits outside a monitored unit show the custody time left.

A receipt into `pharmacy` starts a 30 min clock (transit allowance); before,
nobody was told until the bedside. The dashboard's cold-chain panel lists
each kit outside a unit with its deadline and the minutes left, and says so
once the limit has passed.
"""

from __future__ import annotations

from textual.widgets import DataTable
from tui_helpers import PASSWORD, settle

from wardcrf.coldchain import services

SIGNERS = {u: PASSWORD for u in ("pharmacist", "coordinator")}


def _receive_into_pharmacy(site, at: str) -> None:
    ph = site.unlock("pharmacist", PASSWORD)
    try:
        services.add_lot(
            ph,
            "LOTC",
            product="haMSC-Exos",
            expiry="2021-06-30",
            release_ref="QP-C",
            kits=["KC1"],
            quantity=1,
        )
        services.receive_shipment(
            ph,
            shipper_id="SHC",
            kits=["KC1"],
            received_at=at,
            to_location="pharmacy",
            delivered_by_user="coordinator",
            dry_ice=True,
            container_intact=True,
            product_frozen=True,
            logger_serial="LG-C",
            passwords=SIGNERS,
        )
    finally:
        ph.close()


def _rows(app) -> list[list[str]]:
    table = app.screen.query_one("#freezer", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_the_home_screen_counts_down_a_kit_received_outside_a_unit(app_for, site):
    _receive_into_pharmacy(site, "2020-03-16T00:50:00Z")  # the clock is pinned at 01:00 UTC (09:00 local)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert ["KC1", "pharmacy", "into a unit by 03-16 09:20: 20 min left"] in _rows(app)


async def test_the_home_screen_says_when_the_limit_has_passed(app_for, site):
    _receive_into_pharmacy(site, "2020-03-16T00:10:00Z")  # 50 min ago: 20 min past the limit
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert ["KC1", "pharmacy", "limit passed: cannot be dosed"] in _rows(app)
