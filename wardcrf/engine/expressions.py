"""The expression language of protocol files, format 2: tokenizer, parser and name checker.

docs/protocol.md ("Expressions") defines the grammar; this module is its one
implementation. Written with the format, it proved the grammar unambiguous and
that every expression the shipped format-2 files hold parses and names only
forms, fields, codes, anchors and functions that exist; `wardcrf.engine.model`
uses it to refuse a file whose expression is malformed, with its column.

Nothing here executes text: a regular-expression tokenizer, a
recursive-descent parser producing tuples, and a checker walking them (no
`eval`, `exec`, `compile` or `ast`). The interpreter over a participant's
records is still design (docs/engine.md, section 3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LENGTH = 2000
MAX_DEPTH = 32
MAX_LIST = 200

KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "blank", "where", "true", "false"})
RESERVED = KEYWORDS | {"today", "now", "participant", "administration", "forms"}
BUILTIN_ANCHORS = frozenset(
    {
        "consent",
        "screening",
        "enrollment",
        "randomization",
        "first_dose",
        "last_dose",
        "treatment_end",
        "end_of_study",
        "death",
    }
)
PARTICIPANT_ATTRS = frozenset({"arm", "site", "id"})
ADMINISTRATION_ATTRS = frozenset({"start", "end", "number", "due", "regimen", "product", "kit"})

# name -> (minimum arguments, maximum arguments or None, what the first argument is)
FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "count": (1, 1, "form"),
    "exists": (1, 1, "form"),
    "first": (1, 1, "form"),
    "last": (1, 1, "form"),
    "latest": (1, 1, "value"),
    "earliest": (1, 1, "value"),
    "years": (2, 2, "plain"),
    "months": (2, 2, "plain"),
    "days": (1, 1, "plain"),
    "hours": (1, 1, "plain"),
    "date": (1, 1, "plain"),
    "day_of": (2, 2, "plain"),
    "selected": (1, 1, "plain"),
    "filled": (1, None, "plain"),
    "sum": (1, None, "plain"),
    "count_numbers": (1, None, "plain"),
    "min": (1, None, "plain"),
    "max": (1, None, "plain"),
    "abs": (1, 1, "plain"),
    "round": (2, 2, "plain"),
    "event_id": (1, 1, "plain"),
}

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t]+)
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(?P<unit>min|h|d|w)?(?![A-Za-z0-9_])
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<op>==|!=|<=|>=|[<>+\-*/()\[\],.@])
  | (?P<name>[a-z][a-z0-9_]*)
    """,
    re.VERBOSE,
)

Node = tuple[Any, ...]


class ExprError(ValueError):
    """A problem in one expression, with the 1-based column it was found at."""

    def __init__(self, column: int, problem: str) -> None:
        super().__init__(f"column {column}: {problem}")
        self.column = column
        self.problem = problem


