"""Projection rows written in batches give the same tables as rows written one by one, on both engines.

A synced bundle's projector rows are collected and written per statement
(`wardcrf.sqlstore.InsertBatches`: SQLite's ``executemany``, PostgreSQL's
pipelined ``executemany`` or ``COPY``), and the active protocol the ward
queue asks for twice per record is read once per bundle (`memoized`). What
must hold (issue 19): the tables are the same as when every row is written
at once and every read goes to the database, on SQLCipher and on a real
PostgreSQL server (`pgserver`), with hostile text; a bundle refused half-way
leaves nothing of either path.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ledgerkit
import pytest
from test_hub_pg_records import HOSTILE, PROJECTED, _rows
from wardcrf.sync import pgstore

from wardcrf import eventlog, ingest
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore

ENGINES = ("sqlcipher", "postgresql")
DEVICES = [f"lap{i}" for i in range(1, 21)]


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


def _one_by_one(store: SqlStore) -> None:
    """The path before batching: every `insert` written at once, every read asked of the database."""
    store.batched_inserts = contextlib.nullcontext  # type: ignore[method-assign]


def _bundles(store: SqlStore, step: int) -> list[eventlog.Event]:
    """Twenty wards' bundle number `step` (`ledgerkit.record_steps`), as one run of events: a consent,
    its three signatures and a screening each (step 1), an enrollment, skin test, vitals and a dose
    (step 2), an adverse event holding hostile text and an amendment (step 3)."""
    events: list[eventlog.Event] = []
    for device in DEVICES:
        seq, prev = eventlog.head(store, device)
        steps = ledgerkit.record_steps(device, step, seq + 1)
        if step == 3:
            steps[0]["body"]["data"].update({k: v for k, v in HOSTILE.items() if k != "first_known"})
        events += ledgerkit.chain(device, seq + 1, steps, prev)
    return events


def _import_all(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    for step in (1, 2, 3):
        events = _bundles(store, step)
        with store.transaction():
            eventlog.ingest_many(store, events)
            ingest.after_ingest(store, events)
    return {table: _rows(store, table) for table in PROJECTED}


def test_batched_and_one_by_one_writes_give_the_same_tables_on_both_engines(request, tmp_path, signer):
    """Sixty bundles' worth of records from twenty wards, imported three times twenty at once: the batched
    path and the row-at-a-time path hold the same rows, table by table, on SQLCipher and PostgreSQL; and
    the four agree with each other."""
    seen: dict[tuple[str, str], dict[str, list[tuple[Any, ...]]]] = {}
    for engine in ENGINES:
        for path in ("batched", "one by one"):
            store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
            try:
                if path == "one by one":
                    _one_by_one(store)
                seen[engine, path] = _import_all(store)
            finally:
                store.close()
    first = seen["sqlcipher", "one by one"]
    assert len(first["records"]) == 20 * 8 and len(first["signatures"]) == 60 and len(first["vitals"]) == 40
    assert len(first["participants"]) == 20 and first["counters"] == [("participants", 20)]
    assert any("fièvre" in str(r) for r in first["adverse_events"])
    for key, tables in seen.items():
        for table in PROJECTED:
            assert tables[table] == first[table], (key, table)


def test_copy_writes_the_rows_the_inserts_write(pg_server):
    """A batch large enough goes by COPY (the records' insert: placeholders and a constant); its rows are
    byte for byte those the same inserts write one at a time: hostile text, NULLs, 300 KB, integers."""
    sql = (
        "INSERT INTO records (event_id, form, subject, data, field_hlc, created_at, created_by,"
        " last_event, last_hlc, version) VALUES (?,?,?,?,?,?,?,?,?,1)"
    )
    assert pgstore.copy_plan(sql) is not None
    texts = [*HOSTILE.values(), "", "\\N", "\\.", "tab\there", "a\\b"]
    short = [t for t in texts if len(t) < 1000]  # the subject is indexed
    rows = [
        (f"{prefix}-{i}", "ae", None if i % 3 else short[i % len(short)], texts[i % len(texts)], "{}",
         "2026-12-06T08:00:00Z", None, f"{prefix}-{i}", "001790000007000.00000")
        for prefix in ("one", "batch") for i in range(3 * pgstore.COPY_MIN_ROWS)
    ]  # fmt: skip
    store = pgstore.PgStore(pg_server.new_database())
    try:
        store.migrate()
        copied: list[int] = []
        write_batch = store._write_batch
        store._write_batch = lambda q, r: (copied.append(len(r)), write_batch(q, r))[1]  # type: ignore[method-assign]
        with store.transaction():
            for row in rows[: len(rows) // 2]:
                store.insert(sql, row)  # outside a batch: one at a time
            with store.batched_inserts():
                for row in rows[len(rows) // 2 :]:
                    store.insert(sql, row)
        assert copied == [3 * pgstore.COPY_MIN_ROWS]
        got = {r[0]: r[1:] for r in store.execute("SELECT event_id, form, subject, data, field_hlc, created_at,"
                                                  " created_by, last_event, last_hlc, version FROM records")}  # fmt: skip
        for i in range(3 * pgstore.COPY_MIN_ROWS):
            one, batch = got[f"one-{i}"], got[f"batch-{i}"]
            assert one[:6] == batch[:6] and one[7:] == batch[7:] and one[-1] == 1
            assert batch[2] == rows[i][3]  # the data as given
    finally:
        store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_refused_after_its_rows_were_collected_leaves_nothing(request, tmp_path, signer, engine):
    """The amendment of a record nobody holds comes after forty records' rows were collected: the run is
    refused and not one of them, nor its events or heads, is kept; the run without it applies whole."""
    store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
    try:
        events = _bundles(store, 1)
        stray = ledgerkit.chain(
            "lap99",
            1,
            [
                {
                    "type": "record.amended",
                    "subject": "participant:WUH01-002",
                    "amends": "lap0-1",
                    "reason": "wrong",
                    "body": {"form": "vitals", "changes": {"pulse": {"old": 1, "new": 2}}},
                }
            ],
        )
        with pytest.raises(Refused, match="names unknown record lap0-1"), store.transaction():
            eventlog.ingest_many(store, events + stray)
        assert store.scalar("SELECT count(*) FROM events") == 0
        assert all(store.scalar(f"SELECT count(*) FROM {t}") == 0 for t in PROJECTED)
        assert eventlog.head(store, "lap1") == (0, eventlog.canonical.GENESIS)
        with store.transaction():
            eventlog.ingest_many(store, events)
        assert store.scalar("SELECT count(*) FROM records") == 40
        assert store.scalar("SELECT count(*) FROM signatures") == 60
    finally:
        store.close()


def test_copy_is_used_only_for_inserts_that_only_insert():
    """COPY stands in for a plain INSERT of `?` and integer constants; an upsert, an expression, a
    RETURNING or a SELECT is written by executemany."""
    plan = pgstore.copy_plan('INSERT INTO t (a, "user", v) VALUES (?, ?, 1)')
    assert plan == ('COPY t (a, "user", v) FROM STDIN', (0, 1, None), (1,))
    assert pgstore.copy_plan("INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING") is None
    assert pgstore.copy_plan("INSERT INTO t (a, b) VALUES (?, lower(?))") is None
    assert pgstore.copy_plan("INSERT INTO t (a, b) VALUES (?, 'x')") is None
    assert pgstore.copy_plan("INSERT INTO t (a) VALUES (?) RETURNING a") is None
    assert pgstore.copy_plan("INSERT INTO t (a) SELECT a FROM u") is None
    assert pgstore.copy_plan("INSERT INTO t (a, b) VALUES (?)") is None


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"pulse": 1},
        {"b": 1, "a": 2, "A": 3, "_": 4, "ä": 5, "发烧": 6, "🧪": 7, "e\u0301": 8},
        {'q"uote': 1, "back\\slash": 2, "tab\there": 3, "line\nbreak": 4, "\x00nul": 5, "\u2028sep": 6},
        {"x" * 5000: 1, "": 2},
    ],
)
def test_the_field_clock_is_spelled_as_the_canonical_encoder_spells_it(fields):
    from wardcrf.canonical import dumps
    from wardcrf.records import clock_json

    for hlc in ("001790000007000.00000", 'odd "clock"\\\n'):
        assert clock_json(fields, hlc) == dumps({k: hlc for k in fields})
