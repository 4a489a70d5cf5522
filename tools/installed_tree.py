"""Run a whole-package tool (mypy, lint-imports) over wardcrf as it is installed.

The source folders are mapped into one package by pyproject's
`[tool.setuptools] package-dir` (`sync/` is `wardcrf.sync`, `photos/` is
`wardcrf.photos`, `screens/` is `wardcrf.screens`). Python's import system
follows that map through the editable install's finder, but mypy and grimp
(import-linter) read the directory tree, so from the repository they see
`wardcrf/` alone and type calls into the other folders as missing modules.

This builds that installed layout as a tree of symlinks under
`build/installed/` (rebuilt on each run, so new files are always included),
runs the command there, and prints its output with paths mapped back to the
files you edit:

    .venv/bin/python tools/installed_tree.py mypy
    .venv/bin/python tools/installed_tree.py lint-imports

Once the folders move under `wardcrf/` (issue #16, next step) this is not needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "installed"


def package_dirs() -> dict[str, str]:
    """Every mapped package: dotted name -> folder, from pyproject (the one source of truth)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(config["tool"]["setuptools"]["package-dir"])


def build(tree: Path = TREE) -> Path:
    """A fresh tree of symlinks laid out as the package is installed; returns its root."""
    if tree.exists():
        shutil.rmtree(tree)
    mapping = package_dirs()
    for name, folder in sorted(mapping.items()):
        target = tree.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in sorted((ROOT / folder).iterdir()):
            if entry.name == "__pycache__" or (tree / name.replace(".", "/") / entry.name).exists():
                continue
            dotted = f"{name}.{entry.name}"
            if entry.is_dir() and dotted in mapping:
                continue  # a mapped sub-package gets its own entry
            (target / entry.name).symlink_to(entry)
    return tree


def unmap(text: str, tree: Path = TREE) -> str:
    """Paths in the tree back to the source folders (`wardcrf/sync/x.py` -> `sync/x.py`)."""
    mapping = package_dirs()
    for name in sorted(mapping, key=len, reverse=True):
        installed = name.replace(".", "/") + "/"
        source = mapping[name].rstrip("/") + "/"
        if installed != source:
            text = text.replace(str(tree) + "/" + installed, source).replace(installed, source)
    return text.replace(str(tree) + "/", "")


def mypy_config() -> str:
    """pyproject's [tool.mypy] as a mypy.ini for the installed tree, without the mapped folders' override.

    That override (`ignore_missing_imports` for wardcrf.sync/.photos/.screens)
    exists only for plain `mypy` from the repository, which cannot see the
    mapped folders. In the installed tree every one of their modules is
    found, so keeping it would hide exactly the error it must show: an
    import of a module that moved or never existed.
    """
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    mapped = set(package_dirs()) - {"wardcrf"}
    lines = ["[mypy]", *(f"{k} = {_ini(v)}" for k, v in cfg.items() if k != "overrides")]
    for override in cfg.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        if all(m.removesuffix(".*") in mapped for m in modules):
            continue
        lines.append(f"[mypy-{','.join(modules)}]")
        lines += [f"{k} = {_ini(v)}" for k, v in override.items() if k != "module"]
    return "\n".join(lines) + "\n"


def _ini(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("mypy", "lint-imports"):
        print("usage: installed_tree.py mypy|lint-imports [args...]", file=sys.stderr)
        return 2
    tool = str(Path(sys.executable).parent / argv[0])
    args = [tool, *argv[1:]]
    if argv[0] == "mypy":
        # One fixed tree, so mypy's cache (keyed by path) is reused between runs.
        tree = build()
        config = tree / "mypy.ini"
        config.write_text(mypy_config())
        args += ["--config-file", str(config), "--cache-dir", str(ROOT / ".mypy_cache" / "installed")]
        return _run(args, tree)
    # lint-imports is quick: a tree of its own, so a test and a developer's run never share one.
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build", prefix="installed-") as tmp:
        return _run([*args, "--no-cache", str(ROOT / "pyproject.toml")], build(Path(tmp) / "tree"))


def _run(args: list[str], tree: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
    sys.stdout.write(unmap(done.stdout, tree))
    sys.stderr.write(unmap(done.stderr, tree))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
