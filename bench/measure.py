"""How every benchmark here measures: ours and its baseline in turn, CPU and wall, load named.

The build machine has two cores shared with other people's test suites. A
figure measured in one stretch and its baseline measured in another compare
two different machines; so every pair is run *alternately* in one loop
(ours, baseline, ours, baseline, ...) and the medians of each are quoted.
Both clocks are kept:

- wall (`time.perf_counter`): what a person waits for; moved by neighbours;
- CPU (`time.process_time` of this process plus the user and system time of
  the child processes it waited for, `RUSAGE_CHILDREN`): the work done,
  which neighbours move far less. Threads overlapping on two cores show as
  CPU above wall.

`loadavg()` reads /proc/loadavg; `run.py` prints it before and after each
suite and every row carries the load at its start and end, so a figure is
never quoted without the load it was measured under.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def loadavg() -> float:
    """The 1-minute load average (runnable processes, over 2 cores here)."""
    try:
        with open("/proc/loadavg") as fh:
            return float(fh.read().split()[0])
    except OSError:
        return float("nan")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float


def once(fn: Callable[[], Any]) -> tuple[Sample, Any]:
    """Run `fn` once: (wall and CPU seconds, its result)."""
    ch, c, t = _children_cpu(), time.process_time(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    cpu = time.process_time() - c + (_children_cpu() - ch)
    return Sample(wall, cpu), out


@dataclass(frozen=True)
class Pair:
    """Medians of ours and of the baseline, measured alternately, and the load around them."""

    ours: Sample
    base: Sample
    runs: int
    load: tuple[float, float]

    @property
    def wall_ratio(self) -> float:
        return self.ours.wall / self.base.wall if self.base.wall else float("nan")

    @property
    def cpu_ratio(self) -> float:
        return self.ours.cpu / self.base.cpu if self.base.cpu else float("nan")


def median(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.wall for s in samples), statistics.median(s.cpu for s in samples))


def alternate(
    ours: Callable[[int], Any],
    base: Callable[[int], Any],
    repeat: int,
    *,
    per: float = 1.0,
) -> Pair:
    """`ours(i)` and `base(i)` in turn, `repeat` times each; medians divided by `per`.

    `per` turns a batch's time into a unit's (the events in it, say). The
    order flips every round (A B, B A, ...) so neither always runs on a warm
    cache left by the other.
    """
    load0 = loadavg()
    a: list[Sample] = []
    b: list[Sample] = []
    for i in range(repeat):
        pair = ((ours, a), (base, b)) if i % 2 == 0 else ((base, b), (ours, a))
        for fn, acc in pair:
            sample, _ = once(lambda fn=fn, i=i: fn(i))
            acc.append(Sample(sample.wall / per, sample.cpu / per))
    return Pair(median(a), median(b), repeat, (load0, loadavg()))


def row(
    name: str,
    pair: Pair,
    *,
    unit: str,
    scale: float = 1.0,
    target: str = "",
    baseline_name: str = "",
) -> dict[str, Any]:
    """A result row: wall and CPU of ours and of the baseline (times `scale`, in `unit`), ratios, load."""
    return {
        "name": name,
        "value": pair.ours.wall * scale,
        "baseline": pair.base.wall * scale,
        "ratio": pair.wall_ratio,
        "cpu": pair.ours.cpu * scale,
        "cpu_baseline": pair.base.cpu * scale,
        "cpu_ratio": pair.cpu_ratio,
        "unit": unit,
        "target": target,
        "baseline_name": baseline_name,
        "runs": pair.runs,
        "load": list(pair.load),
    }


def single_row(
    name: str, sample: Sample, *, unit: str, scale: float = 1.0, target: str = "", note: str = ""
) -> dict[str, Any]:
    """A row with no baseline (set-up costs, sizes): printed with '—' for the baseline and ratio."""
    return {
        "name": name,
        "value": sample.wall * scale,
        "baseline": float("nan"),
        "ratio": float("nan"),
        "cpu": sample.cpu * scale,
        "cpu_baseline": float("nan"),
        "cpu_ratio": float("nan"),
        "unit": unit,
        "target": target,
        "baseline_name": note,
        "runs": 1,
        "load": [loadavg(), loadavg()],
    }


def seconds_row(name: str, seconds: float, baseline: float, *, target: str) -> dict[str, Any]:
    """A row of one wall-clock figure against its baseline's, measured once each in the same run.

    Seconds to the millisecond and the ratio (ours over the baseline) to two
    places: the shape of the cold-chain import rows (bench_coldchain) and of the
    hub's re-derivation of the same file (bench_hub_data), which quote each
    other's figures and so must round them alike.
    """
    return {
        "name": name,
        "value": round(seconds, 3),
        "unit": "s",
        "baseline": round(baseline, 3),
        "ratio": round(seconds / baseline, 2),
        "target": target,
    }


def two_trees(
    old: str, new: str, rounds: int, argv: Callable[[str, int], list[str]]
) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
    """One measured process per side per round, two code trees alternated: OLD, NEW, NEW, OLD, ...

    `old` and `new` are each tree's venv python (each imports `wardcrf` from its own tree; run from
    `/` so neither picks up the other's source). `argv(python, round)` is the command of one measured
    run, which prints its result as JSON on its last line. Returns each side's results, in round
    order, and the 1-minute load before the first run and after each. Every `*_ab.py` and `compare`
    bench runs its two trees through this, so the order that keeps neither side on a warmer machine
    is written once.
    """
    got: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        sides = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
        for side, python in sides:
            res = subprocess.run(argv(python, r), check=True, capture_output=True, text=True, cwd="/")
            got[side].append(json.loads(res.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
            print(side, r, got[side][-1], f"load {loads[-1]:.1f}", file=sys.stderr, flush=True)
    return got, loads
