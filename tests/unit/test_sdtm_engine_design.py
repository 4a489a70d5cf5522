"""SDTM trial design (TS, TA, TE, TV, TI) from a format-2 protocol (issue 17, "Exports follow the engine").

Every shipped format-2 protocol gives a design the package's own check
accepts, that pyreadstat reads back from XPT v5 and CDISC's Dataset-JSON
schema accepts; PALM (four arms, a different treatment element per arm)
and MEXCOVID (one arm) are checked value by value. The MEXCOVID ward of
test_sdtm is exported with its format-2 re-encoding: the subject datasets'
visits agree with the engine's TV, and define.xml validates against the
Define-XML 2.1 XSD.
"""

from __future__ import annotations

import importlib.resources
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

DESIGN = ("TS", "TA", "TE", "TV", "TI")
ENGINE_WARD: dict[str, Path] = {}  # the ward `engine_export` made (module scope)
NOW = datetime(2026, 12, 6, 12, 0)
# One randomized subject so TS has its study start date (FDA technical rejection criterion 1734).
DM = [{"USUBJID": "X-001", "RFICDTC": "2019-01-05", "ARMCD": "ZMAPP", "RFPENDTC": "2019-03-04"}]


def _rows(name: str) -> dict[str, list[dict[str, Any]]]:
    from wardcrf.engine import model
    from wardcrf.exports.sdtm.engine_design import trial_rows

    return trial_rows(model.shipped(name), DM, NOW, all_ended=True)


def _package(rows: dict[str, list[dict[str, Any]]]) -> Any:
    from wardcrf.exports.sdtm import Package

    return Package("X", rows, [], 0, 0, {}, NOW, "1.0", "protocol")


def _errors(rows: dict[str, list[dict[str, Any]]]) -> set[tuple[str, str]]:
    from wardcrf.exports.sdtm.check import check

    return {(f.rule, f.dataset) for f in check(_package(rows)) if f.severity == "error"}


