"""One kit's chain of custody, and the pre-dose custody gate.

A kit's chain is its receipt followed by its handovers, ordered by time.
Between two steps the kit *stays* at the location the earlier step took it
to. The chain is unbroken when:

- the kit is registered in a lot and was received from a shipper;
- every step is signed by each party who has an account here ("handed
  over" / "received"), each signature still valid (not changed since
  signed); a party without an account is named and the photographed sheet
  they signed is attached, and every photo's stored bytes match its hash;
- each step starts where the previous one ended;
- every stay in a storage unit is covered by its logger (or manual
  readings) with no step longer than twice the unit's logging interval, and
  every stay elsewhere is within the transit allowance (bedside: the
  bedside allowance) — see `config`.

For a dose, additionally: the kit is at the bedside, was thawed there
before the dose, is not quarantined (an excursion in a unit while it was
there, or a failed receipt, without a disposition) nor discarded, not
expired and not already used. `check_dose` (the pre-dose gate) refuses
naming the first broken link; "already used" is not among its questions,
because the dose rule and the scan step ask it themselves, once, of the one
source (`wardcrf.kits.kit_use`) before they run the gates.
`dose_problems`, for the custody views, lists it too, from the same source.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypedDict

from .. import evidence, ids, kits, signatures
from ..errors import Refused
from ..sqlstore import SqlStore
from ..store import Store
from . import analysis, config
from .loggers import get_zone, iso_z, parse_when

# -- queries --------------------------------------------------------------------------


def steps(store: SqlStore, kit: str) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT t.* FROM cc_custody c JOIN cc_transfers t USING (event_id) WHERE c.kit_id = ?"
        " ORDER BY t.at, t.event_id",
        (kit,),
    )


def lot_of(store: SqlStore, kit: str) -> str | None:
    """The lot a kit is registered in, or None for an unknown kit."""
    row = store.one("SELECT lot FROM cc_kits WHERE kit_id = ?", (kit,))
    return str(row[0]) if row else None


def last_step(store: Store, kit: str) -> dict[str, Any] | None:
    rows = steps(store, kit)
    return rows[-1] if rows else None


def location_at(store: Store, kit: str, t: int) -> str | None:
    where = None
    for s in steps(store, kit):
        if s["at"] <= t:
            where = s["to_location"]
    return where


def is_unit(store: Store, location: str) -> bool:
    return store.one("SELECT 1 FROM cc_units WHERE unit_id = ?", (location,)) is not None


@dataclass
class Stay:
    location: str
    start: int
    end: int | None  # None: still there
    after: str  # the step that brought the kit here

    def as_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "start": iso_z(self.start),
            "end": iso_z(self.end) if self.end is not None else None,
            "after": self.after,
        }


def stays(store: SqlStore, kit: str, until: int | None = None) -> list[Stay]:
    out: list[Stay] = []
    rows = [s for s in steps(store, kit) if until is None or s["at"] <= until]
    for i, s in enumerate(rows):
        end = rows[i + 1]["at"] if i + 1 < len(rows) else until
        out.append(Stay(s["to_location"], s["at"], end, s["event_id"]))
    return out


def judges(store: SqlStore, exc: dict[str, Any], kit: str) -> bool:
    """Whether an excursion in a unit was judged against this kit's product's range.

    One judged against a product's own range (`product` set) touches that
    product's kits; one against the unit's own range touches the kits whose
    product is stored at that range — every kit when the protocol's products
    share one range (as before products were told apart).
    """
    if exc.get("scope") == "receipt":
        return True
    product = config.product_of_kit(store, kit)
    if exc.get("product"):
        return bool(exc["product"] == product.code)
    if config.single_range(store):
        return True
    unit = store.one("SELECT low_c, high_c FROM cc_units WHERE unit_id = ?", (exc["unit_id"],))
    return unit is None or (float(unit[0]), float(unit[1])) == product.range_c


def tolerated(store: SqlStore, exc: dict[str, Any], kit: str) -> bool:
    """An excursion this kit's product tolerates (`excursion.max_minutes`): closed and no longer than that."""
    if exc.get("scope") == "receipt" or exc.get("is_open"):
        return False
    allowed = config.product_of_kit(store, kit).tolerated_s
    return allowed > 0 and exc["end_t"] - exc["start_t"] <= allowed


