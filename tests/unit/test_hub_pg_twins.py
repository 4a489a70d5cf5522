"""One hub, two engines (issue 19): the same ward bundles at a SQLCipher hub and at its PostgreSQL twin.

The twin is the SQLCipher hub's directory copied before any ward bundle
arrived and attached to a fresh PostgreSQL database (as `hub init --database`
attaches a new hub: schema, identity, the hub's own protocol versions). Both
hold the same keys and registry, so a ward's bundles, encrypted to the hub,
import into both; whatever the hub then produces from them — a replacement
laptop's restore, a projection check, an export — must be the same on both.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pgserver
import pytest
from synckit import PASSWORD, card_of, connect, make_hub, make_ward, open_
from test_hub_pg_hub import _ward_records
from test_sync_cli import run

from wardcrf.site import Site


def attach_twin(hub_dir: Path, to: Path, dsn: str) -> Site:
    """`hub_dir` copied to `to` and attached to the empty database `dsn`, as `hub init --database` attaches."""
    from wardcrf.sync import pghub, pgledger
    from wardcrf.sync.pgstore import PgStore

    shutil.copytree(hub_dir, to, ignore=shutil.ignore_patterns("*.lock"))
    store = PgStore(dsn)
    try:
        store.migrate()
        s = Site.open(to).unlock("admin", PASSWORD)
        try:
            with store.transaction():
                store.lock("wardcrf.hub-init")
                pgledger.copy_identity(s.store, store)
                pghub.mirror_own_events(s.store, store)
        finally:
            s.close()
    finally:
        store.close()
    (to / pghub.DATABASE_FILE).write_text(pghub.password_free(dsn) + "\n")
    return Site.open(to)


@pytest.fixture
def twins(pg_server: pgserver.Server, tmp_path: Path) -> tuple[Site, dict[str, Site]]:
    """A ward registered at a hub, and that hub on each engine: (ward, {"sqlcipher": hub, "postgresql": twin})."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    pg = attach_twin(h.data_dir, tmp_path / "hub-pg", pg_server.new_database())
    return w, {"sqlcipher": h, "postgresql": pg}


def _import(h: Site, files: list[Path]) -> None:
    from wardcrf.sync import hub

    s = open_(h)
    try:
        items = hub.import_files(s, files)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"] * len(files), [
            i.refused for i in items
        ]
    finally:
        s.close()


@contextlib.contextmanager
def _session(site: Site) -> Iterator[object]:
    s = open_(site)
    try:
        yield s
    finally:
        s.close()


def _pushed(twins, tmp_path: Path) -> tuple[Site, dict[str, Site], str]:
    """The ward's consent-to-AE records (two bundles, a correction) imported at both hubs."""
    w, hubs = twins
    files, post = _ward_records(w, tmp_path)
    for h in hubs.values():
        _import(h, files)
    return w, hubs, post


# -- sync restore: a replacement laptop ---------------------------------------------------------


def _restored_rows(data_dir: Path, old_device: str) -> dict[str, list[tuple]]:
    """What a replacement laptop got back of the dead laptop: its events and the projections they make."""
    s = Site.open(data_dir).unlock("admin", PASSWORD)
    try:
        q = {
            "events": "SELECT id, seq, hash, line FROM events WHERE device = ? ORDER BY seq",
            "records": "SELECT event_id, form, subject, data, version, last_event FROM records"
            " WHERE event_id LIKE ? || '%' ORDER BY event_id",
            "amendments": "SELECT event_id, field, old_value, new_value FROM amendments"
            " WHERE event_id LIKE ? || '%' ORDER BY event_id, field",
            "signatures": "SELECT event_id, target_event, meaning, user_id, signed_hash FROM signatures"
            " WHERE event_id LIKE ? || '%' ORDER BY event_id",
            "participants": "SELECT id, eligible, enrolled_on FROM participants WHERE ? != '' ORDER BY id",
            "doses": "SELECT participant, dose_number, kit_id, \"end\" FROM doses WHERE ? != '' ORDER BY 1, 2",
        }
        out = {k: [tuple(r) for r in s.store.execute(sql, (old_device,)).fetchall()] for k, sql in q.items()}
        assert s.ctx.device != old_device
        return out
    finally:
        s.close()


def _new_laptop(h: Site, root: Path, old_device: str):
    from wardcrf.sync import registry, restore

    res, card = restore.provision(
        root, site="WUH01", device_name="lap1b", admin="admin", password=PASSWORD, hub_card=card_of(h)
    )
    with _session(h) as hs:
        registry.register_device(hs, card, replaces=old_device)
    return res.site, card


