"""The auditor's views: a record's photos, and the photos one audit-trail entry concerns.

Each photo is re-hashed at the time of reading and comes with who bound
it, when, which amendment replaced it, and its capture-time warning, so an
auditor years later sees whether each piece of evidence still checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wardcrf.errors import Refused, WardError
from wardcrf.evidence import INTACT, RecordPhoto, reference

from .capture import capture_gap, human_span
from .catalog import get_info
from .originals import hash_status, read_original
from .references import referenced_photos, refs_in
from .validate import PhotoLimits

if TYPE_CHECKING:
    from wardcrf.site import Session


def record_photos(
    session: Session, record_event: str, *, limits: PhotoLimits | None = None
) -> list[RecordPhoto]:
    """For one record: every photo bound to it, current first, with its checks.

    Each item says who bound the photo and when (and which amendment
    replaced it, if one did), its EXIF capture time, whether its stored
    bytes hash to its name, and a warning when the capture time is further
    than the configured span from the record's time.
    """
    session.require("record.read", what="view records")
    store = session.store
    rec = store.one("SELECT created_at FROM records WHERE event_id = ?", (record_event,))
    if rec is None:
        raise Refused(f"unknown record {record_event}")
    span = (limits or PhotoLimits.from_env()).capture_span
    rows = store.rows(
        "SELECT * FROM photo_bindings WHERE record_event = ?"
        " ORDER BY unbound_event IS NOT NULL, field, bound_at, sha256",
        (record_event,),
    )
    out = []
    for r in rows:
        sha = r["sha256"]
        info = get_info(store, sha)
        problem = None
        try:
            read_original(store, sha)
        except WardError as exc:
            problem = exc.message
        warn = None
        if info is not None:
            gap = capture_gap(info.captured_at, rec[0], session.ctx.zone)
            if gap is not None and gap > span:
                warn = f"taken {info.captured_at}, {human_span(gap)} from the record's time"
        out.append(
            RecordPhoto(
                record_event=record_event,
                field=r["field"],
                sha256=sha,
                current=r["unbound_event"] is None,
                bound_event=r["bound_event"],
                bound_by=r["bound_by"],
                bound_at=r["bound_at"],
                unbound_event=r["unbound_event"],
                unbound_by=r["unbound_by"],
                unbound_at=r["unbound_at"],
                captured_at=info.captured_at if info else None,
                camera=info.camera if info else None,
                format=info.format if info else None,
                width=info.width if info else None,
                height=info.height if info else None,
                size=info.size if info else None,
                hash_ok=problem is None,
                problem=problem,
                capture_warning=warn,
            )
        )
    return out


@dataclass(frozen=True)
class PhotoCheck:
    """One photo an event references, with its hash checked at the time of reading."""

    sha256: str
    field: str | None
    """The record field that binds it (None for a photo.imported event or a non-record event)."""
    current: bool
    """Still bound now (False: replaced by a later amendment)."""
    size: int | None
    format: str | None
    width: int | None
    height: int | None
    name: str | None
    status: str
    problem: str | None

    @property
    def ref(self) -> str:
        return reference(self.sha256)

    @property
    def ok(self) -> bool:
        return self.status == INTACT


def event_photos(session: Session, event_id: str) -> list[PhotoCheck]:
    """The photos an audit-trail entry concerns, each re-hashed now.

    A record's submission or amendment: every photo bound to that record,
    now or formerly (current first); a ``photo.imported`` event: that photo;
    any other event: the references in its body (cold-chain receipts and
    handovers carry photographed sheets). Reads only.
    """
    session.require("record.read", what="view photos")
    from wardcrf import eventlog

    store = session.store
    event = eventlog.get(store, event_id)
    if event is None:
        raise Refused(f"unknown event {event_id}")
    record = event.id if event.type == "record.submitted" else event.amends
    bound: list[tuple[str, str | None, bool]] = []
    if record and store.one("SELECT 1 FROM records WHERE event_id = ?", (record,)):
        rows = store.rows(
            "SELECT field, sha256, unbound_event FROM photo_bindings WHERE record_event = ?"
            " ORDER BY unbound_event IS NOT NULL, field, bound_at, sha256",
            (record,),
        )
        bound = [(r["sha256"], r["field"], r["unbound_event"] is None) for r in rows]
    else:
        bound = [(sha, None, True) for sha in sorted(refs_in(event.body) | referenced_photos(event))]
    out = []
    for sha, field_name, current in bound:
        info = get_info(store, sha)
        status, problem = hash_status(store, sha)
        out.append(
            PhotoCheck(
                sha256=sha,
                field=field_name,
                current=current,
                size=info.size if info else None,
                format=info.format if info else None,
                width=info.width if info else None,
                height=info.height if info else None,
                name=info.name if info else None,
                status=status,
                problem=problem,
            )
        )
    return out
