"""A scored grid a form declares: `[[forms.NAME.sections]]` (docs/protocol.md, "Sections: a scored grid").

A form that declares sections is entered on a grid (screens/section_grid.py)
instead of one field under another: each section a column (or, on a narrow
terminal, a block), each of its groups a titled block of cells, one cell per
field, each cell typed with one key (`0`-`9` for a whole-number code, a
code's first letter for any other: `n` for `ne`). A section with `sum = true`
shows its subtotal live; the form's computed fields (`compute`) are shown live
too, evaluated over the values typed by the same interpreter the save runs.
The fields a section lays out are the form's own: they are validated, saved
and amended as any record is (`workflow.submit`); the declaration only says
where each cell sits and what is added up.

Format 2 declares it in the protocol file, checked when the file is read
(`check`, from `engine.model`: every problem `FILE:LINE: key.path: problem`).
A format-1 version runs on the engine's declarations (its re-encoding's
sections); one the engine cannot run has no grid (its records are read field
under field, and none is saved under it).

Nothing here names a form or a field: everything comes from the declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..protocol_file import Text

if TYPE_CHECKING:
    from ..protocol import Form, Protocol

MAX_SECTIONS = 8
"""Sections of one form: columns side by side on a terminal."""
MAX_GROUPS = 12
"""Titled blocks in one section."""
MAX_CELLS = 40
"""Cells in one section (a column of a terminal): the CT score's longest is 10."""
MAX_KEYS = 36
"""Codes of one cell's field: each is typed with its own key (ten digits and 26 letters)."""

Err = Callable[[tuple[str | int, ...], str], None]


@dataclass(frozen=True)
class Shape:
    """What the grid asks of a field: its type, whether it takes several codes or is computed, its codes."""

    type: str
    multiple: bool = False
    computed: bool = False
    codes: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Group:
    label: Text  # {} for a section's plain `fields` (no title)
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    code: str
    label: Text
    sum: bool
    groups: tuple[Group, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for g in self.groups for f in g.fields)


