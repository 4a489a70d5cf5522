# ruff: noqa: F811  (the twins fixture is imported from test_hub_pg_twins and named by each test)
"""The commands that read a whole hub, at a PostgreSQL hub as at its SQLCipher twin (issue 19).

Reports, `hub randomization export` and `export sqlite` read the hub's file and
database as one SQLCipher hub's file (`sync.hubview`); the cold chain's custody,
status and handovers and `sdv verify` query the database in place
(`hubview.direct`, `test_hub_pg_items`). The twins (`test_hub_pg_twins`) are
fed the same bundles; what each command prints or writes must be the same.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from synckit import PASSWORD, open_
from test_hub_pg_twins import _pushed, twins  # noqa: F401  (fixtures; `pg_server` is the conftest's)
from test_sync_cli import run

ENGINES = ("sqlcipher", "postgresql")
IMPORT_HISTORY = ("rollback_guard", "sync_applied", "tlog_leaves", "tlog_checkpoints", "tlog_sent")


def _tables(store) -> dict[str, list[tuple]]:
    names = [
        r[0]
        for r in store.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {n: sorted(map(repr, store.execute(f'SELECT * FROM "{n}"').fetchall())) for n in names}


def test_the_view_of_a_postgresql_hub_holds_what_the_sqlcipher_hubs_file_holds(twins, tmp_path):
    """Table by table, the merged view equals the SQLCipher twin's file (the log in the order received)."""
    from wardcrf.sync import hubview

    _w, hubs, _post = _pushed(twins, tmp_path)
    got = {}
    for engine, h in hubs.items():
        s = open_(h)
        try:
            with hubview.view(s) as store:
                got[engine] = _tables(store)
                got[engine]["#events in order"] = [
                    r[0] for r in store.execute("SELECT id FROM events ORDER BY pos")
                ]
        finally:
            s.close()
    # What each hub recorded of its own import (when, from which folder, which checkpoints it signed
    # then, its file's write counter) differs between any two hubs; the rest is the same.
    for engine in ENGINES:
        for t in IMPORT_HISTORY:
            got[engine].pop(t)
    differ = [t for t, rows in got["sqlcipher"].items() if rows != got["postgresql"].get(t)]
    assert differ == [] and set(got["postgresql"]) == set(got["sqlcipher"]), differ
    assert len(got["postgresql"]["#events in order"]) > 20 and len(got["postgresql"]["records"]) == 8


def _both(
    hubs, tmp_path, monkeypatch, *args: str, out: str | None = None, user: str = "admin"
) -> dict[str, tuple[int, str, str]]:
    """`wardcrf ARGS -d HUB` at each twin: {engine: (exit code, stdout, stderr)}; `out`: a file name to add
    as `--out` (under a folder per engine)."""
    got = {}
    for engine, h in hubs.items():
        extra: tuple[str, ...] = ()
        if out is not None:
            (tmp_path / engine).mkdir(exist_ok=True)
            extra = ("--out", str(tmp_path / engine / out))
        got[engine] = run(*args, *extra, "-d", str(h.data_dir), user=user, monkeypatch=monkeypatch)
    return got


@pytest.mark.parametrize(
    "args",
    [
        ("report", "safety", "--format", "json"),
        ("report", "safety", "--format", "md"),
        ("report", "outcomes", "--format", "json"),
        ("report", "outcomes", "--format", "html"),
        ("report", "audit-review", "--from", "2000-01-01", "--to", "2099-12-31", "--json"),
    ],
    ids=lambda a: "-".join(a[1:3]),
)
def test_a_report_at_a_postgresql_hub_is_the_sqlcipher_hubs(twins, tmp_path, monkeypatch, args):
    """Each report, fed the same bundles, prints the same at both hubs (not refused at PostgreSQL)."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    # A report prints when it was made, to the minute: both hubs' at the same moment (a minute turning
    # between the two runs made them differ).
    monkeypatch.setenv("WARDCRF_FAKE_NOW", datetime.now(UTC).isoformat(timespec="seconds"))
    got = _both(hubs, tmp_path, monkeypatch, *args, user="coordinator" if "audit-review" in args else "admin")
    assert got["sqlcipher"][0] == 0, got["sqlcipher"]
    assert got["postgresql"] == got["sqlcipher"]
    assert "WUH01-001" in got["postgresql"][1] or "audit-review" in args


def test_an_audit_review_signed_at_a_postgresql_hub_is_in_its_log_and_listed_as_at_sqlcipher(
    twins, tmp_path, monkeypatch
):
    """`report audit-review --sign` reads the whole hub, signs in the hub's own log (its file), and the
    review then lists that signed review: the same at both hubs but for its event id and time."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    args = (
        "report",
        "audit-review",
        "--from",
        "2000-01-01",
        "--to",
        "2099-12-31",
        "--sign",
        "--note",
        "seen",
    )
    got = _both(hubs, tmp_path, monkeypatch, *args, "--json", user="coordinator")
    past = {}
    for engine, (code, out, err) in got.items():
        assert code == 0, (engine, out, err)
        done = json.loads(out)
        past[engine] = [
            {k: v for k, v in p.items() if k not in ("event", "recorded_at", "signed")}
            for p in done["past_reviews"]
        ]
        s = open_(hubs[engine])
        try:
            assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'audit.reviewed'") == 1
        finally:
            s.close()
    assert past["postgresql"] == past["sqlcipher"] and past["sqlcipher"][0]["note"] == "seen"


