"""DSMG review screen: the board, the signed decision, and refusals."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Select, Static
from tui_helpers import PASSWORD, enroll, settle
from wardcrf.screens.dialogs.sign import SignatureDialog
from wardcrf.screens.dsmg import DecisionDialog, DsmgScreen

from wardcrf import eventlog, workflow
from wardcrf.errors import PermissionDenied
from wardcrf.workflow import dsmg, safety


def add_sae(site, pid: str) -> str:
    """A serious AE (hospitalisation) and flagged vitals, recorded by the ward clinician."""
    s = site.unlock("clinician", PASSWORD)
    try:
        ev = workflow.submit(
            s,
            "ae",
            {
                "term": "Pneumothorax",
                "onset": "2020-03-15",
                "grade": "3",
                "serious": "yes",
                "hospitalization": "yes",
                "causality": "unlikely",
                "action": "none",
                "outcome": "recovering",
                "first_known": "2020-03-15",
            },
            participant=pid,
        )
        workflow.submit(
            s,
            "vitals",
            {
                "timepoint": "unscheduled",
                "time": "2020-03-16T08:30:00+08:00",
                "temp": "39.8",
                "pulse": "80",
                "resp": "18",
                "oxysat": "96",
            },
            participant=pid,
            reason="rechecked",
            confirm=True,
        )
        return ev.id
    finally:
        s.close()


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


async def _open_board(pilot) -> None:
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DsmgScreen)


async def _fill_decision(pilot, decision_steps: int, rationale: str, change: str = "") -> None:
    """Choose the n-th decision in the drop-down by keyboard, then type the rationale (and change)."""
    await pilot.press("enter")  # opens the drop-down
    await pilot.press(*["down"] * decision_steps, "enter")
    await pilot.press("tab", *rationale)
    if change:
        await pilot.press("tab", *change)
    await pilot.press("ctrl+s")
    await settle(pilot)


async def test_board_shows_gate_participants_and_safety_detail(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    add_sae(site, pid)
    app = app_for("dsmg")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_board(pilot)
        gate = _text(app, "#dsmg-gate")
        assert "dosing and enrollment open" in gate and f"sentinel {pid} awaits" in gate
        assert "1 SAE(s) await DSMG review" in gate
        table = app.screen.query_one("#dsmg-participants", DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row == [f"{pid} ★", "0/5", "1", "1", "1", "1", ""]
        detail = _text(app, "#dsmg-detail")
        assert "SAE Pneumothorax (onset 2020-03-15, grade 3) report due 2020-03-30" in detail
        assert "DSMG review: awaiting" in detail
        assert "Temperature 39.8" in detail and "expected 35–39.5" in detail
        await pilot.press("h")
        assert _text(app, "#dsmg-detail") == "no DSMG decision yet"


async def test_decision_is_signed_and_a_wrong_password_keeps_everything(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_board(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DecisionDialog)
        await _fill_decision(pilot, 2, "grade 4 event under review")  # continue, stop
        assert isinstance(app.screen, SignatureDialog)
        before = eventlog.count(app.ward.session.store)
        await pilot.press(*"wrong-password", "enter")
        await settle(pilot)
        assert isinstance(app.screen, SignatureDialog)
        assert "wrong password for dsmg" in _text(app, "#sig-message")
        store = app.ward.session.store
        assert safety.decisions(store, participant=pid) == []
        # only the failed attempt was written
        assert eventlog.count(store) == before + 1
        await pilot.press("escape")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, DecisionDialog)
        assert dialog.values() == {"decision": "stop", "rationale": "grade 4 event under review"}
        assert "Not saved" in _text(app, "#decision-problems")
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press(*PASSWORD, "enter")
        await settle(pilot)
        assert isinstance(app.screen, DsmgScreen)
        [d] = safety.decisions(store, participant=pid)
        assert d["decision"] == "stop" and d["rationale"] == "grade 4 event under review"
        gate = _text(app, "#dsmg-gate")
        assert "HOLD: the DSMG recorded 'stop'" in gate
        detail = _text(app, "#dsmg-detail")
        assert "Stop — grade 4 event under review" in detail and "signed by Dsmg User (approved)" in detail


async def test_alter_without_its_change_is_refused_before_signing(app_for, site, tmp_path):
    enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_board(pilot)
        await pilot.press("d")
        await settle(pilot)
        await _fill_decision(pilot, 3, "two grade 3 events")  # alter
        assert isinstance(app.screen, DecisionDialog)
        assert "change: required for 'alter'" in _text(app, "#decision-problems")


async def test_keys_typed_behind_the_signing_key_reach_neither_the_rationale_nor_the_password(
    app_for, site, tmp_path
):
    """ctrl+s and more keys at once: they were typed for what comes after the decision; the check runs in
    the background, then a refusal or the signature's password field comes instead — neither takes them."""
    from tui_helpers import burst

    enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_board(pilot)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("enter")
        await pilot.press(*["down"] * 3, "enter")  # alter, without its change: refused
        await pilot.press("tab", *"two grade 3 events")
        await burst(pilot, "ctrl+s", *"xyz")
        await settle(pilot)
        assert isinstance(app.screen, DecisionDialog)
        assert "change: required for 'alter'" in _text(app, "#decision-problems")
        assert app.screen.values()["rationale"] == "two grade 3 events", app.screen.values()
        await pilot.press("tab", *"halve the dose")
        await burst(pilot, "ctrl+s", *"abc")
        await settle(pilot)
        assert isinstance(app.screen, SignatureDialog), app.screen
        assert app.screen.query_one("#sig-password", Input).value == "", "typed ahead into a password"


