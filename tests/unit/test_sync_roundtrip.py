"""Ward -> hub -> ward over files: export, import, receipts, replay, gap, fork."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hub_engines import check_projections, ledger
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward

from wardcrf.errors import Refused

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


@pytest.fixture
def pair(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    return w, h


def export(w, to: Path, **kw) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to, **kw).files
    finally:
        s.close()


def hub_import(h, path: Path) -> hub.ImportResult:
    s = open_(h)
    try:
        return hub.import_file(s, path)
    finally:
        s.close()


def hub_events(h, device: str) -> int:
    with ledger(h) as (_s, store):
        return int(store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)))


def test_export_import_receipt_round_trip(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 5)
    files = export(w, tmp_path / "usb")
    assert len(files) == 1 and files[0].name.endswith("-000001.tar.age")
    assert files[0].with_name(files[0].name + ".minisig").exists()
    res = hub_import(h, files[0])
    assert res.outcome.status == "applied", res.outcome.message
    s = open_(w)
    device = s.ctx.device
    head = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,))
    s.close()
    assert hub_events(h, device) == head
    # The receipt goes back to the ward and empties its outbox.
    name, data, sig = res.receipt
    (tmp_path / "usb" / name).write_bytes(data)
    (tmp_path / "usb" / (name + ".minisig")).write_bytes(sig)
    s = open_(w)
    try:
        msg = ward.import_file(s, tmp_path / "usb" / name)
        assert f"1-{head}" in msg
        st = ward.status(s)
        assert st["bundles_unreceipted"] == 0 and st["events_pending"] == 0
    finally:
        s.close()


def test_replay_is_a_no_op_and_says_so(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 3)
    f = export(w, tmp_path / "usb")[0]
    assert hub_import(h, f).outcome.status == "applied"
    # Exporting again without a receipt rebuilds the same bundle (new age layer, same manifest).
    f2 = export(w, tmp_path / "usb2")[0]
    assert f2.read_bytes() != f.read_bytes()
    s = open_(w)
    device = s.ctx.device
    s.close()
    before = hub_events(h, device)
    for again in (f, f2):
        res = hub_import(h, again)
        assert res.outcome.status == "already" and "already applied" in res.outcome.message
    assert hub_events(h, device) == before


def test_gap_is_held_until_it_fills(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 3)
    f1 = export(w, tmp_path / "u1")[0]
    add_notes(w, 3)
    files = export(w, tmp_path / "u2")
    f2 = files[-1]
    assert f2.name.endswith("-000002.tar.age")
    s = open_(w)
    device = s.ctx.device
    head = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,))
    s.close()
    res = hub_import(h, f2)
    assert res.outcome.status == "held" and "gap" in res.outcome.message
    assert hub_events(h, device) == 0
    s = open_(h)
    assert [g["bundle_seq"] for g in hub.status(s)["gaps_held"]] == [2]
    s.close()
    res = hub_import(h, f1)
    assert res.outcome.status == "applied" and res.outcome.released == [2]
    with ledger(h) as (s, store):
        assert hub.status(s)["gaps_held"] == []
        assert store.scalar("SELECT max(seq) FROM events WHERE device = ?", (device,)) == head


def test_fork_from_restored_backup_is_held_and_flagged(pair, tmp_path: Path) -> None:
    w, h = pair
    old = tmp_path / "old-copy"
    shutil.copytree(w.data_dir, old)
    add_notes(w, 2)
    f1 = export(w, tmp_path / "u1")[0]
    assert hub_import(h, f1).outcome.status == "applied"
    # The laptop is restored from a copy older than the notes and records different events under
    # their seqs (a copy taken after them, then added to, is a re-export plus new events: applied).
    shutil.rmtree(w.data_dir)
    shutil.copytree(old, w.data_dir)
    add_notes(w, 2, text="after restore")
    f1b = export(w, tmp_path / "u2")[0]
    assert f1b.name == f1.name
    res = hub_import(h, f1b)
    assert res.outcome.status == "fork" and "FORK" in res.outcome.message
    s = open_(h)
    try:
        st = hub.status(s)
        assert [f["bundle_seq"] for f in st["forks"]] == [1]
        dev = next(d for d in st["devices"] if d["site"] == "WUH01")
        assert dev["status"] == "flagged"
        # Both versions kept: the applied file and the held one.
        assert len(list((h.data_dir / "sync" / "applied").glob("*.tar.age"))) == 1
        assert len(list((h.data_dir / "sync" / "held").glob("*.tar.age"))) == 1
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'sync.fork_detected'") == 1
    finally:
        s.close()
    # The ward hears about it from the receipt.
    name, data, sig = res.receipt
    (tmp_path / name).write_bytes(data)
    (tmp_path / (name + ".minisig")).write_bytes(sig)
    s = open_(w)
    try:
        msg = ward.import_file(s, tmp_path / name)
        assert "fork" in msg
        assert ward.status(s)["hub_notices"]
    finally:
        s.close()


def test_unregistered_device_is_refused(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    other = make_hub(tmp_path / "x")
    connect(w, other)  # registered at another hub only
    s = open_(w)
    from wardcrf.sync import registry
    from wardcrf.sync.cards import Card

    registry.set_hub(s, Card.parse(_card_text(h)))
    s.close()
    add_notes(w, 1)
    f = export(w, tmp_path / "usb")[0]
    with pytest.raises(Refused, match="unregistered key"):
        hub_import(h, f)


def _card_text(site) -> str:
    from synckit import card_of

    return card_of(site).text()


def test_hub_bundle_brings_decision_and_user_change_to_the_ward(pair, tmp_path: Path) -> None:
    from wardcrf.sync import registry

    from wardcrf import users
    from wardcrf.site import Site

    w, h = pair
    s = open_(w)
    users.add_user(s, "nurse1", "Nurse One", "clinician", "test-password-1")
    device = s.ctx.device
    s.close()
    hs = open_(h, "dsmg")
    registry.send_decision(hs, "WUH01", "continue enrolment", "no safety signal at interim 1")
    registry.send_decision(hs, "OTHER", "pause", "not for this site")
    hs.close()
    hs = open_(h)
    registry.send_user_change(hs, "WUH01", "nurse1", "deactivate", "left the ward team")
    with pytest.raises(Exception, match="unknown user change"):
        registry.send_user_change(hs, "WUH01", "nurse1", "promote", "x")
    stick = tmp_path / "stick"
    stick.mkdir()
    hub.outbound_files(hs, device, stick)
    hs.close()
    s = open_(w)
    try:
        for f in sorted(stick.glob("*.tar.age")):
            assert "applied" in ward.import_file(s, f)
        decisions = s.store.rows("SELECT site, decision FROM sync_decisions")
        assert decisions == [{"site": "WUH01", "decision": "continue enrolment"}]
        assert users.get(s.store, "nurse1")["active"] == 0
        # A replayed hub bundle changes nothing and says so.
        f = sorted(stick.glob("*.tar.age"))[0]
        assert "already applied" in ward.import_file(s, f)
    finally:
        s.close()
    with pytest.raises(Exception, match="deactivated"):
        Site.open(w.data_dir).unlock("nurse1", "test-password-1")


def test_hub_bundle_for_another_laptop_is_refused(pair, tmp_path: Path) -> None:
    from synckit import connect as connect_

    w, h = pair
    other = make_ward(tmp_path, "lap2")
    connect_(other, h)
    so = open_(other)
    other_device = so.ctx.device
    so.close()
    stick = tmp_path / "stick"
    stick.mkdir()
    hs = open_(h)
    hub.outbound_files(hs, other_device, stick)
    hs.close()
    s = open_(w)
    try:
        with pytest.raises(Refused, match=r"not a recipient|addressed to"):
            ward.import_file(s, sorted(stick.glob("*.tar.age"))[0])
    finally:
        s.close()


def test_out_of_order_bundles_apply_in_order(pair, tmp_path: Path) -> None:
    w, h = pair
    files = []
    for i in range(3):
        add_notes(w, 2, text=f"batch {i}")
        files.append(export(w, tmp_path / f"u{i}")[-1])
        s = open_(w)
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")  # as if receipted by USB
        s.close()
    s = open_(w)
    device = s.ctx.device
    head = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,))
    s.close()
    assert [hub_import(h, f).outcome.status for f in reversed(files)] == ["held", "held", "applied"]
    assert hub_events(h, device) == head


def test_refused_bundle_applies_nothing(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 3)
    f = export(w, tmp_path / "usb")[0]
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    s = open_(w)
    device = s.ctx.device
    s.close()
    with pytest.raises(Refused, match="bad signature"):
        hub_import(h, f)
    with ledger(h) as (_hs, store):
        assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == 0
        assert store.scalar("SELECT count(*) FROM sync_applied") == 0
        assert store.scalar("SELECT count(*) FROM sync_held") == 0


def test_ward_cannot_import_as_hub_and_hub_cannot_export(pair, tmp_path: Path) -> None:
    from wardcrf.errors import UsageError

    w, h = pair
    add_notes(w, 1)
    f = export(w, tmp_path / "usb")[0]
    s = open_(w)
    try:
        with pytest.raises(UsageError, match="not a hub"):
            hub.import_file(s, f)
    finally:
        s.close()
    hs = open_(h)
    try:
        with pytest.raises(UsageError):
            ward.export(hs, tmp_path)
    finally:
        hs.close()


def test_rebuild_check_reproduces_sync_projections_on_hub_and_ward(pair, tmp_path: Path) -> None:
    from wardcrf.sync import registry

    from wardcrf import projections

    w, h = pair
    add_notes(w, 2)
    assert hub_import(h, export(w, tmp_path / "usb")[0]).outcome.status == "applied"
    s = open_(w)
    with ledger(h, "coordinator") as (hs, wards):
        registry.raise_query(hs, "WUH01", f"{s.ctx.device}-1", "site", "check?", wards=wards)
    s.close()
    for site in (h, w):
        s = open_(site)
        try:
            n, diffs = check_projections(s) if site is h else projections.check(s.store)
            assert n > 0 and diffs == [], diffs
        finally:
            s.close()


def test_event_line_with_nan_is_refused(pair) -> None:
    from wardcrf.sync import bundle as b

    line = '{"prev":"' + "0" * 64 + '","x":NaN}'
    with pytest.raises(Refused, match="not canonical"):
        b.check_chain(
            [line],
            {
                "events": {"count": 1, "first": 1, "last": 1},
                "chain_first_prev": "0" * 64,
                "device": "D",
                "site": "S",
            },
            "t",
        )


def test_a_held_bundle_is_released_after_the_hub_moved_to_another_folder(pair, tmp_path: Path) -> None:
    """Ledger rows keep the path a bundle had when kept; a moved hub finds it under its own folder."""
    from wardcrf.site import Site

    w, h = pair
    add_notes(w, 3)
    f1 = export(w, tmp_path / "u1")[0]
    add_notes(w, 3)
    f2 = export(w, tmp_path / "u2")[-1]
    assert hub_import(h, f2).outcome.status == "held"
    moved = tmp_path / "hub-moved"
    shutil.move(str(h.data_dir), str(moved))  # the old folder is gone: only the new copy can serve
    h2 = Site.open(moved)
    res = hub_import(h2, f1)
    assert res.outcome.status == "applied" and res.outcome.released == [2], res.outcome.message


def test_a_receipt_names_each_device_of_the_site_with_its_last_applied_bundle(pair, tmp_path: Path) -> None:
    # One statement reads every device's head and last bundle (issue 19): the receipt still says,
    # per device, what a query per device said: its head, its highest applied bundle and that manifest.
    import json

    w, h = pair
    w2 = make_ward(tmp_path, "lap2")
    connect(w2, h)
    add_notes(w, 2)
    assert hub_import(h, export(w, tmp_path / "usb1")[-1]).outcome.status == "applied"
    add_notes(w, 3)
    second = export(w, tmp_path / "usb2")[-1]
    assert second.name.endswith("-000002.tar.age")
    assert hub_import(h, second).outcome.status == "applied"
    add_notes(w2, 1)
    res = hub_import(h, export(w2, tmp_path / "usb3")[-1])
    assert res.outcome.status == "applied", res.outcome.message
    devices = json.loads(res.receipt[1])["devices"]
    with ledger(h) as (_s, store):
        expected = {}
        for dev, seq, hash_ in store.execute("SELECT device, seq, hash FROM chain_heads ORDER BY device"):
            if store.scalar("SELECT site FROM sync_devices WHERE device = ?", (dev,)) != "WUH01":
                continue
            last = store.one(
                "SELECT bundle_seq, manifest_sha FROM sync_applied WHERE device = ? ORDER BY bundle_seq DESC LIMIT 1",
                (dev,),
            )
            expected[dev] = {
                "seq": seq,
                "hash": hash_,
                "bundle_seq": last[0] if last else 0,
                "manifest": last[1] if last else "",
            }
    assert devices == expected
    assert sorted(d["bundle_seq"] for d in devices.values()) == [1, 2]
    assert all(d["manifest"] for d in devices.values())


def test_a_receipt_reads_each_devices_last_bundle_by_its_key(tmp_path: Path) -> None:
    # The last applied bundle of each device is found by the (device, bundle_seq) key, never by
    # reading a device's bundles: the receipt's cost follows the site's devices, not its bundles.
    from wardcrf.sync import receipts

    w = make_ward(tmp_path)
    s = open_(w)
    try:
        plan = " | ".join(
            str(r[3]) for r in s.store.conn.execute("EXPLAIN QUERY PLAN " + receipts.HEADS_SQL, ("WUH01",))
        )
    finally:
        s.close()
    assert "SEARCH a USING INDEX sqlite_autoindex_sync_applied_1 (device=? AND bundle_seq=?)" in plan, plan
    assert "SCAN a" not in plan and "SCAN sync_applied" not in plan and "SCAN h" not in plan, plan