def test_a_casebook_printed_at_a_postgresql_hub_holds_what_the_sqlcipher_hubs_holds(
    twins, tmp_path, monkeypatch
):
    """`report audit --participant` (the auditor's PDF casebook) reads the same records, signatures and
    history at both hubs; an unknown participant is refused alike in one line, and no file is written."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    got = _both(
        hubs, tmp_path, monkeypatch, "report", "audit", "-p", "WUH01-001", "--json", out="casebook.pdf"
    )
    result = {}
    for engine, (code, out, err) in got.items():
        assert code == 0, (engine, out, err)
        result[engine] = {k: v for k, v in json.loads(out).items() if k not in ("path", "out", "sha256")}
        assert (tmp_path / engine / "casebook.pdf").read_bytes().startswith(b"%PDF")
    assert result["postgresql"] == result["sqlcipher"], result
    refused = _both(hubs, tmp_path, monkeypatch, "report", "audit", "-p", "WUH01-999", out="none.pdf")
    assert refused["postgresql"] == refused["sqlcipher"]
    code, _out, err = refused["postgresql"]
    assert code == 1 and err.count("\n") == 1 and "WUH01-999" in err, err
    assert not (tmp_path / "postgresql" / "none.pdf").exists()


# -- the cold chain: custody, status, handovers ---------------------------------------------------


def _cold_chain_pushed(twins, tmp_path):
    """A ward pharmacy's shipment, storage, freezer logger file with an excursion, handovers, thaws, the
    excursion's release and a manual reading out of range (`test_hub_pg_evidence._ward_cold_chain`),
    imported at both hubs."""
    from test_hub_pg_evidence import _ward_cold_chain
    from test_hub_pg_twins import _import

    w, hubs = twins
    exports, _rows, _held, _listed = _ward_cold_chain(w, tmp_path)
    for h in hubs.values():
        for files in exports:
            _import(h, files)
    return hubs


def _timeless(value):
    """A document with what each hub's clock stamped (when it was made, checked, each bundle applied: to the
    millisecond, unlike the trial's data) and the file each hub kept a bundle in put aside."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in ("file", "generated")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<stamp>", value)
    return value


def _clockless(value):
    """A report with the minutes left on a kit's clock out of a unit (they run with the wall clock) taken out."""
    if isinstance(value, dict):
        return {k: _clockless(v) for k, v in value.items() if k not in ("minutes_left", "over_limit")}
    if isinstance(value, list):
        return [_clockless(v) for v in value]
    return value


