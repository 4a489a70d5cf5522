"""After an administration is saved with events checked: open their AE forms now, or later?"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from .i18n import t
from .widgets.footer import WardFooter


class AeOffer(ModalScreen[bool]):
    """After saving: events were checked, so AE forms are expected. Open them now?"""

    CSS_PATH = "dialogs/dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "dose.key_open", priority=True),
        Binding("escape", "later", "dose.key_later"),
    ]

    def __init__(self, dose_number: int, events: list[str], *, text: str | None = None) -> None:
        super().__init__()
        self.dose_number = dose_number
        self.events = events
        self.text = text  # the administration wizard's words ("after infusion 2"), else the dose's

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("dose.ae_offer_title"), classes="dialog-title")
            yield Static(self.text or t("dose.ae_offer", n=self.dose_number, events=", ".join(self.events)))
            yield Static(t("dose.ae_offer_keys"), classes="muted")
        yield WardFooter()

    def action_open(self) -> None:
        self.dismiss(True)

    def action_later(self) -> None:
        self.dismiss(False)
