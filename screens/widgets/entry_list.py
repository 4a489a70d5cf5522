"""A list typed or scanned one entry at a time (kit ids, photos).

- `EntryList`: a field a barcode scanner types into. A scanner types the
  code as a burst of keys and ends it with Enter, so Enter *adds* the
  entry to the list below and keeps the focus for the next scan; Enter on
  an empty field moves on, `ctrl+z` undoes the last scan (a key the text
  box does not claim, shown in the footer). Each scan is checked against
  the id rule at once (`wardcrf.ids.scan`, with the protocol's format when
  it declares one): ids a scanner ran together with no gap
  ("EXO-0101EXO-0102") or an id that breaks the rule are refused in one
  line, nothing is added, and the scan stays selected so the next one
  replaces it. Kit ids are
  normalised by the domain's own `scanned_id` (control characters dropped,
  upper-cased), so what the list shows is what the service will store.
- A laptop whose scanner sends no Enter (scanner profile ``gap``,
  `wardcrf.scanner`; the screen passes its `gap_s` to the lists that check
  each scan against an id rule — kits, not photo paths): a burst followed by
  the profile's quiet gap is one complete scan (`ScanField`), taken like an
  Enter — checked at once, listed, or refused in one line and not listed —
  and the field is cleared for the next scan either way. Enter still works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Input, Static

from wardcrf.errors import WardError

from ..errors import message_of
from ..i18n import t
from .scan_field import ScanField


class ScanInput(ScanField):
    """The text box of an `EntryList`: ctrl+z undoes the last scan of its list."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+z", "undo_scan", "key.undo_scan")]

    def action_undo_scan(self) -> None:
        parent = self.parent
        if isinstance(parent, EntryList):
            parent.action_undo_scan()


class EntryList(Widget):
    """An input that adds each entry (Enter) to a visible list: kit ids, photos."""

    DEFAULT_CSS = """
    EntryList {
        height: auto;
        width: 1fr;
    }
    EntryList > Input {
        width: 1fr;
    }
    EntryList > .entries {
        height: auto;
        max-height: 4;
        color: $text-muted;
        padding-left: 1;
    }
    EntryList > .entry-problem {
        height: auto;
        color: $error;
        padding-left: 1;
    }
    """

    def __init__(
        self,
        *,
        normalise: Callable[[str], str] | None = None,
        scan: Callable[[str, list[str]], list[str]] | None = None,
        entries: Iterable[str] = (),
        placeholder: str = "",
        gap_s: float | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.gap_s = gap_s
        """The scanner profile's quiet gap that ends a scan, in seconds (None: Enter only)."""
        self.normalise = normalise or (lambda raw: raw.strip())
        self.scan = scan or (lambda raw, _listed: [self.normalise(raw)])
        """raw, the entries listed -> the entries the burst holds (raises WardError to refuse it all)."""
        self.entries: list[str] = list(entries)
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield ScanInput(placeholder=self.placeholder, classes="entry-input", compact=True, gap_s=self.gap_s)
        yield Static(self._listing(), classes="entries")
        yield Static("", classes="entry-problem")

    def _listing(self) -> str:
        if not self.entries:
            return t("cc.none_yet")
        return t("cc.entries", n=len(self.entries), items=", ".join(self.entries))

    @property
    def input(self) -> Input:
        return self.query_one(".entry-input", Input)

    def focus(self, scroll_visible: bool = True) -> EntryList:
        self.input.focus(scroll_visible)
        return self

    @on(Input.Submitted, ".entry-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        raw = event.value
        if not raw.strip():
            self.screen.focus_next()
            return
        self._take(raw, refused_stays=True)

    @on(ScanField.Quiet, ".entry-input")
    def _scanned(self, event: ScanField.Quiet) -> None:
        """A burst the scanner ended with its quiet gap: one complete scan, taken like an Enter."""
        event.stop()
        if event.complete and event.value == self.input.value:
            self._take(event.value, refused_stays=False)

    def _take(self, raw: str, *, refused_stays: bool) -> None:
        """Check one scan at once: list what it holds, or refuse it whole in one line.

        `refused_stays`: the refused scan stays, selected, so the next one replaces it (Enter);
        else the field is cleared for the next scan (a scan the quiet gap ended).
        """
        try:
            scanned = self.scan(raw, list(self.entries))
        except WardError as exc:
            self._problem(message_of(exc))
            if refused_stays:
                self.input.select_all()  # refused, not added: the next scan replaces it
            else:
                self.input.value = ""
            return
        twice = [e for e in scanned if e in self.entries]
        self.entries.extend(e for e in scanned if e not in self.entries)
        self._problem(t("cc.listed_twice", entry=", ".join(twice)) if twice else "")
        self.input.value = ""
        self._refresh()

    def add(self, entry: str) -> None:
        if entry not in self.entries:
            self.entries.append(entry)
        self._refresh()

    def action_undo_scan(self) -> None:
        """Remove the last entry (a wrong scan); the text being typed stays."""
        if self.entries:
            self.entries.pop()
            self._problem("")
            self._refresh()

    def _problem(self, text: str) -> None:
        self.query_one(".entry-problem", Static).update(text)

    def _refresh(self) -> None:
        self.query_one(".entries", Static).update(self._listing())

    def values(self) -> list[str]:
        """The entries, plus whatever is typed but not yet entered (nothing is lost)."""
        pending = self.input.value.strip()
        return [*self.entries, pending] if pending and pending not in self.entries else list(self.entries)