def test_the_cold_chain_reports_at_a_postgresql_hub_are_the_sqlcipher_hubs(twins, tmp_path, monkeypatch):
    """`coldchain custody` (a kit, a lot, as of a time), `coldchain status` and `audit handovers`, fed the
    same bundles, print the same at both hubs, as JSON and as text; an unknown kit is refused alike."""
    hubs = _cold_chain_pushed(twins, tmp_path)
    for args in (
        ("coldchain", "custody", "KIT-1", "--json"),
        ("coldchain", "custody", "LOT-A1", "--json"),
        ("coldchain", "custody", "KIT-2", "--at", "2020-03-17T08:00:00+08:00", "--json"),
        ("coldchain", "custody", "KIT-1"),
        ("coldchain", "status", "--json"),
        ("audit", "handovers", "--json"),
        ("audit", "handovers"),
    ):
        got = _both(hubs, tmp_path, monkeypatch, *args)
        assert got["sqlcipher"][0] in (0, 1) and "Traceback" not in got["sqlcipher"][2], (
            args,
            got["sqlcipher"],
        )
        if "--json" in args:
            sq, pg = (json.loads(got[e][1]) for e in ENGINES)
            assert _clockless(pg) == _clockless(sq) and sq, args
            assert got["postgresql"][0] == got["sqlcipher"][0] and got["postgresql"][2] == got["sqlcipher"][2]
        else:
            assert got["postgresql"] == got["sqlcipher"], args
    status = json.loads(_both(hubs, tmp_path, monkeypatch, "coldchain", "status", "--json")["postgresql"][1])
    assert status["units"] and "LOT-A1" in json.dumps(
        json.loads(
            _both(hubs, tmp_path, monkeypatch, "coldchain", "custody", "KIT-1", "--json")["postgresql"][1]
        )
    )
    handovers = json.loads(
        _both(hubs, tmp_path, monkeypatch, "audit", "handovers", "--json")["postgresql"][1]
    )
    assert handovers["ok"] and handovers["transfers"] and handovers["logger_files"]
    # The auditor's custody record of a kit (`report audit --kit`), as data: the same record at both.
    got = _both(hubs, tmp_path, monkeypatch, "report", "audit", "--kit", "KIT-1", out="custody.json")
    assert got["sqlcipher"][0] == 0 == got["postgresql"][0], got
    records = {e: json.loads((tmp_path / e / "custody.json").read_text()) for e in ENGINES}
    assert _timeless(records["postgresql"]) == _timeless(records["sqlcipher"]) and "KIT-1" in json.dumps(
        records
    )
    refused = _both(hubs, tmp_path, monkeypatch, "coldchain", "custody", "KIT-404")
    assert refused["postgresql"] == refused["sqlcipher"]
    assert refused["postgresql"][0] == 1 and refused["postgresql"][2].count("\n") == 1, refused


# -- sdv verify: the source photograph -------------------------------------------------------------


def test_sdv_verify_at_a_postgresql_hub_checks_the_source_photograph_and_marks_as_at_sqlcipher(
    twins, tmp_path, monkeypatch
):
    """A MEXCOVID consent with its signed page photographed, at both hubs: the monitor's `sdv verify`
    finds the record and re-hashes its photograph in the kept bundle, appends its mark in the hub's own
    log, and prints the same; then `sdv show` and `report sdv` see it. An unknown record and a photograph
    that is not there are refused alike, one line, nothing appended."""
    from test_hub_pg_evidence import _consent_with_photo
    from test_hub_pg_twins import _import

    from wardcrf import users

    w, hubs = twins
    files, sha, consent = _consent_with_photo(w, tmp_path)
    for h in hubs.values():
        _import(h, files)
        s = open_(h)
        try:
            users.add_user(s, "monitor", "Mona Monitor", "monitor", PASSWORD)
        finally:
            s.close()

    def own_events(engine: str) -> int:
        s = open_(hubs[engine])
        try:
            return int(s.store.scalar("SELECT count(*) FROM events"))
        finally:
            s.close()

    before = {e: own_events(e) for e in ENGINES}
    for bad in (("sdv", "verify", "NOSUCH-1"), ("sdv", "verify", consent, "--source", "sha256:" + "0" * 64),
                ("sdv", "verify", "x\x1b[2J" * 300)):  # fmt: skip
        refused = _both(hubs, tmp_path, monkeypatch, *bad, user="monitor")
        assert refused["postgresql"] == refused["sqlcipher"], (bad, refused)
        code, _out, err = refused["postgresql"]
        assert code in (1, 2) and err.count("\n") == 1 and "\x1b" not in err, (bad, err)
    assert {e: own_events(e) for e in ENGINES} == before
    got = _both(hubs, tmp_path, monkeypatch, "sdv", "verify", consent, "--note", "page 1 compared", "--json",
                user="monitor")  # fmt: skip
    assert got["sqlcipher"][0] == 0, got["sqlcipher"]
    marks = {e: json.loads(got[e][1])["event"] for e in ENGINES}  # each hub's own next event

    def same(printed: dict[str, tuple[int, str, str]]) -> dict[str, tuple[int, object, str]]:
        """What each hub printed, its own mark's id and the moment it was made (its clock's) put aside."""

        def timeless(v: object) -> object:
            if isinstance(v, dict):
                return {k: timeless(x) for k, x in v.items() if k not in ("at", "hlc")}
            if isinstance(v, str):
                return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", v)
            return [timeless(x) for x in v] if isinstance(v, list) else v

        return {
            e: (c, timeless(json.loads(out.replace(marks[e], "<mark>"))), err)
            for e, (c, out, err) in printed.items()
        }

    assert same(got)["postgresql"] == same(got)["sqlcipher"]
    done = json.loads(got["postgresql"][1])
    assert done["state"] == "verified" and {e: own_events(e) for e in ENGINES} == {
        e: n + 1 for e, n in before.items()
    }
    s = open_(hubs["postgresql"])
    try:
        mark = s.store.one("SELECT body FROM (SELECT json_extract(line, '$.body') AS body FROM events"
                           " WHERE type = 'sdv.verified')")  # fmt: skip
        assert mark is not None and f"sha256:{sha}" in mark[0]
    finally:
        s.close()
    for args in (("sdv", "show", consent, "--json"), ("report", "sdv", "--json")):
        shown = _both(hubs, tmp_path, monkeypatch, *args, user="monitor")
        assert same(shown)["postgresql"] == same(shown)["sqlcipher"] and shown["postgresql"][0] == 0, args
        assert marks["postgresql"] in shown["postgresql"][1]


