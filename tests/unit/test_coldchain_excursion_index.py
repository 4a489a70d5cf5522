"""A cold-chain record's excursions are found by an index, on both engines (schema.sql 0590, hub_pg.sql 0015).

Every manual reading and every receipt (and each correction of one) deletes the excursions its record
raised before writing them again. Without an index on `source_event` each of those statements read every
excursion of the site: a `db rebuild` or a hub import paid a pass over the excursions per reading.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from wardcrf.coldchain import projections as coldchain_projections
from wardcrf.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _deletes() -> list[str]:
    """The projector's own statements, as its source spells them: the test follows the code."""
    source = Path(coldchain_projections.__file__).read_text()
    found = sorted(set(re.findall(r'"(DELETE FROM cc_excursions WHERE [^"]*)"', source)))
    assert found, "the cold-chain projector no longer deletes a record's excursions by a statement found here"
    return found


def _plan(st: Store, sql: str) -> str:
    return " | ".join(str(r[3]) for r in st.execute("EXPLAIN QUERY PLAN " + sql, ("event-1",)).fetchall())


@pytest.fixture
def store(tmp_path: Path):
    st = Store(tmp_path / "s.db", os.urandom(32))
    st.migrate()
    yield st
    st.close()


def test_each_delete_of_a_records_excursions_uses_the_source_index(store: Store) -> None:
    for sql in _deletes():
        plan = _plan(store, sql)
        assert "cc_excursions_source" in plan and "SCAN" not in plan, (sql, plan)


def test_without_the_index_the_same_delete_reads_every_excursion(store: Store) -> None:
    """The refusal side: the check above tells an indexed lookup from a pass over the table."""
    store.execute("DROP INDEX cc_excursions_source")
    for sql in _deletes():
        assert "SCAN cc_excursions" in _plan(store, sql)


def test_the_postgresql_hub_schema_has_the_same_index() -> None:
    text = (ROOT / "sync" / "hub_pg.sql").read_text()
    assert re.search(r"CREATE INDEX cc_excursions_source ON cc_excursions \(source_event\);", text)
