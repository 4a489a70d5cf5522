"""A plain (unencrypted) SQLite copy of the trial data, for analysis tools.

datasette, pandas and R read SQLite, not SQLCipher. This copy leaves the
encryption behind, so it is guarded three ways: its own permission
(``export.plaintext``: admin, coordinator), an explicit confirmation the
service refuses to run without, and an ``export.plaintext`` event in the
audit trail naming who made it, where it went, what it holds and the
SHA-256 of the file, so an auditor can tell which copy is which.

What is copied: the event log and every projection table (the data and its
audit trail). What is not: the device's private keys (`device_keys`), which
would let anyone holding the copy sign sync bundles as this laptop, and the
photographs themselves (`photo_blobs`, `photo_previews`): signed consent
pages carry names and signatures, and an analysis needs none of them (the
photo metadata and every record's SHA-256 references stay); nor the drafts
of forms not saved yet (`wardcrf.drafts`: never data, never leave the
laptop); nor the terms of the licensed coding dictionaries (`coding_meddra`,
`coding_whodrug`), which the licence keeps with the subscriber (each coding's
codes and names stay, in `codings`). Triggers are copied too, so the copy's
event log stays append-only.

For analysis, the copy also holds one flat, typed table per form, named
after the form (``labs``, ``coldchain_handover``): the same
columns as the CSV export's form file (`flat`), numbers as REAL or INTEGER,
booleans 1/0, blanks NULL with the reason in ``<field>_missing``, so
``SELECT crp FROM labs`` works in datasette, pandas and R. A projection table
with a form's name (``vitals``) is kept as ``projection_<name>``; a form named
like a foundation table (``events``) gets ``form_<name>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..store import Store
from . import flat
from .dataset import Dataset
from .progress import NullProgress, Progress

if TYPE_CHECKING:
    from ..site import Session

EXCLUDED_TABLES = frozenset(
    {"device_keys", "photo_blobs", "photo_previews", "drafts", "coding_meddra", "coding_whodrug"}
)


@dataclass
class PlainExport:
    path: Path
    tables: dict[str, int]
    sha256: str
    event_id: str

    def as_json(self) -> dict[str, Any]:
        return {"out": str(self.path), "tables": self.tables, "sha256": self.sha256, "event": self.event_id}


def export_sqlite(
    session: Session,
    out: Path,
    *,
    confirmed: bool,
    progress: Progress | None = None,
    reading: Session | None = None,
) -> PlainExport:
    """Write the plain copy and record it; refuses unless `confirmed`.

    `reading`: the same sign-in over the database copied, when it is not the session's file (a PostgreSQL
    hub read whole as one SQLCipher hub's file, `cli.common.whole_hub`); the export is recorded through
    `session`, in the site's own log.
    """
    session.require("export.plaintext", what="export an unencrypted copy of the data")
    if not confirmed:
        raise UsageError(
            "an unencrypted copy leaves the database encryption behind: confirm with --yes "
            "(or answer the prompt) and keep the file on an encrypted disk"
        )
    progress = progress or NullProgress()
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} already exists; choose a new file name (an export never overwrites)")
    if not out.parent.is_dir():
        raise UsageError(f"directory {out.parent} does not exist")
    src = (reading or session).store
    Dataset(src).require_versions()  # its form tables are typed by each record's own version
    tables = [
        (name, sql)
        for name, sql in src.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        if name not in EXCLUDED_TABLES
    ]
    extras = [
        sql
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
            " AND tbl_name NOT IN ({})".format(",".join("?" * len(EXCLUDED_TABLES))),
            tuple(EXCLUDED_TABLES),
        )
    ]
    counts: dict[str, int] = {}
    progress.start("tables", len(tables))
    tmp = out.with_name(out.name + ".part")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    dst = Store(tmp, None)
    try:
        with dst.transaction():
            for name, sql in tables:
                dst.execute(sql)
                cols = [r[1] for r in src.execute(f'PRAGMA table_info("{name}")')]
                marks = ",".join("?" * len(cols))
                col_list = ",".join(f'"{c}"' for c in cols)
                cur = src.execute(f'SELECT {col_list} FROM "{name}"')
                n = 0
                while batch := cur.fetchmany(5000):
                    dst.conn.executemany(f'INSERT INTO "{name}" ({col_list}) VALUES ({marks})', batch)
                    n += len(batch)
                counts[name] = n
                progress.advance(1)
            for sql in extras:
                dst.execute(sql)
            counts.update(write_form_tables(Dataset(src), dst, progress))
        dst.execute("PRAGMA journal_mode = DELETE")
    finally:
        dst.close()
    digest = _sha256(tmp)
    try:
        event = session.append(
            type="export.plaintext",
            subject=f"site:{session.ctx.site}",
            body={"file": out.name, "sha256": digest, "tables": counts, "excluded": sorted(EXCLUDED_TABLES)},
        ).event
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return PlainExport(out, counts, digest, event.id)


def form_table_name(form: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", form.lower())


def write_form_tables(ds: Dataset, dst: Store, progress: Progress | None = None) -> dict[str, int]:
    """One typed table per form (`Dataset.forms_exported`); returns rows per table written (and renames made)."""
    from ..projections import PROJECTION_TABLES

    progress = progress or NullProgress()
    present = {r[0] for r in dst.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    forms = ds.forms_exported()
    asked = flat.Asked(ds)
    progress.start("form tables", len(forms))
    counts: dict[str, int] = {}
    for form in forms:
        name = form_table_name(form)
        if name in present:
            if name in PROJECTION_TABLES:
                dst.execute(f'ALTER TABLE "{name}" RENAME TO "projection_{name}"')
                present.add(f"projection_{name}")
                counts[f"projection_{name}"] = counts.pop(name, 0)
            else:
                name = f"form_{name}"
        cols = flat.form_columns(ds, form)
        cols += flat.undeclared(ds, form, cols)
        defs = ['"record_id" TEXT PRIMARY KEY'] + [
            f'"{c}" {"INTEGER" if c == "versions" else "TEXT"}' for c in flat.RECORD_COLUMNS[1:]
        ]
        types = [c.sql_type for c in cols]
        defs += [f'"{c.name}" {t}' for c, t in zip(cols, types, strict=True)]
        dst.execute(f'CREATE TABLE "{name}" ({", ".join(defs)})')
        marks = ",".join("?" * (len(flat.RECORD_COLUMNS) + len(cols)))
        batch: list[list[Any]] = []
        n = 0
        convert = [flat.sql_converter(c) for c in cols]
        for rec in ds.records(form):
            fields_asked = asked(rec)
            data = rec.data
            row = flat.provenance(rec)
            row[1:] = [v if v != "" else None for v in row[1:]]
            batch.append(row + [f(data, fields_asked) for f in convert])
            if len(batch) >= 2000:
                dst.conn.executemany(f'INSERT INTO "{name}" VALUES ({marks})', batch)
                n += len(batch)
                batch = []
        dst.conn.executemany(f'INSERT INTO "{name}" VALUES ({marks})', batch)
        counts[name] = n + len(batch)
        present.add(name)
        progress.advance(1)
    return counts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
