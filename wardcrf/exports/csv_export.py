"""CSV export: one long-format file per form, a data dictionary, the audit trail.

Layout of ``DIR``::

    forms/<form>.csv        one row per record: provenance, then each field,
                            `<field>_unit` for fields with a unit and
                            `<field>_missing` (why a protocol field is blank)
    coding.csv              every current MedDRA/WHODrug coding of a verbatim term
    data_dictionary.csv     every column of every file above, and this one
    audit_trail.csv         every event: who, when, what, old -> new, reason
    SHA256SUMS              `sha256sum -c SHA256SUMS` checks every file

Values are the stored codes and numbers (never translated labels), UTF-8
with a byte-order mark so spreadsheet programs read Chinese text correctly.
Times are UTC ISO 8601 as recorded; `*_local` columns give the ward's time.
A blank value is explained by its `_missing` code (`missing.CODES`:
not asked, not applicable, not done, unknown), declared in the dictionary.
Cold-chain records (``coldchain.*``) are described from the cold-chain
catalogue (`wardcrf.coldchain.dictionary`); a field no loaded protocol or
catalogue defines (a record from a newer version) is exported and described
as such, never dropped.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import parse_iso, zone
from ..errors import UsageError
from ..protocol import Field, tr
from . import missing, written
from .dataset import Dataset, participant_of, value_text
from .flat import RECORD_COLUMNS, Asked, FormColumn, cell, form_columns, provenance, undeclared
from .progress import NullProgress, Progress

__all__ = ["RECORD_COLUMNS", "export_csv", "write_dictionary"]

RECORD_COLUMN_DOCS = {
    "record_id": "the event that submitted the record (its permanent id)",
    "participant": "participant id (blank for records about a kit, lot or storage unit)",
    "subject": "what the record is about: participant:<id>, lot:<lot>, unit:<id>, ...",
    "entered_site": "site whose device entered the record",
    "entered_device": "device id that entered the record",
    "entered_at": "time of entry, UTC ISO 8601",
    "entered_by": "user name of who entered it",
    "last_changed_at": "time of the last amendment (or of entry), UTC",
    "last_changed_by": "user name of who last changed it",
    "versions": "1 + the number of amendments",
    "protocol_id": "protocol the record was captured under",
    "protocol_version": "protocol version the record was captured under",
}
DICTIONARY_COLUMNS = [
    "file",
    "column",
    "form",
    "field",
    "protocol_id",
    "protocol_version",
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
    "applies_when",
    "description",
]
DICTIONARY_DOCS = {
    "file": "file the column belongs to, relative to the export folder",
    "column": "column name in that file (blank: the row describes a file that is not a table)",
    "form": "form of a forms/ file",
    "field": "field of the form the column holds (or explains: _unit, _missing)",
    "protocol_id": "protocol defining the field (blank: defined by wardcrf)",
    "protocol_version": "protocol version defining it (one row per version that defines the field)",
    "label": "label in English",
    "label_zh": "label in Simplified Chinese",
    "type": "number, integer, text, choice, date, datetime, boolean, photo; list (';'-joined), json, code",
    "unit": "unit of measure",
    "required": "yes when the form requires a value",
    "computed": "yes when wardcrf computes the value (never typed)",
    "hard_min": "values below are refused at entry",
    "hard_max": "values above are refused at entry",
    "soft_min": "values below need a confirmation and a reason",
    "soft_max": "values above need a confirmation and a reason",
    "choices": "code=label pairs, joined by '; '",
    "multiple": "yes when several codes may be chosen (joined by ';' in the data)",
    "cdisc": "CDISC variable or VARIABLE=TESTCODE",
    "applies_when": "the condition under which the field applies (blank otherwise: 'not applicable')",
    "description": "what the column holds",
}
CODING_COLUMNS = [
    "record_id",
    "participant",
    "form",
    "field",
    "verbatim",
    "dictionary",
    "version",
    "term",
    "llt_code",
    "llt_name",
    "pt_code",
    "pt_name",
    "hlt_code",
    "hlt_name",
    "hlgt_code",
    "hlgt_name",
    "soc_code",
    "soc_name",
    "drug_code",
    "drug_name",
    "preferred_code",
    "preferred_name",
    "atc_code",
    "atc_text",
    "coded_by",
    "coded_at",
    "coding_event",
]
CODING_DOCS = {
    "record_id": "the coded record (forms/<form>.csv record_id)",
    "participant": "participant id",
    "form": "form of the coded record",
    "field": "the coded field",
    "verbatim": "the verbatim term the coding was made for (the field's current value)",
    "dictionary": "MedDRA or WHODrug",
    "version": "dictionary version used",
    "term": "the standard term: MedDRA preferred term, WHODrug preferred name",
    "llt_code": "MedDRA lowest level term code",
    "llt_name": "MedDRA lowest level term",
    "pt_code": "MedDRA preferred term code",
    "pt_name": "MedDRA preferred term (SDTM --DECOD)",
    "hlt_code": "MedDRA high level term code (primary path)",
    "hlt_name": "MedDRA high level term",
    "hlgt_code": "MedDRA high level group term code (primary path)",
    "hlgt_name": "MedDRA high level group term",
    "soc_code": "MedDRA primary system organ class code",
    "soc_name": "MedDRA primary system organ class (SDTM --BODSYS)",
    "drug_code": "WHODrug drug code (record number + seq 1 + seq 2)",
    "drug_name": "WHODrug drug name coded to",
    "preferred_code": "WHODrug preferred code (seq 2 = 001)",
    "preferred_name": "WHODrug preferred name (SDTM CMDECOD)",
    "atc_code": "ATC class chosen (SDTM CMCLASCD)",
    "atc_text": "ATC class text (SDTM CMCLAS)",
    "coded_by": "user name of the coder",
    "coded_at": "time of coding, UTC",
    "coding_event": "the coding.coded event",
}
AUDIT_DOCS = {
    "event_id": "event id (device-sequence)",
    "when_utc": "time of the event, UTC ISO 8601",
    "when_local": "the same time in the device's time zone",
    "user": "user name",
    "full_name": "printed name",
    "role": "role at the time",
    "site": "site of the device",
    "device": "device id",
    "event_type": "what happened (record.submitted, record.amended, signature.applied, user.added, ...)",
    "subject": "what it is about",
    "participant": "participant id when the subject is a participant",
    "record": "the record concerned",
    "form": "its form",
    "field": "the field entered or changed (one row per field); for a signature, its meaning",
    "old_value": "value before an amendment",
    "new_value": "value entered (with unit), or the event body (long texts replaced by their SHA-256)",
    "reason": "the reason given (amendments, overrides)",
    "event_hash": "SHA-256 of the event line (the hash chain)",
}
NON_TABLE_FILES = {
    "SHA256SUMS": "SHA-256 of every file, in the format `sha256sum -c SHA256SUMS` checks",
}


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
    uncoded: int = 0  # verbatim terms without a valid coding (coding.csv lacks them)

    def as_json(self) -> dict[str, Any]:
        return written.summary(self)


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
    forms = ds.forms_exported()
    progress.start("records", ds.count_records())
    layouts: dict[str, list[FormColumn]] = {}
    asked = Asked(ds)
    for form in forms:
        cols = form_columns(ds, form)
        # Fields no loaded protocol or catalogue defines (a record from a newer ward version): never dropped.
        cols += undeclared(ds, form, cols)
        layouts[form] = cols
        fh, w = _writer(out / "forms" / f"{form}.csv")
        n = 0
        with fh:
            w.writerow(list(RECORD_COLUMNS) + [c.name for c in cols])
            for rec in ds.records(form):
                fields_asked = asked(rec)
                w.writerow(provenance(rec) + [cell(c, rec, fields_asked) for c in cols])
                n += 1
                if n % 500 == 0:
                    progress.advance(500)
            progress.advance(n % 500)
        result.files[f"forms/{form}.csv"] = n
    result.files["coding.csv"] = write_coding(ds, out / "coding.csv")
    from ..coding import uncoded

    result.uncoded = len(uncoded(ds.store, ds.protocol_versions, records=ds.data))
    result.files["audit_trail.csv"] = write_audit_trail(ds, out / "audit_trail.csv", progress)
    result.files["data_dictionary.csv"] = write_dictionary(ds, out / "data_dictionary.csv", layouts)
    write_checksums(out, list(result.files))
    return result


def write_coding(ds: Dataset, path: Path) -> int:
    """coding.csv: every current coding, with each level's code and name."""
    from ..coding import CodingIndex

    fh, w = _writer(path)
    n = 0
    with fh:
        w.writerow(CODING_COLUMNS)
        for c in CodingIndex.load(ds.store).all():
            values = {
                "record_id": c.record,
                "participant": participant_of(c.subject) or "",
                "form": c.form,
                "field": c.field,
                "verbatim": c.verbatim,
                "dictionary": c.dictionary,
                "version": c.version,
                "term": c.term,
                "coded_by": c.coded_by or "",
                "coded_at": c.coded_at,
                "coding_event": c.event_id,
                **{k: value_text(v) for k, v in c.codes.items()},
            }
            w.writerow([values.get(col, "") for col in CODING_COLUMNS])
            n += 1
    return n


