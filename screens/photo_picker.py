"""Choose photos for a form's photo field: from the tray folder, or any folder.

The **tray** is the folder where the camera or the phone drops its pictures
(`$WARDCRF_PHOTO_TRAY`, else `<data_dir>/tray`; `photos.tray.tray_folder`):
its image files are listed newest first with size and time, and marked when
the same bytes are already in the photo store. **Folders** (`F3`) is a
directory tree showing only folders and image files, with a path line to
jump anywhere (a USB stick, a file by its full path).

The highlighted file is checked in a worker exactly as an import would
check it (`photos.importing.inspect_file`: format, size, pixels, truncation) and
drawn beside the list with half blocks; a bad file shows the import's own
refusal and cannot be chosen. `Enter` chooses the photo and returns to the
form, `a` adds it and stays (several photos per field), `Esc` adds nothing.
Nothing is imported here: the form imports the photos with the record, in
the same transaction, when it is saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, DirectoryTree, Input, Static

from wardcrf.clock import zone

from .errors import message_of
from .i18n import t
from .photo_view import PhotoImage, decode, human_size
from .results import Refused, post_outcome
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.tables import WardTable
from .widgets.typeahead import WardInput

PHOTO_ENDINGS = frozenset({".jpg", ".jpeg", ".png", ".heic", ".heif"})
"""File endings shown (the same as `photos.importing.PHOTO_EXTENSIONS`; kept here so
opening the picker does not import the photo package before it is needed)."""


@dataclass(frozen=True)
class Checked:
    """A file's check: its summary line and drawable preview, or the refusal."""

    path: Path
    summary: str = ""
    image: Any = None
    refusal: str | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def check_photo(path: Path) -> Checked:
    """Check a file as an import would (domain validation) and decode its preview."""
    from wardcrf.photos import importing

    try:
        found = importing.inspect_file(path)
    except Exception as exc:
        return Checked(path, refusal=message_of(exc))
    summary = f"{path.name} · {found.format} {found.width}×{found.height} · {human_size(found.size)}"
    if found.captured_at:
        summary += " · " + t("photo.taken", when=found.captured_at.replace("T", " ")[:16])
    return Checked(path, summary=summary, image=decode(found.preview.data))


