"""Cold-chain services: every change is a form record or an event, checked first.

Records (amendable with a reason, signable, shown in the audit trail):
``coldchain.unit``, ``coldchain.lot``, ``coldchain.receipt``,
``coldchain.handover``, ``coldchain.reading``, ``coldchain.thaw``,
``coldchain.preparation`` (a step the protocol does at the pharmacy, by the
pharmacist, e-signed) and ``coldchain.disposition``. A logger import is one ``coldchain.logger_imported``
event carrying the file's SHA-256, what was found (excursions, gaps, MKT)
and the range it was checked against; the file itself is evidence.

Times typed by people are ISO 8601; without an offset they are read in the
site's zone (a unit's zone for its readings). Records hold UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from .. import ids, plausibility, records, roles, signatures, users
from .. import protocol as protocols
from ..clock import now_utc
from ..errors import Refused, UsageError, ValidationFailed
from ..eventlog import Event
from ..forms import Context
from ..forms import check as check_fields
from ..store import Store
from . import analysis, config, custody, evidence, loggers
from .loggers import iso_z, parse_when

if TYPE_CHECKING:
    from ..site import Session

FORM_UNIT = "coldchain.unit"
FORM_LOT = "coldchain.lot"
FORM_RECEIPT = "coldchain.receipt"
FORM_HANDOVER = "coldchain.handover"
FORM_READING = "coldchain.reading"
FORM_THAW = "coldchain.thaw"
FORM_PREPARATION = "coldchain.preparation"
FORM_DISPOSITION = "coldchain.disposition"

# Who may write each cold-chain form (checked again on records from other devices, `authority`);
# declared by `coldchain.feature.register`.
FORM_ACTIONS = {
    FORM_UNIT: "coldchain.configure",
    **dict.fromkeys((FORM_LOT, FORM_RECEIPT, FORM_HANDOVER, FORM_READING, FORM_THAW), "coldchain.record"),
    FORM_DISPOSITION: "coldchain.disposition",
    FORM_PREPARATION: "coldchain.prepare",
}
# Who may correct each form's records, where it is not `record.amend`: a preparation is the pharmacist's.
AMEND_ACTIONS = {FORM_PREPARATION: "coldchain.prepare"}
EVENT_LOGGER = "coldchain.logger_imported"

_UNIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


# -- small checks -------------------------------------------------------------------------


def _soft_warnings(session: Session, form: str, values: dict[str, Any]) -> list[plausibility.SoftWarning]:
    """The soft warnings the site's active protocol declares for a cold-chain record, now.

    The cold chain's forms are outside the form workflow (`workflow.service`),
    so its services evaluate the declared warnings themselves; no protocol
    loaded: none declared.
    """
    try:
        proto = protocols.active(session.store)  # a cold-chain record belongs to no participant: the site's
    except Refused:
        return []
    return plausibility.evaluate(
        session.store, proto, form, values, now=now_utc(), zone_name=session.ctx.zone
    )


def scanned_id(store: Store, raw: str, kind: str = "kit") -> str:
    """A kit id, lot number or shipper id as scanned -> its canonical form (`wardcrf.ids`).

    Under the active protocol's rule for that kind of id, so a kit
    registered here is one the dose form accepts.
    """
    return protocols.id_rule(store, kind).normalise(raw)


def _when(text: str | int, store: Store, zone: str | None = None) -> int:
    t = text if isinstance(text, int) else parse_when(text, zone or config.site_zone(store))
    if t > int(now_utc().timestamp()) + config.FUTURE_TOLERANCE_S:
        raise Refused(f"time {iso_z(t)} is in the future: record what has happened")
    return t


def _text(value: str | None, field: str, problems: dict[str, str], *, required: bool = True) -> str:
    v = (value or "").strip()
    if required and not v:
        problems[field] = "required"
    return v


def unit_row(store: Store, unit_id: str) -> dict[str, Any]:
    rows = store.rows("SELECT * FROM cc_units WHERE unit_id = ?", (unit_id,))
    if not rows:
        known = [r[0] for r in store.execute("SELECT unit_id FROM cc_units ORDER BY unit_id")]
        listing = ", ".join(known) if known else "none registered: `coldchain add-unit`"
        raise Refused(f"unknown storage unit {unit_id!r} (units: {listing})")
    return rows[0]


def _kit_rows(store: Store, kits: list[str]) -> None:
    for kit in kits:
        if store.one("SELECT 1 FROM cc_kits WHERE kit_id = ?", (kit,)) is None:
            raise Refused(f"kit {kit} is not registered: record its lot first (`wardcrf coldchain add-lot`)")


def _kits(store: Store, raw: list[str]) -> list[str]:
    """Kit ids as scanned (one per entry, or a burst split at Enter/Tab/commas), each checked at once."""
    if not raw:
        raise UsageError("name at least one kit (--kit, repeatable; scanner input is fine)")
    rule = protocols.id_rule(store, "kit")
    kits: list[str] = []
    for entry in raw:
        got = ids.scan(entry, rule, like=kits)
        if not got.ok:
            raise UsageError(got.error or "")
        kits += got.ids
    seen: set[str] = set()
    for k in kits:
        if k in seen:
            raise UsageError(f"kit {k} is listed twice")
        seen.add(k)
    return kits


def _photos(session: Session, raws: list[str]) -> list[str]:
    """Resolve `@path`, tray ids or references to stored photo references."""
    from .. import evidence as refs

    out: list[str] = []
    for raw in raws:
        try:
            ref = refs.resolve_photo(session, raw)
        except ImportError:  # photo store not installed in this build
            if not refs.is_reference(raw):
                raise UsageError("photos can only be given as sha256 references in this build") from None
            ref = raw
        if ref not in out:
            out.append(ref)
    return out


def _party(
    store: Store,
    user: str | None,
    external: str | None,
    side: str,
    *,
    who: str | None = None,
    flags: tuple[str, str] | None = None,
) -> tuple[str, str | None]:
    """(display name, user id or None) for one side of a transfer.

    `who` names the party in messages (default "the <side> party"); `flags`
    the CLI options that name it, quoted in brackets so the ward app can
    leave them out (screens.errors.message_of).
    """
    who = who or f"the {side} party"
    by_user, by_name = flags or (f"--{side}-user", f"--{side}-external")
    if user and external:
        raise UsageError(
            f"{who} is named twice: a user of this site or an outside name, not both ({by_user} or {by_name})"
        )
    if user:
        row = users.get(store, user)
        if row is None or not row["active"]:
            raise Refused(f"{side} party {user} is not an active user of this site")
        return f"{row['full_name']} ({user})", user
    if external and external.strip():
        return external.strip(), None
    raise UsageError(
        f"name {who}: a user of this site, or an outside name with their organisation "
        f"({by_user} NAME or {by_name} 'Name, organisation')"
    )


_PLACES = {"--from": "where the kits are", "--to": "where the kits go"}


def _location(store: Store, raw: str, flag: str) -> str:
    loc = raw.strip()
    if not loc:
        raise UsageError(
            f"say {_PLACES.get(flag, 'the place')} ({flag}): a storage unit id, 'bedside:<participant>', 'pharmacy', ..."
        )
    if loc.lower().startswith("unit:"):
        loc = loc[5:]
        unit_row(store, loc)
    return loc


def _sign_parties(
    session: Session, event: Event, parties: list[tuple[str | None, str]], passwords: dict[str, str]
) -> list[str]:
    """Sign `event` for every in-system party whose password was given; return who is still to sign."""
    pending = []
    for user, meaning in parties:
        if user is None:
            continue
        pw = passwords.get(user)
        if pw is None:
            pending.append(f"{user} ({meaning})")
            continue
        signatures.sign(session, target=event.id, meaning=meaning, signer=user, password=pw)
    return pending


@dataclass
class Recorded:
    event: Event
    pending_signatures: list[str]
    warnings: list[str]
    clocks: list[custody.Clock] = field(default_factory=list)
    """The step's kits left outside a monitored unit: deadline and custody time left (finding 7)."""


