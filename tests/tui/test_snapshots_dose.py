"""Pictures of the dose wizard (kit scanned; review explaining a late dose) and the vitals chart.

80x24 and 120x40, English and Chinese, under the fixed clock on the dose
site of `dose_support` (nothing random is drawn: event ids stay off these
screens). Update with `pytest tests/tui/test_snapshots_dose.py --snapshot-update`
and review the SVGs before committing.
"""

from __future__ import annotations

import pytest
from dose_support import P1, P2
from tui_helpers import PASSWORD, settle
from wardcrf.screens.participant import ParticipantScreen

SIZES = [(80, 24), (120, 40)]

# Pictures of format 1's dose wizard (its widget ids, its words): since the flip MEXCOVID 1.0 opens the
# administration wizard, so these run on MEXCOVID 1.0 by format 1 (`format1_mexcovid`), the wizard they
# picture, as long as format 1 exists. MEXCOVID's administration wizard has its own: test_snapshots_administration.py.
pytestmark = pytest.mark.usefixtures("format1_mexcovid")


async def _wizard(pilot, pid: str) -> None:
    await settle(pilot)
    pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)


async def _steady(pilot) -> None:
    """No blinking cursor: the picture must not depend on when it is taken."""
    from textual.widgets import Input

    for widget in pilot.app.screen.query(Input).results(Input):
        widget.cursor_blink = False
    await settle(pilot)


async def _type(pilot, widget_id: str, text: str) -> None:
    pilot.app.screen.query_one(f"#{widget_id}").focus()
    await pilot.press(*text)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_wizard_kit_scanned(snap_compare, dose_app, size, language):
    app = dose_app("clinician", language=language)

    async def scan(pilot):
        await _wizard(pilot, P1)
        await pilot.press(*"KIT-A1", "enter")
        await settle(pilot)
        await _steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=scan)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_wizard_review_late_dose(snap_compare, dose_app, size, language):
    app = dose_app("clinician", language=language)

    async def review(pilot):
        await _wizard(pilot, P2)
        await pilot.press(*"KIT-L1", "enter")
        await settle(pilot)
        await _type(pilot, "dose-field-particles", "2.0e8")
        await _type(pilot, "dose-field-volume", "6")
        await pilot.press("ctrl+n")
        await settle(pilot)
        for name, value in (("temp", "36.8"), ("pulse", "88"), ("resp", "20"), ("oxysat", "95")):
            await _type(pilot, f"pre-field-{name}", value)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await _type(pilot, "dose-field-end", "")
        await pilot.press("ctrl+t", "ctrl+n")
        await settle(pilot)
        for name, value in (("temp", "36.9"), ("pulse", "90"), ("resp", "19"), ("oxysat", "97")):
            await _type(pilot, f"post-field-{name}", value)
        await pilot.press("ctrl+n")
        await settle(pilot)
        pilot.app.screen.query_one("#check-field-events").select("none")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await _steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=review)


def _dosed(site) -> None:
    """Dose 1 of WUH01-001 with its vitals, through the service (the chart's data)."""
    from wardcrf.workflow import dose_visit

    s = site.unlock("clinician", PASSWORD)
    try:
        dose_visit.record_dose_visit(
            s,
            P1,
            pre_vitals={"time": "08:40", "temp": "37.6", "pulse": "96", "resp": "24", "oxysat": "93"},
            dose={
                "kit_id": "KIT-A1",
                "lot": "LOT-A",
                "particles": "2.0e8",
                "volume": "6",
                "start": "08:45",
                "end": "08:55",
            },
            post_vitals={
                "time": "09:00",
                "temp": "37.2",
                "pulse": "90",
                "resp": "21",
                "oxysat": "96",
                "sysbp": "128",
                "diabp": "82",
            },
            post_dose_check={"events": ["none"]},
        )
    finally:
        s.close()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_vitals_chart(snap_compare, dose_site, dose_app, size, language):
    _dosed(dose_site)
    app = dose_app("clinician", language=language)

    async def chart(pilot):
        await settle(pilot)
        pilot.app.push_screen(ParticipantScreen(pilot.app.ward, P1))
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=chart)
