"""Sync screen and background sync: export to a folder, push/pull against a real `hub serve`
on loopback, offline messages, importing files, answering the hub's data queries."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static
from tui_helpers import PASSWORD, burst, enroll, settle
from wardcrf.screens.dialogs.path import PathDialog
from wardcrf.screens.sync_screen import AnswerDialog, SyncScreen

from wardcrf.site import Site

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from synckit import HubServer, card_of, connect, free_port, make_hub, open_, serve_process


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


async def _open_sync(pilot) -> None:
    await settle(pilot)
    await pilot.press("s")
    await settle(pilot)
    assert isinstance(pilot.app.screen, SyncScreen)


async def open_dialog(pilot, key: str) -> None:
    """Open a path dialog (its directory tree keeps a loader worker: not waited for)."""
    await pilot.press(key)
    for _ in range(3):
        await pilot.pause()


async def _choose_path(pilot, path: Path | str) -> None:
    assert isinstance(pilot.app.screen, PathDialog)
    await pilot.press(*str(path), "enter")
    await settle(pilot)


def _set_url(site: Site, url: str | None, hub_site: Site) -> None:
    from wardcrf.sync import registry

    s = open_(site)
    try:
        registry.set_hub(s, card_of(hub_site), url)
    finally:
        s.close()


@pytest.fixture
def hub_site(tmp_path: Path) -> Site:
    return make_hub(tmp_path)


async def test_export_to_a_folder_lists_the_bundle_files(app_for, site, hub_site, tmp_path):
    connect(site, hub_site)
    usb = tmp_path / "usb"
    usb.mkdir()
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_sync(pilot)
        status = _text(app, "#sync-status")
        assert "Hub: " in status and "(no URL: USB only)" in status
        assert "Last export: never" in status and "Last receipt: never" in status and "event(s)" in status
        await open_dialog(pilot, "e")
        await _choose_path(pilot, usb)
        message = _text(app, "#sync-message")
        files = sorted(p.name for p in usb.iterdir())
        assert len(files) == 2 and files[0].endswith(".tar.age") and files[1].endswith(".minisig")
        assert message.splitlines()[0].startswith("Wrote 1 bundle(s)")
        assert files[0] in message
        assert not app.screen.query_one("#sync-progress").display
        assert "Last export: 2020-03-16" in _text(app, "#sync-status")
        assert re.search(
            r"Last export: 2020-03-16 [^(]*\(1 file\)", _text(app, "#sync-status")
        )  # not "1 files"
        # Again: the same unreceipted bundle is written again (the hub has no receipt yet).
        await open_dialog(pilot, "e")
        await _choose_path(pilot, "")  # the dialog remembers the last folder
        assert _text(app, "#sync-message").startswith("Wrote 1 bundle(s)")
        await pilot.press("escape")  # the dashboard's sync panel says the same (eyes D11: "(1 files)")
        await settle(pilot)
        table = app.screen.query_one("#sync", DataTable)
        rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert re.fullmatch(r"03-16 \d\d:\d\d \(1 file\)", rows["Last export"]), rows


async def test_export_to_an_unwritable_or_missing_folder_is_refused_in_one_line(app_for, site, hub_site):
    connect(site, hub_site)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_sync(pilot)
        await open_dialog(pilot, "e")
        await _choose_path(pilot, "/proc")
        message = _text(app, "#sync-message")
        assert message.startswith("cannot write ") and " to /proc: " in message and "\n" not in message
        await open_dialog(pilot, "e")
        await _choose_path(pilot, "/no/such/stick")
        assert _text(app, "#sync-message") == (
            "/no/such/stick is not a directory (mount the USB stick or create the folder)"
        )


async def test_push_without_a_hub_or_url_and_with_an_unreachable_hub_says_so(app_for, site, hub_site):
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_sync(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert _text(app, "#sync-message").startswith("no hub configured: import the hub's card first")
        _set_url(site, None, hub_site)
        await pilot.press("g")
        await settle(pilot)
        assert _text(app, "#sync-message").startswith("no hub URL")
        _set_url(site, f"http://127.0.0.1:{free_port()}", hub_site)
        await pilot.press("p")
        await settle(pilot)
        message = _text(app, "#sync-message")
        assert "is unreachable" in message and "nothing was lost" in message
        assert not app.screen.query_one("#sync-progress").display


async def test_roles_without_sync_export_are_not_offered_sync(app_for, site, hub_site):
    connect(site, hub_site)
    for user in ("auditor", "dsmg"):
        app = app_for(user)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot)
            assert not isinstance(app.screen, SyncScreen)
            # Reached another way: the panel reads, export is not offered, the domain refuses.
            app.push_screen(SyncScreen(app.ward))
            await settle(pilot)
            await pilot.press("e")
            await settle(pilot)
            assert isinstance(app.screen, SyncScreen)
            from wardcrf.sync import ward as sync_ward

            from wardcrf.errors import PermissionDenied

            with pytest.raises(PermissionDenied, match=f"role {user} may not export sync bundles"):
                app.ward.call(sync_ward.export, Path("/tmp"))


class _Permits:
    """The one thing `SyncScreen.check_action` asks of the ward: may the user do this action?"""

    def __init__(self, *actions: str) -> None:
        self.actions = set(actions)

    def can(self, action: str) -> bool:
        return action in self.actions


def test_every_key_that_moves_bundles_is_offered_only_with_sync_export():
    """Export, push, pull and import all move data: each is offered with `sync.export`, none without."""
    moving = {"export", "push", "pull", "import_file"}
    keys = {b.key: b.action for b in SyncScreen.BINDINGS if b.action in moving}
    assert keys == {"e": "export", "p": "push", "g": "pull", "i": "import_file"}
    with_export = SyncScreen(_Permits("sync.export", "record.comment"))
    without = SyncScreen(_Permits("record.comment", "record.amend"))
    for action in moving:
        assert with_export.check_action(action, ()) is True, action
        assert without.check_action(action, ()) is False, action
    assert without.check_action("answer", ()) is True  # answering a query needs only record.comment
    assert without.check_action("reload", ()) is True


async def test_pull_brings_a_query_that_is_answered_and_pushed_back(app_for, site, hub_site):
    from wardcrf.sync import registry

    server = HubServer(hub_site.data_dir)
    try:
        connect(site, hub_site, server.url)
        app = app_for("clinician")
        async with app.run_test(size=(120, 40)) as pilot:
            await _open_sync(pilot)
            await pilot.press("p")
            await settle(pilot)
            # (the background sync may have pushed first: either way the hub receipts every event)
            assert "receipt: the hub holds events 1-" in _text(app, "#sync-message")
            device = app.ward.session.ctx.device
            hs = open_(hub_site, "coordinator")
            try:
                q = registry.raise_query(hs, "WUH01", f"{device}-1", "site", "Is the site code right?")
            finally:
                hs.close()
            await pilot.press("g")
            await settle(pilot)
            table = app.screen.query_one("#queries", DataTable)
            assert table.row_count == 1 and str(table.get_row_at(0)[4]) == "Is the site code right?"
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, AnswerDialog)
            await pilot.press("enter")  # empty answer refused on the spot
            assert _text(app, "#answer-message") == "An answer needs text."
            await pilot.press(*"Yes, WUH01 is correct", "enter")
            await settle(pilot)
            assert isinstance(app.screen, SyncScreen)
            assert _text(app, "#sync-message").startswith(f"Query {q.id[-8:]} answered")
            assert str(table.get_row_at(0)[3]) == "answered"
            await pilot.press("p")
            await settle(pilot)
        hs = open_(hub_site, "coordinator")
        try:
            [answered] = registry.queries(hs.store, "answered")
            assert answered["query_id"] == q.id and "WUH01 is correct" in answered["answer"]
        finally:
            hs.close()
    finally:
        server.stop()


def _query_on_screening_sex(site: Site, tmp_path: Path) -> None:
    """A participant whose screening's sex the hub queried (the query as its bundle projects it)."""
    from hub_delivery import deliver

    pid = enroll(site, tmp_path)
    admin = site.unlock("admin", PASSWORD)
    try:
        target = admin.store.scalar(
            "SELECT event_id FROM records WHERE form = 'screening' AND subject = ?", (f"participant:{pid}",)
        )
        # The query as the hub's bundle projects it on the ward (same projector).
        deliver(
            admin,
            "query.raised",
            {"site": "WUH01", "target_event": target, "field": "sex", "question": "Sex per source?"},
            subject="site:WUH01",
        )
    finally:
        admin.close()


