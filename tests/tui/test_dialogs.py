"""E-signature and reason-for-change dialogs, pushed over a signed-in app."""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import burst, settle
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.dialogs.reason import ReasonDialog
from wardcrf.screens.dialogs.sign import SignatureDialog

from wardcrf import audit, signatures


def _user_added_event(session, user: str) -> str:
    return next(e.event_id for e in audit.trail(session, subject=f"user:{user}"))


async def test_signature_dialog_signs_with_password(app_for, session_for):
    app = app_for("investigator")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        ward = app.ward
        target = _user_added_event(ward.session, "clinician")
        results: list[object] = []

        def sign(signer: str, password: str):
            return ward.call(
                signatures.sign, target=target, meaning="reviewed", signer=signer, password=password
            )

        dialog = SignatureDialog(what="user clinician", meaning="reviewed", signer=ward.user, sign=sign)
        app.push_screen(dialog, results.append)
        await settle(pilot)
        await pilot.press(*"test-password-1", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert len(results) == 1 and results[0] is not None
    sigs = signatures.for_target(session_for("auditor").store, target)
    assert [(s.user, s.meaning, s.valid) for s in sigs] == [("investigator", "reviewed", True)]


async def test_witness_signs_in_own_name_and_wrong_password_keeps_dialog(app_for, session_for):
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        ward = app.ward
        target = _user_added_event(ward.session, "auditor")

        def sign(signer: str, password: str):
            return ward.call(
                signatures.sign, target=target, meaning="witnessed", signer=signer, password=password
            )

        dialog = SignatureDialog(
            what="consent", meaning="witnessed", signer="", sign=sign, signer_editable=True
        )
        app.push_screen(dialog)
        await settle(pilot)
        await pilot.press(*"investigator", "enter", *"wrong-password-9", "enter")
        await settle(pilot)
        assert app.screen is dialog
        assert str(dialog.query_one("#sig-message", Static).content) == "wrong password for investigator"
        assert dialog.query_one("#sig-signer", Input).value == "investigator"
        await pilot.press(*"test-password-1", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
    sigs = signatures.for_target(session_for("auditor").store, target)
    assert [(s.user, s.meaning) for s in sigs] == [("investigator", "witnessed")]


async def test_signature_refused_for_auditor_signer(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        ward = app.ward
        target = _user_added_event(ward.session, "auditor")

        def sign(signer: str, password: str):
            return ward.call(
                signatures.sign, target=target, meaning="witnessed", signer=signer, password=password
            )

        dialog = SignatureDialog(what="x", meaning="witnessed", signer="", sign=sign, signer_editable=True)
        app.push_screen(dialog)
        await settle(pilot)
        await pilot.press(*"auditor", "enter", *"test-password-1", "enter")
        await settle(pilot)
        assert app.screen is dialog
        assert "role auditor may not sign records" in str(dialog.query_one("#sig-message", Static).content)


async def test_signature_cancel_returns_none(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        results: list[object] = []
        app.push_screen(
            SignatureDialog(what="x", meaning="authored", signer="clinician", sign=lambda u, p: "signed"),
            results.append,
        )
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert results == [None]


async def test_reason_dialog_refuses_blank_and_returns_reason(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        results: list[object] = []
        dialog = ReasonDialog(title="Amend vitals", changes=["temperature: 38.0 → 37.2"])
        app.push_screen(dialog, results.append)
        await settle(pilot)
        await pilot.press(" ", "enter")
        assert "at least 3 characters" in str(dialog.query_one("#reason-message", Static).content)
        assert results == []
        await pilot.press(*"transcription error", "enter")
        await settle(pilot)
        assert results == ["transcription error"]


async def test_esc_on_an_empty_reason_closes_at_once(app_for):
    """Nothing typed: Esc cancels with no question (the form behind stays as it was)."""
    from wardcrf.screens.dialogs.discard import DiscardDialog

    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        results: list[object] = []
        app.push_screen(
            ReasonDialog(title="Amend vitals", changes=["temperature: 38.0 → 37.2"]), results.append
        )
        await settle(pilot)
        await burst(pilot, " ", "escape")  # a blank is not a reason
        assert not isinstance(app.screen, DiscardDialog | ReasonDialog)
        assert results == [None]


async def test_esc_on_a_typed_reason_asks_and_keep_editing_keeps_it(app_for):
    """One glove slip on Esc does not throw a typed reason away: it asks; `n` keeps it, `y` cancels."""
    from wardcrf.screens.dialogs.discard import DiscardDialog

    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        results: list[object] = []
        dialog = ReasonDialog(title="Amend vitals", changes=["temperature: 38.0 → 37.2"])
        app.push_screen(dialog, results.append)
        await settle(pilot)
        await burst(pilot, *"transcription", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n", *" error")  # keep editing: the text is there, the cursor in it
        assert app.screen is dialog and results == []
        assert dialog.query_one("#reason", Input).value == "transcription error"
        await burst(pilot, "escape", "y")
        assert results == [None]
        assert not isinstance(app.screen, DiscardDialog | ReasonDialog)