# -- a format-2 trial (PALM): the statistician's unblinded export, endpoints, visits ---------------


def _palm_twins(cli, tmp_path, monkeypatch, pg_server):
    """`test_hub_pg_format2.palm_twins`, its bundles imported at both hubs."""
    from test_hub_pg_format2 import _export, _import, palm_twins

    pg_hub, lite_hub, w, trial, pid, _start = palm_twins(cli, tmp_path, monkeypatch, pg_server)
    files = _export(w, tmp_path / "b2")
    for h in (pg_hub, lite_hub):
        assert _import(h, files) == ["applied"] * len(files)
    return {"sqlcipher": lite_hub, "postgresql": pg_hub}, trial, pid


def test_a_palm_hubs_unblinded_export_and_format_2_reports_at_a_postgresql_hub_are_the_sqlcipher_hubs(
    cli, tmp_path, monkeypatch, pg_server
):
    """`hub randomization export` (the wards' allocations joined to the hub's sealed list) writes the same
    CSV at both hubs and logs it in the hub's own file; `report endpoints`, `visits` and `outcomes` (the
    engine's) print the same. An unknown protocol is refused alike in one line, no file written."""
    hubs, trial, pid = _palm_twins(cli, tmp_path, monkeypatch, pg_server)
    for engine in ENGINES:
        (tmp_path / engine).mkdir()
    refused = _both(hubs, tmp_path, monkeypatch, "hub", "randomization", "export", "--protocol-id", "NOSUCH",
                    out="none.csv")  # fmt: skip
    assert refused["postgresql"] == refused["sqlcipher"], refused
    code, _out, err = refused["postgresql"]
    assert code == 1 and err.count("\n") == 1 and "NOSUCH" in err, err
    assert not (tmp_path / "postgresql" / "none.csv").exists()
    got = _both(hubs, tmp_path, monkeypatch, "hub", "randomization", "export", "--protocol-id", trial.id,
                out="arms.csv")  # fmt: skip
    if got["sqlcipher"][0] == 1 and "still blinded" in got["sqlcipher"][2]:
        for h in hubs.values():
            code, out, err = run("hub", "randomization", "unblind-trial", "-d", str(h.data_dir), "--protocol-id",
                                 trial.id, "--reason", "final analysis", monkeypatch=monkeypatch)  # fmt: skip
            assert code == 0, (out, err)
        got = _both(hubs, tmp_path, monkeypatch, "hub", "randomization", "export", "--protocol-id", trial.id,
                    out="arms.csv")  # fmt: skip
    for engine in ENGINES:
        assert got[engine][0] == 0, (engine, got[engine])
    csvs = {e: (tmp_path / e / "arms.csv").read_text() for e in ENGINES}
    assert csvs["postgresql"] == csvs["sqlcipher"] and pid in csvs["postgresql"]
    assert len(csvs["postgresql"].splitlines()) == 2  # the header and the one allocation
    for h in hubs.values():
        s = open_(h)
        try:
            assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'randomization.exported'") == 1
        finally:
            s.close()
    # both at one minute (a report prints its time)
    monkeypatch.setenv("WARDCRF_FAKE_NOW", datetime.now(UTC).isoformat(timespec="seconds"))
    for args in (
        ("report", "endpoints", "--format", "json"),
        ("report", "visits", "--format", "json"),
        ("report", "outcomes", "--format", "json"),
        ("report", "safety", "--format", "json"),
    ):
        printed = _both(hubs, tmp_path, monkeypatch, *args)
        assert printed["sqlcipher"][0] == 0, (args, printed["sqlcipher"])
        assert printed["postgresql"] == printed["sqlcipher"], args
        assert pid in printed["postgresql"][1] or args[1] == "endpoints", args


