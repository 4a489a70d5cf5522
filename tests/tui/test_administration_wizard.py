"""The regimen-driven administration wizard on format-2 demo wards (PALM infusions, PALM007 capsules).

The wards are `wardcrf demo --protocol palm|palm007` seeded under the suite's
fixed clock (2020-03-16 01:00 UTC, 02:00 in Kinshasa) — the dashboard opens
on each; PALM's infusions due today have their vial at the bedside. The
PALM007 tests move the clock to 08:05 in the ward, when the day's first dose
of a patient randomized yesterday is due. Every wait is on a condition
(`settle`, `burst`), none on the clock.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Select, Static
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.app import make_app
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.ward import Ward

from wardcrf import workflow
from wardcrf.engine import model
from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"
MORNING = "2020-03-16T07:05:00Z"  # 08:05 in Kinshasa: the 08:00 dose is due


def _seed(tmp_path_factory, name: str) -> tuple[Path, dict[str, str]]:
    from wardcrf.sync import engine_demo

    data = tmp_path_factory.mktemp(f"{name}-template") / "site"
    got = engine_demo.seed(
        data, model.shipped(f"{name}.toml"), PASSWORD, now=datetime.fromisoformat(FAKE_NOW)
    )
    return data, got.ready


@pytest.fixture(scope="session")
def _palm_template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return _seed(tmp_path_factory, "palm")


@pytest.fixture(scope="session")
def _palm007_template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return _seed(tmp_path_factory, "palm007")


def _copy(template: Path, tmp_path: Path) -> Site:
    data = tmp_path / "site"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(data)


@pytest.fixture
def palm(_palm_template, tmp_path) -> tuple[Site, dict[str, str]]:
    template, ready = _palm_template
    return _copy(template, tmp_path), ready


@pytest.fixture
def palm007(_palm007_template, tmp_path, monkeypatch) -> tuple[Site, str, str]:
    """The PALM007 ward at 08:05: a patient whose dose is due now, and their bottle (the kit allocated)."""
    template, _ready = _palm007_template
    site = _copy(template, tmp_path)
    monkeypatch.setenv("WARDCRF_FAKE_NOW", MORNING)
    s = site.unlock("clinician", PASSWORD)
    try:
        for p in workflow.list_participants(s):
            shown = workflow.show(s, p["id"])
            nd = shown.get("next_dose")
            if nd and nd["state"] == "due now" and shown["doses_given"] >= 2:
                return site, shown["id"], str(shown["kit"])
    finally:
        s.close()
    raise AssertionError("the PALM007 demo has a patient due now at 08:05")


def _app(site: Site, user: str = "clinician"):
    return make_app(site.data_dir, ward=Ward(site, site.unlock(user, PASSWORD)))


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


def _text(wiz, selector: str) -> str:
    return str(wiz.query_one(selector, Static).render())


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


# -- the demo wards ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["palm", "palm007"])
async def test_the_dashboard_opens_on_the_demo_ward(name, request) -> None:
    template, _ready = request.getfixturevalue(f"_{name}_template")
    site = _copy(template, request.getfixturevalue("tmp_path"))
    app = _app(site)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        table = app.screen.query_one("#participants", DataTable)
        ids = {str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert len(ids) == (10 if name == "palm" else 5) and all(i.startswith("KIN01-") for i in ids)


# -- an infusion (PALM) -------------------------------------------------------------------------


def _ready(palm) -> tuple[Site, str, str]:
    site, ready = palm
    assert ready, "the PALM demo leaves infusions due with their vial at the bedside"
    pid, kit = sorted(ready.items())[0]
    return site, pid, kit


INFUSION_KEYS = (
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
    "ctrl+t",  # the start is now; the stop now too
    "tab",
    *"125",  # rate
    "tab",
    *"1",  # interrupted once and restarted
    "tab",
    *"line occluded, flushed and restarted",
    "ctrl+n",
    "ctrl+t",  # vitals after: their time now (the step's one time field)
    "tab",
    *"37.6",
    "tab",
    *"90",
    "ctrl+n",
    "ctrl+s",
)


@pytest.mark.parametrize("mode", ["press", "burst"])
async def test_an_infusion_is_given_step_by_step_and_keys_land_in_their_steps(mode, palm) -> None:
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        assert wiz.plan.kind == "infusion" and [s.key for s in wiz.steps][1] == "before:pre_infusion_vitals"
        plan_text = _text(wiz, "#wizard-dose")
        assert "Prescribed:" in plan_text and "mg" in plan_text
        keys = (*kit, *INFUSION_KEYS)
        if mode == "burst":
            await burst(pilot, *keys)
        else:
            for key in keys:
                await pilot.press(key)
                await settle(pilot)
        assert wiz.saved is not None, (wiz.message, wiz.step, wiz.problems, wiz.preview_error)
    infusion = _records(site, pid, "infusion")[-1]
    assert infusion["kit_id"] == kit and infusion["volume"]["value"] == 250
    assert infusion["rate"]["value"] == 125 and infusion["interruptions"] == 1
    assert infusion["interruption_note"] == "line occluded, flushed and restarted"
    assert infusion["dose_mg"]["value"] == infusion["prescribed_mg"]["value"]
    vitals = [v for v in _records(site, pid, "vitals") if v.get("infusion") == infusion["infusion_number"]]
    assert {v["timepoint"]: v["temp"]["value"] for v in vitals} == {
        "pre_infusion": 37.9,
        "post_infusion": 37.6,
    }


OWED_HERE = re.compile(
    r"vitals \(DAY (\d+)\) — window closing \(filled by this administration's assessments\)"
)


async def test_the_wizard_lists_the_visit_forms_owed_and_saving_fills_them(palm) -> None:
    """The day's inpatient visit (INPT, a calendar visit) owes vitals: the participant screen lists it, the
    wizard says the administration's own assessments fill it, and once the whole administration, sent in a
    burst, is saved it is owed no more."""
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        summary = _text(app.screen, "#p-summary")
        day = re.search(r"DAY (\d+): vitals \(window closing\)", summary)
        assert day is not None and "Visits: " in summary, summary
        await burst(pilot, "d")
        await settle(pilot)
        wiz = app.screen
        assert isinstance(wiz, AdministrationWizard), app.screen
        owed = [(v.what, v.state, v.with_this) for v in wiz.plan.visits]
        assert (f"vitals (DAY {day.group(1)})", "window closing", True) in owed
        text = _text(wiz, "#wizard-dose")
        head = OWED_HERE.search(text)
        assert "Visit forms owed: " in text and head is not None and head.group(1) == day.group(1), text
        await burst(pilot, *kit, *INFUSION_KEYS)  # the vial's label and the whole administration at once
        await settle(pilot)
        assert wiz.saved is not None, (wiz.message, wiz.step, wiz.problems, wiz.preview_error)
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        after = _text(app.screen, "#p-summary")
        assert f"DAY {day.group(1)}: vitals" not in after, after


async def _to_given_step(pilot, wiz, kit: str) -> None:
    await pilot.press(*kit, "enter")
    await settle(pilot)
    wiz.query_one("#adm-field-volume", Input).value = "250"
    await pilot.press("ctrl+n")
    await settle(pilot)
    wiz.query_one("#a1-field-temp", Input).value = "37.9"
    wiz.query_one("#a1-field-pulse", Input).value = "96"
    await pilot.press("ctrl+n")
    await settle(pilot)
    assert wiz.steps[wiz.step].key == "given", wiz.message


async def test_a_rate_out_of_range_is_refused_on_its_step(palm) -> None:
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await _to_given_step(pilot, wiz, kit)
        wiz.query_one("#adm-field-end", Input).value = wiz.query_one("#adm-field-start", Input).value
        wiz.query_one("#adm-field-rate", Input).value = "5000"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.steps[wiz.step].key == "given"
        assert "outside the allowed range 1 to 2000" in wiz.problems["group-given"]["rate"]
        wiz.query_one("#adm-field-rate", Input).value = "125"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.steps[wiz.step].key == "after:post_infusion_vitals"


async def test_a_stop_before_the_start_is_refused_naming_the_stop(palm) -> None:
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await _to_given_step(pilot, wiz, kit)
        wiz.query_one("#adm-field-end", Input).value = "2020-03-16 01:30"  # the start is 02:00
        wiz.query_one("#adm-field-rate", Input).value = "125"
        await pilot.press("ctrl+n")
        await settle(pilot)
        wiz.query_one("#a3-field-temp", Input).value = "37.6"
        wiz.query_one("#a3-field-pulse", Input).value = "90"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.steps[wiz.step].key == "review"
        assert wiz.preview is None and "before the start" in (wiz.preview_error or "")
        assert "before the start" in wiz.problems["group-given"]["end"]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.saved is None
        assert wiz.steps[wiz.step].key == "given"  # taken to the field to correct
    assert _records(site, pid, "infusion") == [
        r for r in _records(site, pid, "infusion") if r["kit_id"] != kit
    ]


async def test_vitals_before_taken_after_the_start_are_refused_nothing_saved(palm) -> None:
    """The pre-dose check the protocol declares (vitals before the infusion) must precede its start."""
    site, pid, kit = _ready(palm)
    before = len(_records(site, pid, "vitals"))
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await pilot.press(*kit, "enter")
        await settle(pilot)
        wiz.query_one("#adm-field-volume", Input).value = "250"
        await pilot.press("ctrl+n")
        await settle(pilot)
        wiz.query_one("#a1-field-time", Input).value = "2020-03-16 02:00"
        wiz.query_one("#a1-field-temp", Input).value = "37.9"
        wiz.query_one("#a1-field-pulse", Input).value = "96"
        await pilot.press("ctrl+n")
        await settle(pilot)
        wiz.query_one("#adm-field-start", Input).value = "2020-03-16 01:56"
        wiz.query_one("#adm-field-end", Input).value = "2020-03-16 02:00"
        wiz.query_one("#adm-field-rate", Input).value = "125"
        await pilot.press("ctrl+n")
        await settle(pilot)
        wiz.query_one("#a3-field-temp", Input).value = "37.6"
        wiz.query_one("#a3-field-pulse", Input).value = "90"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert (
            "vitals before infusion" in (wiz.preview_error or "") and "after the start" in wiz.preview_error
        )
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.saved is None and "nothing of this administration was saved" in wiz.message
    assert len(_records(site, pid, "vitals")) == before


async def test_a_gate_refuses_before_anything_is_typed(palm) -> None:
    """A DSMB decision to stop holds every administration: said on opening, in the protocol's words."""
    site, pid, _kit = _ready(palm)
    s = site.unlock("dsmg", PASSWORD)
    try:
        workflow.submit(
            s, "dsmg_decision", {"decision": "stop", "rationale": "interim mortality review"}, participant=pid
        )
    finally:
        s.close()
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        assert wiz.plan.refusal and "Not now:" in _text(wiz, "#wizard-dose")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.step == 0 and wiz.message_refusal and wiz.plan.refusal in wiz.message


