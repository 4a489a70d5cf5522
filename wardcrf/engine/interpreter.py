"""The interpreter of protocol expressions, format 2, over one participant's records.

docs/protocol.md ("Expressions", "Values and types", "Blank and unknown")
is the specification; `expressions.parse` gives the tree and the model's
reader has already checked every name in its context. This walks the tree
over a `Snapshot`: nothing is executed (no `eval`, `exec`, `compile`), and
nothing can be read but the participant's records, their anchors, the
record or administration in hand and the moment of the question.

Blank is `None`, and so is *unknown*: a comparison with a blank is unknown,
`and`/`or`/`not` follow Kleene's three-valued logic, arithmetic on a blank is
blank, `is blank` is always true or false, `count` and `exists` never blank.
Each use decides what unknown means (criteria: not assessable; gates'
`require`: refuses; `when`: does not apply): `truth` gives the three values.

Types are kept apart as the specification says: a date and a datetime are
never compared, text is not ordered, a number is not a date. A type clash
the reader could not see (it checks names, not every type) is an
`EvalError` naming the column, which callers turn into a refusal naming the
declaration: never a traceback, never a guess.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from wardcrf.engine import expressions, memo
from wardcrf.engine.expressions import Node

Value = Any  # None (blank/unknown), bool, Decimal, str, date, datetime, timedelta, tuple (codes), Rec

_UNITS = {
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_RECORD_DATE_FIELDS = ("time", "date", "start", "onset")


class EvalError(ValueError):
    """An expression that cannot be evaluated over these values (a type clash), with its column."""

    def __init__(self, column: int, problem: str) -> None:
        super().__init__(f"column {column}: {problem}")
        self.column = column
        self.problem = problem


@dataclass(frozen=True)
class Rec:
    """One record of the participant: its form, its values (typed by `typed_values`), its event id."""

    form: str
    values: Mapping[str, Value]
    event_id: str = ""
    order: int = 0  # position in the log: ties of the record date are broken by it

    def when(self) -> date | datetime | None:
        for name in _RECORD_DATE_FIELDS:
            v = self.values.get(name)
            if isinstance(v, (date, datetime)):
                return v
        return None


@dataclass(frozen=True)
class Snapshot:
    """Everything an expression may read, frozen at the moment of the question."""

    records: Mapping[str, Sequence[Rec]]  # form -> the participant's records, in log order
    now: datetime  # aware
    zone: ZoneInfo
    anchors: Mapping[str, date | datetime | None] = field(default_factory=dict)
    participant: Mapping[str, str | None] = field(default_factory=dict)  # arm, site, id
    record: Rec | None = None  # the record being checked (record context)
    administration: Mapping[str, Value] | None = None  # the administration being checked (a gate)
    assessment: date | None = None  # @assessment in criteria
    anchor_day: int = 0  # [calendar] anchor_day, for day_of()
    outer: tuple[Rec, ...] = ()  # the enclosing records, innermost first, inside a `where`

    def with_record(self, rec: Rec) -> Snapshot:
        """The snapshot inside `FORM where ...`: `rec` in hand, the current record enclosing it."""
        enclosing = (self.record, *self.outer) if self.record is not None else self.outer
        return replace(self, record=rec, outer=enclosing)


def typed_values(fields: Mapping[str, Mapping[str, Any]], raw: Mapping[str, Any]) -> dict[str, Value]:
    """A record's stored JSON values as the interpreter's types, by each field's declared type.

    A stored value that does not read as its type is blank (the form's own
    validation refused it when it was typed; an old record keeps its text).
    """
    if isinstance(fields, MappingProxyType):
        typers = _typers(fields)
        out: dict[str, Value] = {}
        for name, value in raw.items():
            # blank (`_typed`'s first rule) here, without a call: most stored values are not
            out[name] = (
                None if value is None or value == "" or value == [] else typers.get(name, _as_text)(value)
            )
        return out
    typed: dict[str, Value] = {}
    for name, value in raw.items():
        spec = fields.get(name, {})
        typed[name] = _typed(spec.get("type", "text"), bool(spec.get("multiple")), value)
    return typed


def values_on_read(
    fields: Mapping[str, Mapping[str, Any]],
) -> Callable[[Mapping[str, Any]], Mapping[str, Value]]:
    """What types a record of a form with `fields` as `typed_values(fields, raw)` does, each value when it is
    first read (`ValuesOnRead`): the same mapping, name for name and value for value, for any name asked.
    The model's frozen fields only (their typers are chosen once per form); other fields, or stored data
    that is not a JSON object, are typed at once, as `typed_values` types them."""
    if not isinstance(fields, MappingProxyType):
        return functools.partial(typed_values, fields)
    typers = _typers(fields)

    def typing(raw: Mapping[str, Any]) -> Mapping[str, Value]:
        return ValuesOnRead(typers, raw) if type(raw) is dict else typed_values(fields, raw)

    return typing


_ABSENT = object()


class ValuesOnRead(Mapping[str, Value]):
    """A record's values typed one by one as a rule reads them (`typed_on_read`).

    The ward queue's row reads two or three fields of a vital signs record (its
    time point, the administration it follows) and a rebuild derives every
    participant's row: typing the other values (temperature, pulse, pressures,
    saturation: a `Decimal` each) was a third of the derive. A value, once typed,
    is kept; a blank (nothing, "" or []) is None, as `typed_values` gives it."""

    __slots__ = ("_raw", "_typed", "_typers")

    def __init__(self, typers: Mapping[str, Callable[[Any], Value]], raw: dict[str, Any]) -> None:
        self._typers = typers
        self._raw = raw
        self._typed: dict[str, Value] = {}

    def get(self, name: str, default: Any = None) -> Any:
        hit = self._typed.get(name, _ABSENT)
        if hit is not _ABSENT:
            return hit
        value = self._raw.get(name, _ABSENT)
        if value is _ABSENT:
            return default
        typed = self._typed[name] = (
            None if value is None or value == "" or value == [] else self._typers.get(name, _as_text)(value)
        )
        return typed

    def __getitem__(self, name: str) -> Value:
        if name not in self._raw:
            raise KeyError(name)
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"ValuesOnRead({dict(self.items())!r})"


_TYPERS: dict[int, tuple[Mapping[str, Mapping[str, Any]], dict[str, Callable[[Any], Value]]]] = {}


def _typers(fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Callable[[Any], Value]]:
    """The typer (`_typer`) of each field of a model's frozen form fields (`model.freeze`: read-only), by
    name, worked out once per form instead of once per value typed (a rebuild types every record of every
    participant). Kept while the fields object lives (it is held here, so its id names no other)."""
    return memo.once_per(
        _TYPERS,
        fields,
        lambda: {
            name: _typer(spec.get("type", "text"), bool(spec.get("multiple")))
            for name, spec in fields.items()
        },
        limit=1024,
    )


def _typed(ftype: str, multiple: bool, value: Any) -> Value:
    """A stored value as field type `ftype` (`multiple`: a choice of several) reads it: blank for nothing
    stored, else its type's typer (`_typer`)."""
    if value is None or value == "" or value == []:
        return None
    return _typer(ftype, multiple)(value)