def in_unit_during(store: SqlStore, exc: dict[str, Any], *, judged_only: bool = True) -> list[str]:
    """Kits in the excursion's unit at any time during its span (by the custody records, whenever they
    were entered); `judged_only`: only those whose product it was judged against (`judges`)."""
    candidates = [
        r[0]
        for r in store.execute(
            "SELECT DISTINCT c.kit_id FROM cc_custody c JOIN cc_transfers t USING (event_id)"
            " WHERE t.to_location = ? OR t.from_location = ? ORDER BY c.kit_id",
            (exc["unit_id"], exc["unit_id"]),
        )
    ]
    out = []
    for kit in candidates:
        if judged_only and not judges(store, exc, kit):
            continue
        for st in stays(store, kit):
            end = st.end if st.end is not None else float("inf")
            if st.location == exc["unit_id"] and st.start <= exc["end_t"] and end >= exc["start_t"]:
                out.append(kit)
                break
    return out


def relevant(store: SqlStore, exc: dict[str, Any]) -> bool:
    """Whether an excursion is one to show: a receipt's or a unit's own, always; one judged against a
    product's range, when a kit of that product was in the unit during it (a -20 °C freezer is out of
    a 2-8 °C product's range all the time, which matters only to kits of that product stored there)."""
    if exc.get("scope") == "receipt" or not exc.get("product"):
        return True
    return bool(in_unit_during(store, exc))


def lots_of(store: SqlStore, kits: list[str]) -> list[str]:
    """The lots of `kits`, each once, sorted (which lots an excursion touches)."""
    found = {lot_of(store, k) for k in kits}
    return sorted(x for x in found if x is not None)


def affected_kits(store: SqlStore, exc: dict[str, Any]) -> list[str]:
    """Kits an excursion quarantines: those in the unit during its span whose product it was judged
    against (`judges`) and whose product does not tolerate it, or the receipt's kits."""
    if exc["scope"] == "receipt":
        row = store.one("SELECT kits FROM cc_transfers WHERE event_id = ?", (exc["receipt_event"],))
        return list(json.loads(row[0])) if row else []
    return [k for k in in_unit_during(store, exc) if not tolerated(store, exc, k)]


def excursions_for(store: Store, kit: str) -> list[dict[str, Any]]:
    """Every excursion that touched this kit, each with its disposition (or None)."""
    found: list[dict[str, Any]] = []
    receipt_events = [s["event_id"] for s in steps(store, kit) if s["kind"] == "receipt"]
    for ev in receipt_events:
        found += store.rows("SELECT * FROM cc_excursions WHERE receipt_event = ? ORDER BY start_t", (ev,))
    for st in stays(store, kit):
        if not is_unit(store, st.location):
            continue
        end = st.end if st.end is not None else 2**62
        found += store.rows(
            "SELECT * FROM cc_excursions WHERE unit_id = ? AND start_t <= ? AND end_t >= ? ORDER BY start_t",
            (st.location, end, st.start),
        )
    seen: set[str] = set()
    out = []
    for x in found:
        if x["excursion_id"] in seen:
            continue
        seen.add(x["excursion_id"])
        if not judges(store, x, kit) or tolerated(store, x, kit):
            continue
        disp = store.rows(
            "SELECT decision, reason, by_user, event_id FROM cc_dispositions WHERE excursion_id = ? AND kit_id = ?",
            (x["excursion_id"], kit),
        )
        x["disposition"] = disp[0] if disp else None
        out.append(x)
    return out


def is_discarded(store: Store, kit: str) -> bool:
    return (
        store.one("SELECT 1 FROM cc_dispositions WHERE kit_id = ? AND decision = 'discard'", (kit,))
        is not None
    )


def quarantined_kits(store: Store) -> list[tuple[str, str]]:
    """(kit, excursion id) for every kit awaiting a disposition."""
    out = []
    for (kit,) in store.execute("SELECT kit_id FROM cc_kits ORDER BY kit_id").fetchall():
        for x in excursions_for(store, kit):
            if x["disposition"] is None:
                out.append((kit, x["excursion_id"]))
    return out


