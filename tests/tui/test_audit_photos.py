"""The audit screen's photo panel: each photo of the selected entry, re-hashed as it is listed."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.widgets import DataTable, Input, Static
from tui_helpers import PASSWORD, page_photo, settle
from wardcrf.photos import audit as photo_audit
from wardcrf.photos import importing
from wardcrf.screens.audit_screen import AuditScreen
from wardcrf.screens.photo_view import PhotoImage, PhotoScreen

from wardcrf import eventlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_photos_verify import _tamper


def _page(path: Path, text: str) -> Path:
    """A distinct generated page (JPEG or PNG by the file's ending)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(img).text((10, 10), text, fill="black")
    img.save(path)
    return path


def consent_with_two_pages(site, tmp_path: Path) -> tuple[str, list[str]]:
    """A consent whose record binds two photographed pages; returns (participant, [sha256...])."""
    from wardcrf import workflow

    s = site.unlock("clinician", PASSWORD)
    try:
        pages = [f"@{_page(tmp_path / 'p1.jpg', 'page 1')}", f"@{_page(tmp_path / 'p2.png', 'page 2')}"]
        ev = workflow.submit(
            s,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-10T10:00:00+08:00",
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": pages,
            },
            password_for=lambda _u: PASSWORD,
        )
        shas = [r.removeprefix("sha256:") for r in ev.body["data"]["photos"]]
        return ev.subject.removeprefix("participant:"), shas
    finally:
        s.close()


async def open_consent_entry(pilot, pid: str) -> AuditScreen:
    """The audit screen filtered to the participant, cursor on the consent record."""
    app = pilot.app
    await settle(pilot)
    await pilot.press("a")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, AuditScreen)
    screen.query_one("#f-participant", Input).value = pid
    screen.query_one("#f-participant", Input).focus()
    await pilot.press("enter")
    await settle(pilot)
    trail = screen.query_one("#trail", DataTable)
    row = next(i for i, e in enumerate(screen.entries) if e.type == "record.submitted")
    trail.focus()
    trail.move_cursor(row=row)
    await settle(pilot)
    return screen


def _photo_rows(screen) -> list[list[str]]:
    table = screen.query_one("#photos", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_panel_lists_intact_and_tampered_photo_as_mismatch(app_for, site, tmp_path, session_for):
    pid, shas = consent_with_two_pages(site, tmp_path)
    _tamper(session_for("clinician"), shas[1])
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_consent_entry(pilot, pid)
        rows = _photo_rows(screen)
        assert [r[0] for r in rows] == ["photos", "photos"]
        by_hash = {r[1]: r[3] for r in rows}
        assert by_hash[f"{shas[0][:16]}…"] == "intact"
        assert by_hash[f"{shas[1][:16]}…"] == "MISMATCH"
        # photo verify beside audit verify: one problem, naming the photo
        title = str(screen.query_one("#photos-title", Static).content)
        assert title.endswith("photo verify FAILED: 6 checked, problems: 1")
        # Enter on the trail entry moves to its photos; Enter on the intact one shows it
        await pilot.press("enter")
        photos = screen.query_one("#photos", DataTable)
        assert photos.has_focus
        intact_row = next(i for i, r in enumerate(rows) if r[3] == "intact")
        photos.move_cursor(row=intact_row)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PhotoScreen)
        assert app.screen.query_one("#photo-image", PhotoImage).image is not None
        await pilot.press("escape")
        await settle(pilot)
        # the tampered one is never drawn: the domain's refusal is shown instead
        photos.move_cursor(row=1 - intact_row)
        await settle(pilot)
        assert str(screen.query_one("#photo-detail", Static).content) == f"sha256:{shas[1]} · Enter: view"
        await pilot.press("enter")
        await settle(pilot)
        shown = app.screen
        assert isinstance(shown, PhotoScreen)
        assert shown.query_one("#photo-image", PhotoImage).image is None
        assert "(altered); not shown" in str(shown.query_one("#photo-status", Static).content)


async def test_entry_without_photos_says_so_and_nothing_is_written(app_for, site, tmp_path, session_for):
    pid, _ = consent_with_two_pages(site, tmp_path)
    before = eventlog.count(session_for("admin").store)
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_consent_entry(pilot, pid)
        assert all(r[3] == "intact" for r in _photo_rows(screen))
        assert "photo verify ok: 6 checked, problems: 0" in str(
            screen.query_one("#photos-title", Static).content
        )
        trail = screen.query_one("#trail", DataTable)
        other = next(i for i, e in enumerate(screen.entries) if e.type == "signature.applied")
        trail.move_cursor(row=other)
        await settle(pilot)
        assert _photo_rows(screen) == []
        assert (
            str(screen.query_one("#photo-detail", Static).content)
            == "The selected entry references no photo."
        )
    assert eventlog.count(session_for("admin").store) == before  # the auditor's reading wrote nothing


def test_event_photos_for_an_imported_photo_and_unknown_event(session_for, tmp_path):
    """The domain side of the panel: a photo.imported entry lists that photo; a bad id is refused."""
    import pytest

    from wardcrf.errors import Refused

    s = session_for("clinician")
    info = importing.import_photo(s, Path(page_photo(tmp_path / "x.jpg")[1:]))
    (checked,) = photo_audit.event_photos(session_for("auditor"), info.imported_event)
    assert (checked.sha256, checked.status, checked.field, checked.size) == (
        info.sha256,
        "intact",
        None,
        info.size,
    )
    with pytest.raises(Refused, match="unknown event"):
        photo_audit.event_photos(session_for("auditor"), "nope")
