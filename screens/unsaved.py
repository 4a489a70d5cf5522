"""Nothing typed is ever lost (issue 14): drafts, and asking before discarding.

A form screen mixes in `UnsavedWork`, says what is typed on it (`typed()`:
the values, blanks left out) and under which key its draft is kept
(`draft_key()`: the form and its context, e.g. ``vitals`` +
``participant:WUH01-001``). Then:

- the state it opened with (defaults, pre-filled values, a draft it was
  reopened from) is remembered once it is built (`mark_clean`); when what
  is typed differs from it, the form is *dirty*;
- each time the cursor leaves a field of a dirty form, the form is kept as
  a draft (`wardcrf.drafts.save`, a thread worker): a crash or a power cut
  costs at most the field being typed;
- quitting, the idle lock and a switch of user keep every dirty form of the
  stack at once (`keep_drafts_now`, the app calls it), the field being
  typed included;
- Esc on a dirty form asks "Discard what you typed? y/N"; `y` also throws
  the draft away (a dialog with a text to type, such as the reason for a
  change or a query's answer, asks too, and keeps no draft); saving the form ends its draft in the save's own
  transaction (`closing_draft`), so a record and a leftover draft of it
  never both exist.

The same user is offered their drafts back at their next sign-in (the
dashboard's `u`, `screens/drafts_screen.py`). A draft is not an event: it
never leaves the laptop (see `wardcrf/drafts.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from textual import events, work
from textual.screen import Screen

from .dialogs.discard import AsksBeforeDiscarding

T = TypeVar("T")


def without_blanks(values: dict[str, Any]) -> dict[str, Any]:
    """Values as typed, blanks left out (a field emptied again is not typed work)."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


def closing_draft(session: Any, key: tuple[str, str] | None, save: Callable[[], T]) -> T:
    """Run `save` (a service saving the form) and end the form's draft in the same transaction."""
    if key is None:
        return save()
    from wardcrf import drafts

    return drafts.closing(session, key[0], key[1], save)


def holds_typed_work(screen: Screen[Any]) -> bool:
    """Whether a screen holds typed values that quitting would end.

    A form screen or dialog (`UnsavedWork`, the DSMG decision included) says
    so through `is_dirty`; any other screen offering the same method is
    asked about too.
    """
    is_dirty = getattr(screen, "is_dirty", None)
    return bool(callable(is_dirty) and is_dirty())


class UnsavedWork(AsksBeforeDiscarding):
    """A screen with typed values: kept as a draft, and Esc asks before discarding them."""

    # -- what the screen says about itself (and `typed()`, see AsksBeforeDiscarding) ---------
    def draft_key(self) -> tuple[str, str] | None:
        """(form, context) its draft is kept under; None: this screen keeps no draft."""
        return None

    def draft_fields(self) -> dict[str, Any]:
        """What the draft keeps: what is typed (a screen may add where it was, e.g. a step)."""
        return self.typed()

    def focused_field(self) -> str | None:
        """The name of the field the cursor is in (kept with the draft)."""
        return None

    # -- drafts -------------------------------------------------------------------------------
    @property
    def keeps_drafts(self) -> bool:
        ward = getattr(self, "ward", None)
        return self.draft_key() is not None and ward is not None and ward.can("draft.keep")

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        """The cursor left a field: keep the form as it is now."""
        if self.keeps_drafts and self.is_mounted and self.is_dirty():
            self.keep_draft()

    def keep_draft(self) -> None:
        """Keep the form as a draft, in a worker (the values are read here, on the UI thread)."""
        key = self.draft_key()
        if key is None:
            return
        self._keep(key, self.draft_fields(), self.focused_field())

    @work(thread=True, exclusive=True, group="draft")
    def _keep(self, key: tuple[str, str], fields: dict[str, Any], focus: str | None) -> None:
        self._save_draft(key, fields, focus)

    def keep_draft_now(self) -> None:
        """Keep the form as a draft before this call returns (quitting, locking, switching user)."""
        key = self.draft_key()
        if key is not None and self.keeps_drafts and self.is_mounted and self.is_dirty():
            self._save_draft(key, self.draft_fields(), self.focused_field())

    def _save_draft(self, key: tuple[str, str], fields: dict[str, Any], focus: str | None) -> None:
        from wardcrf import drafts
        from wardcrf.errors import WardError

        from .errors import message_of

        try:
            self.ward.call(drafts.save, key[0], fields, context=key[1], focus=focus)  # type: ignore[attr-defined]
        except WardError as exc:  # the form stays on screen either way; say why it is not kept
            self.app.call_later(self.app.notify, message_of(exc), severity="warning")

    def end_draft(self) -> None:
        """The person threw the typed values away: the draft goes too."""
        key = self.draft_key()
        if key is None or not self.keeps_drafts:
            return
        from wardcrf import drafts
        from wardcrf.errors import WardError

        from .errors import message_of

        try:
            self.ward.call(drafts.discard, key[0], context=key[1])  # type: ignore[attr-defined]
        except WardError as exc:  # a draft left behind is offered again, never lost: say so
            self.app.notify(message_of(exc), severity="warning")

    def discarded(self) -> None:
        """Esc + y: the draft goes with the typed values."""
        self.end_draft()
