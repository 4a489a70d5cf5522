"""Discard what you typed? y/N — asked before a form with typed values closes.

One glove slip on Esc must not cost a visit's typing: the answer is No
unless the person presses `y` (Enter and Esc both keep the form).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..i18n import t
from ..widgets.footer import WardFooter


class DiscardDialog(ModalScreen[bool]):
    """Dismissed with True only for `y` (discard); anything else keeps the form."""

    TITLE_KEY: ClassVar[str] = "discard.title"
    QUESTION_KEY: ClassVar[str] = "discard.question"
    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "discard.key_yes"),
        Binding("n", "answer(False)", "discard.key_no"),
        Binding("enter", "answer(False)", show=False),
        Binding("escape", "answer(False)", show=False),
    ]

    def __init__(self, what: str = "") -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t(self.TITLE_KEY), classes="dialog-title")
            if self.what:
                yield Static(self.what)
            yield Static(t(self.QUESTION_KEY), id="discard-question")
        yield WardFooter()

    def action_answer(self, discard: bool) -> None:
        self.dismiss(discard)