def coverage_problem(store: Store, unit_id: str, start: int, end: int) -> str | None:
    """None when readings cover [start, end] with no step over twice the interval; else the gap."""
    unit = store.rows("SELECT interval_s FROM cc_units WHERE unit_id = ?", (unit_id,))
    if not unit:
        return f"{unit_id} is not a registered storage unit"
    limit = 2 * unit[0]["interval_s"]
    params = (unit_id, start - limit, end + limit)
    rows = store.execute(
        "SELECT t FROM (SELECT t FROM cc_readings WHERE unit_id = ? AND t BETWEEN ? AND ?"
        " UNION SELECT at FROM cc_manual_readings WHERE unit_id = ? AND at BETWEEN ? AND ?) AS covered ORDER BY t",
        params + params,
    ).fetchall()
    times = [r[0] for r in rows]
    if not times:
        return f"no temperature readings for {unit_id} from {iso_z(start)} to {iso_z(end)} (import its logger file)"
    if times[0] - start > limit:
        return f"{unit_id} unmonitored from {iso_z(start)} to {iso_z(times[0])} (no readings)"
    if end - times[-1] > limit:
        return f"{unit_id} unmonitored from {iso_z(times[-1])} to {iso_z(end)} (import its logger file)"
    for a, b in itertools.pairwise(times):
        if b - a > limit:
            return f"{unit_id} unmonitored from {iso_z(a)} to {iso_z(b)} (logging gap)"
    return None


class StayTemperatures(TypedDict):
    """A unit's logger readings over a kit's stay (`temperatures`)."""

    readings: int
    min_c: float
    max_c: float
    mkt_c: float
    """Mean kinetic temperature, time-weighted by the logging interval."""


def temperatures(store: Store, unit_id: str, start: int, end: int) -> StayTemperatures | None:
    """Logger readings of a unit over a stay: count, min, max and time-weighted MKT."""
    rows = store.execute(
        "SELECT t, temp_c FROM cc_readings WHERE unit_id = ? AND t BETWEEN ? AND ? ORDER BY t",
        (unit_id, start, end),
    ).fetchall()
    if not rows:
        return None
    times = [r[0] for r in rows]
    temps = [r[1] for r in rows]
    interval = int(store.scalar("SELECT interval_s FROM cc_units WHERE unit_id = ?", (unit_id,)) or 0)
    return {
        "readings": len(rows),
        "min_c": min(temps),
        "max_c": max(temps),
        "mkt_c": round(analysis.mkt_series(times, temps, interval), 2),
    }


def photo_status(store: Store, ref: str) -> str:
    """'ok', or why the stored photo cannot be trusted."""
    photos = evidence.photo_evidence()
    if photos is None:
        return "unavailable (no photo store in this build)"
    status, _why, _data = photos.checked_original(store, ref)  # the photo store's one re-hash
    return {evidence.INTACT: "ok", evidence.MISSING: "missing"}.get(status, "altered")


# -- time left outside a monitored unit ------------------------------------------------------


class ClockView(TypedDict):
    """A kit's custody clock outside a monitored unit as `coldchain status --json` shows it (`Clock.as_dict`)."""

    kit: str
    lot: str | None
    location: str
    since: str
    deadline: str
    allowed_min: int
    minutes_left: int
    over_limit: bool
    bedside: bool
    step: str


@dataclass(frozen=True)
class Clock:
    """A kit outside a monitored unit: since when, the limit, and the custody time left.

    Outside a unit a kit may stay `allowed_s` (the transit allowance, or at
    the bedside the bedside allowance up to the dose); past its deadline the
    chain is broken and the kit can never be dosed. `left_s` is negative
    once the limit has passed.
    """

    kit: str
    lot: str | None
    location: str
    since: int
    allowed_s: int
    left_s: int
    step: str  # the receipt or handover that brought it there
    prepared: bool = False
    """Prepared at the pharmacy: off the bedside its limit is the prepared product's use-by, not the
    transit allowance (its cold chain ended when the preparation started)."""

    @property
    def deadline(self) -> int:
        return self.since + self.allowed_s

    @property
    def bedside(self) -> bool:
        return config.is_bedside(self.location)

    @property
    def over(self) -> bool:
        return self.left_s < 0

    def as_dict(self) -> ClockView:
        return {
            "kit": self.kit,
            "lot": self.lot,
            "location": self.location,
            "since": iso_z(self.since),
            "deadline": iso_z(self.deadline),
            "allowed_min": self.allowed_s // 60,
            "minutes_left": math.floor(self.left_s / 60),
            "over_limit": self.over,
            "bedside": self.bedside,
            "step": self.step,
        }


