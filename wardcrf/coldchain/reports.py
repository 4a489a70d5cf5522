"""Read-only cold-chain views: custody, excursions, status and the handover audit."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypedDict, cast

from .. import ids
from ..clock import now_utc
from ..sqlstore import SqlStore
from ..store import Store
from . import analysis, config, custody, evidence
from .loggers import iso_z

if TYPE_CHECKING:
    from ..site import Session


# -- the read models the screens, the dashboard and `coldchain ... --json` show ------------------


class Disposition(TypedDict):
    """A kit's disposition after an excursion (a `cc_dispositions` row)."""

    kit_id: str
    decision: str
    """release or discard."""
    reason: str
    by_user: str | None
    event_id: str


class AffectedKit(TypedDict):
    kit: str
    disposition: Disposition | None
    """The `cc_dispositions` row (decision, reason, by_user, event_id), None while awaited."""


class ExcursionView(TypedDict):
    """One excursion with its affected kits and their dispositions (`excursion_view`)."""

    id: str
    kind: str
    unit: str | None
    """The storage unit, None for a receipt's transit excursion."""
    receipt: str | None
    start: str
    end: str
    duration_min: int
    min_c: float
    max_c: float
    open: bool
    detail: str | None
    product: str | None
    """The product whose range it was judged against; None: the unit's own range (or a receipt)."""
    lots: list[str]
    """The lots of the kits it touches."""
    kits: list[AffectedKit]
    awaiting_disposition: list[str]


class LastReading(TypedDict):
    at: str
    t: int
    temp_c: float
    source: str
    """``logger`` or ``manual``."""
    in_range: bool | None


class Span(TypedDict):
    start: str
    end: str | None
    """None: up to now."""


class UnitStatus(TypedDict):
    """One storage unit as the cold-chain screens and the freezer panel show it (`unit_status`)."""

    unit: str
    name: str
    location: str | None
    range_c: list[float]
    low_c: float
    high_c: float
    interval_min: int
    interval_s: int
    zone: str
    last_reading: LastReading | None
    in_range: bool | None
    open_excursions: list[ExcursionView]
    awaiting_disposition: list[str]
    unmonitored: Span | None
    status: str
    """``open excursion``, ``unmonitored`` or ``in range``."""


class KitState(TypedDict):
    kit: str
    lot: str
    state: str
    """One of `KIT_STATES`."""
    location: str | None


class PendingSignature(TypedDict):
    """A receipt's or handover's party whose valid signature is missing (`pending_signatures`)."""

    event_id: str
    kind: str
    at: str
    user: str
    party: str | None
    meaning: str
    kits: list[str]
    from_location: str | None
    to_location: str | None
    state: str
    """``missing`` or ``changed since signed``."""


class ManualReading(TypedDict):
    t: int
    temp_c: float


class ExcursionSpan(TypedDict):
    id: str
    start_t: int
    end_t: int
    min_c: float
    max_c: float
    open: bool


class ReadingsSummary(TypedDict):
    readings: int
    first: str
    last: str
    min_c: float
    max_c: float
    mean_c: float
    mkt_c: float
    gaps: int


class UnitReadings(TypedDict):
    """A unit's readings in a window, its range and the excursions there (`unit_readings`)."""

    unit: str
    name: str
    low_c: float
    high_c: float
    zone: str
    times: list[int]
    temps: list[float]
    manual: list[ManualReading]
    excursions: list[ExcursionSpan]
    summary: ReadingsSummary | None


class OutsideUnit(custody.ClockView):
    """A kit outside a monitored unit with its custody time left (`outside_units`)."""

    deadline_local: str
    """The deadline in site time, zone marked."""


class FreezerPanel(TypedDict):
    """The dashboard's freezer panel (`freezers`)."""

    units: list[UnitStatus]
    receipt_excursions: list[ExcursionView]
    outside_units: list[OutsideUnit]


class CurrentStay(TypedDict):
    """Where a kit is now and, in a unit, the temperatures logged since it arrived."""

    location: str
    since: int
    temperatures: custody.StayTemperatures | None
    """`custody.temperatures`: count, min, max and MKT over the stay (None: no logger readings)."""


