"""Export benchmarks: a site with 10,000 participants (1,000 with --quick) exported four ways.

The site is generated quickly through bulk appends (`records.submit`, the
real event and projection path) in one transaction per 1,000 participants:
consent, screening, demographics, five doses with vitals before and after,
labs and CT score at baseline and after treatment (25 records each).

Baseline, measured in the same run: the floor cost of getting the same rows
out — stdlib `sqlite3` reading `records` from the plain copy and writing one
CSV per form with the `csv` module (no provenance joins, no units, no audit
trail). For the plain copy the baseline is stdlib `sqlite3`'s backup API on
that same plain file. Ratios are wardcrf time / baseline time.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from wardcrf import records
from wardcrf.exports.csv_export import export_csv
from wardcrf.exports.dataset import Dataset
from wardcrf.exports.odm import export_odm
from wardcrf.exports.plaintext import export_sqlite
from wardcrf.exports.progress import CountingProgress
from wardcrf.exports.sdtm import export_sdtm
from wardcrf.site import Site

PASSWORD = "bench-password-1"


def _u(v: float, unit: str) -> dict:
    return {"value": v, "unit": unit}


def generate(session, n: int, batch: int = 1000) -> int:  # type: ignore[no-untyped-def]
    """Append `n` participants' records; returns the number of records."""
    import wardcrf.workflow  # noqa: F401  (the workflow's projections run as on a ward)

    count = 0
    for start in range(0, n, batch):
        with session.store.transaction():
            for i in range(start, min(n, start + batch)):
                subj = f"participant:BENCH-{i + 1:05d}"
                day = 1 + i % 28
                sub = lambda form, data, subj=subj: records.submit(session, form, data, subject=subj)  # noqa: E731
                sub(
                    "consent",
                    {
                        "consenter": "participant",
                        "form_version": "1.0",
                        "time": f"2020-03-{day:02d}T10:00:00+08:00",
                        "witness_1": "a",
                        "witness_2": "b",
                        "photos": ["sha256:" + f"{i:064x}"],
                    },
                )
                sub(
                    "screening",
                    {
                        "date": f"2020-03-{day:02d}",
                        "dob": "1963-01-01",
                        "sex": "MF"[i % 2],
                        "pcr_confirmed": True,
                        "severity": "severe",
                        "age": _u(57, "years"),
                        "eligible": True,
                    },
                )
                sub(
                    "demographics",
                    {
                        "symptom_onset": "2020-02-01",
                        "admission": "2020-03-01",
                        "onset_to_admission": _u(29, "days"),
                    },
                )
                for lab_tp, lym in (("baseline", 1.2), ("post_treatment", 1.6)):
                    sub(
                        "labs",
                        {
                            "timepoint": lab_tp,
                            "date": f"2020-03-{day:02d}",
                            "lym": _u(lym, "10^9/L"),
                            "crp": _u(20.0, "mg/L"),
                            "il6": _u(10.0, "pg/mL"),
                            "ldh": _u(300, "U/L"),
                        },
                    )
                    sub("ct_score", {"timepoint": lab_tp, "date": f"2020-03-{day:02d}", "total": 40 + i % 20})
                for d in range(1, 6):
                    t = f"2020-04-{d:02d}T09:00:00+08:00"
                    sub(
                        "vitals",
                        {
                            "timepoint": "pre_dose",
                            "dose": d,
                            "time": t,
                            "temp": _u(37.1, "C"),
                            "pulse": _u(80, "beats/min"),
                            "resp": _u(20, "breaths/min"),
                            "oxysat": _u(94, "%"),
                        },
                    )
                    sub(
                        "dose",
                        {
                            "kit_id": f"K{i}-{d}",
                            "lot": "LOT-A1",
                            "particles": _u(2.0e8, "particles"),
                            "volume": _u(6.0, "mL"),
                            "start": t,
                            "end": t.replace("09:00", "09:30"),
                            "dose_number": d,
                            "day": d,
                        },
                    )
                    sub(
                        "vitals",
                        {
                            "timepoint": "post_dose",
                            "dose": d,
                            "time": t.replace("09:00", "09:45"),
                            "temp": _u(37.2, "C"),
                            "pulse": _u(82, "beats/min"),
                            "resp": _u(19, "breaths/min"),
                            "oxysat": _u(95, "%"),
                        },
                    )
                count += 24
    return count


