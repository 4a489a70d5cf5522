"""`dose_visit.check_day` on a format-2 ward answers from the engine, never from format 1's dose rules.

The dose wizard's first step asks whether a dose may be given now. For a
participant on a format-2 version of its own (PALM: infusions on a form named
`infusion`, four arms) the answer is the administration wizard's plan: the
protocol's gates in their words, the next administration's number, due time
and window — the same as `administration_visit.plan` — and a start the save would refuse is
refused in the save's words, so both wizards and the save agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from site_users import PASSWORD
from test_engine_ward_cli import Ward, _ward

from wardcrf.site import Site
from wardcrf.workflow import administration_visit, dose_visit, dsmg


@pytest.fixture
def palm(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm")


def _session(w: Ward, user: str = "clinician"):
    return Site.open(w.dir).unlock(user, PASSWORD)


def test_check_day_on_palm_is_the_administration_plan_and_refuses_in_the_protocols_words(
    palm: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = palm
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    s = _session(w)
    try:
        # refused: not randomized yet (the engine's words, not format 1's "dose N")
        got = dose_visit.check_day(s, pid, w.now)
        assert not got.ok and got.reason is not None and "randomize first" in got.reason
    finally:
        s.close()
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    s = _session(w)
    try:
        plan = administration_visit.plan(s, pid, w.now)
        opens = plan.window[0]
        start = datetime.fromisoformat(opens) + timedelta(minutes=5)
        got = dose_visit.check_day(s, pid, start)
        assert got.ok and got.reason is None
        assert got.dose_number == plan.number
        assert datetime.fromisoformat(str(got.due)) == datetime.fromisoformat(plan.due)
        assert (got.window, got.minutes_outside) == ("on_time", 0)
        # before its window: refused in the words the save would use (the earliest start the slot takes)
        early = dose_visit.check_day(s, pid, datetime.fromisoformat(opens) - timedelta(minutes=30))
        assert not early.ok and "the earliest start it takes is" in str(early.reason), early
    finally:
        s.close()
    # refused: the DSMB's stop holds dosing, in the gate's words (as the administration wizard says)
    d = _session(w, "dsmg")
    try:
        dsmg.decide(d, pid, {"decision": "stop", "rationale": "a safety signal"}, password=PASSWORD)
    finally:
        d.close()
    s = _session(w)
    try:
        plan = administration_visit.plan(s, pid, w.now)
        got = dose_visit.check_day(s, pid, w.now)
        assert plan.refusal and not got.ok and got.reason == plan.refusal
        assert "dose 1" not in (got.reason or "")
    finally:
        s.close()
    del monkeypatch
