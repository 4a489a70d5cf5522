"""A complete, realistic custody chain in a few calls (demo and test fixtures).

`ready_kits` does what the ward does for a shipment: register the freezer
(if needed) and the lot, receive the shipment from an external courier
(photo of the signed delivery sheet, transit logger file), hand the kits
from the pharmacist into the freezer, import the freezer's logger file
covering their stay, hand each kit to the bedside before its dose and
record its thaw. Every step is signed by each party with an account.
Nothing here bypasses a service: it is the same path a person takes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ..site import Session
from . import config, evidence, samples, services

UNIT = "FRZ-1"


def sheet_photo(directory: Path, label: str) -> Path:
    """A JPEG standing in for the photographed, signed paper sheet."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 20), f"Signed handover sheet\n{label}", fill="black")
    draw.rectangle((20, 380, 300, 440), outline="black")
    path = directory / f"sheet-{abs(hash(label)) % 10**8}.jpg"
    img.save(path, "JPEG", quality=85)
    return path


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
    expiry: str = "2021-03-31",
    workdir: Path | None = None,
    excursion: tuple[datetime, int] | None = None,
    bedside: Session | None = None,
) -> ReadyKits:
    """Make `kits` dosable at `dose_times` (aware datetimes, one per kit, in order).

    `excursion`: (local start, minutes) of a short excursion in the freezer
    log, for demonstrations of quarantine and disposition. `bedside`: the
    session of whoever thaws at the bedside (default: the pharmacist's).
    `passwords` holds the password of each signer (pharmacist,
    investigator, `clinician`).
    """
    if len(kits) != len(dose_times):
        raise ValueError("one dose time per kit")
    zone = ZoneInfo(config.site_zone(pharmacist.store))
    work = workdir or Path(tempfile.mkdtemp(prefix="wardcrf-scenario-"))
    store = pharmacist.store
    if store.one("SELECT 1 FROM cc_units WHERE unit_id = ?", (UNIT,)) is None:
        services.add_unit(
            pharmacist, UNIT, name="-20 °C freezer, isolation unit", location="ward 3 clean room"
        )
    first_dose = min(dose_times)
    arrive = received_at or (first_dose - timedelta(days=1, hours=1))
    services.add_lot(
        pharmacist,
        lot,
        product="haMSC-Exos 2.0e8 particles",
        expiry=expiry,
        release_ref=f"QP-REL-{lot}",
        kits=list(kits),
        quantity=len(kits),
    )
    transit = samples.series(
        (arrive - timedelta(hours=20)).astimezone(zone).replace(tzinfo=None),
        10,
        [-72.0 + (i % 5) * 0.4 for i in range(120)],
    )
    transit_file = work / f"transit-{lot}.txt"
    transit_file.write_bytes(
        samples.fridgetag(transit, serial="100800001215", interval_min=10, low=-90, high=-15)
    )
    delivery_photo = sheet_photo(work, f"delivery {lot}")
    receipt = services.receive_shipment(
        pharmacist,
        shipper_id=f"SH-{lot}",
        kits=list(kits),
        received_at=arrive.isoformat(),
        to_location="pharmacy",
        delivered_by_external="Li Wei, SF Cold Chain courier",
        dry_ice=True,
        container_intact=True,
        product_frozen=True,
        logger_file=transit_file,
        photos=[f"@{delivery_photo}"],
        condition="dry ice present, seals intact",
        passwords=passwords,
    )
    stored_at = arrive + timedelta(minutes=15)
    into = services.record_handover(
        pharmacist,
        kits=list(kits),
        at=stored_at.isoformat(),
        from_location="pharmacy",
        to_location=UNIT,
        from_user=pharmacist.user,
        to_user="investigator",
        passwords=passwords,
        condition="frozen, labels intact",
    )
    handovers = [into.event.id]
    # The freezer log covers the whole stay, from before storage to after the last kit left.
    last_out = max(dose_times) - timedelta(minutes=45)
    start_local = (
        (stored_at - timedelta(minutes=30)).astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    )
    end_local = (last_out + timedelta(minutes=30)).astimezone(zone).replace(tzinfo=None)
    n = int((end_local - start_local).total_seconds() // 300) + 1
    # A function of the wall time, so logs of overlapping stays agree reading for reading.
    stamps = [start_local + timedelta(minutes=5 * i) for i in range(n)]
    temps = [-20.0 + (((t.hour * 60 + t.minute) // 5) % 12 - 6) * 0.15 for t in stamps]
    if excursion:
        ex_start, minutes = excursion
        ex_local = ex_start.astimezone(zone).replace(tzinfo=None)
        for i in range(n):
            t = start_local + timedelta(minutes=5 * i)
            if ex_local <= t < ex_local + timedelta(minutes=minutes):
                temps[i] = -13.5
    log_file = work / f"freezer-{lot}-{stamps[0]:%Y%m%d%H%M}.txt"
    log_file.write_bytes(samples.fridgetag(samples.series(start_local, 5, temps), serial="130500109088"))
    _import_once(pharmacist, log_file)
    for kit, when in sorted(zip(kits, dose_times, strict=True), key=lambda p: p[1]):
        out = when - timedelta(minutes=45)
        h = services.record_handover(
            pharmacist,
            kits=[kit],
            at=out.isoformat(),
            from_location=UNIT,
            to_location="bedside",
            from_user=pharmacist.user,
            to_user=clinician,
            passwords=passwords,
            condition="frozen",
        )
        handovers.append(h.event.id)
        services.record_thaw(
            bedside or pharmacist,
            kit,
            start=(out + timedelta(minutes=5)).isoformat(),
            end=(out + timedelta(minutes=30)).isoformat(),
            reconstitution="diluted with normal saline to 6 ml",
        )
    return ReadyKits(lot, list(kits), receipt.event.id, handovers)


def _import_once(session: Session, path: Path) -> None:
    """Import a freezer log unless this very file was already imported."""
    digest = evidence.sha256_hex(path.read_bytes())
    if session.store.one("SELECT 1 FROM cc_logger_files WHERE sha256 = ? AND unit_id = ?", (digest, UNIT)):
        return
    services.import_logger(session, path, UNIT)


def ready_kit(
    pharmacist: Session,
    passwords: dict[str, str],
    kit: str,
    when: datetime,
    *,
    clinician: str = "clinician",
    workdir: Path | None = None,
    bedside: Session | None = None,
) -> ReadyKits:
    """One kit with complete custody for a dose at `when` (its own lot ``LOT-<kit>``), if not done yet."""
    kit = services.scanned_id(kit)
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
    )
