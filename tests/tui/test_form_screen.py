"""Forms generated from the protocol: inline ranges, reasons, signatures, nothing lost."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Select, Static
from tui_helpers import PASSWORD, enroll, page_photo, settle
from wardcrf.screens.dialogs.reason import ReasonDialog
from wardcrf.screens.dialogs.sign import SignatureDialog
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.lock import LockScreen
from wardcrf.screens.participant import ParticipantScreen

from wardcrf import records


def _problem(app, name: str) -> str:
    return str(app.screen.query_one(f"#problem-{name}", Static).content)


def _message(app) -> str:
    return str(app.screen.query_one("#form-message", Static).content)


async def _open_vitals(pilot, pid: str) -> FormScreen:
    app = pilot.app
    await settle(pilot)
    app.push_screen(ParticipantScreen(app.ward, pid))
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    assert isinstance(app.screen, FormScreen)
    return app.screen


async def _choose(pilot, select_id: str, code: str) -> None:
    select = pilot.app.screen.query_one(f"#{select_id}", Select)
    select.value = code
    await pilot.pause()


async def test_hard_range_refused_inline_with_allowed_range(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_vitals(pilot, pid)
        form.query_one("#field-temp", Input).focus()
        await pilot.press(*"50")
        await pilot.pause()
        assert _problem(app, "temp") == "50 C is outside the allowed range 30 to 45 C"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form  # not saved
        assert "vitals not saved" in _message(app)
        assert _problem(app, "pulse") == "required"
        assert form.query_one("#field-temp", Input).value == "50"  # nothing lost


async def test_vitals_saved_and_soft_range_asks_reason(app_for, site, tmp_path, session_for):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_vitals(pilot, pid)
        await _choose(pilot, "field-timepoint", "unscheduled")
        form.query_one("#field-time", Input).focus()
        await pilot.press(*"08:30", "tab", *"39.8", "tab", *"88", "tab", *"18", "tab", *"96")
        await pilot.pause()
        assert "expected range" in _problem(app, "temp")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"febrile, rechecked twice", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
    s = session_for("auditor")
    vitals = records.for_subject(s.store, f"participant:{pid}", "vitals")
    assert len(vitals) == 1
    assert vitals[0].data["temp"] == {"value": 39.8, "unit": "C"}
    assert vitals[0].data["pulse"] in (88, {"value": 88, "unit": "beats/min"})


async def test_lock_during_form_keeps_values(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_vitals(pilot, pid)
        form.query_one("#field-temp", Input).focus()
        await pilot.press(*"37.1")
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
        await pilot.press(*PASSWORD, "enter")
        await settle(pilot)
        assert app.screen is form
        assert form.query_one("#field-temp", Input).value == "37.1"


async def test_language_switch_keeps_typed_values(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_vitals(pilot, pid)
        form.query_one("#field-temp", Input).focus()
        await pilot.press(*"37.1")
        await pilot.press("f2")
        await settle(pilot)
        assert form.query_one("#field-temp", Input).value == "37.1"
        labels = [str(w.content) for w in form.query(".field-label").results(Static)]
        assert any(label.startswith("体温 *") for label in labels)


async def test_consent_in_the_tui_with_witness_signatures(app_for, tmp_path, session_for):
    photo = page_photo(tmp_path / "page.jpg")
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormScreen) and form.form_name == "consent"
        await _choose(pilot, "field-consenter", "participant")
        await _choose(pilot, "field-form_version", "1.0")
        for name, value in (
            ("time", "2020-03-16 08:00"),
            ("witness_1", "investigator"),
            ("witness_2", "clinician2"),
            ("photos", photo),
        ):
            form.query_one(f"#field-{name}", Input).focus()
            await pilot.press(*value)
        await pilot.press("ctrl+s")
        await settle(pilot)
        # Three signatures: the doctor, then each witness in their own name.
        signers = []
        wrong_once = False
        for _ in range(3):
            assert isinstance(app.screen, SignatureDialog)
            signers.append(app.screen.signer)
            if app.screen.signer == "clinician2" and not wrong_once:
                wrong_once = True
            await pilot.press(*PASSWORD, "enter")
            await settle(pilot)
        assert signers == ["clinician", "investigator", "clinician2"]
        assert isinstance(app.screen, ParticipantScreen)
        assert app.screen.participant == "WUH01-001"
        await pilot.press("escape")
        await settle(pilot)
        table = app.screen.query_one("#participants", DataTable)
        assert table.row_count == 1
    sigs = records.for_subject(session_for("auditor").store, "participant:WUH01-001", "consent")
    assert len(sigs) == 1


async def test_consent_wrong_witness_password_saves_nothing_and_keeps_values(app_for, tmp_path, session_for):
    photo = page_photo(tmp_path / "page.jpg")
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        await _choose(pilot, "field-consenter", "participant")
        await _choose(pilot, "field-form_version", "1.0")
        for name, value in (
            ("time", "2020-03-16 08:00"),
            ("witness_1", "investigator"),
            ("witness_2", "clinician2"),
            ("photos", photo),
        ):
            form.query_one(f"#field-{name}", Input).focus()
            await pilot.press(*value)
        await pilot.press("ctrl+s")
        await settle(pilot)
        for pw in (PASSWORD, "wrong-password-9", PASSWORD):
            await pilot.press(*pw, "enter")
            await settle(pilot)
        assert app.screen is form
        assert "investigator" in _message(app)
        assert form.query_one("#field-witness_2", Input).value == "clinician2"
    assert records.for_subject(session_for("auditor").store, "participant:WUH01-001", "consent") == []


async def test_auditor_gets_no_form_keys_and_service_refuses(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("auditor")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "new_record" not in shown and "form('vitals')" not in shown
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        # Even a form screen pushed directly is refused by the service on save.
        app.push_screen(FormScreen(app.ward, "oxygen", pid))
        await settle(pilot)
        await _choose(pilot, "field-support", "room_air")
        app.screen.query_one("#field-date", Input).focus()
        await pilot.press(*"2020-03-16", "ctrl+s")
        await settle(pilot)
        assert "role auditor may not" in _message(app)


AE = {
    "term": "Headache",
    "onset": "2020-03-15",
    "grade": "1",
    "serious": "no",
    "causality": "unlikely",
    "action": "none",
    "outcome": "recovering",
}


async def test_a_second_ae_like_the_first_is_confirmed_with_a_reason_and_no_cli_flags(
    app_for, site, tmp_path, session_for
):
    """The domain asks to confirm an AE with the same term and onset (Enter twice in gloves?).

    On screen that was a hard problem naming `--confirm` and `--reason`, so a
    genuinely separate event could not be saved from the ward app at all
    (issue 14, finding 9: no CLI flags in the TUI). Now it is asked like a
    soft range: one reason, then saved, and no flag is shown.
    """
    from tui_helpers import burst

    from wardcrf import workflow

    pid = enroll(site, tmp_path)
    workflow.submit(session_for("clinician"), "ae", dict(AE), participant=pid)
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(FormScreen(app.ward, "ae", pid, dict(AE)))
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog), _problem(app, "term")
        shown = " ".join(str(s.content) for s in app.screen.query(Static))
        assert "already has an adverse event" in shown and "--" not in shown
        await burst(pilot, *"second episode, next day", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, (ReasonDialog, FormScreen))
    s = session_for("auditor")
    assert len(records.for_subject(s.store, f"participant:{pid}", "ae")) == 2
