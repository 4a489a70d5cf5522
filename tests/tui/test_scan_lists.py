"""List fields a scanner types into (issue 14, findings 4 and 10).

Finding 4: "drop the last" did nothing in the kit and photo lists (the text
box's cut took ctrl+x) and wiped whole fields elsewhere ("Received by").
Undo the last scan is now a key the text box does not claim (ctrl+z), in
every list field, shown in the footer; ctrl+x edits nothing.
"""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import burst, settle
from wardcrf.screens.coldchain.handover import HandoverScreen
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.widgets.entry_list import EntryList


async def _open(pilot, key: str):
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)
    await pilot.press(key)
    await settle(pilot)
    return pilot.app.screen


def _footer(app) -> str:
    from textual.widgets._footer import FooterKey

    return " ".join(f"{k.key_display} {k.description}" for k in app.screen.query(FooterKey))


async def test_undo_last_scan_in_the_kit_list_and_shown_in_the_footer(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        assert isinstance(screen, ReceiptScreen)
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"K1", "enter", *"K2", "enter", *"K3", "enter")
        assert kits.entries == ["K1", "K2", "K3"]
        assert "^z Undo last scan" in _footer(app)
        await burst(pilot, "ctrl+z")
        assert kits.entries == ["K1", "K2"]
        assert "K3" not in str(kits.query_one(".entries", Static).content)
        await burst(pilot, "ctrl+z", "ctrl+z", "ctrl+z")  # nothing left to undo: no harm
        assert kits.entries == []


async def test_undo_last_scan_in_the_photo_list(app_for, tmp_path):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "h")
        assert isinstance(screen, HandoverScreen)
        photos = screen.query_one("#cc-photos", EntryList)
        photos.focus()
        await settle(pilot)
        await burst(pilot, *"sha256:" + "a" * 64, "enter", *"sha256:" + "b" * 64, "enter")
        assert len(photos.entries) == 2
        await burst(pilot, "ctrl+z")
        assert photos.entries == ["sha256:" + "a" * 64]


async def test_ctrl_x_wipes_no_field(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        received = screen.query_one("#cc-received_by", Input)
        assert received.value == "pharmacist"
        received.focus()  # entering a field selects its value
        await settle(pilot)
        await burst(pilot, "ctrl+x")
        assert received.value == "pharmacist"
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"K1", "enter", *"K2")
        await burst(pilot, "ctrl+x")  # not a cut of the half-typed scan either
        assert kits.entries == ["K1"] and kits.input.value == "K2"


async def test_undo_last_photo_in_a_form_photo_field(app_for):
    from wardcrf.screens.form_screen import FormScreen

    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(FormScreen(app.ward, "consent"))
        await settle(pilot)
        field = app.screen.query_one("#field-photos", Input)
        field.value = "@/tmp/page1.jpg, @/tmp/page2.jpg"
        field.focus()
        await settle(pilot)
        assert "^z Undo last photo" in _footer(app)
        await burst(pilot, "ctrl+z")
        assert field.value == "@/tmp/page1.jpg"
        app.screen.query_one("#field-witness_1", Input).focus()
        await settle(pilot)
        assert "Undo last photo" not in _footer(app)  # only where there is a list


# -- finding 10: scanner bursts ---------------------------------------------------------------


async def test_scans_run_together_with_no_gap_are_refused_in_one_line_and_not_added(app_for):
    """Found: "EXO-0101EXO-0102EXO-0103" became one kit, accepted without a format check."""
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO-0101EXO-0102EXO-0103", "enter")
        assert kits.entries == []
        said = str(kits.query_one(".entry-problem", Static).content)
        assert "scanned with no gap" in said and "EXO-0101, EXO-0102, EXO-0103" in said
        assert "\n" not in said  # one line
        await burst(pilot, *"EXO-0101", "enter")  # the next scan replaces the refused one
        assert kits.entries == ["EXO-0101"] and kits.input.value == ""
        assert str(kits.query_one(".entry-problem", Static).content) == ""