def test_a_replacement_laptop_restores_the_same_from_a_postgresql_hub_as_from_sqlcipher(
    twins, tmp_path, monkeypatch
):
    """`hub export --restore` reads the kept bundles' ledger where it is (PostgreSQL at the twin), and the new
    laptop gets the dead laptop's events, records, amendments and signatures back identically."""
    w, hubs, _post = _pushed(twins, tmp_path)
    with _session(w) as ws:
        old_device = ws.ctx.device
    got: dict[str, dict[str, list[tuple]]] = {}
    orders = {}
    for engine, h in hubs.items():
        new, card = _new_laptop(h, tmp_path / f"new-{engine}", old_device)
        stick = tmp_path / f"stick-{engine}"
        code, out, err = run(
            "hub", "export", "--device", card.device, "--to", str(stick), "--restore", "-d", str(h.data_dir),
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 0, (out, err)
        orders[engine] = (stick / "restore" / "ORDER").read_text().split()
        code, out, err = run(
            "sync", "restore", "-d", str(new.data_dir), "--from", str(stick), monkeypatch=monkeypatch
        )
        assert code == 0, (out, err)
        assert out.count("applied") >= 2, out
        got[engine] = _restored_rows(new.data_dir, old_device)
    assert orders["postgresql"] == orders["sqlcipher"] and len(orders["sqlcipher"]) == 2
    assert got["postgresql"] == got["sqlcipher"]
    rows = got["postgresql"]
    assert len(rows["events"]) > 10 and len(rows["signatures"]) == 3 and len(rows["amendments"]) == 1
    assert rows["participants"] == [("WUH01-001", 1, "2026-12-06")]
    assert [r[1] for r in rows["records"]].count("vitals") == 2


def test_a_replacement_laptop_restores_over_http_from_a_postgresql_hub(twins, tmp_path):
    """The same over `hub serve` (its worker's pool): the restore list and each bundle come from the database."""
    from synckit import HubServer
    from wardcrf.sync import restore
    from wardcrf.sync.transport import Client

    w, hubs, _post = _pushed(twins, tmp_path)
    with _session(w) as ws:
        old_device = ws.ctx.device
    expected = None
    for engine, h in hubs.items():
        new, _card = _new_laptop(h, tmp_path / f"new-{engine}", old_device)
        server = HubServer(h.data_dir)
        try:
            with _session(new) as s:
                lines = restore.complete(s, client=Client(server.url))  # type: ignore[arg-type]
        finally:
            server.stop()
        assert sum(f"of device {old_device} applied" in line for line in lines) == 2, lines
        rows = _restored_rows(new.data_dir, old_device)
        expected = expected or rows
        assert rows == expected, engine


@pytest.mark.parametrize("engine", ["sqlcipher", "postgresql"])
def test_restore_for_an_unknown_or_retired_device_is_refused_in_one_line(
    twins, tmp_path, monkeypatch, engine
):
    """An unregistered laptop, or the dead laptop itself (retired by the replacement): refused, exit 1, one
    line, nothing written — at a PostgreSQL hub as at SQLCipher."""
    w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs[engine]
    with _session(w) as ws:
        old_device = ws.ctx.device
    _new, card = _new_laptop(h, tmp_path / "new", old_device)
    for device in ("NOSUCHDEVICE", old_device, "X" * 5000, "lap\x1b[2J"):
        stick = tmp_path / "stick"
        code, out, err = run(
            "hub", "export", "--device", device, "--to", str(stick), "--restore", "-d", str(h.data_dir),
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 1 and err.count("\n") == 1, (device[:20], code, out, err)
        assert "not an active registered device" in err and "Traceback" not in err
        assert "\x1b" not in err
        assert not (stick / "restore").exists()
    # A bundle asked for by hand (HTTP's fetch): another site's device, or a bundle never applied.
    from wardcrf.sync import hub

    from wardcrf.errors import Refused

    with _session(h) as hs:
        for source, seq in ((old_device, 99), ("NOSUCHDEVICE", 1)):
            with pytest.raises(Refused, match=f"no bundle {seq} of device"):
                hub.restore_bundle(hs, card.device, source, seq)  # type: ignore[arg-type]


def test_a_restore_written_for_another_laptop_is_refused_by_the_wrong_one(twins, tmp_path, monkeypatch):
    """The site's bundles the PostgreSQL hub re-encrypted for one replacement laptop, given to another laptop
    of the site (registered, with the hub's own bundles for it): encrypted to the first laptop's key, they
    are refused in one line (exit 1), and nothing of the dead laptop's data is restored."""
    from wardcrf.sync import registry, restore

    w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]
    with _session(w) as ws:
        old_device = ws.ctx.device
    _first, card = _new_laptop(h, tmp_path / "first", old_device)
    other, other_card = restore.provision(
        tmp_path / "other", site="WUH01", device_name="lap1c", admin="admin", password=PASSWORD,
        hub_card=card_of(h),
    )  # fmt: skip
    with _session(h) as hs:
        registry.register_device(hs, other_card)
    for device, stick, *extra in ((card.device, tmp_path / "first-stick", "--restore"),
                                  (other_card.device, tmp_path / "stick")):  # fmt: skip
        code, out, err = run(
            "hub", "export", "--device", device, "--to", str(stick), *extra, "-d", str(h.data_dir),
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 0, err
    shutil.copytree(tmp_path / "first-stick" / "restore", tmp_path / "stick" / "restore")
    code, out, err = run(
        "sync",
        "restore",
        "-d",
        str(other.site.data_dir),
        "--from",
        str(tmp_path / "stick"),
        monkeypatch=monkeypatch,
    )
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (code, out, err)
    assert "cannot decrypt: this age identity is not a recipient" in err, err
    assert _restored_rows(other.site.data_dir, old_device)["events"] == []


# -- db rebuild --check -------------------------------------------------------------------------


def _pg_admin(h: Site):
    import psycopg

    return psycopg.connect((h.data_dir / "hub-database").read_text().strip(), autocommit=True)


def _check(h: Site, monkeypatch) -> tuple[int, str, str]:
    return run("db", "rebuild", "--check", "-d", str(h.data_dir), monkeypatch=monkeypatch)


def test_db_rebuild_check_replays_the_postgresql_log_and_finds_what_differs_as_on_sqlcipher(
    twins, tmp_path, monkeypatch
):
    """`db rebuild --check` at the PostgreSQL twin replays the database's log into temporary copies of its
    projections: clean after import as at the SQLCipher hub (the hub's own protocol version, copied at
    init, included); then the same edit made to the same row on each engine is named the same way, exit 1,
    and the check writes nothing."""
    import json

    _w, hubs, post = _pushed(twins, tmp_path)
    counts = {}
    for engine, h in hubs.items():
        code, out, err = _check(h, monkeypatch)
        assert code == 0 and "Projections match the log" in out, (engine, out, err)
        counts[engine] = int(out.split("(")[1].split()[0])
    # The SQLCipher hub replays its own events and the wards'; the twin its own (file) plus the wards' (database).
    assert counts["postgresql"] == counts["sqlcipher"] > 20
    edits = [
        "UPDATE participants SET eligible = 0 WHERE id = 'WUH01-001'",
        f"UPDATE records SET version = 7 WHERE event_id = '{post}'",
        "DELETE FROM signatures WHERE meaning = 'witnessed' AND user_id = 'inv'",
        "UPDATE ward_queue SET vitals_owed = vitals_owed + 3",
    ]
    s = open_(hubs["sqlcipher"])
    try:
        for sql in edits:
            s.store.execute(sql)
    finally:
        s.close()
    with _pg_admin(hubs["postgresql"]) as admin:
        for sql in edits:
            admin.execute(sql)
        before = admin.execute("SELECT count(*), sum(version) FROM records").fetchone()
    found = {}
    for engine, h in hubs.items():
        code, out, err = run(
            "db", "rebuild", "--check", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch
        )
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (engine, code, out, err)
        found[engine] = json.loads(out)["differences"]
    where = f" in PostgreSQL ({_pg_name(hubs['postgresql'])})"
    assert [d.replace(where, "") for d in found["postgresql"]] == found["sqlcipher"]
    assert all(where in d for d in found["postgresql"])
    assert {d.split(",")[0] for d in found["sqlcipher"]} == {
        "table participants", "table records", "table signatures", "table ward_queue",
    }  # fmt: skip
    assert "table participants, row WUH01-001: column eligible is 0, the log gives 1" in found["sqlcipher"]
    with _pg_admin(hubs["postgresql"]) as admin:
        assert admin.execute("SELECT count(*), sum(version) FROM records").fetchone() == before


def _pg_name(h: Site) -> str:
    from wardcrf.sync.pgstore import describe

    return describe((h.data_dir / "hub-database").read_text().strip())


def test_db_rebuild_check_at_a_postgresql_hub_finds_a_row_no_event_made_and_a_protocol_not_the_hubs(
    twins, tmp_path, monkeypatch
):
    """A projection row inserted by hand, and a protocol version no event loaded (in neither the database's
    log nor the hub's file): each named, exit 1. A log whose order was changed is not replayed at all."""
    import json

    _w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]
    with _pg_admin(h) as admin:
        admin.execute(
            "INSERT INTO records (event_id, form, subject, data, field_hlc, created_at, created_by, last_event,"
            " last_hlc, version) SELECT 'FORGED', form, subject, data, field_hlc, created_at, created_by, 'FORGED',"
            " last_hlc, 1"
            " FROM records LIMIT 1"
        )
        admin.execute(
            "INSERT INTO protocols (protocol_id, version, sha256, source, loaded_event, active)"
            " VALUES ('OTHER', '9', 'x', 'x', 'NOEVENT', 0)"
        )
    code, out, err = run("db", "rebuild", "--check", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1 and "projections differ from the log" in err, (code, out, err)
    found = json.loads(out)["differences"]
    assert len(found) == 2, found
    assert "table protocols in PostgreSQL" in found[0] and "row OTHER/9: loaded by no event" in found[0]
    assert "table records in PostgreSQL" in found[1]
    assert "row FORGED: present in the database but not derivable from the log" in found[1]
    with _pg_admin(h) as admin:
        admin.execute("ALTER TABLE events DISABLE TRIGGER USER")
        admin.execute("UPDATE events SET pos = -pos WHERE seq = 3 AND device != (SELECT device FROM site)")
        admin.execute("ALTER TABLE events ENABLE TRIGGER USER")
    code, out, err = _check(h, monkeypatch)
    assert (
        code == 1 and err.count("\n") == 1 and "cannot be replayed" in err and "nothing was compared" in err
    )
    # Nor is it rebuilt from: one line, exit 1, the forged rows left for the auditor to see.
    code, out, err = run("db", "rebuild", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1 and "nothing was rebuilt" in err, (code, out, err)
    with _pg_admin(h) as admin:
        assert admin.execute("SELECT count(*) FROM records WHERE event_id = 'FORGED'").fetchone() == (1,)


# -- exports ------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_csv_export_at_a_postgresql_hub_is_byte_identical_to_the_sqlcipher_hubs(
    twins, tmp_path, monkeypatch
):
    """`export csv` at the twin reads the wards' records, history, signatures and directory from PostgreSQL
    and the hub's own events from its file, merged in the order the hub received them: every file,
    SHA256SUMS included, is the SQLCipher hub's byte for byte, and `sha256sum -c` holds."""
    import subprocess

    _w, hubs, post = _pushed(twins, tmp_path)
    out = {}
    for engine, h in hubs.items():
        code, stdout, err = run("export", "csv", "--out", str(tmp_path / f"csv-{engine}"), "-d", str(h.data_dir),
                                monkeypatch=monkeypatch)  # fmt: skip
        assert code == 0, (engine, stdout, err)
        out[engine] = _files(tmp_path / f"csv-{engine}")
    assert sorted(out["postgresql"]) == sorted(out["sqlcipher"])
    for name, data in out["sqlcipher"].items():
        assert out["postgresql"][name] == data, name
    # What a sponsor's statistician reads: the ward's records (the correction applied), its audit trail.
    vitals = out["postgresql"]["forms/vitals.csv"].decode("utf-8-sig")
    assert post in vitals and ",86," in vitals
    trail = out["postgresql"]["audit_trail.csv"].decode("utf-8-sig")
    assert "misread the monitor" in trail
    # The hub's own events (its file) before the ward's (the database), as the hub received them.
    assert (
        trail.index(",hub.device_registered,")
        < trail.index(",sync.hub_set,")
        < trail.index(",record.submitted,")
    )
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "csv-postgresql", capture_output=True
    )
    assert check.returncode == 0, check.stdout


def test_the_audit_trail_at_a_postgresql_hub_interleaves_the_hubs_own_events_as_received(
    twins, tmp_path, monkeypatch
):
    """A laptop registered at the hub between a ward's two bundles: the hub's own event (in its file) sits
    between the two bundles' events in the audit trail, where a SQLCipher hub's single log holds it. The
    two hubs' registration events differ only in their time (and so their hash)."""
    import csv
    import io

    from wardcrf.sync import registry

    w, hubs = twins
    files, _post = _ward_records(w, tmp_path)
    lap2 = card_of(make_ward(tmp_path, name="lap2"))
    first, rest = files[:-1], files[-1:]
    for h in hubs.values():
        _import(h, first)
        with _session(h) as hs:
            registry.register_device(hs, lap2)  # type: ignore[arg-type]
        _import(h, rest)
    with _session(hubs["sqlcipher"]) as hs:
        hub_device = hs.ctx.device  # type: ignore[attr-defined]
    trails = {}
    for engine, h in hubs.items():
        code, stdout, err = run("export", "csv", "--out", str(tmp_path / f"csv-{engine}"), "-d", str(h.data_dir),
                                monkeypatch=monkeypatch)  # fmt: skip
        assert code == 0, (engine, stdout, err)
        text = (tmp_path / f"csv-{engine}" / "audit_trail.csv").read_text("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        for r in rows:
            if r["device"] == hub_device and r["event_type"] == "hub.device_registered":
                r["when_utc"] = r["when_local"] = r["event_hash"] = "-"
        trails[engine] = rows
    assert trails["postgresql"] == trails["sqlcipher"]
    types = [r["event_type"] for r in trails["postgresql"]]
    registered = [i for i, t in enumerate(types) if t == "hub.device_registered"]
    assert len(registered) == 2 and types.index("record.submitted") < registered[1] < types.index(
        "record.amended"
    )


def test_the_odm_export_at_a_postgresql_hub_is_the_sqlcipher_hubs_and_validates(twins, tmp_path, monkeypatch):
    """`export odm` at the twin: byte for byte the SQLCipher hub's file but for its creation time (and the
    file OID made from it); valid against the ODM 1.3.2 XSD and odmlib's strict loader, as the suite
    checks the ward's; the three consent signatures and the correction's audit are there."""
    import importlib.resources
    import re
    import xml.etree.ElementTree as ET

    import xmlschema
    from odmlib import loader, odm_loader

    _w, hubs, post = _pushed(twins, tmp_path)
    texts = {}
    for engine, h in hubs.items():
        path = tmp_path / f"{engine}.xml"
        code, stdout, err = run(
            "export", "odm", "--out", str(path), "-d", str(h.data_dir), monkeypatch=monkeypatch
        )
        assert code == 0, (engine, stdout, err)
        texts[engine] = path.read_text("utf-8")
    created = re.compile(r'(FileOID="[^"]*\.|CreationDateTime=")\d{4}-\d\d-\d\dT[\d:.]+Z"')
    masked = {k: created.sub(r"\1-", v) for k, v in texts.items()}
    assert masked["postgresql"] != texts["postgresql"]  # the creation time was there, and masked
    assert masked["postgresql"] == masked["sqlcipher"]
    path = tmp_path / "postgresql.xml"
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(path))) == []
    ldr = loader.ODMLoader(odm_loader.XMLODMLoader())
    ldr.open_odm_document(str(path))
    odm = ldr.root()
    assert odm.validate(collect_errors=True) == [] and odm.verify_order()
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    root = ET.parse(path).getroot()
    assert len(root.findall(".//odm:ClinicalData//odm:Signature", ns)) == 3
    updates = root.findall(f".//odm:FormData[@FormRepeatKey='{post}'][@TransactionType='Update']", ns)
    assert len(updates) == 1 and updates[0].find(".//odm:ReasonForChange", ns).text == "misread the monitor"