def _clocks(store: Store, event: Event, kits: list[str]) -> list[custody.Clock]:
    """The custody clocks this step started: its kits that it left outside a monitored unit."""
    now = int(now_utc().timestamp())
    return [c for c in custody.outside_units(store, now) if c.step == event.id and c.kit in kits]


class _Rehearsed(Exception):
    def __init__(self, recorded: Recorded) -> None:
        super().__init__("preflight")
        self.recorded = recorded


def preflight(session: Session, service: Callable[..., Recorded], **arguments: Any) -> Recorded:
    """Every rule of a custody step, checked before anyone is asked to sign.

    Runs `service` (`receive_lot`, `receive_shipment`, `record_handover`)
    with `arguments` and no passwords — so nobody signs — inside a
    transaction that is then rolled back: the same code, the same refusals
    in the same words (custody ordering, the photo's format, the logger
    file and serial, the parties...), and nothing kept, not even the photos
    or the logger file the service stores. Returns what saving would record
    (its warnings, who would still sign); raises what saving would raise.
    Only a wrong password is left to the save itself.
    """
    arguments["passwords"] = {}
    told = len(session.warnings)
    try:
        with session.store.transaction():
            raise _Rehearsed(service(session, **arguments))
    except _Rehearsed as done:
        return done.recorded
    finally:
        del session.warnings[told:]  # nothing was saved: the save tells them, once


# -- units, lots, kits ----------------------------------------------------------------------


def add_unit(
    session: Session,
    unit_id: str,
    *,
    name: str,
    location: str,
    low_c: float | None = None,
    high_c: float | None = None,
    target_c: float | None = None,
    zone: str | None = None,
    interval_minutes: int = config.DEFAULT_INTERVAL_MINUTES,
    product: str | None = None,
) -> Event:
    """Register a monitored storage unit; its range defaults to `product`'s (its code or name), else the
    protocol's first product's."""
    session.require("coldchain.configure", what="register storage units")
    unit_id = unit_id.strip()
    if not _UNIT_RE.match(unit_id) or unit_id.lower().startswith(config.BEDSIDE):
        raise UsageError(f"unit id {unit_id!r} is invalid: 1-40 letters, digits, '.', '_', '-'")
    if session.store.one("SELECT 1 FROM cc_units WHERE unit_id = ?", (unit_id,)):
        raise Refused(f"storage unit {unit_id} is already registered")
    stored: config.Product | None = None
    if product is not None and product.strip():
        try:
            stored = config.product_named(session.store, product)
        except ValueError as exc:
            raise UsageError(f"{exc} (--product)") from None
    lim = config.limits(session.store, stored)
    low = lim.low_c if low_c is None else low_c
    high = lim.high_c if high_c is None else high_c
    if low >= high:
        raise UsageError(f"allowed range {low} … {high} °C is empty: the low limit must be below the high")
    zone = (zone or config.site_zone(session.store)).strip()
    loggers.get_zone(zone)
    if not 1 <= interval_minutes <= 1440:
        raise UsageError("logging interval must be 1 to 1440 minutes")
    data = {
        "unit_id": unit_id,
        "name": name.strip() or unit_id,
        "location": location.strip() or "—",
        "low_c": low,
        "high_c": high,
        "target_c": lim.target_c if target_c is None else target_c,
        "zone": zone,
        "interval_s": interval_minutes * 60,
        "range_source": lim.source if low_c is None else "unit",
    }
    return records.submit(session, FORM_UNIT, data, subject=f"unit:{unit_id}")


def lot_product(store: Store, raw: str | None, problems: dict[str, str]) -> config.Product | None:
    """The declared product a lot belongs to, as the person named it (code or name); a protocol with
    one product defaults to it. An unknown product, or none named when several are declared, is a
    problem on the `product` field (None returned)."""
    try:
        return config.product_named(store, raw)
    except ValueError as exc:
        problems["product"] = str(exc)
        return None


def products_for(session: Session) -> list[ProductChoice]:
    """The products a lot may belong to under the version in force (the receipt form's choice)."""
    session.require("record.read", what="read the protocol's products")
    return [
        ProductChoice(code=p.code, name=p.name, range=p.range_text())
        for p in config.products(session.store).values()
    ]


class ProductChoice(TypedDict):
    """A product a lot may belong to: its code, name and storage range (`products_for`)."""

    code: str
    name: str
    range: str