async def test_other_roles_are_not_offered_the_board_and_the_domain_refuses(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert not isinstance(app.screen, DsmgScreen)
        # Reached another way, the board reads but offers no decision...
        app.push_screen(DsmgScreen(app.ward))
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DsmgScreen)
        # ...and the dialog, forced open, shows the domain's refusal; nothing is saved.
        app.push_screen(DecisionDialog(app.ward, pid, app.screen.proto))
        await settle(pilot)
        app.screen.query_one("#decision", Select).value = "continue"
        await pilot.press("tab", *"fine", "ctrl+s")
        await settle(pilot)
        assert "role clinician may not record DSMG decisions" in _text(app, "#decision-problems")
        with pytest.raises(PermissionDenied):
            app.ward.call(dsmg.decide, pid, {"decision": "continue", "rationale": "x"}, password=PASSWORD)
        assert safety.decisions(app.ward.session.store) == []


async def test_review_sae_opens_the_generated_review_form_for_that_event(app_for, site, tmp_path):
    from wardcrf.screens.form_screen import FormScreen

    pid = enroll(site, tmp_path)
    sae = add_sae(site, pid)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_board(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, FormScreen) and app.screen.form_name == "dsmg_ae_review"
        assert app.screen.values["ae_event"] == sae


async def test_esc_and_ctrl_q_on_a_typed_decision_ask_before_anything_is_lost(app_for, site, tmp_path):
    """Issue 14, finding 3: a typed rationale is not thrown away by one slip on Esc or ctrl+q."""
    from tui_helpers import burst
    from wardcrf.screens.dialogs.discard import DiscardDialog
    from wardcrf.screens.dialogs.quit import QuitDialog

    enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_board(pilot)
        await pilot.press("d")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, DecisionDialog)
        await burst(pilot, "tab", *"two grade 3 events", "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")
        assert app.screen is dialog and dialog.values() == {"rationale": "two grade 3 events"}
        await burst(pilot, "ctrl+q")
        assert isinstance(app.screen, QuitDialog)
        await burst(pilot, "n")
        assert app.screen is dialog and app.return_code is None
        await burst(pilot, "escape", "y")
        assert isinstance(app.screen, DsmgScreen)
        await burst(pilot, "d", "escape")  # nothing typed: closes at once
        assert isinstance(app.screen, DsmgScreen)


# -- Issue 14, "nothing typed is ever lost": the decision dialog keeps a draft ------------------


def _decision_draft(site, pid: str):
    from wardcrf import drafts

    s = site.unlock("dsmg", PASSWORD)
    try:
        return drafts.get(s, "dsmg_decision", context=f"participant:{pid}")
    finally:
        s.close()


async def _open_dialog(pilot) -> DecisionDialog:
    await _open_board(pilot)
    await pilot.press("d")
    await settle(pilot)
    dialog = pilot.app.screen
    assert isinstance(dialog, DecisionDialog)
    return dialog


