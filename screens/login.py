"""Sign in: user name and password, unlocked in a thread worker.

The key-slot KDF (scrypt) takes a noticeable fraction of a second; it runs
in a worker so the screen keeps drawing. Wrong passwords count toward the
lockout the foundation defines (`Site.unlock`), and the message says how
many attempts are left. A deactivated user is told so only after typing
the right password; any other failure reads as "wrong user name or
password" (the domain words it; this screen shows it as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Grid, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label, LoadingIndicator, Static

from wardcrf.site import Site

from .i18n import label_width, pad, t
from .keys import LANGUAGE
from .results import Refused, post_outcome
from .ward import Ward, sign_in
from .widgets.footer import WardFooter
from .widgets.typeahead import WardInput, hold_keys, release_keys

WARM_UP = (
    "wardcrf.workflow",
    "wardcrf.coldchain.reports",
    "wardcrf.sync.ward",
    "wardcrf.audit",
    "wardcrf.screens.dashboard",
)
"""What the dashboard's panels need, loaded while the password is typed (see `warm_up`)."""


class LoginScreen(Screen[Ward]):
    """The first screen: dismissed with a `Ward` once a user has signed in."""

    CSS_PATH = "login.tcss"
    AUTO_FOCUS = "#user"
    BINDINGS: ClassVar[list[BindingType]] = [
        LANGUAGE,
        Binding("ctrl+q", "app.quit", "key.quit"),
    ]

    @dataclass
    class SignedIn(Message):
        """The sign-in succeeded: the ward of the new session."""

        ward: Ward

    def __init__(self, site: Site, *, user: str = "") -> None:
        super().__init__()
        self.site = site
        self.initial_user = user
        self._warming = False

    def compose(self) -> ComposeResult:
        labels = [t("login.user"), t("login.password")]
        width = label_width(labels)
        with Center(), Vertical(id="login-box"):
            yield Static(t("app.name"), id="app-name")
            yield Static(t("login.site", site=self.site.slots.site), id="site-line")
            yield Static(t("login.title"), id="login-title")
            with Grid(id="login-grid"):
                yield Label(pad(labels[0], width))
                yield WardInput(value=self.initial_user, id="user", placeholder=t("login.user_hint"))
                yield Label(pad(labels[1], width))
                yield WardInput(password=True, id="password", placeholder=t("login.password_hint"))
            yield LoadingIndicator(id="busy")
            yield Static("", id="login-message")
            yield Static(t("login.help"), id="login-help")
        yield WardFooter()

    def on_mount(self) -> None:
        # The focus starts in the user field (AUTO_FOCUS) even with a user name filled in (the demo's):
        # its text selected, Enter keeps it and a name typed replaces it. With the focus in the
        # password, a person typing their user name first, as every sign-in asks, typed it into the
        # password and burned an attempt towards the lockout.
        self.query_one("#busy").display = False

    @on(Input.Changed, "#password")
    def _typing_password(self) -> None:
        if not self._warming:
            self._warming = True
            self.warm_up()

    @work(thread=True, group="warm-up")
    def warm_up(self) -> None:
        """Load the dashboard's code while the person types their password.

        The dashboard's domain services (workflow, cold chain, sync) are not
        needed for the login screen, so they are not imported at start-up;
        typing a password takes seconds, which is time enough to load them
        so the dashboard fills sooner after the unlock.
        """
        import importlib

        for module in WARM_UP:
            importlib.import_module(module)

    @on(Input.Submitted, "#user")
    def _user_entered(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _password_entered(self) -> None:
        user = self.query_one("#user", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not user:
            self.show_message(t("login.need_user"))
            self.query_one("#user", Input).focus()
            return
        if not password:
            self.show_message(t("login.need_password"))
            return
        # Keys typed behind this Enter belong to the screen after the sign-in (or to
        # nobody, if it is refused): they wait for the answer.
        hold_keys(self, "sign-in")
        self.set_busy(True)
        self.unlock(user, password)

    def set_busy(self, busy: bool) -> None:
        self.query_one("#busy").display = busy
        for field in self.query(Input):
            field.disabled = busy
        if busy:
            self.show_message(t("login.unlocking"))

    def show_message(self, text: str) -> None:
        self.query_one("#login-message", Static).update(text)

    @work(thread=True, exclusive=True, group="auth")
    def unlock(self, user: str, password: str) -> None:
        # Every failure becomes one line on the screen.
        post_outcome(self, lambda: sign_in(self.site, user, password), self.SignedIn)

    @on(SignedIn)
    def _signed_in(self, message: SignedIn) -> None:
        ward = message.ward
        self.dismiss(ward)
        release_keys(self, "sign-in")  # they go to the next screen once it is built

    @on(Refused)
    def _failed(self, refused: Refused) -> None:
        message = refused.text
        release_keys(self, "sign-in", drop=True)  # typed for a screen that will not come
        self.set_busy(False)
        self.show_message(message)
        password = self.query_one("#password", Input)
        password.value = ""
        password.focus()
