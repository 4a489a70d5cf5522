"""A synced record's values are its fields' stored representations, checked before anything is projected.

Found by the fuzz test (test_sync_fuzz, in one order of files): a genuine bundle whose consent carried
`false` for its time was applied as far as the ward queue, which failed on it: "an unexpected ValueError
... a bug the hub's checks should have caught". A key holder can write such a record on purpose
(`forge.append_raw`): the hub refuses the bundle whole, naming the field, what it holds and what the
field stores, at a SQLCipher and at a PostgreSQL hub; a record as the services store it is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from forge import append_raw
from hub_engines import ledger
from synckit import connect, make_hub, make_ward
from test_sync_roundtrip import export, hub_import

from wardcrf import protocol, record_values
from wardcrf.errors import Refused


def _form(name: str) -> protocol.Form:
    return protocol.default_protocol().forms[name]


# -- the representation, field type by field type ------------------------------------------------


@pytest.mark.parametrize(
    ("form", "values"),
    [
        ("vitals", {"temp": {"value": 37.2, "unit": "C"}, "pulse": 88, "time": "2020-03-17T09:05:00+08:00"}),
        ("vitals", {"temp": 37, "timepoint": "pre_dose", "dose": 2}),
        ("vitals", {"temp": None, "time": ""}),  # blank: the rules decide
        ("consent", {"time": "2020-03-16T08:00:00+08:00"}),
    ],
)
def test_values_as_the_services_store_them_are_accepted(form: str, values: dict[str, Any]) -> None:
    assert record_values.problem(_form(form), values) is None


@pytest.mark.parametrize(
    ("form", "values", "said"),
    [
        (
            "consent",
            {"time": False},
            "consent.time holds true/false, where the field stores an ISO 8601 date and time",
        ),
        ("consent", {"time": "0"}, "consent.time holds the text '0'"),
        ("vitals", {"temp": "fast"}, "vitals.temp holds the text 'fast', where the field stores a number"),
        ("vitals", {"temp": {"value": True, "unit": "C"}}, "vitals.temp holds an object"),
        ("vitals", {"temp": float("nan")}, "vitals.temp holds a number, where the field stores a number"),
        ("vitals", {"dose": 1.5}, "vitals.dose holds a number, where the field stores a whole number"),
        (
            "vitals",
            {"timepoint": ["pre_dose"]},
            "vitals.timepoint holds a list, where the field stores a choice",
        ),
        ("vitals", {"timepoint": True}, "vitals.timepoint holds true/false"),
        ("vitals", {"time": "\x1b[2J" + "9" * 300}, "vitals.time holds the text '\\x1b[2J9999"),
    ],
)
def test_values_that_are_not_the_fields_representation_are_named(
    form: str, values: dict[str, Any], said: str
) -> None:
    found = record_values.problem(_form(form), values)
    assert found is not None and said in found, found
    assert "\x1b" not in found and len(found) < 300


# -- at the hub, on both engines -------------------------------------------------------------------


@pytest.mark.usefixtures("hub_engine")
@pytest.mark.parametrize(("value", "applied"), [(False, False), ("2020-03-16T08:00:00+08:00", True)])
def test_a_forged_consent_time_is_refused_whole_and_a_stored_one_applied(
    tmp_path: Path, value: Any, applied: bool
) -> None:
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    append_raw(
        w,
        "record.submitted",
        {"form": "consent", "data": {"time": value}, "creates_participant": True},
        subject="participant:WUH01-001",
        user="admin",
        role="clinician",
    )
    files = export(w, tmp_path / "out")
    if applied:
        assert all(hub_import(h, f).outcome.ok for f in files)
    else:
        with pytest.raises(Refused) as refused:
            for f in files:
                hub_import(h, f)
        line = str(refused.value)
        assert "consent.time holds true/false" in line and "nothing applied" in line, line
    with ledger(h) as (_s, store):
        n = store.scalar("SELECT count(*) FROM records WHERE form = 'consent'")
    assert int(n) == (1 if applied else 0)
