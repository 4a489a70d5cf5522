"""A complete, realistic custody chain in a few calls (demo and test fixtures).

The ward's routine, step by step, each through the ordinary services (every
step signed by each party with an account; nothing bypassed):

- `receive_and_store`: register the freezer (once) and the lot, receive the
  shipment from an external courier (photo of the signed delivery sheet,
  the shipper's transit logger file), hand the kits into the freezer;
- `download_freezer_log`: import the freezer logger's readings up to a time
  (as the pharmacist does each morning), optionally with a short excursion;
- `to_bedside`: download the log, prepare the kit at the pharmacy when its
  product says so (signed), hand it to the bedside before its dose and
  record its thaw when its product has steps at the bedside;
- `ready_kits` / `ready_kit`: all of the above for given dose times.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .. import amounts
from . import config, evidence, samples, services

if TYPE_CHECKING:
    from ..site import Session

UNIT = "FRZ-1"
STEP_MIN = 5
COURIER = "Zhou Ming, SF Cold Chain courier"


def sheet_photo(directory: Path, label: str) -> Path:
    """A JPEG standing in for the photographed, signed paper sheet."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 20), f"Signed handover sheet\n{label}", fill="black")
    draw.rectangle((20, 380, 300, 440), outline="black")
    path = directory / f"sheet-{hashlib.sha256(label.encode()).hexdigest()[:10]}.jpg"
    img.save(path, "JPEG", quality=85)
    return path


def _workdir(workdir: Path | None) -> Path:
    return workdir or Path(tempfile.mkdtemp(prefix="wardcrf-scenario-"))


def _zone(session: Session) -> ZoneInfo:
    return ZoneInfo(config.site_zone(session.store))