async def test_answer_by_amendment_asks_the_reason_and_corrects_the_field(app_for, site, tmp_path):
    from wardcrf.screens.dialogs.reason import ReasonDialog
    from wardcrf.sync import registry

    _query_on_screening_sex(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_sync(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, AnswerDialog)
        assert "Current value: M" in str(app.screen.query_one(".change", Static).content)
        await pilot.press(*"F", "enter", *"corrected from the source notes", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"transcription error", "enter")
        await settle(pilot)
        assert isinstance(app.screen, SyncScreen)
        assert _text(app, "#sync-message").startswith("Field corrected and query")
        shown = app.ward.call(registry.query_target, registry.queries(app.ward.session.store)[0]["query_id"])
        assert shown["value"] == "F" and shown["status"] == "answered"


async def test_background_sync_goes_offline_then_syncs_when_the_hub_answers(app_for, site, hub_site):
    from wardcrf.screens.widgets.status import StatusBar

    port = free_port()
    connect(site, hub_site, f"http://127.0.0.1:{port}")
    app = app_for("clinician")
    app.SYNC_TIMING = (0.2, 0.4, 30.0)  # type: ignore[misc]
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot)
        for _ in range(100):  # bounded: the first probe fails at once on a closed port
            await pilot.pause(0.05)
            if app.sync_state is not None:
                break
        assert app.sync_state is not None and app.sync_state.state == "offline"
        assert "⇅ offline" in str(app.screen.query_one(StatusBar).content)
        server = HubServer.__new__(HubServer)
        try:
            server.port, server.url = port, f"http://127.0.0.1:{port}"
            server.proc = serve_process(hub_site.data_dir, port)
            server.wait_ready()
            for _ in range(300):  # bounded: backoff is at most 0.4 s here
                await pilot.pause(0.05)
                if app.sync_state.state == "synced":
                    break
            assert app.sync_state.state == "synced", app.sync_state.detail
            assert "⇅ synced 09:00" in str(app.screen.query_one(StatusBar).content)
            from wardcrf.sync import ward as sync_ward

            st = app.ward.call(sync_ward.status)
            assert st["events_pending"] == 0 and st["hub_reachability"]["state"] == "synced"
        finally:
            app._stop_background_sync()
            server.stop()


