"""Consent-first read per call gives what it gave read per participant, on both engines (issue 19).

`participants.consent_problems` (sync import's hold of records before a signed consent, and
`audit verify`) reads the consents of every participant a bundle touches, their signatures
and each protocol version's witnesses in three statements, where it read four per
participant (on a PostgreSQL hub, four round trips each). Held here to the per-participant
reading it replaced (kept below as the reference) on SQLCipher and a real PostgreSQL server:
a consent short of a signer, one signed twice by the same user, a second consent that makes
good a first one, a consent under a version not loaded here, signers with hostile names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ledgerkit
import pgserver
import pytest

from wardcrf import eventlog
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore
from wardcrf.workflow import participants

ENGINES = ("sqlcipher", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    yield from pgserver.serve()


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    from wardcrf import devicekeys

    keys = devicekeys.generate(ledgerkit.HUB_DEVICE)
    return DeviceSigner(keys.device, keys.key_id, keys.sign_public, keys.sign_secret)


def _old_consent_problems(store: SqlStore, subjects: list[str] | None) -> tuple[int, list[tuple[str, str]]]:
    """The reading before issue 19's prefetch: per participant, its consents, then per consent its signers
    and its version's witnesses (four statements a participant)."""
    from wardcrf import protocol as protocols

    where, params = "r.subject LIKE 'participant:%'", ()
    if subjects is not None:
        wanted = sorted(set(subjects))
        where, params = f"r.subject IN ({','.join('?' * len(wanted))})", tuple(wanted)
    rows = store.execute(
        f"SELECT r.subject, r.form, r.event_id, e.pos FROM records r JOIN events e ON e.id = r.event_id"
        f" WHERE {where} ORDER BY e.pos",
        params,
    ).fetchall()
    problems: list[tuple[str, str]] = []
    first_valid: dict[str, int | None] = {}
    for subject, form, event_id, pos in rows:
        if subject not in first_valid:
            first_valid[subject] = None
            for cid, cpos in store.execute(
                "SELECT r.event_id, e.pos FROM records r JOIN events e ON e.id = r.event_id"
                " WHERE r.subject = ? AND r.form = 'consent' ORDER BY e.pos",
                (subject,),
            ).fetchall():
                signers = {
                    u
                    for (u,) in store.execute("SELECT user_id FROM signatures WHERE target_event = ?", (cid,))
                }
                event = eventlog.get(store, cid)
                try:
                    witnesses = protocols.version(store, event.protocol if event else None).consent.witnesses
                except Refused:
                    witnesses = 2
                if len(signers) >= 1 + witnesses:
                    first_valid[subject] = cpos
                    break
        if form == "consent":
            continue
        start = first_valid[subject]
        if start is None or pos < start:
            pid = subject.removeprefix("participant:")
            problems.append((event_id, f"{pid}: {form} record {event_id} has no signed consent before it"))
    return len(rows), problems


def _signature(device: str, target: str, user: str) -> dict[str, Any]:
    pid = ledgerkit.participant_of(device)
    return {
        "type": "signature.applied",
        "subject": f"participant:{pid}",
        "user": user,
        "role": "clinician",
        "body": {"target": target, "signed_hash": "c" * 64, "meaning": "witnessed", "signer": user,
                 "full_name": user},
    }  # fmt: skip


def _steps(device: str, case: str, first: int) -> list[dict[str, Any]]:
    """A device's first bundle (protocol, consent, three signatures, screening), changed as `case` says."""
    steps = ledgerkit.record_steps(device, 1, first)
    consent_id = f"{device}-{first + 1}"
    if case == "short of a signer":
        del steps[4]
    elif case == "one signer twice":
        steps[4] = _signature(device, consent_id, steps[3]["user"])
    elif case == "hostile signer names":
        steps[3] = _signature(device, consent_id, "o'brien \"; DROP TABLE signatures; --")
        steps[4] = _signature(device, consent_id, "?1 %s $1 :name fièvre 🧪")
    elif case == "version not loaded":
        steps[1]["protocol"] = {"id": "ELSEWHERE", "version": "9.9"}
    elif case == "a second consent makes good the first":
        del steps[4]  # the first consent: two signers
        second = f"{device}-{first + len(steps)}"
        steps.append({**steps[1], "body": {**steps[1]["body"], "creates_participant": False}})
        steps += [_signature(device, second, u) for u in ("clin", "inv", "clin2")]
        steps.append({**steps[5]})  # a record after the good consent
    return steps


