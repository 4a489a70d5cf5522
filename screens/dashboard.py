"""The ward dashboard (home): where everything starts, one key per action.

Left: the places this role may go, each with its key. Right: what needs
attention, from the domain services (each panel is filled by a thread
worker so a big site never freezes the first frame after sign-in).
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from wardcrf import audit

from .errors import message_of
from .footer import WardFooter
from .i18n import domain_word, t
from .places import PLACES, by_name, offered
from .status import StatusBar
from .ward import Ward

RECENT = 12


class DashboardScreen(Screen[None]):
    """Home: places for this role and recent activity on the site."""

    CSS_PATH = "dashboard.tcss"
    AUTO_FOCUS = "#places"
    BINDINGS: ClassVar[list[BindingType]] = [
        *[Binding(p.key, f"open('{p.name}')", p.label) for p in PLACES],
        Binding("n", "new_participant", "key.new_participant"),
        Binding("f2", "app.next_language", "key.language"),
        Binding("r", "reload", "key.reload"),
    ]

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("dashboard.title"))
        with Horizontal(id="dash"):
            with Vertical(id="menu"):
                yield Static(t("dashboard.places"), classes="section-title")
                yield OptionList(
                    *[Option(Text(f"[{p.key}] {t(p.label)}"), id=p.name) for p in offered(self.ward)],
                    id="places",
                )
            with Vertical(id="attention"):
                yield Static(t("dashboard.participants"), classes="section-title")
                ptable: DataTable[str] = DataTable(id="participants", cursor_type="row", zebra_stripes=True)
                ptable.add_columns(
                    t("col.participant"), t("col.status"), t("col.day"), t("col.next"), t("col.aes")
                )
                yield ptable
                yield Static(t("dashboard.recent"), classes="section-title")
                table: DataTable[str] = DataTable(id="recent", cursor_type="row", zebra_stripes=True)
                table.add_columns(t("col.time"), t("col.who"), t("col.what"))
                yield table
                yield Static("", id="dash-message", classes="muted")
        yield WardFooter()

    def on_mount(self) -> None:
        # Paint the dashboard first; the lists fill in from workers just after.
        self.call_after_refresh(self.load_recent)
        self.call_after_refresh(self.load_participants)

    def on_screen_resume(self) -> None:
        self.load_recent()
        self.load_participants()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and parameters:
            return self.ward.can(by_name(str(parameters[0])).permission)
        if action == "new_participant":
            return self.ward.can("consent.record")
        return True

    def action_new_participant(self) -> None:
        """A new participant starts with their consent (the service allocates the id)."""
        from .form_screen import FormScreen

        def consented(event: Any) -> None:
            # Straight on to the new participant: screening comes next.
            subject = getattr(event, "subject", None) or ""
            if subject.startswith("participant:"):
                from .participant import ParticipantScreen

                self.app.push_screen(ParticipantScreen(self.ward, subject.removeprefix("participant:")))

        self.app.push_screen(FormScreen(self.ward, "consent"), consented)

    @on(DataTable.RowSelected, "#participants")
    def _participant_chosen(self, event: DataTable.RowSelected) -> None:
        from .participant import ParticipantScreen

        if event.row_key.value:
            self.app.push_screen(ParticipantScreen(self.ward, event.row_key.value))

    @work(thread=True, exclusive=True, group="dashboard-participants")
    def load_participants(self) -> None:
        from wardcrf import workflow

        try:
            rows = self.ward.call(workflow.list_participants)
        except Exception as exc:
            self.app.call_from_thread(self._show_message, message_of(exc))
            return
        self.app.call_from_thread(self._fill_participants, rows)

    def _fill_participants(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#participants", DataTable)
        table.clear()
        today = self.ward.local_now().date()
        for r in rows:
            day = ""
            if r.get("enrolled_on") and r["doses_given"] < r["doses_planned"]:
                n = (today - date.fromisoformat(r["enrolled_on"])).days + 1
                day = f"{n}/{r['doses_planned']}"
            nd = r.get("next_dose")
            nxt = (
                f"#{nd['dose']} {nd['due'][5:16].replace('T', ' ')} {domain_word('state', nd['state'])}"
                if nd
                else ""
            )
            table.add_row(
                r["id"], domain_word("status", r["status"]), day, nxt, str(r["open_aes"] or ""), key=r["id"]
            )

    def action_open(self, name: str) -> None:
        self.app.open_place(name)  # type: ignore[attr-defined]

    def action_reload(self) -> None:
        self.load_recent()

    @on(OptionList.OptionSelected, "#places")
    def _place_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.action_open(event.option.id)

    @work(thread=True, exclusive=True, group="dashboard")
    def load_recent(self) -> None:
        try:
            entries = self.ward.call(lambda s: list(audit.trail(s, limit=RECENT)))
        except Exception as exc:
            self.app.call_from_thread(self._show_message, message_of(exc))
            return
        self.app.call_from_thread(self._fill_recent, entries)

    def _fill_recent(self, entries: list[audit.TrailEntry]) -> None:
        table = self.query_one("#recent", DataTable)
        table.clear()
        for e in reversed(entries):
            table.add_row(e.local_time[5:16].replace("T", " "), e.user or "—", f"{e.type} {e.subject or ''}")

    def _show_message(self, text: str) -> None:
        self.query_one("#dash-message", Static).update(text)
