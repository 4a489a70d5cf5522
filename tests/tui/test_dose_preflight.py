"""The dose wizard checks the day's rules at step 1, and the focus goes where a person expects
(issue 14, finding 6).

Found: all five steps could be filled on a day when no dose is allowed (only
the review refused: "one dose per day"); after a scan the focus went to the
filled Lot field; after a refused scan it moved on too; after "Correct the
marked fields first" it stayed where it was.
"""

from __future__ import annotations

import pytest
from dose_support import P1, P2
from textual.widgets import Input, Static
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.dose_wizard import DoseWizard
from wardcrf.screens.participant import ParticipantScreen

from wardcrf.workflow import dose_visit

# Format 1's dose wizard's own step-1 day check (`dose_visit.check_day`) and its words: since the flip
# MEXCOVID 1.0 opens the administration wizard, so these run on MEXCOVID 1.0 by format 1
# (`format1_mexcovid`). The administration wizard's focus after a scan is tested in
# test_administration_wizard; its step-1 refusals on MEXCOVID (the engine's words) are in
# test_administration_mexcovid.py. This file stays while format 1 runs (a format-1 file no shipped file re-encodes).
pytestmark = pytest.mark.usefixtures("format1_mexcovid")


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


async def _wizard(pilot, pid: str = P1) -> DoseWizard:
    await settle(pilot)
    pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DoseWizard)
    return pilot.app.screen


def _dose_today(site) -> None:
    s = site.unlock("clinician", PASSWORD)
    try:
        dose_visit.record_dose_visit(
            s,
            P1,
            pre_vitals={
                "time": "2020-03-16 08:40",
                "temp": "36.8",
                "pulse": "88",
                "resp": "20",
                "oxysat": "95",
            },
            dose={
                "kit_id": "KIT-A1",
                "lot": "LOT-A",
                "particles": "2.0e8",
                "volume": "6",
                "start": "2020-03-16 08:50",
                "end": "2020-03-16 08:55",
            },
            post_vitals={
                "time": "2020-03-16 08:58",
                "temp": "36.9",
                "pulse": "86",
                "resp": "19",
                "oxysat": "97",
            },
            post_dose_check={"time": "2020-03-16 08:59", "events": ["none"]},
        )
    finally:
        s.close()


async def test_a_second_dose_today_is_refused_at_step_1_in_the_domains_words(dose_app, dose_site):
    _dose_today(dose_site)
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _wizard(pilot)
        shown = _text(app, "#wizard-dose")
        assert "No dose can be given now" in shown and "one dose per day" in shown
        await burst(pilot, *"KIT-L1", "enter", "ctrl+n")
        assert wiz.step == 0
        assert "one dose per day" in _text(app, "#wizard-message")


async def test_a_late_dose_is_said_at_step_1(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _wizard(pilot, P2)
        shown = _text(app, "#wizard-dose")
        assert "after its window: it will be recorded as LATE" in shown


async def test_on_time_dose_says_nothing_more(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _wizard(pilot)
        shown = _text(app, "#wizard-dose")
        assert "No dose" not in shown and "LATE" not in shown and "Checking" not in shown


async def test_focus_after_an_accepted_scan_is_not_the_filled_lot(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _wizard(pilot)
        wiz.query_one("#dose-field-volume", Input).value = ""  # something still to type
        await burst(pilot, *"KIT-A1", "enter")
        assert wiz.query_one("#dose-field-lot", Input).value == "LOT-A"
        assert app.focused is wiz.query_one("#dose-field-volume")  # the first field still empty


async def test_focus_after_a_refused_scan_stays_on_the_scan_selected(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _wizard(pilot)
        await burst(pilot, *"KIT-Q1", "enter")  # quarantined
        scan = wiz.query_one("#kit-scan", Input)
        assert app.focused is scan
        await burst(pilot, *"KIT-A1", "enter")  # the next scan replaces the refused one
        assert scan.value == "KIT-A1" and wiz.kit is not None and wiz.kit.ok


async def test_focus_after_correct_the_marked_fields_goes_to_the_first_marked(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _wizard(pilot)
        # pulse out of range (the vitals step opens on its time: Tab to the temperature first)
        await burst(pilot, *"KIT-A1", "enter", "ctrl+n", "tab", *"36.8", "tab", *"999", "tab")
        await burst(pilot, "ctrl+n")
        assert wiz.step == 1 and "Correct the marked fields" in _text(app, "#wizard-message")
        assert app.focused is wiz.query_one("#pre-field-pulse")
