"""One kit's custody and `report safety` at a PostgreSQL hub: read where it is vs the hub copied whole, at N
and 10×N participants.

    python bench/bench_hub_items.py [--participants N] [--repeat R]     (or: python bench/run.py --only hub_items)

Two PostgreSQL hubs (on a throwaway server this bench starts and stops), each fed a ward's real bundles:
N participants (`generate.generate`: consent with its photographed page and three e-signatures,
screening, enrollment, labs, doses with vitals; 27 events each) and the pharmacy's cold chain of one lot
(`coldchain.scenario.ready_kits`: receipt, storage, freezer logger file with an excursion, handovers,
thaws); the second hub has 10×N participants and the same cold chain. At each, `coldchain custody KIT-1`'s
work after sign-in (the key derivation of a sign-in is the same at any size and left out):

- ours: `cli.common.in_place` (the database read for the kit's rows in one READ ONLY snapshot) and
  `coldchain.reports.custody_of`;
- baseline: `cli.common.whole_hub` (the hub's file and database copied into memory, `sync.hubview.build`,
  what the command did before) and the same `custody_of`.

Then `report safety`'s work after sign-in, a whole-hub report (every participant's exposure, adverse
events and deviations): `in_place` (the database queried beside the hub's file) against `whole_hub` (the
copy, what it did before), the same `safety.compute`; both must give the same report.

All eight (each read, ours and baseline, at each size) run in one loop, in rotating order, `repeat` times; medians of
wall and CPU (this process's; the server's work is not in CPU, so wall is quoted beside it). Both must
print the same chain. The figure to read is the growth: ours at 10×N over ours at N (≈ 1: the cost
follows the kit), against the baseline's (≈ 10: the cost follows the hub). `uptime`'s load is printed
before and after. Needs PostgreSQL's server binaries (Debian: apt-get install postgresql).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "unit"))  # the throwaway server

import pgserver  # noqa: E402
from generate import EVENTS_PER_PARTICIPANT, PASSWORD, WITNESSES, generate  # noqa: E402
from measure import Sample, loadavg, median, once  # noqa: E402

KIT = "KIT-1"


def _hub_with(root: Path, server: pgserver.Server, participants: int) -> Path:
    """A PostgreSQL hub fed one ward's bundles: `participants` participants and one lot's cold chain."""
    from wardcrf.sync import hub, pghub, registry

    from wardcrf import users
    from wardcrf.coldchain import scenario
    from wardcrf.site import Site

    w = Site.init(root / "ward", site="BENCH", device_name="lap1", admin="admin", password=PASSWORD).site
    hub_dir = root / "hub"
    dsn = server.new_database()
    h = pghub.attach(
        hub_dir, dsn, lambda: hub.init(hub_dir, admin="admin", password=PASSWORD), "admin", PASSWORD
    ).site
    ws, hs = w.unlock("admin", PASSWORD), h.unlock("admin", PASSWORD)
    try:
        registry.register_device(hs, registry.own_card(ws.store))
        registry.set_hub(ws, registry.own_card(hs.store))
        for name, role in (("clinician", "clinician"), (WITNESSES[1], "clinician"),
                           (WITNESSES[0], "investigator"), ("pharmacist", "pharmacist")):  # fmt: skip
            users.add_user(ws, name, name.title(), role, PASSWORD)
    finally:
        ws.close()
        hs.close()
    c = Site.open(w.data_dir).unlock("clinician", PASSWORD)
    try:
        generate(c, participants * EVENTS_PER_PARTICIPANT)
    finally:
        c.close()
    usb = root / "usb"
    usb.mkdir()
    files = _export(w, usb / "records")
    tz = ZoneInfo("Asia/Shanghai")
    doses = [datetime(2020, 3, 17, 9, 0, tzinfo=tz), datetime(2020, 3, 18, 9, 0, tzinfo=tz)]
    (root / "work").mkdir()
    ph = Site.open(w.data_dir).unlock("pharmacist", PASSWORD)
    try:
        signers = {u: PASSWORD for u in ("pharmacist", WITNESSES[0], "clinician")}
        scenario.ready_kits(ph, signers, lot="LOT-A1", kits=[KIT, "KIT-2"], dose_times=doses,
                            workdir=root / "work", excursion=(doses[0] - timedelta(hours=10), 15))  # fmt: skip
    finally:
        ph.close()
    files += _export(w, usb / "pharmacy")
    hs = Site.open(hub_dir).unlock("admin", PASSWORD)
    try:
        items = hub.import_files(hs, files)
        bad = [i.refused for i in items if not (i.result and i.result.outcome.status == "applied")]
        assert not bad, bad
    finally:
        hs.close()
    return hub_dir


def _export(w: Any, to: Path) -> list[Path]:
    """The ward's bundles of what it made since its last export; then marked received, as if the hub's
    receipt came back (as `test_hub_pg_evidence` does): the pharmacy's events travel in bundles of their
    own, as they would a day later, not in the bundle of every participant's photographs (reading a kit's
    photographed sheet decrypts the kept bundle holding it)."""
    from wardcrf.sync import ward

    from wardcrf.site import Site

    to.mkdir()
    ws = Site.open(w.data_dir).unlock("admin", PASSWORD)
    try:
        files = list(ward.export(ws, to).files)
        ws.store.execute("UPDATE sync_outbox SET receipted_at = 'bench'")
    finally:
        ws.close()
    return files


def _custody(session: Any, how: str) -> list[dict[str, Any]]:
    from wardcrf.cli.common import in_place, whole_hub
    from wardcrf.coldchain import reports

    reader = in_place if how == "direct" else whole_hub
    with reader(session) as s:
        return [c.as_dict() for c in reports.custody_of(s, KIT)]


def _safety(session: Any, how: str) -> dict[str, Any]:
    """`report safety`'s work after sign-in (every participant's exposure, AEs, deviations): the whole-hub
    report read in place (`in_place`, the database beside the hub's file) or through the whole copy."""
    from wardcrf.cli.common import in_place, whole_hub
    from wardcrf.exports.dataset import Dataset
    from wardcrf.reports import safety

    reader = in_place if how == "direct" else whole_hub
    with reader(session) as s:
        return safety.compute(Dataset.for_session(s))


READS = {"custody": _custody, "safety": _safety}


RSS_SCRIPT = """
import gc, sys
from wardcrf import features
features.install()
from wardcrf.site import Site
from wardcrf.cli.common import in_place, whole_hub
from wardcrf.coldchain import reports
s = Site.open(sys.argv[1]).unlock("admin", sys.argv[3])
gc.collect()
with open("/proc/self/clear_refs", "w") as fh:  # the sign-in's key derivation peak forgotten (VmHWM reset)
    fh.write("5")
if sys.argv[2] != "sign-in":
    with (in_place if sys.argv[2] == "in place" else whole_hub)(s) as r:
        units = reports.status(r)["units"]
    assert units, "no units"
s.close()
with open("/proc/self/status") as fh:
    print(next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")))
"""
"""`coldchain status` in a process of its own: its peak RSS (KiB) from after the sign-in (the sign-in's key
derivation peaks higher than either read; the peak is reset after it), read in place, through the whole
copy, or nothing read (what the process holds signed in)."""


def _peak_rss(hub_dir: Path, how: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(hub_dir), how, PASSWORD],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.split()[-1])


