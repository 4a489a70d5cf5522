"""A visit counted from the first of several anchors that has happened (`anchor = ["enrollment", "screening"]`).

MEXCOVID's BASELINE is the enrollment day (study day -1) and holds consent, screening and the baseline
labs and CT; a screen failure is never enrolled, and format 1 still gave their screening records the
BASELINE visit. The re-encoding says so as data: counted from enrollment, else from the screening day. The
engine dates it (`engine.visits`: `dated`, `waiting`), TV words it after the first anchor, SV places a
screen failure's consent and screening in it; a list naming what is not an anchor, empty, repeated or
longer than 4 is refused when the file is read, naming FILE:LINE.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

from wardcrf.engine import model, visits

SHA = ZoneInfo("Asia/Shanghai")
LISTED = 'anchor = ["enrollment", "screening"]'


def _mexcovid(anchor: str = LISTED) -> model.Model:
    src = model.shipped_source("mexcovid.toml")
    assert src.count(LISTED) == 1
    return model.parse(src.replace(LISTED, anchor), "mex.toml")


def test_the_visit_is_counted_from_the_first_anchor_that_has_happened_in_the_order_written():
    m = _mexcovid()
    enrolled, screened = date(2020, 3, 16), date(2020, 3, 14)

    def baseline(anchors: dict[str, date | datetime | None]) -> visits.Dated | None:
        found = visits.dated(m, anchors, SHA, arm="HAMSCEXO", worklist_only=False)
        return next((d for d in found if d.visit.code == "BASELINE"), None)

    both = baseline({"enrollment": enrolled, "screening": screened})
    assert both is not None and (both.target, both.opens) == (enrolled, date(2020, 3, 2))
    only_screened = baseline({"enrollment": None, "screening": screened})
    assert only_screened is not None and only_screened.target == screened
    assert baseline({}) is None
    # not placed until one has happened: waiting, in the words of the first
    waiting = [
        w for w in visits.waiting(m, {}, arm="HAMSCEXO", worklist_only=False) if w.visit.code == "BASELINE"
    ]
    assert [w.words for w in waiting] == ["day 0 after enrollment"]
    assert not [
        w
        for w in visits.waiting(m, {"screening": screened}, arm="HAMSCEXO", worklist_only=False)
        if w.visit.code == "BASELINE"
    ]
    # one anchor written as a list of one is the same visit as the plain name
    one = _mexcovid('anchor = ["enrollment"]')
    plain = _mexcovid('anchor = "enrollment"')
    assert [(d.target, d.num) for d in visits.dated(one, {"enrollment": enrolled}, SHA, arm=None)] == [
        (d.target, d.num) for d in visits.dated(plain, {"enrollment": enrolled}, SHA, arm=None)
    ]


def test_tv_keeps_the_first_anchors_study_day_and_names_the_next():
    from wardcrf.exports.sdtm.engine_design import design_from_model

    v = next(v for v in design_from_model(_mexcovid()).visits if v.name == "BASELINE")
    assert v.day == -1  # counted from enrollment: the day before dose 1
    assert v.start_rule == "Day 0 after enrollment (else after screening), window -14d to 0d"


@pytest.mark.parametrize(
    ("anchor", "why"),
    [
        ('["enrollment", "discharge"]', r"visits\[0\]\.anchor\[1\]: anchor 'discharge' is not declared"),
        ("[]", r"visits\[0\]\.anchor: "),
        ('["enrollment", "enrollment"]', r"visits\[0\]\.anchor: "),
        ('["consent", "screening", "enrollment", "randomization", "first_dose"]', r"visits\[0\]\.anchor: "),
        ('["enrollment", 3]', r"visits\[0\]\.anchor: "),
        ('["enroll\\u0007ment"]', r"visits\[0\]\.anchor"),
    ],
    ids=["not an anchor", "empty", "repeated", "more than 4", "a number", "control character"],
)
def test_a_hostile_anchor_list_is_refused_naming_the_file_and_line(anchor, why):
    import re

    src = model.shipped_source("mexcovid.toml")
    line = src[: src.index(LISTED)].count("\n") + 1
    with pytest.raises(model.ProtocolFileError) as err:
        model.parse(src.replace(LISTED, f"anchor = {anchor}"), "mex.toml")
    text = str(err.value)
    assert f"mex.toml:{line}: " in text and re.search(why, text), text


def test_a_screen_failures_consent_and_screening_are_the_baseline_visit_in_sv(tmp_path: Path):
    from wardcrf import records
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import package
    from wardcrf.site import Site

    ward = es.make_ward(tmp_path / "site", n=2)
    clin = Site.open(ward.data_dir).unlock("clinician", es.PASSWORD)
    try:
        failed = "participant:WUH01-009"
        consent = {
            "consenter": "participant",
            "form_version": "1.0",
            "time": es.at(date(2020, 3, 20), 10),
            "witness_1": "investigator",
            "witness_2": "clinician",
            "photos": [es.photo_ref("p9")],
        }
        records.submit(clin, "consent", consent, subject=failed)
        screening = {
            "date": "2020-03-21",
            "dob": "1930-01-01",
            "sex": "F",
            "pcr_confirmed": True,
            "severity": "severe",
            "age": es.u(90, "years"),
            "eligible": False,
            "failed_criteria": ["age"],
        }
        records.submit(clin, "screening", screening, subject=failed)
    finally:
        clin.close()
    s = Site.open(ward.data_dir).unlock("coordinator", es.PASSWORD)
    try:
        pkg = package(Dataset.for_session(s), model=model.shipped("mexcovid.toml"))
    finally:
        s.close()
    sv = [r for r in pkg.rows["SV"] if r["USUBJID"] == "MEXCOVID-WUH01-009"]
    # the screening day (21 March) dates it; consent the day before is inside its window
    assert [(r["VISITNUM"], r["VISIT"], r["SVPRESP"], r["EPOCH"]) for r in sv] == [
        (1, "BASELINE", "Y", "SCREENING")
    ]
    assert (sv[0]["SVSTDTC"][:10], sv[0]["SVENDTC"][:10]) == ("2020-03-20", "2020-03-21")
    dm = next(r for r in pkg.rows["DM"] if r["USUBJID"] == "MEXCOVID-WUH01-009")
    assert dm["ARMNRS"] == "SCREEN FAILURE"