ENDED = ("disposal", "return")
"""Where a kit's custody ends: no limit runs there."""


def outside_units(store: Store, now: int) -> list[Clock]:
    """Every kit that the records put outside a monitored unit at `now`, soonest deadline first.

    Kits at disposal or returned, discarded, or already given (`kit_use`)
    have no clock. One query finds each kit's last step up to `now`.
    """
    rows = store.execute(
        "SELECT kit_id, event_id, at, to_location, lot FROM ("
        " SELECT c.kit_id, t.event_id, t.at, t.to_location, k.lot, row_number() OVER"
        " (PARTITION BY c.kit_id ORDER BY t.at DESC, t.event_id DESC) AS n"
        " FROM cc_custody c JOIN cc_transfers t USING (event_id) LEFT JOIN cc_kits k ON k.kit_id = c.kit_id"
        " WHERE t.at <= ?) AS latest WHERE n = 1 AND to_location NOT IN (SELECT unit_id FROM cc_units)"
        " ORDER BY at, kit_id",
        (now,),
    ).fetchall()
    out = []
    for kit, step, at, where, lot in rows:
        if where.startswith(ENDED) or is_discarded(store, kit) or kits.kit_use(store, kit) is not None:
            continue
        product = config.product_of_lot(store, lot)
        allowed = product.bedside_s if config.is_bedside(where) else product.transit_s
        prepared, use_by = _preparation(store, kit, now)
        if prepared:  # its use-by governs once prepared; at the bedside, whichever comes first
            if use_by is None and not config.is_bedside(where):
                continue  # no use-within stated: no clock until it reaches the bedside
            if use_by is not None:
                until_use_by = use_by - at
                allowed = min(allowed, until_use_by) if config.is_bedside(where) else until_use_by
        out.append(Clock(kit, lot, where, at, allowed, at + allowed - now, step, prepared))
    out.sort(key=lambda c: (c.deadline, c.kit))
    return out


def clock_warning(store: Store, kits: list[str], where: str, since: int, now: int) -> str | None:
    """What to tell the person who just put `kits` at `where` (None inside a monitored unit).

    In the cold chain's words: where the records put them, the limit, the
    local time by which the next step must happen, and what happens after.
    """
    if is_unit(store, where) or where.startswith(ENDED):
        return None
    # Kits of several products: the strictest allowance is the deadline to meet.
    found = [config.product_of_kit(store, k) for k in kits] or [config.first_product(store)]
    lim = config.Limits(
        found[0].low_c,
        found[0].high_c,
        found[0].target_c,
        min(p.transit_s for p in found),
        min(p.bedside_s for p in found),
        found[0].source,
    )
    names = ", ".join(kits[:3]) + (f" and {len(kits) - 3} more" if len(kits) > 3 else "")
    n = f"{len(kits)} kit(s) ({names})"
    prepared = [_preparation(store, k, since) for k in kits]
    use_bys = [u for done, u in prepared if done and u is not None]
    if config.is_bedside(where):
        allowed = lim.bedside_s
        deadline = since + allowed
        if use_bys and min(use_bys) < deadline:  # a kit prepared at the pharmacy must be given by its use-by
            deadline = min(use_bys)
            when = local_text(store, deadline)
            if deadline < now:
                return (
                    f"{n} at {where}: the preparation's use-by passed at {when}; they can no longer be dosed"
                )
            return (
                f"{n} at {where}: dose by {when} ({_left(deadline, now)}; the preparation's use-by comes before "
                f"the {allowed // 60} min at the bedside end), or they can no longer be dosed"
            )
        when = local_text(store, deadline)
        if deadline < now:
            return f"{n} at {where} since {local_text(store, since)}: the {allowed // 60} min allowed at the bedside before the dose ended at {when}; they can no longer be dosed"
        return (
            f"{n} at {where}: dose by {when} ({_left(deadline, now)} of the {allowed // 60} min at the bedside), "
            "or they can no longer be dosed"
        )
    if kits and all(done for done, _ in prepared):  # their cold chain ended: their use-by governs
        if not use_bys:
            return None
        use_by = local_text(store, min(use_bys))
        return f"{n} at {where!r}, prepared at the pharmacy: give them by {use_by} (the preparation's use-within)"
    allowed = lim.transit_s
    deadline = since + allowed
    when = local_text(store, deadline)
    head = f"{n} at {where!r}, outside a monitored storage unit, since {local_text(store, since)}"
    if deadline < now:
        return (
            f"{head}: record their move into a storage unit if it happened by {when}; "
            f"after {allowed // 60} min outside one they can never be dosed"
        )
    return (
        f"{head}: move them into a storage unit by {when} ({_left(deadline, now)} of {allowed // 60} min), "
        "or they can never be dosed"
    )


