"""A scored grid: any form that declares `sections` (docs/protocol.md, "Sections: a scored grid").

Laid out only from the declaration (`wardcrf.engine.form_sections.Grid`): each
section a column side by side (or one block under another when the terminal
is too narrow for the columns), titled with its label and, for a `sum = true`
section, its live subtotal; each group a titled block of rows, one cell per
field. In a titled group a field's label is shown without what the group's
labels share ("Right upper lobe, apical" under "Right upper lobe" reads
"apical"). The first trial's chest CT score is one such form: the lungs as columns,
the lobes as groups (format 1 declares the same grid as data,
`wardcrf/protocols/format1-workflow.toml`).

Each cell takes one key: a code's key (`0`-`9` for a whole-number code, the
first letter of any other: `n` for `ne`), Backspace to clear. A valid entry
moves on to the next cell in the key's own handler, so a reader can type the
scores in a row as fast as they like (the next key always reaches the next
cell: screens/widgets/typeahead.py); arrow keys move between cells (↑ ↓
within a section, ← → across to the same row of the next section); Tab
reaches the form's other fields. Anything else is refused on the spot with
the form validator's own message. The line on top is recomputed on every key
(`form_sections.tally`): the form's computed fields by their `compute`, each
`sum` section's subtotal, the cells holding each code that is no number
(`not evaluable 1`) and the cells still blank.

Saving is the generated form's: `workflow.submit` in a worker (roles and
rules are the service's), problems beside their cells, nothing lost on a
refusal, a lock or a language switch. The form's other fields are the
generated form's `FieldGroup`s (one above the grid, multiple choices below),
sharing the screen's values and problems; the cells are the grid's own, so
their values are stored as they are typed and their problems listed above
the grid.
"""

from __future__ import annotations

from decimal import Decimal
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
from wardcrf.engine import form_sections

from .form_screen import FormScreen
from .i18n import label_width, language, pad, t
from .keys import LANGUAGE
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.typeahead import deliver_now, focus_now

CELL_WIDTH = 4


class GridCell(Widget, can_focus=True):
    """One field's code: shows it, or `·` (blank); reports keys to the grid."""

    DEFAULT_CSS = """
    GridCell {
        width: 4;
        height: 1;
        content-align: center middle;
        background: $boost;
    }
    GridCell:focus {
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

        def __init__(self, cell: GridCell, text: str) -> None:
            super().__init__()
            self.cell = cell
            self.text = text

    class Move(Message):
        def __init__(self, cell: GridCell, direction: str) -> None:
            super().__init__()
            self.cell = cell
            self.direction = direction

    def __init__(self, name: str, value: Any, top: int | None, *, id: str) -> None:
        super().__init__(id=id, classes="grid-cell")
        self.field = name
        self.top = top  # the field's highest whole-number code: a cell at it is marked
        self.value: Any = value
        self._style_value()

    def render(self) -> str:
        return "·" if self.value is None else str(self.value)

    def set_value(self, value: Any) -> None:
        self.value = value
        self._style_value()
        self.refresh()

    def _style_value(self) -> None:
        n = form_sections.whole(self.value) if self.value is not None else None
        self.set_class(n == 0, "-zero")
        self.set_class(n is not None and self.top is not None and n > 0 and 2 * n > self.top, "-high")
        self.set_class(self.value is not None and n is None, "-other")

    async def on_key(self, event: events.Key) -> None:
        if event.key in ("backspace", "delete"):
            text = ""
        elif event.character and event.is_printable and event.key != "space":
            text = event.character
        else:
            return
        event.stop()
        event.prevent_default()
        # Handled now, not queued: the grid moves the focus before the next key is typed.
        await deliver_now(self.Typed(self, text), self)

    async def action_move(self, direction: str) -> None:
        await deliver_now(self.Move(self, direction), self)


def shared_prefix(labels: list[str]) -> str:
    """What a group's labels share ("Right upper lobe", "右上叶"), cut back to a word boundary."""
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


def without_prefix(label: str, prefix: str) -> str:
    """A label without its group's shared prefix ("apical", "尖段"); the whole label if nothing is left."""
    rest = label[len(prefix) :] if prefix and label.startswith(prefix) else label
    return rest.lstrip(" ,，、") or label


def number(value: Decimal | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value)


