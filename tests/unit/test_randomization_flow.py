"""Lists made at the hub, carried in its bundles, taken on the ward; the hub checks them (issue 20)."""

from __future__ import annotations

import collections
import json

import pytest
from rand_support import OPEN_FOUR, Trial, blinded_two_to_one, send_ward_bundle, site, trial, unblind

from wardcrf import authority
from wardcrf.errors import PermissionDenied, Refused
from wardcrf.randomization import sealing, service

__all__ = ["site", "trial"]
# Wards of the lists' own trials: PALM007 (the blinded 2:1 lists); `palm-levels` (PALM, randomized before
# screening ends) for the open four-arm lists, whose Ct level is stated for a participant not yet screened.
pytestmark = pytest.mark.ward("palm007")


def _consented(t: Trial) -> str:
    """Consented, not screened yet: the Ct factor's level is stated (`palm-levels` randomizes before screening)."""
    assert t.rec is not None
    return t.rec.consent()


def _events_but_the_protocols_arms(store) -> list[dict]:
    """The ward's events, less what names every arm of the trial by design: the protocol versions loaded
    (the file declares its arms) and a list's header (`arms`, as the file). An arm found elsewhere is a leak."""
    out = []
    for line in store.rows("SELECT line FROM events"):
        event = json.loads(line["line"])
        if event["type"] == "protocol.loaded":
            continue
        event["body"] = {k: v for k, v in (event["body"] or {}).items() if k != "arms"}
        out.append(event)
    return out


def _hub_allocations(t: Trial) -> list[dict]:
    hs = t.hub_session()
    try:
        return hs.store.rows("SELECT * FROM rand_allocations ORDER BY stratum, position")
    finally:
        hs.close()


def _hub_list(t: Trial, list_id: str) -> dict:
    """The hub's plaintext list, as the hub opens it (its own identity)."""
    from wardcrf import devicekeys

    hs = t.hub_session("admin")
    try:
        line = hs.store.scalar(
            "SELECT ev.line FROM rand_lists l JOIN events ev ON ev.id = l.event_id WHERE list_id = ?",
            (list_id,),
        )
        keys = devicekeys.load(hs.store, hs.ctx.device)
        return sealing.hub_record(json.loads(line)["body"], keys.age_identity)
    finally:
        hs.close()


@pytest.mark.ward("palm-levels")
def test_open_four_arm_stratified_list_is_followed_exactly_and_the_hub_agrees(
    trial: Trial, session_for
) -> None:
    made = trial.make(OPEN_FOUR, per_stratum=8)
    assert set(made.strata) == {"site=WUH01;ct_np=HIGH", "site=WUH01;ct_np=LOW"}
    plain = _hub_list(trial, made.list_id)
    assert plain["document"]["header"]["arms"] == [
        {"code": c, "ratio": 1} for c in ("ZMAPP", "RDV", "MAB114", "REGNEB3")
    ]
    assert len(bytes.fromhex(plain["seed"])) == 32
    want = collections.defaultdict(list)
    for e in plain["document"]["entries"]:
        want[e["stratum"]].append(e["arm"])
    clin = session_for("clinician")
    got = collections.defaultdict(list)
    for i in range(6):
        level = "HIGH" if i % 3 else "LOW"
        a = service.allocate(clin, _consented(trial), {"ct_np": level})
        assert a.kit is None and a.arm is not None
        got[a.stratum].append(a.arm)
    for stratum, arms in got.items():
        assert arms == want[stratum][: len(arms)]  # the list, in order, nothing skipped
    send_ward_bundle(trial)
    rows = _hub_allocations(trial)
    assert len(rows) == 6
    hs = trial.hub_session()
    try:
        assert hs.store.rows("SELECT * FROM rand_flags") == []
    finally:
        hs.close()


