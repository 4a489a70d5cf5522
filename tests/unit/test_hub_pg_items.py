# ruff: noqa: F811  (the twins fixture is imported from test_hub_pg_twins and named by each test)
"""The commands about one item (a kit, a lot, a record) at a PostgreSQL hub read that item's rows from the
database itself, never a copy of the hub (issue 19; `sync.hubview.direct`, `cli.common.in_place`).

At twin hubs fed the same bundles they print what the SQLCipher hub prints, with the whole-hub copy
(`hubview.build`) made to fail; they write nothing when the hub's own events are projected already, so a
role that may only SELECT (what a read replica offers) runs them, and one line refuses them there when
the database lacks the hub's own latest events.
"""

from __future__ import annotations

import json
import uuid

import pytest
from synckit import PASSWORD, open_
from test_hub_pg_twins import _import, _pg_admin, twins  # noqa: F401  (fixtures; `pg_server` is the conftest's)
from test_hub_pg_whole import ENGINES, _both, _clockless, _cold_chain_pushed

CUSTODY = (
    ("coldchain", "custody", "KIT-1", "--json"),
    ("coldchain", "custody", "LOT-A1", "--json"),
    ("coldchain", "custody", "KIT-2", "--at", "2020-03-17T08:00:00+08:00", "--json"),
    ("coldchain", "custody", "KIT-1"),
    ("coldchain", "custody", "KIT-404"),
    ("coldchain", "custody", "x\x1b[2J\u202e" * 300),
)


@pytest.fixture
def no_copy(monkeypatch):
    """The whole-hub copy made to fail: a command that still makes one is caught."""
    from wardcrf.sync import hubview

    def refuse(*_a, **_k):
        raise AssertionError("a single-item command copied the whole hub (hubview.build)")

    monkeypatch.setattr(hubview, "build", refuse)


def _same(got: dict[str, tuple[int, str, str]], args: tuple[str, ...]) -> None:
    assert "Traceback" not in got["postgresql"][2] and "internal error" not in got["postgresql"][2], got
    if "--json" in args:
        sq, pg = (json.loads(got[e][1]) for e in ENGINES)
        assert _clockless(pg) == _clockless(sq) and sq, args
        assert [got[e][0] for e in ENGINES] == [got["sqlcipher"][0]] * 2 and got["postgresql"][2] == got[
            "sqlcipher"
        ][2]
    else:
        assert got["postgresql"] == got["sqlcipher"], args


def test_coldchain_custody_at_a_postgresql_hub_reads_the_kits_rows_never_a_copy_of_the_hub(
    twins, tmp_path, monkeypatch, no_copy
):
    """A kit, a lot, a kit as of a time, as JSON and as text: the SQLCipher twin's words; an unknown kit
    and a hostile id (control characters, bidi, 3,300 characters) refused alike, one line, no escape."""
    hubs = _cold_chain_pushed(twins, tmp_path)
    for args in CUSTODY:
        got = _both(hubs, tmp_path, monkeypatch, *args)
        _same(got, args)
    kit = json.loads(_both(hubs, tmp_path, monkeypatch, *CUSTODY[0])["postgresql"][1])
    assert kit[0]["lot"] == "LOT-A1" and kit[0]["links"], kit
    for refused in CUSTODY[-2:]:
        code, _out, err = _both(hubs, tmp_path, monkeypatch, *refused)["postgresql"]
        assert code == 1 and err.count("\n") == 1 and "\x1b" not in err and "\u202e" not in err, err


def test_coldchain_status_and_handovers_at_a_postgresql_hub_query_the_database_never_a_copy_of_the_hub(
    twins, tmp_path, monkeypatch, no_copy
):
    """The whole-hub cold-chain reports (`coldchain status`, `audit handovers`) read in place: the SQLCipher
    twin's report, as JSON and as text (logger files and photographs re-hashed in the kept bundles)."""
    hubs = _cold_chain_pushed(twins, tmp_path)
    for args in (("coldchain", "status", "--json"), ("audit", "handovers", "--json"), ("audit", "handovers")):
        got = _both(hubs, tmp_path, monkeypatch, *args)
        assert got["sqlcipher"][0] == 0, got["sqlcipher"]
        _same(got, args)
    report = json.loads(_both(hubs, tmp_path, monkeypatch, "audit", "handovers", "--json")["postgresql"][1])
    assert report["ok"] and report["transfers"] and report["logger_files"]


