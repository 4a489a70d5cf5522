"""Check before you sign, one time convention (issue 14, findings 5 and 9).

Found: both parties typed their passwords, and only then was the handover
refused ("not after its last custody step"); the same for a non-image photo
and a missing logger serial, whose refusal named a CLI flag on screen
(`--logger-serial`); refusals quoted UTC while the screens show local time.
"""

from __future__ import annotations

from cc_helpers import PASSWORD, cold_chain_site
from textual.widgets import Static
from tui_helpers import burst, settle
from wardcrf.screens.coldchain.handover import HandoverScreen
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.dialogs.sign import SignatureDialog
from wardcrf.screens.participant import ParticipantScreen

from wardcrf.coldchain import services


def _said(app) -> str:
    return str(app.screen.query_one("#cc-form-message", Static).content)


async def _until_said(pilot, screen, text: str = "") -> str:
    for _ in range(200):
        await pilot.pause()
        said = str(screen.query_one("#cc-form-message", Static).content)
        if isinstance(pilot.app.screen, SignatureDialog) or (
            said and "Checking" not in said and text in said
        ):
            break
    return str(screen.query_one("#cc-form-message", Static).content)


def fill(screen, **values) -> None:
    for name, value in values.items():
        screen.query_one(f"#cc-{name}").value = value


def fill_receipt(screen, **extra) -> None:
    """A receipt of kit K901 of a new lot, complete but for what `extra` adds (no logger, no place)."""
    screen.query_one("#cc-kits").add("K901")
    fill(
        screen,
        lot="LOT9",
        product="haMSC-Exos",
        expiry="2021-06-30",
        release_ref="QP-9",
        quantity="1",
        shipper="SH9",
        dry_ice="yes",
        intact="yes",
        frozen="yes",
        courier_user="coordinator",
        **extra,
    )


async def _open(pilot, key: str):
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)
    await pilot.press(key)
    await settle(pilot)
    return pilot.app.screen


async def test_a_handover_out_of_order_is_refused_before_any_password(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "h")
        assert isinstance(screen, HandoverScreen)
        screen.query_one("#cc-kits").add("K001")
        # K001 went into FRZ-1 on 2020-03-15 at 08:15 (local): a handover before that is out of order
        fill(screen, at="2020-03-15 08:00", **{"from": "FRZ-1", "to": "bedside:P-001"}, to_user="clinician")
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        said = await _until_said(pilot, screen, "custody step")
        assert not isinstance(app.screen, SignatureDialog), "a password was asked before the check"
        assert "is not after its last custody step" in said
        assert "2020-03-15 08:00 UTC+8" in said and "08:15 UTC+8" in said  # local, zone marked
        assert "T00:" not in said and "Z " not in said  # no UTC


async def test_a_receipt_without_logger_metadata_is_refused_before_any_password_without_cli_flags(app_for):
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        assert isinstance(screen, ReceiptScreen)
        fill_receipt(screen, to="pharmacy")
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        said = await _until_said(pilot, screen, "logger")
        assert not isinstance(app.screen, SignatureDialog)
        assert "give the shipper's logger serial or its file" in said
        assert "--" not in said


async def test_a_photo_that_is_not_an_image_is_refused_before_any_password(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path)
    sheet = tmp_path / "sheet.jpg"
    sheet.write_text("not a picture")
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "h")
        screen.query_one("#cc-kits").add("K001")
        screen.query_one("#cc-photos").add(f"@{sheet}")
        fill(
            screen, at="2020-03-16 08:40", **{"from": "FRZ-1", "to": "bedside:P-001"}, to_external="Porter Li"
        )
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        said = await _until_said(pilot, screen, "sheet.jpg")
        assert not isinstance(app.screen, SignatureDialog)
        assert "sheet.jpg" in said


async def test_a_handover_that_passes_the_checks_goes_on_to_the_signatures(app_for, site, tmp_path):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "h")
        screen.query_one("#cc-kits").add("K001")
        fill(screen, at="2020-03-16 08:40", **{"from": "FRZ-1", "to": "bedside:P-001"}, to_user="clinician")
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        await _until_said(pilot, screen)
        assert isinstance(app.screen, SignatureDialog)


async def test_signature_times_on_the_participant_screen_are_local(app_for, site, tmp_path):
    from tui_helpers import enroll

    pid = enroll(site, tmp_path)  # consent signed at 2020-03-16 01:00 UTC = 09:00 on the ward
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        shown = str(app.screen.query_one("#p-signatures", Static).content)
        assert "2020-03-16 09:00 UTC+8" in shown and "01:00" not in shown


async def test_a_consent_whose_photo_is_not_an_image_is_refused_before_any_signature(app_for, tmp_path):
    """The consent's three signatures were asked first, then the file was refused (finding 5)."""
    from textual.widgets import Input, Select
    from wardcrf.screens.form_screen import FormScreen

    not_a_photo = tmp_path / "consent-page.jpg"
    not_a_photo.write_text("minutes of a meeting, not a photograph")
    app = app_for("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormScreen) and form.form_name == "consent"
        form.query_one("#field-consenter", Select).value = "participant"
        form.query_one("#field-form_version", Select).value = "1.0"
        for name, value in (
            ("time", "2020-03-16 08:00"),
            ("witness_1", "investigator"),
            ("witness_2", "clinician2"),
            ("photos", f"@{not_a_photo}"),
        ):
            form.query_one(f"#field-{name}", Input).value = value
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, SignatureDialog), "a password was asked before the check"
        assert app.screen is form
        assert "consent-page.jpg" in str(form.query_one("#problem-photos", Static).content)
        assert form.query_one("#field-witness_2", Input).value == "clinician2"  # nothing typed is lost


async def test_a_receipt_does_not_default_to_a_place_outside_a_unit(app_for, site):
    """Finding 7: "To location" was pre-filled with 'pharmacy', a silent 30 min custody clock."""
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        assert isinstance(screen, ReceiptScreen)
        assert screen.query_one("#cc-to").value == ""  # no unit registered: the person names the place
        fill_receipt(screen, logger_serial="LG-9")
        await settle(pilot)
        await burst(pilot, "ctrl+s")
        said = await _until_said(pilot, screen, "where the kits go")
        assert not isinstance(app.screen, SignatureDialog)
        assert "say where the kits go: a place (no storage unit is registered), e.g. 'pharmacy'" in said
        assert "--" not in said
    ph = site.unlock("pharmacist", PASSWORD)
    try:
        services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    finally:
        ph.close()
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "r")
        assert screen.query_one("#cc-to").value == "FRZ-1"  # the site's one storage unit


async def test_the_participant_screen_names_a_deviation_about_no_dose(app_for, site, tmp_path):
    """An enrolled participant's screening amended so that they fail the criteria: the deviation has
    no dose, and the screen read `d['dose']` of every deviation (a KeyError; typing it found it)."""
    from tui_helpers import enroll

    from wardcrf import workflow
    from wardcrf.workflow.base import get_participant

    pid = enroll(site, tmp_path)
    s = site.unlock("clinician", PASSWORD)
    try:
        p = get_participant(s.store, pid)
        assert p is not None and p.screening_event
        workflow.amend(s, p.screening_event, {"dob": "1930-01-01"}, reason="date of birth misread")
    finally:
        s.close()
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        shown = str(app.screen.query_one("#p-summary", Static).content)
        assert "ineligible after enrollment" in shown, shown
