"""The dashboard's panels, keys and role-based offering (Pilot).

Each panel is filled by one domain call in a worker; these tests read what
the tables show on a ward with something in every panel (`dash_support`).
"""

from __future__ import annotations

import pytest
from dash_support import P1, P2
from textual.widgets import DataTable, Static
from tui_helpers import settle
from wardcrf.screens.dashboard import DashboardScreen, span

from wardcrf.errors import PermissionDenied


@pytest.fixture
def site(busy_site):
    """Every test here runs on the busy ward."""
    return busy_site


def cells(screen, table_id: str) -> list[list[str]]:
    table = screen.query_one(f"#{table_id}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def title(screen, panel: str) -> str:
    return str(screen.query_one(f"#title-{panel}", Static).content)


async def test_participants_panel_day_next_dose_and_post_dose_vitals(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DashboardScreen)
        rows = {r[0]: r for r in cells(screen, "participants")}
        p1 = rows[P1]
        # enrolled 03-14, today 03-16: dose 2 due 09:00, window until 11:00
        assert p1[1] == "#2 due now, 2h 00m left"
        assert p1[2] == "post #1"  # post-dose vitals after dose 1 still owed
        assert p1[3] == "1"  # the open SAE
        assert p1[5] == "in treatment"
        labels = [str(c.label) for c in screen.query_one("#participants", DataTable).columns.values()]
        # the column counts the doses given of those planned (dose 1 given of 5), never a study day
        assert labels[4] == "Doses" and p1[4] == "1/5"
        assert rows[P2][5] == "consented" and rows[P2][1] == ""
        assert "2 listed, 1 need attention" in title(screen, "participants")


async def test_safety_panel_shows_sae_report_due_and_days_left(app_for):
    app = app_for("investigator")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        (row,) = cells(screen, "safety")
        assert row[0] == P1
        assert row[1] == "03-22 6 d left"  # known 03-15, life-threatening: 7 days
        assert row[2] == "SAE Bronchospasm G3"
        assert "1 open, 1 SAE, 1 awaiting DSMG" in title(screen, "safety")
        # Enter on the event opens its participant
        screen.query_one("#safety", DataTable).focus()
        await pilot.press("enter")
        await settle(pilot)
        from wardcrf.screens.participant import ParticipantScreen

        assert isinstance(pilot.app.screen, ParticipantScreen)


async def test_freezer_panel_shows_last_reading_and_the_excursion(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        (row,) = cells(screen, "freezer")
        assert row[0] == "FRZ-1"
        assert row[1] == "-8.0 °C 03-15 22:00"  # local time of the spot reading
        assert row[2] == "2 kits to dispose"
        assert "1 units, 1 unresolved excursions" in title(screen, "freezer")


async def test_sync_panel_counts_pending_events(app_for, site, session_for):
    from wardcrf.sync import ward as sync_ward

    pending = sync_ward.status(session_for("auditor"))["events_pending"]
    assert pending > 0
    app = app_for("coordinator")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        rows = dict((r[0], r[1]) for r in cells(pilot.app.screen, "sync"))
        assert rows["State"] == "no hub"
        assert rows["Pending"] == f"{pending} events, 1 photos" or rows["Pending"].startswith(
            f"{pending} events"
        )
        assert rows["Last export"] == "never" and rows["Last receipt"] == "never"


async def test_gate_panel_waits_for_the_sentinel_then_shows_a_stop(app_for, session_for):
    app = app_for("dsmg")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        rows = dict((r[0], r[1]) for r in cells(pilot.app.screen, "gate"))
        assert rows["State"] == "enrollment waits for DSMG"
        assert rows["Sentinel waiting"] == P1
        assert rows["SAEs awaiting review"] == "1"
        from wardcrf import workflow

        workflow.submit(
            session_for("dsmg"),
            "dsmg_decision",
            {"decision": "stop", "rationale": "bronchospasm in the sentinel"},
            participant=P1,
        )
        await pilot.press("r")
        await settle(pilot)
        rows = dict((r[0], r[1]) for r in cells(pilot.app.screen, "gate"))
        assert rows["State"] == "STOP: dosing and enrollment halted"
        assert rows["Last decision"] == f"stop · {P1}"
        nxt = {r[0]: r for r in cells(pilot.app.screen, "participants")}[P1][1]
        assert nxt == "#2 held"


async def test_small_terminal_shows_one_panel_and_keys_switch_it(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.has_class("-compact")
        shown = [p.id for p in screen.query(".panel") if p.display]
        assert shown == ["p-participants"]
        await pilot.press("2")
        assert [p.id for p in screen.query(".panel") if p.display] == ["p-safety"]
        assert pilot.app.focused is screen.query_one("#safety", DataTable)
        await pilot.press("right_square_bracket")
        assert [p.id for p in screen.query(".panel") if p.display] == ["p-freezer"]
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert [p.id for p in screen.query(".panel") if p.display] == ["p-participants"]


async def test_wide_terminal_shows_every_panel_and_keys_focus_them(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert not screen.has_class("-compact")
        assert all(p.display for p in screen.query(".panel"))
        for key, panel in zip(
            "123456", ("participants", "safety", "freezer", "sync", "gate", "recent"), strict=True
        ):
            await pilot.press(key)
            assert pilot.app.focused is screen.query_one(f"#{panel}", DataTable)


async def test_enter_on_a_participant_opens_them(app_for):
    from wardcrf.screens.participant import ParticipantScreen

    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("1", "enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ParticipantScreen)
        assert pilot.app.screen.participant == P1


async def test_new_participant_offered_to_doctors_not_auditors(app_for, session_for):
    from wardcrf.screens.form_screen import FormScreen

    async with app_for("auditor").run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.check_action("new_participant", ()) is False
        keys = {k for k, active in screen.active_bindings.items() if active.enabled}
        assert "n" not in keys
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DashboardScreen)  # nothing opened
    async with app_for("clinician").run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert pilot.app.screen.check_action("new_participant", ()) is True
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, FormScreen)
    # the domain refuses anyway
    from wardcrf import workflow

    with pytest.raises(PermissionDenied):
        workflow.submit(session_for("auditor"), "consent", {"consenter": "participant"}, password_for=str)


async def test_language_switch_keeps_the_panels_filled(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        screen = pilot.app.screen
        rows = {r[0]: r for r in cells(screen, "participants")}
        assert rows[P1][5] == "治疗中"
        assert rows[P1][1] == "#2 现在应给，剩 2h 00m"
        assert cells(screen, "safety")[0][1] == "03-22 剩 6 天"


def test_span_reads_like_a_nurse_says_it():
    assert span(45) == "45m"
    assert span(185) == "3h 05m"
    assert span(-(2 * 24 * 60 + 4 * 60)) == "2d 4h"
