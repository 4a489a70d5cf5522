"""Randomizing from the participant screen: `r`, the levels, ctrl+s; never an arm on a blinded ward screen."""

from __future__ import annotations

import json

import pytest
from hub_delivery import deliver
from trial_staff import Recorder, ward_marked
from tui_helpers import PASSWORD, burst, enroll, settle
from wardcrf.screens.dialogs.randomize import RandomizeDialog
from wardcrf.screens.participant import ParticipantScreen

from wardcrf.engine import model
from wardcrf.randomization import service
from wardcrf.site import Site

ARMS = ("TECOVIRIMAT", "PLACEBO", "ZMAPP", "RDV", "MAB114", "REGNEB3")


@pytest.fixture
def site(site: Site, request: pytest.FixtureRequest, tmp_path, trial_templates) -> Site:
    """The fixture site, or (`@pytest.mark.ward("palm")`) a ward started on the list's own trial."""
    protocol = ward_marked(request)
    return site if protocol is None else trial_templates.copy(protocol, tmp_path / "trial-site")


def _enrolled_on_trial(site: Site, tmp_path, **screening: str) -> str:
    """A participant of the ward's trial consented, screened eligible and enrolled through the services."""
    rec = Recorder(lambda user: site.unlock(user, PASSWORD), tmp_path / "pages")
    try:
        return rec.enrolled(**screening)
    finally:
        rec.close()


def _list_on(site: Site, tmp_path, protocol: str) -> None:
    """A real hub's signed list for this laptop, received as a hub bundle's event would be."""
    from wardcrf.sync import hub, registry, ward

    h = hub.init(
        tmp_path / "hub", admin="admin", password=PASSWORD, protocol_file=model.shipped(protocol)
    ).site
    hs = h.unlock("admin", PASSWORD)
    ws = site.unlock("admin", PASSWORD)
    try:
        ward_card = registry.own_card(ws.store)
        registry.register_device(hs, ward_card)
        registry.set_hub(ws, registry.own_card(hs.store), None)
        # The investigator's first sign-in makes the laptop's unblinding key; a ward bundle carries it.
        site.unlock("investigator", PASSWORD).close()
        out = tmp_path / "ward-out"
        out.mkdir(exist_ok=True)
        for f in ward.export(ws, out).files:
            if f.name.endswith(".tar.age"):
                assert hub.import_file(hs, f).ok
        made = service.make_list(hs, _model(protocol), "WUH01", ward_card.device, 4)
        body = json.loads(hs.store.scalar("SELECT line FROM events WHERE id = ?", (made.event.id,)))["body"]
        deliver(ws, "randomization.list_issued", body, subject="site:WUH01")
    finally:
        hs.close()
        ws.close()


def _model(protocol: str) -> model.Model:
    """A shipped protocol; PALM with its Ct factor asked (`ct_asked`)."""
    if protocol != "palm.toml":
        return model.shipped(protocol)
    return model.parse(ct_asked(model.shipped_source(protocol)), "palm-ct-asked.toml")


def ct_asked(source: str) -> str:
    """PALM's Ct factor asked at randomization, its levels computed from nothing: the clinician states it."""
    source = source.replace('code = "ct_np"\n', 'code = "ct_np"\nasked = true\n', 1)
    for when in (', when = "screening.ct_np <= 22"', ', when = "screening.ct_np > 22"'):
        assert when in source
        source = source.replace(when, "", 1)
    return source


def _screen_text(app) -> str:
    """Everything drawn on the screen, as the SVG snapshot holds it (non-breaking spaces as spaces)."""
    return app.export_screenshot().replace("&#160;", " ")


