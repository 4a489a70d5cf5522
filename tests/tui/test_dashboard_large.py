"""The dashboard on a large generated site: the first screen from the indexed ward queue (issue 19).

The site is the TUI template plus participants of real records written by
the benchmarks' generator (`bench/generate.py`: every projector runs), the
newest of them in treatment, so the ward list has participants overdue, due
now, owing post-dose vitals and upcoming, under the fixed clock. What the
dashboard lists is compared with the whole list (`status.list_rows`, itself
checked against each participant's `summary`) sorted by the ward order
written out independently here: the first rows, the totals in the title,
the next page as the cursor goes down, and a participant far down the list
found by typing their id.
"""

from __future__ import annotations

import importlib.util
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens import dashboard
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.participant import ParticipantScreen

from wardcrf.site import Site
from wardcrf.workflow import status

FAKE_NOW = "2020-03-16T01:00:00Z"  # as tests/tui/conftest.py
PARTICIPANTS = 160
"""More than two screens and a page: the list must page (FIRST_SCREEN 60, NEAR_END 10)."""
URGENCY = {"overdue": 0, "due now": 1, "upcoming": 3, "held": 4}


def _generator():
    path = Path(__file__).resolve().parents[2] / "bench" / "generate.py"
    spec = importlib.util.spec_from_file_location("bench_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def _large_template(_template_site, tmp_path_factory) -> Path:
    base, _key = _template_site
    data_dir = tmp_path_factory.mktemp("large-ward") / "site"
    shutil.copytree(base, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    gen = _generator()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        session = Site.open(data_dir).unlock("clinician", PASSWORD)
        try:
            gen.generate(
                session,
                PARTICIPANTS * gen.EVENTS_PER_PARTICIPANT,
                today=date(2020, 3, 16),
                in_treatment=40,
                batch=200,
            )
            _more_states(gen, session)
            session.store.checkpoint()
        finally:
            session.close()
    return data_dir


def _more_states(gen, session) -> None:
    """Beside the generator's in-treatment participants (due now): overdue ones, ones owing
    post-dose vitals and ones whose first dose is tomorrow (upcoming)."""
    from wardcrf import records

    today = date(2020, 3, 16)
    cases = [(3, 1, True)] * 4 + [(1, 1, False)] * 3 + [(0, 0, True)] * 3  # (days ago, doses, vitals)
    with session.store.transaction():
        for n, (ago, doses, vitals) in enumerate(cases, start=900):
            subject = f"participant:BENCH-{n:05d}"
            for form, data in gen.participant_records(n, enrolled=today - timedelta(days=ago), doses=doses):
                if not vitals and form == "vitals" and data["timepoint"] == "post_dose":
                    continue
                records.submit(session, form, data, subject=subject)


@pytest.fixture
def site(_large_template, data_dir) -> Site:
    shutil.copytree(_large_template, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(data_dir)


def ward_key(row: dict) -> tuple[int, float, str]:
    """The ward order written out: overdue (longest first), due now (least time left first),
    post-dose vitals owed, upcoming (soonest first), held, the rest by id."""
    nd = row.get("next_dose") or {}
    state = nd.get("state")
    rank = URGENCY.get(state, 5) if state else 5
    when = 0.0
    if state in ("overdue", "due now"):
        when = datetime.fromisoformat(nd["window"][1]).timestamp()
    elif state == "upcoming":
        when = datetime.fromisoformat(nd["due"]).timestamp()
    if rank > 2 and row.get("post_dose_vitals_due"):
        rank, when = 2, 0.0
    return rank, when, row["id"]


def expected(session_for) -> list[dict]:
    s = session_for("auditor")
    rows = status.list_rows(s.store, datetime.fromisoformat(FAKE_NOW.replace("Z", "+00:00")).astimezone(UTC))
    return sorted(rows, key=ward_key)


def listed(screen) -> list[str]:
    table = screen.query_one("#participants", DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_first_screen_is_the_head_of_the_ward_order_with_the_sites_totals(app_for, session_for):
    whole = expected(session_for)
    assert len(whole) > status.FIRST_SCREEN + dashboard.NEAR_END
    urgent = [r for r in whole if ward_key(r)[0] <= 2]
    # overdue, due now, post-dose vitals owed, upcoming, the rest
    assert {ward_key(r)[0] for r in whole} == {0, 1, 2, 3, 5}
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DashboardScreen)
        assert listed(screen) == [r["id"] for r in whole[: status.FIRST_SCREEN]]
        title = str(screen.query_one("#title-participants", Static).content)
        assert f"{len(whole)} listed, {len(urgent)} need attention" in title
        # The next-dose column says what the whole list says, row by row.
        table = screen.query_one("#participants", DataTable)
        for i, r in enumerate(whole[: status.FIRST_SCREEN]):
            shown = str(table.get_row_at(i)[1])
            assert (shown == "") == (r["next_dose"] is None), (r["id"], shown)


async def test_the_rest_follow_in_ward_order_as_the_cursor_goes_down(app_for, session_for):
    whole = [r["id"] for r in expected(session_for)]
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen
        table = screen.query_one("#participants", DataTable)
        table.focus()
        # Keys in a burst, as a nurse holding the arrow key: the pages arrive behind them.
        while table.row_count < len(whole):
            before = table.row_count
            await burst(pilot, *(["down"] * 40))
            await settle(pilot)
            assert table.row_count > before or table.cursor_row < before - dashboard.NEAR_END
        assert listed(screen) == whole  # every participant once, in ward order


async def test_a_participant_far_down_the_list_is_found_by_id(app_for, session_for):
    last = expected(session_for)[-1]["id"]
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert last not in listed(pilot.app.screen)  # not on the first screen
        await burst(pilot, *last, "enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ParticipantScreen) and pilot.app.screen.participant == last
