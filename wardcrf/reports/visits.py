"""What the visits owe, per participant, now (`wardcrf report visits`; issue 17).

The schedule of assessments of a format-2 version (`[[visits]]`) read the way
the ward reads it (`workflow.engine_rules.summary`, the participant's own
version): every visit occurrence on the ward's list with the required forms
it still owes and its state — due now, window closing, overdue (its window
closed with a form missing), upcoming — and the calendar visits not yet
placed because the event they are counted from (a first dose, a declared
anchor) has not happened, with the day they will be counted from. Done
occurrences are counted, not listed. A coordinator's list of what to chase;
`wardcrf today` is the ward's list of what to do now.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from .. import protocol as protocols
from ..clock import now_utc, zone
from ..errors import Refused
from .render import Doc, Table

if TYPE_CHECKING:
    from ..site import Session

OPEN_STATES = ("overdue", "window closing", "due now", "upcoming")
"""The states listed, most urgent first (a visit per administration may also be held or missed)."""


class VisitRow(TypedDict):
    participant: str
    visit: str
    """The visit's code (ODM SE.CODE)."""
    name: str
    """SDTM VISIT: "DAY 28"."""
    state: str
    due: str
    """Its local date (a calendar visit) or time (a visit per administration); empty when not yet placed."""
    window: list[str]
    """First and last local dates of a calendar visit's window; empty otherwise."""
    owed: list[str]
    """The required forms not recorded."""
    placed_from: str
    """A visit not yet placed: what will date it ("day 8 after first dose"); empty otherwise."""


class VisitsReport(TypedDict):
    protocol: dict[str, str]
    at: str
    participants: int
    counts: dict[str, int]
    """Occurrences by state (done included), and `not yet placed`."""
    owed: list[VisitRow]
    """Occurrences owing a form, most urgent first."""
    not_placed: list[VisitRow]


def compute(session: Session, at: datetime | None = None) -> VisitsReport:
    """Every enrolled participant's visits on a format-2 ward, at `at` (default now)."""
    from ..workflow.amendments import not_loaded_of, protocols_of
    from ..workflow.base import participant_from_row
    from ..workflow.engine_rules import NOT_PLACED, summary

    session.require("export.data", what="export or report the trial's data")
    store = session.store
    proto = protocols.active(store)
    if proto.engine is None:
        raise Refused(
            f"{proto.id} {proto.version} is a format-1 protocol, which declares no visits to report: "
            "what is due is `wardcrf today`"
        )
    at = at or now_utc()
    tz = zone(str(store.scalar("SELECT zone FROM site WHERE id = 1") or "UTC"))
    people = [
        participant_from_row(r)
        for r in store.rows("SELECT * FROM participants WHERE enrollment_event IS NOT NULL ORDER BY number")
    ]
    unloaded = not_loaded_of(store, people)
    if unloaded:
        # Their visits are their version's: refused, as every report of records under such a version is
        # (`Dataset.require_versions`), never listed under another version's schedule nor left out unsaid.
        first, named = next(iter(unloaded.items()))
        more = f" (and {len(unloaded) - 1} other participant(s))" if len(unloaded) > 1 else ""
        raise Refused(
            f"{first}{more} is on {named}, which is not loaded on this laptop: their visits are that "
            "version's and no other version stands in; load it with `wardcrf protocol load FILE` and run "
            "this again; nothing was written"
        )
    theirs = protocols_of(store, people)  # each on their own version (amendments)
    counts: dict[str, int] = {}
    owed: list[VisitRow] = []
    waiting: list[VisitRow] = []
    for p in people:
        pproto = theirs.get(p.id, proto)
        if pproto.engine is None:
            continue  # a participant still on a format-1 version: no visits declared
        for v in summary(store, pproto, p, at).get("visits", ()):
            counts[v["state"]] = counts.get(v["state"], 0) + 1
            row: VisitRow = {
                "participant": p.id,
                "visit": v["visit"],
                "name": v["name"],
                "state": v["state"],
                "due": v["due"],
                "window": list(v.get("window", [])),
                "owed": list(v["owed"]),
                "placed_from": v.get("placed_from", ""),
            }
            if v["state"] == NOT_PLACED:
                waiting.append(row)
            elif v["owed"] and v["state"] != "done":
                owed.append(row)
    rank = {s: i for i, s in enumerate(OPEN_STATES)}
    owed.sort(key=lambda r: (rank.get(r["state"], len(rank)), r["due"], r["participant"]))
    return {
        "protocol": {"id": proto.id, "version": proto.version},
        "at": at.astimezone(tz).isoformat(timespec="minutes"),
        "participants": len(people),
        "counts": counts,
        "owed": owed,
        "not_placed": waiting,
    }


def document(data: VisitsReport) -> Doc:
    doc = Doc(
        f"Visits — {data['protocol']['id']} version {data['protocol']['version']}",
        f"What the schedule of assessments owes at {data['at']}, {data['participants']} participant(s) enrolled.",
    )
    c = data["counts"]
    s = doc.section("Forms owed")
    s.text.append(
        ", ".join(f"{c.get(state, 0)} {state}" for state in OPEN_STATES)
        + f"; {c.get('done', 0)} done (visit occurrences)."
    )
    s.tables.append(
        Table(
            ["participant", "visit", "due", "window", "state", "forms owed"],
            [
                [
                    r["participant"],
                    r["name"],
                    r["due"].replace("T", " "),
                    " to ".join(r["window"]) or "—",
                    r["state"],
                    ", ".join(r["owed"]),
                ]
                for r in data["owed"]
            ],
        )
    )
    s = doc.section("Not yet placed")
    s.text.append(
        f"{len(data['not_placed'])} visit(s) counted from an event that has not happened yet "
        "(placed once it is recorded)."
    )
    s.tables.append(
        Table(
            ["participant", "visit", "counted from"],
            [[r["participant"], r["name"], r["placed_from"]] for r in data["not_placed"]],
        )
    )
    return doc