@dataclass(frozen=True)
class Grid:
    """A form's declared grid: its sections, and its computed fields (name, expression) shown live."""

    form: str
    sections: tuple[Section, ...]
    computed: tuple[tuple[str, str], ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """Every cell's field, section by section, in the order they are typed."""
        return tuple(f for s in self.sections for f in s.fields)

    def section_of(self, name: str) -> Section:
        return next(s for s in self.sections if name in s.fields)


# -- the declaration, checked --------------------------------------------------------------------


def whole(code: Any) -> int | None:
    """A code that is a whole number (`2`, `"2"`), else None: what a `sum` adds."""
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    text = str(code)
    digits = text[1:] if text.startswith("-") else text
    return int(text) if 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit() else None


def key_of(code: Any) -> str | None:
    """The one key that types `code` in a cell: its digit (0-9), or the first letter of a text code."""
    n = whole(code)
    if n is not None:
        return str(n) if 0 <= n <= 9 else None
    text = str(code)
    return text[0].lower() if text and text[0].isascii() and text[0].isalpha() else None


def keys(shape: Shape) -> dict[str, str | int]:
    """key -> code of a cell's field (each code has its own key: `check` refuses a field where not)."""
    return {k: c for c in shape.codes if (k := key_of(c)) is not None}


def check(err: Err, path: tuple[str | int, ...], sections: Any, fields: Mapping[str, Shape]) -> None:
    """Every problem of a form's `sections` (a list of tables), each `err(key path, problem)`.

    Refused: no section, too many sections, groups or cells; a section with both
    or neither of `fields` and `groups`, or an empty one; a code used twice; a
    field the form does not declare, or laid out twice; a field a cell cannot
    take (not a single choice; a computed one; a code with no key of its own);
    `sum = true` over a field with no whole-number code.
    """
    if not isinstance(sections, Sequence) or isinstance(sections, str) or not sections:
        err(path, "no section: a form that declares sections lays out at least one")
        return
    if len(sections) > MAX_SECTIONS:
        err((*path, MAX_SECTIONS), f"{len(sections)} sections; a form lays out at most {MAX_SECTIONS}")
        return
    codes: set[str] = set()
    placed: dict[str, str] = {}
    for i, section in enumerate(sections):
        p = (*path, i)
        if not isinstance(section, Mapping):
            err(p, "a section is a table: { code, label, fields or groups, sum }")
            continue
        code = str(section.get("code"))
        if code in codes:
            err((*p, "code"), f"{code!r} is used twice: a section's code is unique in its form")
        codes.add(code)
        has_fields, has_groups = "fields" in section, "groups" in section
        if has_fields == has_groups:
            err(p, "a section lays out either `fields` or `groups` (titled blocks), one of the two")
            continue
        if has_groups:
            groups = section["groups"]
            if not groups:
                err((*p, "groups"), "no group: a section's `groups` lists at least one")
                continue
            if len(groups) > MAX_GROUPS:
                err((*p, "groups"), f"{len(groups)} groups; a section has at most {MAX_GROUPS}")
                continue
            lists = [((*p, "groups", j, "fields"), g.get("fields") or ()) for j, g in enumerate(groups)]
        else:
            lists = [((*p, "fields"), section["fields"])]
        cells = sum(len(names) for _, names in lists)
        if cells > MAX_CELLS:
            err(p, f"{cells} cells; a section has at most {MAX_CELLS}")
            continue
        for where, names in lists:
            if not names:
                err(where, "no field: each list of a section names at least one")
            for k, name in enumerate(names):
                _cell(err, (*where, k), str(name), fields, bool(section.get("sum")), placed)


def _cell(
    err: Err, p: tuple[str | int, ...], name: str, fields: Mapping[str, Shape], summed: bool, placed: dict
) -> None:
    shape = fields.get(name)
    if shape is None:
        err(p, f"field {name!r} is not declared in this form ({', '.join(sorted(fields)) or 'none'})")
        return
    where = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in p[-4:]).replace(".[", "[")
    if name in placed:
        err(p, f"field {name!r} is laid out twice (first at {placed[name]}); each field is one cell")
        return
    placed[name] = where
    if shape.type != "choice" or shape.multiple or shape.computed:
        what = "computed" if shape.computed else "a multiple choice" if shape.multiple else shape.type
        err(p, f"field {name!r} cannot be a cell: a cell is a single choice typed with one key, not {what}")
        return
    if len(shape.codes) > MAX_KEYS:
        err(p, f"field {name!r} has {len(shape.codes)} codes; a cell takes at most {MAX_KEYS} (one key each)")
        return
    by_key: dict[str, str | int] = {}
    for code in shape.codes:
        k = key_of(code)
        if k is None or k in by_key:
            why = "no key of its own" if k is None else f"the key {k!r} of {by_key[k]!r}"
            err(
                p,
                f"field {name!r}: code {code!r} has {why}; a cell's codes are typed with one key each "
                "(whole numbers 0-9, or text codes starting with different letters)",
            )
            return
        by_key[k] = code
    if summed and not any(whole(c) is not None for c in shape.codes):
        err(
            p,
            f"sum = true adds whole-number codes, and field {name!r} has none "
            f"({', '.join(map(str, shape.codes))}): leave it out of the section or drop `sum`",
        )


def shapes_of_spec(fields: Mapping[str, Any]) -> dict[str, Shape]:
    """The shapes of a format-2 form's `[forms.NAME.fields]` tables (before the ward's `Form` exists)."""
    out: dict[str, Shape] = {}
    for name, spec in fields.items():
        if not isinstance(spec, Mapping):
            continue
        codes: tuple[str | int, ...] = tuple(
            c["code"]
            for c in spec.get("choices") or ()
            if isinstance(c, Mapping) and isinstance(c.get("code"), str | int)
        )
        out[str(name)] = Shape(
            str(spec.get("type", "text")), bool(spec.get("multiple")), "compute" in spec, codes
        )
    return out