# -- tablets (PALM007) -----------------------------------------------------------------------


async def test_capsules_are_counted_and_the_dose_recorded(palm007) -> None:
    site, pid, kit = palm007
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        assert wiz.plan.kind == "tablets" and wiz.plan.units == 3 and wiz.plan.product == "blinded"
        assert "(capsules, oral)" in wiz._plan_text()  # the product's dosage form, not "tablets"
        assert [s.key for s in wiz.steps] == ["kit", "given", "review"]
        await pilot.press(*kit, "enter")
        await settle(pilot)
        assert "Kit " + kit in _text(wiz, "#kit-status"), _text(wiz, "#kit-status")
        units = wiz.query_one("#adm-units", Input)
        units.value = "0"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.step == 0 and "whole number" in wiz.message
        units.value = "3"
        await settle(pilot)
        assert "600 mg" in _text(wiz, "#units-status")
        await pilot.press("ctrl+n")  # how given and with food: required of a dose given
        await settle(pilot)
        assert wiz.step == 0 and wiz.problems["group-product"] == {
            "preparation": "required",
            "with_food": "required",
        }
        await _how_taken(pilot, wiz)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.steps[wiz.step].key == "given"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.steps[wiz.step].key == "review" and wiz.preview is not None, wiz.preview_error
        review = _text(wiz, "#review")
        assert "Timing: on time" in review and "Dose given 600 mg · prescribed 600 mg" in review
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.saved is not None, wiz.message
    dose = _records(site, pid, "treatment")[-1]
    assert dose["dose_mg"]["value"] == 600 and dose["window"] == "on_time" and dose["kit_id"] == kit


