"""A bundle's records projected in one batch give the projections their events give applied one at a time.

Hooks that take a bundle's records at once (`records.add_batch_hook`: the ward queue's upkeep, once
per participant a bundle touched) are called once per batch with every record's state, in log order,
before anything touches the tables they read or write (`SqlStore.later_each`). What must hold: the
tables are the same as when every event is applied on its own (its own transaction) and as when
every hook runs record by record (no batch at all), on SQLCipher and on a real PostgreSQL server
(`pgserver`); for one bundle in which each participant is touched by thirteen events (consent,
three signatures, screening, enrollment, skin test, vitals twice, a dose, an adverse event, two
amendments), records are amended after they were submitted (the post-dose pulse, and the consent's
photo pages: a binding unbound and another bound), and a second participant's records interleave
with the first's. On
SQLCipher `db rebuild --check` finds nothing to say of the batched import either.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ledgerkit
import pytest
from test_hub_pg_records import PROJECTED, _rows

from wardcrf import eventlog, ingest, projections, records
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store

ENGINES = ("sqlcipher", "postgresql")
DEVICES = ("lap1", "lap2")
PAGE_1, PAGE_2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


def _device_steps(device: str) -> list[dict[str, Any]]:
    """A participant's whole path as one chain (`ledgerkit.record_steps` 1 to 3, then the consent's pages
    corrected): the protocol, consent and signatures, screening, enrollment, skin test, vitals, dose,
    post-dose vitals, an adverse event, the post-dose pulse amended (seq 13 amends seq 11), and the
    consent's photo pages amended (seq 14 amends seq 2: page 1 unbound, page 2 bound)."""
    steps = ledgerkit.record_steps(device, 1, 1)
    steps[1]["body"]["data"]["photos"] = [PAGE_1]
    steps += ledgerkit.record_steps(device, 2, len(steps) + 1)
    steps += ledgerkit.record_steps(device, 3, len(steps) + 1)
    consent = steps[1]
    steps.append(
        {
            "type": "record.amended",
            "subject": consent["subject"],
            "amends": f"{device}-2",
            "reason": "the second page was photographed again",
            "body": {"form": "consent", "changes": {"photos": {"old": [PAGE_1], "new": [PAGE_2]}}},
        }
    )
    return steps


def _bundle(store: SqlStore) -> list[eventlog.Event]:
    """Two devices' chains interleaved into one run, as a hub applies a run of bundles: every event of
    lap1 and lap2 alternating (each device's own order kept)."""
    chains = [ledgerkit.chain(d, 1, _device_steps(d)) for d in DEVICES]
    out: list[eventlog.Event] = []
    for pair in zip(*chains, strict=True):
        out.extend(pair)
    return out


def _one_batch(store: SqlStore, events: list[eventlog.Event]) -> None:
    with store.transaction():
        eventlog.ingest_many(store, events)
        ingest.after_ingest(store, events)


def _one_at_a_time(store: SqlStore, events: list[eventlog.Event]) -> None:
    for event in events:
        with store.transaction():
            eventlog.ingest_many(store, [event])
            ingest.after_ingest(store, [event])


def _no_batch(store: SqlStore, events: list[eventlog.Event]) -> None:
    """Every hook record by record, every row written at once: `batched_inserts` switched off."""
    store.batched_inserts = contextlib.nullcontext  # type: ignore[method-assign]
    _one_batch(store, events)


PATHS = {"one batch": _one_batch, "one event at a time": _one_at_a_time, "no batch": _no_batch}


def test_one_batch_gives_the_projections_of_one_event_at_a_time_on_both_engines(request, tmp_path, signer):
    seen: dict[tuple[str, str], dict[str, list[tuple[Any, ...]]]] = {}
    for engine in ENGINES:
        for name, apply in PATHS.items():
            store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
            try:
                apply(store, _bundle(store))
                seen[engine, name] = {table: _rows(store, table) for table in PROJECTED}
                if isinstance(store, Store) and name == "one batch":
                    assert projections.check(store)[1] == []
            finally:
                store.close()
    first = seen["sqlcipher", "one event at a time"]
    # What the bundle holds shows in the tables: the amended pulse, the pages' binding moved, both rows.
    assert len(first["records"]) == 2 * 8 and len(first["amendments"]) == 2 * 2
    assert len([r for r in first["vitals"] if 86 in r or "86" in r]) == 2
    bindings = first["photo_bindings"]
    assert len(bindings) == 4 and sum(1 for r in bindings if PAGE_2[7:] in str(r)) == 2
    assert len(first["ward_queue"]) == 2 and first["counters"] == [("participants", 2)]
    for key, tables in seen.items():
        for table in PROJECTED:
            assert tables[table] == first[table], (key, table)


