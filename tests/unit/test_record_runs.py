"""A run of records projected at once gives the participants, bindings and rows their records give one by one.

Inside a batch (a synced bundle, a replay) a record's batch hooks are put off under one key for the whole
run, with every table any of them reads or writes (`records._run_hooks`, `SqlStore.later_each`); the
`participants` rows of consent, screening, enrollment and format-2 eligibility records are folded per
participant by one hook (`workflow.participants._participant_rows`) and the photo bindings are a batch hook
that passes over a record whose text holds no reference (`photos.store._bindings`). What must hold, on
SQLCipher and on a real PostgreSQL server: one batch, one event at a time and no batch at all hold the same
projections, with the consent, the screening and the enrollment corrected in the same run as they were
submitted, a second consent that leaves the participant's row, and a binding moved by a correction; a read
mid-batch of a table only a later record's hooks write sees it; a rolled-back savepoint's corrections leave
nothing; a kit given twice inside one run is held as before. A ward's live appends equal its replay's
(`db rebuild --check`) and either hub's.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ledgerkit
import pytest
from test_hub_pg_records import PROJECTED, _rows

from wardcrf import eventlog, ingest, projections
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.ingest import HoldForCoordinator
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

ENGINES = ("sqlcipher", "postgresql")
PAGE_1, PAGE_2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


def _amend(subject: str, target: str, form: str, changes: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"type": "record.amended", "subject": subject, "amends": target, "reason": reason,
            "body": {"form": form, "changes": changes}}  # fmt: skip


def _steps(device: str, *, kit: str | None = None) -> list[dict[str, Any]]:
    """A participant's path (`ledgerkit.record_steps` 1 and 2: seq 1-11), the consent's page photographed,
    then corrected in the same run: the consent's time and pages (seq 12: page 1 unbound, page 2 bound),
    the screening's birth date (13), the enrollment's date (14); a second consent (15, page 1) that leaves
    the participant's row as the first made it, and its own correction (16)."""
    steps = ledgerkit.record_steps(device, 1, 1)
    steps[1]["body"]["data"]["photos"] = [PAGE_1]
    steps += ledgerkit.record_steps(device, 2, 7)
    if kit is not None:
        steps[9]["body"]["data"]["kit_id"] = kit
    subject = steps[1]["subject"]
    again = {"type": "record.submitted", "subject": subject,
             "body": {"form": "consent", "data": {**steps[1]["body"]["data"], "form_version": "1.1",
                                                  "time": "2026-12-09T08:00:00+08:00", "photos": [PAGE_1]}}}  # fmt: skip
    return [
        *steps,
        _amend(
            subject,
            f"{device}-2",
            "consent",
            {
                "time": {"old": "2026-12-06T08:30:00+08:00", "new": "2026-12-06T08:20:00+08:00"},
                "photos": {"old": [PAGE_1], "new": [PAGE_2]},
            },
            "the time was read off the wrong clock",
        ),
        _amend(
            subject,
            f"{device}-6",
            "screening",
            {"dob": {"old": "1961-03-04", "new": "1961-04-03"}},
            "day and month swapped",
        ),
        _amend(
            subject,
            f"{device}-7",
            "enrollment",
            {"date": {"old": "2026-12-06", "new": "2026-12-07"}},
            "enrolled the next morning",
        ),
        again,
        _amend(
            subject, f"{device}-15", "consent", {"form_version": {"old": "1.1", "new": "1.2"}}, "newer sheet"
        ),
    ]


def _runs(*, kit: str | None = None) -> tuple[list[eventlog.Event], list[eventlog.Event]]:
    """lap2's first bundle (its participant consented and screened), then one run: lap2's later records
    interleaved with lap1's whole path, so the run's first record is another participant's."""
    lap1 = ledgerkit.chain("lap1", 1, _steps("lap1"))
    lap2 = ledgerkit.chain("lap2", 1, _steps("lap2", kit=kit))
    first, rest = lap2[:6], lap2[6:]
    run: list[eventlog.Event] = []
    for i in range(max(len(lap1), len(rest))):
        run += rest[i : i + 1] + lap1[i : i + 1]
    return first, run


def _one_batch(store: SqlStore, events: list[eventlog.Event]) -> None:
    with store.transaction():
        eventlog.ingest_many(store, events)
        ingest.after_ingest(store, events)


def _one_at_a_time(store: SqlStore, events: list[eventlog.Event]) -> None:
    for event in events:
        _one_batch(store, [event])


def _no_batch(store: SqlStore, events: list[eventlog.Event]) -> None:
    store.batched_inserts = contextlib.nullcontext  # type: ignore[method-assign]
    _one_batch(store, events)


PATHS = {"one batch": _one_batch, "one event at a time": _one_at_a_time, "no batch": _no_batch}


