"""The README's coordinator and auditor examples work as written, from a fresh folder.

They used a `hub-data` folder that nothing created (issue 22). The README now
seeds it with `wardcrf demo --hub hub-data`; this test runs that line and then
every line of the two example blocks, in order, in an empty working folder:
`wardcrf ...` in-process, shell lines (`sha256sum`, `cd`) with the shell.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(title: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"### {title}")
    body = text[start:].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = []
    for raw in body.splitlines():
        line = re.sub(r"\s+#\s.*$", "", raw).strip()  # trailing comments
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _wardcrf(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    from wardcrf.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue()


@pytest.mark.slow
def test_coordinator_and_auditor_examples_run_as_written(tmp_path, monkeypatch):
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (coreutils) not installed")
    monkeypatch.chdir(tmp_path)
    env = {"WARDCRF_PASSWORD": "demo-password", "COLUMNS": "200"}
    seed = re.search(r"`(wardcrf demo [^`]*--hub hub-data[^`]*)`", README.read_text(encoding="utf-8"))
    assert seed, "the README says how to make hub-data"
    code, out = _wardcrf(shlex.split(seed.group(1))[1:], env, monkeypatch)
    assert code == 0, out
    assert (tmp_path / "hub-data").is_dir() and (tmp_path / "demo-site").is_dir()

    from wardcrf.site import Site

    hub = Site.open(tmp_path / "hub-data").unlock("admin", "demo-password")
    try:
        consent_photo = hub.store.scalar(
            "SELECT b.sha256 FROM photo_bindings b JOIN records r ON r.event_id = b.record_event"
            " WHERE r.form = 'consent' AND r.subject = 'participant:WUH01-001'"
        )
    finally:
        hub.close()
    ran = 0
    blocks = (
        "A coordinator's export (ward or hub)",
        "An auditor's verification",
        "A monitor's source-data verification",
        "A monitor's periodic audit-trail review",
    )
    for title in blocks:
        for line in _block(title):
            line = line.replace("CONSENT_PHOTO_ID", consent_photo[:12])  # the README says where to find it
            if line.startswith("export "):
                for assignment in shlex.split(line)[1:]:
                    key, value = assignment.split("=", 1)
                    env[key] = value
                continue
            if line.startswith("wardcrf "):
                code, out = _wardcrf(shlex.split(line)[1:], env, monkeypatch)
            else:
                done = subprocess.run(line, shell=True, capture_output=True, text=True, check=False)
                code, out = done.returncode, done.stdout + done.stderr
            assert code == 0, f"{line}\n{out}"
            ran += 1
            if line.startswith("sha256sum exports/analysis.db"):
                digest = out.split()[0]
                code, log = _wardcrf(["log", "--type", "export.plaintext"], env, monkeypatch)
                assert digest in log  # "matches the SHA-256 in that event"
    assert ran >= 19
    code, out = _wardcrf(["report", "sdv", "--json"], env, monkeypatch)
    totals = json.loads(out)["totals"]
    assert code == 0 and totals["verified"] == 1 and totals["partly verified"] == 1


def test_demo_hub_needs_its_own_new_folder(tmp_path, monkeypatch):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "something").write_text("x")
    env = {"WARDCRF_PASSWORD": "demo-password"}
    for hub in (str(taken), str(tmp_path / "ward")):
        code, out = _wardcrf(
            ["demo", "--no-tui", "--data-dir", str(tmp_path / "ward"), "--hub", hub], env, monkeypatch
        )
        assert code == 2 and "--hub" in out and "new or empty folder" in out, out
    assert not (tmp_path / "ward").exists()  # refused before anything was seeded
