"""Cold-chain screens: each main path, and the refusals (role, domain, signature, logger file, kit)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from cc_helpers import EXCURSION, PASSWORD, add_unit_and_lot, cold_chain_site, freezer_file, iso
from textual.widgets import DataTable, Input, OptionList, Select, SelectionList, Static
from tui_helpers import page_photo, settle
from wardcrf.screens.coldchain.chart import ChartScreen
from wardcrf.screens.coldchain.custody import CustodyScreen
from wardcrf.screens.coldchain.excursions import ExcursionsScreen
from wardcrf.screens.coldchain.handover import HandoverScreen
from wardcrf.screens.coldchain.home import ColdChainScreen
from wardcrf.screens.coldchain.readings import ReadingsScreen
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.dialogs.path import PathDialog
from wardcrf.screens.dialogs.sign import SignatureDialog
from wardcrf.screens.widgets.entry_list import EntryList

from wardcrf.coldchain import custody, reports, samples, services
from wardcrf.errors import PermissionDenied


def text(app, selector: str) -> str:
    found = app.screen.query(selector)
    return str(found.first(Static).content) if found else ""


async def until(pilot, condition, timeout: float = 15.0) -> None:
    """Wait for the app to reach a state (workers, dialogs and notifications are asynchronous)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out on {pilot.app.screen!r}")
        # not `settle`: a DirectoryTree's loader worker never finishes while it is shown
        await pilot.pause(0.05)


async def open_home(pilot) -> ColdChainScreen:
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ColdChainScreen)
    return pilot.app.screen


async def sign(pilot, password: str = PASSWORD) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, SignatureDialog))
    await pilot.press(*password, "enter")
    await settle(pilot)


# -- home and roles ---------------------------------------------------------------------------


async def test_home_shows_units_kits_and_pending_signatures(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        places = pilot.app.screen.query_one("#places", OptionList)
        assert "coldchain" in [places.get_option_at_index(i).id for i in range(places.option_count)]
        home = await open_home(pilot)
        units = home.query_one("#cc-units", DataTable)
        row = [str(c) for c in units.get_row("FRZ-1")]
        assert row[0] == "FRZ-1 freezer" and row[1] == "-25 … -15 °C"
        assert row[2].startswith("-20.6 °C 2020-03-16 08:45")
        assert row[3] == "in range · 1 awaiting disposition"
        kits = text(app, "#cc-kits")
        assert "in stock 1 · quarantined 2 · used 0 · discarded 0" in kits
        assert "Quarantined: K002, K003" in kits
        pending = home.query_one("#cc-pending", DataTable)
        assert pending.row_count == 1
        assert [str(c) for c in pending.get_row_at(0)][2:] == ["clinician (received)", "K002"]


async def test_auditor_reads_but_is_offered_no_recording(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path)
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        for action in ("receive", "handover", "readings", "sign"):
            assert home.check_action(action, ()) is False
        await pilot.press("r")
        await settle(pilot)
        assert pilot.app.screen is home  # the key does nothing for this role
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ExcursionsScreen)
        assert not pilot.app.screen.query("#ex-decision")
        assert pilot.app.screen.check_action("dispose", ()) is False
    # the domain refuses anyway
    s = session_for("auditor")
    with pytest.raises(PermissionDenied):
        services.record_reading(s, "FRZ-1", at="2020-03-16T08:50", temp_c=-20.0)
    with pytest.raises(PermissionDenied):
        services.record_disposition(s, EXCURSION, decision="discard", reason="x")


async def test_the_other_party_signs_later_wrong_password_keeps_the_dialog(
    app_for, site, tmp_path, session_for
):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        home.query_one("#cc-pending", DataTable).focus()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(pilot.app.screen, SignatureDialog))
        dialog = pilot.app.screen
        assert dialog.query_one("#sig-signer", Input).value == "clinician"
        await pilot.press(*"wrong-password-9", "enter")
        await until(pilot, lambda: "wrong password" in text(app, "#sig-message"))
        assert pilot.app.screen is dialog
        await pilot.press(*PASSWORD, "enter")
        await until(pilot, lambda: pilot.app.screen is home and home.pending == [])
    s = session_for("auditor")
    assert reports.pending_signatures(s.store) == []


# -- receipt ------------------------------------------------------------------------------


