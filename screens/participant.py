"""One participant: where they are in the trial, and everything recorded.

The header says the status, treatment day, doses given, the next dose (and
whether it is due, overdue or held) and open adverse events. The timeline
is the participant's audit trail (every record, amendment and signature in
order); the selected entry shows its values or its changes old → new with
the reason. Signatures are listed with their meaning and a "changed since
signed" mark when the signed content was amended afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wardcrf import audit, signatures
from wardcrf.clock import parse_iso, zone

from . import times
from .errors import message_of
from .i18n import domain_word, t
from .keys import BACK, LANGUAGE
from .results import Refused
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.tables import WardTable

if TYPE_CHECKING:
    from wardcrf.engine.schedule import Deviation
    from wardcrf.workflow.amendments import VersionState
    from wardcrf.workflow.status import ParticipantSummary

_SIGNED = re.compile(r"^signed \S+ as (?P<meaning>.+) \((?P<name>.*)\)$")


def deviation_item(d: Deviation) -> str:
    """A deviation on the participant's summary line: its kind and the dose (format 1) or
    administration (format 2) it concerns; one about no dose (ineligible after enrollment, a
    protocol's declared deviation) is its kind alone."""
    n = d.get("dose", d.get("number"))
    return d["kind"] if n is None else f"{d['kind']} {n}"


def visit_items(summary: ParticipantSummary) -> list[str]:
    """A format-2 participant's visits worth a look: the forms owed now (due, closing, overdue) and the
    calendar visits not yet placed, with what will date them ("day 8 after first dose")."""
    out: list[str] = []
    for v in summary.get("visits", ()):
        if v.get("placed_from"):
            out.append(f"{v['name']} — {v['placed_from']} — {domain_word('state', v['state'])}")
        elif v["owed"] and v["state"] in ("due now", "window closing", "overdue"):
            out.append(f"{v['name']}: {', '.join(v['owed'])} ({domain_word('state', v['state'])})")
    return out


def _what(e: audit.TrailEntry) -> str:
    """One timeline line: the form and its values, or who signed and why."""
    if e.type == "record.submitted":
        return e.summary
    if e.type == "record.amended":
        changed = ", ".join(f"{c['field']}: {c['old']!r} → {c['new']!r}" for c in e.changes)
        return f"{t('participant.amended')} {changed}"
    m = _SIGNED.match(e.summary) if e.type == "signature.applied" else None
    if m:
        meaning = t("meaning." + m["meaning"].replace(" ", "_"))
        return f"{t('participant.signature')} {meaning} — {m['name']}"
    return f"{e.type}: {e.summary}"


class ParticipantScreen(Screen[None]):
    """Status, timeline and signatures of one participant."""

    CSS_PATH = "participant.tcss"
    AUTO_FOCUS = "#timeline"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_record", "key.new_record"),
        Binding("d", "dose_wizard", "dose.key_wizard"),
        Binding("v", "form('vitals')", "key.vitals"),
        Binding("c", "vitals_chart", "dose.key_chart"),
        Binding("r", "randomize", "randomize.key"),
        Binding("p", "apply_amendment", "amend.key"),
        BACK,
        LANGUAGE,
    ]

    @dataclass
    class Loaded(Message):
        """The participant's summary, trail and signatures, and whether to offer randomization."""

        summary: ParticipantSummary
        entries: list[audit.TrailEntry]
        sigs: list[signatures.SignatureState]
        randomizable: bool
        version: VersionState
        """`amendments.version_of`: the protocol version they are on, how, and every amendment applied."""

    @dataclass
    class FactorsNeeded(Message):
        """What the clinician must give to randomize here (each factor and its levels), what the records give.

        `after_enrollment`: offered at once because the enrollment was just saved.
        """

        factors: dict[str, list[str]]
        known: list[tuple[str, str, str]]
        after_enrollment: bool = False

    @dataclass
    class Allocated(Message):
        """The participant was randomized: the allocation as shown to the person."""

        shown: str

    @dataclass
    class AmendmentDone(Message):
        """An amendment was applied (`ok`) or refused: the line to show."""

        text: str
        ok: bool

    @dataclass
    class RandomizeRefused(Message):
        """Randomization was refused (`allocating`: at the allocation, not before): the one line."""

        text: str
        allocating: bool = False

    def __init__(self, ward: Ward, participant: str) -> None:
        super().__init__()
        self.ward = ward
        self.participant = participant
        self.entries: list[audit.TrailEntry] = []
        self.summary: ParticipantSummary | None = None
        self.randomizable = False
        self.version: VersionState | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, self.participant)
        with Vertical(id="participant"):
            yield Static(t("participant.loading"), id="p-summary")
            yield WardTable.listing("timeline", t("col.time"), t("col.who"), t("col.what"))
            yield Static("", id="p-detail")
            yield Static("", id="p-signatures")
        yield WardFooter()

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("new_record", "form"):
            return self.ward.can("record.submit")
        if action == "dose_wizard":
            return self.ward.can("dose.record")
        if action == "randomize":
            return self.randomizable  # offered only where a list waits and this participant has no entry
        if action == "apply_amendment":
            return self.ward.can("protocol.apply")  # the investigator's; the service refuses anyone else too
        return True

    @work(thread=True, exclusive=True, group="participant")
    def load(self) -> None:
        from wardcrf import workflow
        from wardcrf.randomization import service as randomization
        from wardcrf.workflow import amendments

        pid = self.participant
        subject = f"participant:{pid}"
        try:
            summary = self.ward.call(workflow.show, pid)
            entries = self.ward.call(lambda s: list(audit.trail(s, subject=subject)))
            sigs = self.ward.call(signatures.of_subject, subject)
            randomizable = self.ward.call(randomization.randomizable, pid)
            version = self.ward.call(amendments.version_of, pid)
        except Exception as exc:
            self.post_message(Refused(message_of(exc)))
            return
        self.post_message(self.Loaded(summary, entries, sigs, randomizable, version))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self.version = message.version
        self._fill(message.summary, message.entries, message.sigs)
        self._offer_randomize(message.randomizable)

    @on(Refused)
    def _on_refused(self, message: Refused) -> None:
        self.query_one("#p-summary", Static).update(message.text)

    def _offer_randomize(self, randomizable: bool) -> None:
        if randomizable != self.randomizable:
            self.randomizable = randomizable
            self.refresh_bindings()

    def _fill(
        self,
        summary: ParticipantSummary,
        entries: list[audit.TrailEntry],
        sigs: list[signatures.SignatureState],
    ) -> None:
        self.summary = summary
        self.entries = entries
        nd = summary.get("next_dose")
        next_text = (
            t(
                "participant.next_dose",
                n=nd["dose"],
                due=nd["due"][5:16].replace("T", " "),
                state=domain_word("state", nd["state"]),
            )
            if nd
            else t("participant.no_next_dose")
        )
        lines = [
            t(
                "participant.header",
                status=domain_word("status", summary["status"]),
                given=summary["doses_given"],
                planned=summary["doses_planned"],
                aes=len(summary["open_aes"]),
            ),
            next_text,
        ]
        visits = visit_items(summary)
        if visits:
            lines.append(t("participant.visits", items="; ".join(visits)))
        if self.version is not None:
            lines.append(self._protocol_line(self.version))
        if summary.get("deviations"):
            lines.append(
                t(
                    "participant.deviations",
                    items="; ".join(deviation_item(d) for d in summary["deviations"]),
                )
            )
        self.query_one("#p-summary", Static).update("\n".join(lines))
        table = self.query_one("#timeline", DataTable)
        table.clear()
        for i, e in enumerate(entries):
            what = _what(e)
            table.add_row(e.local_time[5:16].replace("T", " "), e.user or "—", what[:200], key=str(i))
        sig_lines = [t("participant.signatures")]
        for s in sigs:
            mark = "" if s.valid else " ⚠ " + t("participant.changed_since_signed")
            sig_lines.append(
                f"  {s.full_name} ({s.user}) — {t('meaning.' + s.meaning.replace(' ', '_'))}"
                f" — {times.local(s.signed_at, marked=True)}{mark}"
            )
        if not sigs:
            sig_lines.append("  " + t("participant.no_signatures"))
        self.query_one("#p-signatures", Static).update("\n".join(sig_lines))

    def _protocol_line(self, version: VersionState) -> str:
        """ "Protocol: ID VERSION (enrolled under / amended on DATE)": the version their forms and rules follow."""
        pr = version["protocol"]
        if pr["since"] == "amendment" and version["amendments"]:
            how = t("participant.amended_on", date=self._local(version["amendments"][-1]["at"])[:10])
        elif pr["since"] == "enrollment":
            how = t("participant.enrolled_under")
        else:
            how = t("participant.active_version")
        return t("participant.protocol", id=pr["id"], version=pr["version"], how=how)

    def action_apply_amendment(self) -> None:
        """Ask the version and the reason, then apply through the service (investigator; refusals in its words)."""
        from .dialogs.amendment import AmendmentDialog

        pr = self.version["protocol"] if self.version else None
        current = f"{pr['id']} {pr['version']}" if pr else ""

        def chosen(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self._apply_amendment(*answer)

        self.app.push_screen(AmendmentDialog(self.participant, current), chosen)

    @work(thread=True, exclusive=True, group="amendment")
    def _apply_amendment(self, version: str, reason: str) -> None:
        from wardcrf.workflow import amendments

        try:
            event = self.ward.call(amendments.apply, self.participant, version, reason)
        except Exception as exc:
            self.post_message(self.AmendmentDone(message_of(exc), ok=False))
            return
        b = event.body
        self.post_message(
            self.AmendmentDone(
                t(
                    "amend.applied",
                    participant=b["participant"],
                    id=b["protocol_id"],
                    from_version=b["from_version"],
                    to_version=b["to_version"],
                ),
                ok=True,
            )
        )

    @on(AmendmentDone)
    def _on_amendment(self, message: AmendmentDone) -> None:
        if message.ok:
            self.notify(message.text, timeout=15)
            self.load()
        else:
            self.notify(message.text, severity="error", timeout=30)

    def _local(self, ts: str) -> str:
        """A stored UTC time as the ward's local time, to the minute."""
        return parse_iso(ts).astimezone(zone(self.ward.session.ctx.zone)).strftime("%Y-%m-%d %H:%M")

    @on(DataTable.RowHighlighted, "#timeline")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        e = self.entries[int(event.row_key.value)]
        lines = [f"{e.type} · {e.user or ''} ({e.role or ''}) · {e.local_time[:16].replace('T', ' ')}"]
        if e.changes:
            lines += [f"  {c['field']}: {c['old']!r} → {c['new']!r}" for c in e.changes]
        else:
            lines.append("  " + e.summary)
        if e.reason:
            lines.append("  " + t("audit.reason", reason=e.reason))
        self.query_one("#p-detail", Static).update("\n".join(lines))

    def action_new_record(self) -> None:
        from .form_picker import FormPicker

        def chosen(name: str | None) -> None:
            if name:
                self.action_form(name)

        self.app.push_screen(FormPicker(self.ward, self.participant), chosen)

    def action_dose_wizard(self) -> None:
        """The guided dose (kit scan to review); the plain dose form stays under `n`."""
        from wardcrf.workflow import administration_visit

        from .administration_wizard import AdministrationWizard

        try:
            if not self.ward.call(
                administration_visit.uses_engine, self.participant
            ):  # their version decides
                self.ward.call(administration_visit.plan, self.participant)  # refused: says why, in one line
            wizard = AdministrationWizard(self.ward, self.participant)
        except Exception as exc:  # an unknown participant, a version the engine cannot run, a refusal to read
            self.notify(message_of(exc), severity="error")
            return
        self.app.push_screen(wizard)

    @work(thread=True, exclusive=True, group="randomize")
    def action_randomize(self) -> None:
        """Ask the levels the laptop's list needs, then allocate through the service (role checked there)."""
        from wardcrf.randomization import service

        try:
            factors = self.ward.call(service.factors_needed, self.participant)
            known = self.ward.call(service.levels_known, self.participant)
        except Exception as exc:
            self.post_message(self.RandomizeRefused(message_of(exc)))
            return
        self.post_message(self.FactorsNeeded(factors, known))

    @work(thread=True, exclusive=True, group="randomize")
    def _offer_after_enrollment(self) -> None:
        """Enrollment just saved: where a list waits for this participant, open the randomize dialog now."""
        from wardcrf.randomization import service

        try:
            if not self.ward.call(service.randomizable, self.participant):
                return
            factors = self.ward.call(service.factors_needed, self.participant)
            known = self.ward.call(service.levels_known, self.participant)
        except Exception as exc:
            self.post_message(self.RandomizeRefused(message_of(exc)))
            return
        self.post_message(self.FactorsNeeded(factors, known, after_enrollment=True))

    @on(Allocated)
    def _on_allocated(self, message: Allocated) -> None:
        self.notify(message.shown, timeout=30)
        self.load()

    @on(RandomizeRefused)
    def _on_randomize_refused(self, message: RandomizeRefused) -> None:
        if message.allocating:
            self.notify(message.text, severity="error", timeout=30)
        else:
            self.notify(message.text, severity="error")

    @on(FactorsNeeded)
    def _ask_levels(self, message: FactorsNeeded) -> None:
        from .dialogs.randomize import RandomizeDialog

        if message.after_enrollment:
            self._offer_randomize(True)

        def chosen(levels: dict[str, str] | None) -> None:
            if levels is not None:
                self._allocate(levels)

        self.app.push_screen(
            RandomizeDialog(
                self.participant,
                message.factors,
                known=message.known,
                after_enrollment=message.after_enrollment,
            ),
            chosen,
        )

    @work(thread=True, exclusive=True, group="randomize")
    def _allocate(self, levels: dict[str, str]) -> None:
        from wardcrf.randomization import service

        try:
            allocation = self.ward.call(service.allocate, self.participant, levels)
        except Exception as exc:
            self.post_message(self.RandomizeRefused(message_of(exc), allocating=True))
            return
        self.post_message(self.Allocated(allocation.shown()))

    def action_vitals_chart(self) -> None:
        from .vitals_chart import VitalsChart

        self.app.push_screen(VitalsChart(self.ward, self.participant))

    def action_form(self, name: str) -> None:
        from .form_picker import screen_for

        def saved(result: object) -> None:
            if result is not None and name == "enrollment":
                self._offer_after_enrollment()

        self.app.push_screen(screen_for(self.ward, name, self.participant), saved)
