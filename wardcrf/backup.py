"""Backups a ward can trust: consistent, encrypted, verified, restorable.

A backup is one uncompressed tar file holding ``wardcrf.db`` (a consistent
copy made with SQLite's online backup API while the app may be running,
still encrypted under the same key), ``keyslots.json`` (so any user's
password, or the recovery key, opens it on a new laptop) and the bundles the
site keeps under ``sync/applied/`` and ``sync/held/`` (at a hub, the
original signed records, which also hold its photos: `photos.archive`).
It carries no drafts: unsaved forms belong to the laptop and its users, and
a restored laptop must not offer yesterday's half-typed forms back. After writing, the
copy is opened, integrity-checked and its chains verified before it gets its
final name; a pulled USB stick never leaves a half backup named as whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import behind, eventlog, sessionkeys
from .clock import iso_utc, now_utc
from .errors import AuthError, Refused, StoreError, UsageError, VerificationFailed
from .keyslots import FILENAME as SLOTS_FILENAME
from .keyslots import KeySlots
from .rollback import FILENAME as ROLLBACK_COUNTER
from .site import Session, Site
from .store import DB_FILENAME, DatabaseError, Store, copy_encrypted, translate_error

SUFFIX = ".wardbackup"


@dataclass
class BackupResult:
    path: Path
    sha256: str
    events: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _without_drafts(copy: Any) -> None:
    """Drafts never leave the laptop (wardcrf.drafts): the copy carries none,
    and their pages are zeroed, not left in the file's free space."""
    copy.execute("PRAGMA secure_delete = 1")
    copy.execute("DELETE FROM drafts")
    copy.execute("PRAGMA journal_mode = DELETE")


def _verify_copy(db_file: Path, key: bytes) -> int:
    store = Store(db_file, key, readonly=False)
    try:
        result = store.integrity_check()
        if result != "ok":
            raise VerificationFailed(f"backup copy failed integrity check: {result}")
        n, problems = eventlog.verify_chains(store)
        if problems:
            raise VerificationFailed(f"backup copy failed audit verify: {problems[0]}")
        return n
    finally:
        store.close()


_KEPT = re.compile(r"^sync/(applied|held)/[A-Za-z0-9][A-Za-z0-9._-]*\.tar\.age(\.minisig)?$")


def _kept_bundles(data_dir: Path) -> list[tuple[str, Path]]:
    """(member name, file) of every bundle the site keeps; written once, never changed."""
    out = []
    for kind in ("applied", "held"):
        folder = data_dir / "sync" / kind
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                arcname = f"sync/{kind}/{f.name}"
                if f.is_file() and _KEPT.match(arcname):
                    out.append((arcname, f))
    return out


KeptElsewhere = Callable[[Session], list[str]]
"""`fn(session)`: the kept bundles (``applied/NAME``) photo rows kept beside the site's file point to."""

_KEPT_ELSEWHERE: list[KeptElsewhere] = []


def register_kept_elsewhere(fn: KeptElsewhere) -> KeptElsewhere:
    """Add where else a site's photo archive is (a PostgreSQL hub's database) to the backup's check."""
    if fn not in _KEPT_ELSEWHERE:
        _KEPT_ELSEWHERE.append(fn)
    return fn


def _check_kept(db_file: Path, key: bytes, kept: list[tuple[str, Path]], elsewhere: list[str]) -> None:
    """Refuse a backup that would lose photos: every bundle the photo archive points to is in it.

    The archive is the file's and, at a PostgreSQL hub, the database's (`elsewhere`): the wards'
    photos are there, their bytes in the kept bundles this backup carries.
    """
    names = {arcname for arcname, _ in kept}
    store = Store(db_file, key)  # read-write so its WAL is read; nothing is written
    try:
        needed = [r[0] for r in store.execute("SELECT DISTINCT bundle FROM photo_archive ORDER BY bundle")]
    finally:
        store.close()
    for rel in sorted({*needed, *elsewhere}):
        if f"sync/{rel}" not in names:
            raise VerificationFailed(
                f"kept bundle sync/{rel}, which holds photo originals, is missing from this site; "
                "no backup written (restore that file first)"
            )


