"""A footer whose key descriptions follow the UI language.

Bindings carry message ids as descriptions (e.g. ``key.lock``); Textual's
footer prints descriptions verbatim, so this one translates each key as it
is composed. A language switch calls ``screen.refresh_bindings()``, which
recomposes the footer.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from ..i18n import t


class WardFooter(Footer):
    """Footer with translated key descriptions."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.description:
                widget.description = t(widget.description)
            yield widget
