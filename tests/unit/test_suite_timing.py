"""tools/suite_timing.py compares only like with like (issue 16: the suite before and after).

Its figures are only honest if it picks the test files that are byte-identical at both commits,
counts a file only when it passed on both sides, and reads pytest's JUnit report without trusting
it to be there or well formed. These tests check those three choices on a throwaway repository
and hand-made rows; nothing here runs pytest or times anything.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("suite_timing", ROOT / "tools" / "suite_timing.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["suite_timing"] = module
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _commit(repo: Path, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "step")
    return _git(repo, "rev-parse", "HEAD")


def test_only_byte_identical_test_files_are_selected_and_differing_helpers_are_named(tmp_path: Path):
    tool = _tool()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    a = _commit(
        repo,
        {
            "tests/conftest.py": "X = 1\n",
            "tests/unit/helper.py": "Y = 1\n",
            "tests/unit/test_same.py": "def test_a():\n    assert 1\n",
            "tests/unit/test_edited.py": "def test_b():\n    assert 1\n",
            "tests/unit/test_gone.py": "def test_c():\n    assert 1\n",
            "tests/unit/data.json": "{}\n",
        },
    )
    b = _commit(
        repo,
        {
            "tests/conftest.py": "X = 2\n",
            "tests/unit/test_edited.py": "def test_b():\n    assert 2\n",
            "tests/unit/test_gone.py": None,
            "tests/unit/test_new.py": "def test_d():\n    assert 1\n",
            "tests/unit/data.json": "[]\n",
        },
    )
    chosen = tool.select(repo, a, b)
    assert chosen["identical"] == ["tests/unit/test_same.py"]
    assert chosen["changed"] == ["tests/unit/test_edited.py"]
    assert chosen["only_a"] == ["tests/unit/test_gone.py"]
    assert chosen["only_b"] == ["tests/unit/test_new.py"]
    # Python support files that differ are listed (the unchanged helper and the data file are not).
    assert chosen["support_differs"] == ["tests/conftest.py"]


def _row(
    file: str, side: str, cpu: float, wall: float, exit_status: int = 0, tests: int = 3
) -> dict[str, str]:
    return {
        "file": file,
        "side": side,
        "cpu_s": str(cpu),
        "wall_s": str(wall),
        "exit": str(exit_status),
        "tests": str(tests),
        "load1": "4.0" if side == "A" else "9.0",
    }


def test_totals_count_only_files_that_passed_on_both_sides():
    tool = _tool()
    rows = [
        _row("t1", "A", 2.0, 10.0),
        _row("t1", "B", 3.0, 12.0),
        _row("t2", "A", 4.0, 20.0),
        _row("t2", "B", 4.0, 18.0),
        # Failed at B: its times would compare a broken run with a whole one, so they are left out.
        _row("t3", "A", 50.0, 60.0),
        _row("t3", "B", 1.0, 1.0, exit_status=1),
        # Run at A only (the budget ran out mid-pair): not comparable either.
        _row("t4", "A", 7.0, 7.0),
    ]
    summary = tool.summarize(rows, {"suite_tests_A": 20, "suite_tests_B": 30})
    assert summary["files_run_both_sides"] == 3
    assert summary["files_passed_both_sides"] == 2
    assert (summary["cpu_s_A"], summary["cpu_s_B"]) == (6.0, 7.0)
    assert summary["cpu_ratio_B_over_A"] == round(7 / 6, 3)
    assert summary["cpu_median_file_ratio"] == 1.25  # median of 1.5 and 1.0
    assert (summary["wall_s_A"], summary["wall_s_B"]) == (30.0, 30.0)
    assert summary["tests_covered_A"] == 6 and summary["fraction_of_suite_B"] == 0.2
    assert summary["failed_A"] == [] and summary["failed_B"] == ["t3"]
    assert (summary["load1_min"], summary["load1_max"]) == (4.0, 9.0)


def test_no_comparable_file_gives_no_ratio_rather_than_a_made_up_one():
    tool = _tool()
    summary = tool.summarize([_row("t1", "A", 2.0, 2.0, exit_status=2), _row("t1", "B", 2.0, 2.0)], {})
    assert summary["files_passed_both_sides"] == 0
    assert summary["cpu_ratio_B_over_A"] is None and summary["cpu_median_file_ratio"] is None
    assert summary["failed_A"] == ["t1"]


def test_junit_counts_are_read_and_a_missing_or_broken_report_counts_nothing(tmp_path: Path):
    tool = _tool()
    report = tmp_path / "j.xml"
    report.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="1" failures="2"'
        ' skipped="3" tests="10"></testsuite></testsuites>'
    )
    assert tool.junit_counts(report) == {"tests": 10, "passed": 4, "failed": 2, "errors": 1, "skipped": 3}
    zero = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    assert tool.junit_counts(tmp_path / "absent.xml") == zero
    broken = tmp_path / "broken.xml"
    broken.write_text("<testsuites><testsuite tests=")
    assert tool.junit_counts(broken) == zero


def test_a_commit_the_repository_does_not_have_is_refused_in_one_line(tmp_path: Path, capsys):
    tool = _tool()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    head = _commit(repo, {"tests/test_x.py": "def test_x():\n    assert 1\n"})
    for bad in ("no-such-ref", "\x1b[31mred", "a" * 5000):
        try:
            tool.main(
                [head, bad, "--repo", str(repo), "--work", str(tmp_path), "--out", str(tmp_path / "o.csv")]
            )
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError("an unknown commit was accepted")
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "is not a commit in" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no worktree made


def test_stop_at_takes_hh_mm_and_refuses_anything_else(capsys):
    tool = _tool()
    assert tool.clock("01:25") == "01:25"
    for bad in ("25:00", "1:25", "01:25:00", "soon", ""):
        try:
            tool.main(["HEAD", "HEAD", "--out", "x.csv", "--stop-at", bad])
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"--stop-at {bad!r} was accepted")
        assert "give HH:MM" in capsys.readouterr().err


def test_together_rounds_give_medians_over_rounds_both_sides_passed():
    """`--together`: one process per side per round; a round counts only when both sides passed."""
    tool = _tool()
    rows = []
    for pair, (a, b, b_exit) in enumerate(
        [(100.0, 90.0, 0), (110.0, 95.0, 0), (105.0, 99.0, 0), (1.0, 500.0, 1)]
    ):
        rows.append({**_row("(together: 2 files)", "A", a, a * 2, tests=40), "pair": str(pair)})
        rows.append({**_row("(together: 2 files)", "B", b, b * 2, b_exit, tests=40), "pair": str(pair)})
    summary = tool.summarize_together(rows, {"A": "a", "B": "b", "selected_files": ["t1", "t2"]})
    assert summary["rounds_run"] == 4 and summary["rounds_passed_both_sides"] == 3
    assert (summary["cpu_median_s_A"], summary["cpu_median_s_B"]) == (105.0, 95.0)
    assert summary["cpu_ratio_B_over_A"] == round(95 / 105, 3)
    assert summary["cpu_round_ratios"] == [0.9, round(95 / 110, 3), round(99 / 105, 3)]
    assert summary["wall_ratio_B_over_A"] == round(190 / 210, 3)
    assert summary["failed_rounds"] == ["3"]
    assert summary["tests_per_round_A"] == 40
    assert "B/A 0.905" in tool.report_together(summary)


def test_together_with_no_round_passed_gives_no_ratio():
    tool = _tool()
    rows = [
        {**_row("x", "A", 1.0, 1.0, exit_status=1), "pair": "0"},
        {**_row("x", "B", 1.0, 1.0), "pair": "0"},
    ]
    summary = tool.summarize_together(rows, {})
    assert summary["cpu_ratio_B_over_A"] is None and summary["failed_rounds"] == ["0"]


def test_files_that_failed_in_a_per_file_run_are_read_from_its_rows(tmp_path: Path):
    tool = _tool()
    out = tmp_path / "rows.csv"
    out.write_text(
        "file,side,exit\ntests/a.py,A,0\ntests/a.py,B,0\ntests/b.py,A,0\ntests/b.py,B,1\ntests/c.py,A,2\n"
    )
    assert tool.failed_files(out) == {"tests/b.py", "tests/c.py"}
