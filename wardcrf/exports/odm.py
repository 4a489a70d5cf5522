"""CDISC ODM 1.3.2 export: metadata from the protocol, clinical data with its audit trail.

Shape of the file (validated against the official XSD, and loaded by
odmlib's strict loader, in the tests)::

    ODM  FileType="Transactional" ODMVersion="1.3.2"
      Study OID=<protocol id>
        GlobalVariables, BasicDefinitions (units)
        MetaDataVersion per loaded protocol version: one StudyEvent "Casebook"
          holding every participant form (FormDef Repeating="Yes"); one
          non-repeating ItemGroupDef per form; ItemDef (type, unit, hard and
          soft RangeCheck, CDISC name as SDSVarName or Alias); CodeList
      AdminData: User per user, Location per site, SignatureDef per meaning
      ClinicalData per protocol version records were captured under
        SubjectData per participant
          StudyEventData "Casebook" -> per record (FormRepeatKey = the
            record's event id) a series of FormData elements in time order:
            "Insert" (AuditRecord of the entry, ItemGroupData with the values
            as first entered), one "Update" per amendment (AuditRecord with
            the ReasonForChange, ItemGroupData with the changed values), one
            "Context" per e-signature (its Signature, and an Annotation when
            the record changed after signing), one "Context" per source-data
            verification (its Signature with the meaning "verified", an
            Annotation naming the fields and photographs compared, and one
            saying "changed since verified" for fields amended after it)
        SubjectData "Context" per casebook sign-off, after the data it signs
        AuditRecords: every other event of the log (users, protocol, exports...;
          an SDV mark on a record ODM has no subject for),
          SourceID naming the event and its type (ReasonForChange only for reasons)
        Signatures: e-signatures on what is not a participant's record (cold-chain
          custody records); Annotations say what each of them signs and means

ODM 1.3.2 lets a Transactional file carry one entity as a series of elements
in temporal order ("Clinical Data Element Ordering"): a record's entry, its
amendments and its signatures are that series, so every FormData holds at most
one ItemGroupData of a (non-repeating) group and at most one Signature, every
Signature has an ID and appears exactly once, after the transactions it signs.

Streamed subject by subject, so a large site never sits in memory as a tree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__, eventlog, sdv
from ..clock import iso_utc, now_utc
from ..errors import UsageError
from ..protocol import Field, Protocol, tr
from . import written
from .dataset import Dataset, ProvenancedRecord, Signature, value_text
from .progress import NullProgress, Progress

if TYPE_CHECKING:
    from ..engine.model import Model

NS = "http://www.cdisc.org/ns/odm/v1.3"
STUDY_EVENT = "SE.CASEBOOK"
_DATATYPES = {
    "number": "float",
    "integer": "integer",
    "text": "text",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
    "photo": "text",
}
_LEGAL = (
    "This electronic signature is the legally binding equivalent of the signer's handwritten "
    "signature (21 CFR Part 11)."
)
_SAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")
_RECORD_TYPES = ("record.submitted", "record.amended", "signature.applied")


@lru_cache(maxsize=4096)
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def mdv_oid(p: Protocol | tuple[str, str]) -> str:
    pid, ver = (p.id, p.version) if isinstance(p, Protocol) else p
    return f"MDV.{_slug(pid)}.{_slug(ver)}"


@lru_cache(maxsize=4096)
def item_oid(form: str, field: str) -> str:
    return f"I.{_slug(form)}.{_slug(field)}"


@lru_cache(maxsize=256)
def unit_oid(unit: str) -> str:
    return f"MU.{_slug(unit.replace('%', 'pct').replace('/', '_per_').replace('^', ''))}"


def _sub(
    parent: ET.Element, tag: str, attrs: dict[str, Any] | None = None, text: str | None = None
) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in (attrs or {}).items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _translated(parent: ET.Element, tag: str, text: dict[str, str]) -> None:
    el = _sub(parent, tag)
    for lang, value in text.items():
        t = _sub(el, "TranslatedText", text=value)
        t.set("{http://www.w3.org/XML/1998/namespace}lang", lang)


def _choice_type(fd: Field) -> str:
    if fd.multiple:
        return "text"
    codes = fd.codes
    if codes and all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        return "integer"
    return "text"


def _datatype(fd: Field) -> str:
    return _choice_type(fd) if fd.type == "choice" else _DATATYPES.get(fd.type, "text")


@dataclass
class OdmExport:
    path: Path
    subjects: int
    records: int
    signatures: int
    audit_records: int

    def as_json(self) -> dict[str, Any]:
        return written.summary(self)


def metadata_version(proto: Protocol, forms_used: Iterable[str], model: Model | None = None) -> ET.Element:
    """MetaDataVersion for one protocol version: participant forms, items, code lists.

    `model`: the version's format-2 re-encoding, whose visits become
    StudyEventDefs with the forms due at each (odm_events.py), after the
    Casebook event that holds the data.
    """
    mdv = ET.Element(
        "MetaDataVersion",
        {
            "OID": mdv_oid(proto),
            "Name": f"{proto.id} version {proto.version}",
            "Description": tr(proto.title),
        },
    )
    used = set(forms_used)
    forms = [f for f in proto.forms.values() if f.fields and (f.subject == "participant" or f.name in used)]
    prot = _sub(mdv, "Protocol")
    _sub(prot, "StudyEventRef", {"StudyEventOID": STUDY_EVENT, "OrderNumber": 1, "Mandatory": "Yes"})
    sed = _sub(
        mdv, "StudyEventDef", {"OID": STUDY_EVENT, "Name": "Casebook", "Repeating": "No", "Type": "Common"}
    )
    for i, form in enumerate(forms, 1):
        _sub(sed, "FormRef", {"FormOID": f"F.{_slug(form.name)}", "OrderNumber": i, "Mandatory": "No"})
    if model is not None:
        from . import odm_events  # the engine's model (and its JSON Schema) only when asked for

        oids = {f.name: f"F.{_slug(f.name)}" for f in forms}
        for order, (ref, visit) in enumerate(odm_events.study_events(model, oids), 2):
            _sub(prot, "StudyEventRef", {**ref, "OrderNumber": order})
            mdv.append(visit)
    for form in forms:
        fdef = _sub(
            mdv, "FormDef", {"OID": f"F.{_slug(form.name)}", "Name": tr(form.label), "Repeating": "Yes"}
        )
        _sub(fdef, "ItemGroupRef", {"ItemGroupOID": f"IG.{_slug(form.name)}", "Mandatory": "Yes"})
    for form in forms:
        ig = _sub(
            mdv, "ItemGroupDef", {"OID": f"IG.{_slug(form.name)}", "Name": form.name, "Repeating": "No"}
        )
        for i, fd in enumerate(form.fields.values(), 1):
            _sub(
                ig,
                "ItemRef",
                {
                    "ItemOID": item_oid(form.name, fd.name),
                    "OrderNumber": i,
                    "Mandatory": "Yes" if fd.required else "No",
                },
            )
    for form in forms:
        for fd in form.fields.values():
            attrs: dict[str, Any] = {
                "OID": item_oid(form.name, fd.name),
                "Name": fd.name,
                "DataType": _datatype(fd),
            }
            if attrs["DataType"] == "text":
                attrs["Length"] = fd.max_length or (200 if fd.type in ("text", "choice") else 2000)
            if fd.cdisc and _SAS.match(fd.cdisc):
                attrs["SDSVarName"] = fd.cdisc
            if fd.computed:
                attrs["Origin"] = "Derived"
            item = _sub(mdv, "ItemDef", attrs)
            _translated(item, "Question", dict(fd.label))
            if fd.unit:
                _sub(item, "MeasurementUnitRef", {"MeasurementUnitOID": unit_oid(fd.unit)})
            for soft_hard, rng in (("Hard", fd.hard), ("Soft", fd.soft)):
                if rng is None:
                    continue
                for comparator, bound in (("GE", rng[0]), ("LE", rng[1])):
                    rc = _sub(item, "RangeCheck", {"Comparator": comparator, "SoftHard": soft_hard})
                    _sub(rc, "CheckValue", text=value_text(float(bound)))
            if fd.choices and not fd.multiple:
                _sub(item, "CodeListRef", {"CodeListOID": f"CL.{_slug(form.name)}.{_slug(fd.name)}"})
            if fd.cdisc and not _SAS.match(fd.cdisc):
                _sub(item, "Alias", {"Context": "CDISC", "Name": fd.cdisc})
    for form in forms:
        for fd in form.fields.values():
            if not fd.choices or fd.multiple:
                continue
            cl = _sub(
                mdv,
                "CodeList",
                {
                    "OID": f"CL.{_slug(form.name)}.{_slug(fd.name)}",
                    "Name": f"{form.name}.{fd.name}",
                    "DataType": _choice_type(fd),
                },
            )
            for c in fd.choices:
                cli = _sub(cl, "CodeListItem", {"CodedValue": c.code})
                _translated(cli, "Decode", dict(c.label))
    return mdv


def _audit(
    parent: ET.Element,
    user: str | None,
    site: str,
    ts: str,
    *,
    reason: str | None = None,
    source: str | None = None,
    id_: str | None = None,
) -> ET.Element:
    ar = _sub(parent, "AuditRecord", {"ID": id_} if id_ else None)
    _sub(ar, "UserRef", {"UserOID": f"USR.{_slug(user or 'system')}"})
    _sub(ar, "LocationRef", {"LocationOID": f"LOC.{_slug(site)}"})
    _sub(ar, "DateTimeStamp", text=ts)
    if reason:
        _sub(ar, "ReasonForChange", text=reason)
    if source:
        _sub(ar, "SourceID", text=source)
    return ar


def signature_id(s: Signature) -> str:
    return f"SIG.{_slug(s.event_id)}"


def _signature(parent: ET.Element, s: Signature) -> ET.Element:
    """The Signature element (ID, who, where, meaning via SignatureDef, when): one per e-signature."""
    el = _sub(parent, "Signature", {"ID": signature_id(s)})
    _sub(el, "UserRef", {"UserOID": f"USR.{_slug(s.user)}"})
    _sub(el, "LocationRef", {"LocationOID": f"LOC.{_slug(s.site)}"})
    _sub(el, "SignatureRef", {"SignatureOID": f"SD.{_slug(s.meaning)}"})
    _sub(el, "DateTimeStamp", text=s.signed_at)
    return el


def _annotation(parent: ET.Element, seq: int, text: str) -> None:
    ann = _sub(parent, "Annotation", {"SeqNum": seq})
    _sub(ann, "Comment", text=text)


def _item_data(parent: ET.Element, form: str, fields: dict[str, Field], name: str, value: Any) -> None:
    attrs: dict[str, Any] = {"ItemOID": item_oid(form, name)}
    if value is None or value == [] or value == "":
        attrs["IsNull"] = "Yes"
        _sub(parent, "ItemData", attrs)
        return
    attrs["Value"] = value_text(value)
    el = _sub(parent, "ItemData", attrs)
    fd = fields.get(name)
    if fd is not None and fd.unit:
        _sub(el, "MeasurementUnitRef", {"MeasurementUnitOID": unit_oid(fd.unit)})


def _changed_since_signed(s: Signature, what: str) -> str:
    return (
        f"{what} e-signature {s.event_id} by {s.full_name} ({s.meaning}, {s.signed_at}): changed since signed"
    )


def _sdv_context(ds: Dataset, fd: ET.Element, mark: sdv.Mark, verification: sdv.RecordSdv) -> None:
    """A source-data verification as a record's Context: its Signature ("verified"), what it compared,
    and "changed since verified" naming each field amended after it (the record's current SDV state)."""
    ev = ds.event(mark.event_id)
    el = _sub(fd, "Signature", {"ID": f"SIG.{_slug(mark.event_id)}"})
    _sub(el, "UserRef", {"UserOID": f"USR.{_slug(mark.user)}"})
    _sub(el, "LocationRef", {"LocationOID": f"LOC.{_slug(ev.site if ev else ds.site_row['site'])}"})
    _sub(el, "SignatureRef", {"SignatureOID": f"SD.{_slug(sdv.MEANING)}"})
    _sub(el, "DateTimeStamp", text=mark.at)
    _annotation(
        fd,
        1,
        f"source-data verification {mark.event_id} by {mark.full_name} ({mark.user}), meaning "
        f"'{sdv.MEANING}', {mark.at}: {', '.join(mark.fields)} verified against {', '.join(mark.sources)}",
    )
    changed = [
        f
        for f in verification.fields
        if f.state == sdv.CHANGED and f.mark is not None and f.mark.event_id == mark.event_id
    ]
    if changed:
        _annotation(
            fd,
            2,
            f"source-data verification {mark.event_id}: {sdv.CHANGED}: "
            + "; ".join(
                f"{f.name} (amended by {', '.join(f.changed_by) or 'a later value'})" for f in changed
            ),
        )


def form_data(
    ds: Dataset, rec: ProvenancedRecord, sigs: list[Signature], verification: sdv.RecordSdv | None = None
) -> list[ET.Element]:
    """One record as its series of FormData: first entry, each amendment, each signature and each
    source-data verification, in time order."""
    proto = ds.protocol_for(rec)
    fdef = proto.forms.get(rec.form)
    fields = dict(fdef.fields) if fdef else {}
    form_oid, ig_oid = f"F.{_slug(rec.form)}", f"IG.{_slug(rec.form)}"

    def element(transaction: str) -> ET.Element:
        return ET.Element(
            "FormData", {"FormOID": form_oid, "FormRepeatKey": rec.event_id, "TransactionType": transaction}
        )

    first = element("Insert")
    _audit(first, rec.created_by, rec.site, rec.created_at, source=rec.event_id)
    original = rec.data
    groups = ds.amendment_events(rec.event_id) if rec.amended else []
    if groups:
        e = ds.event(rec.event_id)
        original = (e.body.get("data") or {}) if e else rec.data
    known = [n for n in fields if n in original]
    ig = _sub(first, "ItemGroupData", {"ItemGroupOID": ig_oid, "TransactionType": "Insert"})
    for name in known:
        _item_data(ig, rec.form, fields, name, original.get(name))
    # In the order they happened: time, then the hybrid logical clock (two events of one
    # millisecond keep the log's order: a signature then the amendment it precedes).
    later: list[tuple[str, str, int, ET.Element]] = []
    for n, group in enumerate(groups):
        ev = ds.event(group[0].event_id)
        fd = element("Update")
        _audit(
            fd,
            group[0].user,
            ev.site if ev else rec.site,
            group[0].ts,
            reason=group[0].reason,
            source=group[0].event_id,
        )
        ig = _sub(fd, "ItemGroupData", {"ItemGroupOID": ig_oid, "TransactionType": "Update"})
        for a in group:
            if a.field in fields:
                _item_data(ig, rec.form, fields, a.field, a.new)
        later.append((group[0].ts, ev.hlc if ev else "", n, fd))
    for n, s in enumerate(sigs):
        fd = element("Context")
        _signature(fd, s)
        if not s.valid:
            _annotation(fd, 1, _changed_since_signed(s, "record"))
        signed = ds.event(s.event_id)
        later.append((s.signed_at, signed.hlc if signed else "", len(groups) + n, fd))
    if verification is not None:
        for n, mark in enumerate(verification.marks):
            fd = element("Context")
            _sdv_context(ds, fd, mark, verification)
            later.append((mark.at, mark.hlc, len(groups) + len(sigs) + n, fd))
    return [first] + [fd for *_order, fd in sorted(later, key=lambda x: x[:3])]


def _write(fh: IO[str], el: ET.Element, indent: int) -> None:
    ET.indent(el, space="  ", level=indent)
    fh.write("  " * indent + ET.tostring(el, encoding="unicode").rstrip() + "\n")


def export_odm(
    ds: Dataset, out: Path, progress: Progress | None = None, model: Model | None = None
) -> OdmExport:
    """The ODM file; `model`: the format-2 version of a loaded protocol version (its visits' events), by
    default the active version's model (`protocol.run_as`: a format-1 version's re-encoding); none for a
    stored format-1 version the engine cannot run, whose metadata has the Casebook event only."""
    progress = progress or NullProgress()
    out = Path(out)
    if out.exists() and out.is_dir():
        raise UsageError(f"{out} is a directory; give a file name for the ODM XML (e.g. trial.xml)")
    proto = ds.active_protocol
    if model is None:  # the active version as the ward runs it: a format-1 one on its re-encoding's model
        model = proto.engine
    versions = ds.protocol_versions
    site = ds.site_row
    tmp = out.with_name(out.name + ".part")
    n_records = n_subjects = n_audit = 0
    all_sigs = ds.signatures()
    by_target: dict[str, list[Signature]] = {}
    for s in all_sigs:
        by_target.setdefault(s.target, []).append(s)
    # Which records were captured under which version (a record keeps its version's metadata).
    version_keys = [(p.id, p.version) for p in versions]
    own_engine = {(p.id, p.version): p.engine is not None for p in versions}
    forms_used: dict[tuple[str, str], set[str]] = {k: set() for k in version_keys}
    db = ds.data
    for form, pid, ver in db.execute(
        f"SELECT DISTINCT r.form, {db.json_text('e.line', 'protocol', 'id')},"
        f" {db.json_text('e.line', 'protocol', 'version')} FROM records r JOIN events e ON e.id = r.event_id"
    ):
        forms_used[_version_key(pid, ver, forms_used, proto)].add(form)
    progress.start("records", ds.count_records())
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        created = iso_utc(now_utc())
        file_oid = _attr(f"wardcrf.{site['site']}.{site['device']}.{created}")
        describe = _attr(("hub " if ds.is_hub else "ward ") + site["site"])
        fh.write(
            f'<ODM xmlns="{NS}" FileType="Transactional" ODMVersion="1.3.2" FileOID="{file_oid}" '
            f'CreationDateTime="{created}" Originator="{_attr(site["site"])}" '
            f'SourceSystem="wardcrf" SourceSystemVersion="{__version__}" Description="{describe}">\n'
        )
        study = ET.Element("Study", {"OID": _slug(proto.id)})
        gv = _sub(study, "GlobalVariables")
        _sub(gv, "StudyName", text=proto.id)
        _sub(gv, "StudyDescription", text=tr(proto.title))
        _sub(
            gv,
            "ProtocolName",
            text=f"{proto.id} ({', '.join(proto.registry)})" if proto.registry else proto.id,
        )
        bd = _sub(study, "BasicDefinitions")
        units = sorted(
            {fd.unit for p in versions for f in p.forms.values() for fd in f.fields.values() if fd.unit}
        )
        for unit in units:
            mu = _sub(bd, "MeasurementUnit", {"OID": unit_oid(unit), "Name": unit})
            _translated(mu, "Symbol", {"en": unit})
        for p in versions:
            engine = model if model is not None and (model.id, model.version) == (p.id, p.version) else None
            study.append(metadata_version(p, forms_used.get((p.id, p.version), set()), engine))
        _write(fh, study, 1)
        fh.write(_admin_data(ds, proto, versions))
        subjects: set[str] = set()
        inline: set[str] = set()  # signatures written on the element they sign
        inline_sdv: set[str] = set()  # SDV marks written on the record they verify
        verified = {t for (t,) in ds.store.execute("SELECT DISTINCT target_event FROM sdv_marks")}
        participant_records = {
            eid
            for (eid,) in ds.data.execute("SELECT event_id FROM records WHERE subject LIKE 'participant:%'")
        }
        active_key = (proto.id, proto.version)
        for key in version_keys:
            if not forms_used.get(key) and key != active_key:
                continue
            fh.write(
                f'  <ClinicalData StudyOID="{_attr(_slug(proto.id))}" '
                f'MetaDataVersionOID="{_attr(mdv_oid(key))}">\n'
            )
            for pid in ds.participants():
                recs = [
                    r
                    for r in ds.records(participant=pid)
                    if _version_key(r.protocol_id, r.protocol_version, forms_used, proto) == key
                ]
                subject_sigs = by_target.get(f"participant:{pid}", []) if key == active_key else []
                if not recs and not subject_sigs:
                    continue
                subjects.add(pid)
                if recs:
                    sd = ET.Element("SubjectData", {"SubjectKey": pid, "TransactionType": "Upsert"})
                    casebook = _sub(
                        sd, "StudyEventData", {"StudyEventOID": STUDY_EVENT, "TransactionType": "Upsert"}
                    )
                    # Filed under their visits: records of a format-2 version of its own (a re-encoded
                    # format-1 version keeps every record in the Casebook, as before).
                    events = (
                        _visit_events(ds, model, pid, recs)
                        if model is not None and (model.id, model.version) == key and own_engine.get(key)
                        else {}
                    )
                    opened: dict[tuple[str, int | None], ET.Element] = {}
                    for rec in recs:
                        occ = events.get(rec.event_id)
                        if occ is None:
                            sed = casebook
                        elif occ in opened:
                            sed = opened[occ]
                        else:
                            attrs = {"StudyEventOID": _visit_oid(occ[0])}
                            if occ[1] is not None:
                                attrs["StudyEventRepeatKey"] = str(occ[1])
                            sed = opened[occ] = _sub(
                                sd, "StudyEventData", {**attrs, "TransactionType": "Upsert"}
                            )
                        verification = (
                            sdv.record_status(ds.store, rec.event_id) if rec.event_id in verified else None
                        )
                        if verification is not None:
                            inline_sdv.update(m.event_id for m in verification.marks)
                        sed.extend(form_data(ds, rec, by_target.get(rec.event_id, []), verification))
                        inline.update(s.event_id for s in by_target.get(rec.event_id, []))
                        n_records += 1
                    if not len(casebook):  # every record of the participant is filed under a visit
                        sd.remove(casebook)
                    progress.advance(len(recs))
                    _write(fh, sd, 2)
                # The casebook sign-off signs everything above it: after the data, one element each.
                for s in subject_sigs:
                    sd = ET.Element("SubjectData", {"SubjectKey": pid, "TransactionType": "Context"})
                    _signature(sd, s)
                    if not s.valid:
                        _annotation(sd, 1, _changed_since_signed(s, "casebook"))
                    inline.add(s.event_id)
                    _write(fh, sd, 2)
            if key == active_key:
                n_audit = _write_audit_records(fh, ds, inline_sdv)
                standalone = [
                    s for s in all_sigs if s.event_id not in inline and s.target not in participant_records
                ]
                _write_standalone_signatures(fh, ds, standalone)
            fh.write("  </ClinicalData>\n")
        n_subjects = len(subjects)
        fh.write("</ODM>\n")
    tmp.replace(out)
    return OdmExport(out, n_subjects, n_records, len(all_sigs), n_audit)


def _visit_oid(code: str) -> str:
    from .odm_events import event_oid

    return event_oid(code)


def _visit_events(
    ds: Dataset, model: Model, pid: str, recs: list[ProvenancedRecord]
) -> dict[str, tuple[str, int | None]]:
    """Record -> (visit code, repeat key) of a format-2 participant's records that a visit lists
    (`sdtm.engine_visits.place`, the engine's placement: the occurrence whose window holds the record); the
    rest stay in the Casebook."""
    from zoneinfo import ZoneInfo

    from .sdtm.build import record_dtc
    from .sdtm.engine_visits import of_participant, place

    zone = ZoneInfo(str(ds.site_row.get("zone") or "UTC"))
    by_form: dict[str, list[ProvenancedRecord]] = {}
    for rec in recs:
        by_form.setdefault(rec.form, []).append(rec)
    found = of_participant(ds.data, pid, by_form, model, zone)
    out: dict[str, tuple[str, int | None]] = {}
    for rec in recs:
        when = record_dtc(rec, ds.protocol_for(rec))
        if len(when) < 10:
            continue
        # a visit per administration: one StudyEventData per administration, keyed by its number
        occ = place(
            model,
            found,
            rec.form,
            rec.data,
            rec.event_id,
            date.fromisoformat(when[:10]),
            administrations=False,
        )
        if occ is not None:
            out[rec.event_id] = (occ.code, occ.repeat)
    return out


def _version_key(
    pid: str | None, ver: str | None, known: dict[tuple[str, str], Any], active: Protocol
) -> tuple[str, str]:
    """The loaded version a record was captured under; the active one when it names none we hold."""
    key = (pid or "", ver or "")
    return key if key in known else (active.id, active.version)


def _write_audit_records(fh: IO[str], ds: Dataset, inline: set[str]) -> int:
    """Every event that is not a record, a signature or an SDV mark written on its record,
    as an AuditRecord (ID = AR.<event id>)."""
    el = ET.Element("AuditRecords")
    n = 0
    for e in ds.events("type NOT IN (?,?,?)", _RECORD_TYPES):
        if e.id in inline:
            continue
        # ReasonForChange holds a person's reason, never the event type: the type and
        # subject name the source event in SourceID.
        source = f"wardcrf event {e.id}: {e.type}" + (f" ({e.subject})" if e.subject else "") + _what(e)
        _audit(el, e.user, e.site, e.ts, reason=e.reason, source=source, id_=f"AR.{_slug(e.id)}")
        n += 1
    if n:
        _write(fh, el, 2)
    return n


def _what(e: eventlog.Event) -> str:
    """What an event did, where its type and subject do not say it (the versions of an amendment)."""
    b = e.body or {}
    if e.type == "protocol.applied":
        return f": protocol {b.get('protocol_id')} {b.get('from_version')} -> {b.get('to_version')}"
    return ""


def _signed_thing(ds: Dataset, s: Signature) -> str:
    """What a signature outside the participants' data signs, in words."""
    row = ds.data.one("SELECT form, subject FROM records WHERE event_id = ?", (s.target,))
    if row is not None:
        return f"{row[0]} record {s.target}" + (f" about {row[1]}" if row[1] else "")
    if ds.event(s.target) is not None:
        return f"event {s.target}"
    return f"everything recorded about {s.target}"


def _write_standalone_signatures(fh: IO[str], ds: Dataset, sigs: list[Signature]) -> None:
    """Signatures on what ODM has no subject for (custody records), each with what it signs and means.

    ODM's Signature element names who, where, when and (through its
    SignatureDef) the meaning, not the thing signed; an Annotation per
    signature, ``ANN.<signature ID>``, says what it signs.
    """
    if not sigs:
        return
    sigs_el = ET.Element("Signatures")
    anns = ET.Element("Annotations")
    for i, s in enumerate(sigs, 1):
        _signature(sigs_el, s)
        ann = _sub(anns, "Annotation", {"SeqNum": i, "ID": f"ANN.{signature_id(s)}"})
        state = "valid" if s.valid else "CHANGED SINCE SIGNED"
        _sub(
            ann,
            "Comment",
            text=f"Signature {signature_id(s)} by {s.full_name} ({s.user}), meaning '{s.meaning}', "
            f"{s.signed_at}, signs {_signed_thing(ds, s)}: {state}",
        )
    _write(fh, sigs_el, 2)
    _write(fh, anns, 2)


def _admin_data(ds: Dataset, proto: Protocol, versions: list[Protocol]) -> str:
    admin = ET.Element("AdminData", {"StudyOID": _slug(proto.id)})
    people = dict(ds.users)
    logs = ds.logs()
    for db in logs:
        for (u,) in db.execute('SELECT DISTINCT "user" FROM events WHERE "user" IS NOT NULL'):
            people.setdefault(u, {"username": u, "full_name": u})
    people.setdefault("system", {"username": "system", "full_name": "wardcrf (no signed-in user)"})
    sites = sorted(
        {
            s
            for db in logs
            for (s,) in db.execute(f"SELECT DISTINCT {db.json_text('line', 'site')} FROM events")
            if s
        }
        | {ds.site_row["site"]}
    )
    for name in sorted(people):
        u = people[name]
        user = _sub(admin, "User", {"OID": f"USR.{_slug(name)}"})
        _sub(user, "LoginName", text=name)
        _sub(user, "DisplayName", text=u.get("full_name") or name)
        _sub(user, "FullName", text=u.get("full_name") or name)
    loaded = {}
    for r in ds.data.rows("SELECT protocol_id, version, loaded_event FROM protocols"):
        ev = ds.event(r["loaded_event"])
        if ev is not None:
            loaded[(r["protocol_id"], r["version"])] = ev.ts[:10]
    for s in sites:
        loc = _sub(admin, "Location", {"OID": f"LOC.{_slug(s)}", "Name": s, "LocationType": "Site"})
        for p in versions:
            _sub(
                loc,
                "MetaDataVersionRef",
                {
                    "StudyOID": _slug(proto.id),
                    "MetaDataVersionOID": mdv_oid(p),
                    "EffectiveDate": loaded.get((p.id, p.version), "1970-01-01"),
                },
            )
    from ..signatures import MEANINGS

    # "verified" is the source-data verification's meaning (wardcrf.sdv), not a signatures-table one.
    meanings = list(MEANINGS) + sorted(
        (
            {m for db in ds.logs() for (m,) in db.execute("SELECT DISTINCT meaning FROM signatures")}
            | {sdv.MEANING}
        )
        - set(MEANINGS)
    )
    for m in meanings:
        sd = _sub(admin, "SignatureDef", {"OID": f"SD.{_slug(m)}", "Methodology": "Electronic"})
        _sub(sd, "Meaning", text=m)
        _sub(sd, "LegalReason", text=_LEGAL)
    ET.indent(admin, space="  ", level=1)
    return "  " + ET.tostring(admin, encoding="unicode").rstrip() + "\n"


def _attr(text: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(text)[1:-1]
