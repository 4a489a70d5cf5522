"""The auditor's desk: one record beside its photographs, with its verification state.

A read model for the audit screen (and anything else that shows a record for
checking against its source): the record's values as a reader says them
(printed labels, choice labels, units), every photograph bound to it now or
formerly with its hash re-checked (`photos.audit.record_photos`, through `evidence.photos()`), and its
source-data verification field by field (`sdv.record`). Plain data, no
Textual: the screen lays it out side by side at 120 columns or one after the
other at 80, shows the photograph through an image protocol where the
terminal has one, or exports a verified copy (`photos.viewing.export_original`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import evidence, protocol, records, sdv
from ..evidence import RecordPhoto
from .audit_pdf import printed_label, printed_value

if TYPE_CHECKING:
    from ..site import Session


@dataclass
class DeskField:
    name: str
    label: str
    value: Any
    shown: str
    sdv_state: str


@dataclass
class Desk:
    event_id: str
    form: str
    form_label: str
    subject: str | None
    fields: list[DeskField]
    photos: list[RecordPhoto]
    verification: sdv.RecordSdv
    protocol: dict[str, str] | None = None
    """The version the record was captured under ({"id", "version"}; None: captured before any)."""
    notice: str | None = None
    """Set when that version is not loaded here: the record is shown as stored (field codes, stored
    values), not with another version's labels (`protocol.record_not_loaded`)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "record": self.event_id,
            "form": self.form,
            "form_label": self.form_label,
            "subject": self.subject,
            "protocol": self.protocol,
            "notice": self.notice,
            "fields": [f.__dict__ for f in self.fields],
            "photos": [p.as_json() for p in self.photos],
            "sdv": self.verification.as_json(),
        }


def desk(session: Session, record_id: str) -> Desk:
    """Everything the audit screen shows about one record (permission: record.read)."""
    session.require("record.read", what="view records")
    rec = records.load_for_amendment(session.store, record_id)
    # the record's own version, never the active one; shown as stored when it is not loaded here
    form, ref, notice = protocol.record_definition(session.store, rec.event_id, rec.form)
    fields = dict(form.fields) if form else {}
    verification = sdv.record_status(session.store, rec.event_id)
    states = {f.name: f.state for f in verification.fields}
    names = [n for n in fields if n in rec.data] + [n for n in rec.data if n not in fields]
    return Desk(
        rec.event_id,
        rec.form,
        protocol.tr(form.label) if form else rec.form,
        rec.subject,
        [
            DeskField(
                n,
                printed_label(fields.get(n), n),
                rec.data[n],
                printed_value(rec.data[n], fields.get(n)),
                states.get(n, sdv.UNVERIFIED),
            )
            for n in names
        ],
        evidence.photos().record_photos(session, rec.event_id),
        verification,
        ref,
        notice,
    )