def _preparation(store: Store, kit: str, at: int) -> tuple[bool, int | None]:
    """Whether `kit` was prepared at the pharmacy by `at`, and the prepared product's use-by (None when
    its steps state no use-within). Once prepared the kit's cold chain has ended: the use-by is its clock
    off the bedside, and at the bedside whichever comes first of it and the bedside allowance."""
    row = store.one(
        "SELECT use_by_t FROM cc_preparations WHERE kit_id = ? AND start_t <= ? ORDER BY end_t LIMIT 1",
        (kit, at),
    )
    if row is None:
        return False, None
    return True, None if row[0] is None else int(row[0])


def _left(deadline: int, now: int) -> str:
    """The custody time left, in whole minutes (rounded down: never more than there is)."""
    return f"{max(0, deadline - now) // 60} min left"


def local_text(store: Store, t: int) -> str:
    """A time as people on the ward read it: site-local, its offset marked (e.g. 2020-03-15 08:30 +08:00)."""
    local = datetime.fromtimestamp(t, get_zone(config.site_zone(store)))
    off = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M ") + off[:3] + ":" + off[3:]


# -- the chain --------------------------------------------------------------------------


class SignatureCheck(TypedDict):
    """One e-signature over a receipt or handover and whether it holds (`transfer_checks`)."""

    user: str
    name: str
    meaning: str
    signed_at: str
    state: str
    """valid, or changed since signed."""


class PhotoCheck(TypedDict):
    """A photo of a paper sheet attached to a receipt or handover and whether it is intact."""

    ref: str
    sha256: str
    state: str
    """ok, missing, altered or unavailable (`photo_status`)."""


class LinkDetail(TypedDict, total=False):
    """What a link of the chain adds, by its kind: a receipt or handover (`event_id`, `at`, the
    locations, `condition`, `signatures`, `photos`), a stay (`location`, `start`, `end`,
    `temperatures` in a monitored unit), a thaw (`event_id`, `start`, `end`, `reconstitution`) or a
    preparation at the pharmacy (`event_id`, `start`, `end`, `use_by`, `steps`, `values`)."""

    event_id: str
    at: str
    from_location: str
    to_location: str
    condition: str | None
    signatures: list[SignatureCheck]
    photos: list[PhotoCheck]
    location: str
    start: str
    end: str
    temperatures: StayTemperatures
    reconstitution: str | None
    use_by: str | None
    steps: list[str]
    values: dict[str, Any]


@dataclass
class Link:
    kind: str  # receipt, handover, stay, thaw, preparation
    what: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    detail: LinkDetail = field(default_factory=lambda: LinkDetail())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "what": self.what,
            "ok": self.ok,
            "problems": self.problems,
            **self.detail,
        }


@dataclass
class Chain:
    kit: str
    lot: str | None
    links: list[Link]
    problems: list[str]

    @property
    def complete(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "kit": self.kit,
            "lot": self.lot,
            "complete": self.complete,
            "problems": self.problems,
            "links": [ln.as_dict() for ln in self.links],
        }


