"""What a ward sends beside its records, and what the hub itself says, projected alike on both engines (issue 19).

A laptop's scanner profile, a monitor's source data verification, MedDRA
codings and the dictionaries loaded, the queries a rule opens on the ward
or the coordinator raises at the hub and the ward's answers, a DSMG
decision, a protocol version's format-2 re-encoding, an amendment applied
to a participant, a randomization stratum exhausted and an emergency
unblinding (allocations against the hub's list: tests/unit/test_hub_pg_format2.py): their projectors are declared `common_dialect`
and run on a PostgreSQL hub as on SQLCipher. The hub's own events (a query
raised, a decision, a version it loads) stay in its SQLCipher file and are
projected into the database by `pghub.mirror_own_events`, in the hub's log
order, before the ward's answer is imported. Real engines: a SQLCipher file
and a PostgreSQL server started for the test process (`pgserver`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import ledgerkit
import pytest
from ledgerkit import HUB_DEVICE, HUB_SITE, Where
from wardcrf.sync import pghub
from wardcrf.sync.pgstore import PgStore

from wardcrf import devicekeys, eventlog, ingest
from wardcrf.coding.model import MEDDRA_CODES
from wardcrf.devicekeys import DeviceSigner
from wardcrf.protocol import default_protocol
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

ENGINES = ("sqlcipher", "postgresql")

PROJECTED = (
    "device_scanner",
    "sdv_marks",
    "codings",
    "coding_dictionaries",
    "sync_queries",
    "sync_decisions",
    "protocols",
    "protocol_encodings",
    "protocol_applications",
    "users",
    "records",
    "amendments",
    "participants",
    "ward_queue",
    "counters",
    "rand_exhausted",
    "rand_unblindings",
    "rand_unblinding_keys",
)
"""The tables compared: 0009's, the protocols' and the records' they read or move."""


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    keys = devicekeys.generate(HUB_DEVICE)
    return DeviceSigner(keys.device, keys.key_id, keys.sign_public, keys.sign_secret)


@functools.cache
def _columns(table: str) -> tuple[str, ...]:
    lite = Store.memory()
    try:
        lite.migrate()
        return tuple(str(r[1]) for r in lite.execute(f"PRAGMA table_info({table})").fetchall())
    finally:
        lite.close()


def _rows(store: SqlStore, table: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in _columns(table))
    return sorted((tuple(r) for r in store.execute(f"SELECT {cols} FROM {table}")), key=repr)


def _lite(tmp_path: Path, signer: DeviceSigner) -> SqlStore:
    return ledgerkit.create(
        Where(
            "sqlcipher", path=str(tmp_path / f"hub-{os.urandom(4).hex()}.db"), key_hex=os.urandom(32).hex()
        ),
        signer,
    )


def _apply(store: SqlStore, events: list[eventlog.Event]) -> None:
    """What `sync.engine._apply` does with a bundle's events: ingest and project, then the import's checks."""
    with store.transaction():
        eventlog.ingest_many(store, events)
        ingest.after_ingest(store, events)


def _next(store: SqlStore, device: str, steps: list[dict[str, Any]]) -> list[eventlog.Event]:
    seq, prev = eventlog.head(store, device)
    return ledgerkit.chain(device, seq + 1, steps, prev)