ARRIVED_FROZEN = dict(expiry="2021-06-30", at="2020-03-16 08:30", dry_ice="yes", intact="yes", frozen="yes")
"""What the receipt tests' shipments share: the lot's expiry, the arrival, and every arrival check passed."""


def fill(screen, **values) -> None:
    for name, value in values.items():
        w = screen.query_one(f"#cc-{name}")
        if isinstance(w, Select):
            w.value = value
        else:
            w.value = value


async def scan(pilot, entry_list: EntryList, *codes: str) -> None:
    """A barcode scanner: each code typed as a burst of keys, then Enter."""
    entry_list.input.focus()
    for code in codes:
        await pilot.press(*code, "enter")
    await pilot.pause()


async def test_receipt_of_a_new_lot_signed_by_receiver_and_courier(app_for, site, tmp_path, session_for):
    ph = session_for("pharmacist")
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    logger = tmp_path / "transit.txt"
    start = datetime(2020, 3, 15, 12, 0)
    logger.write_bytes(
        samples.fridgetag(samples.series(start, 10, [-72.0] * 100), serial="100800001215", low=-90, high=-15)
    )
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ReceiptScreen)
        kits = screen.query_one("#cc-kits", EntryList)
        await scan(pilot, kits, "k201", "K202", "k201")
        assert kits.entries == ["K201", "K202"]
        assert "already listed" in str(kits.query_one(".entry-problem", Static).content)
        fill(
            screen,
            **ARRIVED_FROZEN,
            lot="lot2",
            product="haMSC-Exos",
            release_ref="QP-2",
            quantity="2",
            shipper="SH2",
            condition="-72 °C on the display",
            logger_file=str(logger),
            courier_user="coordinator",
        )
        await pilot.press("ctrl+s")
        await sign(pilot)  # the pharmacist receives
        await until(pilot, lambda: isinstance(pilot.app.screen, SignatureDialog))
        assert pilot.app.screen.query_one("#sig-signer", Input).value == "coordinator"
        await pilot.press(*"not-his-password", "enter")  # the second signature, wrong password
        await until(pilot, lambda: "wrong password" in text(app, "#sig-message"))
        assert isinstance(pilot.app.screen, SignatureDialog)
        await pilot.press(*PASSWORD, "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    s = session_for("auditor")
    assert services.lot_info(s.store, "LOT2")["kits"] == ["K201", "K202"]
    chain = custody.chain(s.store, "K201")
    receipt = chain.links[0]
    assert receipt.kind == "receipt" and receipt.ok
    assert {(g["user"], g["meaning"]) for g in receipt.detail["signatures"]} == {
        ("pharmacist", "received"),
        ("coordinator", "handed over"),
    }


async def test_receipt_refused_by_the_domain_saves_nothing_and_keeps_the_values(
    app_for, site, tmp_path, session_for
):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = pilot.app.screen
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K301")
        fill(
            screen,
            **ARRIVED_FROZEN,
            lot="LOT3",
            product="p",
            release_ref="QP-3",
            quantity="1",
            shipper="SH3",
            to="pharmacy",  # no unit registered: the receipt names its place (issue 14, finding 7)
            logger_serial="LG-3",
            courier="Zhou Ming, SF courier",
        )
        await pilot.press("ctrl+s")
        # issue 14: refused before anyone is asked to sign (it used to come after the signature)
        await until(pilot, lambda: "attach a photo" in text(app, "#cc-form-message"))
        assert pilot.app.screen is screen
        assert screen.query_one("#cc-courier", Input).value == "Zhou Ming, SF courier"
        assert screen.query_one("#cc-kits", EntryList).entries == ["K301"]
        # quantity is checked before anyone signs
        fill(screen, quantity="two")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not a whole number" in text(app, "#cc-form-message"))
        assert pilot.app.screen is screen
    s = session_for("auditor")
    assert services.lot_info(s.store, "LOT3") is None


# -- handover -----------------------------------------------------------------------------


async def test_handover_to_an_external_party_with_a_photo(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path, pending=False)
    photo = page_photo(tmp_path / "sheet.jpg")
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("h")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, HandoverScreen)
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "k001")
        await scan(pilot, screen.query_one("#cc-photos", EntryList), photo)
        fill(screen, at="2020-03-16 08:50", to="return", to_external="Li Wei, sponsor courier")
        screen.query_one("#cc-from", Input).value = "FRZ-1"
        await pilot.press("ctrl+s")
        await sign(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    s = session_for("auditor")
    last = custody.last_step(s.store, "K001")
    assert last["to_location"] == "return" and last["to_party"] == "Li Wei, sponsor courier"
    link = custody.chain(s.store, "K001").links[-1]
    assert [p["state"] for p in link.detail["photos"]] == ["ok"]


async def test_handover_sign_later_leaves_the_receiver_pending(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        await pilot.press("h")
        await settle(pilot)
        screen = pilot.app.screen
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K001")
        fill(screen, at="2020-03-16 08:50", to="bedside:P-001", to_user="clinician", sign_later="yes")
        screen.query_one("#cc-from", Input).value = "FRZ-1"
        await pilot.press("ctrl+s")
        await sign(pilot)  # only the pharmacist signs now
        await until(pilot, lambda: pilot.app.screen is home and len(home.pending) == 1)
        assert home.pending[0]["user"] == "clinician"


async def test_handover_from_the_wrong_place_is_refused(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("h")
        await settle(pilot)
        screen = pilot.app.screen
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K001")
        fill(screen, at="2020-03-16 08:50", to="bedside", to_user="clinician")
        screen.query_one("#cc-from", Input).value = "pharmacy"
        await pilot.press("ctrl+s")
        # issue 14: refused before either party signs (both used to sign first)
        await until(pilot, lambda: "is at 'FRZ-1', not 'pharmacy'" in text(app, "#cc-form-message"))
        assert not isinstance(pilot.app.screen, SignatureDialog)
    s = session_for("auditor")
    assert custody.last_step(s.store, "K001")["to_location"] == "FRZ-1"


async def test_unknown_kit_is_refused_at_the_scan(app_for, site, tmp_path):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("h")
        await settle(pilot)
        kits = pilot.app.screen.query_one("#cc-kits", EntryList)
        await scan(pilot, kits, "K 1")
        assert kits.entries == []
        assert "contains a space, which is not allowed" in str(
            kits.query_one(".entry-problem", Static).content
        )


# -- readings and logger import ----------------------------------------------------------------


async def test_manual_reading_and_logger_import_with_summary(app_for, site, tmp_path, session_for):
    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    path = freezer_file(
        tmp_path,
        datetime(2020, 3, 15, 20, 0),
        datetime(2020, 3, 16, 8, 0),
        hot=(datetime(2020, 3, 16, 2, 0), datetime(2020, 3, 16, 2, 30)),
    )
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("m")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ReadingsScreen)
        assert screen.current_unit() == "FRZ-1"
        screen.query_one("#rd-at", Input).value = "2020-03-16 08:40"
        screen.query_one("#rd-temp", Input).focus()
        await pilot.press(*"-19.5", "enter")
        await until(pilot, lambda: "Saved -19.5 °C for FRZ-1" in text(app, "#rd-message"))
        await pilot.press("f4")
        await until(pilot, lambda: isinstance(pilot.app.screen, PathDialog))
        await pilot.press(*str(path), "enter")
        await until(pilot, lambda: "Imported" in text(app, "#lg-result"))
        result = text(app, "#lg-result")
        assert (
            "Imported 145 readings (145 new) from frz.txt [fridgetag, zone Asia/Shanghai] into FRZ-1"
            in result
        )
        assert "max -13.0 °C" in result and "MKT" in result
        assert "1 excursion(s) found:" in result and "2020-03-16 02:00 … 2020-03-16 02:30" in result
    s = session_for("auditor")
    assert s.store.scalar("SELECT count(*) FROM cc_readings") == 145
    assert s.store.scalar("SELECT count(*) FROM cc_manual_readings") == 1


async def test_bad_logger_file_is_refused_with_its_line_and_nothing_is_saved(
    app_for, site, tmp_path, session_for
):
    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    rows = [(datetime(2020, 3, 16, 6, 0) + timedelta(minutes=5 * i), -20.0) for i in range(6)]
    lines = samples.csv(rows).decode().splitlines()
    lines[4] = "2020-03-16T06:15:00,cold"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("m")
        await settle(pilot)
        screen = pilot.app.screen
        screen.query_one("#lg-path", Input).value = str(bad)
        await pilot.press("ctrl+o")
        await until(pilot, lambda: "refused" in text(app, "#lg-result"))
        assert text(app, "#lg-result") == (
            "logger file refused, nothing imported: line 5: "
            "not 'timestamp,temperature' with an ISO-8601 timestamp and a number"
        )
        assert not screen.importing
    s = session_for("auditor")
    assert s.store.scalar("SELECT count(*) FROM cc_readings") == 0
    assert s.store.scalar("SELECT count(*) FROM cc_logger_files") == 0
    assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'coldchain.logger_imported'") == 0


async def test_manual_reading_refusals(app_for, site, tmp_path, session_for):
    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("m")
        await settle(pilot)
        screen = pilot.app.screen
        screen.query_one("#rd-temp", Input).value = "cold"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "is not a temperature" in text(app, "#rd-message")
        screen.query_one("#rd-at", Input).value = "2020-03-17 08:00"  # tomorrow
        screen.query_one("#rd-temp", Input).value = "-20"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "in the future" in text(app, "#rd-message"))
    s = session_for("auditor")
    assert s.store.scalar("SELECT count(*) FROM cc_manual_readings") == 0


# -- excursions and dispositions ---------------------------------------------------------------


async def _excursions(pilot) -> ExcursionsScreen:
    await open_home(pilot)
    await pilot.press("e")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ExcursionsScreen)
    return screen


