"""What `--json` prints for a file or folder an export or report wrote.

An export's result (`odm.OdmExport`, `csv_export.CsvExport`,
`reports.audit_pdf.AuditPdf`) is a dataclass whose first field is where it
wrote and whose other fields count what it wrote. Their JSON is one shape,
owned here: the place as "out", then every count under its field's name, in
field order, so a count added to a result reaches the JSON without a second
list of names to keep in step.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def summary(result: Any) -> dict[str, Any]:
    """`result` (a dataclass: where it wrote, then its counts) as {"out": str(where), count: value, ...}."""
    where, *counts = dataclasses.fields(result)
    return {"out": str(getattr(result, where.name)), **{f.name: getattr(result, f.name) for f in counts}}
