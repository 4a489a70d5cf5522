"""Eligibility as the protocol's criteria (issue 17, step 2): a failed criterion is named by code and
label; MEXCOVID's criteria read from the format-2 file give the ward's own outcome on a real site."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from wf_support import TZ, make_ward, today
from wf_support import _wf_template as _wf_template  # the fixture `site` builds on
from wf_support import site as site  # the workflow template site: MEXCOVID, users of every role

from wardcrf.engine import eligibility, interpreter, loading, model
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.errors import Refused
from wardcrf.workflow.base import get_participant

NOW = datetime(2020, 3, 20, 2, 0, tzinfo=UTC)


def _snap(m: model.Model, values: dict, on: date = date(2020, 3, 16)) -> Snapshot:
    fields = m.data["forms"]["screening"]["fields"]
    rec = Rec("screening", interpreter.typed_values(fields, values), "ev-1", 1)
    return Snapshot(records={"screening": [rec]}, now=NOW, zone=TZ, assessment=on)


MEX = {"date": "2020-03-16", "dob": "1965-05-01", "sex": "M", "pcr_confirmed": True, "severity": "severe"}


def test_mexcovid_eligible_participant_passes_every_criterion():
    a = eligibility.assess(model.shipped("mexcovid.toml"), _snap(model.shipped("mexcovid.toml"), MEX))
    assert a.eligible and a.failed_codes == []
    assert [(o.code, o.state) for o in a.outcomes] == [("age", "met"), ("pcr", "met"), ("severity", "met")]
    a.require("WUH01-001")  # no refusal


@pytest.mark.parametrize(
    ("change", "failed", "said"),
    [
        (
            {"dob": "1944-03-16"},
            ["age"],
            "age (Age 18 to 75 years): on 2020-03-16 the participant is 76: outside",
        ),
        ({"dob": "2002-03-17"}, ["age"], "the participant is 17: outside the age range 18 to 75"),
        ({"pcr_confirmed": False}, ["pcr"], "pcr (PCR-confirmed infection): not met"),
        ({"severity": "moderate"}, ["severity"], "severity (Severe or critical): not met"),
        (
            {"severity": None},
            ["severity"],
            "severity (Severe or critical): not assessable: screening.severity is blank",
        ),
        (
            {"pcr_confirmed": False, "severity": "moderate"},
            ["pcr", "severity"],
            "; severity (Severe or critical)",
        ),
    ],
)
def test_a_failed_mexcovid_criterion_is_named_with_its_code_and_label(change, failed, said):
    m = model.shipped("mexcovid.toml")
    a = eligibility.assess(m, _snap(m, {**MEX, **change}))
    assert not a.eligible and a.failed_codes == failed
    line = a.refusal("WUH01-001")
    assert line.startswith("WUH01-001 is not eligible on 2020-03-16: ") and said in line
    assert "\n" not in line
    with pytest.raises(Refused, match="is not eligible"):
        a.require("WUH01-001")


def test_an_exclusion_criterion_met_or_not_assessable_excludes():
    m = model.shipped("palm.toml")
    ok = {
        "date": "2019-01-10",
        "dob": "1990-01-01",
        "ebov_pcr_positive": True,
        "weight": 60,
        "prior_ebov_therapeutic": False,
    }
    fields = m.data["forms"]["screening"]["fields"]
    ok = {k: v for k, v in ok.items() if k in fields}
    assert eligibility.assess(m, _snap(m, ok)).eligible
    a = eligibility.assess(m, _snap(m, {**ok, "prior_ebov_therapeutic": True}))
    assert a.failed_codes == ["prior"] and "excluded" in a.refusal("BNI01-001")
    a = eligibility.assess(m, _snap(m, {**ok, "prior_ebov_therapeutic": None}))
    assert a.failed_codes == ["prior"] and a.failed[0].state == "not assessable"


def test_date_arithmetic_in_a_criterion_palm007_pcr_within_48_hours():
    m = model.shipped("palm007.toml")
    fields = m.data["forms"]["screening"]["fields"]
    base = {
        "date": "2022-10-10",
        "dob": "1990-01-01",
        "weight": 60,
        "pcr_positive": True,
        "pcr_date": "2022-10-08",
        "active_lesion": True,
        "contraception": "agrees",
        "inpatient_agreed": True,
        "hb": 12,
        "meglitinide": False,
        "midazolam_planned": False,
        "other_investigational": False,
        "investigator_excludes": False,
        "sex": "F",
        "pregnant": "no",
    }
    base = {k: v for k, v in base.items() if k in fields}
    on = date(2022, 10, 10)
    a = eligibility.assess(m, _snap(m, base, on))
    assert a.eligible, a.refusal("KIN01-001")
    late = eligibility.assess(m, _snap(m, {**base, "pcr_date": "2022-10-07"}, on))
    assert late.failed_codes == ["pcr"] and "Clade I MPXV confirmed by PCR within 48 hours" in late.refusal(
        "x"
    )
    anaemic = eligibility.assess(m, _snap(m, {**base, "hb": 6.9}, on))
    assert anaemic.failed_codes == ["anaemia"]


def test_all_and_any_lists_name_the_failing_part():
    src = model.shipped_source("mexcovid.toml").replace(
        "expr = \"screening.severity in ['severe', 'critical']\"",
        'all = ["screening.pcr_confirmed == true", { any = ["screening.severity == \'severe\'", '
        "\"screening.severity == 'critical'\"] }]",
        1,
    )
    m = model.parse(src, "m.toml")
    assert eligibility.assess(m, _snap(m, MEX)).eligible
    a = eligibility.assess(m, _snap(m, {**MEX, "pcr_confirmed": False}))
    assert "severity" in a.failed_codes
    assert "not met (screening.pcr_confirmed == true)" in a.refusal("x")
    a = eligibility.assess(m, _snap(m, {**MEX, "severity": "moderate"}))
    assert a.failed_codes == ["severity"]


@pytest.fixture
def ward(session_for, tmp_path):
    return make_ward(session_for, tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"dob": (today() - timedelta(days=30) - timedelta(days=365 * 80)).isoformat()},
        {"dob": (today() - timedelta(days=30 + 365 * 17)).isoformat()},
        {"pcr_confirmed": "no"},
        {"severity": "moderate"},
        {"pcr_confirmed": "no", "severity": "moderate"},
    ],
)
def test_the_engine_reads_a_real_sites_records_and_agrees_with_the_ward(ward, change):
    """The format-1 workflow stores eligible/failed; the format-2 criteria over the same records agree."""
    pid = ward.consent()
    try:
        ward.screen(pid, **change)
    except Refused:
        pytest.skip("the ward refused the screening itself")
    store = ward.clin.store
    m = model.shipped("mexcovid.toml")
    assert loading.model_of(store, None).id == "MEXCOVID"
    snap = eligibility.snapshot(store, m, pid, now=datetime.now(UTC), zone=TZ)
    assert snap.assessment == today() - timedelta(days=30)
    a = eligibility.assess(m, snap)
    p = get_participant(store, pid)
    assert a.failed_codes == list(p.failed_criteria)
    assert a.eligible == bool(p.eligible)


def test_a_criterion_written_as_all_any_is_name_checked_never_a_crash():
    """Found: a criterion with `all`/`any` instead of `expr` ended the reader with a KeyError."""
    src = model.shipped_source("mexcovid.toml").replace(
        'expr = "screening.pcr_confirmed == true"',
        'all = ["screening.pcr_confirmed == true", { any = ["screening.shoe_size > 3"] }]',
        1,
    )
    with pytest.raises(
        model.ProtocolFileError, match=r"m.toml:\d+: criteria\[1\]\.all\[1\]\.any\[0\]: .*shoe_size"
    ):
        model.parse(src, "m.toml")


def test_format_1_eligibility_is_upgraded_to_criteria_the_ward_assesses_with_the_engine():
    """The ward's screening (workflow.participants.check_screening) now asks the engine; a format-1
    [eligibility] table is the criteria it always meant, in the order failures were named."""
    import dataclasses

    from wardcrf import protocol
    from wardcrf.engine import protocol_v1

    v1 = protocol.default_protocol()
    assert [c["code"] for c in protocol_v1.criteria(v1.eligibility)] == ["age", "pcr", "severity"]
    paediatric = dataclasses.replace(
        v1, eligibility=protocol.Eligibility(12, 17, False, ("mild",)), sha256="0" * 64
    )
    m = protocol_v1.upgrade(paediatric)
    assert [c["code"] for c in m.data["criteria"]] == ["age", "severity"]
    now = datetime.now(UTC)
    child = {"dob": "2008-01-01", "severity": "mild", "pcr_confirmed": False}
    a = eligibility.of_record(m, child, on=date(2022, 6, 1), now=now, zone=TZ)
    assert a.eligible and a.failed_codes == []
    adult = {**child, "dob": "1990-01-01", "severity": "severe"}
    a = eligibility.of_record(m, adult, on=date(2022, 6, 1), now=now, zone=TZ)
    assert a.failed_codes == ["age", "severity"]
    assert "age (Age 12 to 17 years): not met" in a.refusal("X")
