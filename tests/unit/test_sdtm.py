"""The SDTM submission package (issue 18): SDTMIG 3.4 datasets, XPT v5, Define-XML 2.1, Dataset-JSON 1.1.

One ward holds three MEXCOVID-shaped participants plus what a real trial
brings: conmeds, a completed, a withdrawn and a dead participant with their
dispositions, a screen failure, an AE whose dose was delayed, an AE term in
Chinese with a tab and far more than 200 transliterated characters,
unscheduled labs and vitals. Every export is checked by an official
validator: pyreadstat reads the XPT back, the Define-XML 2.1 XSD shipped in
odmlib validates define.xml, CDISC's Dataset-JSON schema validates the JSON.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

LONG_TERM = "吸入后咳嗽" * 30  # 150 characters recorded; about 500 once transliterated


def _extra_records(data_dir: Path) -> None:
    from wardcrf import records
    from wardcrf.site import Site

    clin = Site.open(data_dir).unlock("clinician", es.PASSWORD)
    try:
        p1, p2, p3 = "participant:WUH01-001", "participant:WUH01-002", "participant:WUH01-003"
        d = date(2020, 3, 17)  # WUH01-001's first dose (002: +1 day, 003: +2 days)
        records.submit(
            clin, "conmed", {"category": "antiviral", "name": "umifenovir", "start": "2020-03-10"}, subject=p1
        )
        records.submit(
            clin,
            "conmed",
            {
                "category": "convalescent_plasma",
                "plasma_volume": es.u(200, "mL"),
                "plasma_titre": es.u(640, "1/dilution"),
                "plasma_time": es.at(d + timedelta(days=1), 14),
            },
            subject=p1,
        )
        records.submit(
            clin,
            "labs",
            {"timepoint": "other", "date": (d + timedelta(days=8)).isoformat(), "crp": es.u(3.0, "mg/L")},
            subject=p1,
        )
        records.submit(
            clin,
            "vitals",
            {
                "timepoint": "unscheduled",
                "time": es.at(d + timedelta(days=2), 22),
                "temp": es.u(38.1, "C"),
                "pulse": es.u(99, "beats/min"),
                "resp": es.u(22, "breaths/min"),
                "oxysat": es.u(93, "%"),
            },
            subject=p1,
        )
        records.submit(
            clin,
            "disposition",
            {"stage": "end_of_treatment", "status": "completed", "date": (d + timedelta(days=4)).isoformat()},
            subject=p1,
        )
        records.submit(
            clin,
            "disposition",
            {
                "stage": "end_of_study",
                "status": "completed",
                "date": (d + timedelta(days=10)).isoformat(),
                "reason": "discharged",
            },
            subject=p1,
        )
        d2 = d + timedelta(days=1)
        records.submit(
            clin,
            "ae",
            {
                "term": "Headache",
                "prespecified": "no",
                "onset": (d2 + timedelta(days=2)).isoformat(),
                "grade": 2,
                "serious": False,
                "causality": "possible",
                "action": "delayed",
                "outcome": "recovered",
                "first_known": (d2 + timedelta(days=2)).isoformat(),
            },
            subject=p2,
        )
        records.submit(
            clin,
            "ae",
            {
                "term": LONG_TERM,
                "prespecified": "no",
                "onset": (d2 + timedelta(days=2)).isoformat(),
                "grade": 1,
                "serious": False,
                "causality": "unlikely",
                "action": "none",
                "outcome": "recovered",
                "first_known": (d2 + timedelta(days=2)).isoformat(),
            },
            subject=p2,
        )
        records.submit(
            clin,
            "ae",
            {
                "term": "Rash\twith itch",
                "prespecified": "fever",
                "onset": (d2 + timedelta(days=3)).isoformat(),
                "grade": 1,
                "serious": False,
                "causality": "possible",
                "action": "none",
                "outcome": "recovered",
                "first_known": (d2 + timedelta(days=3)).isoformat(),
            },
            subject=p2,
        )
        records.submit(
            clin,
            "disposition",
            {
                "stage": "end_of_treatment",
                "status": "withdrawal_by_subject",
                "date": (d2 + timedelta(days=4)).isoformat(),
                "reason": "wished to stop the inhalations",
            },
            subject=p2,
        )
        records.submit(
            clin,
            "disposition",
            {
                "stage": "end_of_study",
                "status": "withdrawal_by_subject",
                "date": (d2 + timedelta(days=6)).isoformat(),
                "reason": "wished to leave the study",
            },
            subject=p2,
        )
        d3 = d + timedelta(days=2)
        records.submit(
            clin,
            "ae",
            {
                "term": "Respiratory failure",
                "prespecified": "no",
                "onset": (d3 + timedelta(days=6)).isoformat(),
                "end": (d3 + timedelta(days=8)).isoformat(),
                "grade": 5,
                "serious": True,
                "death": True,
                "causality": "unlikely",
                "action": "not_applicable",
                "outcome": "fatal",
                "first_known": (d3 + timedelta(days=6)).isoformat(),
            },
            subject=p3,
        )
        records.submit(
            clin,
            "disposition",
            {
                "stage": "end_of_study",
                "status": "death",
                "date": (d3 + timedelta(days=8)).isoformat(),
                "death_date": (d3 + timedelta(days=8)).isoformat(),
                "reason": "respiratory failure",
            },
            subject=p3,
        )
        p4 = "participant:WUH01-009"
        records.submit(
            clin,
            "consent",
            {
                "consenter": "surrogate",
                "surrogate_name": "Zhang Wei 张伟",
                "surrogate_relationship": "spouse",
                "form_version": "1.0",
                "time": es.at(date(2020, 3, 20), 10),
                "witness_1": "investigator",
                "witness_2": "clinician",
                "photos": [es.photo_ref("p4")],
            },
            subject=p4,
        )
        records.submit(
            clin,
            "screening",
            {
                "date": "2020-03-20",
                "dob": "1930-01-01",
                "sex": "F",
                "pcr_confirmed": True,
                "severity": "severe",
                "age": es.u(90, "years"),
                "eligible": False,
                "failed_criteria": ["age"],
            },
            subject=p4,
        )
    finally:
        clin.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ward = es.make_ward(tmp_path_factory.mktemp("sdtm") / "site", n=3)
    _extra_records(ward.data_dir)
    return ward.data_dir


@pytest.fixture(scope="module")
def exported(site: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("out") / "sdtm"
    code, stdout, err = es.run_cli(site, "export", "sdtm", "--out", str(out), "--json")
    assert code == 0, err
    return out, stdout, err


def rows(out: Path, name: str) -> list[dict[str, str]]:
    path = out / "csv" / f"{name.lower()}.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def by_subject(data: list[dict[str, str]], pid: str) -> list[dict[str, str]]:
    return [r for r in data if r["USUBJID"] == f"MEXCOVID-{pid}"]


# -- TS and the trial-design datasets ---------------------------------------------------------


def test_ts_states_the_trial_from_the_protocol_and_names_sdtmig_and_ct_versions(exported):
    from wardcrf import cdisc

    out = exported[0]
    ts = {(r["TSPARMCD"], r["TSSEQ"]): r for r in rows(out, "TS")}
    val = {code: r["TSVAL"] for (code, _), r in ts.items()}
    assert val["SSTDTC"] == "2020-03-15"  # FDA technical rejection criterion 1734: earliest consent
    assert val["SDTIGVER"] == "3.4" and val["SDTMVER"] == "2.0"
    assert val["TPHASE"] == "PHASE IIA TRIAL" and val["TBLIND"] == "OPEN LABEL" and val["RANDOM"] == "N"
    assert val["REGID"] == "NCT04276987" and val["FCNTRY"] == "CHN" and val["PLANSUB"] == "7"
    assert val["AGEMIN"] == "P18Y" and val["AGEMAX"] == "P75Y" and val["ROUTE"] == "RESPIRATORY (INHALATION)"
    assert val["SPONSOR"].startswith("Ruijin Hospital") and "MEXCOVID" in val["TITLE"]
    assert (
        ts[("TPHASE", "1")]["TSVCDREF"] == "CDISC CT" and ts[("TPHASE", "1")]["TSVCDVER"] == cdisc.CT_VERSION
    )
    assert {r["TSVAL"] for (c, _), r in ts.items() if c == "TTYPE"} == {"SAFETY", "EFFICACY"}
    assert (
        val["SENDTC"] == "2020-03-27"
    )  # every subject has ended: completed, withdrawn, died, screen failure


def test_trial_design_arms_elements_visits_and_criteria(exported):
    out = exported[0]
    ta, te, tv, ti = (rows(out, n) for n in ("TA", "TE", "TV", "TI"))
    assert [(r["TAETORD"], r["ETCD"], r["EPOCH"]) for r in ta] == [
        ("1", "SCRN", "SCREENING"),
        ("2", "TRT", "TREATMENT"),
        ("3", "FU", "FOLLOW-UP"),
    ]
    assert {r["ARMCD"] for r in ta} == {"HAMSCEXO"}
    assert {r["ETCD"] for r in te} == {"SCRN", "TRT", "FU"} and all(r["TESTRL"] for r in te)
    assert [r["VISIT"] for r in tv] == ["BASELINE", *(f"DOSE {n}" for n in range(1, 6)), "POST-TREATMENT"]
    assert [r["VISITDY"] for r in tv][:3] == ["-1", "1", "2"]
    assert {r["IETESTCD"]: r["IECAT"] for r in ti} == {
        "AGE": "INCLUSION",
        "PCR": "INCLUSION",
        "SEVERITY": "INCLUSION",
    }
    assert "AGE >= 18 and AGE <= 75" in next(r["TIRL"] for r in ti if r["IETESTCD"] == "AGE")


# -- subject datasets -------------------------------------------------------------------------


SUBJECT_DATASETS = ("DM", "DS", "EX", "VS", "LB", "RS", "AE", "CM", "MH", "HO", "SV")


def test_every_subject_dataset_has_epoch_and_no_exdy(exported):
    out = exported[0]
    for name in SUBJECT_DATASETS[1:]:
        data = rows(out, name)
        assert data, name
        assert "EPOCH" in data[0], name
    ex = rows(out, "EX")
    assert "EXDY" not in ex[0] and {"EXSTDY", "EXENDY"} <= set(ex[0])
    assert {r["EPOCH"] for r in ex} == {"TREATMENT"}
    vs = by_subject(rows(out, "VS"), "WUH01-001")
    assert {r["EPOCH"] for r in vs} == {"TREATMENT"}
    lb = by_subject(rows(out, "LB"), "WUH01-001")
    assert {r["VISIT"]: r["EPOCH"] for r in lb} == {
        "BASELINE": "SCREENING",
        "POST-TREATMENT": "FOLLOW-UP",
        "UNSCHEDULED 7.01": "FOLLOW-UP",
    }


def test_study_days_follow_the_sdtm_rule_with_no_day_zero(exported):
    out = exported[0]
    lb = by_subject(rows(out, "LB"), "WUH01-001")
    baseline = next(r for r in lb if r["VISIT"] == "BASELINE")
    assert (baseline["LBDTC"], baseline["LBDY"]) == ("2020-03-16", "-1")  # the day before the first dose
    ex = by_subject(rows(out, "EX"), "WUH01-001")
    assert [(r["EXSTDY"], r["EXENDY"]) for r in ex] == [(str(n), str(n)) for n in range(1, 6)]
    cm = by_subject(rows(out, "CM"), "WUH01-001")
    assert next(r for r in cm if r["CMTRT"] == "umifenovir")["CMSTDY"] == "-7"
    ae = by_subject(rows(out, "AE"), "WUH01-003")[-1]
    assert (ae["AESTDY"], ae["AEENDY"]) == ("7", "9")


def test_vs_has_time_point_numbers_and_the_reference_dose(exported):
    vs = by_subject(rows(exported[0], "VS"), "WUH01-001")
    pre = next(r for r in vs if r["VSTPT"] == "PRE-DOSE" and r["VISIT"] == "DOSE 2")
    post = next(r for r in vs if r["VSTPT"] == "POST-DOSE" and r["VISIT"] == "DOSE 2")
    assert (pre["VSTPTNUM"], post["VSTPTNUM"]) == ("1", "2")
    assert pre["VSTPTREF"] == "DOSE 2" and pre["VSRFTDTC"] == "2020-03-18T09:00:00"
    unscheduled = [r for r in vs if r["VISIT"].startswith("UNSCHEDULED")]
    assert (
        unscheduled
        and {r["VSTPT"] for r in unscheduled} == {""}
        and {r["VISITNUM"] for r in unscheduled} == {"4.01"}
    )
    lobx = [r for r in vs if r["VSLOBXFL"] == "Y"]
    assert (
        len(lobx) == 4
        and {r["VSTPT"] for r in lobx} == {"PRE-DOSE"}
        and {r["VISIT"] for r in lobx} == {"DOSE 1"}
    )


def test_lb_and_rs_visits_are_numbered_and_match_sv(exported):
    out = exported[0]
    sv = {(r["USUBJID"], r["VISITNUM"]): r["VISIT"] for r in rows(out, "SV")}
    for name in ("LB", "RS", "VS", "EX"):
        for r in rows(out, name):
            assert r["VISITNUM"], (name, r)
            assert sv[(r["USUBJID"], r["VISITNUM"])] == r["VISIT"], (name, r)
    sv1 = by_subject(rows(out, "SV"), "WUH01-001")
    assert [r["VISIT"] for r in sv1] == [
        "BASELINE",
        "DOSE 1",
        "DOSE 2",
        "DOSE 3",
        "UNSCHEDULED 4.01",
        "DOSE 4",
        "DOSE 5",
        "POST-TREATMENT",
        "UNSCHEDULED 7.01",
    ]
    assert {r["SVPRESP"] for r in sv1 if r["VISIT"].startswith("UNSCHEDULED")} == {""}


def test_lb_has_categories_reference_ranges_and_indicators_by_sex(exported):
    lb = rows(exported[0], "LB")
    crp = next(r for r in by_subject(lb, "WUH01-001") if r["LBTESTCD"] == "CRP" and r["VISIT"] == "BASELINE")
    assert (crp["LBCAT"], crp["LBORNRLO"], crp["LBORNRHI"], crp["LBNRIND"]) == (
        "CHEMISTRY",
        "0",
        "10",
        "HIGH",
    )
    lym = next(r for r in lb if r["LBTESTCD"] == "LYM")
    assert lym["LBCAT"] == "HEMATOLOGY" and lym["LBSTNRLO"] == "1.1"
    alt_m = next(r for r in by_subject(lb, "WUH01-001") if r["LBTESTCD"] == "ALT")  # male: 9-50
    alt_f = next(r for r in by_subject(lb, "WUH01-002") if r["LBTESTCD"] == "ALT")  # female: 7-40
    assert (alt_m["LBORNRHI"], alt_m["LBNRIND"]) == ("50", "HIGH")  # 78 U/L
    assert (alt_f["LBORNRHI"], alt_f["LBNRIND"]) == ("40", "NORMAL")  # 40 U/L
    assert {r["LBLOBXFL"] for r in lb if r["VISIT"] == "BASELINE"} == {"Y"}


def test_dm_has_country_end_of_participation_death_and_arm_null_reasons(exported):
    dm = {r["SUBJID"]: r for r in rows(exported[0], "DM")}
    assert {r["COUNTRY"] for r in dm.values()} == {"CHN"}
    assert dm["WUH01-001"]["RFPENDTC"] == "2020-03-27" and dm["WUH01-001"]["DTHFL"] == ""
    assert (dm["WUH01-003"]["DTHFL"], dm["WUH01-003"]["DTHDTC"]) == ("Y", "2020-03-27")
    assert (dm["WUH01-001"]["ARMCD"], dm["WUH01-001"]["ACTARMCD"], dm["WUH01-001"]["ARMNRS"]) == (
        "HAMSCEXO",
        "HAMSCEXO",
        "",
    )
    sf = dm["WUH01-009"]
    assert (sf["ARMCD"], sf["ACTARMCD"], sf["ARMNRS"], sf["RFSTDTC"], sf["RFENDTC"]) == (
        "",
        "",
        "SCREEN FAILURE",
        "",
        "",
    )


def test_ds_holds_dispositions_and_no_ae_starts_after_the_last_one(exported):
    out = exported[0]
    ds = rows(out, "DS")
    disp = [
        (r["USUBJID"][-3:], r["DSSCAT"], r["DSDECOD"], r["DSTERM"], r["EPOCH"])
        for r in ds
        if r["DSCAT"] == "DISPOSITION EVENT"
    ]
    assert ("001", "STUDY TREATMENT", "COMPLETED", "COMPLETED", "TREATMENT") in disp
    assert ("001", "STUDY PARTICIPATION", "COMPLETED", "COMPLETED", "FOLLOW-UP") in disp
    assert (
        "002",
        "STUDY PARTICIPATION",
        "WITHDRAWAL BY SUBJECT",
        "wished to leave the study",
        "FOLLOW-UP",
    ) in disp
    assert ("003", "STUDY PARTICIPATION", "DEATH", "respiratory failure", "FOLLOW-UP") in disp
    assert (
        "009",
        "STUDY PARTICIPATION",
        "SCREEN FAILURE",
        "SCREEN FAILURE: Age 18 to 75 years",
        "SCREENING",
    ) in disp
    last = {}
    for r in ds:
        if r["DSCAT"] == "DISPOSITION EVENT":
            last[r["USUBJID"]] = max(last.get(r["USUBJID"], ""), r["DSSTDTC"])
    for ae in rows(out, "AE"):
        assert ae["AESTDTC"] <= last[ae["USUBJID"]]


def test_ae_terms_stay_uncoded_and_the_export_says_so(exported):
    out, stdout, err = exported
    ae = rows(out, "AE")
    assert {r["AEDECOD"] for r in ae} == {""}  # no dictionary loaded: nothing is invented
    rash = next(r for r in ae if r["AETERM"].startswith("Rash"))
    assert rash["AEPRESP"] == "Y" and rash["AEDECOD"] == ""  # "Fever" is not a MedDRA PT (Pyrexia is)
    assert "FEVER" not in {r["AEDECOD"] for r in ae}
    assert json.loads(stdout)["uncoded_ae"] == len(ae) == 6
    assert "uncoded: 6" in err


def test_ae_coding_from_a_coding_lookup_fills_the_meddra_hierarchy(site, tmp_path):
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import check, package
    from wardcrf.site import Site

    class Lookup:
        """A coding store holding one MedDRA coding (the shape wardcrf.coding's index gives)."""

        dictionary_versions: ClassVar[dict[str, list[str]]] = {"MedDRA": ["27.1"]}

        def variables(self, record: str, field: str, verbatim: str, prefix: str) -> dict[str, Any] | None:
            if (field, verbatim, prefix) != ("term", "Headache", "AE"):
                return None
            return {
                "AELLT": "Headache",
                "AELLTCD": 10019211,
                "AEDECOD": "Headache",
                "AEPTCD": 10019211,
                "AEHLT": "Headaches NEC",
                "AEHLTCD": 10019233,
                "AEHLGT": "Headaches",
                "AEHLGTCD": 10019231,
                "AEBODSYS": "Nervous system disorders",
                "AEBDSYCD": 10029205,
                "AESOC": "Nervous system disorders",
                "AESOCCD": 10029205,
            }

    s = Site.open(site).unlock("coordinator", es.PASSWORD)
    try:
        pkg = package(Dataset.for_session(s), coding=Lookup())
    finally:
        s.close()
    head = next(r for r in pkg.rows["AE"] if r["AETERM"] == "Headache")
    assert (head["AEDECOD"], head["AEPTCD"], head["AEBODSYS"], head["AESOCCD"]) == (
        "Headache",
        10019211,
        "Nervous system disorders",
        10029205,
    )
    assert pkg.uncoded_ae == 5 and pkg.coded_ae == 1
    pending = [f for f in check.check(pkg) if f.severity == "pending"]
    assert len(pending) == 5 and str(head["AESEQ"]) not in {
        f.seq for f in pending if f.usubjid == head["USUBJID"]
    }
    assert not {f.rule for f in check.check(pkg) if f.severity == "error"}
    import xmlschema

    from wardcrf.exports.sdtm import write_package

    s = Site.open(site).unlock("coordinator", es.PASSWORD)
    try:
        write_package(Dataset.for_session(s), pkg, tmp_path / "coded")
    finally:
        s.close()
    xsd = importlib.resources.files("odmlib") / "schemas" / "define" / "2.1" / "define2-1-0.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(tmp_path / "coded" / "define.xml"))) == []
    define = (tmp_path / "coded" / "define.xml").read_text()
    assert 'Dictionary="MedDRA" Version="27.1"' in define and 'CodeListOID="CL.MEDDRA"' in define


def test_ae_action_delayed_is_dose_not_changed_with_a_suppae_flag(exported):
    out = exported[0]
    head = next(r for r in rows(out, "AE") if r["AETERM"] == "Headache")
    assert head["AEACN"] == "DOSE NOT CHANGED"  # CDISC ACN has no "delayed"; it is not an interruption
    supp = [
        r for r in rows(out, "SUPPAE") if r["USUBJID"] == head["USUBJID"] and r["IDVARVAL"] == head["AESEQ"]
    ]
    assert {(r["QNAM"], r["QVAL"]) for r in supp} >= {("AEACNDLY", "Y")}
    assert all(r["IDVAR"] == "AESEQ" for r in supp)


def test_rstest_names_fit_40_characters_without_cutting_a_word(exported):
    from wardcrf import protocol

    rs = rows(exported[0], "RS")
    proto = protocol.default_protocol()
    labels = {
        fd.cdisc.split("=")[1]: fd.cdisc_label
        for fd in proto.forms["ct_score"].fields.values()
        if fd.cdisc and fd.cdisc.startswith("RSTESTCD=")
    }
    assert len(labels) == 19
    for r in rs:
        assert len(r["RSTEST"]) <= 40 and r["RSTEST"] == labels[r["RSTESTCD"]]
    assert "CT Score RLL Posterior Basal Segment" in {r["RSTEST"] for r in rs}


def test_cm_mh_ho_and_suppqual_carry_what_was_collected(exported):
    out = exported[0]
    cm = by_subject(rows(out, "CM"), "WUH01-001")
    plasma = next(r for r in cm if r["CMCAT"] == "CONVALESCENT PLASMA")
    assert (plasma["CMTRT"], plasma["CMDOSE"], plasma["CMDOSU"], plasma["CMSTDTC"]) == (
        "CONVALESCENT PLASMA",
        "200",
        "mL",
        "2020-03-18T14:00:00",
    )
    suppcm = rows(out, "SUPPCM")
    assert {(r["QNAM"], r["QVAL"]) for r in suppcm} == {("NABTITER", "640")}
    mh = by_subject(rows(out, "MH"), "WUH01-002")
    assert {(r["MHCAT"], r["MHTERM"]) for r in mh} >= {
        ("PRESENTING SYMPTOMS", "Fever"),
        ("GENERAL MEDICAL HISTORY", "Hypertension"),
    }
    primary = next(r for r in mh if r["MHCAT"] == "PRIMARY DIAGNOSIS")
    assert primary["MHSTDTC"] and int(primary["MHSTDY"]) < 0
    assert by_subject(rows(out, "HO"), "WUH01-001")[0]["HOTERM"] == "HOSPITAL"
    suppex = {r["QNAM"] for r in rows(out, "SUPPEX")} if rows(out, "SUPPEX") else set()
    suppds = {(r["QNAM"], r["QVAL"]) for r in rows(out, "SUPPDS")}
    assert ("ICBY", "Surrogate") in suppds and ("ICFVER", "Version 1.0") in suppds
    assert suppex <= {"EXDEVICE", "EXINTRPN", "EXINTRTX", "EXWINDOW"}
    assert {r["QNAM"] for r in rows(out, "SUPPDM")} >= {"PCRCONF", "DISSEV"}
    ex = rows(out, "EX")[0]
    assert ex["EXREFID"].startswith("KIT-") and ex["EXVAMTU"] == "mL"


# -- XPT v5 and the ASCII rule ---------------------------------------------------------------


def test_xpt_v5_reads_back_with_names_labels_and_lengths_within_limits(exported):
    import pyreadstat

    out = exported[0]
    summary = json.loads(exported[1])
    for name, n in summary["datasets"].items():
        df, meta = pyreadstat.read_xport(str(out / f"{name.lower()}.xpt"))
        assert meta.table_name == name and len(df) == n, name
        assert len(meta.file_label) <= 40
        for col, label in zip(meta.column_names, meta.column_labels, strict=True):
            assert len(col) <= 8 and label and len(label) <= 40, (name, col, label)
        for col in df.columns:
            if df[col].dtype == object:
                for v in df[col]:
                    assert len(v.encode("ascii")) <= 200, (name, col)
    dm, _ = pyreadstat.read_xport(str(out / "dm.xpt"))
    assert dm["USUBJID"].iloc[0] == "MEXCOVID-WUH01-001" and dm["AGE"].iloc[0] == 57


def test_non_ascii_is_transliterated_never_silently_and_long_text_goes_to_suppae(exported):
    out, _, err = exported
    with (out / "transliterations.csv").open(encoding="utf-8", newline="") as fh:
        changes = list(csv.DictReader(fh))
    long = [c for c in changes if c["original"] == LONG_TERM]
    assert long and long[0]["rule"] == "transliterated" and long[0]["written"].startswith("XiRuHou")
    split = next(c for c in changes if c["rule"] == "split to SUPP--" and c["variable"] == "AETERM")
    assert len(split["written"]) <= 200
    rash = next(c for c in changes if c["original"] == "Rash\twith itch")
    assert rash["written"] == "Rash with itch"
    assert (
        any(c["original"] == "Zhang Wei 张伟" for c in changes) is False
    )  # the surrogate's name is not exported
    ae = next(r for r in rows(out, "AE") if r["AETERM"].startswith("XiRuHou"))
    rest = [
        r
        for r in rows(out, "SUPPAE")
        if r["IDVARVAL"] == ae["AESEQ"] and r["USUBJID"] == ae["USUBJID"] and r["QNAM"].startswith("AETERM")
    ]
    n = -(-len(long[0]["written"]) // 200) - 1  # the pieces after the first 200 characters
    assert n >= 1 and [r["QNAM"] for r in rest] == [f"AETERM{i}" for i in range(1, n + 1)]
    assert ae["AETERM"] + "".join(r["QVAL"] for r in rest) == long[0]["written"]
    assert "transliterated: AE" in err and "->" in err


def test_to_ascii_rule_accepts_ascii_and_replaces_everything_else():
    from wardcrf.exports.sdtm.conform import to_ascii

    assert to_ascii("Pulmonary embolism") == "Pulmonary embolism"
    assert to_ascii("Fièvre") == "Fievre"
    assert to_ascii("a\x00b\nc\x7fd\x85e") == "a b c d e"
    assert all(" " <= ch <= "~" for ch in to_ascii("发热 🤒 \u200b\U0010ffff"))


# -- Define-XML 2.1 and Dataset-JSON 1.1 -----------------------------------------------------


def test_define_xml_validates_against_the_define_21_xsd_and_describes_every_dataset(exported):
    import xml.etree.ElementTree as ET

    import xmlschema

    out = exported[0]
    xsd = importlib.resources.files("odmlib") / "schemas" / "define" / "2.1" / "define2-1-0.xsd"
    errors = list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "define.xml")))
    assert errors == []
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}
    root = ET.parse(out / "define.xml").getroot()
    mdv = root.find(".//odm:MetaDataVersion", ns)
    groups = {g.get("Name"): g for g in mdv.findall("odm:ItemGroupDef", ns)}
    summary = json.loads(exported[1])
    assert set(groups) == set(summary["datasets"])
    items = {i.get("OID"): i for i in mdv.findall("odm:ItemDef", ns)}
    for name, g in groups.items():
        with (out / "csv" / f"{name.lower()}.csv").open() as fh:
            header = next(csv.reader(fh))
        refs = [items[r.get("ItemOID")].get("Name") for r in g.findall("odm:ItemRef", ns)]
        assert refs == header, name
    std = {s.get("Name"): s.get("Version") for s in mdv.findall("def:Standards/def:Standard", ns)}
    assert std == {"SDTMIG": "3.4", "CDISC/NCI": "2024-09-27"}
    origins = {items[f"IT.AE.{v}"].find("def:Origin", ns).get("Type") for v in ("AETERM", "AESTDY")}
    assert origins == {"Collected", "Derived"}
    assert mdv.find("odm:ItemDef[@OID='IT.AE.AETERM']/def:Origin/odm:Description", ns) is not None
    vlm = {v.get("OID") for v in mdv.findall("def:ValueListDef", ns)}
    assert {"VL.LB.LBORRES", "VL.VS.VSORRES", "VL.RS.RSORRES", "VL.SUPPAE.QVAL"} <= vlm
    codelists = {c.get("OID") for c in mdv.findall("odm:CodeList", ns)}
    assert {"CL.NY", "CL.EPOCH", "CL.ACN", "CL.LB.LBTESTCD"} <= codelists
    assert mdv.find("odm:MethodDef[@OID='MT.DY']", ns) is not None
    assert (out / "protocol.toml").exists()