class SectionGridScreen(FormScreen):
    """Enter one record of `form`, whose fields its protocol version lays out as a grid."""

    CSS_PATH = ["form_screen.tcss", "section_grid.tcss"]  # type: ignore[assignment]  # noqa: RUF012
    AUTO_FOCUS = ".grid-cell"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
    ]

    def __init__(
        self,
        ward: Ward,
        form: str,
        participant: str | None,
        initial: dict[str, Any] | None = None,
        *,
        focus: str | None = None,
    ) -> None:
        super().__init__(ward, form, participant, initial, focus=focus)
        grid = form_sections.of(self.proto, form)
        if grid is None:
            raise ValueError(f"form {form!r} declares no sections in {self.proto.id} {self.proto.version}")
        self.grid = grid
        self.cells = grid.fields
        self.shapes = form_sections.shapes_of(self.form)
        self._columns_width = 0

    # -- layout ----------------------------------------------------------------------
    def _others(self) -> list[protocols.Field]:
        return [f for f in self._fields() if f.name not in self.cells]

    def _label(self, name: str, lang: str) -> str:
        return protocols.tr(self.form.fields[name].label, lang)

    def compose(self) -> ComposeResult:
        lang = language()
        yield StatusBar(self.ward, self.form_title())
        yield Static(self._totals_text(), id="grid-total")
        yield Static("", id="grid-problems", classes="field-problem refusal")
        others = self._others()
        before = [f for f in others if f.type != "choice" or not f.multiple]
        after = [f for f in others if f not in before]
        with VerticalScroll(id="form"):
            yield Static(
                t("grid.keys_help", keys=self._keys_text(self.cells)), classes="muted", id="grid-help"
            )
            if before:
                yield self._field_group(before, id="grid-before")
            with Vertical(id="grid-sections"):
                widths = []
                for section in self.grid.sections:
                    widths.append(self._section_width(section, lang))
                    yield from self._section(section, lang)
                self._columns_width = sum(widths)
            if after:
                yield self._field_group(after, id="grid-after")
        yield Static(t("form.required_note"), id="form-message", classes="muted")
        yield WardFooter()

    def _names(self, section: form_sections.Section, lang: str) -> dict[str, str]:
        """The label each cell's row shows (in a titled group, without what the group's labels share)."""
        names: dict[str, str] = {}
        for group in section.groups:
            labels = [self._label(f, lang) for f in group.fields]
            prefix = shared_prefix(labels) if group.label and len(labels) > 1 else ""
            for f, label in zip(group.fields, labels, strict=True):
                names[f] = without_prefix(label, prefix)
        return names

    def _section_width(self, section: form_sections.Section, lang: str) -> int:
        rows = label_width(list(self._names(section, lang).values())) + 2 + CELL_WIDTH
        titles = label_width(
            [self._section_text(section)] + [protocols.tr(g.label, lang) for g in section.groups]
        )
        return max(rows, titles) + 2  # the column's right padding

    def _section(self, section: form_sections.Section, lang: str) -> ComposeResult:
        names = self._names(section, lang)
        column = label_width(list(names.values()))
        with Vertical(classes="grid-section", id=f"section-{section.code}"):
            yield Static(
                self._section_text(section), classes="grid-section-title", id=f"section-title-{section.code}"
            )
            for group in section.groups:
                if group.label:
                    yield Static(protocols.tr(group.label, lang), classes="grid-group")
                for f in group.fields:
                    with Horizontal(classes="grid-row", id=f"row-{f}"):
                        yield Label(pad(names[f], column), classes="grid-label")
                        yield GridCell(f, self.values.get(f), self._top(f), id=f"field-{f}")

    def _top(self, name: str) -> int | None:
        numbers = [n for c in self.shapes[name].codes if (n := form_sections.whole(c)) is not None]
        return max(numbers) if numbers else None

    def _keys_text(self, names: tuple[str, ...] | list[str]) -> str:
        """The keys the cells take, as the help line and a refusal say them ("0-4, n = not evaluable")."""
        lang = language()
        seen: dict[str, str] = {}
        for name in names:
            f = self.form.fields[name]
            for c in f.choices:
                k = form_sections.key_of(c.code)
                if k is not None and k not in seen:
                    seen[k] = "" if form_sections.whole(c.code) is not None else protocols.tr(c.label, lang)
        digits = sorted(int(k) for k, label in seen.items() if not label)
        parts = []
        if digits:
            run = digits == list(range(digits[0], digits[-1] + 1)) and len(digits) > 2
            parts.append(f"{digits[0]}-{digits[-1]}" if run else ", ".join(map(str, digits)))
        parts += [f"{k} = {label}" for k, label in seen.items() if label]
        return ", ".join(parts)

    def _tally(self) -> form_sections.Tally:
        return form_sections.tally(self.grid, self.form, self.values)

    def _section_text(self, section: form_sections.Section, tally: form_sections.Tally | None = None) -> str:
        label = protocols.tr(section.label, language())
        if not section.sum:
            return label
        return f"{label} · {number((tally or self._tally()).subtotal(section.code))}"

    def _totals_text(self, tally: form_sections.Tally | None = None) -> str:
        lang = language()
        tally = tally or self._tally()
        parts = [f"{self._label(name, lang)} {number(value)}" for name, value in tally.computed]
        by_code = {s.code: s for s in self.grid.sections}
        parts += [f"{protocols.tr(by_code[code].label, lang)} {n}" for code, n in tally.subtotals]
        labels = {str(c.code): c.label for name in self.cells for c in self.form.fields[name].choices}
        parts += [f"{protocols.tr(labels[code], lang)} {n}" for code, n in tally.others]
        if tally.blank:
            parts.append(t("grid.blank", n=tally.blank))
        return " · ".join(parts)

    def _show_totals(self) -> None:
        if not self.is_mounted:
            return
        tally = self._tally()  # once per key: the computed fields are evaluated here
        self.query_one("#grid-total", Static).update(self._totals_text(tally))
        for section in self.grid.sections:
            if section.sum:
                title = self.query_one(f"#section-title-{section.code}", Static)
                title.update(self._section_text(section, tally))

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """Sections side by side when every column fits the terminal, else one block under another."""
        if self.is_mounted:
            fits = self._columns_width <= self.app.size.width - 2
            self.query_one("#grid-sections").set_class(fits, "-columns")

    # -- values ----------------------------------------------------------------------
    def _cell(self, name: str) -> GridCell:
        return self.query_one(f"#field-{name}", GridCell)

    @on(GridCell.Typed)
    def _typed(self, event: GridCell.Typed) -> None:
        cell, text = event.cell, event.text
        f = self.form.fields[cell.field]
        if text == "":
            cell.set_value(None)
            self.values[cell.field] = None
            self._mark(cell.field, "")
            self._show_totals()
            return
        candidate = form_sections.keys(self.shapes[f.name]).get(text.lower(), text)
        ctx = validation.Context(now=now_utc(), zone=self.ward.session.ctx.zone, user=self.ward.user)
        checked = validation.check(self.form, {f.name: candidate}, ctx, partial=True)
        problem = checked.problems.get(f.name)
        if problem:
            self._mark(f.name, f"{problem} — {t('grid.cell_hint', keys=self._keys_text([f.name]))}")
            return
        value = checked.values[f.name]
        cell.set_value(value)
        self.values[f.name] = value
        self._mark(f.name, "")
        self._show_totals()
        self._step(cell.field, "next")

    @on(GridCell.Move)
    def _moved(self, event: GridCell.Move) -> None:
        self._step(event.cell.field, event.direction)

    def _step(self, name: str, direction: str) -> None:
        """Focus the neighbouring cell (or the next field after the last cell)."""
        sections = self.grid.sections
        at = next(i for i, s in enumerate(sections) if name in s.fields)
        column = sections[at].fields
        i = column.index(name)
        target = name
        if direction == "next":
            j = self.cells.index(name) + 1
            if j >= len(self.cells):
                self.focus_next()
                return
            target = self.cells[j]
        elif direction == "down":
            target = column[min(i + 1, len(column) - 1)]
        elif direction == "up":
            target = column[max(i - 1, 0)]
        elif direction in ("left", "right"):
            k = at + (1 if direction == "right" else -1)
            if 0 <= k < len(sections):
                other = sections[k].fields
                target = other[min(i, len(other) - 1)]
        focus_now(self._cell(target))

    # -- problems ----------------------------------------------------------------------
    def _mark(self, name: str, problem: str) -> None:
        super()._mark(name, problem)
        if name not in self.cells or not self.is_mounted:
            return
        cells = self.query(f"#field-{name}")
        if cells:
            cells.first().set_class(bool(problem), "-invalid")
        lang = language()
        lines = [f"{self._label(s, lang)}: {self.problems[s]}" for s in self.cells if s in self.problems]
        box = self.query_one("#grid-problems", Static)
        if len(lines) > 3:
            missing = sum(1 for s in self.cells if self.problems.get(s) == "required")
            lines = [x for x in lines if not x.endswith(": required")][:3]
            if missing:
                lines.append(t("grid.missing", n=missing, keys=self._keys_text(self.cells)))
        box.update("\n".join(lines))
        box.set_class(bool(lines), "-shown")

    def on_mount(self) -> None:  # FieldForm's own on_mount runs too (Textual calls each class's)
        # the field groups show their own problems; the cells' are listed above the grid
        for name in self.cells:
            if name in self.problems:
                self._mark(name, self.problems[name])
        self._show_totals()
        self._fit()
