"""Every export and report on the demo site (`wardcrf demo --no-tui`), with the real photo store."""

from __future__ import annotations

import importlib.resources
import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo") / "site"
    code, _out, err = es.run_cli(data_dir, "demo", "--no-tui", "--password", es.PASSWORD, user="admin")
    assert code == 0, err
    return data_dir


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "site"
    shutil.copytree(demo_template, dst, ignore=shutil.ignore_patterns("*.lock"))
    return dst


def test_every_export_runs_on_the_demo_site(demo_template, tmp_path):
    import xmlschema

    for args in (
        ("export", "csv", "--out", str(tmp_path / "csv")),
        ("export", "odm", "--out", str(tmp_path / "demo.xml")),
        ("export", "sdtm", "--out", str(tmp_path / "sdtm")),
        ("report", "outcomes", "--format", "html", "--out", str(tmp_path / "o.html")),
        ("report", "safety", "--format", "html", "--out", str(tmp_path / "s.html")),
    ):
        code, _, err = es.run_cli(demo_template, *args, user="coordinator")
        assert code == 0, (args, err)
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(tmp_path / "demo.xml"))) == []
    assert (tmp_path / "csv" / "forms" / "consent.csv").exists()
    code, out, _ = es.run_cli(demo_template, "report", "outcomes", "--format", "json", user="auditor")
    data = json.loads(out)
    assert data["demographics"]["n"] == 7
    ct = next(m for m in data["markers"] if m["key"] == "total")
    assert ct["wilcoxon"]["method"] and ct["n_paired"] >= 1


def test_audit_pdf_on_the_demo_site_verifies_the_consent_photo(demo_template, tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "p1.pdf"
    code, _, err = es.run_cli(
        demo_template, "report", "audit", "--out", str(out), "-p", "WUH01-001", user="auditor"
    )
    assert code == 0, err
    text = "\n".join(p.extract_text() for p in PdfReader(str(out)).pages)
    assert "verified: the stored original hashes to this SHA-256" in text
    assert "meaning: witnessed" in text


def test_audit_pdf_shows_a_tampered_photo_as_failed(demo, tmp_path):
    from pypdf import PdfReader

    from wardcrf.site import Site

    s = Site.open(demo).unlock("admin", es.PASSWORD)
    try:
        # A consent page (the demo also holds cold-chain handover sheets, not in a casebook).
        sha = s.store.scalar(
            "SELECT b.sha256 FROM photo_bindings b JOIN records r ON r.event_id = b.record_event"
            " WHERE r.form = 'consent' LIMIT 1"
        )
        # Tampering below the application, as an attacker with the raw key would: triggers dropped.
        s.store.execute("DROP TRIGGER photo_blobs_no_update")
        s.store.execute("UPDATE photo_blobs SET data = ? WHERE sha256 = ?", (b"altered", sha))
    finally:
        s.close()
    out = tmp_path / "all.pdf"
    code, _, err = es.run_cli(demo, "report", "audit", "--out", str(out), user="auditor")
    assert code == 0, err
    text = "\n".join(p.extract_text() for p in PdfReader(str(out)).pages)
    assert "FAILED" in text and sha[:16] in text
    assert "problem(s)" in text  # the verification page reports it too


def test_plain_copy_of_the_demo_site_leaves_photographs_and_keys_behind(demo, tmp_path):
    import sqlite3

    from wardcrf.site import Site

    s = Site.open(demo).unlock("admin", es.PASSWORD)
    try:
        n_photos = s.store.scalar("SELECT count(*) FROM photos")  # consent pages and handover sheets
    finally:
        s.close()
    out = tmp_path / "analysis.db"
    code, _, err = es.run_cli(demo, "export", "sqlite", "--out", str(out), "--yes")
    assert code == 0, err
    con = sqlite3.connect(out)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not tables & {"device_keys", "photo_blobs", "photo_previews"}
        assert (
            con.execute("SELECT count(*) FROM photos").fetchone()[0] == n_photos
        )  # metadata and hashes stay
    finally:
        con.close()


def test_sdtm_check_is_clean_on_the_demo_site(demo_template, tmp_path):
    """`wardcrf demo` seeds what a reviewer expects to find: the conformance check has no error."""
    import csv

    out = tmp_path / "sdtm"
    code, stdout, err = es.run_cli(
        demo_template, "export", "sdtm", "--out", str(out), "--check", user="coordinator"
    )
    assert code == 0, stdout + err
    assert "errors: 0;" in stdout and stdout.rstrip().endswith("clean")
    assert stdout.endswith((out / "conformance.txt").read_text())
    with (out / "csv" / "ds.csv").open(newline="") as fh:
        ends = [r for r in csv.DictReader(fh) if r["DSSCAT"] == "STUDY PARTICIPATION"]
    assert len(ends) == 6 and {r["DSDECOD"] for r in ends} == {"COMPLETED"}  # the seventh is mid-course
