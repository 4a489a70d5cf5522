"""The auditor's human-readable copy (Part 11 §11.10(b)): a casebook or a kit's custody chain as PDF.

For each participant (or the kit): every record with its values and units,
whether it changed since first entry (Annex 11 §8) and every change with
who, when, old -> new and why; every e-signature with printed name, time,
meaning and whether the content changed since signing (§11.50); every photo
as a thumbnail with its SHA-256 and whether the stored original still
hashes to it; how each record reached this database (created here or the
sync bundle it arrived in); then the subject's full audit trail. The last
page states the event-chain verification result at printing time.

Layout, font and badges: `wardcrf.reports.pdf` (shared with the kit's custody
record). Values are printed as a reader says them: choices by their label,
not their code; field labels without their entry hints ("(user; default:
you)", see `protocol.Field.printed_label`); amended fields in form order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import audit, eventlog, ids, sdv
from ..clock import iso_utc, now_utc, parse_iso, zone
from ..errors import Refused, UsageError
from ..exports import written
from ..exports.dataset import Dataset, ProvenancedRecord, Signature, participant_of, value_text
from ..exports.progress import NullProgress, Progress
from ..protocol import Field, tr
from . import custody_record, evidence
from .pdf import Document


@dataclass
class AuditPdf:
    path: Path
    subjects: list[str]
    records: int
    photos: int
    signatures: int
    font: str

    def as_json(self) -> dict[str, Any]:
        return written.summary(self)


def _local(ts: str, zone_name: str) -> str:
    try:
        return parse_iso(ts).astimezone(zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S %z")
    except (ValueError, TypeError):
        return ts


class _Writer:
    def __init__(self, ds: Dataset, printed_by: str) -> None:
        self.ds = ds
        self.zone = ds.site_row["zone"]
        self.printed = iso_utc(now_utc())
        self.printed_by = printed_by
        self.photos = 0
        self.signatures = 0
        site = ds.site_row
        self.doc = Document(
            f"wardcrf audit copy - {'hub' if ds.is_hub else 'ward'} {site['site']} - "
            f"printed {self.printed} by {printed_by}"
        )
        self.pdf = self.doc.pdf
        self.t = self.doc.t
        self.font_name = self.doc.font.statement

    def line(self, text: str, size: float = 9, h: float = 4.6, *, char_wrap: bool = False) -> None:
        self.doc.line(text, size, h, char_wrap=char_wrap)

    def heading(self, text: str, size: float = 13) -> None:
        self.doc.heading(text, size)

    def table(self, rows: list[tuple[str, str]]) -> None:
        self.doc.rows(rows)

    # -- content ----------------------------------------------------------------------

    def signature_line(self, s: Signature) -> None:
        self.signatures += 1
        self.line(
            f"E-signature: {s.full_name} ({s.user}) - meaning: {s.meaning} - "
            f"{s.signed_at} UTC ({_local(s.signed_at, self.zone)}) - event {s.event_id}",
            8.5,
        )
        if s.valid:
            self.doc.badge("valid: the signed content is unchanged", alert=False)
        else:
            self.doc.badge("CHANGED SINCE SIGNED", alert=True)

    def record(self, rec: ProvenancedRecord, sigs: list[Signature]) -> None:
        ds = self.ds
        proto = ds.protocol_for(rec)
        form = proto.forms.get(rec.form)
        fields: dict[str, Field] = dict(form.fields) if form else {}
        label = tr(form.label) if form else rec.form
        self.heading(f"{label} - record {rec.event_id}", 11)
        self.line(
            f"Entered {rec.created_at} UTC ({_local(rec.created_at, self.zone)}) by "
            f"{ds.full_name(rec.created_by)} ({rec.created_by or '-'}) at site {rec.site}, "
            f"device {rec.device}; protocol {rec.protocol_id or '?'} {rec.protocol_version or '?'}",
            8.5,
        )
        e = ds.event(rec.event_id)
        if e is not None:
            self.line(f"Event hash sha256:{e.hash}", 8, char_wrap=True)
            here = ds.site_row[
                "device"
            ]  # its own events' bundles are in its file, the wards' where their data is
            self.line(
                "Reached this database: "
                + evidence.arrival(
                    ds.store if e.device == here else ds.projections, e.device, e.seq, this_device=here
                ),
                8.5,
            )
        groups = ds.amendment_events(rec.event_id)
        if groups:
            self.doc.badge(f"CHANGED SINCE FIRST ENTRY: {len(groups)} amendment(s), see below", alert=True)
        else:
            self.doc.badge("Unchanged since first entry.", alert=False)
        verification = sdv.record_status(ds.projections, rec.event_id)
        self.doc.badge(verification.summary(), alert=verification.state == sdv.CHANGED)
        rows = []
        names = list(fields) + [k for k in rec.data if k not in fields]
        order = {name: i for i, name in enumerate(names)}
        for name in names:
            if name not in rec.data:
                continue
            fd = fields.get(name)
            rows.append((printed_label(fd, name), printed_value(rec.data[name], fd)))
        if rows:
            self.table(rows)
        for group in groups:
            first = group[0]
            self.line(
                f"Amended {first.ts} UTC by {ds.full_name(first.user)} ({first.user or '-'}); "
                f"reason: {first.reason}",
                8.5,
            )
            for a in sorted(group, key=lambda a: order.get(a.field, len(order))):  # form order
                fd = fields.get(a.field)
                self.line(
                    f"    {printed_label(fd, a.field)}: {printed_value(a.old, fd) or '(blank)'} -> "
                    f"{printed_value(a.new, fd) or '(blank)'}",
                    8.5,
                )
        for s in sigs:
            self.signature_line(s)
        for name in names:
            fd = fields.get(name)
            if fd is None or fd.type != "photo":
                continue
            for ref in rec.data.get(name) or []:
                self.photo(printed_label(fd, name), str(ref))

    def photo(self, label: str, ref: str) -> None:
        check = evidence.check_photo(self.ds.projections, ref)
        self.photos += 1
        self.line(f"Photo ({label}): SHA-256 {check.sha256}", 8.5, char_wrap=True)
        self.doc.badge(check.status, alert=check.verified is False)
        if check.thumbnail:
            self.doc.image(check.thumbnail)

    def trail(self, subject: str) -> None:
        """One line per event about the subject; amendments one line per changed field."""
        self.heading("Audit trail of " + subject, 11)
        from ..exports.csv_export import audit_rows

        last = None
        for r in audit_rows(
            self.ds, "subject = ? OR amends IN (SELECT id FROM events WHERE subject = ?)", (subject, subject)
        ):
            who = f"{r['when_utc']} {r['full_name'] or r['user'] or '-'} ({r['role'] or '-'})"
            if r["event_type"] == "record.submitted":
                if r["event_id"] == last:
                    continue
                last = r["event_id"]
                self.line(f"{who}: entered {r['form']} record {r['event_id']} (values above)", 8, h=4)
                continue
            what = r["event_type"] + (
                f" {r['form']}.{r['field']}" if r["form"] else f" {r['field']}" if r["field"] else ""
            )
            change = f"{r['old_value']} -> {r['new_value']}" if r["old_value"] else r["new_value"]
            reason = f"; reason: {r['reason']}" if r["reason"] else ""
            self.line(f"{who}: {what}: {change}{reason}"[:800], 8, h=4)


def printed_label(fd: Field | None, name: str) -> str:
    return fd.printed_label() if fd is not None else name


def printed_value(value: Any, fd: Field | None) -> str:
    """A value as a reader says it: `37.3 C`; a choice by its label (the code is in the exports)."""
    if isinstance(value, dict) and "value" in value:
        return f"{value_text(value)} {value.get('unit') or ''}".strip()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fd is not None and fd.type == "choice" and value is not None:
        codes = value if isinstance(value, list) else [value]
        out = []
        for c in codes:
            ch = fd.choice(c)
            out.append(tr(ch.label) if ch else str(c))
        return ", ".join(out)
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value)
    return value_text(value)


def build(
    ds: Dataset,
    out: Path,
    *,
    printed_by: str,
    participant: str | None = None,
    kit: str | None = None,
    lot: str | None = None,
    shipment: str | None = None,
    progress: Progress | None = None,
) -> AuditPdf:
    """Write the audit copy of one participant, a kit, a lot or a shipment, or (none) every participant.

    A kit, lot or shipment gets its custody record (`reports.custody_record`):
    as PDF, or as JSON with the same content when `out` ends in ``.json``.
    """
    progress = progress or NullProgress()
    chosen = [
        flag
        for flag, v in (
            ("--participant", participant),
            ("--kit", kit),
            ("--lot", lot),
            ("--shipment", shipment),
        )
        if v
    ]
    if len(chosen) > 1:
        raise UsageError(
            f"give one of --participant, --kit, --lot or --shipment, not both {' and '.join(chosen)} "
            "(none prints every participant)"
        )
    out = Path(out)
    custody = bool(kit or lot or shipment)
    if out.suffix.lower() not in ((".pdf", ".json") if custody else (".pdf",)):
        allowed = (
            "ending in .pdf, or .json for the same custody record as data" if custody else "ending in .pdf"
        )
        raise UsageError(f"{out.name}: the audit copy is a PDF; give a file name {allowed}")
    if out.exists():
        raise UsageError(f"{out} already exists; choose a new file name (an audit copy is never overwritten)")
    if participant and not ds.participant_exists(participant):
        raise Refused(f"unknown participant {participant} (no events about participant:{participant} here)")
    kit = ids.key(kit) if kit else None  # as typed or scanned: one kit whatever the case
    record = (
        custody_record.build(ds.projections, printed_by=printed_by, kit=kit, lot=lot, shipment=shipment)
        if custody
        else None
    )
    if record is not None and out.suffix.lower() == ".json":
        return _write_json(out, record)
    kit_subject = f"kit:{kit}" if kit else None
    kit_records: list[ProvenancedRecord] = []
    if kit:
        kit_records = [
            r for r in ds.records_naming_kit(record["key"] if record else kit) if r.subject != kit_subject
        ]
    w = _Writer(ds, printed_by)
    pdf = w.pdf
    subjects: list[str] = []
    n_records = 0
    pids = [participant] if participant else ([] if custody else ds.participants())
    progress.start("participants", len(pids) or 1)
    all_sigs = ds.signatures()
    by_target: dict[str, list[Signature]] = {}
    for s in all_sigs:
        by_target.setdefault(s.target, []).append(s)
    for pid in pids:
        subject = f"participant:{pid}"
        subjects.append(subject)
        pdf.add_page()
        w.heading(f"Casebook of participant {pid}", 16)
        w.line(
            f"{'Hub' if ds.is_hub else 'Ward'} {ds.site_row['site']} - protocol {ds.active_protocol.id} "
            f"{ds.active_protocol.version} - printed {w.printed} UTC by {w.printed_by}. Times are UTC "
            f"with the ward's local time ({w.zone}) in brackets.",
            8.5,
        )
        casebook = by_target.get(subject, [])
        if casebook:
            w.heading("Casebook e-signatures", 11)
            for s in casebook:
                w.signature_line(s)
        for rec in ds.records(participant=pid):
            w.record(rec, by_target.get(rec.event_id, []))
            n_records += 1
        w.trail(subject)
        progress.advance(1)
    if record is not None:
        from .custody_pdf import CustodyPages

        subjects.append(f"{record['record']}:{record['key']}")
        pages = CustodyPages(w.doc)
        pages.record(record)
        w.photos += pages.photos
        w.signatures += pages.signatures
        n_records += len({e["event_id"] for e in _trails(record) if e["type"] == "record.submitted"})
    if kit and kit_subject:
        pdf.add_page()
        w.heading(f"Custody chain of kit {record['key'] if record else kit}: every record that names it", 14)
        w.line(
            "Each record in full (values, amendments, e-signatures), in the order they were recorded: "
            "receipts, handovers, thaws, dispositions and the dose that used the kit.",
            8.5,
        )
        for s in by_target.get(kit_subject, []):
            w.signature_line(s)
        chain = {r.event_id for r in kit_records}
        for rec in ds.records():  # log order: the custody chain as it happened
            if rec.subject != kit_subject and rec.event_id not in chain:
                continue
            used_by = participant_of(rec.subject)
            if used_by:
                w.line(f"Used for participant {used_by}:", 9)
            w.record(rec, by_target.get(rec.event_id, []))
    pdf.add_page()
    w.heading("Verification at printing time", 13)
    report = audit.verify_store(ds.store)
    if ds.wards is not None:  # a PostgreSQL hub read in place: the wards' chains re-hashed from its rows too
        n, problems = eventlog.verify_chains(ds.wards)
        report.results.append(
            audit.CheckResult(
                f"event chains in {getattr(ds.wards, 'name', 'the database')}", n, [str(p) for p in problems]
            )
        )
    for r in report.results:
        w.line(
            f"{r.name}: {r.checked} checked - "
            + ("intact" if not r.problems else f"{len(r.problems)} problem(s)"),
            9,
        )
        for p in r.problems[:50]:
            w.line(f"    {p}", 8.5)
    w.line(f"Font: {w.font_name}.", 8)
    w.doc.save(out)
    return AuditPdf(out, subjects, n_records, w.photos, w.signatures, w.font_name)


def _trails(record: dict[str, Any]) -> list[dict[str, Any]]:
    kits = record.get("kit_records") or [record]
    return [e for k in kits for e in k["audit_trail"]]


def _write_json(out: Path, record: dict[str, Any]) -> AuditPdf:
    """The custody record as JSON, written atomically (same content as the PDF, without thumbnails)."""
    kits = record.get("kit_records") or [record]
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(custody_record.as_json(record), encoding="utf-8")
    tmp.replace(out)
    return AuditPdf(
        out,
        [f"{record['record']}:{record['key']}"],
        len({e["event_id"] for e in _trails(record) if e["type"] == "record.submitted"}),
        sum(len(k["photos"]) for k in kits),
        sum(len(p["signatures"]) for k in kits for s in k["steps"] for p in s["parties"]),
        "",
    )
