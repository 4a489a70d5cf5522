"""CSV export: one long-format file per form, a data dictionary, the audit trail.

Layout of ``DIR``::

    forms/<form>.csv        one row per record: provenance, then each field
                            (and `<field>_unit` for fields with a unit)
    data_dictionary.csv     every field of every loaded protocol version
    audit_trail.csv         every event: who, when, what, old -> new, reason
    SHA256SUMS              `sha256sum -c SHA256SUMS` checks every file

Values are the stored codes and numbers (never translated labels), UTF-8
with a byte-order mark so spreadsheet programs read Chinese text correctly.
Times are UTC ISO 8601 as recorded; `*_local` columns give the ward's time.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import eventlog
from ..clock import parse_iso, zone
from ..errors import UsageError
from ..protocol import tr
from .dataset import Dataset, participant_of, unit_of, value_text
from .progress import NullProgress, Progress

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
DICTIONARY_COLUMNS = [
    "protocol_id",
    "protocol_version",
    "form",
    "form_label",
    "field",
    "label",
    "label_zh",
    "type",
    "unit",
    "required",
    "computed",
    "hard_min",
    "hard_max",
    "soft_min",
    "soft_max",
    "choices",
    "multiple",
    "cdisc",
]
AUDIT_COLUMNS = [
    "event_id",
    "when_utc",
    "when_local",
    "user",
    "full_name",
    "role",
    "site",
    "device",
    "event_type",
    "subject",
    "participant",
    "record",
    "form",
    "field",
    "old_value",
    "new_value",
    "reason",
    "event_hash",
]
_LONG = 200  # body values longer than this are summarised by their hash in the audit trail


@dataclass
class CsvExport:
    out_dir: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> data rows

    def as_json(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "files": self.files}


def prepare_dir(out: Path) -> Path:
    """An empty (or new) directory: never mix a fresh export with an old one."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory; choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _writer(path: Path) -> tuple[Any, Any]:
    fh = path.open("w", encoding="utf-8-sig", newline="")
    return fh, csv.writer(fh)


