"""Pictures of the dashboard on a ward with something in every panel (`dash_support`).

80x24 shows one panel at a time (participants, then the safety panel via
its key); 120x40 shows them side by side; English and Chinese. Fixed clock
and a site built under it; `settle` waits for every panel's worker and for
each table to measure its rows before the picture is taken.
"""

from __future__ import annotations

import pytest
from tui_helpers import settle

SIZES = [(80, 24), (120, 40)]

# A busy MEXCOVID 1.0 ward's dashboard, on the engine (its Doses column, visit forms owed last); PALM's and
# PALM007's are pictured by test_dashboard_format2_small.


@pytest.fixture
def site(busy_site):
    return busy_site


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_busy_dashboard(snap_compare, app_for, size, language):
    app = app_for("clinician", language=language)
    assert snap_compare(app, terminal_size=size, run_before=settle)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_busy_dashboard_safety_panel_80x24(snap_compare, app_for, language):
    app = app_for("investigator", language=language)

    async def safety(pilot):
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=safety)


def test_busy_dashboard_freezer_panel_80x24(snap_compare, app_for):
    app = app_for("pharmacist")

    async def freezer(pilot):
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=freezer)
