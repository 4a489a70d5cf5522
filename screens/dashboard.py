"""The ward dashboard (home): what needs attention now, one key per action.

Left: the places this role may go, each with its key. Right: six panels,
each filled by ONE domain call in its own thread worker, so a big site never
freezes the first frame after sign-in:

1. participants — doses given of planned (under "Doses"), next dose with its
   state and time left, post-dose vitals still owed, the forms visits owe
   now: the first screenful of the ward list from its
   indexed queue (`workflow.ward_page`), the next page fetched as the cursor
   nears the end of what is listed;
2. safety — open AEs and SAE report due dates (`workflow.safety_overview`);
3. freezer — each unit's last reading and unresolved excursions
   (`coldchain.reports.freezers`);
4. sync — pending events, last export and receipt, hub state
   (`sync.ward.status`);
5. DSMG gate — hold (stop / alter), sentinel gate, SAEs awaiting review
   (`workflow.dsmg_gate`);
6. recent activity (`audit.trail`).

At 120x40 and up the panels sit side by side; on a smaller terminal (80x24)
one panel shows at a time, chosen with its number or cycled with `[` / `]`.

Find the patient at once: typing (or scanning a wristband: a burst ending in
Enter) a participant id — any key that is not one of the dashboard's own —
starts a search shown under the panels; Enter opens that participant (the
whole id in any case, or only its number when one participant has it), Esc
drops it, `/` starts one explicitly, so a participant far down a large
site's list is one id away. The participants are listed with what needs
doing soonest first (`workflow.status.ward_page`): on a site of 45,000 the
first screen costs what it costs on one of 500.
Times shown relative to now (time left, days left) come from the ward's
clock when the panel was filled; the panels refresh every minute.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from wardcrf.clock import zone

from .errors import message_of
from .i18n import domain_word, t, t_count
from .keys import LANGUAGE, RELOAD
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.places import PLACES, by_name, offered
from .widgets.status import StatusBar
from .widgets.tables import WardTable
from .widgets.typeahead import focus_now, hold_keys, release_keys

if TYPE_CHECKING:
    from wardcrf.sync.ward import SyncStatus

    from wardcrf.audit import TrailEntry
    from wardcrf.coldchain.reports import ExcursionView, FreezerPanel
    from wardcrf.engine.schedule import NextDose
    from wardcrf.site import Session
    from wardcrf.workflow.status import DsmgGate, SafetyEvent, SafetyOverview, WardPage, WardRow

R = TypeVar("R")

RECENT = 12
PAGE_ROWS = 250
"""Participants fetched at a time once the cursor nears the end of those listed."""
NEAR_END = 10
"""Rows from the end of the listed ones at which the next page is fetched."""
REFRESH_SECONDS = 60.0
WIDE = (110, 32)
"""Smallest terminal (columns, rows) that shows every panel at once."""


@dataclass(frozen=True)
class Panel:
    """One box of the dashboard: its key, title message id and table columns."""

    name: str
    key: str
    title: str  # message id
    columns: tuple[str, ...]  # message ids


PANELS: tuple[Panel, ...] = (
    # Most urgent columns first: on a small terminal the last ones scroll off to the right.
    Panel(
        "participants",
        "1",
        "dash.participants",
        (
            "col.participant",
            "col.next",
            "dash.col_vitals",
            "col.aes",
            "dash.col_doses",
            "col.status",
            "dash.col_visits",
        ),
    ),
    Panel("safety", "2", "dash.safety", ("col.participant", "dash.col_report", "dash.col_event")),
    Panel("freezer", "3", "dash.freezer", ("dash.col_unit", "dash.col_reading", "dash.col_excursion")),
    Panel("sync", "4", "dash.sync", ("dash.col_item", "dash.col_value")),
    Panel("gate", "5", "dash.gate", ("dash.col_item", "dash.col_value")),
    Panel("recent", "6", "dash.recent", ("col.time", "col.who", "col.what")),
)
PANEL_NAMES = tuple(p.name for p in PANELS)


_OWED = re.compile(r"(?P<visit>.+?): (?P<form>[^:]+) \((?P<state>[^()]+)\)")
"""One of `WardRow.visits_owed`: "VISIT: form (state)" (`status.list_row`)."""


def visits_text(owed: list[str], *, short: bool = False) -> str:
    """The forms visits owe, one visit once: "DAY 4: vitals, lesions (window closing)"; the state word
    translated (`[state_short]` on a small terminal: "closing")."""
    groups: dict[tuple[str, str], list[str]] = {}
    for item in owed:
        m = _OWED.fullmatch(item)
        if m is None:
            groups.setdefault((item, ""), [])
            continue
        groups.setdefault((m["visit"], m["state"]), []).append(m["form"])
    out = []
    for (visit, state), forms in groups.items():
        if not state:
            out.append(visit)
            continue
        word = domain_word("state_short" if short else "state", state)
        out.append(f"{visit}: {', '.join(forms)} ({word})")
    return "; ".join(out)


def span(minutes: int) -> str:
    """A duration as a nurse reads it: 45m, 3h 05m, 2d 4h."""
    minutes = abs(minutes)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 24 * 60:
        return f"{minutes // 60}h {minutes % 60:02d}m"
    return f"{minutes // (24 * 60)}d {minutes % (24 * 60) // 60}h"


def next_dose_text(nd: NextDose, now: datetime) -> Text:
    """'#2 in 3h 05m' / '#2 due now, 25m left' / '#2 overdue 1d 2h' / '#2 held'.

    The due time itself is on the participant's screen; here, what a nurse
    acts on: how long until, or how long since, the dose window closes.
    """
    due = datetime.fromisoformat(nd["due"])
    state = nd["state"]
    if state == "upcoming":
        tail, style = t("dash.due_in", span=span(int((due - now).total_seconds() // 60))), ""
    elif state == "due now":
        end = datetime.fromisoformat(nd["window"][1])
        left = span(int((end - now).total_seconds() // 60))
        tail, style = t("dash.due_now_left", span=left), "bold yellow"
    elif state == "overdue":
        end = datetime.fromisoformat(nd["window"][1])
        tail, style = t("dash.overdue_by", span=span(int((now - end).total_seconds() // 60))), "bold red"
    else:
        tail, style = domain_word("state", state), "magenta"
    return Text(f"#{nd['dose']} ") + Text(tail, style=style)


def report_text(e: SafetyEvent) -> Text:
    """An SAE's expedited-report due date and the days left (or overdue)."""
    left = e["days_left"]
    if not e["report_due"] or left is None:
        return Text("—")
    if left < 0:
        tail, style = t("dash.days_overdue", n=-left), "bold red"
    elif left == 0:
        tail, style = t("dash.due_today"), "bold yellow"
    else:
        tail, style = t("dash.days_left", n=left), "yellow" if left <= 3 else ""
    return Text(f"{e['report_due'][5:]} ") + Text(tail, style=style)


