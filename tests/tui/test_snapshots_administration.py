"""Pictures of MEXCOVID on the engine (MEXCOVID 1.0 runs on its format-2 file since the flip): the
administration wizard at each of its six steps, and the dashboard, at 100x30 and 80x24.

The wizard is driven on the dose ward of `dose_support` (WUH01-001's dose 1 due now, KIT-A1 at the
bedside), the dashboard on the busy ward of `dash_support`, both under the fixed clock (no event id on
these screens). Update with `pytest tests/tui/test_snapshots_administration.py --snapshot-update` and
review the SVGs before committing.
"""

from __future__ import annotations

import pytest
from dose_support import P1, Driver
from textual.widgets import Input, SelectionList
from tui_helpers import settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.participant import ParticipantScreen

SIZES = [(100, 30), (80, 24)]
SIZE_IDS = ["100x30", "80x24"]
STEPS = ["kit", "before", "given", "after", "check", "review"]


@pytest.fixture
def site(busy_site):
    return busy_site


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_mexcovid_engine_dashboard(snap_compare, app_for, size):
    app = app_for("clinician")
    assert snap_compare(app, terminal_size=size, run_before=settle)


async def _type(pilot, driver: Driver, part: str, name: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#{driver.field(part, name)}", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def _vitals(pilot, driver: Driver, part: str) -> None:
    for name, value in (("temp", "36.8"), ("pulse", "88"), ("resp", "20"), ("oxysat", "95")):
        await _type(pilot, driver, part, name, value)
    if part == "pre":  # the vitals after: their time stamped now (09:00) when the step is left
        await _type(pilot, driver, part, "time", "2020-03-16 08:40")


async def _to_step(pilot, step: int) -> None:
    """The wizard opened on WUH01-001 and filled, step by step, up to `step` (each step's values typed)."""
    await settle(pilot)
    pilot.app.push_screen(ParticipantScreen(pilot.app.ward, P1))
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    wiz = pilot.app.screen
    assert isinstance(wiz, AdministrationWizard)
    driver = Driver(wiz)
    await pilot.press(*"KIT-A1", "enter")
    await settle(pilot)
    for i in range(step):
        key = STEPS[i]
        if key == "before":
            await _vitals(pilot, driver, "pre")
        elif key == "given":
            await _type(pilot, driver, "dose", "start", "2020-03-16 08:50")
            await _type(pilot, driver, "dose", "end", "2020-03-16 08:55")
        elif key == "after":
            await _vitals(pilot, driver, "post")
        elif key == "check":
            wiz.query_one(f"#{driver.field('check', 'events')}", SelectionList).select("none")
            await pilot.pause()
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.step == i + 1, (key, str(wiz.query_one("#wizard-message").render()))
    for widget in wiz.query(Input).results(Input):
        widget.cursor_blink = False
    await settle(pilot)


@pytest.mark.parametrize("step", range(len(STEPS)), ids=STEPS)
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_mexcovid_administration_wizard(snap_compare, dose_app, size, step):
    app = dose_app("clinician")

    async def go(pilot):
        await _to_step(pilot, step)

    assert snap_compare(app, terminal_size=size, run_before=go)
