"""A footer whose key descriptions follow the UI language, every key shown whole.

Bindings carry message ids as descriptions (e.g. ``key.lock``); Textual's
footer prints descriptions verbatim, so this one translates each key as it
is composed. A language switch calls ``screen.refresh_bindings()``, which
recomposes the footer.

Textual's footer is one line: the keys that do not fit were cut at the right
edge, mid-word (*n Nouveau participan* on an 80-column French dashboard, *r Re*
for Reload on a 100-column English one). This one lays the keys out in as
many lines as they need (`rows`), each key whole, the command palette's key
on the right of the first line; when they fit on one line it is Textual's
footer as before. A resize that changes the lines recomposes it.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from ..i18n import t

MAX_ROWS = 4
"""A footer never takes more lines than this (a key past them is reached with ctrl+p, as every action is)."""


def key_width(key_display: str, description: str) -> int:
    """Cells a `FooterKey` takes in Textual's (non-compact) footer: ` k ` then `description `."""
    return cell_len(key_display) + 2 + (cell_len(description) + 1 if description else 0)


def palette_width(key_display: str, description: str) -> int:
    """Cells of the command palette's key, docked right (`▏^p palette `: its left border and padding in
    place of the key's own spaces)."""
    return key_width(key_display, description)


def rows(widths: list[int], room: int) -> list[list[int]]:
    """The keys (their indexes), in order, in lines of at most `room` cells (a key wider than a line alone)."""
    out: list[list[int]] = [[]]
    used = 0
    for i, w in enumerate(widths):
        if out[-1] and used + w > room:
            out.append([])
            used = 0
        out[-1].append(i)
        used += w
    return out


class WardFooter(Footer):
    """Footer with translated key descriptions, on as many lines as its keys need."""

    DEFAULT_CSS = """
    WardFooter.-rows {
        layout: vertical;
    }
    WardFooter.-rows > HorizontalGroup.footer-row {
        height: 1;
        width: 1fr;
    }
    """

    _laid_out_for: tuple[int, int] | None = None
    """(width, lines) of the last composition: a resize that keeps the lines does not recompose."""

    def _width(self) -> int:
        return self.size.width or self.app.size.width

    def compose(self) -> ComposeResult:
        keys: list[FooterKey] = []
        palette: FooterKey | None = None
        other: list[Widget] = []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.description:
                widget.description = t(widget.description)
            if isinstance(widget, FooterKey) and widget.has_class("-command-palette"):
                palette = widget
            elif isinstance(widget, FooterKey) and not widget.has_class("-grouped"):
                keys.append(widget)
            else:
                other.append(widget)
        width = self._width()
        room = width - (palette_width(palette.key_display, palette.description) if palette else 0)
        lines = rows([key_width(k.key_display, k.description) for k in keys], room)
        if other or len(lines) <= 1 or self.compact:  # fits (or a layout this footer does not measure)
            self._laid_out_for = (width, 1)
            self.remove_class("-rows")
            self.styles.height = 1
            yield from keys
            yield from other
            if palette is not None:
                yield palette
            return
        lines = lines[:MAX_ROWS]
        self._laid_out_for = (width, len(lines))
        self.add_class("-rows")
        self.styles.height = len(lines)
        if palette is not None:
            yield palette
        for line in lines:
            yield HorizontalGroup(*(keys[i] for i in line), classes="footer-row")

    def on_resize(self, event: events.Resize) -> None:
        if self._laid_out_for is not None and self._laid_out_for[0] != event.size.width:
            self.call_after_refresh(self.recompose)
