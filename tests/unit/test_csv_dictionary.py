"""CSV export: coded missing values declared in the dictionary, and a dictionary describing every column
of every file (the six cold-chain files included)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import coding_support as cs
import export_support as es


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh))


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, es.CohortSite, str]:
    base = tmp_path_factory.mktemp("csvcohort")
    ward = es.make_ward(base / "site")
    out = base / "csv"
    code, _, err = es.run_cli(ward.data_dir, "export", "csv", "--out", str(out), "--json")
    assert code == 0, err
    return out, ward, err


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("csvdemo")
    code, _, err = es.run_cli(base / "site", "demo", "--no-tui", "--password", es.PASSWORD, user="admin")
    assert code == 0, err
    out = base / "csv"
    code, _, err = es.run_cli(base / "site", "export", "csv", "--out", str(out), user="coordinator")
    assert code == 0, err
    return out


def described(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["file"], r["column"]): r for r in read_csv(out / "data_dictionary.csv")}


@pytest.mark.parametrize("which", ["demo", "cohort"])
def test_every_column_of_every_file_is_in_the_data_dictionary(which, demo_csv, cohort_csv):
    out = demo_csv if which == "demo" else cohort_csv[0]
    doc = described(out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "forms/coldchain.handover.csv" in files or which == "cohort"
    for rel in files:
        if rel.endswith(".csv"):
            for col in header(out / rel):
                row = doc.get((rel, col))
                assert row is not None, f"{rel}: column {col} is not in the data dictionary"
                assert row["description"].strip() and row["type"], (rel, col)
        else:
            assert (rel, "") in doc, f"{rel} is not described"


def test_the_six_cold_chain_files_are_described_column_by_column(demo_csv):
    doc = described(demo_csv)
    cold = sorted(p.name for p in (demo_csv / "forms").glob("coldchain.*.csv"))
    assert len(cold) == 6
    own = [(f, c) for f in cold for c in header(demo_csv / "forms" / f) if c not in es_provenance()]
    assert len(own) == 50
    for f, c in own:
        row = doc[(f"forms/{f}", c)]
        assert row["type"] != "undeclared" and row["label"], (f, c)
    assert doc[("forms/coldchain.unit.csv", "high_c")]["unit"] == "C"
    assert doc[("forms/coldchain.receipt.csv", "logger")]["type"] == "json"


def es_provenance() -> list[str]:
    from wardcrf.exports.csv_export import RECORD_COLUMNS

    return RECORD_COLUMNS


def test_every_form_of_the_protocol_has_its_file_and_dictionary_rows_before_its_first_record(cohort_csv):
    """A script reading forms/conmed.csv works on a trial that has none yet: a header, no rows."""
    from importlib.resources import files

    from wardcrf import protocol

    out, _ward, _ = cohort_csv
    src = (files("wardcrf") / "protocols" / "mexcovid.toml").read_text(encoding="utf-8")
    for form in protocol.parse(src, "mexcovid.toml").forms:
        assert (out / "forms" / f"{form}.csv").is_file(), form
    doc = described(out)
    for form, field in (("conmed", "plasma_titre"), ("oxygen", "fio2")):  # none recorded in this cohort
        assert read_csv(out / "forms" / f"{form}.csv") == []
        cols = header(out / "forms" / f"{form}.csv")
        assert field in cols and f"{field}_missing" in cols
        assert all((f"forms/{form}.csv", c) in doc for c in cols)
        assert doc[(f"forms/{form}.csv", field)]["type"] == "integer"


def test_blank_values_carry_a_declared_missing_code(cohort_csv):
    out, _ward, _ = cohort_csv
    doc = described(out)
    codes = doc[("forms/labs.csv", "wbc_missing")]["choices"]
    for code in ("NASK=not asked", "NA=not applicable", "ND=not done", "UNK=unknown"):
        assert code in codes
    labs = read_csv(out / "forms" / "labs.csv")
    # white cells were never measured in this cohort: a test not done, not a blank
    assert all(r["wbc"] == "" and r["wbc_missing"] == "ND" for r in labs)
    assert all(r["crp"] and r["crp_missing"] == "" for r in labs)
    consent = read_csv(out / "forms" / "consent.csv")
    # the participant consented: the surrogate's name does not apply
    assert all(r["surrogate_name"] == "" and r["surrogate_name_missing"] == "NA" for r in consent)
    assert doc[("forms/consent.csv", "surrogate_name")]["applies_when"] == "consenter in (surrogate)"
    ae = {r["term"]: r for r in read_csv(out / "forms" / "ae.csv")}
    # an ongoing event has no end date (not applicable); a resolved one without it is unknown
    assert ae["Pulmonary embolism"]["end_missing"] == "NA"
    cough = next(r for t, r in ae.items() if t.startswith("Cough"))
    assert cough["outcome"] == "recovered" and cough["end_missing"] == "UNK"
    vitals = read_csv(out / "forms" / "vitals.csv")
    assert all(r["sysbp_missing"] == "ND" for r in vitals)  # a VSTESTCD test, not measured


def test_csv_export_says_how_many_terms_are_uncoded_and_writes_the_codings(cohort_csv, tmp_path):
    out, ward, err = cohort_csv
    assert "uncoded: 2" in err  # the cohort's two AE terms
    assert read_csv(out / "coding.csv") == []
    from wardcrf import users
    from wardcrf.site import Site

    a = Site.open(ward.data_dir).unlock("admin", es.PASSWORD)
    try:
        users.add_user(a, "coder", "Coder", "coder", es.PASSWORD)
    finally:
        a.close()
    meddra = cs.write_meddra(tmp_path / "MedAscii")
    assert es.run_cli(ward.data_dir, "coding", "load", "meddra", str(meddra), user="coder")[0] == 0
    code, q, _ = es.run_cli(ward.data_dir, "coding", "queue", "--json", user="coder")
    pe = next(u["record"] for u in json.loads(q) if u["verbatim"] == "Pulmonary embolism")
    assert es.run_cli(ward.data_dir, "coding", "code", pe, "--llt", "10037377", user="coder")[0] == 0
    code, stdout, err = es.run_cli(ward.data_dir, "export", "csv", "--out", str(tmp_path / "csv2"), "--json")
    assert code == 0 and "uncoded: 1" in err and json.loads(stdout)["uncoded"] == 1
    (row,) = read_csv(tmp_path / "csv2" / "coding.csv")
    assert (row["record_id"], row["pt_name"], row["soc_name"], row["version"]) == (
        pe,
        "Pulmonary embolism",
        cs.RESP[1],
        "27.0",
    )


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'applies_when = { field = "consenter", in = ["surrogate"] }',
            'applies_when = { field = "consentor", in = ["surrogate"] }',
            "applies_when.field: the form has no other field 'consentor'",
        ),
        (
            'applies_when = { field = "consenter", in = ["surrogate"] }',
            'applies_when = { field = "consenter", in = ["spouse"] }',
            "'spouse' is not a code of consenter",
        ),
        (
            'applies_when = { field = "consenter", in = ["surrogate"] }',
            'applies_when = { field = "consenter", in = ["surrogate"], not_in = ["participant"] }',
            "give exactly one of in = [...] or not_in = [...]",
        ),
        (
            'applies_when = { field = "pcr_confirmed", in = [true] }',
            'applies_when = { field = "pcr_confirmed", in = ["yes"] }',
            "pcr_confirmed is true or false, not 'yes'",
        ),
        (
            'applies_when = { field = "interruptions", not_in = [0] }',
            'applies_when = { field = "interruption_note", not_in = [0] }',
            "the form has no other field 'interruption_note'",
        ),
        (
            'applies_when = { field = "interruptions", not_in = [0] }',
            'applies_when = { field = "kit_id", not_in = ["x"] }',
            "kit_id is text; a condition depends on a choice, boolean or integer",
        ),
        (
            'applies_when = { field = "interruptions", not_in = [0] }',
            'applies_when = { field = "interruptions", not_in = [] }',
            "must be a non-empty list",
        ),
        (
            'applies_when = { field = "interruptions", not_in = [0] }',
            'applies_when = { field = "interruptions", when = [0] }',
            "unknown key (allowed: field, in, not_in)",
        ),
    ],
)
def test_applies_when_is_validated_with_the_protocol(old, new, problem):
    from wardcrf import protocol

    src = protocol.default_source()
    assert old in src
    with pytest.raises(protocol.ProtocolFileError) as exc:
        protocol.parse(src.replace(old, new, 1), "trial.toml")
    assert any(problem in p and p.startswith("trial.toml:") for p in exc.value.problems), exc.value.problems


def test_missing_codes_follow_the_stated_rules_in_order():
    from wardcrf import protocol
    from wardcrf.exports import missing

    p = protocol.default_protocol()
    name = p.forms["consent"].fields["surrogate_name"]
    assert missing.code(name, {"consenter": "participant"}, asked=False) == "NASK"
    assert missing.code(name, {"consenter": "participant"}, asked=True) == "NA"
    assert missing.code(name, {"consenter": "surrogate"}, asked=True) == "UNK"
    assert missing.code(name, {}, asked=True) == "UNK"  # the condition cannot be judged: unknown
    assert missing.code(name, {"consenter": "surrogate", "surrogate_name": "Li"}, asked=True) == ""
    crp = p.forms["labs"].fields["crp"]
    assert missing.code(crp, {"crp": {"value": None, "unit": "mg/L"}}, asked=True) == "ND"
    assert missing.code(crp, {"crp": {"value": 0.0, "unit": "mg/L"}}, asked=True) == ""  # zero is a value
    fio2 = p.forms["oxygen"].fields["fio2"]
    assert missing.code(fio2, {"support": "nasal_cannula"}, asked=True) == "NA"
    assert missing.code(fio2, {"support": "hfnc"}, asked=True) == "UNK"