def test_an_export_at_a_postgresql_hub_writes_nothing_and_reads_through_a_read_only_role(
    twins, tmp_path, monkeypatch
):
    """The export reads one READ ONLY snapshot: through a role that may only SELECT (what a read replica
    offers), given in WARDCRF_HUB_DATABASE, the CSV export is the same; a database that cannot be reached
    is one line, no traceback, nothing written."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]
    dsn = (h.data_dir / "hub-database").read_text().strip()
    with _pg_admin(h) as admin:
        admin.execute("CREATE ROLE export_reader LOGIN")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO export_reader")
    code, out, err = run(
        "export", "csv", "--out", str(tmp_path / "owner"), "-d", str(h.data_dir), monkeypatch=monkeypatch
    )
    assert code == 0, err
    monkeypatch.setenv("WARDCRF_HUB_DATABASE", dsn.replace("user=postgres", "user=export_reader"))
    code, out, err = run(
        "export", "csv", "--out", str(tmp_path / "reader"), "-d", str(h.data_dir), monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert _files(tmp_path / "reader") == _files(tmp_path / "owner")
    monkeypatch.setenv(
        "WARDCRF_HUB_DATABASE", f"host={tmp_path}/nowhere dbname=x user=postgres connect_timeout=3"
    )
    code, out, err = run(
        "export", "odm", "--out", str(tmp_path / "x.xml"), "-d", str(h.data_dir), monkeypatch=monkeypatch
    )
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (code, out, err)  # StoreError
    assert "cannot connect" in err and not (tmp_path / "x.xml").exists()


def test_the_sdtm_export_at_a_postgresql_hub_is_the_sqlcipher_hubs(twins, tmp_path, monkeypatch):
    """`export sdtm --check` at the twin: the XPT and Dataset-JSON datasets, define.xml and the conformance
    report are the SQLCipher hub's but for the moment each was written (Dataset-JSON's and define.xml's
    creation time, an XPT header's), valid as the suite validates a ward's (Dataset-JSON 1.1's schema,
    define.xml's XSD), and `sha256sum -c` holds."""
    import json
    import re
    import subprocess

    _w, hubs, _post = _pushed(twins, tmp_path)
    out = {}
    for engine, h in hubs.items():
        code, stdout, err = run(
            "export", "sdtm", "--check", "--out", str(tmp_path / f"sdtm-{engine}"), "-d", str(h.data_dir),
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 0, (engine, stdout[-2000:], err)
        out[engine] = _files(tmp_path / f"sdtm-{engine}")
    assert sorted(out["postgresql"]) == sorted(out["sqlcipher"])
    assert {"dm.xpt", "ae.xpt", "dm.json", "define.xml", "conformance.txt"} <= set(out["postgresql"])
    created = re.compile(
        rb'("datasetJSONCreationDateTime": ?"|CreationDateTime=")[^"]+"'  # Dataset-JSON, define.xml
        rb"|\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d"  # an XPT header's created and modified (07DEC26:07:01:20)
    )
    for name, data in out["sqlcipher"].items():
        if name == "SHA256SUMS":
            continue  # the hashes of files written at another moment
        assert created.sub(b"-", out["postgresql"][name]) == created.sub(b"-", data), name
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "sdtm-postgresql", capture_output=True
    )
    assert check.returncode == 0, check.stdout
    ae = json.loads(out["postgresql"]["ae.json"])
    assert ae["records"] == 1 and any("Low-grade fever" in str(row) for row in ae["rows"])
    # Validated as the suite validates a ward's: Dataset-JSON 1.1's schema, define.xml's XSD.
    import importlib.resources

    import jsonschema
    import xmlschema

    schema = json.loads(
        (importlib.resources.files("wardcrf.exports.sdtm") / "schemas" / "dataset.schema.json").read_text(
            "utf-8"
        )
    )
    validator = jsonschema.Draft201909Validator(schema)
    for name in (n for n in out["postgresql"] if n.endswith(".json")):
        assert list(validator.iter_errors(json.loads(out["postgresql"][name]))) == [], name
    xsd = importlib.resources.files("odmlib") / "schemas" / "define" / "2.1" / "define2-1-0.xsd"
    assert (
        list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(tmp_path / "sdtm-postgresql" / "define.xml")))
        == []
    )


