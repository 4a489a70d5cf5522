"""Time to event by arm: Kaplan–Meier with Greenwood's variance, and the log-rank test.

Methods, as a statistical analysis plan names them:

* Kaplan–Meier product-limit estimate. At a time with both events and
  censorings, the events are counted first and the censored participants
  are still at risk (the usual convention, as R's `survival` and lifelines).
* Greenwood's variance, `Var(log S) = sum d / (n (n - d))`; the confidence
  interval on the complementary log-log scale (`exp(-exp(log(-log S) ± z
  se))`, Kalbfleisch & Prentice), which stays inside [0, 1] (lifelines'
  default and R's `conf.type = "log-log"`). Where S = 1 (no event yet) or
  S = 0 the interval is not defined on that scale and is reported as
  (1, 1) and (0, 0) respectively. `plain` (`[analysis] survival_ci`):
  S ± z·S·√Var(log S), clipped to [0, 1].
* Median time to event: the first time S falls to 0.5 or below; none when
  it never does (the report says "not reached").
* Log-rank test (Mantel–Haenszel), k groups, chi-square with k − 1 degrees
  of freedom from the observed-minus-expected vector and its hypergeometric
  covariance (exact with tied event times). Groups with no participant are
  left out and named; with fewer than two groups left, or no event at all,
  there is no test and the reason is stated, never a p of 1 or 0.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict, cast

from .stats import z_score

CI_METHODS = {
    "log-log": "Greenwood variance, complementary log-log interval",
    "plain": "Greenwood variance, plain (linear) interval clipped to [0, 1]",
}
LOGRANK_METHOD = "log-rank (Mantel-Haenszel), chi-square with k-1 degrees of freedom"


class StepJson(TypedDict):
    """One `Step` as the report's JSON shows it."""

    time: float
    at_risk: int
    events: int
    censored: int
    survival: float
    std_err: float
    lower: float
    upper: float


class KaplanMeierJson(TypedDict):
    """A Kaplan–Meier estimate as the report's JSON shows it (`KaplanMeier.as_json`)."""

    n: int
    events: int
    median: float | None
    level: float
    method: str
    steps: list[StepJson]


class LogRankJson(TypedDict):
    """A log-rank test as the report's JSON shows it (`LogRank.as_json`)."""

    groups: list[str]
    empty: list[str]
    observed: list[float]
    expected: list[float]
    statistic: float | None
    df: int
    p: float | None
    reason: str
    method: str


@dataclass(frozen=True)
class Step:
    """The estimate just after `time`: at risk before it, events and censorings at it."""

    time: float
    at_risk: int
    events: int
    censored: int
    survival: float
    std_err: float  # Greenwood standard error of S
    lower: float
    upper: float


@dataclass(frozen=True)
class KaplanMeier:
    n: int
    events: int
    steps: tuple[Step, ...]
    level: float
    ci: str = "log-log"

    def survival_at(self, t: float) -> tuple[float, float, float]:
        """(S, lower, upper) at time `t` (right-continuous: an event at `t` counts)."""
        out = (1.0, 1.0, 1.0)
        for s in self.steps:
            if s.time > t:
                break
            out = (s.survival, s.lower, s.upper)
        return out

    @property
    def median(self) -> float | None:
        return next((s.time for s in self.steps if s.survival <= 0.5), None)

    def as_json(self) -> KaplanMeierJson:
        return {
            "n": self.n,
            "events": self.events,
            "median": self.median,
            "level": self.level,
            "method": f"Kaplan-Meier; {CI_METHODS[self.ci]}",
            "steps": [cast(StepJson, s.__dict__) for s in self.steps],
        }


def _check(times: Sequence[float], events: Sequence[bool]) -> None:
    if len(times) != len(events):
        raise ValueError(f"{len(times)} times but {len(events)} event flags")
    for t in times:
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"time {t!r}: a time to event is a finite number >= 0")


def kaplan_meier(
    times: Sequence[float], events: Sequence[bool], level: float = 0.95, ci: str = "log-log"
) -> KaplanMeier:
    """The Kaplan–Meier estimate of one group (`events[i]`: True = event, False = censored at `times[i]`)."""
    _check(times, events)
    z = z_score(level)
    n = len(times)
    s, greenwood = 1.0, 0.0
    steps = []
    # One pass over the sorted times: O(n log n), not a scan of everyone per distinct time.
    for t, d, c in _tally(times, events):
        if d:
            s *= 1 - d / n
            greenwood = greenwood + d / (n * (n - d)) if n > d else math.inf
        se = s * math.sqrt(greenwood) if math.isfinite(greenwood) else 0.0
        bounds = _loglog(s, greenwood, z) if ci == "log-log" else _plain(s, se, z)
        steps.append(Step(t, n, d, c, s, se, *bounds))
        n -= d + c
    return KaplanMeier(len(times), sum(1 for e in events if e), tuple(steps), level, ci)


