"""Logger readings (`cc_readings`) re-derived from synced evidence: hub and replacement laptop equal the ward.

The ward indexes a logger file's readings when it imports the file; anywhere
else they are parsed again from the same bytes, in log order, checked against
the summary the ward recorded. Also `db rebuild` re-derives them and
`db rebuild --check` compares them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hub_engines import check_projections, ledger
from synckit import PASSWORD, card_of, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import hub, registry, restore

from wardcrf import projections, users
from wardcrf.coldchain import evidence, readings, samples, services
from wardcrf.errors import Refused
from wardcrf.site import Site

T0 = datetime(2020, 3, 15, 8, 0)  # local wall time in the unit's zone (Asia/Shanghai)
ROWS = "SELECT unit_id, t, temp_c, sha256 FROM cc_readings ORDER BY unit_id, t"


def _rows(site: Site) -> list[dict[str, Any]]:
    """The readings index of a ward, or of a hub where it keeps what its wards send."""
    with ledger(site) as (_s, store):
        return store.rows(ROWS)


def _import(p, tmp: Path, name: str, raw: bytes, unit: str = "FRZ-1") -> str:
    path = tmp / name
    path.write_bytes(raw)
    services.import_logger(p, path, unit)
    return evidence.sha256_hex(raw)


def _three_files(w: Site, tmp: Path) -> list[str]:
    """Three layouts and three zone rules into one unit, the last overlapping the second."""
    a = open_(w)
    users.add_user(a, "pharmacist", "Pha Rmacist", "pharmacist", PASSWORD)
    a.close()
    p = open_(w, "pharmacist")
    try:
        services.add_unit(p, "FRZ-1", name="freezer", location="ward 3")
        # 1. Fridge-tag: local times in the unit's zone; an excursion in the middle.
        temps = [-20.0] * 40 + [-12.5] * 6 + [-20.0] * 40
        d1 = _import(p, tmp, "ft.txt", samples.fridgetag(samples.series(T0, 5, temps)))
        # 2. Elitech stating its own zone (UTC+02:00), starting an hour after file 1 ends (in UTC).
        start2 = T0 + timedelta(minutes=5 * 86) + timedelta(hours=1) - timedelta(hours=6)  # +08:00 -> +02:00
        rows2 = samples.series(start2, 10, [-19.5 + (i % 3) * 0.5 for i in range(30)])
        d2 = _import(p, tmp, "el.txt", samples.elitech(rows2, zone="UTC+02:00"))  # type: ignore[arg-type]
        # 3. CSV with a stated offset on every line, repeating the last 5 readings of file 2 (same values).
        utc2 = [(when - timedelta(hours=2), t) for when, t in rows2]
        rows3 = utc2[-5:] + samples.series(utc2[-1][0] + timedelta(minutes=10), 10, [-21.0] * 10)  # type: ignore[operator]
        d3 = _import(p, tmp, "plain.csv", samples.csv(rows3, offset="Z"))  # type: ignore[arg-type]
        return [d1, d2, d3]
    finally:
        p.close()


@pytest.fixture
def synced(tmp_path: Path, hub_engine: str):
    """A ward with three logger files exported, and a hub (SQLCipher or PostgreSQL: `hub_engine`)."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    digests = _three_files(w, tmp_path)
    files = export(w, tmp_path / "usb")
    return w, h, digests, files


def test_hub_readings_equal_the_wards(synced) -> None:
    w, h, digests, files = synced
    ward_rows = _rows(w)
    assert len(ward_rows) == 86 + 30 + 10  # file 3's first five readings were already there
    assert {r["sha256"] for r in ward_rows} == set(digests)
    for f in files:
        assert hub_import(h, f).outcome.status == "applied"
    assert _rows(h) == ward_rows
    with ledger(h) as (hs, store):
        for d in digests:
            assert readings.readings_of(store, d)  # each file supplied readings at the hub too
        # The hub's projections and its readings index agree with a replay of its log and evidence.
        assert check_projections(hs)[1] == []
        if store is hs.store:  # `db rebuild` does not run at a PostgreSQL hub yet (docs/hub-postgres.md)
            projections.rebuild(hs.store)
            assert hs.store.rows(ROWS) == ward_rows


def test_replacement_laptop_gets_the_readings_back(synced, tmp_path: Path) -> None:
    w, h, _digests, files = synced
    for f in files:
        hub_import(h, f)
    res, card = restore.provision(
        tmp_path / "new",
        site="WUH01",
        device_name="lap1b",
        admin="admin",
        password=PASSWORD,
        hub_card=card_of(h),
    )
    hs = open_(h)
    try:
        registry.register_device(hs, card, replaces=card_of(w).device)
        stick = tmp_path / "stick"
        stick.mkdir()
        hub.outbound_files(hs, card.device, stick, restore=True)
    finally:
        hs.close()
    s = Site.open(res.site.data_dir).unlock("admin", PASSWORD)
    try:
        restore.complete(s, from_dir=stick)
        assert s.store.rows(ROWS) == _rows(w)
    finally:
        s.close()


