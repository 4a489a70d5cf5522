"""ODM study metadata from a format-2 protocol: one StudyEventDef per visit with its FormRefs (issue 17).

The MEXCOVID ward exported with its format-2 re-encoding validates against
the ODM 1.3.2 XSD and loads in odmlib's strict loader, as every ODM export
does; PALM's visits are checked element by element.
"""

from __future__ import annotations

import importlib.resources
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

NS = {"o": "http://www.cdisc.org/ns/odm/v1.3"}


def test_palm_visits_become_study_events_with_the_forms_due_at_each():
    from wardcrf.engine import model
    from wardcrf.exports import odm_events

    m = model.shipped("palm.toml")
    oids = {f: f"F.{f}" for f in m.data["forms"] if f != "vital_status"}  # one form without a FormDef
    events = {ref["StudyEventOID"]: (ref, sed) for ref, sed in odm_events.study_events(m, oids)}
    assert list(events) == ["SE.SCR", "SE.INPT", "SE.D58", "SE.UNS"]  # D28 holds only vital_status: no event
    inpt = events["SE.INPT"][1]
    assert (inpt.get("Repeating"), inpt.get("Type"), inpt.get("Category")) == (
        "Yes",
        "Scheduled",
        "TREATMENT",
    )
    assert [(f.get("FormOID"), f.get("Mandatory")) for f in inpt.findall("FormRef")] == [
        ("F.vitals", "Yes"),
        ("F.labs", "No"),  # required = false
        ("F.ebov_pcr", "No"),
    ]
    assert "VISITNUM 2 to 15" in inpt.findtext("Description/TranslatedText")
    d58 = events["SE.D58"][1]
    assert [f.get("FormOID") for f in d58.findall("FormRef")] == [
        "F.disposition"
    ]  # the dangling one left out
    assert d58.findall("FormRef")[0].get("Mandatory") == "No"  # a `when` makes it conditional
    uns_ref, uns = events["SE.UNS"]
    assert uns.get("Type") == "Unscheduled" and uns_ref["Mandatory"] == "No"
    assert {f.get("Mandatory") for f in uns.findall("FormRef")} == {"No"}


@pytest.fixture(scope="module")
def engine_odm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wardcrf.engine import model
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.odm import export_odm
    from wardcrf.site import Site

    ward = es.make_ward(tmp_path_factory.mktemp("odm-engine") / "site", n=2)
    out = tmp_path_factory.mktemp("odm-out") / "trial.xml"
    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        export_odm(Dataset.for_session(s), out, model=model.shipped("mexcovid.toml"))
    finally:
        s.close()
    return out


def test_the_export_with_visit_events_validates_against_the_odm_xsd_and_odmlib(engine_odm):
    import xmlschema
    from odmlib import loader, odm_loader

    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(engine_odm))) == []
    ldr = loader.ODMLoader(odm_loader.XMLODMLoader())
    ldr.open_odm_document(str(engine_odm))
    odm = ldr.root()
    assert odm.validate(collect_errors=True) == [] and odm.verify_order()


def test_mexcovid_visits_are_events_beside_the_casebook_that_holds_the_data(engine_odm):
    root = ET.parse(engine_odm).getroot()
    mdv = root.find("o:Study/o:MetaDataVersion", NS)
    refs = [r.get("StudyEventOID") for r in mdv.findall("o:Protocol/o:StudyEventRef", NS)]
    assert refs == ["SE.CASEBOOK", "SE.BASELINE", "SE.DOSE", "SE.POSTTRT", "SE.UNSCHED"]
    defs = {d.get("OID"): d for d in mdv.findall("o:StudyEventDef", NS)}
    assert set(defs) == set(refs)
    forms = {f.get("OID") for f in mdv.findall("o:FormDef", NS)}
    for d in defs.values():  # every FormRef names a FormDef of the same MetaDataVersion
        assert {f.get("FormOID") for f in d.findall("o:FormRef", NS)} <= forms
    dose = defs["SE.DOSE"]
    assert dose.get("Repeating") == "Yes" and "VISITNUM 2 to 6" in dose.findtext(
        "o:Description/o:TranslatedText", namespaces=NS
    )
    assert [f.get("FormOID") for f in dose.findall("o:FormRef", NS)][:2] == ["F.dose", "F.vitals"]
    # The data stay in the Casebook event.
    events = {e.get("StudyEventOID") for e in root.iter("{http://www.cdisc.org/ns/odm/v1.3}StudyEventData")}
    assert events == {"SE.CASEBOOK"}
