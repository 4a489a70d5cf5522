"""Type-ahead (issue 14, finding 1): every key lands in the field it was typed for.

Each flow runs twice: with `pilot.press` (the app idles between keys) and as
a burst (`burst`: every key is posted before the app looks at the first, as
a terminal delivers a scanner's code, a fast typist, or anything typed while
a loaded laptop was busy). The burst is what failed: a CT score went to the
segment before, `94` Tab `128` became "SpO2 94128", and at login the
password went into the user field.
"""

from __future__ import annotations

import pytest
from dose_support import P1
from mexcovid_engine import CT_SEGMENTS
from textual.widgets import Input, Static
from tui_helpers import PASSWORD, burst, enroll, settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.widgets.entry_list import EntryList

from wardcrf import records

MODES = ["press", "burst"]


async def send(pilot, mode: str, *keys: str) -> None:
    if mode == "burst":
        await burst(pilot, *keys)
    else:
        await pilot.press(*keys)
        await settle(pilot)


def value(app, selector: str) -> str:
    return app.screen.query_one(selector, Input).value


# -- the CT grid --------------------------------------------------------------------------

CT_TYPED = "2103n01240" + "33210001"


@pytest.mark.parametrize("mode", MODES)
async def test_ct_scores_land_in_their_segments(mode, app_for, site, tmp_path):
    from test_ct_grid import _cell, _open_grid

    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_grid(pilot, pid)
        await send(pilot, mode, *CT_TYPED)
        got = [_cell(app, s).value for s in CT_SEGMENTS]
        want = ["ne" if c == "n" else int(c) for c in CT_TYPED]
        assert got == want
        assert str(app.screen.query_one("#grid-total", Static).content).startswith("Total score (0-72) 23 · ")


# -- a generated form (vitals) ---------------------------------------------------------------


