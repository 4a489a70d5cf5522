"""Login screen: a deactivated user is told so only after typing the right password (found in QA)."""

from __future__ import annotations

from textual.widgets import Input, Static
from tui_helpers import sign_in
from wardcrf.screens.login import LoginScreen

from wardcrf import users


def _message(app) -> str:
    return str(app.screen.query_one("#login-message", Static).content)


async def test_deactivated_user_with_right_password_is_told_to_ask_an_admin(app_for, admin):
    users.deactivate(admin, "pharmacist", reason="left the trial team")
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "pharmacist")
        assert isinstance(app.screen, LoginScreen) and app.ward is None
        assert _message(app).startswith("account pharmacist is deactivated; ask an admin")
        assert app.screen.query_one("#password", Input).value == ""


async def test_deactivated_user_with_wrong_password_sees_the_generic_refusal(app_for, admin):
    users.deactivate(admin, "pharmacist", reason="left the trial team")
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "pharmacist", "not-the-password-1")
        assert isinstance(app.screen, LoginScreen) and app.ward is None
        message = _message(app)
        assert "wrong user name or password" in message and "deactivated" not in message