# -- export sqlite --------------------------------------------------------------------------------


def test_the_plain_sqlite_copy_of_a_postgresql_hub_holds_the_sqlcipher_hubs_tables(
    twins, tmp_path, monkeypatch
):
    """`export sqlite` at the PostgreSQL twin writes the tables a SQLCipher hub's copy holds (the log, every
    projection, one typed table per form) with the same rows, leaves out the same secrets, and is recorded
    in the hub's own log; refused without confirmation and over an existing file, nothing written."""
    import sqlite3

    _w, hubs, _post = _pushed(twins, tmp_path)
    for engine in ENGINES:
        (tmp_path / engine).mkdir()
        (tmp_path / engine / "taken.sqlite").write_text("mine")
    for bad, words in ((("export", "sqlite"), "confirm with --yes"),
                       (("export", "sqlite", "--yes", "--out", "taken.sqlite"), "already exists")):  # fmt: skip
        args = [a if a != "taken.sqlite" else "<taken>" for a in bad]
        refused = {}
        for engine, h in hubs.items():
            argv = [str(tmp_path / engine / "taken.sqlite") if a == "<taken>" else a for a in args]
            if "--out" not in argv:
                argv += ["--out", str(tmp_path / engine / "plain.sqlite")]
            refused[engine] = run(*argv, "-d", str(h.data_dir), monkeypatch=monkeypatch)
        assert refused["postgresql"][0] == refused["sqlcipher"][0] == 2, refused
        assert words in refused["postgresql"][2] and refused["postgresql"][2].count("\n") == 1
        assert not (tmp_path / "postgresql" / "plain.sqlite").exists()
    got = _both(hubs, tmp_path, monkeypatch, "export", "sqlite", "--yes", "--json", out="plain.sqlite")
    tables = {}
    for engine, (code, out, err) in got.items():
        assert code == 0, (engine, out, err)
        db = sqlite3.connect(tmp_path / engine / "plain.sqlite")
        try:
            names = [
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            ]
            tables[engine] = {n: sorted(map(repr, db.execute(f'SELECT * FROM "{n}"'))) for n in names}
        finally:
            db.close()
        s = open_(hubs[engine])
        try:
            [(body,)] = s.store.execute("SELECT line FROM events WHERE type = 'export.plaintext'").fetchall()
            assert json.loads(body)["body"]["sha256"] == json.loads(out)["sha256"]
        finally:
            s.close()
    for engine in ENGINES:
        for t in IMPORT_HISTORY:
            tables[engine].pop(t)
    assert set(tables["postgresql"]) == set(tables["sqlcipher"])
    differ = [t for t in tables["sqlcipher"] if tables["sqlcipher"][t] != tables["postgresql"][t]]
    assert differ == [], differ
    plain = tables["postgresql"]
    assert "device_keys" not in plain and "coding_meddra" not in plain
    assert len(plain["records"]) == 8 and len(plain["projection_vitals"]) == len(plain["vitals"]) == 2


# -- db rebuild -----------------------------------------------------------------------------------


def _projections(h) -> dict[str, list]:
    """The hub's projections read whole (`sync.hubview`), its log and import history aside."""
    from wardcrf.sync import hubview

    s = open_(h)
    try:
        with hubview.view(s) as store:
            rows = _tables(store)
    finally:
        s.close()
    for t in (*IMPORT_HISTORY, "events", "chain_heads"):
        rows.pop(t)
    return rows


