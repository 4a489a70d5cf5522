"""Login screen: sign in, refusals, lockout after repeated failures."""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import settle, sign_in
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.login import LoginScreen

from wardcrf import audit


def _message(app) -> str:
    return str(app.screen.query_one("#login-message", Static).content)


async def test_sign_in_opens_dashboard(app_for):
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, LoginScreen)
        await sign_in(pilot, "clinician")
        assert isinstance(app.screen, DashboardScreen)
        assert app.ward is not None and app.ward.user == "clinician" and app.ward.role == "clinician"


async def test_wrong_password_refused_with_attempts_left(app_for):
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "clinician", "wrong-password-9")
        assert isinstance(app.screen, LoginScreen)
        assert "4 attempt(s) left" in _message(app)
        # The user name stays, the password is cleared for the next try.
        assert app.screen.query_one("#user", Input).value == "clinician"
        assert app.screen.query_one("#password", Input).value == ""
        assert app.screen.focused is app.screen.query_one("#password", Input)
        assert app.ward is None


async def test_lockout_after_five_failures_even_with_right_password(app_for, session_for):
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "clinician", "wrong-password-9")
        for _ in range(4):
            await pilot.press(*"wrong-password-9", "enter")
            await settle(pilot)
        assert "now locked" in _message(app)
        await pilot.press(*"test-password-1", "enter")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert "locked after 5 failed logins" in _message(app)
    # The failures reached the audit trail at the next sign-in.
    admin = session_for("admin")
    failed = list(audit.trail(admin, type_prefix="auth.login_failed"))
    assert len(failed) == 5 and all(e.subject == "user:clinician" for e in failed)


async def test_unknown_user_and_empty_fields_refused(app_for):
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter", "enter")
        assert _message(app) == "Type a user name."
        await pilot.press(*"nobody", "enter", "enter")
        assert _message(app) == "Type the password."
        await pilot.press(*"some-password-1", "enter")
        await settle(pilot)
        assert "wrong user name or password" in _message(app)
        assert isinstance(app.screen, LoginScreen)