class KitReport(TypedDict):
    """One kit's chain of custody and the dose gate's verdict now (`kit_report`)."""

    chain: custody.Chain
    dose_problems: list[str]
    current: CurrentStay | None


class UnitDefaults(TypedDict):
    """What a new storage unit gets unless its form says otherwise (`unit_defaults`)."""

    low: float
    high: float
    target: float | None
    zone: str


def custody_of(session: Session, kit_or_lot: str, *, when: int | None = None) -> list[custody.Chain]:
    """The chain of one kit, or of every kit of a lot."""
    session.require("record.read", what="read custody records")
    key = ids.key(kit_or_lot)
    store = session.store
    kits = [r[0] for r in store.execute("SELECT kit_id FROM cc_kits WHERE lot = ? ORDER BY kit_id", (key,))]
    if not kits:
        kits = [key]
    return [custody.chain(store, k, when) for k in kits]


def excursions(session: Session, store: SqlStore | None = None) -> list[ExcursionView]:
    """Every excursion worth showing, with the kits it holds and their dispositions.

    `store`: where the rows are when not in the session's file (a PostgreSQL
    hub's database, `sync.hubview.direct`; the functions this reads through
    run there too: tests/unit/test_hub_pg_evidence.py).
    """
    session.require("record.read", what="read excursions")
    store = store if store is not None else session.store
    return [
        excursion_view(store, x)
        for x in store.rows("SELECT * FROM cc_excursions ORDER BY start_t, excursion_id")
        if custody.relevant(store, x)
    ]


def excursion_view(store: SqlStore, x: dict[str, Any]) -> ExcursionView:
    """One `cc_excursions` row with its affected kits and their dispositions."""
    kits = custody.affected_kits(store, x)
    disp = {
        r["kit_id"]: cast(Disposition, r)
        for r in store.rows(
            "SELECT kit_id, decision, reason, by_user, event_id FROM cc_dispositions WHERE excursion_id = ?",
            (x["excursion_id"],),
        )
    }
    return ExcursionView(
        {
            "id": x["excursion_id"],
            "kind": x["kind"],
            "unit": x["unit_id"],
            "receipt": x["receipt_event"],
            "start": iso_z(x["start_t"]),
            "end": iso_z(x["end_t"]),
            "duration_min": (x["end_t"] - x["start_t"]) // 60,
            "min_c": x["min_c"],
            "max_c": x["max_c"],
            "open": bool(x["is_open"]),
            "detail": x["detail"],
            "product": x.get("product"),
            "lots": custody.lots_of(store, kits),
            "kits": [{"kit": k, "disposition": disp.get(k)} for k in kits],
            "awaiting_disposition": [k for k in kits if k not in disp],
        }
    )


def status(session: Session) -> dict[str, Any]:
    """Units with their last reading, open excursions and quarantined kits."""
    session.require("record.read", what="read cold-chain status")
    store = session.store
    units = []
    for u in store.rows("SELECT * FROM cc_units ORDER BY unit_id"):
        last = store.one(
            "SELECT t, temp_c, 'logger' FROM cc_readings WHERE unit_id = ? UNION ALL"
            " SELECT at, temp_c, 'manual' FROM cc_manual_readings WHERE unit_id = ? ORDER BY 1 DESC LIMIT 1",
            (u["unit_id"], u["unit_id"]),
        )
        kits = [
            r[0]
            for r in store.execute("SELECT kit_id FROM cc_kits ORDER BY kit_id")
            if custody.location_at(store, r[0], 2**62) == u["unit_id"]
        ]
        units.append(
            {
                "unit": u["unit_id"],
                "name": u["name"],
                "location": u["location"],
                "range_c": [u["low_c"], u["high_c"]],
                "zone": u["zone"],
                "interval_min": u["interval_s"] // 60,
                "last_reading": {"at": iso_z(last[0]), "temp_c": last[1], "source": last[2]}
                if last
                else None,
                "kits": kits,
            }
        )
    exc = [x for x in excursions(session) if x["awaiting_disposition"] or x["open"]]
    lim = config.limits(store)
    return {
        "range_source": lim.source,
        "units": units,
        "open_excursions": exc,
        "quarantined_kits": [{"kit": k, "excursion": x} for k, x in custody.quarantined_kits(store)],
        "outside_units": outside_units(store),
    }