def _hub(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps of the hub's own chain (its site, a coordinator), over the ward's defaults."""
    return [{"site": HUB_SITE, "user": "coco", "role": "coordinator", "protocol": None, **s} for s in steps]


def _version_1_1() -> dict[str, Any]:
    """`protocol.loaded` of MEXCOVID 1.1: the shipped source under a newer version (an amendment)."""
    p = default_protocol()
    source = p.source.replace('version = "1.0"', 'version = "1.1"', 1)
    import hashlib

    return {
        "protocol_id": p.id,
        "version": "1.1",
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
        "filename": p.filename,
        "source": source,
    }


def _ward_steps(device: str, query: str, records_of: dict[str, str]) -> list[dict[str, Any]]:
    """The ward's fourth bundle: its scanner, a dictionary loaded and a term coded, a record verified, a
    rule's query and the answer to the hub's, MEXCOVID 1.1 loaded and re-encoded, and the participant
    moved to it."""
    pid = ledgerkit.participant_of(device)
    v11 = _version_1_1()
    codes = {
        k: (10037377 if t is int else f'{k} "quoted" ; DROP TABLE codings') for k, t in MEDDRA_CODES.items()
    }
    return [
        {"type": "device.scanner_set", "subject": f"device:{device}", "role": "admin", "user": "admin",
         "body": {"ends": "gap", "gap_ms": 80}},
        {"type": "coding.dictionary_loaded", "subject": "coding:MedDRA", "role": "coder", "user": "cody",
         "body": {"dictionary": "MedDRA", "version": "27.0", "language": "English",
                  "files": {"llt.asc": {"sha256": "a" * 64, "bytes": 10}}, "terms": 12}},
        {"type": "coding.coded", "subject": f"participant:{pid}", "role": "coder", "user": "cody",
         "body": {"record": records_of["ae"], "form": "ae", "field": "term", "subject": f"participant:{pid}",
                  "verbatim": "Low-grade fever after inhalation", "dictionary": "MedDRA", "version": "27.0",
                  "codes": codes, "replaces": None}},
        {"type": "sdv.verified", "subject": f"participant:{pid}", "role": "monitor", "user": "mona",
         "body": {"target": records_of["screening"], "form": "screening", "scope": "fields",
                  "fields": ["dob", "sex"], "values": {"dob": "h" * 64, "sex": "i" * 64},
                  "sources": ["sha256:" + "b" * 64], "signer": "mona", "full_name": "Mona d'Itor"}},
        {"type": "query.opened", "subject": f"participant:{pid}",
         "body": {"target_event": records_of["vitals"], "field": "pulse", "rule": "PULSE_HIGH",
                  "question": "Pulse 88 > 85? Check %s and $1 ?"}},
        {"type": "query.answered", "subject": "site:WUH01",
         "body": {"query": query, "answer": "Re-read: 86\nline two", "amendment": None}},
        {"type": "protocol.loaded", "subject": "protocol:MEXCOVID", "role": "admin", "user": "admin",
         "protocol": None, "body": v11},
        {"type": "protocol.reencoded", "subject": "protocol:MEXCOVID", "role": "admin", "user": "admin",
         "protocol": None, "body": {"protocol_id": "MEXCOVID", "version": "1.1", "sha256": "e" * 64,
                                    "reencodes": v11["sha256"], "source": "[protocol]\nformat = 2\n"}},
        {"type": "randomization.stratum_exhausted", "subject": f"participant:{pid}",
         "body": {"stratum": "site=WUH01;sex=F", "participant": pid}},
        {"type": "randomization.unblinded", "subject": f"participant:{pid}", "role": "investigator", "user": "inv",
         "body": {"participant": pid, "arm": "ACTIVE", "kit": "K-7", "reason": "sae_management",
                  "detail": "SAE: the team needs the arm; \"quoted\" 'twice'", "witness": "clin2"}},
        {"type": "protocol.applied", "subject": f"participant:{pid}", "role": "investigator", "user": "inv",
         "reason": "amendment 1 approved", "protocol": {"id": "MEXCOVID", "version": "1.1"},
         "body": {"participant": pid, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.1"}},
    ]  # fmt: skip


def _coding(records_of: dict[str, str], verbatim: str) -> dict[str, Any]:
    codes = {k: (10037377 if t is int else k) for k, t in MEDDRA_CODES.items()}
    return {"type": "coding.coded", "subject": "participant:WUH01-002", "role": "coder", "user": "cody",
            "body": {"record": records_of["ae"], "form": "ae", "field": "term", "verbatim": verbatim,
                     "dictionary": "MedDRA", "version": "27.1", "codes": codes, "replaces": None}}  # fmt: skip


def _later_steps(records_of: dict[str, str]) -> list[dict[str, Any]]:
    """lap1 again: its scanner set back to Enter, a newer unblinding recipient, the term re-coded."""
    return [
        {"type": "device.scanner_set", "subject": "device:lap1", "role": "admin", "user": "admin",
         "body": {"ends": "enter", "gap_ms": None}},
        {"type": "randomization.unblinding_key", "subject": "device:lap1", "role": "investigator", "user": "inv",
         "body": {"device": "lap1", "recipient": "age1first"}},
        {"type": "randomization.unblinding_key", "subject": "device:lap1", "role": "investigator", "user": "inv",
         "body": {"device": "lap1", "recipient": "age1second"}},
        _coding(records_of, "Low-grade fever after inhalation (re-coded)"),
    ]  # fmt: skip


def _hub_steps(records_of: dict[str, str]) -> list[dict[str, Any]]:
    """The hub's own events: a query on the ward's post-dose pulse, a DSMG decision, MEXCOVID 1.1 loaded."""
    return _hub(
        [
            {"type": "query.raised", "subject": "site:WUH01",
             "body": {"site": "WUH01", "target_event": records_of["vitals"], "field": "pulse",
                      "question": "Pulse 88 or 86? 'quoted' \"twice\""}},
            {"type": "dsmg.decision", "subject": "site:WUH01", "role": "dsmg", "user": "dee",
             "body": {"site": "WUH01", "decision": "continue enrolment", "detail": "no signal; é 漢 \u200b"}},
            {"type": "query.raised", "subject": "site:OTHER",
             "body": {"site": "OTHER", "target_event": "x-1", "field": "f", "question": "for another site"}},
            {"type": "protocol.loaded", "subject": "protocol:MEXCOVID", "role": "admin", "user": "admin",
             "body": _version_1_1()},
        ]
    )  # fmt: skip


def _records_of(store: SqlStore, device: str) -> dict[str, str]:
    """The ward's AE, screening and post-dose vitals record ids."""
    rows = store.rows("SELECT event_id, form, data FROM records WHERE event_id LIKE ?", (f"{device}-%",))
    out = {r["form"]: r["event_id"] for r in rows if r["form"] in ("ae", "screening")}
    out["vitals"] = next(r["event_id"] for r in rows if r["form"] == "vitals" and "post_dose" in r["data"])
    return out


def test_site_projections_are_the_same_at_a_sqlcipher_and_a_postgresql_hub(request, tmp_path, signer):
    """Records, then the hub's query, decision and version load, then the ward's scanner, coding, SDV,
    queries, re-encoding and amendment applied: the same rows in every table on both engines, the hub's
    own events reaching PostgreSQL through `mirror_own_events` (once: a second run projects nothing)."""
    seen: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for engine in ENGINES:
        ledger: SqlStore
        if engine == "sqlcipher":
            ledger = hub_file = _lite(tmp_path, signer)
        else:
            hub_file = _lite(tmp_path, signer)
            ledger = ledgerkit.create(
                Where("postgresql", dsn=request.getfixturevalue("pg_server").new_database()), signer
            )
        try:
            for seq in (1, 2, 3):
                assert ledgerkit.records_step(ledger, "lap1", seq) == "applied"
            records_of = _records_of(ledger, "lap1")
            # The hub's own events: in its file (on SQLCipher, the same store), projected into the database.
            _apply(hub_file, _next(hub_file, HUB_DEVICE, _hub_steps(records_of)))
            if isinstance(ledger, PgStore):
                assert isinstance(hub_file, Store)
                assert pghub.mirror_own_events(hub_file, ledger) == 4
                assert pghub.mirror_own_events(hub_file, ledger) == 0  # nothing new: nothing sent
                pghub._PROJECTED.clear()
                assert pghub.mirror_own_events(hub_file, ledger) == 0  # another process: the marker says done
                assert ledger.scalar("SELECT count(*) FROM events WHERE device = ?", (HUB_DEVICE,)) == 0
            query = f"{HUB_DEVICE}-1"
            _apply(ledger, _next(ledger, "lap1", _ward_steps("lap1", query, records_of)))
            _apply(ledger, _next(ledger, "lap1", _later_steps(records_of)))
            # Another laptop's coding of the same term, made before lap1's (an older clock) and arriving
            # after it: counted, not shown.
            _apply(ledger, ledgerkit.chain("lap2", 1, [_coding(records_of, "lap2's older coding")]))
            seen[engine] = {t: _rows(ledger, t) for t in PROJECTED}
        finally:
            ledger.close()
            if hub_file is not ledger:
                hub_file.close()
    lite, pg = seen["sqlcipher"], seen["postgresql"]
    for table in PROJECTED:
        assert pg[table] == lite[table], table
    # What those rows say, once (they are equal).
    assert [r[:3] for r in lite["device_scanner"]] == [("lap1", "enter", None)]  # the later profile
    queries = {r[0]: r for r in lite["sync_queries"]}
    assert queries[f"{HUB_DEVICE}-1"][5] == "answered" and "line two" in queries[f"{HUB_DEVICE}-1"][8]
    assert queries["lap1-18"][5:7] == ("open", "rule:PULSE_HIGH")
    assert len(queries) == 3  # a hub projects every site's queries
    assert [r[2] for r in lite["sync_decisions"]] == ["continue enrolment"]
    # lap1's two codings and lap2's older one: the latest shown, all three counted.
    assert [(r[0], r[1], r[5], r[7], r[12]) for r in lite["codings"]] == [
        (records_of["ae"], "term", "Low-grade fever after inhalation (re-coded)", "27.1", 3)
    ]
    assert [r[:2] for r in lite["rand_unblinding_keys"]] == [("lap1", "age1second")]
    assert [(r[1], r[4]) for r in lite["sdv_marks"]] == [(records_of["screening"], "fields")]
    assert [r[1] for r in lite["protocols"]] == ["1.0", "1.1"]
    assert [(r[1], r[3]) for r in lite["protocol_encodings"]] == [("1.1", _version_1_1()["sha256"])]
    assert [(r[1], r[3], r[4]) for r in lite["protocol_applications"]] == [("WUH01-002", "1.0", "1.1")]
    assert [(r[2], r[3]) for r in lite["rand_exhausted"]] == [("WUH01-002", "WUH01")]
    assert [(r[1], r[2], r[6], r[7]) for r in lite["rand_unblindings"]] == [
        ("WUH01-002", "ACTIVE", "inv", "clin2")
    ]


def test_a_database_made_before_the_hubs_own_events_were_projected_skips_the_versions_it_holds(
    request, tmp_path, signer
):
    """`hub init --database` before 0010 copied the hub's protocol versions and set no marker: the first
    projection of the hub's own events leaves those rows as they are (re-loading one would make it the
    active version again) and projects the rest once."""
    hub_file = _lite(tmp_path, signer)
    pg = ledgerkit.create(
        Where("postgresql", dsn=request.getfixturevalue("pg_server").new_database()), signer
    )
    try:
        p = default_protocol()
        v10 = {"protocol_id": p.id, "version": p.version, "sha256": p.sha256, "filename": p.filename,
               "source": p.source}  # fmt: skip
        steps = _hub(
            [{"type": "protocol.loaded", "subject": "protocol:MEXCOVID", "role": "admin", "body": v10}]
        )
        _apply(hub_file, _next(hub_file, HUB_DEVICE, steps))
        # As `copy_own_protocols` left it: the hub's version, then a ward's newer one active.
        loaded = hub_file.one("SELECT loaded_event FROM protocols WHERE version = '1.0'")
        pg.execute(
            "INSERT INTO protocols (protocol_id, version, sha256, source, loaded_event, active) VALUES (?,?,?,?,?,0)",
            (p.id, p.version, p.sha256, p.source, loaded[0]),
        )
        v11 = _version_1_1()
        pg.execute(
            "INSERT INTO protocols (protocol_id, version, sha256, source, loaded_event, active) VALUES (?,?,?,?,?,1)",
            (p.id, "1.1", v11["sha256"], v11["source"], "lap1-9"),
        )
        _apply(hub_file, _next(hub_file, HUB_DEVICE, _hub([{"type": "dsmg.decision", "subject": "site:WUH01",
               "role": "dsmg", "body": {"site": "WUH01", "decision": "pause", "detail": ""}}])))  # fmt: skip
        pghub._PROJECTED.clear()
        assert pghub.mirror_own_events(hub_file, pg) == 1
        assert pg.rows("SELECT version, active FROM protocols ORDER BY rowid") == [
            {"version": "1.0", "active": 0},
            {"version": "1.1", "active": 1},
        ]
        assert pg.scalar("SELECT decision FROM sync_decisions") == "pause"
        assert pg.scalar("SELECT seq FROM hub_own_projected WHERE device = ?", (HUB_DEVICE,)) == 2
    finally:
        pg.close()
        hub_file.close()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"dictionary": "ICD-10"}, "unknown dictionary"),
        ({"verbatim": "x" * 2001}, "body.verbatim must be a text of 1 to 2000 characters"),
        ({"codes": {"pt_name": "only this"}}, "body.codes must hold exactly"),
    ],
)
def test_a_bundle_with_a_malformed_coding_is_refused_whole_alike_on_both_engines(
    request, tmp_path, signer, change, says
):
    """A coding from a ward is hostile input: a body of the wrong shape refuses its bundle on either engine,
    with the same words, and nothing of the bundle (its scanner profile before it) is kept."""
    from wardcrf.errors import Refused

    seen = {}
    for engine in ENGINES:
        if engine == "sqlcipher":
            store = _lite(tmp_path, signer)
        else:
            store = ledgerkit.create(
                Where("postgresql", dsn=request.getfixturevalue("pg_server").new_database()), signer
            )
        try:
            for seq in (1, 2, 3):
                ledgerkit.records_step(store, "lap1", seq)
            steps = _ward_steps("lap1", f"{HUB_DEVICE}-1", _records_of(store, "lap1"))[:3]
            steps[2] = {**steps[2], "body": {**steps[2]["body"], **change}}
            before = {t: _rows(store, t) for t in PROJECTED}
            head = eventlog.head(store, "lap1")
            with pytest.raises(Refused) as refused:
                _apply(store, _next(store, "lap1", steps))
            assert says in str(refused.value)
            assert {t: _rows(store, t) for t in PROJECTED} == before
            assert eventlog.head(store, "lap1") == head
            seen[engine] = str(refused.value)
        finally:
            store.close()
    assert seen["postgresql"] == seen["sqlcipher"]


