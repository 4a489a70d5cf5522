"""Run wardcrf's benchmarks and print figures beside same-run baselines.

    python bench/run.py            # full sizes
    python bench/run.py --quick    # smaller sizes (a minute or two)
    python bench/run.py --only foundation photos

Figures are medians unless the name says otherwise; "ratio" is wardcrf's cost
divided by the baseline's cost (time / time, or rate_baseline / rate_wardcrf),
so 1.0 means as fast as the baseline and 2.0 means twice as slow. The machine
is noisy: compare ratios from one run, not absolute figures across runs.
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
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--only", nargs="*", help=f"suites to run (default all of {', '.join(SUITES)})")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    all_rows = []
    for suite in args.only or SUITES:
        try:
            mod = importlib.import_module(f"bench_{suite}")
        except ModuleNotFoundError:
            continue
        console.print(f"[bold]{suite}[/] …")
        rows = mod.run(quick=args.quick)
        table = Table(title=suite, show_lines=False)
        for col in ("benchmark", "wardcrf", "baseline", "ratio", "target"):
            table.add_column(col, justify="right" if col in ("wardcrf", "baseline", "ratio") else "left")
        for r in rows:
            unit = r.get("unit", "")
            table.add_row(
                r["name"],
                f"{r['value']:,.2f} {unit}",
                f"{r['baseline']:,.2f} {unit}",
                f"{r['ratio']:.2f}",
                str(r.get("target", "")),
            )
            all_rows.append({"suite": suite, **r})
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps(all_rows, indent=2))


if __name__ == "__main__":
    main()