def _ts(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows["TS"]:
        out.setdefault(r["TSPARMCD"], []).append(r["TSVAL"] or r["TSVALNF"])
    return out


def test_palm_four_arms_each_walk_screening_their_own_treatment_and_follow_up():
    rows = _rows("palm.toml")
    ta = rows["TA"]
    assert sorted({r["ARMCD"] for r in ta}) == ["MAB114", "RDV", "REGNEB3", "ZMAPP"]
    for arm in ("ZMAPP", "RDV", "MAB114", "REGNEB3"):
        walk = [(r["TAETORD"], r["ETCD"], r["EPOCH"]) for r in ta if r["ARMCD"] == arm]
        assert walk == [(1, "SCRN", "SCREENING"), (2, arm, "TREATMENT"), (3, "FU", "FOLLOW-UP")]
    te = {r["ETCD"]: r for r in rows["TE"]}
    assert set(te) == {"SCRN", "ZMAPP", "RDV", "MAB114", "REGNEB3", "FU"}
    # ZMapp on days 1, 4 and 7; single infusions one day; remdesivir's 9-13 day course has no fixed length.
    assert (te["ZMAPP"]["TEDUR"], te["MAB114"]["TEDUR"], te["RDV"]["TEDUR"]) == ("P7D", "P1D", "")
    assert "remdesivir" in te["RDV"]["ELEMENT"].lower()


def test_palm_visits_per_arm_with_numbers_study_days_and_windows():
    tv = _rows("palm.toml")["TV"]
    zmapp = [r for r in tv if r["ARMCD"] == "ZMAPP"]
    assert len(tv) == 4 * len(zmapp)
    # SCREENING, DAY 1..14 in the treatment centre (VISITNUM 2..15), DAY 28 and DAY 58; no UNSCHEDULED row.
    assert [r["VISITNUM"] for r in zmapp] == list(range(1, 18))
    assert [r["VISIT"] for r in zmapp][:3] == ["SCREENING", "DAY 1", "DAY 2"]
    assert [r["VISIT"] for r in zmapp][-2:] == ["DAY 28", "DAY 58"]
    # Randomization day is day 1 and the first infusion's day: VISITDY equals the protocol's day.
    assert [r["VISITDY"] for r in zmapp][1:3] == [1, 2] and zmapp[-2]["VISITDY"] == 28
    # A visit anchored to consent has no planned study day (its distance to the first dose is not fixed).
    assert zmapp[0]["VISITDY"] is None
    assert zmapp[-2]["TVSTRL"] == "Day 28 after randomization, window -1d to +3d"


def test_palm_criteria_and_summary_parameters():
    rows = _rows("palm.toml")
    ti = {r["IETESTCD"]: r for r in rows["TI"]}
    assert {k: r["IECAT"] for k, r in ti.items()} == {
        "PCR": "INCLUSION",
        "WEIGHT": "INCLUSION",
        "PRIOR": "EXCLUSION",
    }
    assert ti["PCR"]["TIRL"] == "screening.ebov_pcr_positive == true" and ti["PCR"]["TIVERS"] == "1.0"
    ts = _ts(rows)
    assert ts["NARMS"] == ["4"] and ts["RANDOM"] == ["Y"] and ts["TCNTRL"] == ["ACTIVE"]
    assert len(ts["TRT"]) == 4 and ts["ROUTE"] == ["INTRAVENOUS"]
    assert set(ts["DOSFRQ"]) == {"Q3D", "ONCE", "QD"}
    assert ts["AGEMIN"] == ["P0D"] and ts["AGEMAX"] == [
        "PINF"
    ]  # no maximum age: the null flavour SDTMIG gives
    assert ts["OUTMSPRI"] == ["Death at 28 days"] and ts["REGID"] == ["NCT03719586"]
    assert ts["SSTDTC"] == ["2019-01-05"] and ts["SENDTC"] == ["2019-03-04"]
    # Four arms with different doses: TS cannot say which DOSE is whose, so none is stated.
    assert "DOSE" not in ts and "DOSU" not in ts
    agemax = next(r for r in rows["TS"] if r["TSPARMCD"] == "AGEMAX")
    assert agemax["TSVAL"] == "" and agemax["TSVCDREF"] == ""


def test_mexcovid_one_arm_matches_the_visits_its_records_are_numbered_by():
    from wardcrf import protocol
    from wardcrf.exports.sdtm.design import design_of

    rows = _rows("mexcovid.toml")
    assert {r["ARMCD"] for r in rows["TA"]} == {"HAMSCEXO"}
    assert [r["ETCD"] for r in rows["TA"]] == ["SCRN", "TRT", "FU"]
    assert next(r for r in rows["TE"] if r["ETCD"] == "TRT")["TEDUR"] == "P5D"
    derived = design_of(protocol.default_protocol())
    # The subject datasets number records by format 1's derived design: the engine's TV is the same.
    assert [(r["VISITNUM"], r["VISIT"]) for r in rows["TV"]] == [(v.num, v.name) for v in derived.visits]
    assert [r["VISITDY"] for r in rows["TV"]][:6] == [-1, 1, 2, 3, 4, 5]
    assert [r["IETESTCD"] for r in rows["TI"]] == ["AGE", "PCR", "SEVERITY"]
    ts = _ts(rows)
    assert ts["DOSE"] == ["200000000"] and ts["DOSU"] == ["particles"] and ts["DOSFRQ"] == ["QD"]
    assert ts["NARMS"] == ["1"] and ts["AGEMAX"] == ["P75Y"] and ts["RANDOM"] == ["N"]
    assert ts["OUTMSSEC"][0] == "Lymphocyte count: change from baseline after treatment"


@pytest.mark.parametrize("name", ["mexcovid.toml", "palm.toml", "palm007.toml"])
def test_every_shipped_design_passes_the_sdtm_check(name):
    from wardcrf.exports.sdtm.conform import conform

    rows = _rows(name)
    conform(rows, "X")
    assert {e for e in _errors(rows) if e[1] in DESIGN} == set()


@pytest.mark.parametrize(
    ("break_it", "rule"),
    [
        (lambda r: r["TA"][0].update(EPOCH="RUN-IN"), "WARDCRF-CT"),
        (lambda r: r["TS"].clear(), "FDA-TRC-1734"),
        (lambda r: r["TI"][0].update(IECAT="MAYBE"), "WARDCRF-CT"),
    ],
)
def test_a_broken_engine_design_is_refused_by_the_check(break_it, rule):
    rows = _rows("palm.toml")
    break_it(rows)
    assert rule in {r for r, _ in _errors(rows)}


@pytest.mark.parametrize("name", ["mexcovid.toml", "palm.toml", "palm007.toml"])
def test_every_shipped_design_writes_xpt_pyreadstat_reads_and_dataset_json_validates(name, tmp_path):
    import jsonschema
    import pyreadstat

    from wardcrf.exports.sdtm import files
    from wardcrf.exports.sdtm.conform import conform
    from wardcrf.exports.sdtm.metadata import domain

    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    validator = jsonschema.Draft201909Validator(schema)
    rows = _rows(name)
    conform(rows, "X")
    for ds in DESIGN:
        meta = domain(ds)
        cols = files.columns_for(meta, rows[ds])
        files.write_xpt(tmp_path / f"{ds}.xpt", meta, cols, rows[ds])
        df, read = pyreadstat.read_xport(str(tmp_path / f"{ds}.xpt"))
        assert read.table_name == ds and len(df) == len(rows[ds]) > 0, ds
        doc = files.dataset_json(
            meta,
            cols,
            rows[ds],
            study="X",
            mdv="MDV.X",
            created=NOW,
            modified=NOW.isoformat(),
            originator="t",
        )
        assert list(validator.iter_errors(json.loads(json.dumps(doc)))) == [], ds


# -- the MEXCOVID ward exported with its format-2 re-encoding ------------------------------------


@pytest.fixture(scope="module")
def engine_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    from wardcrf.engine import model
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import package, write_package
    from wardcrf.site import Site

    ward = es.make_ward(tmp_path_factory.mktemp("engine") / "site", n=3)
    ENGINE_WARD["dir"] = ward.data_dir
    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        ds = Dataset.for_session(s)
        pkg = package(ds, model=model.shipped("mexcovid.toml"))
        out = tmp_path_factory.mktemp("out") / "sdtm"
        write_package(ds, pkg, out)
        return pkg, out
    finally:
        s.close()


def test_a_ward_exported_with_the_engine_design_checks_clean(engine_export):
    from wardcrf.exports.sdtm.check import check

    pkg, _ = engine_export
    assert {f.rule for f in check(pkg) if f.severity == "error"} == set()
    ti = {r["IETESTCD"]: r["TIRL"] for r in pkg.rows["TI"]}
    # the criterion's declared `tirl` (the rule in the protocol's words, as format 1 words it), not the expression
    assert ti["AGE"].startswith("AGE >= 18 and AGE <= 75") and "@assessment" not in ti["AGE"]
    # Every visit a subject record carries is a planned visit of TV (or unscheduled, numbered between).
    planned = {r["VISITNUM"] for r in pkg.rows["TV"]}
    assert {r["VISITNUM"] for r in pkg.rows["SV"] if float(r["VISITNUM"]).is_integer()} <= planned


def test_define_xml_of_the_engine_design_validates_against_the_define_21_xsd(engine_export):
    import xmlschema

    _, out = engine_export
    xsd = importlib.resources.files("odmlib") / "schemas" / "define" / "2.1" / "define2-1-0.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "define.xml"))) == []
    text = (out / "define.xml").read_text("utf-8")
    assert 'OID="IG.TV"' in text and 'OID="IG.TI"' in text


# -- DM arms from the engine's arms and the recorded allocations ---------------------------------


def _two_arm_mexcovid() -> Any:
    from wardcrf.engine import model

    src = model.shipped_source("mexcovid.toml")
    marker = "# Single arm, open label: no [randomization] table."
    assert marker in src
    control = (
        '[[arms]]\ncode = "CONTROL"\nlabel = "Standard care"\nratio = 1\nregimens = ["exo_inhalation"]\n'
    )
    return model.parse(src.replace(marker, control), "two-arm.toml")


def test_dm_arms_come_from_the_allocation_and_the_rest_are_not_assigned(engine_export, monkeypatch):
    import importlib

    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import package
    from wardcrf.exports.sdtm.check import check

    build = importlib.import_module("wardcrf.exports.sdtm.build")
    from wardcrf.site import Site

    monkeypatch.setattr(build, "recorded_allocations", lambda ds: {"WUH01-001": "CONTROL"})
    s = Site.open(ENGINE_WARD["dir"]).unlock("coordinator", es.PASSWORD)
    try:
        two = package(Dataset.for_session(s), model=_two_arm_mexcovid())
    finally:
        s.close()
    dm = {r["SUBJID"]: r for r in two.rows["DM"]}
    first = dm["WUH01-001"]
    assert (first["ARMCD"], first["ARM"], first["ACTARMCD"], first["ARMNRS"]) == (
        "CONTROL",
        "Standard care",
        "CONTROL",
        "",
    )
    other = dm["WUH01-002"]  # enrolled and dosed, but two arms and no allocation: no arm is guessed
    assert (other["ARMCD"], other["ACTARMCD"], other["ARMNRS"]) == ("", "", "NOT ASSIGNED")
    assert {f.rule for f in check(two) if f.severity == "error" and f.dataset == "DM"} == set()
    ts = {r["TSPARMCD"]: r["TSVAL"] for r in two.rows["TS"]}
    assert ts["NARMS"] == "2" and ts["ACTSUB"] == "1"


def test_dm_shows_a_blinded_allocation_as_blinded_and_the_check_passes(engine_export, monkeypatch):
    """Issue 20: before the trial is unblinded, an allocated participant's arms read BLINDED
    (allocated, so never NOT ASSIGNED; the arm is not the export's to state)."""
    import importlib

    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import package
    from wardcrf.exports.sdtm.check import check

    build = importlib.import_module("wardcrf.exports.sdtm.build")
    from wardcrf.site import Site

    monkeypatch.setattr(build, "recorded_allocations", lambda ds: {"WUH01-001": build.BLINDED[0]})
    s = Site.open(ENGINE_WARD["dir"]).unlock("coordinator", es.PASSWORD)
    try:
        two = package(Dataset.for_session(s), model=_two_arm_mexcovid())
    finally:
        s.close()
    first = {r["SUBJID"]: r for r in two.rows["DM"]}["WUH01-001"]
    assert (first["ARMCD"], first["ARM"], first["ACTARMCD"], first["ACTARM"], first["ARMNRS"]) == (
        "BLINDED",
        "Blinded",
        "BLINDED",
        "Blinded",
        "",
    )
    assert {f.rule for f in check(two) if f.severity == "error" and f.dataset == "DM"} == set()


def test_ex_terms_come_from_each_arms_administrations():
    from wardcrf.engine import model
    from wardcrf.exports.sdtm.engine_design import ex_terms

    palm = ex_terms(model.shipped("palm.toml"))
    assert set(palm) == {
        ("ZMAPP", "infusion"),
        ("RDV", "infusion"),
        ("MAB114", "infusion"),
        ("REGNEB3", "infusion"),
    }
    z = palm[("ZMAPP", "infusion")]
    assert (z.treatment, z.route, z.frequency, z.unit) == ("ZMapp", "INTRAVENOUS", "Q3D", "mg")
    # Remdesivir: a loading dose ONCE then QD on the same form: no single frequency, so none is stated.
    assert palm[("RDV", "infusion")].frequency == ""
    assert palm[("MAB114", "infusion")].dosage_form == "INJECTION, POWDER, LYOPHILIZED, FOR SOLUTION"
    palm007 = ex_terms(model.shipped("palm007.toml"))
    # The blinded placebo twin keeps its own product; BID or TID by weight: no single frequency.
    assert palm007[("PLACEBO", "treatment")].treatment == "placebo"
    assert {t.route for t in palm007.values()} == {"ORAL"} and {t.frequency for t in palm007.values()} == {""}


def test_ex_of_the_engine_export_states_the_administrations_terms(engine_export):
    pkg, _ = engine_export
    ex = pkg.rows["EX"]
    assert ex and {(r["EXTRT"], r["EXROUTE"], r["EXDOSFRQ"], r["EXDOSFRM"], r["EXDOSU"]) for r in ex} == {
        ("haMSC-Exos", "RESPIRATORY (INHALATION)", "QD", "SUSPENSION", "particles")
    }
    assert all(r["EPOCH"] == "TREATMENT" for r in ex)


def _palm_variant(*edits: tuple[str, str]) -> Any:
    from wardcrf.engine import model

    src = model.shipped_source("palm.toml")
    for old, new in edits:
        assert old in src, old
        src = src.replace(old, new, 1)
    return model.parse(src, "variant.toml")


def test_long_arm_codes_sharing_a_prefix_get_distinct_8_character_element_codes():
    from wardcrf.exports.sdtm.engine_design import trial_rows

    m = _palm_variant(
        ('code = "MAB114"\nlabel = "MAb114', 'code = "TREATMENT_MAB114"\nlabel = "MAb114'),
        ('code = "REGNEB3"\nlabel = "REGN-EB3 150', 'code = "TREATMENT_REGNEB3"\nlabel = "REGN-EB3 150'),
    )
    rows = trial_rows(m, DM, NOW, all_ended=True)
    codes = [e["ETCD"] for e in rows["TE"]]
    assert len(set(codes)) == len(codes) and all(len(c) <= 8 for c in codes)
    assert {"TREATMEN", "TREATME2"} <= set(codes)
    assert {e for e in _errors(rows) if e[1] in DESIGN} == set()


def test_a_repeat_running_into_the_next_visits_number_is_refused_by_name():
    from wardcrf.errors import Refused
    from wardcrf.exports.sdtm.engine_design import trial_rows

    m = _palm_variant(('repeat = { every = "1d", count = 14 }', 'repeat = { every = "1d", count = 366 }'))
    with pytest.raises(Refused, match=r"visits INPT \(DAY 15\) and D28 \(DAY 28\) both have VISITNUM 16"):
        trial_rows(m, DM, NOW, all_ended=True)
    # A step of 0.01 keeps 366 daily visits below the next visit's number.
    m = _palm_variant(
        ('repeat = { every = "1d", count = 14 }', 'repeat = { every = "1d", count = 366, step = 0.01 }')
    )
    tv = [r for r in trial_rows(m, DM, NOW, all_ended=True)["TV"] if r["ARMCD"] == "ZMAPP"]
    assert len(tv) == 1 + 366 + 2 and tv[2]["VISITNUM"] == 2.01 and tv[-3]["VISITNUM"] == 5.65


@pytest.mark.parametrize("name", ["palm.toml", "palm007.toml"])
def test_define_xml_of_a_multi_arm_design_validates_against_the_define_21_xsd(name, tmp_path):
    from types import SimpleNamespace

    import xmlschema

    from wardcrf.engine import model
    from wardcrf.exports.sdtm import define, files
    from wardcrf.exports.sdtm.conform import conform
    from wardcrf.exports.sdtm.metadata import domain

    m = model.shipped(name)
    rows = _rows(name)
    conform(rows, m.id)
    pkg = _package(rows)
    pkg.study = m.id
    # define.write reads the site's name and the protocol's title, version and source: those of this file.
    site = SimpleNamespace(
        active_protocol=SimpleNamespace(
            title=dict(m.data["protocol"]["title"]), version=m.version, source=m.source
        ),
        site_row={"site": "KIN01"},
    )
    columns = {ds: files.columns_for(domain(ds), rows[ds]) for ds in DESIGN}
    define.write(tmp_path / "define.xml", site, pkg, columns)
    xsd = importlib.resources.files("odmlib") / "schemas" / "define" / "2.1" / "define2-1-0.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(tmp_path / "define.xml"))) == []
    text = (tmp_path / "define.xml").read_text("utf-8")
    assert all(f'OID="IG.{ds}"' in text for ds in DESIGN) and m.id in text


def test_ti_tirl_is_a_criterions_declared_tirl_else_the_expression_it_is_evaluated_by():
    from wardcrf.exports.sdtm.engine_design import trial_rows

    m = _palm_variant(
        (
            'expr = "screening.ebov_pcr_positive == true"',
            'expr = "screening.ebov_pcr_positive == true"\ntirl = "EBOV RT-PCR positive at screening"',
        )
    )
    ti = {r["IETESTCD"]: r["TIRL"] for r in trial_rows(m, DM, NOW, all_ended=True)["TI"]}
    assert ti["PCR"] == "EBOV RT-PCR positive at screening"
    # a criterion without `tirl` keeps the expression the engine evaluates (PALM's weight criterion)
    assert ti["WEIGHT"] == _rows("palm.toml")["TI"][1]["TIRL"] and ti["WEIGHT"]
    mex = {r["IETESTCD"]: r["TIRL"] for r in _rows("mexcovid.toml")["TI"]}
    assert mex == {
        "AGE": "AGE >= 18 and AGE <= 75 (completed years at screening and again on the enrollment day)",
        "PCR": "screening.pcr_confirmed = true",
        "SEVERITY": "screening.severity in (severe, critical)",
    }


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('"EBOV\\u0007 positive"', "U+0007"),
        ('"EBOV \u2265 1 copy"', "required form"),
        ('"' + "X" * 201 + '"', "required form"),
        ('""', "required form"),
        ("3", "not of type 'string'"),
    ],
    ids=["control character", "not ASCII", "201 characters", "empty", "a number"],
)
def test_a_hostile_tirl_is_refused_naming_the_file_and_line(value, why):
    from wardcrf.engine import model

    src = model.shipped_source("palm.toml")
    old = 'expr = "screening.ebov_pcr_positive == true"'
    assert src.count(old) == 1
    line = src[: src.index(old)].count("\n") + 2
    with pytest.raises(model.ProtocolFileError) as err:
        model.parse(src.replace(old, f"{old}\ntirl = {value}"), "variant.toml")
    text = str(err.value)
    assert f"variant.toml:{line}: criteria[" in text and ".tirl: " in text and why in text, text
    assert "\n" not in text
