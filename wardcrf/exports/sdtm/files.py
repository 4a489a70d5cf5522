"""Writing one dataset: its columns, SAS XPORT v5 (.xpt), Dataset-JSON 1.1 (.json) and a CSV copy.

Columns: every required and expected variable of the domain (even when
empty, as SDTMIG asks), and the permissible ones that hold a value, in the
SDTMIG order of `metadata`. The three files of a dataset hold the same
values (after `conform`), so define.xml describes all of them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ... import __version__, cdisc
from .metadata import Domain, Var

# Numeric variables that are whole numbers by definition (the rest are decimals).
_INTEGER_SUFFIXES = ("SEQ", "DY", "CD", "NUM", "ORD")
_INTEGER_NAMES = {"AGE", "TAETORD", "VISITDY", "TSSEQ", "VSTPTNUM", "IDVARVAL"}


def is_integer(var: Var) -> bool:
    if var.type != "Num" or var.name == "VISITNUM":
        return False
    return var.name in _INTEGER_NAMES or var.name.endswith(_INTEGER_SUFFIXES)


def columns_for(meta: Domain, rows: Sequence[dict[str, Any]]) -> list[Var]:
    out = []
    for v in meta.variables:
        # EPOCH is kept even when null (prior medications): every subject dataset carries it.
        if (
            v.core in ("Req", "Exp")
            or v.name == "EPOCH"
            or any(r.get(v.name) not in (None, "") for r in rows)
        ):
            out.append(v)
    return out


def cell(var: Var, value: Any) -> Any:
    """A value as the dataset holds it: numbers for Num (None when missing), text for Char."""
    if var.type == "Num":
        if value in (None, ""):
            return None
        f = float(value)
        if math.isnan(f):
            return None
        return int(f) if is_integer(var) else f
    return "" if value is None else str(value)


def text_length(var: Var, rows: Sequence[dict[str, Any]]) -> int:
    """A character variable's length: its longest value (at least 1), as FDA asks."""
    return max([1, *(len(str(r.get(var.name) or "")) for r in rows)])


def write_csv(path: Path, cols: list[Var], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([v.name for v in cols])
        for r in rows:
            w.writerow([_csv_text(cell(v, r.get(v.name))) for v in cols])


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def write_xpt(path: Path, meta: Domain, cols: list[Var], rows: Sequence[dict[str, Any]]) -> None:
    """SAS XPORT version 5 through pyreadstat (names <= 8, labels <= 40, ASCII, text <= 200)."""
    import pandas as pd
    import pyreadstat

    data: dict[str, Any] = {}
    for v in cols:
        values = [cell(v, r.get(v.name)) for r in rows]
        if v.type == "Num":
            data[v.name] = pd.Series([math.nan if x is None else float(x) for x in values], dtype="float64")
        else:
            data[v.name] = pd.Series(values, dtype="object")
    df = pd.DataFrame(data, columns=[v.name for v in cols])
    pyreadstat.write_xport(
        df,
        str(path),
        file_label=meta.label[:40],
        column_labels={v.name: v.label for v in cols},
        table_name=meta.name,
        file_format_version=5,
    )


def dataset_json(
    meta: Domain,
    cols: list[Var],
    rows: Sequence[dict[str, Any]],
    *,
    study: str,
    mdv: str,
    created: datetime,
    modified: str,
    originator: str,
) -> dict[str, Any]:
    """One dataset as Dataset-JSON 1.1 (validated in the tests against CDISC's schema)."""
    keys = {k: i for i, k in enumerate(meta.keys, 1)}
    columns = []
    for v in cols:
        col: dict[str, Any] = {
            "itemOID": item_oid(meta.name, v.name),
            "name": v.name,
            "label": v.label,
            "dataType": "string" if v.type == "Char" else ("integer" if is_integer(v) else "double"),
        }
        if v.type == "Char":
            col["length"] = text_length(v, rows)
        if v.name in keys:
            col["keySequence"] = keys[v.name]
        columns.append(col)
    return {
        "datasetJSONCreationDateTime": created.isoformat(timespec="seconds"),
        "datasetJSONVersion": cdisc.DATASET_JSON_VERSION,
        "fileOID": f"{study}.SDTM.{meta.name}",
        "dbLastModifiedDateTime": modified,
        "originator": originator,
        "sourceSystem": {"name": "wardcrf", "version": __version__},
        "studyOID": study,
        "metaDataVersionOID": mdv,
        "metaDataRef": "define.xml",
        "itemGroupOID": group_oid(meta.name),
        "records": len(rows),
        "name": meta.name,
        "label": meta.label,
        "columns": columns,
        "rows": [[cell(v, r.get(v.name)) for v in cols] for r in rows],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


def group_oid(name: str) -> str:
    return f"IG.{name}"


def item_oid(dataset: str, var: str) -> str:
    return f"IT.{dataset}.{var}"