async def _how_taken(pilot, wiz) -> None:
    wiz.query_one("#adm-field-preparation", Select).value = "whole"
    wiz.query_one("#adm-field-with_food", Select).value = "yes"
    await settle(pilot)


async def test_capsules_early_are_a_deviation_and_outside_the_course_refused(palm007) -> None:
    site, pid, kit = palm007
    given = len(_records(site, pid, "treatment"))
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await pilot.press(*kit, "enter")
        await settle(pilot)
        await _how_taken(pilot, wiz)
        await pilot.press("ctrl+n")
        await settle(pilot)
        time = wiz.query_one("#adm-field-time", Input)
        time.value = "2020-03-16 05:00"  # the window opens at 06:00: early, a deviation the review names
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.preview is not None and wiz.preview.timing == "early", wiz.preview_error
        assert "early dose" in _text(wiz, "#review")
        await pilot.press("ctrl+b")
        await settle(pilot)
        time.value = "2020-03-10 08:00"  # days before the course began: the service refuses it (as `submit`)
        await pilot.press("ctrl+n")
        await settle(pilot)
        refused = "2020-03-10T08:00+01:00 is before dose 1 (window "
        assert wiz.preview is None and refused in (wiz.preview_error or ""), wiz.preview_error
        assert refused in wiz.problems["group-given"]["time"]
        assert "the earliest start it takes is" in wiz.problems["group-given"]["time"]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.saved is None
    assert len(_records(site, pid, "treatment")) == given


