"""The dose at the bedside as one guided flow: kit, vitals, inhalation, vitals, events, review.

Six steps, the indicator always on top, `ctrl+n` / `ctrl+b` between steps,
Tab between fields:

1. Kit — the scan field takes a barcode scanner (it types like a very fast
   keyboard, may end with Enter, may add control characters, which the
   domain strips; a scanner that sends no Enter ends a code with the quiet
   gap of this laptop's scanner profile, `wardcrf.scanner`). The custody
   check runs at once (`dose_visit.check_kit`:
   kit known, not quarantined, discarded or used, chain complete, thawed at
   the bedside, temperatures covered), and says OK or the domain's reason
   beside the field. The product fields (lot — filled from the kit's lot —,
   the dose, volume, diluent, nebulizer: `product_fields`, the dose form's
   record roles) follow.
2. Pre-dose vitals, 4. post-dose vitals, 3. start/end of the inhalation and
   5. the protocol's prespecified inhalation-event checklist are the
   protocol's own fields (`FieldGroup`, the same rows and inline checks as
   every generated form). A vitals step opens on its time, the first field
   on screen, as the administration wizard's does (`ctrl+t Tab 37.2 Tab 90`
   puts each value in its own field); `ctrl+t` anywhere on the step stamps
   that time without moving the focus; a blank vitals time is stamped when
   the step is left, so what is saved is what was shown.
6. Review: the whole visit is run through the rules without saving
   (`record_dose_visit(dry_run=True)`), and the deviations it creates (an
   early or late dose, doses still missing) are explained in plain words
   before `ctrl+s` saves.

Saving calls `dose_visit.record_dose_visit` in a worker: the four records
(pre-dose vitals, dose, post-dose vitals, post-dose check) in that order in
ONE transaction, so a refusal of any of them saves none (see that module).
A refusal is shown as the domain words it, the fields it names are marked
(the wizard goes to their step) and everything typed stays: values live in
`self.values`, which the field groups share, so a failed check, the idle
lock or a language switch (the screen recomposes from them) loses nothing.
Checked events are followed by an offer to open the AE form for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, SelectionList, Static

from wardcrf import amounts
from wardcrf import protocol as protocols
from wardcrf.clock import zone
from wardcrf.errors import WardError
from wardcrf.workflow import declared

from .errors import message_of
from .i18n import domain_word, label_width, language, t
from .step_wizard import StepWizard
from .unsaved import without_blanks
from .ward import Ward
from .widgets.fields import MAX_LABEL, FieldGroup, is_soft
from .widgets.footer import WardFooter
from .widgets.scan_field import ScanField
from .widgets.typeahead import focus_now, hold_keys

if TYPE_CHECKING:
    from wardcrf.workflow.dose_visit import DayCheck, DoseVisit, KitCheck
    from wardcrf.workflow.status import ParticipantSummary

STEPS = ("kit", "pre", "times", "post", "events", "review")
STEP_TITLES = {
    "kit": "dose.step_kit",
    "pre": "dose.step_pre",
    "times": "dose.step_times",
    "post": "dose.step_post",
    "events": "dose.step_events",
    "review": "dose.step_review",
}
STEP_TABS = {
    "kit": "dose.tab_kit",
    "pre": "dose.tab_pre",
    "times": "dose.tab_times",
    "post": "dose.tab_post",
    "events": "dose.tab_events",
    "review": "dose.tab_review",
}
SCAN_QUIET_S = 0.25
"""A scanner types a code in a few ms; check once the keys stop (or at once on Enter).