def test_db_rebuild_check_at_a_postgresql_hub_reads_one_moment_while_a_bundle_is_imported(
    twins, tmp_path, monkeypatch
):
    """A bundle committed by an importer while the check replays: the check reads the log and the tables as
    of one moment (REPEATABLE READ), so it neither replays the new events nor sees their rows, and stays
    clean; the next check includes them."""
    from test_sync_roundtrip import export
    from wardcrf.sync import pgcheck

    w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]
    s = open_(w)
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()
    c = open_(w, "clin")
    try:
        c.append(type="record.submitted", subject="participant:WUH01-001", body={"form": "vitals", "data": {
            "timepoint": "pre_dose", "dose": 2, "time": "2026-12-08T08:45:00+08:00", "temp": 36.9}})  # fmt: skip
    finally:
        c.close()
    late = export(w, tmp_path / "late")
    real = pgcheck._replay
    imported = []

    def replay_after_an_import(*args):
        _import(h, late)  # another connection commits while this check's snapshot is open
        imported.append(True)
        return real(*args)

    monkeypatch.setattr(pgcheck, "_replay", replay_after_an_import)
    code, out, err = _check(h, monkeypatch)
    assert imported and code == 0 and "Projections match the log" in out, (code, out, err)
    before = int(out.split("(")[1].split()[0])
    monkeypatch.setattr(pgcheck, "_replay", real)
    code, out, err = _check(h, monkeypatch)
    assert code == 0 and int(out.split("(")[1].split()[0]) == before + 1, (out, err)


