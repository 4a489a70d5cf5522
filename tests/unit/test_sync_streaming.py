"""Import streams a bundle: memory follows the largest part, not the bundle; a broken stream applies nothing.

Peak memory is traced Python allocations (`tracemalloc`), not wall time or
RSS: the bytes objects a copy of the bundle, its archive or its photos would
be. A photo-heavy bundle (five photos of about 1.1 MB) is imported at the hub
from its file.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from synckit import PASSWORD, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export
from wardcrf.photos import importing
from wardcrf.photos import originals as photo_originals

from wardcrf import devicekeys, records, users
from wardcrf.errors import Refused
from wardcrf.evidence import reference

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def _noise_png(seed: int, side: int = 600) -> bytes:
    """A real PNG of about 1.1 MB that does not compress (like a photo)."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.fixture
def photo_bundle(tmp_path: Path):
    """(hub site, bundle file, the photos by SHA-256, the ward's device keys)."""
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
        for i in range(7):  # the bundle well over the bound below, whose fixed part has room for noise
            data = _noise_png(i)
            photos[importing.import_bytes(c, f"consent{i}.png", data).sha256] = data
        records.submit(
            c, "consent", {"photo": [reference(s) for s in photos]}, subject="participant:WUH01-001"
        )
    finally:
        c.close()
    (f,) = export(w, tmp_path / "usb")
    return h, f, photos, keys


def test_hub_import_holds_one_part_at_a_time_not_the_bundle(photo_bundle) -> None:
    from wardcrf.sync import hub

    h, f, photos, _keys = photo_bundle
    largest = max(len(p) for p in photos.values())
    size = f.stat().st_size
    # Three photos' worth (one read, one decrypted, one written) and 1.5 MiB fixed: what a worker of
    # pytest-xdist allocates on its own thread while the import runs is traced too (±150 KB between runs).
    bound = 3 * largest + (3 << 19)
    assert bound < 0.8 * size  # the bound means something: less than the bundle itself
    hs = open_(h)
    try:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            res = hub.import_file(hs, f)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert res.outcome.status == "applied"
        with hub.ledger_store(hs) as store:  # the photos' rows where the wards' data is, keys in the file
            for sha, data in photos.items():
                assert photo_originals.read_original(store, sha, keys=hs.store) == data
    finally:
        hs.close()
    assert peak < bound, f"peak {peak} bytes traced for a {size}-byte bundle whose largest photo is {largest}"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _resigned(f: Path, keys: devicekeys.DeviceSigner, cipher: bytes) -> Path:
    """The bundle file replaced by `cipher`, signed again by the device (the damage is inside)."""
    from wardcrf.sync import signing

    sig_path = f.with_name(f.name + ".minisig")
    comment = signing.parse(sig_path.read_bytes(), "sig").trusted_comment
    f.write_bytes(cipher)
    sig_path.write_bytes(signing.sign(keys.minisign_secret, cipher, comment))
    return f


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_stream_broken_midway_applies_nothing_and_leaves_no_file(photo_bundle, damage: str) -> None:
    from wardcrf.sync import hub

    h, f, _photos, keys = photo_bundle
    cipher = f.read_bytes()
    middle = len(cipher) // 2
    if damage == "truncated":
        bad = cipher[:middle]
    else:
        bad = cipher[:middle] + bytes([cipher[middle] ^ 0x01]) + cipher[middle + 1 :]
    _resigned(f, keys, bad)
    hs = open_(h)
    try:
        before = _files(h.data_dir)
        with hub.ledger_store(hs) as store:
            events = store.scalar("SELECT count(*) FROM events WHERE device = ?", (keys.device,))
        with pytest.raises(Refused, match="cannot decrypt"):
            hub.import_file(hs, f)
        with hub.ledger_store(hs) as store:
            assert store.scalar("SELECT count(*) FROM events WHERE device = ?", (keys.device,)) == events
            assert store.scalar("SELECT count(*) FROM photo_archive") == 0
            assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (keys.device,)) == 0
        new = {p for p in _files(h.data_dir) - before if p.suffix not in ("", ".db-wal", ".db-shm")}
        assert not [p for p in new if "sync" in p.parts], new
        incoming = h.data_dir / "sync" / ".incoming"
        assert not incoming.exists() or os.listdir(incoming) == []
    finally:
        hs.close()


