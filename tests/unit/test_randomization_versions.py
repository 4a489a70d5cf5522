"""Allocation lists are issued for a protocol version (issue 17, amendments): a participant is allocated
from a list issued for the version they are on, and keeps their arm when an amendment is applied later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rand_support import Trial, open_four_source, site, trial
from test_protocol_amendments import MEX, _version
from wf_support import at, today

from wardcrf import protocol
from wardcrf.engine import model
from wardcrf.errors import Refused
from wardcrf.randomization import service
from wardcrf.workflow import amendments

__all__ = ["site", "trial"]


def _design(version: str) -> model.Model:
    """An open four-arm list design carried under MEXCOVID's id (this ward's protocol) at `version`."""
    source = open_four_source().replace('id = "PALM"', 'id = "MEXCOVID"', 1)
    source = source.replace('version = "1.0"', f'version = "{version}"', 1)
    return model.parse(source, f"mexcovid-design-{version}.toml")


def _enrolled(trial: Trial) -> str:
    pid = trial.wf.consent(time=at(today() - timedelta(days=2)))
    trial.wf.screen(pid, date=(today() - timedelta(days=1)).isoformat())
    trial.wf.enroll(pid, today())
    return pid


def _load_1_1(session_for) -> None:
    s = session_for("investigator")
    protocol.load(s, protocol.parse(_version(MEX, "1.1"), "next.toml"))


@pytest.mark.usefixtures("format1_mexcovid")  # MEXCOVID forms, another design: rand_support.FORMAT1_WARD
def test_a_participant_is_allocated_only_from_a_list_for_their_version(trial: Trial, session_for) -> None:
    newer = trial.make(_design("1.1"), per_stratum=4)
    pid = _enrolled(trial)
    clin = session_for("clinician")
    with pytest.raises(
        Refused,
        match=r"is on protocol MEXCOVID 1\.0; this laptop's allocation lists were issued"
        r" for MEXCOVID 1\.1: ask the coordinator for a list for 1\.0",
    ):
        service.allocate(clin, pid, {"ct_np": "HIGH"})
    with pytest.raises(Refused, match=r"issued for MEXCOVID 1\.1"):
        service.factors_needed(clin, pid)
    assert service.levels_known(clin, pid) == []
    older = trial.make(_design("1.0"), per_stratum=4)
    a = service.allocate(session_for("clinician"), pid, {"ct_np": "HIGH"})
    assert a.list_id == older.list_id != newer.list_id


@pytest.mark.usefixtures("format1_mexcovid")  # MEXCOVID forms, another design: rand_support.FORMAT1_WARD
def test_an_allocation_stands_across_versions_and_later_participants_draw_from_their_list(
    trial: Trial, session_for
) -> None:
    """An amendment never moves an allocation: one to a version without the participant's arm is refused
    (a version with it keeps it: test_protocol_amendments::test_a_format_2_participant_follows_their_version_and_keeps_their_arm)."""
    older = trial.make(_design("1.0"), per_stratum=4)
    newer = trial.make(_design("1.1"), per_stratum=4)
    pid = _enrolled(trial)
    a = service.allocate(session_for("clinician"), pid, {"ct_np": "LOW"})
    assert a.list_id == older.list_id
    _load_1_1(session_for)  # the ward's 1.1 plans one arm, not the list's
    with pytest.raises(Refused, match=f"{pid} was allocated arm {a.arm}, which MEXCOVID 1.1 does not have"):
        amendments.apply(session_for("investigator"), pid, "1.1", "Amendment 1 approved; re-consented")
    s = session_for("auditor")
    row = s.store.one("SELECT list_id, arm FROM rand_allocations WHERE participant = ?", (pid,))
    assert (row[0], row[1]) == (older.list_id, a.arm)
    assert amendments.protocol_of(s.store, amendments.require_participant(s.store, pid)).version == "1.0"
    with pytest.raises(Refused, match="already randomized"):
        service.allocate(session_for("clinician"), pid, {"ct_np": "LOW"})
    later = trial.participant()  # consented under 1.1, the active version now
    b = service.allocate(session_for("clinician"), later, {"ct_np": "LOW"})
    assert b.list_id == newer.list_id
