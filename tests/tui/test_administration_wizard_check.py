"""The administration wizard's post-infusion check step: `[safety] check` declared (issue 17).

The ward is `wardcrf demo`'s PALM ward seeded with PALM plus a post-infusion
check and a DSMB review (`tests/palm_safety.py`; the shipped PALM declares
neither): the wizard gets a check step after the vitals after the infusion,
its first choice highlighted, `nothing` standing alone, each reaction ticked
announced and, once saved, its AE form offered with the prespecified code
and the infusion's number. Keys are sent in a burst (all posted before the
app looks at the first) as a busy laptop delivers them; every wait is on a
condition.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import palm_safety
import pytest
from textual.widgets import Input, SelectionList
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.ae_offer import AeOffer
from wardcrf.screens.app import make_app
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.ward import Ward

from wardcrf import workflow
from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"  # as test_administration_wizard.py: infusions due with their vial


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from wardcrf.sync import engine_demo

    data = tmp_path_factory.mktemp("palm-safety-template") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        got = engine_demo.seed(data, palm_safety.trial(), PASSWORD, now=datetime.fromisoformat(FAKE_NOW))
    return data, got.ready


@pytest.fixture
def ward(_template, tmp_path) -> tuple[Site, str, str]:
    template, ready = _template
    data = tmp_path / "site"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.lock"))
    assert ready, "the demo leaves infusions due with their vial at the bedside"
    pid, kit = sorted(ready.items())[0]
    return Site.open(data), pid, kit


def _app(site: Site):
    return make_app(site.data_dir, ward=Ward(site, site.unlock("clinician", PASSWORD)))


async def _wizard(pilot, pid: str) -> AdministrationWizard:
    app = pilot.app
    await settle(pilot)
    app.push_screen(ParticipantScreen(app.ward, pid))
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    wiz = app.screen
    assert isinstance(wiz, AdministrationWizard), app.screen
    return wiz


def _records(site: Site, pid: str, form: str) -> list[dict]:
    s = site.unlock("auditor", PASSWORD)
    try:
        return [
            json.loads(r[0])
            for r in s.store.execute(
                "SELECT data FROM records WHERE subject = ? AND form = ? ORDER BY rowid",
                (f"participant:{pid}", form),
            )
        ]
    finally:
        s.close()


TO_THE_CHECK = (
    "enter",  # the vial's Enter: checked, the lot filled; the dose is the prescribed one already
    *"250",  # volume: the first field still empty takes the focus (not the lot filled from the kit)
    "ctrl+n",
    "tab",  # vitals before: the step opens on its time (blank: stamped on leaving)
    *"37.9",
    "tab",
    *"96",
    "tab",
    *"22",
    "ctrl+n",
    "ctrl+t",  # the start and stop now
    "tab",
    *"125",  # rate
    "ctrl+n",
    "ctrl+t",  # vitals after: their time now
    "tab",
    *"37.6",
    "tab",
    *"90",
    "ctrl+n",  # the check: the cursor on its first choice, "None"
)


def _check_step(wiz: AdministrationWizard) -> int:
    return next(i for i, s in enumerate(wiz.steps) if s.key == "after:post_infusion_check")


async def test_the_check_step_follows_the_vitals_after_and_nothing_is_saved_with_the_infusion(ward) -> None:
    site, pid, kit = ward
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        assert wiz.plan.check is not None and wiz.plan.check.field == "reactions"
        assert [s.key for s in wiz.steps][-3:] == [
            "after:post_infusion_vitals",
            "after:post_infusion_check",
            "review",
        ]
        await burst(pilot, *kit, *TO_THE_CHECK, "enter", "ctrl+n", "ctrl+s")
        assert wiz.saved is not None, (wiz.message, wiz.step, wiz.problems, wiz.preview_error)
        assert wiz.saved.ae_expected == []
    infusion = _records(site, pid, "infusion")[-1]
    checks = _records(site, pid, palm_safety.CHECK_FORM)
    assert [(c["infusion"], c["reactions"]) for c in checks][-1:] == [
        (infusion["infusion_number"], ["nothing"])
    ]


async def test_nothing_with_a_reaction_is_refused_on_the_step(ward) -> None:
    site, pid, kit = ward
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await burst(pilot, *kit, *TO_THE_CHECK, "enter", "down", "enter", "ctrl+n")
        i = _check_step(wiz)
        assert wiz.step == i and wiz.message_refusal, wiz.message
        assert "stands alone" in wiz.problems[f"group-{i}"].get("reactions", ""), (wiz.problems, wiz.message)
        listed = wiz.query_one(f"#a{i}-field-reactions", SelectionList)
        assert sorted(listed.selected) == ["infusion_reaction", "nothing"]
        await burst(pilot, "up", "enter", "ctrl+n")  # "nothing" unticked: the reaction alone goes on
        assert wiz.steps[wiz.step].key == "review" and wiz.preview is not None, wiz.preview_error
        assert wiz.saved is None


async def test_a_reaction_ticked_offers_its_ae_form_filled_in(ward) -> None:
    site, pid, kit = ward
    checks_before = len(_records(site, pid, palm_safety.CHECK_FORM))
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await burst(pilot, *kit, *TO_THE_CHECK, "down", "enter")
        i = _check_step(wiz)
        assert wiz.step == i
        assert "An adverse event form is expected for each event checked: Infusion-related reaction" in str(
            wiz.query_one("#check-ae").render()
        )
        await burst(pilot, "ctrl+n", "ctrl+s")  # reviewed and saved: the AE forms are offered
        visit = wiz.saved
        assert visit is not None and visit.ae_expected == ["infusion_reaction"], wiz.message
        assert isinstance(app.screen, AeOffer), app.screen
        offered = str(app.screen.query_one(".dialog").query("Static")[1].render())
        assert offered == f"Events named after {wiz.plan.what}: Infusion-related reaction. " + (
            "Record each as an adverse event now?"
        )
        await pilot.press("enter")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormScreen) and form.form_name == "ae", app.screen
        values = form.values
        assert values["prespecified"] == "infusion_reaction"
        assert values["infusion"] == str(visit.number) and values["term"] == "Infusion-related reaction"
    checks = _records(site, pid, palm_safety.CHECK_FORM)
    assert len(checks) == checks_before + 1 and checks[-1]["reactions"] == ["infusion_reaction"]
    s = site.unlock("clinician", PASSWORD)
    try:
        owed = workflow.show(s, pid)["ae_expected"]  # until the AE form is saved: an open item
    finally:
        s.close()
    assert [(e["event"], e["dose"]) for e in owed] == [("infusion_reaction", visit.number)]


async def test_the_check_is_kept_in_the_draft_and_reopened_at_its_step(ward) -> None:
    from wardcrf.screens.drafts_screen import open_draft

    from wardcrf import drafts

    site, pid, kit = ward
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await burst(pilot, *kit, *TO_THE_CHECK, "down", "enter")
        i = _check_step(wiz)
        assert wiz.step == i
        wiz.keep_draft_now()
        await settle(pilot)
        kept = app.ward.call(drafts.mine)
        assert [(d.form, d.fields.get("after:post_infusion_check.reactions")) for d in kept] == [
            ("administration_visit", ["infusion_reaction"])
        ]
        app.pop_screen()
        await settle(pilot)
        again = open_draft(app.ward, kept[0])
        app.push_screen(again)
        await settle(pilot)
        assert isinstance(again, AdministrationWizard) and again.kit is not None and again.kit.ok
        assert again.steps[again.step].key == "after:post_infusion_check"
        assert again.query_one(f"#a{i}-field-reactions", SelectionList).selected == ["infusion_reaction"]
        assert again.query_one(f"#a{i - 1}-field-temp", Input).value == "37.6"


async def test_the_dsmg_board_opens_the_declared_review_form_for_a_serious_ae(ward) -> None:
    """`e` on the DSMG board: the protocol's `[safety] dsmg_review` form, naming the SAE awaiting review."""
    from datetime import date

    from wardcrf.screens.dsmg import DsmgScreen

    from wardcrf.workflow import dsmg

    site, _pid, _kit = ward
    s = site.unlock("dsmg", PASSWORD)
    try:
        pid = dsmg.review(s, today=date(2020, 3, 16))["participants"][0]["participant"]  # the board's first
    finally:
        s.close()
    s = site.unlock("clinician", PASSWORD)
    try:
        sae = workflow.submit(
            s,
            "ae",
            {
                "term": "Anaphylaxis",
                "onset": "2020-03-15",
                "grade": "4",
                "serious": "yes",
                "life_threatening": "yes",
                "causality": "possibly_related",
                "outcome": "recovering",
                "first_known": "2020-03-15",
            },
            participant=pid,
        ).id
    finally:
        s.close()
    app = make_app(site.data_dir, ward=Ward(site, site.unlock("dsmg", PASSWORD)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DsmgScreen), app.screen
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, FormScreen) and app.screen.form_name == palm_safety.REVIEW_FORM
        assert app.screen.values == {"sae": sae}


async def test_a_key_typed_behind_the_save_does_not_answer_the_ae_offer(ward) -> None:
    """The offer is a question the save asks: Enter typed before it was shown must not open the forms."""
    site, pid, kit = ward
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await burst(pilot, *kit, *TO_THE_CHECK, "down", "enter", "ctrl+n", "ctrl+s", "enter")
        await settle(pilot)
        assert wiz.saved is not None and wiz.saved.ae_expected == ["infusion_reaction"], wiz.message
        assert isinstance(app.screen, AeOffer), app.screen  # still asking
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FormScreen) and app.screen.form_name == "ae", app.screen