def test_sdv_verify_at_a_postgresql_hub_reads_the_records_rows_never_a_copy_of_the_hub(
    twins, tmp_path, monkeypatch, no_copy
):
    """The monitor's `sdv verify` (by event id, and by participant and form) finds the record, re-hashes its
    photograph in the kept bundle and marks it, as at the SQLCipher twin; refusals alike."""
    from test_hub_pg_evidence import _consent_with_photo
    from test_sync_cli import run

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
    s = open_(hubs["postgresql"])
    try:  # an event of the hub's own (its file's log, not the database's): named as at SQLCipher
        own = str(s.store.scalar("SELECT id FROM events WHERE type = 'user.added' ORDER BY pos LIMIT 1"))
    finally:
        s.close()
    for bad in (("sdv", "verify", "NOSUCH-1"), ("sdv", "verify", own), ("sdv", "verify", consent, "--source", "sha256:" + "0" * 64),
                ("sdv", "verify", consent, "--field", "no_such_field"),
                ("sdv", "verify", "--participant", "NOBODY", "--form", "consent"),
                ("sdv", "verify", "x\x1b[2J" * 300)):  # fmt: skip
        refused = _both(hubs, tmp_path, monkeypatch, *bad, user="monitor")
        assert refused["postgresql"] == refused["sqlcipher"], (bad, refused)
        assert refused["postgresql"][0] in (1, 2) and refused["postgresql"][2].count("\n") == 1, refused
    got = _both(hubs, tmp_path, monkeypatch, "sdv", "verify", consent, "--json", user="monitor")
    done = {e: json.loads(got[e][1]) for e in ENGINES}
    assert got["postgresql"][0] == 0 == got["sqlcipher"][0], got
    for d in done.values():
        d.pop("event")
        for m in d["marks"]:
            for k in ("event_id", "at", "hlc"):
                m.pop(k)
        for f in d["fields"]:
            f.pop("verified_by")
    assert done["postgresql"] == done["sqlcipher"] and done["postgresql"]["state"] == "verified"
    assert done["postgresql"]["marks"][0]["sources"] == [f"sha256:{sha}"]
    # `sdv show` and `report sdv` read in place too: through a role that may only SELECT (a replica), what
    # the owner's connection reads.
    h = hubs["postgresql"]
    reader = _reader(h, monkeypatch)
    from wardcrf.clock import now_utc

    # Both reads at one moment: a report may say when it was made, to the minute.
    monkeypatch.setenv("WARDCRF_FAKE_NOW", now_utc().isoformat())
    for args in (("sdv", "show", consent, "--json"), ("report", "sdv", "--json")):
        full = (*args, "-d", str(h.data_dir))
        owner = run(*full, user="monitor", monkeypatch=monkeypatch)
        with monkeypatch.context() as m:
            m.setenv("WARDCRF_HUB_DATABASE", reader)
            assert run(*full, user="monitor", monkeypatch=monkeypatch) == owner and owner[0] == 0, args
        assert "verified" in owner[1]


def _reader(h, monkeypatch) -> str:
    """A login role that may only SELECT (what a read replica offers), named in WARDCRF_HUB_DATABASE."""
    role = f"item_reader_{uuid.uuid4().hex[:8]}"
    with _pg_admin(h) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    dsn = (h.data_dir / "hub-database").read_text().strip()
    assert "user=postgres" in dsn, dsn
    return dsn.replace("user=postgres", f"user={role}")


def test_the_cold_chain_reads_run_through_a_role_that_may_only_select_and_refuse_when_the_hub_is_ahead(
    twins, tmp_path, monkeypatch
):
    """Through a SELECT-only role, `coldchain custody`, `status`, `excursions` and `audit handovers` print what the owner's
    connection prints (nothing written). When the hub has made an event of its own since (a user added) that the database does not
    project yet, that role is refused in one line naming the primary, nothing printed; once a command
    against the primary projected it, the role reads again."""
    from test_sync_cli import run

    from wardcrf import users

    hubs = _cold_chain_pushed(twins, tmp_path)
    h = hubs["postgresql"]
    args = ("coldchain", "custody", "KIT-1", "--json", "-d", str(h.data_dir))
    owner = run(*args, monkeypatch=monkeypatch)
    assert owner[0] == 0, owner
    reader = _reader(h, monkeypatch)
    with monkeypatch.context() as m:
        m.setenv("WARDCRF_HUB_DATABASE", reader)
        assert run(*args, monkeypatch=monkeypatch) == owner
    status = ("coldchain", "status", "--json", "-d", str(h.data_dir))
    handovers = ("audit", "handovers", "--json", "-d", str(h.data_dir))
    excursions = ("coldchain", "excursions", "--json", "-d", str(h.data_dir))
    owners = [run(*a, monkeypatch=monkeypatch) for a in (status, handovers)]
    with monkeypatch.context() as m:
        m.setenv("WARDCRF_HUB_DATABASE", reader)
        readers = [run(*a, monkeypatch=monkeypatch) for a in (status, handovers)]
        listed = run(*excursions, monkeypatch=monkeypatch)
    assert listed == run(*excursions, monkeypatch=monkeypatch) and json.loads(listed[1]), listed
    assert [json.loads(o[1])["units" if i == 0 else "transfers"] for i, o in enumerate(readers)] == [
        json.loads(o[1])["units" if i == 0 else "transfers"] for i, o in enumerate(owners)
    ] and owners[1][0] == 0 == readers[1][0]
    s = open_(h)
    try:
        users.add_user(s, "pharm2", "Second Pharmacist", "pharmacist", PASSWORD)
    finally:
        s.close()
    with monkeypatch.context() as m:
        m.setenv("WARDCRF_HUB_DATABASE", reader)
        code, out, err = run(*args, monkeypatch=monkeypatch)
    assert code == 1 and out == "" and err.count("\n") == 1 and "primary" in err, (code, out, err)
    assert run(*args, monkeypatch=monkeypatch) == owner  # the owner's connection projects it first
    with monkeypatch.context() as m:
        m.setenv("WARDCRF_HUB_DATABASE", reader)
        assert run(*args, monkeypatch=monkeypatch) == owner
    # A database that cannot be reached: one line, exit 1, nothing printed.
    with monkeypatch.context() as m:
        m.setenv("WARDCRF_HUB_DATABASE", f"host={tmp_path}/nowhere dbname=x user=postgres connect_timeout=3")
        code, out, err = run(*args, monkeypatch=monkeypatch)
    assert code == 1 and out == "" and err.count("\n") == 1 and "cannot connect" in err, (code, out, err)