class PhotoTree(DirectoryTree):
    """Folders and image files only (hidden entries left out)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        out = []
        for p in paths:
            if p.name.startswith("."):
                continue
            try:
                if p.is_dir() or p.suffix.lower() in PHOTO_ENDINGS:
                    out.append(p)
            except OSError:
                continue
        return out


class PhotoPicker(ModalScreen[list[Path] | None]):
    """Dismissed with the chosen photo files (possibly several), or None (Esc)."""

    CSS_PATH = "photo_picker.tcss"
    AUTO_FOCUS = "#tray"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "key.cancel"),
        Binding("a", "add", "photo.key_add"),
        Binding("f3", "switch", "photo.key_switch"),
        Binding("f5", "reload", "key.reload"),
    ]

    @dataclass
    class TrayLoaded(Message):
        """The photo files in the tray folder, newest first."""

        files: list[Any]

    @dataclass
    class PhotoChecked(Message):
        """A file checked as an import would check it, with its preview."""

        result: Checked

    def __init__(self, ward: Ward, field_label: str, *, browse_root: Path | None = None) -> None:
        super().__init__()
        self.ward = ward
        self.field_label = field_label
        from wardcrf.photos import tray as photo_tray

        self.tray = photo_tray.tray_folder(ward.site.data_dir)
        self.browse_root = browse_root or Path("/")
        self.mode = "tray"
        self.files: list[Any] = []
        self.checked: dict[Path, Checked] = {}
        self.chosen: list[Path] = []
        self.current: Path | None = None
        self._then_add: tuple[Path, bool] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="picker-dialog"):
            yield Static(t("photo.picker_title", field=self.field_label), classes="dialog-title")
            yield Static(self._where(), id="picker-where", classes="muted")
            with Horizontal(id="picker-body"):
                with Vertical(id="picker-left"):
                    table: DataTable[str] = WardTable(id="tray", cursor_type="row", zebra_stripes=True)
                    self._mark_col = table.add_columns(
                        t("photo.col_name"), t("photo.col_size"), t("photo.col_time"), ""
                    )[3]
                    yield table
                    yield WardInput(
                        value=str(self.browse_root), id="browse-path", classes="-hidden", compact=True
                    )
                with Vertical(id="picker-right"):
                    yield Static(t("photo.none_highlighted"), id="photo-check", classes="muted")
                    yield PhotoImage(id="picker-image")
            yield Static(self._chosen_text(), id="picker-chosen")
        yield WardFooter()

    def on_mount(self) -> None:
        self.load_tray()

    def relabelled(self) -> None:
        """After a language switch (the screen recomposed): the same list, mode and photo."""
        mode, current = self.mode, self.current
        self.mode = "tray"
        self._fill_tray(self.files)
        if mode == "browse":
            self.action_switch()
        if current is not None:
            self._highlight(current)

    # -- where photos come from ------------------------------------------------------
    def _where(self) -> str:
        if self.mode == "tray":
            return t("photo.tray_where", folder=str(self.tray))
        return t("photo.browse_where")

    def action_switch(self) -> None:
        """F3: tray ↔ folders."""
        self.mode = "browse" if self.mode == "tray" else "tray"
        tray = self.mode == "tray"
        if not tray and not self.query("#browse"):
            # Mounted on first use: the tree keeps a loader running while it exists.
            self.query_one("#picker-left").mount(PhotoTree(self.browse_root, id="browse"))
        self.query_one("#tray").set_class(not tray, "-hidden")
        self.query_one("#browse-path").set_class(tray, "-hidden")
        self.query_one("#browse").set_class(tray, "-hidden")
        self.query_one("#picker-where", Static).update(self._where())
        self.call_after_refresh(self.query_one("#tray" if tray else "#browse").focus)

    def action_reload(self) -> None:
        if self.mode == "tray":
            self.load_tray()
        else:
            self.query_one("#browse", PhotoTree).reload()
        self.checked.clear()

    @work(thread=True, exclusive=True, group="photo-tray")
    def load_tray(self) -> None:
        from wardcrf.photos import tray as photo_tray

        post_outcome(self, lambda: self.ward.call(photo_tray.tray_files, self.tray), self.TrayLoaded)

    def _mark(self, f: Any) -> str:
        return "✓" if f.path in self.chosen else (t("photo.stored") if f.stored else "")

    def _mark_tray(self) -> None:
        table = self.query_one("#tray", DataTable)
        for i, f in enumerate(self.files):
            table.update_cell(str(i), self._mark_col, self._mark(f))

    @on(TrayLoaded)
    def _on_tray_loaded(self, message: TrayLoaded) -> None:
        self._fill_tray(message.files)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text, True)

    def _fill_tray(self, files: list[Any]) -> None:
        self.files = files
        table = self.query_one("#tray", DataTable)
        table.clear()
        where = zone(self.ward.session.ctx.zone)
        for i, f in enumerate(files):
            when = datetime.fromtimestamp(f.modified, where).strftime("%m-%d %H:%M")
            table.add_row(f.name, human_size(f.size), when, self._mark(f), key=str(i))
        if not files:
            self._say(t("photo.tray_empty", folder=str(self.tray)), False)
            return
        # Stay on the photo in view (a reload or a language switch refills the list).
        row = next((i for i, f in enumerate(files) if f.path == self.current), 0)
        table.move_cursor(row=row)
        if self.mode == "tray":
            self._highlight(files[row].path)

    @on(DataTable.RowHighlighted, "#tray")
    def _tray_row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and self.files:
            self._highlight(self.files[int(event.row_key.value)].path)

    @on(DataTable.RowSelected, "#tray")
    def _tray_enter(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None and self.files:
            self._add(self.files[int(event.row_key.value)].path, close=True)

    @on(DirectoryTree.NodeHighlighted, "#browse")
    def _tree_node(self, event: DirectoryTree.NodeHighlighted[Any]) -> None:
        data = event.node.data
        path = getattr(data, "path", None)
        if path is not None and Path(path).is_file():
            self._highlight(Path(path))

    @on(DirectoryTree.FileSelected, "#browse")
    def _tree_file(self, event: DirectoryTree.FileSelected) -> None:
        self._add(Path(event.path), close=True)

    @on(Input.Submitted, "#browse-path")
    def _path_typed(self, event: Input.Submitted) -> None:
        """A folder becomes the tree's root; a file is checked (Enter again chooses it)."""
        path = Path(event.value.strip()).expanduser()
        if path.is_dir():
            tree = self.query_one("#browse", PhotoTree)
            tree.path = path
            tree.focus()
        elif path == self.current and path in self.checked:
            self._add(path, close=True)
        else:
            self._highlight(path)

    # -- checking and previews ---------------------------------------------------------
    def _highlight(self, path: Path) -> None:
        self.current = path
        done = self.checked.get(path)
        if done is not None:
            self._show(done)
            return
        self._say(t("photo.checking"), False)
        self.query_one("#picker-image", PhotoImage).show(None)
        self.run_check(path)

    @work(thread=True, exclusive=True, group="photo-check")
    def run_check(self, path: Path) -> None:
        result = check_photo(path)
        self.post_message(self.PhotoChecked(result))

    @on(PhotoChecked)
    def _checked(self, message: PhotoChecked) -> None:
        result = message.result
        self.checked[result.path] = result
        if result.path == self.current:
            self._show(result)
        if self._then_add and self._then_add[0] == result.path:
            _, close = self._then_add
            self._then_add = None
            self._add(result.path, close=close)

    def _show(self, result: Checked) -> None:
        if result.ok:
            self._say(result.summary, False)
            self.query_one("#picker-image", PhotoImage).show(result.image)
        else:
            self._say(result.refusal or "", True)
            self.query_one("#picker-image", PhotoImage).show(None)

    def _say(self, text: str, refusal: bool) -> None:
        line = self.query_one("#photo-check", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")

    # -- choosing --------------------------------------------------------------------
    def action_add(self) -> None:
        """a: add the highlighted photo and keep choosing."""
        if self.current is not None:
            self._add(self.current, close=False)

    def _add(self, path: Path, *, close: bool) -> None:
        result = self.checked.get(path)
        if result is None:  # still being checked: add it when the check is done
            self._then_add = (path, close)
            if path != self.current:
                self._highlight(path)
            return
        if not result.ok:
            self._say(f"{result.refusal} — {t('photo.not_added')}", True)
            return
        if path not in self.chosen:
            self.chosen.append(path)
        self.query_one("#picker-chosen", Static).update(self._chosen_text())
        self._mark_tray()
        if close:
            self.dismiss(list(self.chosen))

    def _chosen_text(self) -> str:
        if not self.chosen:
            return t("photo.chosen_none")
        return t("photo.chosen", n=len(self.chosen), names=", ".join(p.name for p in self.chosen))

    def action_cancel(self) -> None:
        self.dismiss(None)
