"""A tampered or forged allocation list is refused; allocations off the list are flagged at the hub."""

from __future__ import annotations

import copy
import json

import pytest
from forge import append_raw
from hub_delivery import deliver
from rand_support import Trial, blinded_two_to_one, send_ward_bundle, site, trial, unblind
from synckit import open_

from wardcrf.errors import Refused
from wardcrf.randomization import sealing, service

__all__ = ["site", "trial"]
pytestmark = pytest.mark.ward("palm007")  # the blinded 2:1 lists are PALM007's: taken by its participants


def _list_body(t: Trial) -> dict:
    """A genuine list body as the hub signed it (made at the hub, not yet delivered)."""
    hs = t.hub_session()
    try:
        made = service.make_list(hs, blinded_two_to_one(), "WUH01", t.device, 3)
        return json.loads(hs.store.scalar("SELECT line FROM events WHERE id = ?", (made.event.id,)))["body"]
    finally:
        hs.close()


def _deliver(t: Trial, body: dict) -> None:
    s = open_(t.ward_site)
    try:
        deliver(s, "randomization.list_issued", body, subject="site:WUH01")
    finally:
        s.close()


def _lists_on_ward(t: Trial) -> int:
    s = open_(t.ward_site)
    try:
        return int(s.store.scalar("SELECT COUNT(*) FROM rand_lists"))
    finally:
        s.close()


def _changed_entry(body: dict) -> None:
    body["entries"][0]["sealed"] = body["entries"][1]["sealed"]


def _dropped_entry(body: dict) -> None:
    del body["entries"][0]


def _swapped_digest(body: dict) -> None:
    body["entries"][0]["digest"], body["entries"][1]["digest"] = (
        body["entries"][1]["digest"],
        body["entries"][0]["digest"],
    )


def _other_key(body: dict) -> None:
    import minisign

    pair = minisign.KeyPair.generate()
    secret = pair.secret_key.to_base64().decode("ascii")
    body["signature"] = sealing._sign(secret, body)


def _no_signature(body: dict) -> None:
    body["signature"] = "not a signature"


@pytest.mark.parametrize(
    "tamper",
    [_changed_entry, _dropped_entry, _swapped_digest, _other_key, _no_signature],
    ids=["changed-entry", "dropped-entry", "swapped-digest", "other-key", "junk-signature"],
)
def test_a_tampered_list_is_refused_and_nothing_of_it_is_kept(trial: Trial, tamper) -> None:
    body = _list_body(trial)
    bad = copy.deepcopy(body)
    tamper(bad)
    with pytest.raises(Refused, match="randomization list"):
        _deliver(trial, bad)
    assert _lists_on_ward(trial) == 0
    _deliver(trial, body)  # the genuine list, delivered the same way, is accepted
    assert _lists_on_ward(trial) == 1


def test_a_ward_trusting_no_hub_refuses_any_list(trial: Trial) -> None:
    body = _list_body(trial)
    s = open_(trial.ward_site)
    try:
        s.store.execute("DELETE FROM sync_hub")
        with pytest.raises(Refused, match="trusts no hub"):
            deliver(s, "randomization.list_issued", body, subject="site:WUH01")
    finally:
        s.close()


def test_another_laptops_list_is_not_kept_and_cannot_be_opened(trial: Trial) -> None:
    body = _list_body(trial)
    body["device"] = "OTHERLAP"
    _deliver(trial, body)  # the hub's chain reaches every ward: kept in the log, not as a list here
    assert _lists_on_ward(trial) == 0