def test_db_rebuild_at_a_postgresql_hub_rewrites_its_projections_from_its_log_as_at_sqlcipher(
    twins, tmp_path, monkeypatch
):
    """The same edits to the projections at both hubs (a superuser's at PostgreSQL); `db rebuild` at each
    replays the log and writes back what it derives: the same count, the rows as imported, the check clean
    after, the log untouched (its triggers on); recorded in the hub's own log."""
    from test_hub_pg_twins import _check, _pg_admin

    _w, hubs, post = _pushed(twins, tmp_path)
    before = {e: _projections(h) for e, h in hubs.items()}
    edits = [
        "UPDATE participants SET eligible = 0 WHERE id = 'WUH01-001'",
        f"UPDATE records SET version = 7 WHERE event_id = '{post}'",
        "DELETE FROM signatures WHERE meaning = 'witnessed' AND user_id = 'inv'",
        "UPDATE ward_queue SET vitals_owed = vitals_owed + 3",
        "INSERT INTO sdv_marks (event_id, target_event, subject, form, scope, fields, value_hashes, sources,"
        " user_id, full_name, at, hlc) VALUES ('FORGED-1', 'x', 'participant:WUH01-001', 'vitals', 'record',"
        " '[]', '{}', '[]', 'mon', 'Mon', '2026-01-01T00:00:00Z', '0')",
    ]
    s = open_(hubs["sqlcipher"])
    try:
        for sql in edits:
            s.store.execute(sql)
    finally:
        s.close()
    with _pg_admin(hubs["postgresql"]) as db:
        for sql in edits:
            db.execute(sql)
        log = db.execute("SELECT count(*), max(pos) FROM events").fetchone()
    for h in hubs.values():
        assert _check(h, monkeypatch)[0] == 1
    got = _both(hubs, tmp_path, monkeypatch, "db", "rebuild")
    assert got["sqlcipher"][0] == 0 and "Projections rebuilt from" in got["sqlcipher"][1], got["sqlcipher"]
    assert got["postgresql"] == got["sqlcipher"]
    for engine, h in hubs.items():
        code, out, err = _check(h, monkeypatch)
        assert code == 0 and "Projections match the log" in out, (engine, out, err)
        after = _projections(h)
        assert after == before[engine], [t for t in after if after[t] != before[engine].get(t)]
        s = open_(h)
        try:
            assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'db.rebuilt'") == 1
        finally:
            s.close()
    with _pg_admin(hubs["postgresql"]) as db:
        assert db.execute("SELECT count(*), max(pos) FROM events").fetchone() == log
        assert db.execute("SELECT eligible FROM participants").fetchall() == [(1,)]
        assert not db.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass AND tgenabled = 'D'"
        ).fetchall()


