"""Excursions and their dispositions.

The list (`reports.excursions`): where (unit, or a receipt's arrival or
transit log), start and end in local time, min … max, duration, the kits
it affected and how many still await a disposition. For the selected
excursion a pharmacist or investigator records the disposition the domain
allows: release (the product is usable, with the reason why) or discard,
for all kits awaiting one or the kits ticked. The kits stay quarantined
until then; an open excursion cannot be released (the service refuses and
says why). Other roles see the list read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Select, SelectionList, Static

from wardcrf.coldchain import reports, services
from wardcrf.errors import WardError

from ..errors import message_of
from ..i18n import domain_word, label_width, pad, t
from ..keys import BACK, LANGUAGE
from ..results import Refused, post_outcome
from ..ward import Ward
from ..widgets.footer import WardFooter
from ..widgets.status import StatusBar
from ..widgets.tables import WardTable
from ..widgets.typeahead import SAVE_HOLD, WardInput, WardSelect, hold_keys, release_keys
from .shared import local_time

DECISIONS = ("release", "discard")


def duration_text(minutes: int) -> str:
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


class ExcursionsScreen(Screen[None]):
    """Excursions with affected kits; disposition for the selected one."""

    CSS_PATH = "excursions.tcss"
    AUTO_FOCUS = "#ex-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "dispose", "key.cc_dispose", priority=True),
        Binding("f5", "reload", "key.reload"),
        BACK,
        LANGUAGE,
    ]

    @dataclass
    class Loaded(Message):
        """The excursions, read in a worker."""

        rows: list[reports.ExcursionView]

    @dataclass
    class Disposed(Message):
        """A disposition was recorded for an excursion (and the kits it names)."""

        excursion: str
        decision: str
        kits: list[str]

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward
        self.rows: list[reports.ExcursionView] = []
        self.selected = 0
        self.reason = ""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("cc.excursions"))
        with Vertical(id="cc-excursions"):
            table: DataTable[str] = WardTable(id="ex-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(
                t("cc.col_where"),
                t("cc.col_start"),
                t("cc.col_duration"),
                t("cc.col_minmax"),
                t("cc.col_kits"),
                t("cc.col_awaiting"),
            )
            yield table
            yield Static("", id="ex-detail")
            if self.ward.can("coldchain.disposition"):
                labels = [t("cc.f_decision"), t("cc.f_reason"), t("cc.f_dispose_kits")]
                width = label_width(labels)
                with Horizontal(classes="cc-row"):
                    yield Label(pad(labels[0], width), classes="cc-label")
                    yield WardSelect(
                        [(domain_word("cc_decision", d), d) for d in DECISIONS],
                        id="ex-decision",
                        compact=True,
                        prompt=t("form.choose"),
                        classes="cc-input",
                    )
                with Horizontal(classes="cc-row"):
                    yield Label(pad(labels[1], width), classes="cc-label")
                    yield WardInput(
                        self.reason,
                        id="ex-reason",
                        compact=True,
                        classes="cc-input",
                        placeholder=t("cc.h_reason"),
                    )
                with Horizontal(classes="cc-row", id="ex-kits-row"):
                    yield Label(pad(labels[2], width), classes="cc-label")
                    yield SelectionList[str](id="ex-kits", compact=True, classes="cc-input")
            else:
                yield Static(t("cc.read_only", role=t("role." + self.ward.role)), classes="muted")
            yield Static("", id="ex-message", classes="muted")
        yield WardFooter()

    def on_mount(self) -> None:
        self.load()

    def remember(self) -> None:
        if self.is_mounted and self.query("#ex-reason"):
            self.reason = self.query_one("#ex-reason", Input).value

    def relabelled(self) -> None:
        self._fill()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "dispose":
            return self.ward.can("coldchain.disposition")
        return True

    def action_reload(self) -> None:
        """Read the excursions again."""
        self.load()

    @work(thread=True, exclusive=True, group="cc-excursions")
    def load(self) -> None:
        post_outcome(self, lambda: self.ward.call(reports.excursions), self.Loaded)

    @on(Disposed)
    def _on_disposed(self, message: Disposed) -> None:
        self._disposed(message.excursion, message.decision, message.kits)
        release_keys(self, SAVE_HOLD)  # the reason field is cleared: what was typed behind goes on now

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text, True)
        release_keys(self, SAVE_HOLD, drop=True)  # typed behind a refused disposition: meant for after it

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        rows = message.rows
        self.rows = rows
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#ex-table", DataTable)
        table.clear()
        for i, x in enumerate(self.rows):
            where = x["unit"] or t("cc.receipt_short", kind=domain_word("cc_exkind", x["kind"]))
            if x["product"]:
                where += f" ({x['product']})"  # judged against that product's range, not the unit's
            minmax = "—" if x["min_c"] is None else f"{x['min_c']:g} … {x['max_c']:g} °C"
            table.add_row(
                where,
                local_time(self.ward, x["start"]),
                duration_text(x["duration_min"]) + (" " + t("cc.still_open") if x["open"] else ""),
                minmax,
                str(len(x["kits"])),
                str(len(x["awaiting_disposition"])) if x["awaiting_disposition"] else "—",
                key=str(i),
            )
        if not self.rows:
            self.query_one("#ex-detail", Static).update(t("cc.no_excursions"))
            return
        self.selected = min(self.selected, len(self.rows) - 1)
        table.move_cursor(row=self.selected)
        self._show(self.selected)

    @on(DataTable.RowHighlighted, "#ex-table")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.selected = int(event.row_key.value)
            self._show(self.selected)

    def _show(self, index: int) -> None:
        x = self.rows[index]
        lines = [
            f"{x['id']} · {x['detail']}",
            t(
                "cc.excursion_span",
                start=local_time(self.ward, x["start"]),
                end=local_time(self.ward, x["end"]),
            )
            + (" · " + t("cc.still_open") if x["open"] else ""),
        ]
        if x["product"] or len(x["lots"]) > 1:  # which lots: one a product's range judged, or several
            lines.append(t("cc.excursion_lots", lots=", ".join(x["lots"])))
        for k in x["kits"]:
            d = k["disposition"]
            state = (
                t(
                    "cc.disposed",
                    decision=domain_word("cc_decision", d["decision"]),
                    by=d["by_user"],
                    reason=d["reason"],
                )
                if d
                else t("cc.awaiting")
            )
            lines.append(f"  {k['kit']}: {state}")
        self.query_one("#ex-detail", Static).update("\n".join(lines))
        if self.query("#ex-kits"):
            kits = self.query_one("#ex-kits", SelectionList)
            kits.clear_options()
            kits.add_options([(k, k, True) for k in x["awaiting_disposition"]])

    def _say(self, text: str, refusal: bool = False) -> None:
        line = self.query_one("#ex-message", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")

    # -- disposition -------------------------------------------------------------------
    def action_dispose(self) -> None:
        """Record the disposition of the selected excursion's kits (ctrl+s)."""
        if not self.rows:
            self._say(t("cc.no_excursions"), True)
            return
        x = self.rows[self.selected]
        select = self.query_one("#ex-decision", Select)
        if select.is_blank():
            self._say(t("cc.choose_decision"), True)
            return
        reason = self.query_one("#ex-reason", Input).value
        kits = list(self.query_one("#ex-kits", SelectionList).selected)
        if x["awaiting_disposition"] and not kits:
            self._say(t("cc.choose_kits"), True)
            return
        # Keys typed behind ctrl+s wait: saving clears the reason field they would land in.
        hold_keys(self, SAVE_HOLD)
        self.dispose(x["id"], str(select.value), reason, kits)

    @work(thread=True, exclusive=True, group="cc-dispose")
    def dispose(self, excursion: str, decision: str, reason: str, kits: list[str]) -> None:
        try:
            self.ward.call(
                services.record_disposition, excursion, decision=decision, reason=reason, kits=kits or None
            )
        except WardError as exc:
            self.post_message(Refused(message_of(exc)))
            return
        self.post_message(self.Disposed(excursion, decision, kits))

    def _disposed(self, excursion: str, decision: str, kits: list[str]) -> None:
        self.query_one("#ex-reason", Input).value = ""
        self._say(
            t(
                "cc.disposition_saved",
                decision=domain_word("cc_decision", decision),
                kits=", ".join(kits),
                id=excursion,
            )
        )
        self.load()
