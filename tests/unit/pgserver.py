"""A throwaway PostgreSQL server for the tests of the hub's PostgreSQL ledger.

`initdb` + `pg_ctl` in a fresh temporary directory, listening on a unix
socket in that directory only (no TCP port, so parallel test workers never
collide), trust authentication for the socket's owner, fsync off (the
server's own durability is not under test; a killed *client* is). PostgreSQL
refuses to run as root: when the tests run as root (CI in a fresh clone),
the server runs as the `postgres` account Debian's package creates (or
`nobody`), which owns the directory.

Skips (with the reason) only when no PostgreSQL server binaries are
installed; any other failure to start is an error, not a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


@dataclass
class Server:
    root: Path
    bin: Path
    user: pwd.struct_passwd | None
    template: str = ""

    @property
    def admin_dsn(self) -> str:
        return f"host={self.root} dbname=postgres user=postgres"

    def dsn(self, dbname: str) -> str:
        return f"host={self.root} dbname={dbname} user=postgres"

    def run(self, *args: str) -> None:
        kw = (
            {}
            if self.user is None
            else {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        )
        res = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C"},
            **kw,  # type: ignore[arg-type]
        )
        if res.returncode != 0:
            log = (
                (self.root / "server.log").read_text(errors="replace")[-2000:]
                if (self.root / "server.log").exists()
                else ""
            )
            raise RuntimeError(f"{args[0]} failed ({res.returncode}): {res.stderr.strip()[-1000:]}\n{log}")

    def new_database(self, *, migrated: bool = False) -> str:
        """A fresh empty database; `migrated`: one holding the whole schema of `hub_pg.sql` already,
        copied from a template migrated once per server (what `hub init --database` would create,
        without its identity): the hub suite's PostgreSQL runs make one per test."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        template = self._migrated_template() if migrated else "template0"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.dsn(name)

    def _migrated_template(self) -> str:
        if not self.template:
            from wardcrf.sync.pgstore import PgStore

            dsn = self.new_database()
            store = PgStore(dsn)
            try:
                store.migrate()
            finally:
                store.close()  # CREATE DATABASE ... TEMPLATE needs it unconnected
            self.template = dsn.split("dbname=")[1].split()[0]
        return self.template


def start(*, durable: bool = False) -> Server:
    """A running server. `durable` keeps fsync on (benchmarks: the comparison with SQLCipher's
    synchronous=FULL commits is fair only then); tests turn it off (the server's own
    durability is not what they test)."""
    found = bin_dir()
    if found is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        )
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install -e '.[dev]')")
    user = _server_user()
    # /tmp itself: the server's account must reach the directory (a root-only $TMPDIR would not do),
    # and a unix socket's path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="wardcrf-pg-", dir="/tmp"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    server = Server(root, found, user)
    server.run(
        "initdb",
        "-D",
        str(root / "data"),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
        "-N",
    )
    server.run(
        "pg_ctl", "-D", str(root / "data"), "-w", "-t", "120", "-l", str(root / "server.log"),
        "-o", f"-k {root} -c listen_addresses='' -c fsync={'on' if durable else 'off'} -c max_connections=80",
        "start",
    )  # fmt: skip
    return server


def stop(server: Server) -> None:
    try:
        server.run("pg_ctl", "-D", str(server.root / "data"), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


def serve() -> Iterator[Server]:
    """For a session fixture: one server per test process, stopped at the end."""
    server = start()
    try:
        yield server
    finally:
        stop(server)
