"""Screens go through services (issue #16): no screen reaches for the session's store.

The import rules (pyproject `[tool.importlinter]`, tests/unit/test_import_hygiene.py) keep screens
from importing `wardcrf.store`, sqlcipher3 and sqlite-utils; but a screen holds a session, and
`session.store` is the open database, so importing nothing still let screens call store-level
functions that check no role (21-25 places before this test). This walks every screen module's
syntax tree for any `.store` attribute.
"""

from __future__ import annotations

import ast

from screen_calls import screen_modules


def test_no_screen_touches_the_store():
    found = []
    for path, _module in screen_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "store":
                found.append(f"screens/{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert found == [], "screens must call a service that checks the role:\n" + "\n".join(found)


def test_the_walk_reads_every_screen_module():
    names = {module for _path, module in screen_modules()}
    assert {
        "wardcrf.screens.dashboard",
        "wardcrf.screens.coldchain.home",
        "wardcrf.screens.dialogs.sign",
    } <= names


def callbacks_in(source: str) -> list[int]:
    """The lines where a worker hands a callback to the UI thread (`call_from_thread`)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr == "call_from_thread"
    ]


def test_workers_post_typed_messages_never_callbacks():
    """A worker hands its result to its screen as a typed message (a nested dataclass
    `Message`, handled with `@on`), never as a callback run through `call_from_thread`:
    the message says what the result is, and a screen that has closed never gets it."""
    found = [
        f"{path}:{line}"
        for path, _module in screen_modules()
        for line in callbacks_in(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "post a typed message instead:\n" + "\n".join(found)


def test_the_callback_check_finds_a_callback_and_passes_a_posted_message():
    assert callbacks_in("def w(self):\n    self.app.call_from_thread(self._fill, 1)\n") == [2]
    assert callbacks_in("def w(self):\n    self.post_message(self.Loaded(1))\n") == []