def test_db_rebuild_at_a_postgresql_hub_is_refused_to_the_import_role_and_while_a_bundle_is_applied(
    twins, tmp_path, monkeypatch
):
    """Connected as a login role granted wardcrf_import (which may not delete projection rows): one line,
    exit 2. While an importer's transaction holds the log: one line, exit 1. Both change nothing (the edit
    made stays, no `db.rebuilt` recorded); once the importer is gone, the rebuild runs."""
    import os

    from test_hub_pg_twins import _pg_admin

    _w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]
    owner = (h.data_dir / "hub-database").read_text().strip()
    login = "worker_" + os.urandom(4).hex()
    with _pg_admin(h) as db:
        db.execute("UPDATE participants SET eligible = 0")
        db.execute(f"CREATE ROLE {login} LOGIN")
        db.execute(f"GRANT wardcrf_import TO {login}")

    def unchanged() -> None:
        with _pg_admin(h) as db:
            assert db.execute("SELECT eligible FROM participants").fetchall() == [(0,)]
        s = open_(h)
        try:
            assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'db.rebuilt'") == 0
        finally:
            s.close()

    with monkeypatch.context() as m:
        m.setenv("WARDCRF_HUB_DATABASE", owner.replace("user=postgres", f"user={login}"))
        code, out, err = run("db", "rebuild", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 2 and err.count("\n") == 1 and "owner" in err and "import role" in err, (code, out, err)
    unchanged()
    importer = _pg_admin(h)
    importer.autocommit = False
    importer.execute("LOCK TABLE events IN ROW EXCLUSIVE MODE")  # as an import's INSERT holds it
    try:
        code, out, err = run("db", "rebuild", "-d", str(h.data_dir), monkeypatch=monkeypatch)
        assert code == 1 and err.count("\n") == 1 and "importer" in err, (code, out, err)
        unchanged()
    finally:
        importer.rollback()
        importer.close()
    code, out, err = run("db", "rebuild", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and "Projections rebuilt from" in out, (out, err)
    with _pg_admin(h) as db:
        assert db.execute("SELECT eligible FROM participants").fetchall() == [(1,)]


def test_a_report_at_a_postgresql_hub_whose_schema_is_older_is_refused_in_one_line(
    twins, tmp_path, monkeypatch
):
    """A database missing a column the hub's file has (an older schema, not migrated): a report is refused
    in one line naming the table and column, through the whole copy (`audit-review`) and in place (`safety`,
    whose query would not name it: `hubview.require_columns`); nothing written; the SQLCipher twin prints as
    ever."""
    from test_hub_pg_twins import _pg_admin

    _w, hubs, _post = _pushed(twins, tmp_path)
    with _pg_admin(hubs["postgresql"]) as db:
        db.execute("ALTER TABLE adverse_events DROP COLUMN outcome")
    review = ("report", "audit-review", "--from", "2000-01-01", "--to", "2099-12-31", "--json")
    for args in (review, ("report", "safety", "--format", "json")):
        got = _both(
            hubs, tmp_path, monkeypatch, *args, user="coordinator" if "audit-review" in args else "admin"
        )
        assert got["sqlcipher"][0] == 0
        code, out, err = got["postgresql"]
        assert code == 1 and out == "" and err.count("\n") == 1, (code, out, err)
        assert "lacks column outcome of table adverse_events" in err and "Traceback" not in err, err


def test_the_view_holds_the_hubs_own_events_with_their_projections_never_one_without_the_other(
    twins, tmp_path
):
    """A hub event appended after the database last projected the hub's own (another process's, meanwhile)
    is left out of a view made from that snapshot, with its projection; the next view (which projects
    first) holds both."""
    from wardcrf.sync import hub, hubview

    from wardcrf import users

    _w, hubs, _post = _pushed(twins, tmp_path)
    s = open_(hubs["postgresql"])
    try:
        users.add_user(
            s, "late", "Lee Late", "monitor", PASSWORD
        )  # in the hub's file only, not projected yet
        late = s.store.scalar("SELECT id FROM events WHERE type = 'user.added' ORDER BY pos DESC LIMIT 1")
        with hub.wards_data(s) as wards:
            view = hubview.build(s.store, wards)
        try:
            assert view.one("SELECT 1 FROM events WHERE id = ?", (late,)) is None
            assert view.one("SELECT 1 FROM users WHERE username = 'late'") is None
        finally:
            view.close()
        with hubview.view(s) as view:
            assert view.one("SELECT 1 FROM events WHERE id = ?", (late,)) is not None
            assert view.one("SELECT 1 FROM users WHERE username = 'late'") is not None
            assert view.execute("PRAGMA query_only").fetchone()[0] == 1
    finally:
        s.close()


def test_an_import_started_while_db_rebuild_holds_the_log_waits_and_then_applies(twins, tmp_path):
    """`db rebuild` holds the log IN EXCLUSIVE MODE until it commits: a `hub import` started meanwhile waits
    on it (seen waiting in pg_locks, not timed), and applies its bundle once the rebuild is done."""
    import threading
    import time

    from test_hub_pg_hub import _ward_records
    from test_hub_pg_twins import _import, _pg_admin

    w, hubs = twins
    h = hubs["postgresql"]
    files, _post = _ward_records(w, tmp_path)
    _import(h, files[:1])
    rebuild = _pg_admin(h)
    watcher = _pg_admin(h)
    result: dict[str, object] = {}

    def importer() -> None:
        try:
            _import(h, files[1:])
            result["done"] = True
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    try:
        rebuild.autocommit = False
        rebuild.execute("LOCK TABLE events IN EXCLUSIVE MODE NOWAIT")  # as `pgcheck.rebuild_projections`
        other = threading.Thread(target=importer)
        other.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted"
        deadline = time.monotonic() + 120  # a bound on a condition, not a timing
        while watcher.execute(waiting).fetchone() != (1,):
            assert other.is_alive() and time.monotonic() < deadline, result
            time.sleep(0.05)
        assert "done" not in result
        rebuild.rollback()
        other.join(120)
        assert not other.is_alive() and result == {"done": True}, result
    finally:
        rebuild.close()
        watcher.close()
    with _pg_admin(h) as db:
        assert db.execute("SELECT count(*) FROM sync_applied").fetchone() == (2,)
