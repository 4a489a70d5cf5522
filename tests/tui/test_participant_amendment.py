"""The participant screen names the protocol version a participant is on, and an investigator applies an
amendment from it (`p`: the version and a reason, through `workflow.amendments.apply`)."""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import PASSWORD, enroll, settle
from wardcrf.screens.dialogs.amendment import AmendmentDialog
from wardcrf.screens.participant import ParticipantScreen

from wardcrf import protocol

MEX = protocol.default_source()


def _load_1_1(site) -> None:
    """MEXCOVID 1.1 loaded after the participant was enrolled under 1.0 (the site's active version now)."""
    s = site.unlock("investigator", PASSWORD)
    try:
        protocol.load(s, protocol.parse(MEX.replace('version = "1.0"', 'version = "1.1"', 1), "next.toml"))
    finally:
        s.close()


def _summary(app) -> str:
    return str(app.screen.query_one("#p-summary", Static).render())


def _notes(app) -> str:
    return " ".join(str(n.message) for n in app._notifications)


async def _type(pilot, app, selector: str, text: str) -> None:
    app.screen.query_one(selector, Input).value = text
    await settle(pilot)


async def test_an_investigator_applies_an_amendment_and_the_screen_shows_the_new_version(
    app_for, site, tmp_path
) -> None:
    pid = enroll(site, tmp_path)
    _load_1_1(site)
    app = app_for("investigator")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        assert "Protocol: MEXCOVID 1.0 (enrolled under)" in _summary(app)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, AmendmentDialog)
        await _type(pilot, app, "#amend-version", "1.1")
        await _type(pilot, app, "#amend-reason", "Amendment 1 approved by the EC; re-consented")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        assert f"{pid}: MEXCOVID 1.0 → 1.1" in _notes(app)
        today = app.ward.local_now().date().isoformat()
        assert f"Protocol: MEXCOVID 1.1 (amended on {today})" in _summary(app)


async def test_a_refused_amendment_is_shown_in_the_domains_words_and_nothing_changes(
    app_for, site, tmp_path
) -> None:
    pid = enroll(site, tmp_path)
    _load_1_1(site)
    app = app_for("investigator")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await _type(pilot, app, "#amend-version", "9.9")
        await _type(pilot, app, "#amend-reason", "approved")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "protocol MEXCOVID version 9.9 is not loaded on this site" in _notes(app)
        await pilot.press("p")
        await settle(pilot)
        await _type(pilot, app, "#amend-version", "1.1")
        await pilot.press("ctrl+s")  # no reason
        await settle(pilot)
        assert "needs a reason" in _notes(app)
        await pilot.press("p")
        await settle(pilot)
        await _type(pilot, app, "#amend-version", "1.1")
        await _type(pilot, app, "#amend-reason", "approved\x1b[2J")  # hostile: a terminal escape
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "reason: character U+001B" in _notes(app)
        assert "\x1b" not in _notes(app)
        assert "Protocol: MEXCOVID 1.0 (enrolled under)" in _summary(app)


async def test_other_roles_do_not_get_the_action_and_the_service_refuses_them(
    app_for, site, tmp_path
) -> None:
    pid = enroll(site, tmp_path)
    _load_1_1(site)
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        assert "Protocol: MEXCOVID 1.0 (enrolled under)" in _summary(app)
        assert app.screen.check_action("apply_amendment", ()) is False
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)  # no dialog
        app.screen._apply_amendment("1.1", "approved")  # past the screen: the service still refuses
        await settle(pilot)
        assert "role clinician may not apply a protocol amendment" in _notes(app)
        assert "Protocol: MEXCOVID 1.0 (enrolled under)" in _summary(app)


FOLLOWUP = """
[forms.followup]
label = { en = "Day 28 follow-up call", zh = "第28天随访电话" }

[forms.followup.fields.date]
type = "date"
required = true
label = { en = "Date of the call", zh = "日期" }
"""


async def test_the_form_picker_and_form_screen_show_the_participants_version(app_for, site, tmp_path) -> None:
    """1.1 (active) adds a follow-up form; the participant enrolled under 1.0 is offered 1.0's forms."""
    from wardcrf.screens.form_picker import forms_for
    from wardcrf.screens.form_screen import FormScreen

    from wardcrf.errors import Refused

    pid = enroll(site, tmp_path)
    s = site.unlock("investigator", PASSWORD)
    try:
        source = MEX.replace('version = "1.0"', 'version = "1.1"', 1) + FOLLOWUP
        protocol.load(s, protocol.parse(source, "next.toml"))
    finally:
        s.close()
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        theirs = [name for name, _label in forms_for(app.ward, who=pid)]
        active = [name for name, _label in forms_for(app.ward)]
        assert "followup" in active and "followup" not in theirs and "vitals" in theirs
        assert FormScreen(app.ward, "vitals", pid).proto.version == "1.0"
        assert FormScreen(app.ward, "vitals", None).proto.version == "1.1"
        try:
            FormScreen(app.ward, "followup", pid)
        except Refused as exc:
            assert f"{pid} is on protocol MEXCOVID 1.0, which has no followup form" in str(exc)
        else:
            raise AssertionError("a form their version lacks was opened")
