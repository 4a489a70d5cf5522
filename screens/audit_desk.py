"""The auditor's desk: one record beside the photographs it rests on, and its source-data verification.

Opened from the audit screen (`d` on a trail entry about a record). The
record's values are shown as the casebook prints them (labels, choice
labels, units: `reports.desk`, under the protocol version the record was
captured under; when that version is not loaded on this laptop, a line says
so and the values are shown as stored), each with its SDV state (verified, changed
since verified, unverified); beside them, every photograph bound to the
record now or formerly, re-hashed as it is listed, and the highlighted one
drawn (in real pixels where the terminal speaks a graphics protocol:
`photo_protocol`). At 120 columns or more the record and its source sit
side by side; narrower, one above the other.

A monitor marks the record, or the fields chosen with Space, verified
against the photographs (`m`): an e-signature with the meaning "verified"
through `sdv.verify`, which checks the role, re-hashes every source and
refuses otherwise. Other roles are told so before any password is asked
(the same role rule the service enforces). `e` writes a verified copy of the
highlighted photograph into a chosen folder, for an image viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wardcrf import sdv
from wardcrf import text as text_rule

from .errors import for_screen, message_of
from .i18n import t
from .keys import BACK, LANGUAGE
from .photo_view import ExportDialog, PhotoImage, decode, human_size
from .results import Refused, post_outcome
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.tables import WardTable
from .widgets.typeahead import hold_keys, release_keys

WIDE = 120
"""From this many columns the record and its source sit side by side."""

if TYPE_CHECKING:
    from wardcrf.reports.desk import Desk


_STYLES = {sdv.VERIFIED: "bold green", sdv.CHANGED: "bold reverse red", sdv.PARTLY: "yellow"}


def state_text(state: str, *, short: bool = False) -> Text:
    """An SDV state: "changed since verified" stands out (it is what a monitor must act on).

    `short`: the field table's column ("CHANGED"), narrow enough to stay in
    view beside the value in half a 120-column screen."""
    key = "desk." + ("short_" if short else "state_") + state.replace(" ", "_")
    return Text(t(key), style=_STYLES.get(state, ""))


class DeskScreen(Screen[None]):
    """One record and its photographs, with the source-data verification of each field."""

    CSS_PATH = "audit_desk.tcss"
    AUTO_FOCUS = "#desk-fields"
    BINDINGS: ClassVar[list[BindingType]] = [
        BACK,
        Binding("space", "toggle_field", "desk.key_choose"),
        Binding("m", "mark", "desk.key_mark"),
        Binding("e", "export", "photo.key_export"),
        Binding("v", "view", "desk.key_view"),
        LANGUAGE,
    ]

    def __init__(self, ward: Ward, record_id: str) -> None:
        super().__init__()
        self.ward = ward
        self.record_id = record_id
        self.desk: Any = None
        """The read model (reports.desk.Desk), once loaded."""
        self.chosen: set[str] = set()
        """Fields chosen for a field-level mark (none chosen: the whole record)."""
        self.photo_index: int | None = None
        self.message = ""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("place.desk"))
        yield Static(t("desk.loading"), id="desk-title", classes="section-title")
        yield Static("", id="desk-state")
        # the record's version is not loaded here: said before the values, which are shown as stored
        yield Static("", id="desk-notice", classes="refusal")
        with Container(id="desk-body"):
            with Vertical(id="desk-record"):
                yield Static(t("desk.record_title"), classes="section-title")
                yield WardTable.listing(
                    "desk-fields", " ", t("desk.col_sdv"), t("photo.col_field"), t("desk.col_value")
                )
            with Vertical(id="desk-source"):
                yield Static(t("desk.source_title"), classes="section-title")
                yield WardTable.listing(
                    "desk-photos",
                    t("photo.col_field"),
                    t("photo.col_hash"),
                    t("photo.col_size"),
                    t("photo.col_status"),
                    zebra=False,
                )
                yield Static("", id="desk-photo-line", classes="muted")
                yield PhotoImage(id="desk-image")
        yield Static("", id="desk-message")
        yield WardFooter()

    def on_mount(self) -> None:
        self._lay_out(self.size.width)
        self.reload()

    def on_resize(self, event: events.Resize) -> None:
        self._lay_out(event.size.width)

    def _lay_out(self, width: int) -> None:
        self.query_one("#desk-body").set_class(width >= WIDE, "-wide")

    def relabelled(self) -> None:
        """After a language switch (the screen recomposed): load and draw again, the choice kept."""
        self.reload()

    # -- loading ------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the record again; keys typed meanwhile wait (Space and `m` act on what is shown)."""
        hold_keys(self, "desk-load")
        self.load()

    # -- what the workers post back -----------------------------------------------------
    @dataclass
    class Loaded(Message):
        """The record's desk: fields, trail, signatures, photos."""

        desk: Desk

    @dataclass
    class LoadRefused(Message):
        """The record could not be read: the one line to show."""

        text: str

    @dataclass
    class Drawn(Message):
        """A photo's preview, checked and decoded."""

        sha256: str
        image: Any

    @work(thread=True, exclusive=True, group="desk-load")
    def load(self) -> None:
        from wardcrf.reports import desk

        try:
            found = self.ward.call(desk.desk, self.record_id)
        except Exception as exc:
            self.post_message(self.LoadRefused(message_of(exc)))
            return
        self.post_message(self.Loaded(found))

    @on(LoadRefused)
    def _load_refused(self, message: LoadRefused) -> None:
        text = message.text
        self._say(text, True)
        release_keys(self, "desk-load", drop=True)  # keys typed for a record that is not there

    @on(Loaded)
    def _fill(self, message: Loaded) -> None:
        found = message.desk
        release_keys(self, "desk-load")
        self.desk = found
        self.chosen &= {f.name for f in found.fields}
        who = (found.subject or "").removeprefix("participant:")
        title = t("desk.title", form=found.form_label, who=who or "—", record=found.event_id)
        self.query_one("#desk-title", Static).update(Text(text_rule.for_terminal(title)))
        verification = found.verification
        state = Text(t("desk.record_state") + " ")
        state.append_text(state_text(verification.state))
        if verification.state != sdv.UNVERIFIED:  # who verified, when, what changed since
            detail = verification.summary().removeprefix(sdv.CHANGED.upper() + ": ")
            state.append("  " + text_rule.for_terminal(detail), style="dim")
        self.query_one("#desk-state", Static).update(state)
        notice = self.query_one("#desk-notice", Static)
        notice.update(Text(text_rule.for_terminal(for_screen(found.notice or ""))))  # no CLI clause
        notice.set_class(bool(found.notice), "-shown")
        self._fill_fields()
        photos = self.query_one("#desk-photos", DataTable)
        photos.clear()
        for i, p in enumerate(found.photos):
            status = Text(t("photo.status_intact") if p.hash_ok else t("photo.status_MISMATCH"))
            status.stylize("bold" if p.hash_ok else "bold red")
            name = p.field + ("" if p.current else " " + t("photo.replaced"))
            photos.add_row(name, f"{p.sha256[:16]}…", human_size(p.size), status, key=str(i))
        if not found.photos:
            self.query_one("#desk-photo-line", Static).update(t("desk.no_photos"))
        elif self.photo_index is None or self.photo_index >= len(found.photos):
            self._show_photo(0)
        else:
            photos.move_cursor(row=self.photo_index)
            self._show_photo(self.photo_index)

    def _fill_fields(self) -> None:
        table = self.query_one("#desk-fields", DataTable)
        row = table.cursor_row
        table.clear()
        for f in self.desk.fields:
            mark = "✓" if f.name in self.chosen else " "
            table.add_row(mark, state_text(f.sdv_state, short=True), f.label, f.shown, key=f.name)
        if self.desk.fields:
            table.move_cursor(row=min(row, len(self.desk.fields) - 1))

    # -- the photograph -----------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#desk-photos")
    def _photo_row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and self.desk is not None:
            index = int(event.row_key.value)
            if index != self.photo_index:
                self._show_photo(index)

    def _show_photo(self, index: int) -> None:
        self.photo_index = index
        p = self.desk.photos[index]
        line = f"sha256:{p.sha256}"
        if p.problem:
            line += " · " + p.problem
        elif p.capture_warning:
            line += " · " + p.capture_warning
        self.query_one("#desk-photo-line", Static).update(Text(text_rule.for_terminal(line)))
        self.query_one("#desk-image", PhotoImage).show(None)
        if p.hash_ok:
            self.draw(p.sha256)

    @work(thread=True, exclusive=True, group="desk-photo")
    def draw(self, sha256: str) -> None:
        from wardcrf.photos import viewing

        # Altered since listed: the domain refuses to draw it.
        post_outcome(
            self,
            lambda: decode(self.ward.call(viewing.preview, sha256).data),
            lambda image: self.Drawn(sha256, image),
        )

    @on(Drawn)
    def _on_drawn(self, message: Drawn) -> None:
        self._drawn(message.sha256, message.image)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text, True)

    def _drawn(self, sha256: str, image: Any) -> None:
        current = self.desk.photos[self.photo_index] if self.photo_index is not None else None
        if current is not None and current.sha256 == sha256:
            self.query_one("#desk-image", PhotoImage).show(image)

    def _current_photo(self) -> Any:
        if self.desk is None or not self.desk.photos or self.photo_index is None:
            return None
        return self.desk.photos[self.photo_index]

    def action_view(self) -> None:
        """The highlighted photograph full screen."""
        from .photo_view import PhotoScreen

        p = self._current_photo()
        if p is None:
            self._say(t("desk.no_photos"), True)
            return
        self.app.push_screen(PhotoScreen(self.ward, p.sha256, f"{p.field} · sha256:{p.sha256}"))

    def action_export(self) -> None:
        p = self._current_photo()
        if p is None:
            self._say(t("desk.no_photos"), True)
            return
        self.app.push_screen(ExportDialog(self.ward, p.sha256), self._exported)

    def _exported(self, line: str | None) -> None:
        if line:
            self._say(line, False)

    # -- source-data verification -------------------------------------------------------------
    def action_toggle_field(self) -> None:
        table = self.query_one("#desk-fields", DataTable)
        if self.desk is None or not self.desk.fields or not table.has_focus:
            return
        name = self.desk.fields[table.cursor_row].name
        self.chosen ^= {name}
        self._fill_fields()

    def action_mark(self) -> None:
        """Mark the chosen fields (none chosen: the record) verified, after the monitor's e-signature."""
        if self.desk is None:
            return
        try:  # the service's own role rule, before a password is asked for nothing
            self.ward.session.require("sdv.mark", what="mark records source-verified")
        except Exception as exc:
            self._say(message_of(exc), True)
            return
        from .dialogs.sign import SignatureDialog

        fields = [f.name for f in self.desk.fields if f.name in self.chosen] or None
        what = t(
            "desk.mark_what",
            form=self.desk.form_label,
            record=self.desk.event_id,
            fields=", ".join(fields) if fields else t("desk.all_fields"),
        )
        record_id = self.desk.event_id

        def sign(_signer: str, password: str) -> Any:
            return self.ward.call(sdv.verify, record_id, password=password, fields=fields)

        self.app.push_screen(
            SignatureDialog(what=what, meaning=sdv.MEANING, signer=self.ward.session.user, sign=sign),
            self._marked,
        )

    def _marked(self, event: Any) -> None:
        if event is None:
            return
        self.chosen.clear()
        self._say(t("desk.marked", fields=", ".join(event.body["fields"]), event=event.id), False)
        self.reload()

    def _say(self, text: str, refusal: bool) -> None:
        self.message = text
        line = self.query_one("#desk-message", Static)
        line.update(Text(text_rule.for_terminal(text)))
        line.set_class(refusal, "refusal")
