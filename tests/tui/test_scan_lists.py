"""List fields a scanner types into (issue 14, findings 4 and 10).

Finding 4: "drop the last" did nothing in the kit and photo lists (the text
box's cut took ctrl+x) and wiped whole fields elsewhere ("Received by").
Undo the last scan is now a key the text box does not claim (ctrl+z), in
every list field, shown in the footer; ctrl+x edits nothing.
"""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import burst, settle
from wardcrf.screens.coldchain.handover import HandoverScreen
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.widgets.entry_list import EntryList


async def _open(pilot, key: str):
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)
    await pilot.press(key)
    await settle(pilot)
    return pilot.app.screen


def _footer(app) -> str:
    from textual.widgets._footer import FooterKey

    return " ".join(f"{k.key_display} {k.description}" for k in app.screen.query(FooterKey))


async def test_undo_last_scan_in_the_kit_list_and_shown_in_the_footer(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        assert isinstance(screen, ReceiptScreen)
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"K1", "enter", *"K2", "enter", *"K3", "enter")
        assert kits.entries == ["K1", "K2", "K3"]
        assert "^z Undo last scan" in _footer(app)
        await burst(pilot, "ctrl+z")
        assert kits.entries == ["K1", "K2"]
        assert "K3" not in str(kits.query_one(".entries", Static).content)
        await burst(pilot, "ctrl+z", "ctrl+z", "ctrl+z")  # nothing left to undo: no harm
        assert kits.entries == []


async def test_undo_last_scan_in_the_photo_list(app_for, tmp_path):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "h")
        assert isinstance(screen, HandoverScreen)
        photos = screen.query_one("#cc-photos", EntryList)
        photos.focus()
        await settle(pilot)
        await burst(pilot, *"sha256:" + "a" * 64, "enter", *"sha256:" + "b" * 64, "enter")
        assert len(photos.entries) == 2
        await burst(pilot, "ctrl+z")
        assert photos.entries == ["sha256:" + "a" * 64]


async def test_ctrl_x_wipes_no_field(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        received = screen.query_one("#cc-received_by", Input)
        assert received.value == "pharmacist"
        received.focus()  # entering a field selects its value
        await settle(pilot)
        await burst(pilot, "ctrl+x")
        assert received.value == "pharmacist"
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"K1", "enter", *"K2")
        await burst(pilot, "ctrl+x")  # not a cut of the half-typed scan either
        assert kits.entries == ["K1"] and kits.input.value == "K2"


async def test_undo_last_photo_in_a_form_photo_field(app_for):
    from wardcrf.screens.form_screen import FormScreen

    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(FormScreen(app.ward, "consent"))
        await settle(pilot)
        field = app.screen.query_one("#field-photos", Input)
        field.value = "@/tmp/page1.jpg, @/tmp/page2.jpg"
        field.focus()
        await settle(pilot)
        assert "^z Undo last photo" in _footer(app)
        await burst(pilot, "ctrl+z")
        assert field.value == "@/tmp/page1.jpg"
        app.screen.query_one("#field-witness_1", Input).focus()
        await settle(pilot)
        assert "Undo last photo" not in _footer(app)  # only where there is a list


# -- finding 10: scanner bursts ---------------------------------------------------------------


async def test_scans_run_together_with_no_gap_are_refused_in_one_line_and_not_added(app_for):
    """Found: "EXO-0101EXO-0102EXO-0103" became one kit, accepted without a format check."""
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO-0101EXO-0102EXO-0103", "enter")
        assert kits.entries == []
        said = str(kits.query_one(".entry-problem", Static).content)
        assert "scanned with no gap" in said and "EXO-0101, EXO-0102, EXO-0103" in said
        assert "\n" not in said  # one line
        await burst(pilot, *"EXO-0101", "enter")  # the next scan replaces the refused one
        assert kits.entries == ["EXO-0101"] and kits.input.value == ""
        assert str(kits.query_one(".entry-problem", Static).content) == ""


async def test_each_scan_is_checked_against_the_id_rule_at_once(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO 0102", "enter", *"exo-0102", "enter")
        assert kits.entries == ["EXO-0102"]  # the blank inside was refused; case does not matter
        await burst(pilot, *"EXO-0103,EXO-0104", "enter")  # a comma ends an id: both listed
        assert kits.entries == ["EXO-0102", "EXO-0103", "EXO-0104"]
