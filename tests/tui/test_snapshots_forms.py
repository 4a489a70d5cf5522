"""Pictures of the CT grid, the photo picker's preview and the audit photo panel.

Same rules as test_snapshots.py: fixed clock, the template site, nothing
random drawn (the tray is named by a relative path, file times are fixed,
the audit panel is filled without focusing the trail, whose detail line
shows event ids). Update with
`pytest tests/tui/test_snapshots_forms.py --snapshot-update` and review.
"""

from __future__ import annotations

import os

import pytest
from test_audit_photos import _tamper, consent_with_two_pages
from test_photo_picker import T0, page
from tui_helpers import enroll, settle
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.section_grid import SectionGridScreen

SIZES = [(80, 24), (120, 40)]


# MEXCOVID 1.0's CT grid, on the engine (its re-encoding's sections and titles).
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_ct_grid(snap_compare, app_for, site, tmp_path, size, language):
    pid = enroll(site, tmp_path)
    app = app_for("clinician", language=language)

    async def open_grid(pilot):
        await settle(pilot)
        pilot.app.push_screen(SectionGridScreen(pilot.app.ward, "ct_score", pid))
        await settle(pilot)
        await pilot.press(*"21n30")  # five segments, one not evaluable
        await pilot.press("7")  # refused on the spot
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_grid)


@pytest.mark.parametrize(
    ("size", "language"),
    [((80, 24), "en"), ((120, 40), "en"), ((80, 24), "zh")],
    ids=["en-80x24", "en-120x40", "zh-80x24"],
)
def test_photo_picker_preview(snap_compare, app_for, site, tmp_path, monkeypatch, size, language):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WARDCRF_PHOTO_TRAY", "tray")
    page(tmp_path / "tray" / "page1.jpg", "page 1", mtime=T0)
    page(tmp_path / "tray" / "page2.jpg", "page 2", "lightyellow", mtime=T0 + 3600)
    bad = tmp_path / "tray" / "bad.jpg"
    bad.write_text("not a photo")
    os.utime(bad, (T0 - 60, T0 - 60))
    app = app_for("clinician", language=language)

    async def open_picker(pilot):
        await settle(pilot)
        pilot.app.push_screen(FormScreen(pilot.app.ward, "consent"))
        await settle(pilot)
        pilot.app.screen.query_one("#field-photos").focus()
        await pilot.press("f4")
        await settle(pilot)
        await pilot.press("a")  # page2 (newest) added; its preview drawn
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_picker)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_audit_photo_panel(snap_compare, app_for, site, tmp_path, session_for, size):
    pid, shas = consent_with_two_pages(site, tmp_path)
    _tamper(session_for("clinician"), shas[1], cover_tracks=True)
    app = app_for("auditor")

    async def open_panel(pilot):
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        screen = pilot.app.screen
        record = next(e for e in screen.entries if e.type == "record.submitted")
        screen.load_photos(record.event_id)
        await settle(pilot)
        assert pid

    assert snap_compare(app, terminal_size=size, run_before=open_panel)
