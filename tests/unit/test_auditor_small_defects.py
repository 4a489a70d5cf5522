"""The auditor's smaller findings (issue 22): each one is a test that failed before its fix.

- the safety report counted scheduled doses not yet due as a deviation;
- the outcomes page's vital-sign plots had no axis titles;
- `log` at 80 columns cut the SHA-256 the README tells auditors to compare (and the zone);
- `.gitignore` did not cover the folders the README's examples create.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from wf_support import TZ, Staff, _copy_site, make_ward, today

from wardcrf.site import Site

REPO = Path(__file__).resolve().parents[2]
P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago with a negative skin test; the sentinel gate is open."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


# -- safety report: a participant still in treatment is not a deviation --------------------------


def _exposure(session) -> dict:
    from wardcrf.exports.dataset import Dataset
    from wardcrf.reports import safety

    data = safety.compute(Dataset.for_session(session))
    return {e["participant"]: e for e in data["exposure"]}


def test_safety_report_counts_no_deviation_for_doses_not_yet_due(ward, monkeypatch):
    """Enrolled two days ago, dose 1 given yesterday, dose 2 due at 09:00: nothing is missing at 08:30."""
    pid = ward.consent()
    ward.screen(pid)
    day0 = today() - timedelta(days=2)
    ward.enroll(pid, day0)
    ward.skin(pid, day0)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    now = datetime.combine(today(), time(8, 30), TZ).astimezone(UTC)
    monkeypatch.setenv("WARDCRF_FAKE_NOW", now.isoformat().replace("+00:00", "Z"))
    row = _exposure(ward.aud)[pid]
    assert row["doses"] == 1
    assert not [d for d in row["deviations"] if "scheduled doses" in d or "missed" in d], row


def test_safety_report_names_each_dose_whose_window_closed_without_a_record(site, ward):
    """Enrolled 10 days ago (the sentinel), two doses given: doses 3, 4 and 5 were missed."""
    d0 = today() - timedelta(days=10)
    ward.dose(P1, 1, d0 + timedelta(days=1))
    ward.dose(P1, 2, d0 + timedelta(days=2))
    row = _exposure(ward.aud)[P1]
    missed = [d for d in row["deviations"] if "missed" in d]
    assert [m.split(" missed")[0] for m in missed] == ["dose 3", "dose 4", "dose 5"], row
    assert all("due " in m for m in missed)


# -- outcomes plots: axis titles ----------------------------------------------------------------


def test_vital_sign_and_ct_plots_have_axis_titles():
    from wardcrf.reports import svg

    out = svg.lines(
        "Temperature",
        ["pre1", "post1"],
        {"WUH01-001": [37.0, 37.4]},
        "C",
        x_title="dose and timepoint",
        y_title="temperature (C)",
    )
    assert re.search(r"<text[^>]*>dose and timepoint</text>", out)
    assert re.search(r'<text[^>]*transform="rotate\(-90[^"]*"[^>]*>temperature \(C\)</text>', out)
    ba = svg.before_after("CT score", {"A": (40.0, 30.0)}, "", y_title="CT score (0-72)")
    assert "CT score (0-72)</text>" in ba and ">timepoint</text>" in ba


def test_outcomes_html_plots_carry_axis_titles_with_units(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import export_support as es

    ward_dir = es.make_ward(tmp_path / "site").data_dir
    out = tmp_path / "o.html"
    code, _, err = es.run_cli(ward_dir, "report", "outcomes", "--format", "html", "--out", str(out))
    assert code == 0, err
    html = out.read_text()
    for svg_text in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        titles = re.findall(r'<text[^>]*class="axis-title"[^>]*>([^<]+)</text>', svg_text)
        assert len(titles) == 2, svg_text[:300]  # x and y
    assert ">dose (pre / post inhalation)</text>" in html
    assert re.search(r">Temperature \([^)]+\)</text>", html)


# -- log at 80 columns --------------------------------------------------------------------------


def test_log_at_80_columns_keeps_the_whole_sha256_and_the_zone(cli, tmp_path):
    out = tmp_path / "analysis.db"
    r = cli("export", "sqlite", "--out", str(out), "--yes")
    assert r.code == 0, r.output
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    r = cli("log", "--type", "export.plaintext", env={"COLUMNS": "80"})
    assert r.code == 0, r.output
    assert digest in r.out, r.out  # on one line, whole: what `sha256sum` prints
    assert "…" not in r.out
    assert max(len(line) for line in r.out.splitlines()) <= 80
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", r.out)  # local time with its offset
    wide = cli("log", "--type", "export.plaintext", env={"COLUMNS": "200"})
    assert digest in wide.out and "…" not in wide.out


# -- .gitignore -----------------------------------------------------------------------------------


def _readme_folders() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    folders = set(re.findall(r"--data-dir (\S+)", text)) | set(re.findall(r"WARDCRF_DATA_DIR=(\S+)", text))
    folders |= {m.split("/")[0] for m in re.findall(r"--out (exports/\S+)", text)}
    return {f for f in folders if not f.startswith(("/", "$", "FILE", "DIR"))}


def test_gitignore_covers_every_folder_the_readme_examples_create(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    folders = _readme_folders()
    assert {"demo-site", "exports", "hub-data"} <= folders, folders
    for folder in sorted(folders):
        probe = f"{folder}/analysis.db"
        done = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", probe], capture_output=True, check=False
        )
        assert done.returncode == 0, f"{probe} is not ignored by .gitignore"
    # ...and nothing of the project itself is
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "wardcrf/audit.py"], capture_output=True, check=False
    )
    assert tracked.returncode == 1
