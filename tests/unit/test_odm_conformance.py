"""ODM 1.3.2 beyond the XSD: odmlib's strict loader, signatures with IDs that say what they sign,
ReasonForChange only for reasons, no repeated non-repeating item groups."""

from __future__ import annotations

import importlib.resources
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
Q = "{http://www.cdisc.org/ns/odm/v1.3}"


@pytest.fixture(scope="module")
def demo_odm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo site (cold-chain custody signed at every handover) exported as ODM."""
    base = tmp_path_factory.mktemp("odmdemo")
    code, _out, err = es.run_cli(base / "site", "demo", "--no-tui", "--password", es.PASSWORD, user="admin")
    assert code == 0, err
    out = base / "demo.xml"
    code, _, err = es.run_cli(base / "site", "export", "odm", "--out", str(out), user="coordinator")
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def demo_dir(demo_odm: Path) -> Path:
    return demo_odm.parent / "site"


@pytest.fixture(scope="module")
def cohort_odm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, es.CohortSite]:
    base = tmp_path_factory.mktemp("odmcohort")
    ward = es.make_ward(base / "site")
    out = base / "cohort.xml"
    code, _, err = es.run_cli(ward.data_dir, "export", "odm", "--out", str(out))
    assert code == 0, err
    return out, ward


def both(demo_odm: Path, cohort_odm: tuple[Path, es.CohortSite]) -> list[Path]:
    return [demo_odm, cohort_odm[0]]


def test_odmlibs_strict_loader_loads_the_export(demo_odm, cohort_odm):
    from odmlib import loader, odm_loader
    from odmlib.mode import ValidationMode, get_mode

    assert get_mode() == ValidationMode.STRICT
    for path in both(demo_odm, cohort_odm):
        ldr = loader.ODMLoader(odm_loader.XMLODMLoader())
        ldr.open_odm_document(str(path))
        odm = ldr.root()  # raised "Missing required keyword argument ID in Signature" before
        assert odm.validate(collect_errors=True) == []
        assert odm.verify_order()


def test_the_export_validates_against_the_odm_1_3_2_xsd(demo_odm, cohort_odm):
    import xmlschema

    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    schema = xmlschema.XMLSchema(str(xsd))
    for path in both(demo_odm, cohort_odm):
        assert list(schema.iter_errors(str(path))) == []


def test_every_signature_has_an_id_appears_once_and_names_its_meaning(demo_odm):
    root = ET.parse(demo_odm).getroot()
    sigs = list(root.iter(f"{Q}Signature"))
    ids = [s.get("ID") for s in sigs]
    assert all(ids) and len(ids) == len(set(ids)) == 89  # the demo's 89 e-signatures, each once
    meanings = {sd.get("OID"): sd.find("odm:Meaning", NS).text for sd in root.iter(f"{Q}SignatureDef")}
    for s in sigs:
        assert meanings[s.find("odm:SignatureRef", NS).get("SignatureOID")]


def test_custody_signatures_say_what_they_sign_with_their_meaning(demo_odm):
    root = ET.parse(demo_odm).getroot()
    standalone = root.findall("odm:ClinicalData/odm:Signatures/odm:Signature", NS)
    assert len(standalone) == 67  # custody handovers, receipts, thaws: no participant to hang them on
    notes = {
        a.get("ID"): a.find("odm:Comment", NS).text
        for a in root.findall("odm:ClinicalData/odm:Annotations/odm:Annotation", NS)
    }
    for s in standalone:
        text = notes[f"ANN.{s.get('ID')}"]
        meaning = s.find("odm:SignatureRef", NS).get("SignatureOID").removeprefix("SD.").replace("_", " ")
        assert f"meaning '{meaning}'" in text and " signs coldchain." in text and " record " in text
        assert text.endswith(": valid") or text.endswith(": CHANGED SINCE SIGNED")


def test_signatures_on_participant_records_sit_on_the_form_they_sign_after_its_transactions(cohort_odm):
    path, ward = cohort_odm
    root = ET.parse(path).getroot()
    assert root.findall("odm:ClinicalData/odm:Signatures", NS) == []  # every one is inline
    for fd in root.iter(f"{Q}FormData"):
        if fd.find("odm:Signature", NS) is not None:
            assert fd.get("TransactionType") == "Context" and fd.find("odm:ItemGroupData", NS) is None
    key = ward.cohort.valid_signature_record
    series = root.findall(f".//odm:FormData[@FormRepeatKey='{key}']", NS)
    assert [f.get("TransactionType") for f in series] == ["Insert", "Context"]


def test_audit_records_use_reason_for_change_only_for_reasons(demo_odm, demo_dir, cohort_odm):
    """ReasonForChange is the person's reason from the event, or absent; the event type is in SourceID."""
    from wardcrf import eventlog
    from wardcrf.site import Site

    for path, data_dir in ((demo_odm, demo_dir), (cohort_odm[0], cohort_odm[1].data_dir)):
        root = ET.parse(path).getroot()
        s = Site.open(data_dir).unlock("auditor", es.PASSWORD)
        try:
            top = root.findall("odm:ClinicalData/odm:AuditRecords/odm:AuditRecord", NS)
            assert top
            for ar in top:
                source = ar.find("odm:SourceID", NS).text
                event_id, _, rest = source.removeprefix("wardcrf event ").partition(": ")
                e = eventlog.get(s.store, event_id)
                assert e is not None and rest.split(" ")[0] == e.type
                reason = ar.find("odm:ReasonForChange", NS)
                assert (reason.text if reason is not None else None) == e.reason
            for fd in root.iter(f"{Q}FormData"):
                ar = fd.find("odm:AuditRecord", NS)
                if fd.get("TransactionType") == "Update":
                    e = eventlog.get(s.store, ar.find("odm:SourceID", NS).text)
                    assert e.type == "record.amended" and ar.find("odm:ReasonForChange", NS).text == e.reason
                elif ar is not None:
                    assert ar.find("odm:ReasonForChange", NS) is None  # a first entry changes nothing
        finally:
            s.close()


def test_no_form_repeats_a_non_repeating_item_group_and_repeating_forms_have_keys(demo_odm, cohort_odm):
    for path in both(demo_odm, cohort_odm):
        root = ET.parse(path).getroot()
        igdefs = {d.get("OID"): d for d in root.iter(f"{Q}ItemGroupDef")}
        formdefs = {d.get("OID"): d for d in root.iter(f"{Q}FormDef")}
        for fd in root.iter(f"{Q}FormData"):
            if formdefs[fd.get("FormOID")].get("Repeating") == "Yes":
                assert fd.get("FormRepeatKey")
            groups = fd.findall("odm:ItemGroupData", NS)
            for oid, n in Counter(g.get("ItemGroupOID") for g in groups).items():
                if igdefs[oid].get("Repeating") == "Yes":
                    keys = [g.get("ItemGroupRepeatKey") for g in groups if g.get("ItemGroupOID") == oid]
                    assert all(keys) and len(set(keys)) == len(keys)
                else:
                    assert n == 1, f"FormData {fd.get('FormRepeatKey')} repeats non-repeating {oid}"
            assert len(fd.findall("odm:Signature", NS)) <= 1
