"""The trial engine's pure parts: reading a format-2 file, and "what is due now" for a ward.

- Reading: `engine.model.parse` of engine/mexcovid.toml (schema, references,
  expressions) against format 1's `protocol.parse` of the format-1 MEXCOVID,
  the same trial in the reader it replaces.
- Schedule: the next dose and missing doses of 500 MEXCOVID participants
  (enrollment days and doses given varied) with `engine.due.next_and_missing`
  (what `workflow.status` now asks) against the pre-engine
  `status.dose_schedule` formula it replaced (frozen in
  tests/unit/format1_schedule.py, the tests' oracle) on the same inputs;
  with the slots `engine.due` remembers per (version, anchors) and without.

Alternated in one loop (bench/measure.py); wall and CPU medians, load named.

    python bench/bench_engine.py [--quick]      # or: python bench/run.py --only engine
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from measure import alternate, row


def run(quick: bool = False) -> list[dict]:
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
    from format1_schedule import dose_schedule  # the pre-engine formula (the baseline)

    from wardcrf import protocol
    from wardcrf.engine import due, model
    from wardcrf.engine.schedule import Given

    v2 = model.shipped_source("mexcovid.toml")
    v1 = protocol.default_source()
    reading = alternate(
        lambda i: model.parse(v2, "mexcovid.toml"), lambda i: protocol.parse(v1, "mexcovid.toml"), 10 if quick else 30
    )

    v1 = protocol.default_protocol()
    m = due.model_for(v1)
    sched = v1.schedule
    at = datetime(2020, 3, 20, 4, 0, tzinfo=UTC)
    ward = [(date(2020, 3, 10) + timedelta(days=i % 12), i % 6) for i in range(500)]

    starts = {n: [Given(at - timedelta(days=d)) for d in range(n)] for n in range(6)}

    def ours(_: int) -> None:
        for enrolled, n in ward:
            due.next_and_missing(m, {"enrollment": enrolled}, starts[n], [], at)

    def ours_cold(_: int) -> None:
        due._PLANS.clear()  # a first pass: each of the 12 enrollment days expanded once, then shared
        ours(0)

    def base(_: int) -> None:
        for enrolled, n in ward:
            dose_schedule(SimpleNamespace(enrolled_on=enrolled.isoformat()), n, [], sched, at)

    ward_pair = alternate(ours, base, 5 if quick else 15)
    cold_pair = alternate(ours_cold, base, 5 if quick else 15)
    return [
        row("read MEXCOVID, format 2", reading, unit="ms", scale=1000, baseline_name="format 1 parse"),
        row("next dose, 500 participants", ward_pair, unit="ms", scale=1000, baseline_name="pre-engine dose_schedule"),
        row(
            "next dose, 500 participants, remembered slots cleared before each pass",
            cold_pair,
            unit="ms",
            scale=1000,
            baseline_name="pre-engine dose_schedule",
        ),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['name']}: {r['value']:.2f} {r['unit']} (baseline {r['baseline']:.2f}; wall ratio {r['ratio']:.2f};"
            f" CPU {r['cpu']:.2f} vs {r['cpu_baseline']:.2f}; load {r['load'][0]:.2f}-{r['load'][1]:.2f})"
        )
