"""A site with a cold chain under the TUI tests' fixed clock (2020-03-16 09:00 Asia/Shanghai).

Freezer FRZ-1; lot LOT1 with kits K001-K003 received from a courier with an
account (coordinator) and stored in FRZ-1 the day before; the freezer's
logger file (generated with `wardcrf.coldchain.samples`, as the cold-chain
unit tests do) shows one 20-minute excursion overnight; K001 is released,
K002 and K003 still quarantined; K002 was handed towards the bedside with
the clinician's signature still pending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from wardcrf.coldchain import samples, services

PASSWORD = "test-password-1"
SIGNERS = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician", "coordinator")}
ARRIVE = datetime(2020, 3, 15, 8, 0)
STORE = ARRIVE + timedelta(minutes=15)
HOT = (datetime(2020, 3, 15, 22, 0), datetime(2020, 3, 15, 22, 20))
LOG_END = datetime(2020, 3, 16, 8, 45)
EXCURSION = "FRZ-1/2020-03-15T14:00:00Z"


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="minutes")


def freezer_rows(start: datetime, end: datetime, hot: tuple[datetime, datetime] | None = None):
    rows = []
    t = start
    i = 0
    while t <= end:
        temp = -13.0 if hot and hot[0] <= t < hot[1] else -20.0 + ((i % 6) - 3) * 0.2
        rows.append((t, round(temp, 1)))
        t += timedelta(minutes=5)
        i += 1
    return rows


def freezer_file(directory: Path, start: datetime, end: datetime, hot=None, name: str = "frz.txt") -> Path:
    path = directory / name
    path.write_bytes(samples.fridgetag(freezer_rows(start, end, hot)))
    return path


def add_unit_and_lot(ph, kits=("K001", "K002", "K003"), lot: str = "LOT1") -> None:
    if ph.store.one("SELECT 1 FROM cc_units WHERE unit_id = 'FRZ-1'") is None:
        services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    services.add_lot(
        ph,
        lot,
        product="haMSC-Exos",
        expiry="2021-03-31",
        release_ref="QP-1",
        kits=list(kits),
        quantity=len(kits),
    )


def cold_chain_site(site, tmp_path: Path, *, pending: bool = True, disposition: bool = True) -> None:
    ph = site.unlock("pharmacist", PASSWORD)
    try:
        add_unit_and_lot(ph)
        kits = ["K001", "K002", "K003"]
        services.receive_shipment(
            ph,
            shipper_id="SH1",
            kits=kits,
            received_at=iso(ARRIVE),
            to_location="pharmacy",
            delivered_by_user="coordinator",
            dry_ice=True,
            container_intact=True,
            product_frozen=True,
            logger_serial="LG-9",
            condition="-72 °C on the shipper display",
            passwords=SIGNERS,
        )
        services.record_handover(
            ph,
            kits=kits,
            at=iso(STORE),
            from_location="pharmacy",
            to_location="FRZ-1",
            from_user="pharmacist",
            to_user="investigator",
            passwords=SIGNERS,
        )
        services.import_logger(
            ph, freezer_file(tmp_path, STORE - timedelta(minutes=30), LOG_END, HOT), "FRZ-1"
        )
        if disposition:
            services.record_disposition(
                ph,
                EXCURSION,
                decision="release",
                reason="20 min at -13 °C, within stability data",
                kits=["K001"],
            )
        if pending:
            services.record_handover(
                ph,
                kits=["K002"],
                at=iso(datetime(2020, 3, 16, 8, 30)),
                from_location="FRZ-1",
                to_location="bedside:P-001",
                from_user="pharmacist",
                to_user="clinician",
                passwords={"pharmacist": PASSWORD},
            )
    finally:
        ph.close()
