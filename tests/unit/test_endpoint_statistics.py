"""Endpoint statistics per arm (issue 17): each checked against an independent implementation.

Independent implementations: statsmodels (`proportion_confint`,
`confint_proportions_2indep`) for the intervals, lifelines
(`KaplanMeierFitter`, `logrank_test`, `multivariate_logrank_test`) for
Kaplan–Meier and the log-rank test; and published worked examples:
Newcombe (1998) for the Wilson and Newcombe intervals, the Freireich 6-MP
leukaemia trial (Gehan 1965) whose Kaplan–Meier table, Greenwood standard
errors and log-rank chi-square (16.79 on 1 df) are in every survival
textbook and in R's `survival` output. Edge cases: no events, everyone
censored, an empty arm, tied times, 0 and n of n.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typed_support import assert_shape, shape_problems

from wardcrf.reports import endpoints, proportions, stats, survival
from wardcrf.reports.endpoints import Outcome, Settings

# Freireich et al. (1963), as Gehan (1965): weeks in remission; False = censored.
SIX_MP = [
    (6, True), (6, True), (6, True), (6, False), (7, True), (9, False), (10, True), (10, False),
    (11, False), (13, True), (16, True), (17, False), (19, False), (20, False), (22, True), (23, True),
    (25, False), (32, False), (32, False), (34, False), (35, False),
]  # fmt: skip
PLACEBO = [(t, True) for t in (1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23)]


def _split(data):
    return [float(t) for t, _ in data], [e for _, e in data]


# -- proportions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "lower", "upper"),
    # Newcombe RG. Two-sided confidence intervals for the single proportion. Stat Med 1998;17:857, Table I, method 3.
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_reproduces_newcombes_worked_examples(k, n, lower, upper):
    lo, hi = proportions.wilson(k, n)
    assert (round(lo, 4), round(hi, 4)) == (lower, upper)


@pytest.mark.parametrize(
    ("a", "b", "lower", "upper"),
    # Newcombe RG. Interval estimation for the difference between independent proportions. Stat Med 1998;17:873,
    # Table II, method 10.
    [((56, 70), (48, 80), 0.0524, 0.3339), ((9, 10), (3, 10), 0.1705, 0.8090), ((5, 56), (0, 29), -0.0381, 0.1926),
     ((0, 10), (0, 20), -0.1611, 0.2775)],
)  # fmt: skip
def test_newcombe_difference_reproduces_the_published_examples(a, b, lower, upper):
    d = proportions.difference(proportions.Proportion(*a), proportions.Proportion(*b))
    assert (round(d["lower"], 4), round(d["upper"], 4)) == (lower, upper)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_one_proportion_intervals_equal_statsmodels(kn):
    from statsmodels.stats.proportion import proportion_confint

    k, n = kn
    for ours, theirs in (("wilson", "wilson"), ("clopper-pearson", "beta")):
        lo, hi = proportions.INTERVALS[ours](k, n)
        slo, shi = proportion_confint(k, n, alpha=0.05, method=theirs)
        assert lo == pytest.approx(slo, abs=1e-9) and hi == pytest.approx(shi, abs=1e-9)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_differences_equal_statsmodels(a, b):
    from statsmodels.stats.proportion import confint_proportions_2indep

    for ours, theirs in (("newcombe", "newcomb"), ("wald", "wald")):
        d = proportions.difference(proportions.Proportion(*a), proportions.Proportion(*b), method=ours)
        lo, hi = confint_proportions_2indep(*a, *b, method=theirs, compare="diff", correction=False)
        assert d["lower"] == pytest.approx(lo, abs=1e-9) and d["upper"] == pytest.approx(hi, abs=1e-9)


def test_zero_and_all_events_stay_inside_zero_one_and_an_empty_arm_has_no_estimate():
    assert proportions.wilson(0, 7)[0] == 0.0 and proportions.wilson(7, 7)[1] == 1.0
    assert proportions.clopper_pearson(0, 7)[0] == 0.0 and proportions.clopper_pearson(7, 7)[1] == 1.0
    assert proportions.wilson(0, 0) is None
    d = proportions.difference(proportions.Proportion(0, 0), proportions.Proportion(3, 10))
    assert d["estimate"] is None and "no participant" in d["reason"]
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportions.wilson(5, 3)


# -- Kaplan–Meier and log-rank -----------------------------------------------------------------


def test_kaplan_meier_reproduces_the_6mp_table_with_greenwood_errors():
    km = survival.kaplan_meier(*_split(SIX_MP))
    steps = {s.time: s for s in km.steps if s.events}
    # Survival and Greenwood standard errors as R's survfit prints them for the 6-MP group.
    published = {6: (0.857, 0.0764), 7: (0.807, 0.0869), 10: (0.753, 0.0963), 13: (0.690, 0.1068),
                 16: (0.627, 0.1141), 22: (0.538, 0.1282), 23: (0.448, 0.1346)}  # fmt: skip
    assert {t: (round(s.survival, 3), round(s.std_err, 4)) for t, s in steps.items()} == published
    assert km.median == 23 and km.n == 21 and km.events == 9
    # Tied times: 3 events and 1 censoring at week 6, all 21 at risk; the censored one still at risk at 6.
    assert (steps[6].at_risk, steps[6].events, steps[6].censored) == (21, 3, 1)


@pytest.mark.parametrize("ci", ["log-log", "plain"])
def test_kaplan_meier_equals_lifelines_on_6mp(ci):
    from lifelines import KaplanMeierFitter

    t, e = _split(SIX_MP)
    km = survival.kaplan_meier(t, e, ci=ci)
    fit = KaplanMeierFitter().fit(t, e)
    for s in km.steps:
        assert s.survival == pytest.approx(float(fit.survival_function_at_times(s.time).iloc[0]), abs=1e-12)
        if ci == "log-log" and s.events:
            lo, hi = fit.confidence_interval_.loc[s.time]
            assert (s.lower, s.upper) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
        if ci == "plain":
            assert s.lower == pytest.approx(max(0.0, s.survival - 1.959963984540054 * s.std_err))


def test_log_rank_reproduces_gehans_chi_square_and_lifelines():
    from lifelines.statistics import logrank_test

    lr = survival.logrank({"6-MP": _split(SIX_MP), "placebo": _split(PLACEBO)})
    assert round(lr.statistic, 2) == 16.79 and lr.df == 1 and lr.p == pytest.approx(4.17e-5, rel=1e-2)
    (t1, e1), (t2, e2) = _split(SIX_MP), _split(PLACEBO)
    ref = logrank_test(t1, t2, e1, e2)
    assert lr.statistic == pytest.approx(ref.test_statistic, rel=1e-12) and lr.p == pytest.approx(ref.p_value)
    assert lr.observed == (9.0, 21.0)


samples = st.lists(
    st.tuples(st.integers(0, 30).map(float), st.booleans()), min_size=1, max_size=25
)  # integer days: many ties


@settings(max_examples=120, deadline=None)
@given(st.lists(samples, min_size=2, max_size=4))
def test_k_group_log_rank_and_km_equal_lifelines_on_generated_data_with_ties(groups):
    import pandas as pd
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    data = {f"A{i}": _split(g) for i, g in enumerate(groups)}
    ours = survival.logrank(data)
    if not any(e for _, es in data.values() for e in es):
        assert ours.statistic is None and "no event" in ours.reason
        return
    frame = pd.DataFrame(
        [(t, e, g) for g, (ts, es) in data.items() for t, e in zip(ts, es, strict=True)],
        columns=["t", "e", "g"],
    )
    ref = multivariate_logrank_test(frame["t"], frame["g"], frame["e"])
    if ours.statistic is None:
        assert "singular" in ours.reason
    else:
        assert ours.statistic == pytest.approx(ref.test_statistic, rel=1e-7, abs=1e-9)
        assert ours.p == pytest.approx(ref.p_value, rel=1e-6, abs=1e-12)
    t, e = data["A0"]
    fit = KaplanMeierFitter().fit(t, e)
    for s in survival.kaplan_meier(t, e).steps:
        assert s.survival == pytest.approx(float(fit.survival_function_at_times(s.time).iloc[0]), abs=1e-12)


def test_no_events_all_censored_and_an_empty_arm_give_no_test_with_the_reason():
    km = survival.kaplan_meier([3.0, 5.0, 8.0], [False, False, False])
    assert [s.survival for s in km.steps] == [1.0, 1.0, 1.0] and km.median is None
    assert (km.steps[-1].lower, km.steps[-1].upper) == (1.0, 1.0)
    lr = survival.logrank({"A": ([3.0, 5.0], [False, False]), "B": ([4.0], [False])})
    assert lr.statistic is None and lr.p is None and "no event" in lr.reason
    lr = survival.logrank({"A": ([3.0, 5.0], [True, False]), "B": ([], [])})
    assert lr.p is None and lr.empty == ("B",) and "nothing to compare" in lr.reason
    everyone = survival.kaplan_meier([2.0, 2.0], [True, True])
    assert everyone.steps[0].survival == 0.0 and (everyone.steps[0].lower, everyone.steps[0].upper) == (
        0.0,
        0.0,
    )
    assert survival.kaplan_meier([], []).steps == ()
    for bad in ([-1.0], [math.nan], [math.inf]):
        with pytest.raises(ValueError, match="finite number >= 0"):
            survival.kaplan_meier(bad, [True])


# -- endpoints per arm ------------------------------------------------------------------------------


def test_mortality_by_day_per_arm_against_the_reference_arm():
    ep = {"code": "mortality_d28", "kind": "mortality", "day": 28, "from": "randomization", "reference": "Z"}
    outs = [
        *(Outcome("Z", time=t, event=True) for t in (3, 10, 27)),
        Outcome("Z", time=28, event=True),  # dies on day 28: counted (on or before day N)
        Outcome("Z", time=30, event=False),
        Outcome("Z", time=12, event=False),  # lost alive before day 28: status unknown, left out of k/n
        *(Outcome("M", time=t, event=False) for t in (28, 29, 40)),
        Outcome("M", time=5, event=True),
        Outcome("R"),  # no follow-up recorded
        Outcome(None, time=3, event=True),  # not allocated: counted, never analysed
    ]
    res = endpoints.analyse(ep, ["Z", "M", "R"], outs, Settings())
    z, m, r = res["arms"]["Z"], res["arms"]["M"], res["arms"]["R"]
    assert (z["k"], z["n"], z["censored_before_day"]) == (4, 5, 1)
    assert (m["k"], m["n"]) == (1, 4) and (r["n"], r["no_follow_up"], r["estimate"]) == (0, 1, None)
    assert res["not_assigned"] == 1
    lo, hi = proportions.wilson(4, 5)
    assert (z["lower"], z["upper"]) == (lo, hi)
    # Kaplan-Meier uses the participant lost on day 12: 1 - S(28) = 1 - (5/6 * 4/5 * 2/3 * 1/2).
    assert z["kaplan_meier"]["estimate"] == pytest.approx(1 - (5 / 6) * (4 / 5) * (2 / 3) * (1 / 2))
    comp = {(c["arm"], c["against"]): c for c in res["comparisons"]}
    assert set(comp) == {("M", "Z"), ("R", "Z")}
    assert comp[("M", "Z")]["estimate"] == pytest.approx(1 / 4 - 4 / 5)
    assert comp[("R", "Z")]["estimate"] is None and comp[("R", "Z")]["reason"]
    assert_shape(res, endpoints.EndpointResult)  # the report's writers read typed results (issue #16)
    assert not shape_problems(res["arms"], dict[str, endpoints.MortalityArm])


def test_proportion_time_to_event_and_paired_endpoints_per_arm():
    prop = endpoints.analyse(
        {"code": "pcr_negative_d14", "kind": "proportion", "compare": ["T", "P"]},
        ["T", "P"],
        [Outcome("T", met=True), Outcome("T", met=False), Outcome("T", met=None), Outcome("P", met=False)],
        Settings(proportion_ci="clopper-pearson"),
    )
    assert (prop["arms"]["T"]["k"], prop["arms"]["T"]["n"], prop["arms"]["T"]["unknown"]) == (1, 2, 1)
    assert prop["arms"]["T"]["method"].startswith("Clopper-Pearson")
    assert prop["comparisons"][0]["estimate"] == 0.5

    tte = endpoints.analyse(
        {"code": "ttd", "kind": "time_to_event", "from": "randomization", "horizon": "28d"},
        ["A", "B"],
        [
            *(Outcome("A", time=t, event=e) for t, e in SIX_MP),
            *(Outcome("B", time=t, event=e) for t, e in PLACEBO),
        ],
        Settings(),
    )
    # Past the 28-day horizon everyone is censored at 28 (6-MP's longest times are 32-35 weeks).
    assert max(s["time"] for s in tte["arms"]["A"]["steps"]) == 28.0
    assert tte["arms"]["A"]["median"] == 23 and tte["arms"]["B"]["median"] == 8
    assert round(tte["log_rank"]["statistic"], 2) == 16.79 and tte["comparisons"][0]["log_rank"]["df"] == 1

    paired = endpoints.analyse(
        {"form": "labs", "field": "crp", "improves": "down"},
        ["ARM"],
        [Outcome("ARM", before=b, after=a) for b, a in ((10, 2), (8, 3), (12, 1), (9, None))],
        Settings(),
    )
    arm = paired["arms"]["ARM"]
    assert (arm["n"], arm["pairs"]) == (4, 3) and arm["wilcoxon"]["p"] == pytest.approx(0.25)
    # each kind is its EndpointResult, its arms and comparisons of that kind's types (issue #16)
    for result, arm_type in (
        (prop, endpoints.ProportionArm),
        (tte, endpoints.SurvivalArm),
        (paired, endpoints.PairedArm),
    ):
        assert_shape(result, endpoints.EndpointResult)
        assert not shape_problems(result["arms"], dict[str, arm_type]), result["kind"]
    assert not shape_problems(tte["comparisons"], list[endpoints.LogRankComparison])
    assert not shape_problems(prop["comparisons"], list[endpoints.DifferenceComparison])


def test_unknown_arm_and_kind_are_refused_by_name():
    with pytest.raises(ValueError, match="arm 'X' is not an arm"):
        endpoints.analyse({"kind": "proportion", "code": "p"}, ["A"], [Outcome("X", met=True)], Settings())
    with pytest.raises(ValueError, match="kind 'odds'"):
        endpoints.analyse({"kind": "odds", "code": "p"}, ["A"], [], Settings())


def test_the_settings_come_from_the_protocols_analysis_table():
    from wardcrf.engine import model

    for name in model.SHIPPED:
        m = model.shipped(name)
        s = Settings.of(m.data.get("analysis", {}))
        assert s.proportion_ci in proportions.INTERVALS and s.survival_ci in survival.CI_METHODS
        arms = [a.code for a in m.arms]
        for ep in m.data.get("analysis", {}).get("endpoints", ()):
            res = endpoints.analyse(ep, arms, [], s)  # an empty trial: every arm present, nothing computed
            assert set(res["arms"]) == set(arms)


def test_the_statistics_the_report_writers_read_are_typed_in_each_branch():
    """`describe`, `kruskal` and `difference` feed the outcomes and endpoints reports' writers: each is
    its TypedDict whether it computes or says why not (issue #16)."""
    assert_shape(stats.describe([1.0, 2.0, 4.0]), stats.Description)
    assert stats.describe([]) == {"n": 0, "median": None, "q1": None, "q3": None}
    computed = stats.kruskal({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0], "c": []})
    assert_shape(computed, stats.Kruskal)
    assert computed["groups"] == {"a": 3, "b": 3} and "note" not in computed and computed["H"] is not None
    not_computed = stats.kruskal({"a": [1.0], "b": []})
    assert_shape(not_computed, stats.Kruskal)
    assert not_computed["note"] == "not computed: fewer than two groups with values"
    for method in ("newcombe", "wald"):
        assert_shape(
            proportions.difference(
                proportions.Proportion(3, 10), proportions.Proportion(1, 10), method=method
            ),
            proportions.Difference,
        )
    nobody = proportions.difference(proportions.Proportion(3, 10), proportions.Proportion(0, 0))
    assert_shape(nobody, proportions.Difference)
    assert nobody["estimate"] is None and nobody["reason"] == "an arm has no participant: no difference"


