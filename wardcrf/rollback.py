"""A counter outside the database, so an older wardcrf.db put in place of a newer one is noticed.

Copying an older ``wardcrf.db`` over the current one (a "fix" from a USB
stick, a restored disk image) yields a database that is internally perfect:
its chains verify, and the records written since the copy are simply gone.
Nothing inside the file can tell. So every committed write transaction bumps
a counter in the database (`rollback_guard`) and, once committed, the same
value is written to ``wardcrf.counter`` beside the key slots. At sign-in the
two are compared: a database counter below the file's is a database older
than this laptop has already seen, and sign-in is refused in one line saying
what to do (`RollbackDetected`), until the newest file is put back or an
admin accepts the older one (`wardcrf db accept-rollback --reason`, logged).

Ordering makes crashes harmless: the file is written only *after* the commit
it mirrors, and only ever upward, so at every instant the file is at most
the database's value. A process killed between commit and file write leaves
the file behind, never ahead (the next sign-in catches it up): a SIGKILL
never raises a false alarm. The file has two slots written in turn, each with
its own MAC, so a torn write (power loss) spoils one slot and the other
still holds an earlier, valid value.

Each slot is MAC'd (HMAC-SHA256) under a key derived from the database key
and bound to the site and device: a counter cannot be edited by hand, nor
taken from another laptop. What this does not stop: someone holding the
database key can forge the file, and someone who copies back an old counter
file together with the old database defeats it. That is the insider of
docs/security.md; the hub's receipts are the check that does not live on
the laptop.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import Refused
from .store import Store

FILENAME = "wardcrf.counter"
FORMAT = "wardcrf-counter/1"
_SLOT = 256  # bytes per slot, a JSON line padded with spaces


class RollbackDetected(Refused):
    """The database is older than this laptop's record of it. Exit 1, one line."""

    def __init__(self, recorded: int, database: int, path: Path) -> None:
        self.recorded, self.database = recorded, database
        super().__init__(
            f"{path.name} is an older copy of wardcrf.db: this laptop recorded write {recorded:,},"
            f" the database holds {database:,}, so the records written after it are missing here."
            " Nothing was changed. Put the newest wardcrf.db back (or `wardcrf db restore` the latest"
            " backup); if this copy is the one to keep, an admin accepts it with"
            " `wardcrf db accept-rollback --reason TEXT` (the hub still holds what it received)"
        )


@dataclass(frozen=True, repr=False)
class Counter:
    """The counter file of one data directory, with the MAC key of its database."""

    path: Path
    key: bytes
    site: str
    device: str

    @classmethod
    def of(cls, data_dir: Path, database_key: bytes, site: str, device: str) -> Counter:
        info = f"wardcrf rollback counter|{site}|{device}".encode()
        mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(database_key)
        return cls(Path(data_dir) / FILENAME, mac_key, site, device)

    def _mac(self, n: int) -> str:
        msg = f"{FORMAT}|{self.site}|{self.device}|{n}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def _slot(self, n: int) -> bytes:
        line = json.dumps({"format": FORMAT, "n": n, "mac": self._mac(n)}, separators=(",", ":"))
        return line.encode("ascii").ljust(_SLOT - 1) + b"\n"

    def _valid(self, raw: bytes) -> int | None:
        try:
            obj = json.loads(raw)
            n = obj["n"]
            ok = (
                obj["format"] == FORMAT
                and isinstance(n, int)
                and hmac.compare_digest(obj["mac"], self._mac(n))
            )
        except (ValueError, KeyError, TypeError):
            return None
        return n if ok else None

    def _read_fd(self, fd: int) -> int | None:
        raw = os.pread(fd, 2 * _SLOT, 0)
        values = [self._valid(raw[i : i + _SLOT]) for i in (0, _SLOT)]
        return max((v for v in values if v is not None), default=None)

    def read(self) -> int | None:
        """The highest valid value in the file; None when it is missing or no slot verifies."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return self._read_fd(fd)
        finally:
            os.close(fd)

    def write(self, n: int, *, lower: bool = False) -> None:
        """Record `n`, which must already be committed. Only upward unless `lower` (accepted rollback)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # publishers of several processes, one at a time
            held = self._read_fd(fd)
            if held is not None and n <= held and not lower:
                return
            os.pwrite(fd, self._slot(n), (n % 2) * _SLOT)
            if lower:  # both slots, or the other one would still say the higher value
                os.pwrite(fd, self._slot(n), ((n + 1) % 2) * _SLOT)
        finally:
            os.close(fd)


def database_value(store: Store) -> int:
    return int(store.scalar("SELECT counter FROM rollback_guard WHERE id = 1") or 0)


def attach(store: Store, counter: Counter) -> None:
    """Bump the counter in every committed write transaction of `store`; mirror it to the file after."""

    def bump(st: Store) -> None:
        if st.conn.total_changes != st.changes_at_begin:
            st.execute("UPDATE rollback_guard SET counter = counter + 1 WHERE id = 1")

    def publish(st: Store) -> None:
        # The commit is durable already; a file that cannot be written (full disk,
        # read-only stick) only leaves the counter behind, which is never an alarm.
        with contextlib.suppress(OSError):
            counter.write(database_value(st))

    store.before_commit.append(bump)
    store.after_commit.append(publish)


@dataclass(frozen=True)
class Status:
    database: int
    recorded: int | None

    @property
    def rolled_back(self) -> bool:
        return self.recorded is not None and self.recorded > self.database


def status(store: Store, counter: Counter) -> Status:
    """The file first, then the database: the file is written only after the commit whose value it
    holds, so a database read after it is never below it, however many processes commit meanwhile
    (read the other way round, a commit between the two reads looked like a rollback)."""
    recorded = counter.read()
    return Status(database_value(store), recorded)
