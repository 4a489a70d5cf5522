"""Dose-wizard benchmarks: the review's dry run, the whole-visit save, one form save.

What the ward waits for when it presses ctrl+s in the dose wizard is
`dose_visit.record_dose_visit`: four records (pre-dose vitals, dose with its
custody gate, post-dose vitals, post-dose check), every rule checked twice
(before and under the write lock), in one transaction. The review step runs
the same with a rollback (dry run). Both are measured through `Ward.call`
as the screens call them, beside a same-run baseline of stdlib sqlite3
inserting the same four JSON records in one transaction (WAL,
synchronous=FULL). A single vitals form through `workflow.submit` (the
generated form's save) is measured beside one plain insert.

    python bench/bench_dose.py [--quick]
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

PASSWORD = "bench-password-1"
NOW = "2020-03-21T04:00:00Z"  # 12:00 in the ward, after every dose below
ENROLLED = "2020-03-15"
TARGET_MS = 50.0  # the form-save target, per record


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


def _visit(pid_day: datetime, kit: str) -> dict:
    start = pid_day.replace(hour=8, minute=50)
    iso = lambda m: (start + timedelta(minutes=m)).isoformat()  # noqa: E731
    return {
        "pre_vitals": {"time": iso(-10), "temp": "36.8", "pulse": "88", "resp": "20", "oxysat": "95"},
        "dose": {
            "kit_id": kit,
            "lot": "LOT-B",
            "particles": "2.0e8",
            "volume": "6",
            "start": iso(0),
            "end": iso(30),
        },
        "post_vitals": {"time": iso(40), "temp": "36.9", "pulse": "86", "resp": "19", "oxysat": "96"},
        "post_dose_check": {"time": iso(45), "events": ["none"]},
    }


def _site(root: Path, participants: int) -> tuple[Path, list[str]]:
    """Participants enrolled on 2020-03-15 with a negative skin test, and a kit ready for each dose."""
    from PIL import Image

    from wardcrf import users, workflow
    from wardcrf.coldchain import scenario, services
    from wardcrf.site import Site

    data = root / "site"
    init = Site.init(data, site="WUH01", device_name="bench", admin="admin", password=PASSWORD)
    site = init.site
    admin = site.unlock("admin", PASSWORD)
    for name, role in (
        ("clinician", "clinician"),
        ("clinician2", "clinician"),
        ("investigator", "investigator"),
        ("pharmacist", "pharmacist"),
        ("dsmg", "dsmg"),
    ):
        users.add_user(admin, name, name.title(), role, PASSWORD)
    admin.close()
    page = root / "page.jpg"
    Image.new("RGB", (200, 150), "white").save(page, "JPEG")
    clin = site.unlock("clinician", PASSWORD)
    dsmg = site.unlock("dsmg", PASSWORD)
    ph = site.unlock("pharmacist", PASSWORD)
    pids = []
    try:
        for i in range(participants):
            ev = workflow.submit(
                clin,
                "consent",
                {
                    "consenter": "participant",
                    "form_version": "1.0",
                    "time": "2020-03-10T10:00:00+08:00",
                    "witness_1": "investigator",
                    "witness_2": "clinician2",
                    "photos": f"@{page}",
                },
                password_for=lambda _u: PASSWORD,
            )
            pid = ev.subject.removeprefix("participant:")
            workflow.submit(
                clin,
                "screening",
                {
                    "date": "2020-03-11",
                    "dob": "1965-05-01",
                    "sex": "M",
                    "pcr_confirmed": "yes",
                    "severity": "severe",
                },
                participant=pid,
            )
            workflow.submit(clin, "enrollment", {"date": ENROLLED}, participant=pid)
            workflow.submit(
                clin,
                "skin_test",
                {"time": f"{ENROLLED}T15:00:00+08:00", "result": "negative"},
                participant=pid,
            )
            if i == 0:
                workflow.submit(
                    dsmg,
                    "dsmg_decision",
                    {"decision": "continue", "rationale": "sentinel ok"},
                    participant=pid,
                )
            pids.append(pid)
        services.add_unit(ph, scenario.UNIT, name="freezer", location="ward")
        kits, times = [], []
        for n in range(1, 6):
            for pid in pids:
                kits.append(f"KIT-{pid}-{n}")
                times.append(_local(f"2020-03-{15 + n:02d}T08:50"))
        signers = {u: PASSWORD for u in ("clinician", "clinician2", "investigator")}
        scenario.ready_kits(
            clin,
            signers,
            lot="LOT-B",
            kits=kits,
            dose_times=times,
            clinician="clinician2",
            workdir=root,
            bedside=clin,
            received_at=_local("2020-03-14T10:00"),
        )
        clin.store.checkpoint()
    finally:
        for s in (clin, dsmg, ph):
            s.close()
    return data, pids


def _baseline(root: Path, records: list[dict], n: int) -> tuple[float, float]:
    """Median ms of 4 committed inserts in one transaction, and of one committed insert."""
    conn = sqlite3.connect(root / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, form TEXT, data TEXT)")
    four, one = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for rec in records:
            conn.execute("INSERT INTO r (form, data) VALUES (?, ?)", ("x", json.dumps(rec)))
        conn.execute("COMMIT")
        four.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        conn.execute("INSERT INTO r (form, data) VALUES (?, ?)", ("vitals", json.dumps(records[0])))
        one.append(time.perf_counter() - t0)
    conn.close()
    return statistics.median(four) * 1000, statistics.median(one) * 1000


def run(quick: bool = False) -> list[dict]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf.screens.ward import Ward

    from wardcrf import workflow
    from wardcrf.site import Site
    from wardcrf.workflow import dose_visit

    participants = 2 if quick else 4
    before = os.environ.get("WARDCRF_FAKE_NOW")
    os.environ["WARDCRF_FAKE_NOW"] = NOW
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            data, pids = _site(root, participants)
            site = Site.open(data)
            ward = Ward(site, site.unlock("clinician", PASSWORD))
            dry, save, form = [], [], []
            try:
                for n in range(1, 6):
                    for pid in pids:
                        values = _visit(_local(f"2020-03-{15 + n:02d}T00:00"), f"KIT-{pid}-{n}")
                        t0 = time.perf_counter()
                        ward.call(dose_visit.record_dose_visit, pid, dry_run=True, **values)
                        dry.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        ward.call(dose_visit.record_dose_visit, pid, **values)
                        save.append(time.perf_counter() - t0)
                for i in range(10 if quick else 30):
                    t0 = time.perf_counter()
                    ward.call(
                        workflow.submit,
                        "vitals",
                        {"time": "11:00", "temp": "36.7", "pulse": "80", "resp": "18", "oxysat": "96"},
                        participant=pids[i % len(pids)],
                    )
                    form.append(time.perf_counter() - t0)
            finally:
                ward.close()
            sample = _visit(_local("2020-03-16T00:00"), "KIT")
            base4, base1 = _baseline(root, list(sample.values()), len(save))
    finally:
        if before is None:
            os.environ.pop("WARDCRF_FAKE_NOW", None)
        else:
            os.environ["WARDCRF_FAKE_NOW"] = before
    dry_ms, save_ms, form_ms = (statistics.median(x) * 1000 for x in (dry, save, form))
    return [
        {
            "name": f"dose wizard save: 4 records, one transaction (n={len(save)})",
            "value": save_ms,
            "unit": "ms",
            "baseline": base4,
            "ratio": save_ms / base4,
            "target": f"≤ {4 * TARGET_MS:.0f} ms (4 × form save)",
        },
        {
            "name": f"dose wizard review: dry run, rolled back (n={len(dry)})",
            "value": dry_ms,
            "unit": "ms",
            "baseline": base4,
            "ratio": dry_ms / base4,
            "target": "",
        },
        {
            "name": f"form save: vitals via workflow.submit (n={len(form)})",
            "value": form_ms,
            "unit": "ms",
            "baseline": base1,
            "ratio": form_ms / base1,
            "target": f"≤ {TARGET_MS:.0f} ms",
        },
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['name']:58s} {r['value']:8.2f} {r['unit']:2s} baseline {r['baseline']:8.2f}"
            f"  ratio {r['ratio']:6.2f}  target {r['target']}"
        )