def outside_units(store: Store, now: int | None = None) -> list[OutsideUnit]:
    """Kits outside a monitored unit with the custody time left before the limit, soonest first.

    For the dashboard's countdown, `coldchain status` and `today`: each
    `custody.Clock` as a dict (kit, lot, location, since, deadline,
    allowed_min, minutes_left, over_limit, bedside, step) plus `deadline_local`
    (site time, zone marked). Over the limit the kit can never be dosed.
    """
    t = int(now_utc().timestamp()) if now is None else now
    return [
        OutsideUnit(**c.as_dict(), deadline_local=custody.local_text(store, c.deadline))
        for c in custody.outside_units(store, t)
    ]


def handover_audit(session: Session) -> dict[str, Any]:
    """Every receipt and handover: parties, each signature's state, each photo's hash check."""
    session.require("audit.verify", what="audit handovers")
    store = session.store
    items = []
    ok = True
    for t in store.rows("SELECT * FROM cc_transfers ORDER BY at, event_id"):
        problems, sigs, photos = custody.transfer_checks(store, t)
        details = json.loads(t["details"])
        logger = details.get("logger") or None
        logger_state = None
        if logger:
            logger_state = {"sha256": logger["sha256"], "state": evidence.status(store, logger["sha256"])}
            if logger_state["state"] != "ok":
                problems.append(f"receipt {t['event_id']}: logger file is {logger_state['state']}")
        ok = ok and not problems
        items.append(
            {
                "event_id": t["event_id"],
                "kind": t["kind"],
                "at": iso_z(t["at"]),
                "from": {"party": t["from_party"], "user": t["from_user"], "location": t["from_location"]},
                "to": {"party": t["to_party"], "user": t["to_user"], "location": t["to_location"]},
                "kits": json.loads(t["kits"]),
                "condition": t["condition"],
                "signatures": sigs,
                "photos": photos,
                "logger_file": logger_state,
                "ok": not problems,
                "problems": problems,
            }
        )
    files = []
    for f in store.rows("SELECT event_id, sha256, name, unit_id FROM cc_logger_files ORDER BY event_id"):
        state = evidence.status(store, f["sha256"])
        ok = ok and state == "ok"
        files.append({**f, "state": state})
    return {"ok": ok, "transfers": items, "logger_files": files}


# -- read models for the ward app (and the dashboard) ------------------------------------

STALE_AFTER_S = 24 * 3600
"""A unit whose newest reading is older than this is shown as unmonitored.

Freezer loggers record continuously but are downloaded by hand (each
morning, before a dose), so "no reading for twice the interval" is the
normal state between downloads; a day without any reading, or a logging gap
inside the last day, is what a custodian must act on.
"""


def _unit_times(store: Store, unit_id: str, since: int) -> list[tuple[int, float, str]]:
    return [
        (int(r[0]), float(r[1]), str(r[2]))
        for r in store.execute(
            "SELECT t, temp_c, 'logger' FROM cc_readings WHERE unit_id = ? AND t >= ? UNION ALL"
            " SELECT at, temp_c, 'manual' FROM cc_manual_readings WHERE unit_id = ? AND at >= ? ORDER BY 1",
            (unit_id, since, unit_id, since),
        ).fetchall()
    ]


