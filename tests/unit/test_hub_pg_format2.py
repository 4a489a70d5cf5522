"""A format-2 trial's ward (PALM) imported at a PostgreSQL hub as at a SQLCipher one (issue 19).

Twin hubs: a hub made with `hub init --database` (PostgreSQL) and a copy of
its directory without the database (the same identity, keys, registry and
own events, on SQLCipher alone). The PALM ward registered there sends the
same bundles to both: its consent, eligibility, enrollment, an arm
allocated from the list the hub made, the vitals and an infusion; then an
allocation off the list, held at both. The hub's own list reaches
PostgreSQL through `pghub.mirror_own_events`; the allocation is checked
against the hub's copy of the list, opened with the key in the hub's file.

The ward runs PALM as shipped: its consent carries the photograph of the
signed page, and its infusion the cold chain's custody of the vial (the
freezer, its logger file, the handover to the ward), so both reach the
PostgreSQL hub with the records that need them.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from forge import append_raw
from site_users import PASSWORD
from synckit import open_
from test_engine_ward_cli import Ward, _infusion, _product, _vitals, _ward
from test_sync_cli import run
from wardcrf.sync import hub, ward
from wf_support import ready_kit_on

from wardcrf import users
from wardcrf.engine import model
from wardcrf.site import Site
from wardcrf.sqlstore import SqlStore

COMPARED = (
    "rand_lists",
    "rand_entries",
    "rand_allocations",
    "rand_flags",
    "rand_unblinding_keys",
    "records",
    "participants",
    "administration_kits",
    "ward_queue",
    "counters",
    "protocols",
    "users",
    "photos",
    "cc_kits",
    "cc_custody",
)


def _columns(store: SqlStore, table: str) -> list[str]:
    """The table's columns as SQLCipher has them (PostgreSQL's `rowid` twin is not one)."""
    return [str(r[1]) for r in store.execute(f"PRAGMA table_info({table})").fetchall()]


def _rows(store: SqlStore, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return sorted((tuple(r) for r in store.execute(f"SELECT {cols} FROM {table}")), key=repr)


def _export(w: Ward, to: Path) -> list[Path]:
    to.mkdir()
    s = open_(w.site())
    try:
        files = [f for f in ward.export(s, to).files if f.name.endswith(".tar.age")]
        s.store.execute(
            "UPDATE sync_outbox SET receipted_at = 'test'"
        )  # as if receipted: the next holds what is new
        return files
    finally:
        s.close()


def _import(h: Site, files: list[Path]) -> list[str]:
    s = open_(h, "admin")
    try:
        return [
            i.result.outcome.status if i.result else f"refused: {i.refused}"
            for i in hub.import_files(s, files)
        ]
    finally:
        s.close()


def test_a_palm_ward_projects_alike_at_a_sqlcipher_and_a_postgresql_hub(
    cli, tmp_path, monkeypatch, pg_server
):
    trial = model.shipped("palm.toml")
    pg_dir = tmp_path / "pg-hub"
    pg_hub = hub.init(
        pg_dir, admin="admin", password=PASSWORD, protocol_file=trial, database=pg_server.new_database()
    ).site
    s = open_(pg_hub)
    try:
        users.add_user(s, "coordinator", "Coco Ordinator", "coordinator", PASSWORD)
    finally:
        s.close()
    # The ward registered, its unblinding key sent, the list made at the hub and delivered (`_ward`).
    w = _ward(cli, tmp_path, monkeypatch, "palm", trial_hub=pg_hub)
    first = sorted((tmp_path / "outbox").glob("*.tar.age"))
    # The twin: the same hub on SQLCipher alone (its file holds the list it made, with its projections).
    lite_dir = tmp_path / "lite-hub"
    shutil.copytree(pg_dir, lite_dir, ignore=shutil.ignore_patterns("*.lock"))
    (lite_dir / "hub-database").unlink()
    lite_hub = Site.open(lite_dir)
    assert _import(lite_hub, first) == ["applied"] * len(first)
    s = open_(w.site())
    try:
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
    finally:
        s.close()

    # A participant: consent, eligible, enrolled, randomized, vitals before, the infusion, vitals after.
    pid = w.consent()
    assert w.screen(pid).code == 0
    r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
    assert r.code == 0, r.err
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    arm = r.out.split("randomized: arm ", 1)[1].split()[0]
    start = w.now + timedelta(hours=1)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root, _product(arm))  # the custody gate
    assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    assert _vitals(w, pid, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0
    files = _export(w, tmp_path / "b2")
    assert _import(pg_hub, files) == ["applied"] * len(files)
    assert _import(lite_hub, files) == ["applied"] * len(files)

    # An allocation off the list: the next participant given entry 5 of the stratum, not entry 2.
    other = w.consent()
    s = open_(w.site())
    try:
        genuine = json.loads(
            s.store.scalar(
                "SELECT line FROM events WHERE type = 'randomization.allocated' ORDER BY pos LIMIT 1"
            )
        )["body"]
    finally:
        s.close()
    forged = {**genuine, "participant": other, "position": 5}
    append_raw(w.site(), "randomization.allocated", forged, subject=f"participant:{other}", role="clinician")
    files = _export(w, tmp_path / "b3")
    assert _import(pg_hub, files)[-1] == "sequencing"
    assert _import(lite_hub, files)[-1] == "sequencing"

    seen: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    held: dict[str, list[dict[str, Any]]] = {}
    lite = open_(lite_hub)
    try:
        columns = {t: _columns(lite.store, t) for t in COMPARED}
        seen["sqlcipher"] = {t: _rows(lite.store, t, columns[t]) for t in COMPARED}
        held["sqlcipher"] = lite.store.rows("SELECT bundle_seq, reason, detail FROM sync_held")
    finally:
        lite.close()
    s = open_(pg_hub)
    try:
        with hub.ledger_store(s) as store:
            seen["postgresql"] = {t: _rows(store, t, columns[t]) for t in COMPARED}
            held["postgresql"] = store.rows("SELECT bundle_seq, reason, detail FROM sync_held")
            assert store.scalar("SELECT count(*) FROM events WHERE type = 'randomization.list_issued'") == 0
    finally:
        s.close()
    for table in COMPARED:
        assert seen["postgresql"][table] == seen["sqlcipher"][table], table
    # What the equal rows say.
    rows = seen["sqlcipher"]
    assert len(rows["rand_lists"]) == 1 and len(rows["rand_entries"]) >= 8  # the hub's list, mirrored
    assert [a[0] for a in rows["rand_allocations"]] == [pid]  # the held allocation merged nowhere
    assert [q[0] for q in rows["ward_queue"]] == [pid]  # the other consent is in the held bundle
    assert [r[1] for r in rows["protocols"]] == [trial.version]
    assert rows["rand_flags"] == []  # rolled back with its bundle
    assert [(k[1], k[2], k[4]) for k in rows["administration_kits"]] == [(pid, "infusion", "VIAL-0001")]
    assert len(rows["photos"]) >= 1  # the consent's signed page among them, the same at both hubs
    assert "VIAL-0001" in repr(rows["cc_kits"]) and rows["cc_custody"]  # the vial's custody, handed over
    assert held["postgresql"] == held["sqlcipher"] and len(held["sqlcipher"]) == 1
    # `report randomization` at each hub: the same lists, counts per arm, and the held allocation.
    reports = {}
    for engine, at in (("sqlcipher", lite_hub), ("postgresql", pg_hub)):
        code, out, err = run(
            "report", "randomization", "--json", "-d", str(at.data_dir), monkeypatch=monkeypatch
        )
        assert code == 0, err
        reports[engine] = json.loads(out)
    assert reports["postgresql"]["held"] and [h["detail"] for h in reports["postgresql"]["held"]] == [
        h["detail"] for h in reports["sqlcipher"]["held"]
    ]
    for key in ("lists", "unblindings", "exhausted"):
        assert reports["postgresql"][key] == reports["sqlcipher"][key], key
    [listed] = reports["postgresql"]["lists"]
    assert sum(sum(st["by_arm"].values()) for st in listed["strata"]) == 1
    [h] = held["sqlcipher"]
    assert h["reason"] == "sequencing" and f"of {other}" in h["detail"]
    assert "out of order: entry 5 taken when entry 2 was the next" in h["detail"]