def add_lot(
    session: Session,
    lot: str,
    *,
    product: str,
    expiry: str,
    release_ref: str,
    kits: list[str],
    quantity: int,
    product_code: str | None = None,
) -> Event:
    """Register a lot and its kits (ids as scanned). `quantity` must equal the kits scanned.

    The lot belongs to a product of the protocol: `product_code` when given
    (exactly a declared code), else the product `product` names (its code or
    name; a protocol with one product takes any label wording as its).
    """
    session.require("coldchain.record", what="record lots and kits")
    lot = scanned_id(session.store, lot, "lot")
    problems: dict[str, str] = {}
    declared = lot_product(session.store, product_code if product_code is not None else product, problems)
    if product_code is not None and declared is not None and declared.code != product_code.strip():
        declared = None
        problems["product"] = (
            f"unknown product code {product_code.strip()[:60]!r} "
            f"(the protocol declares: {', '.join(config.products(session.store))})"
        )
    product = (product or "").strip() or (declared.name if declared else "")
    release_ref = _text(release_ref, "release_ref", problems)
    try:
        exp = date.fromisoformat(expiry.strip())
    except ValueError:
        problems["expiry"] = f"{expiry!r} is not a date (yyyy-mm-dd)"
        exp = None
    kit_ids = _kits(session.store, kits)
    if quantity != len(kit_ids):
        problems["quantity"] = f"{quantity} stated but {len(kit_ids)} kit id(s) scanned; they must agree"
    if problems:
        raise ValidationFailed(problems, form=FORM_LOT)
    store = session.store
    if store.one("SELECT 1 FROM cc_lots WHERE lot = ?", (lot,)):
        raise Refused(f"lot {lot} is already registered")
    for k in kit_ids:
        row = store.one("SELECT lot FROM cc_kits WHERE kit_id = ?", (k,))
        if row:
            raise Refused(f"kit {k} is already registered in lot {row[0]}")
    assert declared is not None
    data: dict[str, Any] = {
        "lot": lot,
        "product": product,
        "expiry": exp.isoformat() if exp else "",
        "release_ref": release_ref,
        "quantity": quantity,
        "kits": kit_ids,
    }
    if len(config.products(store)) > 1:  # one product: implied, and the record stays as it always was
        data["product_code"] = declared.code
    return records.submit(session, FORM_LOT, data, subject=f"lot:{lot}")


# -- receipt and handovers ------------------------------------------------------------------


def receive_shipment(
    session: Session,
    *,
    shipper_id: str,
    kits: list[str],
    received_at: str | int,
    to_location: str | None = None,
    delivered_by_external: str | None = None,
    delivered_by_user: str | None = None,
    received_by_user: str | None = None,
    dry_ice: bool,
    container_intact: bool,
    product_frozen: bool,
    logger_serial: str | None = None,
    logger_file: Path | None = None,
    photos: list[str] | None = None,
    condition: str | None = None,
    passwords: dict[str, str] | None = None,
) -> Recorded:
    """Receive a shipment: the first custody step of each kit in it.

    `to_location` None or blank: the site's one storage unit, else refused
    (`receipt_location`). The returned `clocks` say how long kits received
    outside a monitored unit may stay there.
    """
    session.require("coldchain.record", what="record shipment receipts")
    store = session.store
    shipper = scanned_id(store, shipper_id, "shipper")
    kit_ids = _kits(store, kits)
    _kit_rows(store, kit_ids)
    for k in kit_ids:
        row = store.one(
            "SELECT c.event_id FROM cc_custody c JOIN cc_transfers t USING (event_id)"
            " WHERE c.kit_id = ? AND t.kind = 'receipt'",
            (k,),
        )
        if row:
            raise Refused(f"kit {k} was already received (receipt {row[0]})")
    at = _when(received_at, store)
    to_loc = receipt_location(store, to_location)
    from_name, from_user = _party(
        store,
        delivered_by_user,
        delivered_by_external,
        "from",
        who="the courier",
        flags=("--courier-user", "--courier"),
    )
    to_name, to_user = _party(store, received_by_user or session.user, None, "to")
    photo_refs = _photos(session, photos or [])
    if from_user is None and not photo_refs:
        raise Refused(
            f"the courier {from_name} has no account here: attach a photo of the delivery sheet they signed (--photo)"
        )
    product = _shipment_product(store, kit_ids)
    lim = config.limits(store, product)
    transit_low = None if product.frozen else lim.low_c  # dry ice is far below any frozen range
    logger: dict[str, Any] | None = None
    warnings: list[str] = []
    if logger_file is not None:
        raw = _read(logger_file)
        log = loggers.parse(raw, config.site_zone(store))
        digest = evidence.put(store, logger_file.name, raw)
        serial = (logger_serial or "").strip() or log.serial
        if logger_serial and log.serial and logger_serial.strip() != log.serial:
            raise Refused(f"logger serial {logger_serial} differs from the serial in the file ({log.serial})")
        s = analysis.summarize(log.times, log.temps, log.interval, transit_low, lim.high_c)
        logger = {
            "sha256": digest,
            "name": logger_file.name,
            "serial": serial,
            "format": log.format,
            "zone": log.zone,
            "first": iso_z(s.first),
            "last": iso_z(s.last),
            "readings": s.readings,
            "min_c": s.minimum,
            "max_c": s.maximum,
            "mkt_c": round(s.mkt, 3),
            "high_c": lim.high_c,
            **({"low_c": transit_low} if transit_low is not None else {}),
            "excursions": [
                {
                    "start": iso_z(e.start),
                    "end": iso_z(e.end),
                    "min_c": e.minimum,
                    "max_c": e.maximum,
                    "open": e.open,
                }
                for e in s.excursions
            ],
            "gaps": [{"start": iso_z(g.start), "end": iso_z(g.end)} for g in s.gaps],
        }
        if s.excursions:
            limit = f"above {lim.high_c} °C" if transit_low is None else f"outside {product.range_text()}"
            warnings.append(f"transit log shows {len(s.excursions)} excursion(s) {limit}: kits quarantined")
    elif not (logger_serial or "").strip():
        raise UsageError("give the shipper's logger serial (--logger-serial) or its file (--logger-file)")
    expected = arrival_expected(product)
    if arrival_failures(expected, dry_ice, container_intact, product_frozen):
        warnings.append("arrival condition failed: the kits are quarantined until a disposition is recorded")
    clock = custody.clock_warning(store, kit_ids, to_loc, at, int(now_utc().timestamp()))
    if clock:
        warnings.append(clock)
    data = {
        "shipper_id": shipper,
        "kits": kit_ids,
        "at": iso_z(at),
        "from_party": from_name,
        "from_user": from_user,
        "to_party": to_name,
        "to_user": to_user,
        "from_location": f"shipper:{shipper}",
        "to_location": to_loc,
        "dry_ice_present": dry_ice,
        "container_intact": container_intact,
        "product_frozen": product_frozen,
        **({} if expected == ARRIVAL_FROZEN else {"arrival_expected": expected}),
        "logger_serial": logger["serial"] if logger else (logger_serial or "").strip(),
        "logger": logger,
        "photos": photo_refs,
        "condition": (condition or "").strip(),
    }
    soft = plausibility.noted(FORM_RECEIPT, _soft_warnings(session, FORM_RECEIPT, data), warnings)
    with store.transaction():
        event = records.submit(session, FORM_RECEIPT, data, subject=_subject(store, kit_ids), extra=soft)
        pending = _sign_parties(
            session, event, [(from_user, "handed over"), (to_user, "received")], passwords or {}
        )
    return Recorded(event, pending, warnings, _clocks(store, event, kit_ids))


