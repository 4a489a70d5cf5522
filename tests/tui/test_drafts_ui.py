"""Nothing typed is ever lost: drafts in the ward app (issue 14, finding 3 and "What to build").

Each open form is kept as a draft (`wardcrf.drafts`, per user, inside the
site database) after each field; Esc with `y` discards it, saving the form
ends it; quitting, the lock and a switch of user keep it; the same user is
offered it back at their next sign-in (`u` on the dashboard) and gets every
value back where it was.
"""

from __future__ import annotations

from dose_support import P1, Driver
from textual.widgets import Input, Static
from tui_helpers import PASSWORD, burst, enroll, settle
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.dialogs.discard import DiscardDialog
from wardcrf.screens.drafts_screen import DraftsScreen
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.lock import LockScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.step_wizard import StepWizard

from wardcrf import drafts, records


def _draft(site, user: str, form: str, context: str):
    s = site.unlock(user, PASSWORD)
    try:
        return drafts.get(s, form, context=context)
    finally:
        s.close()


async def _vitals(pilot, pid: str) -> FormScreen:
    await settle(pilot)
    pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, FormScreen)
    form.query_one("#field-temp", Input).focus()
    await settle(pilot)
    return form


async def test_each_field_left_is_kept_as_a_draft(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals(pilot, pid)
        await burst(pilot, *"38.2", "tab", *"96")
        kept = _draft(site, "clinician", "vitals", f"participant:{pid}")
        assert kept is not None and kept.fields["temp"] == "38.2"
        assert kept.focus == "pulse"  # where the cursor went
        await burst(pilot, "tab")
        kept = _draft(site, "clinician", "vitals", f"participant:{pid}")
        assert kept is not None and kept.fields["pulse"] == "96"


async def test_discarding_with_y_ends_the_draft_and_saving_ends_it_too(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals(pilot, pid)
        await burst(pilot, *"38.2", "tab")
        assert _draft(site, "clinician", "vitals", f"participant:{pid}") is not None
        await burst(pilot, "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "y")
        assert _draft(site, "clinician", "vitals", f"participant:{pid}") is None
        await burst(pilot, "v")
        form = app.screen
        assert isinstance(form, FormScreen)
        form.query_one("#field-temp", Input).focus()
        await settle(pilot)
        await burst(pilot, *"36.8", "tab", *"88", "tab", *"20", "tab", *"95", "tab")
        assert _draft(site, "clinician", "vitals", f"participant:{pid}") is not None
        await burst(pilot, "ctrl+s")
        assert isinstance(app.screen, ParticipantScreen)
    assert _draft(site, "clinician", "vitals", f"participant:{pid}") is None
    s = site.unlock("auditor", PASSWORD)
    try:
        assert len(records.for_subject(s.store, f"participant:{pid}", "vitals")) == 1
    finally:
        s.close()


async def test_quit_keeps_the_form_and_the_next_sign_in_offers_it_back(app_for, site, tmp_path):
    from wardcrf.screens.app import make_app

    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals(pilot, pid)
        await burst(pilot, *"38.2", "tab", *"9")  # the pulse half typed: never left
        await burst(pilot, "ctrl+q")
    kept = _draft(site, "clinician", "vitals", f"participant:{pid}")
    assert kept is not None and kept.fields["temp"] == "38.2" and kept.fields["pulse"] == "9"
    again = make_app(site.data_dir)
    async with again.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await burst(pilot, *"clinician", "tab", *PASSWORD, "enter")
        assert isinstance(again.screen, DashboardScreen)
        assert "unsaved" in str(again.screen.query_one("#dash-drafts", Static).content).lower()
        await burst(pilot, "u")
        assert isinstance(again.screen, DraftsScreen)
        await burst(pilot, "enter")
        form = again.screen
        assert isinstance(form, FormScreen) and form.participant == pid
        assert form.query_one("#field-temp", Input).value == "38.2"
        assert form.query_one("#field-pulse", Input).value == "9"
        assert again.focused is form.query_one("#field-pulse")  # back where the cursor was


async def test_another_user_is_not_offered_someone_elses_draft(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _vitals(pilot, pid)
        await burst(pilot, *"38.2", "tab")
        await burst(pilot, "ctrl+l")
        assert isinstance(app.screen, LockScreen)
        await burst(pilot, "f3", *"investigator", "enter", *PASSWORD, "enter")
        assert isinstance(app.screen, DashboardScreen) and app.ward.user == "investigator"
        assert "unsaved" not in str(app.screen.query_one("#dash-drafts", Static).content).lower()
    kept = _draft(site, "clinician", "vitals", f"participant:{pid}")
    assert kept is not None and kept.fields["temp"] == "38.2"  # the clinician's, kept for them


async def test_the_dose_wizard_comes_back_at_its_step_with_every_value(dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, P1))
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        # the vitals step opens on its time: Tab leaves it (stamped on leaving) for the temperature
        await burst(pilot, *"KIT-A1", "enter", "ctrl+n", "tab", *"36.8", "tab", *"88", "tab")
        await burst(pilot, "ctrl+q")
    from wardcrf.screens.app import make_app
    from wardcrf.screens.ward import Ward

    ward = Ward(dose_site, dose_site.unlock("clinician", PASSWORD))
    again = make_app(dose_site.data_dir, ward=ward)
    async with again.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await burst(pilot, "u", "enter")
        wiz = again.screen
        assert isinstance(wiz, StepWizard)  # the dose wizard, or on the engine the administration wizard
        assert wiz.step == 1 and wiz.kit is not None and wiz.kit.ok
        drive = Driver(wiz)
        assert wiz.query_one(f"#{drive.field('pre', 'temp')}", Input).value == "36.8"
        assert wiz.query_one(f"#{drive.field('pre', 'pulse')}", Input).value == "88"


# Draft openers (issue #16): the drafts screen reopens another package's screens through the
# openers that package registers (screens/coldchain/drafts.py), so those screens never import it.


def test_every_cold_chain_screen_that_keeps_drafts_has_an_opener():
    """Each transfer screen's draft form (its `draft_key`) and the manual reading reopen on their screen."""
    from types import SimpleNamespace

    from wardcrf.screens.coldchain.transfer import TransferScreen
    from wardcrf.screens.drafts_screen import openers

    from wardcrf.coldchain import services

    def concrete(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from concrete(sub)

    found = openers()
    # the app's screens only: a test elsewhere in this process may define a throwaway subclass
    screens = [c for c in concrete(TransferScreen) if c.__module__.startswith("wardcrf.screens.")]
    assert len(screens) >= 4  # receipt, handover, thaw, unit
    for screen in screens:
        form, _context = TransferScreen.draft_key(SimpleNamespace(TITLE_ID=screen.TITLE_ID))
        opener = found.get(form)
        assert opener is not None, f"no draft opener for {screen.__name__} ({form})"
        assert opener.title == screen.TITLE_ID
    reading = found.get(services.FORM_READING)
    assert reading is not None and reading.title == "cc.readings"


def test_a_second_opener_for_one_form_is_refused():
    """Two screens claiming one form's drafts is a bug: the registry says so instead of picking one."""
    import re

    import pytest
    from wardcrf.screens.draft_openers import DraftOpeners

    def never(ward, draft):
        raise AssertionError("only registered, never opened here")

    openers = DraftOpeners()
    openers.add("coldchain.receipt", title="cc.receipt", open=never)
    with pytest.raises(ValueError, match=re.escape("a second draft opener for form 'coldchain.receipt'")):
        openers.add("coldchain.receipt", title="cc.handover", open=never)
    assert openers.forms() == ["coldchain.receipt"]
    assert openers.get("coldchain.receipt").title == "cc.receipt"
    assert openers.get("vitals") is None  # a protocol form: the drafts screen opens it itself


async def test_a_cold_chain_draft_is_listed_by_its_screen_and_reopened_on_it(app_for, session_for):
    """A receipt typed halfway is listed under the receipt screen's title and reopens on it, values back."""
    from textual.widgets import DataTable
    from wardcrf.screens.coldchain.receipt import ReceiptScreen
    from wardcrf.screens.i18n import t

    drafts.save(
        session_for("pharmacist"), "coldchain.receipt", {"lot": "LOT-D1", "product": "MEX"}, focus="product"
    )
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(DraftsScreen(app.ward))
        await settle(pilot)
        assert app.screen.query_one("#drafts", DataTable).get_row_at(0)[1] == t("cc.receipt")
        await burst(pilot, "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReceiptScreen)
        assert screen.values["lot"] == "LOT-D1" and screen.values["product"] == "MEX"