async def test_excursion_list_and_disposition(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _excursions(pilot)
        table = screen.query_one("#ex-table", DataTable)
        assert [str(c) for c in table.get_row_at(0)] == [
            "FRZ-1",
            "2020-03-15 22:00",
            "20 min",
            "-13 … -13 °C",
            "3",
            "2",
        ]
        detail = text(app, "#ex-detail")
        assert "K001: release by pharmacist" in detail and "K002: quarantined" in detail
        kits = screen.query_one("#ex-kits", SelectionList)
        assert sorted(kits.selected) == ["K002", "K003"]
        # no reason: the domain refuses, nothing saved
        screen.query_one("#ex-decision", Select).value = "discard"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "needs a reason" in text(app, "#ex-message"))
        kits.deselect("K003")
        screen.query_one("#ex-reason", Input).value = "sponsor advice: discard"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "Recorded discard of K002" in text(app, "#ex-message"))
        await until(pilot, lambda: "K002: discard by pharmacist" in text(app, "#ex-detail"))
    s = session_for("auditor")
    assert custody.is_discarded(s.store, "K002")
    assert [k for k, _ in custody.quarantined_kits(s.store)] == ["K003"]


async def test_clinician_sees_excursions_read_only(app_for, site, tmp_path, session_for):
    cold_chain_site(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("e")
        await settle(pilot)
        screen = pilot.app.screen
        assert not screen.query("#ex-decision")
        assert screen.check_action("dispose", ()) is False
        notes = [str(w.content) for w in screen.query(".muted").results(Static)]
        assert any("Read-only: the role ward clinician may not record dispositions" in n for n in notes)
    with pytest.raises(PermissionDenied):
        services.record_disposition(session_for("clinician"), EXCURSION, decision="release", reason="ok")


# -- custody -----------------------------------------------------------------------------------


async def test_custody_view_of_a_scanned_kit(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert isinstance(pilot.app.screen, CustodyScreen)
        await pilot.press(*"k001", "enter")
        await until(pilot, lambda: "Kit K001" in text(app, "#cu-chain"))
        chain = text(app, "#cu-chain")
        assert "Kit K001 (lot LOT1) · chain complete" in chain
        assert "Dosable now: no — kit K001 is at 'FRZ-1', not at the bedside" in chain
        assert (
            "receipt 2020-03-15 08:00 · Coordinator User (coordinator) → Pharmacist User (pharmacist)"
            in chain
        )
        assert "handed over: Coordinator User (coordinator)" in chain and "— valid" in chain
        assert "at FRZ-1 since 2020-03-15 08:15 (now)" in chain and "MKT" in chain
        await pilot.press(*"K999", "enter")
        await until(pilot, lambda: "K999" in text(app, "#cu-chain"))
        assert "Kit K999 is not registered." in text(app, "#cu-chain")
        await pilot.press(*"LOT1", "enter")
        await until(pilot, lambda: "Kit K003" in text(app, "#cu-chain"))
        assert all(f"Kit {k}" in text(app, "#cu-chain") for k in ("K001", "K002", "K003"))


async def test_custody_view_of_a_dosable_kit(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path, pending=False)
    ph = site.unlock("pharmacist", PASSWORD)
    try:
        services.record_handover(
            ph,
            kits=["K001"],
            at=iso(datetime(2020, 3, 16, 8, 40)),
            from_location="FRZ-1",
            to_location="bedside",
            from_user="pharmacist",
            to_user="clinician",
            passwords={"pharmacist": PASSWORD, "clinician": PASSWORD},
        )
        services.record_thaw(
            ph, "K001", start=iso(datetime(2020, 3, 16, 8, 42)), end=iso(datetime(2020, 3, 16, 8, 55))
        )
    finally:
        ph.close()
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pilot.app.push_screen(CustodyScreen(pilot.app.ward, "K001"))
        await until(pilot, lambda: "Kit K001" in text(app, "#cu-chain"))
        assert "Dosable now: yes" in text(app, "#cu-chain")
        assert "thaw 2020-03-16 08:42 … 2020-03-16 08:55" in text(app, "#cu-chain")


# -- chart -------------------------------------------------------------------------------------


async def test_chart_of_a_unit_with_its_excursion(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path)
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("c")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ChartScreen)
        await until(pilot, lambda: screen.data is not None)
        summary = text(app, "#ch-summary")
        assert "Range -25 … -15 °C" in summary and "Window: 24 h" in summary
        assert (
            "289 readings" in summary
            and "1 excursion(s)" in summary
            and "03-15 22:00 20 min -13 °C" in summary
        )
        await pilot.press("1")
        await until(pilot, lambda: "Window: 6 h" in text(app, "#ch-summary"))
        assert "73 readings" in text(app, "#ch-summary") and "0 excursion(s)" in text(app, "#ch-summary")
        await pilot.press("4")
        await until(pilot, lambda: "Window: All" in text(app, "#ch-summary"))
        assert "301 readings" in text(app, "#ch-summary")


def test_plotext_is_not_imported_before_the_chart_opens():
    code = (
        "import sys; import wardcrf.screens.app, wardcrf.screens.dashboard, wardcrf.screens.coldchain.home;"
        " import wardcrf.screens.coldchain.chart;"
        " print(any(m.startswith(('plotext', 'textual_plotext')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_language_switch_keeps_what_was_typed_and_scanned(app_for, site, tmp_path):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = pilot.app.screen
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K401", "K402")
        fill(screen, lot="LOT4", dry_ice="no", courier="Zhou Ming, SF")
        screen.query_one("#cc-lot", Input).focus()
        await pilot.press("f2")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert screen.query_one("#cc-kits", EntryList).entries == ["K401", "K402"]
        assert screen.query_one("#cc-lot", Input).value == "LOT4"
        assert screen.query_one("#cc-dry_ice", Select).value == "no"
        assert screen.query_one("#cc-courier", Input).value == "Zhou Ming, SF"
        assert "批号" in str(screen.query_one("#row-lot").query_one(".cc-label", Static).content)


def test_a_transfer_screen_that_forgets_a_signing_hook_fails_to_build() -> None:
    from wardcrf.screens.coldchain.transfer import TransferScreen

    with pytest.raises(TypeError, match="Incomplete does not define the signing hooks parties, submit"):

        class Incomplete(TransferScreen):
            def what(self) -> str:
                return "nothing"


def test_a_transfer_screen_with_every_signing_hook_builds() -> None:
    from typing import NoReturn

    from wardcrf.screens.coldchain.transfer import TransferScreen

    class Complete(TransferScreen):
        def parties(self) -> list[tuple[str, str]]:
            return []

        def what(self) -> str:
            return "nothing"

        def submit(self, passwords: dict[str, str]) -> NoReturn:
            raise AssertionError("not called")

    assert Complete.__mro__[1] is TransferScreen


# -- issue 14, "nothing typed is ever lost": the manual reading keeps a draft -------------------


def _reading_draft(site, unit: str = "FRZ-1"):
    from wardcrf import drafts

    s = site.unlock("pharmacist", PASSWORD)
    try:
        return drafts.get(s, "coldchain.reading", context=f"unit:{unit}")
    finally:
        s.close()


async def _type_reading(pilot, site, at: str, temp: str) -> ReadingsScreen:
    """Open the readings of FRZ-1, type the time and the temperature, leave the field: kept."""
    from tui_helpers import burst

    await open_home(pilot)
    await pilot.press("m")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReadingsScreen) and screen.current_unit() == "FRZ-1"
    screen.query_one("#rd-at", Input).value = at
    await burst(pilot, *temp, "shift+tab")  # the cursor leaves the temperature for the time
    await until(pilot, lambda: _reading_draft(site) is not None)  # kept in a worker: wait for it
    return screen


async def test_a_typed_manual_reading_is_kept_and_offered_back_at_the_next_sign_in(
    app_for, site, tmp_path, session_for
):
    from tui_helpers import burst
    from wardcrf.screens.app import make_app
    from wardcrf.screens.dashboard import DashboardScreen
    from wardcrf.screens.drafts_screen import DraftsScreen

    add_unit_and_lot(session_for("pharmacist"))
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await _type_reading(pilot, site, "2020-03-16 08:40", "-19.5")
        # A crash now: the draft row is already in the database, nothing saved, no quit.
        kept = _reading_draft(site)
        assert kept is not None
        assert kept.fields == {"at": "2020-03-16 08:40", "temp": "-19.5"} and kept.focus == "at"
    assert session_for("auditor").store.scalar("SELECT count(*) FROM cc_manual_readings") == 0
    again = make_app(site.data_dir)
    async with again.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await burst(pilot, *"pharmacist", "tab", *PASSWORD, "enter")
        assert isinstance(again.screen, DashboardScreen)
        assert "unsaved" in str(again.screen.query_one("#dash-drafts", Static).content).lower()
        await burst(pilot, "u")
        assert isinstance(again.screen, DraftsScreen)
        await settle(pilot)
        assert again.screen.query_one("#drafts", DataTable).get_row_at(0)[2] == "FRZ-1"
        await burst(pilot, "enter")
        await settle(pilot)
        screen = again.screen
        assert isinstance(screen, ReadingsScreen) and screen.current_unit() == "FRZ-1"
        assert screen.query_one("#rd-at", Input).value == "2020-03-16 08:40"
        assert screen.query_one("#rd-temp", Input).value == "-19.5"
        assert again.focused is screen.query_one("#rd-at")  # back where the cursor was
        await burst(pilot, "ctrl+s")  # saving the reopened reading ends its draft
        await until(pilot, lambda: "Saved -19.5 °C for FRZ-1" in text(again, "#rd-message"))
    assert _reading_draft(site) is None
    assert session_for("auditor").store.scalar("SELECT count(*) FROM cc_manual_readings") == 1


async def test_saving_the_manual_reading_leaves_no_draft(app_for, site, tmp_path, session_for):
    from tui_helpers import burst

    add_unit_and_lot(session_for("pharmacist"))
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await _type_reading(pilot, site, "2020-03-16 08:40", "-19.5")
        await burst(pilot, "ctrl+s")
        await until(pilot, lambda: "Saved -19.5 °C for FRZ-1" in text(app, "#rd-message"))
        assert _reading_draft(site) is None
    assert session_for("auditor").store.scalar("SELECT count(*) FROM cc_manual_readings") == 1


async def test_a_refused_manual_reading_keeps_its_draft(app_for, site, tmp_path, session_for):
    from tui_helpers import burst

    add_unit_and_lot(session_for("pharmacist"))
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await _type_reading(pilot, site, "2020-03-17 08:00", "-20")  # tomorrow: refused
        await burst(pilot, "ctrl+s")
        await until(pilot, lambda: "in the future" in text(app, "#rd-message"))
        kept = _reading_draft(site)
        assert kept is not None and kept.fields == {"at": "2020-03-17 08:00", "temp": "-20"}
    assert session_for("auditor").store.scalar("SELECT count(*) FROM cc_manual_readings") == 0


async def test_esc_and_y_on_a_typed_manual_reading_throws_its_draft_away(
    app_for, site, tmp_path, session_for
):
    from tui_helpers import burst
    from wardcrf.screens.dialogs.discard import DiscardDialog

    add_unit_and_lot(session_for("pharmacist"))
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _type_reading(pilot, site, "2020-03-16 08:40", "-19.5")
        await burst(pilot, "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")  # kept: the draft too
        assert app.screen is screen and _reading_draft(site) is not None
        await burst(pilot, "escape", "y")
        assert isinstance(app.screen, ColdChainScreen)
        assert _reading_draft(site) is None
    assert session_for("auditor").store.scalar("SELECT count(*) FROM cc_manual_readings") == 0


async def test_quit_keeps_the_temperature_being_typed_in_the_reading_draft(
    app_for, site, tmp_path, session_for
):
    from tui_helpers import burst

    add_unit_and_lot(session_for("pharmacist"))
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, ReadingsScreen)
        await burst(pilot, *"-19", "ctrl+q")  # never left the field
    kept = _reading_draft(site)
    assert kept is not None and kept.fields["temp"] == "-19" and kept.focus == "temp"


