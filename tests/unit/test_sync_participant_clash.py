"""Two laptops of one site allocating the same participant id: held at the hub, never merged.

Each laptop allocates SITE-NNN one above the ids it holds. Two laptops that
enroll independently give the same id to two people; the hub holds the
second bundle whole (reason `clash`), keeps both, flags the device, lists the
clash in `hub status` / `hub conflicts` and tells the ward in its receipt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import PASSWORD, HubServer, add_notes, card_of, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import hub, registry, restore, service, ward
from wardcrf.sync.transport import Client
from wf_support import Staff

from wardcrf import users
from wardcrf.eventlog import Event
from wardcrf.site import Site
from wardcrf.workflow import idclash

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub

DOCTORS = (("clinician", "clinician"), ("clinician2", "clinician"), ("investigator", "investigator"))


def _doctors(site: Site) -> None:
    a = open_(site)
    try:
        for name, role in DOCTORS:
            users.add_user(a, name, name.title(), role, PASSWORD)
    finally:
        a.close()


class _Laptop(Staff):
    """The workflow helpers of `wf_support.Staff` on one laptop's data directory."""

    def __init__(self, site: Site, tmp: Path) -> None:
        super().__init__(lambda user: open_(site, user), tmp)

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()


def _enroll_one(site: Site, tmp: Path) -> str:
    lap = _Laptop(site, tmp)
    try:
        return lap.consent()
    finally:
        lap.close()


@pytest.fixture
def two_laptops(tmp_path: Path):
    h = make_hub(tmp_path)
    a, b = make_ward(tmp_path, "lap1"), make_ward(tmp_path, "lap2")
    for w in (a, b):
        connect(w, h)
        _doctors(w)
    return h, a, b


def _hub_rows(h: Site, sql: str, params: tuple = ()) -> list[dict]:
    with ledger(h) as (_s, store):
        return store.rows(sql, params)


def test_same_id_from_two_laptops_is_held_unmerged_and_both_are_kept(
    two_laptops, tmp_path: Path, cli
) -> None:
    h, a, b = two_laptops
    pid_a = _enroll_one(a, tmp_path / "pa")
    pid_b = _enroll_one(b, tmp_path / "pb")
    assert pid_a == pid_b == "WUH01-001"  # each laptop is right on its own
    (fa,) = export(a, tmp_path / "usb-a")
    (fb,) = export(b, tmp_path / "usb-b")
    assert hub_import(h, fa).outcome.status == "applied"
    res = hub_import(h, fb)
    dev_a, dev_b = card_of(a).device, card_of(b).device
    assert res.outcome.status == "clash" and not res.ok
    assert res.outcome.message.startswith(f"CLASH: device {dev_b} bundle 1: participant id WUH01-001")
    assert f"device {dev_a} already created it" in res.outcome.message
    assert "\n" not in res.outcome.message
    # Nothing of laptop B merged: the participant is laptop A's person.
    (p,) = _hub_rows(h, "SELECT id, consent_event FROM participants")
    assert p == {"id": "WUH01-001", "consent_event": p["consent_event"]} and p["consent_event"].startswith(
        dev_a
    )
    assert _hub_rows(h, "SELECT count(*) AS n FROM events WHERE device = ?", (dev_b,)) == [{"n": 0}]
    # ... but kept: the held file is the bundle laptop B sent, byte for byte.
    (held,) = _hub_rows(h, "SELECT reason, file, resolved_at FROM sync_held WHERE device = ?", (dev_b,))
    assert held["reason"] == "clash" and held["resolved_at"] is None
    assert Path(held["file"]).read_bytes() == fb.read_bytes()
    # Loud at the hub: device flagged, the clash in status and conflicts, an event in the hub's log.
    hs = open_(h)
    try:
        st = hub.status(hs)
        flags = {d["device"]: (d["status"], d["flag"]) for d in st["devices"]}
        assert flags[dev_b] == ("flagged", "clash at bundle 1") and flags[dev_a][0] == "active"
        assert [c["device"] for c in st["clashes"]] == [dev_b]
        (ev,) = hs.store.rows("SELECT line FROM events WHERE type = 'sync.bundle_held'")
        body = json.loads(ev["line"])["body"]
        assert body["participant"] == "WUH01-001" and body["created_by_device"] == dev_a
    finally:
        hs.close()
    hub_dir = str(h.data_dir)
    r = cli("hub", "conflicts", "--data-dir", hub_dir, user="admin")
    assert r.code == 0 and f"CLASH {dev_b} bundle 1 held: participant id WUH01-001" in r.out
    r = cli("hub", "status", "--data-dir", hub_dir, user="admin")
    assert r.code == 0 and "CLASH" in r.out
    # Idempotent: the same bundle again is still held, once.
    assert hub_import(h, fb).outcome.status == "clash"
    assert len(_hub_rows(h, "SELECT id FROM sync_held WHERE device = ?", (dev_b,))) == 1
    # The ward is told at its next sync (the receipt), and its later bundles wait, not lost.
    _name, data, sig = res.receipt  # type: ignore[misc]
    wb = open_(b)
    try:
        line = ward.apply_receipt(wb, data, sig)
        assert "unmerged: participant id WUH01-001" in line and "flagged" in line
        notices = ward.status(wb)["hub_notices"]
        assert any("WUH01-001" in n for n in notices)
    finally:
        wb.close()
    _enroll_one(b, tmp_path / "pb2")
    later = [f for f in export(b, tmp_path / "usb-b2") if f.name != fb.name]
    assert hub_import(h, later[-1]).outcome.status == "held"  # a gap behind the held bundle