def test_an_export_at_a_postgresql_hub_refuses_records_of_a_version_it_does_not_hold(
    twins, tmp_path, monkeypatch
):
    """The refusal a ward's export makes holds at the twin: records captured under a version the database
    does not hold (its row removed by the owner) are named, nothing is written, exit 1, one line."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]
    with _pg_admin(h) as admin:
        admin.execute("DELETE FROM protocols")
    for args in (("csv", "--out", str(tmp_path / "csv")), ("odm", "--out", str(tmp_path / "x.xml"))):
        code, out, err = run("export", *args, "-d", str(h.data_dir), monkeypatch=monkeypatch)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (args, code, out, err)
        assert "record(s) were captured under MEXCOVID 1.0" in err and "nothing was written" in err
    assert not (tmp_path / "csv").exists() and not (tmp_path / "x.xml").exists()


def test_db_rebuild_check_replays_the_hubs_own_events_where_they_met_the_log_and_finds_an_edit_they_feed(
    twins, tmp_path, monkeypatch
):
    """The hub's own events after init — a protocol version it loads, a query its coordinator raises and
    later closes, a DSMG decision — between ward bundles: the twin's check replays them (from the hub's
    file, up to `hub_own_projected`) at the points of the database's log where `mirror_own_events` projected
    them (`hub_own_steps`), so a clean hub checks clean, as the SQLCipher hub does. A row only the hub's own
    events feed (`sync_queries`, `sync_decisions`), edited by hand, is then named the same on both engines."""
    import json

    from test_sync_roundtrip import export
    from wardcrf.sync import registry

    from wardcrf import protocol

    w, hubs, post = _pushed(twins, tmp_path)
    v11 = protocol.parse(
        protocol.default_protocol().source.replace('version = "1.0"', 'version = "1.1"', 1),
        "mexcovid-1.1.toml",
    )
    queries = {}
    for engine, h in hubs.items():
        hs = open_(h)
        try:
            protocol.load(hs, v11)
        finally:
            hs.close()
        code, out, err = run("hub", "raise-query", "-d", str(h.data_dir), "--site", "WUH01", "--field", "pulse",
                             "--question", "Pulse 86 or 88?", "--record", post, user="coordinator",
                             monkeypatch=monkeypatch)  # fmt: skip
        assert code == 0, (engine, err)
        queries[engine] = out.split()[1]
        hs = open_(h, "dsmg")
        try:
            registry.send_decision(hs, "WUH01", "continue enrolment", "no safety signal")
        finally:
            hs.close()
    # A ward bundle after them: its import projects the hub's events first, then the bundle's.
    s = open_(w)
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()
    c = open_(w, "clin")
    try:
        c.append(type="record.submitted", subject="participant:WUH01-001", body={"form": "vitals", "data": {
            "timepoint": "pre_dose", "dose": 2, "time": "2026-12-08T08:45:00+08:00", "temp": 36.9}})  # fmt: skip
    finally:
        c.close()
    late = export(w, tmp_path / "late")
    for engine, h in hubs.items():
        _import(h, late)
        hs = open_(h, "coordinator")
        try:
            registry.close_query(hs, queries[engine], "accepted")
        finally:
            hs.close()
        code, out, err = run(
            "hub", "status", "-d", str(h.data_dir), monkeypatch=monkeypatch
        )  # projects the close
        assert code == 0, (engine, err)
    pg = hubs["postgresql"]
    with _pg_admin(pg) as admin:
        assert admin.execute("SELECT status FROM sync_queries").fetchall() == [("closed",)]
        assert admin.execute("SELECT version, active FROM protocols ORDER BY rowid").fetchall() == [
            ("1.0", 0), ("1.1", 1),
        ]  # fmt: skip
        steps = admin.execute("SELECT count(*), count(DISTINCT after_pos) FROM hub_own_steps").fetchone()
        assert steps[0] >= 3 and steps[1] >= 2, steps  # at init, before the late bundle, after it
    counts = {}
    for engine, h in hubs.items():
        code, out, err = _check(h, monkeypatch)
        assert code == 0 and "Projections match the log" in out, (engine, out, err)
        counts[engine] = int(out.split("(")[1].split()[0])
    assert counts["postgresql"] == counts["sqlcipher"]
    edits = {
        engine: [
            f"UPDATE sync_queries SET status = 'open' WHERE query_id = '{queries[engine]}'",
            "UPDATE sync_decisions SET decision = 'halt enrolment'",
        ]
        for engine in hubs
    }
    s = open_(hubs["sqlcipher"])
    try:
        for sql in edits["sqlcipher"]:
            s.store.execute(sql)
    finally:
        s.close()
    with _pg_admin(pg) as admin:
        for sql in edits["postgresql"]:
            admin.execute(sql)
    found = {}
    for engine, h in hubs.items():
        code, out, err = run(
            "db", "rebuild", "--check", "--json", "-d", str(h.data_dir), monkeypatch=monkeypatch
        )
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (engine, code, out, err)
        found[engine] = json.loads(out)["differences"]
    for engine, diffs in found.items():
        assert {d.split(",")[0].split(" in ")[0] for d in diffs} == {
            "table sync_queries", "table sync_decisions",
        }, (engine, diffs)  # fmt: skip
        assert any(
            f"row {queries[engine]}: column status is 'open', the log gives 'closed'" in d for d in diffs
        ), diffs
    assert all(f" in PostgreSQL ({_pg_name(pg)})" in d for d in found["postgresql"])


def _version(v: str):
    from wardcrf import protocol

    return protocol.parse(
        protocol.default_protocol().source.replace('version = "1.0"', f'version = "{v}"', 1),
        f"mexcovid-{v}.toml",
    )


def _load(site: Site, v: str) -> None:
    from wardcrf import protocol

    s = open_(site)
    try:
        protocol.load(s, _version(v))
    finally:
        s.close()


def _ward_bundle(w: Site, to: Path) -> list[Path]:
    """The ward's events since its last bundle (the earlier ones as if receipted)."""
    from test_sync_roundtrip import export

    s = open_(w)
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()
    return export(w, to)


