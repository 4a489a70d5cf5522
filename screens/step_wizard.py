"""The step-wizard machinery both bedside wizards share (issue 16): one owner.

`administration_wizard.AdministrationWizard` (a regimen's next administration,
every version the engine runs) is a `StepWizard`; format 1's own dose wizard is
gone (docs/engine.md, "Every format-1 version on the engine"). The base owns
what a bedside wizard needs:
the keys (`ctrl+n` / `ctrl+b` between steps, `ctrl+t` stamps now, `ctrl+s`
saves, Esc asks before discarding, `unsaved.py`), the frame (status bar, the
step indicator, the head text, one `ContentSwitcher` page per step, the
message line), the kit scan row, moving between steps (a step's hard
problems keep it; the first marked field takes the cursor), the review step
(the dry run in a worker, the keys typed meanwhile waiting for its verdict),
marking the fields a refusal names (and going to their step), the save (the
reason for soft values, the service with the draft closed in its transaction)
and the draft's step and field. A subclass says what differs: its steps and
their pages, the head and review texts, which part a field group belongs to,
the gates of the kit step, the kit check, the dry run and the service saving.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ContentSwitcher, Input, Label, SelectionList, Static

from wardcrf import scanner
from wardcrf.clock import zone
from wardcrf.errors import WardError
from wardcrf.workflow import service as form_service

from .errors import message_of
from .i18n import pad, t
from .keys import LANGUAGE
from .unsaved import UnsavedWork, closing_draft
from .ward import Ward
from .widgets.fields import FieldGroup, is_soft
from .widgets.footer import WardFooter
from .widgets.scan_field import ScanField
from .widgets.status import StatusBar
from .widgets.typeahead import SAVE_HOLD, focus_now, hold_keys, release_keys

REVIEW_HOLD = "wizard-review"
"""The keys typed while the review's dry run runs wait under this name."""


