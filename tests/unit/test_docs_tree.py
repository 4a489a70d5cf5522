"""docs/architecture.md and README.md match the tree (issue #16: "Done when: docs/architecture.md matches the tree").

Checked mechanically, so a module added, moved or removed fails here until the page says so:

- every module and package under `wardcrf/`, `screens/`, `sync/`, `photos/`, `bench/` and `tools/` is
  named in "Where each kind of code lives", under the bullet of its folder; every `name.py` and `folder/`
  the page names exists;
- the import contracts the page numbers are `pyproject.toml`'s, by count and by name;
- the feature table lists `features.FEATURES` in order with each `register`, and says what each adds:
  every kind of registration it makes, every audit check by name, every derived index's tables;
- the store paragraph names every module importing sqlcipher3 or psycopg;
- README.md lists every file in docs/, and its test set-up command is the one `.ci/run` runs.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCH = ROOT / "docs" / "architecture.md"
SOURCE_FOLDERS = ("wardcrf", "screens", "sync", "photos", "bench", "tools")
# the sub-package folders as a bullet of the page names them (the installed package maps three folders)
TOP_SCOPES = {
    "sync/": "sync",
    "photos/": "photos",
    "screens/": "screens",
    "bench/": "bench",
    "tools/": "tools",
}


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _bullets(section: str) -> list[tuple[str, str]]:
    """(folder scope, text) of every bullet, nested bullets scoped under their parent's folder."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []  # (indent, scope)
    current: list[str] | None = None
    for line in section.splitlines():
        m = re.match(r"^(\s*)- (.*)$", line)
        if m:
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1] if stack else "wardcrf"
            first = re.match(r"`([\w./]+)`", m.group(2))
            scope = parent
            if first:
                token = first.group(1)
                if token.endswith("/"):
                    nested = f"{parent}/{token.rstrip('/')}"
                    scope = TOP_SCOPES.get(token, nested) if not stack else nested
                elif "/" in token and token.split("/")[0] in SOURCE_FOLDERS:
                    scope = token.split("/")[0]
            stack.append((indent, scope))
            current = [m.group(2)]
            out.append((scope, ""))
        elif current is not None and line.strip():
            current.append(line)
        if current is not None and out:
            out[-1] = (out[-1][0], "\n".join(current))
    return out


def _names(text: str) -> set[str]:
    words: set[str] = set()
    for span in re.findall(r"`([^`]+)`", text):
        for word in re.findall(r"[A-Za-z_]\w*(?:\.py)?", span):
            words.add(word.removesuffix(".py"))
    return words


def _globs(text: str) -> list[str]:
    """The file patterns a bullet names (`bench_*.py`: one module per subject)."""
    return [g for span in re.findall(r"`([^`]+)`", text) for g in re.findall(r"[\w*]+\.py", span) if "*" in g]


def _modules() -> list[Path]:
    return sorted(
        p.relative_to(ROOT)
        for folder in SOURCE_FOLDERS
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    )


def test_every_module_is_named_under_its_folder():
    bullets = _bullets(_section(ARCH.read_text("utf-8"), "Where each kind of code lives"))
    missing = []
    for path in _modules():
        folder = path.parent.as_posix()
        if path.name == "__init__.py":
            if folder in SOURCE_FOLDERS:
                continue
            # a package is named as its folder (`tlog/`) in its parent's bullet or as a bullet of its own
            named = any(
                (scope == folder or folder.startswith(scope + "/"))
                and re.search(rf"`{re.escape(path.parent.name)}/", text)
                for scope, text in bullets
            )
        else:
            named = any(
                (scope == folder or (scope != "wardcrf" and folder.startswith(scope + "/")))
                and (path.stem in _names(text) or any(fnmatch.fnmatch(path.name, g) for g in _globs(text)))
                for scope, text in bullets
            )
        if not named:
            missing.append(path.as_posix())
    assert not missing, f"docs/architecture.md does not describe: {missing}"


def test_every_file_and_folder_the_page_names_exists():
    text = ARCH.read_text("utf-8")
    files = {p.as_posix() for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    gone = []
    for span in re.findall(r"`([^`]+)`", text):
        for token in re.findall(r"[\w./*-]+", span):
            token = token.rstrip(".:")
            named_file = token.endswith((".py", ".tcss", ".toml", ".sql")) and "*" not in token
            if named_file and not any(f.endswith("/" + token) for f in files):
                gone.append(token)
    assert not gone, f"docs/architecture.md names files that do not exist: {gone}"


def test_the_import_contracts_are_pyprojects():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"][
        "contracts"
    ]
    text = ARCH.read_text("utf-8")
    listed = _section(text, "Layers").split("Checked by import-linter", 1)[1]
    numbered = re.findall(r"^(\d+)\. ", listed, flags=re.M)
    assert len(numbered) == len(contracts), (
        f"the page numbers {len(numbered)} contracts, pyproject.toml has {len(contracts)}"
    )
    for contract in contracts:
        assert f"“{contract['name']}”" in " ".join(listed.split()), (
            f"contract not named on the page: {contract['name']}"
        )


