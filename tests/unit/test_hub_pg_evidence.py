"""Photos, logger files and the cold chain at a PostgreSQL hub (issue 19), and the same at a SQLCipher hub.

A MEXCOVID ward's consent carries a photo of the signed page (its protocol
requires one): the bundle applies at a PostgreSQL hub as at a SQLCipher one,
the photo's row in the database and its bytes left in the kept bundle,
re-hashed on every read. Real ward bundles through `hub.import_files`, on
both engines (`pair`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from synckit import PASSWORD, open_
from test_hub_pg_hub import _ledger, _make_hub, pair, pg_server  # noqa: F401  (fixtures)
from test_sync_cli import run

from wardcrf.site import Site


def _png(seed: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (64, 48), (seed * 40 % 256, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _consent_with_photo(w: Site, root: Path, *, tag: str = "c") -> tuple[list[Path], str, str]:
    """A MEXCOVID consent as a ward's clinician enters it (`workflow.service.submit`: validated, the signed
    page photographed, the clinician and two witnessing doctors signing): (bundles, the photo's sha256,
    the consent's event id)."""
    from test_sync_roundtrip import export
    from wardcrf.photos.store import sha256_hex

    from wardcrf import users
    from wardcrf.workflow import service

    s = open_(w)
    try:
        for name, full, role in (("clin", "Cathy Clinician", "clinician"), ("investigator", "Ivan Investigator",
                                 "investigator"), ("clinician2", "Chen Clinician", "clinician")):  # fmt: skip
            users.add_user(s, name, full, role, PASSWORD)
    finally:
        s.close()
    page = root / f"{tag}-signed-page.png"
    page.write_bytes(_png(3))
    c = open_(w, "clin")
    try:
        done = service.submit(
            c,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2026-12-06T08:30:00+08:00",
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": f"@{page}",
            },
            password_for=lambda _user: PASSWORD,
        )
    finally:
        c.close()
    return export(w, root / tag), sha256_hex(page.read_bytes()), done.id


def _photo_rows(store) -> dict[str, list[dict]]:
    return {
        "photos": store.rows("SELECT * FROM photos ORDER BY sha256"),
        "photo_bindings": store.rows(
            "SELECT record_event, field, sha256, bound_event, bound_by, bound_at, unbound_event FROM photo_bindings"
            " ORDER BY record_event, field, sha256"
        ),
    }