def test_a_batch_hook_is_called_once_per_batch_with_every_record_in_log_order(tmp_path, signer):
    """Registered like the ward queue's: one call for the whole bundle, the amended record twice (as
    submitted, then as amended), nothing inside a savepoint that was rolled back; outside a batch (a
    ward's own `append`) one call per record, at once."""
    calls: list[list[tuple[str, int]]] = []

    def hook(store: Store, recs: Any) -> None:
        calls.append([(r.event_id, r.version) for r in recs])

    records.add_batch_hook(hook, "vitals", tables=("hook_notes",))  # a table nothing else touches
    try:
        store = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path), signer)
        try:
            events = ledgerkit.chain("lap1", 1, _device_steps("lap1"))
            _one_batch(store, events[:13])
            assert calls == [[("lap1-9", 1), ("lap1-11", 1), ("lap1-11", 2)]]
            calls.clear()
            # A savepoint whose records are refused after they were projected: none reaches the hook.
            more = ledgerkit.chain("lap1", 14, ledgerkit.record_steps("lap1", 2, 14)[2:3], events[12].hash)
            with store.transaction(), store.batched_inserts(), pytest.raises(Refused), store.transaction():
                projections.replay(store, [e.line for e in more])
                raise Refused("held for the coordinator")
            assert calls == []
            # No batch: the hook is called with each record at once.
            _no_batch(store, more)
            assert calls == [[("lap1-14", 1)]]
        finally:
            store.close()
    finally:
        records._BATCH_TABLES.pop(hook)
        records._FORM_HOOKS["vitals"].remove(hook)
        records._FOR_FORM.clear()
        records._PLANS.clear()


def test_a_write_to_a_table_a_batch_hook_reads_runs_it_first(tmp_path, signer):
    """The hook sees each table it names as it was when its records were projected: an `insert` into one
    (collected, not yet run) or a statement touching one does the put-off work first."""
    seen: list[int] = []

    def hook(store: Store, recs: Any) -> None:
        seen.append(int(store.scalar("SELECT count(*) FROM vitals")))

    records.add_batch_hook(hook, "skin_test", tables=("vitals",))
    try:
        store = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path), signer)
        try:
            events = ledgerkit.chain("lap1", 1, _device_steps("lap1"))
            _one_batch(store, events[:11])  # ... the skin test (seq 8), then vitals (seq 9) and (seq 11)
            assert seen == [0]
        finally:
            store.close()
    finally:
        records._BATCH_TABLES.pop(hook)
        records._FORM_HOOKS["skin_test"].remove(hook)
        records._FOR_FORM.clear()
        records._PLANS.clear()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_ward_queue_read_inside_a_batch_holds_the_rows_its_records_move(
    request, tmp_path, signer, engine
):
    """Inside a batch the ward queue's hook is put off, but not past a read of the queue or its counter: a
    projector or check reading them mid-batch sees the participant's row and count, as record by record."""
    store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
    try:
        events = ledgerkit.chain("lap1", 1, _device_steps("lap1"))
        with store.transaction(), eventlog.owned_bodies(), store.batched_inserts():
            for event in events[:11]:
                eventlog._write(store, event)
            rows = store.execute("SELECT participant, vitals_owed FROM ward_queue").fetchall()
            counted = store.scalar("SELECT value FROM counters WHERE name = 'participants'")
            assert [tuple(r) for r in rows] == [(ledgerkit.participant_of("lap1"), 0)] and counted == 1
            # The row gone, the post-dose vitals' hooks run again: the queue's hook is put off with nothing
            # else read in between (no read of the active version runs it), until the queue is read.
            store.execute("DELETE FROM ward_queue")
            records._run_hooks(store, "lap1-11")
            rows = store.execute("SELECT participant, vitals_owed FROM ward_queue").fetchall()
        assert [tuple(r) for r in rows] == [(ledgerkit.participant_of("lap1"), 0)]
    finally:
        store.close()
