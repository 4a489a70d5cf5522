"""DSMG review: every participant's safety summary, the gate, and the signed decision.

Top: what the DSMG's decisions mean for the ward now (a stop or an alter
holding dosing and enrollment, the sentinel gate, SAEs awaiting review).
Middle: one row per participant (doses, AEs, grade ≥ 3, SAEs, vital signs
outside the expected ranges, the latest decision). Bottom: the selected
participant's detail, or (`h`) the site-wide decision history including
decisions sent from the hub.

`d` records a decision (continue / stop / alter, as the protocol's
`dsmg_decision` form defines them) with its rationale; the member signs it
in the e-signature dialog and `wardcrf.workflow.dsmg.decide` saves the
record and the signature together. `e` opens the DSMG review of the
participant's next serious AE awaiting it (the protocol's generated form).
Everything is read through `wardcrf.workflow.dsmg.review` in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Label, Select, Static

from wardcrf import amounts
from wardcrf import protocol as protocols
from wardcrf.workflow.dsmg import BoardParticipant, DecisionSignature, DsmgBoard, GateState

from . import times
from .errors import message_of
from .i18n import label_width, language, pad, t
from .keys import BACK, LANGUAGE, RELOAD
from .results import Refused, post_outcome
from .unsaved import UnsavedWork
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.tables import WardTable
from .widgets.typeahead import SAVE_HOLD, WardInput, WardSelect, focus_now, hold_keys, release_keys


def _fmt_number(x: float) -> str:
    """A cumulative dose as every amount is written (`amounts.shown`: 1.0e9, 6200)."""
    return amounts.shown(x)


def _time(iso: str | None) -> str:
    """A time from the domain (UTC) as the ward's local time, zone marked (issue 14); a date (a vital sign
    recorded once a day: `[safety] vital_signs` time is a date field) as it is."""
    if iso and len(iso) == 10:
        return iso
    return times.local(iso, marked=True) if iso else ""


if TYPE_CHECKING:
    from wardcrf.sync.registry import HubDecision

    from wardcrf.workflow.safety import Decision


class Board(DsmgBoard):
    """The review board as the screen shows it: with the DSMG decisions the hub sent."""

    hub_decisions: list[HubDecision]


class DsmgScreen(Screen[None]):
    """The DSMG's review board (offered to roles with `dsmg.decide`)."""

    CSS_PATH = "dsmg.tcss"
    AUTO_FOCUS = "#dsmg-participants"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "decide", "dsmg.key_decide"),
        Binding("e", "review_sae", "dsmg.key_review_sae"),
        Binding("h", "toggle_history", "dsmg.key_history"),
        RELOAD,
        LANGUAGE,
        BACK,
    ]
    #: The board's columns as message ids, one per cell `_fill` writes; translated
    #: when the screen is composed, in the language in use then.
    COLUMNS = (
        "col.participant",
        "dsmg.col_doses",
        "dsmg.col_aes",
        "dsmg.col_g3",
        "dsmg.col_saes",
        "dsmg.col_flags",
        "dsmg.col_decision",
    )

    @dataclass
    class Loaded(Message):
        """The DSMG review board (with the hub's decisions), read in a worker."""

        board: Board

    def __init__(self, ward: Ward, *, resume: tuple[str, dict[str, Any], str | None] | None = None) -> None:
        """`resume`: (participant, values, focused field) of a decision draft to reopen at once."""
        super().__init__()
        self.ward = ward
        self.board: Board | None = None
        self.selected: str | None = resume[0] if resume else None
        self.show_history = False
        self.proto = ward.call(protocols.active_for)
        self.resume = resume

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("dsmg.title"))
        with Vertical(id="dsmg"):
            yield Static("", id="dsmg-gate")
            yield Static(t("dsmg.participants"), classes="section-title")
            yield WardTable.listing("dsmg-participants", *map(t, self.COLUMNS))
            yield Static(
                t("dsmg.history") if self.show_history else t("dsmg.detail"),
                id="dsmg-detail-title",
                classes="section-title",
            )
            with VerticalScroll(id="dsmg-detail-box"):
                yield Static("", id="dsmg-detail")
            yield Static("", id="dsmg-message", classes="muted")
        yield WardFooter()

    def on_mount(self) -> None:
        self.call_after_refresh(self.load)
        if self.resume is not None:
            participant, values, focus = self.resume
            self.resume = None
            self.call_after_refresh(self._open_decision, participant, values, focus)

    def relabelled(self) -> None:
        """After a language switch: refill from what was loaded."""
        if self.board is not None:
            self._fill(self.board)

    def on_screen_resume(self) -> None:
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("decide", "review_sae"):
            return self.ward.can("dsmg.decide")
        return True

    # -- loading -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="dsmg-load")
    def load(self) -> None:
        from wardcrf.sync import registry

        from wardcrf.workflow import dsmg

        today = self.ward.local_now().date()

        def read() -> Board:
            board = self.ward.call(dsmg.review, today=today)
            return Board(
                **board, hub_decisions=self.ward.call(registry.decisions_from_hub)
            )  # sent by the hub

        post_outcome(self, read, self.Loaded)

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._fill(message.board)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self._say(message.text, True)

    def _fill(self, board: Board) -> None:
        self.board = board
        self.query_one("#dsmg-gate", Static).update(self._gate_text(board["gate"]))
        table = self.query_one("#dsmg-participants", DataTable)
        table.clear()
        for p in board["participants"]:
            g3 = sum(n for g, n in p["aes_by_grade"].items() if g.isdigit() and int(g) >= 3)
            pid = p["participant"] + (" ★" if p["sentinel"] else "")
            saes = Text(str(p["aes_serious"] or ""))
            if p["sae_reports_overdue"] or p["saes_awaiting_review"]:
                saes.stylize("bold red")
            table.add_row(
                pid,
                # on a version not loaded here nothing is planned: given/?, as the ward list says it
                f"{p['doses_given']}/{'?' if p['version_not_loaded'] else p['doses_planned']}",
                str(p["aes_total"] or ""),
                str(g3 or ""),
                saes,
                str(len(p["vitals_flags"]) or ""),
                self._choice(p["latest_decision"]) if p["latest_decision"] else "",
                key=p["participant"],
            )
        ids = [p["participant"] for p in board["participants"]]
        if self.selected in ids:
            table.move_cursor(row=ids.index(self.selected))
        elif ids:
            self.selected = ids[0]
        self._show_detail()

    def _choice(self, code: str | None) -> str:
        field = self.proto.form("dsmg_decision").fields["decision"]
        for c in field.choices:
            if str(c.code) == code:
                return protocols.tr(c.label, language()).split(" (")[0].split("（")[0]
        return code or ""

    def _gate_text(self, gate: GateState) -> Text:
        out = Text()
        if gate["hold"]:
            out.append(t("dsmg.gate_hold", why=gate["hold"]), style="bold red")
        else:
            out.append(t("dsmg.gate_open"), style="bold green")
        sentinel = gate["sentinel"]
        out.append(" · ")
        if sentinel["waiting_for_dsmg"]:
            out.append(
                t("dsmg.sentinel_waiting", ids=", ".join(sentinel["waiting_for_dsmg"])), style="yellow"
            )
        else:
            out.append(t("dsmg.sentinel_open"))
        out.append("\n")
        latest = gate["latest"]
        if latest:
            out.append(
                t(
                    "dsmg.latest",
                    decision=self._choice(latest["decision"]),
                    participant=latest["participant"],
                    time=_time(latest["time"]),
                )
            )
        else:
            out.append(t("dsmg.no_decisions"))
        if gate["saes_awaiting_review"]:
            out.append(" · ")
            out.append(t("dsmg.awaiting_review", n=gate["saes_awaiting_review"]), style="bold red")
        return out

    # -- the selected participant ----------------------------------------------------------
    @on(DataTable.RowHighlighted, "#dsmg-participants")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.selected = str(event.row_key.value)
            self._show_detail()

    def _participant(self) -> BoardParticipant | None:
        if self.board is None or self.selected is None:
            return None
        return next((p for p in self.board["participants"] if p["participant"] == self.selected), None)

    def _show_detail(self) -> None:
        title = self.query_one("#dsmg-detail-title", Static)
        box = self.query_one("#dsmg-detail", Static)
        if self.show_history:
            title.update(t("dsmg.history"))
            box.update(self._history_text())
            return
        title.update(t("dsmg.detail"))
        p = self._participant()
        box.update(self._detail_text(p) if p else Text(""))

    def _detail_text(self, p: BoardParticipant) -> Text:
        out = Text()
        head = p["participant"] + (f" · {t('dsmg.sentinel')}" if p["sentinel"] else "")
        out.append(head, style="bold")
        out.append(" · ")
        if p["version_not_loaded"]:
            out.append(t("dsmg.version_not_loaded", version=p["version_not_loaded"]), style="bold red")
            out.append("\n")
        out.append(
            t(
                "dsmg.doses",
                given=p["doses_given"],
                planned="?" if p["version_not_loaded"] else p["doses_planned"],
                cumulative=", ".join(
                    f"{_fmt_number(c['value'])} {c['unit']}".strip() for c in p["cumulative_dose"]
                ),
            )
        )
        out.append("\n")
        if p["aes_total"]:
            grades = ", ".join(f"G{g}×{n}" for g, n in p["aes_by_grade"].items())
            labels = {
                str(c.code): protocols.tr(c.label, language())
                for c in self.proto.form("ae").fields["causality"].choices
            }
            causality = ", ".join(f"{labels.get(c, c)} {n}" for c, n in p["aes_by_causality"].items())
            out.append(
                t("dsmg.aes", n=p["aes_total"], grades=grades, serious=p["aes_serious"], causality=causality)
            )
        else:
            out.append(t("dsmg.aes_none"))
        out.append("\n")
        for sae in p["saes"]:
            out.append(
                t(
                    "dsmg.sae",
                    term=sae["term"] or "?",
                    onset=sae["onset"] or "?",
                    grade=sae["grade"] if sae["grade"] is not None else "?",
                    due=sae["report_due"] or "?",
                ),
                style="red" if sae["report_overdue"] else "",
            )
            if sae["report_overdue"]:
                out.append(f" {t('dsmg.overdue')}", style="bold red")
            out.append(" · ")
            if sae["awaiting_review"]:
                out.append(t("dsmg.review_awaiting"), style="bold yellow")
            else:
                out.append(t("dsmg.review_done", relatedness=sae["relatedness"]))
            out.append("\n")
        flags = p["vitals_flags"]
        if not flags:
            out.append(t("dsmg.vitals_none"), style="dim")
            out.append("\n")
        for f in flags:
            vitals = self.proto.form(f["form"])  # the declared vital signs' form (`[safety] vital_signs`)
            sign = protocols.tr(vitals.fields[f["sign"]].label, language())
            timepoints = vitals.fields["timepoint"].choices if "timepoint" in vitals.fields else []
            tp = next(
                (protocols.tr(c.label, language()) for c in timepoints if str(c.code) == f["timepoint"]),
                f["timepoint"] or "",
            )
            if f["dose"]:
                tp = f"{tp} #{f['dose']}"
            out.append(
                t(
                    "dsmg.vitals_flag",
                    sign=sign,
                    value=f"{f['value']:g}",
                    unit=f["unit"] or "",
                    low=f"{f['low']:g}",
                    high=f"{f['high']:g}",
                    timepoint=tp,
                    time=_time(f["time"]),
                ),
                style="yellow",
            )
            out.append("\n")
        if not p["decisions"]:
            out.append(t("dsmg.decisions_none"), style="dim")
        for d in reversed(p["decisions"]):
            self._decision_line(out, d, d["signatures"])
        return out

    def _decision_line(self, out: Text, d: Decision, sigs: list[DecisionSignature]) -> None:
        """One decision and its e-signatures (none: unsigned)."""
        out.append(
            t(
                "dsmg.decision_line",
                time=_time(d["time"]),
                decision=self._choice(d["decision"]),
                rationale=d.get("rationale") or "",
            ),
            style="bold red" if d["decision"] == "stop" else "",
        )
        if d.get("change"):
            out.append(" · " + t("dsmg.change", change=d["change"]))
        out.append(" · ")
        if sigs:
            out.append(
                ", ".join(
                    t(
                        "dsmg.signed",
                        name=s["full_name"],
                        meaning=t("meaning." + s["meaning"].replace(" ", "_")),
                    )
                    + ("" if s["valid"] else " ⚠")
                    for s in sigs
                ),
                style="green",
            )
        else:
            out.append(t("dsmg.unsigned"), style="dim")
        out.append("\n")

    def _history_text(self) -> Text:
        out = Text()
        if self.board is None:
            return out
        decisions = self.board["gate"]["decisions"]
        if not decisions and not self.board["hub_decisions"]:
            out.append(t("dsmg.no_decisions"), style="dim")
        by_event = {d["event"]: d for p in self.board["participants"] for d in p["decisions"]}
        for d in reversed(decisions):
            out.append(f"{d['participant']} ", style="bold")
            signed = by_event.get(d["event"])
            self._decision_line(out, d, signed["signatures"] if signed else [])
        for h in self.board["hub_decisions"]:
            out.append(
                t("dsmg.hub_decision", time=_time(h["ts"]), decision=h["decision"], detail=h["detail"]) + "\n"
            )
        return out

    # -- actions -----------------------------------------------------------------------
    def action_reload(self) -> None:
        self.load()

    def action_toggle_history(self) -> None:
        self.show_history = not self.show_history
        self._show_detail()

    def action_decide(self) -> None:
        """Record a DSMG decision about the selected participant (signed)."""
        if self.selected is None:
            self._say(t("dsmg.no_participant"), True)
            return
        self._open_decision(self.selected)

    def _open_decision(
        self, participant: str, initial: dict[str, Any] | None = None, focus: str | None = None
    ) -> None:
        """The decision dialog for `participant` (from a draft: its values, the cursor where it was)."""

        def done(event: Any) -> None:
            if event is not None:
                decision = (event.body.get("data") or {}).get("decision", "")
                self.app.notify(t("dsmg.decided", decision=self._choice(decision), participant=participant))
                self.load()

        self.app.push_screen(
            DecisionDialog(self.ward, participant, self.proto, initial=initial, focus=focus), done
        )

    def action_review_sae(self) -> None:
        """The DSMG's relatedness review of the selected participant's next SAE awaiting it."""
        p = self._participant()
        if p is None:
            self._say(t("dsmg.no_participant"), True)
            return
        waiting = [s for s in p["saes"] if s["awaiting_review"]]
        if not waiting:
            self._say(t("dsmg.no_sae_waiting", participant=p["participant"]), True)
            return
        from wardcrf.workflow import dsmg

        from .form_screen import FormScreen

        declared = self.ward.call(dsmg.sae_review_form)  # the protocol's review form, by its declaration
        if declared is None:
            return
        form, ae_field = declared
        self.app.push_screen(
            FormScreen(self.ward, form, p["participant"], initial={ae_field: waiting[0]["event"]})
        )

    def _say(self, text: str, refusal: bool = False) -> None:
        line = self.query_one("#dsmg-message", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")


class DecisionDialog(UnsavedWork, ModalScreen[Any]):
    """Decision, rationale and (for alter) the change; checked, then signed and saved.

    Dismissed with the saved decision's event, or None (cancelled). A
    refusal or a wrong password keeps every value typed here. What is typed
    is kept as the member's draft like any form's (`UnsavedWork`, key
    ``dsmg_decision`` + ``participant:<id>``): a crash while a rationale is
    being typed loses at most that field; signing ends the draft in the
    decision's own transaction; Esc + y throws it away.
    """

    CSS_PATH = ["dialogs/dialogs.tcss", "dsmg.tcss"]  # noqa: RUF012
    AUTO_FOCUS = "#decision"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "sign", "key.save", priority=True),
        Binding("escape", "back", "key.cancel"),
    ]
    FIELDS = ("decision", "rationale", "change")

    def __init__(
        self,
        ward: Ward,
        participant: str,
        proto: protocols.Protocol,
        *,
        initial: dict[str, Any] | None = None,
        focus: str | None = None,
    ) -> None:
        super().__init__()
        self.ward = ward
        self.participant = participant
        self.form = proto.form("dsmg_decision")
        self.busy = False
        self.initial = {k: str(v) for k, v in (initial or {}).items() if k in self.FIELDS}
        self.restore_focus = focus if focus in self.FIELDS else None

    def compose(self) -> ComposeResult:
        lang = language()
        labels = {
            n: protocols.tr(self.form.fields[n].label, lang) + (" *" if self.form.fields[n].required else "")
            for n in self.FIELDS
        }
        width = label_width(list(labels.values()))
        with Vertical(classes="dialog", id="decision-dialog"):
            yield Static(t("dsmg_decision.title", participant=self.participant), classes="dialog-title")
            with Grid(classes="dialog-grid"):
                yield Label(pad(labels["decision"], width))
                choices = [
                    (protocols.tr(c.label, lang), str(c.code)) for c in self.form.fields["decision"].choices
                ]
                chosen = self.initial.get("decision")
                select = WardSelect(choices, id="decision", prompt=t("form.choose"))
                if chosen in {code for _label, code in choices}:  # a draft's choice the protocol still has
                    select.value = chosen
                yield select
                yield Label(pad(labels["rationale"], width))
                yield WardInput(self.initial.get("rationale", ""), id="rationale")
                yield Label(pad(labels["change"], width))
                yield WardInput(self.initial.get("change", ""), id="change")
            yield Static("", id="decision-problems", classes="refusal")
            yield Static(t("dsmg_decision.hint"), classes="muted")
        yield WardFooter()

    def values(self) -> dict[str, Any]:
        select = self.query_one("#decision", Select)
        raw: dict[str, Any] = {}
        if not select.is_blank():
            raw["decision"] = select.value
        for name in ("rationale", "change"):
            text = self.query_one(f"#{name}", Input).value.strip()
            if text:
                raw[name] = text
        return raw

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        if event.input.id == "change":
            self.action_sign()
        else:
            self.focus_next()

    # -- what `UnsavedWork` asks of a form ------------------------------------------------
    def typed(self) -> dict[str, Any]:
        return self.values()

    def draft_key(self) -> tuple[str, str] | None:
        return "dsmg_decision", f"participant:{self.participant}"

    def focused_field(self) -> str | None:
        focused = self.focused
        if focused is None:
            return None
        for name in self.FIELDS:
            widget = self.query_one(f"#{name}")
            if focused is widget or widget in focused.ancestors:
                return name
        return None

    def on_mount(self) -> None:
        if self.restore_focus:
            focus_now(self.query_one(f"#{self.restore_focus}"))

    def action_sign(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.query_one("#decision-problems", Static).update(t("dsmg_decision.checking"))
        # Keys typed behind the key that signs wait for the check; a refusal or the password comes next,
        # and neither is what they were typed for: dropped then (screens/widgets/typeahead.py, 3).
        hold_keys(self, SAVE_HOLD)
        self.sign_flow(self.values())

    @work(exclusive=True, group="dsmg-decide")
    async def sign_flow(self, raw: dict[str, Any]) -> None:
        from wardcrf.workflow import dsmg, service

        from .dialogs.sign import SignatureDialog

        draft = self.draft_key() if self.keeps_drafts else None
        try:

            def check() -> Any:
                try:
                    self.ward.call(lambda s: s.require("dsmg.decide", what="record DSMG decisions"))
                    return self.ward.call(service.preview, "dsmg_decision", raw, participant=self.participant)
                except Exception as exc:
                    return exc

            checked = await self.run_worker(check, thread=True, group="dsmg-check").wait()
            release_keys(self, SAVE_HOLD, drop=True)
            problems = self.query_one("#decision-problems", Static)
            if isinstance(checked, Exception):
                problems.update(message_of(checked))
                return
            if checked.problems:
                problems.update("\n".join(f"{k}: {v}" for k, v in checked.problems.items()))
                return
            problems.update("")
            choice = next(
                (
                    protocols.tr(c.label, language())
                    for c in self.form.fields["decision"].choices
                    if str(c.code) == raw.get("decision")
                ),
                str(raw.get("decision")),
            )
            event = await self.app.push_screen_wait(
                SignatureDialog(
                    what=f"{protocols.tr(self.form.label, language())} {self.participant}: {choice}",
                    meaning=dsmg.DECISION_MEANING,
                    signer=self.ward.user,
                    sign=lambda _signer, password: self.ward.call(
                        dsmg.decide, self.participant, raw, password=password, draft=draft
                    ),
                )
            )
            if event is None:
                problems.update(t("dsmg_decision.not_saved"))
                return
            self.dismiss(event)
        finally:
            self.busy = False
            release_keys(self, SAVE_HOLD, drop=True)  # ended any other way: nothing typed lands here
