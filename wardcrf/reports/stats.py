"""The statistics the reports use, each method named the way a statistical analysis plan names it.

* Quartiles: Hyndman & Fan (1996) sample quantile types 5-9 (`QUARTILE_METHODS`).
  Type 6, p(n+1), is what GraphPad Prism, SPSS and Minitab compute; type 7 is
  R's and numpy's default (and Excel's PERCENTILE.INC). The median is the
  ordinary sample median under every one of these types.
* Wilcoxon signed-rank test for paired data, two-sided: the *exact
  conditional* null distribution by default — every one of the 2^n sign
  assignments of the observed (mid)ranks equally likely, so ties and zeros
  are handled exactly (as GraphPad Prism's exact test and SciPy's
  ``wilcoxon(method=PermutationMethod())`` do; SciPy's ``method="exact"``
  assumes no ties). Computed by dynamic programming over the sum of doubled
  midranks, O(n * sum), exact up to `EXACT_MAX_N` non-zero differences. The
  normal approximation (tie-corrected variance, no continuity correction,
  as SciPy's ``method="approx"``) is used only when chosen, or beyond
  `EXACT_MAX_N`, and is then named. Zero differences are dropped before
  ranking (Wilcoxon's method) or ranked then dropped (Pratt's method).
* Kruskal-Wallis H with the tie correction (SciPy's ``kruskal``).
* P-values are printed to four decimals, and as "< 0.0001" below that
  (never "p = 0.0000").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

QUARTILE_METHODS: dict[str, tuple[str, str]] = {
    # key -> (numpy.percentile method, description)
    "hf5": ("hazen", "Hyndman–Fan type 5 (piecewise linear, p(n) + 1/2)"),
    "hf6": ("weibull", "Hyndman–Fan type 6, p(n+1), as GraphPad Prism, SPSS and Minitab"),
    "hf7": ("linear", "Hyndman–Fan type 7, 1 + p(n-1), as R's and numpy's default and Excel PERCENTILE.INC"),
    "hf8": ("median_unbiased", "Hyndman–Fan type 8, median-unbiased, p(n + 1/3) + 1/3"),
    "hf9": ("normal_unbiased", "Hyndman–Fan type 9, normal-unbiased, p(n + 1/4) + 3/8"),
}
PAIRED_TESTS = {
    "wilcoxon-exact": "Wilcoxon signed-rank, exact conditional distribution (ties and zeros handled exactly)",
    "wilcoxon-normal": "Wilcoxon signed-rank, normal approximation (tie-corrected variance, no continuity correction)",
}
ZERO_METHODS = {
    "wilcox": "zero differences dropped before ranking (Wilcoxon)",
    "pratt": "zero differences ranked, then dropped (Pratt)",
}
EXACT_MAX_N = 400
"""Above this many non-zero differences the exact distribution is not computed (the report says so)."""


def z_score(level: float) -> float:
    """The two-sided normal quantile of a confidence level (0.95 -> 1.959964)."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def format_p(p: float | None) -> str:
    """'p = 0.0559', 'p < 0.0001', or '—' when there is no p-value."""
    if p is None or math.isnan(p):
        return "—"
    if p < 0.0001:
        return "p < 0.0001"
    return f"p = {min(p, 1.0):.4f}"


class Description(TypedDict):
    """n, median and quartiles of a sample (`describe`); None without values."""

    n: int
    median: float | None
    q1: float | None
    q3: float | None


def describe(values: Sequence[float], method: str = "hf6") -> Description:
    """n, median, first and third quartile by `method` (a `QUARTILE_METHODS` key)."""
    import numpy as np

    np_method, _ = QUARTILE_METHODS[method]
    if not values:
        return {"n": 0, "median": None, "q1": None, "q3": None}
    arr = np.asarray(values, dtype=float)
    q1, q3 = np.percentile(arr, [25, 75], method=np_method)  # type: ignore[call-overload]
    return {"n": len(values), "median": float(np.median(arr)), "q1": float(q1), "q3": float(q3)}


class SignedRankJson(TypedDict):
    """A signed-rank test as the report's JSON shows it (`SignedRank.as_json`)."""

    n_pairs: int
    n_zero: int
    n_nonzero: int
    w_plus: float | None
    w_minus: float | None
    statistic: float | None
    p: float | None
    p_text: str
    method: str
    exact: bool
    ties: bool


@dataclass(frozen=True)
class SignedRank:
    n_pairs: int
    n_zero: int
    n_used: int  # non-zero differences
    w_plus: float | None
    w_minus: float | None
    statistic: float | None  # min(W+, W-), as SciPy reports it
    p: float | None
    method: str  # the full statement for the report
    exact: bool
    ties: bool

    def as_json(self) -> SignedRankJson:
        return {
            "n_pairs": self.n_pairs,
            "n_zero": self.n_zero,
            "n_nonzero": self.n_used,
            "w_plus": self.w_plus,
            "w_minus": self.w_minus,
            "statistic": self.statistic,
            "p": self.p,
            "p_text": format_p(self.p),
            "method": self.method,
            "exact": self.exact,
            "ties": self.ties,
        }