Node = TypeVar("Node")
Posted = TypeVar("Posted")


def unless_rebuilt(fill: Callable[[Node, Posted], None]) -> Callable[[Node, Posted], None]:
    """A panel's fill from its worker's message, skipped when the screen is being rebuilt under it.

    A language switch recomposes the screen: a load that finishes in between
    finds its panel gone (found by Pilot under load: the app crashed on
    `NoMatches`). `relabelled` then loads every panel again, so this late
    result is simply not needed.
    """

    @functools.wraps(fill)
    def run(node: Node, message: Posted) -> None:
        try:
            fill(node, message)
        except NoMatches:
            return

    return run


class DashboardScreen(Screen[None]):
    """Home: places for this role and the ward's state, panel by panel."""

    CSS_PATH = "dashboard.tcss"
    AUTO_FOCUS = "#places"
    BINDINGS: ClassVar[list[BindingType]] = [
        *[Binding(p.key, f"open('{p.name}')", p.label) for p in PLACES],
        Binding("n", "new_participant", "key.new_participant"),
        *[Binding(p.key, f"panel('{p.name}')", p.title, show=False) for p in PANELS],
        Binding("right_square_bracket", "cycle(1)", "dash.key_next_panel", key_display="]"),
        Binding("left_square_bracket", "cycle(-1)", "dash.key_previous_panel", key_display="[", show=False),
        LANGUAGE,
        RELOAD,
        Binding("u", "drafts", "key.drafts"),
    ]

    @dataclass
    class ParticipantsLoaded(Message):
        """The first page of the ward list, and the time it was read at (the next pages use it)."""

        got: tuple[datetime, WardPage]

    @dataclass
    class MoreParticipants(Message):
        """A further page of the ward list, for the fill (`round_`) it continues."""

        round_: int
        page: WardPage

    @dataclass
    class SafetyLoaded(Message):
        """The AEs and SAEs the ward must act on."""

        view: SafetyOverview

    @dataclass
    class FreezerLoaded(Message):
        """The freezers' state (the cold chain's panel)."""

        view: FreezerPanel

    @dataclass
    class SyncLoaded(Message):
        """What waits to leave this laptop and when the hub was last heard from."""

        info: SyncStatus

    @dataclass
    class GateLoaded(Message):
        """Where the DSMG's gates stand."""

        gate: DsmgGate

    @dataclass
    class RecentLoaded(Message):
        """The latest audit-trail entries."""

        entries: list[TrailEntry]

    @dataclass
    class DraftsLoaded(Message):
        """How many unsaved forms the person has, and the newest (its title, when saved)."""

        count: int
        latest: tuple[str, str] | None

    @dataclass
    class PanelRefused(Message):
        """A panel could not be read: the one line to show (the other panels still load)."""

        text: str
        then_others: bool = True

    @dataclass
    class Found(Message):
        """The participant an id typed names, or the one line saying why none."""

        pid: str | None
        problem: str | None

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward
        self.current = "participants"
        self._others_pending = False
        self._fill_round = 0  # a newer fill of the participants drops an older one's later pages
        self._listed: set[str] = set()
        """Participants in the table (a page fetched after the queue moved may repeat one)."""
        self._total = 0
        """Participants on the site (the ward list's total)."""
        self._fill_at: datetime | None = None
        """The time the listed order was taken at (later pages continue that order)."""
        self._fetching = False
        """A later page is being fetched."""
        self.search: str | None = None
        """A participant id being typed (None: no search)."""
        self.drafts = 0
        """How many unsaved forms the signed-in person has (offered back with `u`)."""

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("dashboard.title"))
        with Horizontal(id="dash"):
            with Vertical(id="menu"):
                yield Static(t("dashboard.places"), classes="section-title")
                yield OptionList(
                    *[Option(Text(f"[{p.key}] {t(p.label)}"), id=p.name) for p in offered(self.ward)],
                    id="places",
                )
            with Vertical(id="board"):
                yield Static(self._tabs_text(), id="panel-tabs")
                with Container(id="panels"):
                    for p in PANELS:
                        classes = "panel -current" if p.name == self.current else "panel"
                        with Vertical(id=f"p-{p.name}", classes=classes):
                            yield Static(
                                f"[{p.key}] {t(p.title)}", id=f"title-{p.name}", classes="panel-title"
                            )
                            table = WardTable(
                                id=p.name, cursor_type="row", zebra_stripes=True, classes="panel-table"
                            )
                            # the participants' columns as the ward's format gives them, also when the
                            # screen is composed again (a language switch) after a format-2 page came
                            columns = p.columns
                            table.add_columns(*[t(c) for c in columns])
                            yield table
                yield Static("", id="dash-drafts", classes="warning")
                yield Static("", id="dash-message", classes="muted")
        yield WardFooter()

    def on_mount(self) -> None:
        self._fit(self.app.size.width, self.app.size.height)
        self.set_interval(REFRESH_SECONDS, self._refresh_if_shown)

    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """Side by side when there is room, else one panel at a time (the places in the footer)."""
        compact = width < WIDE[0] or height < WIDE[1]
        changed = compact != self.has_class("-compact")
        self.set_class(compact, "-compact")
        if compact and (self.focused is None or self.focused.id == "places"):
            focus_now(self.query_one(f"#{self.current}", DataTable))
        if changed and self.is_mounted and self._fill_round:
            self.reload_all()  # the status words follow the width

    def _tabs_text(self) -> Text:
        out = Text()
        for i, p in enumerate(PANELS):
            if i:
                out.append(" ")
            out.append(
                f"{p.key} {t(f'dash.tab_{p.name}')}", style="reverse bold" if p.name == self.current else ""
            )
        return out

    # -- panels and keys ---------------------------------------------------------------
    def action_panel(self, name: str) -> None:
        """Show (on a small terminal) and focus one panel."""
        self.current = name
        for p in PANELS:
            self.query_one(f"#p-{p.name}").set_class(p.name == name, "-current")
        self.query_one("#panel-tabs", Static).update(self._tabs_text())
        focus_now(self.query_one(f"#{name}", DataTable))

    def action_cycle(self, step: int) -> None:
        i = PANEL_NAMES.index(self.current)
        self.action_panel(PANEL_NAMES[(i + step) % len(PANEL_NAMES)])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and parameters:
            return self.ward.can(by_name(str(parameters[0])).permission)
        if action == "new_participant":
            return self.ward.can("consent.record")
        if action == "drafts":
            return self.drafts > 0
        return True

    def on_screen_resume(self) -> None:
        # Also sent when the screen is first shown: paint first, then fill.
        self.call_after_refresh(self.reload_all)

    def _refresh_if_shown(self) -> None:
        """Each minute: times left move on, other users record things (not behind a lock)."""
        if self.is_current:
            self.reload_all()

    def relabelled(self) -> None:
        """After a language switch (the screen was recomposed): fill the panels again."""
        self._fit(self.app.size.width, self.app.size.height)
        self.reload_all()

    def reload_all(self) -> None:
        """Participants first (the panel people look at); the others once it is on screen."""
        self._others_pending = True
        self.load_participants()
        if self.ward.can("draft.keep"):
            self.load_drafts()

    @work(thread=True, exclusive=True, group="dash-drafts")
    def load_drafts(self) -> None:
        """The person's unsaved forms: offered back at sign-in (and whenever the dashboard shows)."""
        from wardcrf import drafts

        from .drafts_screen import form_title

        try:
            mine = self.ward.call(drafts.mine)
            latest = (form_title(self.ward, mine[0]), mine[0].saved_at) if mine else None
        except Exception as exc:
            self.post_message(self.PanelRefused(message_of(exc), then_others=False))
            return
        self.post_message(self.DraftsLoaded(len(mine), latest))

    @on(DraftsLoaded)
    @unless_rebuilt
    def _show_drafts(self, message: DraftsLoaded) -> None:
        from . import times

        n, latest = message.count, message.latest
        self.drafts = n
        text = ""
        if n and latest is not None:
            text = t("drafts.notice", n=n, form=latest[0], when=times.local(latest[1], "%m-%d %H:%M"))
        self.query_one("#dash-drafts", Static).update(text)
        self.refresh_bindings()

    def action_drafts(self) -> None:
        """u: the person's unsaved forms, to reopen or discard."""
        from .drafts_screen import DraftsScreen

        self.app.push_screen(DraftsScreen(self.ward))

    def _load_others(self) -> None:
        if not self._others_pending:
            return
        self._others_pending = False
        self.load_safety()
        self.load_freezer()
        self.load_sync()
        self.load_gate()
        self.load_recent()

    def action_reload(self) -> None:
        self.reload_all()

    def action_open(self, name: str) -> None:
        self.app.open_place(name)  # type: ignore[attr-defined]

    def action_new_participant(self) -> None:
        """A new participant starts with their consent (the service allocates the id)."""
        from .form_screen import FormScreen

        def consented(event: Any) -> None:
            # Straight on to the new participant: screening comes next.
            subject = getattr(event, "subject", None) or ""
            if subject.startswith("participant:"):
                self._open_participant(subject.removeprefix("participant:"))

        self.app.push_screen(FormScreen(self.ward, "consent"), consented)

    def _open_participant(self, pid: str) -> None:
        from .participant import ParticipantScreen

        self.app.push_screen(ParticipantScreen(self.ward, pid))

    # -- find a participant by typing or scanning the id -------------------------------
    def on_key(self, event: events.Key) -> None:
        """Keys the focused list and the dashboard's own keys leave: a participant id."""
        if self.search is not None:
            if event.key == "enter":
                self._find(self.search)
            elif event.key == "escape":
                self._search(None)
            elif event.key == "backspace":
                self._search(self.search[:-1])
            elif event.is_printable and event.character:
                self._search(self.search + event.character)
            else:
                return
            event.stop()
            return
        if not (event.is_printable and event.character) or event.key == "space":
            return
        if event.character == "/":
            self._search("")
        elif event.key in self.active_bindings:
            return  # a place, a panel, reload...
        else:
            self._search(event.character)
        event.stop()

    def _search(self, text: str | None) -> None:
        self.search = text
        self._show_message("" if text is None else t("dash.find", typed=text))

    def _find(self, typed: str) -> None:
        """Enter: look the id up (keys typed behind it wait: they belong to the participant)."""
        self._search(None)
        if not typed.strip():
            return
        hold_keys(self, "find")
        self.find(typed)

    @work(thread=True, exclusive=True, group="dash-find")
    def find(self, typed: str) -> None:
        from wardcrf import workflow

        try:
            pid = self.ward.call(workflow.status.find_participant, typed)
            problem = None if pid else t("dash.no_such_participant", typed=typed.strip())
        except Exception as exc:
            pid, problem = None, message_of(exc)
        self.post_message(self.Found(pid, problem))

    def _found(self, pid: str | None, problem: str | None) -> None:
        if pid is not None:
            self._open_participant(pid)
        else:
            self._show_message(problem or "")
        release_keys(self, "find", drop=pid is None)

    @on(OptionList.OptionSelected, "#places")
    def _place_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.action_open(event.option.id)

    @on(DataTable.RowSelected, "#participants")
    @on(DataTable.RowSelected, "#safety")
    def _participant_chosen(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value or ""
        pid = key.split("/", 1)[0]
        if pid:
            self._open_participant(pid)

    # -- loading -----------------------------------------------------------------------
    def _load(self, fn: Callable[[Session], R], loaded: Callable[[R], Message]) -> None:
        """Run one domain call (in the calling worker thread) and post its panel's message."""
        try:
            result = self.ward.call(fn)
        except Exception as exc:
            self.post_message(self.PanelRefused(message_of(exc)))
            return
        if get_current_worker().is_cancelled:
            return  # a newer load of this panel replaced this one: it fills the panel
        self.post_message(loaded(result))

    @on(PanelRefused)
    def _on_panel_refused(self, message: PanelRefused) -> None:
        with contextlib.suppress(NoMatches):  # being rebuilt (see `unless_rebuilt`)
            self._show_message(message.text)
        if message.then_others:
            self._load_others()

    @on(Found)
    def _on_found(self, message: Found) -> None:
        self._found(message.pid, message.problem)

    @work(thread=True, exclusive=True, group="dash-participants")
    def load_participants(self) -> None:
        from wardcrf import workflow
        from wardcrf.workflow.base import now

        at = now()
        self._load(lambda s: (at, workflow.ward_page(s, at=at)), self.ParticipantsLoaded)

    @work(thread=True, exclusive=True, group="dash-more")
    def load_more(self, round_: int, offset: int, at: datetime) -> None:
        """The next page of the ward list, in the order of the fill it continues (the same time)."""
        from wardcrf import workflow

        def next_page(session: Any) -> workflow.status.WardPage:
            return workflow.ward_page(session, offset=offset, limit=PAGE_ROWS, at=at)

        self._load(next_page, lambda page: self.MoreParticipants(round_, page))

    @work(thread=True, exclusive=True, group="dash-safety")
    def load_safety(self) -> None:
        from wardcrf import workflow

        self._load(workflow.safety_overview, self.SafetyLoaded)

    @work(thread=True, exclusive=True, group="dash-freezer")
    def load_freezer(self) -> None:
        from wardcrf.coldchain import reports

        self._load(reports.freezers, self.FreezerLoaded)

    @work(thread=True, exclusive=True, group="dash-sync")
    def load_sync(self) -> None:
        from wardcrf.sync import ward as sync_ward

        self._load(sync_ward.status, self.SyncLoaded)

    @work(thread=True, exclusive=True, group="dash-gate")
    def load_gate(self) -> None:
        from wardcrf import workflow

        self._load(workflow.dsmg_gate, self.GateLoaded)

    @work(thread=True, exclusive=True, group="dash-recent")
    def load_recent(self) -> None:
        from wardcrf import audit

        self._load(lambda s: list(audit.trail(s, limit=RECENT)), self.RecentLoaded)

    # -- filling (UI thread) -----------------------------------------------------------
    def _table(self, name: str) -> DataTable[Any]:
        table = self.query_one(f"#{name}", DataTable)
        table.clear()
        return table

    def _title(self, name: str, summary: str) -> None:
        panel = next(p for p in PANELS if p.name == name)
        text = f"[{panel.key}] {t(panel.title)}"
        self.query_one(f"#title-{name}", Static).update(f"{text} · {summary}" if summary else text)

    def _local(self, iso: str | None) -> str:
        """A stored UTC/offset time as the ward's local 'MM-DD HH:MM'."""
        if not iso:
            return "—"
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        return when.astimezone(zone(self.ward.session.ctx.zone)).strftime("%m-%d %H:%M")

    @on(ParticipantsLoaded)
    @unless_rebuilt
    def _fill_participants(self, message: ParticipantsLoaded) -> None:
        """The first screenful of the ward list and its totals (`workflow.ward_page`).

        The title counts every participant and those needing attention (from
        the queue's counters); the table holds the first page, and the next
        pages follow as the cursor nears the end (`_near_end`). Finding a
        participant by id does not depend on what is listed.
        """
        self._fill_at, page = message.got
        self._table("participants")  # cleared
        self._fill_round += 1
        self._listed = set()
        self._fetching = False
        self._total = page["total"]
        now = self.ward.local_now()
        self._title(
            "participants", t("dash.participants_summary", n=page["total"], attention=page["attention"])
        )
        self._add_participants(page["rows"], now)
        self._load_others()

    @on(MoreParticipants)
    @unless_rebuilt
    def _more_participants(self, message: MoreParticipants) -> None:
        """A later page: added below the listed rows (unless a newer fill replaced the list)."""
        page = message.page
        if message.round_ != self._fill_round or not self.is_mounted:
            return
        self._fetching = False
        self._add_participants(page["rows"], self.ward.local_now())
        if not page["rows"]:
            self._total = len(self._listed)  # the site shrank under us (a restore): stop asking

    @on(DataTable.RowHighlighted, "#participants")
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        """Fetch the next page when the cursor comes within `NEAR_END` rows of the last listed."""
        table = event.data_table
        listed = table.row_count
        if self._fetching or self._fill_at is None or listed >= self._total:
            return
        if event.cursor_row < listed - NEAR_END:
            return
        self._fetching = True
        self.load_more(self._fill_round, listed, self._fill_at)

    def _add_participants(self, rows: list[WardRow], now: datetime) -> None:
        table = self.query_one("#participants", DataTable)
        # A small terminal gets the catalogue's short status words: whole, never cut mid-word.
        status_words = "status_short" if self.has_class("-compact") else "status"
        for r in rows:
            if r["id"] in self._listed:
                continue  # the queue moved between two pages: listed once, where it was first
            self._listed.add(r["id"])
            # doses given of planned: a protocol's days are its visit days (PALM's enrollment is DAY 1,
            # ZMapp every 3 days), so the ward counts doses
            given, planned = r["doses_given"], r["doses_planned"]
            day = f"{given}/{planned}" if planned > 0 and given <= planned else str(given or "")
            nd = r.get("next_dose")
            owed = r.get("post_dose_vitals_due") or []
            # Text cells, not str: a str cell is parsed as console markup, which
            # is much of the cost of listing 1,000 participants (and an id is not markup).
            nxt = next_dose_text(nd, now) if nd else Text("")
            named = r.get("version_not_loaded")  # their version's schedule is unknown here: said, not guessed
            if named:
                nxt = Text(t("dash.version_not_loaded", version=named), style="bold red")
            visits = r.get("visits_owed") or []  # the forms visits owe now (`status.list_row`)
            compact = self.has_class("-compact")
            visits_cell = Text(visits_text(visits, short=compact), style="bold yellow")
            cells = [
                Text(r["id"]),
                nxt,
                Text(t("dash.vitals_owed", doses=" ".join(f"#{n}" for n in owed)), style="bold yellow")
                if owed
                else Text(""),
                Text(str(r["open_aes"] or "")),
                Text(day),
                Text(domain_word(status_words, r["status"])),
                visits_cell,
            ]
            table.add_row(*cells, key=r["id"])

    @on(SafetyLoaded)
    @unless_rebuilt
    def _fill_safety(self, message: SafetyLoaded) -> None:
        view = message.view
        table = self._table("safety")
        for e in view["events"]:
            what = Text(f"{e['term']} G{e['grade']}" if e["grade"] is not None else str(e["term"]))
            if e["serious"]:
                what = Text(t("dash.sae") + " ", style="bold red") + what
            if not e["open"]:
                what.append(" " + t("dash.ended"), style="dim")
            table.add_row(e["participant"], report_text(e), what, key=f"{e['participant']}/{e['event']}")
        if not view["events"]:
            table.add_row("—", "", t("dash.no_open_aes"))
        self._title(
            "safety",
            t(
                "dash.safety_summary",
                open=view["open_aes"],
                saes=view["saes"],
                reviews=view["reviews_pending"],
            ),
        )

    @on(FreezerLoaded)
    @unless_rebuilt
    def _fill_freezer(self, message: FreezerLoaded) -> None:
        view = message.view
        table = self._table("freezer")
        unresolved = 0
        for u in view["units"]:
            last = u["last_reading"]
            if last:
                reading = Text(f"{last['temp_c']:.1f} °C ", style="" if last["in_range"] else "bold red")
                reading.append(self._local(last["at"]), style="dim")
            else:
                reading = Text(t("dash.no_reading"), style="yellow")
            table.add_row(u["unit"], reading, self._excursions_text(u["open_excursions"]), key=u["unit"])
            unresolved += len(u["open_excursions"])
        for x in view["receipt_excursions"]:
            table.add_row(t("dash.receipt"), "", self._excursions_text([x]), key=x["id"])
            unresolved += 1
        # Kits outside a monitored unit: the custody time left, counted down (issue 14, finding 7).
        for c in view.get("outside_units", []):
            if c["over_limit"]:
                left = Text(t("dash.outside_over"), style="bold red")
            else:
                word = "dash.outside_bedside_left" if c["bedside"] else "dash.outside_left"
                style = "bold yellow" if c["minutes_left"] < 10 else "yellow"
                left = Text(t(word, by=self._local(c["deadline"]), left=c["minutes_left"]), style=style)
            table.add_row(c["kit"], c["location"], left, key=f"outside:{c['kit']}")
        if not view["units"] and not view["receipt_excursions"]:
            table.add_row("—", t("dash.no_units"), "")
        self._title("freezer", t("dash.freezer_summary", units=len(view["units"]), open=unresolved))

    def _excursions_text(self, xs: list[ExcursionView]) -> Text:
        if not xs:
            return Text(t("dash.no_excursion"), style="green")
        x = xs[-1]
        if x["open"]:
            text = t("dash.excursion_open", since=self._local(x["start"]))
        else:
            text = t("dash.excursion_awaiting", n=len(x["awaiting_disposition"]))
        more = f" (+{len(xs) - 1})" if len(xs) > 1 else ""
        return Text(text + more, style="bold red")

    @on(SyncLoaded)
    @unless_rebuilt
    def _fill_sync(self, message: SyncLoaded) -> None:
        info = message.info
        table = self._table("sync")
        export = info.get("last_export")
        receipt = info.get("last_receipt")
        pending = info["events_pending"]
        rows: list[tuple[str, Text]] = [
            (t("dash.sync_state"), Text(self._sync_state(info["state"]))),
            (
                t("dash.sync_pending"),
                Text(
                    t("dash.sync_pending_value", events=pending, photos=info["photos_pending"]),
                    style="yellow" if pending else "green",
                ),
            ),
            (
                t("dash.sync_last_export"),
                Text(
                    t_count(
                        "dash.sync_export_value",
                        export["files"],
                        at=self._local(export["at"]),
                        files=export["files"],
                    )
                )
                if export
                else Text(t("dash.never"), style="dim"),
            ),
            (
                t("dash.sync_last_receipt"),
                Text(t("dash.sync_receipt_value", at=self._local(receipt["at"]), seq=receipt["seq"]))
                if receipt
                else Text(t("dash.never"), style="dim"),
            ),
            (t("dash.sync_queries"), Text(str(len(info.get("open_queries") or [])))),
        ]
        for i, (label, value) in enumerate(rows):
            table.add_row(label, value, key=f"sync-{i}")
        self._title("sync", self._sync_state(info["state"]))

    def _sync_state(self, state: str) -> str:
        if state.startswith("synced "):
            return t("dash.synced_at", at=self._local(state.removeprefix("synced ")))
        from wardcrf.sync.ward import RECEIVED_UP_TO

        if state.startswith(RECEIVED_UP_TO):
            return t("dash.received_up_to", seq=state.removeprefix(RECEIVED_UP_TO))
        return domain_word("dash_sync", state)

    @on(GateLoaded)
    @unless_rebuilt
    def _fill_gate(self, message: GateLoaded) -> None:
        gate = message.gate
        table = self._table("gate")
        state = gate["state"]
        style = {"open": "green", "sentinel": "yellow"}.get(state, "bold red")
        rows: list[tuple[str, Text]] = [(t("dash.gate_state"), Text(t(f"dash.gate_{state}"), style=style))]
        if gate["waiting_for_dsmg"]:
            rows.append((t("dash.gate_waiting"), Text(", ".join(gate["waiting_for_dsmg"]), style="yellow")))
        last = gate["last_decision"]
        if last:
            rows.append(
                (
                    t("dash.gate_last"),
                    Text(f"{domain_word('dash_decision', last['decision'])} · {last['participant']}"),
                )
            )
        rows.append(
            (
                t("dash.gate_reviews"),
                Text(str(gate["reviews_pending"]), style="yellow" if gate["reviews_pending"] else ""),
            )
        )
        for i, (label, value) in enumerate(rows):
            table.add_row(label, value, key=f"gate-{i}")
        self._title("gate", t(f"dash.gate_{state}"))

    @on(RecentLoaded)
    @unless_rebuilt
    def _fill_recent(self, message: RecentLoaded) -> None:
        entries = message.entries
        table = self._table("recent")
        for e in reversed(entries):
            table.add_row(e.local_time[5:16].replace("T", " "), e.user or "—", f"{e.type} {e.subject or ''}")

    def _show_message(self, text: str) -> None:
        self.query_one("#dash-message", Static).update(text)