def unit_status(store: Store, *, now: int | None = None) -> list[UnitStatus]:
    """Each storage unit: its newest reading, unresolved excursions, gaps, one status word (pure read).

    - ``last_reading``: time, °C, ``logger`` or ``manual``, ``in_range``;
    - ``open_excursions``: the unit's excursions still to act on (still open,
      or with affected kits awaiting a disposition), each as `excursion_view`;
      ``awaiting_disposition`` lists the ids of those with kits waiting;
    - ``unmonitored``: the latest span without readings — none for
      `STALE_AFTER_S` up to `now` (``end`` None), or a logging gap within
      the last day;
    - ``status``, most urgent first: ``open excursion`` (newest reading
      outside the range, or an excursion still open), ``unmonitored`` (no
      reading at all, or the span above), else ``in range``.

    Receipt excursions belong to no unit and are not listed here (see
    `status`). `now` defaults to the clock (UTC epoch seconds). The
    dashboard's freezer panel and the cold-chain screens both show this.
    """
    from ..clock import now_utc

    t_now = int(now_utc().timestamp()) if now is None else now
    out: list[UnitStatus] = []
    for u in store.rows("SELECT * FROM cc_units ORDER BY unit_id"):
        uid = u["unit_id"]
        low, high = u["low_c"], u["high_c"]
        last = store.one(
            "SELECT t, temp_c, 'logger' FROM cc_readings WHERE unit_id = ? UNION ALL"
            " SELECT at, temp_c, 'manual' FROM cc_manual_readings WHERE unit_id = ? ORDER BY 1 DESC LIMIT 1",
            (uid, uid),
        )
        unresolved = []
        still_open = False
        for x in store.rows(
            "SELECT * FROM cc_excursions WHERE scope = 'unit' AND unit_id = ? ORDER BY start_t, excursion_id",
            (uid,),
        ):
            if not custody.relevant(store, x):
                continue
            view = excursion_view(store, x)
            still_open = still_open or view["open"]
            if view["open"] or view["awaiting_disposition"]:
                unresolved.append(view)
        in_range = None if last is None else bool(low <= last[1] <= high)
        gap: Span | None = None
        if last is not None:
            if t_now - last[0] > STALE_AFTER_S:
                gap = {"start": iso_z(last[0]), "end": None}  # None: up to now
            else:
                series = _unit_times(store, uid, last[0] - STALE_AFTER_S)
                found = analysis.gaps([r[0] for r in series], u["interval_s"])
                if found:
                    gap = {"start": iso_z(found[-1].start), "end": iso_z(found[-1].end)}
        if last is None:
            word = "unmonitored"
        elif still_open or not in_range:
            word = "open excursion"
        elif gap is not None:
            word = "unmonitored"
        else:
            word = "in range"
        out.append(
            {
                "unit": uid,
                "name": u["name"],
                "location": u["location"],
                "range_c": [low, high],
                "low_c": low,
                "high_c": high,
                "interval_min": u["interval_s"] // 60,
                "interval_s": u["interval_s"],
                "zone": u["zone"],
                "last_reading": {
                    "at": iso_z(last[0]),
                    "t": last[0],
                    "temp_c": last[1],
                    "source": last[2],
                    "in_range": in_range,
                }
                if last
                else None,
                "in_range": in_range,
                "open_excursions": unresolved,
                "awaiting_disposition": [v["id"] for v in unresolved if v["awaiting_disposition"]],
                "unmonitored": gap,
                "status": word,
            }
        )
    return out


KIT_STATES = ("awaiting receipt", "in stock", "quarantined", "used", "discarded")


def kit_states(store: Store) -> list[KitState]:
    """Every registered kit with its state (one of `KIT_STATES`) and where it is now.

    Discarded (a disposition said so) wins over used (a dose record names
    it), which wins over quarantined (an excursion or failed receipt awaits a
    disposition); a kit with no receipt yet is awaiting receipt; the rest are
    in stock, wherever they are (pharmacy, a unit, the bedside).
    """
    out: list[KitState] = []
    for kit, lot in store.execute("SELECT kit_id, lot FROM cc_kits ORDER BY kit_id").fetchall():
        where = custody.location_at(store, kit, 2**62)
        if custody.is_discarded(store, kit):
            state = "discarded"
        elif custody.used_by(store, kit):
            state = "used"
        elif any(x["disposition"] is None for x in custody.excursions_for(store, kit)):
            state = "quarantined"
        elif where is None:
            state = "awaiting receipt"
        else:
            state = "in stock"
        out.append({"kit": kit, "lot": lot, "state": state, "location": where})
    return out


