"""A value that does not fit its projected column's type, at a SQLCipher and a PostgreSQL hub (issue 19).

A ward validates its own records, so only a hand-made (forged, yet signed) bundle carries text where
a projection keeps an integer: here a vitals record whose pulse is "fast". The engines must treat it
alike: the bundle refused whole, in one line, nothing of it applied. The import checks a record's values
under its version's form before anything is projected (`wardcrf/record_values.py`); behind it, the
projected columns' types refuse it too (PostgreSQL's columns; the SQLCipher import's triggers).
"""

from __future__ import annotations

import pytest
from forge import append_raw
from hub_engines import ledger
from synckit import connect, make_hub, make_ward, open_
from test_hub_pg_hub import _ward_records
from test_sync_cli import run
from test_sync_roundtrip import export
from wardcrf.sync import hub

pytestmark = pytest.mark.usefixtures("hub_engine")


def _held(h) -> tuple[object, ...]:
    with ledger(h) as (_s, store):
        return (
            store.scalar("SELECT count(*) FROM events WHERE type != 'sync.bundle_refused'"),
            store.scalar("SELECT count(*) FROM sync_applied"),
            tuple(sorted(str(r[0]) for r in store.execute("SELECT pulse FROM vitals"))),
        )


def _forge(tmp_path, monkeypatch, **vitals: object) -> tuple[object, tuple[object, ...], str, int, str]:
    """A hub holding a ward's records, then the ward's bundle with one more vitals record carrying
    `vitals` (as a hand-made bundle could), imported by `wardcrf hub import`."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    files, _post = _ward_records(w, tmp_path)
    s = open_(h)
    try:
        assert [hub.import_file(s, f).outcome.status for f in files] == ["applied"] * len(files)
    finally:
        s.close()
    s = open_(w)
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")  # as if receipted
    finally:
        s.close()
    before = _held(h)
    assert before[2] == ("82", "86")
    data = {
        "timepoint": "pre_dose",
        "dose": 2,
        "time": "2026-12-08T08:45:00+08:00",
        "temp": 36.9,
        "pulse": 80,
    }
    append_raw(w, "record.submitted", {"form": "vitals", "data": {**data, **vitals}},
               subject="participant:WUH01-001", user="clin", role="clinician")  # fmt: skip
    [forged] = export(w, tmp_path / "forged")
    code, out, err = run("hub", "import", str(forged), "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert "Traceback" not in err, (code, out, err)
    return h, before, forged.name, code, err


@pytest.mark.parametrize(
    ("vitals", "says"),
    [
        ({"pulse": "fast"}, "vitals.pulse holds the text 'fast', where the field stores a whole number"),
        # A REAL column, and hostile text: quotes and SQL, 300 KB (the line quotes its first 24 characters).
        (
            {"temp": "hot'); DROP TABLE vitals; --\"" + "9" * 300_000},
            'vitals.temp holds the text "hot\'); DROP TABLE vitals", where the field stores a number',
        ),
    ],
    ids=["integer", "real-hostile"],
)
def test_a_text_where_a_number_is_projected_refuses_the_bundle_whole_on_either_engine(
    tmp_path, monkeypatch, vitals, says
):
    """Refused by the import's check of a record's values under its version's form (`record_values`),
    before any projector runs: the same line on both engines (the projections' own type check, which
    PostgreSQL's columns and the SQLCipher import's triggers make, is the next line of defence)."""
    h, before, name, code, err = _forge(tmp_path, monkeypatch, **vitals)
    assert code == 1, (code, err)
    line, *_summary = err.splitlines()
    assert line.startswith(f"refused {name}: event ") and says in line, line
    assert line.endswith("refused, nothing applied") and len(line) < 400, line
    assert _held(h) == before  # nothing of it: not its event, not its ledger row, not its vitals
    with ledger(h) as (s, _store):  # the hub's own record of the refusal, with the same reason
        (reason,) = [r[0] for r in s.store.execute("SELECT reason FROM sync_refusals")]
    assert reason == line.removeprefix("refused "), reason


def test_text_that_reads_as_a_number_is_refused_as_any_text_on_either_engine(tmp_path, monkeypatch):
    """A ward stores a number as a JSON number (`forms`): "88" is not what one writes, on either engine."""
    h, before, _name, code, err = _forge(tmp_path, monkeypatch, pulse="88", temp="37.5")
    assert code == 1 and "vitals.pulse holds the text '88'" in err, (code, err)
    assert _held(h) == before
