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
def engine_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """The MEXCOVID ward's ODM export with the format-2 file's visits, and whether the ward's version is a
    format-2 version of its own (`--mexcovid-engine`: its records are placed in visit occurrences) or
    MEXCOVID 1.0 as stored, format 1's text run through its re-encoding (its records keep their version,
    read as stored by the exports: the data stay in the Casebook)."""
    from wardcrf import protocol
    from wardcrf.engine import loading, model
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.odm import export_odm
    from wardcrf.site import Site

    ward = es.make_ward(tmp_path_factory.mktemp("odm-engine") / "site", n=2)
    out = tmp_path_factory.mktemp("odm-out") / "trial.xml"
    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        active = protocol.active(s.store).engine
        runs = active is not None and not loading.reencodes(active)
        export_odm(Dataset.for_session(s), out, model=model.shipped("mexcovid.toml"))
    finally:
        s.close()
    return out, runs


@pytest.fixture(scope="module")
def engine_odm(engine_site: tuple[Path, bool]) -> Path:
    return engine_site[0]


def test_the_export_with_visit_events_validates_against_the_odm_xsd_and_odmlib(engine_odm):
    import xmlschema
    from odmlib import loader, odm_loader

    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(engine_odm))) == []
    ldr = loader.ODMLoader(odm_loader.XMLODMLoader())
    ldr.open_odm_document(str(engine_odm))
    odm = ldr.root()
    assert odm.validate(collect_errors=True) == [] and odm.verify_order()


def test_mexcovid_visits_are_events_beside_the_casebook_that_holds_the_data(engine_site):
    engine_odm, runs_engine = engine_site
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
    o = "{http://www.cdisc.org/ns/odm/v1.3}"
    events = {e.get("StudyEventOID") for e in root.iter(o + "StudyEventData")}
    if not runs_engine:
        # MEXCOVID 1.0 as stored, exported with its re-encoding's visits: the data stay in the Casebook event.
        assert events == {"SE.CASEBOOK"}
        return
    # A format-2 version of its own: each record in the visit occurrence the engine placed it in
    # (docs/engine.md, "One owner of visit placement"); a form no visit holds stays in the Casebook.
    assert events <= set(refs) and {"SE.CASEBOOK", "SE.BASELINE", "SE.DOSE"} <= events
    subjects = [x for x in root.iter(o + "SubjectData") if x.findall(o + "StudyEventData")]
    assert len(subjects) == 2
    for subject in subjects:  # (a SubjectData without events is another ClinicalData's: audit, signatures)
        placed = {
            (e.get("StudyEventOID"), e.get("StudyEventRepeatKey")): {
                f.get("FormOID") for f in e.findall(o + "FormData")
            }
            for e in subject.findall(o + "StudyEventData")
        }
        once = {oid: forms for (oid, _k), forms in placed.items() if oid != "SE.DOSE"}
        assert {"F.consent", "F.screening", "F.enrollment"} <= once["SE.BASELINE"], placed
        assert "F.demographics" in once["SE.CASEBOOK"], placed
        doses = sorted(int(k) for (oid, k), forms in placed.items() if oid == "SE.DOSE" and "F.dose" in forms)
        assert doses == list(range(1, len(doses) + 1)) and doses  # dose N in the DOSE occurrence N
