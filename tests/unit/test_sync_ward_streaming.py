"""A ward imports hub bundles (`sync import`) and restores from a USB stick (`sync restore --from`) as streams.

Like the hub's import (test_sync_streaming): the file is copied into the
laptop's spool in pieces and verified from that copy, its photos stored one
at a time, so memory follows the largest photo, not the bundle. Peak memory
is traced Python allocations (`tracemalloc`). Hostile files (truncated, a
member over its limit, a wrong signature, a file over the size limit) are
refused in one line on stderr, exit 1, and nothing of them is applied or
left behind. The hub the bundles come from is a SQLCipher hub and a PostgreSQL
one (`hub_engines`): what it sends a replacement laptop is read where it keeps
the wards' bundles; the laptop's side is the same.
"""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from synckit import PASSWORD, add_notes, card_of, connect, make_hub, make_ward, open_
from test_sync_cli import run
from test_sync_roundtrip import export
from wardcrf.photos import originals as photo_originals
from wardcrf.sync import bundle, hub, registry, restore, signing
from wardcrf.sync.cards import Card

from wardcrf import devicekeys
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")


def _replacement(h: Site, old_device: str, root: Path) -> tuple[Site, Card]:
    """A replacement laptop of site WUH01 provisioned from the hub's card and registered there."""
    res, card = restore.provision(
        root / "new", site="WUH01", device_name="lap1b", admin="admin", password=PASSWORD, hub_card=card_of(h)
    )
    hs = open_(h)
    try:
        registry.register_device(hs, card, replaces=old_device)
    finally:
        hs.close()
    return res.site, card


def _stick(h: Site, device: str, root: Path) -> Path:
    """What `hub export --device D --restore` writes for the new laptop."""
    stick = root / "stick"
    stick.mkdir()
    hs = open_(h)
    try:
        hub.outbound_files(hs, device, stick, restore=True)
    finally:
        hs.close()
    return stick


def _spool_and_kept(site: Site) -> tuple[list[str], list[str]]:
    sync = site.data_dir / "sync"
    incoming = sorted(os.listdir(sync / ".incoming")) if (sync / ".incoming").exists() else []
    kept = sorted(p.name for p in sync.rglob("*.tar.age") if p.parent.name in ("applied", "held"))
    return incoming, kept


# -- memory ------------------------------------------------------------------------------------


@pytest.fixture
def ten_photos(tmp_path: Path):
    """(hub site, bundle file, the photos by SHA-256, the ward's device keys): a consent citing ten photos of
    about 1.1 MB each (noise: they do not compress), so the bundle is ten times the largest part."""
    from test_sync_streaming import _noise_png
    from wardcrf.photos import importing

    from wardcrf import records, users
    from wardcrf.evidence import reference

    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    a = open_(w)
    users.add_user(a, "clinician", "Cli Nician", "clinician", PASSWORD)
    keys = devicekeys.signer(a)
    a.close()
    c = open_(w, "clinician")
    photos = {}
    try:
        for i in range(10):
            data = _noise_png(i)
            photos[importing.import_bytes(c, f"consent{i}.png", data).sha256] = data
        records.submit(
            c, "consent", {"photo": [reference(s) for s in photos]}, subject="participant:WUH01-001"
        )
    finally:
        c.close()
    (f,) = export(w, tmp_path / "usb")
    return h, f, photos, keys


def _bound(photos: dict[str, bytes], size: int) -> int:
    """What a restore may trace at its peak: a few copies of the largest photo (the ward checks its
    structure and writes it into its database) and 1 MiB; never the bundle."""
    bound = 4 * max(len(p) for p in photos.values()) + (1 << 20)
    assert bound < 0.6 * size  # the bound means something: well under the bundle itself
    return bound


