"""A replacement laptop provisioned from the hub, over USB and over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from synckit import PASSWORD, HubServer, add_notes, card_of, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import hub, registry, restore
from wardcrf.sync.transport import Client

from wardcrf import records, users
from wardcrf.errors import Refused
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def _dead_ward(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    s = open_(w)
    users.add_user(s, "clin", "Clin Ician", "clinician", PASSWORD)
    old_device = s.ctx.device
    s.close()
    s = open_(w, "clin")
    # A record that is not a participant's (those need a signed consent first, checked at import).
    rec = records.submit(s, "qa_vitals", {"temp": 37.2}, subject="site:WUH01")
    s.close()
    add_notes(w, 5)
    for f in export(w, tmp_path / "usb"):
        assert hub_import(h, f).outcome.status == "applied"
    s = open_(w)
    head = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (old_device,))
    s.close()
    add_notes(w, 2, text="never exported")  # lost with the laptop
    return h, w, old_device, head, rec


def _provision(tmp_path: Path, h, old_device: str, url: str | None = None):
    res, card = restore.provision(
        tmp_path / "new",
        site="WUH01",
        device_name="lap1b",
        admin="admin",
        password=PASSWORD,
        hub_card=card_of(h),
        url=url,
    )
    assert card.device != old_device
    hs = open_(h)
    try:
        registry.register_device(hs, card, replaces=old_device)
    finally:
        hs.close()
    return res.site, card


def _check(new: Site, old_device: str, head: int, rec) -> None:
    s = Site.open(new.data_dir).unlock("admin", PASSWORD)
    try:
        assert s.store.scalar("SELECT max(seq) FROM events WHERE device = ?", (old_device,)) == head
        assert records.load(s.store, rec.id).data == {"temp": 37.2}
        assert s.ctx.device != old_device
        assert registry.device(s.store, old_device)["status"] == "retired"
    finally:
        s.close()


def test_replacement_laptop_over_usb(tmp_path: Path) -> None:
    h, w, old_device, head, rec = _dead_ward(tmp_path)
    new, card = _provision(tmp_path, h, old_device)
    stick = tmp_path / "stick"
    stick.mkdir()
    hs = open_(h)
    try:
        files = hub.outbound_files(hs, card.device, stick, restore=True)
        assert any(f.parent.name == "restore" for f in files)
    finally:
        hs.close()
    s = open_(new)
    try:
        lines = restore.complete(s, from_dir=stick)
        assert any("applied" in line for line in lines)
    finally:
        s.close()
    _check(new, old_device, head, rec)
    # The old laptop is retired: its later bundles are refused whole.
    f = export(w, tmp_path / "late")[-1]
    with pytest.raises(Refused, match="retired"):
        hub_import(h, f)


def test_replacement_laptop_over_http(tmp_path: Path) -> None:
    h, _w, old_device, head, rec = _dead_ward(tmp_path)
    new, _card = _provision(tmp_path, h, old_device)
    server = HubServer(h.data_dir)
    try:
        s = open_(new)
        try:
            restore.complete(s, client=Client(server.url))
        finally:
            s.close()
    finally:
        server.stop()
    _check(new, old_device, head, rec)


def test_restore_refused_for_an_unregistered_laptop(tmp_path: Path) -> None:
    h, _w, _old, _head, _rec = _dead_ward(tmp_path)
    _res, card = restore.provision(
        tmp_path / "new",
        site="WUH01",
        device_name="lap1b",
        admin="admin",
        password=PASSWORD,
        hub_card=card_of(h),
    )
    hs = open_(h)
    try:
        with pytest.raises(Refused, match="not an active registered device"):
            hub.restore_list(hs, card.device)
    finally:
        hs.close()
