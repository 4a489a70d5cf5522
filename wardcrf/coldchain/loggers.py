"""Parse temperature-logger exports into UTC readings, or refuse the whole file.

Three layouts are recognised (see docs/coldchain.md for examples):

``fridgetag``
    Berlinger Fridge-tag 2 L / Ultra Low text export: key/value blocks
    (``Device:``, ``Conf:``, ``Hist:`` daily summaries), then a ``Data:``
    block whose lines start with a TAB: ``<TAB>yyyy-MM-dd hh:mm<TAB>T`` and
    an optional ``<TAB>x`` when the device itself judged the reading out of
    limits; then ``Cert:``/``Sig Cert:``/``Sig:`` blocks. Lines are CRLF.
    ``--.-`` marks an interval without a value (sensor not ready, HI/LO): it
    is counted, not imported, and leaves a gap. The file states no time zone
    (the device clock is set by hand), so the unit's zone applies.
``elitech``
    Elitech-style tab-separated export: ``index<TAB>%Y-%m-%d %H:%M:%S<TAB>T``,
    optionally after header lines (column titles, ``Serial:``, ``Time zone:``).
``csv``
    A plain table of ``timestamp, temperature`` separated by ``,`` ``;`` or a
    TAB, with an optional header row. Timestamps are ISO 8601; each may carry
    an offset (``Z``, ``+08:00``); otherwise a ``Time zone:`` header line or
    the unit's zone applies. With ``;`` or TAB separators a comma may be the
    decimal mark.

A file is refused whole (`LoggerFileError`, with the line number and the
reason) when anything is malformed or ambiguous: an unknown layout, a
day-first date, a comma used both as separator and decimal mark, a local
time that falls in a daylight-saving change, readings out of order,
implausible temperatures, mixed offset and local timestamps. Nothing from a
refused file is imported.

Parsing is line-by-line with one compiled expression per layout and
hand-computed epoch seconds (no ``strptime``), so a year at one-minute
intervals parses in about a second.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import Refused, UsageError

MAX_FILE_BYTES = 200 * 1024 * 1024
PLAUSIBLE_C = (-100.0, 100.0)
FORMATS = ("csv", "fridgetag", "elitech")


class LoggerFileError(Refused):
    """A logger file that cannot be imported; the message names line and reason. Exit 1 (refused)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.line = line
        self.reason = reason
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"logger file refused, nothing imported: {where}{reason}")


@dataclass
class LoggerLog:
    """Readings from one file: UTC epoch seconds and °C, strictly increasing in time."""

    format: str
    zone: str
    zone_source: str  # "file" (stated in the file) or "unit" (the unit's configured zone)
    times: array = field(default_factory=lambda: array("q"))
    temps: array = field(default_factory=lambda: array("d"))
    serial: str | None = None
    interval_s: int | None = None  # stated by the file, else None
    no_value: int = 0  # intervals the device logged without a value ("--.-")
    device_flagged: int = 0  # readings the device itself marked out of limits
    unit_converted: str | None = None  # "F" when the file was in Fahrenheit

    def __len__(self) -> int:
        return len(self.times)

    @property
    def interval(self) -> int:
        """The logging interval in seconds: stated, else the most common step."""
        if self.interval_s:
            return self.interval_s
        return typical_interval(self.times)


def typical_interval(times: array | list[int]) -> int:
    if len(times) < 2:
        return 0
    steps = Counter(times[i + 1] - times[i] for i in range(min(len(times) - 1, 20000)))
    return steps.most_common(1)[0][0]


# -- text -------------------------------------------------------------------------------


