"""Source-data verification (SDV): a monitor confirms a record, or single fields, against its source photograph.

A clinical monitor compares what the database says with the source
document: the photographed consent page, the handover sheet, the bedside
chart. wardcrf has the photographs, so the comparison can be recorded as
evidence in its own right:

- ``sdv.verified`` is an event like every other (hash-chained, in the
  subject's audit trail, carried in sync bundles), appended by a user whose
  role may `sdv.mark` (the ``monitor`` role) after re-entering their password:
  an e-signature with the meaning "verified" (printed name, time, meaning,
  Part 11 §11.50), bound to what was verified (§11.70): the record, the
  fields, a SHA-256 of each field's value as verified, and the photographs
  compared, each re-hashed intact at that moment.
- A field is **verified** while its latest verification still holds: its
  value hashes to what was verified and no amendment of it came after (by
  hybrid logical clock, so a ward's amendment that reaches the hub later is
  ordered where it happened). An amendment afterwards makes it **changed
  since verified**; the verification never carries over to the new value —
  the monitor verifies again. A field nobody verified is **unverified**.
- A record is verified when every field is, changed since verified when any
  field is, partly verified when some are, else unverified.

Works on a ward laptop (an on-site monitoring visit; the marks travel to the
hub in the ward's bundles) and at the hub (central monitoring; a later ward
amendment arriving in a bundle makes the field changed since verified
there). `record_status` and `overview` are the read models for reports,
the CLI and the audit screen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .canonical import dumps
from .errors import Refused, UsageError
from .eventlog import Event
from .records import Record, load_for_amendment
from .sqlstore import SqlStore, common_dialect, own_keys_store
from .store import Store

if TYPE_CHECKING:
    from .features import Registry
    from .site import Session

EVENT_SDV = "sdv.verified"
MEANING = "verified"
VERIFIED, CHANGED, PARTLY, UNVERIFIED = "verified", "changed since verified", "partly verified", "unverified"


def value_hash(value: Any) -> str:
    """SHA-256 of a field's value in its canonical JSON form (what a verification is bound to)."""
    return hashlib.sha256(dumps(value).encode("utf-8")).hexdigest()


def _record(store: Store, record_id: str) -> Record:
    """The record, or the refusal naming what `record_id` is. At a PostgreSQL hub read in place the hub's
    own events are in its file, not the database's log: one of them is named as at a SQLCipher hub
    ("... is a protocol.loaded event, not a form record"), not as unknown."""
    try:
        return load_for_amendment(store, record_id)
    except Refused:
        own = own_keys_store(store)
        if own is store:
            raise
        return load_for_amendment(own, record_id)


def _sources(session: Session, rec: Record, given: list[str] | None) -> list[str]:
    """The photographs compared: those named, else the record's own; each must re-hash intact now.

    `session`: the sign-in reading the site (`verify`'s `reading`)."""
    from . import evidence as refs

    store = session.store
    if given:
        chosen = []
        for raw in given:
            if raw.strip().startswith("@"):
                raise UsageError(
                    "a source is a stored photograph (sha256:<hex> or a tray id), not a file to import"
                )
            ref = refs.resolve_photo(session, raw)
            if ref not in chosen:
                chosen.append(ref)
    else:
        chosen = [
            f"sha256:{r[0]}"
            for r in store.execute(
                "SELECT DISTINCT sha256 FROM photo_bindings WHERE record_event = ? AND unbound_event IS NULL"
                " ORDER BY sha256",
                (rec.event_id,),
            )
        ]
        if not chosen:
            raise UsageError(
                f"record {rec.event_id} holds no photograph: name the source photograph you compared "
                "it with (--source sha256:<hex> or a tray id)"
            )
    for ref in chosen:
        status, problem, _data = refs.photos().checked_original(store, ref)
        if status != refs.INTACT:
            raise Refused(f"source photograph {ref} is {status}: {problem}; nothing verified")
    return chosen


def find_record(store: Store, participant: str, form: str) -> str:
    """The one record of `form` for `participant` (a monitor thinks in participant and form); refuses 0 or many."""
    rows = [
        r[0]
        for r in store.execute(
            "SELECT r.event_id FROM records r JOIN events e ON e.id = r.event_id"
            " WHERE r.subject = ? AND r.form = ? ORDER BY e.pos",
            (f"participant:{participant}", form),
        )
    ]
    if not rows:
        raise Refused(f"participant {participant} has no {form} record here")
    if len(rows) > 1:
        shown = ", ".join(rows[:8]) + (" …" if len(rows) > 8 else "")
        raise UsageError(
            f"participant {participant} has {len(rows)} {form} records ({shown}): name one by its event id"
        )
    return rows[0]


