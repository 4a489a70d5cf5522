"""A photo drawn in the terminal, and a full-screen look at a stored photo.

`PhotoImage` draws JPEG/PNG bytes with Unicode half blocks
(`wardcrf.photos.render.HalfBlockImage`: two pixels per cell, true colour,
no graphics protocol needed, the same drawing as `wardcrf photo show`),
fitted to the widget. Decoding happens in the caller's worker (`decode`),
never on the UI thread, and Pillow is imported only there.

Where the terminal speaks a graphics protocol (Kitty or Sixel, decided
before the app starts: `photo_protocol`), `decode` returns the picture for
textual-image instead and `PhotoImage` draws it in real pixels, so a
photographed page is legible on screen.

`PhotoScreen` shows one stored photo: the preview comes from
`photos.viewing.preview`, which re-hashes the original first, so an altered
photo is never drawn: its refusal is shown instead. Nothing here writes
(a first view may cache a derived preview, as the domain decides).

`ExportDialog` is the way to read a photo on any terminal: it writes a
verified copy of the original (`photos.viewing.export_original`: hash checked on
read, and again once written) into a folder the user chooses, named by its
SHA-256, and says where, to open in an image viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Static

from .i18n import t
from .results import Refused, post_outcome
from .ward import Ward
from .widgets import photo_protocol
from .widgets.footer import WardFooter
from .widgets.typeahead import WardInput


@dataclass
class ProtocolPicture:
    """A decoded photo for textual-image (drawn in real pixels by the terminal's protocol)."""

    image: Any  # PIL.Image.Image
    protocol: str


def decode(data: bytes) -> Any:
    """The drawable image (decoded now: call it in a worker)."""
    protocol = photo_protocol.chosen()
    if protocol is not None:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return ProtocolPicture(im.convert("RGB"), protocol)
    from wardcrf.photos.render import HalfBlockImage

    return HalfBlockImage(data)


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


class PhotoImage(Widget):
    """Draws a decoded photo (see `decode`) in the widget's cells; blank until given one."""

    DEFAULT_CSS = """
    PhotoImage {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.image: Any = None

    def show(self, image: Any) -> None:
        self.image = image
        self.remove_children()
        if isinstance(image, ProtocolPicture):
            drawn = photo_protocol.widget_for(image.image)
            if drawn is not None:
                drawn.styles.width = "100%"
                drawn.styles.height = "100%"
                self.mount(drawn)
        self.refresh()

    def render(self) -> Any:
        if self.image is None or isinstance(self.image, ProtocolPicture):
            return Text("")
        self.image.max_width = max(1, self.size.width)
        self.image.max_rows = max(1, self.size.height)
        return self.image


class PhotoScreen(ModalScreen[None]):
    """One stored photo, hash-checked before it is drawn (Esc returns)."""

    CSS_PATH = "photo_view.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_screen", "key.back"),
        Binding("enter", "dismiss_screen", "key.back", show=False),
        Binding("e", "export", "photo.key_export"),
    ]

    @dataclass
    class Loaded(Message):
        """The photo's preview, checked against its hash and decoded."""

        image: Any

    def __init__(self, ward: Ward, sha256: str, caption: str = "") -> None:
        super().__init__()
        self.ward = ward
        self.sha256 = sha256
        self.caption = caption

    def compose(self) -> ComposeResult:
        with Vertical(classes="photo-dialog"):
            yield Static(self.caption or f"sha256:{self.sha256}", classes="dialog-title", id="photo-caption")
            yield Static(t("photo.checking"), id="photo-status", classes="muted")
            yield PhotoImage(id="photo-image")
        yield WardFooter()

    def on_mount(self) -> None:
        self.load()

    def relabelled(self) -> None:
        """After a language switch (the screen recomposed): check and draw it again."""
        self.load()

    @work(thread=True, exclusive=True, group="photo-view")
    def load(self) -> None:
        from wardcrf.photos import viewing

        # An altered original is refused by the domain: say so.
        post_outcome(self, lambda: decode(self.ward.call(viewing.preview, self.sha256).data), self.Loaded)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._refused(message.text)

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        image = message.image
        line = t("photo.intact_shown") + " " + t("photo.export_hint")
        self.query_one("#photo-status", Static).update(line)
        self.query_one("#photo-image", PhotoImage).show(image)

    def _refused(self, text: str) -> None:
        status = self.query_one("#photo-status", Static)
        status.update(text)
        status.set_class(True, "refusal")
        status.set_class(False, "muted")

    def action_dismiss_screen(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        self.app.push_screen(ExportDialog(self.ward, self.sha256), self._exported)

    def _exported(self, line: str | None) -> None:
        if line:  # a path is shown as text, never as markup
            self.query_one("#photo-status", Static).update(Text(line))


_last_folder: Path | None = None
"""The folder of this run's last export (offered again: an auditor exports a series into one place)."""


def default_folder() -> Path:
    return _last_folder if _last_folder is not None and _last_folder.is_dir() else Path.home()


def export_copy(ward: Ward, sha256: str, folder_text: str) -> str:
    """Write a verified copy of the original into `folder_text`; the line that says where (raises to refuse).

    The file is named by its SHA-256, so a second export of the same photo
    replaces it with the same verified bytes (atomic, re-hashed once written).
    """
    global _last_folder
    from wardcrf.photos import viewing

    from wardcrf.errors import UsageError

    folder = Path(folder_text.strip()).expanduser()
    if not folder_text.strip():
        raise UsageError(t("photo.export_need_folder"))
    if not folder.is_dir():
        raise UsageError(t("photo.export_not_folder", folder=str(folder)))
    done = ward.call(viewing.export_original, sha256, folder, overwrite=True)
    _last_folder = folder
    return t("photo.exported", path=str(done.path.resolve()))


class ExportDialog(ModalScreen[str | None]):
    """Choose a folder for a verified copy of a photo; dismissed with the line saying where, or None."""

    CSS_PATH = "dialogs/dialogs.tcss"
    AUTO_FOCUS = "#export-folder"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "key.cancel")]

    @dataclass
    class Exported(Message):
        """The copy was written: the confirmation line (the dialog's result)."""

        line: str

    def __init__(self, ward: Ward, sha256: str) -> None:
        super().__init__()
        self.ward = ward
        self.sha256 = sha256

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("photo.export_title"), classes="dialog-title")
            yield Static(f"sha256:{self.sha256}", classes="muted")
            yield Static(t("photo.export_folder"))
            yield WardInput(value=str(default_folder()), id="export-folder")
            yield Static("", id="export-message", classes="refusal")
        yield WardFooter()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#export-folder")
    def _submitted(self, event: Input.Submitted) -> None:
        self.query_one("#export-folder", Input).disabled = True
        self.run_export(event.value)

    @work(thread=True, exclusive=True, group="photo-export")
    def run_export(self, folder: str) -> None:
        # A refusal (no such folder, altered photo, role) keeps the dialog.
        post_outcome(self, lambda: export_copy(self.ward, self.sha256, folder), self.Exported)

    @on(Exported)
    def _on_exported(self, message: Exported) -> None:
        self.dismiss(message.line)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._refused(message.text)

    def _refused(self, text: str) -> None:
        self.query_one("#export-message", Static).update(Text(text))
        field = self.query_one("#export-folder", Input)
        field.disabled = False
        field.focus()