def decode(raw: bytes) -> str:
    """Text from bytes: UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1.

    Latin-1 is the fallback because Windows logger tools write "°C" in the
    local code page; every character that matters for the data is ASCII.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoggerFileError("starts with a UTF-16 byte-order mark but is not valid UTF-16") from exc
    if b"\x00" in raw[:4096]:
        raise LoggerFileError("binary file (NUL bytes): export the logger's data as text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# -- time --------------------------------------------------------------------------------

_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 (proleptic Gregorian), Howard Hinnant's algorithm."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


class _Clock:
    """Naive local wall times -> UTC epoch seconds in one zone, with caches.

    The offset is looked up once per local hour; in an hour where the zone's
    offset changes (daylight saving) every minute is checked, and a time that
    is ambiguous (clocks set back) or does not exist (clocks set forward) is
    refused: the file must state an offset for such times.
    """

    def __init__(self, zone_name: str) -> None:
        self.zone_name = zone_name
        self.tz = get_zone(zone_name)
        self._days: dict[tuple[int, int, int], int] = {}
        self._hour_offset: dict[tuple[int, int, int, int], int | None] = {}
        # "YYYY-MM-DD HH" -> UTC epoch of that local hour, for hours without an offset change.
        self.bases: dict[str, int] = {}

    def at(self, key: str, mi: int, s: int, line: int) -> int:
        """UTC epoch of local `key` ("YYYY-MM-DD HH") plus minutes and seconds (slow path)."""
        y, mo, d, h = int(key[0:4]), int(key[5:7]), int(key[8:10]), int(key[11:13])
        t = self.local_to_utc(y, mo, d, h, mi, s, line)
        if self._hour_offset.get((y, mo, d, h)) is not None:
            self.bases[key] = t - mi * 60 - s
        return t

    def day(self, y: int, m: int, d: int, line: int) -> int:
        key = (y, m, d)
        days = self._days.get(key)
        if days is None:
            if not (1 <= m <= 12) or not (1 <= d <= _month_days(y, m)) or not (1900 <= y <= 2200):
                raise LoggerFileError(f"invalid date {y:04d}-{m:02d}-{d:02d}", line)
            days = _days_from_civil(y, m, d)
            self._days[key] = days
        return days

    def local_to_utc(self, y: int, mo: int, d: int, h: int, mi: int, s: int, line: int) -> int:
        if h > 23 or mi > 59 or s > 59:
            raise LoggerFileError(f"invalid time {h:02d}:{mi:02d}:{s:02d}", line)
        naive = self.day(y, mo, d, line) * 86400 + h * 3600 + mi * 60 + s
        key = (y, mo, d, h)
        if key in self._hour_offset:
            off = self._hour_offset[key]
        else:
            off = self._offset_if_steady(y, mo, d, h)
            self._hour_offset[key] = off
        if off is None:
            off = self._exact_offset(y, mo, d, h, mi, s, line)
        return naive - off

    def _offset_if_steady(self, y: int, mo: int, d: int, h: int) -> int | None:
        start = datetime(y, mo, d, h, 0, 0)
        offs = set()
        for minute in (0, 59):
            for fold in (0, 1):
                dt = start.replace(minute=minute, fold=fold, tzinfo=self.tz)
                offs.add(int(dt.utcoffset().total_seconds()))  # type: ignore[union-attr]
        # Also the UTC round trip: a non-existent time maps back to another wall time.
        return offs.pop() if len(offs) == 1 else None

    def _exact_offset(self, y: int, mo: int, d: int, h: int, mi: int, s: int, line: int) -> int:
        local = datetime(y, mo, d, h, mi, s)
        a = local.replace(fold=0, tzinfo=self.tz)
        b = local.replace(fold=1, tzinfo=self.tz)
        oa, ob = a.utcoffset(), b.utcoffset()
        if oa != ob:
            back = a.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None)
            what = (
                "is ambiguous (clocks set back)" if back == local else "does not exist (clocks set forward)"
            )
            raise LoggerFileError(
                f"local time {local:%Y-%m-%d %H:%M:%S} {what} in zone {self.zone_name}; "
                "the file must state the UTC offset for readings around a daylight-saving change",
                line,
            )
        return int(oa.total_seconds())  # type: ignore[union-attr]


def get_zone(name: str) -> ZoneInfo | timezone:
    """An IANA zone, or a fixed offset written ``UTC+08:00``, ``+08:00``, ``UTC+8`` or ``UTC``."""
    text = name.strip()
    m = re.fullmatch(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", text, re.IGNORECASE)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes > 59:
            raise LoggerFileError(f"invalid UTC offset {name!r}")
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    if text.upper() in ("UTC", "GMT", "Z"):
        return UTC
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise LoggerFileError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai "
            "or an offset such as UTC+08:00)"
        ) from exc


def iso_local(epoch: int, zone_name: str) -> str:
    """An epoch second as local ISO 8601 with offset, for people reading results."""
    return datetime.fromtimestamp(epoch, get_zone(zone_name)).isoformat(timespec="seconds")


def iso_z(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_when(text: str, zone_name: str) -> int:
    """A time a person typed (ISO 8601, offset optional: then the unit's/site's zone) -> epoch."""
    raw = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2020-03-16T09:00 or 2020-03-16T09:00+08:00"
        ) from None
    if dt.tzinfo is None:
        clock = _Clock(zone_name)
        try:
            return clock.local_to_utc(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, 0)
        except LoggerFileError as exc:
            raise UsageError(f"time {text!r}: {exc.reason}") from None
    return int(dt.timestamp())


# -- detection ----------------------------------------------------------------------------

_FT_DATA = re.compile(r"^\t(\d{4}-\d{2}-\d{2} \d{2}):(\d{2})\t([^\t]*)(?:\t([^\t]*))?$")
_ELITECH = re.compile(
    r"^\s*(\d+)\t\s*(\d{4}-\d{2}-\d{2} \d{2}):(\d{2}):(\d{2})\s*\t"
    r"\s*\"?([-+]?\d+(?:[.,]\d+)?)\"?\s*$"
)
_ISO_TS = (
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_DAY_FIRST = re.compile(r"^\s*\"?\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
_META = re.compile(r"^\s*([A-Za-z][A-Za-z .()/_-]*?)\s*[:=]\s*(.*?)\s*$")


_AMBIGUOUS_COMMA = re.compile(rf"^\s*\"?{_ISO_TS}\"?\s*,\s*[-+]?\d+,\d+\s*,?\s*$")


def _csv_regex(sep: str) -> re.Pattern[str]:
    """timestamp SEP temperature; with ',' a comma decimal must be quoted."""
    s = re.escape(sep)
    num = r'"[-+]?\d+(?:[.,]\d+)?"|[-+]?\d+(?:\.\d+)?' if sep == "," else r'"?[-+]?\d+(?:[.,]\d+)?"?'
    return re.compile(rf"^\s*\"?{_ISO_TS}\"?\s*{s}\s*({num})\s*{s}?\s*$")


_CSV_PATTERNS = {sep: _csv_regex(sep) for sep in (";", "\t", ",")}


def detect(lines: list[str]) -> str:
    """Which layout a file has; refuses a file that matches none (or several)."""
    head = [ln for ln in lines[:50] if ln.strip()]
    if head and head[0].startswith("Device:") and "fridge-tag" in head[0].lower():
        return "fridgetag"
    found: set[str] = set()
    for n, ln in enumerate(lines[:5000], 1):
        if not ln.strip():
            continue
        if _DAY_FIRST.match(ln):
            raise LoggerFileError("dates must be ISO (yyyy-mm-dd); day/month order is ambiguous", n)
        if _ELITECH.match(ln):
            found.add("elitech")
        elif any(p.match(ln) for p in _CSV_PATTERNS.values()) or _AMBIGUOUS_COMMA.match(ln):
            found.add("csv")
        if found:
            break
    if len(found) == 1:
        return found.pop()
    raise LoggerFileError(
        "unrecognised layout: expected a Fridge-tag 2 L text export, an Elitech export "
        "(index<TAB>yyyy-mm-dd hh:mm:ss<TAB>°C) or a CSV of ISO-8601 timestamp and °C"
    )


# -- parsing --------------------------------------------------------------------------------


def parse(raw: bytes, unit_zone: str, *, fmt: str | None = None) -> LoggerLog:
    """Parse a logger file; `unit_zone` applies to times the file states no zone for."""
    if len(raw) > MAX_FILE_BYTES:
        raise LoggerFileError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if not raw.strip():
        raise LoggerFileError("file is empty")
    text = decode(raw)
    lines = text.splitlines()
    fmt = fmt or detect(lines)
    if fmt == "fridgetag":
        log = _parse_fridgetag(lines, unit_zone)
    elif fmt == "elitech":
        log = _parse_elitech(lines, unit_zone)
    elif fmt == "csv":
        log = _parse_csv(lines, unit_zone)
    else:
        raise UsageError(f"unknown logger format {fmt!r} (allowed: {', '.join(FORMATS)})")
    if not log.times:
        raise LoggerFileError("the file holds no temperature readings")
    return log


def _temperature(text: str, line: int, fahrenheit: bool) -> float:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        raise LoggerFileError(f"temperature {text!r} is not a number", line) from None
    if not math.isfinite(value):
        raise LoggerFileError(f"temperature {text!r} is not a finite number", line)
    if fahrenheit:
        value = round((value - 32.0) * 5.0 / 9.0, 3)
    if not (PLAUSIBLE_C[0] <= value <= PLAUSIBLE_C[1]):
        raise LoggerFileError(
            f"temperature {value} °C is outside the plausible range "
            f"{PLAUSIBLE_C[0]:g} … {PLAUSIBLE_C[1]:g} °C",
            line,
        )
    return value


_LOW_C, _HIGH_C = PLAUSIBLE_C


def _celsius(text: str, line: int, fahrenheit: bool) -> float:
    """`_temperature` with a fast path for the common reading: a plain Celsius number in the plausible range."""
    if not fahrenheit:
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            if _LOW_C <= value <= _HIGH_C:
                return value
    return _temperature(text, line, fahrenheit)


def _out_of_order(t: int, prev: int, line: int, prev_line: int) -> LoggerFileError:
    what = "repeats" if t == prev else "is earlier than"
    return LoggerFileError(
        f"time {iso_z(t)} {what} the previous reading (line {prev_line}): out of order or duplicated", line
    )


def _append(log: LoggerLog, t: int, temp: float, line: int, last_line: list[int]) -> None:
    times = log.times
    if times and t <= times[-1]:
        prev = last_line[0]
        what = "repeats" if t == times[-1] else "is earlier than"
        raise LoggerFileError(
            f"time {iso_z(t)} {what} the previous reading (line {prev}): out of order or duplicated",
            line,
        )
    times.append(t)
    log.temps.append(temp)
    last_line[0] = line


def _fahrenheit_in(text: str) -> bool:
    low = text.lower()
    return "°f" in low or "(f)" in low or "[f]" in low or "fahrenheit" in low


def _header_meta(log: LoggerLog, header: list[str], unit_zone: str) -> tuple[str, bool]:
    """Serial, interval, zone and unit stated in header lines; returns (zone, fahrenheit)."""
    zone_name = unit_zone
    fahrenheit = False
    for ln in header:
        if _fahrenheit_in(ln):
            fahrenheit = True
        m = _META.match(ln)
        if not m:
            continue
        key, value = m.group(1).strip().lower(), m.group(2)
        if key in ("time zone", "timezone", "tz", "zone", "time zone offset", "utc offset"):
            get_zone(value)
            zone_name = value.strip()
            log.zone_source = "file"
        elif key in (
            "serial",
            "serial no",
            "serial no.",
            "serial number",
            "sn",
            "logger serial",
            "device id",
        ):
            log.serial = value or log.serial
        elif key in ("interval", "logging interval", "log interval", "record interval"):
            log.interval_s = _interval_seconds(value)
        elif key in ("temp unit", "unit", "temperature unit") and value.strip().upper().lstrip("°") == "F":
            fahrenheit = True
    return zone_name, fahrenheit


def _interval_seconds(value: str) -> int | None:
    v = value.strip().lower()
    m = re.fullmatch(r"(\d+):(\d{2}):(\d{2})", v)
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    m = re.fullmatch(r"(\d+)\s*(s|sec|seconds|m|min|minutes|h|hours)?", v)
    if not m:
        return None
    n, u = int(m.group(1)), (m.group(2) or "min")
    return n * (1 if u.startswith("s") else 3600 if u.startswith("h") else 60) or None


def _parse_fridgetag(lines: list[str], unit_zone: str) -> LoggerLog:
    log = LoggerLog(format="fridgetag", zone=unit_zone, zone_source="unit")
    try:
        data_at = next(i for i, ln in enumerate(lines) if ln.strip() == "Data:")
    except StopIteration:
        raise LoggerFileError(
            "Fridge-tag export without a Data: block (a Fridge-tag 2 report holds daily "
            "summaries only; export a Fridge-tag 2 L or Ultra Low file with readings)"
        ) from None
    fahrenheit = False
    for ln in lines[:data_at]:
        s = ln.strip()
        if s.startswith("Serial:") and log.serial is None:
            log.serial = s.split(":", 1)[1].strip()
        elif s.startswith("Logging Interval:"):
            log.interval_s = _interval_seconds(s.split(":", 1)[1])
        elif s.startswith("Temp unit:"):
            unit = s.split(":", 1)[1].strip().upper()
            if unit not in ("C", "F"):
                raise LoggerFileError(
                    f"unknown temperature unit {unit!r} (expected C or F)", lines.index(ln) + 1
                )
            fahrenheit = unit == "F"
    if fahrenheit:
        log.unit_converted = "F"
    clock = _Clock(unit_zone)
    bases = clock.bases
    times_append, temps_append = log.times.append, log.temps.append
    prev_t, prev_line = -(2**62), 0
    begin = data_at + 1
    n = len(lines)
    if begin < n and lines[begin].strip().startswith("yyyy-MM-dd"):
        begin += 1
    match = _FT_DATA.match
    for i in range(begin, n):
        ln = lines[i]
        if not ln.startswith("\t"):
            if not ln.strip():
                continue
            if ln.startswith(("Cert:", "Sig")):
                break
            raise LoggerFileError(f"unexpected line in the Data: block: {ln.strip()[:40]!r}", i + 1)
        m = match(ln)
        if m is None:
            raise LoggerFileError("Data: line is not '<TAB>yyyy-MM-dd hh:mm<TAB>temperature[<TAB>x]'", i + 1)
        key, mi_s, value, flag = m.groups()
        if flag:
            flag = flag.strip()
            if flag not in ("", "x"):
                raise LoggerFileError(f"out-of-limits column holds {flag!r} (expected 'x' or nothing)", i + 1)
        value = value.strip()
        if value in ("--.-", "---.-", "HI", "LO"):
            log.no_value += 1
            continue
        mi = int(mi_s)
        base = bases.get(key)
        t = clock.at(key, mi, 0, i + 1) if base is None or mi > 59 else base + mi * 60
        v = _celsius(value, i + 1, fahrenheit)
        if t <= prev_t:
            raise _out_of_order(t, prev_t, i + 1, prev_line)
        times_append(t)
        temps_append(v)
        prev_t, prev_line = t, i + 1
        if flag:
            log.device_flagged += 1
    return log


def _parse_elitech(lines: list[str], unit_zone: str) -> LoggerLog:
    log = LoggerLog(format="elitech", zone=unit_zone, zone_source="unit")
    match = _ELITECH.match
    first = next(i for i, ln in enumerate(lines) if match(ln))
    zone_name, fahrenheit = _header_meta(log, lines[:first], unit_zone)
    log.zone = zone_name
    if fahrenheit:
        log.unit_converted = "F"
    clock = _Clock(zone_name)
    bases = clock.bases
    times_append, temps_append = log.times.append, log.temps.append
    prev_t, prev_line = -(2**62), 0
    prev_index: int | None = None
    for i in range(first, len(lines)):
        ln = lines[i]
        m = match(ln)
        if m is None:
            if not ln.strip():
                continue
            raise LoggerFileError(
                "not 'index<TAB>yyyy-mm-dd hh:mm:ss<TAB>temperature' "
                "(a line among the readings that does not parse)",
                i + 1,
            )
        idx_s, key, mi_s, s_s, value = m.groups()
        idx = int(idx_s)
        if prev_index is not None and idx != prev_index + 1:
            raise LoggerFileError(
                f"index {idx} does not follow {prev_index}: readings missing or reordered", i + 1
            )
        prev_index = idx
        mi, sec = int(mi_s), int(s_s)
        base = bases.get(key)
        t = clock.at(key, mi, sec, i + 1) if base is None or mi > 59 or sec > 59 else base + mi * 60 + sec
        v = _celsius(value, i + 1, fahrenheit)
        if t <= prev_t:
            raise _out_of_order(t, prev_t, i + 1, prev_line)
        times_append(t)
        temps_append(v)
        prev_t, prev_line = t, i + 1
    return log


def _parse_csv(lines: list[str], unit_zone: str) -> LoggerLog:
    log = LoggerLog(format="csv", zone=unit_zone, zone_source="unit")
    first = -1
    pattern: re.Pattern[str] | None = None
    sep = ","
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        if _AMBIGUOUS_COMMA.match(ln):
            raise LoggerFileError(
                "a comma is both the separator and the decimal mark (ambiguous): quote the value "
                "or separate columns with ';'",
                i + 1,
            )
        for candidate, p in _CSV_PATTERNS.items():
            if p.match(ln):
                first, pattern, sep = i, p, candidate
                break
        if pattern is not None:
            break
        if _DAY_FIRST.match(ln):
            raise LoggerFileError("dates must be ISO (yyyy-mm-dd); day/month order is ambiguous", i + 1)
    assert pattern is not None
    zone_name, fahrenheit = _header_meta(log, lines[:first], unit_zone)
    log.zone = zone_name
    if fahrenheit:
        log.unit_converted = "F"
    clock = _Clock(zone_name)
    bases = clock.bases
    last = [0]
    aware: bool | None = None
    match = pattern.match
    for i in range(first, len(lines)):
        ln = lines[i]
        m = match(ln)
        if m is None:
            if not ln.strip():
                continue
            if sep == "," and _AMBIGUOUS_COMMA.match(ln):
                raise LoggerFileError(
                    "a comma is both the separator and the decimal mark (ambiguous): "
                    "quote the value or separate columns with ';'",
                    i + 1,
                )
            if _DAY_FIRST.match(ln):
                raise LoggerFileError("dates must be ISO (yyyy-mm-dd); day/month order is ambiguous", i + 1)
            raise LoggerFileError(
                f"not 'timestamp{sep}temperature' with an ISO-8601 timestamp and a number", i + 1
            )
        date_s, h_s, mi_s, s_s, off, value = m.groups()
        if aware is None:
            aware = off is not None
            if aware:
                log.zone_source = "file"
        elif aware != (off is not None):
            raise LoggerFileError(
                "timestamps mix stated offsets and local times (ambiguous): "
                "state the offset on every line or none",
                i + 1,
            )
        y, mo, d = int(date_s[0:4]), int(date_s[5:7]), int(date_s[8:10])
        h, mi, s = int(h_s), int(mi_s), int(s_s or 0)
        if off is None:
            key = date_s + " " + h_s
            base = bases.get(key)
            t = clock.at(key, mi, s, i + 1) if base is None or mi > 59 or s > 59 else base + mi * 60 + s
        else:
            if h > 23 or mi > 59 or s > 59:
                raise LoggerFileError(f"invalid time {h:02d}:{mi:02d}:{s:02d}", i + 1)
            secs = 0
            if off != "Z":
                o = off.replace(":", "")
                secs = (1 if o[0] == "+" else -1) * (int(o[1:3]) * 3600 + int(o[3:5]) * 60)
            t = clock.day(y, mo, d, i + 1) * 86400 + h * 3600 + mi * 60 + s - secs
        _append(log, t, _temperature(value.strip('"'), i + 1, fahrenheit), i + 1, last)
    if aware:
        log.zone = "UTC"
    return log
