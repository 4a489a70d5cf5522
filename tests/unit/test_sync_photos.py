"""Photos travel with the events that reference them: ward -> hub -> replacement laptop.

The hub tests run at a SQLCipher hub and at a PostgreSQL one (`hub_engines`): the photos' rows are read
where the hub keeps the wards' data (`hub_engines.ledger`), their bytes from the kept bundle, opened with
the identity in the hub's file; the preview cache is in the hub's file on both.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import PASSWORD, card_of, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.photos import catalog, importing, originals, viewing
from wardcrf.photos import verify as photo_verify

from wardcrf import records, users
from wardcrf.errors import Refused
from wardcrf.evidence import reference
from wardcrf.site import Site


def _png(seed: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (64, 48), (seed * 40 % 256, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.usefixtures("hub_engine")
def test_photos_round_trip_ward_hub_replacement(tmp_path: Path) -> None:
    from wardcrf.sync import bundle, hub, registry, restore

    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    a = open_(w)
    users.add_user(a, "clinician", "Cli Nician", "clinician", PASSWORD)
    old_device = a.ctx.device
    a.close()
    c = open_(w, "clinician")
    shas = []
    try:
        for i in range(2):
            info = importing.import_bytes(c, f"consent{i}.png", _png(i))
            shas.append(info.sha256)
        rec = records.submit(
            c, "consent", {"photo": [reference(s) for s in shas]}, subject="participant:WUH01-001"
        )
    finally:
        c.close()
    files = export(w, tmp_path / "usb")
    v = hub.verify(
        open_(h).store, files[0].read_bytes(), files[0].with_name(files[0].name + ".minisig").read_bytes()
    )
    assert sorted(v.photos) == sorted(shas)
    assert hub_import(h, files[0]).outcome.status == "applied"
    with ledger(h) as (hs, held):
        for s in shas:
            assert bundle.sha256(originals.read_original(held, s, keys=hs.store)) == s
        # The hub does not render previews on import; the first view does, and keeps it (in its file).
        assert hs.store.scalar("SELECT count(*) FROM photo_previews") == 0
        first = viewing.preview(hs, shas[0], held)
        assert first.width == 64 and first.data[:3] == b"\xff\xd8\xff"
        assert hs.store.scalar("SELECT count(*) FROM photo_previews") == 1
        assert viewing.preview(hs, shas[0], held) == first
        assert photo_verify.verify(hs, held).ok
    # The laptop dies; its replacement gets events and photos back, verified.
    res, card = restore.provision(
        tmp_path / "new",
        site="WUH01",
        device_name="lap1b",
        admin="admin",
        password=PASSWORD,
        hub_card=card_of(h),
    )
    hs = open_(h)
    registry.register_device(hs, card, replaces=old_device)
    stick = tmp_path / "stick"
    stick.mkdir()
    hub.outbound_files(hs, card.device, stick, restore=True)
    hs.close()
    s = Site.open(res.site.data_dir).unlock("admin", PASSWORD)
    try:
        restore.complete(s, from_dir=stick)
        assert records.load(s.store, rec.id).data["photo"] == [reference(x) for x in shas]
        for x in shas:
            assert bundle.sha256(originals.read_original(s.store, x)) == x
    finally:
        s.close()


@pytest.mark.usefixtures("hub_engine")
def test_heic_photo_round_trips_ward_to_hub(tmp_path: Path) -> None:
    """HEIC originals travel as photos/<sha256>.heic (an explicit addition to the bundle format)."""
    pytest.importorskip("pillow_heif")
    from PIL import Image
    from wardcrf.photos.validate import heif_available
    from wardcrf.sync import bundle, hub

    assert heif_available()
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, format="HEIF")
    heic = buf.getvalue()
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    a = open_(w)
    users.add_user(a, "clinician", "Cli Nician", "clinician", PASSWORD)
    a.close()
    c = open_(w, "clinician")
    try:
        info = importing.import_bytes(c, "IMG_0001.HEIC", heic)
        assert originals.bundle_member(c.store, info.sha256) == f"photos/{info.sha256}.heic"
        records.submit(c, "consent", {"photo": [info.ref]}, subject="participant:WUH01-001")
    finally:
        c.close()
    files = export(w, tmp_path / "usb")
    hs = open_(h)
    try:
        cipher, sig = files[0].read_bytes(), files[0].with_name(files[0].name + ".minisig").read_bytes()
        v = hub.verify(hs.store, cipher, sig)
        assert v.photos[info.sha256][0] == "heic"
    finally:
        hs.close()
    assert hub_import(h, files[0]).outcome.status == "applied"
    with ledger(h) as (hs, held):
        assert bundle.sha256(originals.read_original(held, info.sha256, keys=hs.store)) == info.sha256
        assert catalog.get_info(held, info.sha256).format == "HEIF"  # type: ignore[union-attr]
        assert photo_verify.verify(hs, held).ok


def test_photo_of_another_format_is_not_a_bundle_member(tmp_path: Path) -> None:
    from wardcrf.sync import bundle

    for name in (f"photos/{'a' * 64}.gif", f"photos/{'a' * 64}.HEIC", f"photos/{'a' * 64}.heif"):
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as t:
            ti = tarfile.TarInfo(name)
            ti.size = 1
            t.addfile(ti, io.BytesIO(b"x"))
        with pytest.raises(Refused, match="not an allowed bundle member"):
            bundle.read_archive(tar.getvalue(), "bundle")