Under the scanner profile ``enter`` (the default) that check only shows the answer. Under
``gap`` the profile's own gap ends a scan instead (`ScanField`): a complete scan is checked
like an Enter, and what a person typed and paused on is checked to show the answer only."""

PRODUCT_ROLES = ("lot", "dose", "volume")
"""The product fields by their record role (format 1's dose form as the engine reads it: `declared`)."""
FORMAT1_PRODUCT_EXTRAS = ("diluent", "device")  # format 1's dose form fields that are no record role


def product_fields(proto: protocols.Protocol) -> list[str]:
    """The dose form's product fields: lot, the dose, volume (by role), diluent and nebulizer."""
    roles = declared.administration_forms(proto).get("dose", {})
    return [roles[r] for r in PRODUCT_ROLES if r in roles] + list(FORMAT1_PRODUCT_EXTRAS)


TIME_FIELDS = ["start", "end", "given_by", "interruptions", "interruption_note"]
FIXED_VITALS = ("timepoint", "dose")  # filled in by the domain for this visit
PART_OF_GROUP = {
    "group-product": "dose",
    "group-pre": "pre_vitals",
    "group-times": "dose",
    "group-post": "post_vitals",
    "group-events": "post_dose_check",
}
FORM_OF_GROUP = {
    "group-product": "dose",
    "group-pre": "vitals",
    "group-times": "dose",
    "group-post": "vitals",
    "group-events": "post_dose_check",
}
STEP_OF_GROUP = {"group-product": 0, "group-pre": 1, "group-times": 2, "group-post": 3, "group-events": 4}


def protocol_constants(proto: protocols.Protocol) -> dict[str, str]:
    """The dose fields the protocol fixes (the dose per administration, volume), as the fields show them."""
    out: dict[str, str] = {}
    schedule = proto.schedule
    fields = proto.form("dose").fields
    dose_field = declared.administration_forms(proto).get("dose", {}).get("dose")
    fixed = declared.fixed_dose(proto)
    if fixed and dose_field in fields:
        out[str(dose_field)] = amounts.exact(fixed)  # 2.0e8, as the other wizard fills it
    if schedule.volume_ml and "volume" in fields:
        out["volume"] = f"{schedule.volume_ml:g}"
    return out


def _duration(minutes: int) -> str:
    h, m = divmod(max(0, minutes), 60)
    return t("dose.hours_minutes", h=h, m=m) if h else t("dose.minutes", m=m)


class DoseWizard(StepWizard):
    """Give one participant their next dose, step by step."""

    HIGHLIGHT_FIRST_CHOICE = True

    @dataclass
    class DayChecked(Message):
        """Today's rules for this participant's dose, or the one line refusing the day."""

        day: DayCheck | None
        error: str | None

    def __init__(self, ward: Ward, participant: str, *, draft: dict[str, Any] | None = None) -> None:
        super().__init__(ward, participant)
        from wardcrf import workflow

        self.product_fields = product_fields(self.proto)
        self.summary: ParticipantSummary = ward.call(workflow.show, participant)
        self.values.update({"dose": {}, "pre": {}, "post": {}, "check": {}})
        # Drop-downs show the protocol's default (diluent, nebulizer): what will be saved is on screen.
        for name, f in self.proto.form("dose").fields.items():
            if f.type == "choice" and f.default is not None and not f.computed:
                self.values["dose"][name] = f.default
        # The protocol's dose and volume are constants of the trial: shown filled in, saved as shown.
        for name, constant in protocol_constants(self.proto).items():
            self.values["dose"].setdefault(name, constant)
        self.problems.update({g: {} for g in PART_OF_GROUP})
        self._scan_timer: Timer | None = None
        self.day: Any = None  # the DayCheck of today's rules (None: not answered yet)
        self.day_error: str | None = None
        self._move_when_checked = False
        if draft:
            self._restore(draft)

    # -- structure -------------------------------------------------------------------
    def step_key(self, i: int) -> str:
        return STEPS[i]

    def step_tab(self, i: int) -> str:
        return t(STEP_TABS[STEPS[i]])

    def step_count(self) -> int:
        return len(STEPS)

    def wizard_title(self) -> str:
        return t("dose.title")

    def head_text(self) -> str:
        return self._dose_text()

    def group_ids(self) -> list[str]:
        return list(PART_OF_GROUP)

    def group_part(self, gid: str) -> str:
        return PART_OF_GROUP[gid]

    def group_step(self, gid: str) -> int:
        return STEP_OF_GROUP[gid]

    # -- layout ----------------------------------------------------------------------
    def _product_width(self) -> int:
        """One label column for the scan field and the product fields under it."""
        f = self.proto.form("dose").fields
        labels = [t("dose.kit_label") + " *"]
        labels += [
            protocols.tr(f[n].label, language()) + (" *" if f[n].required else "")
            for n in self.product_fields
        ]
        return min(MAX_LABEL, label_width(labels))

    def compose_steps(self) -> ComposeResult:
        vitals = [n for n in self.proto.form("vitals").fields if n not in FIXED_VITALS]
        with VerticalScroll(id="step-0", classes="step"):
            yield Static(t("dose.scan_help"), classes="muted")
            yield from self._kit_row(self._product_width())
            yield Static(t("dose.product_help"), classes="muted step-note")
            yield self._group(
                "dose",
                self.product_fields,
                "dose",
                "group-product",
                "dose-",
                label_cells=self._product_width(),
            )
        with VerticalScroll(id="step-1", classes="step"):
            yield Static(t("dose.pre_help"), classes="muted")
            yield self._group("vitals", vitals, "pre", "group-pre", "pre-")
        with VerticalScroll(id="step-2", classes="step"):
            yield Static(t("dose.times_help"), classes="muted")
            yield self._group("dose", TIME_FIELDS, "dose", "group-times", "dose-")
        with VerticalScroll(id="step-3", classes="step"):
            yield Static(t("dose.post_help"), classes="muted")
            yield self._group("vitals", vitals, "post", "group-post", "post-")
        with VerticalScroll(id="step-4", classes="step"):
            yield Static(t("dose.events_help"), classes="muted")
            yield self._group("post_dose_check", ["events"], "check", "group-events", "check-")
            yield Static(self._ae_text(), id="ae-note")
        with VerticalScroll(id="step-5", classes="step"):
            yield Static(self._review_text(), id="review")

    def on_mount(self) -> None:
        self._focus_step()
        # Today's rules first, in the domain's words: keys typed meanwhile wait for the verdict.
        hold_keys(self, "dose-day")
        self.check_day()
        if self._resume is not None and self.kit_raw.strip():
            self._check_scanned(entered=True)  # a reopened draft: its kit checked again, now

    @work(thread=True, exclusive=True, group="dose-day")
    def check_day(self) -> None:
        from wardcrf.workflow import dose_visit

        try:
            try:
                got: DayCheck | None = self.ward.call(dose_visit.check_day, self.participant)
                error = None
            except WardError as exc:
                got, error = None, message_of(exc)
            self.post_message(self.DayChecked(got, error))
        finally:  # handled after the verdict (one queue, in order), never before
            self.post_message(self.KeysFree("dose-day"))

    @on(DayChecked)
    def _on_day_checked(self, message: DayChecked) -> None:
        self._day_checked(message.day, message.error)

    def _day_checked(self, got: Any, error: str | None) -> None:
        self.day, self.day_error = got, error
        if self.is_mounted:
            self.query_one("#wizard-dose", Static).update(self._dose_text())

    def _day_refusal(self) -> str | None:
        """Why no dose can be given now (None: today's rules allow it, or not known yet)."""
        if self.day_error:
            return self.day_error
        if self.day is not None and not self.day.ok:
            return str(self.day.reason)
        return None

    # -- texts -----------------------------------------------------------------------
    def _dose_text(self) -> str:
        text = self._next_dose_text()
        refusal = self._day_refusal()
        if refusal:
            return text + "\n[b red]" + escape(t("dose.day_refused", reason=refusal)) + "[/]"
        day = self.day
        if day is None:
            return text + "\n" + t("dose.day_checking")
        if STEPS[self.step] == "review":
            return text  # the review explains the window in full
        if day.window == "late":
            late = _duration(day.minutes_outside)
            return text + "\n[b yellow]" + escape(t("dose.day_late", n=day.dose_number, late=late)) + "[/]"
        if day.window == "early":
            early = _duration(day.minutes_outside)
            return text + "\n[b yellow]" + escape(t("dose.day_early", n=day.dose_number, early=early)) + "[/]"
        return text

    def _next_dose_text(self) -> str:
        nd = self.summary.get("next_dose")
        if nd is None:
            return t("dose.no_next_dose", status=domain_word("status", self.summary["status"]))
        if nd.get("hold"):
            return "[b red]" + escape(t("dose.held", n=nd["dose"], why=nd["hold"])) + "[/]"
        return t(
            "dose.next_dose",
            n=nd["dose"],
            planned=self.summary["doses_planned"],
            due=self._local(nd["due"]),
            start=self._local(nd["window"][0], "%H:%M"),
            end=self._local(nd["window"][1], "%H:%M"),
            state=domain_word("state", nd["state"]),
        )

    def _event_labels(self, codes: list[Any]) -> list[str]:
        f = self.proto.form("post_dose_check").fields["events"]
        out = []
        for code in codes:
            c = f.choice(code)
            out.append(protocols.tr(c.label, language()) if c else str(code))
        return out

    def _ae_text(self) -> str:
        events = [e for e in self.values["check"].get("events") or [] if str(e) != "none"]
        if not events:
            return ""
        return (
            "[b yellow]" + escape(t("dose.ae_expected", events=", ".join(self._event_labels(events)))) + "[/]"
        )

    def _field_label(self, form: str, name: str) -> str:
        f = self.proto.form(form).fields.get(name)
        return protocols.tr(f.label, language()) if f else name

    def _values_line(self, form: str, values: dict[str, Any], names: list[str]) -> str:
        parts = []
        for name in names:
            v = values.get(name)
            if v in (None, "", []):
                continue
            f = self.proto.form(form).fields[name]
            shown = v
            if f.type == "choice":
                codes = v if isinstance(v, list) else [v]
                shown = ", ".join(
                    protocols.tr(c.label, language()) if (c := f.choice(x)) else str(x) for x in codes
                )
            parts.append(f"{protocols.tr(f.label, language())} {shown}{(' ' + f.unit) if f.unit else ''}")
        return escape(" · ".join(parts))

    def _review_text(self) -> str:
        """Deviations and the verdict first (what must be read before saving), then what is saved."""
        if self.step != len(STEPS) - 1:
            return ""
        nd = self.summary.get("next_dose")
        lines = [
            f"[b]{escape(t('dose.review_title', n=nd['dose'] if nd else '?', pid=self.participant))}[/b]"
        ]
        if self.checking_review:
            lines.append(t("dose.review_checking"))
        elif self.preview_error:
            lines.append("[b red]" + escape(t("dose.not_ready", reason=self.preview_error)) + "[/]")
        elif self.preview is not None:
            lines += self._deviation_lines(self.preview)
            if self.preview.ae_expected:
                events = ", ".join(self._event_labels(self.preview.ae_expected))
                lines.append("[b yellow]" + escape(t("dose.ae_expected", events=events)) + "[/]")
        lines += self._review_verdict("dose.ready")
        kit = self._review_kit()
        vitals = [n for n in self.proto.form("vitals").fields if n not in FIXED_VITALS]
        rows = [
            (
                t("dose.review_kit"),
                escape(kit) + " · " + self._values_line("dose", self.values["dose"], self.product_fields),
            ),
            (t("dose.step_pre"), self._values_line("vitals", self.values["pre"], vitals)),
            (t("dose.review_inhalation"), self._values_line("dose", self.values["dose"], TIME_FIELDS)),
            (t("dose.step_post"), self._values_line("vitals", self.values["post"], vitals)),
            (t("dose.review_events"), self._values_line("post_dose_check", self.values["check"], ["events"])),
        ]
        lines += [f"[b]{escape(head)}:[/b] {text}" for head, text in rows]
        return "\n".join(lines)

    def _deviation_lines(self, visit: Any) -> list[str]:
        nd = self.summary.get("next_dose")
        timing = [d for d in visit.deviations if d.get("kind") in ("early dose", "late dose")]
        other = [d for d in visit.deviations if d not in timing]
        lines = []
        if timing or other:
            lines.append("[b]" + t("dose.review_deviations") + "[/b]")
        else:
            window = nd["window"] if nd else [visit.due, visit.due]
            lines.append(
                "[green]"
                + escape(
                    t(
                        "dose.review_no_deviation",
                        n=visit.dose_number,
                        start=self._local(window[0], "%H:%M"),
                        end=self._local(window[1], "%H:%M"),
                    )
                )
                + "[/]"
            )
        fmt = "%Y-%m-%d %H:%M"
        for d in timing:
            due = datetime.fromisoformat(d["due"])
            win = timedelta(minutes=int(d["window_minutes"]))
            if d["kind"] == "late dose":
                text = t(
                    "dose.deviation_late",
                    n=d["dose"],
                    due=self._local(d["due"], fmt),
                    end=self._local((due + win).isoformat(), "%H:%M"),
                    given=self._local(d["given"], fmt),
                    late=_duration(int(d["minutes_outside"])),
                )
            else:
                text = t(
                    "dose.deviation_early",
                    n=d["dose"],
                    due=self._local(d["due"], fmt),
                    start=self._local((due - win).isoformat(), "%H:%M"),
                    given=self._local(d["given"], fmt),
                    early=_duration(int(d["minutes_outside"])),
                )
            lines.append("[b yellow]⚠ " + escape(text) + "[/]")
        for d in other:
            if d.get("kind") == "missing dose":
                text = t("dose.deviation_missing", n=d["dose"], due=self._local(d["due"], fmt))
            else:
                text = t("dose.deviation_other", kind=d.get("kind", ""), detail=d.get("detail", ""))
            lines.append("[yellow]⚠ " + escape(text) + "[/]")
        return lines

    def _soft_items(self) -> list[str]:
        out = []
        for gid, problems in self.problems.items():
            form = FORM_OF_GROUP[gid]
            for name, problem in problems.items():
                if is_soft(problem):
                    step = t(STEP_TITLES[STEPS[STEP_OF_GROUP[gid]]])
                    out.append(f"{step} · {self._field_label(form, name)}: {problem.split(';')[0]}")
        return out

    def _refresh_texts(self) -> None:
        super()._refresh_texts()
        self.query_one("#ae-note", Static).update(self._ae_text())

    # -- values ----------------------------------------------------------------------
    def typed(self) -> dict[str, Any]:
        self.remember()
        out: dict[str, Any] = {"kit": self.kit_raw.strip()}
        for part, values in self.values.items():
            out.update({f"{part}.{k}": v for k, v in values.items()})
        return without_blanks(out)

    # -- drafts ---------------------------------------------------------------------
    def draft_key(self) -> tuple[str, str] | None:
        return "dose_visit", f"participant:{self.participant}"

    def _restore(self, draft: dict[str, Any]) -> None:
        """Reopened from a draft: the values back; the step once the kit is checked again."""
        for name, value in draft.items():
            part, _, field = name.partition(".")
            if name == "kit":
                self.kit_raw = str(value)
            elif part in self.values and field:
                self.values[part][field] = value
        step = draft.get("wizard.step")
        self._resume = (int(step) if isinstance(step, int) else 0, None)

    def parts(self) -> dict[str, Any]:
        """The four records' typed values, as `record_dose_visit` takes them."""
        self.remember()

        def raw(values: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in values.items() if v not in (None, "", [])}

        dose = raw(self.values["dose"])
        dose["kit_id"] = self.kit.kit if self.kit is not None else self.kit_raw
        return {
            "pre_vitals": raw(self.values["pre"]),
            "dose": dose,
            "post_vitals": raw(self.values["post"]),
            "post_dose_check": raw(self.values["check"]),
        }

    # -- the kit scan ----------------------------------------------------------------
    @on(Input.Changed, "#kit-scan")
    def _kit_typed(self, event: Input.Changed) -> None:
        # The field as it is now, not as this (possibly late) message saw it: the scan's
        # Enter has already taken the whole code (`_kit_entered`).
        value = event.input.value
        if value == self.kit_raw:
            return
        self.kit_raw = value
        self.kit = None
        self.kit_error = None
        self.query_one("#kit-status", Static).update(self._kit_text())
        if self._scan_timer is not None:
            self._scan_timer.stop()
        if value.strip() and self.scan_gap_s is None:  # under a gap profile the field says (`_kit_quiet`)
            self._scan_timer = self.set_timer(SCAN_QUIET_S, self._check_scanned)

    @on(ScanField.Quiet, "#kit-scan")
    def _kit_quiet(self, event: ScanField.Quiet) -> None:
        """The keys stopped for the scanner profile's gap (profile ``gap`` only).

        A complete scan (a burst into the empty or selected field) is checked like an Enter:
        keys typed behind it wait, the focus follows the answer. Anything else (a person's
        typing, paused) is checked only to show the answer, as the quiet-time check does.
        """
        event.stop()
        if event.value != self.kit_raw or self.kit is not None or self.kit_error:
            return
        self._check_scanned(entered=event.complete)

    @on(Input.Submitted, "#kit-scan")
    def _kit_entered(self, event: Input.Submitted) -> None:
        """Scanners end a code with Enter: check it now; keys typed meanwhile wait for the answer.

        Where the focus goes depends on the answer (accepted: the first field
        still to fill, or the scan field when the product is complete;
        refused: the scan, selected, so the next scan replaces it), so the
        keys typed behind the Enter wait for it instead of landing in the
        scan field (screens/widgets/typeahead.py).
        """
        if self._scan_timer is not None:
            self._scan_timer.stop()
        if event.value != self.kit_raw:
            self.kit_raw, self.kit, self.kit_error = event.value, None, None
        if self.kit is not None or self.kit_error:
            self._focus_after_scan()
            return
        self._check_scanned(entered=True)

    def _check_scanned(self, *, entered: bool = False) -> None:
        """Check the scan: after its Enter (or ctrl+n), holding the keys typed behind it.

        The check the scan's quiet time starts (a scanner without Enter)
        only shows the answer: the focus stays where the person is typing.
        """
        raw = self.kit_raw
        if raw.strip() and self.kit is None:
            self._checks += 1
            reason = f"kit-check-{self._checks}" if entered else ""
            self._move_when_checked = entered
            if reason:
                hold_keys(self, reason)
            self.check_kit(raw, reason)

    @work(thread=True, exclusive=True, group="kit-check")
    def check_kit(self, raw: str, reason: str = "") -> None:
        try:
            self._run_kit_check(raw)
        finally:
            if reason:
                self.post_message(self.KeysFree(reason))

    def _run_kit_check(self, raw: str) -> None:
        from wardcrf.workflow import dose_visit

        start = self.values["dose"].get("start")
        when = None
        if start:
            try:
                when = self._parse_time(str(start))
            except ValueError:
                when = None
        try:
            got: KitCheck | None = self.ward.call(dose_visit.check_kit, self.participant, raw, when)
            error = None
        except WardError as exc:
            got, error = None, message_of(exc)
        self.post_message(self.KitChecked(raw, got, error))

    @on(StepWizard.KitChecked)
    def _on_kit_checked(self, message: StepWizard.KitChecked) -> None:
        self._kit_checked(message.raw, message.kit, message.error)

    def _parse_time(self, text: str) -> datetime:
        from wardcrf import forms

        ctx = forms.Context(now=self.ward.local_now(), zone=self.ward.session.ctx.zone)
        checked = forms.check(self.proto.form("dose"), {"start": text}, ctx, partial=True)
        if "start" not in checked.values:
            raise ValueError(text)
        return datetime.fromisoformat(checked.values["start"])

    def _kit_checked(self, raw: str, got: Any, error: str | None) -> None:
        if raw != self.kit_raw or not self.is_mounted:
            return  # typed on since: a newer check follows
        self.kit, self.kit_error = got, error
        if got is not None:
            self.values["dose"]["kit_id"] = got.kit
            product = self.query_one("#group-product", FieldGroup)
            if got.ok and got.lot and not self.values["dose"].get("lot"):
                product.set_value("lot", got.lot)
        self.query_one("#kit-status", Static).update(self._kit_text())
        if self._resume is not None:
            step, field = self._resume
            self._resume = None
            self._move_when_checked = self._next_when_checked = False
            if got is not None and got.ok and step > 0:
                self._go(min(step, len(STEPS) - 2))  # the review runs again from its step's ctrl+n
                found = self.query(f"#{field}") if field else None
                if found:
                    focus_now(found.first())
            self.mark_clean()
            return
        if self.step == 0 and self._move_when_checked:
            go_on = self._next_when_checked and got is not None and got.ok
            self._move_when_checked = self._next_when_checked = False
            if go_on:
                self.action_next_step()
            else:
                self._focus_after_scan()

    def _focus_after_scan(self) -> None:
        """Accepted: the first product field still empty (else stay, ctrl+n goes on); refused: the scan."""
        scan = self.query_one("#kit-scan", Input)
        if self.kit is not None and self.kit.ok:
            group = self.query_one("#group-product", FieldGroup)
            group.remember()
            empty = [f.name for f in group.fields if f.required and group.values.get(f.name) in (None, "")]
            if empty:
                group.focus_field(empty[0])
                return
        focus_now(scan)
        scan.select_all()

    # -- steps -----------------------------------------------------------------------
    def entering(self, key: str) -> None:
        if key == "times" and not self.values["dose"].get("start"):
            self.query_one("#group-times", FieldGroup).set_value("start", self._now_text())

    def _step_problems(self) -> dict[str, str]:
        """Hard problems (not soft ranges) of the current step's fields, marked on screen."""
        name = STEPS[self.step]
        if name == "review":
            return {}
        gid = {
            "kit": "group-product",
            "pre": "group-pre",
            "times": "group-times",
            "post": "group-post",
            "events": "group-events",
        }[name]
        group = self.query_one(f"#{gid}", FieldGroup)
        if name in ("pre", "post") and not group.values.get("time"):
            group.set_value("time", self._now_text())
        problems = group.check_all()
        return {k: v for k, v in problems.items() if not is_soft(v)}

    def gate_refusal(self) -> str | None:
        refusal = self._day_refusal()
        return t("dose.day_refused", reason=refusal) if refusal else None

    def check_now(self) -> None:
        self._check_scanned(entered=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stamp_now":
            return STEPS[self.step] in ("pre", "times", "post")
        return super().check_action(action, parameters)

    @on(SelectionList.SelectedChanged, "#check-field-events")
    def _events_changed(self) -> None:
        self.call_after_refresh(lambda: self.query_one("#ae-note", Static).update(self._ae_text()))

    # -- review (dry run) ------------------------------------------------------------
    def dry_run(self, parts: dict[str, Any], soft_parts: set[str]) -> Any:
        from wardcrf.workflow import dose_visit

        got: DoseVisit = self.ward.call(
            dose_visit.record_dose_visit,
            self.participant,
            reasons={p: "(review only: not saved)" for p in soft_parts},
            dry_run=True,
            **parts,
        )
        return got

    # -- save ------------------------------------------------------------------------
    def save_call(self, s: Any, parts: dict[str, Any], reasons: dict[str, str]) -> Any:
        from wardcrf.workflow import dose_visit

        return dose_visit.record_dose_visit(s, self.participant, reasons=reasons, **parts)

    async def after_save(self, result: Any) -> None:
        """Saved: say so; checked events offer their AE forms."""
        self.app.notify(t("dose.saved", n=result.dose_number, pid=self.participant))
        if result.ae_expected:
            labels = self._event_labels(result.ae_expected)
            open_now = await self.app.push_screen_wait(AeOffer(result.dose_number, labels))
            if open_now:
                self._open_ae_forms(result)
                return
        self.dismiss(result)

    def _open_ae_forms(self, visit: Any) -> None:
        """Replace the wizard with one AE form per checked event, one after the other."""
        from .form_screen import FormScreen

        app = self.app
        ward, pid = self.ward, self.participant
        onset = datetime.fromisoformat(visit.end).astimezone(zone(ward.session.ctx.zone)).date().isoformat()
        queue = list(zip(visit.ae_expected, self._event_labels(visit.ae_expected), strict=True))
        ae_codes = {str(c.code) for c in self.proto.form("ae").fields["prespecified"].choices}

        def next_form(_result: Any = None) -> None:
            if not queue:
                return
            code, label = queue.pop(0)
            initial = {"term": label, "dose": str(visit.dose_number), "onset": onset}
            if code in ae_codes:
                initial["prespecified"] = code
            app.push_screen(FormScreen(ward, "ae", pid, initial=initial), next_form)

        self.dismiss(visit)
        next_form()


class AeOffer(ModalScreen[bool]):
    """After saving: events were checked, so AE forms are expected. Open them now?"""

    CSS_PATH = "dialogs/dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "dose.key_open", priority=True),
        Binding("escape", "later", "dose.key_later"),
    ]

    def __init__(self, dose_number: int, events: list[str], *, text: str | None = None) -> None:
        super().__init__()
        self.dose_number = dose_number
        self.events = events
        self.text = text  # the administration wizard's words ("after infusion 2"), else the dose's

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("dose.ae_offer_title"), classes="dialog-title")
            yield Static(self.text or t("dose.ae_offer", n=self.dose_number, events=", ".join(self.events)))
            yield Static(t("dose.ae_offer_keys"), classes="muted")
        yield WardFooter()

    def action_open(self) -> None:
        self.dismiss(True)

    def action_later(self) -> None:
        self.dismiss(False)