async def test_another_patients_bottle_is_refused_at_the_scan(palm007) -> None:
    site, pid, _kit = palm007
    s = site.unlock("clinician", PASSWORD)
    try:
        others = [
            str(workflow.show(s, p["id"]).get("kit"))
            for p in workflow.list_participants(s)
            if p["id"] != pid and workflow.show(s, p["id"]).get("kit")
        ]
    finally:
        s.close()
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await pilot.press(*others[0], "enter")
        await settle(pilot)
        assert wiz.kit is not None and not wiz.kit.ok
        assert "Not usable" in _text(wiz, "#kit-status")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wiz.step == 0 and wiz.message_refusal


async def test_typed_work_is_kept_as_a_draft_and_reopened_at_its_step(palm) -> None:
    """Nothing typed is lost: the wizard's draft (kept as the cursor leaves a field) reopens with its values,
    its kit checked again, at its step."""
    from wardcrf.screens.drafts_screen import open_draft

    from wardcrf import drafts

    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await pilot.press(*kit, "enter")
        await settle(pilot)
        wiz.query_one("#adm-field-volume", Input).value = "250"
        await pilot.press("ctrl+n")
        await settle(pilot)
        wiz.query_one("#a1-field-temp", Input).value = "37.9"
        wiz.keep_draft_now()
        await settle(pilot)
        kept = app.ward.call(drafts.mine)
        assert [(d.form, d.fields.get("before:pre_infusion_vitals.temp")) for d in kept] == [
            ("administration_visit", "37.9")
        ]
        app.pop_screen()
        await settle(pilot)
        again = open_draft(app.ward, kept[0])
        app.push_screen(again)
        await settle(pilot)
        assert isinstance(again, AdministrationWizard) and again.kit is not None and again.kit.ok
        assert again.steps[again.step].key == "before:pre_infusion_vitals"
        assert again.query_one("#a1-field-temp", Input).value == "37.9"
        assert again.query_one("#adm-field-volume", Input).value == "250"