def test_usb_restore_holds_one_photo_at_a_time_not_the_bundle(ten_photos, tmp_path: Path) -> None:
    h, f, photos, keys = ten_photos
    hs = open_(h)
    try:
        assert hub.import_file(hs, f).outcome.status == "applied"
    finally:
        hs.close()
    new, card = _replacement(h, keys.device, tmp_path)
    stick = _stick(h, card.device, tmp_path)
    (restored,) = (stick / "restore").glob("*.tar.age")
    size = restored.stat().st_size
    bound = _bound(photos, size)
    s = open_(new)
    try:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            lines = restore.complete(s, from_dir=stick)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert any(f"device {keys.device} applied" in line for line in lines), lines
        for sha, data in photos.items():
            assert photo_originals.read_original(s.store, sha) == data
    finally:
        s.close()
    assert peak < bound, f"peak {peak} bytes traced for a {size}-byte bundle (bound {bound})"
    incoming, kept = _spool_and_kept(new)
    assert incoming == []  # the spooled copies were kept (renamed into applied/) or removed
    assert any(keys.device in name for name in kept)


def test_http_restore_streams_each_bundle_into_the_spool_not_memory(ten_photos, tmp_path: Path) -> None:
    """`sync restore --url`: the body goes to the laptop's spool as it arrives and is verified from there."""
    from synckit import HubServer
    from wardcrf.sync.transport import Client

    h, f, photos, keys = ten_photos
    hs = open_(h)
    try:
        assert hub.import_file(hs, f).outcome.status == "applied"
    finally:
        hs.close()
    new, _card = _replacement(h, keys.device, tmp_path)
    bound = _bound(photos, f.stat().st_size)
    server = HubServer(h.data_dir)
    s = open_(new)
    try:
        Client(server.url).ping()  # httpx loaded and warm: what is traced is the restore, not the library
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            lines = restore.complete(s, client=Client(server.url))
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert any(f"device {keys.device} applied" in line for line in lines), lines
        for sha, data in photos.items():
            assert photo_originals.read_original(s.store, sha) == data
    finally:
        s.close()
        server.stop()
    assert peak < bound, f"peak {peak} bytes traced (bound {bound})"
    incoming, kept = _spool_and_kept(new)
    assert incoming == [] and any(keys.device in name for name in kept)