def run(
    quick: bool = False, participants: int | None = None, repeat: int | None = None
) -> list[dict[str, Any]]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf.site import Site

    n = participants or (20 if quick else 100)
    repeat = repeat or (5 if quick else 9)
    if pgserver.bin_dir() is None:
        return [{"name": "hub items: no PostgreSQL server binaries (apt-get install postgresql)"}]
    server = pgserver.start()
    sessions: dict[int, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size in (n, 10 * n):
                (Path(tmp) / str(size)).mkdir()
                hub_dir = _hub_with(Path(tmp) / str(size), server, size)
                sessions[size] = Site.open(hub_dir).unlock("admin", PASSWORD)
            for size, s in sessions.items():  # the same chain, the same report both ways
                direct, whole = (json.dumps(_custody(s, how)) for how in ("direct", "whole"))
                assert direct == whole and KIT in direct, (
                    f"at {size}: the chain read directly is not the copy's"
                )
                direct, whole = (json.dumps(_safety(s, how), default=str) for how in ("direct", "whole"))
                assert direct == whole, f"at {size}: report safety in place is not the copy's"
            runs: dict[tuple[str, int, str], list[Sample]] = {
                k: [] for k in ((r, a, b) for r in READS for a in sessions for b in ("direct", "whole"))
            }
            load0 = loadavg()
            keys = list(runs)
            for i in range(repeat):
                for read, size, how in keys[i % len(keys) :] + keys[: i % len(keys)]:  # rotating order
                    sample, _ = once(lambda read=read, size=size, how=how: READS[read](sessions[size], how))
                    runs[(read, size, how)].append(sample)
            load = [load0, loadavg()]
            for s in sessions.values():
                s.close()
            # `coldchain status` (a whole-hub report, now read in place) at each hub: peak RSS of a process of
            # its own, in place vs through the whole copy vs signed in and nothing read, in rotating order.
            ways = [(size, how) for size in (n, 10 * n) for how in ("in place", "whole copy", "sign-in")]
            rss: dict[tuple[int, str], list[int]] = {w: [] for w in ways}
            for i in range(3):
                for size, how in ways[i:] + ways[:i]:
                    rss[(size, how)].append(_peak_rss(Path(tmp) / str(size) / "hub", how))
            rss_load = [load[1], loadavg()]
    finally:
        pgserver.stop(server)
    med = {k: median(v) for k, v in runs.items()}
    peak = {w: sorted(v)[len(v) // 2] / 1024 for w, v in rss.items()}
    rows: list[dict[str, Any]] = []
    for size in (n, 10 * n):
        own = {how: peak[(size, how)] - peak[(size, "sign-in")] for how in ("in place", "whole copy")}
        rows.append(
            {
                "name": f"coldchain status peak RSS at {size:,} participants ({size * EVENTS_PER_PARTICIPANT:,}"
                f" events): in place vs the whole copy (signed in, nothing read: {peak[(size, 'sign-in')]:.0f} MiB;"
                f" the read's own {own['in place']:.0f} vs {own['whole copy']:.0f} MiB)",
                "value": peak[(size, "in place")],
                "baseline": peak[(size, "whole copy")],
                "ratio": own["in place"] / max(own["whole copy"], 1e-9),
                "cpu": float("nan"),
                "cpu_baseline": float("nan"),
                "cpu_ratio": float("nan"),
                "unit": "MiB",
                "target": "the read's own memory ≪ the copy's, not growing with the hub",
                "baseline_name": "whole_hub (hubview.build)",
                "runs": 3,
                "load": rss_load,
            }
        )
    for how, label in (("direct", "read where it is (in_place)"), ("whole", "hub copied whole (baseline)")):
        rows.append(
            _timed_row(
                f"coldchain custody {KIT}, {label}: {10 * n:,} vs {n:,} participants",
                med[("custody", 10 * n, how)],
                med[("custody", n, how)],
                "≈ 1 × (cost follows the kit)" if how == "direct" else "grows with the hub",
                f"the same at {n:,} participants",
                repeat,
                load,
            )
        )
    for read, what in (("custody", f"coldchain custody {KIT}"), ("safety", "report safety")):
        for size in (n, 10 * n):
            rows.append(
                _timed_row(
                    f"{what} at {size:,} participants: in place vs the whole copy",
                    med[(read, size, "direct")],
                    med[(read, size, "whole")],
                    "< 1",
                    "whole_hub (hubview.build)",
                    repeat,
                    load,
                )
            )
    return rows


def _timed_row(
    name: str, ours: Any, base: Any, target: str, baseline_name: str, runs: int, load: Any
) -> dict[str, Any]:
    """One report row of two medians (`.wall`, `.cpu`, seconds): ours against its baseline, in ms."""
    return {
        "name": name,
        "value": ours.wall * 1000,
        "baseline": base.wall * 1000,
        "ratio": ours.wall / base.wall,
        "cpu": ours.cpu * 1000,
        "cpu_baseline": base.cpu * 1000,
        "cpu_ratio": ours.cpu / base.cpu,
        "unit": "ms",
        "target": target,
        "baseline_name": baseline_name,
        "runs": runs,
        "load": load,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--participants", type=int, default=100, help="N (the second hub has 10×N)")
    p.add_argument("--repeat", type=int, default=9, help="rounds of the loop (medians quoted)")
    p.add_argument("--quick", action="store_true", help="N = 20, 5 rounds")
    a = p.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    rows = run(
        quick=a.quick, participants=None if a.quick else a.participants, repeat=None if a.quick else a.repeat
    )
    for r in rows:
        if "unit" not in r:
            print(r["name"])
            continue
        if r["unit"] == "MiB":
            print(
                f"{r['name']}: {r['value']:.0f} MiB vs {r['baseline']:.0f} MiB (the read's own memory"
                f" ×{r['ratio']:.3f} of the copy's); median of {r['runs']}, load {r['load'][0]:.2f}→{r['load'][1]:.2f}"
            )
            continue
        print(
            f"{r['name']}: wall {r['value']:.1f} ms vs {r['baseline']:.1f} ms (×{r['ratio']:.2f}),"
            f" CPU {r['cpu']:.1f} ms vs {r['cpu_baseline']:.1f} ms (×{r['cpu_ratio']:.2f});"
            f" {r['runs']} runs, load {r['load'][0]:.2f}→{r['load'][1]:.2f}"
        )
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