def backup(session: Session, to_dir: Path) -> BackupResult:
    session.require("db.backup", what="make backups")
    to_dir = Path(to_dir)
    if not to_dir.is_dir():
        raise UsageError(f"backup folder {to_dir} does not exist (plug in the stick or create it)")
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    name = f"{session.ctx.site}-{session.ctx.device}-{stamp}{SUFFIX}"
    final = to_dir / name
    if final.exists():
        raise Refused(f"{final} already exists; wait a second and retry")
    key = sessionkeys.database_key(session)
    try:
        with tempfile.TemporaryDirectory(dir=to_dir, prefix=".wardcrf-backup-") as tmp:
            tmp_path = Path(tmp)
            copy = tmp_path / DB_FILENAME
            copy_encrypted(session.store, copy, key, _without_drafts)
            events = _verify_copy(copy, key)
            slots_copy = tmp_path / SLOTS_FILENAME
            shutil.copyfile(session.site.slots.path, slots_copy)
            kept = _kept_bundles(session.site.data_dir)
            _check_kept(copy, key, kept, [rel for fn in _KEPT_ELSEWHERE for rel in fn(session)])
            partial = to_dir / (name + ".partial")
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                tar.add(copy, arcname=DB_FILENAME)
                tar.add(slots_copy, arcname=SLOTS_FILENAME)
                for arcname, path in kept:
                    tar.add(path, arcname=arcname)
            with open(partial, "rb") as fh:
                os.fsync(fh.fileno())
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            os.replace(partial, final)
            _fsync_dir(to_dir)
    except OSError as exc:
        with contextlib.suppress(OSError):
            (to_dir / (name + ".partial")).unlink()
        raise translate_error(exc, final) from None
    session.append(
        type="db.backup_made",
        subject=f"site:{session.ctx.site}",
        body={"file": name, "sha256": digest, "events": events},
    )
    return BackupResult(final, digest, events)


def _read_backup(path: Path, into: Path) -> None:
    if path.is_dir():
        # the admin on a new laptop often names the USB stick's folder, not the file in it
        found = sorted(p.name for p in path.glob("*.wardbackup"))
        if found:
            raise UsageError(f"{path} is a folder; name the backup file in it: {', '.join(found)}")
        raise UsageError(f"{path} is a folder with no .wardbackup file; name a backup file")
    try:
        with tarfile.open(path, "r:") as tar:
            names = tar.getnames()
            core = sorted(n for n in names if not _KEPT.match(n))
            if core != sorted([DB_FILENAME, SLOTS_FILENAME]) or len(set(names)) != len(names):
                raise Refused(f"{path} is not a wardcrf backup (members: {', '.join(names) or 'none'})")
            for member in tar.getmembers():
                if not member.isfile():
                    raise Refused(f"{path} is not a wardcrf backup ({member.name} is not a regular file)")
                src = tar.extractfile(member)
                assert src is not None
                # Names are whitelisted above (no "..", no absolute path).
                (into / member.name).parent.mkdir(parents=True, exist_ok=True)
                with open(into / member.name, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError) as exc:
        raise Refused(f"{path} is not a readable wardcrf backup: {exc}") from None
    except FileNotFoundError:
        raise UsageError(f"backup file {path} does not exist") from None


@dataclass
class RestoreResult:
    data_dir: Path
    events: int
    replaced: Path | None
    site: str
    device: str
    behind: behind.Behind | None = None  # stopped: the replaced database or the hub holds more


