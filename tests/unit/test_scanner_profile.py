"""The scanner profile (issue 14, "Scanner input"): how this laptop's scanner ends a code.

A per-laptop setting, recorded as an event with who and when (admin only, checked in the
service), shown by `wardcrf device scanner` and `wardcrf sync status`; the CLI refuses a bad
value in one line naming what is allowed, before anything is asked or saved.
"""

from __future__ import annotations

import json

import pytest

from wardcrf import projections, scanner
from wardcrf.errors import PermissionDenied, UsageError


def _events(s, type_: str = scanner.EVENT) -> int:
    return int(s.store.scalar("SELECT COUNT(*) FROM events WHERE type = ?", (type_,)))


def _one_line(res, code: int) -> None:
    assert res.code == code, (res.code, res.output[-400:])
    assert res.err.startswith("wardcrf: ") and res.err.count("\n") == 1, res.err
    assert "Traceback" not in res.output


# -- the service ---------------------------------------------------------------------------------


def test_a_laptop_without_a_profile_ends_codes_on_enter(admin):
    p = scanner.profile(admin)
    assert (p.ends, p.gap_ms, p.gap_s, p.set_by) == ("enter", None, None, None)
    assert "a code ends on Enter (the default)" in p.describe()


def test_an_admin_sets_a_gap_and_the_event_says_who_when_and_which_laptop(admin):
    p = scanner.set_profile(admin, "gap", 120)
    assert (p.ends, p.gap_ms, p.gap_s, p.set_by) == ("gap", 120, 0.12, "admin")
    row = admin.store.one(
        "SELECT line FROM events WHERE type = ? ORDER BY pos DESC LIMIT 1", (scanner.EVENT,)
    )
    assert row is not None
    e = json.loads(row[0])
    assert e["device"] == admin.ctx.device and (e["user"], e["role"]) == ("admin", "admin")
    assert e["ts"] == p.set_at and e["subject"] == f"device:{admin.ctx.device}"
    assert e["body"] == {"device": admin.ctx.device, "ends": "gap", "gap_ms": 120}
    assert scanner.profile(admin) == p
    back = scanner.set_profile(admin, "enter")
    assert (back.ends, back.gap_s) == ("enter", None) and _events(admin) == 2


def test_the_profile_is_a_projection_db_rebuild_replays(admin):
    scanner.set_profile(admin, "gap", 250)
    assert "device_scanner" in projections.PROJECTION_TABLES
    assert projections.rebuild(admin.store) >= 1
    assert scanner.profile(admin).gap_ms == 250


@pytest.mark.parametrize("role", ["clinician", "pharmacist", "coordinator", "auditor"])
def test_only_an_admin_sets_it_and_every_role_reads_it(session_for, role):
    s = session_for(role)
    with pytest.raises(
        PermissionDenied, match=r"may not set this laptop's scanner profile \(allowed: admin\)"
    ):
        scanner.set_profile(s, "gap", 120)
    assert _events(s) == 0
    assert scanner.profile(s).ends == "enter"


@pytest.mark.parametrize(
    ("ends", "gap", "said"),
    [
        ("gap", -5, "scanner gap -5 ms is out of range (allowed: 30-1000)"),
        ("gap", 29, "scanner gap 29 ms is out of range (allowed: 30-1000)"),
        ("gap", 1001, "scanner gap 1001 ms is out of range (allowed: 30-1000)"),
        ("gap", 10**40, "is out of range (allowed: 30-1000)"),
        ("gap", None, "needs the gap in milliseconds (--gap-ms, allowed: 30-1000)"),
        ("gap", "12O", "scanner gap '12O' is not a whole number of milliseconds (allowed: 30-1000)"),
        ("gap", 120.5, "scanner gap float is not a whole number of milliseconds"),
        ("gap", True, "scanner gap bool is not a whole number"),
        ("enter", 120, "has no gap (--gap-ms goes with --ends gap only)"),
        ("tab", None, "unknown scanner end 'tab' (allowed: enter, gap)"),
        ("", None, "unknown scanner end '' (allowed: enter, gap)"),
        ("gap\x1b[2J", 120, "unknown scanner end 'gap\\\\x1b[2J' (allowed: enter, gap)"),
    ],
)
def test_a_bad_profile_is_refused_in_one_line_and_nothing_is_saved(admin, ends, gap, said):
    with pytest.raises(UsageError) as exc:
        scanner.set_profile(admin, ends, gap)
    assert said in str(exc.value) and "\n" not in str(exc.value) and "\x1b" not in str(exc.value)
    assert _events(admin) == 0 and scanner.profile(admin).ends == "enter"


def test_the_bounds_are_accepted():
    assert scanner.checked("gap", scanner.MIN_GAP_MS) == ("gap", 30)
    assert scanner.checked("gap", str(scanner.MAX_GAP_MS)) == ("gap", 1000)
    assert scanner.checked(" Enter ", None) == ("enter", None)


