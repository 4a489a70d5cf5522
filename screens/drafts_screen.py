"""Your unsaved forms, offered back (issue 14: nothing typed is ever lost).

Each form the signed-in person left unsaved — by Esc without discarding,
quitting, the lock, a switch of user, a crash — is a draft of theirs
(`wardcrf.drafts`). The dashboard says how many at sign-in and `u` opens
this list: when each was last kept, which form, for whom, how many fields.
Enter reopens one with every value back and the cursor where it was (the
dose wizard at its step, once the kit is checked again); `x` throws one
away after a y/N question. Only the person's own drafts are ever listed.

This package's screens (the dose wizard, the DSMG board, a protocol form)
are reopened here; another package's are reopened by the openers it
registers (`draft_openers`, `DRAFT_OPENERS`: the cold chain's transfer and
readings screens), so those screens never import this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wardcrf import drafts
from wardcrf import protocol as protocols

from . import times
from .coldchain import drafts as coldchain_drafts
from .dialogs.discard import DiscardDialog
from .draft_openers import DraftOpeners, participant_of, unit_of
from .errors import message_of
from .i18n import language, t
from .keys import BACK, LANGUAGE
from .results import Refused
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.tables import WardTable
from .widgets.typeahead import hold_keys, release_keys

DRAFT_OPENERS: tuple[Callable[[DraftOpeners], None], ...] = (coldchain_drafts.register_drafts,)
"""Each other screen package's `register_drafts`: the forms it keeps drafts of and their screens."""


@cache
def openers() -> DraftOpeners:
    """Every package's draft openers, registered once, in the listed order (`draft_openers`)."""
    found = DraftOpeners()
    for register in DRAFT_OPENERS:
        register(found)
    return found


def form_title(ward: Ward, draft: drafts.Draft) -> str:
    """What the person called the form: the protocol's label, or the screen's title."""
    if draft.form == "dose_visit":
        return t("dose.title")
    if draft.form == "administration_visit":
        return t("adm.title")
    opener = openers().get(draft.form)
    if opener is not None:
        return t(opener.title)
    try:
        proto = ward.call(protocols.active_for)
        return protocols.tr(proto.form(draft.form).label, language())
    except Exception:  # a form the protocol no longer has: its name is all there is
        return draft.form


def open_draft(ward: Ward, draft: drafts.Draft) -> Screen[Any]:
    """The screen of a draft, reopened with its values and the cursor where it was."""
    pid = participant_of(draft)
    if draft.form in ("administration_visit", "dose_visit") and pid:
        # "dose_visit": a draft of format 1's dose wizard (gone, every version runs on the engine), resumed in
        # the administration wizard: the values whose names it shares are kept
        from .administration_wizard import AdministrationWizard

        regimen_wizard = AdministrationWizard(ward, pid, draft=draft.fields)
        regimen_wizard.resume_at(draft.focus)
        return regimen_wizard
    opener = openers().get(draft.form)
    if opener is not None:
        return opener.open(ward, draft)
    if draft.form == "dsmg_decision" and pid:
        from .dsmg import DsmgScreen

        # The board, which opens the decision dialog over itself: Esc goes back to the board.
        return DsmgScreen(ward, resume=(pid, dict(draft.fields), draft.focus))
    from .form_picker import screen_for

    return screen_for(ward, draft.form, pid, dict(draft.fields), focus=draft.focus)


class DraftsScreen(Screen[None]):
    """The signed-in person's drafts: Enter reopens one, x discards one (after y/N)."""

    AUTO_FOCUS = "#drafts"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "discard", "drafts.key_discard"),
        BACK,
        LANGUAGE,
    ]
    DEFAULT_CSS = """
    DraftsScreen #drafts { height: 1fr; }
    DraftsScreen #drafts-help { padding: 0 1; }
    """

    @dataclass
    class Loaded(Message):
        """The signed-in user's drafts, newest first, with each form's title."""

        found: list[drafts.Draft]
        titles: list[str]

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward
        self.drafts: list[drafts.Draft] = []

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("drafts.title"))
        with Vertical():
            yield Static(t("drafts.help"), id="drafts-help", classes="muted")
            table = WardTable(id="drafts", cursor_type="row", zebra_stripes=True)
            table.add_columns(
                t("drafts.col_saved"), t("drafts.col_form"), t("drafts.col_for"), t("drafts.col_fields")
            )
            yield table
            yield Static("", id="drafts-message", classes="muted")
        yield WardFooter()

    def on_mount(self) -> None:
        # `u` then Enter typed as one burst opens the first draft: Enter waits for the list.
        hold_keys(self, "drafts-load")
        self.load()

    def relabelled(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="drafts")
    def load(self) -> None:
        try:
            got = self.ward.call(drafts.mine)
            titles = [form_title(self.ward, d) for d in got]
        except Exception as exc:
            self.post_message(Refused(message_of(exc)))
            return
        self.post_message(self.Loaded(got, titles))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._fill(message.found, message.titles)
        release_keys(self, "drafts-load")  # after the list is filled, never before

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text)
        release_keys(self, "drafts-load")

    def _fill(self, got: list[drafts.Draft], titles: list[str]) -> None:
        self.drafts = got
        table = self.query_one("#drafts", DataTable)
        table.clear()
        for i, (d, title) in enumerate(zip(got, titles, strict=True)):
            table.add_row(
                times.local(d.saved_at),
                title,
                participant_of(d) or unit_of(d) or "—",
                str(len(d.fields)),
                key=str(i),
            )
        self._say("" if got else t("drafts.none"))

    def _say(self, text: str) -> None:
        self.query_one("#drafts-message", Static).update(text)

    def _selected(self) -> drafts.Draft | None:
        table = self.query_one("#drafts", DataTable)
        if not self.drafts or table.cursor_row < 0:
            return None
        return self.drafts[min(table.cursor_row, len(self.drafts) - 1)]

    @on(DataTable.RowSelected, "#drafts")
    def _open(self) -> None:
        draft = self._selected()
        if draft is None:
            return
        try:
            screen = open_draft(self.ward, draft)
        except Exception as exc:  # the participant or the form is gone: say why, keep the draft
            self._say(message_of(exc))
            return
        self.app.pop_screen()
        self.app.push_screen(screen)

    def action_discard(self) -> None:
        draft = self._selected()
        if draft is None:
            return

        def answered(discard: bool | None) -> None:
            if discard:
                try:
                    self.ward.call(drafts.discard, draft.form, context=draft.context)
                except Exception as exc:
                    self._say(message_of(exc))
                self.load()

        self.app.push_screen(DiscardDialog(form_title(self.ward, draft)), answered)