def verify(
    session: Session,
    record_id: str,
    *,
    password: str,
    fields: list[str] | None = None,
    sources: list[str] | None = None,
    note: str | None = None,
    reading: Session | None = None,
) -> Event:
    """Mark a record (or the named fields) verified against its source photograph, as the signed-in monitor.

    Re-authenticates the monitor (the e-signature's second component) and
    appends one ``sdv.verified`` event. Refuses unknown records and fields,
    a record with no photograph when none is named, and a photograph that
    does not re-hash intact. Nothing is saved on a refusal.

    `reading`: the same sign-in over where the record and its photographs are
    (a PostgreSQL hub's database read in place, `cli.common.in_place`); `session` when not
    given. The event is appended through `session`, to the site's own log.
    """
    session.require("sdv.mark", what="mark records source-verified")
    reading = reading or session
    store = reading.store
    rec = _record(store, record_id)
    if fields:
        unknown = [f for f in fields if f not in rec.data]
        if unknown:
            raise UsageError(
                f"record {rec.event_id} ({rec.form}) has no field {', '.join(unknown)} "
                f"(fields: {', '.join(rec.data) or 'none'})"
            )
        names = list(dict.fromkeys(fields))
    else:
        names = list(rec.data)
    if not names:
        raise Refused(f"record {rec.event_id} has no values to verify")
    chosen = _sources(reading, rec, sources)
    session.site.verify_password(session, session.user, password)
    from . import users

    user = users.get(store, session.user)
    body: dict[str, Any] = {
        "target": rec.event_id,
        "form": rec.form,
        "scope": "fields" if fields else "record",
        "fields": names,
        "values": {n: value_hash(rec.data.get(n)) for n in names},
        "sources": chosen,
        "meaning": MEANING,
        "signer": session.user,
        "full_name": user["full_name"] if user else session.user,
    }
    if note and note.strip():
        body["note"] = note.strip()
    return session.append(type=EVENT_SDV, subject=rec.subject, body=body).event


@common_dialect
def _verified(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        "INSERT INTO sdv_marks (event_id, target_event, subject, form, scope, fields, value_hashes, sources,"
        " user_id, full_name, at, hlc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            e.id,
            b["target"],
            e.subject,
            b["form"],
            b["scope"],
            dumps(b["fields"]),
            dumps(b["values"]),
            dumps(b["sources"]),
            b["signer"],
            b["full_name"],
            e.ts,
            e.hlc,
        ),
    )


# -- read models -------------------------------------------------------------------------------


@dataclass
class Mark:
    event_id: str
    scope: str
    fields: list[str]
    values: dict[str, str]
    sources: list[str]
    user: str
    full_name: str
    at: str
    hlc: str

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "meaning": MEANING}


@dataclass
class FieldSdv:
    name: str
    state: str
    mark: Mark | None = None
    changed_by: list[str] = field(default_factory=list)  # amendments after the mark

    def as_json(self) -> dict[str, Any]:
        return {
            "field": self.name,
            "state": self.state,
            "verified_by": self.mark.event_id if self.mark else None,
            "changed_by": self.changed_by,
        }


@dataclass
class RecordSdv:
    """A record's SDV state, field by field (form order), with every mark ever made on it."""

    event_id: str
    form: str
    subject: str | None
    state: str
    fields: list[FieldSdv]
    marks: list[Mark]
    notice: str | None = None
    """Set when the record's version is not loaded here (`protocol.record_not_loaded`)."""

    @property
    def changed_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.state == CHANGED]

    @property
    def last_mark(self) -> Mark | None:
        return self.marks[-1] if self.marks else None

    def summary(self) -> str:
        """One line, as the casebook and the CLI say it."""
        m = self.last_mark
        if self.state == UNVERIFIED or m is None:
            return "source data: not verified"
        who = f"{m.full_name} ({m.user}) at {m.at}"
        if self.state == CHANGED:
            return f"CHANGED SINCE VERIFIED: {', '.join(self.changed_fields)} amended after verification by {who}"
        if self.state == PARTLY:
            done = [f.name for f in self.fields if f.state == VERIFIED]
            return f"source data partly verified ({', '.join(done)}) by {who}"
        return f"source data verified by {who} against {', '.join(s[:19] + '…' for s in m.sources)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "record": self.event_id,
            "form": self.form,
            "subject": self.subject,
            "state": self.state,
            "fields": [f.as_json() for f in self.fields],
            "marks": [m.as_json() for m in self.marks],
            **({"notice": self.notice} if self.notice else {}),
        }