def _field_row(
    file: str, column: str, form: str, proto: Any, fd: Field, description: str, **over: str
) -> list[str]:
    choices = "; ".join(f"{c.code}={tr(c.label)}" for c in fd.choices)
    row = {
        "file": file,
        "column": column,
        "form": form,
        "field": fd.name,
        "protocol_id": proto.id if proto else "",
        "protocol_version": proto.version if proto else "",
        "label": tr(fd.label),
        "label_zh": fd.label.get("zh", ""),
        "type": fd.type,
        "unit": fd.unit or "",
        "required": _yn(fd.required),
        "computed": _yn(fd.computed),
        "hard_min": _num(fd.hard, 0),
        "hard_max": _num(fd.hard, 1),
        "soft_min": _num(fd.soft, 0),
        "soft_max": _num(fd.soft, 1),
        "choices": choices,
        "multiple": _yn(fd.multiple),
        "cdisc": fd.cdisc or "",
        "applies_when": fd.applies_when.describe() if fd.applies_when else "",
        "description": description,
    }
    row.update(over)
    return [row[c] for c in DICTIONARY_COLUMNS]


def _plain_row(file: str, column: str, description: str, **values: str) -> list[str]:
    row = {c: "" for c in DICTIONARY_COLUMNS}
    row.update(file=file, column=column, description=description, **values)
    return [row[c] for c in DICTIONARY_COLUMNS]