async def test_each_scan_is_checked_against_the_id_rule_at_once(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO 0102", "enter", *"exo-0102", "enter")
        assert kits.entries == ["EXO-0102"]  # the blank inside was refused; case does not matter
        await burst(pilot, *"EXO-0103,EXO-0104", "enter")  # a comma ends an id: both listed
        assert kits.entries == ["EXO-0102", "EXO-0103", "EXO-0104"]


# -- the scanner profile: a scanner that ends a code with a quiet gap, not Enter -------------------


def _gap_profile(site, gap_ms: int = 30) -> None:
    """This laptop's scanner ends a code after `gap_ms` without a key (set by the admin, `wardcrf.scanner`)."""
    from tui_helpers import PASSWORD

    from wardcrf import scanner

    s = site.unlock("admin", PASSWORD)
    try:
        scanner.set_profile(s, "gap", gap_ms)
    finally:
        s.close()


async def _until(pilot, condition) -> None:
    """Let the app run until `condition()` holds (a bound for a broken app, not a timing)."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while not condition() and loop.time() < end:
        await pilot.pause(0.01)
    assert condition()


def _problem(kits: EntryList) -> str:
    return str(kits.query_one(".entry-problem", Static).content)


async def test_gap_profile_takes_each_burst_as_a_scan_with_no_enter(app_for, site):
    _gap_profile(site)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        assert kits.input.gap_s == 0.03  # the profile, read through the service
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO-0101")  # no Enter: the scanner's quiet gap ends it
        await _until(pilot, lambda: kits.entries == ["EXO-0101"])
        assert kits.input.value == "" and _problem(kits) == ""  # cleared for the next scan
        await burst(pilot, *"exo-0102")
        await _until(pilot, lambda: kits.entries == ["EXO-0101", "EXO-0102"])
        assert "EXO-0102" in str(kits.query_one(".entries", Static).content)
        await burst(pilot, "ctrl+z")  # undo the last scan works here too
        assert kits.entries == ["EXO-0101"]
        await burst(pilot, "ctrl+z", *"EXO-0102")  # a wrong scan undone, the right one scanned at once
        await _until(pilot, lambda: kits.entries == ["EXO-0102"])
        await burst(pilot, *"EXO-0101")
        await _until(pilot, lambda: kits.entries == ["EXO-0102", "EXO-0101"])
        await burst(pilot, "ctrl+z")
        assert kits.entries == ["EXO-0102"]
        await burst(pilot, *"EXO-0103", "enter")  # and a code that does end with Enter is taken once
        await _until(pilot, lambda: not kits.input.in_burst)
        assert kits.entries == ["EXO-0102", "EXO-0103"] and kits.input.value == ""


async def test_gap_profile_refuses_an_invalid_burst_in_one_line_and_clears_it(app_for, site):
    _gap_profile(site)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO 0102")  # a blank inside: not a kit id
        await _until(pilot, lambda: _problem(kits) != "")
        said = _problem(kits)
        assert kits.entries == [] and kits.input.value == ""  # not listed; the field is ready again
        assert "EXO 0102" in said and "\n" not in said
        await burst(pilot, *"EXO-0101EXO-0102")  # two scans run together: refused whole
        await _until(pilot, lambda: "scanned with no gap" in _problem(kits))
        assert kits.entries == [] and kits.input.value == ""
        await burst(pilot, *"EXO-0104")
        await _until(pilot, lambda: kits.entries == ["EXO-0104"])
        assert _problem(kits) == ""


async def test_gap_profile_never_cuts_a_person_typing_slowly(app_for, site):
    """Each key alone, the gap passing after each: the first key is no scan (one key), and
    the field is not empty after it, so nothing typed after it is taken for a scan; nor is a
    burst typed after an editing key (Backspace) into text already there."""
    _gap_profile(site)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        kits.focus()
        await settle(pilot)
        for key in "EXO-0105":
            await burst(pilot, key)
            await _until(pilot, lambda: not kits.input.in_burst)  # the gap has passed
        assert kits.entries == [] and kits.input.value == "EXO-0105" and _problem(kits) == ""
        await burst(pilot, "backspace", *"6")
        await _until(pilot, lambda: not kits.input.in_burst)
        assert kits.entries == [] and kits.input.value == "EXO-0106"
        await burst(pilot, "enter")
        assert kits.entries == ["EXO-0106"]


async def test_enter_profile_is_the_default_and_takes_nothing_without_enter(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        kits = screen.query_one("#cc-kits", EntryList)
        assert kits.input.gap_s is None
        kits.focus()
        await settle(pilot)
        await burst(pilot, *"EXO-0101")
        assert not kits.input.in_burst  # no quiet time is watched at all
        await settle(pilot)
        assert kits.entries == [] and kits.input.value == "EXO-0101"
        await burst(pilot, "enter")
        assert kits.entries == ["EXO-0101"]


async def test_gap_profile_leaves_a_photo_list_on_enter_and_its_undo_works(app_for, site):
    """A photo entry is a path typed by hand (or browsed): no id rule to check a burst against."""
    _gap_profile(site)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "h")
        assert isinstance(screen, HandoverScreen)
        assert screen.query_one("#cc-kits", EntryList).input.gap_s == 0.03
        photos = screen.query_one("#cc-photos", EntryList)
        assert photos.input.gap_s is None
        photos.focus()
        await settle(pilot)
        await burst(pilot, *"sha256:" + "a" * 64)
        assert not photos.input.in_burst and photos.entries == []
        await burst(pilot, "enter", *"sha256:" + "b" * 64, "enter")
        assert photos.entries == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
        await burst(pilot, "ctrl+z")
        assert photos.entries == ["sha256:" + "a" * 64]
