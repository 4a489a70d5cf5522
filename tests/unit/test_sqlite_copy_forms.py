"""The plain SQLite copy for analysis: one flat, typed table per form (`SELECT crp FROM labs`)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("plaincopy")
    ward = es.make_ward(base / "site")
    out = base / "analysis.db"
    code, _, err = es.run_cli(ward.data_dir, "export", "sqlite", "--out", str(out), "--yes")
    assert code == 0, err
    return out


def test_select_crp_from_labs_gives_typed_numbers(copy):
    con = sqlite3.connect(copy)
    try:
        rows = con.execute(
            "SELECT participant, timepoint, crp, typeof(crp), crp_unit, wbc, wbc_missing FROM labs"
            " ORDER BY participant, date"
        ).fetchall()
        assert len(rows) == 14
        assert rows[0] == ("WUH01-001", "baseline", 12.0, "real", "mg/L", None, "ND")
        assert {r[3] for r in rows} == {"real"}
        (t,) = con.execute("SELECT typeof(total) FROM ct_score LIMIT 1").fetchone()
        assert t == "integer"
        assert con.execute(
            "SELECT count(*) FROM ct_score WHERE l_lower_posterior_basal = 'ne'"
        ).fetchone() == (1,)
        serious = dict(con.execute("SELECT term, serious FROM ae").fetchall())
        assert serious["Pulmonary embolism"] == 1 and 0 in serious.values()  # booleans as 1/0
        (pulse_type,) = con.execute("SELECT DISTINCT typeof(pulse) FROM vitals").fetchone()
        assert pulse_type == "integer"
        # a join an analyst writes: baseline and post-treatment CRP side by side
        pairs = con.execute(
            "SELECT b.participant, b.crp, a.crp FROM labs b JOIN labs a ON a.participant = b.participant"
            " WHERE b.timepoint = 'baseline' AND a.timepoint = 'post_treatment' ORDER BY b.participant"
        ).fetchall()
        assert pairs[0] == ("WUH01-001", 12.0, 4.0) and len(pairs) == 7
        # the workflow's own vitals projection stays, under a name that does not hide the form
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {
            "labs",
            "ct_score",
            "vitals",
            "dose",
            "ae",
            "projection_vitals",
            "events",
            "records",
        } <= tables
        cols = {r[1]: r[2] for r in con.execute("PRAGMA table_info(labs)")}
        assert cols["crp"] == "REAL" and cols["versions"] == "INTEGER" and cols["date"] == "TEXT"
    finally:
        con.close()


def test_pandas_reads_each_form_with_numeric_dtypes(copy):
    pd = pytest.importorskip("pandas")
    con = sqlite3.connect(copy)
    try:
        labs = pd.read_sql_query("SELECT * FROM labs", con)
        vitals = pd.read_sql_query("SELECT * FROM vitals", con)
    finally:
        con.close()
    assert str(labs["crp"].dtype) == "float64" and labs["crp"].notna().all()
    assert labs.groupby("timepoint")["crp"].median()["baseline"] == pytest.approx(22.0)
    assert str(vitals["pulse"].dtype) == "int64" and len(vitals) == 70


def test_a_form_named_like_a_foundation_table_never_replaces_it(tmp_path):
    from wardcrf import protocol, records
    from wardcrf.exports.plaintext import form_table_name
    from wardcrf.site import Site

    assert form_table_name("coldchain.handover") == "coldchain_handover"
    ward = es.make_ward(tmp_path / "site", n=2)
    src = protocol.default_source().replace('version = "1.0"', 'version = "1.1"', 1)
    src += '\n[forms.events]\nlabel = "Events diary"\n\n[forms.events.fields.note]\ntype = "text"\nlabel = "Note"\n'
    (tmp_path / "p.toml").write_text(src, encoding="utf-8")
    assert (
        es.run_cli(ward.data_dir, "protocol", "load", str(tmp_path / "p.toml"), user="investigator")[0] == 0
    )
    s = Site.open(ward.data_dir).unlock("clinician", es.PASSWORD)
    try:
        records.submit(s, "events", {"note": "slept well"}, subject="participant:WUH01-001")
    finally:
        s.close()
    out = tmp_path / "a.db"
    assert es.run_cli(ward.data_dir, "export", "sqlite", "--out", str(out), "--yes")[0] == 0
    con = sqlite3.connect(out)
    try:
        assert con.execute("SELECT note FROM form_events").fetchall() == [("slept well",)]
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] > 10  # the event log, untouched
    finally:
        con.close()


def mexcovid_forms() -> list[str]:
    from importlib.resources import files

    from wardcrf import protocol

    src = (files("wardcrf") / "protocols" / "mexcovid.toml").read_text(encoding="utf-8")
    return list(protocol.parse(src, "mexcovid.toml").forms)


def test_every_form_of_the_protocol_has_its_typed_table_before_its_first_record(copy):
    """An analysis script written for the trial runs on the first day too: no record, an empty typed table."""
    con = sqlite3.connect(copy)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert set(mexcovid_forms()) <= tables
        # this cohort recorded no concomitant medication and no oxygen support
        assert con.execute("SELECT count(*) FROM conmed").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM oxygen").fetchone() == (0,)
        cols = {r[1]: r[2] for r in con.execute("PRAGMA table_info(oxygen)")}
        assert (cols["flow"], cols["fio2"], cols["date"], cols["fio2_missing"]) == (
            "REAL",
            "INTEGER",
            "TEXT",
            "TEXT",
        )
        cols = {r[1]: r[2] for r in con.execute("PRAGMA table_info(conmed)")}
        assert (cols["plasma_volume"], cols["plasma_titre"], cols["name"]) == ("REAL", "INTEGER", "TEXT")
    finally:
        con.close()
