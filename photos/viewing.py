"""Showing and exporting a stored photo, always from hash-checked bytes.

The preview is a derived display cache (made on first view for photos that
arrived by sync, no event); an export writes the original atomically and
re-hashes what reached the disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wardcrf.errors import UsageError, VerificationFailed, WardError

from . import store as pstore
from .catalog import find, get_info
from .originals import read_original, sniff_extension
from .validate import Preview, make_preview

if TYPE_CHECKING:
    from wardcrf.site import Session
    from wardcrf.sqlstore import SqlStore


def preview(session: Session, token: str, store: SqlStore | None = None) -> Preview:
    """The display preview of a stored photo, after verifying the original's hash.

    A photo whose original fails its hash is never shown (`VerificationFailed`).
    Photos that arrived by sync have no preview yet (the hub does not decode
    them on import): the first view derives it, with the full validation of a
    local import, and keeps it in the preview cache (a derived display cache,
    not a record: no event). `store`: where the photo's rows are when not in
    the session's file (a PostgreSQL hub's database, `sync.hub.reading_store`);
    the preview is cached in the file either way.
    """
    session.require("record.read", what="view photos")
    rows = store if store is not None else session.store
    sha = find(rows, token)
    original = read_original(rows, sha, keys=session.store)
    cached = pstore.get_preview(session.store, sha)
    if cached is not None:
        return Preview(*cached)
    made = make_preview(f"photo sha256:{sha}", original)
    try:
        with session.store.transaction():
            pstore.put_preview(session.store, sha, made.data, made.width, made.height)
    except WardError:
        pass  # a read-only or busy store still shows the preview, it is only not cached
    return made


@dataclass
class ExportResult:
    path: Path
    sha256: str
    size: int
    has_gps: bool


def export_original(
    session: Session, token: str, out: Path, *, overwrite: bool = False, store: SqlStore | None = None
) -> ExportResult:
    """Write the original bytes (hash-checked) to `out`; the file's SHA-256 is its name.

    `store`: where the photo's rows are when not in the session's file (`preview`).
    """
    session.require("photo.export", what="export photos")
    rows = store if store is not None else session.store
    sha = find(rows, token)
    data = read_original(rows, sha, keys=session.store)
    out = Path(out)
    if out.is_dir():
        info = get_info(rows, sha)
        out = out / f"{sha}.{info.extension if info else sniff_extension(rows, sha)}"
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another name (or replace it: --force)")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".wardcrf-photo-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if pstore.sha256_hex(out.read_bytes()) != sha:
        raise VerificationFailed(f"{out}: written bytes do not hash to sha256:{sha} (disk error?)")
    info = get_info(rows, sha)
    return ExportResult(out, sha, len(data), bool(info and info.has_gps))
