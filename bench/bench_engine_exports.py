"""Exports driven by the engine's model (issue 17) against the format-1 exports, on the demo site.

    python bench/run.py --only engine_exports

The demo site (`wardcrf demo`: 7 MEXCOVID participants) is exported by the
real functions, each pair alternated in one loop (`measure.alternate`):

* SDTM package (`package`, every dataset built, checked and conformed, not
  written) with `model=` the shipped format-2 MEXCOVID (TS/TA/TE/TV/TI from
  its visits and criteria, DM arms from its arms and the allocations) vs
  without (format 1's derived design): the same work otherwise;
* ODM file (`export_odm`) with its StudyEventDefs per visit vs without;
* the endpoint statistics for a 4-arm, 400-participant time-to-event and
  mortality endpoint (Kaplan–Meier, log-rank, Wilson/Newcombe) vs lifelines'
  `multivariate_logrank_test` + `KaplanMeierFitter` on the same data (an
  independent implementation doing the same sums).
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import alternate, row

PASSWORD = "bench-password-1"


def run(quick: bool = False) -> list[dict]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf.engine import model
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.odm import export_odm
    from wardcrf.exports.sdtm import package
    from wardcrf.reports import endpoints
    from wardcrf.site import Site
    from wardcrf.workflow import demo

    repeat = 5 if quick else 11
    rows: list[dict] = []
    mexcovid = model.shipped("mexcovid.toml")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        demo.seed(base / "demo", PASSWORD)
        s = Site.open(base / "demo").unlock("coordinator", PASSWORD)
        try:
            ds = Dataset.for_session(s)
            package(ds)  # warm both paths once (protocol parse caches)
            package(ds, model=mexcovid)
            pair = alternate(lambda _: package(ds, model=mexcovid), lambda _: package(ds), repeat)
            rows.append(
                row(
                    "SDTM package of the demo site: engine design vs format-1 design",
                    pair,
                    unit="ms",
                    scale=1000,
                    baseline_name="package(ds) without model",
                )
            )

            def odm(with_model: bool) -> None:
                out = base / "trial.xml"
                if out.exists():
                    out.unlink()
                export_odm(ds, out, model=mexcovid if with_model else None)

            pair = alternate(lambda _: odm(True), lambda _: odm(False), repeat)
            rows.append(
                row(
                    "ODM export of the demo site: with visit StudyEventDefs vs without",
                    pair,
                    unit="ms",
                    scale=1000,
                    baseline_name="export_odm without model",
                )
            )
        finally:
            s.close()
            shutil.rmtree(base / "demo", ignore_errors=True)

    rng = random.Random(17)
    arms = ["ZMAPP", "RDV", "MAB114", "REGNEB3"]
    outs = [
        endpoints.Outcome(a, time=float(rng.randint(1, 40)), event=rng.random() < 0.4)
        for a in arms
        for _ in range(100)
    ]
    tte = {"code": "t", "kind": "time_to_event", "horizon": "28d", "reference": "ZMAPP"}
    mort = {"code": "m", "kind": "mortality", "day": 28, "reference": "ZMAPP"}

    def ours(_: int) -> None:
        endpoints.analyse(tte, arms, outs, endpoints.Settings())
        endpoints.analyse(mort, arms, outs, endpoints.Settings())

    def lifelines_same(_: int) -> None:
        import pandas as pd
        from lifelines import KaplanMeierFitter
        from lifelines.statistics import logrank_test, multivariate_logrank_test

        frame = pd.DataFrame(
            [(min(o.time or 0, 28.0), o.event and (o.time or 0) <= 28, o.arm) for o in outs],
            columns=["t", "e", "g"],
        )
        multivariate_logrank_test(frame["t"], frame["g"], frame["e"])
        ref = frame[frame["g"] == "ZMAPP"]
        for a in arms:
            part = frame[frame["g"] == a]
            KaplanMeierFitter().fit(part["t"], part["e"])
            KaplanMeierFitter().fit(part["t"], part["e"])  # the mortality endpoint's curve
            if a != "ZMAPP":
                logrank_test(part["t"], ref["t"], part["e"], ref["e"])

    ours(0)
    lifelines_same(0)
    pair = alternate(ours, lifelines_same, repeat)
    rows.append(
        row(
            "endpoints: 4 arms x 100, time to event + mortality by day 28 vs lifelines",
            pair,
            unit="ms",
            scale=1000,
            baseline_name="lifelines KM + log-rank (overall and per pair)",
        )
    )
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