def pending_signatures(store: Store) -> list[PendingSignature]:
    """Receipts, handovers and preparations at the pharmacy still missing a party's valid signature, oldest
    first (the transfers, then the preparations).

    A party with an account must sign ("handed over" / "received"); a
    signature invalidated by a later amendment counts as missing (the party
    signs again). The party signs with `services.sign_transfer` (a preparation: its pharmacist,
    `services.sign_preparation`).
    """
    from .. import signatures

    out: list[PendingSignature] = []
    for t in store.rows("SELECT * FROM cc_transfers ORDER BY at, event_id"):
        sigs = signatures.for_target(store, t["event_id"])
        for user, party, meaning in (
            (t["from_user"], t["from_party"], "handed over"),
            (t["to_user"], t["to_party"], "received"),
        ):
            if not user:
                continue
            if any(s.user == user and s.meaning == meaning and s.valid for s in sigs):
                continue
            changed = any(s.user == user and s.meaning == meaning for s in sigs)
            out.append(
                {
                    "event_id": t["event_id"],
                    "kind": t["kind"],
                    "at": iso_z(t["at"]),
                    "user": user,
                    "party": party,
                    "meaning": meaning,
                    "kits": json.loads(t["kits"]),
                    "from_location": t["from_location"],
                    "to_location": t["to_location"],
                    "state": "changed since signed" if changed else "missing",
                }
            )
    # a preparation at the pharmacy whose pharmacist's signature is missing (an amendment invalidated it):
    # the kit cannot be given until they sign it again (`services.sign_preparation`)
    for pr in store.rows(
        "SELECT event_id, kit_id, end_t, by_user FROM cc_preparations ORDER BY end_t, event_id"
    ):
        sigs = signatures.for_target(store, pr["event_id"])
        by = pr["by_user"]
        if any(s.user == by and s.meaning == "authored" and s.valid for s in sigs):
            continue
        out.append(
            {
                "event_id": pr["event_id"],
                "kind": "preparation",
                "at": iso_z(pr["end_t"]),
                "user": by,
                "party": by,
                "meaning": "authored",
                "kits": [pr["kit_id"]],
                "from_location": None,
                "to_location": None,
                "state": "changed since signed" if any(s.user == by for s in sigs) else "missing",
            }
        )
    return out


def unit_readings(
    store: Store, unit_id: str, *, since: int | None = None, until: int | None = None
) -> UnitReadings:
    """A unit's readings in [since, until] (logger and manual), its range and excursions there.

    Without `since`/`until` the window is the whole record. The summary
    (min/max/mean/MKT over the logger readings) is None when there are none.
    """
    from .services import unit_row

    unit = unit_row(store, unit_id)
    lo_t = -(2**62) if since is None else since
    hi_t = 2**62 if until is None else until
    rows = store.execute(
        "SELECT t, temp_c FROM cc_readings WHERE unit_id = ? AND t BETWEEN ? AND ? ORDER BY t",
        (unit_id, lo_t, hi_t),
    ).fetchall()
    times = [int(r[0]) for r in rows]
    temps = [float(r[1]) for r in rows]
    manual: list[ManualReading] = [
        {"t": int(r[0]), "temp_c": float(r[1])}
        for r in store.execute(
            "SELECT at, temp_c FROM cc_manual_readings WHERE unit_id = ? AND at BETWEEN ? AND ? ORDER BY at",
            (unit_id, lo_t, hi_t),
        )
    ]
    excursions_in: list[ExcursionSpan] = [
        {
            "id": x["excursion_id"],
            "start_t": x["start_t"],
            "end_t": x["end_t"],
            "min_c": x["min_c"],
            "max_c": x["max_c"],
            "open": bool(x["is_open"]),
        }
        for x in store.rows(
            "SELECT * FROM cc_excursions WHERE unit_id = ? AND start_t <= ? AND end_t >= ? ORDER BY start_t",
            (unit_id, hi_t, lo_t),
        )
        if custody.relevant(store, x)
    ]
    summary: ReadingsSummary | None = None
    if times:
        s = analysis.summarize(times, temps, unit["interval_s"], unit["low_c"], unit["high_c"])
        summary = {
            "readings": s.readings,
            "first": iso_z(s.first),
            "last": iso_z(s.last),
            "min_c": s.minimum,
            "max_c": s.maximum,
            "mean_c": round(s.mean, 2),
            "mkt_c": round(s.mkt, 2),
            "gaps": len(s.gaps),
        }
    return {
        "unit": unit_id,
        "name": unit["name"],
        "low_c": unit["low_c"],
        "high_c": unit["high_c"],
        "zone": unit["zone"],
        "times": times,
        "temps": temps,
        "manual": manual,
        "excursions": excursions_in,
        "summary": summary,
    }


