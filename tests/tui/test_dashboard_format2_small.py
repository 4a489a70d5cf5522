"""The PALM and PALM007 demo wards' dashboard at 100x30 (issue #17; a new user's pass, D2/D3/D16).

At 100 columns the dashboard shows one panel at a time. The participants panel of a format-2 ward read
"Day 4/3" for a ZMapp patient (format 1's days since enrollment over the doses planned), cut the status
mid-word ("in trea") and, on PALM007, pushed Status off the screen with the visit forms owed appended to
the next dose. Now: "Doses" given of planned (never above the plan), the status a whole word on screen,
the visit forms owed in a last column of their own, one visit once. Keys are sent in a burst
(`tui_helpers.burst`); every wait is on a condition (`settle`), never on the clock. The demo is seeded under
the suite's fixed clock with a fixed allocation seed, so the pictures are stable.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from textual.widgets import DataTable
from tui_helpers import PASSWORD, burst, screen_text, settle
from wardcrf.screens.app import make_app
from wardcrf.screens.dashboard import DashboardScreen, visits_text
from wardcrf.screens.i18n import domain_word
from wardcrf.screens.ward import Ward

from wardcrf import workflow
from wardcrf.engine import model
from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"  # the suite's clock (conftest)
SIZE = (100, 30)


def _seed(tmp_path_factory, trial: str) -> Path:
    from wardcrf.sync import engine_demo

    from wardcrf.randomization import lists

    data = tmp_path_factory.mktemp(f"{trial}-small-template") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        mp.setattr(lists, "new_seed", lambda: bytes([7]) * 32)  # the same allocations every run
        mp.setattr(lists, "new_list_id", lambda: "LSMALL0000001")
        engine_demo.seed(data, model.shipped(f"{trial}.toml"), PASSWORD, now=datetime.fromisoformat(FAKE_NOW))
    return data


@pytest.fixture(scope="module")
def _palm(tmp_path_factory) -> Path:
    return _seed(tmp_path_factory, "palm")


@pytest.fixture(scope="module")
def _palm007(tmp_path_factory) -> Path:
    return _seed(tmp_path_factory, "palm007")


@pytest.fixture(params=["palm", "palm007"])
def demo_ward(request, tmp_path) -> Site:
    template = request.getfixturevalue(f"_{request.param}")
    data = tmp_path / "site"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(data)


def _listed(site: Site) -> dict[str, dict]:
    reader = site.unlock("clinician", PASSWORD)
    try:
        return {r["id"]: dict(r) for r in workflow.list_participants(reader)}
    finally:
        reader.close()


def _check_rows_on_screen(app, listed: dict[str, dict]) -> None:
    """Every row on screen: Doses given/planned (never above), the status a whole word, visits in their column."""
    screen = app.screen
    assert isinstance(screen, DashboardScreen) and screen.has_class("-compact")
    table = screen.query_one("#participants", DataTable)
    labels = [str(c.label) for c in table.columns.values()]
    assert labels[-1] == "Visit forms owed" and "Doses" in labels and "Day" not in labels, labels
    lines = screen_text(app).splitlines()
    header = next(line for line in lines if line.lstrip().startswith("Participant"))
    assert re.search(r"\bStatus\b", header), header  # the column is on screen
    doses_at, status_at = labels.index("Doses"), labels.index("Status")
    shown = 0
    for pid, r in listed.items():
        row = [str(c) for c in table.get_row(pid)]
        given, planned = r["doses_given"], r["doses_planned"]
        if planned:
            assert row[doses_at] == f"{given}/{planned}" and given <= planned, (pid, row)
        word = domain_word("status_short", r["status"])
        assert row[status_at] == word, (pid, row)
        assert visits_text(r.get("visits_owed") or [], short=True) == row[-1], (pid, row)
        assert not any(v in row[1] for v in r.get("visits_owed") or []), (pid, row)  # not in Next
        line = next((x for x in lines if x.lstrip().startswith(pid)), None)
        if line is None:
            continue  # below the fold
        shown += 1
        # whole on screen, where the header says Status: never cut mid-word ("in trea")
        assert line[header.index("Status") :].startswith(word), (pid, line, header)
    assert shown >= 3, "the demo's first rows are on screen"


async def test_format2_dashboard_at_100x30_shows_doses_status_and_visits_owed(demo_ward) -> None:
    listed = _listed(demo_ward)
    assert any(r.get("visits_owed") for r in listed.values()), "the demo owes visit forms today"
    ward = Ward(demo_ward, demo_ward.unlock("clinician", PASSWORD))
    app = make_app(demo_ward.data_dir, ward=ward)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        _check_rows_on_screen(app, listed)


async def test_format2_dashboard_at_100x30_after_a_burst_of_panel_keys(demo_ward) -> None:
    """To the next panels, back, reload and the participants panel again, typed before the app looks at the first."""
    listed = _listed(demo_ward)
    ward = Ward(demo_ward, demo_ward.unlock("clinician", PASSWORD))
    app = make_app(demo_ward.data_dir, ward=ward)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await burst(pilot, "right_square_bracket", "right_square_bracket", "left_square_bracket", "r", "1")
        await settle(pilot)
        assert app.screen.current == "participants"
        _check_rows_on_screen(app, listed)


async def test_format2_dashboard_keeps_its_columns_across_a_language_switch(demo_ward) -> None:
    """F2 composes the dashboard again: its participants table kept format 1's six columns while the rows of a
    format-2 ward carry seven ("More values provided than there are columns")."""
    ward = Ward(demo_ward, demo_ward.unlock("clinician", PASSWORD))
    app = make_app(demo_ward.data_dir, ward=ward)
    from wardcrf.screens import i18n

    # F2 cycles the languages the ward offers (its protocol's with a catalogue: en and fr for PALM and PALM007
    # since the French catalogue; zh where offered): in each, the format-2 columns in that language and every
    # row as wide (the test first assumed F2 went to zh)
    words = {"zh": ("访视待填表单", "给药次数"), "fr": ("Formulaires de visite dus", "Doses")}
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        offered = i18n.offered()
        assert len(offered) > 1, offered  # PALM and PALM007 offer en and fr
        for _ in range(len(offered) - 1):
            await burst(pilot, "f2", "r")
            await settle(pilot)
            lang = i18n.language()
            table = app.screen.query_one("#participants", DataTable)
            labels = [str(c.label) for c in table.columns.values()]
            visits, doses = words[lang]
            assert labels[-1] == visits and doses in labels, (lang, labels)
            assert table.row_count and all(
                len(table.get_row_at(i)) == len(labels) for i in range(table.row_count)
            )
        await burst(pilot, "f2")
        await settle(pilot)
        labels = [str(c.label) for c in app.screen.query_one("#participants", DataTable).columns.values()]
        assert i18n.language() == "en" and labels[-1] == "Visit forms owed", labels


def test_visits_text_names_each_visit_once() -> None:
    owed = [
        "DAY 4: vitals (window closing)",
        "DAY 4: lesions (window closing)",
        "DAY 28: vital_status (overdue)",
    ]
    assert visits_text(owed) == "DAY 4: vitals, lesions (window closing); DAY 28: vital_status (overdue)"
    assert visits_text(owed, short=True) == "DAY 4: vitals, lesions (closing); DAY 28: vital_status (overdue)"
    assert visits_text([]) == ""
    # a line not in the "VISIT: form (state)" shape is kept as it is, not dropped
    assert visits_text(["something else"]) == "something else"


@pytest.mark.parametrize("trial", ["palm", "palm007"])
def test_format2_dashboard_at_100x30_picture(snap_compare, request, tmp_path, trial) -> None:
    template = request.getfixturevalue(f"_{trial}")
    data = tmp_path / "site"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.lock"))
    site = Site.open(data)
    app = make_app(data, ward=Ward(site, site.unlock("clinician", PASSWORD)))
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_format2_dashboard_french_80x24_picture(snap_compare, _palm, tmp_path) -> None:
    """PALM's dashboard in French at 80 columns: every key of the footer whole, on the lines it needs
    ("n Nouveau participant", cut to "Nouveau participan" on one line before; test_footer_fits)."""
    data = tmp_path / "site"
    shutil.copytree(_palm, data, ignore=shutil.ignore_patterns("*.lock"))
    site = Site.open(data)
    app = make_app(data, ward=Ward(site, site.unlock("clinician", PASSWORD)), language="fr")
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)