def shapes_of(form: Form) -> dict[str, Shape]:
    """The shapes of the ward's `Form` (either format)."""
    return {
        n: Shape(f.type, f.multiple, f.computed, tuple(c.code for c in f.choices))
        for n, f in form.fields.items()
    }


# -- the grid of a form ---------------------------------------------------------------------------


def _text(value: Any) -> Text:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {"en": str(value)} if value else {}


def build(form: str, sections: Sequence[Mapping[str, Any]], computed: Sequence[tuple[str, str]]) -> Grid:
    """The `Grid` of a checked declaration."""
    out = []
    for s in sections:
        if "groups" in s:
            groups = tuple(Group(_text(g.get("label")), tuple(map(str, g["fields"]))) for g in s["groups"])
        else:
            groups = (Group({}, tuple(map(str, s["fields"]))),)
        out.append(Section(str(s["code"]), _text(s.get("label")), bool(s.get("sum")), groups))
    return Grid(form, tuple(out), tuple(computed))


def of(proto: Protocol, form: str) -> Grid | None:
    """The grid `form` declares in this version (None: a form laid out field under field).

    The file's `[[forms.NAME.sections]]` (checked when it was read) and its
    fields' `compute`. None for a version the engine does not run (a format-1
    version stored before the engine ran format 1 that it cannot run).
    """
    if proto.engine is not None:
        spec = proto.engine.data.get("forms", {}).get(form, {})
        if not spec.get("sections"):
            return None
        computed = [
            (str(n), str(f["compute"])) for n, f in spec.get("fields", {}).items() if f.get("compute")
        ]
        return build(form, spec["sections"], computed)
    return None


# -- what the grid shows as it is typed ------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """The running state of a grid: computed fields, subtotals, cells per other code, cells still blank."""

    computed: tuple[tuple[str, Decimal | None], ...]  # (field, value; None: not known from what is typed)
    subtotals: tuple[tuple[str, int], ...]  # (section code, sum of its whole-number codes), `sum` sections
    others: tuple[tuple[str, int], ...]  # (a code that is no number, cells holding it), in the grid's order
    blank: int

    def subtotal(self, section: str) -> int | None:
        return dict(self.subtotals).get(section)


def tally(grid: Grid, form: Form, values: Mapping[str, Any]) -> Tally:
    """What the grid shows for `values` (the cells typed so far); the computed fields by their `compute`,
    over the values in hand only (the saved values are the service's, on the same rule)."""
    subtotals = []
    for s in grid.sections:
        if s.sum:
            subtotals.append((s.code, sum(whole(values.get(f)) or 0 for f in s.fields)))
    others: dict[str, int] = {}
    for name in grid.fields:
        for c in form.fields[name].choices:
            if whole(c.code) is None:
                others.setdefault(str(c.code), 0)
    blank = 0
    for name in grid.fields:
        v = values.get(name)
        if v in (None, ""):
            blank += 1
        elif whole(v) is None and str(v) in others:
            others[str(v)] += 1
    return Tally(_computed(grid, form, values), tuple(subtotals), tuple(others.items()), blank)


def _computed(grid: Grid, form: Form, values: Mapping[str, Any]) -> tuple[tuple[str, Decimal | None], ...]:
    if not grid.computed:
        return ()
    from . import interpreter

    specs = {n: {"type": f.type, "multiple": f.multiple} for n, f in form.fields.items()}
    typed = {k: v for k, v in values.items() if k in specs}
    record = interpreter.Rec(form.name, interpreter.typed_values(specs, typed))
    snap = interpreter.Snapshot(
        records={form.name: [record]}, now=datetime.now(UTC), zone=ZoneInfo("UTC"), record=record
    )
    out: list[tuple[str, Decimal | None]] = []
    for name, expression in grid.computed:
        try:
            value = interpreter.value_of(expression, snap)
        except (interpreter.EvalError, ValueError):  # a type clash, or a name only the save can read
            value = None
        out.append((name, value if isinstance(value, Decimal) else None))
    return tuple(out)