# -- the endpoints report in words (`wardcrf report endpoints`, default text) ----------------------

METHODS = {"ci_level": 0.95, "proportion_ci": "wilson", "difference_ci": "newcombe", "survival_ci": "log-log"}


def _text(results: list, blinded: bool = False) -> list[str]:
    from wardcrf.reports import engine_endpoints

    data = {
        "protocol": {"id": "PALM", "version": "1"},
        "at": "2026-12-07T08:00+01:00",
        "participants": 4,
        "blinded": blinded,
        "methods": METHODS,
        "endpoints": results,
    }
    return [t for s in engine_endpoints.document(data).sections for t in [f"## {s.title}", *s.text]]


def test_the_endpoints_report_with_data_gives_each_number_in_words():
    mortality = endpoints.analyse(
        {"code": "mortality_d28", "kind": "mortality", "day": 28, "primary": True, "reference": "Z"},
        ["Z", "R"],
        [
            Outcome("Z", time=30, event=False),
            Outcome("Z", time=10, event=True),
            Outcome("R", time=28, event=False),
            Outcome("R", time=29, event=False),
        ],
        Settings(),
    )
    prop = endpoints.analyse(
        {"code": "pcr_negative_d14", "kind": "proportion", "compare": ["Z", "R"]},
        ["Z", "R"],
        [Outcome("Z", met=True), Outcome("Z", met=False), Outcome("R", met=False), Outcome("R")],
        Settings(),
    )
    tte = endpoints.analyse(
        {"code": "time_to_death", "kind": "time_to_event", "compare": ["Z", "R"]},
        ["Z", "R"],
        [Outcome("Z", time=3, event=True), Outcome("Z", time=5), Outcome("R", time=4), Outcome("R")],
        Settings(),
    )
    assert mortality["arms"]["Z"]["kaplan_meier"] is not None  # followed past day 28: estimated
    assert mortality["arms"]["Z"]["kaplan_meier_reason"] == ""
    assert _text([mortality, prop, tte]) == [
        "## mortality_d28 (mortality, primary)",
        "Z: dead by day 28: 1 of 2 evaluable, 50.0% (95% CI 9.5% to 90.5%); censored alive before day 28: 0;"
        " no follow-up: 0; Kaplan–Meier 1 − S at day 28: 50.0% (95% CI 9.0% to 99.4%)",
        "R: dead by day 28: 0 of 2 evaluable, 0.0% (95% CI 0.0% to 65.8%); censored alive before day 28: 0;"
        " no follow-up: 0; Kaplan–Meier 1 − S at day 28: 0.0% (95% CI 0.0% to 0.0%)",
        "R vs Z: difference -50.0% (95% CI -90.5% to 27.3%; Newcombe hybrid score interval (method 10) for the"
        " difference of proportions)",
        "Not assigned to an arm: 0",
        "## pcr_negative_d14 (proportion)",
        "Z: 1 of 2, 50.0% (95% CI 9.5% to 90.5%); outcome not known: 0",
        "R: 0 of 1, 0.0% (95% CI 0.0% to 79.3%); outcome not known: 1",
        "Z vs R: difference 50.0% (95% CI -39.1% to 90.5%; Newcombe hybrid score interval (method 10) for the"
        " difference of proportions)",
        "Not assigned to an arm: 0",
        "## time_to_death (time to event)",
        "Z: 2 followed, 1 with the event, 1 censored; no follow-up: 0; median 3 days",
        "R: 1 followed, 0 with the event, 1 censored; no follow-up: 1; median not reached",
        "Log-rank test across every arm: chi-square 0.500 on 1 df, p = 0.4795",
        "Z vs R: log-rank test chi-square 0.500 on 1 df, p = 0.4795",
        "Not assigned to an arm: 0",
    ]


