"""At the hub a photo stays in the signed bundle that brought it: read, verified, backed up, restored.

At a SQLCipher hub and at a PostgreSQL one (`hub_engines`): the photos' rows are read where the hub keeps
the wards' data (`hub_engines.ledger`: its file, or its database), the bytes from the kept bundle opened with
the identity in the hub's file. A backup is the hub's file and its kept bundles on both (at a PostgreSQL hub
the database has its own, `pg_dump`: docs/hub-postgres.md); a restored SQLCipher hub reads its photos from its
restored file and bundles, a PostgreSQL hub's from its database.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import PASSWORD, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.photos import importing
from wardcrf.photos import originals as photo_originals
from wardcrf.photos import verify as photo_verify

from wardcrf import audit, backup, records, users
from wardcrf.errors import Refused, VerificationFailed
from wardcrf.evidence import reference


def _png(seed: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (64, 48), (seed * 40 % 256, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def hub_with_photos(tmp_path: Path, hub_engine: str):
    """A hub that applied one ward bundle carrying two consent photos; (hub site, shas, originals)."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    a = open_(w)
    users.add_user(a, "clinician", "Cli Nician", "clinician", PASSWORD)
    a.close()
    c = open_(w, "clinician")
    originals = {}
    try:
        for i in range(2):
            data = _png(i)
            originals[importing.import_bytes(c, f"consent{i}.png", data).sha256] = data
        records.submit(
            c, "consent", {"photo": [reference(s) for s in originals]}, subject="participant:WUH01-001"
        )
    finally:
        c.close()
    files = export(w, tmp_path / "usb")
    assert hub_import(h, files[0]).outcome.status == "applied"
    return h, originals


def _kept(h) -> Path:
    (f,) = sorted((h.data_dir / "sync" / "applied").glob("*.tar.age"))
    return f


def test_hub_reads_photos_from_the_kept_bundle_without_a_second_copy(hub_with_photos) -> None:
    h, originals = hub_with_photos
    with ledger(h) as (hs, held):
        assert hs.store.scalar("SELECT count(*) FROM photo_blobs") == 0
        if held.has_table("photo_blobs"):
            assert held.scalar("SELECT count(*) FROM photo_blobs") == 0
        rows = held.rows("SELECT sha256, bundle, member FROM photo_archive ORDER BY sha256")
        assert [r["sha256"] for r in rows] == sorted(originals)
        assert {r["bundle"] for r in rows} == {f"applied/{_kept(h).name}"}
        for sha, data in originals.items():
            assert photo_originals.has_original(held, sha)
            assert photo_originals.read_original(held, sha, keys=hs.store) == data
        assert photo_verify.verify(hs, held).ok
        assert audit.verify(hs).ok
        # Insert-only, like the photos kept in the database.
        with pytest.raises(Exception, match="never changed"):
            held.execute("UPDATE photo_archive SET data_offset = 0")
    with ledger(h) as (_hs, held), pytest.raises(Exception, match=r"never (changed or )?deleted"):
        held.execute("DELETE FROM photo_archive")


def test_an_altered_kept_bundle_is_caught_on_read_and_by_verify(hub_with_photos) -> None:
    h, originals = hub_with_photos
    kept = _kept(h)
    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 0x01
    kept.write_bytes(bytes(data))
    sha = sorted(originals)[0]
    with ledger(h) as (hs, held):
        with pytest.raises(VerificationFailed, match=rf"photo sha256:{sha}: .*cannot be decrypted \(altered"):
            photo_originals.read_original(held, sha, keys=hs.store)
        result = photo_verify.verify(hs, held)
        assert not result.ok
        assert any("cannot be decrypted" in p for p in result.problems)


def test_a_missing_kept_bundle_is_named_and_blocks_a_backup_that_would_lose_photos(
    hub_with_photos, tmp_path: Path
) -> None:
    h, originals = hub_with_photos
    kept = _kept(h)
    aside = tmp_path / "aside.tar.age"
    kept.rename(aside)
    sha = sorted(originals)[0]
    with ledger(h) as (hs, held):
        with pytest.raises(VerificationFailed, match=rf"photo sha256:{sha}: the kept bundle .* is missing"):
            photo_originals.read_original(held, sha, keys=hs.store)
        (tmp_path / "stick").mkdir()
        with pytest.raises(
            VerificationFailed, match=r"holds photo originals, is missing .* no backup written"
        ):
            backup.backup(hs, tmp_path / "stick")
        assert list((tmp_path / "stick").iterdir()) == []
    aside.rename(kept)  # put back: readable again
    with ledger(h) as (hs, held):
        assert photo_originals.read_original(held, sha, keys=hs.store) == originals[sha]


def test_hub_backup_carries_kept_bundles_and_restores_them_elsewhere(hub_with_photos, tmp_path: Path) -> None:
    import shutil
    import tarfile

    from wardcrf.sync import hub, pghub

    from wardcrf.site import Site

    h, originals = hub_with_photos
    stick = tmp_path / "stick"
    stick.mkdir()
    hs = open_(h)
    try:
        made = backup.backup(hs, stick)
    finally:
        hs.close()
    with tarfile.open(made.path) as tar:
        names = tar.getnames()
    assert f"sync/applied/{_kept(h).name}" in names
    assert f"sync/applied/{_kept(h).name}.minisig" in names
    # Restored into another folder (a new hub machine): photos read from the restored bundles.
    res = backup.restore(made.path, tmp_path / "newhub", username="admin", password=PASSWORD)
    if (h.data_dir / pghub.DATABASE_FILE).is_file():
        # A PostgreSQL hub's database is backed up beside (pg_dump); the new machine's hub is pointed at
        # it as the old one was (the backup carries the hub's file and kept bundles only).
        shutil.copy2(h.data_dir / pghub.DATABASE_FILE, res.data_dir / pghub.DATABASE_FILE)
    with ledger(Site.open(res.data_dir)) as (s, held):
        for sha, data in originals.items():
            assert photo_originals.read_original(held, sha, keys=s.store) == data
        assert photo_verify.verify(s, held).ok
        # Ledger rows recorded the old folder; the kept file is found in the new one.
        (recorded,) = [r[0] for r in held.execute("SELECT file FROM sync_applied")]
        assert not recorded.startswith(str(res.data_dir))
        assert hub.kept_file(s, recorded) == res.data_dir / "sync" / "applied" / Path(recorded).name
        assert hub.kept_file(s, recorded).is_file()


def test_a_backup_with_an_unexpected_member_is_refused(tmp_path: Path, hub_with_photos) -> None:
    import tarfile

    h, _ = hub_with_photos
    stick = tmp_path / "stick"
    stick.mkdir()
    hs = open_(h)
    try:
        made = backup.backup(hs, stick)
    finally:
        hs.close()
    bad = tmp_path / "bad.wardbackup"
    with tarfile.open(made.path) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
        extra = tarfile.TarInfo("sync/applied/../../evil.tar.age")
        extra.size = 1
        dst.addfile(extra, io.BytesIO(b"x"))
    with pytest.raises(Refused, match="is not a wardcrf backup"):
        backup.restore(bad, tmp_path / "x", username="admin", password=PASSWORD)
    assert not (tmp_path / "evil.tar.age").exists()