def test_define_xml_is_spelled_the_same_after_another_library_registers_an_odm_prefix(
    site, exported, tmp_path, monkeypatch
):
    """ElementTree's prefix map is process-global. odmlib's parser registers ``odm`` for ODM 1.3;
    when it had run earlier in the same process, define.xml came out as ``<odm:ODM …>`` (a CI
    failure: a test searching for ``<CodeList`` found none)."""
    import re
    import xml.etree.ElementTree as ET

    monkeypatch.setattr(ET, "_namespace_map", dict(ET._namespace_map))  # the global map comes back after
    ET.register_namespace("odm", "http://www.cdisc.org/ns/odm/v1.3")
    ET.register_namespace("d21", "http://www.cdisc.org/ns/def/v2.1")
    out = tmp_path / "again"
    code, _stdout, err = es.run_cli(site, "export", "sdtm", "--out", str(out))
    assert code == 0, err
    again = (out / "define.xml").read_text("utf-8")
    assert again.splitlines()[1].startswith("<ODM xmlns=")
    assert "<odm:" not in again and "<d21:" not in again and "<def:Standards>" in again

    def unstamped(text: str) -> str:
        return re.sub(r'CreationDateTime="[^"]*"', "", text)

    assert unstamped(again) == unstamped((exported[0] / "define.xml").read_text("utf-8"))


