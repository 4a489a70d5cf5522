"""Allocation lists are issued for a protocol version (issue 17, amendments): a participant is allocated
from a list issued for the version they are on, and keeps their arm when an amendment is applied later;
a list that can give an arm their version does not plan (not an open arm of it) is never used for them,
on the ward (refused before any entry is opened) nor at the hub (the bundle refused)."""

from __future__ import annotations

import re

import pytest
from hub_engines import ledger
from rand_support import Trial, open_four_source, site, trial

from wardcrf import protocol
from wardcrf.engine import loading, model
from wardcrf.errors import Refused
from wardcrf.randomization import service
from wardcrf.workflow import amendments

__all__ = ["site", "trial"]
pytestmark = pytest.mark.ward("palm")  # a ward started on PALM 1.0; its lists are made from PALM's versions


def _source(version: str, without: str | None = None, closed: tuple[str, ...] = ()) -> str:
    """PALM (Ct asked) at `version`; `without`: that arm taken out (three arms, blocks of 3 and 6); `closed`:
    those arms closed (`closed = true`: the DSMB's closure of ZMapp and remdesivir, as palm.toml says)."""
    source = open_four_source().replace('version = "1.0"', f'version = "{version}"', 1)
    for arm in closed:
        marker = f'[[arms]]\ncode = "{arm}"\n'
        assert marker in source
        source = source.replace(marker, marker + "closed = true\n", 1)
    if without is not None:
        source, n = re.subn(rf'\[\[arms\]\]\ncode = "{without}"\n(?:[^\[\n].*\n)*\n', "", source, count=1)
        assert n == 1
        source = source.replace("block_sizes = [4, 8]", "block_sizes = [3, 6]", 1)
    return source


def _design(version: str, without: str | None = None, closed: tuple[str, ...] = ()) -> model.Model:
    return model.parse(_source(version, without, closed), f"palm-{version}.toml")


def _enrolled(trial: Trial) -> str:
    assert trial.rec is not None
    return trial.rec.enrolled()


def _load(session_for, version: str, without: str | None = None, closed: tuple[str, ...] = ()) -> None:
    s = session_for("investigator")
    protocol.load(s, loading.ward_protocol(_design(version, without, closed)))


CLOSED = ("ZMAPP", "RDV")


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


def test_a_list_that_can_give_an_arm_the_version_does_not_plan_is_refused_and_one_from_the_version_used(
    cli, trial: Trial, session_for
) -> None:
    """PALM 1.1 closes ZMapp and remdesivir. A list made from a 1.1 file that keeps them open is refused
    for a 1.1 participant before any entry is opened, in one line (the CLI exits 1), nothing saved; a list
    made from 1.1 itself is used, even though the other one is older."""
    wrong = trial.make(_design("1.1"), per_stratum=4)
    _load(session_for, "1.1", closed=CLOSED)
    pid = _enrolled(trial)  # enrolled under 1.1: their version
    clin = session_for("clinician")
    refusal = (
        rf"^{pid} is on PALM 1\.1, whose open arms are MAB114, REGNEB3; allocation list {wrong.list_id} "
        r"\(made from PALM 1\.1\) can give ZMAPP, RDV: nobody randomized; ask the coordinator for a list "
        r"made from PALM 1\.1$"
    )
    with pytest.raises(Refused, match=refusal):
        service.allocate(clin, pid, {"ct_np": "HIGH"})
    with pytest.raises(Refused, match=refusal):  # the dialog's first question: refused before any level
        service.factors_needed(clin, pid)
    assert service.levels_known(clin, pid) == []
    res = cli("randomize", pid, "--stratum", "ct_np=HIGH", user="clinician")
    assert res.code == 1 and res.err.count("\n") == 1 and "can give ZMAPP, RDV: nobody randomized" in res.err
    assert (
        clin.store.scalar(
            "SELECT COUNT(*) FROM events WHERE type LIKE 'randomization.%' AND type != "
            "'randomization.list_issued' AND type != 'randomization.unblinding_key'"
        )
        == 0
    )
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0
    right = trial.make(_design("1.1", closed=CLOSED), per_stratum=4)
    a = service.allocate(clin, pid, {"ct_np": "HIGH"})
    assert a.list_id == right.list_id and a.arm in ("MAB114", "REGNEB3")


def _to_the_hub(t: Trial) -> list[object]:
    """The ward's bundles imported at the hub: what each import says, or the refusal it raised."""
    from synckit import open_
    from wardcrf.sync import hub, ward

    out = t.tmp / "outbox"
    out.mkdir(exist_ok=True)
    s = open_(t.ward_site)
    try:
        files = [f for f in ward.export(s, out).files if f.name.endswith(".tar.age")]
    finally:
        s.close()
    hs = t.hub_session("admin")
    said: list[object] = []
    try:
        for f in files:
            try:
                said.append(hub.import_file(hs, f))
            except Refused as refused:
                said.append(refused)
    finally:
        hs.close()
    return said


def _hub_allocations(t: Trial) -> int:
    with ledger(t.hub_site) as (_hs, wards):
        return int(wards.scalar("SELECT COUNT(*) FROM rand_allocations"))


