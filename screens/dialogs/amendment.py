"""Apply a protocol amendment to one participant (investigator): the version and a reason.

Dismissed with (version, reason), or None (Esc). The dialog checks nothing the domain checks: the service
(`workflow.amendments.apply`) refuses an unknown or older version, an empty reason, a role other than the
investigator, and a version the participant's data does not fit, in its own words; the participant screen
shows that line.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..i18n import t
from ..widgets.footer import WardFooter
from ..widgets.typeahead import WardInput


class AmendmentDialog(ModalScreen[tuple[str, str] | None]):
    """Which loaded version to move the participant to, and why (the amendment's approval, re-consent)."""

    CSS_PATH = "dialogs.tcss"
    AUTO_FOCUS = "#amend-version"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "confirm", "amend.key_confirm"),
        Binding("escape", "cancel", "key.cancel"),
    ]

    def __init__(self, participant: str, current: str) -> None:
        super().__init__()
        self.participant = participant
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("amend.title", participant=self.participant), classes="dialog-title")
            yield Static(t("amend.current", current=self.current))
            yield Static(t("amend.version"))
            yield WardInput(id="amend-version", placeholder=t("amend.version_hint"))
            yield Static(t("amend.reason"))
            yield WardInput(id="amend-reason", placeholder=t("amend.reason_hint"))
        yield WardFooter()

    @on(Input.Submitted, "#amend-version")
    def _next(self) -> None:
        self.query_one("#amend-reason", Input).focus()

    @on(Input.Submitted, "#amend-reason")
    def _entered(self) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        version = self.query_one("#amend-version", Input).value
        reason = self.query_one("#amend-reason", Input).value
        self.dismiss((version, reason))

    def action_cancel(self) -> None:
        self.dismiss(None)
