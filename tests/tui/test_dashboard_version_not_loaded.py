"""The dashboard's ward list flags a participant on a protocol version not loaded here (issue 17).

Found: WUH01-001, moved to MEXCOVID 1.2 by an amendment applied on another laptop and synced here
without 1.2, was listed under the active 1.0: "#2 due now", post-dose vitals owed, day 2/5, counted as
needing attention: 1.0's schedule, not theirs. Now the row says which version and what to do, shows what
is stored (the open SAE), and nothing due; Enter opens them and the participant screen says, in one
line, why nothing is shown (the same refusal as `wardcrf participant show`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import mexcovid_engine
import pytest
from dash_support import P1, P2
from textual.widgets import DataTable, Static
from tui_helpers import burst, settle
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.participant import ParticipantScreen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from record_version_support import arrived_under


@pytest.fixture
def site(busy_site):
    """The busy ward: WUH01-001 in treatment (dose 2 due now, post-dose vitals owed, an open SAE)."""
    return busy_site


def _applied_elsewhere(session_for) -> None:
    body = {"participant": P1, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.2"}
    arrived_under(
        session_for("admin"),
        "",
        {},
        subject=f"participant:{P1}",
        type="protocol.applied",
        body=body,
        user="investigator",
        role="investigator",
    )


def _rows(screen) -> dict[str, list[str]]:
    table = screen.query_one("#participants", DataTable)
    return {
        str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)
    }


async def test_the_row_says_the_version_is_not_loaded_and_nothing_due_is_guessed(app_for, session_for):
    _applied_elsewhere(session_for)
    app = app_for("clinician")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DashboardScreen)
        rows = _rows(screen)
        p1 = rows[P1]
        assert p1[1] == "version MEXCOVID 1.2 not loaded here: sync or load it"
        assert p1[2] == ""  # no post-dose vitals under 1.0's schedule
        if mexcovid_engine.runs_engine():
            # MEXCOVID 1.0 on the engine (since the flip): the Doses column counts the doses stored (1),
            # with no planned number: the plan is 1.2's, not loaded here (nothing guessed from 1.0's)
            assert p1[4] == "1"
        else:
            assert p1[4] == ""  # format 1: no study day under 1.0's schedule
        assert p1[3] == "1"  # the open SAE: stored, whatever the version
        assert p1[5] == "version not loaded"
        assert rows[P2][5] == "consented"  # the rest of the ward as before
        title = str(screen.query_one("#title-participants", Static).content)
        assert "2 listed, 0 need attention" in title
        # Enter on their row, typed in a burst with the cursor's move: their screen says why, in one line
        screen.query_one("#participants", DataTable).focus()
        at = list(rows).index(P1)
        await burst(pilot, *(["down"] * at), "enter")
        await settle(pilot)
        opened = pilot.app.screen
        assert isinstance(opened, ParticipantScreen) and opened.participant == P1
        shown = " ".join(str(opened.query_one("#p-summary", Static).content).split())
        assert f"{P1} is on MEXCOVID 1.2, which is not loaded on this laptop" in shown


async def test_a_small_terminal_shows_the_short_status_word(app_for, session_for):
    _applied_elsewhere(session_for)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        rows = _rows(pilot.app.screen)
        assert rows[P1][5] == "not loaded"