def export_csv(ds: Dataset, out: Path, progress: Progress | None = None) -> CsvExport:
    progress = progress or NullProgress()
    out = prepare_dir(out)
    result = CsvExport(out)
    (out / "forms").mkdir()
    forms = ds.forms_present()
    progress.start("records", ds.count_records())
    for form in forms:
        fields = ds.form_fields(form)
        header = list(RECORD_COLUMNS)
        for fd in fields:
            # A field named like a provenance column keeps both, the field's prefixed by the form.
            name = fd.name if fd.name not in RECORD_COLUMNS else f"{form}.{fd.name}"
            header.append(name)
            if fd.unit:
                header.append(f"{name}_unit")
        extra: list[str] = []
        path = out / "forms" / f"{form}.csv"
        fh, w = _writer(path)
        n = 0
        with fh:
            w.writerow(header)
            for rec in ds.records(form):
                row = [
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
                for fd in fields:
                    v = rec.data.get(fd.name)
                    row.append(value_text(v))
                    if fd.unit:
                        row.append(unit_of(v, fd) if v is not None else "")
                unknown = [k for k in rec.data if k not in {f.name for f in fields}]
                extra.extend(k for k in unknown if k not in extra)
                w.writerow(row)
                n += 1
                if n % 500 == 0:
                    progress.advance(500)
            progress.advance(n % 500)
        if extra:
            # Fields no loaded protocol defines (a record from a newer ward version): never dropped.
            _append_columns(path, extra, ds, form)
        result.files[f"forms/{form}.csv"] = n
    result.files["data_dictionary.csv"] = write_dictionary(ds, out / "data_dictionary.csv")
    result.files["audit_trail.csv"] = write_audit_trail(ds, out / "audit_trail.csv", progress)
    write_checksums(out, list(result.files))
    return result


def _append_columns(path: Path, extra: list[str], ds: Dataset, form: str) -> None:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    by_id = {r.event_id: r for r in ds.records(form)}
    rows[0].extend(extra)
    for row in rows[1:]:
        rec = by_id[row[0]]
        row.extend(value_text(rec.data.get(k)) for k in extra)
    fh2, w = _writer(path)
    with fh2:
        w.writerows(rows)


def write_dictionary(ds: Dataset, path: Path) -> int:
    fh, w = _writer(path)
    n = 0
    with fh:
        w.writerow(DICTIONARY_COLUMNS)
        for proto in ds.protocol_versions:
            for form in proto.forms.values():
                for fd in form.fields.values():
                    choices = "; ".join(f"{c.code}={tr(c.label)}" for c in fd.choices)
                    w.writerow(
                        [
                            proto.id,
                            proto.version,
                            form.name,
                            tr(form.label),
                            fd.name,
                            tr(fd.label),
                            fd.label.get("zh", ""),
                            fd.type,
                            fd.unit or "",
                            _yn(fd.required),
                            _yn(fd.computed),
                            _num(fd.hard, 0),
                            _num(fd.hard, 1),
                            _num(fd.soft, 0),
                            _num(fd.soft, 1),
                            choices,
                            _yn(fd.multiple),
                            fd.cdisc or "",
                        ]
                    )
                    n += 1
    return n


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _num(r: tuple[float, float] | None, i: int) -> str:
    return "" if r is None else value_text(float(r[i]))


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _LONG:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
        return f"<{len(value)} characters, sha256:{digest}>"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    return value


def audit_rows(ds: Dataset, where: str = "", params: Any = ()) -> Any:
    """The audit trail as rows (dicts with `AUDIT_COLUMNS`), one per changed field or event."""
    for e in eventlog.iter_events(ds.store, where, params):
        local = parse_iso(e.ts).astimezone(zone(e.zone)).isoformat(timespec="seconds")
        base = {
            "event_id": e.id,
            "when_utc": e.ts,
            "when_local": local,
            "user": e.user or "",
            "full_name": ds.full_name(e.user),
            "role": e.role or "",
            "site": e.site,
            "device": e.device,
            "event_type": e.type,
            "subject": e.subject or "",
            "participant": participant_of(e.subject) or "",
            "record": "",
            "form": "",
            "field": "",
            "old_value": "",
            "new_value": "",
            "reason": e.reason or "",
            "event_hash": e.hash,
        }
        if e.type == "record.submitted":
            data = e.body.get("data") or {}
            if not data:
                yield {**base, "record": e.id, "form": e.body.get("form", "")}
            for name, v in data.items():
                yield {
                    **base,
                    "record": e.id,
                    "form": e.body.get("form", ""),
                    "field": name,
                    "new_value": _cell(v),
                }
        elif e.type == "record.amended":
            for name, ch in (e.body.get("changes") or {}).items():
                yield {
                    **base,
                    "record": e.amends or "",
                    "form": e.body.get("form", ""),
                    "field": name,
                    "old_value": _cell(ch.get("old")),
                    "new_value": _cell(ch.get("new")),
                }
        elif e.type == "signature.applied":
            b = e.body
            yield {
                **base,
                "record": b.get("target", ""),
                "field": f"signature ({b.get('meaning', '')})",
                "new_value": f"{b.get('full_name', '')} signed sha256:{b.get('signed_hash', '')}",
            }
        else:
            body = _short(e.body)
            yield {
                **base,
                "record": e.amends or "",
                "new_value": json.dumps(body, ensure_ascii=False, sort_keys=True) if body else "",
            }


def _cell(v: Any) -> str:
    text = value_text(v)
    if isinstance(v, dict) and "value" in v and v.get("unit"):
        text = f"{text} {v['unit']}"
    return text


def write_audit_trail(ds: Dataset, path: Path, progress: Progress | None = None) -> int:
    progress = progress or NullProgress()
    progress.start("audit trail", eventlog.count(ds.store))
    fh, w = _writer(path)
    n = 0
    last_event = None
    done = 0
    with fh:
        w.writerow(AUDIT_COLUMNS)
        for row in audit_rows(ds):
            w.writerow([row[c] for c in AUDIT_COLUMNS])
            n += 1
            if row["event_id"] != last_event:
                last_event = row["event_id"]
                done += 1
                if done % 1000 == 0:
                    progress.advance(1000)
        progress.advance(done % 1000)
    return n


def write_checksums(out: Path, files: list[str]) -> None:
    """`SHA256SUMS` in the format `sha256sum -c` reads, so anyone can check the export."""
    lines = []
    for rel in sorted(files):
        h = hashlib.sha256()
        with (out / rel).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        lines.append(f"{h.hexdigest()}  {rel}\n")
    (out / "SHA256SUMS").write_text("".join(lines), encoding="ascii")
