"""Protocol-generated field rows, reusable by any screen that enters part of a form.

A `FieldGroup` shows some (or all) fields of one protocol form: translated
label (from the protocol file), `*` when required, the widget (text input,
drop-down, selection list, yes/no), the unit beside it, and a problem line
under it. Values are checked as they are typed by the same validator the
service uses (`wardcrf.forms.check`, one field at a time): a hard-range
value is refused on the spot with the allowed range; a soft-range value is
marked (the reason is asked on save).

The group keeps what was typed in the `values` dict it was given (shared
with the owning screen), so a screen that recomposes (language switch) or
is hidden behind the lock loses nothing: call `remember()` before
recomposing and build the group again from the same dict. Widget ids are
``{prefix}field-{name}``, ``{prefix}problem-{name}``, ``{prefix}row-{name}``
so several groups of the same form (pre- and post-dose vitals) can live on
one screen.

A photo field lists the photos it holds under its row (``{prefix}photos-{name}``),
one line per item, with what the photo picker found for each chosen file when
the owning screen passes its `photo_notes`. A screen that needs other lines
under a field overrides `below_field`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, SelectionList, Static

from wardcrf import forms as validation
from wardcrf import protocol as protocols
from wardcrf.clock import now_utc
from wardcrf.errors import is_confirmable

from ..errors import for_screen
from ..i18n import label_width, language, pad, t
from .typeahead import WardInput, WardSelect, WardSelectionList, focus_now

MAX_LABEL = 26


_PHOTO_ITEM_START = re.compile(r",\s*(?=@|sha256:|[0-9a-fA-F]{8,64}\s*(?:,|$))")


def split_photo_items(text: str) -> list[str]:
    """A photo field's typed text -> its items (`@path`, tray id, `sha256:...`).

    Items are separated by commas, but only a comma that starts another item
    splits, so a picked file whose path holds a comma stays whole.
    """
    return [x.strip() for x in _PHOTO_ITEM_START.split(text or "") if x.strip()]


def range_hint(f: protocols.Field) -> str:
    """The placeholder of a text input: the allowed range, or the date format."""
    if f.hard:
        lo, hi = f.hard
        return f"{validation._fmt(lo)}–{validation._fmt(hi)}"
    if f.type == "date":
        return "YYYY-MM-DD"
    if f.type == "datetime":
        return "HH:MM / YYYY-MM-DD HH:MM"
    return ""


def is_soft(problem: str) -> bool:
    """A problem the person may confirm with a reason (a soft range, a likely duplicate).

    The domain flags it (`wardcrf.errors.Confirmable`); its words are not read for it.
    """
    return is_confirmable(problem)


class FieldGroup(Vertical):
    """Rows for the named fields of one protocol form (default: every enterable field)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+z", "undo_item", "key.undo_item")]

    DEFAULT_CSS = """
    FieldGroup { height: auto; }
    FieldGroup .field-row { height: auto; margin-top: 1; }
    FieldGroup .field-label { padding: 0 1 0 0; }
    FieldGroup .field-input { width: 1fr; }
    FieldGroup .field-input:focus, FieldGroup .field-input:focus-within {
        background: $accent 25%;
        text-style: bold;
    }
    FieldGroup .field-multi { height: auto; max-height: 8; }
    FieldGroup .field-unit { width: 12; padding: 0 0 0 1; color: $text-muted; }
    FieldGroup .field-problem { display: none; height: auto; padding-left: 2; }
    FieldGroup .field-problem.-shown { display: block; }
    FieldGroup .field-problem.soft { color: $warning; }
    FieldGroup .field-row.-invalid .field-label { color: $error; text-style: bold; }
    FieldGroup .photo-list { height: auto; padding-left: 2; color: $text-muted; }
    """

    def __init__(
        self,
        form: protocols.Form,
        *,
        zone: str,
        user: str,
        values: dict[str, Any],
        problems: dict[str, str] | None = None,
        names: list[str] | None = None,
        prefix: str = "",
        label_cells: int | None = None,
        photo_notes: dict[str, str] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.form = form
        self.zone = zone
        self.user = user
        self.values = values
        self.problems: dict[str, str] = problems if problems is not None else {}
        self.prefix = prefix
        self.label_cells = label_cells  # a label column shared with rows outside the group
        self.photo_notes: dict[str, str] = photo_notes if photo_notes is not None else {}
        """What the photo picker found for a chosen file (`@path` -> "name · JPEG 640×480 · 52 KB")."""
        wanted = names if names is not None else list(form.fields)
        self.fields = [form.fields[n] for n in wanted if n in form.fields and not form.fields[n].computed]

    # -- ids -------------------------------------------------------------------------
    def wid(self, name: str) -> str:
        return f"{self.prefix}field-{name}"

    def name_of(self, widget_id: str | None) -> str | None:
        head = f"{self.prefix}field-"
        if not widget_id or not widget_id.startswith(head):
            return None
        name = widget_id.removeprefix(head)
        return name if self.holds(name) else None

    def holds(self, name: str) -> bool:
        """Whether `name` is one of this group's fields."""
        return any(f.name == name for f in self.fields)

    # -- layout ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        lang = language()
        labels = {f.name: protocols.tr(f.label, lang) + (" *" if f.required else "") for f in self.fields}
        width = self.label_cells or min(MAX_LABEL, label_width(list(labels.values())))
        for f in self.fields:
            with Horizontal(classes="field-row", id=f"{self.prefix}row-{f.name}"):
                yield Label(pad(labels[f.name], width), classes="field-label")
                yield self._widget(f, lang)
                yield Label(f.unit or "", classes="field-unit")
            yield from self.below_field(f)
            yield Static(
                "",
                id=f"{self.prefix}problem-{f.name}",
                classes="field-problem",
            )

    def below_field(self, f: protocols.Field) -> ComposeResult:
        """Extra lines under a field's row: a photo field lists the photos it holds."""
        if f.type == "photo":
            yield Static(self.photo_lines(f.name), id=f"{self.prefix}photos-{f.name}", classes="photo-list")

    def photo_lines(self, name: str) -> str:
        items = split_photo_items(str(self.values.get(name) or ""))
        if not items:
            return t("photo.field_none")
        return "\n".join(
            t("photo.field_item", n=i, what=self.photo_notes.get(item, item))
            for i, item in enumerate(items, 1)
        )

    def photo_fields(self) -> list[protocols.Field]:
        return [f for f in self.fields if f.type == "photo"]

    def _widget(self, f: protocols.Field, lang: str) -> Any:
        wid = self.wid(f.name)
        value = self.values.get(f.name)
        if f.type == "choice" and f.multiple:
            chosen = {str(v) for v in (value or [])}
            return WardSelectionList(
                *[(protocols.tr(c.label, lang), str(c.code), str(c.code) in chosen) for c in f.choices],
                id=wid,
                classes="field-input field-multi",
                compact=True,
            )
        if f.type == "choice":
            options = [(protocols.tr(c.label, lang), str(c.code)) for c in f.choices]
            current = (
                str(value)
                if value is not None and any(str(c.code) == str(value) for c in f.choices)
                else None
            )
            return WardSelect(
                options,
                value=current if current is not None else Select.NULL,
                id=wid,
                classes="field-input",
                compact=True,
                prompt=t("form.choose"),
            )
        if f.type == "boolean":
            current = None if value is None else ("yes" if value in (True, "yes") else "no")
            return WardSelect(
                [(t("form.yes"), "yes"), (t("form.no"), "no")],
                value=current if current is not None else Select.NULL,
                id=wid,
                classes="field-input",
                compact=True,
                prompt=t("form.choose"),
            )
        return WardInput(
            value="" if value is None else str(value),
            placeholder=range_hint(f),
            id=wid,
            classes="field-input",
            compact=True,
        )

    def on_mount(self) -> None:
        # `problems` may be shared with fields outside the group (the CT grid's cells)
        for f in self.fields:
            if f.name in self.problems:
                self.mark(f.name, self.problems[f.name])

    # -- values ----------------------------------------------------------------------
    def remember(self) -> None:
        """Collect every widget's value into `values` (before a recompose or a save)."""
        if not self.is_mounted:
            return
        for f in self.fields:
            widgets = self.query(f"#{self.wid(f.name)}")
            if widgets:
                self.values[f.name] = self.read(f, widgets.first())

    def read(self, f: protocols.Field, widget: Any) -> Any:
        if isinstance(widget, SelectionList):
            codes = list(widget.selected)
            return [c.code for c in f.choices if str(c.code) in codes]
        if isinstance(widget, Select):
            if widget.is_blank():
                return None
            if f.type == "boolean":
                return widget.value == "yes"
            return next((c.code for c in f.choices if str(c.code) == widget.value), widget.value)
        return widget.value

    def raw(self) -> dict[str, Any]:
        """This group's typed values for the service: blanks left out (defaults apply)."""
        self.remember()
        names = {f.name for f in self.fields}
        out = {k: v for k, v in self.values.items() if k in names and v not in (None, "", [])}
        for f in self.photo_fields():
            if isinstance(out.get(f.name), str):
                out[f.name] = split_photo_items(out[f.name])
        return out

    def set_value(self, name: str, value: str) -> None:
        """Put text into a field's input (a stamped time) and check it."""
        widget = self.query_one(f"#{self.wid(name)}", Input)
        widget.value = value
        self.values[name] = value

    # -- inline checks ---------------------------------------------------------------
    @on(Input.Submitted, ".field-input")
    def _next_field(self) -> None:
        """Enter moves on, like Tab: barcode scanners end each code with Enter."""
        self.screen.focus_next()

    @on(Input.Changed, ".field-input")
    @on(Select.Changed, ".field-input")
    @on(SelectionList.SelectedChanged, ".field-input")
    def _changed(self, event: Any) -> None:
        widget = event.control if hasattr(event, "control") else event.selection_list
        name = self.name_of(widget.id)
        f = self.form.fields.get(name or "")
        if f is None:
            return
        value = self.read(f, widget)
        self.values[f.name] = value
        self.check_one(f, value)
        if f.type == "photo":
            shown = self.query(f"#{self.prefix}photos-{f.name}")
            if shown:
                shown.first(Static).update(self.photo_lines(f.name))

    def check_one(self, f: protocols.Field, value: Any) -> str:
        """Check one value as typed; marks and returns the problem ('' when fine)."""
        if f.type == "photo" or value in (None, "", []):
            self.mark(f.name, "")
            return ""
        ctx = validation.Context(now=now_utc(), zone=self.zone, user=self.user)
        checked = validation.check(self.form, {f.name: value}, ctx, partial=True)
        problem = checked.problems.get(f.name, "")
        self.mark(f.name, problem)
        return problem

    def check_all(self) -> dict[str, str]:
        """Every field of the group checked as typed, blanks against `required` (no defaults).

        A required field with a default in the protocol (a time defaulting to
        now) is not reported blank: the service fills it in.
        """
        self.remember()
        problems: dict[str, str] = {}
        for f in self.fields:
            value = self.values.get(f.name)
            if value in (None, "", []):
                if f.required and f.default is None:
                    problems[f.name] = "required"
                    self.mark(f.name, "required")
                else:
                    self.mark(f.name, "")
                continue
            problem = self.check_one(f, value)
            if problem:
                problems[f.name] = problem
        return problems

    def mark(self, name: str, problem: str) -> None:
        """Show `problem` under the field (soft-range: marked, asks a reason on save)."""
        self.problems[name] = problem
        if not problem:
            self.problems.pop(name, None)
        found = self.query(f"#{self.prefix}problem-{name}")
        if not found:
            return
        line = found.first(Static)
        soft = is_soft(problem)
        text = for_screen(problem)  # local times, no command-line asides
        if soft:
            text = for_screen(problem.split(";")[0]) + " — " + t("form.soft_reason")
        line.update(text)
        line.set_class(bool(problem), "-shown")
        line.set_class(bool(problem) and not soft, "refusal")
        line.set_class(soft, "soft")
        row = self.query(f"#{self.prefix}row-{name}")
        if row:
            row.first().set_class(bool(problem) and not soft, "-invalid")

    def show_problems(self, problems: dict[str, str]) -> str | None:
        """Mark the service's problems on this group's fields; returns the first field marked."""
        first = None
        for f in self.fields:
            self.mark(f.name, problems.get(f.name, ""))
            if f.name in problems and first is None:
                first = f.name
        return first

    # -- list fields -----------------------------------------------------------------
    def _focused_photo_field(self) -> protocols.Field | None:
        focused = self.screen.focused if self.is_attached else None
        name = self.name_of(focused.id if focused is not None else None)
        f = self.form.fields.get(name or "")
        return f if f is not None and f.type == "photo" else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo_item":
            return self._focused_photo_field() is not None
        return True

    def action_undo_item(self) -> None:
        """ctrl+z in a photo field: drop the last photo listed (a wrong pick or scan)."""
        f = self._focused_photo_field()
        if f is None:
            return
        widget = self.query_one(f"#{self.wid(f.name)}", Input)
        items = split_photo_items(widget.value)
        if items:
            widget.value = ", ".join(items[:-1])

    def focus_field(self, name: str) -> None:
        found = self.query(f"#{self.wid(name)}")
        if found:
            focus_now(found.first())
