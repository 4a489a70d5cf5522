"""The audit trail: canonical lines, hash chains, append-only (one append, also in batches), amendments, tamper detection."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlcipher3
from conftest import PASSWORD
from insider import raw_key

from wardcrf import audit, canonical, eventlog, projections, records, signatures, users
from wardcrf.clock import HLC
from wardcrf.errors import Refused, StoreError, UsageError
from wardcrf.store import db_path


def raw_conn(site, key: bytes):
    """What an insider with the raw key can do: open the DB outside wardcrf."""
    conn = sqlcipher3.connect(str(db_path(site.data_dir)), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return conn


def test_lines_are_canonical_and_chained(admin):
    rows = admin.store.rows("SELECT device, seq, prev, hash, line FROM events ORDER BY device, seq")
    prev = canonical.GENESIS
    for r in rows:
        line = r["line"]
        assert line.startswith('{"prev":"' + prev + '",')
        assert hashlib.sha256(line.encode()).hexdigest() == r["hash"]
        obj = json.loads(line)
        keys = list(obj)
        assert keys[0] == "prev" and keys[1:] == sorted(keys[1:])
        assert canonical.is_canonical(line)
        assert " " not in line.replace('" ', "").split('"body"')[0]  # no insignificant whitespace
        prev = r["hash"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))


def test_event_fields(admin):
    e = admin.append(type="test.note", subject="site:WUH01", body={"text": "体温 37.1"}).event
    assert e.id == f"{admin.ctx.device}-{e.seq}"
    assert e.user == "admin" and e.role == "admin"
    assert e.ts.endswith("Z") and e.tz == "+08:00" and e.zone == "Asia/Shanghai"
    assert HLC.decode(e.hlc).millis > 0
    assert "体温" in e.line  # UTF-8, not \\u escapes
    assert eventlog.get(admin.store, e.id) == e


def test_database_refuses_update_and_delete_of_the_log(admin):
    with pytest.raises(sqlcipher3.IntegrityError, match="append-only"):
        admin.store.execute("UPDATE events SET type = 'x' WHERE seq = 1")
    with pytest.raises(sqlcipher3.IntegrityError, match="append-only"):
        admin.store.execute("DELETE FROM events WHERE seq = 1")


def test_append_is_atomic_with_its_projections(session_for):
    clin = session_for("clinician")
    n = eventlog.count(clin.store)
    with pytest.raises(Refused, match="names unknown record"):
        # A record amendment naming an unknown record: its projector refuses; nothing stays.
        clin.append(type="record.amended", subject=None, body={"form": "x", "changes": {}}, amends="nope-1")
    assert eventlog.count(clin.store) == n


def test_clock_running_backwards_warns_but_saves(admin, monkeypatch):
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2030-01-01T00:00:00Z")
    a = admin.append(type="test.note", body={})
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2029-12-31T00:00:00Z")
    b = admin.append(type="test.note", body={})
    assert b.warnings and "earlier than its last event" in b.warnings[0]
    assert b.event.hlc > a.event.hlc  # the logical clock still moves forward
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2030-03-01T00:00:00Z")
    c = admin.append(type="test.note", body={})
    assert c.warnings and "more than 24 h" in c.warnings[0]
    d = admin.append(type="test.note", body={})
    assert d.warnings == []


def test_hlc_merge_moves_past_remote_clocks():
    local = HLC(1000, 3)
    assert local.tick(999) == HLC(1000, 4)
    assert local.tick(2000) == HLC(2000, 0)
    assert local.merge(HLC(5000, 7), 1500) == HLC(5000, 8)
    assert local.merge(HLC(10, 0), 3000) == HLC(3000, 0)
    assert HLC.decode(HLC(12, 5).encode()) == HLC(12, 5)
    assert HLC(12, 5).encode() < HLC(100, 0).encode()


def test_verify_passes_on_an_intact_log(admin):
    report = audit.verify(admin)
    assert report.ok, report.problems
    assert report.results[0].checked == eventlog.count(admin.store)


def _tamper(site, admin, sql_steps):
    key = raw_key(admin)
    admin.close()
    conn = raw_conn(site, key)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    for step in sql_steps:
        conn.execute(step)
    conn.close()


def _first_problem(site):
    from wardcrf.site import Site

    s = Site.open(site.data_dir).unlock("auditor", PASSWORD)
    try:
        report = audit.verify(s)
        return report
    finally:
        s.close()


def test_edited_line_is_detected(site, admin):
    seq = admin.store.scalar("SELECT seq FROM events WHERE line LIKE '%Clinician User%'")
    _tamper(site, admin, ["UPDATE events SET line = replace(line, 'Clinician User', 'Mallory')"])
    report = _first_problem(site)
    assert not report.ok
    assert f"seq {seq}:" in report.problems[0] and "does not match its hash" in report.problems[0]


def test_edited_column_is_detected(site, admin):
    _tamper(site, admin, ["UPDATE events SET user = 'mallory' WHERE seq = 3"])
    report = _first_problem(site)
    assert "seq 3" in report.problems[0] and "column user" in report.problems[0]


def test_deleted_event_is_detected(site, admin):
    _tamper(site, admin, ["DELETE FROM events WHERE seq = 5"])
    report = _first_problem(site)
    assert "seq 6" in report.problems[0] and "missing event" in report.problems[0]


def test_deleted_tail_is_detected(site, admin):
    last = admin.store.scalar("SELECT max(seq) FROM events")
    _tamper(site, admin, [f"DELETE FROM events WHERE seq = {last}"])
    report = _first_problem(site)
    assert f"seq {last - 1}" in report.problems[0] and "head says" in report.problems[0]


def test_inserted_event_is_detected(site, admin):
    row = admin.store.rows("SELECT * FROM events WHERE seq = 2")[0]
    forged = row["line"].replace('"seq":2', '"seq":2')
    _tamper(
        site,
        admin,
        [
            "UPDATE events SET seq = seq + 1000 WHERE seq >= 3",
            "INSERT INTO events (id, device, seq, prev, hash, hlc, ts, user, type, subject, amends, line) "
            "SELECT id || 'x', device, 3, prev, hash || 'x', hlc, ts, user, type, subject, amends, line FROM events WHERE seq = 2",
        ],
    )
    assert forged
    report = _first_problem(site)
    assert not report.ok and "seq 3" in report.problems[0]


def test_reordered_events_are_detected(site, admin):
    _tamper(
        site,
        admin,
        [
            "UPDATE events SET seq = -1 WHERE seq = 3",
            "UPDATE events SET seq = 3 WHERE seq = 4",
            "UPDATE events SET seq = 4 WHERE seq = -1",
        ],
    )
    report = _first_problem(site)
    assert not report.ok and "seq 3" in report.problems[0]


def test_rebuild_check_passes_then_names_a_hand_edited_projection(site, admin):
    n, diffs = projections.check(admin.store)
    assert diffs == [] and n == eventlog.count(admin.store)
    admin.store.execute("UPDATE users SET full_name = 'Mallory' WHERE id = 'dsmg'")
    _, diffs = projections.check(admin.store)
    assert diffs and "table users" in str(diffs[0]) and "dsmg" in str(diffs[0])
    assert "full_name" in str(diffs[0])
    projections.rebuild(admin.store)
    assert projections.check(admin.store)[1] == []


def test_amendment_keeps_old_value_and_needs_a_reason(admin, session_for):
    clin = session_for("clinician")
    rec = records.submit(clin, "vitals", {"temp": 37.1, "pulse": 80}, subject="participant:WUH01-001")
    with pytest.raises(UsageError, match="reason"):
        records.amend(clin, rec.id, {"temp": 38.1}, reason="  ")
    with pytest.raises(Refused, match="nothing to amend"):
        records.amend(clin, rec.id, {"temp": 37.1}, reason="typo")
    am = records.amend(clin, rec.id, {"temp": 38.1}, reason="typo: read 38.1 on the thermometer")
    state = records.load(clin.store, rec.id)
    assert state.data["temp"] == 38.1 and state.version == 2
    hist = records.history(clin.store, rec.id)
    assert hist[0]["old_value"] == "37.1" and hist[0]["new_value"] == "38.1"
    assert hist[0]["reason"].startswith("typo")
    assert eventlog.get(clin.store, rec.id).body["data"]["temp"] == 37.1  # original intact
    assert am.amends == rec.id


def test_signature_binds_content_and_shows_changed_since_signed(site, session_for):
    clin = session_for("clinician")
    rec = records.submit(clin, "vitals", {"temp": 37.1}, subject="participant:WUH01-001")
    sig = signatures.sign(clin, target=rec.id, meaning="authored", password=PASSWORD)
    [state] = signatures.for_target(clin.store, rec.id)
    assert state.valid and state.full_name == "Clinician User" and state.meaning == "authored"
    assert sig.user == "clinician"
    records.amend(clin, rec.id, {"temp": 37.2}, reason="transcription error")
    [state] = signatures.for_target(clin.store, rec.id)
    assert not state.valid and state.status == "changed since signed"
    assert "CHANGED SINCE SIGNED" in state.manifestation()


def test_signature_needs_the_signers_password_and_meaning(site, session_for):
    from wardcrf.errors import AuthError

    clin = session_for("clinician")
    rec = records.submit(clin, "vitals", {"temp": 37.1}, subject="participant:WUH01-001")
    with pytest.raises(AuthError, match="wrong password"):
        signatures.sign(clin, target=rec.id, meaning="authored", password="not-my-password")
    with pytest.raises(UsageError, match="allowed: authored"):
        signatures.sign(clin, target=rec.id, meaning="liked", password=PASSWORD)
    # A witness signs on the same laptop with their own credentials.
    w = signatures.sign(clin, target=rec.id, meaning="witnessed", signer="investigator", password=PASSWORD)
    assert w.user == "investigator" and w.role == "investigator"
    from wardcrf.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="role auditor may not sign"):
        signatures.sign(clin, target=rec.id, meaning="reviewed", signer="auditor", password=PASSWORD)


def test_subject_signature_covers_a_whole_casebook(session_for):
    clin = session_for("clinician")
    inv = session_for("investigator")
    records.submit(clin, "vitals", {"temp": 37.1}, subject="participant:WUH01-002")
    signatures.sign(inv, target="participant:WUH01-002", meaning="approved", password=PASSWORD)
    assert all(s.valid for s in signatures.for_subject(inv.store, "participant:WUH01-002"))
    records.submit(clin, "vitals", {"temp": 37.9}, subject="participant:WUH01-002")
    assert not any(s.valid for s in signatures.for_subject(inv.store, "participant:WUH01-002"))


# -- amending: which event to name -------------------------------------------------------------------
# Amending an amendment, or an event that is not a form record, says which event may be amended.


@pytest.fixture
def note(admin):
    # a plain record through the core API (no protocol form needed)
    return records.submit(admin, "note", {"text": "first"}, subject="site:x")


def test_amending_the_original_record_works(session_for, note):
    am = records.amend(session_for("clinician"), note.id, {"text": "second"}, "typo")
    assert am.amends == note.id


def test_amending_an_amendment_names_the_original(session_for, note):
    clinician = session_for("clinician")
    am = records.amend(clinician, note.id, {"text": "second"}, "typo")
    with pytest.raises(
        Refused, match=rf"{am.id} is an amendment of {note.id}; amend the original record {note.id}"
    ):
        records.amend(clinician, am.id, {"text": "third"}, "again")


def test_amending_a_non_record_event_says_only_records_can_be(admin):
    ev = users.add_user(admin, "bob", "Bob", "clinician", "bob-password-1")
    with pytest.raises(
        Refused, match=r"is a user.added event, not a form record; only records can be amended"
    ):
        records.amend(admin, ev.id, {"role": "admin"}, "promote")


# -- appending in a batch ----------------------------------------------------------------------------
# Inside a batch, an event type without projectors is appended without its own savepoint (one INSERT
# is all or nothing); an event whose projector refuses still rolls back alone. Either way a failed
# event leaves the chain as it was, the batch can go on, and the committed log verifies.


def _savepoints(store, monkeypatch) -> list[str]:
    seen: list[str] = []
    real = store.conn

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql.startswith("SAVEPOINT"):
                seen.append(sql)
            return real.execute(sql, *args)

    monkeypatch.setattr(store, "conn", Spy())
    return seen


def test_projectorless_events_in_a_batch_take_no_savepoint(admin, monkeypatch):
    seen = _savepoints(admin.store, monkeypatch)
    with admin.store.transaction():
        for i in range(5):
            admin.append(type="qa.note", subject="site:WUH01", body={"i": i})
    assert seen == []
    # an event type with projectors still gets its savepoint
    with admin.store.transaction():
        admin.append(
            type="user.language_set", subject="user:admin", body={"username": "admin", "language": "zh"}
        )
    assert len(seen) == 1


def test_a_failed_insert_in_a_batch_leaves_the_chain_as_it_was(admin, monkeypatch):
    store = admin.store
    before = eventlog.count(store)
    real = store.execute
    fail = {"left": 1}

    def flaky(sql, params=()):
        if sql.startswith("INSERT INTO events") and fail["left"]:
            fail["left"] -= 1
            raise StoreError("disk full: simulated")
        return real(sql, params)

    with store.transaction():
        first = admin.append(type="qa.note", subject="site:WUH01", body={"i": 1}).event
        monkeypatch.setattr(store, "execute", flaky)
        with pytest.raises(StoreError):
            admin.append(type="qa.note", subject="site:WUH01", body={"i": 2})
        monkeypatch.setattr(store, "execute", real)
        third = admin.append(type="qa.note", subject="site:WUH01", body={"i": 3}).event
    assert third.seq == first.seq + 1 and third.prev == first.hash
    assert eventlog.count(store) == before + 2
    n, problems = eventlog.verify_chains(store)
    assert n == before + 2 and problems == []


def test_a_refused_projector_in_a_batch_undoes_only_its_event(session_for):
    admin = session_for("clinician")
    store = admin.store
    before = eventlog.count(store)
    with store.transaction():
        first = admin.append(type="qa.note", subject="site:WUH01", body={"i": 1}).event
        with pytest.raises(Refused, match="names unknown record"):
            admin.append(
                type="record.amended", subject=None, body={"form": "x", "changes": {}}, amends="nope-1"
            )
        last = admin.append(type="qa.note", subject="site:WUH01", body={"i": 2}).event
    assert last.seq == first.seq + 1 and last.prev == first.hash
    assert eventlog.count(store) == before + 2
    assert eventlog.verify_chains(store)[1] == []


def test_a_rolled_back_batch_leaves_nothing(admin):
    store = admin.store
    before = eventlog.count(store)
    head = store.one("SELECT seq, hash FROM chain_heads")
    with pytest.raises(RuntimeError), store.transaction():
        for i in range(3):
            admin.append(type="qa.note", subject="site:WUH01", body={"i": i})
        raise RuntimeError("caller gives up")
    assert eventlog.count(store) == before and store.one("SELECT seq, hash FROM chain_heads") == head
    after = admin.append(type="qa.note", subject="site:WUH01", body={"i": 9}).event
    assert after.seq == head[0] + 1 and eventlog.verify_chains(store)[1] == []
