"""Every refusal the domain words for a screen reads in the domain's words, not the CLI's (issue 14).

The domain words each refusal once, for every front end; a screen shows it
through `screens.errors.for_screen`, which drops a bracketed aside naming a
flag or command and a clause after ";" naming a `wardcrf` command. Anything
else of the command line left in the words ("give --participant ID") reached
the screen. This walks the source of every module a screen can reach, takes
the words of each refusal raised there (`raise Refused(...)`, `UsageError`,
..., a rule's `ctx.problem(field, why)`), with each `{value}` of an f-string
as X, and checks what a screen would show. The CLI keeps its flags: in
brackets they stay in the domain's words.

Left out, because no screen imports them (checked below): the command line
itself, medical coding, exports, the audit PDF and review reports, backups.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import wardcrf.photos
import wardcrf.screens
import wardcrf.sync
from wardcrf.screens.errors import for_screen

import wardcrf

CORE = Path(wardcrf.__file__).parent
ROOTS = [CORE, Path(wardcrf.sync.__file__).parent, Path(wardcrf.photos.__file__).parent]
CLI_ONLY = {
    "wardcrf.cli": "the command line speaks in flags",
    "wardcrf.coding": "coding is done with `wardcrf coding` only",
    "wardcrf.exports": "exports are written with `wardcrf export` only",
    "wardcrf.reports.audit_pdf": "`wardcrf report audit-pdf` only",
    "wardcrf.reports.audit_review": "`wardcrf report review` only",
    "wardcrf.backup": "`wardcrf db backup/restore` only",
    "wardcrf.sync.pghub": "a PostgreSQL hub is made with `wardcrf hub init --database` and run from the command line",
    "wardcrf.sync.server": "the hub's HTTP server is started with `wardcrf hub serve` only (its flags' limits)",
    "wardcrf.reports.visits": "`wardcrf report visits` only (the ward's screens show visits from the engine)",
}
RAISED = {
    "WardError", "Refused", "ValidationFailed", "PermissionDenied", "InternalError",
    "VerificationFailed", "UsageError", "AuthError", "problem",
}  # fmt: skip
CLI_WORDS = re.compile(r"(?<![\w-])--[a-z]|`(?:wardcrf )?[a-z][a-z-]* [a-z-]+")
"""A flag, or a command in backticks (`wardcrf sync set-hub`, `coldchain add-lot`)."""


def _module(path: Path) -> str:
    for root, package in ((ROOTS[1], "wardcrf.sync"), (ROOTS[2], "wardcrf.photos"), (CORE, "wardcrf")):
        if path.is_relative_to(root):
            parts = path.relative_to(root).with_suffix("").parts
            return ".".join((package, *parts)).removesuffix(".__init__")
    raise AssertionError(path)


def _words(node: ast.expr) -> str | None:
    """The words of a message literal, each formatted value as X (None: not a literal)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        return _words(node.args[0])  # Confirmable("...")
    return None


def _refusals() -> list[tuple[str, int, str]]:
    found = []
    for root in ROOTS:
        for path in sorted(root.rglob("*.py")):
            module = _module(path)
            if any(module == m or module.startswith(m + ".") for m in CLI_ONLY):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
                if name in RAISED:
                    for arg in node.args:
                        words = _words(arg)
                        if words:
                            found.append((module, node.lineno, words))
    return found


REFUSALS = _refusals()


def test_the_walk_finds_the_refusals_it_is_about():
    """A walk that found nothing would pass for nothing."""
    modules = {m for m, _line, _words in REFUSALS}
    assert len(REFUSALS) > 200
    assert {"wardcrf.workflow.base", "wardcrf.coldchain.services", "wardcrf.sync.service"} <= modules
    assert any("belongs to a participant" in w for _m, _l, w in REFUSALS)


def test_no_refusal_shows_the_command_line_on_a_screen():
    shown = [(m, line, for_screen(w)) for m, line, w in REFUSALS]
    leaks = [f"{m}:{line}: {text}" for m, line, text in shown if CLI_WORDS.search(text)]
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    ("words", "leaks"),
    [
        ("this form belongs to a participant: give --participant ID", True),
        ("no hub URL: pass one, or set it with `wardcrf sync set-hub CARD --url URL`", True),
        ("kit X is not registered (record its lot first: `coldchain add-lot`)", True),
        ("X is a wardcrf site", False),  # the product's name is not a command
    ],
)
def test_the_check_knows_a_leak_when_it_sees_one(words, leaks):
    assert bool(CLI_WORDS.search(for_screen(words))) is leaks


def test_the_modules_left_out_are_not_imported_by_any_screen():
    screens = Path(wardcrf.screens.__file__).parent
    imported: set[str] = set()
    for path in screens.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    reached = {m for m in imported for left in CLI_ONLY if m == left or m.startswith(left + ".")}
    assert not reached, f"a screen imports {sorted(reached)}: its refusals reach a screen, walk them"
