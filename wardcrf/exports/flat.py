"""A form as a flat table: its columns (with types and where their meaning comes from) and typed values.

The CSV export writes these columns as text; the plain SQLite copy writes the
same columns as a typed table per form (``SELECT crp FROM labs``). One owner
for the layout, so the two never disagree about which columns a form has or
why a value is blank.

Columns of a form, after the provenance columns: for each protocol field (the
union over every loaded version, newest definition first) the value,
``<field>_unit`` when it has a unit, and ``<field>_missing`` (`missing.code`);
for a cold-chain form the fields of its catalogue (`coldchain.dictionary`);
then any field no protocol or catalogue defines, exactly as stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..protocol import Field
from . import missing
from .dataset import Dataset, ProvenancedRecord, number, unit_of, value_text

RECORD_COLUMNS = [
    "record_id",
    "participant",
    "subject",
    "entered_site",
    "entered_device",
    "entered_at",
    "entered_by",
    "last_changed_at",
    "last_changed_by",
    "versions",
    "protocol_id",
    "protocol_version",
]


@dataclass(frozen=True)
class FormColumn:
    """One column of a form's table and where its description comes from."""

    name: str
    field: str
    kind: str  # "value" | "unit" | "missing"
    spec: Field | None = None  # protocol field (newest definition)
    catalogue: Any = None  # cold-chain catalogue column

    @property
    def type(self) -> str:
        """The value's type: a protocol field type, a catalogue type, or 'undeclared'."""
        if self.kind != "value":
            return "text"
        if self.spec is not None:
            return self.spec.type
        if self.catalogue is not None:
            return str(self.catalogue.type)
        return "undeclared"

    @property
    def sql_type(self) -> str:
        return _SQL_TYPES.get(self.type, "TEXT") if not self._integer_codes else "INTEGER"

    @property
    def _integer_codes(self) -> bool:
        """A single choice whose codes are all whole numbers (e.g. a 0-4 score) is an INTEGER column."""
        if self.kind != "value" or self.spec is None or self.spec.type != "choice" or self.spec.multiple:
            return False
        codes = self.spec.codes
        return bool(codes) and all(isinstance(c, int) and not isinstance(c, bool) for c in codes)


_SQL_TYPES = {"integer": "INTEGER", "boolean": "INTEGER", "number": "REAL"}


def form_columns(ds: Dataset, form: str) -> list[FormColumn]:
    """The declared columns of a form, after the provenance columns (undeclared ones come from the data)."""
    fields = ds.form_fields(form)
    cols: list[FormColumn] = []
    if fields:
        for fd in fields:
            # A field named like a provenance column keeps both, the field's prefixed by the form.
            name = fd.name if fd.name not in RECORD_COLUMNS else f"{form}.{fd.name}"
            cols.append(FormColumn(name, fd.name, "value", spec=fd))
            if fd.unit:
                cols.append(FormColumn(f"{name}_unit", fd.name, "unit", spec=fd))
            cols.append(FormColumn(f"{name}_missing", fd.name, "missing", spec=fd))
        return cols
    from ..coldchain.dictionary import COLUMNS as COLDCHAIN

    catalogue = COLDCHAIN.get(form, ())
    present = _keys(ds, form) if any(c.when_present for c in catalogue) else {}
    return [
        FormColumn(c.name, c.name, "value", catalogue=c)
        for c in catalogue
        if not c.when_present or c.name in present
    ]


def _keys(ds: Dataset, form: str) -> dict[str, None]:
    """Every field name some record of the form holds, in the order first seen (records in insertion
    order). Read in Python: both engines' stores answer it alike."""
    seen: dict[str, None] = {}
    for (data,) in ds.data.execute("SELECT data FROM records WHERE form = ? ORDER BY rowid", (form,)):
        value = json.loads(data)
        if isinstance(value, dict):
            seen.update(dict.fromkeys(value))
    return seen


def undeclared(ds: Dataset, form: str, cols: list[FormColumn]) -> list[FormColumn]:
    """Fields some record of the form holds that no protocol or catalogue defines, in first-seen order."""
    known = {c.field for c in cols}
    return [FormColumn(k, k, "value") for k in _keys(ds, form) if k not in known]


class Asked:
    """Fields of a record's form in the protocol version it was captured under (None: not a protocol form).

    Remembered per (protocol, version, form): an export asks once per record.
    """

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._seen: dict[tuple[str | None, str | None, str], frozenset[str] | None] = {}

    def __call__(self, rec: ProvenancedRecord) -> frozenset[str] | None:
        key = (rec.protocol_id, rec.protocol_version, rec.form)
        if key not in self._seen:
            form = self.ds.protocol_for(rec).forms.get(rec.form)
            self._seen[key] = frozenset(form.fields) if form is not None else None
        return self._seen[key]


def provenance(rec: ProvenancedRecord) -> list[Any]:
    return [
        rec.event_id,
        rec.participant or "",
        rec.subject or "",
        rec.site,
        rec.device,
        rec.created_at,
        rec.created_by or "",
        rec.last_changed_at,
        rec.last_changed_by or "",
        rec.version,
        rec.protocol_id or "",
        rec.protocol_version or "",
    ]


def cell(col: FormColumn, rec: ProvenancedRecord, fields_asked: frozenset[str] | None) -> str:
    """A column's value as CSV text."""
    v = rec.data.get(col.field)
    if col.kind == "value":
        return value_text(v)
    if col.kind == "unit":
        return unit_of(v, col.spec) if v is not None else ""
    assert col.spec is not None
    return missing.code(col.spec, rec.data, fields_asked is None or col.field in fields_asked)


def sql_converter(col: FormColumn) -> Callable[[Mapping[str, Any], frozenset[str] | None], Any]:
    """A function giving the column's value for a typed SQL table from a record's data.

    Built once per column (an export converts every value of every record):
    numbers as REAL, whole numbers and integer-coded choices as INTEGER,
    booleans 1/0, lists joined by ';', tables as JSON text, blanks NULL.
    """
    name, spec = col.field, col.spec
    if col.kind == "unit":
        default_unit = (spec.unit if spec else None) or None

        def unit(data: Mapping[str, Any], _asked: frozenset[str] | None) -> Any:
            v = data.get(name)
            if v is None:
                return None
            if isinstance(v, dict) and "value" in v:
                return v.get("unit") or None
            return default_unit

        return unit
    if col.kind == "missing":
        assert spec is not None

        def why(data: Mapping[str, Any], fields_asked: frozenset[str] | None) -> Any:
            return missing.code(spec, data, fields_asked is None or name in fields_asked) or None

        return why
    sql = col.sql_type

    def value(data: Mapping[str, Any], _asked: frozenset[str] | None) -> Any:
        v = data.get(name)
        if v.__class__ is dict and "value" in v:
            v = v["value"]
        if v is None or v == "" or v == []:
            return None
        cls = v.__class__
        if sql == "REAL":
            if cls is float or cls is int:
                return float(v)
            n = number(v)
            return n if n is not None else value_text(v)
        if sql == "INTEGER":
            if cls is int:
                return v
            if cls is bool:
                return int(v)
            n = number(v)
            return int(n) if n is not None and n.is_integer() else value_text(v)
        if cls is str:
            return v
        if cls is dict:
            return json.dumps(v, ensure_ascii=False, sort_keys=True)
        return value_text(v)

    return value