def transfer_checks(
    store: Store, t: dict[str, Any]
) -> tuple[list[str], list[SignatureCheck], list[PhotoCheck]]:
    """(problems, signature states, photo states) for one receipt or handover."""
    label = f"{t['kind']} {t['event_id']}"
    problems: list[str] = []
    sigs = signatures.for_target(store, t["event_id"])
    sig_out: list[SignatureCheck] = [
        {
            "user": s.user,
            "name": s.full_name,
            "meaning": s.meaning,
            "signed_at": s.signed_at,
            "state": s.status,
        }
        for s in sigs
    ]
    for s in sigs:
        if not s.valid:
            problems.append(f"{label}: signature of {s.user} ({s.meaning}) changed since signed")
    photos = json.loads(t["photos"])
    photo_out: list[PhotoCheck] = [
        {"ref": p, "sha256": p.removeprefix("sha256:"), "state": photo_status(store, p)} for p in photos
    ]
    for p in photo_out:
        if p["state"] != "ok":
            problems.append(f"{label}: photo {p['ref'][:19]}… is {p['state']}")
    for user, party, meaning in (
        (t["from_user"], t["from_party"], "handed over"),
        (t["to_user"], t["to_party"], "received"),
    ):
        if user:
            if not any(s.user == user and s.meaning == meaning for s in sigs):
                problems.append(f"{label}: not signed by {user} ({meaning})")
        elif not photos:
            problems.append(f"{label}: external party {party} without a photo of the signed sheet")
    return problems, sig_out, photo_out


def chain(store: Store, kit: str, when: int | None = None) -> Chain:
    """The kit's custody up to `when` (a dose time) or now, with every problem found."""
    lot_row = store.one("SELECT lot FROM cc_kits WHERE kit_id = ?", (kit,))
    if lot_row is None:
        return Chain(kit, None, [], [f"kit {kit} is not registered in any lot"])
    lim = config.limits(store, config.product_of_lot(store, str(lot_row[0])))
    links: list[Link] = []
    problems: list[str] = []
    rows = [s for s in steps(store, kit) if when is None or s["at"] <= when]
    # Once thawing or a preparation at the pharmacy starts the cold chain ends: later stays (pharmacy ->
    # bedside -> disposal) are not checked; the prepared product's use-within and the bedside allowance are.
    thawed = store.scalar(
        "SELECT min(s) FROM (SELECT min(start_t) AS s FROM cc_thaws WHERE kit_id = ?"
        " UNION ALL SELECT min(start_t) FROM cc_preparations WHERE kit_id = ?) AS started",
        (kit, kit),
    )
    if not rows or rows[0]["kind"] != "receipt":
        problems.append(f"kit {kit} has no shipment receipt")
    prev_to: str | None = None
    for i, t in enumerate(rows):
        probs, sigs, photos = transfer_checks(store, t)
        if prev_to is not None and t["from_location"] != prev_to:
            probs.append(
                f"{t['kind']} {t['event_id']} takes the kit from {t['from_location']!r} but it was at {prev_to!r}"
            )
        links.append(
            Link(
                t["kind"],
                f"{t['from_party']} → {t['to_party']}",
                not probs,
                probs,
                {
                    "event_id": t["event_id"],
                    "at": iso_z(t["at"]),
                    "from_location": t["from_location"],
                    "to_location": t["to_location"],
                    "condition": t["condition"],
                    "signatures": sigs,
                    "photos": photos,
                },
            )
        )
        problems += probs
        prev_to = t["to_location"]
        end = rows[i + 1]["at"] if i + 1 < len(rows) else when
        if thawed is not None and (end is None or end > thawed):
            end = thawed
        if end is None or end < t["at"]:
            continue
        loc = t["to_location"]
        stay_probs: list[str] = []
        detail: LinkDetail = {"location": loc, "start": iso_z(t["at"]), "end": iso_z(end)}
        if is_unit(store, loc):
            gap = coverage_problem(store, loc, t["at"], end)
            if gap:
                stay_probs.append(f"stay in {loc} not monitored: {gap}")
            temps = temperatures(store, loc, t["at"], end)
            if temps:
                detail["temperatures"] = temps
        else:
            allowed = lim.bedside_s if config.is_bedside(loc) else lim.transit_s
            if end - t["at"] > allowed:
                stay_probs.append(
                    f"{(end - t['at']) // 60} min at {loc!r} outside a monitored unit "
                    f"(allowed {allowed // 60} min)"
                )
        links.append(Link("stay", loc, not stay_probs, stay_probs, detail))
        problems += stay_probs
    for x in excursions_for(store, kit):
        if when is not None and x["start_t"] > when:
            continue
        d = x["disposition"]
        where = x["unit_id"] or f"receipt {x['receipt_event']}"
        if d is None:
            problems.append(
                f"kit {kit} is quarantined: excursion {x['excursion_id']} ({where}, {x['detail']}) awaits a disposition"
            )
        elif d["decision"] == "discard":
            problems.append(f"kit {kit} was discarded after excursion {x['excursion_id']} ({d['reason']})")
    thaws = store.rows("SELECT * FROM cc_thaws WHERE kit_id = ? ORDER BY start_t", (kit,))
    for th in thaws:
        links.append(
            Link(
                "thaw",
                f"thawed by {th['by_user']}",
                True,
                [],
                {
                    "event_id": th["event_id"],
                    "start": iso_z(th["start_t"]),
                    "end": iso_z(th["end_t"]),
                    "reconstitution": th["reconstitution"],
                },
            )
        )
    for pr in store.rows("SELECT * FROM cc_preparations WHERE kit_id = ? ORDER BY start_t", (kit,)):
        links.append(
            Link(
                "preparation",
                f"prepared at the pharmacy by {pr['by_user']}",
                True,
                [],
                {
                    "event_id": pr["event_id"],
                    "start": iso_z(pr["start_t"]),
                    "end": iso_z(pr["end_t"]),
                    "use_by": iso_z(pr["use_by_t"]) if pr["use_by_t"] is not None else None,
                    "steps": json.loads(pr["steps"]),
                    "values": json.loads(pr["field_values"]),
                },
            )
        )
    return Chain(kit, lot_row[0], links, problems)


