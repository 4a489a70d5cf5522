"""Importing photos: validation (one clear line each, nothing stored), storage, metadata."""

from __future__ import annotations

from pathlib import Path

import photo_samples as ps
import pytest
from wardcrf.photos import importing, originals, viewing
from wardcrf.photos.validate import PhotoLimits

from wardcrf import eventlog
from wardcrf.errors import PermissionDenied, Refused, UsageError


def _events(session) -> int:
    return eventlog.count(session.store)


def _stored(session) -> int:
    return int(session.store.scalar("SELECT count(*) FROM photo_blobs"))


def test_jpeg_with_exif_is_stored_with_metadata(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    path = ps.jpeg(tmp_path / "IMG_0001.JPG", ex=ps.exif(offset="+08:00", gps=True))
    info = importing.import_photo(s, path)
    data = path.read_bytes()
    assert info.sha256 == __import__("hashlib").sha256(data).hexdigest()
    assert (info.format, info.width, info.height, info.size) == ("JPEG", 320, 240, len(data))
    assert info.captured_at == "2020-03-16T09:12:00+08:00"
    assert info.camera == "Apple iPhone 11"
    assert info.has_gps is True
    assert info.name == "IMG_0001.JPG"
    assert info.imported_by == "clinician" and not info.duplicate
    assert info.ref == "sha256:" + info.sha256
    # the original is stored unchanged and read back checked
    assert originals.read_original(s.store, info.sha256) == data
    # one photo.imported event about photo:<sha256>
    ev = list(eventlog.iter_events(s.store, "type = 'photo.imported'"))
    assert len(ev) == 1 and ev[0].subject == f"photo:{info.sha256}"
    # GPS coordinates are never copied into the event
    assert "gps" not in ev[0].line.lower().replace("has_gps", "")


def test_jpeg_without_exif_has_no_capture_time(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    info = importing.import_photo(s, ps.jpeg(tmp_path / "plain.jpg"))
    assert info.captured_at is None and info.camera is None and not info.has_gps


def test_png_is_accepted(session_for, tmp_path: Path) -> None:
    s = session_for("pharmacist")
    info = importing.import_photo(s, ps.png(tmp_path / "sheet.png"))
    assert info.format == "PNG" and info.extension == "png"


def test_heic_is_accepted_when_the_plugin_is_installed(session_for, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    from wardcrf.photos.validate import heif_available

    assert heif_available()
    path = tmp_path / "IMG_0002.HEIC"
    ps.noise((64, 48)).save(path, format="HEIF")
    info = importing.import_photo(session_for("clinician"), path)
    assert info.format == "HEIF" and info.extension == "heic"


def test_heic_without_plugin_is_refused_with_how_to_convert(session_for, tmp_path: Path, monkeypatch) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    from wardcrf.photos import validate

    pillow_heif.register_heif_opener()  # to write the sample, whatever ran before this test
    path = tmp_path / "IMG_0003.HEIC"
    ps.noise((64, 48)).save(path, format="HEIF")
    monkeypatch.setattr(validate, "heif_available", lambda: False)
    s = session_for("clinician")
    with pytest.raises(Refused, match=r"IMG_0003.HEIC: HEIC/HEIF .*convert"):
        importing.import_photo(s, path)
    assert _stored(s) == 0


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: ps.write(p / "notes.jpg", b"Patient notes, not a photo\n" * 20), "not an image"),
        (lambda p: ps.write(p / "empty.jpg", b""), "not an image (the file is empty)"),
        (
            lambda p: ps.write(p / "half.jpg", ps.jpeg_bytes()[: len(ps.jpeg_bytes()) // 2]),
            "truncated JPEG",
        ),
        (
            lambda p: ps.write(p / "half.png", ps.png_bytes()[: len(ps.png_bytes()) // 2]),
            "truncated PNG",
        ),
        (lambda p: ps.write(p / "bad.jpg", _corrupt_middle(ps.jpeg_bytes())), "corrupt JPEG"),
        (lambda p: ps.write(p / "bad.png", _corrupt_middle(ps.png_bytes())), "corrupt PNG"),
        (lambda p: ps.bomb_png(p / "bomb.png"), "decompression bomb guard"),
        (
            lambda p: ps.bomb_png(p / "big.png", side=9000),
            "81 megapixels, more than the limit of 60",
        ),
        (lambda p: ps.other_format(p / "anim.jpg", "GIF"), "unsupported format GIF"),
        (lambda p: ps.other_format(p / "scan.bmp", "BMP"), "unsupported format BMP"),
    ],
    ids=[
        "renamed-text",
        "empty",
        "truncated-jpeg",
        "truncated-png",
        "corrupt-jpeg",
        "corrupt-png",
        "bomb",
        "too-many-pixels",
        "gif",
        "bmp",
    ],
)
def test_bad_files_are_refused_with_one_line_and_nothing_stored(
    session_for, tmp_path, make, expected
) -> None:
    s = session_for("clinician")
    path = make(tmp_path)
    before = _events(s)
    with pytest.raises(Refused) as exc:
        importing.import_photo(s, path)
    msg = str(exc.value)
    assert expected in msg and msg.startswith(path.name + ":") and "\n" not in msg
    assert _events(s) == before and _stored(s) == 0


def _corrupt_middle(data: bytes) -> bytes:
    b = bytearray(data)
    mid = len(b) // 2
    b[mid : mid + 400] = bytes((i * 37 + 11) % 256 for i in range(400))
    return bytes(b)


def test_size_limit_is_configurable_and_checked_before_reading(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    path = ps.jpeg(tmp_path / "big.jpg")
    limits = PhotoLimits(max_bytes=1000)
    with pytest.raises(Refused, match=r"big.jpg: .* larger than the photo size limit of 0.0 MB"):
        importing.import_photo(s, path, limits=limits)
    assert _stored(s) == 0
    # accept: the same file under the default 40 MB limit
    assert importing.import_photo(s, path).size == path.stat().st_size


def test_size_limit_from_environment(session_for, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WARDCRF_PHOTO_MAX_MB", "0.001")
    s = session_for("clinician")
    with pytest.raises(Refused, match="larger than the photo size limit"):
        importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    monkeypatch.setenv("WARDCRF_PHOTO_MAX_MB", "lots")
    with pytest.raises(UsageError, match="WARDCRF_PHOTO_MAX_MB='lots' is not a number"):
        PhotoLimits.from_env()


def test_pixel_limit_is_configurable(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    path = ps.jpeg(tmp_path / "a.jpg")
    with pytest.raises(Refused, match=r"320x240 is 0.0768 megapixels, more than the limit of 0.05"):
        importing.import_photo(s, path, limits=PhotoLimits(max_pixels=50_000))
    assert importing.import_photo(s, path, limits=PhotoLimits(max_pixels=100_000)).width == 320


def test_pillow_bomb_guard_stays_on(session_for, tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # someone switched it off
    s = session_for("clinician")
    with pytest.raises(Refused, match="decompression bomb guard"):
        importing.import_photo(s, ps.bomb_png(tmp_path / "bomb.png"))
    assert PhotoLimits().max_pixels == Image.MAX_IMAGE_PIXELS


def test_pixel_limit_cannot_switch_the_guard_off() -> None:
    with pytest.raises(UsageError, match="cannot be switched off"):
        PhotoLimits(max_pixels=10**12)
    assert PhotoLimits(max_pixels=200_000_000).max_pixels == 200_000_000


def test_duplicate_is_reused_and_said_so(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    first = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    n = _events(s)
    again = importing.import_photo(s, ps.jpeg(tmp_path / "copy-of-a.jpg"))
    assert again.duplicate and not first.duplicate
    assert again.sha256 == first.sha256 and again.name == "a.jpg"
    assert _events(s) == n and _stored(s) == 1


def test_missing_file_and_folder_are_usage_errors(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    with pytest.raises(UsageError, match="no such file"):
        importing.import_photo(s, tmp_path / "nope.jpg")
    with pytest.raises(UsageError, match="is a folder"):
        importing.import_photo(s, tmp_path)


def test_auditor_may_not_import(session_for, tmp_path: Path) -> None:
    s = session_for("auditor")
    with pytest.raises(PermissionDenied, match="role auditor may not import photos"):
        importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))


def test_preview_is_downscaled_and_has_no_exif(session_for, tmp_path: Path) -> None:
    import io

    from PIL import Image

    s = session_for("clinician")
    big = ps.jpeg(tmp_path / "big.jpg", size=(3000, 2000), ex=ps.exif(gps=True))
    info = importing.import_photo(s, big)
    pv = viewing.preview(s, info.short_id)
    assert max(pv.width, pv.height) <= 1280
    with Image.open(io.BytesIO(pv.data)) as im:
        assert im.format == "JPEG"
        assert not im.getexif() and "exif" not in im.info
    assert b"Exif" not in pv.data and b"iPhone" not in pv.data


def test_batch_import_survives_a_bad_file(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    card = tmp_path / "DCIM" / "100APPLE"
    ps.jpeg(card / "IMG_0001.JPG", seed=1)
    ps.write(card / "IMG_0002.JPG", ps.jpeg_bytes(seed=2)[:500])
    ps.png(card / "IMG_0003.PNG", seed=3)
    ps.write(card / "IMG_0004.MOV", b"not a photo")
    ps.write(card / ".hidden.jpg", b"x")
    seen = []
    report = importing.import_many(s, [tmp_path / "DCIM"], on_progress=lambda o, i, n: seen.append((i, n)))
    assert [o.path.name for o in report.imported] == ["IMG_0001.JPG", "IMG_0003.PNG"]
    assert [o.path.name for o in report.failed] == ["IMG_0002.JPG"]
    assert "truncated" in (report.failed[0].error or "")
    assert [p.name for p in report.skipped] == ["IMG_0004.MOV"]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert not report.ok and _stored(s) == 2


def test_truncated_heic_is_refused_on_one_line(session_for, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    from wardcrf.photos.validate import heif_available

    assert heif_available()
    path = tmp_path / "IMG_0004.HEIC"
    ps.noise((320, 240)).save(path, format="HEIF")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    s = session_for("clinician")
    with pytest.raises(Refused) as exc:
        importing.import_photo(s, path)
    assert str(exc.value).startswith("IMG_0004.HEIC: truncated HEIF file") and "\n" not in str(exc.value)
    assert _stored(s) == 0


def test_preview_follows_exif_orientation(session_for, tmp_path: Path) -> None:
    ex = ps.exif()
    ex[0x0112] = 6  # camera held upright: stored landscape, shown portrait
    info = importing.import_photo(session_for("clinician"), ps.jpeg(tmp_path / "r.jpg", size=(320, 240), ex=ex))
    pv = viewing.preview(session_for("auditor"), info.short_id)
    assert (info.width, info.height) == (320, 240) and (pv.width, pv.height) == (240, 320)
