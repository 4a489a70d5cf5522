"""The CT score grid: typed cells, the live total, `ne`, refusals, saving, nothing lost."""

from __future__ import annotations

from textual.widgets import Select, Static
from tui_helpers import PASSWORD, enroll, settle
from wardcrf.screens.ct_grid import CTGridScreen, SegmentCell, lobe_title, segment_title
from wardcrf.screens.lock import LockScreen
from wardcrf.screens.participant import ParticipantScreen

from wardcrf import records
from wardcrf.workflow.clinical import CT_SEGMENTS, ct_total

# Scores in the grid's typing order (right lung 10, then left lung 8): one `n`.
TYPED = "2103n01240" + "33210001"


def _total(app) -> str:
    return str(app.screen.query_one("#ct-total", Static).content)


def _cell(app, segment: str) -> SegmentCell:
    return app.screen.query_one(f"#field-{segment}", SegmentCell)


async def _open_grid(pilot, pid: str) -> CTGridScreen:
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
    assert isinstance(app.screen, CTGridScreen), "the picker did not route the CT form to the grid"
    return app.screen


def test_lobe_and_segment_titles_come_from_the_labels() -> None:
    en = ["Right upper lobe, apical", "Right upper lobe, posterior", "Right upper lobe, anterior"]
    assert lobe_title(en) == "Right upper lobe"
    assert segment_title(en[0], "Right upper lobe") == "apical"
    zh = ["右下叶背段", "右下叶内基底段", "右下叶前基底段"]
    assert lobe_title(zh) == "右下叶"
    assert segment_title(zh[1], "右下叶") == "内基底段"
    # a shared first letter of the segment is not part of the lobe's name
    assert lobe_title(["Left lower lobe, anterior", "Left lower lobe, apical"]) == "Left lower lobe"


async def test_typing_cells_updates_the_total_live(app_for, site, tmp_path):
    pid = enroll(site, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        grid = await _open_grid(pilot, pid)
        assert app.focused is _cell(app, "r_upper_apical")
        assert _total(app).startswith("Total 0/72")
        await pilot.press("3")
        assert _total(app).startswith("Total 3/72 · right 3 · left 0 · not evaluable 0 · 17 to score")
        assert app.focused is _cell(app, "r_upper_posterior")  # moved on
        await pilot.press("4", "n")
        assert _total(app).startswith("Total 7/72 · right 7 · left 0 · not evaluable 1 · 15 to score")
        assert _cell(app, "r_upper_anterior").value == "ne"
        # arrows: → goes across to the same row of the left lung, ↓ ↑ within it
        await pilot.press("right", "down", "down", "up", "2")
        assert _cell(app, "l_lower_superior").value == 2
        assert "left 2" in _total(app)
        _cell(app, "r_upper_posterior").focus()
        await pilot.press("backspace")
        assert _cell(app, "r_upper_posterior").value is None
        assert _total(app).startswith("Total 5/72 · right 3 · left 2")
        assert "Left lung (L) · 2" in str(grid.query_one("#lung-title-left", Static).content)


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
        shown = str(grid.query_one("#ct-problems", Static).content)
        assert "Right upper lobe, posterior: '7' is not one of: 0, 1, 2, 3, 4, ne" in shown
        assert _total(app).startswith("Total 2/72")
        await pilot.press("1")  # a valid key clears the refusal
        assert cell.value == 1 and not cell.has_class("-invalid")
        assert str(grid.query_one("#ct-problems", Static).content) == ""


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
        assert "16 segments still blank" in str(grid.query_one("#ct-problems", Static).content)
        assert _cell(app, "r_upper_apical").value == 2  # nothing lost
    assert records.for_subject(session_for("auditor").store, f"participant:{pid}", "ct_score") == []


async def test_ct_saved_with_the_domains_total(app_for, site, tmp_path, session_for):
    pid = enroll(site, tmp_path)
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
    expected = {s: ("ne" if ch == "n" else int(ch)) for s, ch in zip(CT_SEGMENTS, TYPED, strict=True)}
    assert {s: data[s] for s in CT_SEGMENTS} == expected
    assert (data["total"], data["evaluable_segments"]) == ct_total(expected) == (23, 17)
    assert shown.startswith(f"Total {data['total']}/72 · right 13 · left 10 · not evaluable 1")


async def test_nothing_lost_on_lock_and_language_switch(app_for, site, tmp_path):
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
        assert isinstance(app.screen, CTGridScreen)
        assert [_cell(app, s).value for s in CT_SEGMENTS[:3]] == [4, 0, "ne"]
        await pilot.press("f2")
        await settle(pilot)
        assert [_cell(app, s).value for s in CT_SEGMENTS[:3]] == [4, 0, "ne"]
        assert _total(app).startswith("总分 4/72")
        assert app.screen.query_one("#field-timepoint", Select).value == "baseline"
        lobes = [str(s.content) for s in app.screen.query(".ct-lobe").results(Static)]
        assert lobes == ["右上叶", "右中叶", "右下叶", "左上叶", "左下叶"]


async def test_roles_that_may_not_submit_get_no_grid(app_for, site, tmp_path, ward_for):
    """The auditor's participant screen offers no new record; the service refuses anyway."""
    from wardcrf import workflow
    from wardcrf.errors import AuthError, Refused

    pid = enroll(site, tmp_path)
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
    ward = ward_for("auditor")
    values = {s: 0 for s in CT_SEGMENTS} | {"timepoint": "baseline"}
    try:
        ward.call(workflow.submit, "ct_score", values, participant=pid)
    except (AuthError, Refused) as exc:
        assert "ct_score" in str(exc) or "not allowed" in str(exc)
    else:  # pragma: no cover - the domain must refuse
        raise AssertionError("auditor saved a CT score")
