"""Photos in forms: the tray and folder picker, the check and preview, saving with the record."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable, Input, Select, Static
from tui_helpers import PASSWORD, settle
from wardcrf.photos import audit as photo_audit
from wardcrf.photos import importing
from wardcrf.photos import tray as photo_tray
from wardcrf.screens.form_screen import FormScreen, split_photo_items
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.photo_picker import PhotoPicker, PhotoTree
from wardcrf.screens.photo_view import PhotoImage

from wardcrf import records

# 2020-03-15 10:00 / 11:00 / 12:00 UTC: fixed file times, so the listing is stable.
T0 = 1584266400


def page(path: Path, text: str, colour: str = "white", mtime: int = T0) -> Path:
    """A photographed consent page, generated."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), colour)
    ImageDraw.Draw(img).rectangle((20, 20, 300, 60), fill="navy")
    ImageDraw.Draw(img).text((30, 100), text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG")
    os.utime(path, (mtime, mtime))
    return path


def fill_tray(site) -> Path:
    tray = photo_tray.tray_folder(site.data_dir)
    page(tray / "page1.jpg", "page 1", mtime=T0)
    page(tray / "page2.jpg", "page 2", "lightyellow", mtime=T0 + 3600)
    bad = tray / "bad.jpg"
    bad.write_text("this is not a photo")
    os.utime(bad, (T0 + 7200, T0 + 7200))
    (tray / "notes.txt").write_text("not offered")
    (tray / ".hidden.jpg").write_bytes(b"")
    return tray


def _check_line(app) -> Static:
    return app.screen.query_one("#photo-check", Static)


def drawn(widget: PhotoImage) -> str:
    """What the preview widget draws, as text."""
    console = Console(width=40, file=io.StringIO(), color_system="truecolor")
    widget.image.max_width, widget.image.max_rows = 40, 10
    with console.capture() as cap:
        console.print(widget.image)
    return cap.get()


async def _open_consent_picker(pilot) -> tuple[FormScreen, PhotoPicker]:
    app = pilot.app
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    form = app.screen
    assert isinstance(form, FormScreen) and form.form_name == "consent"
    form.query_one("#field-photos", Input).focus()
    await pilot.press("f4")
    await settle(pilot)
    assert isinstance(app.screen, PhotoPicker)
    return form, app.screen


async def test_tray_lists_new_image_files_newest_first(app_for, site, session_for):
    tray = fill_tray(site)
    importing.import_photo(session_for("clinician"), tray / "page1.jpg")  # imported before: marked
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        _, picker = await _open_consent_picker(pilot)
        table = picker.query_one("#tray", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["bad.jpg", "page2.jpg", "page1.jpg"]
        assert rows[2][3] == "stored" and rows[1][3] == ""
        assert rows[1][2] == "03-15 19:00"  # the file's time, in the ward's zone (UTC+8)
        assert rows[0][1] == "19 B"
        assert str(tray) in str(picker.query_one("#picker-where", Static).content)


async def test_choosing_a_photo_checks_and_previews_it(app_for, site):
    tray = fill_tray(site)
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        form, picker = await _open_consent_picker(pilot)
        await pilot.press("down")  # page2.jpg
        await settle(pilot)
        line = str(_check_line(app).content)
        assert line.startswith("page2.jpg · JPEG 320×240 · ")
        image = picker.query_one("#picker-image", PhotoImage)
        assert image.image is not None and "▀" in drawn(image)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is form
        field = form.query_one("#field-photos", Input)
        assert field.value == f"@{tray / 'page2.jpg'}"
        listed = str(form.query_one("#photos-photos", Static).content)
        assert listed.startswith("1. page2.jpg · JPEG 320×240")


async def test_invalid_image_is_refused_inline_with_the_domains_message(app_for, site):
    fill_tray(site)
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        form, picker = await _open_consent_picker(pilot)
        await settle(pilot)  # bad.jpg is the newest, highlighted first
        line = _check_line(app)
        assert str(line.content) == "bad.jpg: not an image (not JPEG, PNG or HEIC); nothing stored"
        assert line.has_class("refusal")
        assert picker.query_one("#picker-image", PhotoImage).image is None
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is picker and picker.chosen == []
        assert str(line.content).endswith("nothing stored — not added")
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is form and form.query_one("#field-photos", Input).value == ""


async def test_consent_saved_with_the_photos_bound(app_for, site, session_for):
    tray = fill_tray(site)
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        form, _ = await _open_consent_picker(pilot)
        await pilot.press("down")
        await settle(pilot)
        await pilot.press("a", "down")  # add page2 and stay; then page1
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is form
        assert split_photo_items(form.query_one("#field-photos", Input).value) == [
            f"@{tray / 'page2.jpg'}",
            f"@{tray / 'page1.jpg'}",
        ]
        for name, code in (("consenter", "participant"), ("form_version", "1.0")):
            form.query_one(f"#field-{name}", Select).value = code
        for name, value in (
            ("time", "2020-03-16 08:00"),
            ("witness_1", "investigator"),
            ("witness_2", "clinician2"),
        ):
            form.query_one(f"#field-{name}", Input).focus()
            await pilot.press(*value)
        await pilot.press("ctrl+s")
        await settle(pilot)
        for _ in range(3):
            await pilot.press(*PASSWORD, "enter")
            await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
    s = session_for("auditor")
    (consent,) = records.for_subject(s.store, "participant:WUH01-001", "consent")
    expected = [
        "sha256:" + hashlib.sha256((tray / n).read_bytes()).hexdigest() for n in ("page2.jpg", "page1.jpg")
    ]
    assert consent.data["photos"] == expected
    bound = photo_audit.record_photos(s, consent.event_id)
    assert sorted(p.ref for p in bound) == sorted(expected) and all(p.hash_ok for p in bound)


async def test_folder_picker_shows_only_folders_and_images(app_for, site, tmp_path):
    card = tmp_path / "camera-card"
    page(card / "DCIM" / "IMG_0001.JPG", "card page")
    (card / "DCIM" / "readme.txt").write_text("x")
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        form, picker = await _open_consent_picker(pilot)
        await pilot.press("f3")
        await settle(pilot)
        path_line = picker.query_one("#browse-path", Input)
        assert not path_line.has_class("-hidden")
        path_line.value = str(card)
        path_line.focus()
        await pilot.press("enter")
        await settle(pilot)
        tree = picker.query_one("#browse", PhotoTree)
        assert tree.has_focus and Path(tree.path) == card
        await pilot.press("down", "enter")  # DCIM: expand
        await settle(pilot)
        await pilot.press("down")  # IMG_0001.JPG (readme.txt is not shown)
        await settle(pilot)
        assert str(_check_line(app).content).startswith("IMG_0001.JPG · JPEG 320×240")
        shown = [str(n.label) for n in tree.root.children[0].children]
        assert shown == ["IMG_0001.JPG"]
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is form
        assert form.query_one("#field-photos", Input).value == f"@{card / 'DCIM' / 'IMG_0001.JPG'}"


def test_split_photo_items_keeps_commas_inside_paths() -> None:
    sha = "sha256:" + "a" * 64
    assert split_photo_items(f"@/a/b,c.jpg, @/x.jpg,3fa9c2d1e0b4, {sha}") == [
        "@/a/b,c.jpg",
        "@/x.jpg",
        "3fa9c2d1e0b4",
        sha,
    ]
    assert split_photo_items("  ") == []


async def test_language_switch_keeps_the_picker_and_the_form(app_for, site):
    tray = fill_tray(site)
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        form, picker = await _open_consent_picker(pilot)
        await pilot.press("down", "a")
        await settle(pilot)
        app.switch_language("zh")
        await settle(pilot)
        assert app.screen is picker
        assert picker.query_one("#tray", DataTable).row_count == 3
        assert str(_check_line(app).content).startswith("page2.jpg · JPEG 320×240")
        assert "已选（1）：page2.jpg" in str(picker.query_one("#picker-chosen", Static).content)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is form
        assert form.query_one("#field-photos", Input).value == ""  # Esc adds nothing
        form.query_one("#field-photos", Input).value = f"@{tray / 'page1.jpg'}"
        app.switch_language("en")
        await settle(pilot)
        assert form.query_one("#field-photos", Input).value == f"@{tray / 'page1.jpg'}"
        assert str(form.query_one("#photos-photos", Static).content) == f"1. @{tray / 'page1.jpg'}"


def test_screens_load_no_pillow_until_a_photo_is_shown() -> None:
    """The new screens keep Pillow off the start-up path (imported only to check or draw)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import wardcrf.screens.app, wardcrf.screens.section_grid, wardcrf.screens.photo_picker\n"
        "import wardcrf.screens.audit_screen, wardcrf.screens.photo_view, wardcrf.screens.form_screen\n"
        "print(sorted(m for m in sys.modules if m == 'PIL' or m.startswith('PIL.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