def freezer_temp(t: datetime) -> float:
    """A -20 °C freezer's wobble, a function of wall time so overlapping downloads agree."""
    return -20.0 + (((t.hour * 60 + t.minute) // STEP_MIN) % 12 - 6) * 0.15


def product_of(session: Session, product: str | None) -> config.Product:
    """The product a scenario's lot belongs to: the code given, else the protocol's first."""
    found = config.products(session.store)
    if product is None:
        return next(iter(found.values()))
    if product not in found:
        raise ValueError(f"unknown product {product!r} (declared: {', '.join(found)})")
    return found[product]


def unit_for(product: config.Product) -> tuple[str, str]:
    """(unit id, name) of the monitored place a product is stored in: the -20 °C freezer for a frozen
    product, else a unit kept at the product's own range (a 2-8 °C refrigerator, a 15-30 °C cabinet)."""
    if product.frozen:
        return UNIT, "-20 °C freezer, isolation unit"
    return f"CC-{product.low_c:g}-{product.high_c:g}", f"{product.low_c:g}-{product.high_c:g} °C storage"


def unit_temp(unit: dict[str, float] | None, t: datetime) -> float:
    """A unit's wobble around the middle of its range (the freezer's: `freezer_temp`)."""
    if unit is None or unit["high_c"] < 0:
        return freezer_temp(t)
    centre = (unit["low_c"] + unit["high_c"]) / 2
    return round(centre + (((t.hour * 60 + t.minute) // STEP_MIN) % 12 - 6) * 0.15, 2)


def ensure_unit(pharmacist: Session, product: config.Product) -> str:
    """The unit `product` is stored in (`unit_for`), registered first when new (a pharmacist's task)."""
    unit, name = unit_for(product)
    if pharmacist.store.one("SELECT 1 FROM cc_units WHERE unit_id = ?", (unit,)) is None:
        location = "ward 3 clean room" if product.frozen else "ward 3 pharmacy"
        if unit == UNIT and product.frozen:
            services.add_unit(pharmacist, unit, name=name, location=location)
        else:
            services.add_unit(
                pharmacist,
                unit,
                name=name,
                location=location,
                low_c=product.low_c,
                high_c=product.high_c,
                target_c=product.target_c,
            )
    return unit


def lot_label(session: Session, product: config.Product) -> str:
    """What a lot's label says: the product's name and, when every administration of it gives the same
    fixed dose, that dose with its unit as every amount is written (`amounts.quantity`: a product's name
    then "2.0e8" and its unit); a dose by weight (or band) or several doses: the name alone."""
    active = config.active_protocol(session.store)
    model = getattr(active, "engine", None)
    doses = (
        {
            (a.dose.fixed, a.dose.unit)
            for r in model.regimens.values()
            for a in r.administrations
            if a.product == product.code
        }
        if model is not None
        else set()
    )
    if len(doses) != 1 or next(iter(doses))[0] is None:
        return product.name
    [(fixed, unit)] = doses
    return f"{product.name} {amounts.quantity(fixed, unit)}"


@dataclass
class Received:
    lot: str
    kits: list[str]
    receipt: str
    stored: str
    stored_at: datetime


def receive_and_store(
    pharmacist: Session,
    passwords: dict[str, str],
    *,
    lot: str,
    kits: Sequence[str],
    received_at: datetime,
    expiry: str | None = None,
    workdir: Path | None = None,
    custodian: str = "investigator",
    product: str | None = None,
) -> Received:
    """Register the lot, receive it from the courier and put it in its product's unit (15 min later).

    `product`: the protocol's product code (default its first): a frozen one
    travels on dry ice into the -20 °C freezer, any other on cool packs into
    a unit kept at its range (`unit_for`).
    """
    work = _workdir(workdir)
    zone = _zone(pharmacist)
    declared = product_of(pharmacist, product)
    unit = ensure_unit(pharmacist, declared)
    expiry = expiry or (received_at + timedelta(days=730)).date().isoformat()  # shelf life: two years
    services.add_lot(
        pharmacist,
        lot,
        product=lot_label(pharmacist, declared),
        expiry=expiry,
        release_ref=f"QP-REL-{lot}",
        kits=list(kits),
        quantity=len(kits),
        product_code=declared.code,
    )
    depart = (
        (received_at - timedelta(hours=20)).astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    )
    transit_file = work / f"transit-{lot}.txt"
    if declared.frozen:
        transit = samples.series(depart, 10, [-72.0 + (i % 5) * 0.4 for i in range(120)])
        transit_file.write_bytes(
            samples.fridgetag(transit, serial="100800001215", interval_min=10, low=-90, high=-15)
        )
    else:
        centre = (declared.low_c + declared.high_c) / 2
        transit = samples.series(depart, 10, [round(centre + (i % 5) * 0.2, 2) for i in range(120)])
        transit_file.write_bytes(
            samples.fridgetag(
                transit,
                serial="100800001215",
                interval_min=10,
                low=int(declared.low_c),
                high=int(declared.high_c),
            )
        )
    photo = sheet_photo(work, f"delivery {lot}")
    receipt = services.receive_shipment(
        pharmacist,
        shipper_id=f"SH-{lot}",
        kits=list(kits),
        received_at=received_at.isoformat(),
        to_location="pharmacy",
        delivered_by_external=COURIER,
        dry_ice=declared.frozen,
        container_intact=True,
        product_frozen=declared.frozen,
        logger_file=transit_file,
        photos=[f"@{photo}"],
        condition="dry ice present, seals intact" if declared.frozen else "cool packs, seals intact",
        passwords=passwords,
    )
    stored_at = received_at + timedelta(minutes=15)
    stored = services.record_handover(
        pharmacist,
        kits=list(kits),
        at=stored_at.isoformat(),
        from_location="pharmacy",
        to_location=unit,
        from_user=pharmacist.user,
        to_user=custodian,
        passwords=passwords,
        condition="frozen, labels intact" if declared.frozen else "cold, labels intact",
        photos=[f"@{sheet_photo(work, f'handover {lot} pharmacy to {unit}')}"],
    )
    return Received(
        services.scanned_id(pharmacist.store, lot, "lot"),
        [services.scanned_id(pharmacist.store, k) for k in kits],
        receipt.event.id,
        stored.event.id,
        stored_at,
    )


def download_freezer_log(
    pharmacist: Session,
    until: datetime,
    *,
    since: datetime | None = None,
    workdir: Path | None = None,
    excursion: tuple[datetime, int] | None = None,
    unit: str = UNIT,
) -> str | None:
    """Import a unit's (the freezer's) readings up to `until`, from the last download (and from
    `since` when that is earlier than anything imported, as a separate file).

    `excursion`: (start, minutes) during which the log reads -13.5 °C (in a
    unit above 0 °C: 1.5 °C above its range). Returns the last import event
    id, or None when there was nothing new.
    """
    zone = _zone(pharmacist)
    row = pharmacist.store.one("SELECT min(t), max(t) FROM cc_readings WHERE unit_id = ?", (unit,))
    first, last = row if row else (None, None)
    end = until.astimezone(zone).replace(tzinfo=None)
    event = None
    if since is not None and (first is None or since.timestamp() < first):
        start = since.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        start -= timedelta(minutes=start.minute % STEP_MIN)
        upto = end if first is None else datetime.fromtimestamp(first, zone).replace(tzinfo=None)
        event = _import_span(pharmacist, start, upto, workdir, excursion, unit)
    if last is not None:
        event = (
            _import_span(
                pharmacist,
                datetime.fromtimestamp(last, zone).replace(tzinfo=None),
                end,
                workdir,
                excursion,
                unit,
            )
            or event
        )
    elif since is None:
        raise ValueError("first download: say since when the log runs")
    return event


def _import_span(
    pharmacist: Session,
    start: datetime,
    end: datetime,
    workdir: Path | None,
    excursion: tuple[datetime, int] | None,
    unit: str = UNIT,
) -> str | None:
    zone = _zone(pharmacist)
    rows = pharmacist.store.rows("SELECT low_c, high_c FROM cc_units WHERE unit_id = ?", (unit,))
    rng = rows[0] if rows else None
    stamps = []
    t = start
    while t <= end:
        stamps.append(t)
        t += timedelta(minutes=STEP_MIN)
    if len(stamps) < 2:
        return None
    temps = [unit_temp(rng, s) for s in stamps]
    if excursion:
        hot_from = excursion[0].astimezone(zone).replace(tzinfo=None)
        hot_to = hot_from + timedelta(minutes=excursion[1])
        hot = -13.5 if rng is None or rng["high_c"] < 0 else rng["high_c"] + 1.5
        temps = [hot if hot_from <= s < hot_to else v for s, v in zip(stamps, temps, strict=True)]
    path = _workdir(workdir) / f"{unit}-{stamps[0]:%Y%m%d%H%M}-{stamps[-1]:%Y%m%d%H%M}.txt"
    alarm = {} if rng is None or rng["high_c"] < 0 else {"low": rng["low_c"], "high": rng["high_c"]}
    path.write_bytes(
        samples.fridgetag(samples.series(stamps[0], STEP_MIN, temps), serial="130500109088", **alarm)
    )
    digest = evidence.sha256_hex(path.read_bytes())
    if pharmacist.store.one("SELECT 1 FROM cc_logger_files WHERE sha256 = ?", (digest,)):
        return None
    return services.import_logger(pharmacist, path, unit).event.id


def to_bedside(
    pharmacist: Session,
    passwords: dict[str, str],
    kit: str,
    when: datetime,
    *,
    clinician: str = "clinician",
    bedside: Session | None = None,
    workdir: Path | None = None,
    since: datetime | None = None,
    participant: str | None = None,
) -> str:
    """45 min before the dose: download the log of the kit's unit, hand the kit to the bedside, and
    thaw or prepare it (-40 … -15 min) when its product declares preparation steps. With `participant`
    the kit goes to `bedside:<participant>`, so the worklist says whose vial it is."""
    out = when - timedelta(minutes=45)
    key = services.scanned_id(pharmacist.store, kit)
    product = config.product_of_kit(pharmacist.store, key)
    last = pharmacist.store.rows(
        "SELECT t.to_location FROM cc_custody c JOIN cc_transfers t USING (event_id) WHERE c.kit_id = ?"
        " ORDER BY t.at DESC, t.event_id DESC LIMIT 1",
        (key,),
    )
    unit = last[0]["to_location"] if last else unit_for(product)[0]
    download_freezer_log(pharmacist, out, since=since, workdir=workdir, unit=unit)
    if product.pharmacy_steps:  # prepared by the pharmacist (-40 … -5 min before the handover), signed
        services.record_preparation(
            pharmacist,
            kit,
            start=(out - timedelta(minutes=40)).isoformat(),
            end=(out - timedelta(minutes=5)).isoformat(),
            values=preparation_values(product),
            password=passwords[pharmacist.user],
        )
    h = services.record_handover(
        pharmacist,
        kits=[kit],
        at=out.isoformat(),
        from_location=unit,
        to_location=f"bedside:{participant}" if participant else "bedside",
        from_user=pharmacist.user,
        to_user=clinician,
        passwords=passwords,
        condition="frozen" if product.frozen else "cold",
        photos=[f"@{sheet_photo(_workdir(workdir), f'handover {kit} {unit} to bedside')}"],
    )
    if product.bedside_steps:
        services.record_thaw(
            bedside or pharmacist,
            kit,
            start=(out + timedelta(minutes=5)).isoformat(),
            end=(out + timedelta(minutes=30)).isoformat(),
            reconstitution="diluted with normal saline to 6 ml"
            if product.frozen
            else "; ".join(s.label for s in product.steps),
        )
    return h.event.id


def preparation_values(product: config.Product) -> dict[str, object]:
    """Plausible values of the fields the protocol asks with `product`'s pharmacy steps: a number at its
    range's midpoint (1 without one), a choice's first code, a text naming the step."""
    out: dict[str, object] = {}
    for step in product.pharmacy_steps:
        for name, spec in step.fields:
            kind = spec["type"]
            if kind in ("number", "integer"):
                lo, hi = spec.get("hard") or (1, 1)
                mid = (float(lo) + float(hi)) / 2
                out[name] = int(mid) if kind == "integer" else mid
            elif kind == "choice":
                out[name] = spec["choices"][0]["code"]
            else:
                out[name] = step.label[:100]
    return out


@dataclass
class ReadyKits:
    lot: str
    kits: list[str]
    receipt: str
    handovers: list[str]


def ready_kits(
    pharmacist: Session,
    passwords: dict[str, str],
    *,
    lot: str,
    kits: Sequence[str],
    dose_times: Sequence[datetime],
    clinician: str = "clinician",
    received_at: datetime | None = None,
    expiry: str | None = None,
    workdir: Path | None = None,
    excursion: tuple[datetime, int] | None = None,
    bedside: Session | None = None,
    product: str | None = None,
    participant: str | None = None,
) -> ReadyKits:
    """Make `kits` (of `product`, default the protocol's first) dosable at `dose_times` (aware
    datetimes, one per kit); with `participant` each is handed to `bedside:<participant>`.

    `excursion`: (start, minutes) of a short excursion in the freezer log.
    `bedside`: the session of whoever thaws (default: the pharmacist's).
    `passwords` holds each signer's password (pharmacist, investigator, `clinician`).
    """
    if len(kits) != len(dose_times):
        raise ValueError("one dose time per kit")
    work = _workdir(workdir)
    arrive = received_at or (min(dose_times) - timedelta(days=1, hours=1))
    got = receive_and_store(
        pharmacist,
        passwords,
        lot=lot,
        kits=kits,
        received_at=arrive,
        expiry=expiry,
        workdir=work,
        product=product,
    )
    handovers = [got.stored]
    if excursion:
        download_freezer_log(
            pharmacist,
            excursion[0] + timedelta(minutes=excursion[1] + 30),
            since=got.stored_at - timedelta(minutes=30),
            workdir=work,
            excursion=excursion,
            unit=unit_for(product_of(pharmacist, product))[0],
        )
    for kit, when in sorted(zip(got.kits, dose_times, strict=True), key=lambda p: p[1]):
        handovers.append(
            to_bedside(
                pharmacist,
                passwords,
                kit,
                when,
                clinician=clinician,
                bedside=bedside,
                workdir=work,
                since=got.stored_at - timedelta(minutes=30),
                participant=participant,
            )
        )
    return ReadyKits(got.lot, got.kits, got.receipt, handovers)


def ready_kit(
    pharmacist: Session,
    passwords: dict[str, str],
    kit: str,
    when: datetime,
    *,
    clinician: str = "clinician",
    workdir: Path | None = None,
    bedside: Session | None = None,
    product: str | None = None,
    participant: str | None = None,
) -> ReadyKits:
    """One kit (of `product`, default the protocol's first) with complete custody for a dose at `when`
    (its own lot ``LOT-<kit>``); with `participant` handed to `bedside:<participant>`."""
    kit = services.scanned_id(pharmacist.store, kit)
    if pharmacist.store.one("SELECT 1 FROM cc_kits WHERE kit_id = ?", (kit,)):
        raise ValueError(f"kit {kit} already has a custody record")
    return ready_kits(
        pharmacist,
        passwords,
        lot=f"LOT-{kit}",
        kits=[kit],
        dose_times=[when],
        clinician=clinician,
        workdir=workdir,
        bedside=bedside,
        product=product,
        participant=participant,
    )
