"""Discard what you typed? y/N — asked before a form with typed values closes.

One glove slip on Esc must not cost a visit's typing: the answer is No
unless the person presses `y` (Enter and Esc both keep the form).

`AsksBeforeDiscarding` is the Esc behaviour itself, for any screen or dialog
holding typed text: a form screen gets it through `UnsavedWork` (which adds
drafts); a short dialog (the reason for a change, a query's answer, a path)
mixes it in directly.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
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


class AsksBeforeDiscarding(Screen[Any]):
    """Esc closes at once when nothing is typed; with typed text it asks (only `y` discards).

    A screen says what is typed (`typed()`: its values, blanks left out).
    What it shows once built (defaults, pre-filled values) is its starting
    point (`mark_clean`); when what is typed differs from it, it is dirty.
    """

    _clean: dict[str, Any] | None = None

    @abstractmethod
    def typed(self) -> dict[str, Any]:
        """What is typed now (the screen's values, blanks left out): every such screen says it."""

    def on_mount(self) -> None:
        # Runs after the subclass's own on_mount (Textual calls the subclass's first).
        self.mark_clean()

    def mark_clean(self) -> None:
        """What the screen shows now is its starting point (called once it is built)."""
        self._clean = self.typed()

    def is_dirty(self) -> bool:
        return self._clean is not None and self.typed() != self._clean

    def action_back(self) -> None:
        """Esc: close at once when nothing is typed; else ask (y discards, anything else keeps)."""
        if not self.is_dirty():
            self.leave()
            return
        self.app.push_screen(DiscardDialog(), self._answered)

    def _answered(self, discard: bool | None) -> None:
        if discard:
            self.discarded()
            self.leave()

    def discarded(self) -> None:
        """The person threw the typed values away (a screen keeping a draft ends it here)."""

    def leave(self) -> None:
        """Close the screen, nothing saved; a dialog is dismissed with no result.

        (A dialog's caller waits for its result: popping it would leave that
        caller waiting for ever.)
        """
        if isinstance(self, ModalScreen):
            self.dismiss(None)
        else:
            self.app.pop_screen()
