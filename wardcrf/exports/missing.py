"""Why a value is missing: the coded missing values of the CSV export.

A blank cell alone cannot say whether a test was not done, the question did
not apply, was not on the form at the time, or was simply not recorded. The
CSV export writes a ``<field>_missing`` column beside every protocol field,
blank when there is a value and one of these codes when there is none; the
data dictionary declares them (`CODES`).

Rules, first match wins, for a field without a value in a record:

``NASK`` not asked: the protocol version the record was captured under had
    no such field (it was added later), so nobody was asked.
``NA``   not applicable: the field's ``applies_when`` condition does not hold
    for this record (e.g. the surrogate's name when the participant consented).
``ND``   not done: a test result (a field whose CDISC name is a test code,
    ``--TESTCD=``), applicable and blank: the test was not done.
``UNK``  unknown: anything else applicable and blank — not recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..protocol import Field

CODES: dict[str, str] = {
    "NASK": "not asked: the form, as captured under this record's protocol version, had no such field",
    "NA": "not applicable: the field's applies_when condition does not hold for this record",
    "ND": "not done: a test result left blank where it applied",
    "UNK": "unknown: applicable and not recorded",
}
DECLARATION = "; ".join(f"{code}={text}" for code, text in CODES.items())


def is_blank(value: Any) -> bool:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value is None or value == "" or value == []


def code(fd: Field, data: Mapping[str, Any], asked: bool) -> str:
    """The missing-value code of a blank `fd` in a record with `data` ('' when the field has a value)."""
    if not is_blank(data.get(fd.name)):
        return ""
    if not asked:
        return "NASK"
    if fd.applies_when is not None and fd.applies_when.holds(data) is False:
        return "NA"
    if fd.cdisc and "TESTCD=" in fd.cdisc:
        return "ND"
    return "UNK"