@pytest.mark.ward("palm007")  # PALM007's list, taken by a PALM007 participant
async def test_blinded_randomize_in_a_burst_shows_a_kit_and_no_arm(app_for, site, tmp_path) -> None:
    pid = _enrolled_on_trial(site, tmp_path)
    _list_on(site, tmp_path, "palm007.toml")
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        assert app.screen.randomizable
        # typed ahead while the screen's worker asks for the levels: the dialog takes ctrl+s
        await pilot.press("r", "ctrl+s")
        await settle(pilot)
        if isinstance(app.screen, RandomizeDialog):  # the burst arrived before the dialog: confirm now
            await pilot.press("ctrl+s")
            await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        shown = " ".join(str(n.message) for n in app._notifications)
        assert f"{pid} randomized: kit K" in shown
        text = _screen_text(app)
        assert not any(arm in text or arm in shown for arm in ARMS)
        assert not app.screen.randomizable  # offered once: the participant holds an entry
    s = site.unlock("clinician", PASSWORD)
    try:
        assert s.store.scalar("SELECT COUNT(*) FROM rand_allocations WHERE participant = ?", (pid,)) == 1
    finally:
        s.close()


@pytest.mark.ward("palm")  # PALM's list, taken by a PALM participant
async def test_stratified_randomize_asks_each_level_and_esc_allocates_nothing(
    app_for, site, tmp_path
) -> None:
    pid = _enrolled_on_trial(site, tmp_path)
    _list_on(site, tmp_path, "palm.toml")
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RandomizeDialog), [str(n.message) for n in app._notifications]
        await pilot.press("ctrl+s")  # no level chosen: refused on the spot
        await settle(pilot)
        assert isinstance(app.screen, RandomizeDialog)
        assert "Choose a level for ct_np" in _screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        await pilot.press("r")
        await settle(pilot)
        # in one burst: open the list (on its blank prompt), down to HIGH, down to LOW, choose, randomize
        await pilot.press("enter", "down", "down", "enter", "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        shown = " ".join(str(n.message) for n in app._notifications)
        assert f"{pid} randomized: arm " in shown and "site=WUH01;ct_np=LOW" in shown


async def test_no_list_no_randomize_key_and_an_auditor_never_sees_it(app_for, site, tmp_path) -> None:
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        assert not app.screen.randomizable
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
    _list_on(site, tmp_path, "palm007.toml")
    app = app_for("auditor")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        assert not app.screen.randomizable
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)


def _screened(site, tmp_path) -> str:
    """A participant of the ward's trial consented and screened eligible today, not enrolled yet."""
    from trial_staff import days_ago

    rec = Recorder(lambda user: site.unlock(user, PASSWORD), tmp_path / "pages")
    try:
        return rec.eligible(days_ago(0))
    finally:
        rec.close()


@pytest.mark.ward("palm007")  # PALM007's list, taken by a PALM007 participant
async def test_saving_enrollment_offers_randomization_at_once_keys_in_a_burst(
    app_for, site, tmp_path
) -> None:
    from wardcrf.screens.form_screen import FormScreen

    pid = _screened(site, tmp_path)
    _list_on(site, tmp_path, "palm007.toml")
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        app.screen.action_form("enrollment")
        await settle(pilot)
        assert isinstance(app.screen, FormScreen)
        # save the enrollment (its date defaults to today) and confirm the offer, typed ahead in one burst
        await burst(pilot, "ctrl+s", "ctrl+s")
        await settle(pilot)
        if isinstance(app.screen, RandomizeDialog):  # the second key reached the form, not the dialog
            assert f"Enrollment of {pid} is saved" in _screen_text(app)
            await pilot.press("ctrl+s")
            await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        shown = " ".join(str(n.message) for n in app._notifications)
        assert f"{pid} randomized: kit K" in shown
        assert not any(arm in shown or arm in _screen_text(app) for arm in ARMS)
    s = site.unlock("clinician", PASSWORD)
    try:
        assert s.store.scalar("SELECT COUNT(*) FROM rand_allocations WHERE participant = ?", (pid,)) == 1
    finally:
        s.close()


@pytest.mark.ward("palm007")  # PALM007's enrollment form
async def test_no_list_no_offer_after_enrollment(app_for, site, tmp_path) -> None:
    pid = _screened(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        app.screen.action_form("enrollment")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen) and not app.screen.randomizable
        shown = " ".join(str(n.message) for n in app._notifications)
        assert "saved" in shown.lower() and "randomized" not in shown