def _shipment_product(store: Store, kits: list[str]) -> config.Product:
    """The product whose range a shipment is checked against: its kits' one storage range.

    Kits of products stored at different temperatures travel in different
    shippers (a frozen one on dry ice, a refrigerated one on cool packs), each
    with its own logger: one receipt holding both is refused.
    """
    by_range: dict[tuple[float, float], list[str]] = {}
    first: dict[tuple[float, float], config.Product] = {}
    for k in kits:
        p = config.product_of_kit(store, k)
        by_range.setdefault(p.range_c, []).append(k)
        first.setdefault(p.range_c, p)
    if len(by_range) > 1:
        listing = "; ".join(
            f"{first[r].code} {first[r].range_text()}: {', '.join(ks[:3])}{' ...' if len(ks) > 3 else ''}"
            for r, ks in by_range.items()
        )
        raise Refused(
            f"these kits are stored at different temperatures ({listing}): they travel in separate "
            "shippers; receive each shipper on its own"
        )
    return next(iter(first.values()))


ARRIVAL_FROZEN: dict[str, bool | None] = {"dry_ice": True, "frozen": True}
"""What a receipt recorded without `arrival_expected` was checked against (a frozen product)."""


def arrival_expected(product: config.Product) -> dict[str, bool | None]:
    """What the product should arrive as: a frozen product on dry ice and frozen; any other not frozen
    (dry ice not checked). Recorded with the receipt when not a frozen product's, so the check replays
    the same way."""
    if product.frozen:
        return dict(ARRIVAL_FROZEN)
    return {"dry_ice": None, "frozen": False}


def arrival_failures(
    expected: dict[str, Any] | None, dry_ice: Any, container_intact: Any, product_frozen: Any
) -> list[str]:
    """The arrival checks that failed, in words (a receipt recorded before products were told apart
    expected dry ice and a frozen product)."""
    exp = expected or ARRIVAL_FROZEN
    failed = []
    if exp.get("dry_ice") is True and not dry_ice:
        failed.append("no dry ice")
    if not container_intact:
        failed.append("container damaged")
    if exp.get("frozen") is True and not product_frozen:
        failed.append("product not frozen")
    if exp.get("frozen") is False and product_frozen:
        failed.append("product frozen (it is stored above 0 °C)")
    return failed


def record_handover(
    session: Session,
    *,
    kits: list[str],
    at: str | int,
    from_location: str,
    to_location: str,
    from_user: str | None = None,
    from_external: str | None = None,
    to_user: str | None = None,
    to_external: str | None = None,
    condition: str | None = None,
    photos: list[str] | None = None,
    passwords: dict[str, str] | None = None,
) -> Recorded:
    """Any custody change: pharmacy -> unit, unit -> bedside, bedside -> disposal, ..."""
    session.require("coldchain.record", what="record handovers")
    store = session.store
    kit_ids = _kits(store, kits)
    _kit_rows(store, kit_ids)
    when = _when(at, store)
    from_loc = _location(store, from_location, "--from")
    to_loc = _location(store, to_location, "--to")
    if from_loc == to_loc:
        raise UsageError(f"from and to location are both {from_loc!r}: a handover moves kits")
    from_name, f_user = _party(store, from_user, from_external, "from")
    to_name, t_user = _party(store, to_user, to_external, "to")
    if f_user is None and t_user is None:
        raise Refused("at least one party to a handover must be a user of this site who signs it")
    photo_refs = _photos(session, photos or [])
    if (f_user is None or t_user is None) and not photo_refs:
        outsider = from_name if f_user is None else to_name
        raise Refused(f"{outsider} has no account here: attach a photo of the sheet they signed (--photo)")
    for k in kit_ids:
        last = custody.last_step(store, k)
        if last is None:
            raise Refused(f"kit {k} has no shipment receipt: receive it before handing it over")
        if when <= last["at"]:
            raise Refused(
                f"kit {k}: handover at {iso_z(when)} is not after its last custody step "
                f"({last['event_id']} at {iso_z(last['at'])})"
            )
        if last["to_location"] != from_loc:
            raise Refused(
                f"kit {k} is at {last['to_location']!r}, not {from_loc!r} (last step {last['event_id']})"
            )
        if custody.is_discarded(store, k) and not to_loc.startswith(("disposal", "return")):
            raise Refused(f"kit {k} was discarded after an excursion; it may only go to disposal or return")
    data = {
        "kits": kit_ids,
        "at": iso_z(when),
        "from_party": from_name,
        "from_user": f_user,
        "to_party": to_name,
        "to_user": t_user,
        "from_location": from_loc,
        "to_location": to_loc,
        "condition": (condition or "").strip(),
        "photos": photo_refs,
    }
    warnings: list[str] = []
    clock = custody.clock_warning(store, kit_ids, to_loc, when, int(now_utc().timestamp()))
    if clock:
        warnings.append(clock)
    soft = plausibility.noted(FORM_HANDOVER, _soft_warnings(session, FORM_HANDOVER, data), warnings)
    with store.transaction():
        event = records.submit(session, FORM_HANDOVER, data, subject=_subject(store, kit_ids), extra=soft)
        pending = _sign_parties(
            session, event, [(f_user, "handed over"), (t_user, "received")], passwords or {}
        )
    return Recorded(event, pending, warnings, _clocks(store, event, kit_ids))


def sign_transfer(session: Session, event_id: str, password: str, *, signer: str | None = None) -> Event:
    """A party signs a receipt or handover as the party they are in it.

    `signer` defaults to the session user; on a shared ward laptop the other
    party may sign later in their own name with their own password (as a
    witness does), without the session user signing out.
    """
    who = (signer or session.user).strip()
    row = session.store.rows("SELECT * FROM cc_transfers WHERE event_id = ?", (event_id,))
    if not row and _preparation_by(session.store, event_id) is not None:
        return sign_preparation(session, event_id, password, signer=who)
    if not row:
        raise Refused(f"{event_id} is not a receipt, handover or preparation")
    t = row[0]
    if who == t["from_user"]:
        meaning = "handed over"
    elif who == t["to_user"]:
        meaning = "received"
    else:
        raise Refused(f"{who} is not a party to {event_id} ({t['from_party']} → {t['to_party']})")
    for sig in signatures.for_target(session.store, event_id):
        if sig.user == who and sig.meaning == meaning and sig.valid:
            raise Refused(f"{who} already signed {event_id} as {meaning}")
    return signatures.sign(session, target=event_id, meaning=meaning, signer=who, password=password)


