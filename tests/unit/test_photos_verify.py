"""Every read checks the hash; tampering through the raw key is caught by photo and audit verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

import photo_samples as ps
import pytest
import sqlcipher3
from insider import raw_key
from wardcrf.photos import audit as photo_audit
from wardcrf.photos import importing, originals, viewing
from wardcrf.photos import verify as photo_verify

from wardcrf import audit, records
from wardcrf.errors import Refused, VerificationFailed


def _raw(session) -> sqlcipher3.Connection:
    """What an insider holding the raw database key can do, around wardcrf."""
    conn = sqlcipher3.connect(str(session.site.db_path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{raw_key(session).hex()}'\"")
    return conn


def _tamper(session, sha: str, *, cover_tracks: bool = False) -> None:
    """Flip a byte of a stored photo as an attacker with the raw key would.

    `cover_tracks` puts the dropped append-only trigger back afterwards, so only the
    photo's hash gives the change away (what a snapshot of the photo panel should show;
    `audit verify` restoring a missing trigger is tested on its own).
    """
    conn = _raw(session)
    try:
        with pytest.raises(sqlcipher3.DatabaseError, match="never changed"):
            conn.execute("UPDATE photo_blobs SET data = x'00' WHERE sha256 = ?", (sha,))
        trigger = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'photo_blobs_no_update'"
        ).fetchone()[0]
        conn.execute("DROP TRIGGER photo_blobs_no_update")  # as an attacker would
        data = bytearray(conn.execute("SELECT data FROM photo_blobs WHERE sha256 = ?", (sha,)).fetchone()[0])
        data[len(data) // 2] ^= 0xFF
        conn.execute("UPDATE photo_blobs SET data = ? WHERE sha256 = ?", (bytes(data), sha))
        if cover_tracks:
            conn.execute(trigger)
    finally:
        conn.close()


def test_intact_store_verifies(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    info = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    records.submit(s, "consent", {"signed_form": [info.ref]}, subject="participant:WUH01-001")
    result = photo_verify.verify(session_for("auditor"))
    assert result.ok and result.checked == 3
    assert audit.verify(s).ok


def test_tampered_photo_is_caught_everywhere(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    info = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    rec = records.submit(s, "consent", {"signed_form": [info.ref]}, subject="participant:WUH01-001").id
    _tamper(s, info.sha256)
    with pytest.raises(VerificationFailed, match=f"photo sha256:{info.sha256}: stored bytes do not match"):
        originals.read_original(s.store, info.sha256)
    with pytest.raises(VerificationFailed, match="altered"):
        viewing.preview(s, info.short_id)
    result = photo_verify.verify(s)
    assert not result.ok and any(info.sha256 in p and "altered" in p for p in result.problems)
    report = audit.verify(s)
    assert not report.ok
    assert any(p.startswith("photo evidence: photo sha256:" + info.sha256) for p in report.problems)
    (view,) = photo_audit.record_photos(session_for("auditor"), rec)
    assert not view.hash_ok and "altered" in (view.problem or "")


def test_deleted_original_and_dangling_reference_are_named(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    info = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    rec = records.submit(
        s,
        "consent",
        {"signed_form": [info.ref, "sha256:" + "ab" * 32]},
        subject="participant:WUH01-001",
    ).id
    conn = _raw(s)
    conn.execute("DROP TRIGGER photo_blobs_no_delete")
    conn.execute("DELETE FROM photo_blobs")
    conn.close()
    problems = photo_verify.verify(s).problems
    assert f"photo sha256:{info.sha256}: recorded as imported but its original is missing" in problems
    assert (
        f"record {rec} field signed_form: references photo sha256:{'ab' * 32} "
        "which is not in the photo store" in problems
    )
    with pytest.raises(VerificationFailed, match="original is missing"):
        originals.read_original(s.store, info.sha256)


def test_read_unknown_photo_is_refused(session_for) -> None:
    with pytest.raises(Refused, match="unknown photo sha256:"):
        originals.read_original(session_for("auditor").store, "cd" * 32)


def test_store_original_from_a_bundle(session_for, tmp_path: Path) -> None:
    s = session_for("admin")
    data = ps.jpeg_bytes(seed=7)
    sha = hashlib.sha256(data).hexdigest()
    meta = {"sha256": sha, "size": len(data), "format": "JPEG"}
    assert originals.store_original(s.store, data, meta) is True
    assert originals.store_original(s.store, data, meta) is False  # idempotent
    assert originals.read_original(s.store, sha) == data


def test_store_original_refuses_wrong_bytes(session_for) -> None:
    s = session_for("admin")
    data = ps.jpeg_bytes(seed=7)
    other = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(VerificationFailed, match=f"photo sha256:{other}: received bytes hash to"):
        originals.store_original(s.store, data, {"sha256": other})
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(VerificationFailed, match="its event says 5"):
        originals.store_original(s.store, data, {"sha256": sha, "size": 5})
    junk = b"not an image at all"
    with pytest.raises(Refused, match="not an image"):
        originals.store_original(s.store, junk, {"sha256": hashlib.sha256(junk).hexdigest()})
    assert s.store.scalar("SELECT count(*) FROM photo_blobs") == 0


def test_export_writes_original_bytes(session_for, tmp_path: Path) -> None:
    s = session_for("auditor")
    c = session_for("clinician")
    src = ps.jpeg(tmp_path / "a.jpg", ex=ps.exif(gps=True))
    info = importing.import_photo(c, src)
    out = viewing.export_original(s, info.short_id, tmp_path / "out.jpg")
    assert hashlib.sha256(out.path.read_bytes()).hexdigest() == info.sha256 and out.has_gps
    folder = viewing.export_original(s, info.ref, tmp_path)
    assert folder.path == tmp_path / f"{info.sha256}.jpg"
    with pytest.raises(Exception, match="already exists"):
        viewing.export_original(s, info.ref, tmp_path / "out.jpg")


def test_has_original(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    info = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    assert originals.has_original(s.store, info.ref) and not originals.has_original(s.store, "ef" * 32)


def test_photos_travel_inside_the_encrypted_backup(session_for, tmp_path: Path) -> None:
    import tarfile

    from wardcrf import backup
    from wardcrf.site import Site

    clin = session_for("clinician")
    src = ps.jpeg(tmp_path / "consent.jpg", ex=ps.exif())
    info = importing.import_photo(clin, src)
    records.submit(clin, "consent", {"signed_form": [info.ref]}, subject="participant:WUH01-001")
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(clin, stick)
    with tarfile.open(result.path) as tar:
        member = tar.extractfile("wardcrf.db")
        assert member is not None
        db_bytes = member.read()
    # encrypted at rest: neither the JPEG's bytes nor its EXIF appear in the file
    assert src.read_bytes()[:64] not in db_bytes and b"iPhone" not in db_bytes
    laptop2 = tmp_path / "laptop2"
    backup.restore(result.path, laptop2, username="clinician", password="test-password-1")
    s = Site.open(laptop2).unlock("clinician", "test-password-1")
    try:
        assert originals.read_original(s.store, info.sha256) == src.read_bytes()
        assert photo_verify.verify(s).ok
    finally:
        s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_store_original_renders_no_preview(session_for) -> None:
    """Bundle imports keep the original only; the preview is derived on first view."""
    s = session_for("admin")
    data = ps.jpeg_bytes(seed=8)
    assert originals.store_original(s.store, data, {"sha256": _sha(data)}) is True
    assert s.store.scalar("SELECT count(*) FROM photo_previews") == 0


def test_store_original_structural_check_refuses_bad_images(session_for, tmp_path: Path) -> None:
    s = session_for("admin")
    jpeg = ps.jpeg_bytes(seed=9)
    cut = jpeg[: len(jpeg) * 2 // 3]
    with pytest.raises(Refused, match="truncated JPEG"):
        originals.store_original(s.store, cut, {"sha256": _sha(cut)})
    bomb = ps.bomb_png(tmp_path / "bomb.png").read_bytes()
    with pytest.raises(Refused, match="decompression bomb"):
        originals.store_original(s.store, bomb, {"sha256": _sha(bomb)})
    png = bytearray(ps.png_bytes(seed=3))
    png[40] ^= 0xFF  # inside IDAT: its CRC no longer matches
    bad = bytes(png)
    with pytest.raises(Refused, match="PNG"):
        originals.store_original(s.store, bad, {"sha256": _sha(bad)})
    gif = ps.other_format(tmp_path / "x.gif", "GIF").read_bytes()
    with pytest.raises(Refused, match="unsupported format GIF"):
        originals.store_original(s.store, gif, {"sha256": _sha(gif)})
    assert s.store.scalar("SELECT count(*) FROM photo_blobs") == 0


def test_store_original_accepts_a_jpeg_with_a_maker_trailer(session_for) -> None:
    """Phones append data after the end-of-image marker; that is not truncation."""
    s = session_for("admin")
    data = ps.jpeg_bytes(seed=10) + b"SEFH\x00\x01trailer\xff\xda\x00\x08junk"
    assert originals.store_original(s.store, data, {"sha256": _sha(data)}) is True
