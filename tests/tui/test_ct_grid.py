"""The CT score on its grid: typed cells, the live total, `ne`, refusals, saving, nothing lost.

Every test runs on a MEXCOVID site on the engine (the re-encoding as a version of its own,
tests/mexcovid_engine.py: `[[forms.ct_score.sections]]` of wardcrf/protocols/engine/mexcovid.toml; the
suite's template's MEXCOVID 1.0 runs on the same declarations). The screen is the generic section grid
(screens/section_grid.py). Format 1's own grid declaration went with format 1's workflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mexcovid_engine
import pytest
from textual.widgets import Select, Static
from tui_helpers import PASSWORD, enroll, settle
from wardcrf.screens.lock import LockScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.section_grid import GridCell, SectionGridScreen, shared_prefix, without_prefix

from wardcrf import protocol, records, users
from wardcrf.engine import form_sections
from wardcrf.site import Site

# Scores in the grid's typing order (right lung 10, then left lung 8): one `n`.
TYPED = "2103n01240" + "33210001"


@dataclass(frozen=True)
class Titles:
    right: str
    left: str
    groups_zh: tuple[str, ...]


TITLES = {
    "format2": Titles("Right lung", "Left lung", ("上叶", "中叶", "下叶", "上叶", "下叶")),
}


@pytest.fixture(scope="session")
def _format2_template(tmp_path_factory) -> Path:
    """MEXCOVID's format-2 re-encoding as a version of its own, with the TUI template's users."""
    data_dir = tmp_path_factory.mktemp("ct-format2") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", "2020-03-16T01:00:00Z")
        made = Site.init(
            data_dir,
            site="WUH01",
            device_name="lap1",
            admin="admin",
            password=PASSWORD,
            admin_full_name="Ada Admin",
            protocol_file=mexcovid_engine.own_version(),
        )
        s = made.site.unlock("admin", PASSWORD)
        try:
            for role in ("clinician", "investigator", "auditor"):
                users.add_user(s, role, f"{role.title()} User", role, PASSWORD)
            users.add_user(s, "clinician2", "Second Doctor", "clinician", PASSWORD)
            s.store.checkpoint()
        finally:
            s.close()
    return data_dir


@pytest.fixture(params=["format2"])
def fmt(request) -> str:
    return str(request.param)


@pytest.fixture
def site(fmt, data_dir, _template_site, request) -> Site:
    import shutil

    template = request.getfixturevalue("_format2_template")
    shutil.copytree(template, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    opened = Site.open(data_dir)
    s = opened.unlock("admin", PASSWORD)
    try:
        assert protocol.active(s.store).engine is not None
    finally:
        s.close()
    return opened


def segments(site: Site) -> tuple[str, ...]:
    s = site.unlock("auditor", PASSWORD)
    try:
        grid = form_sections.of(protocol.active(s.store), "ct_score")
    finally:
        s.close()
    assert grid is not None and len(grid.fields) == 18
    return grid.fields


def totals(titles: Titles, *, total, evaluable, right, left, ne, blank=0) -> str:
    text = (
        f"Total score (0-72) {total} · Evaluable segments {evaluable} · {titles.right} {right} · "
        f"{titles.left} {left} · not evaluable {ne}"
    )
    return text + (f" · {blank} to score" if blank else "")


def _total(app) -> str:
    return str(app.screen.query_one("#grid-total", Static).content)


def _cell(app, segment: str) -> GridCell:
    return app.screen.query_one(f"#field-{segment}", GridCell)


async def _open_grid(pilot, pid: str) -> SectionGridScreen:
    """From the participant screen's new-record picker, as a clinician would."""
    app = pilot.app
    await settle(pilot)
    app.push_screen(ParticipantScreen(app.ward, pid))
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    labels = [str(o.prompt) for o in app.screen.query_one("#forms").options]
    await pilot.press(*["down"] * labels.index("Chest CT score"), "enter")
    await settle(pilot)
    assert isinstance(app.screen, SectionGridScreen), "the picker did not route the CT form to the grid"
    return app.screen


