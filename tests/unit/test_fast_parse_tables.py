"""Lines parsed by msgspec give the same tables as lines parsed by the standard library (issue 19).

A synced or stored line shown canonical by `canonical.canonical_fields` is parsed by msgspec
(`Event.from_line`, the import's chain check), and the records projector then spells the
record's data with msgspec too (`canonical.dumps_parsed`). Held here against the old path
(the standard library's parse and `canonical.dumps`, every line): twenty wards' bundles with
hostile text and numbers in every spelling a canonical line can hold (floats Python writes
with an exponent, which msgspec would spell otherwise, negative zero, integers past 64 bits),
imported on SQLCipher and on a real PostgreSQL server, give the same rows table by table;
and `db rebuild --check` of a log imported by either path finds nothing to say.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ledgerkit
import pgserver
import pytest
from test_batched_projections import DEVICES, ENGINES
from test_hub_pg_records import HOSTILE, PROJECTED, _rows

from wardcrf import canonical, eventlog, ingest, projections
from wardcrf.devicekeys import DeviceSigner
from wardcrf.sqlstore import SqlStore


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    yield from pgserver.serve()


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


NUMBERS = [
    {"x_decimal": 37.2, "x_small_decimal": 0.0001, "x_int": 2**70, "x_neg": -12.5},  # msgspec spells alike
    {"x_big": 1e16, "x_tiny": 1e-05, "x_neg_zero": -0.0},  # Python's exponent spellings: not alike
    {"x_max": 1.7976931348623157e308, "x_min": 5e-324, "x_list": [1.5, 1e22, -0.0]},
]


def _events(store: SqlStore, step: int) -> list[eventlog.Event]:
    events: list[eventlog.Event] = []
    for i, device in enumerate(DEVICES):
        seq, prev = eventlog.head(store, device)
        steps = ledgerkit.record_steps(device, step, seq + 1)
        data = steps[0]["body"].get("data")
        if isinstance(data, dict):
            data.update(NUMBERS[i % len(NUMBERS)])
            if step == 3:
                data.update({k: v for k, v in HOSTILE.items() if k != "first_known"})
        events += ledgerkit.chain(device, seq + 1, steps, prev)
    return events


def _import(store: SqlStore) -> tuple[dict[str, list[tuple[Any, ...]]], int]:
    alike = 0
    for step in (1, 2, 3):
        events = _events(store, step)
        alike += sum(e.spelled_alike for e in events)
        with store.transaction():
            eventlog.ingest_many(store, events)
            ingest.after_ingest(store, events)
    return {table: _rows(store, table) for table in PROJECTED}, alike


def test_msgspec_and_stdlib_parsing_give_the_same_tables_on_both_engines(
    request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[tuple[str, str], dict[str, list[tuple[Any, ...]]]] = {}
    for engine in ENGINES:
        for path in ("msgspec where shown", "stdlib"):
            with monkeypatch.context() as m:
                if path == "stdlib":
                    m.setattr(canonical, "canonical_fields", lambda rest: None)
                store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
                try:
                    seen[engine, path], alike = _import(store)
                finally:
                    store.close()
            if path == "stdlib":
                assert alike == 0
            else:
                assert 0 < alike < 3 * 20 * 8  # both paths taken: lines with exponent floats fall back
    first = seen["sqlcipher", "stdlib"]
    assert any('"x_big":1e+16' in str(r) for r in first["records"])
    assert any('"x_decimal":37.2' in str(r) for r in first["records"])
    assert any("fièvre" in str(r) for r in first["adverse_events"])
    for key, tables in seen.items():
        for table in PROJECTED:
            assert tables[table] == first[table], (key, table)


@pytest.mark.parametrize("imported_by", ["msgspec where shown", "stdlib"])
def test_a_log_imported_either_way_rebuilds_to_the_same_tables_either_way(
    imported_by: str, tmp_path: Path, signer: DeviceSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ledgerkit.create(
        ledgerkit.Where("sqlcipher", path=str(tmp_path / "h.db"), key_hex="ab" * 32), signer
    )
    try:
        with monkeypatch.context() as m:
            if imported_by == "stdlib":
                m.setattr(canonical, "canonical_fields", lambda rest: None)
            _import(store)
        for replay_by in ("msgspec where shown", "stdlib"):
            with monkeypatch.context() as m:
                if replay_by == "stdlib":
                    m.setattr(canonical, "canonical_fields", lambda rest: None)
                n, diffs = projections.check(store)  # type: ignore[arg-type]
            assert n == eventlog.count(store) > 0
            assert diffs == [], (imported_by, replay_by, diffs[:3])
    finally:
        store.close()


def test_dumps_parsed_spells_what_dumps_spells_for_every_line_shown_alike() -> None:
    """Accept: a value parsed from a line shown alike encodes to the canonical bytes; refuse: a line
    holding a float msgspec spells otherwise is not shown alike (parsed by the standard library)."""
    for values in [*NUMBERS, dict(HOSTILE)]:
        line = canonical.event_line(canonical.GENESIS, {"body": {"data": values}, "id": "x"})
        event_fields = canonical.canonical_fields(line[75:])
        if event_fields is None:
            assert any(isinstance(v, float) and "e" in repr(v) for v in _leaves(values))
            continue
        data = event_fields["body"]["data"]
        assert canonical.dumps_parsed(data) == canonical.dumps(data) == canonical.dumps(values)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]
