"""A hub import reads each line once and asks per bundle what is the same for every line (issue 19).

What changed shape, each with what it must still accept and refuse:

- the chain check hands each line's parsed object to its event (`Event.adopt`), not field by
  field: the events are the ones `Event(...)` and `Event.from_line` build, and a bundle with one
  non-canonical line deep in it is still refused, in one line, with nothing of it applied, at a
  SQLCipher and at a PostgreSQL hub;
- `eventlog.ingest_many` notes the chain heads once per run: the heads and the transaction's top
  clock are the ones noted event by event;
- `authority.check_import` asks a form's actions once per (form, version, arriving source) in a
  run: a record under a second version of the same form still gets that version's answer;
- `PgStore.executemany` streams a long plain INSERT by COPY: the same rows, and a duplicate still
  refused with nothing of the statement written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ledgerkit
import pgserver
import pytest
from hub_engines import ledger
from synckit import PASSWORD, first_manifest, make_hub
from wardcrf.sync import bundle, hub, registry
from wardcrf.sync.cards import Card

from wardcrf import authority, canonical, devicekeys, eventlog, features, roles
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.site import Site
from wardcrf.sqlstore import SqlStore, common_dialect

ENGINES = ("sqlcipher", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    yield from pgserver.serve()


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


# -- a ward's bundle, line by line ------------------------------------------------------------------


def _fields(device: str, seq: int, typ: str, subject: str, body: dict[str, Any], user: str, role: str):
    return {
        "amends": None,
        "body": body,
        "device": device,
        "hlc": f"{1_790_000_000_000 + seq:015d}.00000",
        "id": f"{device}-{seq}",
        "protocol": None,
        "reason": None,
        "role": role,
        "seq": seq,
        "site": "WUH01",
        "subject": subject,
        "ts": "2026-12-07T08:00:00.000Z",
        "type": typ,
        "tz": "+08:00",
        "user": user,
        "zone": "Asia/Shanghai",
    }


def _ward_chain(device: str, n: int, respell: dict[int, Any] | None = None) -> list[str]:
    """`n` lines of a ward's chain (a consent, its three signatures, then vitals), each chained to the
    line before it as written; `respell[k]`, when given, writes line k with that function of its
    canonical spelling (the chain still links: each next line's prev is that line's hash)."""
    lines: list[str] = []
    prev = canonical.GENESIS
    subject = f"participant:WUH01-{device}001"
    for seq in range(1, n + 1):
        if seq == 1:
            consent = {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2026-12-07T08:00:00+08:00",
                "witness_1": "witness-a",
                "witness_2": "witness-b",
                "photos": [],
            }
            f = _fields(
                device,
                seq,
                "record.submitted",
                subject,
                {"form": "consent", "data": consent},
                "doctor",
                "clinician",
            )
        elif seq <= 4:
            who = [("doctor", "clinician", "authored"), ("witness-a", "clinician", "witnessed"),
                   ("witness-b", "investigator", "witnessed")][seq - 2]  # fmt: skip
            signed = hashlib.sha256((canonical.line_hash(lines[0]) + "\n").encode()).hexdigest()
            body = {
                "target": f"{device}-1",
                "signed_hash": signed,
                "meaning": who[2],
                "signer": who[0],
                "full_name": who[0],
            }
            f = _fields(device, seq, "signature.applied", subject, body, who[0], who[1])
        else:
            data = {
                "pulse": {"unit": "beats/min", "value": 60 + seq % 40},
                "temp": {"unit": "C", "value": 36.5},
                "time": "2026-12-07T09:00:00+08:00",
                "timepoint": "unscheduled",
            }
            f = _fields(
                device,
                seq,
                "record.submitted",
                subject,
                {"form": "vitals", "data": data},
                "doctor",
                "clinician",
            )
        line = canonical.event_line(prev, f)
        if respell and seq in respell:
            line = respell[seq](line)
        lines.append(line)
        prev = canonical.line_hash(line)
    return lines


def _manifest_of(lines: list[str], device: str) -> dict[str, Any]:
    """A first bundle's manifest, its chain's part (a ward at WUH01)."""
    return {
        "events": {"count": len(lines), "first": 1, "last": len(lines)},
        "chain_first_prev": canonical.GENESIS,
        "chain_last": canonical.line_hash(lines[-1]),
        "device": device,
        "site": "WUH01",
    }


def _seal(root: Path, keys: devicekeys.DeviceKeys, hub_recipient: str, lines: list[str]) -> Path:
    manifest = first_manifest(
        device=keys.device,
        key_id=keys.key_id,
        recipients=[hub_recipient],
        count=len(lines),
        chain_last=canonical.line_hash(lines[-1]),
        to="HUB",
        created="2026-12-07T00:00:00.000+00:00",
    )
    name, cipher, sig = bundle.seal(manifest, lines, {}, keys.sign_secret)
    (root / name).write_bytes(cipher)
    (root / (name + ".minisig")).write_bytes(sig)
    return root / name


def _hub_with_ward(tmp_path: Path) -> tuple[Site, devicekeys.DeviceKeys, str]:
    """A hub (on the run's engine) and a ward laptop's keys, its card registered there."""
    h = make_hub(tmp_path)
    keys = devicekeys.generate("LAPX0001")
    hs = h.unlock("admin", PASSWORD)
    try:
        own = devicekeys.load(hs.store, hs.ctx.device)
        assert own is not None
        card = Card("ward", "WUH01", keys.device, "lapx", keys.key_id, keys.sign_public, keys.age_recipient)
        registry.register_device(hs, card)
    finally:
        hs.close()
    return h, keys, own.age_recipient


def _import(h: Site, path: Path) -> hub.ImportResult:
    hs = h.unlock("admin", PASSWORD)
    try:
        return hub.import_file(hs, path)
    finally:
        hs.close()


def _held(h: Site, device: str) -> dict[str, int]:
    with ledger(h) as (_s, store):
        return {
            "events": store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)),
            "records": store.scalar("SELECT count(*) FROM records WHERE event_id LIKE ?", (f"{device}-%",)),
            "applied": store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)),
        }


@pytest.mark.usefixtures("hub_engine")
def test_a_bundle_of_canonical_lines_is_applied_whole(tmp_path: Path) -> None:
    h, keys, recipient = _hub_with_ward(tmp_path)
    path = _seal(tmp_path, keys, recipient, _ward_chain(keys.device, 300))
    assert _import(h, path).outcome.status == "applied"
    assert _held(h, keys.device) == {"events": 300, "records": 297, "applied": 1}


RESPELLED = {
    "a space after a colon": lambda line: line.replace('"seq":', '"seq": ', 1),
    "two keys swapped": lambda line: line.replace(
        '"tz":"+08:00","user":"doctor"', '"user":"doctor","tz":"+08:00"'
    ),
    "a float not as Python spells it": lambda line: line.replace('"value":36.5', '"value":36.50'),
    "a character escaped that is written as itself": lambda line: line.replace(
        '"doctor"', '"\\u0064octor"', 1
    ),
    "a key twice": lambda line: line.replace('"zone":', '"zone":"UTC","zone":', 1),
}


@pytest.mark.usefixtures("hub_engine")
@pytest.mark.parametrize("how", sorted(RESPELLED))
def test_one_non_canonical_line_deep_in_a_bundle_refuses_it_in_one_line_with_nothing_applied(
    tmp_path: Path, how: str
) -> None:
    """Line 250 of 300 respelled (the same content, or its parse, another way): its hash is another,
    so the chain is relinked over it and every signature is the device's own. Refused naming the line,
    nothing of the bundle in the hub's log, its projections or its ledger."""
    h, keys, recipient = _hub_with_ward(tmp_path)
    lines = _ward_chain(keys.device, 300, {250: RESPELLED[how]})
    assert lines[249] != _ward_chain(keys.device, 250)[249]  # respelled
    assert not canonical.is_canonical(lines[249]) and all(canonical.is_canonical(x) for x in lines[:249])
    with pytest.raises(Refused) as refused:
        _import(h, _seal(tmp_path, keys, recipient, lines))
    message = str(refused.value)
    assert "event line 250 is not canonical JSON" in message and len(message.splitlines()) == 1, message
    assert _held(h, keys.device) == {"events": 0, "records": 0, "applied": 0}


# -- the events the chain check builds --------------------------------------------------------------


def test_the_chain_checks_events_are_those_built_field_by_field() -> None:
    features.install()
    lines = _ward_chain("LAPX0002", 40)
    # a body of null, and a float msgspec spells otherwise (not shown alike: read by the standard library)
    extra = _fields("LAPX0002", 41, "note.added", "site:WUH01", {}, "n.nurse", "clinician")
    extra["body"] = None
    lines.append(canonical.event_line(canonical.line_hash(lines[-1]), extra))
    big = _fields("LAPX0002", 42, "note.added", "site:WUH01", {"x": 1e16}, "n.nurse", "clinician")
    lines.append(canonical.event_line(canonical.line_hash(lines[-1]), big))
    events = bundle.check_chain(lines, _manifest_of(lines, "LAPX0002"), "t")
    assert [e.spelled_alike for e in events[-2:]] == [True, False]
    for line, e in zip(lines, events, strict=True):
        obj = json.loads(line)
        built = eventlog.Event(
            **{k: obj[k] for k in (*eventlog.EVENT_KEYS, "prev")} | {"body": obj["body"] or {}},
            hash=canonical.line_hash(line),
            line=line,
            spelled_alike=e.spelled_alike,
        )
        assert e == built and vars(e) == vars(built)
        assert eventlog.Event.from_line(line) == e and vars(eventlog.Event.from_line(line)) == vars(e)
    assert events[40].body == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        events[0].seq = 2  # type: ignore[misc]


def test_a_line_with_a_missing_or_unknown_key_is_still_refused() -> None:
    features.install()
    lines = _ward_chain("LAPX0003", 6)
    for how, respell in {
        "missing": lambda line: line.replace('"reason":null,', ""),
        "unknown": lambda line: line.replace('"reason":null,', '"reason":null,"rogue":1,'),
    }.items():
        bad = _ward_chain("LAPX0003", 6, {5: respell})
        with pytest.raises(Refused, match="event line 5 has missing or unknown keys"):
            bundle.check_chain(bad, _manifest_of(bad, "LAPX0003"), how)
    assert len(bundle.check_chain(lines, _manifest_of(lines, "LAPX0003"), "t")) == 6


# -- chain heads noted once per run -----------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_runs_chain_heads_and_top_clock_are_those_noted_event_by_event(
    request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner, engine: str
) -> None:
    features.install()
    a = ledgerkit.note_events("lapa", 1, 30)
    b = ledgerkit.note_events("lapb", 1, 20)
    mixed = [e for pair in zip(a[:20], b, strict=True) for e in pair] + a[
        20:
    ]  # two devices' chains interleaved
    got = {}
    for way in ("one by one", "a run"):
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            with store.transaction():
                store.execute(  # a later clock already held: the top stays it
                    "INSERT INTO chain_heads (device, seq, hash, hlc) VALUES ('lapz', 1, ?, '999999999999999.00000')",
                    ("f" * 64,),
                )
            with store.transaction():
                if way == "a run":
                    eventlog.ingest_many(store, mixed[:10])
                    eventlog.ingest_many(store, mixed[10:])
                else:
                    for e in mixed:
                        eventlog.ingest_many(store, [e])
                assert eventlog.head(store, "lapa") == (30, a[-1].hash)
                assert eventlog.head(store, "lapb") == (20, b[-1].hash)
                top = eventlog._top_hlc(store)
            got[way] = (store.rows("SELECT device, seq, hash, hlc FROM chain_heads ORDER BY device"), top)
        finally:
            store.close()
    assert got["a run"] == got["one by one"]
    heads, top = got["a run"]
    assert top == "999999999999999.00000"
    assert [(r["device"], r["seq"], r["hlc"]) for r in heads] == [
        ("lapa", 30, a[-1].hlc),
        ("lapb", 20, b[-1].hlc),
        ("lapz", 1, "999999999999999.00000"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_that_does_not_continue_a_chain_is_refused_and_notes_no_head(
    request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner, engine: str
) -> None:
    features.install()
    a = ledgerkit.note_events("lapa", 1, 10)
    store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
    try:
        with pytest.raises(Refused, match="does not continue device lapa's chain"), store.transaction():
            eventlog.ingest_many(store, a[:5] + a[6:])
        assert store.scalar("SELECT count(*) FROM chain_heads WHERE device = 'lapa'") == 0
        assert store.scalar("SELECT count(*) FROM events WHERE device = 'lapa'") == 0
        assert eventlog.head(store, "lapa") == (0, canonical.GENESIS)
    finally:
        store.close()


# -- a form's actions asked once per version in a run -----------------------------------------------


def _record(device: str, seq: int, version: str, role: str) -> eventlog.Event:
    f = _fields(
        device,
        seq,
        "record.submitted",
        "participant:WUH01-001",
        {"form": "infusion_x", "data": {}},
        "u",
        role,
    )
    f["protocol"] = {"id": "TRIALX", "version": version}
    return eventlog.Event.from_line(canonical.event_line("0" * 64, f))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_forms_actions_are_asked_once_per_version_and_each_version_keeps_its_answer(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    signer: DeviceSigner,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Version 1 makes `infusion_x` the DSMG's form (`dsmg.decide`), version 2 a clinical one
    (`record.submit`): a clinician's records under version 2 pass, the same clinician's record under
    version 1 in the same run is refused naming it, wherever it comes; the hook is asked once per
    version in a run, not once per record."""
    features.install()
    assert roles.allowed("clinician", "record.submit") and not roles.allowed("clinician", "dsmg.decide")
    assert roles.allowed("dsmg", "dsmg.decide") and not roles.allowed("dsmg", "record.submit")
    asked: list[str] = []

    @common_dialect
    def actions(store: Any, e: eventlog.Event, form: str, arriving: Any) -> tuple[str, str] | None:
        if form != "infusion_x":
            return None
        version = str((e.protocol or {}).get("version"))
        asked.append(version)
        return ("dsmg.decide", "dsmg.decide") if version == "1" else ("record.submit", "record.amend")

    monkeypatch.setattr(authority, "_FORM_ACTIONS_OF", [actions])
    store: SqlStore = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
    try:
        plain = [_record("lapa", s, "2", "clinician") for s in range(1, 41)]
        authority.check_import(store, plain, "ward", "b")  # accept
        assert asked == ["2"]
        for at in (0, 20, 40):
            asked.clear()
            run = [*plain[:at], _record("lapa", 99, "1", "clinician"), *plain[at:]]
            with pytest.raises(
                Refused, match=r"event lapa-99: role clinician may not submit 'infusion_x' records"
            ):
                authority.check_import(store, run, "ward", "b")
            assert sorted(asked) == (["1"] if at == 0 else ["1", "2"])
        asked.clear()
        both = [
            _record("lapa", s, v, r) for s in range(1, 21) for v, r in (("1", "dsmg"), ("2", "clinician"))
        ]
        authority.check_import(store, both, "ward", "b")  # accept: each record under its own version
        assert sorted(asked) == ["1", "2"]
    finally:
        store.close()


# -- COPY for a long plain INSERT on PostgreSQL ----------------------------------------------------


def test_executemany_of_a_long_plain_insert_writes_the_rows_row_by_row_inserts_write(
    request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner
) -> None:
    from wardcrf.sync.pgstore import COPY_MIN_ROWS, PgStore

    features.install()
    events = ledgerkit.note_events("lapc", 1, 3 * COPY_MIN_ROWS)
    hostile = ["tab\there", "new\nline", "back\\slash", "\\N", "é中\U0001f600", "", "null"]
    sql = (
        'INSERT INTO events (id, device, seq, prev, hash, hlc, ts, "user", type, subject, amends, line)'
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    rows = [
        (e.id, e.device, e.seq, e.prev, e.hash, e.hlc, e.ts, hostile[i % len(hostile)], e.type,
         None if i % 3 else hostile[i % len(hostile)], None, e.line)
        for i, e in enumerate(events)
    ]  # fmt: skip
    held = {}
    for way in ("executemany", "row by row"):
        store = ledgerkit.create(ledgerkit.where_for("postgresql", tmp_path, request), signer)
        assert isinstance(store, PgStore)
        try:
            with store.transaction():
                if way == "executemany":
                    store.executemany(sql, rows)
                else:
                    for r in rows:
                        store.execute(sql, r)
            held[way] = store.execute(
                'SELECT id, device, seq, prev, hash, hlc, ts, "user", type, subject, amends, line, pos'
                " FROM events ORDER BY pos"
            ).fetchall()
            # rows already held: refused, and nothing of that statement written
            with pytest.raises(Exception, match="duplicate key"), store.transaction():
                store.executemany(sql, rows[-COPY_MIN_ROWS:])
            assert store.scalar("SELECT count(*) FROM events") == len(rows)
        finally:
            store.close()
    assert held["executemany"] == held["row by row"]
    assert len(held["executemany"]) == len(rows)


# -- what a PostgreSQL hub runs, asked per type and per form ---------------------------------------


def test_a_bundle_needing_a_form_hook_or_a_projector_a_postgresql_hub_lacks_is_refused_naming_them(
    request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`engine.check_portable` asks each type's projectors and each form's hooks once per bundle: every
    record of a form whose hooks a PostgreSQL hub does not run is still found, a correction's form read
    from its record in the same bundle, and a bundle of portable forms and types passes."""
    from types import SimpleNamespace

    from wardcrf.sync import engine

    from wardcrf import records

    features.install()
    hooks_for = records.hooks_for

    def sqlite_only(store: Any, rec: Any) -> None:  # not `common_dialect`
        raise AssertionError("never run")

    monkeypatch.setattr(
        records,
        "hooks_for",
        lambda form: [*hooks_for(form), sqlite_only] if form == "tox_local" else hooks_for(form),
    )

    def step(typ: str, body: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"type": typ, "subject": "participant:WUH01-001", "body": body, **more}

    vitals = step("record.submitted", {"form": "vitals", "data": {}})
    tox = step("record.submitted", {"form": "tox_local", "data": {}})
    store = ledgerkit.create(ledgerkit.where_for("postgresql", tmp_path, request), signer)
    try:
        fine = ledgerkit.chain("lapd", 1, [vitals] * 30)
        engine.check_portable(store, SimpleNamespace(events=fine), "b")  # accept
        events = ledgerkit.chain("lapd", 1, [*[vitals] * 20, tox, *[vitals] * 20])
        with pytest.raises(Refused, match=r"b: its records of form\(s\) 'tox_local' need projections"):
            engine.check_portable(store, SimpleNamespace(events=events), "b")
        # a correction's form is its record's (here in the same bundle), not what its body claims
        claims = step("record.amended", {"form": "tox_local", "changes": {}}, amends=fine[3].id)
        engine.check_portable(
            store, SimpleNamespace(events=[*fine, *ledgerkit.chain("lapd", 31, [claims])]), "b"
        )
        hub_only = ledgerkit.chain("lapd", 1, [*[vitals] * 10, step("hub.device_retired", {"device": "x"})])
        with pytest.raises(Refused, match=r"b: its hub\.device_retired events need projections"):
            engine.check_portable(store, SimpleNamespace(events=hub_only), "b")
    finally:
        store.close()
