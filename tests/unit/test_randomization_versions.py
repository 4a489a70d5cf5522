"""Allocation lists are issued for a protocol version (issue 17, amendments): a participant is allocated
from a list issued for the version they are on, and keeps their arm when an amendment is applied later."""

from __future__ import annotations

import re

import pytest
from rand_support import Trial, open_four_source, site, trial

from wardcrf import protocol
from wardcrf.engine import loading, model
from wardcrf.errors import Refused
from wardcrf.randomization import service
from wardcrf.workflow import amendments

__all__ = ["site", "trial"]
pytestmark = pytest.mark.ward("palm")  # a ward started on PALM 1.0; its lists are made from PALM's versions


def _source(version: str, without: str | None = None) -> str:
    """PALM (Ct asked) at `version`; `without`: that arm taken out (three arms, blocks of 3 and 6)."""
    source = open_four_source().replace('version = "1.0"', f'version = "{version}"', 1)
    if without is not None:
        source, n = re.subn(rf'\[\[arms\]\]\ncode = "{without}"\n(?:[^\[\n].*\n)*\n', "", source, count=1)
        assert n == 1
        source = source.replace("block_sizes = [4, 8]", "block_sizes = [3, 6]", 1)
    return source


def _design(version: str, without: str | None = None) -> model.Model:
    return model.parse(_source(version, without), f"palm-{version}.toml")


def _enrolled(trial: Trial) -> str:
    assert trial.rec is not None
    return trial.rec.enrolled()


def _load(session_for, version: str, without: str | None = None) -> None:
    s = session_for("investigator")
    protocol.load(s, loading.ward_protocol(_design(version, without)))


def test_a_participant_is_allocated_only_from_a_list_for_their_version(trial: Trial, session_for) -> None:
    newer = trial.make(_design("1.1"), per_stratum=4)
    pid = _enrolled(trial)
    clin = session_for("clinician")
    with pytest.raises(
        Refused,
        match=r"is on protocol PALM 1\.0; this laptop's allocation lists were issued"
        r" for PALM 1\.1: ask the coordinator for a list for 1\.0",
    ):
        service.allocate(clin, pid, {"ct_np": "HIGH"})
    with pytest.raises(Refused, match=r"issued for PALM 1\.1"):
        service.factors_needed(clin, pid)
    assert service.levels_known(clin, pid) == []
    older = trial.make(_design("1.0"), per_stratum=4)
    a = service.allocate(session_for("clinician"), pid, {"ct_np": "HIGH"})
    assert a.list_id == older.list_id != newer.list_id


def test_an_allocation_stands_across_versions_and_later_participants_draw_from_their_list(
    trial: Trial, session_for
) -> None:
    """An amendment never moves an allocation: one to a version without the participant's arm is refused
    (a version with it keeps it: test_protocol_amendments::test_a_format_2_participant_follows_their_version_and_keeps_their_arm)."""
    older = trial.make(_design("1.0"), per_stratum=4)
    pid = _enrolled(trial)
    a = service.allocate(session_for("clinician"), pid, {"ct_np": "HIGH"})
    assert a.list_id == older.list_id and a.arm is not None
    # 1.1 takes the participant's arm out; the hub makes 1.1's list from it, the ward loads it
    newer = trial.make(_design("1.1", without=a.arm), per_stratum=4)
    _load(session_for, "1.1", without=a.arm)
    with pytest.raises(Refused, match=f"{pid} was allocated arm {a.arm}, which PALM 1.1 does not have"):
        amendments.apply(session_for("investigator"), pid, "1.1", "Amendment 1 approved; re-consented")
    s = session_for("auditor")
    row = s.store.one("SELECT list_id, arm FROM rand_allocations WHERE participant = ?", (pid,))
    assert (row[0], row[1]) == (older.list_id, a.arm)
    assert amendments.protocol_of(s.store, amendments.require_participant(s.store, pid)).version == "1.0"
    with pytest.raises(Refused, match="already randomized"):
        service.allocate(session_for("clinician"), pid, {"ct_np": "HIGH"})
    later = trial.participant()  # consented and screened under 1.1, the active version now
    b = service.allocate(session_for("clinician"), later, {"ct_np": "HIGH"})
    assert b.list_id == newer.list_id