def test_sync_import_of_a_hub_bundle_keeps_the_copy_it_verified(tmp_path: Path, monkeypatch) -> None:
    """`sync import FILE` from a stick: applied, kept under applied/ byte for byte, nothing left in the spool,
    and the stick's file is left as it was."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    stick = tmp_path / "stick"
    stick.mkdir()
    s = open_(w)
    device = s.ctx.device
    s.close()
    hs = open_(h)
    try:
        files = [p for p in hub.outbound_files(hs, device, stick) if p.name.endswith(".tar.age")]
    finally:
        hs.close()
    assert files
    before = {p: p.read_bytes() for p in files}
    code, out, err = run("sync", "import", *map(str, files), data_dir=w.data_dir, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "applied" in out
    incoming, _kept = _spool_and_kept(w)
    assert incoming == []
    for p, data in before.items():
        assert p.read_bytes() == data
        (copy,) = [k for k in (w.data_dir / "sync" / "applied").glob("*.tar.age") if k.name == p.name]
        assert copy.read_bytes() == data


# -- hostile files -----------------------------------------------------------------------------


@pytest.fixture
def stick(tmp_path: Path):
    """A dead laptop's bundles at the hub, a replacement registered, and the hub's USB export for it.

    Returns (hub, old device, new laptop, its age recipient, the stick, the hub's signing secret).
    """
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    add_notes(w, 4)
    s = open_(w)
    old = s.ctx.device
    s.close()
    hs = open_(h)
    try:
        for f in export(w, tmp_path / "usb"):
            assert hub.import_file(hs, f).outcome.status == "applied"
        hub_secret = devicekeys.signer(hs).minisign_secret
    finally:
        hs.close()
    new, card = _replacement(h, old, tmp_path)
    return h, old, new, card.age_recipient, _stick(h, card.device, tmp_path), hub_secret


def _identity(site: Site) -> str:
    s = open_(site)
    try:
        keys = devicekeys.load(s.store, s.ctx.device)
        assert keys is not None
        return keys.age_identity
    finally:
        s.close()


def _resign(f: Path, cipher: bytes, secret: str) -> None:
    """Replace the file's bytes and sign them again with the hub's key (the damage is inside the signature)."""
    sig_path = f.with_name(f.name + ".minisig")
    comment = signing.parse(sig_path.read_bytes(), "sig").trusted_comment
    f.write_bytes(cipher)
    sig_path.write_bytes(signing.sign(secret, cipher, comment))


def _oversize_manifest(f: Path, identity: str, recipient: str) -> bytes:
    """The archive again, its manifest.json one byte over the limit, encrypted to the laptop again."""
    plain = bundle.decrypt(f.read_bytes(), [identity], "t")
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as src,
        tarfile.open(fileobj=out, mode="w:", format=tarfile.USTAR_FORMAT) as dst,
    ):
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == bundle.MANIFEST:
                data = data + b" " * (bundle.LIMITS.manifest_bytes + 1 - len(data))
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return bundle.encrypt(out.getvalue(), [recipient])


def _damage(f: Path, damage: str, new: Site, recipient: str, secret: str) -> str:
    """Damage the bundle file `f` on the stick; returns what the refusal must say."""
    cipher = f.read_bytes()
    if damage == "truncated":
        _resign(f, cipher[: len(cipher) * 2 // 3], secret)
        return "cannot decrypt"
    if damage == "oversized member":
        _resign(f, _oversize_manifest(f, _identity(new), recipient), secret)
        return "manifest.json is larger than"
    if damage == "wrong signature":
        other = bytearray(cipher)
        other[-1] ^= 0x01
        sig = f.with_name(f.name + ".minisig")
        comment = signing.parse(sig.read_bytes(), "sig").trusted_comment
        sig.write_bytes(signing.sign(secret, bytes(other), comment))  # the hub's key, other bytes
        return "bad signature"
    assert damage == "oversized file"
    with open(f, "r+b") as fh:  # sparse: no disk, and refused before a byte is read
        fh.truncate(bundle.LIMITS.bundle_bytes + 1)
    return "larger than 512 MiB"


DAMAGE = ["truncated", "oversized member", "wrong signature", "oversized file"]


def _events(site: Site, device: str) -> int:
    s = open_(site)
    try:
        return int(s.store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)))
    finally:
        s.close()


@pytest.mark.parametrize("damage", DAMAGE)
def test_sync_restore_from_a_stick_refuses_a_damaged_bundle_and_applies_nothing_of_it(
    stick, damage: str, monkeypatch
) -> None:
    _h, old, new, recipient, usb, secret = stick
    (restored,) = (usb / "restore").glob("*.tar.age")
    says = _damage(restored, damage, new, recipient, secret)
    code, _out, err = run(
        "sync", "restore", "-d", str(new.data_dir), "--from", str(usb), monkeypatch=monkeypatch
    )
    assert code == 1, err
    assert says in err and restored.name in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _events(new, old) == 0  # nothing of the dead laptop's bundle
    incoming, kept = _spool_and_kept(new)
    assert incoming == [] and not [k for k in kept if old in k]


@pytest.mark.parametrize("damage", DAMAGE)
def test_sync_import_refuses_a_damaged_hub_bundle_and_applies_nothing_of_it(
    stick, damage: str, monkeypatch
) -> None:
    h, _old, new, recipient, usb, secret = stick
    hub_bundle = sorted(usb.glob("*.tar.age"))[0]  # the hub's first bundle for this laptop
    hub_device = card_of(h).device
    says = _damage(hub_bundle, damage, new, recipient, secret)
    code, _out, err = run("sync", "import", str(hub_bundle), data_dir=new.data_dir, monkeypatch=monkeypatch)
    assert code == 1, err
    assert says in err and hub_bundle.name in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _events(new, hub_device) == 0
    s = open_(new)
    try:
        assert s.store.scalar("SELECT count(*) FROM sync_applied") == 0
    finally:
        s.close()
    assert _spool_and_kept(new) == ([], [])
