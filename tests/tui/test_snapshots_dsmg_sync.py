"""Pictures of the DSMG review and Sync screens at 80x24 and 120x40 (DSMG in en and zh).

Fixed clock and a template site built under it keep them stable. The sync
site has no hub (push says so), so no background sync runs and nothing
depends on timing; the random device id is shown as a fixed name.
Update with `pytest tests/tui/test_snapshots_dsmg_sync.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from test_dsmg_screen import add_sae
from tui_helpers import enroll, settle

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_dsmg_review(snap_compare, app_for, site, tmp_path, size, language):
    pid = enroll(site, tmp_path)
    add_sae(site, pid)
    app = app_for("dsmg", language=language)

    async def open_board(pilot):
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_board)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_dsmg_decision_dialog(snap_compare, app_for, site, tmp_path, size):
    enroll(site, tmp_path)
    app = app_for("dsmg", language="zh")

    async def open_dialog(pilot):
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_dialog)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_sync(snap_compare, app_for, site, size, monkeypatch):
    from wardcrf.sync import ward as sync_ward

    real = sync_ward.status
    # The device id is random per `init`: drawn as a fixed name so the picture is stable.
    monkeypatch.setattr(sync_ward, "status", lambda s: {**real(s), "device": "lap1-device-id"})
    app = app_for("clinician")

    async def open_sync(pilot):
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_sync)
