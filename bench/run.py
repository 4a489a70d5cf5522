"""Run wardcrf's benchmarks and print figures beside same-run baselines.

    python bench/run.py            # full sizes
    python bench/run.py --quick    # smaller sizes (a minute or two)
    python bench/run.py --only foundation photos
    python bench/run.py --only sweep --sizes 10000 100000 1000000   # the size sweep

Figures are medians unless the name says otherwise; "ratio" is wardcrf's cost
divided by the baseline's cost (time / time, or rate_baseline / rate_wardcrf),
so 1.0 means as fast as the baseline and 2.0 means twice as slow. Where a row
was measured with `measure.alternate` (ours and the baseline in turn, in one
loop) it has CPU figures too: CPU seconds are the work, wall seconds what a
person waits for; on the shared 2-core build machine the wall clock also
measures the neighbours. The 1-minute load average is printed before and
after each suite and kept with every row (`--json`). The machine is noisy:
compare ratios from one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SUITES = [
    "foundation",
    "photos",
    "workflow",
    "coldchain",
    "sync",
    "tui",
    "tui_coldchain",
    "typeahead",
    "dose",
    "exports",
    "hub_data",
    "drafts",
    "engine",
    "engine_exports",
    "sweep",
    "tlog",
    "hub_engines",
    "hub_batches",
    "hub_items",
    "pg_replay",
    "randomization",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--only", nargs="*", help=f"suites to run (default all of {', '.join(SUITES)})")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    ap.add_argument(
        "--sizes", nargs="*", type=int, help="event counts of the size sweep (default 10000 100000 1000000)"
    )
    args = ap.parse_args()
    from measure import loadavg
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    all_rows = []
    for suite in args.only or SUITES:
        try:
            mod = importlib.import_module(f"bench_{suite}")
        except ModuleNotFoundError:
            continue
        load0 = loadavg()
        console.print(f"[bold]{suite}[/] … (load {load0:.2f})")
        kwargs = {"sizes": args.sizes} if suite == "sweep" and args.sizes else {}
        rows = mod.run(quick=args.quick, **kwargs)
        load1 = loadavg()
        table = Table(title=f"{suite} (1-min load {load0:.2f} before, {load1:.2f} after)", show_lines=False)
        for col in (
            "benchmark",
            "wardcrf wall",
            "baseline wall",
            "ratio",
            "wardcrf CPU",
            "baseline CPU",
            "CPU ratio",
            "target",
        ):
            table.add_column(col, justify="left" if col in ("benchmark", "target") else "right")
        for r in rows:
            unit = r.get("unit", "")
            has_cpu = "cpu" in r
            table.add_row(
                r["name"] + (f" [dim](vs {r['baseline_name']})[/]" if r.get("baseline_name") else ""),
                _fmt(r["value"], unit),
                _fmt(r["baseline"], unit),
                _fmt(r["ratio"]),
                _fmt(r["cpu"], unit) if has_cpu else "—",
                _fmt(r["cpu_baseline"], unit) if has_cpu else "—",
                _fmt(r["cpu_ratio"]) if has_cpu else "—",
                str(r.get("target", "")),
            )
            all_rows.append({"suite": suite, "suite_load": [load0, load1], **r})
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps(all_rows, indent=2))


def _fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN: no baseline for this row
        return "—"
    return f"{value:,.2f} {unit}".rstrip()


if __name__ == "__main__":
    main()
