"""The tray folder, checking a file without storing it, and each event's photos with hash status."""

from __future__ import annotations

import os
from pathlib import Path

import photo_samples as ps
import pytest
from test_photos_verify import _raw, _tamper
from wardcrf.photos import audit as photo_audit
from wardcrf.photos import catalog, importing, originals, validate
from wardcrf.photos import tray as photo_tray

from wardcrf import eventlog, records
from wardcrf.errors import Refused, UsageError


def _events(session) -> int:
    return eventlog.count(session.store)


def test_tray_folder_default_and_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(photo_tray.TRAY_ENV, raising=False)
    assert photo_tray.tray_folder(tmp_path) == tmp_path / "tray"
    monkeypatch.setenv(photo_tray.TRAY_ENV, str(tmp_path / "camera"))
    assert photo_tray.tray_folder(tmp_path) == tmp_path / "camera"


def test_tray_lists_photo_files_newest_first_and_marks_stored(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    tray = tmp_path / "tray"
    old = ps.jpeg(tray / "old.jpg", seed=1)
    new = ps.png(tray / "new.PNG", seed=2)
    ps.write(tray / "notes.txt", b"x")
    ps.write(tray / ".hidden.jpg", ps.jpeg_bytes(3))
    (tray / "sub.jpg").mkdir()
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    importing.import_photo(s, old)
    listed = photo_tray.tray_files(s, tray)
    assert [(f.name, f.stored) for f in listed] == [("new.PNG", False), ("old.jpg", True)]
    assert listed[1].size == old.stat().st_size and listed[1].modified == 1_000_000
    assert photo_tray.tray_files(s, tmp_path / "no-such-folder") == []


def test_inspect_file_checks_like_an_import_and_stores_nothing(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    before = _events(s)
    good = importing.inspect_file(ps.jpeg(tmp_path / "page.jpg"))
    assert (good.format, good.width, good.height) == ("JPEG", 320, 240)
    assert good.preview.data[:2] == b"\xff\xd8"
    bad = ps.write(tmp_path / "bad.jpg", b"not a photo at all")
    with pytest.raises(Refused, match=r"^bad\.jpg: not an image \(not JPEG, PNG or HEIC\); nothing stored$"):
        importing.inspect_file(bad)
    with pytest.raises(UsageError, match="no such file"):
        importing.inspect_file(tmp_path / "missing.jpg")
    with pytest.raises(Refused, match="larger than the photo size limit"):
        importing.inspect_file(tmp_path / "page.jpg", limits=validate.PhotoLimits(max_bytes=100))
    assert _events(s) == before and catalog.list_photos(s) == []


def test_event_photos_of_a_record_and_its_amendment(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    a = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg", seed=1))
    b = importing.import_photo(s, ps.jpeg(tmp_path / "b.jpg", seed=2))
    rec = records.submit(s, "consent", {"signed_form": [a.ref]}, subject="participant:WUH01-001")
    amended = records.amend(s, rec.id, {"signed_form": [b.ref]}, reason="wrong page photographed")
    auditor = session_for("auditor")
    for event_id in (rec.id, amended.id):
        listed = photo_audit.event_photos(auditor, event_id)
        assert [(p.sha256, p.current, p.status) for p in listed] == [
            (b.sha256, True, "intact"),
            (a.sha256, False, "intact"),
        ]
        assert listed[0].field == "signed_form" and listed[0].size == b.size


def test_event_photos_name_missing_and_mismatch(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    a = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg", seed=1))
    b = importing.import_photo(s, ps.jpeg(tmp_path / "b.jpg", seed=2))
    rec = records.submit(s, "consent", {"signed_form": [a.ref, b.ref]}, subject="participant:WUH01-001")
    _tamper(s, a.sha256)
    conn = _raw(s)
    try:
        conn.execute("DROP TRIGGER photo_blobs_no_delete")
        conn.execute("DELETE FROM photo_blobs WHERE sha256 = ?", (b.sha256,))
    finally:
        conn.close()
    status = {p.sha256: (p.status, p.problem) for p in photo_audit.event_photos(session_for("auditor"), rec.id)}
    assert status[a.sha256] == (
        "MISMATCH",
        f"photo sha256:{a.sha256}: stored bytes do not match their hash (altered)",
    )
    assert status[b.sha256][0] == "MISSING"
    assert originals.hash_status(s.store, a.ref) == ("MISMATCH", status[a.sha256][1])


def test_event_photos_of_other_events_use_the_references_in_their_body(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    a = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    (imported,) = photo_audit.event_photos(session_for("auditor"), a.imported_event)
    assert (imported.sha256, imported.field, imported.name) == (a.sha256, None, "a.jpg")
    plain = records.submit(s, "consent", {"note": "no photo"}, subject="participant:WUH01-002")
    assert photo_audit.event_photos(session_for("auditor"), plain.id) == []
    with pytest.raises(Refused, match="unknown event nope"):
        photo_audit.event_photos(session_for("auditor"), "nope")