def _preparation_by(store: Store, event_id: str) -> str | None:
    got = store.scalar("SELECT by_user FROM cc_preparations WHERE event_id = ?", (event_id.strip(),))
    return None if got is None else str(got)


def sign_preparation(session: Session, event_id: str, password: str, *, signer: str | None = None) -> Event:
    """The pharmacist who recorded a preparation at the pharmacy signs it ("authored") afterwards: when its
    signature was invalidated by an amendment of the record ("changed since signed"), the gate refuses the
    kit until they sign it again. An audited event (`signature.applied`, their own password, on a shared
    laptop without the session user signing out). Refused: anyone but the preparation's pharmacist, a
    signer whose role may not prepare (`coldchain.prepare`), a preparation already validly signed by them.
    """
    store = session.store
    by = _preparation_by(store, event_id)
    if by is None:
        raise Refused(f"{event_id} is not a preparation at the pharmacy")
    who = (signer or session.user).strip()
    if who != by:
        raise Refused(
            f"{who} did not record preparation {event_id}: only {by}, who prepared it, signs it (authored)"
        )
    user = users.get(store, who)
    if user is None or not user["active"]:
        raise Refused(f"{who} is not an active user of this site")
    roles.require(str(user["role"]), "coldchain.prepare", what="sign a preparation at the pharmacy")
    for sig in signatures.for_target(store, event_id):
        if sig.user == who and sig.meaning == "authored" and sig.valid:
            raise Refused(f"{who} already signed {event_id} as authored")
    return signatures.sign(session, target=event_id, meaning="authored", signer=who, password=password)


def default_receipt_location(store: Store) -> str | None:
    """Where a receipt's kits go unless the person says otherwise: the site's storage unit, if it has one.

    A shipment is opened and checked at the door, and on most wards goes
    straight into the one -20 °C freezer. Defaulting to a place outside a
    monitored unit (``pharmacy``) would start the transit clock on every kit
    and, if the second step (into the freezer) were forgotten, make them
    undosable without anyone noticing. With several units, or none, there is
    no safe guess: the person chooses (None). A receipt anywhere outside a
    unit is still allowed, and is told the time left (`custody.clock_warning`).
    """
    units = [r[0] for r in store.execute("SELECT unit_id FROM cc_units ORDER BY unit_id LIMIT 2")]
    return units[0] if len(units) == 1 else None


def receipt_location(store: Store, raw: str | None) -> str:
    """Where a receipt puts its kits: as named, or the site's one storage unit; never a silent guess.

    A receipt that names no place goes to `default_receipt_location`; with
    no unit, or several, it is refused naming the choices, because a guess
    outside a unit would start a custody clock nobody knows about, and a
    guess between two freezers would put the records and the kits apart.
    """
    if raw is not None and raw.strip():
        return _location(store, raw, "--to")
    default = default_receipt_location(store)
    if default is not None:
        return default
    units = [r[0] for r in store.execute("SELECT unit_id FROM cc_units ORDER BY unit_id LIMIT 6")]
    listing = f"a storage unit ({', '.join(units[:5])}{', ...' if len(units) > 5 else ''})" if units else ""
    where = f"{listing} or a place outside one" if listing else "a place (no storage unit is registered)"
    raise UsageError(
        f"say where the kits go (--to): {where}, e.g. 'pharmacy', where they may stay "
        f"{config.limits(store).transit_s // 60} min before they must be in a monitored unit"
    )


def receive_lot(
    session: Session,
    *,
    lot: str,
    product: str,
    expiry: str,
    release_ref: str,
    quantity: int,
    kits: list[str],
    product_code: str | None = None,
    **receipt: Any,
) -> Recorded:
    """Register a lot (unless it is already) and receive its kits: all or nothing.

    The pharmacy scans the kits once at the door; the lot's label data and
    the receipt are saved together, so a refused receipt leaves no
    half-registered lot behind. For a lot registered earlier, the scanned
    kits must belong to it and `quantity` must still equal the kits scanned.
    `receipt` holds `receive_shipment`'s keyword arguments.
    """
    session.require("coldchain.record", what="record shipment receipts")
    store = session.store
    lot_id = scanned_id(store, lot, "lot")
    kit_ids = _kits(store, kits)
    with store.transaction():
        if store.one("SELECT 1 FROM cc_lots WHERE lot = ?", (lot_id,)) is None:
            add_lot(
                session,
                lot_id,
                product=product,
                expiry=expiry,
                release_ref=release_ref,
                kits=kit_ids,
                quantity=quantity,
                product_code=product_code,
            )
        else:
            registered = config.product_of_lot(store, lot_id)
            if product_code and product_code.strip() != registered.code:
                raise ValidationFailed(
                    {
                        "product": f"lot {lot_id} is registered as {registered.code}, not {product_code.strip()[:60]}"
                    },
                    form=FORM_LOT,
                )
            if quantity != len(kit_ids):
                raise ValidationFailed(
                    {"quantity": f"{quantity} stated but {len(kit_ids)} kit id(s) scanned; they must agree"},
                    form=FORM_LOT,
                )
            for k in kit_ids:
                row = store.one("SELECT lot FROM cc_kits WHERE kit_id = ?", (k,))
                if row is None or row[0] != lot_id:
                    where = f"lot {row[0]}" if row else "no lot"
                    raise Refused(f"kit {k} is not in lot {lot_id} (registered in {where})")
        return receive_shipment(session, kits=kit_ids, **receipt)


def receipt_default(session: Session) -> str | None:
    """`default_receipt_location` for a signed-in user (the receipt form's default)."""
    session.require("record.read", what="read storage units")
    return default_receipt_location(session.store)


def registered_lot(session: Session, lot: str) -> LotInfo | None:
    """`lot_info` for a signed-in user (the receipt form fills the lot's label data)."""
    session.require("record.read", what="read lots")
    return lot_info(session.store, lot)


class LotInfo(TypedDict):
    """A registered lot's label data and its kits (`lot_info`)."""

    lot: str
    product: str
    product_code: str
    """The protocol's product it belongs to (a lot recorded before products were told apart: the first)."""
    expiry: str
    release_ref: str | None
    quantity: int
    kits: list[str]