def test_dataset_json_validates_against_cdiscs_schema(exported):
    import jsonschema

    out = exported[0]
    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    validator = jsonschema.Draft201909Validator(schema)
    summary = json.loads(exported[1])
    for name, n in summary["datasets"].items():
        doc = json.loads((out / f"{name.lower()}.json").read_text("utf-8"))
        assert list(validator.iter_errors(doc)) == [], name
        assert doc["records"] == n == len(doc["rows"]) and doc["datasetJSONVersion"] == "1.1.0"
        assert doc["itemGroupOID"] == f"IG.{name}" and doc["metaDataRef"] == "define.xml"
    bad = json.loads((out / "dm.json").read_text("utf-8"))
    bad["datasetJSONVersion"] = "1.0"
    assert list(validator.iter_errors(bad))  # the schema refuses what 1.1 does not allow


def test_sdtm_checksums_cover_every_file(exported):
    import hashlib

    out = exported[0]
    lines = (out / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert "define.xml" in listed and "ae.xpt" in listed and "csv/ae.csv" in listed
    for rel, digest in listed.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest


# -- --check ----------------------------------------------------------------------------------


def test_check_is_clean_on_the_ward_and_reports_uncoded_terms_as_pending(site):
    code, stdout, err = es.run_cli(site, "export", "sdtm", "--check")
    assert code == 0, stdout + err
    assert "errors: 0; pending: 6" in stdout and stdout.rstrip().endswith("clean")
    assert "CORE-000356 (CG0014) [pending] AE" in stdout and "uncoded: 6" in err


def test_check_usage_and_permission(site, tmp_path):
    code, _, err = es.run_cli(site, "export", "sdtm")
    assert code == 2 and "--out" in err and "--check" in err
    code, _, err = es.run_cli(site, "export", "sdtm", "--check", user="dsmg")
    assert code == 1 and "may not" in err
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    code, _, err = es.run_cli(site, "export", "sdtm", "--out", str(used), "--check")
    assert code == 2 and "not an empty directory" in err


@pytest.fixture
def pkg(site: Path) -> Any:
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import package
    from wardcrf.site import Site

    s = Site.open(site).unlock("coordinator", es.PASSWORD)
    try:
        return package(Dataset.for_session(s))
    finally:
        s.close()


def _rules(pkg: Any) -> set[str]:
    from wardcrf.exports.sdtm.check import check

    return {f.rule for f in check(pkg) if f.severity == "error"}


def test_check_accepts_the_package_as_built(pkg):
    assert _rules(pkg) == set()


@pytest.mark.parametrize(
    ("break_it", "rule"),
    [
        (lambda p: p.rows["TS"].clear(), "FDA-TRC-1734"),
        (
            lambda p: [r.pop("TSVAL") for r in p.rows["TS"] if r["TSPARMCD"] == "SSTDTC"] and None,
            "CORE-000505 (CG0285)",
        ),
        (lambda p: p.rows["AE"][0].update(AESTDTC="2020-13-01"), "WARDCRF-ISO8601"),
        (lambda p: p.rows["VS"][1].update(VSSEQ=p.rows["VS"][0]["VSSEQ"]), "WARDCRF-SEQ"),
        (lambda p: p.rows["AE"][0].update(AEACN="DOSE DELAYED"), "WARDCRF-CT"),
        (lambda p: p.rows["LB"][0].update(VISITNUM=42.0, VISIT="DAY 42"), "CORE-000168 (CG0034)"),
        (lambda p: p.rows["LB"][0].update(VISIT="BASELINE VISIT"), "CORE-000361 (CG0035)"),
        (lambda p: p.rows["VS"][0].update(EPOCH=""), "WARDCRF-EPOCH"),
        (lambda p: p.rows["VS"][0].update(EPOCH="RUN-IN"), "WARDCRF-CT"),
        (lambda p: p.rows["LB"][0].update(LBDY=0), "CORE-000529 (CG0006)"),
        (lambda p: p.rows["EX"][0].update(EXSTDY=2), "CORE-000552 (CG0220)"),
        (lambda p: p.rows["EX"][0].update(EXENDY=None), "CORE-000553 (CG0222)"),
        (lambda p: p.rows["DM"][0].update(ARMNRS="NOT ASSIGNED"), "CORE-000121 (CG0520)"),
        (lambda p: p.rows["DM"][-1].update(ARMNRS=""), "CORE-000045 (CG0517)"),
        (lambda p: p.rows["DM"][2].update(DTHFL=""), "CORE-000252 (CG0136)"),
        (lambda p: p.rows["DM"][0].update(COUNTRY=""), "CORE-000356 (CG0014)"),
        (lambda p: p.rows["DM"][0].update(RFICDTC="2020-03-14"), "CORE-000363"),
        (lambda p: p.rows["AE"][0].update(AESTDTC="2021-01-01"), "WARDCRF-AEDS"),
        (lambda p: p.rows["AE"][0].update(AESER="N", AESHOSP="Y"), "CORE-000266 (CG0042)"),
        (lambda p: p.rows["AE"][0].update(AETERM="x" * 201), "WARDCRF-XPT5"),
        (lambda p: p.rows["AE"][0].update(AETERM="发热"), "WARDCRF-XPT5"),
        (lambda p: p.rows["AE"][0].update(AEFOO="1"), "CORE-000550 (CG0013)"),
        (lambda p: p.rows["AE"][0].update(USUBJID="MEXCOVID-NOBODY"), "CORE-000201 (CG0029)"),
        (lambda p: p.rows["CM"][0].update(CMSTDTC="2020-03-20", CMENDTC="2020-03-19"), "CORE-000718"),
        (lambda p: [r.pop("STUDYID") for r in p.rows["MH"]] and None, "CORE-000356 (CG0014)"),
        (  # a sponsor term (not in CDISC CT) cited as CDISC CT in TS
            lambda p: [r.update(TSVAL="Q3D") for r in p.rows["TS"] if r["TSPARMCD"] == "DOSFRQ"] and None,
            "WARDCRF-TSCT",
        ),
        (
            lambda p: [r.update(TSVAL="INHALED") for r in p.rows["TS"] if r["TSPARMCD"] == "ROUTE"] and None,
            "WARDCRF-TSCT",
        ),
    ],
)
def test_check_refuses_each_broken_rule(pkg, break_it, rule):
    break_it(pkg)
    assert rule in _rules(pkg)


# -- hostile inputs through the protocol file ---------------------------------------------------


def _broken(old: str, new: str) -> str:
    from wardcrf import protocol

    src = protocol.default_source()
    assert old in src
    return src.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('phase = "PHASE IIA TRIAL"', 'phase = "Phase 2a"', "trial.phase: 'Phase 2a' is not a CDISC term"),
        ('countries = ["CHN"]', 'countries = ["China"]', "trial.countries[0]: 'China' is not an ISO 3166-1"),
        (
            'sex_population = "BOTH"',
            'sex_population = "BOTH"\nfavourite = 1',
            "trial.favourite: unknown trial key",
        ),
        (
            'cdisc_label = "CT Score RUL Apical Segment"',
            'cdisc_label = "CT Score Right Upper Lobe Apical Segment Of The Lung"',
            "cdisc_label: must be 1-40 printable ASCII",
        ),
        (
            'cdisc_label = "CT Score RUL Apical Segment"',
            'cdisc_label = "CT 评分"',
            "cdisc_label: must be 1-40 printable ASCII",
        ),
        (
            'cdisc = "SUPPEX.EXDEVICE"',
            'cdisc = "SUPPEX.EXDEVICETYPE"',
            "a supplemental qualifier is SUPP<domain>.<QNAM>",
        ),
        (
            "reference_range = [3.5, 9.5]",
            "reference_range = [9.5, 3.5]",
            "reference_range: minimum 9.5 is above maximum 3.5",
        ),
        (
            "reference_range = [3.5, 9.5]",
            'reference_range = "normal"',
            "reference_range: must be [low, high]",
        ),
        ('arms = [{ code = "HAMSCEXO"', 'arms = [{ code = "hamsc exo"', "ARMCD: 1-20 upper-case"),
        ('cdisc = "COMPLETED" }', 'cdisc = "COMPLETED\\u0007" }', "printable ASCII"),
        (
            'frequency = "QD"',
            'frequency = "daily"',
            "schedule.frequency: 'daily' is not a CDISC dosing frequency",
        ),
    ],
)
def test_protocol_refuses_trial_facts_a_submission_cannot_carry(old, new, problem):
    from wardcrf import protocol

    with pytest.raises(protocol.ProtocolFileError) as exc:
        protocol.parse(_broken(old, new), "trial.toml")
    hit = [p for p in exc.value.problems if problem in p]
    assert hit, exc.value.problems
    assert hit[0].startswith("trial.toml:") and hit[0].split(":")[1].isdigit()  # file:line