def test_blinded_two_to_one_reveals_a_kit_number_only_and_the_arm_stays_sealed(
    trial: Trial, session_for
) -> None:
    made = trial.make(blinded_two_to_one(), per_stratum=6)
    plain = _hub_list(trial, made.list_id)
    entries = plain["document"]["entries"]
    counts = collections.Counter(e["arm"] for e in entries)
    assert counts["TECOVIRIMAT"] == 2 * counts["PLACEBO"] and len(entries) in (6, 9)  # whole blocks of 3 or 6
    clin = session_for("clinician")
    pid = trial.participant()
    a = service.allocate(clin, pid)
    assert a.arm is None and a.kit == entries[0]["kit"]
    assert "TECOVIRIMAT" not in a.shown() and "PLACEBO" not in a.shown()
    # nothing the ward holds in clear names the arm: its log, its projections
    # (the list's header names the protocol's arms and ratio, as the protocol file does; no entry does)
    store = clin.store
    for event in _events_but_the_protocols_arms(store):
        text = json.dumps(event)
        assert "TECOVIRIMAT" not in text and "PLACEBO" not in text, event["type"]
    for table in ("rand_allocations", "rand_entries", "rand_lists"):
        for row in store.rows(f"SELECT * FROM {table}"):
            text = json.dumps(row, default=str)
            assert "TECOVIRIMAT" not in text and "PLACEBO" not in text, table
    # the hub knows the arm behind the kit
    send_ward_bundle(trial)
    assert _hub_allocations(trial)[0]["arm"] == entries[0]["arm"]


def test_an_exhausted_stratum_is_refused_naming_it_and_the_hub_is_told(trial: Trial, session_for) -> None:
    from wardcrf.engine import model

    source = model.shipped_source("palm007.toml").replace("block_sizes = [2, 4]", "block_sizes = [2]")
    trial.make(model.parse(source, "p.toml"), per_stratum=2)
    clin = session_for("clinician")
    service.allocate(clin, trial.participant())
    service.allocate(clin, trial.participant())
    late = trial.participant()
    with pytest.raises(Refused, match=r"^stratum site=WUH01 is exhausted: .*was not randomized"):
        service.allocate(clin, late)
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 2
    send_ward_bundle(trial)
    hs = trial.hub_session()
    try:
        assert hs.store.rows("SELECT stratum, participant FROM rand_exhausted") == [
            {"stratum": "site=WUH01", "participant": late}
        ]
    finally:
        hs.close()


def test_a_participant_is_randomized_once_and_unknown_ones_not_at_all(trial: Trial, session_for) -> None:
    trial.make(blinded_two_to_one(), per_stratum=3)
    clin = session_for("clinician")
    pid = trial.participant()
    service.allocate(clin, pid)
    with pytest.raises(Refused, match=f"{pid} is already randomized"):
        service.allocate(clin, pid)
    with pytest.raises(Refused, match="unknown participant WUH01-999"):
        service.allocate(clin, "WUH01-999")
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 1


def test_roles_other_than_the_allowed_ones_may_not_randomize_or_make_lists(trial: Trial, session_for) -> None:
    trial.make(blinded_two_to_one(), per_stratum=3)
    pid = trial.participant()
    for role in ("auditor", "pharmacist", "dsmg"):
        with pytest.raises(PermissionDenied):
            service.allocate(session_for(role), pid)
    with pytest.raises(Refused, match="made at the hub"):
        service.make_list(session_for("admin"), OPEN_FOUR, "WUH01", trial.device, 4)
    hs = trial.hub_session("dsmg")
    try:
        with pytest.raises(PermissionDenied):
            service.make_list(hs, OPEN_FOUR, "WUH01", trial.device, 4)
    finally:
        hs.close()


@pytest.mark.ward("palm-levels")
def test_strata_levels_are_checked_against_the_list(trial: Trial, session_for) -> None:
    trial.make(OPEN_FOUR, per_stratum=4)
    clin = session_for("clinician")
    pid = _consented(trial)
    with pytest.raises(
        Refused, match=r"stratum factor ct_np is asked at randomization: give its level \(one of HIGH, LOW\)"
    ):
        service.allocate(clin, pid)
    with pytest.raises(Refused, match="'MID' is not a level of stratum factor ct_np"):
        service.allocate(clin, pid, {"ct_np": "MID"})
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0


def test_only_the_hub_may_originate_a_list_and_a_ward_bundle_carrying_one_is_refused(trial: Trial) -> None:
    with pytest.raises(Refused, match=r"a ward may not originate randomization\.list_issued"):
        authority.check_append("ward", "coordinator", "randomization.list_issued")
    with pytest.raises(Refused, match=r"a hub may not originate randomization\.allocated"):
        authority.check_append("hub", "clinician", "randomization.allocated")
    with pytest.raises(Refused, match=r"role auditor may not originate randomization\.unblinded"):
        authority.check_append("ward", "auditor", "randomization.unblinded")


def _blinded_pair(trial: Trial, session_for) -> tuple[list[str], dict]:
    made = trial.make(blinded_two_to_one(), per_stratum=6)
    clin = session_for("clinician")
    pids = [trial.participant() for _ in range(3)]
    for pid in pids:
        service.allocate(clin, pid)
    return pids, _hub_list(trial, made.list_id)


