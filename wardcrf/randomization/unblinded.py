"""The trial's unblinding at the hub, and the statistician's unblinded export.

A blinded trial is unblinded once, at the hub, by an admin with a reason
(`randomization.trial_unblinded`: database lock, final analysis, a DSMB
request). Only after that may an admin at the hub write the export that
joins every allocated participant to their arm (from the hub's own sealed
copy of each list), and making it is an event (`randomization.exported`:
the file's name, rows and SHA-256), like every plaintext export. Open-label
lists need no unblinding: their arms were never hidden.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import devicekeys, text
from ..errors import Refused
from ..sqlstore import SqlStore, own_keys_store
from . import sealing
from .service import own_identity

if TYPE_CHECKING:
    from ..eventlog import Event
    from ..site import Session

COLUMNS = (
    "participant",
    "site",
    "list",
    "stratum",
    "position",
    "kit",
    "arm",
    "allocated_at",
    "allocation_event",
)


def _hub_only(session: Session, what: str) -> None:
    session.require("randomization.export", what=what)
    if own_identity(session.store)[2] != "hub":
        raise Refused(f"{what}: at the hub only, never on a ward laptop")


def unblind_trial(session: Session, protocol_id: str, reason: str) -> Event:
    """Record that a blinded trial is unblinded (an admin at the hub, with a reason)."""
    _hub_only(session, "unblind a trial")
    reason = text.check(reason, field="reason", multiline=True).strip()
    if not reason:
        raise Refused(
            "unblinding a trial needs a reason (--reason), e.g. database locked for the final analysis"
        )
    known = session.store.one(
        "SELECT 1 FROM rand_lists WHERE protocol_id = ? AND reveal = 'kit'", (protocol_id,)
    )
    if known is None:
        raise Refused(f"no blinded allocation list of protocol {protocol_id!r} at this hub")
    if is_unblinded(session, protocol_id):
        raise Refused(f"trial {protocol_id} is already unblinded")
    return session.append(
        type="randomization.trial_unblinded",
        subject=f"protocol:{protocol_id}",
        body={"protocol": protocol_id, "reason": reason},
    ).event


def is_unblinded(session: Session, protocol_id: str) -> bool:
    return (
        session.store.one(
            "SELECT 1 FROM events WHERE type = 'randomization.trial_unblinded' AND subject = ?",
            (f"protocol:{protocol_id}",),
        )
        is not None
    )


def _line(own: SqlStore, store: SqlStore, event_id: str) -> str | None:
    """The line of the event that made a list: in the hub's own log, else (a list a ward's event made) the
    log `store` reads."""
    for log in dict.fromkeys([own, store]):
        line = log.scalar("SELECT line FROM events WHERE id = ?", (event_id,))
        if line is not None:
            return str(line)
    return None


@dataclass(frozen=True)
class Export:
    out: Path
    rows: int
    sha256: str
    event_id: str


def export(session: Session, protocol_id: str, out: Path, *, reading: Session | None = None) -> Export:
    """Write participant-to-arm rows of every list of `protocol_id` (CSV), atomically, and log it.

    `reading`: the same sign-in over where the wards' allocations are (a PostgreSQL hub's database read in
    place, `cli.common.in_place`); `session` when not given. The lists, their sealed entries and the trial's
    unblinding are the hub's own events (`session`'s file); the export is logged through `session`.
    """
    _hub_only(session, "write the unblinded export")
    reading = reading or session
    store = reading.store
    own = own_keys_store(store)  # the hub's file: its keys, and the events that made its lists
    lists = store.rows(
        "SELECT * FROM rand_lists WHERE protocol_id = ? ORDER BY issued_at, rowid", (protocol_id,)
    )
    lines = {lst["event_id"]: _line(own, store, lst["event_id"]) for lst in lists}
    lists = [lst for lst in lists if lines[lst["event_id"]] is not None]
    if not lists:
        raise Refused(f"no allocation list of protocol {protocol_id!r} at this hub")
    if any(lst["reveal"] == "kit" for lst in lists) and not is_unblinded(session, protocol_id):
        raise Refused(
            f"trial {protocol_id} is still blinded: an admin unblinds it first "
            "(`wardcrf hub randomization unblind-trial`), then the export joins arms to participants"
        )
    keys = devicekeys.load(own, own_identity(own)[1])
    if keys is None:
        raise Refused("this hub has no keys")
    rows = []
    for lst in lists:
        body = json.loads(str(lines[lst["event_id"]]))["body"]
        plain = sealing.hub_record(body, keys.age_identity)
        by_slot = {(e["stratum"], int(e["position"])): e for e in plain["document"]["entries"]}
        for a in store.rows(
            "SELECT * FROM rand_allocations WHERE list_id = ? ORDER BY stratum, position", (lst["list_id"],)
        ):
            entry = by_slot.get((a["stratum"], int(a["position"])), {})
            rows.append(
                (
                    a["participant"],
                    lst["site"],
                    lst["list_id"],
                    a["stratum"],
                    a["position"],
                    entry.get("kit") or "",
                    entry.get("arm") or "",
                    a["ts"],
                    a["event_id"],
                )
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            w.writerows(rows)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise Refused(f"cannot write {out}: {exc.strerror}") from None
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    try:
        event = session.append(
            type="randomization.exported",
            subject=f"protocol:{protocol_id}",
            body={"protocol": protocol_id, "file": out.name, "rows": len(rows), "sha256": digest},
        ).event
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return Export(out, len(rows), digest, event.id)