def _midranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = mid
        i = j + 1
    return ranks


def _exact_two_sided(doubled: list[int], observed: int) -> float:
    """P(|T - E| >= |t - E|) for T = sum of a random subset of `doubled` (each in with probability 1/2)."""
    total = sum(doubled)
    counts = [0] * (total + 1)
    counts[0] = 1
    reach = 0
    for r in doubled:
        reach += r
        for s in range(reach, r - 1, -1):
            if counts[s - r]:
                counts[s] += counts[s - r]
    # E[T] = total / 2; compare deviations in doubled units (all integers), exactly.
    dev = abs(2 * observed - total)
    hits = sum(c for s, c in enumerate(counts) if c and abs(2 * s - total) >= dev)
    return min(1.0, hits / 2 ** len(doubled))


def signed_rank(
    before: Sequence[float], after: Sequence[float], *, test: str = "wilcoxon-exact", zeros: str = "wilcox"
) -> SignedRank:
    """Paired two-sided Wilcoxon signed-rank test on after - before."""
    if test not in PAIRED_TESTS:
        raise ValueError(f"unknown paired test {test!r}")
    if zeros not in ZERO_METHODS:
        raise ValueError(f"unknown zero method {zeros!r}")
    diffs = [a - b for b, a in zip(before, after, strict=True)]
    n_zero = sum(1 for d in diffs if d == 0)
    if zeros == "wilcox":
        kept = [d for d in diffs if d != 0]
        ranks = _midranks([abs(d) for d in kept])
    else:
        all_ranks = _midranks([abs(d) for d in diffs])
        kept = [d for d in diffs if d != 0]
        ranks = [r for r, d in zip(all_ranks, diffs, strict=True) if d != 0]
    n = len(kept)
    ties = len({abs(d) for d in kept}) != n
    base = f"Wilcoxon signed-rank, two-sided, {ZERO_METHODS[zeros]}"
    if n == 0:
        return SignedRank(
            len(diffs),
            n_zero,
            0,
            None,
            None,
            None,
            None,
            base + "; not computed: no non-zero differences",
            False,
            False,
        )
    w_plus = sum(r for r, d in zip(ranks, kept, strict=True) if d > 0)
    w_minus = sum(ranks) - w_plus
    exact = test == "wilcoxon-exact" and n <= EXACT_MAX_N
    if exact:
        doubled = [round(2 * r) for r in ranks]  # midranks are multiples of 1/2
        p = _exact_two_sided(doubled, round(2 * w_plus))
        how = "exact conditional distribution of the observed ranks" + (" (with tied ranks)" if ties else "")
    else:
        p = _normal_p(ranks, w_plus, n_zero if zeros == "pratt" else 0)
        why = (
            ""
            if test == "wilcoxon-normal"
            else f", because there are more than {EXACT_MAX_N} non-zero differences"
        )
        how = "normal approximation with tie-corrected variance, no continuity correction" + why
    return SignedRank(
        len(diffs), n_zero, n, w_plus, w_minus, min(w_plus, w_minus), p, f"{base}; {how}", exact, ties
    )


def _normal_p(ranks: list[float], w_plus: float, n_zero: int) -> float:
    """Two-sided p from the normal approximation (SciPy's ``approx``, correction=False)."""
    from scipy.stats import norm

    n = len(ranks) + n_zero
    mean = n * (n + 1) / 4 - n_zero * (n_zero + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - n_zero * (n_zero + 1) * (2 * n_zero + 1) / 24
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    var -= sum(t**3 - t for t in counts.values()) / 48
    if var <= 0:
        return 1.0
    z = (w_plus - mean) / math.sqrt(var)
    return float(min(1.0, 2 * norm.sf(abs(z))))


class _KruskalNote(TypedDict, total=False):
    note: str
    """Why H was not computed (fewer than two groups with values, all values identical)."""


class Kruskal(_KruskalNote):
    """A Kruskal–Wallis H test across groups (`kruskal`)."""

    groups: dict[str, int]
    """Each group with values and how many."""
    H: float | None
    p: float | None
    p_text: str
    method: str


def kruskal(groups: dict[str, list[float]]) -> Kruskal:
    """Kruskal–Wallis H across groups (tie-corrected, as SciPy computes it)."""
    from scipy import stats

    used = {k: v for k, v in groups.items() if v}
    out: Kruskal = {
        "groups": {k: len(v) for k, v in used.items()},
        "H": None,
        "p": None,
        "p_text": format_p(None),
        "method": "Kruskal–Wallis H test (tie-corrected)",
    }
    if len(used) < 2:
        out["note"] = "not computed: fewer than two groups with values"
        return out
    values = [x for v in used.values() for x in v]
    if len(set(values)) == 1:
        out["note"] = "not computed: all values identical"
        return out
    res = stats.kruskal(*used.values())
    out["H"], out["p"] = float(res.statistic), float(res.pvalue)
    out["p_text"] = format_p(out["p"])
    return out
