"""What is left of the untyped read models, issue #16.

    python tools/dict_returns.py [--list] [folders...]   (default: wardcrf sync photos)
    python tools/dict_returns.py --fields [--list]        the screens' models' untyped fields

A read model the screens and exports consume should be a TypedDict or a frozen
dataclass; this lists what is left.

- Without `--fields`: the functions whose return annotation is `dict[str, Any]`
  or holds it (`list[dict[str, Any]]`, `... | None`), read from the source.
- `--fields`: the fields typed `Any` (or holding it: `dict[str, Any]`,
  `list[dict[str, Any]]`) of every TypedDict and dataclass the screens reach:
  those they import from the core and those the core functions they call
  return, followed into each field's type. It imports the package (the
  screens included), so it needs the installed tree's dependencies.

tests/unit/test_dict_returns.py keeps both from growing: a ceiling on the
count, and a named reason for every untyped field a screen reaches and every
dict an export or report writer builds.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys
import typing
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {
    "screens": "wardcrf.screens",
    "sync": "wardcrf.sync",
    "photos": "wardcrf.photos",
    "wardcrf": "wardcrf",
}
"""Source folder -> its package when installed (pyproject's `package-dir`)."""


def dict_returns(folders: list[str]) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
                    text = ast.unparse(node.returns).replace(" ", "")
                    if "dict[str,Any]" in text:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} -> {text}")
    return found


# -- the models the screens reach ------------------------------------------------------------------


def module_name(path: Path) -> str:
    """The installed module of a source file (screens/dsmg.py -> wardcrf.screens.dsmg)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    package = PACKAGE_DIRS[parts[0]]
    rest = [p for p in parts[1:] if p != "__init__"]
    return ".".join([package, *rest])


def _imported(tree: ast.Module, package: str) -> dict[str, str]:
    """Local name -> the dotted name it was imported as (absolute, relative imports resolved)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                out[a.asname or a.name] = f"{base}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
    return out


def _resolve(dotted: str) -> Any:
    """The object a dotted name names (a module, or an attribute of one), None when it names nothing."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


@cache
def _namespace(module: str) -> dict[str, Any]:
    """A module's globals plus what it imports only for the type checker (`if TYPE_CHECKING:`)."""
    mod = sys.modules[module]
    ns = dict(vars(mod))
    path = getattr(mod, "__file__", None)
    if path:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                block = ast.Module(body=node.body, type_ignores=[])
                for name, dotted in _imported(block, package).items():
                    found = _resolve(dotted)
                    if found is not None:
                        ns[name] = found
    return ns


def _hints(obj: Any) -> dict[str, Any]:
    """The resolved annotations of a class or function (TYPE_CHECKING imports included)."""
    return typing.get_type_hints(obj, localns=_namespace(obj.__module__))


def _is_model(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and (typing.is_typeddict(tp) or dataclasses.is_dataclass(tp))
        and tp.__module__.startswith("wardcrf")
        and not tp.__module__.startswith("wardcrf.screens")
    )


def _parts(tp: Any) -> list[Any]:
    """`tp` and every type inside it (list[X | None] -> list, X, None)."""
    out = [tp]
    for arg in typing.get_args(tp):
        if isinstance(arg, list):  # Callable's parameters
            for a in arg:
                out += _parts(a)
        elif arg is not Ellipsis:
            out += _parts(arg)
    return out


def holds_any(tp: Any) -> bool:
    return any(p is Any for p in _parts(tp))


def _text(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "").replace("NoneType", "None")


def screen_calls() -> set[Any]:
    """The core's functions and classes the screens name (imported, or a module's attribute)."""
    import wardcrf.features  # noqa: F401  (the whole package, as the app loads it)

    found: set[Any] = set()
    for path in sorted((ROOT / "screens").rglob("*.py")):
        name = module_name(path)
        importlib.import_module(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = {
            k: v
            for k, v in _imported(tree, package).items()
            if v.startswith("wardcrf.") and not v.startswith("wardcrf.screens")
        }
        refs: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in imported:
                refs.add(imported[node.id])
            elif isinstance(node, ast.Attribute):
                chain = [node.attr]
                base: ast.expr = node.value
                while isinstance(base, ast.Attribute):
                    chain.insert(0, base.attr)
                    base = base.value
                if isinstance(base, ast.Name) and base.id in imported:
                    for i in range(1, len(chain) + 1):
                        refs.add(".".join([imported[base.id], *chain[:i]]))
        for ref in refs:
            obj = _resolve(ref)
            module = getattr(obj, "__module__", None) or ""
            core = module.startswith("wardcrf") and not module.startswith("wardcrf.screens")
            if core and (inspect.isfunction(obj) or inspect.ismethod(obj) or _is_model(obj)):
                found.add(obj)
    return found


def screen_models() -> dict[str, Any]:
    """Every TypedDict and dataclass the screens reach, by qualified name, nested ones included."""
    models: dict[str, Any] = {}

    def walk(tp: Any) -> None:
        for part in _parts(tp):
            if _is_model(part):
                key = f"{part.__module__}.{part.__qualname__}"
                if key not in models:
                    models[key] = part
                    for field_tp in _hints(part).values():
                        walk(field_tp)

    for obj in screen_calls():
        if _is_model(obj):
            walk(obj)
        else:
            returns = _hints(obj).get("return")
            if returns is not None:
                walk(returns)
    return dict(sorted(models.items()))


def untyped_returns() -> list[str]:
    """The core functions the screens call whose return type holds Any (each should be a read model)."""
    out = []
    for obj in screen_calls():
        if not _is_model(obj):
            returns = _hints(obj).get("return")
            if returns is not None and holds_any(returns):
                out.append(f"{obj.__module__}.{obj.__qualname__} -> {_text(returns)}")
    return sorted(out)


def untyped_fields(models: dict[str, Any]) -> list[str]:
    """`module.Model.field: annotation` for every field typed Any or holding it."""
    out = []
    for key, model in models.items():
        hints = _hints(model)
        names = (
            [f.name for f in dataclasses.fields(model)] if dataclasses.is_dataclass(model) else list(hints)
        )
        for name in names:
            if holds_any(hints[name]):
                out.append(f"{key}.{name}: {_text(hints[name])}")
    return out


def main(argv: list[str]) -> int:
    show = "--list" in argv
    if "--fields" in argv:
        models = screen_models()
        found = untyped_fields(models)
        returns = untyped_returns()
        if show:
            print("\n".join(found + returns))
        print(f"{len(found)} untyped fields in the {len(models)} read models the screens reach")
        print(f"{len(returns)} functions the screens call return a type holding Any")
        return 0
    folders = [a for a in argv if not a.startswith("--")] or ["wardcrf", "sync", "photos"]
    found = dict_returns(folders)
    if show:
        print("\n".join(found))
    print(f"{len(found)} functions return dict[str, Any] in {', '.join(folders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
