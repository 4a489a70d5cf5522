"""The ward queue orders and counts visit forms owed like any other due work (issue #17).

A participant owing only a visit form (no dose due) is raised into the first segment once the visit's window
has opened (`visit_due`), ordered with the doses by whichever ends first (a dose's due time, the visit's
window end: the longest overdue first), and counted in the attention; before the window opens they are
listed after the upcoming doses, not counted. A DSMG hold holds doses, not visits. The rows here are
written straight into the queue (`wardqueue.page` reads nothing else); the CLI test of a ward filling them
is tests/unit/test_engine_anchored_visits.py. Hypothesis: the segments are disjoint and cover every row,
and the attention is exactly the rows with something due now.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.store import Store
from wardcrf.workflow import wardqueue

NOW = datetime(2020, 3, 20, 10, 0, tzinfo=UTC)


def _t(hours: float) -> str:
    return wardqueue._utc(NOW + timedelta(hours=hours))


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    s.migrate()
    yield s
    s.close()


def _put(store: Store, rows: dict[str, dict]) -> None:
    store.execute("DELETE FROM ward_queue")
    store.execute("DELETE FROM counters")
    for pid, r in rows.items():
        store.execute(
            "INSERT INTO ward_queue (participant, next_dose, next_due, held, vitals_owed, visit_due, visit_until)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                pid,
                1 if r.get("next_due") else None,
                r.get("next_due"),
                r.get("held", 0),
                r.get("vitals_owed", 0),
                r.get("visit_due"),
                r.get("visit_until"),
            ),
        )
    store.execute("INSERT INTO counters (name, value) VALUES (?, ?)", (wardqueue.PARTICIPANTS, len(rows)))


WARD = {
    "A-dose-overdue": {"next_due": _t(-2)},
    "B-visit-open": {"visit_due": _t(-10), "visit_until": _t(14)},
    "C-visit-overdue": {"visit_due": _t(-24 * 5), "visit_until": _t(-24 * 3)},
    "D-visit-not-open": {"visit_due": _t(14), "visit_until": _t(24 * 3)},
    "E-dose-upcoming": {"next_due": _t(5)},
    "F-nothing": {},
    "G-vitals-owed": {"vitals_owed": 1},
    "H-held-visit-open": {"held": 1, "next_due": _t(-1), "visit_due": _t(-1), "visit_until": _t(20)},
    "I-held": {"held": 1, "next_due": _t(1)},
    "J-dose-later-visit-later": {"next_due": _t(30), "visit_due": _t(40), "visit_until": _t(60)},
}


def test_a_visit_form_owed_is_due_work_once_its_window_opens(store: Store) -> None:
    _put(store, WARD)
    page = wardqueue.page(store, NOW, 0, None, dsmg_hold=False)
    assert page.ids == [
        "C-visit-overdue",  # its window closed three days ago: the longest overdue
        "A-dose-overdue",
        "B-visit-open",  # window open, ends tonight
        "H-held-visit-open",  # held for doses, not for visits
        "G-vitals-owed",
        "E-dose-upcoming",
        "J-dose-later-visit-later",
        "D-visit-not-open",  # upcoming visits after the upcoming doses, not counted
        "I-held",
        "F-nothing",
    ]
    assert page.attention == 5 and page.total == len(WARD)
    # refused: the same participant a minute before its window opens is not counted, and not raised
    early = wardqueue.page(store, NOW - timedelta(hours=10, minutes=1), 0, None, dsmg_hold=False)
    assert "B-visit-open" not in early.ids[: early.attention]
    assert early.ids.index("B-visit-open") > early.ids.index("E-dose-upcoming")
    # a page from an offset is the same order
    assert wardqueue.page(store, NOW, 3, 4, dsmg_hold=False).ids == page.ids[3:7]


def test_a_dsmg_hold_holds_doses_not_visits(store: Store) -> None:
    _put(store, WARD)
    page = wardqueue.page(store, NOW, 0, None, dsmg_hold=True)
    assert page.ids[: page.attention] == [
        "G-vitals-owed",
        "C-visit-overdue",  # the visits due, by their window's end
        "B-visit-open",
        "H-held-visit-open",
    ]
    assert set(page.ids) == set(WARD) and len(page.ids) == len(WARD)


_MOMENT = st.one_of(st.none(), st.integers(min_value=-200, max_value=200))


@settings(max_examples=120, deadline=None)
@given(
    rows=st.dictionaries(
        st.from_regex(r"P[0-9]{3}", fullmatch=True),
        st.fixed_dictionaries(
            {
                "next_due": _MOMENT,
                "held": st.integers(0, 1),
                "vitals_owed": st.integers(0, 2),
                "visit_due": _MOMENT,
                "visit_len": st.integers(1, 100),
            }
        ),
        max_size=25,
    ),
    hold=st.booleans(),
    window=st.integers(0, 180),
)
def test_the_segments_cover_every_row_once_and_the_attention_is_what_is_due(rows, hold, window) -> None:
    s = Store.memory()
    s.migrate()
    try:
        table = {
            pid: {
                "next_due": None if r["next_due"] is None else _t(r["next_due"]),
                "held": r["held"],
                "vitals_owed": r["vitals_owed"],
                "visit_due": None if r["visit_due"] is None else _t(r["visit_due"]),
                "visit_until": None if r["visit_due"] is None else _t(r["visit_due"] + r["visit_len"]),
            }
            for pid, r in rows.items()
        }
        _put(s, table)
        sizes = []
        for where, params in wardqueue._segments(NOW, window, hold):
            cond = where.split(" ORDER BY ")[0]
            got = s.execute(f"SELECT participant FROM ward_queue WHERE {cond}", params[: cond.count("?")])
            sizes.append({r[0] for r in got})
        assert sum(len(x) for x in sizes) == len(table) and set().union(*sizes) == set(table)
        page = wardqueue.page(s, NOW, 0, None, dsmg_hold=hold)  # no protocol here: a dose window of 0
        assert sorted(page.ids) == sorted(table)
        limit = now = _t(0)

        def due(r: dict) -> bool:
            visit = r["visit_due"] is not None and r["visit_due"] <= now
            if hold:
                return r["vitals_owed"] > 0 or visit
            dose = not r["held"] and r["next_due"] is not None and r["next_due"] <= limit
            return dose or visit or r["vitals_owed"] > 0

        assert page.attention == sum(1 for r in table.values() if due(r))
        assert set(page.ids[: page.attention]) == {p for p, r in table.items() if due(r)}
    finally:
        s.close()
