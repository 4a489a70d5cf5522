"""A value that does not fit its projected column's type, at a SQLCipher and a PostgreSQL hub (issue 19).

A ward validates its own records, so only a hand-made (forged, yet signed) bundle carries text where
a projection keeps an integer: here a vitals record whose pulse is "fast". The engines must treat it
alike: the bundle refused whole, in one line, nothing of it applied. PostgreSQL does (its column's type
refuses the value, and the bundle's transaction goes with it); SQLCipher keeps the text as sent (SQLite's
column affinity), which is the difference this test pins until the import checks a record's values
against the types its projections keep (the strict xfail below flips then).
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


REFUSED = (
    ": a value in it does not fit the type its projection keeps ({}); a ward's wardcrf refuses such a value"
    " before saving it, so this bundle was not made by one; nothing applied"
)


@pytest.mark.parametrize(
    ("vitals", "says"),
    [
        ({"pulse": "fast"}, 'invalid input syntax for type bigint: "fast"'),
        # A REAL column, and hostile text: quotes and SQL, 300 KB (the line names its first 200 characters).
        (
            {"temp": "hot'); DROP TABLE vitals; --\"" + "9" * 300_000},
            ('invalid input syntax for type double precision: "hot\'); DROP TABLE vitals; --"' + "9" * 200)[
                :200
            ],
        ),
    ],
    ids=["integer", "real-hostile"],
)
def test_a_text_where_a_number_is_projected_refuses_the_bundle_whole_on_either_engine(
    tmp_path, monkeypatch, vitals, says
):
    h, before, name, code, err = _forge(tmp_path, monkeypatch, **vitals)
    assert code == 1, (code, err)
    line, *_summary = err.splitlines()
    assert line == f"refused {name}{REFUSED.format(says)}", line
    assert _held(h) == before  # nothing of it: not its event, not its ledger row, not its vitals
    with ledger(h) as (s, _store):  # the hub's own record of the refusal, with the same reason
        (reason,) = [r[0] for r in s.store.execute("SELECT reason FROM sync_refusals")]
    assert reason == f"{name}{REFUSED.format(says)}", reason


def test_text_that_reads_as_a_number_is_kept_as_the_number_on_either_engine(tmp_path, monkeypatch):
    h, before, _name, code, err = _forge(tmp_path, monkeypatch, pulse="88", temp="37.5")
    assert code == 0, (code, err)
    with ledger(h) as (_s, store):
        rows = [tuple(r) for r in store.execute("SELECT pulse, temp FROM vitals ORDER BY pulse")]
    assert rows == [(82, 36.8), (86, 37.4), (88, 37.5)] and before[0] is not None, rows