def test_a_ward_bundle_carrying_a_list_is_refused_by_the_hub_whole(trial: Trial) -> None:
    from wardcrf.sync import hub, ward

    body = _list_body(trial)
    append_raw(trial.ward_site, "randomization.list_issued", body, subject="site:WUH01", role="coordinator")
    s = open_(trial.ward_site)
    out = trial.tmp / "forged"
    out.mkdir()
    try:
        files = ward.export(s, out).files
    finally:
        s.close()
    hs = trial.hub_session("admin")
    try:
        before = hs.store.scalar("SELECT COUNT(*) FROM events")
        with pytest.raises(
            Refused, match=r"randomization\.list_issued, which a ward device may not originate"
        ):
            for f in files:
                if f.name.endswith(".tar.age"):
                    hub.import_file(hs, f)
        assert hs.store.scalar("SELECT COUNT(*) FROM events WHERE type != 'sync.bundle_refused'") == before
    finally:
        hs.close()


def _forged_bundle_at_hub(t: Trial, forged: list[dict]):
    """Write allocations straight into the ward's log (an insider, no service), export, import at the hub."""
    from wardcrf.sync import hub, ward

    for body in forged:
        append_raw(
            t.ward_site,
            "randomization.allocated",
            body,
            subject=f"participant:{body['participant']}",
            role="clinician",
        )
    s = open_(t.ward_site)
    out = t.tmp / "forged-allocations"
    out.mkdir()
    try:
        files = [f for f in ward.export(s, out).files if f.name.endswith(".tar.age")]
    finally:
        s.close()
    hs = t.hub_session("admin")
    try:
        results = [hub.import_file(hs, f) for f in files]
        held = hs.store.rows("SELECT reason, detail FROM sync_held")
        allocated = [r["participant"] for r in hs.store.rows("SELECT participant FROM rand_allocations")]
        return results, held, allocated
    finally:
        hs.close()


def _first_allocation(t: Trial, session_for) -> tuple[service.Allocation, dict]:
    """One genuine allocation, already merged at the hub; its event body."""
    t.make(blinded_two_to_one(), per_stratum=6)
    clin = session_for("clinician")
    first = service.allocate(clin, t.participant())
    genuine = json.loads(clin.store.scalar("SELECT line FROM events WHERE id = ?", (first.event_id,)))["body"]
    send_ward_bundle(t)
    return first, genuine


def test_an_allocation_out_of_order_with_another_kit_is_held_like_a_fork(trial: Trial, session_for) -> None:
    first, genuine = _first_allocation(trial, session_for)
    p2 = trial.participant()
    results, held, allocated = _forged_bundle_at_hub(
        trial, [{**genuine, "participant": p2, "position": 3, "kit": "K000000"}]
    )
    # the ward's earlier (unreceipted) bundle comes again and changes nothing; the forged one is held
    assert [r.outcome.status for r in results][-1] == "sequencing"
    assert {r.outcome.status for r in results[:-1]} <= {"already"}
    [row] = held
    assert row["reason"] == "sequencing"
    assert f"of {p2}" in row["detail"] and "does not follow randomization list" in row["detail"]
    assert "out of order: entry 3 taken when entry 2 was the next" in row["detail"]
    assert "the kit shown (K000000) is not the list's for that entry" in row["detail"]
    assert allocated == [first.participant]  # nothing of the held bundle merged
    from wardcrf.randomization import report

    hs = trial.hub_session()
    try:
        [shown] = report.summary(hs)["held"]
        assert shown["detail"] == row["detail"] and shown["resolved_at"] is None
    finally:
        hs.close()


def test_an_entry_allocated_twice_is_held_like_a_fork(trial: Trial, session_for) -> None:
    first, genuine = _first_allocation(trial, session_for)
    p3 = trial.participant()
    results, held, allocated = _forged_bundle_at_hub(trial, [{**genuine, "participant": p3}])
    # the ward's earlier (unreceipted) bundle comes again and changes nothing; the forged one is held
    assert [r.outcome.status for r in results][-1] == "sequencing"
    assert {r.outcome.status for r in results[:-1]} <= {"already"}
    assert "repeated: the participant or the entry was already allocated" in held[0]["detail"]
    assert allocated == [first.participant]


