"""Logger file parsing: each layout, its quirks, and every refusal (line + reason)."""

from __future__ import annotations

from datetime import datetime

import pytest

from wardcrf.coldchain import loggers, samples
from wardcrf.coldchain.loggers import LoggerFileError, parse

ZONE = "Asia/Shanghai"
T0 = datetime(2020, 3, 16, 8, 0)  # local, Shanghai = UTC+8
T0_UTC = int(datetime.fromisoformat("2020-03-16T00:00:00+00:00").timestamp())


def rows(n: int = 6, step: int = 5, temps: list[float] | None = None):
    temps = temps or [-20.0 + (i % 3) * 0.5 for i in range(n)]
    return samples.series(T0, step, temps)


def refused(raw: bytes, zone: str = ZONE) -> LoggerFileError:
    with pytest.raises(LoggerFileError) as info:
        parse(raw, zone)
    return info.value


# -- Fridge-tag 2 L -----------------------------------------------------------------------


def test_fridgetag_export_parses_data_block_in_unit_zone():
    raw = samples.fridgetag(rows(4, temps=[-20.0, -19.5, -14.2, -20.1]), serial="130500109088")
    assert b"\r\n\tyyyy-MM-dd hh:mm\tT\tOut of limits\r\n" in raw
    log = parse(raw, ZONE)
    assert log.format == "fridgetag"
    assert log.serial == "130500109088"
    assert log.interval_s == 300
    assert list(log.temps) == [-20.0, -19.5, -14.2, -20.1]
    assert log.times[0] == T0_UTC and log.times[1] - log.times[0] == 300
    assert log.zone == ZONE and log.zone_source == "unit"
    assert log.device_flagged == 1  # the "x" column


def test_fridgetag_no_value_intervals_are_counted_not_imported():
    raw = samples.fridgetag(samples.series(T0, 5, [None, None, -20.0, -20.5]))
    assert b"\t--.-\tx" in raw
    log = parse(raw, ZONE)
    assert log.no_value == 2 and len(log) == 2


def test_fridgetag_fahrenheit_is_converted():
    raw = samples.fridgetag(samples.series(T0, 5, [-4.0, 5.0]), unit="F")
    log = parse(raw, ZONE)
    assert list(log.temps) == [-20.0, -15.0] and log.unit_converted == "F"


def test_fridgetag_without_data_block_is_refused():
    raw = samples.fridgetag(rows()).split(b"Data:")[0]
    err = refused(raw)
    assert "without a Data: block" in str(err)


def test_fridgetag_malformed_data_line_names_the_line():
    raw = samples.fridgetag(rows()).decode()
    lines = raw.split("\r\n")
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("\t2020-03-16 08:10"))
    lines[idx] = "\t2020-03-16 08:10\tminus twenty"
    err = refused("\r\n".join(lines).encode())
    assert err.line == idx + 1 and "not a number" in str(err)


def test_fridgetag_bad_out_of_limits_flag_is_refused():
    raw = samples.fridgetag(rows()).replace(b"\t-20.0\r\n", b"\t-20.0\tmaybe\r\n", 1)
    assert "out-of-limits column" in str(refused(raw))


def test_fridgetag_out_of_order_is_refused():
    raw = samples.fridgetag(samples.series(T0, 5, [-20.0, -20.0, -20.0])).decode()
    raw = raw.replace("2020-03-16 08:10", "2020-03-16 08:01")
    err = refused(raw.encode())
    assert "earlier than the previous reading" in str(err)


def test_fridgetag_text_after_data_block_is_refused():
    raw = samples.fridgetag(rows()).replace(b"Cert:", b"garbage here\r\nCert:")
    assert "unexpected line in the Data: block" in str(refused(raw))


def test_real_fridgetag_file_layout_round_trip():
    # Exactly the shape of a real 2 L export's data lines: a first reading at
    # activation, then a long delay before regular 5-minute logging.
    text = (
        "Device: Q-tag Fridge-tag 2 L\r\nConf:\r\n Serial: 130500109088\r\n Temp unit: C\r\n"
        " Logging Interval: 5\r\nHist:\r\n TS Actv: 2022-05-02 04:44\r\nData:\r\n"
        "\tyyyy-MM-dd hh:mm\tT\tOut of limits\r\n\t2022-05-02 04:44\t26.3\tx\r\n"
        "\t2022-05-02 10:36\t27.5\tx\r\n\t2022-05-02 11:16\t7.3\r\n\t2022-05-02 11:21\t6.3\r\n"
        "Cert:\r\n Vers: 1.0\r\nSig Cert: ab\r\nSig: cd\r\n"
    )
    log = parse(text.encode(), "Europe/Zurich")
    assert len(log) == 4 and log.device_flagged == 2 and log.interval == 300


# -- Elitech -------------------------------------------------------------------------------


