"""Sync: what waits to leave this laptop, USB export, push/pull, hub files, data queries.

The same services as `wardcrf sync ...`: `wardcrf.sync.ward.status` for the
panel, `ward.export` (USB, `e`), `service.push` / `service.pull` with the
hub URL set by `sync set-hub --url` (`p` / `g`), `ward.import_file` for a
hub bundle or receipt carried on a stick (`i`), and
`registry.answer_query` / `registry.answer_by_amendment` for the data
queries the hub sent (`a` answers by a comment, `m` corrects the field —
with a reason for change — and answers naming the amendment).

Every blocking call runs in a thread worker. Push and pull use their own
database connection (`Site.reopen`) so a slow network never holds the one
the other screens use, and a client with short timeouts and bounded
retries: an unreachable hub gives the one-line offline message in seconds,
never a hang. Roles: export, push, pull and import need `sync.export`;
answering needs `record.comment` (and `record.amend` to correct a field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from . import times
from .dialogs.discard import AsksBeforeDiscarding
from .dialogs.path import PathDialog
from .errors import message_of
from .i18n import label_width, pad, t, t_count
from .keys import BACK, LANGUAGE, RELOAD
from .results import Refused, post_outcome
from .unsaved import without_blanks
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar, sync_label
from .widgets.tables import WardTable
from .widgets.typeahead import WardInput

if TYPE_CHECKING:
    from wardcrf.sync.ward import SyncStatus

PUSH_OPTIONS: dict[str, Any] = {"attempts": 2, "backoff": 0.5, "connect_timeout": 5.0, "timeout": 60.0}
"""A person is waiting: two tries, five seconds to connect, then the offline message."""

_TRANSFER_KEYS = (
    Binding("e", "export", "sync.key_export"),
    Binding("p", "push", "sync.key_push"),
    Binding("g", "pull", "sync.key_pull"),
    Binding("i", "import_file", "sync.key_import"),
)
"""The keys that move bundles (USB export, push, pull, import): offered to roles with `sync.export`."""
_TRANSFER_ACTIONS = frozenset(b.action for b in _TRANSFER_KEYS)


def _time(iso: str | None) -> str:
    """A time from the domain (UTC) as the ward's local time, zone marked (issue 14)."""
    return times.local(iso, marked=True) if iso else ""