def test_a_run_with_its_corrections_gives_the_rows_of_one_event_at_a_time_on_both_engines(
    request, tmp_path, signer
):
    first, run = _runs()
    seen: dict[tuple[str, str], dict[str, list[tuple[Any, ...]]]] = {}
    for engine in ENGINES:
        for name, apply in PATHS.items():
            store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
            try:
                apply(store, first)
                apply(store, run)
                seen[engine, name] = {table: _rows(store, table) for table in PROJECTED}
                if isinstance(store, Store) and name == "one batch":
                    assert projections.check(store)[1] == []
            finally:
                store.close()
    rows = seen["sqlcipher", "one event at a time"]
    # The corrections show: the first consent's time, the birth date and the enrollment date as corrected,
    # the second consent not the participant's; page 1 unbound from the first consent and bound to the
    # second, page 2 bound to the first.
    people = {r[0]: r for r in rows["participants"]}
    assert len(people) == 2
    for device in ("lap1", "lap2"):
        row = people[ledgerkit.participant_of(device)]
        assert row[2:5] == (f"{device}-2", "2026-12-06T08:20:00+08:00", "1.0"), row
        assert row[8] == "1961-04-03" and row[11:] == (f"{device}-7", "2026-12-07"), row
    bound = sorted((r[0], r[2][:1], r[3], r[6]) for r in rows["photo_bindings"])
    assert bound == sorted(
        (f"{d}-{n}", page, f"{d}-{at}", gone)
        for d in ("lap1", "lap2")
        for n, page, at, gone in ((2, "1", 2, f"{d}-12"), (2, "2", 12, None), (15, "1", 15, None))
    )
    for key, tables in seen.items():
        for table in PROJECTED:
            assert tables[table] == rows[table], (key, table)


def test_a_read_mid_run_of_a_table_a_later_record_writes_sees_its_rows(tmp_path, signer):
    """The run's work is put off with the tables of its first record's hooks (vitals); a dose added later
    brings the doses table: a read of it mid-run runs the work first and sees the dose, as record by record."""
    store = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path), signer)
    try:
        events = ledgerkit.chain("lap1", 1, _steps("lap1"))
        with store.transaction():
            for event in events[:8]:
                eventlog.ingest_many(store, [event])
            with eventlog.owned_bodies(), store.batched_inserts():
                eventlog._write(store, events[8])  # pre-dose vitals: the run's first record
                eventlog._write(store, events[9])  # the dose
                kits = store.execute("SELECT kit_id FROM doses").fetchall()
                people = store.execute("SELECT dob FROM participants").fetchall()
                eventlog._write(store, events[12])  # the screening corrected
                corrected = store.execute("SELECT dob FROM participants").fetchall()
        assert [tuple(r) for r in kits] == [("EXO-LAP1",)]
        assert [tuple(r) for r in people] == [("1961-03-04",)]
        assert [tuple(r) for r in corrected] == [("1961-04-03",)]
    finally:
        store.close()


def test_a_rolled_back_savepoint_leaves_nothing_of_its_corrections(tmp_path, signer):
    """Corrections projected inside a savepoint that is then rolled back (a bundle refused after its
    records were projected) leave the participant's row and bindings as before them; the run goes on."""
    tables = ("participants", "photo_bindings", "records", "amendments")
    events = ledgerkit.chain("lap1", 1, _steps("lap1"))
    seen = []
    for rolled_back in (False, True):
        store = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path), signer)
        try:
            with store.transaction():
                eventlog.ingest_many(store, events[:11])
            with store.transaction(), eventlog.owned_bodies(), store.batched_inserts():
                if rolled_back:
                    with pytest.raises(Refused), store.transaction():
                        for event in events[11:14]:
                            eventlog._write(store, event)
                        raise Refused("held for the coordinator")
            seen.append({table: _rows(store, table) for table in tables})
        finally:
            store.close()
    assert seen[0] == seen[1]
    assert [r[3] for r in seen[1]["participants"]] == ["2026-12-06T08:30:00+08:00"]
    assert [(r[0], r[6]) for r in seen[1]["photo_bindings"]] == [("lap1-2", None)]


@pytest.mark.parametrize("name", list(PATHS))
def test_a_kit_given_twice_inside_one_run_is_held_as_before(tmp_path, signer, name):
    """Both participants' doses in one run that starts with a vitals record (whose hooks do not write
    doses), lap2's naming lap1's kit: held for the coordinator on every path, nothing of the run kept;
    each with its own kit, the same run is applied."""
    for kit, held in ((None, False), ("EXO-LAP1", True)):
        lap1 = ledgerkit.chain("lap1", 1, _steps("lap1"))
        lap2 = ledgerkit.chain("lap2", 1, _steps("lap2", kit=kit))
        first, run = lap1[:9] + lap2[:8], [lap2[8], lap1[9], lap2[9], lap1[10], lap2[10]]
        store = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path), signer)
        try:
            PATHS[name](store, first)
            before = {table: _rows(store, table) for table in ("participants", "doses", "vitals")}
            if not held:
                PATHS[name](store, run)
                assert sorted(r[3] for r in _rows(store, "doses")) == ["EXO-LAP1", "EXO-LAP2"]
                continue
            with pytest.raises(HoldForCoordinator, match="EXO-LAP1"):
                PATHS[name](store, run)
            if name != "one event at a time":
                assert {table: _rows(store, table) for table in before} == before
        finally:
            store.close()


