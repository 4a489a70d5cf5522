"""Pictures of the auditor's desk at 80x24 (record above its photograph) and 120x40 (side by side).

The consent record has one field verified, one changed since verified (amended
after the monitor's mark) and the rest unverified; the first page is drawn in
half blocks (the snapshot terminal speaks no graphics protocol). The record's
event id (random per test session: the template's device id) is masked in the
title; everything else on the screen is fixed by the clock and the pages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import Static
from tui_helpers import PASSWORD, settle
from wardcrf.screens.audit_desk import DeskScreen

from wardcrf import records, sdv, users

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_audit_photos import consent_with_two_pages

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_desk_with_verified_and_changed_fields(
    snap_compare, app_for, site, admin, tmp_path, session_for, size
):
    users.add_user(admin, "monitor", "Mona Monitor", "monitor", PASSWORD)
    consent_with_two_pages(site, tmp_path)
    record = session_for("auditor").store.scalar("SELECT event_id FROM records WHERE form = 'consent'")
    sdv.verify(session_for("monitor"), record, password=PASSWORD, fields=["consenter", "form_version"])
    records.amend(session_for("clinician"), record, {"form_version": "1.1"}, reason="the page says 1.1")
    app = app_for("monitor")

    async def open_desk(pilot):
        await settle(pilot)
        await pilot.app.push_screen(DeskScreen(pilot.app.ward, record))
        await settle(pilot)
        title = pilot.app.screen.query_one("#desk-title", Static)
        title.update(str(title.content).replace(record, "<record>"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_desk)
