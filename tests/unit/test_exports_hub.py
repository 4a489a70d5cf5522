"""Exports and reports on a hub whose records came from two wards (the usual source).

At a SQLCipher hub and at a PostgreSQL one (`hub_engines.module_hub_engine`: the hub is made once per
engine), the wards' events ingested where the hub keeps them; the same files and reports from both.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, module_hub_engine: str) -> Path:
    base = tmp_path_factory.mktemp("hub")
    w1 = es.make_ward(base / "w1", "WUH01", prefix="", n=4)
    w2 = es.make_ward(base / "w2", "WUH02", prefix="b", n=3, start=1)
    return es.make_hub(base / "hub", [(w1.data_dir, "admin"), (w2.data_dir, "badmin")])


def test_hub_csv_and_sdtm_hold_both_wards(hub, tmp_path):
    code, _, err = es.run_cli(hub, "export", "csv", "--out", str(tmp_path / "csv"), user="hubcoordinator")
    assert code == 0, err
    with (tmp_path / "csv" / "forms" / "dose.csv").open(encoding="utf-8-sig") as fh:
        doses = list(csv.DictReader(fh))
    assert len(doses) == 35 and {d["entered_site"] for d in doses} == {"WUH01", "WUH02"}
    assert {d["participant"][:5] for d in doses} == {"WUH01", "WUH02"}
    code, _, err = es.run_cli(hub, "export", "sdtm", "--out", str(tmp_path / "sdtm"), user="hubcoordinator")
    assert code == 0, err
    with (tmp_path / "sdtm" / "csv" / "dm.csv").open() as fh:
        dm = list(csv.DictReader(fh))
    assert sorted(r["SITEID"] for r in dm) == ["WUH01"] * 4 + ["WUH02"] * 3


def test_hub_odm_validates_and_names_both_ward_locations(hub, tmp_path):
    import importlib.resources
    import xml.etree.ElementTree as ET

    import xmlschema

    out = tmp_path / "hub.xml"
    code, stdout, err = es.run_cli(hub, "export", "odm", "--out", str(out), "--json", user="hubauditor")
    assert code == 0, err
    assert json.loads(stdout)["subjects"] == 7
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out))) == []
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    root = ET.parse(out).getroot()
    locs = {loc.get("OID") for loc in root.findall("odm:AdminData/odm:Location", ns)}
    assert {"LOC.WUH01", "LOC.WUH02", "LOC.HUB"} <= locs
    assert root.get("Description") == "hub HUB"
    users = {u.get("OID") for u in root.findall("odm:AdminData/odm:User", ns)}
    assert {"USR.clinician", "USR.bclinician"} <= users


def test_hub_outcomes_pool_both_wards(hub):
    code, out, err = es.run_cli(hub, "report", "outcomes", "--format", "json", user="hubauditor")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == "hub" and data["demographics"]["n"] == 7
    ct = next(m for m in data["markers"] if m["key"] == "total")
    assert ct["n_paired"] == 7


def test_hub_audit_pdf_says_where_each_record_came_from(hub, tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "hub.pdf"
    code, _, err = es.run_cli(
        hub, "report", "audit", "--out", str(out), "--participant", "WUH02-001", user="hubauditor"
    )
    assert code == 0, err
    text = "\n".join(p.extract_text() for p in PdfReader(str(out)).pages)
    assert "Casebook of participant WUH02-001" in text and "Clinician of WUH02" in text
    assert "Reached this database: from device" in text
