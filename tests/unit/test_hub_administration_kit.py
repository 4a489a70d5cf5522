"""A format-2 vial given twice on two wards that could not see each other: held at the hub.

Each laptop refuses a kit another participant's administration record gave
(`engine_rules._kit_rule`, asking `kits.administration_uses`). Two PALM wards
(sites KIN01 and KIN02 of one trial, one hub) each give VIAL-0501 offline to
their own participant; each ward is right on its own. Before, the hub's
kit-twice hold (`dosing.hold_kit_given_twice`) looked at format-1 dose
records only and applied the second; now it asks the same projection the
wards ask (`administration_kits`, each record read under its version).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hub_engines import ledger
from test_engine_ward_cli import Ward, _infusion, _product, _to_the_hub, _vitals, _ward
from wardcrf.sync import hub
from wf_support import ready_kit_on

from wardcrf import audit, kits

VIAL = "VIAL-0501"


def _randomized(w: Ward) -> tuple[str, str]:
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    return pid, r.out.split("randomized: arm ", 1)[1].split()[0]


def _give(w: Ward, pid: str, arm: str, kit: str, start) -> str:
    ready_kit_on(w.site(), kit, start.isoformat(), w.root, _product(arm))
    assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, kit, start, "3100")
    assert r.code == 0, r.err
    return r.out.strip().splitlines()[0]


def _applied(results) -> bool:
    """Every new bundle applied (the outbox's earlier files: already applied)."""
    got = [r.outcome.status for r in results]
    return "applied" in got and set(got) <= {"applied", "already"}


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_a_vial_given_on_two_wards_is_held_at_the_hub_and_released_once_corrected(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wa = _ward(cli, tmp_path / "kin01", monkeypatch, "palm")
    assert wa.hub is not None
    wb = _ward(cli, tmp_path / "kin02", monkeypatch, "palm", site="KIN02", trial_hub=wa.hub)
    wb.hub = wa.hub
    a, arm_a = _randomized(wa)
    b, arm_b = _randomized(wb)
    start = max(wa.now, wb.now) + timedelta(minutes=30)
    for w in (wa, wb):
        w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", wa.now.isoformat())
    given_a = _give(wa, a, arm_a, VIAL, start)
    given_b = _give(wb, b, arm_b, VIAL.lower(), start)  # as typed: the same vial

    # A's own record corrected to another vial and back to the one it was given: not another use
    ready_kit_on(wa.site(), "VIAL-0503", start.isoformat(), wa.root, _product(arm_a))
    r = wa.run("amend", given_a, "kit_id=VIAL-0503", "--reason", "vial label misread")
    assert r.code == 0, r.err
    r = wa.run("amend", given_a, f"kit_id={VIAL.lower()}", "--reason", "the first reading was right")
    assert r.code == 0, r.err
    # the vial given once (and corrected by its own record) is applied
    assert _applied(_to_the_hub(wa))

    results = _to_the_hub(wb)
    held = results[-1].outcome
    assert held.status == "kit", held.message
    assert (
        f"administration record {given_b} from device" in held.message
        and f"gives kit {VIAL} to {b}; the same kit was given to {a} ({given_a})" in held.message
    ), held.message
    assert "a kit is never given to two participants; not merged" in held.message
    with ledger(wa.hub, "coordinator") as (hs, wards):
        # nothing of B's bundle merged: the vial's one use is A's
        assert [(u.participant, u.event_id) for u in kits.administration_uses(wards, VIAL)] == [(a, given_a)]
        [row] = wards.rows("SELECT reason, file, resolved_at FROM sync_held")
        assert row["reason"] == "kit" and row["resolved_at"] is None
        assert [x["reason"] for x in hub.status(hs)["held_rules"]] == ["kit"]
        [ev] = hs.store.rows("SELECT line FROM events WHERE type = 'sync.bundle_held'")  # the hub's own
        body = json.loads(ev["line"])["body"]
        assert (body["kit"], body["participant"], body["used_by_participant"]) == (VIAL, b, a)
        assert body["used_by_event"] == given_a
        assert not [p for p in audit.verify(hs).problems if "kit" in p and VIAL in p]
    held_file = Path(row["file"])
    with ledger(wa.hub, "admin") as (hs, wards):
        assert hub.import_file(hs, held_file).outcome.status == "kit"  # again: still held, once
        assert wards.scalar("SELECT count(*) FROM sync_held") == 1

    # The coordinator's question to the wards: A's vial was misread. A corrects it on its laptop; the
    # correction reaches the hub, and B's held bundle, imported again, is applied.
    ready_kit_on(wa.site(), "VIAL-0502", start.isoformat(), wa.root, _product(arm_a))
    r = wa.run("amend", given_a, "kit_id=VIAL-0502", "--reason", "vial label misread at the bedside")
    assert r.code == 0, r.err
    assert _applied(_to_the_hub(wa))
    with ledger(wa.hub, "admin") as (hs, wards):
        assert hub.import_file(hs, held_file).outcome.status == "applied"
        assert [u.participant for u in kits.administration_uses(wards, VIAL)] == [b]
        assert [u.participant for u in kits.administration_uses(wards, "VIAL-0502")] == [a]
        # the hold is resolved: no longer listed for the coordinator
        [row] = wards.rows("SELECT reason, detail, resolved_at FROM sync_held")
        assert row["resolved_at"] is not None and row["detail"].endswith("; released: applied")
        assert hub.status(hs)["held_rules"] == []
