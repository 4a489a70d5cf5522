"""The next administration of a format-2 regimen as one guided flow, driven by the protocol (issue 17).

The steps and their fields come from the participant's next administration
as the engine places it (`workflow.administration_visit.plan`): the product,
route and dose declared by the regimen, the form that records it and the
roles of its fields, the dose assessments owed before and after it.

1. Kit — the scan field (a scanner types fast and ends with Enter, or with
   the quiet gap of this laptop's scanner profile); the engine's kit rules
   and the gates needing a kit (allocation, custody) answer at once beside
   it. Then what is given: for an infusion the dose (filled with the
   prescribed dose, per kg from the recorded weight, rounded and capped, and
   how it was computed, on top), lot and volume; for tablets or capsules a
   *count*, the dose being count × the product's strength; the form's own
   fields (how given, with food...).
2. Each `before` dose assessment (vitals before an infusion), the protocol's
   own form, its fixed values (timepoint, administration number) filled in.
3. Given — an infusion's start, stop, final rate and interruptions (with
   why, when interrupted and restarted); tablets' time; `ctrl+t` stamps now.
4. Each `after` dose assessment. When the protocol declares a `[safety]
   check` (a question asked after each administration), its step is the
   check: the first choice highlighted (Enter or space ticks it), its `none`
   code standing alone, and each event ticked announced as expecting an AE
   form (`expect_ae`); after saving, those forms are offered, filled with the
   event's prespecified code and the administration's number.
5. Review: the whole administration is run through the rules without saving
   (`record(dry_run=True)`): the timing against the window, the dose given
   against the prescribed one, the deviations it records; `ctrl+s` saves all
   of its records in one transaction, or none.

The gates that need no kit (DSMG hold, eligibility, a pre-dose check the
protocol requires, assessments an earlier administration still owes) are
asked when the wizard opens and refuse in the protocol's words on top, before
anything is typed; going on from the kit step is refused with them. Screens go
through services: the plan, the kit check and the record are
`administration_visit`'s. Every version the engine runs opens it (format 1's own
dose wizard is gone); a version it cannot run is refused before it opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, SelectionList, Static

from wardcrf import amounts
from wardcrf import protocol as protocols
from wardcrf.errors import WardError

from .errors import message_of
from .i18n import domain_word, label_width, language, pad, t
from .step_wizard import StepWizard
from .unsaved import without_blanks
from .ward import Ward
from .widgets.fields import MAX_LABEL, FieldGroup, is_soft
from .widgets.footer import WardFooter
from .widgets.scan_field import ScanField
from .widgets.typeahead import WardInput, focus_now, hold_keys, release_keys

if TYPE_CHECKING:
    from wardcrf.workflow.administration_visit import AdministrationPlan, KitCheck

ADMINISTRATION = "administration"
DRAFT_FORM = "administration_visit"
"""The drafts' key of this wizard (`screens/drafts_screen.py` reopens it)."""


def _amount(value: Any) -> str:
    """An amount filled into a field, saved as shown: 2950.0 is 2950, 200000000.0 is 2.0e8 (`amounts.exact`)."""
    return amounts.exact(value)