def _epoch(store: Store, when: Any) -> int:
    """A dose time as UTC epoch seconds; a time without a zone is read in the site's zone."""
    if isinstance(when, int | float):
        return int(when)
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=get_zone(config.site_zone(store)))
        return int(when.timestamp())
    return parse_when(str(when), config.site_zone(store))


def used_by(store: Store, kit: str) -> str | None:
    """The dose record that used the kit (`kits.kit_use`, the one answer), or None."""
    use = kits.kit_use(store, kit)
    return use.event_id if use else None


def dose_problems(
    store: Store,
    kit: str,
    when: Any,
    *,
    used: bool = True,
    product: str | None = None,
    participant: str | None = None,
) -> list[str]:
    """Every reason `kit` cannot be used for a dose at `when`, first the most basic.

    `used=False` leaves out "already used" (the gate: its callers asked it already).
    `product`: the product the administration gives (its code); a kit of another product is refused.
    `participant`: whom the dose is for; a kit handed to another participant's bedside
    (`bedside:<participant>`) is refused first (`other_bedside`).
    """
    t = _epoch(store, when)
    c = chain(store, kit, t)
    if c.lot is None:
        return c.problems
    problems = list(c.problems)
    declared = config.product_of_lot(store, c.lot)
    if product is not None and not config.serves(store, declared, product):
        problems.insert(0, f"kit {kit} is {declared.code} (lot {c.lot}); this administration gives {product}")
    where = location_at(store, kit, t)
    other = other_bedside(kit, where, participant)
    if other:
        problems.insert(0, other)
    if where is None or not config.is_bedside(where):
        msg = f"kit {kit} is at {where!r}, not at the bedside (record the handover)"
        if where is not None:
            problems.insert(0, msg)
    else:
        arrived = max(s["at"] for s in steps(store, kit) if s["at"] <= t)
        if declared.pharmacy_steps:  # prepared at the pharmacy before it came: the pharmacist's signed record
            problems += pharmacy_problems(store, kit, declared, t)
        if declared.bedside_steps:  # a product with nothing to prepare (capsules) is given as it comes
            thaw = store.one(
                "SELECT event_id, end_t FROM cc_thaws WHERE kit_id = ? AND start_t >= ? AND end_t <= ?",
                (kit, arrived, t),
            )
            if thaw is None:
                problems.append(
                    f"kit {kit} has no thaw/reconstitution record at the bedside before {iso_z(t)}"
                )
            else:
                problems += _preparation_late(kit, declared, int(thaw[1]), t)
        allowed = declared.bedside_s
        if t - arrived > allowed:
            problems.append(
                f"kit {kit} reached the bedside {(t - arrived) // 60} min before the dose (allowed {allowed // 60} min)"
            )
    expiry = store.scalar("SELECT expiry FROM cc_lots WHERE lot = ?", (c.lot,))
    if expiry:
        local_day = datetime.fromtimestamp(t, get_zone(config.site_zone(store))).date()
        if local_day > date.fromisoformat(expiry):
            problems.append(f"kit {kit} expired on {expiry} (lot {c.lot})")
    if used:
        use = kits.kit_use(store, kit)
        if use:
            problems.append(str(use))
    return problems


