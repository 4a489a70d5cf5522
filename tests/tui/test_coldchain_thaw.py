"""Thaw and storage-unit screens: each main path (checked in the domain) and the refusals.

Under the fixed clock (09:00 Asia/Shanghai); `bedside_kit` hands K001 from
the freezer to the bedside at 08:40, so a thaw from 08:42 is allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cc_helpers import PASSWORD, cold_chain_site, iso
from test_coldchain import fill, open_home, text, until
from textual.widgets import Input
from tui_helpers import burst, screen_text, settle
from wardcrf.screens.coldchain.custody import CustodyScreen
from wardcrf.screens.coldchain.home import ColdChainScreen
from wardcrf.screens.coldchain.thaw import ThawScreen
from wardcrf.screens.coldchain.unit import UnitScreen

from wardcrf.coldchain import custody, services
from wardcrf.errors import PermissionDenied


def bedside_kit(site, tmp_path) -> None:
    cold_chain_site(site, tmp_path, pending=False)
    ph = site.unlock("pharmacist", PASSWORD)
    try:
        services.record_handover(
            ph,
            kits=["K001"],
            at=iso(datetime(2020, 3, 16, 8, 40)),
            from_location="FRZ-1",
            to_location="bedside:P-001",
            from_user="pharmacist",
            to_user="clinician",
            passwords={"pharmacist": PASSWORD, "clinician": PASSWORD},
        )
    finally:
        ph.close()


def utc(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


def thaws(session) -> list[dict]:
    return [dict(r) for r in session.store.rows("SELECT * FROM cc_thaws ORDER BY kit_id")]


async def open_thaw(pilot) -> ThawScreen:
    await open_home(pilot)
    await pilot.press("t")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ThawScreen)
    return pilot.app.screen


async def open_unit(pilot) -> UnitScreen:
    await open_home(pilot)
    await pilot.press("u")
    await settle(pilot)
    assert isinstance(pilot.app.screen, UnitScreen)
    return pilot.app.screen


# -- thaw ---------------------------------------------------------------------------------------


async def test_thaw_scanned_at_the_bedside_is_recorded(app_for, site, tmp_path, session_for):
    bedside_kit(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_thaw(pilot)
        assert screen.query_one("#cc-end", Input).value == "2020-03-16 09:00"  # now, local
        await pilot.press(*"k001", "enter")  # the scanner's burst and its Enter
        await settle(pilot)
        assert screen.query_one("#cc-kit", Input).value == "K001"
        assert screen.focused is screen.query_one("#cc-start", Input)
        await pilot.press(*"2020-03-16 08:42", "enter")
        await pilot.press("ctrl+t")  # stamps the focused time field (the end): now
        assert screen.query_one("#cc-end", Input).value == "2020-03-16 09:00"
        fill(screen, reconstitution="3 ml saline, inverted 10 times")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    s = session_for("auditor")
    [thaw] = thaws(s)
    assert (thaw["kit_id"], thaw["start_t"], thaw["end_t"], thaw["by_user"]) == (
        "K001",
        utc(2020, 3, 16, 0, 42),
        utc(2020, 3, 16, 1, 0),
        "clinician",
    )
    assert thaw["reconstitution"] == "3 ml saline, inverted 10 times"
    assert custody.chain(s.store, "K001").links[-1].kind == "thaw"


async def test_thaw_refusals_are_the_domains_and_keep_what_was_typed(app_for, site, tmp_path, session_for):
    bedside_kit(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_thaw(pilot)
        # not a kit id: refused at the scan, the focus stays for the next scan
        await pilot.press(*"K 1", "enter")
        await until(pilot, lambda: "kit id 'K 1' contains a space" in text(app, "#cc-form-message"))
        assert screen.focused is screen.query_one("#cc-kit", Input)
        # an unknown kit
        fill(screen, kit="K999", start="2020-03-16 08:42", reconstitution="saline")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "kit K999 is not registered" in text(app, "#cc-form-message"))
        assert pilot.app.screen is screen
        # a kit still in the freezer
        fill(screen, kit="K002")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "thaw happens at the bedside" in text(app, "#cc-form-message"))
        assert "kit K002 is at FRZ-1" in text(app, "#cc-form-message")
        # an end before the start
        fill(screen, kit="K001", end="2020-03-16 08:30")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "thaw end must be after its start" in text(app, "#cc-form-message"))
        assert screen.query_one("#cc-reconstitution", Input).value == "saline"
        assert screen.query_one("#cc-start", Input).value == "2020-03-16 08:42"
    assert thaws(session_for("auditor")) == []


async def test_a_kit_already_thawed_is_refused(app_for, site, tmp_path, session_for):
    bedside_kit(site, tmp_path)
    services.record_thaw(session_for("clinician"), "K001", start="2020-03-16T08:41", end="2020-03-16T08:50")
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_thaw(pilot)
        fill(screen, kit="K001", start="2020-03-16 08:52")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "was already thawed" in text(app, "#cc-form-message"))
        assert pilot.app.screen is screen
    [thaw] = thaws(session_for("auditor"))
    assert thaw["start_t"] == utc(2020, 3, 16, 0, 41)


async def test_thaw_from_the_custody_view_of_the_shown_kit(app_for, site, tmp_path, session_for):
    bedside_kit(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("k")
        await settle(pilot)
        view = pilot.app.screen
        assert isinstance(view, CustodyScreen)
        assert view.check_action("thaw", ()) is False  # no kit shown yet
        await pilot.press(*"LOT1", "enter")
        await until(pilot, lambda: "Kit K003" in text(app, "#cu-chain"))
        assert view.check_action("thaw", ()) is False  # a whole lot: which kit?
        await pilot.press(*"K001", "enter")
        await until(pilot, lambda: view.shown_kit() == "K001")
        assert view.check_action("thaw", ()) is True
        await pilot.press("ctrl+t")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ThawScreen)
        assert screen.query_one("#cc-kit", Input).value == "K001"
        assert screen.focused is screen.query_one("#cc-start", Input)
        await pilot.press(*"2020-03-16 08:42")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: pilot.app.screen is view)
        await until(pilot, lambda: "thaw 2020-03-16 08:42 … 2020-03-16 09:00" in text(app, "#cu-chain"))
    assert [t["kit_id"] for t in thaws(session_for("auditor"))] == ["K001"]


async def test_language_switch_keeps_the_thaw_being_typed(app_for, site, tmp_path):
    bedside_kit(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_thaw(pilot)
        await pilot.press(*"K001", "enter", *"2020-03-16 08:42")
        fill(screen, reconstitution="saline")
        await pilot.press("f2")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert screen.query_one("#cc-kit", Input).value == "K001"
        assert screen.query_one("#cc-start", Input).value == "2020-03-16 08:42"
        assert screen.query_one("#cc-reconstitution", Input).value == "saline"
        assert "开始解冻" in str(screen.query_one("#row-start").query_one(".cc-label").content)


# -- storage units ------------------------------------------------------------------------------


async def test_pharmacist_registers_a_unit_with_its_own_range(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_unit(pilot)
        await until(pilot, lambda: screen.protocol is not None)
        assert screen.query_one("#cc-low", Input).placeholder == "blank: the protocol's -25"
        assert "Asia/Shanghai" in screen.query_one("#cc-zone", Input).placeholder
        await pilot.press(*"FRZ-2", "enter", *"deep freezer", "enter", *"ward 3 store room")
        fill(screen, low="-90", high="-60,5", target="-80", interval="10")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
        home = pilot.app.screen
        await until(pilot, lambda: any(u["unit"] == "FRZ-2" for u in home.units))
    row = services.unit_row(session_for("auditor").store, "FRZ-2")
    assert (row["name"], row["location"], row["low_c"], row["high_c"], row["target_c"]) == (
        "deep freezer",
        "ward 3 store room",
        -90.0,
        -60.5,
        -80.0,
    )
    assert (row["interval_s"], row["zone"]) == (600, "Asia/Shanghai")


async def test_admin_registers_a_unit_with_the_protocols_range(app_for, site, session_for):
    app = app_for("admin")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_unit(pilot)
        fill(screen, unit="FRZ-9", name="freezer", location="ICU")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    row = services.unit_row(session_for("auditor").store, "FRZ-9")
    assert (row["low_c"], row["high_c"], row["interval_s"]) == (-25.0, -15.0, 300)


async def test_unit_refusals_keep_what_was_typed(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_unit(pilot)
        fill(screen, unit="FRZ-1", name="second freezer", location="ward 4")
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: "storage unit FRZ-1 is already registered" in text(app, "#cc-form-message")
        )
        assert pilot.app.screen is screen
        fill(screen, unit="FRZ-3", low="-10", high="-20")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "is empty: the low limit must be below" in text(app, "#cc-form-message"))
        fill(screen, low="cold", high="")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "Lowest °C: cold is not a temperature" in text(app, "#cc-form-message"))
        fill(screen, low="", interval="0")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "1 to 1440 minutes" in text(app, "#cc-form-message"))
        fill(screen, interval="5", zone="Mars/Olympus")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "Mars/Olympus" in text(app, "#cc-form-message"))
        assert screen.query_one("#cc-name", Input).value == "second freezer"
        assert screen.query_one("#cc-location", Input).value == "ward 4"
    store = session_for("auditor").store
    assert [r[0] for r in store.execute("SELECT unit_id FROM cc_units")] == ["FRZ-1"]


# -- roles --------------------------------------------------------------------------------------


async def test_roles_without_the_permission_are_not_offered_the_keys(app_for, site, tmp_path, session_for):
    bedside_kit(site, tmp_path)
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        assert home.check_action("thaw", ()) is False
        assert home.check_action("add_unit", ()) is False
        for key in ("t", "u"):
            await pilot.press(key)
            await settle(pilot)
            assert pilot.app.screen is home  # the key does nothing for this role
        pilot.app.push_screen(CustodyScreen(pilot.app.ward, "K001"))
        await until(pilot, lambda: "Kit K001" in text(app, "#cu-chain"))
        assert pilot.app.screen.check_action("thaw", ()) is False
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        assert home.check_action("thaw", ()) is True
        assert home.check_action("add_unit", ()) is False  # registering units: pharmacist, admin
        await pilot.press("u")
        await settle(pilot)
        assert pilot.app.screen is home
    # the domain refuses anyway
    with pytest.raises(PermissionDenied):
        services.record_thaw(session_for("auditor"), "K001", start="2020-03-16T08:42", end="2020-03-16T08:55")
    with pytest.raises(PermissionDenied):
        services.add_unit(session_for("clinician"), "FRZ-5", name="freezer", location="ward")
    with pytest.raises(PermissionDenied):
        services.add_unit(session_for("auditor"), "FRZ-5", name="freezer", location="ward")
    store = session_for("auditor").store
    assert thaws(session_for("auditor")) == []
    assert store.one("SELECT 1 FROM cc_units WHERE unit_id = 'FRZ-5'") is None


async def test_ctrl_t_stamps_now_on_the_thaw_screen_as_in_the_wizards(app_for, site, tmp_path):
    """A nurse's "time now" key is ctrl+t here as in the wizards, and the footer shows it."""
    bedside_kit(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_thaw(pilot)
        await pilot.press(*"k001", "enter")
        await settle(pilot)
        start = screen.query_one("#cc-start", Input)
        assert screen.focused is start and start.value == ""
        assert "^t Time now" in screen_text(pilot.app).splitlines()[-1]  # the footer
        await pilot.press("ctrl+t")
        assert start.value == "2020-03-16 09:00" and screen.focused is start
        assert isinstance(pilot.app.screen, ThawScreen)  # not the custody view's ctrl+t (thaw)


async def test_ctrl_n_is_not_time_now_on_the_thaw_screen(app_for, site, tmp_path):
    """ctrl+n is the wizards' "next step": here it stamps nothing over a typed time (a burst of keys)."""
    bedside_kit(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_thaw(pilot)
        await burst(
            pilot, *"k001", "enter", *"2020-03-16 08:42", "ctrl+n", "tab", *"2020-03-16 08:50", "ctrl+n"
        )
        assert screen.query_one("#cc-start", Input).value == "2020-03-16 08:42"
        assert screen.query_one("#cc-end", Input).value == "2020-03-16 08:50"
        assert isinstance(pilot.app.screen, ThawScreen)
        assert "^n" not in screen_text(pilot.app).splitlines()[-1]