def lot_info(store: Store, lot: str) -> LotInfo | None:
    """A registered lot with its kits, or None (the receipt screen fills its label data)."""
    rows = store.rows("SELECT * FROM cc_lots WHERE lot = ?", (ids.key(lot),))
    if not rows:
        return None
    kits = [
        r[0]
        for r in store.execute("SELECT kit_id FROM cc_kits WHERE lot = ? ORDER BY kit_id", (rows[0]["lot"],))
    ]
    row = rows[0]
    return LotInfo(
        lot=row["lot"],
        product=row["product"],
        product_code=config.product_of_lot(store, row["lot"]).code,
        expiry=row["expiry"],
        release_ref=row["release_ref"],
        quantity=row["quantity"],
        kits=kits,
    )


def _subject(store: Store, kits: list[str]) -> str:
    row = store.one("SELECT lot FROM cc_kits WHERE kit_id = ?", (kits[0],))
    return f"lot:{row[0]}" if row else f"kit:{kits[0]}"


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


# -- temperatures ------------------------------------------------------------------------------


@dataclass
class ImportResult:
    event: Event
    readings: int
    new_readings: int
    summary: dict[str, Any]


def import_logger(session: Session, path: Path, unit_id: str, *, fmt: str | None = None) -> ImportResult:
    """Import a unit's logger file: all or nothing, stored as evidence, checked for excursions."""
    session.require("coldchain.record", what="import logger files")
    store = session.store
    unit = unit_row(store, unit_id)
    raw = _read(path)
    digest = evidence.sha256_hex(raw)
    dup = store.one(
        "SELECT event_id FROM cc_logger_files WHERE sha256 = ? AND unit_id = ?", (digest, unit_id)
    )
    if dup:
        raise Refused(f"this file (sha256:{digest[:12]}…) was already imported for {unit_id} ({dup[0]})")
    log = loggers.parse(raw, unit["zone"], fmt=fmt)
    interval = log.interval or unit["interval_s"]
    low, high = unit["low_c"], unit["high_c"]
    with store.transaction():
        evidence.put(store, path.name, raw)
        store.execute(
            "CREATE TEMP TABLE IF NOT EXISTS cc_incoming (t INTEGER PRIMARY KEY, temp_c REAL) WITHOUT ROWID"
        )
        store.execute("DELETE FROM temp.cc_incoming")
        store.conn.executemany(
            "INSERT INTO temp.cc_incoming VALUES (?,?)", zip(log.times, log.temps, strict=True)
        )
        clash = store.one(
            "SELECT i.t, i.temp_c, r.temp_c, r.sha256 FROM temp.cc_incoming i JOIN cc_readings r"
            " ON r.unit_id = ? AND r.t = i.t WHERE r.temp_c != i.temp_c LIMIT 1",
            (unit_id,),
        )
        if clash:
            raise Refused(
                f"reading at {iso_z(clash[0])} is {clash[1]} °C here but {clash[2]} °C in the file already "
                f"imported for {unit_id} (sha256:{clash[3][:12]}…): the files disagree, nothing imported"
            )
        before = store.scalar("SELECT count(*) FROM cc_readings WHERE unit_id = ?", (unit_id,))
        store.execute(
            "INSERT INTO cc_readings (unit_id, t, temp_c, sha256)"
            " SELECT ?, t, temp_c, ? FROM temp.cc_incoming WHERE true ON CONFLICT (unit_id, t) DO NOTHING",
            (unit_id, digest),
        )
        new = store.scalar("SELECT count(*) FROM cc_readings WHERE unit_id = ?", (unit_id,)) - before
        store.execute("DELETE FROM temp.cc_incoming")
        times, temps = _merged(store, unit_id, log.times, log.temps, low, high)
        s = analysis.summarize(log.times, log.temps, interval, low, high)
        merged_exc = analysis.excursions(times, temps, low, high)
        merged_gaps = analysis.gaps(times, interval)
        judged = []  # each product stored at another range than the unit's, judged by its own
        for p in _other_ranges(store, unit):
            p_times, p_temps = _merged(store, unit_id, log.times, log.temps, p.low_c, p.high_c)
            judged.append(
                {
                    "product": p.code,
                    "low_c": p.low_c,
                    "high_c": p.high_c,
                    "excursions": excursion_items(analysis.excursions(p_times, p_temps, p.low_c, p.high_c)),
                }
            )
        summary = {
            "readings": s.readings,
            "first": iso_z(s.first),
            "last": iso_z(s.last),
            "interval_s": interval,
            "min_c": s.minimum,
            "max_c": s.maximum,
            "mean_c": round(s.mean, 3),
            "mkt_c": round(s.mkt, 3),
        }
        body = {
            "unit_id": unit_id,
            "sha256": digest,
            "name": path.name,
            "format": log.format,
            "serial": log.serial,
            "zone": log.zone,
            "zone_source": log.zone_source,
            "low_c": low,
            "high_c": high,
            "no_value": log.no_value,
            "device_flagged": log.device_flagged,
            "converted_from": log.unit_converted,
            "summary": summary,
            "excursions": excursion_items(merged_exc),
            "gaps": [{"start": iso_z(g.start), "end": iso_z(g.end)} for g in merged_gaps],
        }
        if judged:
            body["products"] = judged
        event = session.append(type=EVENT_LOGGER, subject=f"unit:{unit_id}", body=body).event
    return ImportResult(event, s.readings, int(new), body)


def _merged(
    store: Store,
    unit_id: str,
    file_times: Sequence[int],
    file_temps: Sequence[float],
    low: float,
    high: float,
) -> tuple[Sequence[int], Sequence[float]]:
    """The unit's merged series around a new file, judged against `low … high`.

    Excursions are found in the unit's merged series, from the last in-range
    reading before this file, so an excursion that began in an earlier file
    keeps its start (and its id).
    """
    first, last = file_times[0], file_times[-1]
    since = store.scalar(
        "SELECT max(t) FROM cc_readings WHERE unit_id = ? AND t < ? AND temp_c BETWEEN ? AND ?",
        (unit_id, first, low, high),
    )
    lo_t = since if since is not None else first
    nxt = store.scalar(
        "SELECT min(t) FROM cc_readings WHERE unit_id = ? AND t > ? AND temp_c BETWEEN ? AND ?",
        (unit_id, last, low, high),
    )
    hi_t = nxt if nxt is not None else last
    if lo_t == first and hi_t == last:
        return file_times, file_temps
    rows = store.execute(
        "SELECT t, temp_c FROM cc_readings WHERE unit_id = ? AND t BETWEEN ? AND ? ORDER BY t",
        (unit_id, lo_t, hi_t),
    ).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