def other_bedside(kit: str, where: str | None, participant: str | None) -> str | None:
    """Why a kit at `where` may not be given to `participant`: it was handed to another participant's bedside
    (`bedside:<participant>` names someone else). None when the place names them, names no one (`bedside`),
    is not a bedside, or the dose's participant is not known. Ids compare as ids do (`ids.key`)."""
    named = config.bedside_of(where) if where else None
    if not named or participant is None or ids.key(named) == ids.key(participant):
        return None
    return (
        f"kit {kit} was handed to {named}'s bedside ({where}), not {participant}'s: give it to {named}, "
        f"or record its handover to bedside:{participant} first"
    )


def pharmacy_problems(store: Store, kit: str, product: config.Product, t: int) -> list[str]:
    """Why `kit` may not be given at `t` for want of its preparation at the pharmacy (`at = "pharmacy"`):
    none recorded before `t`, not signed by its pharmacist (or changed since signed), or its use-within
    passed. Empty when the product declares no such step or the preparation is in order."""
    steps_ = product.pharmacy_steps
    if not steps_:
        return []
    named = ", ".join(f"{s.code!r} ({s.label})" for s in steps_)
    prep = store.one(
        "SELECT event_id, end_t, use_by_t, by_user FROM cc_preparations WHERE kit_id = ? ORDER BY end_t LIMIT 1",
        (kit,),
    )
    if prep is None or int(prep[1]) > t:
        return [
            f"kit {kit} has no preparation at the pharmacy before {iso_z(t)}: {product.code} step {named} is "
            f"prepared and signed by the pharmacist first (`wardcrf coldchain prepare {kit}`)"
        ]
    event_id, ended, use_by, by = str(prep[0]), int(prep[1]), prep[2], prep[3]
    out = []
    sigs = signatures.for_target(store, event_id)
    if not any(s.user == by and s.meaning == "authored" and s.valid for s in sigs):
        state = "changed since signed" if any(s.user == by for s in sigs) else "not signed"
        out.append(f"kit {kit}: its preparation at the pharmacy {event_id} is {state} by {by}")
    if use_by is not None and t > int(use_by):
        within = product.use_within_s
        out.append(
            f"kit {kit} was prepared at the pharmacy at {iso_z(ended)} ({event_id}): its use-within"
            + (f" ({within // 60} min)" if within is not None else "")
            + f" passed at {iso_z(int(use_by))}, before {iso_z(t)}"
        )
    return out


def _preparation_late(kit: str, product: config.Product, ended: int, dose: int) -> list[str]:
    """The product's bedside preparation steps whose `within` the time from the preparation's end to the dose
    exceeds (one preparation record covers every bedside step: it ends with the last)."""
    late = [s for s in product.bedside_steps if s.within_s is not None and dose - ended > s.within_s]
    return [
        f"kit {kit} was prepared {(dose - ended) // 60} min before the dose: {product.code} step "
        f"{s.code!r} ({s.label}) must end within {s.within_s // 60} min of it"
        for s in late[:1]
        if s.within_s is not None
    ]


def check_dose(
    store: Store, kit_id: str, when: Any, *, product: str | None = None, participant: str | None = None
) -> None:
    """The pre-dose custody gate: returns, or raises `Refused` naming the broken link.

    Not "already used": the dose rule and the scan step ask `kit_use` before any gate.
    `product`: the product the administration gives, when the caller knows it (a format-2
    administration): a kit of another product is refused. `participant`: whom the dose is for, when
    the caller knows it: a kit handed to another participant's bedside is refused.
    """
    kit = ids.key(kit_id)
    problems = dose_problems(store, kit, when, used=False, product=product, participant=participant)
    if problems:
        more = (
            f" (and {len(problems) - 1} more: `wardcrf coldchain custody {kit_id}`)"
            if len(problems) > 1
            else ""
        )
        raise Refused(f"custody gate: {problems[0]}{more}")