def test_db_rebuild_gives_the_same_randomization_rows_on_the_ward_and_at_the_hub(
    trial: Trial, session_for
) -> None:
    from wardcrf import projections

    trial.make(blinded_two_to_one(), per_stratum=3)
    clin = session_for("clinician")
    pids = [trial.participant() for _ in range(2)]
    for pid in pids:
        service.allocate(clin, pid)
    unblind(session_for("investigator"), pids[0], reason="overdose")
    send_ward_bundle(trial)
    tables = (
        "rand_lists",
        "rand_entries",
        "rand_allocations",
        "rand_unblindings",
        "rand_flags",
        "rand_exhausted",
        "rand_unblinding_keys",
    )
    for s in (open_(trial.ward_site), trial.hub_session("admin")):
        try:
            before = {t: s.store.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
            assert before["rand_allocations"], "something to rebuild"
            projections.rebuild(s.store)
            assert {t: s.store.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables} == before
        finally:
            s.close()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda b: b.update(entries=[]), "entries"),
        (lambda b: b.update(entries="x"), "entries"),
        (lambda b: b["entries"][0].update(position=0), "position"),
        (lambda b: b["entries"][0].update(stratum="site=A\x1b[31m"), "stratum"),
        (lambda b: b["entries"][0].update(sealed="A" * 5000), "sealed"),
        (lambda b: b["entries"][0].update(digest="zz"), "digest"),
        (lambda b: b.update(reveal="everything"), "reveal"),
        (lambda b: b.pop("signature"), "signature"),
        (lambda b: b.update(format="wardrand/9"), "format"),
        (lambda b: b.update(factors=[{"code": "ct_np", "asked": "yes", "levels": []}]), "factors"),
        (
            lambda b: b.update(
                factors=[{"code": "ct\x1b", "asked": False, "levels": [{"code": "A"}, {"code": "B"}]}]
            ),
            "factors",
        ),
        (
            lambda b: b.update(
                factors=[
                    {
                        "code": "x",
                        "asked": False,
                        "levels": [{"code": "A", "when": "y" * 3000}, {"code": "B"}],
                    }
                ]
            ),
            "factors",
        ),
        (lambda b: b.update(unblind_recipient="age1\n"), "unblind_recipient"),
        (lambda b: b.update(kit_use="sometimes"), "kit_use"),
    ],
    ids=[
        "no-entries",
        "entries-not-list",
        "position-0",
        "control-chars",
        "oversized",
        "bad-digest",
        "bad-reveal",
        "unsigned",
        "unknown-format",
        "factor-malformed",
        "factor-control-chars",
        "factor-oversized-expression",
        "unblind-recipient-malformed",
        "kit-use-unknown",
    ],
)
def test_a_malformed_list_body_is_refused_by_its_schema_naming_the_field(
    trial: Trial, change, problem
) -> None:
    from wardcrf import eventbodies

    body = _list_body(trial)
    assert eventbodies.check_body("randomization.list_issued", body) is None
    change(body)
    why = eventbodies.check_body("randomization.list_issued", body)
    assert why is not None and problem in why, why


@pytest.mark.parametrize(
    "body",
    [
        {"device": "DEV\x1b[31m", "recipient": "age1" + "q" * 58},
        {"device": "DEV1", "recipient": "not-a-recipient"},
        {"device": "DEV1", "recipient": "age1" + "q" * 5000},
        {"device": "DEV1"},
    ],
    ids=["control-chars", "not-age", "oversized", "missing"],
)
def test_a_malformed_unblinding_key_body_is_refused_by_its_schema(body: dict) -> None:
    from wardcrf import eventbodies

    assert (
        eventbodies.check_body(
            "randomization.unblinding_key", {"device": "DEV1", "recipient": "age1" + "q" * 58}
        )
        is None
    )
    assert eventbodies.check_body("randomization.unblinding_key", body) is not None