VITALS_IDS = ("temp", "pulse", "resp", "sysbp", "diabp", "oxysat")


async def _to_vitals_step(pilot, wiz, kit: str) -> None:
    await burst(pilot, *kit, "enter", *"250", "ctrl+n")
    assert wiz.steps[wiz.step].key == "before:pre_infusion_vitals", wiz.message


def _vitals_values(wiz) -> dict[str, str]:
    group = wiz.query_one(f"#group-{wiz.step}")
    return {name: group.query_one(f"#a{wiz.step}-field-{name}", Input).value for name in VITALS_IDS}


async def test_ctrl_t_then_tab_on_the_vitals_step_puts_each_value_in_its_own_field(palm) -> None:
    """The vitals step's time, stamped with ctrl+t, then Tab to each value, typed in one burst."""
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await _to_vitals_step(pilot, wiz, kit)
        fields = [f.name for f in wiz.query_one(f"#group-{wiz.step}").fields]
        assert set(VITALS_IDS) <= set(fields), fields
        keys = ["ctrl+t"]
        for value in ("37.2", "90", "20", "110", "70", "97"):
            keys += ["tab", *value]
        await burst(pilot, *keys)
        time = wiz.query_one(f"#a{wiz.step}-field-time", Input).value
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", time), time
        assert _vitals_values(wiz) == dict(
            zip(VITALS_IDS, ("37.2", "90", "20", "110", "70", "97"), strict=True)
        )
        assert wiz.message == ""  # nothing refused


async def test_ctrl_t_stamps_the_steps_one_time_field_wherever_the_focus_is_and_keeps_the_focus(palm) -> None:
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await _to_vitals_step(pilot, wiz, kit)
        await burst(pilot, "tab", *"37.2", "tab", "ctrl+t", *"90")
        assert wiz.focused is not None and wiz.focused.id == f"a{wiz.step}-field-pulse"
        assert wiz.query_one(f"#a{wiz.step}-field-time", Input).value  # stamped from the pulse field
        assert _vitals_values(wiz)["temp"] == "37.2" and _vitals_values(wiz)["pulse"] == "90"
        assert wiz.message == ""


async def test_ctrl_t_outside_a_time_field_of_a_step_with_two_times_is_refused_and_moves_nothing(
    palm,
) -> None:
    """The given step has a start and an end: ctrl+t in the rate names no time; the focus stays, Tab is Tab."""
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        await _to_given_step(pilot, wiz, kit)
        end = wiz.query_one("#adm-field-end", Input)
        end.value = ""
        wiz.query_one("#adm-field-rate", Input).focus()
        await settle(pilot)
        await burst(pilot, "ctrl+t", *"125")
        assert wiz.message == "ctrl+t works in a time field." and wiz.message_refusal
        assert wiz.focused is not None and wiz.focused.id == "adm-field-rate"
        assert wiz.query_one("#adm-field-rate", Input).value == "125" and end.value == ""
        following = wiz.focus_chain[wiz.focus_chain.index(wiz.focused) + 1]
        await burst(pilot, "tab")
        assert wiz.focused is following  # the typed Tab does what Tab does, no more
        end.focus()
        await settle(pilot)
        await burst(pilot, "ctrl+t")  # in a time field: stamped, the focus kept
        assert end.value and wiz.focused is end


