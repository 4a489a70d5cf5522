"""Mean kinetic temperature (every worked value in STANDARDS.md), excursions and gaps."""

from __future__ import annotations

import pytest

from wardcrf.coldchain import analysis

WORKED = [
    ((25, 25, 25), 25.0000),
    ((20, 25, 30), 25.8582),
    ((20, 30), 26.2599),
    ((2, 4, 6, 8), 5.3021),
    ((-20, -20, -20, -10), -15.9181),
    ((-20,) * 23 + (-5,), -18.1199),
]


@pytest.mark.parametrize(("temps", "expected"), WORKED)
def test_mkt_worked_values(temps, expected):
    assert round(analysis.mkt(temps), 4) == expected
    # Evenly spaced readings through the time-weighted path give the same value.
    times = [i * 300 for i in range(len(temps))]
    assert round(analysis.mkt_series(times, temps, 300), 4) == expected
    assert analysis.mkt(temps) >= sum(temps) / len(temps) - 1e-9


def test_mkt_time_weighting_for_uneven_intervals():
    # 20 °C held for 3 h then 30 °C for 1 h, sampled unevenly, equals (20,20,20,30) evenly.
    even = analysis.mkt([20, 20, 20, 30])
    weighted = analysis.mkt([20, 30], [3, 1])
    assert weighted == pytest.approx(even, abs=1e-9)
    # Readings every 5 min then one every 10 min: the 10-min step weighs double.
    w = analysis.time_weights([0, 300, 600, 1200], 300)
    assert w == [300.0, 300.0, 450.0, 450.0]


def test_mkt_refuses_empty_and_bad_weights():
    with pytest.raises(ValueError):
        analysis.mkt([])
    with pytest.raises(ValueError):
        analysis.mkt([1, 2], [1])
    with pytest.raises(ValueError):
        analysis.mkt([1], [0])


def test_gap_does_not_dilute_weights():
    w = analysis.time_weights([0, 300, 7200, 7500], 300)
    assert w == [300.0, 300.0, 300.0, 300.0]


def test_excursions_contiguous_spans_with_min_max():
    times = [i * 60 for i in range(10)]
    temps = [-20, -20, -14, -12, -13, -20, -26, -20, -20, -14.5]
    exc = analysis.excursions(times, temps, -25, -15)
    assert [(e.start, e.end, e.minimum, e.maximum, e.readings, e.open) for e in exc] == [
        (120, 300, -14, -12, 3, False),
        (360, 420, -26, -26, 1, False),
        (540, 540, -14.5, -14.5, 1, True),
    ]
    assert exc[0].duration_s == 180


def test_boundaries_are_inside_range():
    assert analysis.excursions([0, 60], [-25.0, -15.0], -25, -15) == []


def test_one_sided_range():
    exc = analysis.excursions([0, 60, 120], [-78, -10, -70], None, -15)
    assert len(exc) == 1 and exc[0].maximum == -10


def test_gaps_longer_than_twice_interval_are_unmonitored():
    times = [0, 60, 120, 240, 600, 660]
    g = analysis.gaps(times, 60)
    assert [(x.start, x.end) for x in g] == [(240, 600)]
    assert analysis.gaps([0, 120, 240], 60) == []  # exactly twice is still monitored


def test_summary_reports_everything():
    times = [i * 60 for i in range(5)]
    s = analysis.summarize(times, [-20, -20, -10, -20, -20], 60, -25, -15)
    d = s.as_dict()
    assert d["readings"] == 5 and d["min"] == -20 and d["max"] == -10
    assert len(d["excursions"]) == 1 and d["gaps"] == []
    assert d["mkt"] > d["mean"]
