"""The wheel is complete: built, installed into a fresh venv, `wardcrf --help` and `init` run from it.

A subpackage missing from pyproject's explicit package list still imports in an
editable install but vanishes from the wheel; so does schema.sql if package-data
forgets it. This test catches both by importing every module of the source tree
from the installed wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {
    "wardcrf": "wardcrf",
    "screens": "wardcrf.screens",
    "sync": "wardcrf.sync",
    "photos": "wardcrf.photos",
}


def _source_modules() -> list[str]:
    mods = []
    for folder, pkg in MAPPING.items():
        base = ROOT / folder
        for py in base.rglob("*.py"):
            rel = py.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if folder == "wardcrf" and parts and parts[0] in ("screens", "sync", "photos"):
                continue
            mods.append(".".join([pkg, *parts]))
    return sorted(set(mods))


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)],
        check=True,
        capture_output=True,
    )
    [wheel] = list(dist.glob("wardcrf-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "wardcrf/schema.sql" in names
    for pkg in ("wardcrf/screens/__init__.py", "wardcrf/sync/__init__.py", "wardcrf/photos/__init__.py"):
        assert pkg in names, f"{pkg} missing from the wheel"
    for toml in (ROOT / "wardcrf" / "protocols").glob("*.toml"):
        assert f"wardcrf/protocols/{toml.name}" in names
    for tcss in (ROOT / "screens").rglob("*.tcss"):  # beside each module, sub-folders too
        assert f"wardcrf/screens/{tcss.relative_to(ROOT / 'screens').as_posix()}" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDCRF_")}
    env["WARDCRF_PASSWORD"] = "wheel-test-password"
    # Run from a neutral directory so the source tree cannot shadow the installed package.
    mods = _source_modules()
    code = "import importlib,sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    r = subprocess.run([str(py), "-c", code, *mods], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    exe = venv / "bin" / "wardcrf"
    r = subprocess.run([str(exe), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "init" in r.stdout, r.stderr
    r = subprocess.run(
        [
            str(exe),
            "init",
            "--site",
            "W1",
            "--device",
            "wheel",
            "--admin",
            "admin",
            "--data-dir",
            str(tmp_path / "site"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    env.update(WARDCRF_USER="admin", WARDCRF_DATA_DIR=str(tmp_path / "site"))
    r = subprocess.run([str(exe), "audit", "verify"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