def test_an_endpoint_without_data_yet_gives_no_estimate_and_the_true_reason():
    """Both arms have participants, none followed to day 28 (all censored alive before it): no crude
    proportion, no Kaplan–Meier 1 − S past the last follow-up (not a zero-width 0%), and the reason names
    the arm and the day, never "an arm has no participant"."""
    ep = {"code": "mortality_d28", "kind": "mortality", "day": 28, "reference": "Z"}
    res = endpoints.analyse(
        ep,
        ["Z", "R", "M"],
        [Outcome("Z", time=3), Outcome("Z", time=4), Outcome("R", time=5), Outcome("R")],
        Settings(),
    )
    z = res["arms"]["Z"]
    assert (z["n"], z["estimate"], z["censored_before_day"], z["kaplan_meier"]) == (0, None, 2, None)
    assert z["kaplan_meier_reason"] == "nobody followed to day 28 yet"
    assert res["arms"]["M"]["kaplan_meier_reason"] == "nobody followed yet"
    reasons = {c["arm"]: c["reason"] for c in res["comparisons"]}
    assert reasons == {
        "R": "no participant of R evaluable at day 28 yet; no participant of Z evaluable at day 28 yet",
        "M": "M has no participant; no participant of Z evaluable at day 28 yet",
    }
    prop = endpoints.analyse(
        {"code": "pcr", "kind": "proportion", "compare": ["Z", "R"]},
        ["Z", "R"],
        [Outcome("Z", met=True), Outcome("R")],
        Settings(),
    )
    assert prop["comparisons"][0]["reason"] == "no participant of R with a known outcome yet"
    text = _text([res, prop])
    assert text == [
        "## mortality_d28 (mortality)",
        "Z: dead by day 28: 0 of 0 evaluable, not estimable: no participant of Z evaluable at day 28 yet;"
        " censored alive before day 28: 2; no follow-up: 0; Kaplan–Meier 1 − S at day 28: not estimable:"
        " nobody followed to day 28 yet",
        "R: dead by day 28: 0 of 0 evaluable, not estimable: no participant of R evaluable at day 28 yet;"
        " censored alive before day 28: 1; no follow-up: 1; Kaplan–Meier 1 − S at day 28: not estimable:"
        " nobody followed to day 28 yet",
        "M: dead by day 28: 0 of 0 evaluable, not estimable: M has no participant; censored alive before day 28:"
        " 0; no follow-up: 0; Kaplan–Meier 1 − S at day 28: not estimable: nobody followed yet",
        "R vs Z: difference not estimable: no participant of R evaluable at day 28 yet; no participant of Z"
        " evaluable at day 28 yet",
        "M vs Z: difference not estimable: M has no participant; no participant of Z evaluable at day 28 yet",
        "Not assigned to an arm: 0",
        "## pcr (proportion)",
        "Z: 1 of 1, 100.0% (95% CI 20.7% to 100.0%); outcome not known: 0",
        "R: 0 of 0, not estimable: no participant of R with a known outcome yet; outcome not known: 1",
        "Z vs R: difference not estimable: no participant of R with a known outcome yet",
        "Not assigned to an arm: 0",
    ]
    assert not any(
        "None" in t or "censored_before_day" in t or "_" in t.split(":", 1)[1]
        for t in text
        if not t.startswith("##")
    )
    # a death before the day with the curve at 0: Kaplan–Meier is known at the day (everyone at risk died)
    dead = endpoints.analyse(ep, ["Z"], [Outcome("Z", time=2), Outcome("Z", time=4, event=True)], Settings())
    assert dead["arms"]["Z"]["kaplan_meier"] == {"estimate": 1.0, "lower": 1.0, "upper": 1.0}


