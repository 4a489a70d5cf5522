"""The read models behind the dashboard's panels: safety, DSMG gate, freezers, sync.

Each is one domain call (the screens never run SQL); these tests pin what
each says about records written through the services.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from wf_support import PASSWORD, Staff, _copy_site, make_ward, today

from wardcrf import roles, workflow
from wardcrf.coldchain import reports, scenario, services
from wardcrf.errors import PermissionDenied
from wardcrf.site import Site

P1 = "WUH01-001"  # enrolled ten days ago, DSMG 'continue' recorded (the sentinel template)


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def _ae(ward: Staff, **kw):
    values = {
        "term": "Fever",
        "onset": today().isoformat(),
        "grade": "1",
        "serious": "no",
        "causality": "possible",
        "action": "none",
        "outcome": "recovering",
    }
    values.update(kw)
    return ward.submit("ae", participant=P1, **values)


# -- safety --------------------------------------------------------------------------------


def test_sae_lists_its_report_due_date_and_days_left(ward):
    known = today() - timedelta(days=3)
    sae = _ae(
        ward,
        term="Respiratory failure",
        onset=known.isoformat(),
        first_known=known.isoformat(),
        grade="4",
        serious="yes",
        life_threatening="yes",
    )
    minor = _ae(ward, term="Headache")
    view = workflow.safety_overview(ward.clin)
    first, second = view["events"]
    assert first["event"] == sae.id and first["serious"] and first["dsmg_review_pending"]
    assert first["report_due"] == (known + timedelta(days=7)).isoformat()
    assert first["days_left"] == 4
    assert second["event"] == minor.id and second["report_due"] is None and second["days_left"] is None
    assert (view["open_aes"], view["saes"], view["reviews_pending"]) == (2, 1, 1)
    later = datetime.now(UTC) + timedelta(days=10)
    assert workflow.safety_overview(ward.clin, later)["events"][0]["days_left"] == 4 - 10  # overdue


def test_closed_events_leave_the_panel_unless_an_sae_awaits_review(ward):
    day = today() - timedelta(days=2)
    _ae(ward, term="Cough", onset=day.isoformat(), end=day.isoformat(), outcome="recovered")
    sae = _ae(
        ward,
        term="Pneumonia",
        onset=day.isoformat(),
        end=today().isoformat(),
        first_known=day.isoformat(),
        grade="3",
        serious="yes",
        hospitalization="yes",
        outcome="recovered",
    )
    events = workflow.safety_overview(ward.clin)["events"]
    assert [(e["event"], e["open"]) for e in events] == [(sae.id, False)]
    ward.submit(
        "dsmg_ae_review",
        who=ward.dsmg,
        participant=P1,
        ae_event=sae.id,
        relatedness="unlikely",
        unexpected="no",
        comment="bacterial pneumonia, culture-confirmed",
    )
    assert workflow.safety_overview(ward.clin)["events"] == []


def test_overviews_refused_without_read_permission(ward, monkeypatch):
    monkeypatch.setattr(roles, "allowed", lambda role, action: action != "record.read")
    for call in (workflow.safety_overview, workflow.dsmg_gate, reports.freezers):
        with pytest.raises(PermissionDenied):
            call(ward.clin)


# -- DSMG gate -------------------------------------------------------------------------------


def test_gate_open_after_continue_then_stop_holds(ward):
    gate = workflow.dsmg_gate(ward.clin)
    assert gate["state"] == "open" and gate["hold"] is None
    assert gate["sentinels"] == [P1] and gate["waiting_for_dsmg"] == []
    assert gate["last_decision"]["decision"] == "continue"
    ev = ward.submit("dsmg_decision", who=ward.dsmg, participant=P1, decision="stop", rationale="signal")
    gate = workflow.dsmg_gate(ward.clin)
    assert gate["state"] == "stop" and "halted" in gate["hold"]
    assert gate["last_decision"]["event"] == ev.id


def test_gate_waits_for_the_sentinel(session_for, tmp_path, data_dir, _wf_template):
    _copy_site(_wf_template[0], data_dir / "fresh")
    fresh = Site.open(data_dir / "fresh")
    opened = []

    def open_(user):
        opened.append(fresh.unlock(user, PASSWORD))
        return opened[-1]

    try:
        w = Staff(open_, tmp_path)
        assert workflow.dsmg_gate(w.clin)["state"] == "open"  # nobody enrolled yet
        pid, _ = w.enrolled_participant(days_ago=2)
        gate = workflow.dsmg_gate(w.clin)
        assert gate["state"] == "sentinel" and gate["waiting_for_dsmg"] == [pid]
        assert gate["last_decision"] is None
    finally:
        for s in opened:
            s.close()


def test_alter_holds_until_a_new_protocol_version(ward):
    ward.submit(
        "dsmg_decision",
        who=ward.dsmg,
        participant=P1,
        decision="alter",
        rationale="dose too high",
        change="halve the dose",
    )
    gate = workflow.dsmg_gate(ward.clin)
    assert gate["state"] == "alter" and "amended protocol" in gate["hold"]


# -- freezers --------------------------------------------------------------------------------


def test_unit_without_readings_has_no_last_reading(ward):
    ph = ward.session("pharmacist")
    services.add_unit(ph, "FRZ-2", name="spare freezer", location="store")
    (unit,) = reports.unit_status(ph.store)
    assert unit["unit"] == "FRZ-2" and unit["last_reading"] is None and unit["open_excursions"] == []


def test_excursion_with_kits_inside_is_unresolved_until_disposed(ward, tmp_path):
    ph = ward.session("pharmacist")
    passwords = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician")}
    arrive = datetime.now(UTC) - timedelta(days=2)
    scenario.receive_and_store(
        ph, passwords, lot="LOT-X1", kits=["KIT-X1", "KIT-X2"], received_at=arrive, workdir=tmp_path
    )
    ok_at = arrive + timedelta(hours=2)
    services.record_reading(ph, scenario.UNIT, at=ok_at.isoformat(), temp_c=-20.0)
    (unit,) = reports.unit_status(ph.store)
    assert unit["last_reading"]["temp_c"] == -20.0 and unit["last_reading"]["in_range"]
    assert unit["open_excursions"] == []
    hot_at = arrive + timedelta(hours=3)
    services.record_reading(ph, scenario.UNIT, at=hot_at.isoformat(), temp_c=-8.0)
    (unit,) = reports.unit_status(ph.store)
    assert unit["last_reading"]["source"] == "manual" and not unit["last_reading"]["in_range"]
    (x,) = unit["open_excursions"]
    assert x["awaiting_disposition"] == ["KIT-X1", "KIT-X2"] and x["max_c"] == -8.0
    assert reports.freezers(ph)["units"] == reports.unit_status(ph.store)
    for kit in ("KIT-X1", "KIT-X2"):
        services.record_disposition(ph, x["id"], decision="release", reason="30 s door open", kits=[kit])
    assert reports.unit_status(ph.store)[0]["open_excursions"] == []


# -- sync --------------------------------------------------------------------------------------


def test_sync_status_without_a_hub_counts_pending_events(ward):
    from wardcrf.sync import ward as sync_ward

    info = sync_ward.status(ward.clin)
    assert info["state"] == "no hub"
    assert info["events_pending"] > 0 and info["last_receipt"] is None


def test_report_due_counts_local_days():
    # the helper the panel's due dates rest on (7 days if life-threatening, else 15)
    from wardcrf.workflow import safety

    assert safety.report_due(date(2020, 3, 1), True) == date(2020, 3, 8)
    assert safety.report_due(date(2020, 3, 1), False) == date(2020, 3, 16)
