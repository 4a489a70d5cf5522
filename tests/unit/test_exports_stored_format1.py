"""Exports of a stored format-1 version the engine cannot run (issue 17; docs/exports.md, "Trial design").

Every format-1 version runs on the engine through `protocol.run_as`; one stored before that the engine
cannot run is read as stored (`run_as` gives it unchanged, with no model) and its records stay readable
forever. Its exports take the generic path: the regimen and criteria as `engine.protocol_v1` reads its
`[schedule]` and `[eligibility]`, the documented default design, each findings domain fed by the forms
whose fields declare its tests. Here the cohort's records are captured under MEXCOVID 1.0 on the engine,
then the version is read as stored (`read_as_stored`: no re-encoding, `engine` None), as such a site
reads it; the package must still be valid SDTM (XPT read back, Dataset-JSON schema, Define-XML XSD, the
conformance rules) and ODM (XSD), with every record.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es


@pytest.fixture
def read_as_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored MEXCOVID 1.0 read as a version the engine cannot run reads: no re-encoding runs it, so the
    exports have no model (what `tests/format1_stored.py` does for a version loaded before the engine)."""
    from wardcrf import protocol

    monkeypatch.setattr(protocol, "_THROUGH", [])
    monkeypatch.setattr(protocol, "_READ_THROUGH", {})


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return es.make_ward(tmp_path_factory.mktemp("stored1") / "site", n=3).data_dir


def _rows(out: Path, name: str) -> list[dict[str, str]]:
    path = out / "csv" / f"{name.lower()}.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _engine_of(ward: Path) -> Any:
    from wardcrf import protocol
    from wardcrf.site import Site

    s = Site.open(ward).unlock("coordinator", es.PASSWORD)
    try:
        return protocol.active(s.store).engine
    finally:
        s.close()


def test_the_cohort_runs_on_the_engine_and_reads_as_stored_without_it(ward, monkeypatch):
    assert _engine_of(ward) is not None  # MEXCOVID 1.0 on its re-encoding
    monkeypatch.setattr("wardcrf.protocol._THROUGH", [])
    monkeypatch.setattr("wardcrf.protocol._READ_THROUGH", {})
    assert _engine_of(ward) is None  # read as stored: what a version the engine cannot run gives


@pytest.mark.usefixtures("read_as_stored")
def test_a_stored_version_without_a_model_exports_valid_sdtm_with_its_records(ward, tmp_path):
    import jsonschema
    import pyreadstat
    import xmlschema

    assert _engine_of(ward) is None
    out = tmp_path / "sdtm"
    code, stdout, err = es.run_cli(ward, "export", "sdtm", "--out", str(out), "--check")
    assert code == 0, stdout + err
    assert "errors: 0" in stdout
    written = {p.stem.upper() for p in out.glob("*.xpt")}
    assert {"TS", "TA", "TE", "TV", "TI", "DM", "EX", "VS", "LB", "RS", "SV", "DS", "AE"} <= written
    # Subject data: every participant, every dose, the findings of every form declaring tests.
    assert [r["SUBJID"] for r in _rows(out, "DM")] == ["WUH01-001", "WUH01-002", "WUH01-003"]
    ex = _rows(out, "EX")
    assert len(ex) == 15 and {r["EXTRT"] for r in ex} == {"haMSC-Exos"}
    assert {(r["EXROUTE"], r["EXDOSFRQ"]) for r in ex} == {("RESPIRATORY (INHALATION)", "QD")}
    assert all(r["EXDOSU"] and r["EXDOSE"] for r in ex)
    assert {r["RSTESTCD"] for r in _rows(out, "RS")} >= {"CTSEG01", "CTTOTAL"}
    assert {r["LBTESTCD"] for r in _rows(out, "LB")} >= {"CRP", "LYM"}
    assert {r["VSTESTCD"] for r in _rows(out, "VS")} >= {"TEMP", "OXYSAT"}
    # The documented default design: visits from the administrations' days, none from a form's name.
    tv = [r["VISIT"] for r in _rows(out, "TV")]
    assert tv == ["BASELINE", *(f"DOSE {n}" for n in range(1, 6)), "POST-TREATMENT"]
    sv = {(r["USUBJID"], r["VISIT"]) for r in _rows(out, "SV")}
    assert ("MEXCOVID-WUH01-001", "BASELINE") in sv and ("MEXCOVID-WUH01-001", "DOSE 5") in sv
    dose1 = [r for r in _rows(out, "VS") if r["USUBJID"] == "MEXCOVID-WUH01-001" and r["VISIT"] == "DOSE 1"]
    assert {r["VSTPT"] for r in dose1} == {"PRE-DOSE", "POST-DOSE"}
    # TS's dose from the regimen, TI from the criteria as the engine reads [eligibility].
    ts = {r["TSPARMCD"]: r["TSVAL"] for r in _rows(out, "TS")}
    assert ts["TRT"] == "haMSC-Exos" and ts["DOSE"] and ts["DOSU"] and ts["SSTDTC"]
    ti = {r["IETESTCD"]: r["TIRL"] for r in _rows(out, "TI")}
    assert set(ti) == {"AGE", "PCR", "SEVERITY"} and all(ti.values())
    # CDISC's own validators.
    summary = {p.stem.upper(): len(_rows(out, p.stem)) for p in out.glob("*.xpt")}
    for name, n in summary.items():
        df, meta = pyreadstat.read_xport(str(out / f"{name.lower()}.xpt"))
        assert meta.table_name == name and len(df) == n, name
    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    validator = jsonschema.Draft201909Validator(schema)
    for name in summary:
        doc = json.loads((out / f"{name.lower()}.json").read_text("utf-8"))
        assert list(validator.iter_errors(doc)) == [], name
    xsd = importlib.resources.files("odmlib") / "schemas" / "define" / "2.1" / "define2-1-0.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "define.xml"))) == []
    # define.xml names the forms the collected values came from: those that fed the dataset
    define = (out / "define.xml").read_text("utf-8")
    for var, form in (
        ("RSORRES", "ct_score"),
        ("LBORRES", "labs"),
        ("VSORRES", "vitals"),
        ("EXDOSE", "dose"),
    ):
        item = define[define.index(f'Name="{var}"') :]
        assert f"Protocol form '{form}' (protocol.toml, [forms.{form}])" in item[: item.index("</ItemDef>")]