async def _vitals_at_temp(pilot, pid: str) -> FormScreen:
    app = pilot.app
    await settle(pilot)
    app.push_screen(ParticipantScreen(app.ward, pid))
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    form = app.screen
    assert isinstance(form, FormScreen)
    form.query_one("#field-temp", Input).focus()
    await settle(pilot)
    return form


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("move", ["tab", "enter"])
async def test_vitals_values_land_in_their_fields(mode, move, app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals_at_temp(pilot, pid)
        typed = {"temp": "36.8", "pulse": "88", "resp": "20", "oxysat": "94", "sysbp": "128", "diabp": "80"}
        keys: list[str] = []
        for text in typed.values():
            keys += [*text, move]
        await send(pilot, mode, *keys)
        assert {name: value(app, f"#field-{name}") for name in typed} == typed


# -- login --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("move", ["tab", "enter"])
async def test_login_user_and_password_land_in_their_fields(mode, move, app_for):
    app = app_for()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await send(pilot, mode, *"clinician", move, *PASSWORD, "enter")
        assert isinstance(app.screen, DashboardScreen), app.screen
        assert app.ward is not None and app.ward.user == "clinician"


# -- a receipt with a scanner burst ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_receipt_fields_and_scanned_kits_land_where_typed(mode, app_for, site):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReceiptScreen)
        assert app.focused is screen.query_one("#cc-lot")
        await send(
            pilot,
            mode,
            *"LOT9",
            "tab",
            *"haMSC-Exos",
            "tab",
            *"2021-06-30",
            "tab",
            *"QP-9",
            "tab",
            *"K301",
            "enter",  # the scanner ends each code with Enter
            *"K302",
            "enter",
            *"K303",
            "enter",
            "enter",  # Enter on the empty scan field moves on
            *"3",
            "tab",
            *"SH-HAMSC-2003-02",
        )
        assert screen.query_one("#cc-kits", EntryList).entries == ["K301", "K302", "K303"]
        got = {
            n: value(app, f"#cc-{n}")
            for n in ("lot", "product", "expiry", "release_ref", "quantity", "shipper")
        }
        assert got == {
            "lot": "LOT9",
            "product": "haMSC-Exos",
            "expiry": "2021-06-30",
            "release_ref": "QP-9",
            "quantity": "3",
            "shipper": "SH-HAMSC-2003-02",
        }


# -- the dose wizard ------------------------------------------------------------------------

DOSE_KEYS = (
    *"KIT-A1",
    "enter",  # the scanner's Enter: the kit is checked, the product is pre-filled
    "ctrl+n",
    "tab",  # the vitals step opens on its time: Tab leaves it blank (stamped on leaving)
    *"36.8",
    "tab",
    *"88",
    "tab",
    *"20",
    "tab",
    *"95",
    "ctrl+n",
    "ctrl+t",  # the inhalation ends now
    "ctrl+n",
    "ctrl+t",  # the post-dose vitals' time now (the focus stays on it)
    "tab",
    *"36.9",
    "tab",
    *"86",
    "tab",
    *"19",
    "tab",
    *"97",
    "ctrl+n",
    "enter",  # None: the first event on the checklist
    "ctrl+n",
    "ctrl+s",
)


async def _dose_wizard(pilot) -> AdministrationWizard:
    """P1's participant screen, then `d`: the administration wizard MEXCOVID 1.0's regimen drives."""
    app = pilot.app
    await settle(pilot)
    app.push_screen(ParticipantScreen(app.ward, P1))
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    wiz = app.screen
    assert isinstance(wiz, AdministrationWizard)
    return wiz


@pytest.mark.parametrize("mode", MODES)
async def test_dose_wizard_values_land_in_their_steps(mode, dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _dose_wizard(pilot)
        await send(pilot, mode, *DOSE_KEYS)
        assert wiz.saved is not None, (wiz.message, wiz.step, wiz.problems, wiz.values)
    s = dose_site.unlock("auditor", PASSWORD)
    try:
        # the dose record as stored (`participant show`'s format-1 `doses` lines are empty on the engine)
        assert [
            r["kit_id"] for r in s.store.rows("SELECT kit_id FROM doses WHERE participant = ?", (P1,))
        ] == ["KIT-A1"]
        vitals = {
            v.data["timepoint"]: {k: v.data[k]["value"] for k in ("temp", "pulse", "resp", "oxysat")}
            for v in records.for_subject(s.store, f"participant:{P1}", "vitals")
        }
        assert vitals == {
            "pre_dose": {"temp": 36.8, "pulse": 88, "resp": 20, "oxysat": 95},
            "post_dose": {"temp": 36.9, "pulse": 86, "resp": 19, "oxysat": 97},
        }
        check = records.for_subject(s.store, f"participant:{P1}", "post_dose_check")
        assert check[0].data["events"] == ["none"]
    finally:
        s.close()


async def test_keys_typed_before_a_field_hears_of_its_focus_are_kept(app_for, site, tmp_path):
    """Entering a field selects its value as of the moment of focus, not when Textual's
    (queued) Focus event arrives: found in tmux under load, "2021-06-30" became "6-30"."""
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals_at_temp(pilot, pid)
        app.screen.query_one("#field-temp", Input).value = "37.0"
        app.screen.query_one("#field-time", Input).focus()
        await settle(pilot)
        # Tab and the first keys of the next value run before the temperature's Focus event...
        await burst(pilot, "tab", *"36")
        # ...which the app then handles; the rest of the value follows.
        await burst(pilot, *".8")
        assert value(app, "#field-temp") == "36.8"  # the old value was replaced, as on entering it


@pytest.mark.parametrize("mode", MODES)
async def test_drop_downs_choose_where_typed(mode, app_for, site):
    """Enter opens a drop-down, ↓ moves, Enter chooses, Tab goes on: all typed ahead.

    Before: the drop-down took the focus, reported the choice and gave the
    focus back through the queues, so keys typed fast went to the closed
    drop-down (and opened it again), choosing nothing."""
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#cc-dry_ice").focus()
        await settle(pilot)
        await send(
            pilot,
            mode,
            *("enter", "down", "enter", "tab"),  # yes (the list opens on its blank line)
            *("enter", "down", "down", "enter", "tab"),  # no
            *("enter", "down", "enter", "tab"),  # yes
            *"-72 C on the display",
        )
        got = {n: screen.query_one(f"#cc-{n}").value for n in ("dry_ice", "intact", "frozen")}
        assert got == {"dry_ice": "yes", "intact": "no", "frozen": "yes"}
        assert value(app, "#cc-condition") == "-72 C on the display"


DROP_DOWNS = [
    *("enter", "down", "enter", "tab"),  # dry ice: yes (the list opens on its blank line)
    *("enter", "down", "down", "enter", "tab"),  # container intact: no
    *("enter", "down", "enter", "tab"),  # frozen: yes
    *"-72 C",
]


async def test_drop_downs_choose_where_typed_wherever_the_burst_is_split(app_for, site):
    """The receipt's drop-downs typed as two bursts, split at every key: each choice where typed.

    What a busy laptop does with a fast typist: part of what was typed is
    run, the app catches up on what those keys left queued, then the rest
    comes. Before: opening a list asked for the focus the deferred way;
    split right after a choice and its Tab, that request ran late and put
    the cursor back into the closed list, and every later key went there
    (in tmux under load: the third drop-down and the condition text lost,
    1 run in 30). Each split gets a fresh receipt screen."""

    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        wrong = []
        for split in range(1, len(DROP_DOWNS)):
            screen = ReceiptScreen(app.ward)
            await app.push_screen(screen)
            await settle(pilot)
            screen.query_one("#cc-dry_ice").focus()
            await settle(pilot)
            await burst(pilot, *DROP_DOWNS[:split])
            await burst(pilot, *DROP_DOWNS[split:])
            got = {n: str(screen.query_one(f"#cc-{n}").value) for n in ("dry_ice", "intact", "frozen")}
            got["condition"] = screen.query_one("#cc-condition", Input).value
            got["cursor in"] = app.focused.id if app.focused is not None else None
            want = {"dry_ice": "yes", "intact": "no", "frozen": "yes", "condition": "-72 C"}
            if got != {**want, "cursor in": "cc-condition"}:
                wrong.append((split, DROP_DOWNS[split - 1], got))
            screen.mark_clean()  # nothing to ask about: this screen is only closed for the next split
            await app.pop_screen()
            await settle(pilot)
        assert not wrong, wrong


async def test_a_drop_down_opened_again_at_once_stays_open_with_the_cursor(app_for, site):
    """Choose, and open the same list again before the app caught up: it stays open.

    Before: the list's "lost the focus" report from the first choice
    arrived after the re-opening and closed the list the cursor was in."""
    from textual.widgets import Select

    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        select = screen.query_one("#cc-dry_ice", Select)
        select.focus()
        await settle(pilot)
        await burst(pilot, "enter", "down", "enter", "enter")  # yes, then open it again
        assert select.expanded
        assert app.focused is not None and app.focused.parent is select
        await burst(pilot, "down", "enter", "tab")  # no, instead
        assert select.value == "no"
        assert not select.expanded
        assert app.focused is screen.query_one("#cc-intact")


# -- keys typed behind a save ---------------------------------------------------------------
# ctrl+s saves in a worker; the keys typed behind it (the next screen's `n` for a new record) wait for
# the verdict. In tmux on a busy laptop the `n` typed after a dose was saved reached the wizard, not
# the participant screen, and the new-record picker never opened.


@pytest.mark.parametrize("mode", MODES)
async def test_a_key_typed_behind_the_dose_wizards_save_reaches_the_participant(mode, dose_app, dose_site):
    from wardcrf.screens.form_picker import FormPicker

    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _dose_wizard(pilot)
        await send(pilot, mode, *DOSE_KEYS, "n")
        await settle(pilot)
        assert wiz.saved is not None, (wiz.message, wiz.step, wiz.problems)
        assert isinstance(app.screen, FormPicker), app.screen
        assert isinstance(app.screen_stack[-2], ParticipantScreen), app.screen_stack


@pytest.mark.parametrize("mode", MODES)
async def test_a_key_typed_behind_a_forms_save_reaches_the_participant(mode, app_for, site, tmp_path):
    from wardcrf.screens.form_picker import FormPicker

    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals_at_temp(pilot, pid)
        keys: list[str] = []
        for text in ("36.8", "88", "20", "94", "128", "80"):
            keys += [*text, "tab"]
        await send(pilot, mode, *keys, "ctrl+s", "n")
        await settle(pilot)
        assert isinstance(app.screen, FormPicker), app.screen
    s = site.unlock("auditor", PASSWORD)
    try:
        saved = records.for_subject(s.store, f"participant:{pid}", "vitals")
    finally:
        s.close()
    assert [v.data["temp"]["value"] for v in saved] == [36.8]


async def test_keys_typed_behind_a_refused_save_land_nowhere(app_for, site, tmp_path):
    """Refused: the form stays with its refusal said, and what was typed for the screen after it (in
    the same burst, before the refusal could be seen) is dropped, not typed into the field the cursor is
    on. (Typed after the refusal is shown, keys go to the form as always.)"""
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _vitals_at_temp(pilot, pid)
        await burst(pilot, *"36.8", "tab", *"abc", "ctrl+s", *"n5")
        await settle(pilot)
        assert app.screen is form
        line = form.query_one(f"#{form.MESSAGE_ID}", Static)
        assert line.has_class("refusal"), line.render()
        assert value(app, "#field-temp") == "36.8"
        assert value(app, "#field-pulse") == "abc", value(app, "#field-pulse")
    s = site.unlock("auditor", PASSWORD)
    try:
        assert records.for_subject(s.store, f"participant:{pid}", "vitals") == []
    finally:
        s.close()