def test_emergency_unblinding_reveals_one_arm_signed_and_witnessed_and_the_hub_learns_it(
    trial: Trial, session_for
) -> None:
    pids, plain = _blinded_pair(trial, session_for)
    inv = session_for("investigator")
    u = unblind(inv, pids[1])
    assert u.arm == plain["document"]["entries"][1]["arm"]
    store = inv.store
    signed = store.rows(
        "SELECT meaning, user_id AS signer FROM signatures WHERE target_event = ? ORDER BY meaning",
        (u.event_id,),
    )
    assert [(r["meaning"], r["signer"]) for r in signed] == [
        ("authored", "investigator"),
        ("witnessed", "clinician2"),
    ]
    # no other participant's arm is revealed: the only event naming an arm is this unblinding
    naming = []
    for event in _events_but_the_protocols_arms(store):
        if "TECOVIRIMAT" in json.dumps(event["body"]) or "PLACEBO" in json.dumps(event["body"]):
            naming.append(event["id"])
    assert naming == [u.event_id]
    with pytest.raises(Refused, match="already unblinded"):
        unblind(inv, pids[1], reason="other", detail="again")
    send_ward_bundle(trial)
    hs = trial.hub_session()
    try:
        rows = hs.store.rows("SELECT participant, arm, reason, user, witness FROM rand_unblindings")
        assert rows == [
            {
                "participant": pids[1],
                "arm": u.arm,
                "reason": "sae_management",
                "user": "investigator",
                "witness": "clinician2",
            }
        ]
    finally:
        hs.close()


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"reason": "curiosity"}, "needs a reason from the protocol's list"),
        ({"detail": "   "}, "needs a written explanation"),
        ({"witness": None, "witness_password": None}, "needs a witness"),
        ({"witness": "investigator"}, "another person"),
        ({"password": "wrong"}, "wrong password for investigator"),
        ({"witness_password": "wrong"}, "wrong password for clinician2"),
    ],
    ids=["coded-reason", "free-text", "no-witness", "self-witness", "no-signature", "witness-signature"],
)
def test_unblinding_without_reason_signature_or_witness_is_refused_and_leaves_nothing(
    trial: Trial, session_for, kw: dict, error: str
) -> None:
    from wardcrf.errors import AuthError

    pids, _ = _blinded_pair(trial, session_for)
    inv = session_for("investigator")
    with pytest.raises((Refused, AuthError), match=error):
        unblind(inv, pids[0], **kw)
    assert inv.store.scalar("SELECT COUNT(*) FROM rand_unblindings") == 0
    assert inv.store.scalar("SELECT COUNT(*) FROM events WHERE type = 'randomization.unblinded'") == 0


def test_an_auditor_or_a_clinician_may_not_unblind(trial: Trial, session_for) -> None:
    pids, _ = _blinded_pair(trial, session_for)
    for role in ("auditor", "clinician", "coordinator"):
        with pytest.raises(PermissionDenied):
            unblind(session_for(role), pids[0])


@pytest.mark.ward("palm-levels")
def test_an_open_label_participant_has_nothing_to_unblind(trial: Trial, session_for) -> None:
    trial.make(OPEN_FOUR, per_stratum=4)
    pid = _consented(trial)
    service.allocate(session_for("clinician"), pid, {"ct_np": "LOW"})
    with pytest.raises(Refused, match="open label"):
        unblind(session_for("investigator"), pid, reason="other")


_KILL_ME = """
import sys, threading
from wardcrf.site import Session, Site

real = Session.append

def append_then_hang(self, **kw):
    result = real(self, **kw)
    if kw.get("type") == "randomization.allocated":
        print("APPENDED", result.event.body["position"], flush=True)
        threading.Event().wait()  # inside the open transaction: SIGKILL lands before the commit
    return result

Session.append = append_then_hang
from wardcrf import features
from wardcrf.randomization import service
features.install()
s = Site.open(sys.argv[1]).unlock("clinician", "test-password-1")
service.allocate(s, sys.argv[2])
"""