def test_elitech_with_bom_comma_decimals_and_stated_zone():
    raw = samples.elitech(
        rows(3, temps=[-20.5, -19.0, -21.25]), zone="UTC+08:00", comma_decimal=True, bom=True
    )
    log = parse(raw, "Europe/Berlin")
    assert log.format == "elitech" and log.serial == "EL-RC4-0042"
    assert list(log.temps) == [-20.5, -19.0, -21.2]
    assert log.zone_source == "file" and log.times[0] == T0_UTC


def test_elitech_in_unit_zone_when_file_states_none():
    log = parse(samples.elitech(rows(3)), ZONE)
    assert log.zone_source == "unit" and log.times[0] == T0_UTC and log.interval == 300


def test_elitech_index_gap_is_refused():
    raw = samples.elitech(rows(4)).replace(b"\r\n3\t", b"\r\n7\t")
    err = refused(raw)
    assert "index 7 does not follow 2" in str(err) and err.line == 6


def test_elitech_malformed_line_is_refused():
    raw = samples.elitech(rows(4)).replace(b"\r\n3\t2020-03-16 08:10:00", b"\r\n3\t2020-03-16 8:10")
    err = refused(raw)
    assert err.line == 6 and "index<TAB>" in str(err)


def test_elitech_invalid_date_is_refused():
    raw = samples.elitech(rows(2)).replace(b"2020-03-16 08:05", b"2020-02-30 08:05")
    assert "invalid date 2020-02-30" in str(refused(raw))


def test_unknown_zone_in_header_is_refused():
    raw = samples.elitech(rows(2), zone="Mars/Olympus")
    assert "unknown time zone" in str(refused(raw))


# -- CSV -----------------------------------------------------------------------------------


def test_csv_with_offsets_is_utc_whatever_the_unit_zone():
    log = parse(samples.csv(rows(3), offset="+08:00"), "America/New_York")
    assert log.format == "csv" and log.times[0] == T0_UTC and log.zone_source == "file"


def test_csv_semicolon_with_comma_decimal():
    log = parse(samples.csv(rows(3, temps=[-20.5, -20.25, -19.75]), sep=";", comma_decimal=True), ZONE)
    assert list(log.temps) == [-20.5, -20.25, -19.75]


def test_csv_quoted_comma_decimal_is_accepted():
    raw = b'timestamp,temp\n2020-03-16T08:00:00,"-20,5"\n2020-03-16T08:05:00,"-20,0"\n'
    assert list(parse(raw, ZONE).temps) == [-20.5, -20.0]


def test_csv_unquoted_comma_decimal_with_comma_separator_is_ambiguous():
    raw = b"timestamp,temp\n2020-03-16T08:00:00,-20,5\n"
    err = refused(raw)
    assert "ambiguous" in str(err) and err.line == 2


def test_csv_day_first_dates_are_refused():
    err = refused(b"time,temp\n16/03/2020 08:00,-20.0\n")
    assert "ISO" in str(err) and err.line == 2


def test_csv_mixed_offset_and_local_is_refused():
    raw = b"2020-03-16T08:00:00+08:00,-20\n2020-03-16T08:05:00,-20\n"
    err = refused(raw)
    assert "mix" in str(err) and err.line == 2


def test_csv_duplicate_time_is_refused():
    raw = b"2020-03-16T08:00:00,-20\n2020-03-16T08:00:00,-20\n"
    assert "repeats the previous reading (line 1)" in str(refused(raw))


def test_csv_implausible_temperature_is_refused():
    err = refused(b"2020-03-16T08:00:00,-20\n2020-03-16T08:05:00,-273\n")
    assert err.line == 2 and "plausible" in str(err)


def test_csv_bad_line_after_data_is_refused():
    err = refused(b"2020-03-16T08:00:00,-20\nhello,world\n")
    assert err.line == 2


def test_dst_ambiguous_local_time_is_refused_but_offset_is_fine():
    amb = b"2020-11-01T01:30:00,-20\n"
    err = refused(amb, "America/New_York")
    assert "ambiguous" in str(err)
    gap = b"2020-03-08T02:30:00,-20\n"
    assert "does not exist" in str(refused(gap, "America/New_York"))
    ok = parse(b"2020-11-01T01:30:00-04:00,-20\n2020-11-01T01:30:00-05:00,-20\n", "America/New_York")
    assert ok.times[1] - ok.times[0] == 3600


def test_empty_binary_and_unknown_files_are_refused():
    assert "empty" in str(refused(b"  \n"))
    assert "binary" in str(refused(b"\x00\x01\x02abc"))
    assert "unrecognised layout" in str(refused(b"just some notes\nnothing else\n"))


def test_utf16_bom_is_decoded():
    raw = samples.csv(rows(2)).decode().encode("utf-16")
    assert len(parse(raw, ZONE)) == 2


def test_parse_when_uses_zone_and_offsets():
    assert loggers.parse_when("2020-03-16T08:00", ZONE) == T0_UTC
    assert loggers.parse_when("2020-03-16T00:00Z", ZONE) == T0_UTC
    with pytest.raises(loggers.UsageError):
        loggers.parse_when("16/03/2020", ZONE)