async def _sign_decision(pilot) -> None:
    """ctrl+s on the decision dialog, then the member's password: back at the board."""
    from tui_helpers import burst

    await burst(pilot, "ctrl+s")
    await settle(pilot)
    assert isinstance(pilot.app.screen, SignatureDialog)
    await burst(pilot, *PASSWORD, "enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DsmgScreen)


async def _type_decision(pilot, rationale: str, change: str) -> DecisionDialog:
    """Open the dialog, choose 'alter', type rationale and change, and leave the change field."""
    from tui_helpers import burst

    dialog = await _open_dialog(pilot)
    await pilot.press("enter")  # opens the drop-down
    await pilot.press("down", "down", "down", "enter")  # continue, stop, alter
    await burst(pilot, "tab", *rationale, "tab", *change, "shift+tab")
    await settle(pilot)  # the draft is kept in a thread worker: wait for it
    return dialog


async def test_a_typed_decision_survives_a_crash_and_is_offered_back(app_for, site, tmp_path):
    from tui_helpers import burst
    from wardcrf.screens.app import make_app
    from wardcrf.screens.dashboard import DashboardScreen
    from wardcrf.screens.drafts_screen import DraftsScreen

    pid = enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _type_decision(pilot, "two grade 3 events", "halve the dose")
        # A crash now: the draft row is already in the database, no save, no quit.
        kept = _decision_draft(site, pid)
        assert kept is not None
        assert kept.fields == {
            "decision": "alter",
            "rationale": "two grade 3 events",
            "change": "halve the dose",
        }
        assert kept.focus == "rationale"
    again = make_app(site.data_dir)
    async with again.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await burst(pilot, *"dsmg", "tab", *PASSWORD, "enter")
        assert isinstance(again.screen, DashboardScreen)
        assert "unsaved" in str(again.screen.query_one("#dash-drafts", Static).content).lower()
        await burst(pilot, "u")
        assert isinstance(again.screen, DraftsScreen)
        await burst(pilot, "enter")
        dialog = again.screen
        assert isinstance(dialog, DecisionDialog) and dialog.participant == pid
        assert isinstance(again.screen_stack[-2], DsmgScreen)  # Esc goes back to the board
        assert dialog.values() == {
            "decision": "alter",
            "rationale": "two grade 3 events",
            "change": "halve the dose",
        }
        assert again.focused is dialog.query_one("#rationale")  # back where the cursor was
        await _sign_decision(pilot)  # signing the reopened decision ends the draft
    assert _decision_draft(site, pid) is None


async def test_signing_the_decision_leaves_no_draft(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _type_decision(pilot, "two grade 3 events", "halve the dose")
        assert _decision_draft(site, pid) is not None
        await _sign_decision(pilot)
        [d] = safety.decisions(app.ward.session.store, participant=pid)
        assert d["decision"] == "alter" and d["change"] == "halve the dose"
    assert _decision_draft(site, pid) is None


async def test_esc_and_y_on_a_typed_decision_throws_its_draft_away(app_for, site, tmp_path):
    from tui_helpers import burst
    from wardcrf.screens.dialogs.discard import DiscardDialog

    pid = enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await _type_decision(pilot, "two grade 3 events", "halve the dose")
        assert _decision_draft(site, pid) is not None
        await burst(pilot, "escape")
        assert isinstance(app.screen, DiscardDialog)
        await burst(pilot, "n")  # kept: the draft too
        assert app.screen is dialog and _decision_draft(site, pid) is not None
        await burst(pilot, "escape", "y")
        assert isinstance(app.screen, DsmgScreen)
        assert _decision_draft(site, pid) is None
        assert safety.decisions(app.ward.session.store, participant=pid) == []


async def test_quit_keeps_the_field_being_typed_in_the_decision_draft(app_for, site, tmp_path):
    from tui_helpers import burst

    pid = enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_dialog(pilot)
        await burst(pilot, "tab", *"two grade")  # never left the field
        await burst(pilot, "ctrl+q")
    kept = _decision_draft(site, pid)
    assert kept is not None and kept.fields == {"rationale": "two grade"} and kept.focus == "rationale"


async def test_a_wrong_password_keeps_the_decision_draft(app_for, site, tmp_path):
    from tui_helpers import burst

    pid = enroll(site, tmp_path)
    app = app_for("dsmg")
    async with app.run_test(size=(100, 30)) as pilot:
        await _type_decision(pilot, "two grade 3 events", "halve the dose")
        await burst(pilot, "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SignatureDialog)
        await burst(pilot, *"wrong-password", "enter")
        await settle(pilot)
        assert "wrong password for dsmg" in _text(app, "#sig-message")
        assert safety.decisions(app.ward.session.store, participant=pid) == []
        kept = _decision_draft(site, pid)
        assert kept is not None and kept.fields["rationale"] == "two grade 3 events"


async def test_a_participant_on_a_version_not_loaded_is_flagged_and_nothing_planned(
    app_for, site, tmp_path, session_for
):
    """Before, the board read them under the active version (0/5); now 0/? and the line saying why."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from record_version_support import arrived_under

    pid = enroll(site, tmp_path)
    add_sae(site, pid)
    body = {"participant": pid, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.2"}
    arrived_under(
        session_for("admin"),
        "",
        {},
        subject=f"participant:{pid}",
        type="protocol.applied",
        body=body,
        user="investigator",
        role="investigator",
    )
    app = app_for("dsmg")
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_board(pilot)
        table = app.screen.query_one("#dsmg-participants", DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row == [f"{pid} ★", "0/?", "1", "1", "1", "1", ""]  # the SAE and the flagged vitals kept
        detail = " ".join(_text(app, "#dsmg-detail").split())
        assert "version MEXCOVID 1.2 not loaded here: nothing planned is shown for them" in detail
        assert "doses 0/? ·" in detail
        assert "SAE Pneumothorax (onset 2020-03-15, grade 3)" in detail