def write_dictionary(ds: Dataset, path: Path, layouts: dict[str, list[FormColumn]] | None = None) -> int:
    """data_dictionary.csv: one row per column of every file (per protocol version for protocol fields)."""
    if layouts is None:
        layouts = {}
        for f in ds.forms_exported():
            cols = form_columns(ds, f)
            layouts[f] = cols + undeclared(ds, f, cols)
    rows: list[list[str]] = []
    for form, cols in layouts.items():
        file = f"forms/{form}.csv"
        for name in RECORD_COLUMNS:
            rows.append(_plain_row(file, name, RECORD_COLUMN_DOCS[name], form=form, type="text"))
        for c in cols:
            if c.spec is not None:
                defined: list[tuple[Any, Field]] = [
                    (proto, proto.forms[form].fields[c.field])
                    for proto in ds.protocol_versions
                    if form in proto.forms and c.field in proto.forms[form].fields
                ]
                for proto, fd in defined or [(None, c.spec)]:
                    if c.kind == "value":
                        rows.append(_field_row(file, c.name, form, proto, fd, tr(fd.help) or tr(fd.label)))
                    elif c.kind == "unit":
                        rows.append(
                            _field_row(
                                file,
                                c.name,
                                form,
                                proto,
                                fd,
                                f"unit of {c.field} as recorded",
                                type="text",
                                choices="",
                                hard_min="",
                                hard_max="",
                                soft_min="",
                                soft_max="",
                            )
                        )
                    else:
                        rows.append(
                            _field_row(
                                file,
                                c.name,
                                form,
                                proto,
                                fd,
                                f"why {c.field} is blank (blank when it has a value)",
                                type="code",
                                unit="",
                                required="no",
                                computed="yes",
                                choices=missing.DECLARATION,
                                hard_min="",
                                hard_max="",
                                soft_min="",
                                soft_max="",
                                multiple="no",
                                cdisc="",
                            )
                        )
            elif c.catalogue is not None:
                cat = c.catalogue
                rows.append(
                    _plain_row(
                        file,
                        c.name,
                        cat.description,
                        form=form,
                        field=cat.name,
                        label=cat.label,
                        type=cat.type,
                        unit=cat.unit,
                        computed="yes",
                    )
                )
            else:
                rows.append(
                    _plain_row(
                        file,
                        c.name,
                        "not defined by any protocol version loaded here nor by wardcrf "
                        "(a record from a newer version): values as stored",
                        form=form,
                        field=c.field,
                        type="undeclared",
                    )
                )
    for col in CODING_COLUMNS:
        rows.append(_plain_row("coding.csv", col, CODING_DOCS[col], type="text"))
    for col in AUDIT_COLUMNS:
        rows.append(_plain_row("audit_trail.csv", col, AUDIT_DOCS[col], type="text"))
    for col in DICTIONARY_COLUMNS:
        rows.append(_plain_row("data_dictionary.csv", col, DICTIONARY_DOCS[col], type="text"))
    for name, text in NON_TABLE_FILES.items():
        rows.append(_plain_row(name, "", text))
    fh, w = _writer(path)
    with fh:
        w.writerow(DICTIONARY_COLUMNS)
        w.writerows(rows)
    return len(rows)


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
    for line in audit_lines(ds, where, params):
        yield dict(zip(AUDIT_COLUMNS, line, strict=True))