@pytest.mark.parametrize("mode", ["burst", "press"])
async def test_after_the_scan_the_volume_typed_lands_in_the_volume_not_over_the_lot_from_the_kit(
    palm, mode
) -> None:
    """The accepted scan fills the lot from the kit; the focus goes to the first field still empty (PALM's
    volume, which the protocol requires of an infusion given), so the volume typed behind the scan's Enter
    never replaces the lot (it did: the focus went to the lot, selected on entering)."""
    site, pid, kit = _ready(palm)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        keys = [*kit, "enter", *"250"]
        if mode == "burst":
            await burst(pilot, *keys)
        else:
            for key in keys:
                await pilot.press(key)
            await settle(pilot)
        assert wiz.kit is not None and wiz.kit.ok, wiz.message
        assert wiz.query_one("#adm-field-lot", Input).value == wiz.kit.lot
        assert wiz.query_one("#adm-field-volume", Input).value == "250"
        assert wiz.focused is wiz.query_one("#adm-field-volume", Input)


# -- given earlier, recorded now: judged at the start typed on step 1 -----------------------------------

AFTER_MIDNIGHT = "2020-03-16T23:15:00Z"  # 00:15 on the 17th in Kinshasa


def _busy(monkeypatch) -> None:
    """A loaded laptop: planning (now and at the start typed) and the kit check do real CPU work first."""
    import hashlib

    from wardcrf.workflow import administration_visit

    def slowed(fn):
        def run(*args, **kwargs):
            for _ in range(6):
                hashlib.sha256(b"\0" * (4 << 20)).digest()
            return fn(*args, **kwargs)

        return run

    for name in ("plan", "plan_given_at", "check_kit"):
        monkeypatch.setattr(administration_visit, name, slowed(getattr(administration_visit, name)))


def _daily(palm) -> tuple[Site, str, str]:
    """A patient whose remdesivir maintenance infusion is due today (daily, its window the day itself), with
    their vial at the bedside (the demo's arms are randomized: looked up, not named)."""
    site, ready = palm
    s = site.unlock("clinician", PASSWORD)
    try:
        from wardcrf.workflow import administration_visit

        for pid, kit in sorted(ready.items()):
            if administration_visit.plan(s, pid).administration == "maintenance":
                return site, pid, kit
    finally:
        s.close()
    raise AssertionError(f"the PALM demo has a maintenance infusion due today: {ready}")


async def test_an_infusion_of_yesterday_recorded_after_midnight_is_judged_at_its_start(
    palm, monkeypatch
) -> None:
    """A remdesivir maintenance infusion of the 16th given at 03:00 and recorded at 00:15 on the 17th (from
    the ward's paper): judged *now* it would be the 17th's infusion. Its start typed on step 1, the vial
    scanned and ctrl+n in one burst on a busy laptop: the wizard gives the 16th's, judges the vial's custody
    at 03:00 (at the bedside since 01:25, reconstituted at 01:55: within their limits), goes on, and fills the start in where it is
    recorded. The same vial typed as given at 23:30 is refused: its preparation had expired by then."""
    site, pid, kit = _daily(palm)
    monkeypatch.setenv("WARDCRF_FAKE_NOW", AFTER_MIDNIGHT)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, pid)
        tomorrows = wiz.plan.number
        assert "due 03-17" in _text(wiz, "#wizard-dose")
        wiz.query_one("#adm-earlier", Input).focus()
        await settle(pilot)
        _busy(monkeypatch)
        await burst(pilot, *"2020-03-16 23:30", "enter", *kit, "enter", "ctrl+n")
        assert wiz.plan.number == tomorrows - 1, _text(wiz, "#wizard-dose")
        assert "due 03-16" in _text(wiz, "#wizard-dose")
        assert wiz.kit is not None and not wiz.kit.ok and wiz.step == 0
        assert "was prepared 1295 min before the dose" in _text(wiz, "#kit-status")
        wiz.query_one("#adm-earlier", Input).focus()
        await burst(pilot, *"2020-03-16 03:00", "enter")
        assert wiz.kit is not None and wiz.kit.ok, _text(wiz, "#kit-status")
        wiz.query_one("#adm-field-volume", Input).focus()
        await burst(pilot, *"250", "ctrl+n")
        assert wiz.step == 1, _text(wiz, "#wizard-message")
        assert wiz.values["administration"][wiz.plan.roles["start"]] == "2020-03-16 03:00"


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("2020-03-17 09:00", "is after now (2020-03-17 00:15)"),  # not reached yet: not "given earlier"
        ("at 23h\x1b[2J", "is not a start: type it as HH:MM or YYYY-MM-DD HH:MM"),  # control characters
        ("2020-02-30 23:30", "is not a start: type it as HH:MM or YYYY-MM-DD HH:MM"),
    ],
)
async def test_a_start_that_is_not_a_start_before_now_is_refused_and_changes_nothing(
    palm, monkeypatch, typed, said
) -> None:
    site, _ready = palm
    monkeypatch.setenv("WARDCRF_FAKE_NOW", AFTER_MIDNIGHT)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, _daily(palm)[1])
        before = (wiz.plan.number, _text(wiz, "#wizard-dose"))
        wiz.query_one("#adm-earlier", Input).focus()
        await settle(pilot)
        _busy(monkeypatch)
        # A scan typed behind the refused start (before the refusal could be read) lands nowhere: not in
        # the start, left to correct, nor in the scan field.
        await burst(pilot, *typed, "enter", *"KIT-9", "enter")
        message = _text(wiz, "#wizard-message")
        assert said in message and "\x1b" not in message, message
        assert (wiz.plan.number, _text(wiz, "#wizard-dose")) == before and wiz.step == 0
        assert "KIT-9" not in wiz.query_one("#adm-earlier", Input).value
        assert wiz.query_one("#kit-scan", Input).value == ""


