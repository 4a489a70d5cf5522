"""The idle lock: hides the screen, keeps the work, names who locked it.

Pushed over whatever is on screen after the idle time (or ctrl+l). The
background is opaque: patient data must not show on a shared laptop while
nobody is at it. The work stays underneath in the screen stack.

- The same user re-enters the password (`Site.verify_password`, which counts
  failures and locks the account like a login) and is back where they were.
- Another user may "switch user" (F3): they sign in with their own password
  (`Site.unlock`); the app then starts them at their dashboard, because the
  previous user's unsaved entries must never be saved under someone else's
  name. The lock screen says whose session is locked, so nobody discards a
  colleague's half-entered form without knowing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, LoadingIndicator, Static

from .errors import message_of
from .i18n import label_width, pad, t
from .keys import LANGUAGE
from .results import Refused
from .ward import Ward, sign_in
from .widgets.footer import WardFooter
from .widgets.typeahead import WardInput, hold_keys, release_keys


class LockScreen(ModalScreen[Ward]):
    """Dismissed with the `Ward` to continue with (the same or a new user)."""

    CSS_PATH = "lock.tcss"
    AUTO_FOCUS = "#password"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f3", "switch_user", "key.switch_user"),
        LANGUAGE,
        Binding("ctrl+q", "app.quit", "key.quit"),
    ]

    @dataclass
    class Unlocked(Message):
        """The password was right: the ward to return to (the same user's, or the new user's)."""

        ward: Ward

    def __init__(self, ward: Ward, locked_at: datetime) -> None:
        super().__init__()
        self.ward = ward
        self.locked_at = locked_at
        self.switching = False

    def compose(self) -> ComposeResult:
        labels = [t("login.user"), t("login.password")]
        width = label_width(labels)
        with Vertical(id="lock-box"):
            yield Static(t("lock.title"), id="lock-title")
            yield Static(
                t(
                    "lock.locked_by",
                    name=self.ward.full_name,
                    user=self.ward.user,
                    role=t(f"role.{self.ward.role}"),
                    time=self.locked_at.strftime("%H:%M"),
                ),
                id="locked-by",
            )
            yield Static(t("lock.kept"), id="lock-kept")
            with Grid(id="lock-grid"):
                yield Label(pad(labels[0], width))
                yield WardInput(value=self.ward.user, id="user", disabled=True)
                yield Label(pad(labels[1], width))
                yield WardInput(password=True, id="password")
            yield LoadingIndicator(id="busy")
            yield Static("", id="lock-message")
        yield WardFooter()

    def on_mount(self) -> None:
        self.query_one("#busy").display = False

    def action_switch_user(self) -> None:
        """Let another person sign in on this laptop."""
        self.switching = True
        user = self.query_one("#user", Input)
        user.disabled = False
        user.value = ""
        user.focus()
        self.show_message(t("lock.switch_warning", user=self.ward.user))

    @on(Input.Submitted, "#user")
    def _user_entered(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _password_entered(self) -> None:
        user = self.query_one("#user", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not user:
            self.show_message(t("login.need_user"))
            return
        if not password:
            self.show_message(t("login.need_password"))
            return
        hold_keys(self, "unlock")  # keys typed behind the Enter belong to the screen underneath
        self.set_busy(True)
        self.unlock(user, password)

    def set_busy(self, busy: bool) -> None:
        self.query_one("#busy").display = busy
        self.query_one("#password", Input).disabled = busy
        if busy:
            self.show_message(t("login.unlocking"))

    def show_message(self, text: str) -> None:
        self.query_one("#lock-message", Static).update(text)

    @work(thread=True, exclusive=True, group="auth")
    def unlock(self, user: str, password: str) -> None:
        ward = self.ward
        try:
            if user == ward.user:
                ward.call(lambda s: ward.site.verify_password(s, user, password))
                result = ward
            else:
                result = sign_in(ward.site, user, password)
        except Exception as exc:
            self.post_message(Refused(message_of(exc)))
            return
        self.post_message(self.Unlocked(result))

    @on(Unlocked)
    def _unlocked(self, message: Unlocked) -> None:
        ward = message.ward
        self.dismiss(ward)
        release_keys(self, "unlock")

    @on(Refused)
    def _failed(self, refused: Refused) -> None:
        message = refused.text
        release_keys(self, "unlock", drop=True)
        self.set_busy(False)
        self.show_message(message)
        password = self.query_one("#password", Input)
        password.value = ""
        password.focus()
