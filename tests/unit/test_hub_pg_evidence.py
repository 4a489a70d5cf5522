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
from test_hub_pg_hub import _ledger, _make_hub, pair  # noqa: F401  (fixtures)
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
        with hub.reading_store(s) as rows:
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
    code, text, err = run("photo", "list", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and [(p["sha256"], p["bound"]) for p in json.loads(text)] == [(sha, 1)], (text, err)
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
        with hub.reading_store(s) as rows:
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
    with _ledger(h) as (s, _store), hub.reading_store(s) as rows:
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
    with _ledger(h) as (s, _store), hub.reading_store(s) as rows:
        assert originals.hash_status(rows, sha, keys=s.store) == (
            "MISSING",
            f"photo sha256:{sha}: the kept bundle {path.parent.name}/{path.name} that holds it is missing",
        )


def test_a_photos_archive_row_cannot_be_changed_at_a_postgresql_hub(pg_server, tmp_path):
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


# -- the cold chain: its forms, logger files and readings (0008-cold-chain) ---------------------------

COLD_CHAIN_ROWS = {
    "cc_units": "unit_id",
    "cc_lots": "lot",
    "cc_kits": "kit_id",
    "cc_transfers": "event_id",
    "cc_custody": "event_id, kit_id",
    "cc_logger_files": "event_id",
    "cc_manual_readings": "event_id",
    "cc_excursions": "excursion_id",
    "cc_dispositions": "excursion_id, kit_id",
    "cc_thaws": "event_id",
    "cc_preparations": "event_id",
    "cc_readings": "unit_id, t",
    "cc_reading_conflicts": "unit_id, t, sha256",
}


def _cold_chain(store) -> dict[str, list[dict]]:
    """Every cold-chain projection and index row, and the logger files (their bytes hashed; when the hub
    stored them is its own), in one order on both engines."""
    import hashlib

    rows = {t: store.rows(f"SELECT * FROM {t} ORDER BY {key}") for t, key in COLD_CHAIN_ROWS.items()}
    rows["cc_evidence"] = [
        {
            "sha256": r["sha256"],
            "name": r["name"],
            "size": r["size"],
            "hashed": hashlib.sha256(bytes(r["data"])).hexdigest(),
        }
        for r in store.rows("SELECT sha256, name, size, data FROM cc_evidence ORDER BY sha256")
    ]
    return rows


def _held(store) -> list[tuple[str, str]]:
    """The kits an excursion holds (quarantined until a disposition), read from `store`'s projections."""
    from wardcrf.coldchain import custody

    return custody.quarantined_kits(store)


def _excursions(session, store=None) -> list[dict]:
    """`coldchain excursions`: each excursion with the kits it holds, their lots and dispositions."""
    from wardcrf.coldchain import reports

    return [dict(x) for x in reports.excursions(session, store)]


def _ward_cold_chain(
    w: Site, root: Path
) -> tuple[list[list[Path]], list[dict], list[list], list[list[dict]]]:
    """A ward's pharmacy, in two exports: a shipment received (arrival checks, transit logger, signed sheet
    photographed), stored, the freezer's logger file imported with a 15-minute excursion that quarantines
    a kit, kits handed to the bedside and thawed; then the excursion's disposition (release) and a manual
    reading out of range (a second excursion). Returns the bundles per export, the ward's rows after each,
    the kits held after each and its excursions listed after each."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from test_sync_roundtrip import export

    from wardcrf import users
    from wardcrf.coldchain import reports, scenario, services

    tz = ZoneInfo("Asia/Shanghai")
    doses = [datetime(2020, 3, 17, 9, 0, tzinfo=tz), datetime(2020, 3, 18, 9, 0, tzinfo=tz)]
    s = open_(w)
    try:
        for name, role in (
            ("pharmacist", "pharmacist"),
            ("investigator", "investigator"),
            ("clinician", "clinician"),
        ):
            users.add_user(s, name, name.title(), role, PASSWORD)
    finally:
        s.close()
    signers = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician")}
    exports, ward_rows, held, listed = [], [], [], []
    (root / "work").mkdir()
    ph = open_(w, "pharmacist")
    try:
        scenario.ready_kits(ph, signers, lot="LOT-A1", kits=["KIT-1", "KIT-2"], dose_times=doses,
                            workdir=root / "work", excursion=(doses[0] - timedelta(hours=10), 15))  # fmt: skip
        ward_rows.append(_cold_chain(ph.store))
        held.append(_held(ph.store))
        listed.append(_excursions(ph))
    finally:
        ph.close()
    exports.append(export(w, root / "cc1"))
    s = open_(w)
    try:  # as if the hub's receipt came back: the next export holds only what is new
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()
    ph = open_(w, "pharmacist")
    try:
        xid = next(x["id"] for x in reports.excursions(ph) if x["kind"] == "logger")
        services.record_disposition(
            ph, xid, decision="release", reason="15 min at -13.5 °C: within stability data"
        )
        unit = ph.store.scalar("SELECT unit_id FROM cc_units ORDER BY unit_id LIMIT 1")
        services.record_reading(ph, unit, at=(doses[1] + timedelta(hours=3)).isoformat(), temp_c=4.0)
        ward_rows.append(_cold_chain(ph.store))
        held.append(_held(ph.store))
        listed.append(_excursions(ph))
    finally:
        ph.close()
    exports.append(export(w, root / "cc2"))
    return exports, ward_rows, held, listed


def test_the_cold_chain_pushed_to_either_hub_gives_the_wards_rows_and_holds(pair, tmp_path, monkeypatch):  # noqa: F811
    """Cold-chain forms, signed photographed sheets and logger files, in two exports: at a PostgreSQL hub
    as at a SQLCipher one, every projection row, the readings index and the logger files are the ward's,
    the same kits are held by the excursion and then released; a replay changes nothing."""
    from wardcrf.sync import hub

    engine, w, h = pair
    exports, ward_rows, held, listed = _ward_cold_chain(w, tmp_path)
    assert ward_rows[0]["cc_excursions"] and ward_rows[0]["cc_readings"] and ward_rows[0]["cc_evidence"]
    assert held[0] and held[1] == []  # the ward's own: a kit held by the excursion, then released
    with _ledger(h) as (s, store):
        for files, rows, kits, views in zip(exports, ward_rows, held, listed, strict=True):
            items = hub.import_files(s, files)
            assert [i.result.outcome.status for i in items if i.result] == ["applied"] * len(files), [
                i.refused for i in items
            ]
            got = _cold_chain(store)
            for table in rows:
                assert got[table] == rows[table], table
            assert _held(store) == kits
            assert _excursions(s, store) == views  # as `coldchain excursions` lists them at the hub
        again = [i.result.outcome.status for f in exports for i in hub.import_files(s, f) if i.result]
        assert set(again) == {"already"}
        assert _cold_chain(store) == ward_rows[-1]
        if engine == "postgresql":
            assert s.store.scalar("SELECT count(*) FROM cc_evidence") == 0  # in the database, not the file
            assert s.store.scalar("SELECT count(*) FROM cc_excursions") == 0
    code, out, err = run("coldchain", "excursions", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out) == json.loads(json.dumps(listed[-1])), (out, err)
    assert {k["kit"] for x in listed[-1] for k in x["kits"]} and not any(
        x["awaiting_disposition"] for x in listed[-1]
    )


def _logger_bundle(w: Site, root: Path) -> tuple[list[Path], str]:
    """A ward's freezer (`coldchain.unit`) and one logger file imported into it: (bundles, the file's sha256)."""
    from datetime import datetime

    from test_sync_roundtrip import export

    from wardcrf import users
    from wardcrf.coldchain import evidence, samples, services

    s = open_(w)
    try:
        users.add_user(s, "pharmacist", "Pha Rmacist", "pharmacist", PASSWORD)
    finally:
        s.close()
    raw = samples.fridgetag(
        samples.series(datetime(2020, 3, 15, 8, 0), 5, [-20.0] * 30 + [-12.5] * 6 + [-20.0] * 30)
    )
    path = root / "ft.txt"
    path.write_bytes(raw)
    p = open_(w, "pharmacist")
    try:
        services.add_unit(p, "FRZ-1", name="freezer", location="ward 3")
        services.import_logger(p, path, "FRZ-1")
    finally:
        p.close()
    return export(w, root / "logger"), evidence.sha256_hex(raw)


def test_a_logger_file_that_parses_differently_at_the_hub_is_refused_whole_on_either_engine(
    pair,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """Other time-zone rules at the hub would shift the readings: the bundle is refused whole (no event, no
    logger file, no reading, no unit), in the same words on both engines, and applies once they agree."""
    from wardcrf.sync import hub

    from wardcrf.coldchain import readings

    _engine, w, h = pair
    files, digest = _logger_bundle(w, tmp_path)
    real = readings.loggers.parse

    def shifted(raw: bytes, zone: str, *, fmt: str | None = None):
        log = real(raw, zone, fmt=fmt)
        for i in range(len(log.times)):
            log.times[i] += 3600
        return log

    monkeypatch.setattr(readings.loggers, "parse", shifted)
    with _ledger(h) as (s, store):
        items = hub.import_files(s, files)
        assert items[-1].result is None, items[-1]
        assert "the file parsed here gives first" in (items[-1].refused or "")
        assert "different time-zone rules" in (items[-1].refused or "")
        for table in (
            "cc_evidence",
            "cc_readings",
            "cc_logger_files",
            "cc_units",
            "cc_excursions",
            "sync_applied",
        ):
            assert store.scalar(f"SELECT count(*) FROM {table}") == 0, table
        assert store.scalar("SELECT count(*) FROM events WHERE type = 'coldchain.logger_imported'") == 0
    monkeypatch.setattr(readings.loggers, "parse", real)
    with _ledger(h) as (s, store):
        assert [i.result.outcome.status for i in hub.import_files(s, files) if i.result] == ["applied"] * len(
            files
        )
        assert len(readings.readings_of(store, digest)) == 66
        assert store.scalar("SELECT count(*) FROM cc_evidence WHERE sha256 = ?", (digest,)) == 1


def test_a_logger_file_altered_in_the_database_is_found_on_read_and_by_audit_verify(
    pg_server,
    tmp_path,
    monkeypatch,
):
    """The logger files at a PostgreSQL hub are insert-only (UPDATE, DELETE, TRUNCATE refused); an owner who
    disables the trigger and edits one: every read refuses it as altered, `audit verify` names the file and
    the disabled trigger."""
    import psycopg
    from synckit import connect, make_ward
    from test_hub_pg_hub import _Req
    from wardcrf.sync import hub, pghub

    from wardcrf.coldchain import evidence
    from wardcrf.errors import VerificationFailed

    h = _make_hub("postgresql", tmp_path, _Req(pg_server))
    w = make_ward(tmp_path)
    connect(w, h)
    files, digest = _logger_bundle(w, tmp_path)
    with _ledger(h) as (s, _store):
        assert all(i.result and i.result.outcome.status == "applied" for i in hub.import_files(s, files))
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and "ok cold-chain logger files in PostgreSQL" in out, (out, err)
    with psycopg.connect(pghub.dsn_of(h.data_dir), autocommit=True) as owner:
        for sql in ("UPDATE cc_evidence SET name = 'x'", "DELETE FROM cc_evidence", "TRUNCATE cc_evidence"):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="never changed or deleted"):
                owner.execute(sql)
        owner.execute("ALTER TABLE cc_evidence DISABLE TRIGGER cc_evidence_no_update")
        owner.execute("UPDATE cc_evidence SET data = overlay(data placing '9' from 40 for 1)")
    with (
        _ledger(h) as (_s, store),
        pytest.raises(VerificationFailed, match=f"logger file sha256:{digest} was altered"),
    ):
        evidence.read(store, digest)
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1, (code, out, err)
    assert f"logger file sha256:{digest} was altered" in out
    assert "cc_evidence_no_update on cc_evidence is disabled" in out


@pytest.mark.parametrize("engine", ["sqlcipher", "postgresql"])
def test_an_excursion_seen_again_widens_as_sqlites_scalar_max_and_min_do(engine, request, tmp_path):
    """`_EXCURSION_SEEN_AGAIN` (CASE, both dialects) against SQLite's own scalar max/min, which the code
    used before: the same rows after each upsert, NULLs included (SQLite's max(x, NULL) is NULL)."""
    import os

    from wardcrf.coldchain.projections import _EXCURSION_SEEN_AGAIN
    from wardcrf.store import Store

    insert = (
        "INSERT INTO cc_excursions (excursion_id, scope, kind, unit_id, start_t, end_t, min_c, max_c, is_open,"
        " source_event, detail) VALUES (?, 'unit', 'logger', 'FRZ-1', 0, ?, ?, ?, 0, 'e', 'd')"
        " ON CONFLICT (excursion_id) DO UPDATE SET "
    )
    sqlite_own = "end_t = max(end_t, excluded.end_t), min_c = min(min_c, excluded.min_c), max_c = max(max_c, excluded.max_c)"
    steps = [("a", 10, -12.0, -11.0), ("a", 5, -13.5, -10.0), ("a", 20, -11.0, -12.0),
             ("b", 7, None, -9.0), ("b", 9, -10.0, None), ("c", 3, -10.0, -9.0), ("c", 3, -10.0, -9.0)]  # fmt: skip
    want = Store(tmp_path / "want.db", os.urandom(32))
    if engine == "sqlcipher":
        got = Store(tmp_path / "got.db", os.urandom(32))
    else:
        from wardcrf.sync.pgstore import PgStore

        got = PgStore(request.getfixturevalue("pg_server").new_database())
    try:
        for store in (want, got):
            store.migrate()
        for xid, end, low, high in steps:
            want.execute(insert + sqlite_own, (xid, end, low, high))
            got.execute(insert + _EXCURSION_SEEN_AGAIN, (xid, end, low, high))
        query = "SELECT excursion_id, end_t, min_c, max_c FROM cc_excursions ORDER BY excursion_id"
        assert (
            got.rows(query)
            == want.rows(query)
            == [
                {"excursion_id": "a", "end_t": 20, "min_c": -13.5, "max_c": -10.0},
                {"excursion_id": "b", "end_t": 9, "min_c": None, "max_c": None},
                {"excursion_id": "c", "end_t": 3, "min_c": -10.0, "max_c": -9.0},
            ]
        )
    finally:
        want.close()
        got.close()


def test_two_laptops_disagreeing_logger_files_are_listed_alike_at_either_hub(pair, tmp_path):  # noqa: F811
    """Two laptops' files for one freezer disagree on 30 readings: the first file's values are indexed, the
    other's listed (`hub conflicts`, `hub status`), read where the readings are, on both engines."""
    from synckit import connect, make_ward
    from test_sync_readings import _laptop_with_file
    from test_sync_roundtrip import export
    from wardcrf.sync import hub

    _engine, a, h = pair
    b = make_ward(tmp_path, "lap2")
    connect(b, h)
    da = _laptop_with_file(a, tmp_path, [-20.0] * 60)
    db = _laptop_with_file(b, tmp_path, [-20.0] * 30 + [-18.0] * 30)
    with _ledger(h) as (s, store):
        for w, usb in ((a, "usb-a"), (b, "usb-b")):
            items = hub.import_files(s, export(w, tmp_path / usb))
            assert all(i.result and i.result.outcome.status == "applied" for i in items), [
                i.refused for i in items
            ]
        assert store.scalar("SELECT count(*) FROM cc_readings WHERE sha256 = ?", (da,)) == 60
        found = hub.reading_conflicts(s)
        assert {(c["kept_temp_c"], c["kept_sha256"], c["temp_c"], c["sha256"]) for c in found} == {
            (-20.0, da, -18.0, db)
        }
        assert len(found) == 30 and hub.status(s)["reading_conflicts"] == 30


_HOSTILE = (
    'O\'Brien "freezer"; DROP TABLE cc_units; -- ? ?1 %s %(x)s $1 \\ \r\n\t 冰箱 e\u0301 \u00a0 ثلاجة 𝄞 '
)
HOSTILE = _HOSTILE + "x" * (500 - len(_HOSTILE))  # a unit's name: at most 500 characters


@pytest.mark.parametrize(
    ("product_code", "words"),
    [("\x1b[2J", "product_code"), ("P" * 201, "product_code")],
    ids=["control-characters", "oversized"],
)
def test_a_forged_cold_chain_record_is_refused_whole_at_either_hub(pair, tmp_path, product_code, words):  # noqa: F811
    """A lot record a ward's own checks would refuse (control characters, 201 characters where a product
    code goes), forged into a signed bundle: refused whole at the hub, naming the field, nothing kept,
    alike on both engines."""
    from forge import append_raw
    from test_sync_roundtrip import export
    from wardcrf.sync import hub

    from wardcrf import users

    _engine, w, h = pair
    s = open_(w)
    try:
        users.add_user(s, "pharmacist", "Pat Pharm", "pharmacist", PASSWORD)
    finally:
        s.close()
    append_raw(w, "record.submitted", {"form": "coldchain.lot", "data": {
        "lot": "BAD", "kits": ["K9"], "product_code": product_code, "product": "vials", "expiry": "2021-03-31",
        "release_ref": "QP", "quantity": 1}}, subject="lot:BAD", user="pharmacist", role="pharmacist")  # fmt: skip
    with _ledger(h) as (s, store):
        items = hub.import_files(s, export(w, tmp_path / "forged"))
        assert items[-1].result is None and words in (items[-1].refused or ""), items[-1]
        assert "\x1b" not in (items[-1].refused or "")
        for table in ("cc_lots", "cc_kits", "records", "sync_applied"):
            assert store.scalar(f"SELECT count(*) FROM {table}") == 0, table


def test_hostile_cold_chain_text_round_trips_alike_at_either_hub(pair, tmp_path):  # noqa: F811
    """Quotes, SQL, placeholders of both engines' drivers, line breaks, scripts, combining and astral
    characters, at the longest a unit's name may be: kept byte for byte on both engines; one character
    longer, forged past the ward's checks: refused whole, alike."""
    from forge import append_raw
    from test_sync_roundtrip import export
    from wardcrf.sync import hub

    from wardcrf import users

    _engine, w, h = pair
    s = open_(w)
    try:
        users.add_user(s, "ph", "Pat Pharmacist", "pharmacist", PASSWORD)
    finally:
        s.close()
    c = open_(w, "ph")
    try:
        c.append(type="record.submitted", subject="unit:FRZ-9", body={"form": "coldchain.unit", "data": {
            "unit_id": "FRZ-9", "name": HOSTILE, "location": HOSTILE[::-1], "low_c": -90, "high_c": -60,
            "zone": "Asia/Shanghai", "interval_s": 300}})  # fmt: skip
    finally:
        c.close()
    with _ledger(h) as (s, store):
        items = hub.import_files(s, export(w, tmp_path / "hostile"))
        assert all(i.result is not None for i in items), [i.refused for i in items]
        assert store.rows("SELECT name, location FROM cc_units WHERE unit_id = 'FRZ-9'") == [
            {"name": HOSTILE, "location": HOSTILE[::-1]}
        ]
    append_raw(w, "record.submitted", {"form": "coldchain.unit", "data": {
        "unit_id": "FRZ-8", "name": HOSTILE + "x", "location": "pharmacy", "low_c": -90, "high_c": -60,
        "zone": "Asia/Shanghai", "interval_s": 300}}, subject="unit:FRZ-8", user="ph", role="pharmacist")  # fmt: skip
    with _ledger(h) as (s, store):
        items = hub.import_files(s, export(w, tmp_path / "oversized"))
        refused = [i.refused for i in items if i.result is None]
        assert len(refused) == 1 and "name" in (refused[0] or ""), [i.refused for i in items]
        assert store.rows("SELECT unit_id FROM cc_units") == [{"unit_id": "FRZ-9"}]


def test_a_photo_whose_bytes_are_damaged_is_refused_whole_at_either_hub(pair, tmp_path):  # noqa: F811
    """A PNG whose chunk checksum fails (a byte of its pixels changed before it was hashed and signed, which
    the ward's own import would have refused), forged into a ward's bundle: the hub's structure check refuses
    the bundle whole, naming the photo; no photo row, no archive row, no event, on both engines."""
    from forge import append_raw
    from test_sync_roundtrip import export
    from wardcrf.photos.store import sha256_hex
    from wardcrf.sync import hub

    from wardcrf import users

    _engine, w, h = pair
    png = bytearray(_png(7))
    png[png.index(b"IDAT") + 8] ^= 0xFF  # inside the image data: the chunk's CRC no longer matches
    data = bytes(png)
    sha = sha256_hex(data)
    s = open_(w)
    try:
        users.add_user(s, "clin", "Cathy Clinician", "clinician", PASSWORD)
        s.store.execute("INSERT INTO photo_blobs (sha256, size, data) VALUES (?,?,?)", (sha, len(data), data))
    finally:
        s.close()
    append_raw(w, "photo.imported", {"sha256": sha, "size": len(data), "format": "PNG", "width": 64, "height": 48,
               "captured_at": None, "camera": None, "has_gps": False, "name": "page.png"},
               subject=f"photo:{sha}", user="clin", role="clinician")  # fmt: skip
    with _ledger(h) as (s, store):
        items = hub.import_files(s, export(w, tmp_path / "damaged"))
        refused = [i.refused or "" for i in items if i.result is None]
        assert len(refused) == 1 and f"photo sha256:{sha}" in refused[0], [i.refused for i in items]
        for table in ("photos", "photo_archive", "sync_applied"):
            assert store.scalar(f"SELECT count(*) FROM {table}") == 0, table
        assert store.scalar("SELECT count(*) FROM events WHERE type = 'photo.imported'") == 0
