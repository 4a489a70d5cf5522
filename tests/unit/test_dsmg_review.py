"""DSMG review: per-participant safety summary, the gate, and signed decisions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typed_support import assert_shape
from wf_support import PASSWORD, Staff, _copy_site, at, make_ward, today

from wardcrf import eventlog, protocol, signatures
from wardcrf.errors import AuthError, PermissionDenied, ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow import dsmg, safety

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def d(days_ago: int) -> str:
    return (today() - timedelta(days=days_ago)).isoformat()


def _ae(ward: Staff, **kw):
    values = {
        "term": "Fever",
        "onset": d(8),
        "grade": "2",
        "serious": "no",
        "causality": "possible",
        "action": "none",
        "outcome": "recovering",
        "first_known": d(8),
    }
    values.update(kw)
    return ward.submit("ae", participant=P1, **values)


def _summary(ward: Staff, **kw):
    store = ward.clin.store
    return dsmg.participant_safety(store, protocol.active(store), P1, today=kw.get("today", today()))


def test_summary_counts_doses_aes_by_grade_and_causality_and_flags_vitals(ward):
    day1 = today() - timedelta(days=9)
    ward.dose(P1, 1, day1)
    _ae(ward)
    sae = _ae(
        ward,
        term="Pneumothorax",
        grade="3",
        serious="yes",
        hospitalization="yes",
        causality="unlikely",
        first_known=d(7),
        onset=d(7),
    )
    ward.submit(
        "vitals",
        participant=P1,
        timepoint="post_dose",
        dose="1",
        time=at(day1, 10),
        temp="39.8",
        pulse="80",
        resp="18",
        oxysat="96",
        reason="confirmed on repeat",
        confirm=True,
    )
    s = _summary(ward)
    assert (s["doses_given"], s["doses_planned"]) == (1, 5)
    assert [(c["value"], c["unit"]) for c in s["cumulative_dose"]] == [(pytest.approx(2.0e8), "particles")]
    assert s["aes_total"] == 2 and s["aes_serious"] == 1
    assert s["aes_by_grade"] == {"2": 1, "3": 1}
    assert s["aes_by_causality"] == {"possible": 1, "unlikely": 1}
    [row] = s["saes"]
    assert (
        row["event"] == sae.id
        and row["report_due"] == (today() - timedelta(days=7) + timedelta(days=15)).isoformat()
    )
    assert row["awaiting_review"] and not row["report_overdue"] and s["saes_awaiting_review"] == 1
    [flag] = s["vitals_flags"]
    assert (flag["sign"], flag["value"], flag["low"], flag["high"]) == ("temp", 39.8, 35.0, 39.5)
    assert [x["decision"] for x in s["decisions"]] == ["continue"]
    # Twenty days on, the expedited report is overdue.
    late = _summary(ward, today=today() + timedelta(days=20))
    assert late["saes"][0]["report_overdue"] and late["sae_reports_overdue"] == 1


def test_summary_of_a_participant_without_safety_data_is_empty_not_missing(ward):
    s = _summary(ward)
    assert s["aes_total"] == 0 and s["saes"] == [] and s["vitals_flags"] == [] and s["doses_given"] == 0


def test_dsmg_review_of_the_sae_takes_it_off_the_waiting_list(ward):
    sae = _ae(
        ward, term="Sepsis", grade="3", serious="yes", hospitalization="yes", onset=d(6), first_known=d(6)
    )
    ward.submit(
        "dsmg_ae_review",
        who=ward.dsmg,
        participant=P1,
        ae_event=sae.id,
        relatedness="unlikely",
        unexpected="no",
    )
    row = _summary(ward)["saes"][0]
    assert row["relatedness"] == "unlikely" and row["unexpected"] is False and not row["awaiting_review"]


def test_gate_state_names_the_sentinel_and_a_stop_hold(ward):
    store = ward.clin.store
    gate = dsmg.gate_state(store, protocol.active(store))
    assert gate["hold"] is None and gate["sentinel"]["sentinels"] == [P1] and gate["sentinel"]["open"]
    dsmg.decide(
        ward.dsmg, P1, {"decision": "stop", "rationale": "grade 4 event under review"}, password=PASSWORD
    )
    gate = dsmg.gate_state(store, protocol.active(store))
    assert "the DSMG recorded 'stop'" in gate["hold"] and gate["latest"]["decision"] == "stop"
    assert [x["decision"] for x in gate["decisions"]] == ["continue", "stop"]


def test_review_lists_every_participant_and_marks_sentinels(ward):
    board = dsmg.review(ward.aud, today=today())
    assert [p["participant"] for p in board["participants"]] == [P1]
    assert board["participants"][0]["sentinel"] is True
    # The board and its gate are TypedDicts (the DSMG screen reads them): exactly their keys.
    from typing import get_type_hints

    assert set(board) == set(get_type_hints(dsmg.DsmgBoard))
    assert set(board["gate"]) == set(get_type_hints(dsmg.GateState))


def test_the_board_is_typed_all_the_way_down(ward):
    """What the DSMG screen reads (issue #16): each participant's safety summary, its SAEs, vitals flags
    and signed decisions, and the gate's sentinel state and decisions, are the TypedDicts `DsmgBoard`
    declares, with no key their types do not name."""
    day1 = today() - timedelta(days=9)
    ward.dose(P1, 1, day1)
    _ae(
        ward,
        term="Pneumothorax",
        grade="3",
        serious="yes",
        hospitalization="yes",
        onset=d(7),
        first_known=d(7),
    )
    ward.submit(
        "vitals",
        participant=P1,
        timepoint="post_dose",
        dose="1",
        time=at(day1, 10),
        temp="39.8",
        pulse="80",
        resp="18",
        oxysat="96",
        reason="confirmed on repeat",
        confirm=True,
    )
    dsmg.decide(ward.dsmg, P1, {"decision": "continue", "rationale": "no concern"}, password=PASSWORD)
    board = dsmg.review(ward.dsmg, today=today())
    assert_shape(board, dsmg.DsmgBoard)
    [p] = [p for p in board["participants"] if p["participant"] == P1]
    assert p["saes"] and p["aes"] and p["vitals_flags"] and p["sentinel"] is True
    assert p["decisions"][-1]["signatures"][0]["meaning"] == "approved"
    assert board["gate"]["latest"] is not None and board["gate"]["sentinel"]["sentinels"] == [P1]


def test_decide_records_the_decision_with_the_members_signature(ward):
    ev = dsmg.decide(
        ward.dsmg,
        P1,
        {"decision": "alter", "rationale": "two grade 3 events", "change": "halve the dose"},
        password=PASSWORD,
    )
    [sig] = signatures.for_target(ward.dsmg.store, ev.id)
    assert (sig.user, sig.meaning, sig.valid) == ("dsmg", "approved", True)
    assert "the DSMG recorded 'alter'" in (safety.hold(ward.dsmg.store) or "")
    history = _summary(ward)["decisions"]
    assert history[-1]["signatures"][0]["meaning"] == "approved"


def test_decide_with_a_wrong_password_saves_nothing_and_logs_the_failure(ward):
    store = ward.dsmg.store
    before = eventlog.count(store)
    with pytest.raises(AuthError, match="wrong password for dsmg"):
        dsmg.decide(ward.dsmg, P1, {"decision": "stop", "rationale": "concern"}, password="not-it")
    assert safety.hold(store) is None
    assert len(safety.decisions(store)) == 1
    failed = store.rows("SELECT type FROM events ORDER BY pos")[before:]
    assert [r["type"] for r in failed] == ["auth.login_failed"]


def test_decide_is_refused_to_other_roles_and_an_alter_needs_its_change(ward):
    before = eventlog.count(ward.clin.store)
    with pytest.raises(PermissionDenied, match="role clinician may not record DSMG decisions"):
        dsmg.decide(ward.clin, P1, {"decision": "stop", "rationale": "x"}, password=PASSWORD)
    with pytest.raises(ValidationFailed, match="change: required for 'alter'"):
        dsmg.decide(ward.dsmg, P1, {"decision": "alter", "rationale": "x"}, password=PASSWORD)
    assert eventlog.count(ward.clin.store) == before