def test_a_groups_shared_prefix_is_its_title_and_left_off_each_row() -> None:
    en = ["Right upper lobe, apical", "Right upper lobe, posterior", "Right upper lobe, anterior"]
    assert shared_prefix(en) == "Right upper lobe"
    assert without_prefix(en[0], "Right upper lobe") == "apical"
    zh = ["右下叶背段", "右下叶内基底段", "右下叶前基底段"]
    assert shared_prefix(zh) == "右下叶"
    assert without_prefix(zh[1], "右下叶") == "内基底段"
    # a shared first letter of the segment is not part of the lobe's name
    assert shared_prefix(["Left lower lobe, anterior", "Left lower lobe, apical"]) == "Left lower lobe"
    assert without_prefix("Cough", "") == "Cough" and without_prefix("Pain", "Pain") == "Pain"


async def test_typing_cells_updates_the_total_live(app_for, site, tmp_path, fmt):
    pid = enroll(site, tmp_path)
    titles = TITLES[fmt]
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await _open_grid(pilot, pid)
        assert app.focused is _cell(app, "r_upper_apical")
        assert _total(app) == totals(titles, total=0, evaluable=0, right=0, left=0, ne=0, blank=18)
        await pilot.press("3")
        assert _total(app) == totals(titles, total=3, evaluable=1, right=3, left=0, ne=0, blank=17)
        assert app.focused is _cell(app, "r_upper_posterior")  # moved on
        await pilot.press("4", "n")
        assert _total(app) == totals(titles, total=7, evaluable=2, right=7, left=0, ne=1, blank=15)
        assert _cell(app, "r_upper_anterior").value == "ne"
        # arrows: → goes across to the same row of the left lung, ↓ ↑ within it
        await pilot.press("right", "down", "down", "up", "2")
        assert _cell(app, "l_lower_superior").value == 2
        assert f"{titles.left} 2" in _total(app)
        _cell(app, "r_upper_posterior").focus()
        await pilot.press("backspace")
        assert _cell(app, "r_upper_posterior").value is None
        assert _total(app).startswith(f"Total score (0-72) 5 · Evaluable segments 2 · {titles.right} 3")
        assert str(grid.query_one("#section-title-left", Static).content) == f"{titles.left} · 2"
        # ← from the right lung stays in it; → from the left lung too
        _cell(app, "r_upper_apical").focus()
        await pilot.press("left")
        assert app.focused is _cell(app, "r_upper_apical")


