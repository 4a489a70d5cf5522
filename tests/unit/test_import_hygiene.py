"""The import rules hold (issue #16): pyproject's [tool.importlinter] contracts, checked on the installed layout.

Modelled on harlequin's tests/unit_tests/test_import_hygiene.py: the same check CI runs
(`tools/installed_tree.py lint-imports`), so a broken layer or a new import loop fails here first.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "installed_tree.py"), "lint-imports"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_import_contracts_are_kept() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    # Every contract named in pyproject was checked (a renamed contract is not silently dropped).
    for name in (
        "The core never imports the TUI",
        "Screens go through services",
        "Only the store talks to SQLCipher",
        "Sync and photos",
        "No import cycles",
    ):
        assert name in done.stdout


def test_features_are_installed_explicitly_not_by_import() -> None:
    """Importing the core registers nothing; `features.install()` registers every feature once."""
    code = (
        "import wardcrf.site, wardcrf.eventlog as e, wardcrf.records as r\n"
        "from wardcrf import registration\n"
        "assert not registration._installed[0]\n"
        "try:\n"
        "    e.projectors_for('user.added')\n"
        "except RuntimeError as exc:\n"
        "    assert 'features.install()' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('projectors ran before the features were installed')\n"
        "from wardcrf import features\n"
        "features.install(); features.install()\n"
        "assert [f.__name__ for f in e._own_projectors('user.added')] == ['_user_added']\n"
        # the protocols' own, the ward queue's, the kit projection's (forgets its fields per version)
        "assert len(e._own_projectors('protocol.loaded')) == 3\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT / "tests")


_UNINSTALLED = """
import sys
from pathlib import Path
from wardcrf import registration
from wardcrf.site import Site

assert "wardcrf.features" not in sys.modules  # the site never reaches for the features itself
assert not registration._installed[0]
fresh, made = Path(sys.argv[1]), Path(sys.argv[2])
try:
    Site.init(fresh, site="WUH01", device_name="lap", admin="admin", password="test-password-1")
except RuntimeError as exc:
    assert "features.install()" in str(exc), exc
else:
    raise AssertionError("a site was created before the features were installed")
assert not fresh.exists()  # refused before anything was written
site = Site.open(made)  # reading the key slots needs no feature (the sign-in screen paints on it)
for password in ("test-password-1", "a-wrong-password"):  # refused before the password is even checked
    try:
        site.unlock("admin", password)
    except RuntimeError as exc:
        assert "features.install()" in str(exc), exc
    else:
        raise AssertionError("a database was opened before the features were installed")
assert site.slots.failed_count("admin") == 0  # nothing counted toward the lockout
from wardcrf import features

features.install()
site.unlock("admin", "test-password-1").close()
print("refused, then opened")
"""


def test_a_site_refuses_its_database_until_the_features_are_installed(tmp_path: Path) -> None:
    """The site never installs the features (they import it); whoever starts the program does.

    Forgetting is loud, never silent: `Site.init` and every sign-in raise before the
    database is touched, so no event is projected with half its projectors.
    """
    from wardcrf.site import Site

    made = tmp_path / "made"
    Site.init(made, site="WUH01", device_name="lap", admin="admin", password="test-password-1")
    done = subprocess.run(
        [sys.executable, "-c", _UNINSTALLED, str(tmp_path / "fresh"), str(made)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused, then opened"


def test_the_command_line_installs_the_features_before_any_command(tmp_path: Path) -> None:
    """The command line is a composition root: a command that opens a site finds every feature."""
    code = (
        "import sys\n"
        "from wardcrf import registration\n"
        "from wardcrf.cli import main\n"
        "assert not registration._installed[0]\n"
        "try:\n"
        "    main(['init', '--data-dir', sys.argv[1], '--site', 'WUH01', '--device', 'lap', '--admin', 'admin'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "assert registration._installed[0]\n"
    )
    env = {**os.environ, "WARDCRF_PASSWORD": "test-password-1", "WARDCRF_NEW_PASSWORD": "test-password-1"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "wardcrf.db").exists()


def test_the_ward_apps_sign_in_installs_the_features(tmp_path: Path) -> None:
    """The ward app is a composition root too: its sign-in installs the features, after the first paint."""
    from wardcrf.site import Site

    made = tmp_path / "made"
    Site.init(made, site="WUH01", device_name="lap", admin="admin", password="test-password-1")
    code = (
        "import sys\n"
        "from wardcrf import registration\n"
        "from wardcrf.screens import app, login\n"
        "from wardcrf.screens.ward import sign_in\n"
        "from wardcrf.site import Site\n"
        "assert 'wardcrf.features' not in sys.modules  # the sign-in screen paints without them\n"
        "ward = sign_in(Site.open(sys.argv[1]), 'admin', 'test-password-1')\n"
        "assert registration._installed[0] and ward.user == 'admin'\n"
        "ward.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(made)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr


_LOOPS = """
import grimp

graph = grimp.build_graph("wardcrf", exclude_type_checking_imports=True, cache_dir=None)
edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
index, low, stack, on, loops = {}, {}, [], set(), []


def visit(v):  # Tarjan's strongly connected components, iteratively deep enough for the package
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            loops.append(sorted(comp))


for m in edges:
    if m not in index:
        visit(m)
print(repr(loops))
"""


def test_no_module_imports_itself_back_through_others(tmp_path: Path) -> None:
    """No module-level import loop, counting imports inside functions (TYPE_CHECKING ones excepted).

    Stricter than the package-level `acyclic_siblings` contract, which sees loops between sibling
    packages: this sees a loop between any two modules, even inside one package. The ids -> protocol -> plausibility
    loop was the last in the core (protocol_file now owns the reader; `protocol.id_rule` the site's
    id rule); the screens' drafts <-> cold-chain readings one ended with the draft openers
    (`screens/draft_openers.py`).
    """
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import installed_tree
    finally:
        sys.path.pop(0)
    tree = installed_tree.build(tmp_path / "tree")
    done = subprocess.run(
        [sys.executable, "-c", _LOOPS],
        capture_output=True,
        text=True,
        cwd=tree,
        env={"PYTHONPATH": str(tree)},
    )
    assert done.returncode == 0, done.stderr
    loops = ast.literal_eval(done.stdout)
    assert loops == [], f"import loops: {loops}"