def _baseline_csv(plain: Path, out: Path) -> float:
    t = time.perf_counter()
    out.mkdir()
    con = sqlite3.connect(plain)
    writers: dict[str, tuple] = {}
    for form, subject, data in con.execute("SELECT form, subject, data FROM records ORDER BY rowid"):
        values = json.loads(data)
        if form not in writers:
            fh = (out / f"{form}.csv").open("w", newline="")
            writers[form] = (fh, csv.writer(fh))
        writers[form][1].writerow(
            [subject, *(v.get("value") if isinstance(v, dict) else v for v in values.values())]
        )
    for fh, _ in writers.values():
        fh.close()
    con.close()
    return time.perf_counter() - t


def run(quick: bool = False) -> list[dict]:
    n = 1000 if quick else 10_000
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        init = Site.init(base / "site", site="BENCH", device_name="bench", admin="admin", password=PASSWORD)
        s = init.site.unlock("admin", PASSWORD)
        try:
            t = time.perf_counter()
            n_records = generate(s, n)
            gen = time.perf_counter() - t
            ds = Dataset(s.store)
            timings: dict[str, float] = {}
            for name, fn, target in (
                ("csv", lambda p: export_csv(ds, base / "csv", p), base / "csv"),
                ("odm", lambda p: export_odm(ds, base / "trial.xml", p), base / "trial.xml"),
                ("sdtm", lambda p: export_sdtm(ds, base / "sdtm", p), base / "sdtm"),
                (
                    "sqlite",
                    lambda p: export_sqlite(s, base / "plain.db", confirmed=True, progress=p),
                    base / "plain.db",
                ),
            ):
                progress = CountingProgress()
                t = time.perf_counter()
                fn(progress)
                timings[name] = time.perf_counter() - t
                assert progress.tasks and progress.done > 0, f"{name}: no progress reported"
                del target
            baseline = _baseline_csv(base / "plain.db", base / "baseline")
            t = time.perf_counter()
            src = sqlite3.connect(base / "plain.db")
            dst = sqlite3.connect(base / "copy.db")
            src.backup(dst)
            src.close()
            dst.close()
            copy = time.perf_counter() - t
            odm_mb = (base / "trial.xml").stat().st_size / 1e6
        finally:
            s.close()
    rows.append(
        {
            "name": f"generate {n:,} participants ({n_records:,} records)",
            "value": gen,
            "unit": "s",
            "baseline": gen,
            "ratio": 1.0,
            "target": "setup",
        }
    )
    for name, target in (("csv", "< 60 s"), ("odm", "< 120 s"), ("sdtm", "< 60 s")):
        rows.append(
            {
                "name": f"export {name}, {n:,} participants",
                "value": timings[name],
                "unit": "s",
                "baseline": baseline,
                "ratio": timings[name] / baseline,
                "target": target,
            }
        )
    rows.append(
        {
            "name": f"export sqlite (plain copy), {n:,} participants",
            "value": timings["sqlite"],
            "unit": "s",
            "baseline": copy,
            "ratio": timings["sqlite"] / copy,
            "target": "< 60 s",
        }
    )
    rows.append(
        {
            "name": "records exported per second (csv)",
            "value": n_records / timings["csv"],
            "unit": "rec/s",
            "baseline": n_records / baseline,
            "ratio": timings["csv"] / baseline,
            "target": "> 5,000",
        }
    )
    rows.append(
        {
            "name": "ODM file size",
            "value": odm_mb,
            "unit": "MB",
            "baseline": odm_mb,
            "ratio": 1.0,
            "target": "info",
        }
    )
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
