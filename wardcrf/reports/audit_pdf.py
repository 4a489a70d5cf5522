"""The auditor's human-readable copy (Part 11 §11.10(b)): a casebook or a kit's custody chain as PDF.

For each participant (or the kit): every record with its values and units,
whether it changed since first entry (Annex 11 §8) and every change with
who, when, old -> new and why; every e-signature with printed name, time,
meaning and whether the content changed since signing (§11.50); every photo
as a thumbnail with its SHA-256 and whether the stored original still
hashes to it; how each record reached this database (created here or the
sync bundle it arrived in); then the subject's full audit trail. The last
page states the event-chain verification result at printing time.

Text: Chinese (and any non-Latin) text needs a Unicode font. wardcrf uses
`WARDCRF_PDF_FONT` or the first CJK font found among the usual Debian paths
(fonts-wqy-microhei, fonts-noto-cjk). Without one, characters the PDF's
built-in font cannot show are printed as <U+hex code point> escapes: the PDF never
fails and never silently drops a character.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import audit, eventlog, ids
from ..clock import iso_utc, now_utc, parse_iso, zone
from ..errors import Refused, UsageError
from ..exports.dataset import Dataset, Record, Signature, participant_of, value_text
from ..exports.progress import NullProgress, Progress
from ..protocol import Field, tr
from . import evidence

FONT_CANDIDATES: list[tuple[str, bool]] = [
    # (path, covers CJK)
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", True),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", True),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", True),
    ("/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf", True),
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", False),
]
_REPLACE = {
    "—": "-",
    "–": "-",
    "→": "->",
    "←": "<-",
    "…": "...",
    "≥": ">=",
    "≤": "<=",
    "·": "-",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "×": "x",
    "µ": "u",
}


def find_font() -> tuple[str, bool] | None:
    env = os.environ.get("WARDCRF_PDF_FONT")
    if env:
        if not Path(env).is_file():
            raise UsageError(f"WARDCRF_PDF_FONT={env} is not a font file")
        return env, True
    for path, cjk in FONT_CANDIDATES:
        if Path(path).is_file():
            return path, cjk
    return None


class _Text:
    """Makes any string printable in the chosen font, never raising."""

    def __init__(self, unicode_font: bool, cjk: bool) -> None:
        self.unicode_font = unicode_font
        self.cjk = cjk

    def __call__(self, text: Any) -> str:
        s = "" if text is None else str(text)
        s = "".join(ch for ch in s if ch in "\n\t" or ord(ch) >= 32)
        if self.unicode_font:
            if self.cjk:
                return s
            return "".join(ch if ord(ch) < 0x2E80 else f"<U+{ord(ch):04X}>" for ch in s)
        s = "".join(_REPLACE.get(ch, ch) for ch in s)
        return "".join(ch if ord(ch) < 256 else f"<U+{ord(ch):04X}>" for ch in s)


@dataclass
class AuditPdf:
    path: Path
    subjects: list[str]
    records: int
    photos: int
    signatures: int
    font: str

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.path),
            "subjects": self.subjects,
            "records": self.records,
            "photos": self.photos,
            "signatures": self.signatures,
            "font": self.font,
        }


def _local(ts: str, zone_name: str) -> str:
    try:
        return parse_iso(ts).astimezone(zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S %z")
    except (ValueError, TypeError):
        return ts


class _Writer:
    def __init__(self, ds: Dataset, printed_by: str) -> None:
        from fpdf import FPDF

        self.ds = ds
        self.zone = ds.site_row["zone"]
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(True, margin=15)
        self.pdf.set_margins(15, 15, 15)
        found = find_font()
        if found:
            self.pdf.add_font("body", "", found[0])
            self.family = "body"
            self.t = _Text(True, found[1])
            self.font_name = found[0]
        else:
            self.family = "helvetica"
            self.t = _Text(False, False)
            self.font_name = "built-in Helvetica (non-Latin-1 text escaped as <U+hex code point>)"
        self.printed = iso_utc(now_utc())
        self.printed_by = printed_by
        self.photos = 0
        self.signatures = 0
        site = ds.site_row
        self.footer = self.t(
            f"wardcrf audit copy - {'hub' if ds.is_hub else 'ward'} {site['site']} - "
            f"printed {self.printed} by {printed_by}"
        )
        pdf = self.pdf
        footer_text = self.footer
        family = self.family

        def footer() -> None:
            pdf.set_y(-12)
            pdf.set_font(family, size=7)
            pdf.cell(0, 5, f"{footer_text} - page {pdf.page_no()}", align="C")

        pdf.footer = footer  # type: ignore[method-assign]

    # -- primitives ----------------------------------------------------------------------

    def font(self, size: float) -> None:
        self.pdf.set_font(self.family, size=size)

    def line(self, text: str, size: float = 9, h: float = 4.6, *, char_wrap: bool = False) -> None:
        from fpdf.enums import WrapMode, XPos, YPos

        self.font(size)
        self.pdf.multi_cell(
            0,
            h,
            self.t(text),
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=WrapMode.CHAR if char_wrap else WrapMode.WORD,
        )

    def heading(self, text: str, size: float = 13) -> None:
        self.pdf.ln(2)
        self.line(text, size, h=size * 0.5)
        self.pdf.ln(1)

    def table(self, rows: list[tuple[str, str]]) -> None:
        """Label/value rows as wrapped lines (fpdf2's table layout is too slow for whole casebooks)."""
        for a, b in rows:
            self.line(f"{a}: {b}", 8.5, h=4.2)
        self.pdf.ln(1)

    # -- content ----------------------------------------------------------------------

    def signature_line(self, s: Signature) -> None:
        self.signatures += 1
        state = "valid" if s.valid else "CHANGED SINCE SIGNED"
        self.line(
            f"E-signature: {s.full_name} ({s.user}) - meaning: {s.meaning} - "
            f"{s.signed_at} UTC ({_local(s.signed_at, self.zone)}) - {state} - event {s.event_id}",
            8.5,
        )

    def record(self, rec: Record, sigs: list[Signature]) -> None:
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
        e = eventlog.get(ds.store, rec.event_id)
        if e is not None:
            self.line(f"Event hash sha256:{e.hash}", 8, char_wrap=True)
            self.line(
                "Reached this database: "
                + evidence.arrival(ds.store, e.device, e.seq, this_device=ds.site_row["device"]),
                8.5,
            )
        groups = ds.amendment_events(rec.event_id)
        self.line(
            "CHANGED SINCE FIRST ENTRY: " + f"{len(groups)} amendment(s), see below"
            if groups
            else "Unchanged since first entry.",
            8.5,
        )
        rows = []
        names = list(fields) + [k for k in rec.data if k not in fields]
        for name in names:
            if name not in rec.data:
                continue
            fd = fields.get(name)
            rows.append((tr(fd.label) if fd else name, _shown(rec.data[name], fd)))
        if rows:
            self.table(rows)
        for group in groups:
            first = group[0]
            self.line(
                f"Amended {first.ts} UTC by {ds.full_name(first.user)} ({first.user or '-'}); "
                f"reason: {first.reason}",
                8.5,
            )
            for a in group:
                fd = fields.get(a.field)
                self.line(
                    f"    {tr(fd.label) if fd else a.field}: {_shown(a.old, fd) or '(blank)'} -> "
                    f"{_shown(a.new, fd) or '(blank)'}",
                    8.5,
                )
        for s in sigs:
            self.signature_line(s)
        for name in names:
            fd = fields.get(name)
            if fd is None or fd.type != "photo":
                continue
            for ref in rec.data.get(name) or []:
                self.photo(tr(fd.label), str(ref))

    def photo(self, label: str, ref: str) -> None:
        import io

        check = evidence.check_photo(self.ds.store, ref)
        self.photos += 1
        self.line(f"Photo ({label}): SHA-256 {check.sha256}", 8.5, char_wrap=True)
        self.line(f"    {check.status}", 8.5)
        if check.thumbnail:
            if self.pdf.get_y() > 230:
                self.pdf.add_page()
            self.pdf.image(io.BytesIO(check.thumbnail), w=45)
            self.pdf.ln(1)

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


def _shown(value: Any, fd: Field | None) -> str:
    if isinstance(value, dict) and "value" in value:
        return f"{value_text(value)} {value.get('unit') or ''}".strip()
    if fd is not None and fd.type == "choice" and value is not None:
        codes = value if isinstance(value, list) else [value]
        out = []
        for c in codes:
            ch = fd.choice(c)
            out.append(f"{c} ({tr(ch.label)})" if ch else str(c))
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
    progress: Progress | None = None,
) -> AuditPdf:
    """Write the audit PDF for one participant, one kit, or (neither) every participant."""
    progress = progress or NullProgress()
    if participant and kit:
        raise UsageError("give --participant or --kit, not both (neither prints every participant)")
    out = Path(out)
    if out.suffix.lower() != ".pdf":
        raise UsageError(f"{out.name}: the audit copy is a PDF; give a file name ending in .pdf")
    if out.exists():
        raise UsageError(f"{out} already exists; choose a new file name (an audit copy is never overwritten)")
    if participant and not ds.participant_exists(participant):
        raise Refused(f"unknown participant {participant} (no events about participant:{participant} here)")
    kit = ids.key(kit) if kit else None  # as typed or scanned: one kit whatever the case
    kit_subject = f"kit:{kit}" if kit else None
    kit_records: list[Record] = []
    if kit:
        kit_records = [r for r in ds.records_naming_kit(kit) if r.subject != kit_subject]
        has_events = ds.store.one("SELECT 1 FROM events WHERE subject = ? LIMIT 1", (kit_subject,))
        if not kit_records and not has_events:
            raise Refused(f"unknown kit {kit} (no custody events and no dose records name it here)")
    w = _Writer(ds, printed_by)
    pdf = w.pdf
    subjects: list[str] = []
    n_records = 0
    pids = [participant] if participant else ([] if kit else ds.participants())
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
    if kit and kit_subject:
        subjects.append(kit_subject)
        pdf.add_page()
        w.heading(f"Custody chain of kit {kit}", 16)
        w.line(
            f"Every event about {kit_subject} and every record that names the kit (receipts, handovers, "
            f"thaws, dispositions, the dose that used it), in the order they were recorded, from "
            f"{'hub' if ds.is_hub else 'ward'} {ds.site_row['site']}.",
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
            n_records += 1
        w.trail(kit_subject)
    pdf.add_page()
    w.heading("Verification at printing time", 13)
    report = audit.verify_store(ds.store)
    for r in report.results:
        w.line(
            f"{r.name}: {r.checked} checked - "
            + ("intact" if not r.problems else f"{len(r.problems)} problem(s)"),
            9,
        )
        for p in r.problems[:50]:
            w.line(f"    {p}", 8.5)
    w.line(f"Font: {w.font_name}.", 8)
    tmp = out.with_name(out.name + ".part")
    pdf.output(str(tmp))
    tmp.replace(out)
    return AuditPdf(out, subjects, n_records, w.photos, w.signatures, w.font_name)