def _typer(ftype: Any, multiple: bool) -> Callable[[Any], Value]:
    """The function typing a stored value that is not blank as a field of type `ftype` reads it, chosen once
    per field, not per value: a stored quantity (`{"value": 60, "unit": "kg"}`) is its value; a value that
    does not read as its type is blank; a field of no type the interpreter knows keeps its text."""
    if ftype in ("number", "integer"):
        return _as_number
    if ftype == "boolean":
        return _as_boolean
    if ftype == "date":
        return _as_date
    if ftype == "datetime":
        return _as_datetime
    if ftype == "choice":
        return _as_choices if multiple else _as_choice
    return _as_text


_NOT_READ = (ValueError, InvalidOperation, TypeError)
"""What a stored value that does not read as its type raises while it is typed: it is blank."""


def _as_number(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if type(value) is int:  # not a bool; an integer's Decimal is its text's, digit for digit
        return Decimal(value)
    try:
        return None if isinstance(value, bool) else Decimal(str(value))
    except _NOT_READ:
        return None


def _as_boolean(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value if isinstance(value, bool) else None


def _as_date(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    try:
        return date.fromisoformat(str(value)[:10])
    except _NOT_READ:
        return None


def _as_datetime(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    try:
        dt = datetime.fromisoformat(str(value))
    except _NOT_READ:
        return None
    return dt if dt.tzinfo is not None else None


def _as_choices(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    try:
        return tuple(_code(v) for v in value) if isinstance(value, list) else (_code(value),)
    except _NOT_READ:
        return None


def _as_choice(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    try:
        return _code(value)
    except _NOT_READ:
        return None


def _as_text(value: Any) -> Value:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value if isinstance(value, str) else str(value)


def _whole(text: str) -> bool:
    """A choice code that is a whole number (`2`, `-1`): ASCII digits, at most 18."""
    digits = text[1:] if text.startswith("-") else text
    return 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()


def _code(v: Any) -> str:
    """Choice codes compare as text: `1` and `'1'` are one code (codes are strings or integers)."""
    if isinstance(v, (float, Decimal)) and v == int(v):
        return str(int(v))
    return str(v)


# -- evaluating ---------------------------------------------------------------------------------


def evaluate(tree: Node, snap: Snapshot) -> Value:
    """The value of a parsed expression over `snap`; `EvalError` on a type clash."""
    return _Eval(snap).visit(tree)


def value_of(text: str, snap: Snapshot) -> Value:
    """Parse (cached) and evaluate one expression."""
    return evaluate(_parsed(text), snap)


def truth(text: str, snap: Snapshot) -> bool | None:
    """True, False or None (unknown) for a condition; a non-boolean value is a type clash."""
    v = value_of(text, snap)
    if v is None or isinstance(v, bool):
        return v
    raise EvalError(1, f"this is not a condition: it gives {_kind(v)}, not true or false")


_PARSED: dict[str, Node] = {}


def _parsed(text: str) -> Node:
    hit = _PARSED.get(text)
    if hit is None:
        if len(_PARSED) > 4096:  # bounded: a protocol holds hundreds of expressions, not thousands
            _PARSED.clear()
        hit = _PARSED[text] = expressions.parse(text)
    return hit


_OWN: dict[str, tuple[str, ...] | None] = {}
_PURE = frozenset(
    {"or", "and", "not", "cmp", "in", "between", "isblank", "neg", "num", "dur", "str", "bool", "list"}
)
"""Node kinds whose value is a function of their operands' alone (no anchor, form, function or clock)."""


def own_fields(text: str) -> tuple[str, ...] | None:
    """The fields of the record in hand an expression reads, when its value is a function of their values
    alone: literals, bare field names (not `today`, `now`), comparisons and logic. None when it reads
    anything else (an anchor, another form, a function, the clock, arithmetic) or does not parse.

    Outside any enclosing record (`Snapshot.outer` empty) such an expression gives the same answer for
    every record holding the same values in those fields, whoever's they are: placing records in visits
    asks `timepoint == 'post_dose'` of every vital-signs record of every participant
    (`engine.visits.place`), so the answer is kept by those values. Worked out once per expression."""
    if text in _OWN:
        return _OWN[text]
    try:
        tree = _parsed(text)
    except Exception:  # a caller evaluating it meets the same error
        return None
    names: list[str] = []

    def walk(node: Any) -> bool:
        kind = node[0]
        if kind == "name":
            if node[1] in ("today", "now"):
                return False
            names.append(str(node[1]))
            return True
        if kind not in _PURE:
            return False
        if kind == "list":
            return all(walk(item) for item in node[1])
        return all(walk(part) for part in node[1:] if isinstance(part, tuple))

    found = tuple(dict.fromkeys(names)) if walk(tree) else None
    if len(_OWN) > 4096:
        _OWN.clear()
    _OWN[text] = found
    return found


def record_truth(
    text: str, snap: Snapshot, rec: Rec, within: Callable[[], Snapshot] | None = None
) -> bool | None:
    """`truth(text, snap.with_record(rec))` (`within`: what builds that snapshot, for a caller keeping it).

    An expression of the record's own fields alone (`own_fields`), asked outside any record, gives the same
    answer for every record holding the same values in them: it is kept by those values (and the type of
    each: `1` and `true` are not one value here), across records and participants. A type clash is not
    kept: it is raised each time, as `truth` raises it."""
    key = _own_key(text, snap, rec)
    if key is not None:
        hit = _TRUTHS.get(key, _UNKNOWN)
        if hit is not _UNKNOWN:
            return hit  # type: ignore[return-value]
    got = truth(text, within() if within is not None else snap.with_record(rec))
    if key is not None:
        if len(_TRUTHS) > 4096:
            _TRUTHS.clear()
        _TRUTHS[key] = got
    return got


_TRUTHS: dict[tuple[Any, ...], bool | None] = {}
_UNKNOWN = object()


def _own_key(text: str, snap: Snapshot, rec: Rec) -> tuple[Any, ...] | None:
    """(text, each field it reads: its value's type and value) when `record_truth`'s answer is a function
    of those, else None."""
    names = own_fields(text)
    if names is None or snap.record is not None or snap.outer:
        return None  # inside a record, a name may be an enclosing record's field
    values = rec.values
    if len(names) == 1:  # most conditions read one field (`timepoint == 'post_dose'`)
        v = values.get(names[0])
        key: tuple[Any, ...] = (text, (type(v), v))
    else:
        key = (text, *((type(v), v) for v in map(values.get, names)))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def blanks_of(text: str, snap: Snapshot) -> list[str]:
    """The names (form.field, @anchor) an expression reads that are blank: what makes it not assessable."""
    out: list[str] = []
    _Eval(snap, on_blank=out.append).visit(_parsed(text))
    return list(dict.fromkeys(out))


def _kind(v: Value) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, Decimal):
        return "a number"
    if isinstance(v, datetime):
        return "a datetime"
    if isinstance(v, date):
        return "a date"
    if isinstance(v, timedelta):
        return "a duration"
    if isinstance(v, tuple):
        return "a list of codes"
    if isinstance(v, Rec):
        return "a record"
    return "text"


class _Eval:
    def __init__(self, snap: Snapshot, on_blank: Callable[[str], None] | None = None) -> None:
        self.snap = snap
        self.on_blank = on_blank

    def blank(self, name: str) -> None:
        if self.on_blank is not None:
            self.on_blank(name)

    def visit(self, node: Node) -> Value:
        kind = node[0]
        method: Callable[[Node], Value] = getattr(self, "v_" + kind)
        return method(node)

    # -- literals and names
    def v_num(self, node: Node) -> Value:
        return Decimal(repr(node[1]))

    def v_dur(self, node: Node) -> Value:
        number, unit = node[1]
        return _UNITS[unit] * float(number)

    def v_str(self, node: Node) -> Value:
        return node[1]

    def v_bool(self, node: Node) -> Value:
        return node[1]

    def v_list(self, node: Node) -> Value:
        return tuple(self.visit(item) for item in node[1])

    def v_anchor(self, node: Node) -> Value:
        name = node[1]
        v = self.snap.assessment if name == "assessment" else self.snap.anchors.get(name)
        if v is None:
            self.blank(f"@{name}")
        return v

    def v_name(self, node: Node) -> Value:
        name = node[1]
        if name == "today":
            return self.snap.now.astimezone(self.snap.zone).date()
        if name == "now":
            return self.snap.now
        rec = self.snap.record
        if rec is None:
            raise EvalError(node[2], f"{name} is known only in a record's context")
        holder = rec
        if name not in rec.values:  # a field of an enclosing record (`where` inside a record's rule)
            holder = next((r for r in self.snap.outer if name in r.values), rec)
        v = holder.values.get(name)
        if v is None:
            self.blank(f"{holder.form}.{name}")
        return v

    def v_attr(self, node: Node) -> Value:
        base, attr, col = node[1], node[2], node[3]
        if base[0] == "name":
            name = base[1]
            if name == "participant":
                return self.snap.participant.get(attr)
            if name == "administration":
                if self.snap.administration is None:
                    raise EvalError(col, "administration is only known in a gate before a dose")
                return self.snap.administration.get(attr)
            if self.snap.record is not None and name in self.snap.record.values:
                raise EvalError(col, f"{name} is a field: it has no .{attr}")
            return self.once(name, attr)
        if base[0] == "attr" and base[1][0] == "name" and base[1][1] == "forms":
            return self.once(base[2], attr)
        rec = self.visit(base)
        if rec is None:
            return None
        if not isinstance(rec, Rec):
            raise EvalError(col, f".{attr} applies to a record, not {_kind(rec)}")
        v = rec.values.get(attr)
        if v is None:
            self.blank(f"{rec.form}.{attr}")
        return v

    def once(self, form: str, attr: str) -> Value:
        """A field of the participant's record of a once-per-participant form: the latest, blank if none."""
        recs = self.snap.records.get(form, ())
        v = recs[-1].values.get(attr) if recs else None
        if v is None:
            self.blank(f"{form}.{attr}")
        return v

    # -- logic
    def v_or(self, node: Node) -> Value:
        a = self.cond(node[1], 0)
        if a is True:
            return True
        b = self.cond(node[2], 0)
        if b is True:
            return True
        return None if a is None or b is None else False

    def v_and(self, node: Node) -> Value:
        a = self.cond(node[1], 0)
        if a is False:
            return False
        b = self.cond(node[2], 0)
        if b is False:
            return False
        return None if a is None or b is None else True

    def v_not(self, node: Node) -> Value:
        a = self.cond(node[1], node[2])
        return None if a is None else not a

    def cond(self, node: Node, col: int) -> bool | None:
        v = self.visit(node)
        if v is None or isinstance(v, bool):
            return v
        raise EvalError(col or _column(node), f"{_kind(v)} is not true or false")

    # -- comparisons
    def v_cmp(self, node: Node) -> Value:
        op, a, b, col = node[1], self.visit(node[2]), self.visit(node[3]), node[4]
        if a is None or b is None:
            return None
        return compare(op, a, b, col)

    def v_in(self, node: Node) -> Value:
        negate, left, right, col = node[1], self.visit(node[2]), self.visit(node[3]), node[4]
        if left is None or right is None:
            return None
        if not isinstance(right, tuple):
            raise EvalError(col, f"'in' needs a list or a multiple-choice field, not {_kind(right)}")
        found = any(item is not None and compare("==", left, item, col) for item in right)
        return found != negate

    def v_between(self, node: Node) -> Value:
        negate, col = node[1], node[5]
        x, low, high = (self.visit(n) for n in node[2:5])
        if x is None or low is None or high is None:
            return None
        inside = compare(">=", x, low, col) and compare("<=", x, high, col)
        return inside != negate

    def v_isblank(self, node: Node) -> Value:
        negate = node[1]
        saved, self.on_blank = self.on_blank, None  # `x is blank` is assessable whatever x holds
        try:
            v = self.visit(node[2])
        finally:
            self.on_blank = saved
        return (v is None) != negate

    # -- arithmetic
    def v_neg(self, node: Node) -> Value:
        v = self.visit(node[1])
        if v is None:
            return None
        if isinstance(v, (Decimal, timedelta)) and not isinstance(v, bool):
            return -v
        raise EvalError(node[2], f"cannot negate {_kind(v)}")

    def v_bin(self, node: Node) -> Value:
        op, a, b, col = node[1], self.visit(node[2]), self.visit(node[3]), node[4]
        if a is None or b is None:
            return None
        return arithmetic(op, a, b, col)

    # -- functions
    def v_call(self, node: Node) -> Value:
        name, args, col = node[1], node[2], node[3]
        fn = getattr(self, "f_" + name, None)
        spec = expressions.FUNCTIONS.get(name)
        if fn is None or spec is None:
            raise EvalError(col, f"unknown function {name}()")
        low, high, _ = spec
        if len(args) < low or (high is not None and len(args) > high):
            # The name checker refuses this in a protocol file; a tree evaluated without
            # it (a fuzzed one, a future caller) is refused here, never a crash.
            n = str(low) if high == low else f"{low} or more" if high is None else f"{low} to {high}"
            raise EvalError(col, f"{name}() takes {n} arguments, not {len(args)}")
        result: Value = fn(args, col)
        return result

    def matching(self, arg: Node) -> list[Rec]:
        """The participant's records of the form an argument names, filtered by its `where`, by record date."""
        form = arg[1]
        recs = list(self.snap.records.get(form, ()))
        if arg[0] == "filtered":
            cond = arg[3]
            kept = []
            for r in recs:
                inner = _Eval(self.snap.with_record(r))
                if inner.cond(cond, arg[4]) is True:
                    kept.append(r)
            recs = kept
        return sorted(recs, key=_record_key)

    def f_count(self, args: tuple[Node, ...], col: int) -> Value:
        return Decimal(len(self.matching(args[0])))

    def f_exists(self, args: tuple[Node, ...], col: int) -> Value:
        return bool(self.matching(args[0]))

    def f_first(self, args: tuple[Node, ...], col: int) -> Value:
        recs = self.matching(args[0])
        return recs[0] if recs else None

    def f_last(self, args: tuple[Node, ...], col: int) -> Value:
        recs = self.matching(args[0])
        return recs[-1] if recs else None

    def _field_values(self, arg: Node) -> tuple[str, list[Value]]:
        if arg[0] == "filtered":
            form, fld = arg[1], arg[2]
            recs = self.matching(("filtered", form, None, arg[3], arg[4]))
        else:  # FORM.FIELD
            form, fld = arg[1][1], arg[2]
            recs = self.matching(("name", form, arg[3]))
        return f"{form}.{fld}", [r.values.get(fld) for r in recs if r.values.get(fld) is not None]

    def f_latest(self, args: tuple[Node, ...], col: int) -> Value:
        name, values = self._field_values(args[0])
        if not values:
            self.blank(name)
        return values[-1] if values else None

    def f_earliest(self, args: tuple[Node, ...], col: int) -> Value:
        name, values = self._field_values(args[0])
        if not values:
            self.blank(name)
        return values[0] if values else None

    def _dates(self, args: tuple[Node, ...], col: int) -> tuple[date, date] | None:
        a, b = (self.visit(x) for x in args)
        if a is None or b is None:
            return None
        return self.as_date(a, col), self.as_date(b, col)

    def as_date(self, v: Value, col: int) -> date:
        if isinstance(v, datetime):
            return v.astimezone(self.snap.zone).date()
        if isinstance(v, date):
            return v
        raise EvalError(col, f"needs a date, not {_kind(v)}")

    def f_years(self, args: tuple[Node, ...], col: int) -> Value:
        d = self._dates(args, col)
        if d is None:
            return None
        a, b = d
        n = b.year - a.year - ((b.month, b.day) < (a.month, a.day))
        return Decimal(n)

    def f_months(self, args: tuple[Node, ...], col: int) -> Value:
        d = self._dates(args, col)
        if d is None:
            return None
        a, b = d
        n = (b.year - a.year) * 12 + b.month - a.month - (b.day < a.day)
        return Decimal(n)

    def _duration(self, args: tuple[Node, ...], col: int) -> timedelta | None:
        v = self.visit(args[0])
        if v is None or isinstance(v, timedelta):
            return v
        raise EvalError(col, f"needs a duration, not {_kind(v)}")

    def f_days(self, args: tuple[Node, ...], col: int) -> Value:
        d = self._duration(args, col)
        return None if d is None else Decimal(d.total_seconds()) / Decimal(86400)

    def f_hours(self, args: tuple[Node, ...], col: int) -> Value:
        d = self._duration(args, col)
        return None if d is None else Decimal(d.total_seconds()) / Decimal(3600)

    def f_date(self, args: tuple[Node, ...], col: int) -> Value:
        v = self.visit(args[0])
        if v is None:
            return None
        if isinstance(v, str):
            try:
                return date.fromisoformat(v)
            except ValueError:
                raise EvalError(col, f"{v!r} is not a date (YYYY-MM-DD)") from None
        return self.as_date(v, col)

    def f_day_of(self, args: tuple[Node, ...], col: int) -> Value:
        d = self._dates(args, col)
        if d is None:
            return None
        n = (d[0] - d[1]).days
        start = self.snap.anchor_day
        return Decimal(n if start == 1 and n < 0 else n + start)  # day 1 counting has no day 0

    def f_selected(self, args: tuple[Node, ...], col: int) -> Value:
        v = self.visit(args[0])
        if v is None:
            return Decimal(0)
        if not isinstance(v, tuple):
            raise EvalError(col, f"selected() takes a multiple-choice field, not {_kind(v)}")
        return Decimal(len(v))

    def f_filled(self, args: tuple[Node, ...], col: int) -> Value:
        saved, self.on_blank = self.on_blank, None
        try:
            return Decimal(sum(1 for a in args if self.visit(a) is not None))
        finally:
            self.on_blank = saved

    def _numbers(self, args: tuple[Node, ...]) -> list[Decimal]:
        """The arguments that hold a number: numbers, and choice codes that are whole numbers (a score's `2`;
        codes are stored as text, `_code`); blanks and other codes (`ne`) are skipped."""
        out: list[Decimal] = []
        for v in (self.visit(a) for a in args):
            if isinstance(v, Decimal):
                out.append(v)
            elif isinstance(v, str) and _whole(v):
                out.append(Decimal(v))
        return out

    def f_sum(self, args: tuple[Node, ...], col: int) -> Value:
        return sum(self._numbers(args), Decimal(0))

    def f_count_numbers(self, args: tuple[Node, ...], col: int) -> Value:
        return Decimal(len(self._numbers(args)))

    def _extreme(self, args: tuple[Node, ...], col: int, pick: Callable[[list[Any]], Any]) -> Value:
        values = [self.visit(a) for a in args]
        if any(v is None for v in values):
            return None
        for v in values[1:]:
            compare("<", values[0], v, col)  # one type only: a clash is named
        return pick(values)

    def f_min(self, args: tuple[Node, ...], col: int) -> Value:
        return self._extreme(args, col, min)

    def f_max(self, args: tuple[Node, ...], col: int) -> Value:
        return self._extreme(args, col, max)

    def f_abs(self, args: tuple[Node, ...], col: int) -> Value:
        v = self.visit(args[0])
        if v is None:
            return None
        if isinstance(v, (Decimal, timedelta)) and not isinstance(v, bool):
            return abs(v)
        raise EvalError(col, f"abs() takes a number or a duration, not {_kind(v)}")

    def f_round(self, args: tuple[Node, ...], col: int) -> Value:
        x, step = (self.visit(a) for a in args)
        if x is None or step is None:
            return None
        if not isinstance(x, Decimal) or not isinstance(step, Decimal) or isinstance(x, bool):
            raise EvalError(col, "round() takes two numbers")
        if step <= 0:
            raise EvalError(col, "round() needs a step above 0")
        return (x / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step

    def f_event_id(self, args: tuple[Node, ...], col: int) -> Value:
        r = self.visit(args[0])
        if r is None:
            return None
        if not isinstance(r, Rec):
            raise EvalError(col, f"event_id() takes a record, not {_kind(r)}")
        return r.event_id


def in_record_order(recs: Iterable[Rec]) -> list[Rec]:
    """Records by their record date (`Rec.when`; undated last), ties in log order: `first()` and `last()`'s order."""
    return sorted(recs, key=_record_key)


def _record_key(r: Rec) -> tuple[int, Any, int]:
    w = r.when()
    if w is None:
        return (1, 0, r.order)
    # dates and datetimes of one field name share a type; a date sorts at its day's start (UTC)
    stamp = w.timestamp() if isinstance(w, datetime) else datetime(w.year, w.month, w.day).timestamp()
    return (0, stamp, r.order)


def _column(node: Node) -> int:
    last = node[-1]
    return last if isinstance(last, int) else 0


def _same_kind(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, datetime) or isinstance(b, datetime):
        return isinstance(a, datetime) and isinstance(b, datetime)
    for t in (Decimal, date, timedelta, str, tuple, Rec):
        if isinstance(a, t) or isinstance(b, t):
            return isinstance(a, t) and isinstance(b, t)
    return False


def compare(op: str, a: Value, b: Value, col: int) -> bool:
    """`a op b` for two non-blank values of one type (a code and a number literal compare as codes)."""
    if isinstance(a, str) != isinstance(b, str) and op in ("==", "!="):
        other = b if isinstance(a, str) else a
        if isinstance(other, Decimal) and not isinstance(other, bool):
            same = (a if isinstance(a, str) else _code(a)) == (b if isinstance(b, str) else _code(b))
            return same if op == "==" else not same
    if not _same_kind(a, b):
        raise EvalError(col, f"cannot compare {_kind(a)} with {_kind(b)}")
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if isinstance(a, (str, bool, tuple, Rec)):
        raise EvalError(col, f"{_kind(a)} is not ordered: only == and != apply")
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def arithmetic(op: str, a: Value, b: Value, col: int) -> Value:
    """`a op b` over numbers, dates, datetimes and durations (docs/protocol.md, "Values and types")."""
    num_a = isinstance(a, Decimal) and not isinstance(a, bool)
    num_b = isinstance(b, Decimal) and not isinstance(b, bool)
    if num_a and num_b:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return None if b == 0 else a / b  # division by zero is blank, as any arithmetic it cannot do
    if op in ("+", "-") and isinstance(b, timedelta):
        if isinstance(a, datetime):
            return a + b if op == "+" else a - b
        if isinstance(a, date):
            if b % timedelta(days=1):
                raise EvalError(col, "a date moves by whole days: write the duration in d or w")
            return a + b if op == "+" else a - b
        if isinstance(a, timedelta):
            return a + b if op == "+" else a - b
    if op == "-" and _same_kind(a, b) and isinstance(a, date):  # date - date, datetime - datetime
        return a - b
    if op in ("*", "/") and isinstance(a, timedelta) and num_b:
        if op == "/" and b == 0:
            return None
        return a * float(b) if op == "*" else a / float(b)
    if op == "*" and num_a and isinstance(b, timedelta):
        return b * float(a)
    raise EvalError(col, f"cannot compute {_kind(a)} {op} {_kind(b)}")


def show(v: Value) -> str:
    """A value as the ward reads it in a message: dates ISO, numbers without trailing zeros, codes as stored."""
    if v is None:
        return "blank"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Decimal):
        text = format(v.normalize(), "f")
        return text
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, timedelta):
        hours = v.total_seconds() / 3600
        return f"{hours / 24:g} d" if hours % 24 == 0 else f"{hours:g} h"
    if isinstance(v, tuple):
        return ", ".join(show(x) for x in v)
    if isinstance(v, Rec):
        return v.event_id
    return str(v)


def render(template: str, snap: Snapshot, provided: Mapping[str, str] | None = None) -> str:
    """A message template with its `{...}` holes filled (`{{`/`}}` are braces); provided names first."""
    provided = provided or {}

    def hole(m: Any) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        text = m.group(1).strip()
        if text in provided:
            return provided[text]
        try:
            return show(value_of(text, snap))
        except (EvalError, expressions.ExprError):
            return "{" + text + "}"

    return expressions._HOLE.sub(hole, template)