@dataclass(frozen=True)
class Token:
    kind: str  # num, dur, str, op, name, kw, end
    value: Any
    column: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExprError(1, f"longer than {MAX_LENGTH} characters")
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = f"character {ch!r}" if ch.isprintable() else f"control character U+{ord(ch):04X}"
            raise ExprError(pos + 1, f"unexpected {what}")
        col = pos + 1
        pos = m.end()
        if m.group("ws"):
            continue
        if m.group("num") is not None:
            number = float(m.group("num"))
            unit = m.group("unit")
            out.append(Token("dur", (number, unit), col) if unit else Token("num", number, col))
        elif m.group("str") is not None:
            body = m.group("str")[1:-1]
            if any(not (c.isprintable() or c == " ") for c in body):
                raise ExprError(col, "a string holds a control character")
            out.append(Token("str", body, col))
        elif m.group("op") is not None:
            out.append(Token("op", m.group("op"), col))
        else:
            word = m.group("name")
            out.append(Token("kw" if word in KEYWORDS else "name", word, col))
    out.append(Token("end", None, len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.tokens[min(self.i + n, len(self.tokens) - 1)]

    def at(self, kind: str, value: Any = None) -> bool:
        return self.tok.kind == kind and (value is None or self.tok.value == value)

    def take(self, kind: str, value: Any = None) -> Token:
        if not self.at(kind, value):
            want = repr(value) if value is not None else kind
            got = "the end" if self.tok.kind == "end" else repr(self.tok.value)
            raise ExprError(self.tok.column, f"expected {want}, found {got}")
        t = self.tok
        self.i += 1
        return t

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(self.tok.column, f"nested deeper than {MAX_DEPTH} levels")

    # -- grammar
    def parse(self) -> Node:
        node = self.expression()
        if not self.at("end"):
            raise ExprError(self.tok.column, f"unexpected {self.tok.value!r} after a complete expression")
        return node

    def expression(self) -> Node:
        self.nest()
        try:
            node = self.and_expr()
            while self.at("kw", "or"):
                self.take("kw")
                node = ("or", node, self.and_expr())
            return node
        finally:
            self.depth -= 1

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at("kw", "and"):
            self.take("kw")
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.at("kw", "not"):
            return self.prefix("kw", "not", self.not_expr)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        t = self.tok
        if t.kind == "op" and t.value in ("==", "!=", "<", "<=", ">", ">="):
            self.take("op")
            return ("cmp", t.value, left, self.additive(), t.column)
        negate = False
        if self.at("kw", "not") and self.peek().kind == "kw" and self.peek().value in ("in", "between"):
            self.take("kw")
            negate = True
        if self.at("kw", "in"):
            col = self.take("kw").column
            right = self.list_() if self.at("op", "[") else self.additive()
            return ("in", negate, left, right, col)
        if self.at("kw", "between"):
            col = self.take("kw").column
            low = self.additive()
            self.take("kw", "and")
            return ("between", negate, left, low, self.additive(), col)
        if negate:
            raise ExprError(self.tok.column, "expected 'in' or 'between' after 'not'")
        if self.at("kw", "is"):
            col = self.take("kw").column
            neg = False
            if self.at("kw", "not"):
                self.take("kw")
                neg = True
            self.take("kw", "blank")
            return ("isblank", neg, left, col)
        return left

    def additive(self) -> Node:
        return self.left_to_right(("+", "-"), self.multiplicative)

    def multiplicative(self) -> Node:
        return self.left_to_right(("*", "/"), self.unary)

    def left_to_right(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        """Operands joined by binary operators of one precedence level, grouped from the left.

        The one rule of the arithmetic levels (`a - b - c` is `(a - b) - c`, and so for `/`):
        each level names its operators and the next tighter level as its operand.
        """
        node = operand()
        while self.tok.kind == "op" and self.tok.value in ops:
            t = self.take("op")
            node = ("bin", t.value, node, operand(), t.column)
        return node

    def unary(self) -> Node:
        if self.at("op", "-"):
            return self.prefix("op", "neg", self.unary)
        return self.postfix()

    def prefix(self, kind: str, tag: str, operand: Callable[[], Node]) -> Node:
        """A prefix operator (`not`, unary `-`) and its operand, parsed one nesting level deeper.

        One owner for the depth guard of prefix operators: `not not ... x` and `- - ... x`
        recurse without brackets, so each counts against MAX_DEPTH as a bracket does and a
        hostile expression is refused with a column, never a RecursionError.
        """
        col = self.take(kind).column
        self.nest()
        try:
            return (tag, operand(), col)
        finally:
            self.depth -= 1

    def postfix(self) -> Node:
        node = self.primary()
        while self.at("op", "."):
            self.take("op")
            t = self.take("name")
            node = ("attr", node, t.value, t.column)
        return node

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            return ("num", t.value, t.column)
        if t.kind == "dur":
            self.i += 1
            return ("dur", t.value, t.column)
        if t.kind == "str":
            self.i += 1
            return ("str", t.value, t.column)
        if t.kind == "kw" and t.value in ("true", "false"):
            self.i += 1
            return ("bool", t.value == "true", t.column)
        if self.at("op", "@"):
            self.take("op")
            return ("anchor", self.take("name").value, t.column)
        if self.at("op", "("):
            self.take("op")
            node = self.expression()
            self.take("op", ")")
            return node
        if t.kind == "name":
            self.i += 1
            if self.at("op", "("):
                return self.call(t)
            return ("name", t.value, t.column)
        got = "the end" if t.kind == "end" else repr(t.value)
        raise ExprError(t.column, f"expected a value, found {got}")

    def call(self, fn: Token) -> Node:
        self.take("op", "(")
        args: list[Node] = []
        if not self.at("op", ")"):
            args.append(self.argument())
            while self.at("op", ","):
                self.take("op")
                args.append(self.argument())
        self.take("op", ")")
        return ("call", fn.value, tuple(args), fn.column)

    def argument(self) -> Node:
        # filtered = name [ "." name ] "where" expression
        if self.tok.kind == "name":
            if self.peek().kind == "kw" and self.peek().value == "where":
                t = self.take("name")
                self.take("kw", "where")
                return ("filtered", t.value, None, self.expression(), t.column)
            dotted = self.peek().kind == "op" and self.peek().value == "." and self.peek(2).kind == "name"
            if dotted and self.peek(3).kind == "kw" and self.peek(3).value == "where":
                t = self.take("name")
                self.take("op", ".")
                f = self.take("name")
                self.take("kw", "where")
                return ("filtered", t.value, f.value, self.expression(), t.column)
        return self.expression()

    def list_(self) -> Node:
        col = self.take("op", "[").column
        items: list[Node] = []
        if not self.at("op", "]"):
            items.append(self.expression())
            while self.at("op", ","):
                self.take("op")
                items.append(self.expression())
        self.take("op", "]")
        if len(items) > MAX_LIST:
            raise ExprError(col, f"a list holds at most {MAX_LIST} items")
        return ("list", tuple(items), col)


def parse(text: str) -> Node:
    """The syntax tree of one expression; `ExprError` names the column of the first problem."""
    return _Parser(text).parse()


# -- names -----------------------------------------------------------------------------------


@dataclass
class Scope:
    """What an expression may name where it is used (docs/protocol.md, "Names")."""

    forms: Mapping[str, Mapping[str, Any]]  # form name -> its TOML table
    once_forms: frozenset[str]
    anchors: frozenset[str]
    record: str | None = None  # record context: the form whose record is being checked
    administration: bool = False
    criteria: bool = False
    outer: Scope | None = field(default=None, repr=False)

    def fields(self, form: str) -> Mapping[str, Any]:
        return self.forms.get(form, {}).get("fields", {})

    def inner(self, form: str) -> Scope:
        """The scope after `where`: a record of `form`, inside this one."""
        return Scope(
            self.forms, self.once_forms, self.anchors, form, self.administration, self.criteria, self
        )

    def own_field(self, name: str) -> tuple[str, Mapping[str, Any]] | None:
        scope: Scope | None = self
        while scope is not None:
            if scope.record and name in scope.fields(scope.record):
                return scope.record, scope.fields(scope.record)[name]
            scope = scope.outer
        return None


def _codes(spec: Mapping[str, Any]) -> list[str]:
    return [str(c["code"]) for c in spec.get("choices", [])]


def check(text: str, scope: Scope) -> list[str]:
    """Every problem of one expression in its scope (empty when it is fine)."""
    try:
        tree = parse(text)
    except ExprError as exc:
        return [str(exc)]
    problems: list[str] = []
    _Checker(scope, problems).visit(tree)
    return problems


class _Checker:
    def __init__(self, scope: Scope, problems: list[str]) -> None:
        self.scope = scope
        self.problems = problems

    def err(self, col: int, problem: str) -> None:
        self.problems.append(f"column {col}: {problem}")

    def field_of(self, node: Node) -> tuple[str, str, Mapping[str, Any]] | None:
        """(form, field, spec) when `node` names one field directly."""
        if node[0] == "name":
            own = self.scope.own_field(node[1])
            if own:
                return own[0], node[1], own[1]
        if node[0] == "attr" and node[1][0] == "name":
            form = node[1][1]
            if self.scope.own_field(form) is None and node[2] in self.scope.fields(form):
                return form, node[2], self.scope.fields(form)[node[2]]
        return None

    def literal_codes(self, fld: tuple[str, str, Mapping[str, Any]] | None, lits: list[Node]) -> None:
        if fld is None or fld[2].get("type") != "choice":
            return
        codes = _codes(fld[2])
        for lit in lits:
            if lit[0] in ("str", "num"):
                value = lit[1]
                text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
                if text not in codes:
                    self.err(lit[2], f"{text!r} is not a code of {fld[0]}.{fld[1]} ({', '.join(codes)})")

    def visit(self, node: Node) -> None:
        kind = node[0]
        if kind in ("or", "and"):
            self.visit(node[1])
            self.visit(node[2])
        elif kind == "not":
            self.visit(node[1])
        elif kind == "cmp":
            self.visit(node[2])
            self.visit(node[3])
            self.literal_codes(self.field_of(node[2]), [node[3]])
            self.literal_codes(self.field_of(node[3]), [node[2]])
        elif kind == "in":
            left, right = node[2], node[3]
            self.visit(left)
            if right[0] == "list":
                for item in right[1]:
                    self.visit(item)
                fld = self.field_of(left)
                if fld and fld[2].get("multiple"):
                    self.err(node[4], f"{fld[0]}.{fld[1]} holds several codes: write 'code' in {fld[1]}")
                self.literal_codes(fld, list(right[1]))
            else:
                self.visit(right)
                fld = self.field_of(right)
                if fld is not None and not fld[2].get("multiple"):
                    self.err(node[4], f"'in' needs a list or a multiple-choice field, not {fld[0]}.{fld[1]}")
                self.literal_codes(fld, [left])
        elif kind == "between":
            for part in node[2:5]:
                self.visit(part)
        elif kind == "isblank":
            self.visit(node[2])
        elif kind in ("bin",):
            self.visit(node[2])
            self.visit(node[3])
        elif kind == "neg":
            self.visit(node[1])
        elif kind == "anchor":
            name = node[1]
            if name == "assessment":
                if not self.scope.criteria:
                    self.err(node[2], "@assessment is only known in eligibility criteria")
            elif name not in self.scope.anchors:
                self.err(
                    node[2], f"unknown anchor @{name} (anchors: {', '.join(sorted(self.scope.anchors))})"
                )
        elif kind == "name":
            self.name(node)
        elif kind == "attr":
            self.attr(node)
        elif kind == "call":
            self.call(node)
        elif kind in ("num", "dur", "str", "bool"):
            return
        else:  # pragma: no cover - the parser makes no other node
            self.err(0, f"unknown node {kind}")

    def name(self, node: Node) -> None:
        name, col = node[1], node[2]
        if self.scope.own_field(name) is not None or name in ("today", "now"):
            return
        if name in self.scope.forms:
            self.err(col, f"{name} is a form: name one of its fields ({name}.FIELD) or use a function")
        elif name in ("participant", "administration", "forms"):
            self.err(col, f"{name} needs a .name after it")
        else:
            here = f" of {self.scope.record}" if self.scope.record else ""
            self.err(col, f"unknown name {name!r} (not a field{here}, nor today or now)")

    def attr(self, node: Node) -> None:
        base, attr, col = node[1], node[2], node[3]
        if base[0] == "name":
            name = base[1]
            if self.scope.own_field(name) is not None:
                self.err(col, f"{name} is a field: it has no .{attr}")
            elif name == "participant":
                if attr not in PARTICIPANT_ATTRS:
                    self.err(col, f"participant has no .{attr} ({', '.join(sorted(PARTICIPANT_ATTRS))})")
            elif name == "administration":
                if not self.scope.administration:
                    self.err(col, "administration is only known in a gate before a dose")
                elif attr not in ADMINISTRATION_ATTRS:
                    self.err(
                        col, f"administration has no .{attr} ({', '.join(sorted(ADMINISTRATION_ATTRS))})"
                    )
            elif name == "forms":
                self.err(col, "write forms.FORM.FIELD")
            elif name in self.scope.forms:
                self.once_field(name, attr, col)
            else:
                self.err(base[2], f"unknown name {name!r}")
            return
        if base[0] == "attr" and base[1][0] == "name" and base[1][1] == "forms":
            self.once_field(base[2], attr, col)
            return
        if base[0] == "call" and base[1] in ("first", "last") and base[2]:
            self.visit(base)
            arg = base[2][0]
            form = arg[1] if arg[0] in ("name", "filtered") else None
            if form and attr not in self.scope.fields(form):
                self.err(col, f"form {form} has no field {attr!r}")
            return
        self.visit(base)
        self.err(col, f".{attr} applies to a form, a record, participant or administration")

    def once_field(self, form: str, attr: str, col: int) -> None:
        if form not in self.scope.forms:
            self.err(col, f"unknown form {form!r}")
        elif attr not in self.scope.fields(form):
            self.err(col, f"form {form} has no field {attr!r}")
        elif form not in self.scope.once_forms:
            self.err(
                col,
                f"{form} has several records per participant: use latest({form}.{attr}) or another function",
            )

    def call(self, node: Node) -> None:
        name, args, col = node[1], node[2], node[3]
        spec = FUNCTIONS.get(name)
        if spec is None:
            self.err(col, f"unknown function {name}() (functions: {', '.join(sorted(FUNCTIONS))})")
            return
        low, high, first = spec
        if len(args) < low or (high is not None and len(args) > high):
            n = str(low) if high == low else f"{low} or more" if high is None else f"{low} to {high}"
            self.err(col, f"{name}() takes {n} arguments, not {len(args)}")
            return
        rest = args
        if first == "form":
            arg = args[0]
            form = arg[1] if arg[0] in ("name", "filtered") else None
            if form is None or (arg[0] == "filtered" and arg[2] is not None):
                self.err(col, f"{name}() takes a form, or 'FORM where CONDITION'")
            elif form not in self.scope.forms:
                self.err(arg[-1] if arg[0] == "name" else arg[4], f"unknown form {form!r}")
            elif arg[0] == "filtered":
                _Checker(self.scope.inner(form), self.problems).visit(arg[3])
            rest = args[1:]
        elif first == "value":
            arg = args[0]
            if arg[0] == "filtered" and arg[2] is not None:
                form, fld = arg[1], arg[2]
                if form not in self.scope.forms:
                    self.err(arg[4], f"unknown form {form!r}")
                elif fld not in self.scope.fields(form):
                    self.err(arg[4], f"form {form} has no field {fld!r}")
                else:
                    _Checker(self.scope.inner(form), self.problems).visit(arg[3])
            elif arg[0] == "attr" and arg[1][0] == "name" and arg[1][1] in self.scope.forms:
                if arg[2] not in self.scope.fields(arg[1][1]):
                    self.err(arg[3], f"form {arg[1][1]} has no field {arg[2]!r}")
            else:
                self.err(col, f"{name}() takes FORM.FIELD, or 'FORM.FIELD where CONDITION'")
            rest = args[1:]
        for arg in rest:
            if arg[0] == "filtered":
                self.err(arg[4], f"'where' is not allowed in {name}()")
            else:
                self.visit(arg)


# -- message templates -----------------------------------------------------------------------

PROVIDED = frozenset(
    {"participant", "record", "failed", "eligibility_record", "n", "day", "what", "planned", "label"}
)
_HOLE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def template_holes(text: str) -> list[str]:
    """The expressions inside a message template's `{...}` holes (`{{` and `}}` are literal braces)."""
    holes = []
    for m in _HOLE.finditer(text):
        if m.group(1) is not None:
            holes.append(m.group(1).strip())
    return holes


def check_template(text: str, scope: Scope, provided: frozenset[str] = PROVIDED) -> list[str]:
    """Problems of every hole of a template that is not a provided name (`provided`: the kind's names)."""
    out: list[str] = []
    for hole in template_holes(text):
        if hole in provided:
            continue
        out.extend(f"{{{hole}}}: {p}" for p in check(hole, scope))
    return out
