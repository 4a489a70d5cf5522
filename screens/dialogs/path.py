"""Choose a file or a folder: the one path dialog every screen uses.

- `PathDialog(kind="file" | "folder", title=..., hint=..., start=...)`: a
  modal with a path field and a `DirectoryTree` below it; dismissed with the
  path, or None.

Its callers: the sync screen (`e` a folder to export to, `i` a hub bundle or
receipt to import) and the cold chain (`F4`: a logger file, a photo of the
signed sheet).

- A file: Enter on it in the tree chooses it; a path typed and Enter chooses
  it when it is a file, shows it in the tree when it is a folder, and
  otherwise says there is no such file (the dialog stays, the typing kept).
- A folder: Enter on a folder in the tree puts it in the field (the tree
  lists folders only); Enter in the field chooses what it names. The
  service checks the folder (exists, writable) and says what is wrong.
- The field starts with `start` (the folder last used); an empty field is
  refused with one line. A leading `@` (the services' "a file" mark) is
  dropped.
- Esc with a path typed or picked (other than the one it opened with) asks
  before throwing it away (`AsksBeforeDiscarding`; no draft is kept).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label, Static

from ..i18n import label_width, pad, t
from ..widgets.footer import WardFooter
from ..widgets.typeahead import WardInput
from .discard import AsksBeforeDiscarding

PathKind = Literal["file", "folder"]


class FolderTree(DirectoryTree):
    """A directory tree listing folders only (choosing where to write)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if p.is_dir()]


def tree_root(start: Path | None) -> Path:
    """Where the tree opens: `start`, else where a USB stick is mounted, else home."""
    for candidate in (start, Path("/media"), Path("/mnt"), Path.home()):
        if candidate is not None and candidate.is_dir():
            return candidate
    return Path("/")


class PathDialog(AsksBeforeDiscarding, ModalScreen[Path | None]):
    """A file or a folder, typed or picked in a directory tree."""

    CSS_PATH = ["dialogs.tcss", "path.tcss"]  # noqa: RUF012
    AUTO_FOCUS = "#path"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "key.cancel")]

    def __init__(self, *, kind: PathKind, title: str, hint: str = "", start: Path | None = None) -> None:
        super().__init__()
        self.kind: PathKind = kind
        self.title_text = title
        self.hint = hint
        self.start = start

    def compose(self) -> ComposeResult:
        folder = self.kind == "folder"
        label = t("path.folder") if folder else t("path.file")
        root = tree_root(self.start if self.start is None or self.start.is_dir() else self.start.parent)
        with Vertical(classes="dialog", id="path-dialog"):
            yield Static(self.title_text, classes="dialog-title")
            with Grid(classes="dialog-grid"):
                yield Label(pad(label, label_width([label])))
                yield WardInput(value=str(self.start or ""), id="path")
            yield (FolderTree if folder else DirectoryTree)(root, id="path-tree")
            yield Static(
                self.hint or (t("path.hint_folder") if folder else t("path.hint_file")), classes="muted"
            )
            yield Static("", id="path-message", classes="refusal")
        yield WardFooter()

    @on(DirectoryTree.DirectorySelected, "#path-tree")
    def _folder(self, event: DirectoryTree.DirectorySelected) -> None:
        if self.kind == "folder":
            self.query_one("#path", Input).value = str(event.path)

    @on(DirectoryTree.FileSelected, "#path-tree")
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        if self.kind == "file":
            self.dismiss(Path(event.path))

    @on(Input.Submitted, "#path")
    def _entered(self) -> None:
        text = self.query_one("#path", Input).value.strip().removeprefix("@")
        message = self.query_one("#path-message", Static)
        if not text:
            message.update(t("path.empty"))
            return
        path = Path(text).expanduser()
        if self.kind == "folder" or path.is_file():
            self.dismiss(path)
        elif path.is_dir():
            message.update("")
            self.query_one("#path-tree", DirectoryTree).path = path
        else:
            message.update(t("path.no_such_file", path=str(path)))

    def typed(self) -> dict[str, Any]:
        text = self.query_one("#path", Input).value.strip()
        return {"path": text} if text else {}
