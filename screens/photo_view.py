"""A photo drawn in the terminal, and a full-screen look at a stored photo.

`PhotoImage` draws JPEG/PNG bytes with Unicode half blocks
(`wardcrf.photos.render.HalfBlockImage`: two pixels per cell, true colour,
no graphics protocol needed, the same drawing as `wardcrf photo show`),
fitted to the widget. Decoding happens in the caller's worker (`decode`),
never on the UI thread, and Pillow is imported only there.

`PhotoScreen` shows one stored photo: the preview comes from
`photos.api.preview`, which re-hashes the original first, so an altered
photo is never drawn: its refusal is shown instead. Nothing here writes
(a first view may cache a derived preview, as the domain decides).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Static

from .errors import message_of
from .footer import WardFooter
from .i18n import t
from .ward import Ward


def decode(data: bytes) -> Any:
    """The drawable image (decoded now: call it in a worker)."""
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
        self.refresh()

    def render(self) -> Any:
        if self.image is None:
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
    ]

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
        from wardcrf.photos import api

        try:
            shown = self.ward.call(api.preview, self.sha256)
            image = decode(shown.data)
        except Exception as exc:  # an altered original is refused by the domain: say so
            self.app.call_from_thread(self._refused, message_of(exc))
            return
        self.app.call_from_thread(self._show, image)

    def _show(self, image: Any) -> None:
        self.query_one("#photo-status", Static).update(t("photo.intact_shown"))
        self.query_one("#photo-image", PhotoImage).show(image)

    def _refused(self, text: str) -> None:
        status = self.query_one("#photo-status", Static)
        status.update(text)
        status.set_class(True, "refusal")
        status.set_class(False, "muted")

    def action_dismiss_screen(self) -> None:
        self.dismiss(None)
