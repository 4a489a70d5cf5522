"""The `doses` and `vitals` rows a ward's live appends write are the rows its replay and either hub write.

The dose and vitals projections are batch hooks (`workflow.dosing._dose_rows`, `_vitals_rows`): a ward's
`append` calls each with its one record at once, a synced bundle's import and `db rebuild`'s replay with
a run of records (a record amended in the same run comes twice, the later state staying). Here a ward
writes a participant's doses and vitals as its clinicians do — two doses, vitals around each, a reading
with fields left empty, a dose's kit and amount corrected, a pulse corrected twice — in three bundles,
the last holding records and their corrections together; what its live appends left in `doses` and
`vitals` must be what the ward's own replay (`db rebuild --check`) and a SQLCipher or PostgreSQL hub
importing the bundles hold, row for row.
"""

from __future__ import annotations

from typing import Any

import pytest
from hub_engines import ledger
from synckit import connect, make_hub, make_ward, open_
from test_hub_pg_hub import _ward_records
from test_hub_pg_records import _rows
from test_sync_roundtrip import export
from wardcrf.sync import hub

from wardcrf import projections

pytestmark = pytest.mark.usefixtures("hub_engine")

SUBJECT = "participant:WUH01-001"


def _more(w: Any, root: Any) -> list[Any]:
    """The participant's second dose and its vitals, appended live, then corrected in the same bundle."""
    c = open_(w, "clin")
    try:

        def record(form: str, data: dict[str, Any]) -> str:
            return c.append(
                type="record.submitted", subject=SUBJECT, body={"form": form, "data": data}
            ).event.id

        def amend(target: str, form: str, changes: dict[str, Any], reason: str) -> None:
            c.append(type="record.amended", subject=SUBJECT, amends=target, reason=reason,
                     body={"form": form, "changes": changes})  # fmt: skip

        pre = record("vitals", {"timepoint": "pre_dose", "dose": 2, "time": "2026-12-08T08:40:00+08:00",
                                "temp": 36.6, "pulse": 79, "resp": 18, "oxysat": 97, "sysbp": 121, "diabp": 74})  # fmt: skip
        dose = record("dose", {"dose_number": 2, "kit_id": "exo-0002", "lot": "hamsc-2003-01", "particles": 2.0e8,
                               "volume": 6, "start": "2026-12-08T09:00:00+08:00", "end": "2026-12-08T09:25:00+08:00"})  # fmt: skip
        post = record("vitals", {"timepoint": "post_dose", "dose": 2, "time": "2026-12-08T10:05:00+08:00",
                                 "temp": 37.1, "pulse": 90})  # fmt: skip
        amend(dose, "dose", {"kit_id": {"old": "exo-0002", "new": "EXO-0003"},
                             "volume": {"old": 6, "new": 5.5}}, "the kit's label was read wrong")  # fmt: skip
        amend(post, "vitals", {"pulse": {"old": 90, "new": 88}}, "misread the monitor")
        amend(
            post, "vitals", {"pulse": {"old": 88, "new": 89}, "resp": {"old": None, "new": 19}}, "recounted"
        )
        amend(pre, "vitals", {"temp": {"old": 36.6, "new": 36.7}}, "thermometer re-read")
    finally:
        c.close()
    return export(w, root / "r3")


def _tables(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {table: _rows(store, table) for table in ("doses", "vitals")}


def test_live_appends_replay_and_either_hub_hold_the_same_doses_and_vitals(tmp_path, hub_engine):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    files, _post = _ward_records(w, tmp_path)
    s = open_(w)
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")  # as if receipted
    finally:
        s.close()
    files += _more(w, tmp_path)
    s = open_(w)
    try:
        live = _tables(s.store)
        _n, differences = projections.check(s.store)  # `db rebuild --check`: the ward's log replayed
        assert differences == []
    finally:
        s.close()
    # What the live appends wrote: both doses (the second's kit and volume as corrected, ids keyed), the
    # vitals around both (the post-dose pulse corrected twice, its respiration added, fields left empty).
    doses = {r[0]: r for r in live["doses"]}
    assert sorted((r[2], r[3], r[6]) for r in doses.values()) == [(1, "EXO-0001", 6.0), (2, "EXO-0003", 5.5)]
    assert len(live["vitals"]) == 4
    assert (89, 19) in {(r[6], r[7]) for r in live["vitals"]} and None in {r[10] for r in live["vitals"]}
    s = open_(h)
    try:
        assert [hub.import_file(s, f).outcome.status for f in files] == ["applied"] * len(files)
    finally:
        s.close()
    with ledger(h) as (_s, store):
        assert _tables(store) == live, hub_engine
