"""The trial engine's pure parts: reading a format-2 file, and "what is due now" for a ward.

- Reading: `engine.model.parse` of engine/mexcovid.toml (schema, references,
  expressions) against format 1's `protocol.parse` of the format-1 MEXCOVID,
  the same trial in the reader it replaces.
- Schedule: the next dose and missing doses of 500 MEXCOVID participants
  (enrollment days and doses given varied) with the engine (`plan`, `states`,
  `dose_view`) against today's `workflow.status.dose_schedule` on the same
  inputs: the cost of the general schedule over the MEXCOVID-only one it is to
  replace.

Alternated in one loop (bench/measure.py); wall and CPU medians, load named.

    python bench/bench_engine.py [--quick]      # or: python bench/run.py --only engine
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from measure import alternate, row


def run(quick: bool = False) -> list[dict]:
    from wardcrf import protocol
    from wardcrf.engine import model, schedule
    from wardcrf.workflow import status

    v2 = model.shipped_source("mexcovid.toml")
    v1 = protocol.default_source()
    reading = alternate(
        lambda i: model.parse(v2, "mexcovid.toml"), lambda i: protocol.parse(v1, "mexcovid.toml"), 10 if quick else 30
    )

    m = model.shipped("mexcovid.toml")
    sched = protocol.default_protocol().schedule
    at = datetime(2020, 3, 20, 4, 0, tzinfo=UTC)
    ward = [(date(2020, 3, 10) + timedelta(days=i % 12), i % 6) for i in range(500)]

    def ours(_: int) -> None:
        for enrolled, n in ward:
            [(adm, slots)] = schedule.plan(m, {"enrollment": enrolled})["exo_inhalation"]
            rows = schedule.states(adm, slots, [schedule.Given(s.opens) for s in slots[:n]], at)
            schedule.dose_view(rows, at, "Asia/Shanghai")

    def base(_: int) -> None:
        for enrolled, n in ward:
            status.dose_schedule(SimpleNamespace(enrolled_on=enrolled.isoformat()), n, [], sched, at)  # type: ignore[arg-type]

    ward_pair = alternate(ours, base, 5 if quick else 15)
    return [
        row("read MEXCOVID, format 2", reading, unit="ms", scale=1000, baseline_name="format 1 parse"),
        row("next dose, 500 participants", ward_pair, unit="ms", scale=1000, baseline_name="status.dose_schedule"),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['name']}: {r['value']:.2f} {r['unit']} (baseline {r['baseline']:.2f}; wall ratio {r['ratio']:.2f};"
            f" CPU {r['cpu']:.2f} vs {r['cpu_baseline']:.2f}; load {r['load'][0]:.2f}-{r['load'][1]:.2f})"
        )
