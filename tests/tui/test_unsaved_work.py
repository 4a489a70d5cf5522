"""Work is never thrown away without asking (issue 14, finding 3).

Esc discarded a fully typed receipt and a vitals form, and ctrl+q quit the
dose wizard mid-visit. Now Esc on a form with anything typed asks
"Discard what you typed? y/N" (No unless `y`); a form with nothing typed
closes at once. ctrl+q with a typed form keeps it as a draft at once, then
asks "Quit? y/N" (No unless `y`): a slip on ctrl+q ends nothing.
"""

from __future__ import annotations

import mexcovid_engine
import pytest
from dose_support import P1
from textual.widgets import Input
from tui_helpers import PASSWORD, burst, enroll, settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.dialogs.discard import DiscardDialog
from wardcrf.screens.dialogs.quit import QuitDialog
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.section_grid import SectionGridScreen
from wardcrf.screens.step_wizard import StepWizard

from wardcrf import drafts


async def _vitals(pilot, pid: str) -> FormScreen:
    await settle(pilot)
    pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    assert isinstance(pilot.app.screen, FormScreen)
    return pilot.app.screen


async def test_esc_on_a_typed_form_asks_and_no_keeps_it(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _vitals(pilot, pid)
        form.query_one("#field-temp", Input).focus()
        await settle(pilot)
        await burst(pilot, *"38.2", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")
        assert app.screen is form and form.query_one("#field-temp", Input).value == "38.2"
        await burst(pilot, "escape", "enter")  # Enter: the default, No
        assert app.screen is form
        await burst(pilot, "escape", "escape")  # Esc in the question: No too
        assert app.screen is form
        await burst(pilot, "escape", "y")
        assert isinstance(app.screen, ParticipantScreen)


async def test_esc_on_an_untouched_form_closes_at_once(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals(pilot, pid)
        await burst(pilot, "escape")
        assert isinstance(app.screen, ParticipantScreen)


async def test_esc_on_a_typed_receipt_asks(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        receipt = app.screen
        assert isinstance(receipt, ReceiptScreen)
        await burst(pilot, "escape")  # only the defaults (time, place, receiver): nothing typed
        assert not isinstance(app.screen, (ReceiptScreen, DiscardDialog))
        await pilot.press("r")
        await settle(pilot)
        receipt = app.screen
        await burst(pilot, *"LOT7", "tab", *"Exo", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")
        assert app.screen is receipt and receipt.query_one("#cc-lot", Input).value == "LOT7"


async def test_esc_in_the_dose_wizard_after_a_scan_asks(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, P1))
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        wiz = app.screen
        assert isinstance(wiz, StepWizard)  # the administration wizard (test_dose_wizard._open)
        assert isinstance(wiz, AdministrationWizard) == mexcovid_engine.runs_engine()
        await burst(pilot, *"KIT-A1", "enter", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")
        assert app.screen is wiz and wiz.kit is not None and wiz.kit.ok


@pytest.mark.parametrize("answer", ["n", "y"])
async def test_esc_on_a_scored_ct_grid_asks(answer, app_for, site, tmp_path):
    from test_ct_grid import _open_grid

    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await _open_grid(pilot, pid)
        await burst(pilot, "3", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, answer)
        if answer == "n":
            assert app.screen is grid and grid.values["r_upper_apical"] == 3
        else:
            assert not isinstance(app.screen, SectionGridScreen)


async def test_ctrl_q_in_a_typed_dose_wizard_keeps_the_draft_and_asks(dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, P1))
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        wiz = app.screen
        assert isinstance(wiz, StepWizard)  # the administration wizard (test_dose_wizard._open)
        assert isinstance(wiz, AdministrationWizard) == mexcovid_engine.runs_engine()
        await burst(pilot, *"KIT-A1", "enter", "ctrl+q")
        assert isinstance(app.screen, QuitDialog)
        # the wizard's own draft ("dose_visit" for format 1's, "administration_visit" on the engine)
        key = wiz.draft_key()
        assert key is not None and key[1] == f"participant:{P1}"
        s = dose_site.unlock("clinician", PASSWORD)  # kept before the question is even answered
        try:
            kept = drafts.get(s, key[0], context=key[1])
        finally:
            s.close()
        assert kept is not None and kept.fields["kit"] == "KIT-A1"
        await burst(pilot, "n")
        assert app.screen is wiz and app.return_code is None
        await burst(pilot, "ctrl+q", "enter")  # Enter: the default, No
        assert app.screen is wiz and app.return_code is None
        await burst(pilot, "ctrl+q", "y")
        assert app.return_code == 0


async def test_ctrl_q_with_nothing_typed_quits_at_once(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals(pilot, pid)
        await burst(pilot, "ctrl+q")
        assert app.return_code == 0 and not isinstance(app.screen, QuitDialog)


async def test_esc_on_a_typed_manual_reading_asks(app_for, session_for):
    """A temperature typed for a storage unit is data too: Esc asks before it is lost."""
    from cc_helpers import add_unit_and_lot
    from wardcrf.screens.coldchain.readings import ReadingsScreen

    add_unit_and_lot(session_for("pharmacist"))
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await burst(pilot, "c", "m")
        readings = app.screen
        assert isinstance(readings, ReadingsScreen)
        await burst(pilot, "escape")  # only the defaults (the unit, the time now): nothing typed
        assert not isinstance(app.screen, (ReadingsScreen, DiscardDialog))
        await burst(pilot, "m")
        readings = app.screen
        assert isinstance(readings, ReadingsScreen)
        readings.query_one("#rd-temp", Input).focus()
        await burst(pilot, *"-19.5", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")
        assert app.screen is readings and readings.query_one("#rd-temp", Input).value == "-19.5"
        await burst(pilot, "escape", "y")
        assert not isinstance(app.screen, (ReadingsScreen, DiscardDialog))
