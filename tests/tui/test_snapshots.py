"""Pictures of each screen at 80x24 and 120x40, in English and Chinese.

Fixed clock (WARDCRF_FAKE_NOW) and a template site built under it keep them
stable; nothing random (event or device ids) is drawn on these screens.
Update with `pytest tests/tui/test_snapshots.py --snapshot-update` and
review the SVGs before committing.
"""

from __future__ import annotations

import pytest
from tui_helpers import settle
from wardcrf.screens.dialogs.sign import SignatureDialog

SIZES = [(80, 24), (120, 40)]


async def _settled(pilot) -> None:
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_login(snap_compare, app_for, size, language):
    app = app_for(language=language)
    assert snap_compare(app, press=[*"clinician"], terminal_size=size, run_before=_settled)


# MEXCOVID 1.0's dashboard, on the engine (its Doses column); PALM's and PALM007's are pictured by
# test_dashboard_format2_small.
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_dashboard(snap_compare, app_for, size, language):
    app = app_for("clinician", language=language)
    assert snap_compare(app, terminal_size=size, run_before=_settled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_audit(snap_compare, app_for, size, language):
    app = app_for("auditor", language=language)

    async def open_audit(pilot):
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_audit)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_lock(snap_compare, app_for, size):
    app = app_for("clinician")

    async def lock(pilot):
        await settle(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=lock)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_signature_dialog(snap_compare, app_for, size):
    app = app_for("clinician", language="zh")

    async def open_dialog(pilot):
        await settle(pilot)
        pilot.app.push_screen(
            SignatureDialog(
                what="WUH01-001 consent",
                meaning="witnessed",
                signer="",
                sign=lambda u, p: None,
                signer_editable=True,
            )
        )
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_dialog)


def test_dashboard_high_contrast(snap_compare, app_for):
    app = app_for("clinician", high_contrast=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_participant(snap_compare, app_for, site, tmp_path, size, language):
    from tui_helpers import enroll
    from wardcrf.screens.participant import ParticipantScreen

    pid = enroll(site, tmp_path)
    app = app_for("clinician", language=language)

    async def open_participant(pilot):
        await settle(pilot)
        pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_participant)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_vitals_form_with_refusal(snap_compare, app_for, site, tmp_path, size, language):
    from tui_helpers import enroll
    from wardcrf.screens.form_screen import FormScreen

    pid = enroll(site, tmp_path)
    app = app_for("clinician", language=language)

    async def open_form(pilot):
        await settle(pilot)
        pilot.app.push_screen(FormScreen(pilot.app.ward, "vitals", pid))
        await settle(pilot)
        await pilot.press("tab", "tab", *"08:30", "tab", *"50")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_form)
