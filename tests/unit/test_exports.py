"""Exports on a ward holding a MEXCOVID-shaped cohort: CSV, ODM 1.3.2 (XSD-validated), SDTM, plain SQLite."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

ODM_NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}


@pytest.fixture(scope="module")
def ward_template(tmp_path_factory: pytest.TempPathFactory) -> es.CohortSite:
    return es.make_ward(tmp_path_factory.mktemp("ward") / "site")


@pytest.fixture
def ward(ward_template: es.CohortSite, tmp_path: Path) -> es.CohortSite:
    """A private copy per test (exports that record events must not leak into other tests)."""
    dst = tmp_path / "site"
    shutil.copytree(ward_template.data_dir, dst, ignore=shutil.ignore_patterns("*.lock"))
    return es.CohortSite(dst, ward_template.cohort, ward_template.users)


@pytest.fixture(scope="module")
def odm_schema():
    import importlib.resources

    import xmlschema

    path = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    return xmlschema.XMLSchema(str(path))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


# -- CSV -------------------------------------------------------------------------------------


def test_csv_export_writes_forms_dictionary_audit_trail_and_checksums(ward, tmp_path):
    out = tmp_path / "csv"
    code, stdout, err = es.run_cli(ward.data_dir, "export", "csv", "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["files"]["forms/dose.csv"] == 35
    doses = read_csv(out / "forms" / "dose.csv")
    first = next(r for r in doses if r["record_id"] == ward.cohort.signed_record)
    # long format: provenance, then each field with its unit
    assert first["participant"] == "WUH01-001" and first["entered_site"] == "WUH01"
    assert first["entered_by"] == "clinician" and first["protocol_version"] == "1.0"
    assert first["particles"] == "200000000" and first["particles_unit"] == "particles"
    assert first["volume"] == "6.5" and first["volume_unit"] == "mL"  # current value after the amendment
    assert first["versions"] == "2"
    vitals = read_csv(out / "forms" / "vitals.csv")
    assert {r["temp_unit"] for r in vitals} == {"C"} and len(vitals) == 70
    ae = read_csv(out / "forms" / "ae.csv")
    assert any("吸入后咳嗽" in r["term"] for r in ae)  # UTF-8 text survives
    dictionary = read_csv(out / "data_dictionary.csv")
    temp = next(r for r in dictionary if r["form"] == "vitals" and r["field"] == "temp")
    assert temp["unit"] == "C" and temp["cdisc"] == "VSTESTCD=TEMP" and temp["hard_min"]
    sev = next(r for r in dictionary if r["form"] == "screening" and r["field"] == "severity")
    assert "severe=Severe" in sev["choices"]
    trail = read_csv(out / "audit_trail.csv")
    change = next(r for r in trail if r["event_type"] == "record.amended")
    assert change["record"] == ward.cohort.signed_record and change["field"] == "volume"
    assert change["old_value"] == "6 mL" and change["new_value"] == "6.5 mL"
    assert "syringe" in change["reason"] and change["user"] == "clinician"
    assert change["full_name"] == "Clinician of WUH01"
    sigs = [r for r in trail if r["event_type"] == "signature.applied"]
    assert len(sigs) == 3 and all(
        r["new_value"].startswith("Investigator of WUH01 signed sha256:") for r in sigs
    )
    # SHA256SUMS in sha256sum format covers every file written
    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(summary["files"])
    for line in sums:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest


def test_csv_export_refuses_a_non_empty_directory(ward, tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "old.csv").write_text("x")
    code, _, err = es.run_cli(ward.data_dir, "export", "csv", "--out", str(out))
    assert code == 2 and "not an empty directory" in err
    assert sorted(p.name for p in out.iterdir()) == ["old.csv"]


def test_exports_need_the_export_permission(ward, tmp_path):
    code, _, err = es.run_cli(ward.data_dir, "export", "csv", "--out", str(tmp_path / "x"), user="clinician")
    assert code == 1 and "role clinician may not" in err and "coordinator" in err
    assert not (tmp_path / "x").exists()
    # the auditor reads and exports (never writes)
    code, _, err = es.run_cli(ward.data_dir, "export", "csv", "--out", str(tmp_path / "y"), user="auditor")
    assert code == 0, err


# -- ODM -------------------------------------------------------------------------------------


def test_odm_export_validates_against_the_official_xsd(ward, tmp_path, odm_schema):
    out = tmp_path / "trial.xml"
    code, stdout, err = es.run_cli(ward.data_dir, "export", "odm", "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary == {
        "out": str(out),
        "subjects": 7,
        "records": 199,
        "signatures": 3,
        "audit_records": summary["audit_records"],
    }
    errors = list(odm_schema.iter_errors(str(out)))
    assert errors == []


def test_odm_carries_metadata_audit_records_and_signatures(ward, tmp_path):
    import xml.etree.ElementTree as ET

    out = tmp_path / "trial.xml"
    assert es.run_cli(ward.data_dir, "export", "odm", "--out", str(out))[0] == 0
    root = ET.parse(out).getroot()
    assert root.get("ODMVersion") == "1.3.2"
    mdv = root.find("odm:Study/odm:MetaDataVersion", ODM_NS)
    assert mdv.get("OID") == "MDV.MEXCOVID.1.0"
    temp = mdv.find("odm:ItemDef[@OID='I.vitals.temp']", ODM_NS)
    assert temp.get("DataType") == "float"
    assert temp.find("odm:MeasurementUnitRef", ODM_NS).get("MeasurementUnitOID") == "MU.C"
    assert temp.find("odm:Alias", ODM_NS).get("Name") == "VSTESTCD=TEMP"
    assert {rc.get("SoftHard") for rc in temp.findall("odm:RangeCheck", ODM_NS)} == {"Hard", "Soft"}
    assert mdv.find("odm:ItemDef[@OID='I.ae.term']", ODM_NS).get("SDSVarName") == "AETERM"
    sev = mdv.find("odm:CodeList[@OID='CL.screening.severity']", ODM_NS)
    langs = {
        t.get("{http://www.w3.org/XML/1998/namespace}lang")
        for t in sev.iter("{http://www.cdisc.org/ns/odm/v1.3}TranslatedText")
    }
    assert langs == {"en", "zh"}
    admin = root.find("odm:AdminData", ODM_NS)
    assert (
        admin.find("odm:User[@OID='USR.investigator']/odm:FullName", ODM_NS).text == "Investigator of WUH01"
    )
    assert admin.find("odm:Location[@OID='LOC.WUH01']", ODM_NS) is not None
    assert admin.find("odm:SignatureDef[@OID='SD.approved']/odm:Meaning", ODM_NS).text == "approved"
    # the signed, then amended dose: its series of FormData in time order -- entry (Insert, 6 mL),
    # signature (Context, "changed since signed"), amendment (Update, 6.5 mL, with its reason)
    forms = root.findall(f".//odm:FormData[@FormRepeatKey='{ward.cohort.signed_record}']", ODM_NS)
    assert [f.get("TransactionType") for f in forms] == ["Insert", "Context", "Update"]
    insert, signed, update = forms
    assert insert.find("odm:ItemGroupData/odm:ItemData[@ItemOID='I.dose.volume']", ODM_NS).get("Value") == "6"
    assert (
        update.find("odm:ItemGroupData/odm:ItemData[@ItemOID='I.dose.volume']", ODM_NS).get("Value") == "6.5"
    )
    assert "syringe" in update.find("odm:AuditRecord/odm:ReasonForChange", ODM_NS).text
    assert signed.find("odm:Signature/odm:SignatureRef", ODM_NS).get("SignatureOID") == "SD.approved"
    assert "changed since signed" in signed.find("odm:Annotation/odm:Comment", ODM_NS).text
    valid = root.findall(f".//odm:FormData[@FormRepeatKey='{ward.cohort.valid_signature_record}']", ODM_NS)
    assert all(f.find("odm:Annotation", ODM_NS) is None for f in valid)
    subjects = root.findall(f".//odm:SubjectData[@SubjectKey='{ward.cohort.participants[-1]}']", ODM_NS)
    # the casebook sign-off, after the data it signs
    assert [sd.get("TransactionType") for sd in subjects] == ["Upsert", "Context"]
    assert subjects[1].find("odm:Signature", ODM_NS) is not None
    sigs = root.findall(".//odm:Signature", ODM_NS)
    assert len(sigs) == 3 and len({s.get("ID") for s in sigs}) == 3
    audits = root.findall("odm:ClinicalData/odm:AuditRecords/odm:AuditRecord", ODM_NS)
    assert any("user.added" in a.find("odm:SourceID", ODM_NS).text for a in audits)
    assert all(
        a.find("odm:ReasonForChange", ODM_NS) is None
        for a in audits
        if "user.added" in a.find("odm:SourceID", ODM_NS).text
    )


def test_odm_keeps_the_logs_order_for_a_signature_and_an_amendment_in_one_millisecond(ward, tmp_path):
    """Two events stamped the same millisecond (a fast machine, or a pinned clock) keep the log's order.

    CI met it: a record signed, then amended within one millisecond, came out
    as Insert, Update, Context, as if the amendment had preceded the signature.
    """
    import xml.etree.ElementTree as ET
    from datetime import timedelta

    from wardcrf import clock, records, signatures
    from wardcrf.site import Site

    site = Site.open(ward.data_dir)
    inv = site.unlock(ward.users["investigator"], es.PASSWORD)
    clin = site.unlock(ward.users["clinician"], es.PASSWORD)
    target = ward.cohort.valid_signature_record
    with clock.pinned(clock.now_utc() + timedelta(minutes=1)):  # after the cohort, one instant
        signatures.sign(inv, target=target, meaning="approved", password=es.PASSWORD)
        records.amend(clin, target, {"volume": es.u(6.5, "mL")}, reason="volume misread; 6.5 mL drawn")
    out = tmp_path / "trial.xml"
    assert es.run_cli(ward.data_dir, "export", "odm", "--out", str(out))[0] == 0
    forms = ET.parse(out).getroot().findall(f".//odm:FormData[@FormRepeatKey='{target}']", ODM_NS)
    # entry; the cohort's "reviewed" signature; then, in one millisecond, "approved" and the amendment
    assert [f.get("TransactionType") for f in forms] == ["Insert", "Context", "Context", "Update"]


def test_odm_refuses_a_directory_as_output(ward, tmp_path):
    code, _, err = es.run_cli(ward.data_dir, "export", "odm", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


# -- SDTM ------------------------------------------------------------------------------------


def test_sdtm_datasets_read_back_with_their_controlled_terms(ward, tmp_path):
    """The SDTM package on the MEXCOVID-shaped cohort (the findings of issue 18 have tests in test_sdtm.py)."""
    out = tmp_path / "sdtm"
    code, stdout, err = es.run_cli(ward.data_dir, "export", "sdtm", "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["datasets"]["DM"] == 7 and summary["datasets"]["EX"] == 35
    dm = read_csv(out / "csv" / "dm.csv")
    assert {r["SEX"] for r in dm} == {"M", "F"} and {r["AGEU"] for r in dm} == {"YEARS"}
    assert dm[0]["USUBJID"] == "MEXCOVID-WUH01-001" and dm[0]["RFXSTDTC"] == "2020-03-17T09:00:00"
    ex = read_csv(out / "csv" / "ex.csv")
    assert {r["EXROUTE"] for r in ex} == {"RESPIRATORY (INHALATION)"}
    assert {r["EXDOSFRQ"] for r in ex} == {"QD"} and {r["EXDOSE"] for r in ex} == {"200000000"}
    assert [r["EXSTDY"] for r in ex[:5]] == ["1", "2", "3", "4", "5"]
    vs = read_csv(out / "csv" / "vs.csv")
    assert {r["VSTESTCD"]: r["VSORRESU"] for r in vs} == {
        "TEMP": "C",
        "PULSE": "beats/min",
        "RESP": "breaths/min",
        "OXYSAT": "%",
    }
    pe = next(r for r in read_csv(out / "csv" / "ae.csv") if r["AETERM"] == "Pulmonary embolism")
    assert (pe["AESER"], pe["AESEV"], pe["AETOXGR"], pe["AESHOSP"], pe["AEREL"], pe["AEOUT"]) == (
        "Y",
        "SEVERE",
        "3",
        "Y",
        "UNLIKELY",
        "RECOVERING/RESOLVING",
    )
    rs = read_csv(out / "csv" / "rs.csv")
    totals = [r for r in rs if r["RSTESTCD"] == "CTTOTAL"]
    assert len(totals) == 14 and {r["RSCAT"] for r in rs} == {"CHEST CT SEVERITY SCORE"}
    first = next(r for r in totals if r["USUBJID"] == "MEXCOVID-WUH01-001" and r["VISIT"] == "BASELINE")
    assert first["RSSTRESN"] == "51" and first["RSLOBXFL"] == "Y"
    not_done = [r for r in rs if r["RSSTAT"] == "NOT DONE"]
    assert not_done and all(r["RSREASND"] == "NOT EVALUABLE" and r["RSORRES"] == "" for r in not_done)


def test_sdtm_refuses_without_permission(ward, tmp_path):
    code, _, err = es.run_cli(ward.data_dir, "export", "sdtm", "--out", str(tmp_path / "s"), user="dsmg")
    assert code == 1 and "may not" in err


# -- plain SQLite ----------------------------------------------------------------------------


def test_sqlite_copy_needs_confirmation_and_saves_nothing_without_it(ward, tmp_path):
    from wardcrf.site import Site

    out = tmp_path / "plain.db"
    code, _, err = es.run_cli(ward.data_dir, "export", "sqlite", "--out", str(out))
    assert code == 2 and "--yes" in err and "encryption" in err
    assert not out.exists() and not list(tmp_path.glob("plain.db*"))
    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'export.plaintext'") == 0
    finally:
        s.close()


def test_sqlite_copy_is_plain_complete_without_keys_and_recorded(ward, tmp_path):
    from wardcrf.site import Site

    out = tmp_path / "plain.db"
    code, stdout, err = es.run_cli(ward.data_dir, "export", "sqlite", "--out", str(out), "--yes", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    con = sqlite3.connect(out)  # the standard library opens it: no encryption
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "device_keys" not in tables and {"events", "records", "amendments", "signatures"} <= tables
        n_events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute("DELETE FROM events")
    finally:
        con.close()
    assert summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    s = Site.open(ward.data_dir).unlock("auditor", es.PASSWORD)
    try:
        rows = s.store.rows("SELECT user, line FROM events WHERE type = 'export.plaintext'")
        assert s.store.scalar("SELECT count(*) FROM events") == n_events + 1
    finally:
        s.close()
    assert len(rows) == 1 and rows[0]["user"] == "coordinator"
    body = json.loads(rows[0]["line"])["body"]
    assert body["sha256"] == summary["sha256"] and body["file"] == "plain.db"


def test_sqlite_copy_is_refused_to_roles_without_plaintext_permission(ward, tmp_path):
    out = tmp_path / "plain.db"
    code, _, err = es.run_cli(ward.data_dir, "export", "sqlite", "--out", str(out), "--yes", user="auditor")
    assert code == 1 and "unencrypted" in err
    assert not out.exists()


def test_sqlite_copy_never_overwrites(ward, tmp_path):
    out = tmp_path / "plain.db"
    out.write_bytes(b"keep me")
    code, _, err = es.run_cli(ward.data_dir, "export", "sqlite", "--out", str(out), "--yes")
    assert code == 2 and "already exists" in err and out.read_bytes() == b"keep me"


# -- progress and provenance ---------------------------------------------------------------


def test_exports_report_progress_over_every_record(ward, tmp_path):
    from wardcrf.exports.csv_export import export_csv
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.progress import CountingProgress
    from wardcrf.site import Site

    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        progress = CountingProgress()
        ds = Dataset.for_session(s)
        export_csv(ds, tmp_path / "csv", progress)
        n_records, n_events = ds.count_records(), s.store.scalar("SELECT count(*) FROM events")
        site_row = ds.site_row
    finally:
        s.close()
    assert progress.tasks == [("records", n_records), ("audit trail", n_events)]
    assert progress.done == n_records + n_events
    # every writer names the site from the typed `SiteRow` (issue #16): its keys are the columns read
    from typed_support import assert_shape

    from wardcrf.exports.dataset import SiteRow

    assert_shape(site_row, SiteRow)


def test_arrival_names_the_sync_bundle_an_event_came_in():
    """The hub's record of applied bundles (sync's `sync_applied` shape) is what the audit PDF cites."""
    from wardcrf.reports.evidence import arrival
    from wardcrf.store import Store

    store = Store.memory()
    assert arrival(store, "WARD1", 3, this_device="HUB1").endswith("keeps no sync bundle records)")
    store.execute(
        "CREATE TABLE sync_applied (device TEXT, bundle_seq INTEGER, manifest_sha TEXT, first_seq INTEGER,"
        " last_seq INTEGER, chain_last TEXT, file TEXT, applied_at TEXT)"
    )
    store.execute(
        "INSERT INTO sync_applied VALUES ('WARD1', 7, 'abc123', 1, 10, 'h', 'b.tar', '2020-03-20T01:00:00Z')"
    )
    assert arrival(store, "WARD1", 3, this_device="HUB1") == (
        "arrived from device WARD1 in bundle 7 (manifest sha256:abc123), applied 2020-03-20T01:00:00Z"
    )
    assert "no bundle record" in arrival(store, "WARD1", 11, this_device="HUB1")
    assert arrival(store, "HUB1", 1, this_device="HUB1") == "created on this device"


def test_rich_progress_bar_adapter_draws_each_task(ward, tmp_path):
    import io

    from rich.console import Console
    from rich.progress import Progress

    from wardcrf.cli.export_cmds import _RichProgress
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import export_sdtm
    from wardcrf.site import Site

    buf = io.StringIO()
    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        with Progress(console=Console(file=buf, force_terminal=True, width=100)) as p:
            export_sdtm(Dataset.for_session(s), tmp_path / "sdtm", _RichProgress(p))
            task = p.tasks[0]
    finally:
        s.close()
    assert task.description == "participants" and task.completed == task.total == 7


def test_records_under_two_protocol_versions_keep_their_own_metadata(ward, tmp_path, odm_schema):
    import xml.etree.ElementTree as ET

    from wardcrf import protocol, records
    from wardcrf.site import Site

    source = protocol.default_source().replace('version = "1.0"', 'version = "1.1"', 1)
    source = source.replace(
        "[forms.vitals.fields.dose]",
        '[forms.vitals.fields.position]\ntype = "text"\nlabel = { en = "Position" }\n\n[forms.vitals.fields.dose]',
        1,
    )
    s = Site.open(ward.data_dir).unlock("investigator", es.PASSWORD)
    try:
        protocol.load(s, protocol.parse(source, "mexcovid-1.1.toml"))
        new = records.submit(
            s,
            "vitals",
            {
                "timepoint": "unscheduled",
                "time": "2020-03-30T10:00:00+08:00",
                "temp": es.u(36.9, "C"),
                "position": "sitting",
            },
            subject="participant:WUH01-001",
        )
    finally:
        s.close()
    out = tmp_path / "two.xml"
    assert es.run_cli(ward.data_dir, "export", "odm", "--out", str(out))[0] == 0
    assert list(odm_schema.iter_errors(str(out))) == []
    root = ET.parse(out).getroot()
    mdvs = [m.get("OID") for m in root.findall("odm:Study/odm:MetaDataVersion", ODM_NS)]
    assert mdvs == ["MDV.MEXCOVID.1.0", "MDV.MEXCOVID.1.1"]
    clinical = {c.get("MetaDataVersionOID"): c for c in root.findall("odm:ClinicalData", ODM_NS)}
    assert set(clinical) == set(mdvs)
    assert (
        clinical["MDV.MEXCOVID.1.1"].find(f".//odm:FormData[@FormRepeatKey='{new.id}']", ODM_NS) is not None
    )
    assert clinical["MDV.MEXCOVID.1.0"].find(f".//odm:FormData[@FormRepeatKey='{new.id}']", ODM_NS) is None
    csv_out = tmp_path / "csv"
    assert es.run_cli(ward.data_dir, "export", "csv", "--out", str(csv_out))[0] == 0
    vitals = {r["record_id"]: r for r in read_csv(csv_out / "forms" / "vitals.csv")}
    assert vitals[new.id]["position"] == "sitting" and vitals[new.id]["protocol_version"] == "1.1"
    versions = {r["protocol_version"] for r in read_csv(csv_out / "data_dictionary.csv") if r["protocol_id"]}
    assert versions == {"1.0", "1.1"}
    # a record captured under 1.0 was never asked the field 1.1 added
    old = next(r for r in vitals.values() if r["protocol_version"] == "1.0")
    assert (
        old["position"] == ""
        and old["position_missing"] == "NASK"
        and vitals[new.id]["position_missing"] == ""
    )