def freezers(session: Session) -> FreezerPanel:
    """The dashboard's freezer panel: `unit_status`, and receipt excursions still unresolved."""
    session.require("record.read", what="read cold-chain status")
    store = session.store
    receipts = [
        v
        for v in (
            excursion_view(store, x)
            for x in store.rows(
                "SELECT * FROM cc_excursions WHERE scope = 'receipt' ORDER BY start_t, excursion_id"
            )
        )
        if v["open"] or v["awaiting_disposition"]
    ]
    return {
        "units": unit_status(store),
        "receipt_excursions": receipts,
        "outside_units": outside_units(store),
    }


# -- the screens' reads: each checks the role, then reads (screens never hold the store) ---------


def units(session: Session, *, now: int | None = None) -> list[UnitStatus]:
    """`unit_status` for a signed-in user."""
    session.require("record.read", what="read cold-chain status")
    return unit_status(session.store, now=now)


def kits(session: Session) -> list[KitState]:
    """`kit_states` for a signed-in user."""
    session.require("record.read", what="read kit states")
    return kit_states(session.store)


def awaiting_signatures(session: Session) -> list[PendingSignature]:
    """`pending_signatures` for a signed-in user."""
    session.require("record.read", what="read custody signatures")
    return pending_signatures(session.store)


def readings(
    session: Session, unit_id: str, *, since: int | None = None, until: int | None = None
) -> UnitReadings:
    """`unit_readings` for a signed-in user."""
    session.require("record.read", what="read temperature readings")
    return unit_readings(session.store, unit_id, since=since, until=until)


def unit_defaults(session: Session) -> UnitDefaults:
    """What a new storage unit gets unless the form says otherwise: the product's range, the site's zone."""
    session.require("record.read", what="read cold-chain settings")
    lim = config.limits(session.store)
    return {
        "low": lim.low_c,
        "high": lim.high_c,
        "target": lim.target_c,
        "zone": config.site_zone(session.store),
    }


def kit_report(session: Session, kit_or_lot: str, now: int) -> list[KitReport]:
    """Each kit's chain and its dose problems at `now` (a lot number gives every kit of the lot).

    "Dose problems" is the pre-dose gate's own verdict (`custody.dose_problems`), so the custody
    screen says what the dose form will say.
    """
    session.require("record.read", what="read custody records")
    key = ids.normalise(ids.KIT, kit_or_lot)
    out: list[KitReport] = []
    for chain in custody_of(session, key):  # checks the role
        store = session.store
        problems = custody.dose_problems(store, chain.kit, now) if chain.lot else chain.problems
        out.append(
            {"chain": chain, "dose_problems": problems, "current": _current_stay(store, chain.kit, now)}
        )
    return out


def _current_stay(store: Store, kit: str, now: int) -> CurrentStay | None:
    """Where the kit is now and, in a unit, the temperatures logged since it arrived.

    The chain itself (as `coldchain custody` prints it) judges closed stays
    only; the stay still running is shown here, and judged by the dose gate.
    """
    last = custody.last_step(store, kit)
    if (
        last is None
        or store.one("SELECT 1 FROM cc_thaws WHERE kit_id = ?", (kit,))
        or store.one("SELECT 1 FROM cc_preparations WHERE kit_id = ?", (kit,))
    ):
        return None
    temps = custody.temperatures(store, last["to_location"], last["at"], now)
    return {"location": last["to_location"], "since": last["at"], "temperatures": temps}