def _versions(h: Site) -> list[tuple[str, int]]:
    """(version, active) of the protocol versions where the hub's wards' data is, in insertion order."""
    from wardcrf.sync import hub

    s = open_(h)
    try:
        with hub.ledger_store(s) as store:
            return [
                (str(v), int(a))
                for v, a in store.execute("SELECT version, active FROM protocols ORDER BY rowid")
            ]
    finally:
        s.close()


def _pg_check(h: Site, place=None) -> list[str]:
    """`db rebuild --check` of the database, with the own-event runs' positions moved by `place` (a test of
    the test: a replay putting them elsewhere must be found out)."""
    from wardcrf.sync import pgcheck

    s = open_(h)
    try:
        if place is None:
            return [str(d) for d in pgcheck.check_projections(s)[1]]
        real = pgcheck._own_steps
        pgcheck._own_steps = lambda session, store: [
            (p if first else place(p), first, e) for p, first, e in real(session, store)
        ]  # the run at init stays first: the others move
        try:
            return [str(d) for d in pgcheck.check_projections(s)[1]]
        finally:
            pgcheck._own_steps = real
    finally:
        s.close()


def ALL_FIRST(_pos: int) -> int:
    return 0


def ALL_LAST(_pos: int) -> int:
    return 2**62


def test_db_rebuild_check_replays_a_version_the_hub_loads_between_two_wards_loads_at_its_place(
    twins, tmp_path, monkeypatch
):
    """The ward loads 1.2, the hub then 1.1, the ward then 1.3: the latest loaded is the active one and a
    version's rank is its place in that order, so the projection depends on where the hub's own load met
    the log. The twins agree row for row and both check clean; a replay of the hub's own events before the
    whole log (1.1 ranked before 1.2), or after it (1.1 active), is found out: the check proves the
    position, not only that the own events were replayed."""
    w, hubs, _post = _pushed(twins, tmp_path)
    _load(w, "1.2")
    first = _ward_bundle(w, tmp_path / "a")
    for h in hubs.values():
        _import(h, first)
        _load(h, "1.1")
    _load(w, "1.3")
    later = _ward_bundle(w, tmp_path / "c")
    for h in hubs.values():
        _import(h, later)  # its import projects the hub's 1.1 first, after the first bundle
    want = [("1.0", 0), ("1.2", 0), ("1.1", 0), ("1.3", 1)]
    assert _versions(hubs["sqlcipher"]) == _versions(hubs["postgresql"]) == want
    for engine, h in hubs.items():
        code, out, err = _check(h, monkeypatch)
        assert code == 0 and "Projections match the log" in out, (engine, out, err)
    pg = hubs["postgresql"]
    assert _pg_check(pg) == []
    for place in (ALL_FIRST, ALL_LAST):
        found = _pg_check(pg, place)
        assert len(found) == 1 and "table protocols in PostgreSQL" in found[0], (place.__name__, found)
        assert "row MEXCOVID/1.1: column " in found[0], (place.__name__, found)


