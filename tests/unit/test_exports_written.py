"""The `--json` summary of what an export or report wrote: one shape for all (exports/written.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wardcrf.exports import written
from wardcrf.exports.csv_export import CsvExport
from wardcrf.exports.odm import OdmExport
from wardcrf.reports.audit_pdf import AuditPdf


def test_an_odm_export_summary_is_its_path_as_out_then_its_counts_in_order() -> None:
    got = OdmExport(Path("/x/site.xml"), subjects=2, records=7, signatures=3, audit_records=12).as_json()
    assert list(got.items()) == [
        ("out", "/x/site.xml"),
        ("subjects", 2),
        ("records", 7),
        ("signatures", 3),
        ("audit_records", 12),
    ]


def test_an_audit_pdf_summary_keeps_its_subjects_list_and_font() -> None:
    got = AuditPdf(
        Path("a.pdf"), ["WUH01-001"], records=4, photos=1, signatures=2, font="DejaVuSans"
    ).as_json()
    assert list(got) == ["out", "subjects", "records", "photos", "signatures", "font"]
    assert got["out"] == "a.pdf" and got["subjects"] == ["WUH01-001"] and got["font"] == "DejaVuSans"


def test_a_csv_export_summary_names_its_folder_out() -> None:
    got = CsvExport(Path("out"), {"records.csv": 3}, uncoded=1).as_json()
    assert got == {"out": "out", "files": {"records.csv": 3}, "uncoded": 1}
    assert json.loads(json.dumps(got)) == got  # printable as --json


def test_a_result_that_is_not_a_dataclass_is_refused() -> None:
    with pytest.raises(TypeError):
        written.summary(object())
