"""Excursions, unmonitored gaps and mean kinetic temperature over a reading series.

Pure functions over parallel sequences of UTC epoch seconds and °C (no
database, no clock), so they are tested directly against the worked values
in STANDARDS.md and reused for logger imports, custody spans and reports.

Definitions (documented in docs/coldchain.md):

- An *excursion* is a maximal run of consecutive readings outside the allowed
  range [low, high]. It starts at the first reading outside and ends at the
  first reading back inside (the product was out of range at least until
  then); when the series ends outside, it ends at the last reading and is
  *open*. A single reading outside therefore lasts one interval.
- A *gap* is a step between consecutive readings longer than twice the
  logging interval: that span is *unmonitored*.
- *Mean kinetic temperature* (MKT) with ΔH/R = 10,000 K. Readings are
  weighted by the time they represent (half the step to each neighbour, the
  ends a full interval), so evenly spaced readings weigh equally and reproduce
  the textbook formula; across a gap a reading only represents half an
  interval on that side, so a gap neither inflates nor dilutes the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

DELTA_H_OVER_R = 10000.0  # K
KELVIN = 273.15


@dataclass(frozen=True)
class Excursion:
    start: int
    end: int
    minimum: float
    maximum: float
    readings: int
    open: bool = False

    @property
    def duration_s(self) -> int:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        return d


@dataclass(frozen=True)
class Gap:
    start: int
    end: int

    @property
    def duration_s(self) -> int:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "duration_s": self.duration_s}


def mkt(temps_c: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Mean kinetic temperature in °C: ΔH/R / −ln(Σ wᵢ e^(−ΔH/(R·Tᵢ)) / Σ wᵢ) − 273.15."""
    if not temps_c:
        raise ValueError("mean kinetic temperature needs at least one reading")
    exp = math.exp
    k = DELTA_H_OVER_R
    if weights is None:
        total = math.fsum(exp(-k / (t + KELVIN)) for t in temps_c)
        wsum = float(len(temps_c))
    else:
        if len(weights) != len(temps_c):
            raise ValueError("one weight per reading")
        total = math.fsum(w * exp(-k / (t + KELVIN)) for t, w in zip(temps_c, weights, strict=True))
        wsum = math.fsum(weights)
        if wsum <= 0:
            raise ValueError("weights must sum to more than zero")
    return k / -math.log(total / wsum) - KELVIN


def time_weights(times: Sequence[int], interval: int) -> list[float]:
    """The seconds each reading represents (see module docstring)."""
    n = len(times)
    if n == 0:
        return []
    if n == 1 or interval <= 0:
        return [1.0] * n
    limit = 2 * interval
    half = interval / 2
    w = [0.0] * n
    w[0] += half
    w[-1] += half
    for i in range(n - 1):
        step = times[i + 1] - times[i]
        share = half if step > limit else step / 2
        w[i] += share
        w[i + 1] += share
    return w


def mkt_series(times: Sequence[int], temps_c: Sequence[float], interval: int) -> float:
    """Time-weighted MKT over a series."""
    return mkt(temps_c, time_weights(times, interval))


def excursions(
    times: Sequence[int], temps_c: Sequence[float], low: float | None, high: float | None
) -> list[Excursion]:
    """Maximal runs of readings outside [low, high] (either bound may be None: unbounded)."""
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    out: list[Excursion] = []
    n = len(times)
    i = 0
    while i < n:
        t = temps_c[i]
        if lo <= t <= hi:
            i += 1
            continue
        start = i
        mn = mx = t
        i += 1
        while i < n:
            t = temps_c[i]
            if lo <= t <= hi:
                break
            if t < mn:
                mn = t
            elif t > mx:
                mx = t
            i += 1
        is_open = i >= n
        end = times[n - 1] if is_open else times[i]
        out.append(Excursion(times[start], end, mn, mx, i - start, is_open))
    return out


def gaps(times: Sequence[int], interval: int) -> list[Gap]:
    """Steps longer than twice the logging interval: unmonitored spans."""
    if interval <= 0:
        return []
    limit = 2 * interval
    return [Gap(times[i], times[i + 1]) for i in range(len(times) - 1) if times[i + 1] - times[i] > limit]


@dataclass(frozen=True)
class Summary:
    readings: int
    first: int
    last: int
    interval_s: int
    minimum: float
    maximum: float
    mean: float
    mkt: float
    excursions: list[Excursion]
    gaps: list[Gap]

    def as_dict(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "first": self.first,
            "last": self.last,
            "interval_s": self.interval_s,
            "min": self.minimum,
            "max": self.maximum,
            "mean": round(self.mean, 3),
            "mkt": round(self.mkt, 3),
            "excursions": [e.as_dict() for e in self.excursions],
            "gaps": [g.as_dict() for g in self.gaps],
        }


def summarize(
    times: Sequence[int],
    temps_c: Sequence[float],
    interval: int,
    low: float | None,
    high: float | None,
) -> Summary:
    """Everything an import reports: range, mean, MKT, excursions and gaps."""
    if not times:
        raise ValueError("no readings to summarize")
    return Summary(
        readings=len(times),
        first=times[0],
        last=times[-1],
        interval_s=interval,
        minimum=min(temps_c),
        maximum=max(temps_c),
        mean=math.fsum(temps_c) / len(temps_c),
        mkt=mkt_series(times, temps_c, interval),
        excursions=excursions(times, temps_c, low, high),
        gaps=gaps(times, interval),
    )
