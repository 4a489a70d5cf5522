"""The tray folder: where a camera or phone drops photos for the ward app to pick from.

Files in the tray are only offered; nothing is imported until a record
that uses one is saved (`importing`). Listing hashes each file so the
picker can say a photo is already stored (worth a second look if bound
to another record).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import store as pstore
from .importing import PHOTO_EXTENSIONS
from .validate import PhotoLimits

if TYPE_CHECKING:
    from wardcrf.site import Session

TRAY_ENV = "WARDCRF_PHOTO_TRAY"


def tray_folder(data_dir: Path) -> Path:
    """Where the camera or phone drops photos for the ward app to pick from.

    ``$WARDCRF_PHOTO_TRAY`` when set, else ``<data_dir>/tray``. Files there
    are only offered; nothing is imported until a record using one is saved.
    """
    configured = os.environ.get(TRAY_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(data_dir) / "tray"


@dataclass(frozen=True)
class TrayFile:
    """One image file waiting in the tray folder."""

    path: Path
    size: int
    modified: float
    """The file's modification time (seconds since the epoch)."""
    stored: bool
    """The same bytes are already in the photo store (imported before)."""

    @property
    def name(self) -> str:
        return self.path.name


def tray_files(session: Session, folder: Path, *, limits: PhotoLimits | None = None) -> list[TrayFile]:
    """The photo files in `folder` (not its sub-folders), newest first.

    Hidden files and names without a photo ending are left out. Files within
    the size limit are hashed to say whether they were imported already
    (a photo bound to another record is worth a second look).
    """
    session.require("record.read", what="list photos")
    limits = limits or PhotoLimits.from_env()
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or Path(entry.name).suffix.lower() not in PHOTO_EXTENSIONS:
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
            stored = False
            if st.st_size <= limits.max_bytes:
                with open(entry.path, "rb") as fh:
                    sha = pstore.sha256_hex(fh.read())
                stored = pstore.has_blob(session.store, sha)
        except OSError:
            continue  # vanished or unreadable while listing: not offered
        out.append(TrayFile(Path(entry.path), st.st_size, st.st_mtime, stored))
    out.sort(key=lambda f: (-f.modified, f.name))
    return out