def _allocated_by_an_unchecked_ward(trial: Trial, session_for, monkeypatch, n: int, **levels: str) -> dict:
    """`n` participants allocated by a ward that does not check the list's arms (an older wardcrf, a forged
    bundle): what reaches the hub is the hub's to refuse. Returns {participant: allocation}."""
    monkeypatch.setattr(service, "_arms_planned", lambda _store, _pid, lists: lists)
    clin = session_for("clinician")
    return {pid: service.allocate(clin, pid, levels) for pid in (_enrolled(trial) for _ in range(n))}


@pytest.mark.usefixtures("hub_engine")
def test_the_hub_refuses_a_bundle_allocating_an_arm_the_participants_version_does_not_plan(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial.make(_design("1.1"), per_stratum=4)  # 1.1's number, ZMapp and remdesivir still open in it
    _load(session_for, "1.1", closed=CLOSED)
    got = _allocated_by_an_unchecked_ward(trial, session_for, monkeypatch, 4, ct_np="HIGH")
    closed = [(pid, a) for pid, a in got.items() if a.arm in CLOSED]
    assert closed, "a block of four holds every arm once"
    [said] = _to_the_hub(trial)
    assert isinstance(said, Refused), said
    pid, a = closed[0]
    assert str(said) == (
        f"allocation {a.event_id} of {pid} from device {trial.device} gives arm {a.arm} from list {a.list_id},"
        " which PALM 1.1 (their version) does not plan (open arms: MAB114, REGNEB3); the bundle is refused,"
        " nothing merged"
    )
    assert _hub_allocations(trial) == 0  # nothing of the bundle merged


@pytest.mark.usefixtures("hub_engine")
def test_the_hub_accepts_allocations_from_a_list_of_the_participants_version(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial.make(_design("1.1", closed=CLOSED), per_stratum=4)
    _load(session_for, "1.1", closed=CLOSED)
    got = _allocated_by_an_unchecked_ward(trial, session_for, monkeypatch, 2, ct_np="HIGH")
    assert {a.arm for a in got.values()} <= {"MAB114", "REGNEB3"}
    assert all(getattr(r, "ok", False) for r in _to_the_hub(trial))
    assert _hub_allocations(trial) == 2


def _palm007_closing_placebo() -> str:
    """PALM007 1.1 with its placebo arm closed (one open arm: which one a refusal must not say)."""
    source = model.shipped_source("palm007.toml").replace('version = "1.0"', 'version = "1.1"', 1)
    marker = '[[arms]]\ncode = "PLACEBO"\n'
    assert marker in source
    return source.replace(marker, marker + "closed = true\n", 1)


@pytest.mark.ward("palm007")
@pytest.mark.usefixtures("hub_engine")
def test_a_blinded_refusal_names_no_arm_on_the_ward_nor_at_the_hub(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ward's refusal names the list's arms (every arm: the header says them), never the participant's;
    the hub's names none, nor the arms planned (with one open arm left, they would name the other)."""
    assert trial.rec is not None
    wrong = trial.make(
        model.parse(
            model.shipped_source("palm007.toml").replace('version = "1.0"', 'version = "1.1"', 1), "w.toml"
        ),
        per_stratum=4,
    )
    protocol.load(
        session_for("investigator"), loading.ward_protocol(model.parse(_palm007_closing_placebo(), "c.toml"))
    )
    clin = session_for("clinician")
    refusals = set()
    for _ in range(2):
        pid = trial.rec.enrolled()
        with pytest.raises(Refused) as refused:
            service.allocate(clin, pid)
        refusals.add(str(refused.value).replace(pid, "P"))
    assert refusals == {
        f"P is on PALM007 1.1, whose open arms are TECOVIRIMAT; allocation list {wrong.list_id} (made from "
        "PALM007 1.1) can give PLACEBO: nobody randomized; ask the coordinator for a list made from PALM007 1.1"
    }  # the same for every participant: it says what the list can give, not what this one would get
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0
    monkeypatch.setattr(service, "_arms_planned", lambda _store, _pid, lists: lists)
    kits = [service.allocate(clin, trial.rec.enrolled()) for _ in range(4)]  # blocks of 2 or 4: a placebo
    assert all(a.arm is None and a.kit for a in kits)
    [said] = _to_the_hub(trial)
    assert isinstance(said, Refused), said
    text = str(said)
    assert "gives the arm of its kit (blinded: no arm named)" in text and "does not plan;" in text
    assert "TECOVIRIMAT" not in text and "PLACEBO" not in text
    assert _hub_allocations(trial) == 0


def test_a_list_whose_header_names_no_arm_is_never_used(
    trial: Trial, session_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile: a list whose signed header names no arm (only a hub key could sign one) fits no version."""
    made = trial.make(_design("1.0"), per_stratum=4)
    pid = _enrolled(trial)
    monkeypatch.setattr(service, "list_arms", lambda _store, _lst: [])
    with pytest.raises(
        Refused, match=rf"list {made.list_id} \(made from PALM 1\.0\) can give nothing \(its header"
    ):
        service.allocate(session_for("clinician"), pid, {"ct_np": "HIGH"})
    assert session_for("auditor").store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0
