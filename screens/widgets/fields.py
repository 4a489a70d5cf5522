"""Field rows: what every form on the TUI is built from (issue 16: one form framework).

A form's fields are `FieldSpec`s, whoever declares them: the protocol file
(`FieldSpec.of(field)`: a record form's fields, the dose wizard's steps, the
fields around the CT grid) or a screen itself (the cold chain's custody
forms: `FIELDS`, labels and hints as message ids). A `FieldGroup` lays some
or all of them out, one row each: label (translated; `*` when required), the
widget its kind asks for, the unit beside it (when the group has a unit
column), the problem line under it.

The kinds: ``text``, ``choice`` (a drop-down), ``choices`` (a selection
list), ``boolean`` (yes/no; the value is True/False), ``photo`` (a protocol
photo field: items typed or picked into one line, listed under the row),
``path`` (a file, typed or picked with F4), ``kit`` (one scanned kit id:
Enter shows it as the domain stores it, or refuses it and the cursor stays),
``kits`` (a list of scanned kit ids, each checked against the site's id rule
as it is scanned, `EntryList`) and ``photos`` (a list of photos entered one
at a time).

Values are checked as they are typed, each by its own check: a protocol field
by the same validator the service uses (`wardcrf.forms.check`, one field at a
time: a hard-range value is refused on the spot with the allowed range; a
soft-range value is marked and the reason is asked on save), a screen's own
field by its `check`. `check_own()` runs the screen's own checks over every
field, blanks included (before anything is signed or saved); `check_all()`
checks a protocol step (blanks against `required`). A problem is shown under
its field and the row's label turns red (`mark`).

The group keeps what was typed in the `values` dict it was given (shared
with the owning screen), so a screen that recomposes (language switch) or
is hidden behind the lock loses nothing: call `remember()` before
recomposing and build the group again from the same dict. Widget ids are
``{prefix}{stem}-{name}`` (stem ``field``; the cold chain's forms use
``cc``), ``{prefix}problem-{name}``, ``{prefix}row-{name}``, so several
groups of the same form (pre- and post-dose vitals) can live on one screen;
a stem other than ``field`` also names the row's classes (``cc-label``...).

A photo field lists the photos it holds under its row (``{prefix}photos-{name}``),
one line per item, with what the photo picker found for each chosen file when
the owning screen passes its `photo_notes`. A screen that needs other lines
under a field overrides `below_field`.

Enter moves on like Tab (barcode scanners end each code with Enter); moves
are made at once (`focus_now`, `WardInput`), so keys typed in a burst land in
the field the keys before them left focused (`typeahead.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, SelectionList, Static

from wardcrf import forms as validation
from wardcrf import ids
from wardcrf import protocol as protocols
from wardcrf.clock import now_utc
from wardcrf.errors import Refused, WardError, is_confirmable

from ..errors import for_screen, message_of
from ..i18n import label_width, language, pad, t
from .entry_list import EntryList
from .typeahead import WardInput, WardSelect, WardSelectionList, focus_now

MAX_LABEL = 26

KINDS = ("text", "choice", "choices", "boolean", "photo", "path", "kit", "kits", "photos")
LISTS = ("kits", "photos")
"""Kinds entered one item at a time into a list under the field (`EntryList`)."""
BROWSABLE = ("photo", "photos", "path")
"""Kinds F4 picks a file for: the photo picker (``photo``) or the path dialog."""


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


def kit_id(raw: str) -> str:
    """A scanned kit id as the domain stores it (refused: `WardError`)."""
    return ids.normalise(ids.KIT, raw)


def kit_scanner(rule: ids.Rule) -> Callable[[str, list[str]], list[str]]:
    """A kit list's check of one scanner burst under the site's kit id rule (refused: `Refused`)."""

    def scan(raw: str, listed: list[str]) -> list[str]:
        got = ids.scan(raw, rule, like=listed)
        if not got.ok:
            raise Refused(str(got.error))
        return list(got.ids)

    return scan


def photo_entry(raw: str) -> str:
    """A photo as the service takes it: `@path`, a tray id or `sha256:<hex>` (a bare path gets its @)."""
    text = raw.strip()
    if (
        text
        and not text.startswith("@")
        and not text.startswith("sha256:")
        and Path(text).expanduser().is_file()
    ):
        return "@" + str(Path(text).expanduser())
    return text


Check = Callable[["FieldSpec", Any], str]
"""A screen's own check of one field: (the field, its value) -> the problem ('' when fine)."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a form: its name, its kind, and where its words and checks come from.

    A protocol field (`of`) takes its label, unit, choices, range hint,
    `required` and check from the protocol file; a screen's own field names
    its label and hint as message ids and may bring its `check`.
    """

    name: str
    label: str = ""
    """Message id of the label (a screen's own field)."""
    kind: str = "text"
    hint: str = ""
    """Message id of the placeholder (a screen's own field)."""
    check: Check | None = None
    """A screen's own check (a protocol field is checked by the protocol's validator)."""
    field: protocols.Field | None = None
    """The protocol's field, when the protocol file declares it."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @classmethod
    def of(cls, f: protocols.Field) -> FieldSpec:
        """The row for a protocol field."""
        if f.type == "choice":
            kind = "choices" if f.multiple else "choice"
        elif f.type in ("boolean", "photo"):
            kind = f.type
        else:
            kind = "text"
        return cls(f.name, kind=kind, field=f)

    @property
    def required(self) -> bool:
        return self.field is not None and self.field.required

    @property
    def default(self) -> Any:
        return self.field.default if self.field is not None else None

    @property
    def unit(self) -> str:
        return (self.field.unit or "") if self.field is not None else ""

    @property
    def choices(self) -> tuple[protocols.Choice, ...]:
        return self.field.choices if self.field is not None else ()

    def label_in(self, lang: str) -> str:
        """The label in `lang`, without the required mark."""
        return protocols.tr(self.field.label, lang) if self.field is not None else t(self.label)

    def placeholder(self) -> str:
        if self.field is not None:
            return range_hint(self.field)
        return t(self.hint) if self.hint else ""


def blank(value: Any) -> bool:
    return value in (None, "", [])


def whole_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` alone takes "²" and "٣", which `int` then refuses or reads."""
    return text.isascii() and text.isdigit()


class FieldGroup(Vertical):
    """Rows for some fields of one form: a protocol form's (`form`), or a screen's own (`specs`)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+z", "undo_item", "key.undo_item")]

    DEFAULT_CSS = """
    FieldGroup { height: auto; }
    FieldGroup .field-row { height: auto; margin-top: 1; }
    FieldGroup .field-label { padding: 0 1 0 0; }
    FieldGroup .field-input { width: 1fr; }
    FieldGroup .field-input:focus, FieldGroup .field-input:focus-within,
    FieldGroup .field-list:focus-within > Input {
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

    class Scanned(Message):
        """Enter in a ``kit`` field: the id as stored (`problem` ''), or why it is not one."""

        def __init__(self, group: FieldGroup, name: str, problem: str) -> None:
            super().__init__()
            self.group = group
            self.name = name
            self.problem = problem

    def __init__(
        self,
        form: protocols.Form | None = None,
        *,
        zone: str,
        user: str,
        values: dict[str, Any],
        problems: dict[str, str] | None = None,
        names: list[str] | None = None,
        specs: Sequence[FieldSpec] | None = None,
        prefix: str = "",
        stem: str = "field",
        units: bool = True,
        label_cells: int | None = None,
        max_label: int = MAX_LABEL,
        photo_notes: dict[str, str] | None = None,
        kit_rule: ids.Rule | None = None,
        scan_gap_s: float | None = None,
        id: str | None = None,
    ) -> None:
        """`form`: the protocol form whose fields (`names`, default every enterable one) are laid
        out; or `specs`: a screen's own fields. `units`: a unit column beside the widgets;
        `label_cells`: a label column shared with rows outside the group, else as wide as the
        widest label up to `max_label` cells.
        `kit_rule`, `scan_gap_s`: the site's kit id rule and the scanner profile's gap, for
        ``kits`` lists."""
        super().__init__(id=id)
        self._form = form
        self.zone = zone
        self.user = user
        self.values = values
        self.problems: dict[str, str] = problems if problems is not None else {}
        self.prefix = prefix
        self.stem = stem
        self.units = units
        self.label_cells = label_cells  # a label column shared with rows outside the group
        self.max_label = max_label
        self.photo_notes: dict[str, str] = photo_notes if photo_notes is not None else {}
        """What the photo picker found for a chosen file (`@path` -> "name · JPEG 640×480 · 52 KB")."""
        self.kit_rule = kit_rule
        self.scan_gap_s = scan_gap_s
        if specs is not None:
            self.fields = list(specs)
        elif form is not None:
            wanted = names if names is not None else list(form.fields)
            self.fields = [
                FieldSpec.of(form.fields[n])
                for n in wanted
                if n in form.fields and not form.fields[n].computed
            ]
        else:
            raise TypeError("a FieldGroup needs a protocol form or the screen's own specs")

    @property
    def form(self) -> protocols.Form:
        """The protocol form of these fields (a group of a screen's own fields has none)."""
        if self._form is None:
            raise TypeError("this group holds a screen's own fields, not a protocol form's")
        return self._form

    # -- ids -------------------------------------------------------------------------
    def wid(self, name: str) -> str:
        return f"{self.prefix}{self.stem}-{name}"

    def name_of(self, widget_id: str | None) -> str | None:
        head = f"{self.prefix}{self.stem}-"
        if not widget_id or not widget_id.startswith(head):
            return None
        name = widget_id.removeprefix(head)
        return name if self.holds(name) else None

    def holds(self, name: str) -> bool:
        """Whether `name` is one of this group's fields."""
        return any(f.name == name for f in self.fields)

    def spec(self, name: str | None) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def field_of(self, widget: Any) -> FieldSpec | None:
        """The field `widget` (or the widget it sits in: a list's text box) enters, if this group's."""
        node = widget
        while node is not None and node is not self:
            f = self.spec(self.name_of(getattr(node, "id", None)))
            if f is not None:
                return f
            node = getattr(node, "parent", None)
        return None

    def _role_classes(self, role: str) -> str:
        return f"field-{role}" if self.stem == "field" else f"field-{role} {self.stem}-{role}"

    # -- layout ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        lang = language()
        labels = {f.name: f.label_in(lang) + (" *" if f.required else "") for f in self.fields}
        width = self.label_cells or min(self.max_label, label_width(list(labels.values())))
        for f in self.fields:
            with Horizontal(classes=self._role_classes("row"), id=f"{self.prefix}row-{f.name}"):
                yield Label(pad(labels[f.name], width), classes=self._role_classes("label"))
                yield self._widget(f, lang)
                if self.units:
                    yield Label(f.unit, classes="field-unit")
            yield from self.below_field(f)
            yield Static(
                "",
                id=f"{self.prefix}problem-{f.name}",
                classes="field-problem",
            )

    def below_field(self, f: FieldSpec) -> ComposeResult:
        """Extra lines under a field's row: a photo field lists the photos it holds."""
        if f.kind == "photo":
            yield Static(self.photo_lines(f.name), id=f"{self.prefix}photos-{f.name}", classes="photo-list")

    def photo_lines(self, name: str) -> str:
        items = split_photo_items(str(self.values.get(name) or ""))
        if not items:
            return t("photo.field_none")
        return "\n".join(
            t("photo.field_item", n=i, what=self.photo_notes.get(item, item))
            for i, item in enumerate(items, 1)
        )

    def photo_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.kind == "photo"]

    def _widget(self, f: FieldSpec, lang: str) -> Any:
        wid = self.wid(f.name)
        value = self.values.get(f.name)
        classes = self._role_classes("input")
        if f.kind == "choices":
            chosen = {str(v) for v in (value or [])}
            return WardSelectionList(
                *[(protocols.tr(c.label, lang), str(c.code), str(c.code) in chosen) for c in f.choices],
                id=wid,
                classes=f"{classes} field-multi",
                compact=True,
            )
        if f.kind == "choice":
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
                classes=classes,
                compact=True,
                prompt=t("form.choose"),
            )
        if f.kind == "boolean":
            current = None if value in (None, "") else ("yes" if value in (True, "yes") else "no")
            return WardSelect(
                [(t("form.yes"), "yes"), (t("form.no"), "no")],
                value=current if current is not None else Select.NULL,
                id=wid,
                classes=classes,
                compact=True,
                prompt=t("form.choose"),
            )
        if f.kind in LISTS:
            kits = f.kind == "kits"
            return EntryList(
                normalise=kit_id if kits else photo_entry,
                scan=kit_scanner(self.kit_rule) if kits and self.kit_rule is not None else None,
                entries=value or [],
                placeholder=f.placeholder(),
                gap_s=self.scan_gap_s if kits else None,  # photos: paths typed by hand, F4
                id=wid,
                classes="field-list",
            )
        return WardInput(
            value="" if value is None else str(value),
            placeholder=f.placeholder(),
            id=wid,
            classes=classes,
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

    def read(self, f: FieldSpec, widget: Any) -> Any:
        if isinstance(widget, EntryList):
            return widget.values()
        if isinstance(widget, SelectionList):
            codes = list(widget.selected)
            return [c.code for c in f.choices if str(c.code) in codes]
        if isinstance(widget, Select):
            if widget.is_blank():
                return None
            if f.kind == "boolean":
                return widget.value == "yes"
            return next((c.code for c in f.choices if str(c.code) == widget.value), widget.value)
        return widget.value

    def raw(self) -> dict[str, Any]:
        """This group's typed values for the service: blanks left out (defaults apply)."""
        self.remember()
        names = {f.name for f in self.fields}
        out = {k: v for k, v in self.values.items() if k in names and not blank(v)}
        for f in self.photo_fields():
            if isinstance(out.get(f.name), str):
                out[f.name] = split_photo_items(out[f.name])
        return out

    def set_value(self, name: str, value: str) -> None:
        """Put text into a field's input (a stamped time, a lot's label data), or choose the option with that
        code in a drop-down (a registered lot's product); it is checked as typed."""
        spec = next((f for f in self.fields if f.name == name), None)
        if spec is not None and spec.kind == "choice":
            if any(str(c.code) == value for c in spec.choices):
                self.query_one(f"#{self.wid(name)}", Select).value = value
                self.values[name] = value
            return
        widget = self.query_one(f"#{self.wid(name)}", Input)
        widget.value = value
        self.values[name] = value

    def add_item(self, name: str, item: str) -> None:
        """Add one item to a list or photo field (a file picked with F4)."""
        widget = self.query_one(f"#{self.wid(name)}")
        if isinstance(widget, EntryList):
            widget.add(item)
        elif isinstance(widget, Input):
            f = self.spec(name)
            if f is not None and f.kind == "photo":
                items = split_photo_items(widget.value)
                if item not in items:
                    items.append(item)
                # the change handler stores the value and relists the photos
                widget.value = ", ".join(items)
            else:
                widget.value = item.removeprefix("@") if f is not None and f.kind == "path" else item

    # -- inline checks ---------------------------------------------------------------
    @on(Input.Submitted, ".field-input")
    def _next_field(self, event: Input.Submitted) -> None:
        """Enter moves on, like Tab: barcode scanners end each code with Enter.

        In a ``kit`` field it first shows the id as the domain stores it; an id
        that is not one is refused there, and the cursor stays with the refused
        scan selected, so the next scan replaces it (as in a kit list).
        """
        f = self.spec(self.name_of(event.input.id))
        if f is not None and f.kind == "kit" and event.value.strip():
            try:
                event.input.value = kit_id(event.value)
            except WardError as exc:
                problem = message_of(exc)
                self.mark(f.name, problem)
                event.input.select_all()  # refused, the cursor stays: the next scan replaces it
                self.post_message(self.Scanned(self, f.name, problem))
                return
            self.mark(f.name, "")
            self.post_message(self.Scanned(self, f.name, ""))
        self.screen.focus_next()

    @on(Input.Changed, ".field-input")
    @on(Select.Changed, ".field-input")
    @on(SelectionList.SelectedChanged, ".field-input")
    def _changed(self, event: Any) -> None:
        widget = event.control if hasattr(event, "control") else event.selection_list
        f = self.spec(self.name_of(widget.id))
        if f is None:
            return
        value = self.read(f, widget)
        self.values[f.name] = value
        self.check_one(f, value)
        if f.kind == "photo":
            shown = self.query(f"#{self.prefix}photos-{f.name}")
            if shown:
                shown.first(Static).update(self.photo_lines(f.name))

    def check_one(self, f: FieldSpec, value: Any) -> str:
        """Check one value as typed; marks and returns the problem ('' when fine).

        Blanks are not checked as typed (`check_all`, `check_own` do), nor
        photos and scanned ids (the service, and the scan itself, check those).
        """
        if blank(value) or f.kind in ("photo", "kit", *LISTS):
            problem = ""
        elif f.field is not None and self._form is not None:
            ctx = validation.Context(now=now_utc(), zone=self.zone, user=self.user)
            checked = validation.check(self._form, {f.name: value}, ctx, partial=True)
            problem = checked.problems.get(f.name, "")
        elif f.check is not None:
            problem = f.check(f, value)
        else:
            problem = ""
        self.mark(f.name, problem)
        return problem

    def check_all(self) -> dict[str, str]:
        """Every field of the group checked as typed, blanks against `required` (no defaults).

        A required field with a default in the protocol (a time defaulting to
        now) is not reported blank: the service fills it in. A screen's own
        check sees blanks too (`check_own`).
        """
        self.remember()
        problems: dict[str, str] = {}
        for f in self.fields:
            value = self.values.get(f.name)
            if f.check is not None:
                problem = f.check(f, value)
                self.mark(f.name, problem)
            elif blank(value):
                problem = "required" if f.required and f.default is None else ""
                self.mark(f.name, problem)
            else:
                problem = self.check_one(f, value)
            if problem:
                problems[f.name] = problem
        return problems

    def check_own(self) -> dict[str, str]:
        """The screen's own checks (`FieldSpec.check`) of every field, blanks included, marked.

        What a screen refuses before anything is signed or sent; the protocol's
        fields are the service's to check on save.
        """
        self.remember()
        problems: dict[str, str] = {}
        for f in self.fields:
            if f.check is None:
                continue
            problem = f.check(f, self.values.get(f.name))
            self.mark(f.name, problem)
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
    def _focused_photo_field(self) -> FieldSpec | None:
        focused = self.screen.focused if self.is_attached else None
        f = self.spec(self.name_of(focused.id if focused is not None else None))
        return f if f is not None and f.kind == "photo" else None

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
            widget = found.first()
            focus_now(widget.input if isinstance(widget, EntryList) else widget)