def test_a_blinded_ward_gives_one_all_participants_line_per_endpoint_and_no_comparison():
    from wardcrf.reports.engine_endpoints import ALL

    everyone = [Outcome(ALL, time=3), Outcome(ALL, time=30, event=False), Outcome(ALL, time=9, event=True)]
    tte = endpoints.analyse(
        {"code": "lesion_resolution", "kind": "time_to_event", "primary": True}, [ALL], everyone, Settings()
    )
    mort = endpoints.analyse(
        {"code": "mortality_d58", "kind": "mortality", "day": 58}, [ALL], everyone, Settings()
    )
    prop = endpoints.analyse(
        {"code": "pcr_negative_d14", "kind": "proportion"}, [ALL], [Outcome(ALL)], Settings()
    )
    assert tte["comparisons"] == [] and tte["not_assigned"] == 0
    assert _text([tte, mort, prop], blinded=True) == [
        "## Blinded",
        "The trial is blinded on this ward: no endpoint is split by arm (the hub analyses after unblinding).",
        "## lesion_resolution (time to event, primary)",
        "All participants: 3 followed, 1 with the event, 2 censored; no follow-up: 0; median 9 days",
        "## mortality_d58 (mortality)",
        "All participants: dead by day 58: 1 of 1 evaluable, 100.0% (95% CI 20.7% to 100.0%); censored alive"
        " before day 58: 2; no follow-up: 0; Kaplan–Meier 1 − S at day 58: not estimable: nobody followed to"
        " day 58 yet",
        "## pcr_negative_d14 (proportion)",
        "All participants: 0 of 0, not estimable: no participant with a known outcome yet; outcome not known: 1",
    ]
