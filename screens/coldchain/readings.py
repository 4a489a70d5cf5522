"""A unit's temperatures: a manual reading, or the logger file downloaded from it.

Manual reading: the time read (local, defaults to now) and °C; one outside
the unit's range is an excursion (the service records it so). Logger
import: pick the file (`F4` browses a directory tree, or type the path and
press Enter); the format is detected from the file itself; the import runs
in a worker with its stages on a progress bar (read, parse and check, store)
and ends with the summary: readings (and how many were new), min / max /
mean / MKT, excursions and unmonitored gaps found. A file the parser
refuses is reported with the domain's own line-numbered message and nothing
is imported (the service is all or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, ProgressBar, Select, Static

from wardcrf.coldchain import reports, services
from wardcrf.errors import UsageError, WardError

from ..dialogs.path import PathDialog
from ..errors import message_of
from ..i18n import label_width, pad, t
from ..keys import LANGUAGE
from ..results import Refused, post_outcome
from ..unsaved import UnsavedWork, closing_draft, without_blanks
from ..ward import Ward
from ..widgets.footer import WardFooter
from ..widgets.status import StatusBar
from ..widgets.typeahead import SAVE_HOLD, WardInput, focus_now, hold_keys, release_keys
from .shared import local_time, now_text

IMPORT_STAGES = 3  # read the file, parse and check it, store it


class ReadingsScreen(UnsavedWork):
    """Manual readings and logger-file import for one storage unit.

    A typed temperature (or a changed reading time) is data: it is kept as
    the pharmacist's draft like any form's (`UnsavedWork`, key
    ``coldchain.reading`` + ``unit:<id>``), so a crash costs at most the
    field being typed; the time is kept as shown, which is when the reading
    was taken, not when the draft is reopened. Esc and ctrl+q ask before it
    is lost; Esc + y throws the draft away; saving ends it in the reading's
    own transaction.
    """

    CSS_PATH = "readings.tcss"
    AUTO_FOCUS = "#rd-temp"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save_reading", "key.cc_save_reading", priority=True),
        Binding("f4", "browse", "key.cc_browse"),
        Binding("ctrl+o", "import_file", "key.cc_import"),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
    ]

    MANUAL = ("at", "temp")
    """The manual reading's fields (what a draft keeps; the logger file's path is not data)."""

    @dataclass
    class UnitsLoaded(Message):
        """The storage units, read in a worker."""

        units: list[reports.UnitStatus]

    @dataclass
    class ReadingSaved(Message):
        """A manual reading was saved (its event id)."""

        unit: str
        temp: float
        event_id: str

    @dataclass
    class Stage(Message):
        """A logger import reached stage `done` of IMPORT_STAGES (`text` says which)."""

        done: int
        text: str

    @dataclass
    class Imported(Message):
        """A logger file was imported into a unit."""

        name: str
        unit: str
        result: services.ImportResult

    @dataclass
    class ImportRefused(Message):
        """A logger import was refused: the one line to show (nothing was saved)."""

        text: str

    def __init__(
        self,
        ward: Ward,
        unit: str | None = None,
        *,
        initial: dict[str, Any] | None = None,
        focus: str | None = None,
    ) -> None:
        """`initial`, `focus`: a draft's values and the field the cursor was in (reopened)."""
        super().__init__()
        self.ward = ward
        self.unit = unit
        self.units: list[reports.UnitStatus] = []
        kept = {k: str(v) for k, v in (initial or {}).items() if k in self.MANUAL}
        self.values: dict[str, str] = {"at": now_text(ward), "temp": "", "path": "", **kept}
        self.restore_focus = focus if focus in self.MANUAL else None
        self.result_lines: list[str] = []
        self.importing = False

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("cc.readings"))
        labels = [t("cc.f_unit"), t("cc.f_read_at"), t("cc.f_temp"), t("cc.f_logger_file")]
        width = label_width(labels)
        with VerticalScroll(id="cc-readings"):
            with Horizontal(classes="cc-row"):
                yield Label(pad(labels[0], width), classes="cc-label")
                yield Select[str]([], id="rd-unit", compact=True, prompt=t("form.choose"), classes="cc-input")
            yield Static(t("cc.manual_title"), classes="section-title")
            with Horizontal(classes="cc-row"):
                yield Label(pad(labels[1], width), classes="cc-label")
                yield WardInput(
                    self.values["at"],
                    id="rd-at",
                    classes="cc-input",
                    compact=True,
                    placeholder=t("cc.h_time"),
                )
            with Horizontal(classes="cc-row"):
                yield Label(pad(labels[2], width), classes="cc-label")
                yield WardInput(
                    self.values["temp"], id="rd-temp", classes="cc-input", compact=True, placeholder="-20.0"
                )
            yield Static(t("cc.manual_help"), id="rd-message", classes="muted")
            yield Static(t("cc.logger_title"), classes="section-title")
            with Horizontal(classes="cc-row"):
                yield Label(pad(labels[3], width), classes="cc-label")
                yield WardInput(
                    self.values["path"],
                    id="lg-path",
                    classes="cc-input",
                    compact=True,
                    placeholder=t("cc.h_logger"),
                )
            yield ProgressBar(total=IMPORT_STAGES, show_eta=False, id="lg-progress")
            yield Static("", id="lg-stage", classes="muted")
            yield Static("\n".join(self.result_lines), id="lg-result")
        yield WardFooter()

    def on_mount(self) -> None:
        self.query_one("#lg-progress").display = False
        self.load_units()
        if self.restore_focus:
            focus_now(self.query_one(f"#rd-{self.restore_focus}"))

    # -- what `UnsavedWork` asks of a form ------------------------------------------------
    def typed(self) -> dict[str, Any]:
        """The manual reading as typed (the logger file's path is not data: left out)."""
        return without_blanks({name: self.query_one(f"#rd-{name}", Input).value for name in self.MANUAL})

    def draft_key(self) -> tuple[str, str] | None:
        unit = self.current_unit() if self.is_mounted else None
        unit = unit or self.unit
        return (services.FORM_READING, f"unit:{unit}") if unit else None

    def focused_field(self) -> str | None:
        focused = self.focused
        return next((n for n in self.MANUAL if focused is not None and focused.id == f"rd-{n}"), None)

    def remember(self) -> None:
        if self.is_mounted:
            self.values = {
                "at": self.query_one("#rd-at", Input).value,
                "temp": self.query_one("#rd-temp", Input).value,
                "path": self.query_one("#lg-path", Input).value,
            }
            self.unit = self.current_unit() or self.unit

    def relabelled(self) -> None:
        self.query_one("#lg-progress").display = False
        self._fill_units()

    @work(thread=True, exclusive=True, group="cc-units")
    def load_units(self) -> None:
        post_outcome(self, lambda: self.ward.call(reports.units), self.UnitsLoaded)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text, True)
        release_keys(self, SAVE_HOLD, drop=True)  # typed behind a refused reading: meant for the next one

    @on(UnitsLoaded)
    def _units_loaded(self, message: UnitsLoaded) -> None:
        units = message.units
        self.units = units
        if self.unit is None and units:
            self.unit = units[0]["unit"]
        self._fill_units()
        if not units:
            self._say(t("cc.no_units"), True)

    def _fill_units(self) -> None:
        select = self.query_one("#rd-unit", Select)
        select.set_options(
            [
                (f"{u['unit']} {u['name']} ({u['low_c']:g} … {u['high_c']:g} °C)", u["unit"])
                for u in self.units
            ]
        )
        if self.unit and any(u["unit"] == self.unit for u in self.units):
            select.value = self.unit

    @on(Select.Changed, "#rd-unit")
    def _unit_chosen(self) -> None:
        """The reading is for another unit now: its draft moves with it (one reading, one draft).

        Done here, on the UI thread, before this returns: the old unit's draft
        is thrown away and the reading kept under the new one, so no ghost
        reading is offered back for a unit it was never taken in.
        """
        old, new = self.unit, self.current_unit()
        if new is None or new == old:
            return
        self.unit = new
        if old is None or not self.keeps_drafts or not self.is_dirty():
            return
        from wardcrf import drafts

        try:
            self.ward.call(drafts.discard, services.FORM_READING, context=f"unit:{old}")
        except WardError as exc:  # the old draft is offered again, never lost: say so
            self.app.notify(message_of(exc), severity="warning")
        self.keep_draft_now()

    def current_unit(self) -> str | None:
        select = self.query_one("#rd-unit", Select)
        return None if select.is_blank() else str(select.value)

    def _say(self, text: str, refusal: bool = False) -> None:
        line = self.query_one("#rd-message", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")

    # -- manual reading ----------------------------------------------------------------
    @on(Input.Submitted, "#rd-at")
    def _at_entered(self) -> None:
        self.query_one("#rd-temp", Input).focus()

    @on(Input.Submitted, "#rd-temp")
    def _temp_entered(self) -> None:
        self.action_save_reading()

    def action_save_reading(self) -> None:
        """Save the manual reading (ctrl+s)."""
        unit = self.current_unit()
        if unit is None:
            self._say(t("cc.choose_unit"), True)
            return
        raw = self.query_one("#rd-temp", Input).value.strip().replace(",", ".")
        try:
            temp = float(raw)
        except ValueError:
            self._say(t("cc.bad_temp", value=raw), True)
            return
        key = self.draft_key() if self.keeps_drafts else None  # read here, on the UI thread
        # The next reading typed behind this one waits: saving clears the field it would land in.
        hold_keys(self, SAVE_HOLD)
        self.save_reading(unit, self.query_one("#rd-at", Input).value.strip(), temp, key)

    @work(thread=True, exclusive=True, group="cc-reading")
    def save_reading(self, unit: str, at: str, temp: float, draft: tuple[str, str] | None) -> None:
        """Save the reading and end its draft (`draft`) in the same transaction."""
        try:
            event = self.ward.call(
                lambda s: closing_draft(
                    s, draft, lambda: services.record_reading(s, unit, at=at, temp_c=temp)
                )
            )
        except WardError as exc:
            self.post_message(Refused(message_of(exc)))
            return
        self.post_message(self.ReadingSaved(unit, temp, event.id))

    @on(ReadingSaved)
    def _on_reading_saved(self, message: ReadingSaved) -> None:
        self._reading_saved(message.unit, message.temp, message.event_id)
        release_keys(self, SAVE_HOLD)  # the field is empty now: the next reading goes into it

    def _reading_saved(self, unit: str, temp: float, event_id: str) -> None:
        self.query_one("#rd-temp", Input).value = ""
        self.mark_clean()  # saved: nothing typed is left to lose
        self._say(t("cc.reading_saved", temp=f"{temp:g}", unit=unit, event=event_id))

    # -- logger import -----------------------------------------------------------------
    def action_browse(self) -> None:
        """Choose the logger file in a directory tree (F4)."""

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#lg-path", Input).value = str(path)
                self.action_import_file()

        typed = self.query_one("#lg-path", Input).value.strip().removeprefix("@")
        start = Path(typed).expanduser() if typed else None
        if start is not None and not start.is_dir():
            start = start.parent if start.parent.is_dir() else None
        self.app.push_screen(PathDialog(kind="file", title=t("cc.pick_logger"), start=start), chosen)

    @on(Input.Submitted, "#lg-path")
    def _path_entered(self) -> None:
        self.action_import_file()

    def action_import_file(self) -> None:
        """Import the logger file named in the path field (ctrl+o)."""
        if self.importing:
            return
        unit = self.current_unit()
        raw = self.query_one("#lg-path", Input).value.strip().removeprefix("@")
        if unit is None:
            self._show_result([t("cc.choose_unit")], refusal=True)
            return
        if not raw:
            self._show_result([t("cc.need_path")], refusal=True)
            return
        zone = next(u["zone"] for u in self.units if u["unit"] == unit)
        self.importing = True
        bar = self.query_one("#lg-progress", ProgressBar)
        bar.display = True
        bar.update(progress=0)
        self._show_result([])
        self.run_import(Path(raw).expanduser(), unit, zone)

    @on(Stage)
    def _on_stage(self, message: Stage) -> None:
        self._stage(message.done, message.text)

    def _stage(self, done: int, text: str) -> None:
        self.query_one("#lg-progress", ProgressBar).update(progress=done)
        self.query_one("#lg-stage", Static).update(text)

    @work(thread=True, exclusive=True, group="cc-import")
    def run_import(self, path: Path, unit: str, zone: str) -> None:
        from wardcrf.coldchain import loggers

        try:
            self.post_message(self.Stage(0, t("cc.stage_read", name=path.name)))
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from None
            self.post_message(self.Stage(1, t("cc.stage_parse", name=path.name)))
            log = loggers.parse(raw, zone)
            self.post_message(self.Stage(2, t("cc.stage_store", fmt=log.format, n=len(log.times), unit=unit)))
            result = self.ward.call(services.import_logger, path, unit)
        except WardError as exc:
            self.post_message(self.ImportRefused(message_of(exc)))
            return
        except Exception as exc:  # a bug: show it as one line, never a traceback
            self.post_message(self.ImportRefused(message_of(exc)))
            return
        self.post_message(self.Imported(path.name, unit, result))

    @on(Imported)
    def _on_imported(self, message: Imported) -> None:
        self._imported(message.name, message.unit, message.result)

    @on(ImportRefused)
    def _import_failed(self, refused: ImportRefused) -> None:
        message = refused.text
        self.importing = False
        self.query_one("#lg-progress").display = False
        self.query_one("#lg-stage", Static).update("")
        self._show_result([message], refusal=True)

    def _imported(self, name: str, unit: str, result: services.ImportResult) -> None:
        self.importing = False
        self._stage(IMPORT_STAGES, t("cc.stage_done"))
        body = result.summary
        sm = body["summary"]
        lines = [
            t(
                "cc.imported",
                n=sm["readings"],
                new=result.new_readings,
                name=name,
                fmt=body["format"],
                zone=body["zone"],
                unit=unit,
            ),
            t(
                "cc.imported_span",
                first=local_time(self.ward, sm["first"]),
                last=local_time(self.ward, sm["last"]),
            ),
            t("cc.imported_stats", min=sm["min_c"], max=sm["max_c"], mean=sm["mean_c"], mkt=sm["mkt_c"]),
        ]
        if body["excursions"]:
            lines.append(t("cc.imported_excursions", n=len(body["excursions"])))
            lines += [
                "  "
                + t(
                    "cc.excursion_line",
                    start=local_time(self.ward, x["start"]),
                    end=local_time(self.ward, x["end"]),
                    min=x["min_c"],
                    max=x["max_c"],
                )
                + (" " + t("cc.still_open") if x["open"] else "")
                for x in body["excursions"]
            ]
        else:
            lines.append(t("cc.imported_no_excursions"))
        lines += [
            "  "
            + t("cc.gap_line", start=local_time(self.ward, g["start"]), end=local_time(self.ward, g["end"]))
            for g in body["gaps"]
        ]
        lines.append(f"sha256 {body['sha256'][:16]}… · {result.event.id}")
        self._show_result(lines)

    def _show_result(self, lines: list[str], *, refusal: bool = False) -> None:
        self.result_lines = lines
        line = self.query_one("#lg-result", Static)
        line.update("\n".join(lines))
        line.set_class(refusal, "refusal")