def restore(
    backup_file: Path,
    data_dir: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    recovery_key: str | None = None,
) -> RestoreResult:
    """Put a backup in place. Needs a user's password or the recovery key.

    An existing site in `data_dir` is moved aside (never deleted) into
    ``data_dir/replaced-<time>/`` so nothing is lost.
    """
    backup_file, data_dir = Path(backup_file), Path(data_dir)
    with tempfile.TemporaryDirectory(
        prefix=".wardcrf-restore-", dir=data_dir.parent if data_dir.parent.exists() else None
    ) as tmp:
        tmp_path = Path(tmp)
        _read_backup(backup_file, tmp_path)
        slots = KeySlots.load(tmp_path)
        if recovery_key:
            key = slots.unwrap_with_recovery(recovery_key)
        elif username and password is not None:
            maybe = slots.unwrap_with_password(username, password)
            if maybe is None:
                raise AuthError(f"wrong user name or password for the backup in {backup_file.name}")
            key = maybe
        else:
            raise UsageError("restore needs WARDCRF_USER and WARDCRF_PASSWORD, or --recovery-key")
        try:
            events = _verify_copy(tmp_path / DB_FILENAME, key)
        except StoreError as exc:
            raise VerificationFailed(f"backup {backup_file.name} cannot be opened: {exc}") from None
        replaced = None
        data_dir.mkdir(parents=True, exist_ok=True)
        existing = [
            p
            for p in (
                data_dir / DB_FILENAME,
                data_dir / SLOTS_FILENAME,
                data_dir / (DB_FILENAME + "-wal"),
                data_dir / (DB_FILENAME + "-shm"),
                data_dir / ROLLBACK_COUNTER,  # it belongs to the database it counted; made anew below
            )
            if p.exists()
        ]
        restored_sync = tmp_path / "sync"
        if restored_sync.is_dir() and (data_dir / "sync").exists():
            existing.append(data_dir / "sync")  # kept bundles go with the database they belong to
        if existing:
            replaced = _aside(data_dir)
            for p in existing:
                os.replace(p, replaced / p.name)
        if restored_sync.is_dir():
            for f in sorted(restored_sync.rglob("*")):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            shutil.move(str(restored_sync), str(data_dir / "sync"))
        for name in (DB_FILENAME, SLOTS_FILENAME):
            shutil.copyfile(tmp_path / name, data_dir / (name + ".tmp"))
            with open(data_dir / (name + ".tmp"), "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(data_dir / (name + ".tmp"), data_dir / name)
        _fsync_dir(data_dir)
    site = Site.open(data_dir)
    store = site.unlock_key(key)
    stopped = None
    try:
        ctx = eventlog.DeviceContext.load(store)
        body = {
            "file": backup_file.name,
            "events": events,
            "at": iso_utc(now_utc()),
            "replaced": str(replaced) if replaced else None,
        }
        device, head, _ = behind.own_progress(store)
        newer = _newer_elsewhere(replaced, key, device, head, backup_file.name) if replaced else None
        if newer is not None:
            # The replaced database (or the hub, by its receipt) holds more of this
            # device's chain: appending `db.restored` now would already fork it.
            stopped = behind.Behind(head, newer[0], newer[1], "restore", restored=body)
            behind.stop(store, stopped)
        else:
            author = eventlog.Author(user=username or "recovery-key", role=None)
            eventlog.append(store, ctx, author, type="db.restored", subject=f"site:{ctx.site}", body=body)
    finally:
        store.close()
    return RestoreResult(data_dir, events, replaced, ctx.site, ctx.device, stopped)


def _aside(data_dir: Path) -> Path:
    """A new folder for what a restore replaces: never an earlier restore's (two in one second)."""
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        path = data_dir / (f"replaced-{stamp}" if n == 1 else f"replaced-{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise Refused(f"{data_dir} holds 999 folders replaced-{stamp}*: move some away")


def _newer_elsewhere(
    replaced: Path, key: bytes, device: str, head: int, backup_name: str
) -> tuple[int, str] | None:
    """What the database a restore moved aside holds of this device beyond the backup's `head`.

    (the last event held elsewhere, who holds it) when appending after `head`
    would fork this device's chain: the hub has a receipt beyond it, bundles
    beyond it were exported (a stick may still reach the hub), or records
    beyond it would be dropped. The one event every backup is followed by —
    its own `db.backup_made` — is not a reason to stop. None when nothing is
    beyond, or the replaced file does not open with the backup's key (re-keyed
    or damaged: then only the hub can tell, at the next sync).
    """
    db_file = replaced / DB_FILENAME
    if not db_file.exists():
        return None
    try:
        store = Store(db_file, key)  # read-write so its WAL is read; nothing is written
    except StoreError:
        return None
    try:
        was, own, at_hub = behind.own_progress(store)
        if was != device or own <= head:
            return None
        if at_hub > head:
            return at_hub, "the hub"
        exported = int(store.scalar("SELECT max(last_seq) FROM sync_outbox") or 0)
        extra = [
            json.loads(line)
            for (line,) in store.execute(
                "SELECT line FROM events WHERE device = ? AND seq > ? ORDER BY seq", (device, head)
            )
        ]
    except (StoreError, DatabaseError, ValueError):
        return None
    finally:
        store.close()
    only_this_backup = all(
        e.get("type") == "db.backup_made" and (e.get("body") or {}).get("file") == backup_name for e in extra
    )
    if exported > head or not only_this_backup:
        return own, f"the replaced database in {replaced}"
    return None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
