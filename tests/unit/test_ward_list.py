"""The ward list in a few queries says exactly what `summary` says participant by participant.

`status.list_rows` (what the dashboard and `participant list` read) reads each
projection once; `status.list_row(status.summary(...))` is the reference, one
participant at a time. They are compared here on a generated site with every
state the list can show, and on the demo site in `test_demo.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from wf_support import PASSWORD, Staff, _copy_site, evening_on_the_ward, make_ward, today

from wardcrf import records, workflow
from wardcrf.clock import now_utc
from wardcrf.errors import PermissionDenied
from wardcrf.site import Site
from wardcrf.workflow import status


@pytest.fixture(autouse=True)
def _evening(monkeypatch):
    evening_on_the_ward(monkeypatch)


def reference(store, at: datetime) -> list[dict]:
    ids = [r[0] for r in store.execute("SELECT id FROM participants ORDER BY number")]
    return [status.list_row(status.summary(store, pid, at)) for pid in ids]


@pytest.fixture
def site(data_dir: Path, _wf_template) -> Site:
    return _copy_site(_wf_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def test_generated_site_with_every_state_lists_the_same(ward, site, session_for):
    clin = ward.clin
    only_consented = ward.consent()
    failed = ward.consent()
    ward.screen(failed, severity="mild")  # screen failure
    eligible = ward.consent()
    ward.screen(eligible)  # eligible, not enrolled
    sentinel, _ = ward.enrolled_participant(days_ago=6)
    ward.continue_(sentinel)
    dosed, d0 = ward.enrolled_participant(days_ago=3)
    ward.dose(dosed, 1, d0 + timedelta(days=1))  # no post-dose vitals: owed
    ward.dose(dosed, 2, d0 + timedelta(days=2), hh=11)  # late: a deviation
    ward.submit(
        "vitals",
        participant=dosed,
        timepoint="post_dose",
        dose=1,
        time=f"{(d0 + timedelta(days=1)).isoformat()}T10:00:00+08:00",
        temp="36.8",
        pulse="80",
        resp="16",
        oxysat="97",
    )
    ward.submit(
        "ae",
        participant=dosed,
        term="fever",
        onset=today().isoformat(),
        grade="2",
        serious="no",
        causality="possible",
        action="none",
        outcome="recovering",
    )
    positive = ward.consent()
    ward.screen(positive)
    ward.enroll(positive, today() - timedelta(days=1))
    ward.skin(positive, today() - timedelta(days=1), result="positive")
    # Records written straight through `records.submit` (no consent signatures): "consent incomplete".
    with clin.store.transaction():
        records.submit(
            clin,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-01T08:00:00+08:00",
                "witness_1": "a",
                "witness_2": "b",
                "photos": [],
            },
            subject="participant:WUH01-900",
        )
    from wardcrf.workflow import safety

    safety.sign_off(ward.inv, sentinel, password=PASSWORD)
    now = now_utc()
    for at in (now, now - timedelta(days=2), now + timedelta(days=30)):
        fast = status.list_rows(clin.store, at)
        assert fast == reference(clin.store, at)
    by_id = {r["id"]: r for r in status.list_rows(clin.store, now)}
    assert by_id[only_consented]["status"] == "consented"
    assert by_id[failed]["status"] == "screen failure"
    assert by_id[eligible]["status"] == "eligible, not enrolled"
    assert by_id[dosed]["post_dose_vitals_due"] == [2]
    assert by_id[dosed]["open_aes"] == 1 and by_id[dosed]["deviations"] >= 1
    assert by_id[positive]["next_dose"]["state"] == "held"
    assert by_id["WUH01-900"]["status"] == "consent incomplete"
    assert by_id[sentinel]["signoff"] == "signed"


def test_dsmg_stop_holds_every_next_dose_in_the_list(ward):
    first, _ = ward.enrolled_participant(days_ago=2)
    ward.submit("dsmg_decision", who=ward.dsmg, participant=first, decision="stop", rationale="safety signal")
    rows = status.list_rows(ward.clin.store, now_utc())
    assert rows == reference(ward.clin.store, now_utc())
    assert rows[0]["next_dose"]["state"] == "held" and rows[0]["next_dose"]["hold"].startswith("DSMG hold")


def test_list_refused_without_read_permission(site, session_for, monkeypatch):
    from wardcrf import roles

    s = session_for("clinician")
    monkeypatch.setattr(roles, "allowed", lambda role, action: action != "record.read")
    with pytest.raises(PermissionDenied):
        workflow.list_participants(s)