class ExcursionFound(TypedDict):
    """An excursion a reading or logger file shows, as `add-readings --json` reports it (times UTC)."""

    start: str
    end: str
    min_c: float
    max_c: float
    readings: int
    open: bool


def excursion_items(found: Sequence[analysis.Excursion]) -> list[ExcursionFound]:
    return [
        {
            "start": iso_z(e.start),
            "end": iso_z(e.end),
            "min_c": e.minimum,
            "max_c": e.maximum,
            "readings": e.readings,
            "open": e.open,
        }
        for e in found
    ]


def _other_ranges(store: Store, unit: dict[str, Any]) -> list[config.Product]:
    """The products a unit's readings are also judged against: those whose storage range is not the
    unit's own (none when the protocol's products share one range: the unit's range judges all, as
    before products were told apart). Every such product is judged, whether or not its lots are
    recorded there yet: custody steps may be entered after the logger file."""
    if config.single_range(store):
        return []
    own = (unit["low_c"], unit["high_c"])
    return [p for p in config.products(store).values() if p.range_c != own]


def record_reading(session: Session, unit_id: str, *, at: str | int, temp_c: float) -> Event:
    """A manual reading (spot check); one outside the range is an excursion."""
    session.require("coldchain.record", what="record temperature readings")
    unit = unit_row(session.store, unit_id)
    when = _when(at, session.store, unit["zone"])
    if not (loggers.PLAUSIBLE_C[0] <= temp_c <= loggers.PLAUSIBLE_C[1]):
        raise ValidationFailed({"temp_c": f"{temp_c} °C is not a plausible reading"}, form=FORM_READING)
    data = {
        "unit_id": unit_id,
        "at": iso_z(when),
        "temp_c": temp_c,
        "low_c": unit["low_c"],
        "high_c": unit["high_c"],
    }
    others = _other_ranges(session.store, unit)
    if others:
        data["products"] = [{"product": p.code, "low_c": p.low_c, "high_c": p.high_c} for p in others]
    return records.submit(session, FORM_READING, data, subject=f"unit:{unit_id}")


def record_thaw(
    session: Session,
    kit_id: str,
    *,
    start: str | int,
    end: str | int,
    reconstitution: str | None = None,
) -> Event:
    """Thaw and reconstitution at the bedside: start, end, by the session user."""
    session.require("coldchain.record", what="record thawing")
    store = session.store
    kit = scanned_id(store, kit_id)
    _kit_rows(store, [kit])
    t0, t1 = _when(start, store), _when(end, store)
    if t1 <= t0:
        raise UsageError("thaw end must be after its start")
    where = custody.location_at(store, kit, t0)
    if where is None or not config.is_bedside(where):
        raise Refused(
            f"kit {kit} is at {where or 'no recorded location'} at {iso_z(t0)}: thaw happens at the bedside"
        )
    if store.one("SELECT event_id FROM cc_thaws WHERE kit_id = ?", (kit,)):
        raise Refused(f"kit {kit} was already thawed; a thawed kit is never refrozen")
    product = config.product_of_kit(store, kit)
    if not product.steps:
        raise Refused(
            f"kit {kit} is {product.code} ({product.name}), which the protocol gives as it comes: "
            "no thaw or preparation to record"
        )
    if not product.bedside_steps:
        steps = ", ".join(s.code for s in product.pharmacy_steps)
        raise Refused(
            f"kit {kit} is {product.code} ({product.name}), which the protocol prepares at the pharmacy "
            f"({steps}): the pharmacist records it (`wardcrf coldchain prepare {kit}`); nothing to record "
            "at the bedside"
        )
    data = {
        "kit_id": kit,
        "start": iso_z(t0),
        "end": iso_z(t1),
        "by": session.user,
        "reconstitution": (reconstitution or "").strip(),
    }
    # A thaw is one record; its soft warnings (shorter than the product's minimum) go to the session.
    soft = plausibility.noted(FORM_THAW, _soft_warnings(session, FORM_THAW, data), session.warnings)
    return records.submit(session, FORM_THAW, data, subject=_subject(store, [kit]), extra=soft)


def preparation_form(product: config.Product) -> protocols.Form:
    """The fields a pharmacist records with `product`'s steps at the pharmacy, as the protocol declares them
    (`preparation = [{ ..., at = "pharmacy", fields = { ... } }]`), checked by the forms' one checker."""
    fields: dict[str, protocols.Field] = {}
    for step in product.pharmacy_steps:
        for name, spec in step.fields:
            label = spec.get("label")
            fields[name] = protocols.Field(
                name=name,
                type=str(spec["type"]),
                label=dict(label) if isinstance(label, Mapping) else {"en": str(label or name)},
                unit=spec.get("unit"),
                required=bool(spec.get("required", True)),
                hard=(float(spec["hard"][0]), float(spec["hard"][1])) if spec.get("hard") else None,
                choices=tuple(
                    protocols.Choice(
                        c["code"],
                        dict(c["label"]) if isinstance(c["label"], Mapping) else {"en": str(c["label"])},
                    )
                    for c in spec.get("choices") or ()
                ),
                max_length=int(spec.get("max_length", MAX_PREPARATION_TEXT)),
            )
    return protocols.Form(
        FORM_PREPARATION, {"en": f"Preparation of {product.code} at the pharmacy"}, {}, "kit", fields
    )


@dataclass(frozen=True)
class PreparationField:
    """A field the protocol asks with a product's steps at the pharmacy (the preparation screen's rows)."""

    product: str
    field: protocols.Field


def pharmacy_products(session: Session) -> list[str]:
    """The codes of the products of the version in force with steps at the pharmacy (`at = "pharmacy"`)."""
    session.require("record.read", what="read the protocol's preparation steps")
    return [p.code for p in config.products(session.store).values() if p.pharmacy_steps]


def preparation_fields(session: Session) -> list[PreparationField]:
    """Every field the version in force asks with its products' steps at the pharmacy, in declared order."""
    session.require("record.read", what="read the protocol's preparation steps")
    return [
        PreparationField(p.code, f)
        for p in config.products(session.store).values()
        for f in preparation_form(p).fields.values()
    ]


MAX_PREPARATION_TEXT = 200
"""A text field of a preparation holds at most this many characters unless the protocol says fewer or more."""