class StepWizard(UnsavedWork):
    """A guided flow of steps over shared `FieldGroup`s, ending in a review and one save.

    Each wizard defines the abstract hooks below: its steps, its groups, its kit-step gate, the dry run
    and the service that saves (`AdministrationWizard`).
    """

    CSS_PATH = "step_wizard.tcss"
    AUTO_FOCUS = "#kit-scan"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next_step", "dose.key_next", priority=True),
        Binding("ctrl+b", "previous_step", "dose.key_previous", priority=True),
        Binding("ctrl+t", "stamp_now", "dose.key_now", priority=True),
        Binding("ctrl+s", "save", "dose.key_save", priority=True),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
    ]
    HIGHLIGHT_FIRST_CHOICE: ClassVar[bool] = False
    """A step's choice list taking the cursor highlights its first choice (Enter ticks it at once)."""

    @dataclass
    class KitChecked(Message):
        """The scanned kit checked for this participant (`raw`: as scanned), or the one line refusing it."""

        raw: str
        kit: Any
        error: str | None

    @dataclass
    class Reviewed(Message):
        """The dry run of the whole visit (nothing saved), or the refusal naming its part."""

        visit: Any
        error: WardError | None

    @dataclass
    class KeysFree(Message):
        """The decision the keys typed ahead waited for is shown: let them run (`reason`: the hold)."""

        reason: str

    def __init__(self, ward: Ward, participant: str) -> None:
        super().__init__()
        self.ward = ward
        self.participant = participant
        self.proto = ward.call(form_service.protocol_for, participant)  # their version's forms
        self.step = 0
        self.values: dict[str, dict[str, Any]] = {}
        self.problems: dict[str, dict[str, str]] = {}
        self.kit_raw = ""
        self.kit: Any = None  # the last KitCheck for kit_raw
        self.kit_error: str | None = None
        self.preview: Any = None  # the last dry run's answer
        self.preview_error: str | None = None
        self.checking_review = False
        self.saving = False
        self.saved: Any = None
        self.message = ""
        self.message_refusal = False
        self.scan_gap_s = ward.call(scanner.profile).gap_s
        """This laptop's scanner profile: the quiet gap that ends a scan (None: codes end on Enter)."""
        self._checks = 0  # each kit check holds the keys typed after it under its own name
        self._resume: tuple[int, str | None] | None = None
        """A draft's step and field, gone back to once its kit is checked again."""
        self._next_when_checked = False
        self._move_when_checked = True
        """The kit check running was an Enter's (or a complete scan's): the focus follows its answer."""

    # -- what a wizard says about itself ---------------------------------------------------
    @abstractmethod
    def step_key(self, i: int) -> str:
        """The key of step `i` (`kit` first, `review` last)."""

    @abstractmethod
    def step_tab(self, i: int) -> str:
        """The step indicator's label of step `i`."""

    @abstractmethod
    def step_count(self) -> int:
        """How many steps the wizard has, the kit step and the review included."""

    @abstractmethod
    def wizard_title(self) -> str:
        """The screen's title (the status bar's words)."""

    @abstractmethod
    def head_text(self) -> str:
        """What is given and when, under the step indicator."""

    @abstractmethod
    def compose_steps(self) -> ComposeResult:
        """One `VerticalScroll(id=f"step-{i}", classes="step")` per step."""

    @abstractmethod
    def group_ids(self) -> list[str]:
        """The ids of the field groups on every step, in the order they are shown."""

    @abstractmethod
    def group_part(self, gid: str) -> str:
        """The record (the service's part) a field group's values go to."""

    @abstractmethod
    def group_step(self, gid: str) -> int:
        """The step a field group is on."""

    @abstractmethod
    def gate_refusal(self) -> str | None:
        """Why the kit step may not be left whatever is typed (the message line's words), or None."""

    @abstractmethod
    def check_now(self) -> None:
        """ctrl+n on a scanned kit not checked yet: check it, the keys typed behind waiting."""

    def kit_step_ready(self) -> bool:
        """The kit step's own checks beyond the kit (said and focused when not)."""
        return True

    def entering(self, key: str) -> None:
        """A step is reached (before its texts and focus)."""

    @abstractmethod
    def dry_run(self, parts: dict[str, Any], soft_parts: set[str]) -> Any:
        """The whole visit run through the rules without saving (in a worker thread)."""

    @abstractmethod
    def save_call(self, s: Any, parts: dict[str, Any], reasons: dict[str, str]) -> Any:
        """The service saving every record (in the draft-closing transaction)."""

    @abstractmethod
    async def after_save(self, result: Any) -> None:
        """Saved: say so and close."""

    def asks_after_save(self, result: Any) -> bool:
        """Whether `after_save` asks a question before closing (the keys typed ahead are then dropped)."""
        return False

    @abstractmethod
    def parts(self) -> dict[str, Any]:
        """The records' typed values as the service takes them."""

    def remember(self) -> None:
        """Collect everything typed into `values` (before a step move, a recompose: language switch)."""
        if not self.is_mounted:
            return
        for g in self.groups():
            g.remember()
        self.kit_raw = self.query_one("#kit-scan", Input).value

    @abstractmethod
    def _review_text(self) -> str:
        """The review step's account of the visit as it would be saved (the last dry run's answer)."""

    @abstractmethod
    def _soft_items(self) -> list[str]:
        """The values outside their soft ranges, in words, for the reason the save asks."""

    def _kit_text(self) -> str:
        if self.kit_error:
            return "[b red]" + escape(self.kit_error) + "[/]"
        if not self.kit_raw.strip():
            return t("dose.kit_waiting")
        if self.kit is None:
            return t("dose.kit_checking", kit=escape(self.kit_raw.strip()))
        if self.kit.ok:
            return "[green]" + escape(t("dose.kit_ok", kit=self.kit.kit, lot=self.kit.lot or "—")) + "[/]"
        return "[b red]" + escape(t("dose.kit_refused", reason=self.kit.reason)) + "[/]"

    def _review_verdict(self, ready: str) -> list[str]:
        """The review's closing lines: the soft values a reason is asked for, `ready` once the dry run passed."""
        lines = []
        soft = self._soft_items()
        if soft:
            lines.append("[yellow]" + escape(t("dose.soft_values", items="; ".join(soft))) + "[/]")
        if self.preview is not None and not self.checking_review and not self.preview_error:
            lines.append("[b green]" + escape(t(ready)) + "[/]")
        lines.append("")
        return lines

    def _review_kit(self) -> str:
        """The kit as checked (else as scanned)."""
        return self.kit.kit if self.kit is not None else self.kit_raw.strip()

    # -- layout ------------------------------------------------------------------------------
    def _group(
        self,
        form: str,
        names: list[str],
        values: str,
        gid: str,
        prefix: str,
        label_cells: int | None = None,
    ) -> FieldGroup:
        return FieldGroup(
            self.proto.form(form),
            label_cells=label_cells,
            zone=self.ward.session.ctx.zone,
            user=self.ward.user,
            values=self.values[values],
            problems=self.problems[gid],
            names=names,
            prefix=prefix,
            id=gid,
        )

    def _kit_row(self, width: int) -> ComposeResult:
        """The scan field under its label, and the kit's answer beside it."""
        with Horizontal(classes="field-row", id="row-kit"):
            yield Label(pad(t("dose.kit_label") + " *", width), classes="field-label")
            yield ScanField(
                value=self.kit_raw,
                placeholder=t("dose.kit_hint"),
                id="kit-scan",
                classes="field-input",
                compact=True,
                gap_s=self.scan_gap_s,
            )
        yield Static(self._kit_text(), id="kit-status")

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, f"{self.wizard_title()} · {self.participant}")
        yield Static(self._steps_text(), id="wizard-steps")
        yield Static(self.head_text(), id="wizard-dose")
        with ContentSwitcher(initial=f"step-{self.step}", id="wizard-body"):
            yield from self.compose_steps()
        yield Static(
            self.message, id="wizard-message", classes="refusal" if self.message_refusal else "muted"
        )
        yield WardFooter()

    def relabelled(self) -> None:
        """After a language switch recomposed the screen: back to the same step and field."""
        self._focus_step()

    # -- texts -------------------------------------------------------------------------------
    def _steps_text(self) -> str:
        names = []
        for i in range(self.step_count()):
            label = escape(self.step_tab(i))
            names.append(f"[reverse]{label}[/]" if i == self.step else label)
        head = t("dose.step", n=self.step + 1, total=self.step_count())
        return f"[b]{head}[/b] · " + " › ".join(names)

    def _local(self, iso: str, fmt: str = "%m-%d %H:%M") -> str:
        return datetime.fromisoformat(iso).astimezone(zone(self.ward.session.ctx.zone)).strftime(fmt)

    def _now_text(self) -> str:
        return self.ward.local_now().strftime("%Y-%m-%d %H:%M")

    def _refresh_texts(self) -> None:
        self.query_one("#wizard-steps", Static).update(self._steps_text())
        self.query_one("#wizard-dose", Static).update(self.head_text())
        self.query_one("#kit-status", Static).update(self._kit_text())
        self.query_one("#review", Static).update(self._review_text())

    def _say(self, text: str, *, refusal: bool = False) -> None:
        self.message, self.message_refusal = text, refusal
        line = self.query_one("#wizard-message", Static)
        line.update(escape(text))
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")

    # -- values and drafts -------------------------------------------------------------------
    def groups(self) -> list[FieldGroup]:
        return list(self.query(FieldGroup).results(FieldGroup))

    def draft_fields(self) -> dict[str, Any]:
        return {**self.typed(), "wizard.step": self.step}

    def focused_field(self) -> str | None:
        return self.focused.id if self.focused is not None and self.focused.id else None

    def resume_at(self, field: str | None) -> None:
        """The field the draft's cursor was in (focused when its step is reached)."""
        if self._resume is not None:
            self._resume = (self._resume[0], field)

    @on(KeysFree)
    def _on_keys_free(self, message: KeysFree) -> None:
        release_keys(self, message.reason)

    # -- steps -------------------------------------------------------------------------------
    def _stamped_ids(self) -> set[str]:
        """The time inputs stamped with the time now when their step is left blank (skipped by the focus)."""
        return set()

    def _focus_step(self) -> None:
        """The step's first field still to fill."""
        body = self.query_one(f"#step-{self.step}")
        fields = [w for w in body.query(".field-input") if w.focusable]
        stamped = self._stamped_ids()
        for widget in fields:
            if widget.id in stamped:
                continue  # stamped with the time now when the step is left
            if (
                self.HIGHLIGHT_FIRST_CHOICE
                and isinstance(widget, SelectionList)
                and widget.highlighted is None
                and widget.option_count
            ):
                widget.highlighted = 0  # Enter (or space) ticks the first choice at once
            if not isinstance(widget, Input) or not widget.value:
                focus_now(widget)
                return
        focus_now(fields[0] if fields else body)

    def _go(self, step: int) -> None:
        self.remember()
        self.step = step
        self.query_one("#wizard-body", ContentSwitcher).current = f"step-{step}"
        key = self.step_key(step)
        self.entering(key)
        self._refresh_texts()
        # Now, in the key's handler: the keys typed behind ctrl+n belong to the new step.
        self._focus_step()
        self.refresh_bindings()
        if key == "review":
            self.run_review()

    @abstractmethod
    def _step_problems(self) -> dict[str, str]:
        """The current step's problems (field id -> why), checked as the step is left."""

    def action_next_step(self) -> None:
        """Go on (ctrl+n) once this step's fields pass their checks; nothing typed is lost either way."""
        if self.saving or self.step >= self.step_count() - 1:
            return
        self.remember()
        if self.step_key(self.step) == "kit":
            refusal = self.gate_refusal()
            if refusal:
                self._say(refusal, refusal=True)
                return
            if self.kit is None and not self.kit_error and self.kit_raw.strip():
                # Checked now; the keys typed behind ctrl+n wait for the answer and the step.
                self._say(t("dose.kit_pending"))
                self._next_when_checked = True
                self.check_now()
                return
            if self.kit is None or not self.kit.ok:
                self._say(t("dose.kit_needed"), refusal=True)
                focus_now(self.query_one("#kit-scan", Input))
                return
            if not self.kit_step_ready():
                return
        problems = self._step_problems()
        if problems:
            self._say(t("dose.fix_first"), refusal=True)
            self._focus_problem(problems)
            return
        self._say("")
        self._go(self.step + 1)

    def _focus_problem(self, problems: dict[str, str]) -> None:
        """The first marked field of this step takes the focus (where the correction is typed)."""
        for group in self.query_one(f"#step-{self.step}").query(FieldGroup):
            for f in group.fields:
                if f.name in problems:
                    group.focus_field(f.name)
                    return

    def action_previous_step(self) -> None:
        """Back one step (ctrl+b), keeping everything."""
        if self.saving or self.step == 0:
            return
        self._say("")
        self._go(self.step - 1)

    def _step_times(self) -> list[tuple[FieldGroup, str]]:
        """The current step's time fields (group, field name), in screen order."""
        body = self.query_one(f"#step-{self.step}")
        return [
            (g, f.name)
            for g in body.query(FieldGroup).results(FieldGroup)
            for f in g.fields
            if f.field is not None and f.field.type == "datetime"
        ]

    def action_stamp_now(self) -> None:
        """Put the time now into a time field of this step (ctrl+t); the focus never moves.

        The focused time field, else the step's only time field wherever the focus is (a vitals
        step: its time). With several and the focus in none, refused: nothing stamped, nothing
        moved, so the keys typed behind ctrl+t land where the focus already is."""
        focused = self.focused.id if self.focused is not None else None
        times = self._step_times()
        for g, name in times:
            if g.name_of(focused) == name:
                g.set_value(name, self._now_text())
                return
        if len(times) == 1:
            g, name = times[0]
            g.set_value(name, self._now_text())
            return
        self._say(t("dose.not_a_time"), refusal=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_step":
            return self.step < self.step_count() - 1
        if action == "previous_step":
            return self.step > 0
        return True

    # -- review (dry run) --------------------------------------------------------------------
    def run_review(self) -> None:
        """The dry run; keys typed meanwhile (ctrl+s) wait for its verdict."""
        hold_keys(self, REVIEW_HOLD)
        self.checking_review, self.preview, self.preview_error = True, None, None
        self.query_one("#review", Static).update(self._review_text())
        # What is on screen now is what is reviewed: read here, on the UI thread.
        self._review_worker(self.parts(), self._soft_parts())

    @work(thread=True, exclusive=True, group="wizard-review")
    def _review_worker(self, parts: dict[str, Any], soft_parts: set[str]) -> None:
        try:
            try:
                got = self.dry_run(parts, soft_parts)
                error = None
            except WardError as exc:
                got, error = None, exc
            self.post_message(self.Reviewed(got, error))
        finally:  # handled after the verdict, never before
            self.post_message(self.KeysFree(REVIEW_HOLD))

    @on(Reviewed)
    def _on_reviewed(self, message: Reviewed) -> None:
        self.checking_review = False
        self.preview = message.visit
        self.preview_error = message_of(message.error) if message.error else None
        if message.error is not None:
            self._mark_refusal(message.error, go=False)
        if self.is_mounted:
            self.query_one("#review", Static).update(self._review_text())

    def _soft_parts(self) -> set[str]:
        return {
            self.group_part(g)
            for g, probs in self.problems.items()
            if any(is_soft(p) for p in probs.values())
        }

    def _mark_refusal(self, exc: WardError, *, go: bool) -> None:
        """Mark the fields a refused part names; with `go`, move to the first such step."""
        part = getattr(exc, "part", None)
        problems: dict[str, str] = getattr(exc, "problems", {}) or {}
        if part is None or not problems:
            return
        first = None
        for gid in self.group_ids():
            if self.group_part(gid) != part:
                continue
            group = self.query_one(f"#{gid}", FieldGroup)
            hit = {k: v for k, v in problems.items() if any(f.name == k for f in group.fields)}
            for name, why in hit.items():
                group.mark(name, why)
            if hit and first is None:
                first = self.group_step(gid)
        if go and first is not None:
            self._go(first)

    # -- save --------------------------------------------------------------------------------
    def action_save(self) -> None:
        """ctrl+s: on the review step, save; before it, go to the review first."""
        if self.saving or self.saved is not None:
            return
        if self.step_key(self.step) != "review":
            while self.step_key(self.step) != "review":
                before = self.step
                self.action_next_step()
                if self.step == before:
                    return  # this step needs correcting first
            self.refresh_bindings()
            return
        if self.checking_review:
            return
        self.saving = True
        # Held from this key on (the worker starts after the keys behind it would have run).
        hold_keys(self, SAVE_HOLD)
        self.save_flow()

    @work(exclusive=True, group="form-save")
    async def save_flow(self) -> None:
        """Keys typed behind ctrl+s wait for the verdict (screens/widgets/typeahead.py, 3)."""
        try:
            parts = self.parts()
            reasons: dict[str, str] = {}
            soft = self._soft_items()
            if soft:
                from .dialogs.reason import ReasonDialog

                release_keys(self, SAVE_HOLD)  # the reason dialog comes next: typed ahead, they are its
                reason = await self.app.push_screen_wait(
                    ReasonDialog(title=t("form.soft_title"), changes=soft)
                )
                if reason is None:
                    self._say(t("form.not_saved_cancelled"))
                    return
                hold_keys(self, SAVE_HOLD)
                reasons = dict.fromkeys(self._soft_parts(), reason)
            self._say(t("dose.saving"))
            result = await self._record(parts, reasons)
            if isinstance(result, WardError):
                release_keys(self, SAVE_HOLD, drop=True)
                self._say(t("dose.refused", reason=message_of(result)), refusal=True)
                self.preview, self.preview_error = None, message_of(result)
                self.query_one("#review", Static).update(self._review_text())
                self._mark_refusal(result, go=True)
                return
            self.saved = result
            # Saved: what was typed behind ctrl+s is for the screen underneath, once it is back; a
            # question the save asks is never answered by keys typed before it was shown.
            release_keys(self, SAVE_HOLD, drop=self.asks_after_save(result))
            await self.after_save(result)
        finally:
            self.saving = False
            release_keys(self, SAVE_HOLD, drop=True)  # ended any other way: nothing typed lands here

    async def _record(self, parts: dict[str, Any], reasons: dict[str, str]) -> Any:
        key = self.draft_key() if self.keeps_drafts else None

        def call() -> Any:
            try:
                return self.ward.call(
                    lambda s: closing_draft(s, key, lambda: self.save_call(s, parts, reasons))
                )
            except WardError as exc:
                return exc

        worker = self.run_worker(call, thread=True, group="wizard-submit")
        return await worker.wait()