def test_distinct_ids_from_two_laptops_of_one_site_are_accepted(two_laptops, tmp_path: Path) -> None:
    """Laptop B provisioned from the hub after A enrolled: it allocates the next id, and may re-consent A's."""
    h, a, _b = two_laptops
    pid_a = _enroll_one(a, tmp_path / "pa")
    for f in export(a, tmp_path / "usb-a"):
        assert hub_import(h, f).outcome.status == "applied"
    res, card = restore.provision(
        tmp_path / "lap3",
        site="WUH01",
        device_name="lap3",
        admin="admin",
        password=PASSWORD,
        hub_card=card_of(h),
    )
    hs = open_(h)
    try:
        registry.register_device(hs, card)  # a second laptop for the site, not a replacement
        stick = tmp_path / "stick"
        stick.mkdir()
        hub.outbound_files(hs, card.device, stick, restore=True)
    finally:
        hs.close()
    c = Site.open(res.site.data_dir)
    s = c.unlock("admin", PASSWORD)
    try:
        restore.complete(s, from_dir=stick)
        for name, _role in DOCTORS:  # accounts came back with the data; passwords are per laptop
            users.change_password(s, name, PASSWORD)
        connect_hub = registry.hub(s.store)
        assert connect_hub is not None
    finally:
        s.close()
    lap = _Laptop(c, tmp_path / "pc")
    try:
        pid_c = lap.consent()
        lap.consent(participant=pid_a)  # re-consent of A's participant (known here)
    finally:
        lap.close()
    assert (pid_a, pid_c) == ("WUH01-001", "WUH01-002")
    for f in export(c, tmp_path / "usb-c"):
        assert hub_import(h, f).outcome.status == "applied"
    rows = _hub_rows(h, "SELECT id FROM participants ORDER BY id")
    assert [r["id"] for r in rows] == ["WUH01-001", "WUH01-002"]
    assert _hub_rows(h, "SELECT count(*) AS n FROM sync_held") == [{"n": 0}]


def test_consent_marks_the_participant_it_creates(two_laptops, tmp_path: Path) -> None:
    """The consent that allocated the id says so, a re-consent says it did not (the hub relies on it)."""
    _h, a, _b = two_laptops
    lap = _Laptop(a, tmp_path / "pa")
    try:
        pid = lap.consent()
        lap.consent(participant=pid)
        bodies = [
            json.loads(r["line"])["body"]
            for r in lap.clin.store.rows(
                "SELECT line FROM events WHERE type = 'record.submitted' ORDER BY seq"
            )
        ]
    finally:
        lap.close()
    consents = [b for b in bodies if b["form"] == "consent"]
    assert [b.get(idclash.CREATES) for b in consents] == [True, False]


