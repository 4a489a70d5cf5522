"""Which screen reopens a draft: a registry that each screen package fills explicitly.

The drafts screen (`drafts_screen.py`) lists the signed-in person's unsaved
forms and reopens one on its own screen. It opens the screens of its own
package itself (the dose wizard, the DSMG board, a protocol form); the screens
of another package it learns from that package's `register_drafts(openers)`,
which adds an opener per form it keeps drafts of (`screens/coldchain/drafts.py`).
`drafts_screen.DRAFT_OPENERS` lists those functions and calls each once,
when the first draft is titled or reopened: nothing registers itself when
imported, and the cold-chain screens, which keep drafts, never import the
drafts screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen

from wardcrf import drafts

from .ward import Ward

Opener = Callable[[Ward, drafts.Draft], Screen[Any]]
"""`open(ward, draft)`: the draft's screen with its values back and the cursor where it was."""


def participant_of(draft: drafts.Draft) -> str | None:
    """The participant a draft is kept for (``participant:<id>``), if any."""
    return draft.context.removeprefix("participant:") if draft.context.startswith("participant:") else None


def unit_of(draft: drafts.Draft) -> str | None:
    """The storage unit a draft is kept for (a manual temperature reading, ``unit:<id>``), if any."""
    return draft.context.removeprefix("unit:") if draft.context.startswith("unit:") else None


@dataclass(frozen=True)
class DraftOpener:
    title: str
    """The message id of the screen's title (`i18n.t`): what the drafts list calls the form."""
    open: Opener


class DraftOpeners:
    """Form -> the screen that reopens its drafts. One opener per form: a second is a bug."""

    def __init__(self) -> None:
        self._by_form: dict[str, DraftOpener] = {}

    def add(self, form: str, *, title: str, open: Opener) -> None:
        if form in self._by_form:
            raise ValueError(f"a second draft opener for form {form!r}")
        self._by_form[form] = DraftOpener(title, open)

    def get(self, form: str) -> DraftOpener | None:
        return self._by_form.get(form)

    def forms(self) -> list[str]:
        return sorted(self._by_form)
