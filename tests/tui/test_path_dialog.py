"""The one path dialog (`screens/dialogs/path.py`): a file or a folder, typed or picked.

Its screen-level uses are tested where they are used (sync export/import in
test_sync_screen.py, the cold chain's logger file in test_coldchain.py)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DirectoryTree, Input, Static
from tui_helpers import burst, settle
from wardcrf.screens.dialogs.path import PathDialog


async def _open(app, pilot, dialog: PathDialog, results: list[object]) -> None:
    app.push_screen(dialog, results.append)
    for _ in range(3):  # its directory tree keeps a loader worker: not waited for
        await pilot.pause()


async def test_a_typed_file_is_chosen_and_a_missing_one_is_refused_in_one_line(app_for, tmp_path):
    wanted = tmp_path / "logger.csv"
    wanted.write_text("x")
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        results: list[object] = []
        dialog = PathDialog(kind="file", title="Logger file")
        await _open(app, pilot, dialog, results)
        await burst(pilot, "enter")  # nothing typed
        assert str(dialog.query_one("#path-message", Static).content) == "Type or pick a path first."
        await burst(pilot, *str(tmp_path / "nope.csv"), "enter")
        assert app.screen is dialog and results == []
        assert (
            str(dialog.query_one("#path-message", Static).content) == f"No such file: {tmp_path / 'nope.csv'}"
        )
        assert dialog.query_one("#path", Input).value == str(tmp_path / "nope.csv")  # the typing is kept
        dialog.query_one("#path", Input).value = "@" + str(wanted)  # the services' @ mark is dropped
        await burst(pilot, "enter")
        assert results == [wanted]


async def test_a_typed_folder_opens_in_the_tree_when_a_file_is_wanted(app_for, tmp_path):
    sub = tmp_path / "stick"
    sub.mkdir()
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        results: list[object] = []
        dialog = PathDialog(kind="file", title="Logger file", start=tmp_path)
        await _open(app, pilot, dialog, results)
        assert dialog.query_one("#path", Input).value == str(tmp_path)
        dialog.query_one("#path", Input).value = str(sub)
        await burst(pilot, "enter")
        assert app.screen is dialog and results == []
        assert Path(dialog.query_one("#path-tree", DirectoryTree).path) == sub


async def test_a_folder_is_chosen_as_typed_and_its_tree_lists_folders_only(app_for, tmp_path):
    (tmp_path / "usb").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        results: list[object] = []
        dialog = PathDialog(kind="folder", title="Export", start=tmp_path)
        await _open(app, pilot, dialog, results)
        tree = dialog.query_one("#path-tree", DirectoryTree)
        assert list(tree.filter_paths([tmp_path / "usb", tmp_path / "notes.txt"])) == [tmp_path / "usb"]
        # A folder that does not exist is the service's to refuse (it names what is wrong).
        dialog.query_one("#path", Input).value = str(tmp_path / "missing")
        await burst(pilot, "enter")
        assert results == [tmp_path / "missing"]


async def test_a_file_picked_in_the_tree_is_chosen(app_for, tmp_path):
    wanted = tmp_path / "receipt.json"
    wanted.write_text("{}")
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        results: list[object] = []
        dialog = PathDialog(kind="file", title="Import", start=tmp_path)
        await _open(app, pilot, dialog, results)
        tree = dialog.query_one("#path-tree", DirectoryTree)
        tree.post_message(DirectoryTree.FileSelected(tree.root, wanted))
        await settle(pilot)
        assert results == [wanted]
