"""Choose a file.

- `PathPicker`: a modal with a `DirectoryTree` and a path field, for a
  logger file or a photo of the signed sheet; dismissed with the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Static

from ..i18n import t
from ..widgets.footer import WardFooter
from ..widgets.typeahead import WardInput


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
