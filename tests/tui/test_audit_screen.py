"""Audit screen: verify results, trail filters, refusals of bad filters."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static
from tui_helpers import settle
from wardcrf.screens.audit_screen import FilterError, trail_filters

from wardcrf import users


def _verify(app) -> str:
    return str(app.screen.query_one("#verify", Static).content)


def _rows(app) -> list[list[str]]:
    table = app.screen.query_one("#trail", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_auditor_sees_verify_and_whole_trail(app_for):
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert "ok event chains" in _verify(app)
        rows = _rows(app)
        assert rows[0][2] == "site.initialized site:WUH01"
        assert any(r[2] == "user.added user:auditor" for r in rows)


async def test_filter_by_user_and_date(app_for, admin):
    users.set_language(admin, "zh")
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("tab", *"admin", "tab", *"2020-03-16", "tab", *"2020-03-16", "enter")
        await settle(pilot)
        rows = _rows(app)
        assert rows and all(r[1] == "admin" for r in rows)
        assert rows[-1][2] == "user.language_set user:admin"
        # Another local day has nothing.
        await pilot.press("shift+tab", *["backspace"] * 10, *"2020-03-17")
        await pilot.press("tab", *["backspace"] * 10, *"2020-03-17", "enter")
        await settle(pilot)
        assert _rows(app) == []


async def test_bad_date_refused_inline_and_trail_kept(app_for):
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        before = _rows(app)
        await pilot.press("tab", "tab", *"16/03/2020", "enter")
        await settle(pilot)
        message = str(app.screen.query_one("#filter-message", Static).content)
        assert message == "16/03/2020 is not a date: use YYYY-MM-DD (local day)."
        assert _rows(app) == before


async def test_row_detail_shows_event_and_reason(app_for, admin):
    users.deactivate(admin, "coordinator", "left the trial team")
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#trail", DataTable).focus()
        await pilot.press(*["down"] * 20)
        await pilot.pause()
        detail = str(app.screen.query_one("#detail", Static).content)
        assert "Reason: left the trial team" in detail


async def test_tampered_event_reported_as_failed(app_for, site, admin):
    # Simulate an attacker editing a stored event behind the application's back.
    admin.store.execute("DROP TRIGGER events_no_update")
    admin.store.execute(
        "UPDATE events SET line = replace(line, 'Auditor User', 'Evil User') "
        "WHERE type = 'user.added' AND subject = 'user:auditor'"
    )
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert "FAILED event chains" in _verify(app)


def test_trail_filters_local_day_to_utc():
    args = trail_filters(
        {"participant": "WUH01-001", "since": "2020-03-16", "until": "2020-03-16"}, "Asia/Shanghai"
    )
    assert args == {
        "subject": "participant:WUH01-001",
        "user": None,
        "since": "2020-03-15T16:00:00.000Z",
        "until": "2020-03-16T16:00:00.000Z",
    }


def test_trail_filters_refuse_reversed_range():
    with pytest.raises(FilterError, match="must be before"):
        trail_filters({"since": "2020-03-17", "until": "2020-03-15"}, "Asia/Shanghai")
