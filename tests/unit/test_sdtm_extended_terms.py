"""A sponsor term of an extensible CDISC codelist: PALM's ZMapp "Q3D" in EXDOSFRQ.

CDISC's FREQ codelist (C71113) is extensible: a frequency without a
published term is the sponsor's own, declared with its meaning. PALM
declares ZMapp's every-third-day infusions `frequency = "Q3D"` with
`frequency_extended = "Every 3 days"`. The shipped PALM demo then exports
clean (`export sdtm --check`, exit 0; it was "NOT clean", exit 1), the
conformance report names the sponsor term, define.xml marks it
def:ExtendedValue="Yes", and readers that are not ours read it: pyreadstat
(EX's XPT) and CDISC's Dataset-JSON schema (EX's JSON). Refused at load:
an undeclared term, a CDISC term declared as an extension, a hostile meaning.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path

import pytest
from site_users import PASSWORD

from wardcrf.engine import model

ENGINE = Path(model.__file__).parent.parent / "protocols" / "engine"
SEEDED = "2026-03-16T14:00:00+01:00"
DECLARED = 'frequency = "Q3D"                          # EXDOSFRQ\n'
MEANING = 'frequency_extended = "Every 3 days"\n'


def test_the_palm_demo_exports_clean_with_q3d_a_declared_sponsor_term(cli, tmp_path: Path, monkeypatch) -> None:
    import jsonschema
    import pyreadstat

    from wardcrf.randomization import lists

    # The demo's arms come from a random list: this seed gives ZMapp (Q3D) a participant, as
    # test_administration_pharmacy fixes it (about one seeding in two gave ZMapp none and the test failed).
    monkeypatch.setattr(lists, "new_seed", lambda: bytes([1]) * 32)
    monkeypatch.setattr(lists, "new_list_id", lambda: "LDEMO00000001")

    target = tmp_path / "palm"
    r = cli(
        "demo", "--protocol", "palm", "--no-tui", "--data-dir", str(target), "--password", PASSWORD,
        env={"WARDCRF_FAKE_NOW": SEEDED},
    )  # fmt: skip
    assert r.code == 0, r.err
    out = tmp_path / "sdtm"
    env = {"WARDCRF_DATA_DIR": str(target), "WARDCRF_FAKE_NOW": SEEDED}
    r = cli("export", "sdtm", "--out", str(out), "--check", user="auditor", env=env)
    assert r.code == 0, r.out + r.err
    report = (out / "conformance.txt").read_text("utf-8")
    assert "errors: 0" in report and report.rstrip().endswith("clean") and "NOT clean" not in report
    assert "sponsor term of the extensible CDISC CT FREQ: 'Q3D' (Every 3 days)" in report
    define = (out / "define.xml").read_text("utf-8")
    freq = re.search(r'<CodeList OID="CL.FREQ".*?</CodeList>', define, re.S)
    assert freq is not None, define
    items = dict(
        re.findall(r'<EnumeratedItem CodedValue="([^"]+)"\s*(def:ExtendedValue="Yes")?', freq.group(0))
    )
    assert items["Q3D"] == 'def:ExtendedValue="Yes"', freq.group(0)
    assert all(v == "" for k, v in items.items() if k != "Q3D"), items  # a published term is not marked
    # readers that are not ours
    df, meta = pyreadstat.read_xport(str(out / "ex.xpt"))
    assert meta.table_name == "EX"
    zmapp = {str(f) for f, trt in zip(df["EXDOSFRQ"], df["EXTRT"], strict=True) if "ZMapp" in str(trt)}
    assert zmapp == {"Q3D"}, set(zip(df["EXTRT"], df["EXDOSFRQ"], strict=True))
    ts, _meta = pyreadstat.read_xport(str(out / "ts.xpt"))
    dosfrq = {
        str(v): (str(ref), str(ver))
        for code, v, ref, ver in zip(ts["TSPARMCD"], ts["TSVAL"], ts["TSVCDREF"], ts["TSVCDVER"], strict=True)
        if code == "DOSFRQ"
    }
    assert dosfrq["Q3D"] == ("", ""), dosfrq  # a sponsor term cites no reference terminology
    assert all(ref == "CDISC CT" and ver for k, (ref, ver) in dosfrq.items() if k != "Q3D"), dosfrq
    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    doc = json.loads((out / "ex.json").read_text("utf-8"))
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(doc)) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        # an undeclared term: the check would flag every EX row, so the protocol is refused first
        ({MEANING: ""}, "'Q3D' is not a CDISC FREQ term (QD, BID"),
        ({DECLARED: 'frequency = "EVERY3"\n', MEANING: ""}, "'EVERY3' is not a CDISC FREQ term"),
        # a published term is not the sponsor's own
        ({DECLARED: 'frequency = "QD"\n'}, "'QD' is a CDISC FREQ term"),
        # hostile meanings: control characters, oversized, blank
        ({MEANING: 'frequency_extended = "Every\\u0007 3 days"\n'}, "frequency_extended"),
        ({MEANING: f'frequency_extended = "{"x" * 201}"\n'}, "frequency_extended"),
        ({MEANING: 'frequency_extended = ""\n'}, "frequency_extended"),
    ],
)
def test_a_frequency_is_a_cdisc_term_or_a_declared_sponsor_term(
    cli, tmp_path: Path, changes: dict[str, str], problem: str
) -> None:
    text = (ENGINE / "palm.toml").read_text("utf-8")
    for old, new in changes.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new, 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text, "utf-8")
    r = cli("protocol", "check", str(bad))
    assert r.code == 1, r.out + r.err
    line = next((x for x in r.err.splitlines() if problem in x), None)
    assert line is not None and "bad.toml:" in line, r.err
    assert "Traceback" not in r.err
