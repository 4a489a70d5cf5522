"""Quit? y/N — asked when ctrl+q finds a form with typed values.

ctrl+q once quit the dose wizard mid-visit (issue 14, finding 3). Now the
app keeps every typed form as its owner's draft *first* (nothing is lost
even if the laptop dies with this question on screen), then asks: the
answer is No unless the person presses `y`, so a glove slip on ctrl+q
ends nothing.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from .discard import DiscardDialog


class QuitDialog(DiscardDialog):
    """Dismissed with True only for `y` (quit); anything else stays in the app."""

    TITLE_KEY = "quit.title"
    QUESTION_KEY = "quit.question"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "quit.key_yes"),
        Binding("n", "answer(False)", "quit.key_no"),
        Binding("enter", "answer(False)", show=False),
        Binding("escape", "answer(False)", show=False),
    ]
