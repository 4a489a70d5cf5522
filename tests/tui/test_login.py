"""Login screen: sign in, refusals, lockout after repeated failures."""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import PASSWORD, burst, settle, sign_in
from wardcrf.screens.app import make_app
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


def _failed_logins(session_for) -> int:
    admin = session_for("admin")
    return len(list(audit.trail(admin, type_prefix="auth.login_failed")))


async def test_a_filled_in_user_keeps_the_focus_and_a_typed_name_replaces_it(site, session_for):
    """The demo fills in `clinician`: a person typing the name first, then the password, in one burst, signs in
    (the name used to go into the password, a failed attempt towards the lockout)."""
    app = make_app(site.data_dir, user="clinician")  # as `wardcrf demo` opens it
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        user = app.screen.query_one("#user", Input)
        assert isinstance(app.screen, LoginScreen) and app.screen.focused is user
        assert user.value == "clinician" and user.selected_text == "clinician"
        await burst(pilot, *"clinician", "enter", *PASSWORD, "enter")
        assert isinstance(app.screen, DashboardScreen), _message(app)
        assert app.ward is not None and app.ward.user == "clinician"
    assert _failed_logins(session_for) == 0


async def test_a_filled_in_user_is_kept_by_enter(site, session_for):
    """The slow path: keys one at a time; Enter keeps the name filled in, then the password signs in."""
    app = make_app(site.data_dir, user="clinician")  # as `wardcrf demo` opens it
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        assert app.screen.focused is app.screen.query_one("#password", Input)
        await pilot.press(*PASSWORD, "enter")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen), _message(app)
        assert app.ward is not None and app.ward.user == "clinician"
    assert _failed_logins(session_for) == 0


async def test_another_name_typed_over_the_filled_in_user_signs_in_as_that_user(site, session_for):
    app = make_app(site.data_dir, user="clinician")  # as `wardcrf demo` opens it
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await burst(pilot, *"pharmacist", "enter", *PASSWORD, "enter")
        assert isinstance(app.screen, DashboardScreen), _message(app)
        assert app.ward is not None and app.ward.user == "pharmacist"
    assert _failed_logins(session_for) == 0
