"""Write logger files in each supported layout (tests, benchmark, demo).

The Fridge-tag writer reproduces the quirks of real Fridge-tag 2 L exports:
CRLF line ends, key/value ``Conf:``/``Hist:`` blocks, a ``Data:`` block whose
lines start with a TAB and carry an ``x`` when the device judged the reading
out of limits, ``--.-`` for an interval without a value, and ``Cert:``,
``Sig Cert:`` and ``Sig:`` blocks at the end. The signature values here are
random hex of the real length; wardcrf does not verify Berlinger signatures
(it hashes and keeps the whole file as evidence).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta


def series(
    start: datetime, step_minutes: int, temps: Sequence[float | None]
) -> list[tuple[datetime, float | None]]:
    return [(start + timedelta(minutes=i * step_minutes), t) for i, t in enumerate(temps)]


def fridgetag(
    rows: Sequence[tuple[datetime, float | None]],
    *,
    serial: str = "130500109088",
    interval_min: int = 5,
    low: float = -25.0,
    high: float = -15.0,
    unit: str = "C",
) -> bytes:
    """A Fridge-tag 2 L style text export (CRLF) of local wall times."""
    first = rows[0][0]
    last = rows[-1][0]
    out = [
        "Device: Q-tag Fridge-tag 2 L",
        "Vers: 0.5",
        "Fw Vers: 4.0p0o",
        "Sensor: 1",
        "Conf:",
        f" Serial: {serial}",
        " PCB: V70603211312",
        " CID: 11",
        " Lot: 1794_20_08",
        " Zone: 0.00",
        " Measurement delay: 10",
        " Moving Avrg: 1",
        " User Alarm Config: 0",
        " User Clock Config: 1",
        " Alarm Indication: 1",
        f" Temp unit: {unit}",
        " Alarm:",
        "  0:",
        f"   T AL: {low:+.1f}, t AL: 60",
        "  1:",
        f"   T AL: {high:+.1f}, t AL: 60",
        " Int Sensor:",
        "  Timeout: 1, Offset: +0.0",
        " Report history length: 56",
        " Det Report: 19",
        " Use ext devices: 0",
        f" Logging Interval: {interval_min}",
        " Test Res: 1, Test TS: 2020-02-02 07:00",
        "Hist:",
        f" TS Actv: {first:%Y-%m-%d %H:%M}",
        f" TS Report Creation: {last:%Y-%m-%d %H:%M}",
    ]
    days = sorted({d.date() for d, _ in rows}, reverse=True)
    for n, day in enumerate(days, 1):
        vals = [t for d, t in rows if d.date() == day and t is not None]
        if not vals:
            continue
        out += [
            f" {n}:",
            f"  Date: {day:%Y-%m-%d}",
            f"  Min T: {min(vals):+.1f}, TS Min T: 00:00",
            f"  Max T: {max(vals):+.1f}, TS Max T: 00:00",
            f"  Avrg T: {sum(vals) / len(vals):+.1f}",
            "  Alarm:",
            "   0:",
            "    t Acc: 0",
            "   1:",
            "    t Acc: 0",
            "  Int Sensor timeout:",
            "   t AccST: 0",
            "  Events: 0",
        ]
    out += ["Data:", "\tyyyy-MM-dd hh:mm\tT\tOut of limits"]
    for when, t in rows:
        if t is None:
            out.append(f"\t{when:%Y-%m-%d %H:%M}\t--.-\tx")
        else:
            flag = "\tx" if (t < low or t > high) else ""
            out.append(f"\t{when:%Y-%m-%d %H:%M}\t{t:.1f}{flag}")
    digest = hashlib.sha512("\n".join(out).encode()).hexdigest()
    out += [
        "Cert:",
        " Vers: 1.0",
        " Lot: 1794_20_08",
        " Issuer: Berlinger & Co. AG",
        " Valid from: 2020-01-21 07:43",
        " Owner: Berlinger & Co. AG",
        f" Public Key: {digest}",
        f"Sig Cert: {digest[::-1]}",
        f"Sig: {hashlib.sha512(digest.encode()).hexdigest()}",
    ]
    return ("\r\n".join(out) + "\r\n").encode("ascii")


def elitech(
    rows: Sequence[tuple[datetime, float]],
    *,
    serial: str = "EL-RC4-0042",
    zone: str | None = None,
    comma_decimal: bool = False,
    bom: bool = False,
) -> bytes:
    """An Elitech RC-4 style export: header lines, then index<TAB>datetime<TAB>°C."""
    head = ["Elitech RC-4 Temperature Data Logger", f"Serial No: {serial}"]
    if zone:
        head.append(f"Time zone: {zone}")
    head.append("No.\tTime\tTemperature(°C)")
    lines = head[:]
    for i, (when, t) in enumerate(rows, 1):
        value = f"{t:.1f}".replace(".", ",") if comma_decimal else f"{t:.1f}"
        lines.append(f"{i}\t{when:%Y-%m-%d %H:%M:%S}\t{value}")
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def csv(
    rows: Sequence[tuple[datetime, float]],
    *,
    sep: str = ",",
    header: bool = True,
    comma_decimal: bool = False,
    offset: str | None = None,
) -> bytes:
    """A plain CSV: timestamp SEP temperature (ISO 8601, optional offset on each line)."""
    lines = [f"timestamp{sep}temperature_c"] if header else []
    for when, t in rows:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S") + (offset or "")
        value = f"{t:.2f}".replace(".", ",") if comma_decimal else f"{t:.2f}"
        lines.append(f"{stamp}{sep}{value}")
    return ("\n".join(lines) + "\n").encode("utf-8")
