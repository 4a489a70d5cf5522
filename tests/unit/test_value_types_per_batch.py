"""The value-type check of a SQLCipher hub's import, per batch (`Store.check_value_types`).

No checked table keeps an INSERT trigger, and the tables written by upserts a run of records at a time
(`per_batch`: the vitals and doses of a bundle's records) no UPDATE trigger either: each plain INSERT
is checked once for its batch, and a batch holding a value that is not NULL, an integer, a real or a
boolean, or any other statement writing such a table, runs with the triggers made for that statement.
What must hold: every statement, whatever its values, ends as it ends under the triggers alone (made
once, as before this check per batch) — the same rows written, the same refusal in the same words at
the same row — and no trigger made for a statement is left on the connection (a rollback leaves none
either).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import wardcrf.photos as wardcrf_photos
import wardcrf.sync as wardcrf_sync
from wardcrf.sync.hub import CHECKED_PER_BATCH, COMPUTED_COLUMNS, UPDATED_IN_PLACE

import wardcrf
from wardcrf import projections
from wardcrf.errors import ColumnTypeError
from wardcrf.records import Record
from wardcrf.store import Store
from wardcrf.workflow import dosing

PER_BATCH = ("per batch", CHECKED_PER_BATCH)
BY_TRIGGER = ("by trigger", frozenset())


def _store(per_batch: frozenset[str]) -> Store:
    """A store checking value types; `per_batch` empty: by the triggers alone, each made once for good
    (what `check_value_types` made before it checked batches), the comparison's baseline."""
    store = Store.memory()
    store.migrate()
    store.check_value_types(projections.PROJECTION_TABLES, COMPUTED_COLUMNS, per_batch)
    if not per_batch:
        for made, _checked in store._per_batch.values():
            for _kind, create in made:
                store.conn.execute(create)
        store._per_batch, store._per_batch_tables = {}, frozenset()
    return store


def _vitals(i: int, **values: Any) -> list[Any]:
    """One `vitals` upsert row (`dosing._vitals_projection`'s columns), typed as a ward types it."""
    _sql, fields = dosing._vitals_projection()
    typed = {"timepoint": "pre_dose", "dose": 1, "time": "2026-12-07T08:45:00+08:00", "temp": 36.8,
             "pulse": 82, "resp": 20, "oxysat": 95, "sysbp": 128, "diabp": 78}  # fmt: skip
    typed.update(values)
    return [f"ev-{i}", "WUH01-001", *(typed.get(f) for f in fields)]


def _outcome(store: Store, run: Any) -> tuple[Any, ...]:
    """What a statement did: the refusal (its type and words) or none, then every `vitals` row with each
    value's SQLite type, and the TEMP triggers left on the connection."""
    try:
        with store.transaction():
            run(store)
        refused = None
    except Exception as exc:  # the same exception either way is what is compared
        refused = (type(exc).__name__, str(exc))
    rows = store.execute(
        "SELECT event_id, pulse, typeof(pulse), temp, typeof(temp), dose, typeof(dose) FROM vitals ORDER BY rowid"
    ).fetchall()
    triggers = sorted(
        r[0] for r in store.execute("SELECT name FROM sqlite_temp_master WHERE type = 'trigger'")
    )
    return refused, [tuple(r) for r in rows], triggers


# Values a bundle's pulse (an INTEGER column) or temperature (REAL) could carry: what a ward types, text
# that reads as a number (stored as the number by both engines), text that does not, a blob, and values
# SQLite cannot bind at all.
VALUES = {
    "integer": {"pulse": 82},
    "real in an integer column": {"pulse": 82.5},
    "null": {"pulse": None, "temp": None},
    "boolean": {"pulse": True},
    "text reading as a number": {"pulse": "82", "temp": " 37.5 "},
    "text": {"pulse": "fast"},
    "hostile text in a real column": {"temp": "hot'); DROP TABLE vitals; --\""},
    "hex text": {"pulse": "0x52"},
    "blob": {"dose": b"\x00\x01"},
    "too large to bind": {"pulse": 2**63},
    "a list": {"pulse": [82]},
}


def _sqls() -> dict[str, Any]:
    sql, _fields = dosing._vitals_projection()
    cols = '"timepoint", "dose", "time", "temp", "pulse", "resp", "oxysat", "sysbp", "diabp"'
    return {
        # A batch: the odd row third of five, so a refusal leaves the two before it, as SQLite does.
        "executemany": lambda values: (
            lambda s: s.executemany(sql, [_vitals(i, **(values if i == 3 else {})) for i in range(1, 6)])
        ),
        "execute": lambda values: lambda s: s.execute(sql, _vitals(1, **values)),
        "collected inserts": lambda values: lambda s: _collected(s, sql, values),
        "insert, then the same row replaced": lambda values: (
            lambda s: (
                s.execute(sql, _vitals(1)),
                s.executemany(sql, [_vitals(1, **values)]),
            )
        ),
        "plain insert without an upsert": lambda values: (
            lambda s: s.execute(
                f"INSERT INTO vitals (event_id, participant, {cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                _vitals(1, **values),
            )
        ),
        # SQL's names ignore case: a column spelled otherwise than the schema is the same column.
        "columns spelled in capitals": lambda values: (
            lambda s: s.execute(
                f"INSERT INTO Vitals (EVENT_ID, participant, {cols.upper()}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                _vitals(1, **values),
            )
        ),
    }


