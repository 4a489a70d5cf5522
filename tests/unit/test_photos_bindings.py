"""Records bind photos by hash: references, bindings history, capture-time warning, auditor view."""

from __future__ import annotations

from pathlib import Path

import photo_samples as ps
import pytest
from wardcrf.photos import audit as photo_audit
from wardcrf.photos import catalog, importing, originals, references
from wardcrf.photos.validate import PhotoLimits

from wardcrf import evidence, projections, records
from wardcrf.errors import Refused, UsageError


def test_resolve_path_imports_then_returns_reference(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    ref = evidence.resolve_photo(s, f"@{ps.jpeg(tmp_path / 'consent.jpg', ex=ps.exif(taken=None))}")
    assert evidence.is_reference(ref)
    assert catalog.get_info(s.store, evidence.digest_of(ref)) is not None
    assert s.warnings == []


def test_resolve_tray_id_full_hash_and_prefix(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    info = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg"))
    assert references.resolve_reference(s, info.short_id) == info.ref
    assert references.resolve_reference(s, info.ref) == info.ref
    assert references.resolve_reference(s, info.sha256.upper()) == info.ref
    assert references.resolve_reference(s, info.sha256[:8]) == info.ref


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        ("sha256:" + "0" * 64, Refused, "unknown photo sha256:0000"),
        ("abcdef0123", Refused, "no stored photo's hash starts with abcdef0123"),
        ("consent.jpg", UsageError, "not understood: give @path/to/photo.jpg, a tray id"),
        ("@", UsageError, "photo path missing after '@'"),
        ("", UsageError, "not understood"),
    ],
)
def test_resolve_refuses_unknown_with_one_line(session_for, raw, error, text) -> None:
    s = session_for("clinician")
    with pytest.raises(error) as exc:
        references.resolve_reference(s, raw)
    assert text in str(exc.value) and "\n" not in str(exc.value)


def test_resolve_bad_path_stores_nothing(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    bad = ps.write(tmp_path / "consent.jpg", b"not an image")
    with pytest.raises(Refused, match=r"consent\.jpg: not an image"):
        references.resolve_reference(s, f"@{bad}")
    assert catalog.list_photos(s) == []


def _photo_warnings(s) -> list[str]:
    return [w for w in s.warnings if w.startswith("photo ")]  # not the fake clock's warnings


def _consent(s, ref: str) -> str:
    return records.submit(
        s, "consent", {"signed_form": [ref], "consented": True}, subject="participant:WUH01-001"
    ).id


def test_binding_leaves_the_tray_and_is_projected(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    a = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg", seed=1, ex=ps.exif()))
    b = importing.import_photo(s, ps.jpeg(tmp_path / "b.jpg", seed=2))
    assert {p.sha256 for p in catalog.list_photos(s, tray=True)} == {a.sha256, b.sha256}
    rec = _consent(s, a.ref)
    assert [p.sha256 for p in catalog.list_photos(s, tray=True)] == [b.sha256]
    (view,) = photo_audit.record_photos(s, rec)
    assert (view.field, view.sha256, view.current, view.bound_by, view.hash_ok) == (
        "signed_form",
        a.sha256,
        True,
        "clinician",
        True,
    )
    assert view.bound_event == rec and view.captured_at == "2020-03-16T09:12:00"


def test_swapping_a_photo_needs_an_amendment_and_keeps_the_old_one(session_for, tmp_path: Path) -> None:
    s = session_for("clinician")
    a = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg", seed=1))
    b = importing.import_photo(s, ps.jpeg(tmp_path / "b.jpg", seed=2))
    rec = _consent(s, a.ref)
    with pytest.raises(UsageError, match="needs a reason"):
        records.amend(s, rec, {"signed_form": [b.ref]}, reason=" ")
    inv = session_for("investigator")
    amendment = records.amend(inv, rec, {"signed_form": [b.ref]}, reason="first photo was blurred").id
    views = photo_audit.record_photos(s, rec)
    assert [(v.sha256, v.current) for v in views] == [(b.sha256, True), (a.sha256, False)]
    old = views[1]
    assert (old.unbound_event, old.unbound_by) == (amendment, "investigator")
    assert views[0].bound_by == "investigator" and views[0].bound_event == amendment
    # the old photo stays retrievable, hash checked
    assert originals.read_original(s.store, a.sha256) == (tmp_path / "a.jpg").read_bytes()
    # and the projections replay identically from the log
    n, diffs = projections.check(s.store)
    assert diffs == [] and n > 0


def test_capture_time_far_from_record_time_warns_but_does_not_block(
    session_for, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2020-03-18T02:00:00Z")
    s = session_for("clinician")
    # taken 2020-03-16 09:12 +08:00 = 01:12Z, record 2020-03-18 02:00Z: 48.8 h apart
    path = ps.jpeg(tmp_path / "old.jpg", ex=ps.exif(offset="+08:00"))
    ref = references.resolve_reference(s, f"@{path}")
    (warning,) = _photo_warnings(s)
    assert "48.8 h from the record's time" in warning
    rec = _consent(s, ref)  # not blocked
    (view,) = photo_audit.record_photos(s, rec)
    assert view.capture_warning and "48.8 h" in view.capture_warning


def test_capture_time_within_span_does_not_warn(session_for, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2020-03-16T03:00:00Z")
    s = session_for("clinician")
    path = ps.jpeg(tmp_path / "fresh.jpg", ex=ps.exif())  # no offset: the ward's zone (UTC+8)
    rec = _consent(s, references.resolve_reference(s, f"@{path}"))
    assert _photo_warnings(s) == []
    assert photo_audit.record_photos(s, rec)[0].capture_warning is None
    # a tighter configured span flags the same photo (1.8 h apart)
    tight = PhotoLimits(capture_span=__import__("datetime").timedelta(hours=1))
    assert photo_audit.record_photos(s, rec, limits=tight)[0].capture_warning


def test_record_photos_refuses_unknown_record(session_for) -> None:
    with pytest.raises(Refused, match="unknown record NOPE-1"):
        photo_audit.record_photos(session_for("auditor"), "NOPE-1")


def test_referenced_photos_names_what_a_bundle_must_carry(session_for, tmp_path: Path) -> None:
    from wardcrf import eventlog

    s = session_for("clinician")
    a = importing.import_photo(s, ps.jpeg(tmp_path / "a.jpg", seed=1))
    b = importing.import_photo(s, ps.jpeg(tmp_path / "b.jpg", seed=2))
    rec = _consent(s, a.ref)
    am = records.amend(s, rec, {"signed_form": [b.ref]}, reason="wrong page")
    imported = eventlog.get(s.store, a.imported_event)
    assert imported is not None and references.referenced_photos(imported) == {a.sha256}
    got = eventlog.get(s.store, rec)
    assert got is not None and references.referenced_photos(got) == {a.sha256}
    assert references.referenced_photos(am) == {a.sha256, b.sha256}
    assert originals.bundle_member(s.store, a.sha256) == f"photos/{a.sha256}.jpg"
