"""A hub whose wards' data lives in PostgreSQL (issue 19): `hub init --database`, `hub import`, `audit verify`.

On a real PostgreSQL server (`pgserver`, skipped only where its binaries are
not installed); where a behaviour is the hub's whatever its engine, the test
runs on both (the SQLCipher hub is the default).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator

import pgserver
import pytest
from synckit import PASSWORD
from test_sync_cli import run

from wardcrf.site import Site

ENGINES = ("sqlcipher", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    yield from pgserver.serve()


def _pg(dsn: str):
    from wardcrf.sync.pgstore import PgStore

    return PgStore(dsn)


# -- hub init --database --------------------------------------------------------------------


def test_hub_init_with_a_database_keeps_the_dsn_without_its_password(pg_server, tmp_path, monkeypatch):
    dsn = pg_server.new_database()
    hub_dir = tmp_path / "hub"
    code, out, err = run(
        "hub", "init", "-d", str(hub_dir), "--admin", "admin", "--database", dsn + " password=s3cret-pw",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert "s3cret" not in out + err and "hub-database" in out
    dbname = dsn.split("dbname=")[1].split()[0]
    assert f"postgresql database {dbname} on" in out
    kept = hub_dir / "hub-database"
    assert "s3cret" not in kept.read_text() and dbname in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    session = Site.open(hub_dir).unlock("admin", PASSWORD)
    try:
        device = session.ctx.device
    finally:
        session.close()
    pg = _pg(dsn)
    try:
        assert pg.one("SELECT kind, device FROM site WHERE id = 1") == ("hub", device)
        assert pg.scalar("SELECT count(*) FROM device_keys") == 1
        assert {"0001-hub-ledger", "0003-event-log"} <= set(pg.applied_migrations())
    finally:
        pg.close()


def test_hub_init_takes_the_database_from_the_environment(pg_server, tmp_path, monkeypatch):
    dsn = pg_server.new_database()
    monkeypatch.setenv("WARDCRF_HUB_DATABASE", dsn)
    code, _out, err = run(
        "hub", "init", "-d", str(tmp_path / "hub"), "--admin", "admin", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert (tmp_path / "hub" / "hub-database").is_file()


def _refused(args, tmp_path, monkeypatch):
    hub_dir = tmp_path / "hub"
    code, out, err = run(
        "hub", "init", "-d", str(hub_dir), "--admin", "admin", *args, monkeypatch=monkeypatch
    )
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and "s3cret" not in out + err, err
    assert not hub_dir.exists()  # nothing created
    return err


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("postgresql://admin:s3cret@[::1/hub", "cannot parse"),
        ("nonsense s3cret", "cannot parse"),
        ("host=db.example dbname=hub password=s3cret\x00", "control character"),
        ("host=db.example\ndbname=hub password=s3cret", "control character"),
        ("user=x password=s3cret " + "a" * 5000, "longer than 4096"),
    ],
)
def test_hub_init_refuses_a_malformed_dsn_and_creates_nothing(tmp_path, monkeypatch, dsn, says):
    pytest.importorskip("psycopg")
    assert says in _refused(["--database", dsn], tmp_path, monkeypatch)


def test_hub_init_refuses_an_unreachable_server_and_creates_nothing(tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    dsn = f"host={tmp_path}/nowhere dbname=hub user=postgres password=s3cret connect_timeout=5"
    assert "cannot connect" in _refused(["--database", dsn], tmp_path, monkeypatch)


def test_hub_init_refuses_a_database_that_holds_a_hub_already(pg_server, tmp_path, monkeypatch):
    dsn = pg_server.new_database()
    code, _out, err = run(
        "hub", "init", "-d", str(tmp_path / "first"), "--admin", "admin", "--database", dsn, monkeypatch=monkeypatch
    )  # fmt: skip
    assert code == 0, err
    assert "already holds hub HUB/" in _refused(["--database", dsn], tmp_path, monkeypatch)


def test_hub_init_without_psycopg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    monkeypatch.setitem(sys.modules, "psycopg.conninfo", None)
    err = _refused(["--database", "host=db.example dbname=hub"], tmp_path, monkeypatch)
    assert "psycopg" in err and "wardcrf[postgres]" in err


def test_a_dsn_file_naming_another_hubs_database_is_refused(pg_server, tmp_path, monkeypatch):
    from synckit import open_
    from wardcrf.sync import pghub

    from wardcrf.errors import Refused

    for name in ("a", "b"):
        code, _o, err = run(
            "hub", "init", "-d", str(tmp_path / name), "--admin", "admin", "--database", pg_server.new_database(),
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 0, err
    (tmp_path / "a" / "hub-database").write_text((tmp_path / "b" / "hub-database").read_text())
    session = open_(Site.open(tmp_path / "a"))
    try:
        with pytest.raises(Refused, match="is not this hub's"):
            pghub.open_ledger(session)
    finally:
        session.close()
    assert os.environ.get("WARDCRF_HUB_DATABASE") is None