async def test_hard_refusal_leaves_the_cell_and_total_unchanged(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await _open_grid(pilot, pid)
        await pilot.press("2")
        _cell(app, "r_upper_posterior").focus()
        await pilot.press("7")
        cell = _cell(app, "r_upper_posterior")
        assert cell.value is None and app.focused is cell  # refused: stays here
        assert cell.has_class("-invalid")
        shown = str(grid.query_one("#grid-problems", Static).content)
        assert "Right upper lobe, posterior: '7' is not one of: 0, 1, 2, 3, 4, ne" in shown
        assert "type 0-4, n = not evaluable" in shown  # the keys, from the protocol's codes
        assert _total(app).startswith("Total score (0-72) 2 · ")
        await pilot.press("1")  # a valid key clears the refusal
        assert cell.value == 1 and not cell.has_class("-invalid")
        assert str(grid.query_one("#grid-problems", Static).content) == ""


async def test_saving_with_blank_segments_is_refused_inline(app_for, site, tmp_path, session_for):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await _open_grid(pilot, pid)
        await pilot.press(*"21")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is grid
        assert "ct_score not saved" in str(grid.query_one("#form-message", Static).content)
        assert "16 still blank (each needs 0-4, n = not evaluable)" in str(
            grid.query_one("#grid-problems", Static).content
        )
        assert _cell(app, "r_upper_apical").value == 2  # nothing lost
    assert records.for_subject(session_for("auditor").store, f"participant:{pid}", "ct_score") == []


async def test_ct_saved_with_the_total_shown(app_for, site, tmp_path, session_for, fmt):
    pid = enroll(site, tmp_path)
    cells = segments(site)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await _open_grid(pilot, pid)
        await pilot.press(*TYPED)
        grid.query_one("#field-timepoint", Select).value = "baseline"
        await pilot.pause()
        shown = _total(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        # a score above 0 needs the lesion form: the service says so beside the field
        assert app.screen is grid
        assert "required when any segment scores above 0" in str(
            grid.query_one("#problem-lesion_form", Static).content
        )
        grid.query_one("#field-lesion_form").select("ground_glass")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
    saved = records.for_subject(session_for("auditor").store, f"participant:{pid}", "ct_score")
    assert len(saved) == 1
    data = saved[0].data
    expected = {s: ("ne" if ch == "n" else int(ch)) for s, ch in zip(cells, TYPED, strict=True)}
    assert {s: data[s] for s in cells} == expected
    assert (data["total"], data["evaluable_segments"]) == (23, 17)  # 17 scored, one not evaluable
    assert shown == totals(TITLES[fmt], total=23, evaluable=17, right=13, left=10, ne=1)


async def test_nothing_lost_on_lock_and_language_switch(app_for, site, tmp_path, fmt):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        grid = await _open_grid(pilot, pid)
        await pilot.press(*"40n")
        grid.query_one("#field-timepoint", Select).value = "baseline"  # a field-group field
        await pilot.pause()
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
        await pilot.press(*PASSWORD, "enter")
        await settle(pilot)
        assert isinstance(app.screen, SectionGridScreen)
        first = ("r_upper_apical", "r_upper_posterior", "r_upper_anterior")
        assert [_cell(app, s).value for s in first] == [4, 0, "ne"]
        await pilot.press("f2")
        await settle(pilot)
        assert [_cell(app, s).value for s in first] == [4, 0, "ne"]
        assert _total(app).startswith("总分（0-72） 4 · 可评估肺段数 2 · ")
        assert "无法评估 1" in _total(app)
        assert app.screen.query_one("#field-timepoint", Select).value == "baseline"
        groups = [str(s.content) for s in app.screen.query(".grid-group").results(Static)]
        assert tuple(groups) == TITLES[fmt].groups_zh


async def test_roles_that_may_not_submit_get_no_grid(app_for, site, tmp_path, ward_for):
    """The auditor's participant screen offers no new record; the service refuses anyway."""
    from wardcrf import workflow
    from wardcrf.errors import AuthError, Refused

    pid = enroll(site, tmp_path)
    cells = segments(site)
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
    ward = ward_for("auditor")
    values = {s: 0 for s in cells} | {"timepoint": "baseline"}
    with pytest.raises((AuthError, Refused)) as refused:
        ward.call(workflow.submit, "ct_score", values, participant=pid)
    assert "ct_score" in str(refused.value) or "not allowed" in str(refused.value)


async def test_scores_typed_in_one_burst_while_busy_land_in_their_segments(
    app_for, site, tmp_path, monkeypatch
):
    """n (the picker), the CT form's place in it, Enter and the 18 scores, all posted before the app looks at
    the first, while opening the form and checking each score are slow (test_section_grid.busy)."""
    from test_section_grid import busy
    from tui_helpers import burst

    pid = enroll(site, tmp_path)
    cells = segments(site)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        labels = [str(o.prompt) for o in app.screen.query_one("#forms").options]
        await pilot.press("escape")
        await settle(pilot)
        busy(monkeypatch)
        await burst(pilot, "n", *["down"] * labels.index("Chest CT score"), "enter", *TYPED)
        assert isinstance(app.screen, SectionGridScreen)
        assert [_cell(app, s).value for s in cells] == ["ne" if c == "n" else int(c) for c in TYPED]
        assert _total(app).startswith("Total score (0-72) 23 · Evaluable segments 17 · ")


def test_the_ct_grid_100x30(snap_compare, app_for, site, tmp_path, fmt) -> None:
    """The picture: the grid with the re-encoding's titles, a refusal on the spot."""
    pid = enroll(site, tmp_path)
    app = app_for("clinician")

    async def typed(pilot):
        await settle(pilot)
        pilot.app.push_screen(SectionGridScreen(pilot.app.ward, "ct_score", pid))
        await settle(pilot)
        await pilot.press(*"21n30")  # five segments, one not evaluable
        await pilot.press("right", "7")  # across to the left lung; refused on the spot
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=typed)
