# ruff: noqa: F811  (the twins fixture is imported from test_hub_pg_twins and named by each test)
"""The commands that read a whole hub, at a PostgreSQL hub as at its SQLCipher twin (issue 19).

Reports, the cold chain's custody, status and handovers, `sdv verify`, `hub
randomization export` and `export sqlite` read the hub's file and database as
one SQLCipher hub's file (`sync.hubview`). The twins (`test_hub_pg_twins`) are
fed the same bundles; what each command prints or writes must be the same.
"""

from __future__ import annotations

import json

import pytest
from synckit import open_
from test_hub_pg_twins import _pushed, pg_server, twins  # noqa: F401  (fixtures)
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
    refused = _both(hubs, tmp_path, monkeypatch, "coldchain", "custody", "KIT-404")
    assert refused["postgresql"] == refused["sqlcipher"]
    assert refused["postgresql"][0] == 1 and refused["postgresql"][2].count("\n") == 1, refused
