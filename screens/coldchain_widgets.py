"""Pieces the cold-chain screens share: a scanned-entry list, a path picker, times, signatures.

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
- `PathPicker`: a modal with a `DirectoryTree` and a path field, for a
  logger file or a photo of the signed sheet; dismissed with the path.
- `collect_passwords`: asks each in-system party to sign in the signature
  dialog. The dialog checks the password right away (`Site.verify_password`,
  which counts failures toward lockout like a login), so a wrong password
  keeps the dialog open; the service re-verifies it inside the save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DirectoryTree, Input, Static

from wardcrf.clock import zone
from wardcrf.errors import WardError

from .errors import message_of
from .footer import WardFooter
from .i18n import t
from .typeahead import WardInput

if TYPE_CHECKING:
    from textual.screen import Screen

    from .ward import Ward


# -- times ------------------------------------------------------------------------------


def local_time(ward: Ward, iso: str | None, *, seconds: bool = False) -> str:
    """A UTC ISO time from the domain as the ward's local 'YYYY-MM-DD HH:MM'."""
    if not iso:
        return "—"
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone(ward.session.ctx.zone))
    return dt.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_epoch(ward: Ward, t: int, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(t, zone(ward.session.ctx.zone)).strftime(fmt)


def now_text(ward: Ward) -> str:
    """The default for a time field: now, local, to the minute (people correct it if needed)."""
    return ward.local_now().strftime("%Y-%m-%d %H:%M")


def yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("y", "yes", "1", "true", "是"):
        return True
    if v in ("n", "no", "0", "false", "否"):
        return False
    return None


# -- a list typed or scanned one entry at a time ------------------------------------------


class ScanInput(WardInput):
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
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.normalise = normalise or (lambda raw: raw.strip())
        self.scan = scan or (lambda raw, _listed: [self.normalise(raw)])
        """raw, the entries listed -> the entries the burst holds (raises WardError to refuse it all)."""
        self.entries: list[str] = list(entries)
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield ScanInput(placeholder=self.placeholder, classes="entry-input", compact=True)
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
        try:
            scanned = self.scan(raw, list(self.entries))
        except WardError as exc:
            self._problem(message_of(exc))
            self.input.select_all()  # refused, not added: the next scan replaces it
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


# -- a path picker -------------------------------------------------------------------------


class PathPicker(ModalScreen[Path | None]):
    """Choose a file: browse with the tree (Enter on a file) or type its path (Enter)."""

    CSS_PATH = "dialogs.tcss"
    AUTO_FOCUS = "#picker-tree"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "key.cancel")]

    def __init__(self, *, title: str, start: Path | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.start = start if start is not None and start.is_dir() else Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="picker"):
            yield Static(self.title_text, classes="dialog-title")
            yield DirectoryTree(self.start, id="picker-tree")
            yield WardInput(placeholder=t("cc.path_hint"), id="picker-path", compact=True)
            yield Static("", id="picker-message", classes="refusal")
        yield WardFooter()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(DirectoryTree.FileSelected, "#picker-tree")
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    @on(Input.Submitted, "#picker-path")
    def _typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip().removeprefix("@")).expanduser()
        if path.is_file():
            self.dismiss(path)
        elif path.is_dir():
            self.query_one("#picker-tree", DirectoryTree).path = path
        else:
            self.query_one("#picker-message", Static).update(t("cc.no_such_file", path=str(path)))


# -- signatures --------------------------------------------------------------------------


async def collect_passwords(
    screen: Screen[Any], ward: Ward, what: str, parties: list[tuple[str, str]]
) -> dict[str, str] | None:
    """Each (user, meaning) signs in the dialog; returns their passwords, or None if one cancels."""
    from .sign_dialog import SignatureDialog

    passwords: dict[str, str] = {}
    for user, meaning in parties:
        if not user or user in passwords:
            continue

        def check(signer: str, password: str) -> str:
            ward.call(lambda s: ward.site.verify_password(s, signer, password))
            return password

        got = await screen.app.push_screen_wait(
            SignatureDialog(what=what, meaning=meaning, signer=user, sign=check)
        )
        if got is None:
            return None
        passwords[user] = got
    return passwords