def audit_lines(ds: Dataset, where: str = "", params: Any = ()) -> Any:
    """The audit trail as lists of cells in `AUDIT_COLUMNS` order, one per changed field or event.

    `audit_trail.csv` holds one line per field of every record, most of a
    whole export's lines: each is the event's cells around the field's five,
    built as lists (no per-line dict), and an event's local time is converted
    once per distinct time and zone (a device writes many events a second).
    """
    locals_: dict[tuple[str, str], str] = {}
    for e in ds.events(where, params):
        local = locals_.get((e.ts, e.zone))
        if local is None:
            local = parse_iso(e.ts).astimezone(zone(e.zone)).isoformat(timespec="seconds")
            if len(locals_) > 10_000:
                locals_.clear()
            locals_[(e.ts, e.zone)] = local
        head = [
            e.id,
            e.ts,
            local,
            e.user or "",
            ds.full_name(e.user),
            e.role or "",
            e.site,
            e.device,
            e.type,
            e.subject or "",
            participant_of(e.subject) or "",
        ]
        tail = [e.reason or "", e.hash]
        body = e.body
        if e.type == "record.submitted":
            data = body.get("data") or {}
            form = body.get("form", "")
            if not data:
                yield [*head, e.id, form, "", "", "", *tail]
            for name, v in data.items():
                yield [*head, e.id, form, name, "", _cell(v), *tail]
        elif e.type == "record.amended":
            form = body.get("form", "")
            for name, ch in (body.get("changes") or {}).items():
                yield [*head, e.amends or "", form, name, _cell(ch.get("old")), _cell(ch.get("new")), *tail]
        elif e.type == "signature.applied":
            signed = f"{body.get('full_name', '')} signed sha256:{body.get('signed_hash', '')}"
            yield [
                *head,
                body.get("target", ""),
                "",
                f"signature ({body.get('meaning', '')})",
                "",
                signed,
                *tail,
            ]
        else:
            short = _short(body)
            value = json.dumps(short, ensure_ascii=False, sort_keys=True) if short else ""
            yield [*head, e.amends or "", "", "", "", value, *tail]


def _cell(v: Any) -> str:
    text = value_text(v)
    if isinstance(v, dict) and "value" in v and v.get("unit"):
        text = f"{text} {v['unit']}"
    return text


def write_audit_trail(ds: Dataset, path: Path, progress: Progress | None = None) -> int:
    progress = progress or NullProgress()
    progress.start("audit trail", ds.event_count())
    fh, w = _writer(path)
    n = 0
    last_event = None
    done = 0
    with fh:
        w.writerow(AUDIT_COLUMNS)
        for line in audit_lines(ds):
            w.writerow(line)
            n += 1
            if line[0] != last_event:
                last_event = line[0]
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
