"""A bundle's photo and file references looked for in one scan of its lines (`sync.bundle._mentioned`).

`photo_refs` and `evidence_refs` skip their line-by-line walk only when no line holds a reference's
prefix or any extractor's marker: a reference anywhere — the last line, the first, one carried by an
extractor only — is still found, in first-seen order, and two lines never make a marker between them.
"""

from __future__ import annotations

import json

import pytest
from wardcrf.sync import bundle

from wardcrf import features

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _line(typ: str, body: dict) -> str:
    return json.dumps({"prev": "0" * 64, "body": body, "type": typ}, separators=(",", ":"), sort_keys=True)


VITALS = [_line("record.submitted", {"form": "vitals", "data": {"pulse": 80 + i}}) for i in range(300)]


@pytest.fixture(autouse=True)
def _installed() -> None:
    features.install()


def test_no_reference_anywhere_finds_none() -> None:
    assert bundle.photo_refs(VITALS) == []
    assert bundle.evidence_refs(VITALS) == {}


@pytest.mark.parametrize("at", [0, 150, 299, 300])
def test_a_reference_anywhere_is_found(at: int) -> None:
    ref = _line("record.submitted", {"form": "consent", "data": {"pages": [f"sha256:{A}"]}})
    carried = _line("photo.imported", {"sha256": B})  # no "sha256:" prefix: its extractor finds it
    logger = _line("coldchain.logger_imported", {"sha256": C, "name": "unit1.csv"})
    lines = [*VITALS[:at], ref, carried, logger, *VITALS[at:]]
    assert bundle.photo_refs(lines) == [A, B]
    assert bundle.evidence_refs(lines) == {C: "unit1.csv"}
    assert bundle.photo_refs([*VITALS[:at], carried, *VITALS[at:]]) == [B]
    assert bundle.evidence_refs([*VITALS[:at], logger, *VITALS[at:]]) == {C: "unit1.csv"}


def test_a_marker_split_over_two_lines_is_no_mention() -> None:
    lines = ['{"x":"sha2', "56:" + A + '"}']
    assert bundle._mentioned(lines, ["sha256:"]) is False
    assert bundle.photo_refs(lines) == []
    assert (
        bundle._mentioned(["ab", "cd"], ["b\nc"]) is True
    )  # a needle with a newline: looked for line by line
    assert bundle._mentioned(["ab", "cd"], ["zz", "cd"]) is True


@pytest.mark.parametrize("scan_bytes", [1, 50, 120, 4096])
def test_a_reference_in_any_run_of_the_scan_is_found(monkeypatch: pytest.MonkeyPatch, scan_bytes: int) -> None:
    """The scan joins a run of lines at a time (never the whole events.jsonl: verify reads it as a stream,
    `test_bundle_events_stream`); a reference in any run, first, last or on a run's edge, is found, and a
    marker split over the two lines at a run's edge is not one."""
    monkeypatch.setattr(bundle, "_SCAN_BYTES", scan_bytes)
    ref = _line("record.submitted", {"form": "consent", "data": {"pages": [f"sha256:{A}"]}})
    few = VITALS[:40]
    for at in range(len(few) + 1):
        assert bundle.photo_refs([*few[:at], ref, *few[at:]]) == [A], at
    assert bundle.photo_refs(few) == []
    assert bundle._mentioned(["x" * 49 + "sha2", "56:" + A], ["sha256:"]) is False
