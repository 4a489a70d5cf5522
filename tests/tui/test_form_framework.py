"""The one form framework (issue 16): record forms and custody forms are built, checked and marked alike.

A custody form's own checks (a whole number of kits, a yes/no answered, a
temperature) and the service's field problems are marked on their fields the
way a record form's are, the cursor goes to the first marked field, and
nothing is signed or saved; a corrected value clears its mark as it is typed.
"""

from __future__ import annotations

import pytest
from cc_helpers import cold_chain_site
from test_coldchain import fill, open_home, scan, sign, text, until
from test_coldchain_thaw import bedside_kit, open_thaw, open_unit
from textual.widgets import Input, Static
from tui_helpers import settle
from wardcrf.screens.coldchain.handover import HandoverScreen
from wardcrf.screens.coldchain.home import ColdChainScreen
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.dialogs.sign import SignatureDialog
from wardcrf.screens.widgets.entry_list import EntryList
from wardcrf.screens.widgets.fields import FieldGroup, FieldSpec, whole_number

from wardcrf import protocol
from wardcrf.coldchain import custody, services

ARRIVAL = {"dry_ice": "yes", "intact": "yes", "frozen": "yes"}


def marked(screen, name: str) -> bool:
    """The field's label is red and its problem line is shown."""
    row = screen.query_one(f"#row-{name}")
    line = screen.query_one(f"#problem-{name}", Static)
    return row.has_class("-invalid") and line.has_class("-shown")


def problem(screen, name: str) -> str:
    return str(screen.query_one(f"#problem-{name}", Static).content)


async def open_receipt(pilot) -> ReceiptScreen:
    await open_home(pilot)
    await pilot.press("r")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ReceiptScreen)
    return pilot.app.screen


# -- a screen's own checks: marked, the cursor on the first, nothing signed --------------------


async def test_a_custody_forms_own_checks_mark_their_fields_before_anyone_signs(app_for, site, session_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_receipt(pilot)
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K301")
        fill(screen, lot="LOT9", product="p", expiry="2021-06-30", release_ref="QP-9", quantity="two")
        fill(screen, shipper="SH9", to="pharmacy", logger_serial="LG-9", courier_user="coordinator")
        fill(screen, dry_ice="yes", intact="yes")
        # frozen left blank: not taken for "no"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not a whole number" in text(app, "#cc-form-message"))
        # refused: both marked, the cursor on the first, nobody asked to sign
        assert marked(screen, "quantity") and "Quantity two" in problem(screen, "quantity")
        assert marked(screen, "frozen") and "Choose yes or no" in problem(screen, "frozen")
        assert not marked(screen, "intact")
        assert screen.focused is screen.query_one("#cc-quantity", Input)
        assert pilot.app.screen is screen and not isinstance(pilot.app.screen, SignatureDialog)
        # corrected as typed: the mark goes at once (the blank yes/no stays marked until answered)
        await pilot.press("end", "backspace", "backspace", "backspace", "1")
        await settle(pilot)
        assert screen.query_one("#cc-quantity", Input).value == "1"
        assert not marked(screen, "quantity") and marked(screen, "frozen")
        fill(screen, frozen="no")
        await settle(pilot)
        assert not marked(screen, "frozen")
        # accepted: the screen's checks pass and the signatures are asked
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, SignatureDialog))
    assert services.lot_info(session_for("auditor").store, "LOT9") is None  # nothing saved (not signed)


@pytest.mark.parametrize("typed", ["²", "١", "-1", "1.5", "9" * 400 + "x", "1\x1b[2J"])
async def test_a_quantity_that_is_not_ascii_digits_is_refused_on_the_screen(app_for, site, typed):
    """Hostile: `str.isdigit` takes "²" (which `int` then refuses: a crash in the worker)."""
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_receipt(pilot)
        fill(screen, quantity=typed, **ARRIVAL)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not a whole number" in text(app, "#cc-form-message"))
        assert marked(screen, "quantity") and pilot.app.screen is screen


