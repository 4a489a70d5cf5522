"""Copy a SQLCipher hub's ledger and transparency log into PostgreSQL, and prove the copy is the same history.

The first step of moving a hub to PostgreSQL (docs/hub-postgres.md), and
meanwhile a server-side copy of the hub's log for auditors and witnesses
(``hublog.export_chain`` reads it there as it does at the hub). Run again, it
appends what the hub logged since: the log only grows, so the copy's tree
must be a prefix of the hub's — a copy holding another history (another
hub's, or a rewritten one) is refused, never overwritten. Afterwards the two
trees must have the same root and the same latest signed checkpoint, or the
copy is rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from wardcrf.errors import Refused
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store
from wardcrf.tlog import merkle

from . import hublog
from .pgstore import PgStore

LEDGER_COLUMNS = {
    "sync_applied": (
        ("device", "bundle_seq"),
        ("manifest_sha", "first_seq", "last_seq", "chain_last", "file", "applied_at"),
    ),
    "sync_held": (
        ("id",),
        ("device", "bundle_seq", "manifest_sha", "reason", "file", "detail", "received_at", "resolved_at"),
    ),
}
"""Ledger tables (key columns, other columns): rows change at the hub (a gap filled, a fork resolved)."""

LOG_TABLES = {
    "tlog_leaves": ("idx", ("leaf", "device", "bundle_seq", "manifest_sha", "status", "logged_at")),
    "tlog_checkpoints": ("size", ("root", "note", "signed_at")),
    "tlog_sent": ("id", ("device", "size", "sent_at")),
}
"""Append-only tables (the ordering key, other columns): only rows past the copy's last are new."""


@dataclass(frozen=True)
class Copied:
    leaves: int
    new_leaves: int
    checkpoints: int
    applied: int
    held: int


def copy(src: Store, dst: PgStore) -> Copied:
    """Bring `dst` (a migrated PostgreSQL ledger) up to the hub `src`; one transaction, all or nothing."""
    with dst.transaction():
        dst.lock("tlog")
        copy_identity(src, dst)
        before = hublog.StoreNodes(dst).size
        size = hublog.StoreNodes(src).size
        # What the copy already holds must be the hub's, row for row: every leaf and every stored
        # subtree root (a root alone reads only some of them), or it is another history.
        nodes = {
            (int(r[0]), int(r[1])): bytes(r[2])
            for r in src.execute("SELECT level, idx, hash FROM tlog_nodes")
        }
        held = {
            (int(r[0]), int(r[1])): bytes(r[2])
            for r in dst.execute("SELECT level, idx, hash FROM tlog_nodes")
        }
        leaves = "SELECT idx, leaf FROM tlog_leaves WHERE idx < ? ORDER BY idx"
        if (
            before > size
            or any(nodes.get(k) != v for k, v in held.items())
            or src.execute(leaves, (before,)).fetchall() != [tuple(r) for r in dst.execute(leaves, (before,))]
        ):
            raise Refused(
                f"the PostgreSQL ledger holds a log of {before} bundles that is not this hub's"
                f" (the hub's has {size}): another hub's, or a rewritten history; nothing copied"
            )
        for table, (key, cols) in LOG_TABLES.items():
            last = dst.scalar(f"SELECT max({key}) FROM {table}")
            names = (key, *cols)
            rows = src.execute(
                f"SELECT {', '.join(names)} FROM {table} WHERE {key} > ? ORDER BY {key}",
                (-1 if last is None else last,),
            ).fetchall()
            if rows:
                dst.executemany(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows
                )
        # Subtree roots: the copy's are the hub's (checked above), so only new ones are missing.
        dst.executemany(
            "INSERT INTO tlog_nodes (level, idx, hash) VALUES (?, ?, ?)",
            [(*k, v) for k, v in sorted(nodes.items()) if k not in held],
        )
        for table, (keys, cols) in LEDGER_COLUMNS.items():
            names = (*keys, *cols)
            dst.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in cols),
                src.execute(f"SELECT {', '.join(names)} FROM {table}").fetchall(),
            )
        for table in ("sync_held", "tlog_sent"):  # the copy's own numbering goes on past the ids copied
            dst.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(max(id), 1)) FROM {table}"
            )
        _same_history(src, dst)
        return Copied(
            leaves=size,
            new_leaves=size - before,
            checkpoints=int(dst.scalar("SELECT count(*) FROM tlog_checkpoints")),
            applied=int(dst.scalar("SELECT count(*) FROM sync_applied")),
            held=int(dst.scalar("SELECT count(*) FROM sync_held")),
        )


def copy_identity(src: Store, dst: SqlStore) -> None:
    """The copy names the hub it is a copy of (its log's origin); a copy of another hub is refused."""
    site = src.one("SELECT id, site, device, device_name, kind, zone, created_at FROM site WHERE id = 1")
    if site is None or site[4] != "hub":
        raise Refused("this site is not a hub: only a hub's ledger is copied to PostgreSQL")
    held = dst.one("SELECT site, device FROM site WHERE id = 1")
    if held is None:
        dst.execute(
            "INSERT INTO site (id, site, device, device_name, kind, zone, created_at) VALUES (?,?,?,?,?,?,?)",
            site,
        )
        key = src.one(
            "SELECT device, sign_public, key_id, created_at FROM device_keys WHERE device = ?", (site[2],)
        )
        if key is None:
            raise Refused("this hub holds no signing key")
        dst.execute("INSERT INTO device_keys (device, sign_public, key_id, created_at) VALUES (?,?,?,?)", key)
    elif tuple(held) != (site[1], site[2]):
        raise Refused(
            f"the PostgreSQL ledger is hub {held[0]}/{held[1]}'s, not {site[1]}/{site[2]}'s; nothing copied"
        )


def _same_history(src: Store, dst: SqlStore) -> None:
    size = hublog.StoreNodes(src).size
    if hublog.StoreNodes(dst).size != size or (
        size and merkle.root(hublog.StoreNodes(dst)) != merkle.root(hublog.StoreNodes(src))
    ):
        raise Refused("the copy's transparency log does not have the hub's root; nothing copied")
    last = "SELECT note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1"
    if src.scalar(last) != dst.scalar(last):
        raise Refused("the copy's latest checkpoint is not the hub's; nothing copied")