def test_two_importers_projecting_the_hubs_own_events_at_once_project_each_once(request, tmp_path, signer):
    """Two importing processes start at once: the first projects the hub's own events under the advisory
    lock `hub-own-events`; the second waits for it, then reads the marker and projects nothing (a coding
    projected twice would count two codings, a version loaded twice would move the active one)."""
    import threading
    import time

    where = Where("sqlcipher", path=str(tmp_path / "hub-file.db"), key_hex=os.urandom(32).hex())
    hub_file = ledgerkit.create(where, signer)
    dsn = request.getfixturevalue("pg_server").new_database()
    first = ledgerkit.create(Where("postgresql", dsn=dsn), signer)
    watcher = PgStore(dsn)
    try:
        steps = _hub([{**_coding({"ae": "lap1-20"}, "coded at the hub"), "user": "hc", "role": "coder"},
                      {"type": "dsmg.decision", "subject": "site:WUH01", "role": "dsmg",
                       "body": {"site": "WUH01", "decision": "continue", "detail": ""}}])  # fmt: skip
        _apply(hub_file, _next(hub_file, HUB_DEVICE, steps))
        pghub._PROJECTED.clear()
        result: dict[str, Any] = {}

        def second_importer() -> None:
            src, dst = where.open(), PgStore(dsn)
            try:
                assert isinstance(src, Store)
                result["projected"] = pghub.mirror_own_events(src, dst)
            except BaseException as exc:  # reported to the test's thread
                result["error"] = exc
            finally:
                dst.close()
                src.close()

        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with first.transaction():
            assert isinstance(hub_file, Store) and isinstance(first, PgStore)
            assert pghub.mirror_own_events(hub_file, first) == 2
            other = threading.Thread(target=second_importer)
            other.start()
            deadline = time.monotonic() + 120  # a bound on a condition, not a timing
            while watcher.scalar(waiting) != 1:
                assert other.is_alive() and time.monotonic() < deadline, result
                time.sleep(0.05)
        other.join(120)
        assert not other.is_alive() and "error" not in result, result
        assert result["projected"] == 0
        assert first.rows("SELECT verbatim, codings FROM codings") == [
            {"verbatim": "coded at the hub", "codings": 1}
        ]
        assert first.scalar("SELECT count(*) FROM sync_decisions") == 1
    finally:
        watcher.close()
        first.close()
        hub_file.close()