def _corrections(w: Any, root: Any) -> list[Any]:
    """The participant's consent, screening and enrollment corrected live and a second consent signed
    after them, then corrected: one bundle holding records and their corrections together."""
    from synckit import open_
    from test_sync_roundtrip import export

    s = open_(w)
    try:
        targets = dict(s.store.execute("SELECT form, event_id FROM records WHERE form IN"
                                       " ('consent', 'screening', 'enrollment')").fetchall())  # fmt: skip
    finally:
        s.close()
    subject = "participant:WUH01-001"
    c = open_(w, "clin")
    try:

        def amend(form: str, changes: dict[str, Any], reason: str, target: str | None = None) -> None:
            c.append(type="record.amended", subject=subject, amends=target or targets[form], reason=reason,
                     body={"form": form, "changes": changes})  # fmt: skip

        amend("consent", {"time": {"old": "2026-12-06T08:30:00+08:00", "new": "2026-12-06T08:20:00+08:00"}},
              "the time was read off the wrong clock")  # fmt: skip
        amend("screening", {"dob": {"old": "1961-03-04", "new": "1961-04-03"}}, "day and month swapped")
        amend("enrollment", {"date": {"old": "2026-12-06", "new": "2026-12-07"}}, "enrolled the next morning")
        again = c.append(type="record.submitted", subject=subject, body={"form": "consent", "data": {
            "consenter": "participant", "form_version": "1.1", "time": "2026-12-09T08:00:00+08:00",
            "witness_1": "inv", "witness_2": "clin2", "photos": []}}).event.id  # fmt: skip
        amend("consent", {"form_version": {"old": "1.1", "new": "1.2"}}, "newer sheet", again)
    finally:
        c.close()
    return export(w, root / "r3")


@pytest.mark.usefixtures("hub_engine")
def test_live_appends_replay_and_either_hub_hold_the_same_participants(tmp_path, hub_engine):
    from hub_engines import ledger
    from synckit import connect, make_hub, make_ward, open_
    from test_hub_pg_hub import _ward_records
    from wardcrf.sync import hub

    tables = ("participants", "records", "amendments", "photo_bindings")
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    files, _post = _ward_records(w, tmp_path)
    s = open_(w)
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")  # as if receipted
    finally:
        s.close()
    files += _corrections(w, tmp_path)
    s = open_(w)
    try:
        live = {table: _rows(s.store, table) for table in tables}
        assert projections.check(s.store)[1] == []  # `db rebuild --check`: the ward's log replayed
    finally:
        s.close()
    (row,) = live["participants"]
    assert (row[3], row[4], row[8], row[12]) == (
        "2026-12-06T08:20:00+08:00",
        "1.0",
        "1961-04-03",
        "2026-12-07",
    )
    s = open_(h)
    try:
        assert [hub.import_file(s, f).outcome.status for f in files] == ["applied"] * len(files)
    finally:
        s.close()
    with ledger(h) as (_s, store):
        assert {table: _rows(store, table) for table in tables} == live, hub_engine


def test_a_run_longer_than_later_items_is_done_in_parts_with_the_same_rows(tmp_path, signer, monkeypatch):
    """Once `LATER_ITEMS` records wait, their work is done at once (memory stays bounded): a batch hook is
    then called with the run in parts, each in log order, and the tables are those of one event at a time."""
    from wardcrf import records, sqlstore

    calls: list[list[str]] = []

    def hook(store: Store, recs: Any) -> None:
        calls.append([r.event_id for r in recs])

    first, run = _runs()
    seen = []
    records.add_batch_hook(hook, "vitals", tables=("hook_notes",))  # a table nothing else touches
    try:
        for name, later_items in (("one event at a time", sqlstore.LATER_ITEMS), ("one batch", 3)):
            monkeypatch.setattr(sqlstore, "LATER_ITEMS", later_items)
            store = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path), signer)
            try:
                PATHS[name](store, first)
                calls.clear()
                PATHS[name](store, run)
                seen.append({table: _rows(store, table) for table in PROJECTED})
            finally:
                store.close()
    finally:
        records._BATCH_TABLES.pop(hook)
        records._FORM_HOOKS["vitals"].remove(hook)
        records._FOR_FORM.clear()
        records._PLANS.clear()
    vitals = [e.id for e in run if e.type == "record.submitted" and e.body["form"] == "vitals"]
    assert [rec for part in calls for rec in part] == vitals and len(calls) > 1
    assert seen[0] == seen[1]