def _tally(times: Sequence[float], events: Sequence[bool]) -> list[tuple[float, int, int]]:
    """(time, events, censorings) at each distinct time, in time order."""
    out: list[tuple[float, int, int]] = []
    for t, e in sorted(zip(times, events, strict=True)):
        if out and out[-1][0] == t:
            last = out[-1]
            out[-1] = (t, last[1] + (1 if e else 0), last[2] + (0 if e else 1))
        else:
            out.append((t, 1 if e else 0, 0 if e else 1))
    return out


def _plain(s: float, se: float, z: float) -> tuple[float, float]:
    return max(0.0, s - z * se), min(1.0, s + z * se)


def _loglog(s: float, var_log_s: float, z: float) -> tuple[float, float]:
    if s >= 1.0:
        return 1.0, 1.0
    if s <= 0.0 or not math.isfinite(var_log_s):
        return 0.0, 0.0
    theta = math.log(-math.log(s))
    se = math.sqrt(var_log_s) / abs(math.log(s))
    return math.exp(-math.exp(theta + z * se)), math.exp(-math.exp(theta - z * se))


@dataclass(frozen=True)
class LogRank:
    groups: tuple[str, ...]
    empty: tuple[str, ...]  # groups left out: nobody in them
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    statistic: float | None
    df: int
    p: float | None
    reason: str  # why there is no test ('' when there is one)

    def as_json(self) -> LogRankJson:
        return {
            "groups": list(self.groups),
            "empty": list(self.empty),
            "observed": list(self.observed),
            "expected": list(self.expected),
            "statistic": self.statistic,
            "df": self.df,
            "p": self.p,
            "reason": self.reason,
            "method": LOGRANK_METHOD,
        }


def logrank(groups: Mapping[str, tuple[Sequence[float], Sequence[bool]]]) -> LogRank:
    """The k-group log-rank test over `{group: (times, events)}`."""
    import numpy as np
    from scipy.stats import chi2

    for times, events in groups.values():
        _check(times, events)
    used = [g for g, (t, _) in groups.items() if len(t)]
    empty = tuple(g for g in groups if g not in used)
    k = len(used)
    obs = np.zeros(k)
    exp = np.zeros(k)
    cov = np.zeros((k, k))
    # Per group: sorted times (at risk at t = those with time >= t, by bisection) and events per time.
    sorted_times = [sorted(groups[g][0]) for g in used]
    deaths = [Counter(t for t, e in zip(*groups[g], strict=True) if e) for g in used]
    pooled = sorted(set().union(*deaths)) if deaths else []
    for t in pooled:
        n_i = np.array([len(ts) - bisect_left(ts, t) for ts in sorted_times], dtype=float)
        d_i = np.array([dg.get(t, 0) for dg in deaths], dtype=float)
        n, d = n_i.sum(), d_i.sum()
        obs += d_i
        exp += d * n_i / n
        if n > 1:
            f = d * (n - d) / (n * n * (n - 1))
            cov += f * (np.diag(n_i * n) - np.outer(n_i, n_i))
    base = LogRank(
        tuple(used), empty, tuple(obs.tolist()), tuple(exp.tolist()), None, max(k - 1, 0), None, ""
    )
    if k < 2:
        return _no_test(base, f"{k} group{'s' if k != 1 else ''} with participants: nothing to compare")
    if not pooled:
        return _no_test(base, "no event in any group: the curves cannot differ")
    diff = (obs - exp)[:-1]
    v = cov[:-1, :-1]
    try:
        stat = float(diff @ np.linalg.solve(v, diff))
    except np.linalg.LinAlgError:
        return _no_test(base, "the variance is singular (every event at a time only one group was at risk)")
    return LogRank(
        base.groups, empty, base.observed, base.expected, stat, k - 1, float(chi2.sf(stat, k - 1)), ""
    )


def _no_test(base: LogRank, reason: str) -> LogRank:
    return LogRank(base.groups, base.empty, base.observed, base.expected, None, base.df, None, reason)
