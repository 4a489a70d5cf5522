"""Typed values are never thrown away without asking (issue 14).

A form screen mixes in `UnsavedWork` and says what is typed on it
(`typed()`: the values, blanks left out). The state it opened with
(defaults, pre-filled values) is remembered once it is built (`mark_clean`);
when what is typed differs from it, the form is *dirty*: Esc asks
"Discard what you typed? y/N" instead of closing it.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen

from .discard_dialog import DiscardDialog


def without_blanks(values: dict[str, Any]) -> dict[str, Any]:
    """Values as typed, blanks left out (a field emptied again is not typed work)."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


class UnsavedWork(Screen[Any]):
    """A screen with typed values: Esc (`back`) asks before discarding them."""

    _clean: dict[str, Any] | None = None

    def typed(self) -> dict[str, Any]:
        """What is typed now (the screen's values, blanks left out)."""
        raise NotImplementedError

    def on_mount(self) -> None:
        # Runs after the subclass's own on_mount (Textual calls the subclass's first).
        self.mark_clean()

    def mark_clean(self) -> None:
        """What the form shows now is its starting point (called once it is built)."""
        self._clean = self.typed()

    def is_dirty(self) -> bool:
        return self._clean is not None and self.typed() != self._clean

    def action_back(self) -> None:
        """Esc: close at once when nothing is typed; else ask (y discards, anything else keeps)."""
        if not self.is_dirty():
            self.app.pop_screen()
            return
        self.app.push_screen(DiscardDialog(), self._answered)

    def _answered(self, discard: bool | None) -> None:
        if discard:
            self.discarded()
            self.app.pop_screen()

    def discarded(self) -> None:
        """The person chose to throw the typed values away (hook for what they leave behind)."""