async def test_choosing_another_unit_moves_the_reading_draft_with_it(app_for, site, tmp_path, session_for):
    from tui_helpers import burst

    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    services.add_unit(ph, "FRZ-2", name="spare freezer", location="ward 3")
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _type_reading(pilot, site, "2020-03-16 08:40", "-19.5")
        screen.query_one("#rd-unit", Select).value = "FRZ-2"
        await settle(pilot)
        assert _reading_draft(site) is None  # no ghost reading left for FRZ-1
        kept = _reading_draft(site, "FRZ-2")
        assert kept is not None and kept.fields == {"at": "2020-03-16 08:40", "temp": "-19.5"}
        await burst(pilot, "ctrl+s")
        await until(pilot, lambda: "Saved -19.5 °C for FRZ-2" in text(app, "#rd-message"))
        assert _reading_draft(site, "FRZ-2") is None and _reading_draft(site) is None


async def _readings(pilot) -> ReadingsScreen:
    """The manual readings of FRZ-1, the cursor in the temperature."""
    await open_home(pilot)
    await pilot.press("m")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReadingsScreen) and screen.current_unit() == "FRZ-1"
    screen.query_one("#rd-temp", Input).focus()
    return screen


async def test_readings_typed_one_behind_the_other_are_each_saved(app_for, site, session_for):
    """A pharmacist typing readings from a paper log, Enter after each, faster than a busy laptop saves:
    the second reading waited for the first's save (which empties the field) instead of being typed into
    the field and then wiped by it."""
    from tui_helpers import burst

    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _readings(pilot)
        await burst(pilot, *"-19.5", "enter", *"-18", "enter", *"-21.25")
        await until(pilot, lambda: "Saved -18 °C for FRZ-1" in text(app, "#rd-message"))
        assert screen.query_one("#rd-temp", Input).value == "-21.25"  # the third, typed, not yet saved
    s = session_for("auditor")
    temps = [r[0] for r in s.store.execute("SELECT temp_c FROM cc_manual_readings ORDER BY rowid")]
    assert temps == [-19.5, -18.0]