class SyncScreen(Screen[None]):
    """Sync status, export, push/pull, import, and the hub's data queries."""

    CSS_PATH = "sync_screen.tcss"
    AUTO_FOCUS = "#queries"
    BINDINGS: ClassVar[list[BindingType]] = [
        *_TRANSFER_KEYS,
        Binding("a", "answer", "sync.key_answer"),
        Binding("m", "amend_answer", "sync.key_amend"),
        RELOAD,
        LANGUAGE,
        BACK,
    ]
    #: The data queries' columns as message ids, translated when the screen is composed.
    COLUMNS = (
        "sync.col_query",
        "sync.col_record",
        "sync.col_field",
        "sync.col_status",
        "sync.col_question",
    )

    @dataclass
    class Loaded(Message):
        """The sync panel's status, read in a worker."""

        status: SyncStatus

    @dataclass
    class Progress(Message):
        """An export wrote `done` of `total` bundles (`name`: the one being written)."""

        done: int
        total: int
        name: str

    @dataclass
    class Finished(Message):
        """An export, push, pull or import ended: the lines to show (`refusal`: it was refused)."""

        lines: list[str]
        refusal: bool = False

    def __init__(self, ward: Ward) -> None:
        super().__init__()
        self.ward = ward
        self.status: SyncStatus | None = None
        self.last_folder: Path | None = None
        self.result_lines: list[str] = []
        self.busy = False

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("sync.title"))
        with Vertical(id="sync"):
            yield Static("", id="sync-status")
            yield Static(t("sync.queries"), classes="section-title")
            yield WardTable.listing("queries", *map(t, self.COLUMNS))
            yield ProgressBar(id="sync-progress", show_eta=False)
            yield Static("", id="sync-message")
        yield WardFooter()

    def on_mount(self) -> None:
        self.query_one("#sync-progress").display = False
        self.call_after_refresh(self.load)

    def on_screen_resume(self) -> None:
        self.load()

    def relabelled(self) -> None:
        self.query_one("#sync-progress").display = False
        if self.status is not None:
            self._fill(self.status)
        self._show_result()

    def sync_state_changed(self) -> None:
        """The background sync moved on: refresh the panel (its state line and counts)."""
        if self.is_mounted:
            self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _TRANSFER_ACTIONS:
            return self.ward.can("sync.export")
        if action == "answer":
            return self.ward.can("record.comment")
        if action == "amend_answer":
            return self.ward.can("record.comment") and self.ward.can("record.amend")
        return True

    # -- status ---------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="sync-load")
    def load(self) -> None:
        from wardcrf.sync import ward as sync_ward

        post_outcome(self, lambda: self.ward.call(sync_ward.status), self.Loaded)

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self._fill(message.status)

    @on(Refused)
    def _load_refused(self, message: Refused) -> None:
        self._say(message.text, True)

    def _fill(self, st: SyncStatus) -> None:
        self.status = st
        out = Text()
        out.append(t("sync.device", device=st["device"]) + "\n")
        if st["hub"]:
            out.append(t("sync.hub", hub=st["hub"], url=st["hub_url"] or t("sync.no_url")) + "\n")
        else:
            out.append(t("sync.no_hub") + "\n", style="yellow")
        reach = st["hub_reachability"]
        if reach:
            out.append(
                t(
                    "sync.reach",
                    state=sync_label(reach["state"], reach["at"], self.ward),
                    time=_time(reach["at"]),
                )
            )
            if reach.get("detail"):
                out.append(f" ({reach['detail']})", style="dim")
            out.append("\n")
        elif st["hub"]:
            out.append(t("sync.reach_unknown") + "\n")
        out.append(
            t(
                "sync.pending",
                events=st["events_pending"],
                photos=st["photos_pending"],
                bundles=st["bundles_unreceipted"],
            )
            + "\n",
            style="bold" if st["events_pending"] else "",
        )
        exp = st["last_export"]
        out.append(
            t_count("sync.last_export", exp["files"], time=_time(exp["at"]), files=exp["files"])
            if exp
            else t("sync.no_export")
        )
        out.append(" · ")
        rec = st["last_receipt"]
        out.append(
            t("sync.last_receipt", seq=rec["seq"], time=_time(rec["at"])) if rec else t("sync.no_receipt")
        )
        out.append(" · " + t("sync.hub_bundles", n=st["hub_bundles_applied"]) + "\n")
        bg = getattr(self.app, "background_sync", None)
        state = getattr(self.app, "sync_state", None)
        if state is not None:
            out.append(t("sync.background", state=sync_label(state.state, state.at, self.ward)) + "\n")
        elif bg is not None and bg.off_reason:
            out.append(t("sync.background_off", why=bg.off_reason) + "\n", style="dim")
        for notice in st["hub_notices"]:
            out.append(t("sync.notice", text=notice) + "\n", style="bold red")
        self.query_one("#sync-status", Static).update(out)
        table = self.query_one("#queries", DataTable)
        table.clear()
        for q in st["open_queries"]:
            table.add_row(
                q["query_id"][-8:],
                q["target_event"],
                q["field"],
                {"open": t("sync.status_open"), "answered": t("sync.status_answered")}.get(
                    q["status"], q["status"]
                ),
                q["question"],
                key=q["query_id"],
            )

    def _say(self, text: str, refusal: bool = False) -> None:
        self.result_lines = [text]
        self._refusal = refusal
        self._show_result()

    def _show_result(self) -> None:
        line = self.query_one("#sync-message", Static)
        line.update("\n".join(self.result_lines))
        line.set_class(getattr(self, "_refusal", False), "refusal")

    def _selected_query(self) -> str | None:
        table = self.query_one("#queries", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value) if row_key.value else None

    # -- export to a folder (USB) ------------------------------------------------------------
    def action_export(self) -> None:
        """Pick a folder (a USB stick) and write every bundle the hub has not receipted."""
        if self.busy:
            return

        def chosen(folder: Path | None) -> None:
            if folder is not None:
                self.last_folder = folder
                self.busy = True
                self._say(t("sync.exporting", folder=folder))
                bar = self.query_one("#sync-progress", ProgressBar)
                bar.update(total=None, progress=0)
                bar.display = True
                self.export_to(folder)

        self.app.push_screen(
            PathDialog(
                kind="folder",
                title=t("sync_path.export_title"),
                hint=t("sync_path.hint_folder"),
                start=self.last_folder,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="sync-export")
    def export_to(self, folder: Path) -> None:
        from wardcrf.sync import ward as sync_ward

        def progress(done: int, total: int, name: str) -> None:
            self.post_message(self.Progress(done, total, name))

        try:
            res = self.ward.call(sync_ward.export, folder, progress=progress)
        except Exception as exc:
            self.post_message(self.Finished([message_of(exc)], refusal=True))
            return
        if res.files:
            lines = [t("sync.exported", n=len(res.files), events=res.events, folder=folder)]
            lines += [f"  {f.name}  (+ {f.name}.minisig)" for f in res.files]
        else:
            lines = [t("sync.nothing_to_export")]
        self.post_message(self.Finished(lines))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.update(total=max(message.total, 1), progress=message.done)
        if message.name:
            self._say(
                t("sync.export_progress", name=message.name, done=message.done + 1, total=message.total)
            )

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.busy = False
        self.query_one("#sync-progress").display = False
        self.result_lines = message.lines
        self._refusal = message.refusal
        self._show_result()
        self.load()

    # -- push / pull ---------------------------------------------------------------------------
    def action_push(self) -> None:
        """Send pending bundles to the hub now (only what it lacks) and apply its receipt."""
        self._online("push", t("sync.pushing"))

    def action_pull(self) -> None:
        """Fetch the receipt and every hub bundle waiting for this laptop, and apply them."""
        self._online("pull", t("sync.pulling"))

    def _online(self, what: str, busy_text: str) -> None:
        if self.busy:
            return
        self.busy = True
        self._say(busy_text)
        bar = self.query_one("#sync-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.exchange(what)

    @work(thread=True, exclusive=True, group="sync-online")
    def exchange(self, what: str) -> None:
        from wardcrf.sync import service

        try:
            session = self.ward.site.reopen(self.ward.session)
        except Exception as exc:
            self.post_message(self.Finished([message_of(exc)], refusal=True))
            return
        try:
            client = service.hub_client(session, **PUSH_OPTIONS)
            lines = (service.push if what == "push" else service.pull)(session, client)
        except Exception as exc:
            self.post_message(self.Finished([message_of(exc)], refusal=True))
            return
        finally:
            session.close()
        self.post_message(self.Finished(lines))

    # -- import a hub bundle or receipt -------------------------------------------------------
    def action_import_file(self) -> None:
        """Apply a hub bundle (.tar.age) or receipt (.json) carried on a stick."""
        if self.busy:
            return

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.busy = True
                self._say(t("sync.importing", file=path.name))
                self.import_path(path)

        self.app.push_screen(
            PathDialog(
                kind="file",
                title=t("sync_path.import_title"),
                hint=t("sync_path.hint_file"),
                start=self.last_folder,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="sync-import")
    def import_path(self, path: Path) -> None:
        from wardcrf.sync import ward as sync_ward

        try:
            line = self.ward.call(sync_ward.import_file, path)
        except Exception as exc:
            self.post_message(self.Finished([message_of(exc)], refusal=True))
            return
        self.post_message(self.Finished([line]))

    # -- data queries ---------------------------------------------------------------------------
    def action_answer(self) -> None:
        """Answer the selected query by a comment."""
        self._answer(amend=False)

    def action_amend_answer(self) -> None:
        """Correct the queried field (reason for change), then answer naming the amendment."""
        self._answer(amend=True)

    def _answer(self, *, amend: bool) -> None:
        query_id = self._selected_query()
        if query_id is None:
            self._say(t("sync.no_query"), True)
            return

        def done(result: str | None) -> None:
            if result:
                self._say(result)
                self.load()

        self.app.push_screen(AnswerDialog(self.ward, query_id, amend=amend), done)


class AnswerDialog(AsksBeforeDiscarding, ModalScreen[str | None]):
    """Answer one data query: by a comment, or by correcting the field and commenting.

    Dismissed with the confirmation line, or None (cancelled). Refusals are
    shown here and keep what was typed; Esc with an answer or a new value
    typed asks before throwing them away (`AsksBeforeDiscarding`; no draft is kept).
    """

    CSS_PATH = ["dialogs/dialogs.tcss", "sync_screen.tcss"]  # noqa: RUF012
    AUTO_FOCUS = "Input"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "key.cancel")]

    def __init__(self, ward: Ward, query_id: str, *, amend: bool) -> None:
        super().__init__()
        self.ward = ward
        self.query_id = query_id
        self.amend = amend
        from wardcrf.sync import registry

        self.target = ward.call(registry.query_target, query_id)

    def compose(self) -> ComposeResult:
        q = self.target
        labels = [t("sync_answer.answer")] + ([t("sync_answer.new_value")] if self.amend else [])
        width = label_width(labels)
        with Vertical(classes="dialog", id="answer-dialog"):
            yield Static(t("sync_answer.title", query=self.query_id[-8:]), classes="dialog-title")
            yield Static(
                t("sync_answer.question", field=q["field"], record=q["target_event"], question=q["question"])
            )
            value = q["value"]
            shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
            yield Static(t("sync_answer.current", value=shown), classes="change")
            with Grid(classes="dialog-grid"):
                if self.amend:
                    yield Label(pad(labels[1], width))
                    yield WardInput(id="answer-value")
                yield Label(pad(labels[0], width))
                yield WardInput(id="answer-text")
            yield Static(
                t("sync_answer.hint_amend") if self.amend else t("sync_answer.hint_comment"), classes="muted"
            )
            yield Static("", id="answer-message", classes="refusal")
        yield WardFooter()

    def typed(self) -> dict[str, Any]:
        return without_blanks({w.id: w.value.strip() for w in self.query(Input) if w.id})

    @on(Input.Submitted, "#answer-value")
    def _value_entered(self) -> None:
        self.query_one("#answer-text", Input).focus()

    @on(Input.Submitted, "#answer-text")
    def _entered(self) -> None:
        answer = self.query_one("#answer-text", Input).value.strip()
        if not answer:
            self.query_one("#answer-message", Static).update(t("sync_answer.need_answer"))
            return
        value = self.query_one("#answer-value", Input).value.strip() if self.amend else None
        if self.amend and not value:
            self.query_one("#answer-message", Static).update(t("sync_answer.need_value"))
            return
        self.send(answer, value)

    @work(exclusive=True, group="sync-answer")
    async def send(self, answer: str, value: str | None) -> None:
        from wardcrf.sync import registry

        reason = None
        if self.amend:
            from .dialogs.reason import ReasonDialog

            reason = await self.app.push_screen_wait(
                ReasonDialog(
                    title=t(
                        "sync_answer.amend_title",
                        field=self.target["field"],
                        record=self.target["target_event"],
                    ),
                    changes=[f"{self.target['field']}: {self.target['value']} → {value}"],
                )
            )
            if reason is None:
                return

        def call() -> Any:
            try:
                if self.amend:
                    return self.ward.call(
                        registry.answer_by_amendment, self.query_id, answer, value=value, reason=reason or ""
                    )
                return self.ward.call(registry.answer_query, self.query_id, answer)
            except Exception as exc:
                return exc

        result = await self.run_worker(call, thread=True, group="sync-answer-save").wait()
        if isinstance(result, Exception):
            self.query_one("#answer-message", Static).update(message_of(result))
            return
        key = "sync.answered_amended" if self.amend else "sync.answered"
        self.dismiss(t(key, query=self.query_id[-8:]))