def _collected(store: Store, sql: str, values: dict[str, Any]) -> None:
    with store.batched_inserts():
        for i in range(1, 6):
            store.insert(sql, _vitals(i, **(values if i == 3 else {})))


@pytest.mark.parametrize("how", list(_sqls()))
@pytest.mark.parametrize("values", list(VALUES))
def test_a_batch_checked_once_ends_as_the_triggers_end_it(how, values):
    """Accept and refuse alike: each value, by each way rows reach the table, gives the same rows, the same
    refusal (`ColumnTypeError` with PostgreSQL's words, or the binding's own error) and no trigger left."""
    outcomes = []
    for _name, per_batch in (BY_TRIGGER, PER_BATCH):
        store = _store(per_batch)
        try:
            outcomes.append(_outcome(store, _sqls()[how](VALUES[values])))
        finally:
            store.close()
    by_trigger, per_batch_outcome = outcomes
    assert per_batch_outcome[:2] == by_trigger[:2]
    # Not one trigger on the tables checked per batch, after a refusal as after a write.
    assert [t for t in per_batch_outcome[2] if "vitals" in t or "doses" in t] == []
    assert "wardcrf_types_vitals_insert" in by_trigger[2]
    assert [t for t in per_batch_outcome[2] if t.endswith("_insert")] == []  # no table keeps one


def _every_checked_column() -> list[tuple[str, str]]:
    store = _store(CHECKED_PER_BATCH)
    try:
        return [(t, c) for t, (_made, checked) in sorted(store._per_batch.items()) for c in checked]
    finally:
        store.close()


@pytest.mark.parametrize("value", ["fast", "82", 82, None])
def test_every_checked_column_of_every_table_refuses_as_its_trigger_did(value):
    """Each checked column of each projected table, by a plain INSERT of that one value (the other columns
    NULL): the same refusal (the column's type, or a NOT NULL the trigger never reached) or the same row."""
    columns = _every_checked_column()
    assert len({t for t, _c in columns}) > 10
    seen = []
    for _name, per_batch in (BY_TRIGGER, PER_BATCH):
        store = _store(per_batch)
        got = []
        try:
            for table, column in columns:
                try:
                    with store.transaction():
                        store.execute(f'INSERT INTO {table} ("{column}") VALUES (?)', (value,))
                    got.append((table, column, "written"))
                except Exception as exc:  # the same exception either way is what is compared
                    got.append((table, column, type(exc).__name__, str(exc)))
            seen.append(got)
        finally:
            store.close()
    assert seen[1] == seen[0]
    if value == "fast":
        assert all(r[2] == "ColumnTypeError" for r in seen[1]), seen[1]


def test_text_is_refused_in_its_words_and_typed_values_are_written():
    """The rule itself, on the per-batch path: "fast" for a pulse refused with PostgreSQL's words, the
    whole batch written when every value is typed, "82" stored as the number 82."""
    store = _store(CHECKED_PER_BATCH)
    try:
        refused, rows, _t = _outcome(store, _sqls()["executemany"]({"pulse": "fast"}))
        assert refused == (
            "ColumnTypeError",
            'the database refused a value: invalid input syntax for type bigint: "fast"',
        )
        assert [r[0] for r in rows] == []  # the transaction rolled back: nothing of the batch
        refused, rows, _t = _outcome(store, _sqls()["executemany"]({"pulse": "82"}))
        assert refused is None and len(rows) == 5 and rows[2][1:3] == (82, "integer")
    finally:
        store.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE vitals SET pulse = 'fast' WHERE event_id = 'ev-1'",
        "INSERT INTO vitals (event_id, participant, pulse) SELECT 'ev-9', participant, 'fast' FROM vitals",
        "INSERT INTO vitals (event_id, participant, pulse) VALUES ('ev-9', 'WUH01-001', 'fast')",
        "INSERT INTO vitals (event_id, participant, pulse) VALUES (?, ?, ?) ON CONFLICT (event_id)"
        " DO UPDATE SET pulse = 'fast'",
    ],
    ids=["update", "insert-select", "literal-values", "upsert-setting-a-literal"],
)
def test_any_other_statement_writing_the_table_is_refused_by_the_triggers_made_for_it(sql):
    """A statement the batch check cannot read values from runs under the table's triggers, made for it
    and dropped after: refused in the same words, and the connection left without them."""
    store = _store(CHECKED_PER_BATCH)
    try:
        with store.transaction():
            store.execute(dosing._vitals_projection()[0], _vitals(1))
        params = ("ev-1", "WUH01-001", 80) if "?" in sql else ()
        refused = pytest.raises(ColumnTypeError, match='invalid input syntax for type bigint: "fast"')
        with refused, store.transaction():
            store.execute(sql, params)
        assert store.scalar("SELECT pulse FROM vitals WHERE event_id = 'ev-1'") == 82
        assert (
            store.scalar("SELECT count(*) FROM sqlite_temp_master WHERE name LIKE 'wardcrf_types_vitals%'")
            == 0
        )
        store.execute("DELETE FROM vitals")  # a statement writing no value needs no check
        assert store.scalar("SELECT count(*) FROM vitals") == 0
    finally:
        store.close()