def _marks(store: Store, record_id: str) -> list[Mark]:
    return [
        Mark(
            r["event_id"],
            r["scope"],
            json.loads(r["fields"]),
            json.loads(r["value_hashes"]),
            json.loads(r["sources"]),
            r["user_id"],
            r["full_name"],
            r["at"],
            r["hlc"],
        )
        for r in store.rows(
            "SELECT * FROM sdv_marks WHERE target_event = ? ORDER BY hlc, event_id", (record_id,)
        )
    ]


def _field_order(store: Store, rec: Record) -> tuple[list[str], str | None]:
    """The record's fields in its form's order, under the version it was captured under, and the notice
    when that version is not loaded here (then in stored order: no other version's form stands in)."""
    from . import protocol

    form, _ref, notice = protocol.record_definition(store, rec.event_id, rec.form)
    names = [n for n in (form.fields if form else {}) if n in rec.data]
    return names + [n for n in rec.data if n not in names], notice


def record_status(store: Store, record_id: str) -> RecordSdv:
    """The SDV state of one record and each of its fields, now."""
    rec = _record(store, record_id)
    marks = _marks(store, rec.event_id)
    amendments = store.rows(
        "SELECT a.event_id, a.field, e.hlc FROM amendments a JOIN events e ON e.id = a.event_id"
        " WHERE a.target_event = ? ORDER BY e.hlc",
        (rec.event_id,),
    )
    out = []
    order, notice = _field_order(store, rec)
    for name in order:
        covering = [m for m in marks if name in m.values]
        if not covering:
            out.append(FieldSdv(name, UNVERIFIED))
            continue
        mark = covering[-1]
        later = [a["event_id"] for a in amendments if a["field"] == name and a["hlc"] > mark.hlc]
        holds = mark.values[name] == value_hash(rec.data.get(name)) and not later
        out.append(FieldSdv(name, VERIFIED if holds else CHANGED, mark, later))
    states = {f.state for f in out}
    if CHANGED in states:
        state = CHANGED
    elif states == {VERIFIED}:
        state = VERIFIED
    elif VERIFIED in states:
        state = PARTLY
    else:
        state = UNVERIFIED
    return RecordSdv(rec.event_id, rec.form, rec.subject, state, out, marks, notice)


def record(session: Session, record_id: str, *, wards: SqlStore | None = None) -> RecordSdv:
    """`record_status` for a signed-in user (the audit screen's read model).

    `wards`: where the records are (a PostgreSQL hub's database, `sync.hub.ledger_store`); the site's file
    when not given. What it reads is in the common dialect (JSON read in Python).
    """
    session.require("record.read", what="read source-data verification")
    store: Any = wards if wards is not None else session.store
    return record_status(store, record_id)


def overview(
    session: Session, *, participant: str | None = None, wards: SqlStore | None = None
) -> dict[str, Any]:
    """Counts per participant and form (verified, partly, changed since verified, unverified), and each record.

    Records of participants only (the casebook); `participant` narrows it to one. `wards`: as `record`.
    """
    session.require("record.read", what="read source-data verification")
    store: Any = wards if wards is not None else session.store
    sql = "SELECT r.event_id, r.subject, r.form FROM records r JOIN events e ON e.id = r.event_id"
    params: tuple[Any, ...] = ()
    if participant:
        sql += " WHERE r.subject = ?"
        params = (f"participant:{participant}",)
    else:
        sql += " WHERE r.subject LIKE 'participant:%'"
    rows = store.rows(sql + " ORDER BY e.pos", params)
    if participant and not rows:
        raise Refused(f"unknown participant {participant} (no records about participant:{participant} here)")
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    records = []
    for r in rows:
        st = record_status(store, r["event_id"])
        pid = (r["subject"] or "").removeprefix("participant:")
        g = groups.setdefault(
            (pid, r["form"]),
            {
                "participant": pid,
                "form": r["form"],
                VERIFIED: 0,
                PARTLY: 0,
                CHANGED: 0,
                UNVERIFIED: 0,
                "records": 0,
            },
        )
        g[st.state] += 1
        g["records"] += 1
        records.append({**st.as_json(), "participant": pid, "summary": st.summary()})
    totals = {
        k: sum(g[k] for g in groups.values()) for k in (VERIFIED, PARTLY, CHANGED, UNVERIFIED, "records")
    }
    return {"groups": list(groups.values()), "totals": totals, "records": records}


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_verified, EVENT_SDV)