def test_a_bundle_event_with_a_gap_out_of_range_is_refused_by_its_schema():
    """What arrives from another device is held to the same bounds (eventbodies)."""
    import msgspec

    from wardcrf import eventbodies

    schema = eventbodies.BODIES[scanner.EVENT]
    ok = msgspec.convert({"device": "LAP1", "ends": "gap", "gap_ms": 120}, schema)
    assert ok.gap_ms == 120  # type: ignore[attr-defined]
    for bad in (
        {"device": "LAP1", "ends": "gap", "gap_ms": 5},
        {"device": "LAP1", "ends": "sometimes", "gap_ms": None},
        {"device": "LAP1", "ends": "gap", "gap_ms": "120"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, schema)


# -- the command line ----------------------------------------------------------------------------


def test_device_scanner_sets_and_shows_the_profile(cli, admin):
    res = cli("device", "scanner")
    assert res.code == 0 and "scanner: a code ends on Enter (the default)" in res.out
    res = cli("device", "scanner", "--ends", "gap", "--gap-ms", "120")
    assert res.code == 0, res.output
    assert "Set: scanner: a code ends after 120 ms without a key (or on Enter) (set by admin" in res.out
    shown = json.loads(cli("device", "scanner", "--json", user="clinician").out)
    assert shown["ends"] == "gap" and shown["gap_ms"] == 120 and shown["set_by"] == "admin"
    status = cli("sync", "status", user="clinician")
    assert status.code == 0 and "scanner: a code ends after 120 ms without a key" in status.out
    assert json.loads(cli("sync", "status", "--json").out)["scanner"]["gap_ms"] == 120
    assert cli("device", "scanner", "--ends", "enter").code == 0
    assert "a code ends on Enter (set by admin" in cli("device", "scanner").out


def test_device_scanner_refuses_a_role_other_than_admin_in_one_line(cli, admin):
    res = cli("device", "scanner", "--ends", "gap", "--gap-ms", "120", user="clinician")
    _one_line(res, 1)
    assert "may not set this laptop's scanner profile (allowed: admin)" in res.err
    assert _events(admin) == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--ends", "gap", "--gap-ms", "-1"], "scanner gap -1 ms is out of range (allowed: 30-1000)"),
        (["--ends", "gap", "--gap-ms", "0"], "scanner gap 0 ms is out of range (allowed: 30-1000)"),
        (["--ends", "gap", "--gap-ms", "9" * 5000], "ms is out of range (allowed: 30-1000)"),
        (
            ["--ends", "gap", "--gap-ms", "fast"],
            "'fast' is not a whole number of milliseconds (allowed: 30-1000)",
        ),
        (
            ["--ends", "gap", "--gap-ms", "1\x1b[2J00"],
            "is not a whole number of milliseconds (allowed: 30-1000)",
        ),
        (["--ends", "gap", "--gap-ms", "12\n0"], "is not a whole number of milliseconds (allowed: 30-1000)"),
        (["--ends", "gap"], "needs the gap in milliseconds (--gap-ms, allowed: 30-1000)"),
        (["--ends", "enter", "--gap-ms", "120"], "has no gap (--gap-ms goes with --ends gap only)"),
        (["--ends", "burst\x07"], "unknown scanner end 'burst\\\\x07' (allowed: enter, gap)"),
        (["--ends", "E" * 100_000], "(100,000 characters) (allowed: enter, gap)"),
        (["--gap-ms", "120"], "--gap-ms goes with --ends gap"),
    ],
)
def test_device_scanner_refuses_hostile_values_in_one_line_before_signing_in(cli, admin, args, said):
    res = cli("device", "scanner", *args, password="not-the-password")  # refused before the password
    _one_line(res, 2)
    assert said in res.err, res.err
    assert "\x1b" not in res.err and "\x07" not in res.err and len(res.err) < 400
    assert _events(admin) == 0


# -- at the hub ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub (`hub_engines.ledger`)
def test_the_hub_keeps_each_laptops_profile_and_applies_none_to_itself(tmp_path):
    """A ward's `device.scanner_set` travels in its bundle; the hub files it under that laptop."""
    from forge import append_raw
    from hub_engines import ledger
    from synckit import connect, make_hub, make_ward, open_
    from wardcrf.sync import hub, ward

    from wardcrf.errors import Refused

    h, w = make_hub(tmp_path), make_ward(tmp_path, "lap1", "WUH01")
    connect(w, h)
    s = open_(w)
    try:
        scanner.set_profile(s, "gap", 80)
        device = s.ctx.device
        (tmp_path / "usb").mkdir()
        files = ward.export(s, tmp_path / "usb").files
    finally:
        s.close()
    hs = open_(h)
    try:
        for f in files:
            assert hub.import_file(hs, f).outcome.status == "applied"
        assert scanner.profile(hs).ends == "enter"  # the hub's own is not the laptop's
    finally:
        hs.close()
    with ledger(h) as (_hs, held):
        rows = held.rows("SELECT device, ends, gap_ms, set_by FROM device_scanner")
        assert rows == [{"device": device, "ends": "gap", "gap_ms": 80, "set_by": "admin"}]
    # A forged event outside the bounds (written around the service) is refused whole at the hub.
    append_raw(w, scanner.EVENT, {"device": device, "ends": "gap", "gap_ms": 5}, subject=f"device:{device}")
    s = open_(w)
    try:
        (tmp_path / "usb2").mkdir()
        forged = ward.export(s, tmp_path / "usb2").files
    finally:
        s.close()
    hs = open_(h)
    try:
        with pytest.raises(Refused, match=r"\(device.scanner_set\): body Expected `int` >= 30 - at `gap_ms`"):
            for f in forged:
                hub.import_file(hs, f)
    finally:
        hs.close()
    with ledger(h) as (_hs, held):
        assert held.rows("SELECT gap_ms FROM device_scanner") == [{"gap_ms": 80}]