@pytest.mark.ward("palm007")  # PALM007's list, taken by a PALM007 participant
async def test_enrollment_offer_esc_leaves_it_for_later(app_for, site, tmp_path) -> None:
    from wardcrf.screens.form_screen import FormScreen

    pid = _screened(site, tmp_path)
    _list_on(site, tmp_path, "palm007.toml")
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        app.screen.action_form("enrollment")
        await settle(pilot)
        assert isinstance(app.screen, FormScreen)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, RandomizeDialog), [str(n.message) for n in app._notifications]
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen) and app.screen.randomizable  # still offered: `r`
    s = site.unlock("clinician", PASSWORD)
    try:
        assert s.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0
        assert s.store.scalar("SELECT enrollment_event FROM participants WHERE id = ?", (pid,)) is not None
    finally:
        s.close()


@pytest.mark.ward("palm")  # PALM's list, taken by a PALM participant
async def test_the_dialog_shows_the_levels_the_records_give_and_asks_only_the_rest(
    app_for, site, tmp_path
) -> None:
    """A list stratified by a computed factor (sex, from the screening) and an asked one (Ct)."""
    from wardcrf.sync import hub, registry

    source = ct_asked(model.shipped_source("palm.toml"))
    source = source.replace(
        '[[strata]]\ncode = "ct_np"',
        '[[strata]]\ncode = "sex"\nlabel = "Sex"\nfield = "screening.sex"\n'
        'levels = [ { code = "M", label = "Male" }, { code = "F", label = "Female" } ]\n\n[[strata]]\ncode = "ct_np"',
        1,
    )
    source = source.replace('stratify_by = ["site", "ct_np"]', 'stratify_by = ["site", "sex", "ct_np"]', 1)
    both = model.parse(source, "palm-sex-ct.toml")
    pid = _enrolled_on_trial(site, tmp_path, sex="M")
    h = hub.init(
        tmp_path / "hub", admin="admin", password=PASSWORD, protocol_file=model.shipped("palm.toml")
    ).site
    hs, ws = h.unlock("admin", PASSWORD), site.unlock("admin", PASSWORD)
    try:
        card = registry.own_card(ws.store)
        registry.register_device(hs, card)
        registry.set_hub(ws, registry.own_card(hs.store), None)
        made = service.make_list(hs, both, "WUH01", card.device, 4)
        body = json.loads(hs.store.scalar("SELECT line FROM events WHERE id = ?", (made.event.id,)))["body"]
        deliver(ws, "randomization.list_issued", body, subject="site:WUH01")
    finally:
        hs.close()
        ws.close()
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RandomizeDialog)
        text = _screen_text(app)
        assert "sex: M (from the records: screening.sex)" in text
        assert "Stratification factor ct_np" in text and "Stratification factor sex" not in text
        await pilot.press("enter", "down", "enter", "ctrl+s")  # HIGH
        await settle(pilot)
        shown = " ".join(str(n.message) for n in app._notifications)
        assert f"{pid} randomized: arm " in shown and "site=WUH01;sex=M;ct_np=HIGH" in shown


@pytest.mark.ward("palm")
async def test_a_list_of_arms_the_participants_version_does_not_plan_is_refused_in_one_line_and_no_dialog(
    app_for, site, tmp_path
) -> None:
    """A PALM participant and a PALM007 list on the laptop: `r` shows the service's refusal (the list's arms,
    the version's; never which one the participant would get) and opens no dialog; nothing is allocated."""
    pid = _enrolled_on_trial(site, tmp_path)
    _list_on(site, tmp_path, "palm007.toml")
    app = app_for("clinician")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        assert app.screen.randomizable  # a list waits on the laptop: offered, and refused when asked
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        shown = [str(n.message) for n in app._notifications]
        assert any(
            m.startswith(f"{pid} is on PALM 1.0, whose open arms are ZMAPP, RDV, MAB114, REGNEB3;")
            and m.endswith(
                "can give TECOVIRIMAT, PLACEBO: nobody randomized; ask the coordinator for a list made from PALM 1.0"
            )
            for m in shown
        ), shown
    s = site.unlock("clinician", PASSWORD)
    try:
        assert s.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0
    finally:
        s.close()
