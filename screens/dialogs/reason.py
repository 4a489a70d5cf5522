"""Reason-for-change dialog: an amendment or a soft-range value needs a why.

Dismissed with the reason text, or None when cancelled (Esc). An empty or
blank reason is refused on the spot: the domain would refuse it too. Esc
with a reason typed asks before throwing it away (`AsksBeforeDiscarding`; no draft:
the dialog belongs to the form or answer that opened it).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..i18n import t
from ..widgets.footer import WardFooter
from ..widgets.typeahead import WardInput
from .discard import AsksBeforeDiscarding

MIN_REASON = 3


class ReasonDialog(AsksBeforeDiscarding, ModalScreen[str | None]):
    """Ask why: shows what changes (old → new) and takes a reason."""

    CSS_PATH = "dialogs.tcss"
    AUTO_FOCUS = "#reason"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "key.cancel")]

    def __init__(self, *, title: str, changes: list[str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.changes = changes or []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            for line in self.changes:
                yield Static(line, classes="change")
            yield Static(t("reason.prompt"))
            yield WardInput(id="reason", placeholder=t("reason.hint"))
            yield Static("", id="reason-message", classes="refusal")
        yield WardFooter()

    def typed(self) -> dict[str, Any]:
        text = self.query_one("#reason", Input).value.strip()
        return {"reason": text} if text else {}

    @on(Input.Submitted, "#reason")
    def _entered(self) -> None:
        text = self.query_one("#reason", Input).value.strip()
        if len(text) < MIN_REASON:
            self.query_one("#reason-message", Static).update(t("reason.too_short", n=MIN_REASON))
            return
        self.dismiss(text)
