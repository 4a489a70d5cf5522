"""Time the same test files at two commits, alternating, to compare the suite like for like.

Why: "the suite runs at least as fast as before" (issue #16) cannot be read off two whole-suite
runs. Between the commit before the architecture work and main the suite grew by half again (about
2,000 tests to 3,100), and the build machine has 2 cores shared with other sessions, so a wall
clock moves with the neighbours more than with our code. This compares only what is comparable:

* the test files whose bytes are identical at both commits (same blob id), so each side runs the
  same tests; the conftest and helper files under tests/ that differ are listed, because an
  identical test file still runs through each commit's own fixtures (that is part of what is
  measured, not hidden);
* each file once per side, in its own process (`python -m pytest -q -n 0 -p no:cacheprovider
  FILE`), alternating A,B then B,A file by file so a change in the machine's load falls on both
  sides equally;
* CPU time of the pytest process and its children (`getrusage(RUSAGE_CHILDREN)` before and after,
  user + sys) as the main figure, wall time as the second; the 1/5/15-minute load average is kept
  with every row so a reader can see what the wall time was up against.

Each side gets a detached worktree and its own venv (`pip install -e '.[dev]'`, extras read from
that commit's pyproject). Before timing, both trees are byte-compiled and pytest's rewritten-test
caches removed, and every run has `PYTHONDONTWRITEBYTECODE=1`, so neither side starts warmer. Every
run gets a private HOME, TMPDIR and TMUX_TMPDIR: a tmux-driven test never shares a socket (or a
pytest temp directory) with another session's tests on the same machine.

    nice -n 10 .venv/bin/python tools/suite_timing.py 4e9ef71 eea3bc3 \\
        --out docs/suite-timing/4e9ef71-eea3bc3.csv --stop-at 01:25
    .venv/bin/python tools/suite_timing.py --summarize docs/suite-timing/4e9ef71-eea3bc3.csv

Per-file processes pay pytest's and the conftest's start-up once per file, which a real run pays
once per worker; and a session fixture built once per process (the workflow templates) is rebuilt
for every file. `--together ROUNDS` measures the other way round, like a real run: all selected
files in ONE pytest process per side, ROUNDS times, alternating A,B / B,A round by round; the
summary gives each side's median CPU over the rounds and their ratio. `--skip-failed-in CSV` leaves
out the files that failed on either side of an earlier per-file run, so both sides run tests that
pass:

    nice -n 10 .venv/bin/python tools/suite_timing.py 4e9ef71 HEAD --together 3 \\
        --skip-failed-in docs/suite-timing/4e9ef71-HEAD.csv --out docs/suite-timing/4e9ef71-HEAD-together.csv

Rows are written (and flushed) as each run ends, so a run stopped early still leaves its results;
`--stop-at HH:MM` (UTC) starts no new pair of runs that would not end by then, which keeps the
covered files a deterministic prefix of the sorted list. The summary is printed and written beside
the CSV as JSON. Nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import datetime as dt
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIELDS = [
    "pair",
    "file",
    "side",
    "commit",
    "order",
    "started_utc",
    "load1",
    "load5",
    "load15",
    "cpu_user_s",
    "cpu_sys_s",
    "cpu_s",
    "wall_s",
    "exit",
    "tests",
    "passed",
    "failed",
    "errors",
    "skipped",
]


@dataclass(frozen=True)
class Side:
    """One commit under test: its label (A or B), full sha, worktree and venv python."""

    label: str
    commit: str
    tree: Path

    @property
    def python(self) -> Path:
        return self.tree / ".venv" / "bin" / "python"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def resolve(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()


def blobs(repo: Path, commit: str) -> dict[str, str]:
    """Path -> blob id of every file under tests/ at `commit`."""
    out: dict[str, str] = {}
    for line in git(repo, "ls-tree", "-r", "-z", commit, "--", "tests").split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        out[path] = meta.split()[2]
    return out


def is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("test_") and name.endswith(".py")


def select(repo: Path, a: str, b: str) -> dict[str, list[str]]:
    """The identical test files, and the tests/ files that differ, by kind."""
    at_a, at_b = blobs(repo, a), blobs(repo, b)
    tests_a = {p for p in at_a if is_test_file(p)}
    tests_b = {p for p in at_b if is_test_file(p)}
    differing_support = sorted(
        p
        for p in (set(at_a) | set(at_b))
        if p.endswith(".py") and not is_test_file(p) and at_a.get(p) != at_b.get(p)
    )
    return {
        "identical": sorted(p for p in tests_a & tests_b if at_a[p] == at_b[p]),
        "changed": sorted(p for p in tests_a & tests_b if at_a[p] != at_b[p]),
        "only_a": sorted(tests_a - tests_b),
        "only_b": sorted(tests_b - tests_a),
        "support_differs": differing_support,
    }


def extras(tree: Path) -> str:
    """The pip target for this commit: `.[dev]` when its pyproject declares a dev extra."""
    config = tomllib.loads((tree / "pyproject.toml").read_text())
    declared = config.get("project", {}).get("optional-dependencies", {})
    return ".[dev]" if "dev" in declared else "."


def prepare(repo: Path, side: Side) -> None:
    """Worktree and venv for one side (reused when already there at the right commit)."""
    if side.tree.exists():
        head = git(side.tree, "rev-parse", "HEAD").strip()
        if head != side.commit:
            sys.exit(f"suite_timing: {side.tree} is at {head[:9]}, not {side.commit[:9]}; remove it first")
    else:
        git(repo, "worktree", "add", "--detach", str(side.tree), side.commit)
    marker = side.tree / ".venv" / ".suite-timing-installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(side.tree / ".venv")], check=True)
        subprocess.run(
            [str(side.python), "-m", "pip", "install", "-q", "-e", extras(side.tree)],
            cwd=side.tree,
            check=True,
        )
        marker.touch()
    # Same starting state on both sides: sources byte-compiled once, no rewritten-test caches or
    # hypothesis example database left from an earlier run.
    for cached in side.tree.glob("tests/**/__pycache__/*-pytest-*.pyc"):
        cached.unlink()
    shutil.rmtree(side.tree / ".hypothesis", ignore_errors=True)
    for folder in sorted(p for p in side.tree.iterdir() if p.is_dir() and not p.name.startswith(".")):
        compileall.compile_dir(str(folder), quiet=2)


def private_env(scratch: Path) -> dict[str, str]:
    """The environment of one run: own HOME, TMPDIR and TMUX_TMPDIR; no bytecode written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTEST_", "TMUX"))}
    for name in ("home", "tmp", "tmux"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(scratch / "home"),
        TMPDIR=str(scratch / "tmp"),
        TMUX_TMPDIR=str(scratch / "tmux"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def junit_counts(path: Path) -> dict[str, int]:
    counts = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return counts
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        counts["tests"] += int(suite.get("tests", 0))
        counts["failed"] += int(suite.get("failures", 0))
        counts["errors"] += int(suite.get("errors", 0))
        counts["skipped"] += int(suite.get("skipped", 0))
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    return counts


def run_one(
    side: Side, path: str, scratch: Path, logs: Path, timeout: float, files: list[str] | None = None
) -> dict[str, object]:
    """One pytest process over one file (or `files`, labelled `path`); its CPU (with children), wall, exit and counts."""
    shutil.rmtree(scratch, ignore_errors=True)
    env = private_env(scratch)
    junit = scratch / "junit.xml"
    cmd = [
        str(side.python), "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
        f"--junitxml={junit}", *(files if files is not None else [path]),
    ]  # fmt: skip
    load = os.getloadavg()
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=side.tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = -9
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    counts = junit_counts(junit)
    if status != 0:
        logs.mkdir(parents=True, exist_ok=True)
        name = f"{side.label}-{path.replace('/', '_')}.log"
        (logs / name).write_bytes(output)
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "file": path,
        "side": side.label,
        "commit": side.commit[:9],
        "started_utc": started,
        "load1": round(load[0], 2),
        "load5": round(load[1], 2),
        "load15": round(load[2], 2),
        "cpu_user_s": round(user, 3),
        "cpu_sys_s": round(system, 3),
        "cpu_s": round(user + system, 3),
        "wall_s": round(wall, 3),
        "exit": status,
        **counts,
    }


def collect_count(side: Side, scratch: Path) -> int | None:
    """How many tests the whole suite at this commit holds (collection only, nothing runs)."""
    shutil.rmtree(scratch, ignore_errors=True)
    proc = subprocess.run(
        [str(side.python), "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider"],
        cwd=side.tree,
        env=private_env(scratch),
        capture_output=True,
        text=True,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    for line in reversed(proc.stdout.splitlines()):
        words = line.split()
        if len(words) >= 2 and words[0].isdigit() and words[1].startswith("test"):
            return int(words[0])
    return None


def summarize(rows: list[dict[str, str]], meta: dict[str, object]) -> dict[str, object]:
    """Totals over the files that passed on both sides, plus what failed where."""
    by_file: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        by_file.setdefault(row["file"], {})[row["side"]] = row
    both = {f: s for f, s in by_file.items() if "A" in s and "B" in s}
    ok = {f: s for f, s in both.items() if s["A"]["exit"] == "0" and s["B"]["exit"] == "0"}

    def total(side: str, field: str) -> float:
        return round(sum(float(s[side][field]) for s in ok.values()), 2)

    cpu_a, cpu_b = total("A", "cpu_s"), total("B", "cpu_s")
    wall_a, wall_b = total("A", "wall_s"), total("B", "wall_s")
    cpu_ratios = [float(s["B"]["cpu_s"]) / float(s["A"]["cpu_s"]) for s in ok.values()]
    wall_ratios = [float(s["B"]["wall_s"]) / float(s["A"]["wall_s"]) for s in ok.values()]
    tests_a = sum(int(s["A"]["tests"]) for s in ok.values())
    tests_b = sum(int(s["B"]["tests"]) for s in ok.values())
    loads = [float(r["load1"]) for r in rows]
    summary: dict[str, object] = {
        **meta,
        "files_run_both_sides": len(both),
        "files_passed_both_sides": len(ok),
        "tests_covered_A": tests_a,
        "tests_covered_B": tests_b,
        "cpu_s_A": cpu_a,
        "cpu_s_B": cpu_b,
        "cpu_ratio_B_over_A": round(cpu_b / cpu_a, 3) if cpu_a else None,
        "cpu_median_file_ratio": round(statistics.median(cpu_ratios), 3) if cpu_ratios else None,
        "wall_s_A": wall_a,
        "wall_s_B": wall_b,
        "wall_ratio_B_over_A": round(wall_b / wall_a, 3) if wall_a else None,
        "wall_median_file_ratio": round(statistics.median(wall_ratios), 3) if wall_ratios else None,
        "load1_min": min(loads) if loads else None,
        "load1_max": max(loads) if loads else None,
        "failed_A": sorted(f for f, s in both.items() if s["A"]["exit"] != "0"),
        "failed_B": sorted(f for f, s in both.items() if s["B"]["exit"] != "0"),
    }
    for label in ("A", "B"):
        suite = meta.get(f"suite_tests_{label}")
        covered = summary[f"tests_covered_{label}"]
        if isinstance(suite, int) and suite and isinstance(covered, int):
            summary[f"fraction_of_suite_{label}"] = round(covered / suite, 3)
    return summary


def summarize_together(rows: list[dict[str, str]], meta: dict[str, object]) -> dict[str, object]:
    """Median CPU and wall per side over the rounds in which both sides ran every test and passed."""
    rounds: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        rounds.setdefault(row["pair"], {})[row["side"]] = row
    ok = [
        r
        for r in rounds.values()
        if "A" in r and "B" in r and r["A"]["exit"] == "0" and r["B"]["exit"] == "0"
    ]

    def median(side: str, field: str) -> float | None:
        values = [float(r[side][field]) for r in ok]
        return round(statistics.median(values), 2) if values else None

    cpu_a, cpu_b = median("A", "cpu_s"), median("B", "cpu_s")
    wall_a, wall_b = median("A", "wall_s"), median("B", "wall_s")
    loads = [float(r["load1"]) for r in rows]
    return {
        **meta,
        "rounds_run": len(rounds),
        "rounds_passed_both_sides": len(ok),
        "tests_per_round_A": int(ok[0]["A"]["tests"]) if ok else None,
        "tests_per_round_B": int(ok[0]["B"]["tests"]) if ok else None,
        "cpu_s_A_each_round": [float(r["A"]["cpu_s"]) for r in ok],
        "cpu_s_B_each_round": [float(r["B"]["cpu_s"]) for r in ok],
        "cpu_median_s_A": cpu_a,
        "cpu_median_s_B": cpu_b,
        "cpu_ratio_B_over_A": round(cpu_b / cpu_a, 3) if cpu_a and cpu_b else None,
        "cpu_round_ratios": [round(float(r["B"]["cpu_s"]) / float(r["A"]["cpu_s"]), 3) for r in ok],
        "wall_median_s_A": wall_a,
        "wall_median_s_B": wall_b,
        "wall_ratio_B_over_A": round(wall_b / wall_a, 3) if wall_a and wall_b else None,
        "load1_min": min(loads) if loads else None,
        "load1_max": max(loads) if loads else None,
        "failed_rounds": sorted(p for p, r in rounds.items() if r not in ok),
    }


def report_together(summary: dict[str, object]) -> str:
    s = summary
    return "\n".join(
        [
            f"A = {s.get('A')}  B = {s.get('B')}  ({len(s.get('selected_files') or [])} files in one process per side)",
            f"rounds passed on both sides: {s['rounds_passed_both_sides']} of {s['rounds_run']};"
            f" tests per round A {s['tests_per_round_A']}, B {s['tests_per_round_B']}",
            f"CPU  s, median: A {s['cpu_median_s_A']}  B {s['cpu_median_s_B']}  B/A {s['cpu_ratio_B_over_A']}"
            f"  (per round B/A {s['cpu_round_ratios']})",
            f"wall s, median: A {s['wall_median_s_A']}  B {s['wall_median_s_B']}  B/A {s['wall_ratio_B_over_A']}",
            f"1-minute load at run start: {s['load1_min']}-{s['load1_max']} (2-core machine)",
            f"failed rounds: {s['failed_rounds'] or 'none'}",
        ]
    )


def failed_files(csv_path: Path) -> set[str]:
    """The files that did not pass on both sides of an earlier per-file run."""
    with csv_path.open(newline="") as fh:
        return {row["file"] for row in csv.DictReader(fh) if row["exit"] != "0"}


def report(summary: dict[str, object]) -> str:
    s = summary
    lines = [
        f"A = {s.get('A')}  B = {s.get('B')}",
        f"files passed on both sides: {s['files_passed_both_sides']} of {s['files_run_both_sides']} run"
        f" (identical test files at both commits: {s.get('identical_files', '?')})",
        f"tests covered: A {s['tests_covered_A']} ({s.get('fraction_of_suite_A', '?')} of"
        f" {s.get('suite_tests_A', '?')}), B {s['tests_covered_B']}"
        f" ({s.get('fraction_of_suite_B', '?')} of {s.get('suite_tests_B', '?')})",
        f"CPU  s: A {s['cpu_s_A']}  B {s['cpu_s_B']}  B/A {s['cpu_ratio_B_over_A']}"
        f"  median per-file B/A {s['cpu_median_file_ratio']}",
        f"wall s: A {s['wall_s_A']}  B {s['wall_s_B']}  B/A {s['wall_ratio_B_over_A']}"
        f"  median per-file B/A {s['wall_median_file_ratio']}",
        f"1-minute load at run start: {s['load1_min']}-{s['load1_max']} (2-core machine)",
        f"failed at A: {s['failed_A'] or 'none'}",
        f"failed at B: {s['failed_B'] or 'none'}",
    ]
    return "\n".join(lines)


def clock(text: str) -> str:
    """argparse type of --stop-at: HH:MM, 24-hour, UTC."""
    try:
        dt.time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; give HH:MM (UTC, 24-hour)") from None
    if len(text) != 5:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; give HH:MM (UTC, 24-hour)")
    return text


def stop_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    hour, minute = (int(x) for x in text.split(":"))
    now = dt.datetime.now(dt.UTC)
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


def run_together(
    args: argparse.Namespace,
    sides: list[Side],
    files: list[str],
    scratch: Path,
    logs: Path,
    meta: dict[str, object],
    out: Path,
) -> int:
    """`--together`: every selected file in one process per side, round after round, alternating."""
    deadline = stop_time(args.stop_at)
    label = f"(together: {len(files)} files)"
    rows: list[dict[str, str]] = []
    last_round = 0.0
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for index in range(args.together):
            if deadline and dt.datetime.now(dt.UTC) + dt.timedelta(seconds=last_round) > deadline:
                print(f"stop-at reached: {index} of {args.together} rounds run", flush=True)
                break
            order = sides if index % 2 == 0 else sides[::-1]
            t0 = time.perf_counter()
            for position, side in enumerate(order):
                row = run_one(side, label, scratch, logs, args.timeout, files=files)
                row.update(pair=index, order=position)
                writer.writerow(row)
                fh.flush()
                rows.append({k: str(v) for k, v in row.items()})
                print(
                    f"round {index} {side.label} cpu {row['cpu_s']}s wall {row['wall_s']}s"
                    f" exit {row['exit']} tests {row['tests']} failed {row['failed']} load {row['load1']}",
                    flush=True,
                )
            last_round = time.perf_counter() - t0
    summary = summarize_together(rows, meta)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(report_together(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("a", nargs="?", help="the 'before' commit")
    parser.add_argument("b", nargs="?", help="the 'after' commit")
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to make worktrees from")
    parser.add_argument("--work", type=Path, default=Path("/tmp"), help="where worktrees go")
    parser.add_argument("--prefix", default="suite-timing-", help="worktree name: PREFIX<short sha>")
    parser.add_argument("--out", type=Path, help="CSV of the rows (summary goes to the same name .json)")
    parser.add_argument("--under", nargs="*", default=[], help="only files under these folders")
    parser.add_argument("--limit", type=int, help="only the first N selected files (sorted)")
    parser.add_argument(
        "--stop-at", type=clock, help="HH:MM UTC: start no pair of runs that would not end by then"
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds before one run is killed")
    parser.add_argument("--no-collect", action="store_true", help="skip counting each side's whole suite")
    parser.add_argument("--setup-only", action="store_true", help="make the worktrees and venvs, then stop")
    parser.add_argument("--summarize", type=Path, help="print the summary of an existing CSV and stop")
    parser.add_argument(
        "--together", type=int, metavar="ROUNDS", help="all files in one process per side, ROUNDS times"
    )
    parser.add_argument(
        "--skip-failed-in", type=Path, metavar="CSV", help="leave out files that failed in this per-file run"
    )
    args = parser.parse_args(argv)

    if args.summarize:
        meta_path = args.summarize.with_suffix(".json")
        saved = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        with args.summarize.open(newline="") as fh:
            rows_read = list(csv.DictReader(fh))
        if saved.get("mode") == "together":
            print(report_together(summarize_together(rows_read, saved)))
        else:
            print(report(summarize(rows_read, saved)))
        return 0
    if not (args.a and args.b and (args.out or args.setup_only)):
        parser.error("give two commits and --out (or --setup-only, or --summarize CSV)")

    repo = args.repo.resolve()
    try:
        a, b = resolve(repo, args.a), resolve(repo, args.b)
    except subprocess.CalledProcessError:
        parser.error(
            f"{args.a!r} or {args.b!r} is not a commit in {repo}; give two commits of that repository"
        )
    sides = [Side(label, sha, args.work / f"{args.prefix}{sha[:7]}") for label, sha in (("A", a), ("B", b))]
    for side in sides:
        prepare(repo, side)
    if args.setup_only:
        return 0

    chosen = select(repo, a, b)
    files = [
        f
        for f in chosen["identical"]
        if not args.under or any(f.startswith(u.rstrip("/") + "/") for u in args.under)
    ]
    skipped: list[str] = []
    if args.skip_failed_in:
        failed = failed_files(args.skip_failed_in)
        skipped = [f for f in files if f in failed]
        files = [f for f in files if f not in failed]
    if args.limit is not None:
        files = files[: args.limit]
    scratch = args.work / f"{args.prefix}runs-{os.getpid()}"
    meta: dict[str, object] = {
        "A": a,
        "B": b,
        "identical_files": len(chosen["identical"]),
        "changed_files": len(chosen["changed"]),
        "only_A_files": len(chosen["only_a"]),
        "only_B_files": len(chosen["only_b"]),
        "support_files_that_differ": chosen["support_differs"],
        "selected_files": files,
        "skipped_as_failed_before": skipped,
        "mode": "together" if args.together else "per-file",
        "command": "python -m pytest -q -n 0 -p no:cacheprovider --junitxml=J "
        + ("FILE FILE ... (all selected)" if args.together else "FILE"),
        "python": sys.version.split()[0],
        "nice": os.nice(0),
    }
    if not args.no_collect:
        for side in sides:
            meta[f"suite_tests_{side.label}"] = collect_count(side, scratch)
    print(
        f"{len(files)} identical test files selected of {len(chosen['identical'])} identical;"
        f" {len(chosen['changed'])} changed, {len(chosen['only_a'])} only at A,"
        f" {len(chosen['only_b'])} only at B. Differing support files: {', '.join(chosen['support_differs'])}",
        flush=True,
    )
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    logs = out.with_name(out.stem + "-logs")
    deadline = stop_time(args.stop_at)
    rows: list[dict[str, str]] = []
    if args.together:
        return run_together(args, sides, files, scratch, logs, meta, out)
    last_pair = 0.0
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for index, path in enumerate(files):
            if deadline and dt.datetime.now(dt.UTC) + dt.timedelta(seconds=last_pair) > deadline:
                meta["stopped_before"] = path
                print(f"stop-at reached: {index} of {len(files)} files run", flush=True)
                break
            order = sides if index % 2 == 0 else sides[::-1]
            t0 = time.perf_counter()
            for position, side in enumerate(order):
                row = run_one(side, path, scratch, logs, args.timeout)
                row.update(pair=index, order=position)
                writer.writerow(row)
                fh.flush()
                rows.append({k: str(v) for k, v in row.items()})
                print(
                    f"{index:3d} {side.label} {path} cpu {row['cpu_s']}s wall {row['wall_s']}s"
                    f" exit {row['exit']} tests {row['tests']} load {row['load1']}",
                    flush=True,
                )
            last_pair = time.perf_counter() - t0
    meta["files_run"] = len({r["file"] for r in rows})
    summary = summarize(rows, meta)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(report(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
