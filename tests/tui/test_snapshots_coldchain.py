"""Pictures of the cold-chain screens at 80x24 and 120x40 (the custody view in en and zh).

The site is built under the fixed clock (`WARDCRF_FAKE_NOW`) by
`cc_helpers.cold_chain_site`; nothing random is drawn (event ids stay off
these screens: K001's chain names none). Update with
`pytest tests/tui/test_snapshots_coldchain.py --snapshot-update` and review
the SVGs before committing.
"""

from __future__ import annotations

import pytest
from cc_helpers import cold_chain_site
from tui_helpers import settle

SIZES = [(80, 24), (120, 40)]


async def _until(pilot, condition) -> None:
    for _ in range(200):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("screen did not finish loading")


async def _home(pilot):
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_coldchain_home(snap_compare, app_for, site, tmp_path, size):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    assert snap_compare(app, terminal_size=size, run_before=_home)


def test_coldchain_home_80x24_zh(snap_compare, app_for, site, tmp_path):
    """Issue 14: the unit's status shows at 80 columns, in Chinese too."""
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist", language="zh")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_home)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_coldchain_custody(snap_compare, app_for, site, tmp_path, size, language):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist", language=language)

    async def custody(pilot):
        await _home(pilot)
        await pilot.press("k")
        await settle(pilot)
        await pilot.press(*"K001", "enter")
        await settle(pilot)
        await _until(
            pilot,
            lambda: (
                getattr(pilot.app.screen, "report", None) is not None
                and not pilot.app.screen.query_one("#cu-kit").value
            ),
        )
        await settle(pilot)
        await pilot.pause(0.2)  # the chain's text is laid out (wrapped) on the next refresh

    assert snap_compare(app, terminal_size=size, run_before=custody)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_coldchain_excursions(snap_compare, app_for, site, tmp_path, size):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")

    async def excursions(pilot):
        await _home(pilot)
        await pilot.press("e")
        await settle(pilot)
        await _until(pilot, lambda: bool(getattr(pilot.app.screen, "rows", None)))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=excursions)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_coldchain_chart(snap_compare, app_for, site, tmp_path, size):
    cold_chain_site(site, tmp_path)
    app = app_for("auditor")

    async def chart(pilot):
        await _home(pilot)
        await pilot.press("c")
        await settle(pilot)
        await _until(pilot, lambda: getattr(pilot.app.screen, "data", None) is not None)
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=chart)


# The custody forms are the form framework's (issue 16): these pin their rows as they were
# before it (checked identical to the screens' own rows then), and a marked field.
@pytest.mark.parametrize("form", ["receipt", "handover", "receipt_marked"])
def test_coldchain_custody_form(snap_compare, app_for, site, tmp_path, form):
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")

    async def opened(pilot):
        await _home(pilot)
        await pilot.press("h" if form == "handover" else "r")
        await settle(pilot)
        if form == "receipt_marked":
            screen = pilot.app.screen
            screen.query_one("#cc-quantity").value = "two"
            await pilot.press("ctrl+s")
            await _until(pilot, lambda: screen.query_one("#row-quantity").has_class("-invalid"))
            await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=opened)