def _rec(i: int, form: str, **data: Any) -> Record:
    return Record(
        f"ev-{i}", form, "participant:WUH01-001", data, "2026-12-07T01:00:00Z", "clin", f"ev-{i}", 1
    )


def test_the_vitals_and_dose_hooks_batches_are_checked_at_a_hub_and_refused_whole():
    """The batch hooks' own writes (`dosing._vitals_rows`, `_dose_rows`) inside a batch, as a hub's import
    makes them: a typed run written, a run holding text in a number's column refused in PostgreSQL's
    words, and a savepoint rolled back with it leaves neither rows nor triggers."""
    store = _store(CHECKED_PER_BATCH)
    try:
        typed = [_rec(1, "vitals", timepoint="pre_dose", dose=1, pulse=82, temp=36.8),
                 _rec(2, "dose", dose_number=1, kit_id="exo-0001", particles=2.0e8, volume=6)]  # fmt: skip
        with store.transaction(), store.batched_inserts():
            dosing._vitals_rows(store, typed[:1])
            dosing._dose_rows(store, typed[1:])
        assert store.execute("SELECT pulse, temp FROM vitals").fetchall() == [(82, 36.8)]
        assert store.execute("SELECT kit_id, particles, volume_ml FROM doses").fetchall() == [
            ("EXO-0001", 2.0e8, 6.0)
        ]
        with store.transaction():
            with pytest.raises(ColumnTypeError, match='for type bigint: "two"'), store.transaction():
                dosing._dose_rows(store, [_rec(3, "dose", dose_number="two", kit_id="EXO-0002")])
            with (
                pytest.raises(ColumnTypeError, match='for type double precision: "warm"'),
                store.transaction(),
            ):
                dosing._vitals_rows(store, [_rec(4, "vitals", pulse=80), _rec(5, "vitals", temp="warm")])
        assert (
            store.scalar("SELECT count(*) FROM doses") == 1
            and store.scalar("SELECT count(*) FROM vitals") == 1
        )
        left = [r[0] for r in store.execute("SELECT name FROM sqlite_temp_master WHERE type = 'trigger'")]
        assert [
            t for t in left if "vitals" in t or "doses" in t
        ] == [] and "wardcrf_types_participants_update" in left
    finally:
        store.close()


_UPDATE = re.compile(r"\bUPDATE\s+(?:OR\s+\w+\s+)?\"?(\w+)\"?\s+SET\b", re.IGNORECASE)
_UPSERT = re.compile(
    r"INTO\s+\"?(\w+)\"?[^;]*?ON\s+CONFLICT\s*\([^)]*\)\s*DO\s+UPDATE\s+SET\s+([^\"]*)",
    re.IGNORECASE | re.DOTALL,
)


def test_the_tables_without_an_update_trigger_are_never_updated_in_place_by_the_code():
    """`sync.hub.CHECKED_PER_BATCH` keeps no UPDATE trigger: an UPDATE of one of its tables, or an upsert
    setting a value other than the row's own, would still be refused alike (it runs with the triggers made
    for it) but would make and drop them each time. Every such statement in wardcrf's sources names a table
    of `UPDATED_IN_PLACE` instead (or one the import does not check)."""
    roots = {Path(m.__file__).parent for m in (wardcrf, wardcrf_sync, wardcrf_photos)}  # type: ignore[arg-type]
    found: dict[str, set[str]] = {}
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        text = path.read_text("utf-8")
        for m in _UPDATE.finditer(text):
            found.setdefault(m.group(1).lower(), set()).add(path.name)
        for m in _UPSERT.finditer(text):
            sets = m.group(2).split('"')[0]
            # what it sets, as far as the literal reads (a SET spelled elsewhere is not the row's own)
            if not sets.strip() or any("excluded." not in a for a in sets.split(",") if "=" in a):
                found.setdefault(m.group(1).lower(), set()).add(path.name)
    assert {"participants", "sync_devices", "cc_excursions"} <= set(found)  # the scan finds them
    assert {t: sorted(f) for t, f in found.items() if t in CHECKED_PER_BATCH} == {}
    assert set(projections.PROJECTION_TABLES) >= UPDATED_IN_PLACE