async def test_an_oversized_paste_is_refused_in_one_line(palm, monkeypatch) -> None:
    site, _ready = palm
    monkeypatch.setenv("WARDCRF_FAKE_NOW", AFTER_MIDNIGHT)
    app = _app(site)
    async with app.run_test(size=(120, 45)) as pilot:
        wiz = await _wizard(pilot, _daily(palm)[1])
        field = wiz.query_one("#adm-earlier", Input)
        field.value = "9" * 100_000
        await field.action_submit()
        await settle(pilot)
        message = _text(wiz, "#wizard-message")
        assert "is not a start" in message and len(message) < 200 and wiz.step == 0, message


@pytest.mark.parametrize(
    ("now", "typed", "local"),
    [
        (AFTER_MIDNIGHT, "23:30", "2020-03-16 23:30"),  # 00:15 on the 17th: 23:30 was yesterday
        (AFTER_MIDNIGHT, "00:05", "2020-03-17 00:05"),  # earlier today
        (AFTER_MIDNIGHT, " 7:05 ", "2020-03-16 07:05"),  # one-digit hour, spaces around: 07:05 yesterday
        (AFTER_MIDNIGHT, "2020-03-15 21:00", "2020-03-15 21:00"),
    ],
)
def test_started_at_reads_the_wards_local_time(palm, monkeypatch, now, typed, local) -> None:
    from wardcrf.workflow import administration_visit

    site, _ready = palm
    monkeypatch.setenv("WARDCRF_FAKE_NOW", now)
    s = site.unlock("clinician", PASSWORD)
    try:
        at = administration_visit.started_at(s, typed)
    finally:
        s.close()
    assert at.strftime("%Y-%m-%d %H:%M") == local and at.utcoffset() is not None


@pytest.mark.parametrize("typed", ["", "25:00", "10h30", "2020-03-16T10:00", "\x00", "12:5"])
def test_started_at_refuses_what_is_not_a_start(palm, typed) -> None:
    from wardcrf.errors import Refused
    from wardcrf.workflow import administration_visit

    site, _ready = palm
    s = site.unlock("clinician", PASSWORD)
    try:
        with pytest.raises(Refused, match="is not a start: type it as HH:MM or YYYY-MM-DD HH:MM"):
            administration_visit.started_at(s, typed)
    finally:
        s.close()
