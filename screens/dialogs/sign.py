"""E-signature dialog (Part 11 §11.50/§11.200): re-enter a password to sign.

The dialog shows exactly what is being signed and the meaning of the
signature, takes the signer's name (default: the signed-in user; a witness
or the other party to a handover types their own) and password, and calls
the `sign` function it was given in a thread worker (the KDF is slow). A
wrong password keeps the dialog open with the one-line reason and the
attempts left; the caller's form underneath is untouched either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, LoadingIndicator, Static

from ..i18n import label_width, pad, t
from ..results import Refused, post_outcome
from ..widgets.footer import WardFooter
from ..widgets.typeahead import WardInput

SignFn = Callable[[str, str], Any]
"""sign(signer, password) -> the signature event (raises a WardError to refuse)."""


class SignatureDialog(ModalScreen[Any]):
    """Dismissed with whatever `sign` returned, or None when cancelled."""

    CSS_PATH = "dialogs.tcss"
    AUTO_FOCUS = "#sig-password"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "key.cancel")]

    @dataclass
    class Signed(Message):
        """The signature was recorded: what the signing call returned (the dialog's result)."""

        result: Any

    def __init__(
        self, *, what: str, meaning: str, signer: str, sign: SignFn, signer_editable: bool = False
    ) -> None:
        super().__init__()
        self.what = what
        self.meaning = meaning
        self.signer = signer
        self.sign = sign
        self.signer_editable = signer_editable

    def compose(self) -> ComposeResult:
        labels = [t("sign.signer"), t("login.password")]
        width = label_width(labels)
        with Vertical(classes="dialog"):
            yield Static(t("sign.title"), classes="dialog-title")
            yield Static(t("sign.what", what=self.what))
            yield Static(
                t("sign.meaning", meaning=t("meaning." + self.meaning.replace(" ", "_"))),
                id="sig-meaning",
            )
            with Grid(classes="dialog-grid"):
                yield Label(pad(labels[0], width))
                yield WardInput(value=self.signer, id="sig-signer", disabled=not self.signer_editable)
                yield Label(pad(labels[1], width))
                yield WardInput(password=True, id="sig-password")
            yield Static(t("sign.declaration"), classes="muted")
            yield LoadingIndicator(id="sig-busy")
            yield Static("", id="sig-message", classes="refusal")
        yield WardFooter()

    def on_mount(self) -> None:
        self.query_one("#sig-busy").display = False
        if self.signer_editable and not self.signer:
            self.query_one("#sig-signer", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#sig-signer")
    def _signer_entered(self) -> None:
        self.query_one("#sig-password", Input).focus()

    @on(Input.Submitted, "#sig-password")
    def _password_entered(self) -> None:
        signer = self.query_one("#sig-signer", Input).value.strip()
        password = self.query_one("#sig-password", Input).value
        if not signer:
            self.query_one("#sig-message", Static).update(t("login.need_user"))
            return
        if not password:
            self.query_one("#sig-message", Static).update(t("login.need_password"))
            return
        self.query_one("#sig-busy").display = True
        self.query_one("#sig-password", Input).disabled = True
        self.run_sign(signer, password)

    @work(thread=True, exclusive=True, group="sign")
    def run_sign(self, signer: str, password: str) -> None:
        post_outcome(self, lambda: self.sign(signer, password), self.Signed)

    @on(Signed)
    def _on_signed(self, message: Signed) -> None:
        self.dismiss(message.result)

    @on(Refused)
    def _failed(self, refused: Refused) -> None:
        message = refused.text
        self.query_one("#sig-busy").display = False
        field = self.query_one("#sig-password", Input)
        field.disabled = False
        field.value = ""
        field.focus()
        self.query_one("#sig-message", Static).update(message)