@pytest.mark.usefixtures("read_as_stored")
def test_a_stored_version_without_a_model_exports_valid_odm_with_its_records(ward, tmp_path):
    import xml.etree.ElementTree as ET

    import xmlschema

    out = tmp_path / "trial.xml"
    code, _, err = es.run_cli(ward, "export", "odm", "--out", str(out))
    assert code == 0, err
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out))) == []
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    root = ET.parse(out).getroot()
    # No visits declared: the Casebook event only, and every participant's records in it.
    assert [e.get("OID") for e in root.iterfind(".//odm:StudyEventDef", ns)] == ["SE.CASEBOOK"]
    subjects = {s.get("SubjectKey") for s in root.iterfind(".//odm:SubjectData", ns)}
    assert {"WUH01-001", "WUH01-002", "WUH01-003"} <= subjects
    forms = {f.get("FormOID") for f in root.iterfind(".//odm:FormData", ns)}
    assert {"F.dose", "F.vitals", "F.labs", "F.ct_score"} <= forms


@pytest.mark.usefixtures("read_as_stored")
def test_a_stored_version_without_a_model_reports_its_vital_signs_from_the_declared_tests(ward):
    """The vital signs followed over the dosing days are the number fields declaring a VSTESTCD test,
    labelled as the protocol labels them (no list of fields in code)."""
    from wardcrf import protocol

    code, out, err = es.run_cli(ward, "report", "outcomes", "--format", "json", user="auditor")
    assert code == 0, err
    data = json.loads(out)
    vitals = protocol.default_protocol().forms["vitals"].fields
    declared = {
        name: protocol.tr(fd.label)
        for name, fd in vitals.items()
        if fd.cdisc and fd.cdisc.startswith("VSTESTCD=") and fd.type in ("number", "integer")
    }
    assert {k: v["label"] for k, v in data["vitals"].items()} == declared
    temp = data["vitals"]["temp"]
    assert temp["unit"] == "C" and temp["after_inhalation_by_day"]["day 1"]["n"] == 3
    assert len(data["vital_series"]["temp"]) == 3  # one series per participant dosed
    code, md, err = es.run_cli(ward, "report", "outcomes", "--format", "md", user="auditor")
    assert code == 0, err
    assert all(label in md for label in declared.values())