def test_hub_refuses_readings_that_parse_differently_and_applies_nothing(
    synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other time-zone rules at the hub would shift local times: refused whole, never indexed silently."""
    w, h, _digests, files = synced
    real = readings.loggers.parse

    def shifted(raw: bytes, zone: str, *, fmt: str | None = None) -> Any:
        log = real(raw, zone, fmt=fmt)
        for i in range(len(log.times)):
            log.times[i] += 3600
        return log

    monkeypatch.setattr(readings.loggers, "parse", shifted)
    with pytest.raises(
        Refused, match=r"logger import \S+: the file parsed here gives first .*different time-zone"
    ):
        hub_import(h, files[0])
    with ledger(h) as (_hs, store):
        device = card_of(w).device
        assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == 0
        assert store.scalar("SELECT count(*) FROM cc_evidence") == 0
        assert store.scalar("SELECT count(*) FROM cc_readings") == 0
        assert store.scalar("SELECT count(*) FROM sync_applied") == 0
    monkeypatch.setattr(readings.loggers, "parse", real)
    assert hub_import(h, files[0]).outcome.status == "applied"  # the same bundle, once the rules agree
    assert _rows(h) == _rows(w)


def test_rebuild_rederives_readings_and_check_finds_an_edited_one(synced) -> None:
    w, _h, _digests, _files = synced
    before = _rows(w)
    s = open_(w)
    try:
        assert projections.check(s.store)[1] == []
        s.store.execute("UPDATE cc_readings SET temp_c = -30.0 WHERE t = ?", (before[10]["t"],))
        diffs = projections.check(s.store)[1]
        assert [(d.table, "temp_c" in d.what) for d in diffs] == [("cc_readings", True)]
        s.store.execute("DELETE FROM cc_readings WHERE t > ?", (before[50]["t"],))
        projections.rebuild(s.store)
        assert s.store.rows(ROWS) == before
        assert projections.check(s.store)[1] == []
    finally:
        s.close()


def _laptop_with_file(w: Site, tmp: Path, temps: list[float]) -> str:
    a = open_(w)
    users.add_user(a, "pharmacist", "Pha Rmacist", "pharmacist", PASSWORD)
    a.close()
    p = open_(w, "pharmacist")
    try:
        services.add_unit(p, "FRZ-1", name="freezer", location="ward 3")
        raw = samples.fridgetag(
            samples.series(T0, 5, temps), serial=f"13050010908{len(w.data_dir.name)}{w.data_dir.name[-1]}"
        )
        return _import(p, tmp, f"{w.data_dir.name}.txt", raw)
    finally:
        p.close()


@pytest.mark.usefixtures("hub_engine")
@pytest.mark.parametrize("second", [[-20.0] * 60, [-20.0] * 30 + [-18.0] * 30], ids=["agree", "disagree"])
def test_two_laptops_files_for_one_unit_meet_at_the_hub(tmp_path: Path, second: list[float], cli) -> None:
    """Overlapping files from two laptops: agreeing readings are indexed once; disagreeing ones are
    listed (the first file's value indexed, as a ward would), never silently dropped."""
    h = make_hub(tmp_path)
    a, b = make_ward(tmp_path, "lap1"), make_ward(tmp_path, "lap2")
    for w in (a, b):
        connect(w, h)
    da = _laptop_with_file(a, tmp_path, [-20.0] * 60)
    db = _laptop_with_file(b, tmp_path, second)
    for w, usb in ((a, "usb-a"), (b, "usb-b")):
        for f in export(w, tmp_path / usb):
            assert hub_import(h, f).outcome.status == "applied"
    with ledger(h) as (hs, store):
        rows = store.rows(ROWS)
        assert len(rows) == 60 and {r["sha256"] for r in rows} == {da}
        assert all(r["temp_c"] == -20.0 for r in rows)
        found = readings.conflicts(store)
        assert hub.status(hs)["reading_conflicts"] == len(found)
        assert check_projections(hs)[1] == []
    r = cli("hub", "conflicts", "--data-dir", str(h.data_dir), user="admin")
    assert db != da  # two laptops, two files (different logger serials)
    if second == [-20.0] * 60:
        assert found == [] and "logger readings disagree" not in r.out
        return
    assert len(found) == 30
    assert {(c["kept_temp_c"], c["kept_sha256"], c["temp_c"], c["sha256"]) for c in found} == {
        (-20.0, da, -18.0, db)
    }
    assert r.code == 0 and r.out.count("logger readings disagree: unit FRZ-1") == 30
