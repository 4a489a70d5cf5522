"""A kit handed to a participant's bedside (`bedside:<participant>`) is theirs: the dose check refuses it for
anyone else, in one line naming both (the custody gate, `coldchain.custody.other_bedside`).

PALM's demos and the worklist hand each vial to `bedside:<participant>` so a nurse knows whose it is; the
gate accepted it for any participant. A kit at a bedside naming no one (`bedside`) is still any dose's.
Run on MEXCOVID 1.0 as the engine runs it (its format-2 file).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from wf_support import Staff, _copy_site, at, ready_kit_on, today

from wardcrf.coldchain import config, custody
from wardcrf.site import Site
from wardcrf.workflow import administration_visit

P1, P2 = "WUH01-001", "WUH01-002"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(site: Site, session_for, tmp_path: Path) -> Staff:
    w = Staff(session_for, tmp_path)
    pid, _ = w.enrolled_participant(10)
    assert pid == P2
    return w


def _dose(pid: str, kit: str, start: str, end: str) -> tuple[str, ...]:
    return (
        "submit", "dose", "--participant", pid, f"kit_id={kit}", f"lot=LOT-{kit.upper()}", "particles=2e8", "volume=6",
        f"start={start}", f"end={end}",
    )  # fmt: skip


def _doses(ward: Staff, pid: str) -> int:
    return int(ward.clin.store.scalar("SELECT count(*) FROM doses WHERE participant = ?", (pid,)))


def test_a_kit_at_another_participants_bedside_is_refused_in_one_line(cli, site, ward, tmp_path) -> None:
    day = today() - timedelta(days=9)  # dose 1 of both
    ready_kit_on(site, "KIT-B2", at(day), tmp_path, participant=P2)  # WUH01-002's vial
    got = cli(*_dose(P1, "KIT-B2", at(day), at(day, 9, 25)), user="clinician")
    assert got.code == 1, got.out
    assert got.err.count("\n") == 1 and "Traceback" not in got.err, got.err
    assert f"kit KIT-B2 was handed to {P2}'s bedside (bedside:{P2}), not {P1}'s" in got.err, got.err
    assert f"record its handover to bedside:{P1} first" in got.err
    assert _doses(ward, P1) == 0  # nothing saved
    # the wizard's scan step says it before anything else is typed
    check = administration_visit.check_kit(ward.clin, P1, "kit-b2", when=_when(day))
    assert not check.ok and f"handed to {P2}'s bedside" in (check.reason or ""), check
    # the kit is still WUH01-002's: their dose with it is accepted
    ok = cli(*_dose(P2, "KIT-B2", at(day, 9, 5), at(day, 9, 30)), user="clinician")
    assert ok.code == 0, ok.err
    assert _doses(ward, P2) == 1


def test_a_kit_at_the_participants_own_bedside_or_a_bedside_naming_no_one_is_accepted(
    cli, site, ward, tmp_path
) -> None:
    day = today() - timedelta(days=9)
    ready_kit_on(site, "kit-b1", at(day), tmp_path, participant=P1.lower())  # ids compare as ids do
    assert administration_visit.check_kit(ward.clin, P1, "KIT-B1", when=_when(day)).ok
    got = cli(*_dose(P1, "KIT-B1", at(day), at(day, 9, 25)), user="clinician")
    assert got.code == 0, got.err
    ready_kit_on(site, "KIT-ANY", at(day), tmp_path)  # `bedside`: whoever's dose it is
    assert administration_visit.check_kit(ward.clin, P2, "KIT-ANY", when=_when(day)).ok


def _when(day):
    from datetime import datetime

    return datetime.fromisoformat(at(day))


@pytest.mark.parametrize(
    ("where", "pid", "refused"),
    [
        (f"bedside:{P2}", P1, True),
        (f"bedside:{P1}", P1, False),
        (f"bedside: {P1.lower()} ", P1, False),
        ("bedside", P1, False),
        ("bedside:", P1, False),  # names no one
        ("FRZ-1", P1, False),  # not a bedside: the gate's own "not at the bedside" says it
        (f"bedside:{P2}", None, False),  # the caller does not know whom the dose is for
        ("bedside:\x1b[2Jx", P1, True),  # a hostile place name is named, as stored (the CLI escapes output)
    ],
)
def test_whose_bedside(where, pid, refused) -> None:
    said = custody.other_bedside("K1", where, pid)
    assert (said is not None) == refused, said
    assert config.bedside_of("bedside") is None and config.bedside_of("pharmacy") is None