def test_protocol_reads_trial_facts_ranges_and_choice_terms():
    from wardcrf import protocol

    p = protocol.default_protocol()
    assert (
        p.trial.phase == "PHASE IIA TRIAL"
        and p.trial.countries == ("CHN",)
        and p.trial.country_of("WUH01") == "CHN"
    )
    assert p.forms["labs"].fields["alt"].reference_range == {"M": (9.0, 50.0), "F": (7.0, 40.0)}
    assert p.forms["labs"].fields["crp"].reference_range == {"": (0.0, 10.0)}
    assert p.forms["disposition"].fields["status"].choice("death").cdisc == "DEATH"
    assert p.schedule.frequency == "QD"
    bare = protocol.parse(
        _broken("[trial]\n", "[trial_notes]\n").replace("sponsor = ", "sponsor_ = ", 1), "x.toml"
    )
    assert bare.trial.phase == "" and bare.trial.arms == ()  # [trial] is optional: TS then says less


def test_export_without_a_trial_table_falls_back_to_a_product_arm(tmp_path):
    from wardcrf import protocol
    from wardcrf.exports.sdtm.design import design_of

    src = protocol.default_source()
    start = src.index("[trial]\n")
    end = src.index("[eligibility]")
    p = protocol.parse(src[:start] + src[end:], "no-trial.toml")
    d = design_of(p)
    assert d.source == "default" and d.arms == (("HAMSCEXOS", "haMSC-Exos"),)
    assert [v.num for v in d.visits] == [1, 2, 3, 4, 5, 6, 7]


def test_sdtm_export_of_an_empty_site_writes_trial_design_only(tmp_path):
    from wardcrf import users
    from wardcrf.site import Site

    init = Site.init(
        tmp_path / "s",
        site="WUH09",
        device_name="l",
        admin="admin",
        password=es.PASSWORD,
        admin_full_name="A",
    )
    a = init.site.unlock("admin", es.PASSWORD)
    users.add_user(a, "coordinator", "C", "coordinator", es.PASSWORD)
    a.close()
    out = tmp_path / "out"
    code, stdout, err = es.run_cli(tmp_path / "s", "export", "sdtm", "--out", str(out), "--json")
    assert code == 0, err
    assert set(json.loads(stdout)["datasets"]) == {"TS", "TA", "TE", "TV", "TI"}
    ts = {r["TSPARMCD"] for r in rows(out, "TS")}
    assert "SSTDTC" not in ts
    code, stdout, _ = es.run_cli(tmp_path / "s", "export", "sdtm", "--check")
    assert code == 1 and "FDA-TRC-1734" in stdout  # no subject consented yet: no study start date