def test_parts_are_read_again_one_by_one_and_checked_against_what_was_verified(photo_bundle) -> None:
    from wardcrf.sync import bundle, hub

    h, f, photos, _keys = photo_bundle
    hs = open_(h)
    try:
        v = hub.verify(hs.store, f, f.with_name(f.name + ".minisig").read_bytes(), f.name)
        try:
            assert {d: size for d, (_ext, size) in v.photos.items()} == {d: len(p) for d, p in photos.items()}
            got = {name: bundle.sha256(data) for name, data in v.parts()}
            assert sorted(got.values()) == sorted(photos)
            # Bytes that differ from the verified digest (a source changed since) are refused, not applied.
            member = sorted(v.digests)[0]
            v.digests[member] = "0" * 64
            with pytest.raises(Refused, match="changed since it was verified"):
                list(v.parts())
        finally:
            v.close()
    finally:
        hs.close()


@pytest.fixture
def small_bundle(tmp_path: Path):
    """(hub site, bundle file, the ward's device keys): one record, no photo, far under 1 MiB."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    a = open_(w)
    users.add_user(a, "clinician", "Cli Nician", "clinician", PASSWORD)
    keys = devicekeys.signer(a)
    a.close()
    c = open_(w, "clinician")
    try:
        records.submit(c, "consent", {"note": "small \u2603 bundle"}, subject="participant:WUH01-001")
    finally:
        c.close()
    (f,) = export(w, tmp_path / "usb")
    return h, f, keys


def _verdict(hs, f: Path, what: str) -> str:
    from wardcrf.sync import hub

    sig = f.with_name(f.name + ".minisig").read_bytes()
    try:
        v = hub.verify(hs.store, f, sig, what)
    except Refused as exc:
        return f"refused: {exc.message}"
    try:
        return "verified: " + "|".join(name for name, _data in v.parts()) + f" events {len(v.events)}"
    finally:
        v.close()


@pytest.mark.parametrize("damage", ["none", "truncated", "flipped", "tail cut", "not age", "bad signature"])
def test_a_small_bundle_decrypted_in_one_call_gets_the_streamed_verdict(
    small_bundle, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `_DecryptStream.INLINE` bytes no worker thread decrypts; the verdict is the streamed one, word for word."""
    from wardcrf.sync import bundle

    h, f, keys = small_bundle
    cipher = f.read_bytes()
    assert len(cipher) <= bundle._DecryptStream.INLINE
    middle = len(cipher) // 2
    damaged = {
        "none": cipher,
        "truncated": cipher[:middle],
        "flipped": cipher[:middle] + bytes([cipher[middle] ^ 0x01]) + cipher[middle + 1 :],
        "tail cut": cipher[:-1],
        "not age": b"\x00not an age file\x1b[2J" * 20,
        "bad signature": cipher,
    }[damage]
    _resigned(f, keys, damaged)
    if damage == "bad signature":
        f.write_bytes(cipher[:-1] + bytes([cipher[-1] ^ 0x01]))  # the signature no longer matches
    hs = open_(h)
    try:
        inline = _verdict(hs, f, "b.tar.age")
        monkeypatch.setattr(bundle._DecryptStream, "INLINE", -1)  # every size streamed, on threads
        streamed = _verdict(hs, f, "b.tar.age")
    finally:
        hs.close()
    assert inline == streamed
    if damage == "none":
        assert inline.startswith("verified: ") and "events" in inline
    else:
        assert inline.startswith("refused: b.tar.age"), inline
        assert ("(.minisig): bad signature" in inline) == (damage == "bad signature"), inline