def test_sigkill_mid_allocation_leaves_nothing_and_the_next_allocation_takes_the_same_entry(
    trial: Trial, session_for
) -> None:
    import os
    import signal
    import subprocess
    import sys

    made = trial.make(blinded_two_to_one(), per_stratum=6)
    entries = _hub_list(trial, made.list_id)["document"]["entries"]
    pid = trial.participant()
    for s in list(trial.wf._sessions.values()):
        s.close()
    trial.wf._sessions.clear()
    assert trial.rec is not None
    trial.rec.close()  # nothing of this process holds the database while the other allocates
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_ME, str(trial.ward_site.data_dir), pid],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # blocks until the allocation event is written, uncommitted
        assert line.split() == ["APPENDED", "1"], (
            line,
            proc.stderr.read() if proc.poll() is not None else "",
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    clin = session_for("clinician")
    assert clin.store.scalar("SELECT COUNT(*) FROM events WHERE type = 'randomization.allocated'") == 0
    again = service.allocate(clin, pid)
    assert (again.position, again.kit) == (1, entries[0]["kit"])  # the same entry, not skipped
    nxt = service.allocate(clin, trial.participant())
    assert (nxt.position, nxt.kit) == (2, entries[1]["kit"])


@pytest.mark.ward("palm007")
def test_the_dose_gate_refuses_a_kit_other_than_the_allocated_one_before_any_signature(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardcrf.workflow import dose_visit

    assert trial.rec is not None
    trial.make(blinded_two_to_one(), per_stratum=3)
    pid = trial.rec.enrolled()
    clin = session_for("clinician")
    allocated = service.allocate(clin, pid).kit
    assert allocated is not None
    other = "K999999" if allocated != "K999999" else "K999998"  # another kit of the trial's format
    wrong = dose_visit.check_kit(clin, pid, other)
    assert not wrong.ok and f"is not the kit allocated to {pid}: scan kit {allocated}" in str(wrong.reason)
    signed = clin.store.scalar("SELECT COUNT(*) FROM signatures")
    with pytest.raises(
        Refused, match=f"^kit {other} is not the kit allocated to {pid}: .*nothing was signed"
    ):
        trial.rec.give(pid, 1, other, _clock(monkeypatch))  # the engine's allocation gate
    assert clin.store.scalar("SELECT COUNT(*) FROM signatures") == signed
    assert trial.rec.given(pid) == 0
    trial.rec.give(pid, 1, allocated.lower(), _clock(monkeypatch))  # the allocated kit, as scanned
    assert trial.rec.given(pid) == 1


def _clock(monkeypatch: pytest.MonkeyPatch):
    """Sets the app's clock (`WARDCRF_FAKE_NOW`): an administration is recorded once its time has come."""
    return lambda moment: monkeypatch.setenv("WARDCRF_FAKE_NOW", moment.isoformat())


def test_make_refuses_an_unknown_laptop_another_sites_laptop_and_an_oversized_list(trial: Trial) -> None:
    hs = trial.hub_session()
    try:
        with pytest.raises(Refused, match="device NOSUCHDEV is not registered at this hub"):
            service.make_list(hs, OPEN_FOUR, "WUH01", "NOSUCHDEV", 4)
        with pytest.raises(
            Refused, match=f"device {trial.device} is not an active ward laptop of site XYZ02"
        ):
            service.make_list(hs, OPEN_FOUR, "XYZ02", trial.device, 4)
        with pytest.raises(Refused, match="more than one list holds"):
            service.make_list(hs, OPEN_FOUR, "WUH01", trial.device, 9_000)
        assert hs.store.scalar("SELECT COUNT(*) FROM events WHERE type = 'randomization.list_issued'") == 0
    finally:
        hs.close()


def test_the_audit_trail_review_lists_an_emergency_unblinding_with_its_event(
    trial: Trial, session_for
) -> None:
    """Issue 21's review kind "unblindings" finds the event issue 20 records (and nothing before it)."""
    from wardcrf.reports import audit_review

    pids, _ = _blinded_pair(trial, session_for)
    monitor = session_for("auditor")
    before = audit_review.review(monitor, "2000-01-01", "2100-01-01")
    assert [f for f in before.findings if f.kind == "unblinding"] == []
    u = unblind(session_for("investigator"), pids[0])
    after = audit_review.review(monitor, "2000-01-01", "2100-01-01")
    (found,) = [f for f in after.findings if f.kind == "unblinding"]
    assert found.events == (u.event_id,) and found.who == "investigator"


@pytest.mark.ward("palm007")
def test_one_kit_for_the_course_serves_its_participants_later_doses_and_nobody_else(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PALM007's bottle serves the 14 days (`kit = { use = "course" }`): the "kit used once" rule lets the
    allocated participant's later doses use it, and still refuses it to anyone else."""
    from datetime import timedelta

    from wardcrf import audit, kits
    from wardcrf.errors import ValidationFailed
    from wardcrf.workflow import dose_visit, dosing

    rec = trial.rec
    assert rec is not None
    made = trial.make(blinded_two_to_one(), per_stratum=3)
    assert _hub_list(trial, made.list_id)["document"]["header"]["kit_use"] == "course"
    pid, other = rec.enrolled(), rec.enrolled()
    clin = session_for("clinician")
    kit = service.allocate(clin, pid).kit
    other_kit = service.allocate(clin, other).kit
    assert kit is not None and other_kit is not None
    # whom each kit is for, as `today` names it beside a kit at the bedside (`kits.holder`)
    assert kits.holder(clin.store, kit) == pid and kits.holder(clin.store, other_kit) == other
    assert kits.holder(clin.store, "NO-SUCH-KIT") is None
    # before any dose: the kit is refused to the other participant (it is not theirs)
    assert f"kit {kit} is allocated to {pid}, not to {other}" in str(
        dose_visit.check_kit(clin, other, kit).reason
    )
    rec.give(pid, 1, kit, _clock(monkeypatch))
    assert dosing.kit_use(clin.store, kit, participant=pid) is None  # the same bottle for the next dose
    assert dosing.kit_use(clin.store, kit, participant=other) is not None
    # the scan step for the next dose (an hour later: the bottle is still at the bedside for custody)
    soon = rec.slot(pid, 1).due + timedelta(hours=1)
    assert dose_visit.check_kit(clin, pid, kit.lower(), when=soon).ok
    # the dose form's rule: the kit is not "already used" for its own participant: dose 2 from the bottle
    rec.give(pid, 2, kit, _clock(monkeypatch))
    assert rec.given(pid) == 2
    refused = dose_visit.check_kit(clin, other, kit)
    assert not refused.ok and f"kit {kit} was already used for {pid} (" in str(refused.reason)  # its record
    with pytest.raises(ValidationFailed, match=f"kit_id: kit {kit} belongs to {pid} .*never given to two"):
        rec.give(other, 1, kit, _clock(monkeypatch))
    check = next(r for r in audit.verify_store(clin.store).results if r.name == "kits used once")
    assert check.checked >= 1 and check.problems == []  # the course kit, given twice to its own participant
    send_ward_bundle(trial)  # the hub asks the same question of its own copy (its hold of a kit given twice)
    hs = trial.hub_session()
    try:
        assert dosing.kit_use(hs.store, kit, participant=pid) is None
        assert dosing.kit_use(hs.store, kit, participant=other) is not None
    finally:
        hs.close()


@pytest.mark.ward("palm007-kit-per-dose")
def test_a_kit_per_administration_is_still_used_once_by_its_own_participant(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blinded protocol whose products are one kit per administration keeps the rule whole (the ward runs
    that protocol: `palm007-kit-per-dose`)."""
    from wardcrf.errors import ValidationFailed

    source = blinded_two_to_one().source.replace(
        'kit = { use = "course" }', 'kit = { use = "administration" }'
    )
    from wardcrf.engine import model as engine_model

    per_dose = engine_model.parse(source, "palm007-kit-per-dose.toml")
    made = trial.make(per_dose, per_stratum=3)
    assert _hub_list(trial, made.list_id)["document"]["header"]["kit_use"] == "administration"
    assert trial.rec is not None
    pid = trial.rec.enrolled()
    clin = session_for("clinician")
    kit = service.allocate(clin, pid).kit
    assert kit is not None
    trial.rec.give(pid, 1, kit, _clock(monkeypatch))
    with pytest.raises(
        ValidationFailed, match=f"kit_id: kit {kit} was already used .*one kit, one administration"
    ):
        trial.rec.give(pid, 2, kit, _clock(monkeypatch))
    # the same kit in a second record written past the rules (as a merge of two laptops' records can hold):
    # `audit verify` names it, reading the engine's administration records (not only format 1's doses)
    from wardcrf import audit, records

    adm = trial.rec.trial.regimens_of(trial.rec.trial.arms[0].code)[0].administrations[0]
    records.submit(clin, str(adm.record["form"]), {"kit_id": kit}, subject=f"participant:{pid}")
    check = next(r for r in audit.verify_store(clin.store).results if r.name == "kits used once")
    assert [p for p in check.problems if p.startswith(f"kit {kit} was given 2 times: {pid} administration")]