CASES = [
    "as the ward signs it",
    "short of a signer",
    "one signer twice",
    "hostile signer names",
    "version not loaded",
    "a second consent makes good the first",
]


def _fill(store: SqlStore) -> list[str]:
    subjects = []
    for i, case in enumerate(CASES * 2):
        device = f"lap{i + 1}"
        seq, prev = eventlog.head(store, device)
        events = ledgerkit.chain(device, seq + 1, _steps(device, case, seq + 1), prev)
        with store.transaction():
            eventlog.ingest_many(store, events)  # projected; the import's holds are what is compared
        nxt = ledgerkit.chain(device, len(events) + 1, ledgerkit.record_steps(device, 2, len(events) + 1),
                              events[-1].hash)  # fmt: skip
        with store.transaction():
            eventlog.ingest_many(store, nxt)
        subjects.append(f"participant:{ledgerkit.participant_of(device)}")
    return subjects


@pytest.mark.parametrize("engine", ENGINES)
def test_consent_first_read_per_call_finds_what_it_found_per_participant(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner
) -> None:
    if engine == "postgresql":
        where = ledgerkit.Where("postgresql", dsn=request.getfixturevalue("pg_server").new_database())
    else:
        where = ledgerkit.Where("sqlcipher", path=str(tmp_path / "h.db"), key_hex=os.urandom(32).hex())
    store = ledgerkit.create(where, signer)
    try:
        subjects = _fill(store)
        for wanted in (None, subjects, subjects[:3], [subjects[5]], ["participant:NOBODY-001"]):
            assert participants.consent_problems(store, wanted) == _old_consent_problems(store, wanted), (
                wanted
            )
        checked, problems = participants.consent_problems(store)
        assert checked > 0
        held = {p.split(":")[0] for _, p in problems}
        # Refuse: a consent short of a signer or signed twice by one user holds every record after it;
        # accept: the ward's own, hostile names, an unknown version's default of two witnesses.
        pid = ledgerkit.participant_of
        assert {pid("lap2"), pid("lap3"), pid("lap8"), pid("lap9")} <= held
        assert not held & {pid("lap1"), pid("lap4"), pid("lap5"), pid("lap7")}
        # The second consent makes good the first: the screening between them is held, the record after not.
        assert pid("lap6") in held and len([p for p in problems if p[1].startswith(pid("lap6"))]) == 1
    finally:
        store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_participant_clashes_read_per_bundle_find_what_they_found_per_consent(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner
) -> None:
    """`idclash.hold_participant_clashes` reads the participants a bundle's consents name at once: the same
    clash (lap1 and lap01 both allocate WUH01-002) and the same silence for every other consent."""
    from wardcrf.ingest import HoldForCoordinator
    from wardcrf.workflow import idclash

    if engine == "postgresql":
        where = ledgerkit.Where("postgresql", dsn=request.getfixturevalue("pg_server").new_database())
    else:
        where = ledgerkit.Where("sqlcipher", path=str(tmp_path / "c.db"), key_hex=os.urandom(32).hex())
    store = ledgerkit.create(where, signer)
    try:
        bundles = []
        for device in ("lap1", "lap2", "lap3", "lap01"):
            events = ledgerkit.chain(device, 1, ledgerkit.record_steps(device, 1, 1))
            with store.transaction():
                eventlog.ingest_many(store, events)
            bundles.append(events)
        every = [e for events in bundles for e in events]
        creators = idclash._creators(
            store, sorted({idclash._pid(e) for e in every if idclash._is_consent(e)})
        )
        got = [idclash.clash_of(store, e, creators) for e in every]
        assert got == [idclash.clash_of(store, e) for e in every]
        clashes = [c for c in got if c is not None]
        assert (
            len(clashes) == 1
            and clashes[0]["device"] == "lap01"
            and clashes[0]["created_by_device"] == "lap1"
        )
        for events in bundles[:3]:
            idclash.hold_participant_clashes(store, events)  # accept: each the first of its participant
        with pytest.raises(HoldForCoordinator, match="already created it"):
            idclash.hold_participant_clashes(store, bundles[3])  # refuse: two people under one id
    finally:
        store.close()