def record_preparation(
    session: Session,
    kit_id: str,
    *,
    start: str | int,
    end: str | int,
    values: Mapping[str, Any] | None = None,
    password: str | None = None,
    dry_run: bool = False,
) -> Recorded:
    """The steps the protocol does at the pharmacy (`at = "pharmacy"`), by the signed-in pharmacist: the kit,
    when, the step's declared fields (the diluted volume...), and the prepared product's use-by (its end +
    the shortest `within`). Signed ("authored") with the pharmacist's password in the same transaction.

    `dry_run`: every rule checked, nothing kept and nobody asked to sign (check before you sign). Refused:
    another role; an unknown kit; a product with nothing to prepare at the pharmacy; an end not after the
    start; a kit at the bedside, discarded or already given; a kit already prepared; a field the protocol
    does not declare, out of its range or missing.
    """
    session.require("coldchain.prepare", what="record a preparation at the pharmacy")
    store = session.store
    kit = scanned_id(store, kit_id)
    _kit_rows(store, [kit])
    product = config.product_of_kit(store, kit)
    steps = product.pharmacy_steps
    if not steps:
        how = (
            "at the bedside (`wardcrf coldchain thaw`)"
            if product.steps
            else "as it comes: nothing to prepare"
        )
        raise Refused(f"kit {kit} is {product.code} ({product.name}), which the protocol prepares {how}")
    t0, t1 = _when(start, store), _when(end, store)
    if t1 <= t0:
        raise UsageError("the preparation's end must be after its start")
    done = store.one(
        "SELECT event_id, by_user, end_t FROM cc_preparations WHERE kit_id = ? ORDER BY end_t LIMIT 1", (kit,)
    )
    if done is not None:
        raise Refused(
            f"kit {kit} was already prepared at the pharmacy ({done[0]}, by {done[1]}, "
            f"ended {iso_z(int(done[2]))}): a kit is prepared once"
        )
    where = custody.location_at(store, kit, t0)
    if where is None:
        raise Refused(f"kit {kit} has no custody step before {iso_z(t0)}: receive it before preparing it")
    for at, place in ((t0, where), (t1, custody.location_at(store, kit, t1) or where)):
        if config.is_bedside(place) or place.startswith(("disposal", "return")):
            raise Refused(
                f"kit {kit} is at {place!r} at {iso_z(at)}: {product.code} is prepared at the pharmacy, "
                "before the kit goes to the bedside"
            )
    if custody.is_discarded(store, kit):
        raise Refused(f"kit {kit} was discarded after an excursion: it is never prepared")
    used = custody.used_by(store, kit)
    if used:
        raise Refused(f"kit {kit} was already given ({used}): it is not prepared again")
    form = preparation_form(product)
    vctx = Context(now=now_utc(), zone=config.site_zone(store), user=session.user)
    checked = check_fields(form, dict(values or {}), vctx)
    checked.raise_if_problems(FORM_PREPARATION)
    within = product.use_within_s
    data: dict[str, Any] = {
        "kit_id": kit,
        "product": product.code,
        "steps": [s.code for s in steps],
        "start": iso_z(t0),
        "end": iso_z(t1),
        "by": session.user,
        "values": checked.values,
    }
    warnings: list[str] = []
    if within is not None:
        data["use_by"] = iso_z(t1 + within)
        if t1 + within < int(now_utc().timestamp()):
            warnings.append(
                f"kit {kit}: the prepared product's use-within ({within // 60} min) passed at "
                f"{iso_z(t1 + within)}: it can no longer be given"
            )
    if not dry_run and not (password or "").strip():
        raise UsageError("the pharmacist signs the preparation: give your password")
    try:
        with store.transaction():
            event = records.submit(session, FORM_PREPARATION, data, subject=_subject(store, [kit]))
            recorded = Recorded(event, [], warnings)
            if dry_run:
                raise _Rehearsed(recorded)
            signatures.sign(session, target=event.id, meaning="authored", password=str(password))
    except _Rehearsed as rehearsed:
        return rehearsed.recorded
    return recorded


def _froze(store: Store, exc: dict[str, Any], kit: str) -> str | None:
    """Why a kit may not be released: its product (stored above 0 °C) must be discarded once frozen
    (`excursion.freezing = "discard"`) and this excursion went below 0 °C; else None."""
    product = config.product_of_kit(store, kit)
    if product.freezing != "discard" or product.frozen or exc.get("min_c") is None or exc["min_c"] >= 0:
        return None
    return (
        f"kit {kit} is {product.code}, which the protocol says to discard once frozen, and excursion "
        f"{exc['excursion_id']} went down to {exc['min_c']} °C: release refused (record discard)"
    )


def record_disposition(
    session: Session,
    excursion_id: str,
    *,
    decision: str,
    reason: str,
    kits: list[str] | None = None,
) -> Event:
    """Release (with a reason) or discard the kits an excursion quarantined."""
    session.require("coldchain.disposition", what="record excursion dispositions")
    store = session.store
    if decision not in ("release", "discard"):
        raise UsageError(f"unknown decision {decision!r} (allowed: release, discard)")
    if not reason or not reason.strip():
        raise UsageError("a disposition needs a reason (--reason): why the product is or is not usable")
    exc = store.rows("SELECT * FROM cc_excursions WHERE excursion_id = ?", (excursion_id,))
    if not exc:
        raise Refused(f"unknown excursion {excursion_id} (see `wardcrf coldchain excursions`)")
    if exc[0]["is_open"] and decision == "release":
        raise Refused(
            f"excursion {excursion_id} is still open (out of range at the last reading): release refused"
        )
    affected = custody.affected_kits(store, exc[0])
    open_kits = [
        k
        for k in affected
        if not store.one(
            "SELECT 1 FROM cc_dispositions WHERE excursion_id = ? AND kit_id = ?", (excursion_id, k)
        )
    ]
    chosen = _kits(store, kits) if kits else open_kits
    if not chosen:
        raise Refused(f"excursion {excursion_id} has no kit awaiting a disposition")
    for k in chosen:
        if k not in affected:
            raise Refused(f"kit {k} was not affected by excursion {excursion_id}")
        if k not in open_kits:
            raise Refused(f"kit {k} already has a disposition for excursion {excursion_id}")
        froze = _froze(store, exc[0], k)
        if froze and decision == "release":
            raise Refused(froze)
    data = {
        "excursion_id": excursion_id,
        "kits": chosen,
        "decision": decision,
        "reason": reason.strip(),
    }
    return records.submit(session, FORM_DISPOSITION, data, subject=_subject(store, chosen))
