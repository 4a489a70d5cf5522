"""Count the functions that return `dict[str, Any]` (untyped read models), issue #16.

    python tools/dict_returns.py [--list] [folders...]   (default: wardcrf sync photos)

A read model the screens and exports consume should be a TypedDict or a frozen
dataclass; this lists what is left. Counts a function whose return annotation
is `dict[str, Any]` or holds it (`list[dict[str, Any]]`, `... | None`).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def main(argv: list[str]) -> int:
    show = "--list" in argv
    folders = [a for a in argv if not a.startswith("--")] or ["wardcrf", "sync", "photos"]
    found = dict_returns(folders)
    if show:
        print("\n".join(found))
    print(f"{len(found)} functions return dict[str, Any] in {', '.join(folders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