async def test_esc_on_an_untouched_answer_closes_at_once(app_for, site, tmp_path):
    _query_on_screening_sex(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_sync(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, AnswerDialog)
        await burst(pilot, "escape")
        assert isinstance(app.screen, SyncScreen)


async def test_esc_on_a_typed_answer_asks_and_keep_editing_keeps_it(app_for, site, tmp_path):
    """The new value and the answer typed: Esc asks; `n` keeps both, `y` throws them away."""
    from wardcrf.screens.dialogs.discard import DiscardDialog

    _query_on_screening_sex(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_sync(pilot)
        await pilot.press("m")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, AnswerDialog)
        await burst(pilot, "F", "enter", *"corrected from", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n", *" the notes")
        assert app.screen is dialog
        assert dialog.query_one("#answer-value", Input).value == "F"
        assert dialog.query_one("#answer-text", Input).value == "corrected from the notes"
        await burst(pilot, "escape", "y")
        assert isinstance(app.screen, SyncScreen)


async def test_esc_on_a_path_dialog_asks_only_when_a_path_was_typed(app_for, tmp_path):
    """The folder it opened with is not typed work (Esc closes at once); a typed path asks."""
    from wardcrf.screens.dialogs.discard import DiscardDialog

    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        results: list[object] = []
        app.push_screen(PathDialog(kind="file", title="Import", start=tmp_path), results.append)
        for _ in range(3):  # its directory tree keeps a loader worker: not waited for
            await pilot.pause()
        await burst(pilot, "escape")
        assert results == [None]
        dialog = PathDialog(kind="file", title="Import", start=tmp_path)
        app.push_screen(dialog, results.append)
        for _ in range(3):
            await pilot.pause()
        await burst(pilot, *"/media/usb", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")
        assert app.screen is dialog and results == [None]
        assert dialog.query_one("#path", Input).value == "/media/usb"
        await burst(pilot, "escape", "y")
        assert results == [None, None]
