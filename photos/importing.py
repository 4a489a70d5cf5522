"""Importing photos: validate, hash, store encrypted and log one ``photo.imported`` event.

A photographed consent page is a source record, so an import refuses
anything that is not a whole image within the limits (one line naming the
file) and stores nothing then; the same bytes imported twice are reused,
never logged twice. Batch imports go file by file so one corrupt file on a
camera card costs only that file. `checked_reference` and `inspect_file`
apply the same checks without storing, for checks made before anyone signs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wardcrf.errors import UsageError, WardError
from wardcrf.evidence import reference

from . import store as pstore
from .catalog import PhotoInfo, get_info
from .validate import (
    Inspection,
    PhotoLimits,
    check_size,
    inspect,
)

if TYPE_CHECKING:
    from wardcrf.site import Session

PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".png", ".heic", ".heif"}
"""File name endings picked up when a folder is imported (explicit files are always tried)."""


def import_photo(session: Session, path: Path, *, limits: PhotoLimits | None = None) -> PhotoInfo:
    """Validate, hash, store (encrypted) and log one photo; it lands in the tray.

    Raises `Refused` with one line naming the file (not an image, truncated,
    corrupt, too large, too many pixels, unsupported format) and stores
    nothing. The same bytes already stored are reused: the result has
    ``duplicate=True`` and no event is added.
    """
    session.require("photo.import", what="import photos")
    limits = limits or PhotoLimits.from_env()
    path = Path(path)
    return import_bytes(session, path.name, _read_photo_file(path, limits), limits=limits)


def _read_photo_file(path: Path, limits: PhotoLimits) -> bytes:
    """A photo file's bytes, refusing folders, unreadable files and files over the size limit."""
    name = path.name
    try:
        if path.is_dir():
            raise UsageError(f"{path} is a folder, not a photo (import its photos with `wardcrf photo import {path}`)")
        size = path.stat().st_size
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: cannot read it (permission denied)") from None
    check_size(name, size, limits)  # before reading 2 GB into memory
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def inspect_file(path: Path, *, limits: PhotoLimits | None = None) -> Inspection:
    """Check a photo file exactly as an import would, and store nothing.

    For a picker that shows the photo (the inspection carries its preview)
    and refuses a bad file with the import's own one-line message before
    the record is saved; the import itself still happens with the record.
    """
    limits = limits or PhotoLimits.from_env()
    path = Path(path)
    return inspect(path.name, _read_photo_file(path, limits), limits)


def checked_reference(path: Path, *, limits: PhotoLimits | None = None) -> str:
    """The reference an import of `path` would give, the file checked exactly as that import would.

    Stores nothing. For checks made before anyone signs (`workflow.service.preview`,
    `preflight`): a file that is not a whole, supported image is refused here,
    with the import's own one-line message, rather than after the signatures.
    """
    limits = limits or PhotoLimits.from_env()
    path = Path(path)
    data = _read_photo_file(path, limits)
    inspect(path.name, data, limits)
    return reference(hashlib.sha256(data).hexdigest())


def import_bytes(session: Session, name: str, data: bytes, *, limits: PhotoLimits | None = None) -> PhotoInfo:
    """`import_photo` for bytes already in memory (`name` is only for messages and metadata)."""
    session.require("photo.import", what="import photos")
    limits = limits or PhotoLimits.from_env()
    store = session.store
    sha = pstore.sha256_hex(data)
    existing = get_info(store, sha)
    if existing is not None and pstore.has_blob(store, sha):
        return _dup(existing)
    check = inspect(name, data, limits)
    with store.transaction():
        # Looked at again under the write lock: another process may have
        # imported the same bytes while this one was decoding.
        existing = get_info(store, sha)
        pstore.put_blob(store, sha, data)
        if pstore.get_preview(store, sha) is None:
            pstore.put_preview(store, sha, check.preview.data, check.preview.width, check.preview.height)
        if existing is None:
            session.append(
                type="photo.imported",
                subject=f"photo:{sha}",
                body={
                    "sha256": sha,
                    "size": check.size,
                    "format": check.format,
                    "width": check.width,
                    "height": check.height,
                    "captured_at": check.captured_at,
                    "camera": check.camera,
                    "has_gps": check.has_gps,
                    "name": _safe_name(name),
                },
            )
    info = get_info(store, sha)
    assert info is not None
    return info if existing is None else _dup(info)


def _dup(info: PhotoInfo) -> PhotoInfo:
    return PhotoInfo(**{**asdict(info), "duplicate": True})


def _safe_name(name: str) -> str:
    """The file's base name only (never the folder path), printable, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:120]


@dataclass
class ImportOutcome:
    path: Path
    info: PhotoInfo | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.error is None,
            "error": self.error,
            "photo": self.info.as_json() if self.info else None,
        }


@dataclass
class ImportReport:
    """Per-file outcome of a batch import; a bad file never stops the batch."""

    outcomes: list[ImportOutcome] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)

    @property
    def imported(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.info is not None and not o.info.duplicate]

    @property
    def reused(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.info is not None and o.info.duplicate]

    @property
    def failed(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "imported": len(self.imported),
            "reused": len(self.reused),
            "failed": len(self.failed),
            "skipped": [str(p) for p in self.skipped],
            "files": [o.as_json() for o in self.outcomes],
        }


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Files to import and files skipped: folders are walked (sorted, hidden
    entries ignored) for photo file names; files named explicitly are always tried."""
    files: list[Path] = []
    skipped: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for n in sorted(names):
                    if n.startswith("."):
                        continue
                    f = Path(root) / n
                    (files if f.suffix.lower() in PHOTO_EXTENSIONS else skipped).append(f)
        else:
            files.append(p)
    return files, skipped


def import_many(
    session: Session,
    paths: Iterable[Path],
    *,
    limits: PhotoLimits | None = None,
    on_progress: Callable[[ImportOutcome, int, int], None] | None = None,
) -> ImportReport:
    """Import files and folders one by one; report each failure and go on.

    Each photo is its own transaction, so a corrupt file in the middle of a
    camera card costs only that file. `on_progress(outcome, done, total)`
    is called after each file.
    """
    session.require("photo.import", what="import photos")
    limits = limits or PhotoLimits.from_env()
    files, skipped = expand_paths(paths)
    report = ImportReport(skipped=skipped)
    for i, f in enumerate(files, 1):
        outcome = ImportOutcome(f)
        try:
            outcome.info = import_photo(session, f, limits=limits)
        except WardError as exc:
            outcome.error = exc.message
        report.outcomes.append(outcome)
        if on_progress:
            on_progress(outcome, i, len(files))
    return report
