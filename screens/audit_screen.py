"""Audit (read-only): integrity checks and the audit trail, filtered.

`audit verify` runs every registered check (event chains, photo hashes,
logger files...) in a worker and shows each with its count and problems;
`photo verify` runs beside it and its result heads the photo panel.
The trail is filtered by participant, user and a local date range; the
selected row shows its changes (old → new), its reason and its event id,
and the photo panel lists the photos that entry concerns (a record's
photos, bound now or formerly; an imported photo; a cold-chain sheet) with
their SHA-256, size and hash status, re-hashed as they are listed: intact,
MISSING or MISMATCH. Enter on a photo shows it (an altered photo is never
drawn: the domain refuses it); `e` exports a verified copy to open in an
image viewer. `d` opens the auditor's desk (`audit_desk`) for the record the
selected entry is about: the record beside its photographs, where a monitor
marks source-data verification. Nothing else on this screen writes, so
auditors can use all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Static

from wardcrf import audit
from wardcrf import text as text_rule
from wardcrf.clock import iso_utc, zone

from .errors import message_of
from .i18n import t
from .keys import BACK, LANGUAGE
from .photo_view import human_size
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.tables import WardTable
from .widgets.typeahead import WardInput

TRAIL_LIMIT = 1000


class FilterError(ValueError):
    """A filter the user typed cannot be used (shown beside the filters)."""


def _local_day_start(text: str, zone_name: str) -> str:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise FilterError(t("audit.bad_date", value=text.strip())) from None
    return iso_utc(datetime.combine(day, time(0), tzinfo=zone(zone_name)))


def trail_filters(values: dict[str, str], zone_name: str) -> dict[str, str | None]:
    """Turn the filter fields into `audit.trail` arguments (dates are local days)."""
    participant = values.get("participant", "").strip()
    user = values.get("user", "").strip()
    since = values.get("since", "").strip()
    until = values.get("until", "").strip()
    out: dict[str, str | None] = {
        "subject": (participant if ":" in participant else f"participant:{participant}")
        if participant
        else None,
        "user": user or None,
        "since": _local_day_start(since, zone_name) if since else None,
        "until": None,
    }
    if until:
        day_after = (date.fromisoformat(until) + timedelta(days=1)).isoformat() if _is_date(until) else until
        out["until"] = _local_day_start(day_after, zone_name)
    if out["since"] and out["until"] and out["since"] >= out["until"]:
        raise FilterError(t("audit.bad_range"))
    return out


def record_of(entry: audit.TrailEntry) -> str | None:
    """The record a trail entry is about (its entry, an amendment of it, a signature or SDV mark on it)."""
    if entry.type == "record.submitted":
        return entry.event_id
    if entry.type == "record.amended":
        return entry.amends
    target = entry.body.get("target") if entry.type in ("sdv.verified", "signature.applied") else None
    return target if isinstance(target, str) and ":" not in target else None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


class AuditScreen(Screen[None]):
    """Integrity verification and the filtered audit trail."""

    CSS_PATH = "audit_screen.tcss"
    AUTO_FOCUS = "#f-participant"
    BINDINGS: ClassVar[list[BindingType]] = [
        BACK,
        Binding("f5", "verify", "key.verify"),
        Binding("ctrl+r", "clear_filters", "key.clear"),
        Binding("d", "desk", "desk.key_open"),
        Binding("e", "export_photo", "photo.key_export", show=False),
        LANGUAGE,
    ]

    @dataclass
    class Verified(Message):
        """What `audit verify` found, one line per check (a refusal: its one line); `photos`: the photo check."""

        lines: list[str]
        photos: Any = None

    @dataclass
    class TrailLoaded(Message):
        """The audit-trail entries matching the filters."""

        entries: list[audit.TrailEntry]

    @dataclass
    class TrailRefused(Message):
        """The trail could not be read (a filter, the role): the one line to show."""

        text: str

    @dataclass
    class PhotosLoaded(Message):
        """The photos an audit-trail entry concerns, each re-hashed now."""

        event_id: str
        found: list[Any]

    @dataclass
    class PhotosRefused(Message):
        """The entry's photos could not be read: the one line to show."""

        text: str

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward
        self.filters: dict[str, str] = {}
        self.entries: list[audit.TrailEntry] = []
        self.verify_lines: list[str] = []
        self.photo_verify: Any = None
        """The last `photo verify` result (photos.verify.VerifyResult)."""
        self.photos: list[Any] = []
        self.photos_for: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("place.audit"))
        with Vertical(id="audit"):
            yield Static(t("audit.verify_title"), classes="section-title")
            yield Static("\n".join(self.verify_lines) or t("audit.verifying"), id="verify")
            with Horizontal(id="filters"):
                for name, hint in (
                    ("participant", "P-001"),
                    ("user", ""),
                    ("since", "YYYY-MM-DD"),
                    ("until", "YYYY-MM-DD"),
                ):
                    yield Label(t(f"audit.f_{name}"))
                    yield WardInput(
                        value=self.filters.get(name, ""),
                        placeholder=hint,
                        id=f"f-{name}",
                        classes="filter",
                        compact=True,  # one line without a frame: at 80x24 a whole id and date show
                    )
            yield Static("", id="filter-message", classes="refusal")
            yield WardTable.listing("trail", t("col.time"), t("col.who"), t("col.what"), t("col.why"))
            yield Static("", id="detail")
            yield Static(self._photos_title(), id="photos-title", classes="section-title")
            yield WardTable.listing(
                "photos",
                t("photo.col_field"),
                t("photo.col_hash"),
                t("photo.col_size"),
                t("photo.col_status"),
                zebra=False,
            )
            yield Static(t("photo.panel_pick"), id="photo-detail", classes="muted")
        yield WardFooter()

    def remember(self) -> None:
        """Keep typed filters across a language switch (the screen recomposes)."""
        if self.is_mounted:
            self.filters = {i.id[2:]: i.value for i in self.query(".filter").results(Input) if i.id}

    def on_mount(self) -> None:
        self.action_verify()
        self.apply_filters()

    def on_screen_resume(self) -> None:
        if self.entries:
            self._fill(self.entries)

    def relabelled(self) -> None:
        """After a language switch: the photo panel again, in the new words."""
        if self.photos_for is not None:
            self._fill_photos(self.photos_for, self.photos)

    # -- verify ----------------------------------------------------------------------
    def action_verify(self) -> None:
        """Re-run every integrity check."""
        self.query_one("#verify", Static).update(t("audit.verifying"))
        self.run_verify()

    @work(thread=True, exclusive=True, group="audit-verify")
    def run_verify(self) -> None:
        from wardcrf.photos import verify as photo_verify

        try:
            report = self.ward.call(audit.verify)
            # `photo verify` is the check audit verify runs as "photo evidence"
            # (the same function): shown from there rather than hashed twice.
            same = next((r for r in report.results if r.name == "photo evidence"), None)
            photos = (
                photo_verify.VerifyResult(same.checked, list(same.problems))
                if same is not None
                else self.ward.call(photo_verify.verify)
            )
        except Exception as exc:
            self.post_message(self.Verified([message_of(exc)]))
            return
        lines = []
        # A stable order (the chains first, then by name): registration order
        # depends on which feature module happened to be imported first.
        for r in sorted(report.results, key=lambda r: (r.name != "event chains", r.name)):
            mark = t("audit.ok") if not r.problems else t("audit.failed")
            lines.append(f"{mark} {r.name}: {t('audit.checked', n=r.checked)}")
            lines.extend(f"    {p}" for p in r.problems)
            lines.extend(f"    {t('audit.note')}: {n}" for n in r.notes)
        self.post_message(self.Verified(lines, photos))

    @on(Verified)
    def _on_verified(self, message: Verified) -> None:
        if message.photos is not None:
            self.photo_verify = message.photos
            self._show_photo_title()
        self._show_verify(message.lines)

    def _show_verify(self, lines: list[str]) -> None:
        self.verify_lines = lines
        # Problems quote stored data: shown as text, never as markup or escape sequences.
        self.query_one("#verify", Static).update(Text(text_rule.for_terminal("\n".join(lines))))

    # -- trail -----------------------------------------------------------------------
    @on(Input.Submitted, ".filter")
    def _filter_submitted(self) -> None:
        self.apply_filters()

    def action_clear_filters(self) -> None:
        for field in self.query(".filter").results(Input):
            field.value = ""
        self.apply_filters()

    def apply_filters(self) -> None:
        self.remember()
        try:
            args = trail_filters(self.filters, self.ward.session.ctx.zone)
        except FilterError as exc:
            self.query_one("#filter-message", Static).update(str(exc))
            return
        self.query_one("#filter-message", Static).update("")
        self.load_trail(args)

    @work(thread=True, exclusive=True, group="audit-trail")
    def load_trail(self, args: dict[str, str | None]) -> None:
        try:
            entries = self.ward.call(lambda s: list(audit.trail(s, limit=TRAIL_LIMIT, **args)))
        except Exception as exc:
            self.post_message(self.TrailRefused(message_of(exc)))
            return
        self.post_message(self.TrailLoaded(entries))

    @on(TrailLoaded)
    def _on_trail_loaded(self, message: TrailLoaded) -> None:
        self._fill(message.entries)

    @on(TrailRefused)
    def _on_trail_refused(self, message: TrailRefused) -> None:
        self.query_one("#filter-message", Static).update(message.text)

    def _fill(self, entries: list[audit.TrailEntry]) -> None:
        self.entries = entries
        table = self.query_one("#trail", DataTable)
        table.clear()
        for i, e in enumerate(entries):
            who = e.user or "—"
            table.add_row(
                e.local_time[:16].replace("T", " "),
                who,
                f"{e.type} {e.subject or ''}",
                e.reason or "",
                key=str(i),
            )
        note = t("audit.count", n=len(entries))
        if len(entries) >= TRAIL_LIMIT:
            note += " " + t("audit.limited", n=TRAIL_LIMIT)
        self.query_one("#detail", Static).update(note)

    @on(DataTable.RowHighlighted, "#trail")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        # Details follow the cursor only while the table is in use; before
        # that the line shows how many events matched.
        if event.row_key.value is not None and event.data_table.has_focus:
            self._show_detail(int(event.row_key.value))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        table = self.query_one("#trail", DataTable)
        if event.widget is table and self.entries and table.cursor_row < len(self.entries):
            self._show_detail(table.cursor_row)

    def _show_detail(self, index: int) -> None:
        e = self.entries[index]
        lines = [e.summary]
        lines += [f"{c['field']}: {c['old']!r} → {c['new']!r}" for c in e.changes]
        if e.reason:
            lines.append(t("audit.reason", reason=e.reason))
        lines.append(f"{e.event_id} · {e.role or ''}")
        self.query_one("#detail", Static).update("\n".join(lines))
        if e.event_id != self.photos_for:
            self.load_photos(e.event_id)

    # -- photos of the selected entry ------------------------------------------------
    def _photos_title(self) -> str:
        head = t("photo.panel_title")
        result = self.photo_verify
        if result is None:
            return head
        mark = t("audit.ok") if result.ok else t("audit.failed")
        return f"{head} · " + t("photo.verify_line", mark=mark, n=result.checked, p=len(result.problems))

    def _show_photo_title(self) -> None:
        self.query_one("#photos-title", Static).update(self._photos_title())

    @work(thread=True, exclusive=True, group="audit-photos")
    def load_photos(self, event_id: str) -> None:
        from wardcrf.photos import audit as photo_audit

        try:
            found = self.ward.call(photo_audit.event_photos, event_id)
        except Exception as exc:
            self.post_message(self.PhotosRefused(message_of(exc)))
            return
        self.post_message(self.PhotosLoaded(event_id, found))

    @on(PhotosLoaded)
    def _on_photos_loaded(self, message: PhotosLoaded) -> None:
        self._fill_photos(message.event_id, message.found)

    @on(PhotosRefused)
    def _on_photos_refused(self, message: PhotosRefused) -> None:
        self.query_one("#photo-detail", Static).update(message.text)

    def _fill_photos(self, event_id: str, found: list[Any]) -> None:
        self.photos_for = event_id
        self.photos = found
        table = self.query_one("#photos", DataTable)
        table.clear()
        for i, p in enumerate(found):
            status = Text(t(f"photo.status_{p.status}"), style="bold" if p.ok else "bold red")
            field = (p.field or p.name or "—") + ("" if p.current else " " + t("photo.replaced"))
            table.add_row(field, f"{p.sha256[:16]}…", human_size(p.size), status, key=str(i))
        table.set_class(bool(found), "-shown")
        self.query_one("#photo-detail", Static).update("" if found else t("photo.panel_none"))

    @on(DataTable.RowHighlighted, "#photos")
    def _photo_row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None or not self.photos:
            return
        p = self.photos[int(event.row_key.value)]
        self.query_one("#photo-detail", Static).update(t("photo.photo_line", sha=p.sha256))

    @on(DataTable.RowSelected, "#photos")
    def _photo_enter(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is None or not self.photos:
            return
        from .photo_view import PhotoScreen

        p = self.photos[int(event.row_key.value)]
        caption = f"{p.field or p.name or ''} · sha256:{p.sha256}".strip(" ·")
        self.app.push_screen(PhotoScreen(self.ward, p.sha256, caption))

    @on(DataTable.RowSelected, "#trail")
    def _trail_enter(self) -> None:
        """Enter on a trail entry with photos: to its photo list."""
        if self.photos:
            self.query_one("#photos", DataTable).focus()

    # -- to the desk, and a verified copy ------------------------------------------------------
    def action_desk(self) -> None:
        """The auditor's desk for the record the highlighted trail entry is about."""
        from .audit_desk import DeskScreen

        table = self.query_one("#trail", DataTable)
        record = (
            record_of(self.entries[table.cursor_row])
            if self.entries and table.cursor_row < len(self.entries)
            else None
        )
        if record is None:
            self.query_one("#filter-message", Static).update(t("desk.no_record"))
            return
        self.app.push_screen(DeskScreen(self.ward, record))

    def action_export_photo(self) -> None:
        """A verified copy of the highlighted photo, into a folder the auditor chooses."""
        from .photo_view import ExportDialog

        table = self.query_one("#photos", DataTable)
        if not self.photos or table.cursor_row >= len(self.photos):
            return
        self.app.push_screen(ExportDialog(self.ward, self.photos[table.cursor_row].sha256), self._exported)

    def _exported(self, line: str | None) -> None:
        if line:  # a path is shown as text, never as markup
            self.query_one("#photo-detail", Static).update(Text(line))
