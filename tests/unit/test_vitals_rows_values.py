"""The `vitals` rows' values are `forms.plain` of each field, whatever a record holds there.

`dosing._vitals_rows` spells `plain` out for speed (a bundle's thousands of records, nine fields
each): the number inside a stored measurement, anything else as it is — a dict without a value,
text that happens to spell "value", a boolean, a missing field (NULL).
"""

from __future__ import annotations

from typing import Any

from wardcrf.forms import plain
from wardcrf.records import Record
from wardcrf.workflow import dosing


class _Rows:
    """A store that keeps what `executemany` is given."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[list[Any]]]] = []

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        self.got.append((sql, [list(r) for r in rows]))


def _rec(i: int, subject: str | None, **data: Any) -> Record:
    return Record(f"ev-{i}", "vitals", subject, data, "2026-12-07T01:00:00Z", "clin", f"ev-{i}", 1)


ODD = [
    {"value": 37.2, "unit": "C"},
    {"value": None, "unit": "C"},
    {"unit": "C"},  # no value: kept whole, as `plain` keeps it
    "value",  # text holding the word: not indexed
    "pre_dose",
    82,
    36.5,
    True,
    None,
    [1, 2],
]


def test_each_value_is_plain_of_the_field_and_a_missing_field_is_null():
    sql, fields = dosing._vitals_projection()
    recs = []
    for i in range(len(ODD)):
        # each field a different odd value per record, so every value meets every column
        data = {f: ODD[(i + k) % len(ODD)] for k, f in enumerate(fields)}
        recs.append(_rec(i, "participant:WUH01-001", **data))
    recs.append(_rec(99, None))  # no subject, no fields
    store = _Rows()
    dosing._vitals_rows(store, recs)  # type: ignore[arg-type]
    assert [s for s, _ in store.got] == [sql]
    rows = store.got[0][1]
    expected = [
        [r.event_id, (r.subject or "").removeprefix("participant:"), *(plain(r.data.get(f)) for f in fields)]
        for r in recs
    ]
    assert rows == expected
    assert rows[-1] == ["ev-99", "", *([None] * len(fields))]
    assert {"unit": "C"} in rows[2] and "value" in rows[3] and 37.2 in rows[0]