def test_a_mexcovid_consent_with_its_photo_applies_once_at_either_hub(pair, tmp_path, monkeypatch):  # noqa: F811
    """The consent's bundle applies (no longer refused at PostgreSQL), once; a replay is "already"; the
    photo's metadata and binding are the ward's own rows; its original is read from the kept bundle,
    hash-checked, by the `photo` commands and `audit verify`; its bytes are never in the database."""
    from wardcrf.photos import originals
    from wardcrf.sync import bundle, hub

    engine, w, h = pair
    files, sha, consent = _consent_with_photo(w, tmp_path)
    ws = open_(w)
    try:
        ward_rows = _photo_rows(ws.store)
    finally:
        ws.close()
    assert ward_rows["photos"] and ward_rows["photo_bindings"][0]["sha256"] == sha
    with _ledger(h) as (s, store):
        items = hub.import_files(s, files)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"] * len(files), [
            i.refused for i in items
        ]
        assert [i.result.outcome.status for i in hub.import_files(s, files) if i.result] == ["already"] * len(
            files
        )
        assert _photo_rows(store) == ward_rows  # the same projection rows as the ward's, on both engines
        (loc,) = store.rows("SELECT sha256, size, bundle, member, device, bundle_seq FROM photo_archive")
        assert (loc["sha256"], loc["member"], loc["bundle"].startswith("applied/")) == (
            sha,
            f"photos/{sha}.png",
            True,
        )
        assert store.scalar("SELECT count(*) FROM participants WHERE consent_event = ?", (consent,)) == 1
        with hub.photo_store(s) as rows:
            data = originals.read_original(rows, sha, keys=s.store)
        assert bundle.sha256(data) == sha and len(data) == loc["size"]
        if engine == "postgresql":
            # The rows are in the database, nothing in the hub's file; no table of the database holds bytes.
            assert s.store.scalar("SELECT count(*) FROM photo_archive") == 0
            assert s.store.scalar("SELECT count(*) FROM photos") == 0
            assert (
                store.scalar(
                    "SELECT count(*) FROM information_schema.columns WHERE table_name LIKE 'photo%'"
                    " AND data_type = 'bytea'"
                )
                == 0
            )
    out = tmp_path / "out"
    out.mkdir()
    code, text, err = run(
        "photo", "export", sha, "--out", str(out), "-d", str(h.data_dir), monkeypatch=monkeypatch
    )
    assert code == 0, (text, err)
    assert bundle.sha256((out / f"{sha}.png").read_bytes()) == sha
    code, text, err = run("photo", "info", sha[:12], "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(text)["hash_ok"] is True, (text, err)
    code, text, err = run("photo", "verify", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(text) == {"ok": True, "checked": 3, "problems": []}, (text, err)
    code, text, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, (text, err)
    if engine == "postgresql":
        assert "photo evidence in PostgreSQL" in text


def _tamper_kept_bundle(h: Site, sha: str) -> Path:
    """Rewrite the kept bundle holding `sha` as someone holding the hub's public age recipient could: the
    archive decrypted, one byte of the photo flipped, encrypted again to the hub (so it still opens)."""
    import pyrage
    from wardcrf.sync import hub

    from wardcrf import devicekeys

    with _ledger(h) as (s, _store):
        with hub.photo_store(s) as rows:
            loc = rows.rows("SELECT bundle, data_offset FROM photo_archive WHERE sha256 = ?", (sha,))[0]
        identity = pyrage.x25519.Identity.from_str(devicekeys.load(s.store, s.ctx.device).age_identity)
    path = h.data_dir / "sync" / loc["bundle"]
    plain = bytearray(pyrage.decrypt(path.read_bytes(), [identity]))
    plain[loc["data_offset"] + 100] ^= 0x01
    path.write_bytes(pyrage.encrypt(bytes(plain), [identity.to_public()]))
    return path


def test_a_photo_altered_in_its_kept_bundle_is_refused_on_read_at_either_hub(pair, tmp_path, monkeypatch):  # noqa: F811
    """The kept bundle rewritten with one bit of the photo changed (and encrypted again, so it opens): every
    read refuses it as altered, `photo verify` and `audit verify` fail naming it; the bundle gone: missing.
    The same words on both engines."""
    from wardcrf.photos import originals
    from wardcrf.sync import hub

    from wardcrf.errors import VerificationFailed

    _engine, w, h = pair
    files, sha, _consent = _consent_with_photo(w, tmp_path)
    with _ledger(h) as (s, _store):
        assert all(i.result and i.result.outcome.status == "applied" for i in hub.import_files(s, files))
    path = _tamper_kept_bundle(h, sha)
    with _ledger(h) as (s, _store), hub.photo_store(s) as rows:
        with pytest.raises(
            VerificationFailed, match=f"photo sha256:{sha}: stored bytes do not match their hash"
        ):
            originals.read_original(rows, sha, keys=s.store)
        assert originals.hash_status(rows, sha, keys=s.store)[0] == "MISMATCH"
    code, text, err = run("photo", "export", sha, "--out", str(tmp_path / "x.png"), "-d", str(h.data_dir),
                          monkeypatch=monkeypatch)  # fmt: skip
    assert code == 1 and "altered" in err and err.count("\n") == 1 and not (tmp_path / "x.png").exists(), err
    code, text, err = run("photo", "verify", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    problems = json.loads(text)["problems"]
    assert code == 1 and problems == [
        f"photo sha256:{sha}: the bytes in {path.parent.name}/{path.name} do not match their hash (altered)"
    ], (text, err)
    code, text, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and sha in text + err, (text, err)
    path.unlink()
    with _ledger(h) as (s, _store), hub.photo_store(s) as rows:
        assert originals.hash_status(rows, sha, keys=s.store) == (
            "MISSING",
            f"photo sha256:{sha}: the kept bundle {path.parent.name}/{path.name} that holds it is missing",
        )


def test_a_photos_archive_row_cannot_be_changed_at_a_postgresql_hub(pg_server, tmp_path):  # noqa: F811
    """`photo_archive` is insert-only on PostgreSQL as on SQLCipher: UPDATE, DELETE and TRUNCATE refused."""
    import psycopg
    from synckit import connect, make_ward
    from test_hub_pg_hub import _Req
    from wardcrf.sync import hub, pghub

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    files, sha, _consent = _consent_with_photo(w, tmp_path)
    with _ledger(h) as (s, _store):
        assert all(i.result and i.result.outcome.status == "applied" for i in hub.import_files(s, files))
    with psycopg.connect(pghub.dsn_of(h.data_dir), autocommit=True) as conn:
        for sql in (
            "UPDATE photo_archive SET data_offset = 0",
            "DELETE FROM photo_archive",
            "TRUNCATE photo_archive",
        ):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="never changed or deleted"):
                conn.execute(sql)
        assert conn.execute("SELECT sha256 FROM photo_archive").fetchall() == [(sha,)]
