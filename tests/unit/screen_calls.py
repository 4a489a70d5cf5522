"""The domain functions the screens call, read from the screens' source (no hand list to drift).

A screen reaches the domain one way: `ward.call(service, *args)` or `ward.call(lambda s:
service(s, ...))`, which hands the signed-in session to a service (screens/ward.py). This module
parses every module of screens/ and names the functions so called, resolved through each
module's imports (function-level imports included). tests/unit/test_screen_services.py and
tests/unit/test_role_walk.py walk them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCREENS = Path(__file__).resolve().parents[2] / "screens"


@dataclass(frozen=True)
class ScreenCall:
    where: str
    """screens/<file>:<line> of the `ward.call`."""
    name: str
    """The dotted name of the function called, e.g. `wardcrf.coldchain.reports.units`."""


def screen_modules() -> Iterator[tuple[Path, str]]:
    for path in sorted(SCREENS.rglob("*.py")):
        yield path, "wardcrf.screens." + ".".join(path.relative_to(SCREENS).with_suffix("").parts)


def _imports(tree: ast.AST, module: str) -> dict[str, str]:
    """Local name -> dotted name it stands for, from every import in the module."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                out[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
    return out


def _dotted(expr: ast.AST) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        inner = _dotted(expr.value)
        return f"{inner}.{expr.attr}" if inner else None
    return None


def _forwarders(tree: ast.AST) -> set[str]:
    """Methods that hand their first argument to `ward.call` (the dashboard's `_load(fn, fill)`)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [a.arg for a in node.args.args if a.arg != "self"]
            if params and any(
                _is_ward_call(sub) and isinstance(sub.args[0], ast.Name) and sub.args[0].id == params[0]
                for sub in ast.walk(node)
            ):
                out.add(node.name)
    return out


def _is_ward_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "call"
        and (_dotted(node.func.value) or "").endswith("ward")
        and bool(node.args)
    )


def _called(tree: ast.AST) -> Iterator[tuple[int, str | None]]:
    """(line, dotted name) of each function a `...ward.call(...)` (or a forwarder) hands the session to."""
    forwarders = _forwarders(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        forwarded = isinstance(node.func, ast.Attribute) and node.func.attr in forwarders
        if not (_is_ward_call(node) or forwarded):
            continue
        fn: ast.AST = node.args[0]
        local = _local_def(tree, fn)
        if local is not None:  # `def read(session): return service(session, ...)`, then `ward.call(read)`
            fn = local
        if isinstance(fn, ast.Lambda | ast.FunctionDef):
            param = fn.args.args[0].arg
            for sub in ast.walk(fn):
                if (
                    isinstance(sub, ast.Call)
                    and sub.args
                    and isinstance(sub.args[0], ast.Name)
                    and sub.args[0].id == param
                ):
                    yield node.lineno, _dotted(sub.func)
        elif isinstance(fn, ast.Name) and fn.id in _params_here(tree, node):
            continue  # the forwarder itself: its callers are walked
        else:
            yield node.lineno, _dotted(fn)


def _local_def(tree: ast.AST, fn: ast.AST) -> ast.FunctionDef | None:
    """The nested function a name passed to `ward.call` stands for, if one is defined in the module."""
    if not isinstance(fn, ast.Name):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef)
            and node.name == fn.id
            and node.args.args
            and node.args.args[0].arg != "self"
        ):
            return node
    return None


def _params_here(tree: ast.AST, call: ast.Call) -> set[str]:
    """Parameter names of the function that encloses `call`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            sub is call for sub in ast.walk(node)
        ):
            inner = _params_here_in(node, call)
            if inner is not None:
                return inner
    return set()


def _params_here_in(fn: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call) -> set[str] | None:
    for node in ast.walk(fn):
        if (
            node is not fn
            and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(sub is call for sub in ast.walk(node))
        ):
            return _params_here_in(node, call)
    return {a.arg for a in fn.args.args}


def _session_methods() -> dict[str, list[ScreenCall]]:
    """Screen methods that take the session after `self` (`def save_call(self, s, ...)`): the services each
    hands it to, resolved in its own module.

    A base screen may call `self.save_call(s, ...)` inside a `ward.call` (screens/step_wizard.py); every
    subclass's method of that name is then walked, so the services behind the hook are checked too.
    """
    out: dict[str, list[ScreenCall]] = {}
    for path, module in screen_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _imports(tree, module)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or len(node.args.args) < 2:
                continue
            if node.args.args[0].arg != "self":
                continue
            param = node.args.args[1].arg
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.Call)
                    and sub.args
                    and isinstance(sub.args[0], ast.Name)
                    and sub.args[0].id == param
                ):
                    head, _, rest = (_dotted(sub.func) or "").partition(".")
                    if head in names:
                        where = f"screens/{path.relative_to(SCREENS)}:{sub.lineno}"
                        out.setdefault(node.name, []).append(
                            ScreenCall(where, names[head] + (f".{rest}" if rest else ""))
                        )
    return out


def screen_calls() -> list[ScreenCall]:
    """Every function a screen hands the session to, resolved to its dotted name."""
    out = []
    methods = _session_methods()
    for path, module in screen_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _imports(tree, module)
        for line, name in _called(tree):
            where = f"screens/{path.relative_to(SCREENS)}:{line}"
            head, _, rest = (name or "").partition(".")
            site_method = (name or "").removeprefix("self.").removeprefix("ward.site.")
            if name and name.removeprefix("self.").startswith("ward.site.") and "." not in site_method:
                out.append(ScreenCall(where, f"wardcrf.site.Site.{site_method}"))  # Site's own services
            elif head == "self" and rest in methods:
                out.extend(methods[rest])  # a hook each subclass defines: what every definition calls
            elif head in names:
                out.append(ScreenCall(where, names[head] + (f".{rest}" if rest else "")))
            else:  # a local function or a variable: not a service anyone can check
                out.append(ScreenCall(where, f"<not imported: {name}>"))
    return out


def resolve(name: str) -> Callable[..., Any] | None:
    module, _, attr = name.rpartition(".")
    if not module:
        return None
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        obj = getattr(resolve(module), attr, None) if "." in module else None  # a method: Site.x
    return obj if callable(obj) else None


def declared_permission(fn: Callable[..., Any]) -> str | None:
    """The permission a service checks before it acts: its first `*.require("<literal>")`.

    None when it checks none itself (it hands the check to the service it calls, or checks a
    permission that depends on its arguments, such as a form's own action).
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "require"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            return node.args[0].value
    return None
