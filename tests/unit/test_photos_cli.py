"""`wardcrf photo ...`: exit codes, one-line messages, JSON output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import photo_samples as ps
import sqlcipher3
from insider import raw_key
from wardcrf.photos import importing

from wardcrf import records


def test_import_files_and_folder_reports_and_exits_1_on_a_bad_file(cli, tmp_path: Path) -> None:
    card = tmp_path / "card"
    ps.jpeg(card / "IMG_0001.JPG", seed=1)
    ps.write(card / "IMG_0002.JPG", b"garbage, not a jpeg")
    ps.png(card / "IMG_0003.PNG", seed=3)
    r = cli("photo", "import", str(card), user="clinician")
    assert r.code == 1
    assert "failed: IMG_0002.JPG: not an image" in r.err
    assert "2 imported, 0 already stored (reused), 1 failed" in r.out
    assert r.err.strip().splitlines()[-1].startswith("wardcrf: error: 1 of 3 file(s) not imported")
    # the good ones landed in the tray
    listed = cli("photo", "list", "--tray", "--json", user="auditor")
    assert listed.code == 0 and len(json.loads(listed.out)) == 2


def test_import_ok_then_duplicate_says_reused(cli, tmp_path: Path) -> None:
    path = ps.jpeg(tmp_path / "a.jpg")
    r = cli("photo", "import", str(path), user="clinician")
    assert r.code == 0, r.err
    assert "1 imported" in r.out
    again = cli("photo", "import", str(path), "--json", user="clinician")
    assert again.code == 0
    out = json.loads(again.out)
    assert out["reused"] == 1 and out["files"][0]["photo"]["duplicate"] is True


def test_import_limits_as_options(cli, tmp_path: Path) -> None:
    path = ps.jpeg(tmp_path / "a.jpg")
    r = cli("photo", "import", str(path), "--max-megapixels", "0.01", user="clinician")
    assert r.code == 1 and "decompression bomb guard; limit 0.01 megapixels" in r.err
    r = cli("photo", "import", str(path), "--max-mb", "0", user="clinician")
    assert r.code == 2 and "--max-mb must be greater than zero" in r.err


def test_import_as_auditor_is_refused(cli, tmp_path: Path) -> None:
    r = cli("photo", "import", str(ps.jpeg(tmp_path / "a.jpg")), user="auditor")
    assert r.code == 1 and "role auditor may not import photos" in r.err
    assert "Traceback" not in r.output


def test_export_writes_original_and_refuses_unknown(cli, tmp_path: Path) -> None:
    path = ps.jpeg(tmp_path / "a.jpg", ex=ps.exif(gps=True))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cli("photo", "import", str(path), user="clinician").code == 0
    out = tmp_path / "exported.jpg"
    r = cli("photo", "export", sha, "--out", str(out), user="auditor")
    assert r.code == 0, r.err
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    assert "GPS" in r.err  # told, not silently
    r = cli("photo", "export", "sha256:" + "0" * 64, "--out", str(tmp_path / "x.jpg"), user="auditor")
    assert r.code == 1 and r.err.count("\n") == 1 and "unknown photo" in r.err
    r = cli("photo", "export", "not-a-hash", "--out", str(tmp_path / "x.jpg"), user="auditor")
    assert r.code == 2 and "not understood" in r.err


def test_show_renders_half_blocks(cli, tmp_path: Path) -> None:
    path = ps.jpeg(tmp_path / "a.jpg", ex=ps.exif())
    assert cli("photo", "import", str(path), user="clinician").code == 0
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    r = cli("photo", "show", sha[:12], "--width", "40", "--rows", "10", user="auditor")
    assert r.code == 0, r.err
    assert "hash checked" in r.out and "Apple iPhone 11" in r.out
    assert r.out.count("▀") >= 40 * 5


def test_verify_and_audit_verify_catch_tampering(cli, site, session_for, tmp_path: Path) -> None:
    path = ps.jpeg(tmp_path / "consent.jpg")
    s = session_for("clinician")
    info = importing.import_photo(s, path)
    rec = records.submit(s, "consent", {"signed_form": [info.ref]}, subject="participant:WUH01-001").id
    ok = cli("photo", "verify", user="auditor")
    assert ok.code == 0 and "ok photo evidence: 3 checked" in ok.out
    assert cli("audit", "verify", user="auditor").code == 0
    # tamper with the stored original through the raw key, triggers dropped
    conn = sqlcipher3.connect(str(site.db_path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{raw_key(s).hex()}'\"")
    conn.execute("DROP TRIGGER photo_blobs_no_update")
    conn.execute("UPDATE photo_blobs SET data = ? WHERE sha256 = ?", (ps.jpeg_bytes(seed=99), info.sha256))
    conn.close()
    r = cli("photo", "verify", "--json", user="auditor")
    assert r.code == 1
    assert json.loads(r.out)["problems"] == [
        f"photo sha256:{info.sha256}: stored bytes do not match their hash (altered)"
    ]
    a = cli("audit", "verify", user="auditor")
    assert a.code == 1 and f"photo evidence: photo sha256:{info.sha256}" in a.err
    shown = cli("photo", "show", info.sha256, user="auditor")
    assert shown.code == 1 and "altered" in shown.err and "▀" not in shown.out
    view = cli("photo", "record", rec, "--json", user="auditor")
    assert view.code == 1 and json.loads(view.out)[0]["hash_ok"] is False


def test_photo_modules_load_neither_textual_nor_pillow_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, wardcrf.cli, wardcrf.photos.render, wardcrf.features\n"
        "from wardcrf.photos import audit, capture, catalog, importing, originals, references, tray, verify, viewing\n"
        "wardcrf.features.install()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'PIL', 'pillow_heif')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
