"""The chest CT score as an 18-segment grid, with the total updating live.

The segments are laid out as a radiologist reads the scan: the patient's
right lung on the left of the screen (10 segments: upper 3, middle 2,
lower 5), the left lung on the right (8: upper 4 with the lingula, lower 4),
each lobe under its name. Labels come from the protocol file in the current
language; the lobe name is the part the lobe's segment labels share.

Each cell takes one key: a digit 0-4, `n` for not evaluable, Backspace to
clear. A valid entry moves on to the next segment in the key's own handler,
so a reader can type the 18 scores in a row as fast as they like (the next
key always reaches the next segment: screens/widgets/typeahead.py); arrow keys move between cells (↑ ↓ within a lung,
← → across); Tab reaches the other fields (timepoint, scan date, lesion
form and shape). Anything else is refused on the spot with the form
validator's own message. The total, the subtotal of each lung, the
segments not evaluable and those still blank are recomputed on every key by
`wardcrf.workflow.clinical.ct_summary`, on the same rule the service uses
when it computes the saved total.

Saving is the generated form's: `workflow.submit` in a worker, problems
beside their cells, nothing lost on a refusal, a lock or a language switch.
The other fields are the generated form's `FieldGroup`s (one above the grid,
one below), sharing the screen's values and problems; the segment cells are
the grid's own, so their values are stored as they are typed and their
problems listed above the grid.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Label, Static

from wardcrf import forms as validation
from wardcrf import protocol as protocols
from wardcrf.clock import now_utc
from wardcrf.workflow.clinical import CT_LOBES, CT_SEGMENTS, NOT_EVALUABLE, ct_summary

from .form_screen import FormScreen
from .i18n import label_width, language, pad, t
from .keys import LANGUAGE
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.typeahead import deliver_now, focus_now

CT_FORM = "ct_score"


class SegmentCell(Widget, can_focus=True):
    """One segment's score: shows 0-4, `ne` or `·` (blank); reports keys to the grid."""

    DEFAULT_CSS = """
    SegmentCell {
        width: 4;
        height: 1;
        content-align: center middle;
        background: $boost;
    }
    SegmentCell:focus {
        background: $accent;
        color: $text;
        text-style: bold;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move('up')", show=False),
        Binding("down", "move('down')", show=False),
        Binding("left", "move('left')", show=False),
        Binding("right", "move('right')", show=False),
        Binding("enter", "move('next')", show=False),
    ]

    class Typed(Message):
        """A key typed in a cell: a character, or "" to clear."""

        def __init__(self, cell: SegmentCell, text: str) -> None:
            super().__init__()
            self.cell = cell
            self.text = text

    class Move(Message):
        def __init__(self, cell: SegmentCell, direction: str) -> None:
            super().__init__()
            self.cell = cell
            self.direction = direction

    def __init__(self, segment: str, value: Any, *, id: str) -> None:
        super().__init__(id=id, classes="segment-cell")
        self.segment = segment
        self.value: Any = value
        self._style_value()

    def render(self) -> str:
        if self.value is None:
            return "·"
        return str(self.value)

    def set_value(self, value: Any) -> None:
        self.value = value
        self._style_value()
        self.refresh()

    def _style_value(self) -> None:
        for score in range(5):
            self.set_class(self.value == score, f"-s{score}")
        self.set_class(self.value == NOT_EVALUABLE, "-ne")

    async def on_key(self, event: events.Key) -> None:
        if event.key in ("backspace", "delete"):
            text = ""
        elif event.character and event.is_printable and event.key != "space":
            text = event.character
        else:
            return
        event.stop()
        event.prevent_default()
        # Handled now, not queued: the grid moves the focus before the next score is typed.
        await deliver_now(self.Typed(self, text), self)

    async def action_move(self, direction: str) -> None:
        await deliver_now(self.Move(self, direction), self)


def lobe_title(labels: list[str]) -> str:
    """The lobe's name: what its segments' labels share ("Right upper lobe", "右上叶")."""
    if not labels:
        return ""
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    if prefix.isascii() and any(len(x) > len(prefix) and x[len(prefix)].isalnum() for x in labels):
        # cut back to a word boundary ("Right lower lobe, a" -> "Right lower lobe")
        prefix = prefix[: max(prefix.rfind(" "), prefix.rfind(","), 0)]
    return prefix.rstrip(" ,，、")


def segment_title(label: str, lobe: str) -> str:
    """A segment's label without its lobe's name ("apical", "尖段")."""
    rest = label[len(lobe) :] if lobe and label.startswith(lobe) else label
    return rest.lstrip(" ,，、") or label


class CTGridScreen(FormScreen):
    """Enter one CT score for `participant` on the 18-segment grid."""

    CSS_PATH = ["form_screen.tcss", "ct_grid.tcss"]  # type: ignore[assignment]  # noqa: RUF012
    AUTO_FOCUS = "#field-r_upper_apical"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
    ]

    def __init__(
        self,
        ward: Any,
        participant: str | None,
        initial: dict[str, Any] | None = None,
        *,
        focus: str | None = None,
    ) -> None:
        super().__init__(ward, CT_FORM, participant, initial, focus=focus)

    # -- layout ----------------------------------------------------------------------
    def _others(self) -> list[protocols.Field]:
        return [f for f in self._fields() if f.name not in CT_SEGMENTS]

    def compose(self) -> ComposeResult:
        lang = language()
        title = protocols.tr(self.form.label, lang)
        who = f" · {self.participant}" if self.participant else ""
        yield StatusBar(self.ward, f"{title}{who}")
        yield Static(self._totals_text(), id="ct-total")
        yield Static("", id="ct-problems", classes="field-problem refusal")
        others = self._others()
        before = [f for f in others if f.type != "choice" or not f.multiple]
        after = [f for f in others if f not in before]
        with VerticalScroll(id="form"):
            yield Static(t("ct.keys_help"), classes="muted", id="ct-help")
            if before:
                yield self._field_group(before, id="ct-before")
            with Horizontal(id="ct-grid"):
                for lung in ("right", "left"):
                    yield from self._lung(lung, lang)
            if after:
                yield self._field_group(after, id="ct-after")
        yield Static(t("form.required_note"), id="form-message", classes="muted")
        yield WardFooter()

    def _lung(self, lung: str, lang: str) -> ComposeResult:
        lobes = CT_LOBES[lung]
        labels = {s: protocols.tr(self.form.fields[s].label, lang) for segs in lobes.values() for s in segs}
        titles: dict[str, str] = {}
        names: dict[str, str] = {}
        for lobe, segs in lobes.items():
            titles[lobe] = lobe_title([labels[s] for s in segs])
            for s in segs:
                names[s] = segment_title(labels[s], titles[lobe])
        width = label_width(list(names.values()))
        with Vertical(classes="ct-lung", id=f"lung-{lung}"):
            yield Static(self._lung_text(lung), classes="ct-lung-title", id=f"lung-title-{lung}")
            for lobe, segs in lobes.items():
                yield Static(titles[lobe], classes="ct-lobe")
                for s in segs:
                    with Horizontal(classes="ct-row", id=f"row-{s}"):
                        yield Label(pad(names[s], width), classes="ct-label")
                        yield SegmentCell(s, self.values.get(s), id=f"field-{s}")

    def _lung_text(self, lung: str) -> str:
        summary = ct_summary(self.values)
        return t(f"ct.{lung}_lung", score=summary.right if lung == "right" else summary.left)

    def _totals_text(self) -> str:
        s = ct_summary(self.values)
        text = t("ct.total", total=s.total, right=s.right, left=s.left, ne=s.not_evaluable)
        if s.blank:
            text += " · " + t("ct.blank", n=s.blank)
        return text

    def _show_totals(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#ct-total", Static).update(self._totals_text())
        for lung in ("right", "left"):
            self.query_one(f"#lung-title-{lung}", Static).update(self._lung_text(lung))

    # -- values ----------------------------------------------------------------------
    def _cell(self, segment: str) -> SegmentCell:
        return self.query_one(f"#field-{segment}", SegmentCell)

    @on(SegmentCell.Typed)
    def _typed(self, event: SegmentCell.Typed) -> None:
        cell, text = event.cell, event.text
        f = self.form.fields[cell.segment]
        if text == "":
            cell.set_value(None)
            self.values[cell.segment] = None
            self._mark(cell.segment, "")
            self._show_totals()
            return
        candidate = NOT_EVALUABLE if text.lower() == "n" else text
        ctx = validation.Context(now=now_utc(), zone=self.ward.session.ctx.zone, user=self.ward.user)
        checked = validation.check(self.form, {f.name: candidate}, ctx, partial=True)
        problem = checked.problems.get(f.name)
        if problem:
            self._mark(f.name, f"{problem} — {t('ct.cell_hint')}")
            return
        value = checked.values[f.name]
        cell.set_value(value)
        self.values[f.name] = value
        self._mark(f.name, "")
        self._show_totals()
        self._step(cell.segment, "next")

    @on(SegmentCell.Move)
    def _moved(self, event: SegmentCell.Move) -> None:
        self._step(event.cell.segment, event.direction)

    def _step(self, segment: str, direction: str) -> None:
        """Focus the neighbouring cell (or the next field after the last segment)."""
        lung = "right" if segment.startswith("r_") else "left"
        column = [s for segs in CT_LOBES[lung].values() for s in segs]
        other = [s for segs in CT_LOBES["left" if lung == "right" else "right"].values() for s in segs]
        i = column.index(segment)
        target: str | None = segment
        if direction == "next":
            j = CT_SEGMENTS.index(segment) + 1
            if j >= len(CT_SEGMENTS):
                self.focus_next()
                return
            target = CT_SEGMENTS[j]
        elif direction == "down":
            target = column[min(i + 1, len(column) - 1)]
        elif direction == "up":
            target = column[max(i - 1, 0)]
        elif (direction == "right" and lung == "right") or (direction == "left" and lung == "left"):
            target = other[min(i, len(other) - 1)]
        if target:
            focus_now(self._cell(target))

    # -- problems ----------------------------------------------------------------------
    def _mark(self, name: str, problem: str) -> None:
        super()._mark(name, problem)
        if name not in CT_SEGMENTS or not self.is_mounted:
            return
        cells = self.query(f"#field-{name}")
        if cells:
            cells.first().set_class(bool(problem), "-invalid")
        lang = language()
        lines = [
            f"{protocols.tr(self.form.fields[s].label, lang)}: {self.problems[s]}"
            for s in CT_SEGMENTS
            if s in self.problems
        ]
        box = self.query_one("#ct-problems", Static)
        if len(lines) > 3:
            missing = sum(1 for s in CT_SEGMENTS if self.problems.get(s) == "required")
            lines = [x for x in lines if not x.endswith(": required")][:3]
            if missing:
                lines.append(t("ct.missing", n=missing))
        box.update("\n".join(lines))
        box.set_class(bool(lines), "-shown")

    def on_mount(self) -> None:
        # the field groups show their own problems; the cells' are listed above the grid
        for segment in CT_SEGMENTS:
            if segment in self.problems:
                self._mark(segment, self.problems[segment])
        self._show_totals()