def test_a_database_at_0010_holding_data_upgrades_to_0012_and_its_own_events_check_where_they_met_the_log(
    request, tmp_path, monkeypatch
):
    """A hub whose database was made at migration 0010 (own events projected, marked, no runs recorded),
    holding the ward's records, two ward loads and one of the hub's between them and a query it raised,
    is upgraded by `migrate` to 0012: 0011 and 0012 apply to the tables holding data, nothing projected
    changes, the check is clean (the unrecorded own events placed by their time among the bundles applied,
    not all before the log, which would rank the hub's 1.1 before the ward's 1.2), and the next run of the
    hub's own events is recorded from where the marker stood."""
    from wardcrf.sync import pgstore
    from wardcrf.sync.pgstore import PgStore

    full = pgstore.schema_text()
    names = [name for name, _sql in pgstore.migrations(full)]
    monkeypatch.setattr(
        pgstore, "schema_text", lambda: full[: full.index("-- migration: 0011-randomization")]
    )
    real = PgStore.execute

    monkeypatch.setattr(PgStore, "execute", lambda self, sql, params=(): real(self, sql, params)
                        if not sql.startswith("INSERT INTO hub_own_steps") else None)  # fmt: skip
    w, hubs = request.getfixturevalue("twins")
    pg = hubs["postgresql"]
    files, post = _ward_records(w, tmp_path)
    _import(pg, files)
    _load(w, "1.2")
    _import(pg, _ward_bundle(w, tmp_path / "a"))
    _load(pg, "1.1")
    code, out, err = run("hub", "raise-query", "-d", str(pg.data_dir), "--site", "WUH01", "--field", "pulse",
                         "--question", "Pulse 86 or 88?", "--record", post, user="coordinator",
                         monkeypatch=monkeypatch)  # fmt: skip
    assert code == 0, err
    query = out.split()[1]
    _load(w, "1.3")
    _import(pg, _ward_bundle(w, tmp_path / "c"))
    with _pg_admin(pg) as admin:
        applied = [r[0] for r in admin.execute("SELECT name FROM schema_migrations ORDER BY applied_order")]
        assert applied == names[: names.index("0011-randomization")]
        marker = admin.execute("SELECT seq FROM hub_own_projected").fetchone()[0]
        before = {t: admin.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                  for t in ("protocols", "sync_queries", "records", "events")}  # fmt: skip

    monkeypatch.setattr(pgstore, "schema_text", lambda: full)
    monkeypatch.setattr(PgStore, "execute", real)
    store = PgStore((pg.data_dir / "hub-database").read_text().strip())
    try:
        assert store.migrate() == names[names.index("0011-randomization") :]
    finally:
        store.close()
    with _pg_admin(pg) as admin:
        after = {t: admin.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in before}
        assert after == before
        assert admin.execute("SELECT count(*) FROM hub_own_steps").fetchone() == (0,)
    assert _versions(pg) == [("1.0", 0), ("1.2", 0), ("1.1", 0), ("1.3", 1)]
    code, out, err = _check(pg, monkeypatch)
    assert code == 0 and "Projections match the log" in out, (out, err)
    found = _pg_check(pg, ALL_FIRST)  # what the check did before: every unrecorded own event first
    assert len(found) == 1 and "row MEXCOVID/1.1: column " in found[0], found
    # The hub goes on: its next own event (the query closed) is projected and its run recorded.
    from wardcrf.sync import registry

    hs = open_(pg, "coordinator")
    try:
        registry.close_query(hs, query, "accepted")
    finally:
        hs.close()
    code, out, err = run("hub", "status", "-d", str(pg.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    with _pg_admin(pg) as admin:
        [(frm, seq)] = admin.execute("SELECT from_seq, seq FROM hub_own_steps").fetchall()
        assert frm == marker and seq > marker
        assert admin.execute("SELECT status FROM sync_queries").fetchall() == [("closed",)]
    code, out, err = _check(pg, monkeypatch)
    assert code == 0 and "Projections match the log" in out, (out, err)


PAUSED_IMPORT = """
import sys, time, pathlib
import scratch_events  # noqa: F401
from wardcrf import eventlog
from wardcrf.cli import main

paused, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
noted = eventlog._note_heads


def _note_heads(*args, **kw):
    # The bundle's events are in the log (their positions taken); hold before projecting them.
    if not paused.exists():
        paused.write_text("paused")
        deadline = time.monotonic() + 120  # a bound on a condition, not a timing
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("never released")
            time.sleep(0.05)
    return noted(*args, **kw)


eventlog._note_heads = _note_heads
main(["hub", "import", "--data-dir", sys.argv[3], *sys.argv[4:]])
"""


def test_two_wards_bundles_imported_at_once_commit_out_of_their_log_order_and_the_hub_stays_consistent(
    request, tmp_path, monkeypatch
):
    """Two devices' bundles applied at once at a PostgreSQL hub: lap1's takes its log positions first, then
    waits before projecting (a process paused by the test, not by a clock); lap2's is imported whole and
    commits meanwhile; lap1's then projects and commits. So the log order (`events.pos`) and the order the
    rows were projected (`rowid`) disagree across the two devices: lap1 loaded 1.2 first in the log, lap2's
    1.3 was projected first and lap1's 1.2 made active after it, as commit order says.

    What reads the two orders: the receipts and the transparency log (each bundle once, its leaf in commit
    order), the export's audit trail (each ward's events at its bundle's `applied_at`, so lap2's before
    lap1's), and `db rebuild --check`, which must re-derive these rows: it is clean."""
    import subprocess
    import sys
    import time

    from synckit import subprocess_env
    from wardcrf.sync import hub

    pg_server = request.getfixturevalue("pg_server")
    h = hub.init(tmp_path / "hub", admin="admin", password=PASSWORD, database=pg_server.new_database()).site
    w1, w2 = make_ward(tmp_path, "lap1"), make_ward(tmp_path, "lap2", "WUH02")
    connect(w1, h)
    connect(w2, h)
    for w in (w1, w2):
        _import(h, _ward_bundle(w, tmp_path / f"start-{w.data_dir.name}"))
    _load(w1, "1.2")
    _load(w2, "1.3")
    a = _ward_bundle(w1, tmp_path / "a")
    b = _ward_bundle(w2, tmp_path / "b")
    paused, go = tmp_path / "paused", tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_IMPORT, str(paused), str(go), str(h.data_dir), *map(str, a)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a bound on a condition, not a timing
        while not paused.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        _import(h, b)  # whole, committed, while lap1's bundle holds its log positions
        go.write_text("go")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "applied" in out, (out, err)
    with _pg_admin(h) as admin:
        dev = {
            str(r[0]): str(r[1])
            for r in admin.execute("SELECT site, device FROM sync_devices WHERE site IN ('WUH01', 'WUH02')")
        }
        # The log order: lap1's bundle took its positions first ...
        first_pos = dict(admin.execute(
            "SELECT device, min(pos) FROM events WHERE type = 'protocol.loaded' AND device IN (%s, %s)"
            " GROUP BY device", (dev["WUH01"], dev["WUH02"])).fetchall())  # fmt: skip
        assert first_pos[dev["WUH01"]] < first_pos[dev["WUH02"]]
        # ... but lap2's was projected and committed first: its leaf, its version's rowid, then lap1's.
        leaves = [str(r[0]) for r in admin.execute("SELECT device FROM tlog_leaves ORDER BY idx").fetchall()]
        assert leaves[-2:] == [dev["WUH02"], dev["WUH01"]]
        versions = admin.execute("SELECT version, active FROM protocols ORDER BY rowid").fetchall()
        assert versions[-2:] == [("1.3", 0), ("1.2", 1)], versions
        assert admin.execute("SELECT count(*) FROM sync_applied WHERE first_seq IS NOT NULL").fetchone() == (
            4,
        )
    code, out, err = _check(h, monkeypatch)
    assert code == 0 and "Projections match the log" in out, (out, err)
    code, out, err = run("audit", "verify", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, (out, err)