def _consent_event(device: str, seq: int, body_extra: dict) -> Event:
    body = {"form": "consent", "data": {"consenter": "participant"}, **body_extra}
    return Event(
        id=f"{device}-{seq}", device=device, seq=seq, prev="", hash="", hlc="", ts="", tz="", zone="",
        site="WUH01", user="clinician", role="clinician", type="record.submitted",
        subject="participant:WUH01-001", body=body, reason=None, amends=None, protocol=None, line="",
    )  # fmt: skip


def test_consents_recorded_before_the_marker(two_laptops, tmp_path: Path) -> None:
    """Without `creates_participant`: another device's consent for the id clashes unless it is a
    replacement laptop (restored from the hub, so it knew the participant); the creator's own never does."""
    h, a, b = two_laptops
    _enroll_one(a, tmp_path / "pa")
    (fa,) = export(a, tmp_path / "usb-a")
    hub_import(h, fa)
    dev_a, dev_b = card_of(a).device, card_of(b).device
    with ledger(h) as (hs, store):  # where the wards' participants are
        assert idclash.clash_of(store, _consent_event(dev_a, 99, {})) is None
        clash = idclash.clash_of(store, _consent_event(dev_b, 5, {}))
        assert clash is not None and clash["created_by_device"] == dev_a
        assert idclash.clash_of(store, _consent_event(dev_b, 5, {idclash.CREATES: False})) is None
        assert idclash.clash_of(store, _consent_event(dev_b, 5, {idclash.CREATES: True})) is not None
        # The registry is the hub's file's (a PostgreSQL hub copies it there when it changed).
        hs.store.execute("UPDATE sync_devices SET replaces = ? WHERE device = ?", (dev_a, dev_b))
    with ledger(h) as (_hs, store):
        assert idclash.clash_of(store, _consent_event(dev_b, 5, {})) is None


def test_clash_over_http_is_a_409_and_the_ward_hears_of_it(two_laptops, tmp_path: Path) -> None:
    h, a, b = two_laptops
    _enroll_one(a, tmp_path / "pa")
    _enroll_one(b, tmp_path / "pb")
    server = HubServer(h.data_dir)
    try:
        for w in (a, b):
            s = open_(w)
            try:
                lines = service.push(s, Client(server.url))
            finally:
                s.close()
        assert any("CLASH: device" in ln for ln in lines)
        assert any(ln.startswith("HUB NOTICE: the hub holds this bundle unmerged") for ln in lines)
        assert "unmerged: participant id WUH01-001" in lines[-1]  # the receipt, applied
    finally:
        server.stop()


def test_a_clash_found_when_a_gap_fills_is_held_and_flagged(two_laptops, tmp_path: Path) -> None:
    """Bundle 2 (the clashing consent) arrives before bundle 1: held as a gap, then, once bundle 1
    is applied, held as a clash on the same row, the device flagged; not marked resolved."""
    h, a, b = two_laptops
    _enroll_one(a, tmp_path / "pa")
    (fa,) = export(a, tmp_path / "usb-a")
    hub_import(h, fa)
    add_notes(b, 3)
    (b1,) = export(b, tmp_path / "usb-b1")
    _enroll_one(b, tmp_path / "pb")
    b2 = next(f for f in export(b, tmp_path / "usb-b2") if f.name != b1.name)
    assert hub_import(h, b2).outcome.status == "held"
    out = hub_import(h, b1).outcome
    assert out.status == "applied" and out.released == []
    dev_b = card_of(b).device
    rows = _hub_rows(h, "SELECT bundle_seq, reason, resolved_at FROM sync_held WHERE device = ?", (dev_b,))
    assert rows == [{"bundle_seq": 2, "reason": "clash", "resolved_at": None}]
    hs = open_(h)
    try:
        st = hub.status(hs)
        assert [c["bundle_seq"] for c in st["clashes"]] == [2] and st["gaps_held"] == []
        assert {d["device"]: d["status"] for d in st["devices"]}[dev_b] == "flagged"
    finally:
        hs.close()