class _Recorder:
    """A registry that writes down what each feature registers instead of installing it."""

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.checks: list[str] = []
        self.tables: list[str] = []

    def __getattr__(self, method: str):
        def record(*args, **kwargs):
            self.kinds.add(method)
            if method == "audit_check":
                self.checks.append(args[0])
            if method == "derived_index":
                self.tables.extend(args[1:])

        return record


# the words a feature's row uses for each kind of registration
KIND_WORDS = {
    "projector": "projector",
    "every_event_projector": "every-event projector",
    "form_hook": "hook",
    "record_hook": "hook",
    "record_batch_hook": "batch hook",
    "form_actions": "form actions",
    "form_actions_of": "form actions",
    "record_values_check": "record values",
    "backup_kept_elsewhere": "kept bundles",
    "protocol_reader": "reader",
    "format1_run_as": "run as",
    "dose_gate": "dose gate",
    "allocation_gate": "allocation gate",
    "course_kit": "course kit",
    "kit_holder": "kit holder",
    "today_source": "worklist",
    "photo_evidence": "photo services",
    "carried_file": "a bundle carries",
    "after_ingest": "after-ingest",
    "audit_check": "check",
    "audit_site_check": "check",
    "derived_index": "derived index",
    "after_protocol_load": "after a protocol load",
}


def _feature_rows() -> list[list[str]]:
    section = _section(ARCH.read_text("utf-8"), "Features")
    table = section.split("| feature ", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_feature_table_is_features_py():
    from wardcrf import features

    rows = _feature_rows()
    assert [r[0] for r in rows] == [f.name for f in features.FEATURES]
    for (name, where, adds), feature in zip(rows, features.FEATURES, strict=True):
        module = feature.register.__module__.removeprefix("wardcrf.")
        stem = module.rsplit(".", 1)[-1]
        assert stem in _names(where), f"{name}: its register is {module}.register, the page says {where}"
        recorder = _Recorder()
        feature.register(recorder)  # type: ignore[arg-type]
        for kind in sorted(recorder.kinds):
            assert KIND_WORDS[kind] in adds, (
                f"{name}: registers a {kind}; its row does not say '{KIND_WORDS[kind]}'"
            )
        for check in recorder.checks:
            assert f"“{check}”" in adds, f"{name}: its audit check “{check}” is not named"
        for table in recorder.tables:
            assert f"`{table}`" in adds, f"{name}: its derived index of `{table}` is not named"


def test_the_registry_table_lists_every_method():
    from wardcrf.features import Registry

    section = _section(ARCH.read_text("utf-8"), "Features")
    methods = {m for m in vars(Registry) if not m.startswith("_")}
    firsts = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    listed = {name for cell in firsts for name in re.findall(r"`(\w+)\(", cell)}
    assert listed == methods


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_the_store_paragraph_names_every_module_touching_a_database_driver():
    text = _section(ARCH.read_text("utf-8"), "Where each kind of code lives")
    paragraph = "wardcrf/store.py" + text.split("- `wardcrf/store.py`", 1)[1].split("\n- ", 1)[0]
    drivers = {"sqlcipher3", "psycopg"}
    touching = [p for p in _modules() if _imports(ROOT / p) & drivers]
    assert {p.as_posix() for p in touching if "sqlcipher3" in _imports(ROOT / p)} == {"wardcrf/store.py"}
    for path in touching:
        assert path.as_posix() in paragraph or f"`{path.name}`" in paragraph, f"{path} imports a driver"


# -- README ------------------------------------------------------------------------------------------


def test_the_readme_lists_every_file_in_docs():
    listed = set(re.findall(r"^- `docs/([^`]+)`", (ROOT / "README.md").read_text("utf-8"), flags=re.M))
    assert listed == {p.name for p in (ROOT / "docs").iterdir() if p.is_file()}


def test_the_readme_has_two_set_up_commands_and_ci_runs_the_test_one():
    section = _section((ROOT / "README.md").read_text("utf-8"), "Set up on a fresh machine (Python 3.11+)")
    commands = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "wardcrf demo" in main_job and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    ran = re.search(r"^python3 -m venv .*$", ci, flags=re.M)
    assert ran, ".ci/run runs no set-up command"
    # the same command, .ci/run quieter (-q) and keeping pytest's exit code for its own checks
    assert ran.group(0).replace(" -q", "").replace(" && set +e", "") == tests
