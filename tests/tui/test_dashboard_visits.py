"""The ward queue on a format-2 ward shows what calendar visits owe (issue #17; Pilot).

PALM's daily inpatient visit (INPT, `anchor = "randomization"`, `window = ["0d", "0d"]`) owes `vitals` every
day of the stay (the demo records the days before): the dashboard's participants panel (the ward queue, `workflow.ward_page` →
`status.list_row`, the same `visits_owed` as `participant list --json`) shows it in the row's next
last column ("Visit forms owed"); recorded, it is gone. Keys are sent in a burst (`tui_helpers.burst`); every wait is on a
condition (`settle`), never on the clock.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from textual.widgets import DataTable
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.app import make_app
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.ward import Ward

from wardcrf import workflow
from wardcrf.engine import model
from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"  # the suite's clock (conftest): 02:00 in Kinshasa
DUE = re.compile(r"DAY (\d+): vitals \(window closing\)")  # today's inpatient day: its window is the day


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from wardcrf.sync import engine_demo

    data = tmp_path_factory.mktemp("palm-visits-template") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        got = engine_demo.seed(
            data, model.shipped("palm.toml"), PASSWORD, now=datetime.fromisoformat(FAKE_NOW)
        )
    return data, got.ready


@pytest.fixture
def palm_ward(_template, tmp_path) -> tuple[Site, str]:
    """The PALM demo (randomized participants, yesterday's rounds recorded); one randomized this morning."""
    template, ready = _template
    data = tmp_path / "site"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.lock"))
    assert ready, "the demo randomizes a participant this morning"
    return Site.open(data), sorted(ready)[0]


def _row(screen: DashboardScreen, pid: str) -> list[str]:
    table = screen.query_one("#participants", DataTable)
    return [str(c) for c in table.get_row(pid)]


async def test_the_ward_queue_shows_the_daily_visits_vitals_until_they_are_recorded(palm_ward) -> None:
    site, pid = palm_ward
    ward = Ward(site, site.unlock("clinician", PASSWORD))
    app = make_app(site.data_dir, ward=ward)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DashboardScreen)
        due = DUE.search(_row(screen, pid)[-1])  # the visit forms owed: the last column
        assert due is not None, _row(screen, pid)
        table = screen.query_one("#participants", DataTable)
        shown = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        assert not [c for c in shown if "(overdue)" in c], shown  # the days before: rounds recorded
        # a burst: to the next panels and back to the queue, then reload, before the app looks at the first
        await burst(pilot, "right_square_bracket", "right_square_bracket", "1", "r")
        await settle(pilot)
        assert screen.current == "participants"
        assert due.group(0) in _row(screen, pid)[-1], _row(screen, pid)
        c = site.unlock("clinician", PASSWORD)
        try:
            workflow.submit(
                c,
                "vitals",
                {"timepoint": "daily", "time": "2020-03-16T01:55:00+01:00", "temp": "37.9", "pulse": "90"},
                participant=pid,
            )
        finally:
            c.close()
        await burst(pilot, "r")
        await settle(pilot)
        assert f"DAY {due.group(1)}: vitals" not in _row(screen, pid)[-1], _row(screen, pid)


async def test_a_format2_ward_counts_doses_given_of_planned_not_days(palm_ward) -> None:
    """PALM's dashboard: format 1's "Day" (days since enrollment of the doses planned, MEXCOVID's
    one dose a day) read "4/3" for a ZMapp patient with 2 of 3 infusions given. A format-2 ward's column
    says "Doses" and counts doses given of planned, as `participant list` does; never above the plan."""
    site, _ = palm_ward
    ward = Ward(site, site.unlock("clinician", PASSWORD))
    reader = site.unlock("clinician", PASSWORD)
    try:
        listed = {r["id"]: r for r in workflow.list_participants(reader)}
    finally:
        reader.close()
    app = make_app(site.data_dir, ward=ward)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DashboardScreen)
        table = screen.query_one("#participants", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "Doses" in labels and "Day" not in labels, labels
        col = labels.index("Doses")
        assert table.row_count == len(listed)
        dosed = 0
        for pid, r in listed.items():
            cell = _row(screen, pid)[col]
            given, planned = r["doses_given"], r["doses_planned"]
            if planned:
                assert cell == f"{given}/{planned}", (pid, cell, r)
                n, d = (int(x) for x in cell.split("/"))
                assert n <= d
                dosed += given > 0
            else:
                assert cell in ("", str(given)), (pid, cell)
        assert dosed, "the demo has given infusions"
