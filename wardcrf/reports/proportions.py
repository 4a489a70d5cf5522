"""k of n per arm with a confidence interval, and the difference between two arms with its interval.

Methods, as a statistical analysis plan names them:

* One proportion: the Wilson score interval (Wilson 1927), which, unlike the
  Wald interval, stays inside [0, 1] and keeps its coverage at 0 of n and
  n of n (Brown, Cai & DasGupta 2001 recommend it for small n, the usual
  case in an isolation ward). No continuity correction.
* Difference of two independent proportions p1 − p2: Newcombe's hybrid
  score interval (Newcombe 1998, method 10), built from the two Wilson
  intervals; defined at 0 and n events, unlike the Wald difference.
* Chosen in the protocol instead (`[analysis] proportion_ci`,
  `difference_ci`): the Clopper–Pearson "exact" interval from the beta
  distribution (conservative), and the Wald difference (named, for
  comparison with older reports; it can leave [-1, 1] and collapses at 0
  events).
* With an arm of nobody (n = 0) there is no proportion and no difference:
  the value is None and the report says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from .stats import z_score

ONE_METHODS = {
    "wilson": "Wilson score interval (no continuity correction)",
    "clopper-pearson": "Clopper-Pearson exact interval (beta distribution)",
}
DIFF_METHODS = {
    "newcombe": "Newcombe hybrid score interval (method 10) for the difference of proportions",
    "wald": "Wald interval for the difference of proportions (normal approximation)",
}


def _counts(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"{k} of {n}: counts must satisfy 0 <= k <= n")


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval for k events in n (None when n = 0)."""
    _counts(k, n)
    if n == 0:
        return None
    z = z_score(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 (k = n) the bound is exactly 0 (1): no rounding below 0 or above 1.
    lower = 0.0 if k == 0 else max(0.0, centre - half)
    upper = 1.0 if k == n else min(1.0, centre + half)
    return lower, upper


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """The Clopper–Pearson interval: beta quantiles, exactly 0 at k = 0 and 1 at k = n."""
    from scipy.stats import beta

    _counts(k, n)
    if n == 0:
        return None
    alpha = 1 - level
    lower = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    upper = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lower, upper


INTERVALS = {"wilson": wilson, "clopper-pearson": clopper_pearson}


class ProportionJson(TypedDict):
    """A proportion with its interval as the report's JSON shows it (`Proportion.as_json`)."""

    k: int
    n: int
    estimate: float | None
    lower: float | None
    upper: float | None
    method: str


@dataclass(frozen=True)
class Proportion:
    k: int
    n: int
    level: float = 0.95
    method: str = "wilson"

    @property
    def estimate(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return INTERVALS[self.method](self.k, self.n, self.level)

    def as_json(self) -> ProportionJson:
        ci = self.interval
        return {
            "k": self.k,
            "n": self.n,
            "estimate": self.estimate,
            "lower": ci[0] if ci else None,
            "upper": ci[1] if ci else None,
            "method": ONE_METHODS[self.method],
        }


class Difference(TypedDict):
    """A difference of two proportions with its interval (`difference`)."""

    estimate: float | None
    lower: float | None
    upper: float | None
    method: str
    reason: str
    """Why there is no estimate ("" when there is one)."""


def difference(a: Proportion, b: Proportion, level: float = 0.95, method: str = "newcombe") -> Difference:
    """p_a − p_b with its interval (`method`: newcombe or wald); none when either arm has nobody."""
    out: Difference = {
        "estimate": None,
        "lower": None,
        "upper": None,
        "method": DIFF_METHODS[method],
        "reason": "",
    }
    if a.n == 0 or b.n == 0:
        out["reason"] = "an arm has no participant: no difference"
        return out
    p1, p2 = a.k / a.n, b.k / b.n
    d = p1 - p2
    out["estimate"] = d
    if method == "wald":
        half = z_score(level) * math.sqrt(p1 * (1 - p1) / a.n + p2 * (1 - p2) / b.n)
        out["lower"], out["upper"] = d - half, d + half
        return out
    l1, u1 = wilson(a.k, a.n, level) or (0.0, 1.0)
    l2, u2 = wilson(b.k, b.n, level) or (0.0, 1.0)
    out["lower"] = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    out["upper"] = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return out
