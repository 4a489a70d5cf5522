"""Cold-chain home: the freezers, the kits, what awaits a signature; one key to each action.

Storage units show their newest reading and one status word from the
domain (`reports.unit_status`: in range / open excursion / unmonitored),
kits are counted by state (`reports.kit_states`), and receipts or handovers
still missing a party's signature are listed (`reports.pending_signatures`):
the party signs here with `s`, in their own name and password. A kit's
thaw (`t`), its preparation at the pharmacy (`p`, pharmacist) and a new
storage unit (`u`) are recorded from here too. Everything
is loaded in a thread worker; every action is a key in the footer, offered
only to roles the domain would allow (it refuses anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wardcrf.coldchain import reports, services

from ..i18n import domain_word, t
from ..keys import BACK, LANGUAGE
from ..results import Refused, post_outcome
from ..ward import Ward
from ..widgets.footer import WardFooter
from ..widgets.status import StatusBar
from ..widgets.tables import WardTable
from .shared import local_time

COMPACT_BELOW = 110
"""Terminal columns under which the units table shows its short form (the status stays whole)."""

ACTION_PERMISSION = {
    "receive": "coldchain.record",
    "handover": "coldchain.record",
    "readings": "coldchain.record",
    "thaw": "coldchain.record",
    "prepare": "coldchain.prepare",
    "add_unit": "coldchain.configure",
    "sign": "signature.sign",
}


class ColdChainScreen(Screen[None]):
    """Units with their status, kits by state, pending signatures."""

    CSS_PATH = "home.tcss"
    AUTO_FOCUS = "#cc-units"
    BINDINGS: ClassVar[list[BindingType]] = [
        BACK,
        Binding("r", "receive", "key.cc_receive"),
        Binding("h", "handover", "key.cc_handover"),
        Binding("s", "sign", "key.cc_sign"),
        Binding("m", "readings", "key.cc_readings"),
        Binding("t", "thaw", "key.cc_thaw"),
        Binding("p", "prepare", "key.cc_prepare"),
        Binding("u", "add_unit", "key.cc_add_unit"),
        Binding("e", "excursions", "key.cc_excursions"),
        Binding("k", "custody", "key.cc_custody"),
        Binding("c", "chart", "key.cc_chart"),
        Binding("f5", "reload", "key.reload"),
        LANGUAGE,
    ]

    @dataclass
    class Loaded(Message):
        """The cold-chain home's units, kits and steps awaiting a signature."""

        units: list[reports.UnitStatus]
        kits: list[reports.KitState]
        pending: list[reports.PendingSignature]

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward
        self.units: list[reports.UnitStatus] = []
        self.kits: list[reports.KitState] = []
        self.pending: list[reports.PendingSignature] = []
        self.prepares = bool(ward.call(services.pharmacy_products))
        """Whether the protocol in force prepares any product at the pharmacy (then `p` records it)."""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("place.coldchain"))
        with Vertical(id="cc-home"):
            yield Static(t("cc.units"), classes="section-title")
            units: DataTable[str] = WardTable(id="cc-units", cursor_type="row", zebra_stripes=True)
            units.add_columns(t("cc.col_unit"), t("cc.col_range"), t("cc.col_last"), t("cc.col_status"))
            yield units
            yield Static(t("cc.kits"), classes="section-title")
            yield Static(t("cc.loading"), id="cc-kits")
            yield Static(t("cc.pending"), classes="section-title")
            pending: DataTable[str] = WardTable(id="cc-pending", cursor_type="row", zebra_stripes=True)
            pending.add_columns(t("col.time"), t("cc.col_kind"), t("cc.col_party"), t("cc.col_kits"))
            yield pending
            yield Static("", id="cc-message", classes="muted")
        yield WardFooter()

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < COMPACT_BELOW, "-compact")
        self.call_after_refresh(self.load)

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.width < COMPACT_BELOW
        if compact != self.has_class("-compact"):
            self.set_class(compact, "-compact")
            self._fill()

    def relabelled(self) -> None:
        self._fill()

    def on_screen_resume(self) -> None:
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "prepare" and not self.prepares:
            return False  # the protocol prepares nothing at the pharmacy: no key for it
        permission = ACTION_PERMISSION.get(action)
        if permission is not None:
            return self.ward.can(permission)
        return True

    # -- loading -----------------------------------------------------------------------
    def action_reload(self) -> None:
        """Read the units, kits and pending signatures again."""
        self.load()

    @work(thread=True, exclusive=True, group="cc-home")
    def load(self) -> None:
        post_outcome(
            self,
            lambda: (
                self.ward.call(reports.units),
                self.ward.call(reports.kits),
                self.ward.call(reports.awaiting_signatures),
            ),
            lambda got: self.Loaded(*got),
        )

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._loaded(message.units, message.kits, message.pending)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text)

    def _loaded(
        self,
        units: list[reports.UnitStatus],
        kits: list[reports.KitState],
        pending: list[reports.PendingSignature],
    ) -> None:
        self.units, self.kits, self.pending = units, kits, pending
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#cc-units", DataTable)
        table.clear()
        # Below 110 columns the unit's status must still show (issue 14): the unit's id
        # without its name, the reading's time without the year, the short count.
        compact = self.has_class("-compact")
        for u in self.units:
            last = u["last_reading"]
            when = local_time(self.ward, last["at"])[5:] if compact and last else ""
            last_text = (
                f"{last['temp_c']:.1f} °C {when or local_time(self.ward, last['at'])}"
                + (f" ({domain_word('cc_source', last['source'])})" if last["source"] == "manual" else "")
                if last
                else t("cc.no_readings")
            )
            word = domain_word("cc_status", u["status"])
            if u["awaiting_disposition"]:
                awaiting = "cc.awaiting_short" if compact else "cc.awaiting_n"
                word += " · " + t(awaiting, n=len(u["awaiting_disposition"]))
            table.add_row(
                u["unit"] if compact else f"{u['unit']} {u['name']}",
                f"{u['low_c']:g} … {u['high_c']:g} °C",
                last_text,
                word,
                key=u["unit"],
            )
        counts = {state: 0 for state in reports.KIT_STATES}
        for k in self.kits:
            counts[k["state"]] += 1
        lines = [" · ".join(f"{domain_word('cc_kit', state)} {n}" for state, n in counts.items())]
        held = [k["kit"] for k in self.kits if k["state"] == "quarantined"]
        if held:
            lines.append(t("cc.quarantined_list", kits=", ".join(held)))
        self.query_one("#cc-kits", Static).update("\n".join(lines))
        ptable = self.query_one("#cc-pending", DataTable)
        ptable.clear()
        for i, p in enumerate(self.pending):
            ptable.add_row(
                local_time(self.ward, p["at"]),
                domain_word("cc_kind", p["kind"]),
                f"{p['user']} ({t('meaning.' + p['meaning'].replace(' ', '_'))})",
                ", ".join(p["kits"]),
                key=str(i),
            )
        if not self.pending:
            self._say(t("cc.no_pending"))
        else:
            self._say("")

    def _say(self, text: str) -> None:
        self.query_one("#cc-message", Static).update(text)

    def selected_unit(self) -> str | None:
        table = self.query_one("#cc-units", DataTable)
        if not self.units:
            return None
        row = min(max(table.cursor_row, 0), len(self.units) - 1)
        return str(self.units[row]["unit"])

    # -- actions -----------------------------------------------------------------------
    def action_receive(self) -> None:
        """Receive a shipment (lot, kits, arrival condition, paperwork, signatures)."""
        from .receipt import ReceiptScreen

        self.app.push_screen(ReceiptScreen(self.ward))

    def action_handover(self) -> None:
        """Record a handover, signed by both parties."""
        from .handover import HandoverScreen

        self.app.push_screen(HandoverScreen(self.ward))

    def action_readings(self) -> None:
        """Manual reading or logger import for the selected unit."""
        from .readings import ReadingsScreen

        self.app.push_screen(ReadingsScreen(self.ward, self.selected_unit()))

    def action_thaw(self) -> None:
        """Record a kit's thaw and reconstitution at the bedside."""
        from .thaw import ThawScreen

        self.app.push_screen(ThawScreen(self.ward))

    def action_prepare(self) -> None:
        """Record a kit's preparation at the pharmacy (pharmacist, signed)."""
        from .preparation import PreparationScreen

        self.app.push_screen(PreparationScreen(self.ward))

    def action_add_unit(self) -> None:
        """Register a storage unit (pharmacist, admin)."""
        from .unit import UnitScreen

        self.app.push_screen(UnitScreen(self.ward))

    def action_excursions(self) -> None:
        """Excursions and their dispositions."""
        from .excursions import ExcursionsScreen

        self.app.push_screen(ExcursionsScreen(self.ward))

    def action_custody(self) -> None:
        """One kit's chain of custody, scanned or typed."""
        from .custody import CustodyScreen

        self.app.push_screen(CustodyScreen(self.ward))

    def action_chart(self) -> None:
        """Temperature chart of the selected unit."""
        from .chart import ChartScreen

        unit = self.selected_unit()
        if unit is None:
            self._say(t("cc.no_units"))
            return
        self.app.push_screen(ChartScreen(self.ward, unit))

    def action_sign(self) -> None:
        """The party of the selected pending step signs it, in their own name."""
        if not self.pending:
            self._say(t("cc.no_pending"))
            return
        table = self.query_one("#cc-pending", DataTable)
        p = self.pending[min(max(table.cursor_row, 0), len(self.pending) - 1)]
        from wardcrf.coldchain import services

        from ..dialogs.sign import SignatureDialog

        ward = self.ward

        def sign(signer: str, password: str) -> Any:
            return ward.call(services.sign_transfer, p["event_id"], password, signer=signer)

        what = (
            t("cc.sign_what_preparation", kits=", ".join(p["kits"]), time=local_time(ward, p["at"]))
            if p["kind"] == "preparation"  # signed again by its pharmacist (`services.sign_preparation`)
            else t(
                "cc.sign_what",
                kind=domain_word("cc_kind", p["kind"]),
                kits=", ".join(p["kits"]),
                src=p["from_location"],
                dst=p["to_location"],
                time=local_time(ward, p["at"]),
            )
        )

        def done(result: Any) -> None:
            if result is not None:
                self.app.notify(t("cc.signed", user=p["user"]))
                self.load()

        self.app.push_screen(
            SignatureDialog(what=what, meaning=p["meaning"], signer=p["user"], sign=sign), done
        )
