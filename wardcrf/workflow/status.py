"""Read models: a participant's state, the participant list, and what is due today.

Everything here is computed from the projections at the moment of asking
(never stored), so a deviation or a "missing dose" always reflects the
records as they are now, amendments included.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from .. import protocol as protocols
from ..clock import zone
from ..errors import Refused
from ..site import Session
from ..store import Store
from . import dosing, safety
from .base import Participant, get_participant, now, records_of
from .participants import age_on, consent_state, sentinel_state


def status_of(p: Participant, consent_ok: bool, doses_given: int, planned: int) -> str:
    if not consent_ok:
        return "consent incomplete"
    if not p.screening_event:
        return "consented"
    if not p.eligible:
        # an amended screening can make an enrolled participant ineligible: say so, never hide it
        return "enrolled, no longer eligible" if p.enrollment_event else "screen failure"
    if not p.enrollment_event:
        return "eligible, not enrolled"
    if doses_given == 0:
        return "enrolled"
    if doses_given < planned:
        return "in treatment"
    return "treatment complete"


def summary(store: Store, pid: str, at: datetime | None = None) -> dict[str, Any]:
    """Everything a ward needs to know about one participant now."""
    p = get_participant(store, pid)
    if p is None:
        raise Refused(f"unknown participant {pid} (see `wardcrf participant list`)")
    pid = p.id  # as stored, whatever case or padding was typed
    proto = protocols.active(store)
    sched = proto.schedule
    at = at or now()
    tz = zone(sched.zone)
    consent_ok, consent_why = consent_state(store, p, proto.consent.witnesses)
    doses = dosing.doses_of(store, pid)
    deviations: list[dict[str, Any]] = []
    for d in doses:
        if d["window"] in ("early", "late"):
            deviations.append(
                {
                    "kind": f"{d['window']} dose",
                    "dose": d["dose_number"],
                    "due": d["due"],
                    "given": d["start"],
                    "event": d["event_id"],
                }
            )
    # Why the next dose cannot be given now: the same rules `dosing.check_dose` refuses by.
    holds: list[str] = []
    if p.enrollment_event and p.eligible is False:
        deviations.append(
            {
                "kind": "ineligible after enrollment",
                "failed": p.failed_criteria,
                "detail": f"failed: {', '.join(p.failed_criteria)}; {p.screening_event}",
                "event": p.screening_event,
            }
        )
        holds.append(f"no longer eligible: {', '.join(p.failed_criteria)}")
    positive = [t["_event"] for t in records_of(store, pid, "skin_test") if t.get("result") == "positive"]
    if positive:
        holds.append(f"positive skin test {positive[0]}")
        if doses:
            deviations.append(
                {"kind": "dosed after a positive skin test", "detail": positive[0], "event": positive[0]}
            )
    next_dose = None
    hold = safety.hold(store)
    if hold:
        holds.insert(0, "DSMG hold")
    if p.enrolled_on and len(doses) < sched.doses:
        enrolled = date.fromisoformat(p.enrolled_on)
        n = len(doses) + 1
        due = dosing.due_time(enrolled, n, sched.time, sched.zone)
        win = timedelta(minutes=sched.window_minutes)
        local_now = at.astimezone(tz)
        if holds:
            state = "held"
        elif local_now < due - win:
            state = "upcoming"
        elif local_now <= due + win:
            state = "due now"
        else:
            state = "overdue"
        next_dose = {
            "dose": n,
            "due": due.isoformat(timespec="minutes"),
            "window": [
                (due - win).isoformat(timespec="minutes"),
                (due + win).isoformat(timespec="minutes"),
            ],
            "state": state,
        }
        if holds:
            next_dose["hold"] = "; ".join(holds)
        for m in range(n, sched.doses + 1):
            due_m = dosing.due_time(enrolled, m, sched.time, sched.zone)
            if local_now > due_m + win:
                deviations.append(
                    {
                        "kind": "missing dose",
                        "dose": m,
                        "due": due_m.isoformat(timespec="minutes"),
                        "given": None,
                        "event": None,
                    }
                )
    aes = store.rows("SELECT * FROM adverse_events WHERE participant = ? ORDER BY onset, event_id", (pid,))
    pending = {r["event_id"] for r in safety.review_list(store)}
    age = None
    if p.dob_date and p.screening_date:
        age = age_on(p.dob_date, date.fromisoformat(p.screening_date))
    planned = sched.doses
    return {
        "id": p.id,
        "status": status_of(p, consent_ok, len(doses), planned),
        "sex": p.sex,
        "age": age,
        "consent": {
            "valid": consent_ok,
            "detail": consent_why,
            "event": p.consent_event,
            "time": p.consent_time,
            "version": p.consent_version,
        },
        "eligible": p.eligible,
        "failed_criteria": p.failed_criteria,
        "enrolled_on": p.enrolled_on,
        "doses_given": len(doses),
        "doses_planned": planned,
        "doses": [
            {
                "dose": d["dose_number"],
                "start": d["start"],
                "day": d["day"],
                "window": d["window"],
                "kit_id": d["kit_id"],
                "particles": d["particles"],
                "event": d["event_id"],
            }
            for d in doses
        ],
        "next_dose": next_dose,
        "cumulative_particles": dosing.cumulative_particles(store, pid),
        "deviations": deviations,
        "open_aes": [
            {
                "event": a["event_id"],
                "term": a["term"],
                "grade": a["grade"],
                "serious": bool(a["serious"]),
                "onset": a["onset"],
                "report_due": a["report_due"],
                "dsmg_review_pending": a["event_id"] in pending,
            }
            for a in aes
            if not a["end"] and a["outcome"] not in ("recovered", "recovered_with_sequelae", "fatal")
        ],
        "adverse_events": len(aes),
        # prespecified events reported after a dose without their AE form (an open item; blocks sign-off)
        "ae_expected": safety.expected_aes(store, pid),
        "signoff": safety.signoff_state(store, pid),
        "dsmg_hold": hold,
    }


def list_participants(session: Session) -> list[dict[str, Any]]:
    session.require("record.read", what="read participants")
    ids = [r[0] for r in session.store.execute("SELECT id FROM participants ORDER BY number")]
    at = now()
    out = []
    for pid in ids:
        s = summary(session.store, pid, at)
        out.append(
            {
                k: s[k]
                for k in (
                    "id",
                    "status",
                    "sex",
                    "age",
                    "enrolled_on",
                    "doses_given",
                    "doses_planned",
                    "cumulative_particles",
                )
            }
            | {
                "deviations": len(s["deviations"]),
                "open_aes": len(s["open_aes"]),
                "ae_expected": len(s["ae_expected"]),
                "next_dose": s["next_dose"],
                "signoff": s["signoff"]["state"],
            }
        )
    return out


def show(session: Session, pid: str) -> dict[str, Any]:
    session.require("record.read", what="read participants")
    return summary(session.store, pid)


def today(session: Session, at: datetime | None = None) -> dict[str, Any]:
    """What is due or overdue now on this ward, most urgent first."""
    session.require("record.read", what="read the ward's worklist")
    store = session.store
    proto = protocols.active(store)
    at = at or now()
    tz = zone(proto.schedule.zone)
    local_today = at.astimezone(tz).date()
    items: list[dict[str, Any]] = []
    rank = {"overdue": 0, "due now": 1, "upcoming": 2, "held": 3}
    for (pid,) in store.execute("SELECT id FROM participants ORDER BY number").fetchall():
        s = summary(store, pid, at)
        nd = s["next_dose"]
        if nd and (
            nd["state"] in ("overdue", "due now", "held")
            or datetime.fromisoformat(nd["due"]).date() == local_today
        ):
            items.append(
                {
                    "participant": pid,
                    "what": f"dose {nd['dose']}",
                    "due": nd["due"],
                    "state": nd["state"],
                    **({"hold": nd["hold"]} if nd.get("hold") else {}),
                }
            )
            pre = [
                v
                for v in records_of(store, pid, "vitals")
                if v.get("timepoint") == "pre_dose" and v.get("dose") == nd["dose"]
            ]
            if not pre and nd["state"] != "held":
                items.append(
                    {
                        "participant": pid,
                        "what": f"pre-dose vitals (dose {nd['dose']})",
                        "due": nd["due"],
                        "state": nd["state"],
                    }
                )
        for d in s["doses"]:
            post = store.one(
                "SELECT 1 FROM vitals WHERE participant = ? AND timepoint = 'post_dose' AND dose = ?",
                (pid, d["dose"]),
            )
            if not post:
                items.append(
                    {
                        "participant": pid,
                        "what": f"post-dose vitals (dose {d['dose']})",
                        "due": d["start"],
                        "state": "overdue",
                    }
                )
            asked = [c for c in records_of(store, pid, "post_dose_check") if c.get("dose") == d["dose"]]
            if not asked:
                items.append(
                    {
                        "participant": pid,
                        "what": f"post-dose prespecified events (dose {d['dose']})",
                        "due": d["start"],
                        "state": "overdue",
                    }
                )
        for missing in s["ae_expected"]:
            items.append(
                {
                    "participant": pid,
                    "what": f"adverse event form for {missing['event']} reported after dose {missing['dose']}",
                    "due": missing["time"],
                    "state": "overdue",
                }
            )
    for ae in safety.review_list(store):
        items.append(
            {
                "participant": ae["participant"],
                "what": f"DSMG relatedness review of SAE {ae['event_id']}",
                "due": ae["report_due"],
                "state": "pending",
            }
        )
        if ae["report_due"] and date.fromisoformat(ae["report_due"]) >= local_today - timedelta(days=1):
            items.append(
                {
                    "participant": ae["participant"],
                    "what": f"expedited report of SAE {ae['event_id']}",
                    "due": ae["report_due"],
                    "state": "due",
                }
            )
    sentinel = sentinel_state(store, proto.sentinel_participants)
    for s_id in sentinel["waiting_for_dsmg"]:
        items.append(
            {
                "participant": s_id,
                "what": "DSMG decision on sentinel safety data (enrollment gated)",
                "due": None,
                "state": "pending",
            }
        )
    items.sort(key=lambda i: (rank.get(i["state"], 4), i["due"] or "", i["participant"]))
    return {
        "now": at.astimezone(tz).isoformat(timespec="minutes"),
        "zone": proto.schedule.zone,
        "dsmg_hold": safety.hold(store),
        "items": items,
    }