def _duration_words(text: str) -> str:
    """A declared duration ("30min", "2h", "90min") as the wizard says it: "30 min", "1 h 30 min"."""
    from wardcrf.engine.model import duration

    try:
        minutes = int(duration(text).total_seconds() // 60)
    except (ValueError, WardError):
        return text
    return _hours_minutes(minutes)


def _hours_minutes(minutes: int) -> str:
    """90 -> "1 h 30 min", 120 -> "2 h", 30 -> "30 min" (in the UI's language)."""
    h, m = divmod(max(0, minutes), 60)
    if h and m:
        return t("dose.hours_minutes", h=h, m=m)
    return t("adm.hours", h=h) if h else t("dose.minutes", m=m)


def _steps_of(p: AdministrationPlan) -> tuple[Any, ...]:
    """What the wizard's steps and fields are built from: a plan judged at another time with the same may
    replace it (the administration number may differ: the slot the start falls in)."""
    return (p.regimen, p.administration, p.form, [a.code for a in p.before], [a.code for a in p.after])


@dataclass(frozen=True)
class Step:
    """One step: its key (`kit`, `before:CODE`, `given`, `after:CODE`, `review`), tab label and groups."""

    key: str
    tab: str


class AdministrationWizard(StepWizard):
    """Give one participant their next administration of a format-2 regimen, step by step."""

    DEFAULT_CSS = """
    .earlier-input { width: 1fr; }
    .earlier-input:focus { background: $accent 25%; text-style: bold; }
    """
    """`Started at` looks like the fields beside it without being one of the step's `.field-input`s."""

    HIGHLIGHT_FIRST_CHOICE = (
        True  # a checklist (the post-administration check) taking the cursor: Enter ticks
    )

    @dataclass
    class Replanned(Message):
        """The next administration planned at the start typed in `Started at` (`typed`), or the refusal;
        `reason`: the name the keys typed behind its Enter wait under."""

        typed: str
        plan: Any
        error: WardError | None
        reason: str

    def __init__(
        self,
        ward: Ward,
        participant: str,
        *,
        draft: dict[str, Any] | None = None,
        started: str | None = None,
    ) -> None:
        """`started`: the start typed on step 1 of a wizard this one replaces (`_given_earlier`: at that time
        the participant's next administration has other steps), judged at it from the start."""
        super().__init__(ward, participant)
        from wardcrf.workflow import administration_visit

        self.plan: AdministrationPlan = (
            ward.call(administration_visit.plan_given_at, participant, started)
            if started
            else ward.call(administration_visit.plan, participant)
        )
        p = self.plan
        self.steps = (
            [Step("kit", t("adm.tab_kit"))]
            + [Step(f"before:{a.code}", a.label) for a in p.before]
            + [Step("given", t("adm.tab_given"))]
            + [Step(f"after:{a.code}", a.label) for a in p.after]
            + [Step("review", t("adm.tab_review"))]
        )
        self.values[ADMINISTRATION] = {}
        for a in (*p.before, *p.after):
            self.values[self._part(a.code, a in p.before)] = {}
        form = self.proto.form(p.form)
        for name in (*p.product_fields, *p.time_fields):
            f = form.fields.get(name)
            if f is not None and f.type == "choice" and f.default is not None and not f.computed:
                self.values[ADMINISTRATION][name] = f.default
        dose_field = p.roles.get("dose")
        if p.prescribed and dose_field in p.product_fields:
            self.values[ADMINISTRATION][dose_field] = _amount(p.prescribed["value"])
        volume_field = p.roles.get("volume")
        if p.volume and volume_field in p.product_fields:  # the volume the protocol declares, as the dose
            self.values[ADMINISTRATION][volume_field] = _amount(p.volume["value"])
        self.units = str(p.units) if p.units else ""
        self._started: datetime | None = None
        """When the administration started, typed on step 1 (`_given_earlier`); None: now. The kit's
        custody and use-by are judged then too."""
        self._given_at: str | None = None
        """The start typed on step 1 (`_given_earlier`), local "MM-DD HH:MM"; None: judged at now."""
        self.problems.update({g: {} for g in self.group_ids()})
        if started:
            self._adopt(p, started)
        if draft:
            self._restore(draft)

    # -- structure -------------------------------------------------------------------------
    @staticmethod
    def _part(code: str, before: bool) -> str:
        return f"{'before' if before else 'after'}:{code}"

    def step_key(self, i: int) -> str:
        return self.steps[i].key

    def step_tab(self, i: int) -> str:
        return self.steps[i].tab

    def step_count(self) -> int:
        return len(self.steps)

    def wizard_title(self) -> str:
        return t("adm.title")

    def head_text(self) -> str:
        return self._plan_text()

    def group_ids(self) -> list[str]:
        return ["group-product", "group-given"] + [
            f"group-{i}" for i, s in enumerate(self.steps) if ":" in s.key
        ]

    def group_part(self, gid: str) -> str:
        if gid in ("group-product", "group-given"):
            return ADMINISTRATION
        return self.steps[int(gid.removeprefix("group-"))].key

    def group_step(self, gid: str) -> int:
        if gid == "group-product":
            return 0
        if gid == "group-given":
            return next(i for i, s in enumerate(self.steps) if s.key == "given")
        return int(gid.removeprefix("group-"))

    def _assessment(self, key: str) -> Any:
        kind, _, code = key.partition(":")
        return next(a for a in (self.plan.before if kind == "before" else self.plan.after) if a.code == code)

    # -- the post-administration check (`[safety] check`) ---------------------------------------
    def _is_check(self, key: str) -> bool:
        c = self.plan.check
        return c is not None and key == f"after:{c.code}"

    def _check_labels(self, codes: list[Any]) -> list[str]:
        c = self.plan.check
        assert c is not None
        f = self.proto.form(c.form).fields[c.field]
        out = []
        for code in codes:
            choice = f.choice(code)
            out.append(protocols.tr(choice.label, language()) if choice else str(code))
        return out

    def _none_label(self) -> str:
        c = self.plan.check
        return self._check_labels([c.none])[0] if c is not None else ""

    def _checked_events(self) -> list[str]:
        c = self.plan.check
        if c is None:
            return []
        named = self.values.get(f"after:{c.code}", {}).get(c.field) or []
        return [str(x) for x in named if str(x) != c.none]

    def _ae_text(self) -> str:
        c = self.plan.check
        events = self._checked_events()
        if c is None or not c.expect_ae or not events:
            return ""
        labels = ", ".join(self._check_labels(events))
        return "[b yellow]" + escape(t("dose.ae_expected", events=labels)) + "[/]"

    @on(SelectionList.SelectedChanged)
    def _check_ticked(self, event: SelectionList.SelectedChanged) -> None:
        c = self.plan.check
        if c is None or not self.is_mounted:
            return
        i = next((n for n, s in enumerate(self.steps) if s.key == f"after:{c.code}"), None)
        if i is None or event.selection_list.id != f"a{i}-field-{c.field}":
            return
        named = [str(x) for x in event.selection_list.selected]
        self.values[f"after:{c.code}"][c.field] = named
        self.query_one("#check-ae", Static).update(self._ae_text())
        if c.none in named and len(named) > 1:  # said as it is ticked (the field's own check has just run)
            self.query_one(f"#group-{i}", FieldGroup).mark(
                c.field, t("adm.check_none_alone", none=self._none_label())
            )

    def _product_width(self) -> int:
        f = self.proto.form(self.plan.form).fields
        labels = [t("adm.earlier_label"), t("dose.kit_label") + " *", self._units_label()]
        # as the field group writes them: a required field's label ends with " *" (a "Volume after
        # dilution *" was one column wider than the width computed without it, its field out of line)
        labels += [
            protocols.tr(f[n].label, language()) + (" *" if f[n].required else "")
            for n in self.plan.product_fields
            if n in f
        ]
        return min(MAX_LABEL, label_width(labels))

    def _units_label(self) -> str:
        s = self.plan.strength
        return t("adm.units_label", strength=s["value"] if s else "", unit=s["unit"] if s else "") + " *"

    def compose_steps(self) -> ComposeResult:
        p = self.plan
        width = self._product_width()
        for i, step in enumerate(self.steps):
            with VerticalScroll(id=f"step-{i}", classes="step"):
                if step.key == "kit":
                    yield from self._earlier_row(width)
                    yield Static(t("adm.kit_help"), classes="muted")
                    yield from self._kit_row(width)
                    yield Static(t("adm.product_help"), classes="muted step-note")
                    if p.kind == "tablets":
                        with Horizontal(classes="field-row", id="row-units"):
                            yield Label(pad(self._units_label(), width), classes="field-label")
                            yield Input(value=self.units, id="adm-units", classes="field-input", compact=True)
                        yield Static(self._units_text(), id="units-status", classes="muted")
                    yield self._group(
                        p.form, list(p.product_fields), ADMINISTRATION, "group-product", "adm-", width
                    )
                elif step.key == "given":
                    help_id = {
                        "infusion": "adm.infusion_help",
                        "tablets": "adm.tablets_help",
                        "inhalation": "adm.inhalation_help",
                    }.get(p.kind, "adm.given_help")
                    yield Static(t(help_id), classes="muted")
                    yield self._group(p.form, list(p.time_fields), ADMINISTRATION, "group-given", "adm-")
                elif step.key == "review":
                    yield Static(self._review_text(), id="review")
                else:
                    a = self._assessment(step.key)
                    if self._is_check(step.key):
                        yield Static(
                            t("adm.check_help", label=a.label, none=self._none_label()), classes="muted"
                        )
                    else:
                        yield Static(t("adm.assessment_help", label=a.label), classes="muted")
                    yield self._group(a.form, list(a.fields), step.key, f"group-{i}", f"a{i}-")
                    if self._is_check(step.key):
                        yield Static(self._ae_text(), id="check-ae")
        yield Static(
            self.message, id="wizard-message", classes="refusal" if self.message_refusal else "muted"
        )
        yield WardFooter()

    def on_mount(self) -> None:
        self._focus_step()
        if self._resume is not None and self.kit_raw.strip():
            self._check_scanned()  # a reopened draft: its kit checked again, now (then its step)
        self.mark_clean()

    def _plan_text(self) -> str:
        p = self.plan
        lines = [
            escape(
                t(
                    "adm.next",
                    what=p.what,
                    kind=_kind_word(p.kind, p.dosage_form),
                    route=p.route.lower(),
                    due=self._local(p.due),
                    start=self._local(p.window[0]),
                    end=self._local(p.window[1]),
                    state=domain_word("state", p.state),
                )
            )
        ]
        if p.prescribed:
            lines.append(
                escape(
                    t(
                        "adm.prescribed",
                        value=amounts.shown(p.prescribed["value"]),
                        unit=p.prescribed["unit"],
                        how=p.prescribed_how,
                    )
                )
            )
        else:
            lines.append(escape(t("adm.no_prescribed", how=p.prescribed_how)))
        if p.duration and p.kind != "tablets":  # the route's own words (a tablet is not given "over" a time)
            said = {"infusion": "adm.duration_infusion", "inhalation": "adm.duration_inhalation"}
            lines.append(
                escape(t(said.get(p.kind, "adm.duration_other"), duration=_duration_words(p.duration)))
            )
        if p.refusal_now:
            lines.append("[b red]" + escape(t("adm.refused", reason=p.refusal_now)) + "[/]")
        elif p.now is not None and p.now.timing in ("early", "late"):  # said before anything is typed
            lines.append("[b yellow]" + escape(self._timing_now(p.now)) + "[/]")
        if p.visits:  # the visit forms owed now: the same items as the ward's worklist ("FORM (VISIT)")
            items = "; ".join(
                f"{v.what} — {domain_word('state', v.state)}"
                + (t("adm.visit_with_this") if v.with_this else "")
                for v in p.visits
            )
            lines.append("[b yellow]" + escape(t("adm.visits_owed", items=items)) + "[/]")
        return "\n".join(lines)

    # -- given earlier, recorded now ----------------------------------------------------------------
    def _earlier_row(self, width: int) -> ComposeResult:
        """`Started at`: blank, the administration is judged at now; typed (given earlier, recorded now: after
        midnight, after its window closed, from paper), at that start (`_given_earlier`). Said in full when a
        start now is refused and no gate refuses."""
        p = self.plan
        if p.refusal is None and p.now is not None and p.now.refusal is not None:
            yield Static(t("adm.earlier_help"), classes="muted")
        with Horizontal(classes="field-row", id="row-earlier"):
            yield Label(pad(t("adm.earlier_label"), width), classes="field-label")
            # not a `.field-input`: the step's focus and type-ahead keep going to the kit and the product
            yield WardInput(  # its Enter judged before the keys typed behind it (the kit's scan) run
                self._local(self._started.isoformat(), "%Y-%m-%d %H:%M") if self._started else "",
                id="adm-earlier",
                placeholder="HH:MM",
                classes="earlier-input",
                compact=True,
            )

    @on(Input.Submitted, "#adm-earlier")
    def _given_earlier(self, event: Input.Submitted) -> None:
        """Judge the administration at the start typed: step 1 goes on when that start is allowed, and the
        start is filled into the step that records it (the record is judged at what is typed there). When
        at that time the next administration has other steps (another regimen's, other assessments), this
        wizard is replaced by one built for it, judged at the same start.

        Planned in a thread (the schedule, the gates, the kit's custody are read): the keys typed behind the
        Enter (the kit's scan) wait for the answer, as behind a kit check."""
        event.stop()
        self._checks += 1
        reason = f"earlier-{self._checks}"
        hold_keys(self, reason)
        self.plan_at(event.value, reason)

    @work(thread=True, exclusive=True, group="earlier-start")
    def plan_at(self, typed: str, reason: str) -> None:
        from wardcrf.workflow import administration_visit

        try:
            plan = self.ward.call(administration_visit.plan_given_at, self.participant, typed)
            self.post_message(self.Replanned(typed, plan, None, reason))
        except WardError as exc:
            self.post_message(self.Replanned(typed, None, exc, reason))
        except BaseException:
            self.post_message(self.KeysFree(reason))  # never leave the keys held behind a crash
            raise

    @on(Replanned)
    def _on_replanned(self, message: Replanned) -> None:
        if message.error is not None or not self.is_mounted:
            if message.error is not None:
                self._say(message_of(message.error), refusal=True)
            # The start stays in its field to correct: a scan typed behind it must not be appended to it.
            release_keys(self, message.reason, drop=True)
            return
        plan, typed = message.plan, message.typed
        if _steps_of(plan) != _steps_of(self.plan):
            self.app.switch_screen(AdministrationWizard(self.ward, self.participant, started=typed))
            release_keys(self, message.reason)  # to the wizard built for that start, once it is built
            return
        self.plan = plan
        self._adopt(plan, typed)
        self._refresh_texts()
        refused = bool(plan.refusal_now)
        if refused:
            self._say(t("adm.refused", reason=plan.refusal_now), refusal=True)
        else:
            self._say(t("adm.earlier_ok", at=self._given_at))
            focus_now(self.query_one("#kit-scan", Input))
        release_keys(self, message.reason, drop=refused)
        if self.kit_raw.strip():  # a kit scanned before: its custody and use-by judged at the start typed
            self.kit, self.kit_error = None, None
            self._check_scanned(entered=False)

    def _adopt(self, plan: AdministrationPlan, typed: str) -> None:
        """The plan judged at the start typed: remembered, and the start put where it is recorded."""
        started = plan.now.start if plan.now is not None else None
        self._started = started
        self._given_at = self._local(started.isoformat()) if started is not None else typed.strip()[:40]
        start = plan.roles.get("start")
        if start and started is not None:
            full = self._local(started.isoformat(), "%Y-%m-%d %H:%M")
            self.values[ADMINISTRATION][start] = full
            if self.is_mounted:
                self.query_one("#group-given", FieldGroup).set_value(start, full)

    def _timing_now(self, now: Any) -> str:
        """`Starting now, dose 2 is 1 h 10 min after its window: it will be recorded as LATE (a deviation).`"""
        by = _hours_minutes(now.minutes_outside)
        if self._given_at is not None:
            return t(f"adm.{now.timing}_at", what=self.plan.what, by=by, at=self._given_at)
        return t(f"adm.{now.timing}_now", what=self.plan.what, by=by)

    def _units_text(self) -> str:
        from wardcrf.errors import ValidationFailed
        from wardcrf.workflow.administration_visit import dose_from_units

        s = self.plan.strength
        expected = t("adm.units_expected", n=self.plan.units) if self.plan.units else ""
        head = t(
            "adm.units_help", strength=s["value"] if s else "", unit=s["unit"] if s else "", expected=expected
        )
        if not self.units.strip():
            return escape(head)
        try:
            got = dose_from_units(self.plan, self.units)
        except ValidationFailed:
            return escape(head) + "\n[b red]" + escape(t("adm.units_bad")) + "[/]"
        value = next(iter(got.values()))
        return (
            escape(head)
            + "\n[b]"
            + escape(t("adm.units_dose", value=value, unit=s["unit"] if s else ""))
            + "[/]"
        )

    def _review_text(self) -> str:
        if self.steps[self.step].key != "review":
            return ""
        p = self.plan
        lines = [f"[b]{escape(t('adm.review_title', what=p.what, pid=self.participant))}[/b]"]
        if self.checking_review:
            lines.append(t("adm.review_checking"))
        elif self.preview_error:
            lines.append("[b red]" + escape(t("adm.not_ready", reason=self.preview_error)) + "[/]")
        elif self.preview is not None:
            v = self.preview
            timing = t(f"adm.timing_{v.timing}") if v.timing in ("on_time", "early", "late") else "—"
            lines.append(escape(t("adm.timing", timing=timing)))
            given = amounts.quantity(v.dose) if v.dose else "—"
            pres = amounts.quantity(v.prescribed) if isinstance(v.prescribed, dict) else "—"
            lines.append(escape(t("adm.dose_line", given=given, prescribed=pres)))
            if v.ae_expected:
                labels = ", ".join(self._check_labels(v.ae_expected))
                lines.append("[b yellow]" + escape(t("dose.ae_expected", events=labels)) + "[/]")
            if v.deviations:
                items = "; ".join(str(d.get("kind", d.get("code", ""))) for d in v.deviations)
                lines.append("[b yellow]⚠ " + escape(t("adm.deviations", items=items)) + "[/]")
            else:
                lines.append("[green]" + escape(t("adm.no_deviation")) + "[/]")
        lines += self._review_verdict("adm.ready")
        kit = self._review_kit()
        lines.append(f"[b]{escape(t('dose.review_kit'))}:[/b] {escape(kit)}")
        if p.kind == "tablets":
            lines.append(f"[b]{escape(self._units_label().rstrip(' *'))}:[/b] {escape(self.units)}")
        form = self.proto.form(p.form)
        lines.append(
            self._values_line(form, self.values[ADMINISTRATION], [*p.product_fields, *p.time_fields])
        )
        for a in (*p.before, *p.after):
            part = self._part(a.code, a in p.before)
            lines.append(
                f"[b]{escape(a.label)}:[/b] "
                + self._values_line(self.proto.form(a.form), self.values[part], list(a.fields))
            )
        return "\n".join(lines)

    def _values_line(self, form: Any, values: dict[str, Any], names: list[str]) -> str:
        out = []
        for name in names:
            v = values.get(name)
            f = form.fields.get(name)
            if v in (None, "", []) or f is None:
                continue
            out.append(
                f"{protocols.tr(f.label, language())} {self._shown(f, v)}{(' ' + f.unit) if f.unit else ''}"
            )
        return escape(" · ".join(out))

    @staticmethod
    def _shown(f: Any, v: Any) -> str:
        """A value as the person chose it: a choice by its label (*Normal saline*, not `normal_saline`; a
        checklist's labels joined, not `['none']`), anything else as typed."""
        if f.choices:
            codes = v if isinstance(v, list) else [v]
            labels = []
            for code in codes:
                c = f.choice(code)
                labels.append(protocols.tr(c.label, language()) if c else str(code))
            return ", ".join(labels)
        return str(v)

    def _soft_items(self) -> list[str]:
        out = []
        for gid, problems in self.problems.items():
            for name, problem in problems.items():
                if is_soft(problem):
                    out.append(f"{self.steps[self.group_step(gid)].tab} · {name}: {problem.split(';')[0]}")
        return out

    # -- values ----------------------------------------------------------------------------
    def remember(self) -> None:
        super().remember()
        if not self.is_mounted:
            return
        units = self.query("#adm-units")
        if units:
            self.units = units.first(Input).value

    def typed(self) -> dict[str, Any]:
        self.remember()
        out: dict[str, Any] = {
            "kit": self.kit_raw.strip(),
            "units": self.units if self.plan.kind == "tablets" else "",
        }
        for part, values in self.values.items():
            out.update({f"{part}.{k}": v for k, v in values.items()})
        return without_blanks(out)

    def draft_key(self) -> tuple[str, str] | None:
        return DRAFT_FORM, f"participant:{self.participant}"

    def _restore(self, draft: dict[str, Any]) -> None:
        """Reopened from a draft: the values back (of the parts this administration still has); its step
        once the kit is checked again."""
        for name, value in draft.items():
            part, _, field_ = name.partition(".")
            if name == "kit":
                self.kit_raw = str(value)
            elif name == "units":
                self.units = str(value)
            elif part in self.values and field_:
                self.values[part][field_] = value
        step = draft.get("wizard.step")
        self._resume = (min(step, len(self.steps) - 2) if isinstance(step, int) and step > 0 else 0, None)

    def parts(self) -> dict[str, Any]:
        """The records' typed values as `administration_visit.record` takes them."""
        self.remember()

        def raw(values: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in values.items() if v not in (None, "", [])}

        adm = raw(self.values[ADMINISTRATION])
        kit_field = self.plan.roles.get("kit")
        if kit_field:
            adm[kit_field] = self.kit.kit if self.kit is not None else self.kit_raw.strip()
        p = self.plan
        return {
            "before": {a.code: raw(self.values[self._part(a.code, True)]) for a in p.before},
            "administration": adm,
            "after": {a.code: raw(self.values[self._part(a.code, False)]) for a in p.after},
            "units": self.units.strip() if p.kind == "tablets" else None,
        }

    # -- the kit scan ----------------------------------------------------------------------
    @on(Input.Changed, "#kit-scan")
    def _kit_typed(self, event: Input.Changed) -> None:
        if event.input.value == self.kit_raw:
            return
        self.kit_raw, self.kit, self.kit_error = event.input.value, None, None
        self.query_one("#kit-status", Static).update(self._kit_text())

    @on(Input.Changed, "#adm-units")
    def _units_typed(self, event: Input.Changed) -> None:
        self.units = event.input.value
        self.query_one("#units-status", Static).update(self._units_text())

    @on(ScanField.Quiet, "#kit-scan")
    def _kit_quiet(self, event: ScanField.Quiet) -> None:
        """The keys stopped for the scanner profile's gap (profile ``gap`` only): a complete scan is checked
        like an Enter (keys typed behind it wait, the focus follows the answer); a person's typing, paused,
        is checked only to show the answer (the focus stays where they type), as the dose wizard does."""
        event.stop()
        if event.value == self.kit_raw and self.kit is None and not self.kit_error:
            self._check_scanned(entered=event.complete)

    @on(Input.Submitted, "#kit-scan")
    def _kit_entered(self, event: Input.Submitted) -> None:
        if event.value != self.kit_raw:
            self.kit_raw, self.kit, self.kit_error = event.value, None, None
        if self.kit is not None or self.kit_error:
            self._focus_after_scan()
            return
        self._check_scanned()

    def _check_scanned(self, *, entered: bool = True) -> None:
        """Check the scan now; the keys typed behind it wait for the answer (where the focus goes). Not
        `entered` (a person's typing, paused under a gap profile): the answer is only shown, nothing held,
        the focus left where it is."""
        raw = self.kit_raw
        if raw.strip() and self.kit is None:
            self._checks += 1
            reason = f"kit-check-{self._checks}" if entered else ""
            self._move_when_checked = entered
            if reason:
                hold_keys(self, reason)
            self.query_one("#kit-status", Static).update(self._kit_text())
            self.check_kit(raw, reason)

    @work(thread=True, exclusive=True, group="kit-check")
    def check_kit(self, raw: str, reason: str) -> None:
        from wardcrf.workflow import administration_visit

        try:
            try:
                got: KitCheck | None = self.ward.call(
                    administration_visit.check_kit, self.participant, raw, self._started
                )
                error = None
            except WardError as exc:
                got, error = None, message_of(exc)
            self.post_message(self.KitChecked(raw, got, error))
        finally:
            if reason:
                self.post_message(self.KeysFree(reason))

    @on(StepWizard.KitChecked)
    def _on_kit_checked(self, message: StepWizard.KitChecked) -> None:
        if message.raw != self.kit_raw or not self.is_mounted:
            return
        self.kit, self.kit_error = message.kit, message.error
        lot_field = self.plan.roles.get("lot")
        if (
            message.kit is not None
            and message.kit.ok
            and message.kit.lot
            and lot_field in self.plan.product_fields
        ):
            group = self.query_one("#group-product", FieldGroup)
            group.remember()
            if not self.values[ADMINISTRATION].get(lot_field):
                group.set_value(lot_field, message.kit.lot)
        self.query_one("#kit-status", Static).update(self._kit_text())
        if self._resume is not None:
            step, field_ = self._resume
            self._resume = None
            if message.kit is not None and message.kit.ok and step > 0:
                self._go(step)
                found = self.query(f"#{field_}") if field_ else None
                if found:
                    focus_now(found.first())
            self.mark_clean()
            return
        go_on = self._next_when_checked and message.kit is not None and message.kit.ok
        self._next_when_checked = False
        if go_on:
            self.action_next_step()
        elif self.step == 0 and self._move_when_checked:
            self._focus_after_scan()

    def _focus_after_scan(self) -> None:
        scan = self.query_one("#kit-scan", Input)
        if self.kit is not None and self.kit.ok:
            units = self.query("#adm-units")
            if units and not self.units.strip():
                focus_now(units.first(Input))
                return
            group = self.query_one("#group-product", FieldGroup)
            group.remember()
            # The first field still empty: one the protocol requires of a dose given first (`plan.required`:
            # PALM's volume), then any. Never a field already filled: the lot filled from the kit, selected
            # on entering, was replaced by the volume typed next (the focus went to the first field).
            blank = [f.name for f in group.fields if group.values.get(f.name) in (None, "")]
            needed = [
                n for f in group.fields if (n := f.name) in blank and (f.required or n in self.plan.required)
            ]
            if needed or blank:
                group.focus_field((needed or blank)[0])
                return
            if units:
                focus_now(units.first(Input))
                return
        # Nothing left to fill (or a refused scan): the scan field keeps the focus, its text selected so the
        # next scan replaces it; ctrl+n goes on.
        focus_now(scan)
        scan.select_all()

    # -- steps -----------------------------------------------------------------------------
    def _stamped_ids(self) -> set[str]:
        """The safety check's time (stamped now when left blank): its step opens on the first choice.

        A vitals step opens on its time, the first field on screen, as `ctrl+t Tab 37.2 Tab 90`
        expects: ctrl+t stamps that time wherever the focus is and moves nothing."""
        key = self.steps[self.step].key
        if not self._is_check(key):
            return set()
        group = self.query_one(f"#group-{self.step}", FieldGroup)
        return {group.wid(f.name) for f in group.fields if f.field is not None and f.field.type == "datetime"}

    def entering(self, key: str) -> None:
        start = self.plan.roles.get("start")
        if key == "given" and start and not self.values[ADMINISTRATION].get(start):
            self.query_one("#group-given", FieldGroup).set_value(start, self._now_text())

    def _step_group(self) -> FieldGroup | None:
        key = self.steps[self.step].key
        if key == "review":
            return None
        gid = {"kit": "group-product", "given": "group-given"}.get(key, f"group-{self.step}")
        return self.query_one(f"#{gid}", FieldGroup)

    def _step_problems(self) -> dict[str, str]:
        group = self._step_group()
        if group is None:
            return {}
        # An assessment's time left blank is stamped when the step is left: what is saved is what is shown.
        for f in group.fields:
            is_time = f.field is not None and f.field.type == "datetime"
            if ":" in self.steps[self.step].key and is_time and not group.values.get(f.name):
                group.set_value(f.name, self._now_text())
        problems = group.check_all()
        c = self.plan.check
        if c is not None and self._is_check(self.steps[self.step].key):
            named = [str(x) for x in group.values.get(c.field) or []]
            if c.none in named and len(named) > 1:  # the engine's rule, said on the step
                problems[c.field] = t("adm.check_none_alone", none=self._none_label())
                group.mark(c.field, problems[c.field])
        if self.steps[self.step].key in (
            "kit",
            "given",
        ):  # what the protocol requires of a given administration
            for f in group.fields:
                if (
                    f.name in self.plan.required
                    and group.values.get(f.name) in (None, "", [])
                    and f.name not in problems
                ):
                    problems[f.name] = "required"
                    group.mark(f.name, "required")
        return {k: v for k, v in problems.items() if not is_soft(v)}

    def gate_refusal(self) -> str | None:
        return t("adm.refused", reason=self.plan.refusal_now) if self.plan.refusal_now else None

    def check_now(self) -> None:
        self._check_scanned()

    def kit_step_ready(self) -> bool:
        """Tablets: the count given must make a dose."""
        if self.plan.kind == "tablets":
            from wardcrf.errors import ValidationFailed
            from wardcrf.workflow.administration_visit import dose_from_units

            try:
                dose_from_units(self.plan, self.units)
            except ValidationFailed:
                self._say(t("adm.units_bad"), refusal=True)
                focus_now(self.query_one("#adm-units", Input))
                return False
        return True

    # -- review and save -------------------------------------------------------------------
    def dry_run(self, parts: dict[str, Any], soft_parts: set[str]) -> Any:
        from wardcrf.workflow import administration_visit

        return self.ward.call(
            administration_visit.record,
            self.participant,
            reasons={p: "(review only: not saved)" for p in soft_parts},
            dry_run=True,
            **parts,
        )

    def save_call(self, s: Any, parts: dict[str, Any], reasons: dict[str, str]) -> Any:
        from wardcrf.workflow import administration_visit

        return administration_visit.record(s, self.participant, reasons=reasons, **parts)

    def asks_after_save(self, result: Any) -> bool:
        """The events the check named are offered as AE forms: a yes/no question, which no key typed ahead may
        answer."""
        return bool(result.ae_expected)

    async def after_save(self, result: Any) -> None:
        """Saved: say so; the events the check named offer their AE forms (`expect_ae`)."""
        from .ae_offer import AeOffer

        self.app.notify(t("adm.saved", n=result.number, pid=self.participant))
        if result.ae_expected:
            labels = self._check_labels(result.ae_expected)
            text = t("adm.ae_offer", what=self.plan.what, events=", ".join(labels))
            if await self.app.push_screen_wait(AeOffer(result.number, labels, text=text)):
                self._open_ae_forms(result, labels)
                return
        self.dismiss(result)

    def _open_ae_forms(self, visit: Any, labels: list[str]) -> None:
        """Replace the wizard with one AE form per event the check named, one after the other: the event's
        prespecified code, the administration's number (`[safety] ae_link`), the onset its day."""
        from wardcrf.clock import zone

        from .form_screen import FormScreen

        c = self.plan.check
        assert c is not None
        app, ward, pid = self.app, self.ward, self.participant
        ended = visit.end or visit.start
        onset = ""
        if ended:
            onset = datetime.fromisoformat(ended).astimezone(zone(ward.session.ctx.zone)).date().isoformat()
        ae_fields = self.proto.form("ae").fields
        codes = (
            {str(x.code) for x in ae_fields["prespecified"].choices} if "prespecified" in ae_fields else set()
        )
        queue = list(zip(visit.ae_expected, labels, strict=True))

        def next_form(_result: Any = None) -> None:
            if not queue:
                return
            code, label = queue.pop(0)
            initial = {"term": label}
            if onset:
                initial["onset"] = onset
            if c.ae_link and c.ae_link in ae_fields:
                initial[c.ae_link] = str(visit.number)
            if code in codes:
                initial["prespecified"] = code
            app.push_screen(FormScreen(ward, "ae", pid, initial=initial), next_form)

        self.dismiss(visit)
        next_form()


def _kind_word(kind: str, dosage_form: str) -> str:
    """How the plan line names what is given: an oral solid by the product's declared dosage form
    ("capsules" for a CAPSULE, "tablets" for a TABLET), else the kind ("tablets or capsules" when the form
    is not shown, e.g. on a blinded ward whose products differ in form)."""
    if kind == "tablets":
        for unit in ("CAPSULE", "TABLET"):
            if unit in dosage_form.upper():
                return t(f"adm.form_{unit.lower()}")
    return t(f"adm.kind_{kind}")