async def test_keys_typed_behind_a_refused_reading_are_dropped(app_for, site, session_for):
    from tui_helpers import burst

    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _readings(pilot)
        await burst(pilot, *"-400", "enter", *"-18")  # -400 °C: not a plausible reading
        await until(pilot, lambda: screen.query_one("#rd-message").has_class("refusal"))
        await settle(pilot)
        assert screen.query_one("#rd-temp", Input).value == "-400"  # kept to correct, nothing appended
    s = session_for("auditor")
    assert s.store.scalar("SELECT count(*) FROM cc_manual_readings") == 0


async def test_a_reason_typed_behind_a_saved_disposition_is_kept(app_for, site, tmp_path, session_for):
    """ctrl+s and the next kit's reason typed at once: saving clears the reason field, so what was typed
    behind waits for it instead of being wiped; behind a refusal it is dropped, the reason kept to fix."""
    from tui_helpers import burst

    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _excursions(pilot)
        kits = screen.query_one("#ex-kits", SelectionList)
        kits.deselect("K003")
        screen.query_one("#ex-decision", Select).value = "discard"
        reason = screen.query_one("#ex-reason", Input)
        reason.focus()
        await settle(pilot)
        await burst(pilot, "ctrl+s", *"xyz")  # no reason: refused; "xyz" typed before it was read
        await until(pilot, lambda: "needs a reason" in text(app, "#ex-message"))
        await settle(pilot)
        assert reason.value == ""
        await burst(pilot, *"sponsor advice", "ctrl+s", *"next")
        await until(pilot, lambda: "Recorded discard of K002" in text(app, "#ex-message"))
        await settle(pilot)
        assert reason.value == "next"
    s = session_for("auditor")
    assert custody.is_discarded(s.store, "K002")