async def test_a_storage_units_temperatures_are_checked_as_typed(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_unit(pilot)
        for bad in ("cold", "nan", "inf", "-1e999", "２０"):
            fill(screen, low=bad)
            await settle(pilot)
            assert marked(screen, "low"), bad
            assert "is not a temperature" in problem(screen, "low")
        for good in ("-25", "-20,5", "−18", ""):
            fill(screen, low=good)
            await settle(pilot)
            assert not marked(screen, "low"), good


# -- the service's field problems are marked on a custody form as on a record form ------------


async def test_the_services_field_problems_are_marked_on_a_custody_form(app_for, site, session_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_receipt(pilot)
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K301")
        fill(screen, lot="LOT8", product="p", expiry="2021-13-40", release_ref="QP-8", quantity="2")
        fill(screen, shipper="SH8", to="pharmacy", **ARRIVAL)
        screen.query_one("#cc-lot", Input).focus()
        await pilot.press("ctrl+s")
        # checked before anyone signs: the service names the expiry and the quantity
        await until(pilot, lambda: "not saved" in text(app, "#cc-form-message"))
        assert marked(screen, "expiry") and marked(screen, "quantity")
        assert "1 kit id(s) scanned" in problem(screen, "quantity")
        assert not marked(screen, "lot")
        assert screen.focused is screen.query_one("#cc-expiry", Input)
        assert pilot.app.screen is screen
    assert services.lot_info(session_for("auditor").store, "LOT8") is None


# -- what is saved is what was on the screen when ctrl+s was pressed ---------------------------


async def test_a_custody_form_saves_what_was_typed_when_its_save_began(app_for, site, tmp_path, session_for):
    """The service runs in a thread while the person may still type: the save takes a copy."""
    cold_chain_site(site, tmp_path, pending=False)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_home(pilot)
        await pilot.press("h")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, HandoverScreen)
        await scan(pilot, screen.query_one("#cc-kits", EntryList), "K001")
        fill(screen, at="2020-03-16 08:50", to="bedside:P-001", to_user="clinician", sign_later="yes")
        fill(screen, **{"from": "FRZ-1"})
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, SignatureDialog))
        # typed under the signature dialog, after the save began: not part of this save
        fill(screen, to="bedside:P-002", condition="changed meanwhile")
        screen.remember()
        await sign(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    last = custody.last_step(session_for("auditor").store, "K001")
    assert last["to_location"] == "bedside:P-001"


# -- one scanned kit id: refused at the scan, marked, the cursor stays --------------------------


async def test_a_kit_field_refuses_a_scan_that_is_no_kit_id_and_takes_a_good_one(app_for, site, tmp_path):
    bedside_kit(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_thaw(pilot)
        await pilot.press(*"K 1", "enter")
        await settle(pilot)
        assert marked(screen, "kit") and "contains a space" in problem(screen, "kit")
        assert screen.focused is screen.query_one("#cc-kit", Input)
        await pilot.press(*"k001", "enter")  # the refused scan was left selected: this one replaces it
        await settle(pilot)
        assert screen.query_one("#cc-kit", Input).value == "K001"
        assert not marked(screen, "kit") and text(app, "#cc-form-message") == ""
        assert screen.focused is screen.query_one("#cc-start", Input)


# -- the field descriptions ---------------------------------------------------------------------


def test_a_field_of_an_unknown_kind_fails_where_it_is_declared() -> None:
    with pytest.raises(ValueError, match="kind 'barcode' is not one of text, choice"):
        FieldSpec("kit", "cc.f_kit", kind="barcode")


def test_a_field_group_needs_a_protocol_form_or_the_screens_own_fields() -> None:
    with pytest.raises(TypeError, match="needs a protocol form or the screen's own specs"):
        FieldGroup(zone="UTC", user="u", values={})
    group = FieldGroup(specs=[FieldSpec("lot", "cc.f_lot")], zone="UTC", user="u", values={})
    with pytest.raises(TypeError, match="holds a screen's own fields"):
        _ = group.form


def test_a_protocol_field_becomes_the_row_its_type_asks_for() -> None:
    def field(type_: str, **more) -> protocol.Field:
        return protocol.Field(name="x", type=type_, label={"en": "X"}, **more)

    choices = (protocol.Choice(code="a", label={"en": "A"}),)
    assert FieldSpec.of(field("choice", choices=choices)).kind == "choice"
    assert FieldSpec.of(field("choice", choices=choices, multiple=True)).kind == "choices"
    assert FieldSpec.of(field("boolean")).kind == "boolean"
    assert FieldSpec.of(field("photo")).kind == "photo"
    assert FieldSpec.of(field("float", unit="°C", required=True)).kind == "text"
    row = FieldSpec.of(field("float", unit="°C", required=True))
    assert (row.unit, row.required, row.label_in("en")) == ("°C", True, "X")


def test_a_whole_number_is_ascii_digits_only() -> None:
    assert whole_number("12") and whole_number("0")
    for typed in ("", "²", "١٢", "1.0", "-1", " 1", "1\n"):
        assert not whole_number(typed), typed
