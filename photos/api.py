"""Photo evidence: the public API used by records, the CLI, sync and the TUI.

Photographed consent forms and handover sheets are source records. This
module imports them (validated, hashed, stored encrypted, metadata recorded
as a ``photo.imported`` event), resolves what a person typed into a
reference ``"sha256:<64 hex>"`` for a record's photo field, reads originals
back (always re-checking the hash), verifies the whole store, and gives an
auditor each record's photos with who bound them and whether they check.

Stable entry points (other packages rely on these names):
    import_photo, import_many, resolve_reference, read_original,
    store_original, bundle_member, referenced_photos, get_info, list_photos,
    preview, export_original, verify, record_photos, capture_warnings.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wardcrf.clock import now_utc, parse_iso, zone
from wardcrf.errors import Refused, UsageError, VerificationFailed, WardError
from wardcrf.eventlog import Event
from wardcrf.evidence import digest_of, is_reference, reference
from wardcrf.store import Store

from . import archive
from . import store as pstore
from .validate import (
    FORMATS,
    Inspection,
    PhotoLimits,
    Preview,
    check_size,
    check_structure,
    inspect,
    make_preview,
)

if TYPE_CHECKING:
    from wardcrf.site import Session

__all__ = [
    "ImportOutcome",
    "ImportReport",
    "PhotoCheck",
    "PhotoInfo",
    "PhotoLimits",
    "RecordPhoto",
    "TrayFile",
    "VerifyResult",
    "archive_original",
    "bundle_member",
    "capture_warnings",
    "event_photos",
    "expand_paths",
    "export_original",
    "find",
    "get_info",
    "has_original",
    "hash_status",
    "import_bytes",
    "import_many",
    "import_photo",
    "inspect_file",
    "list_photos",
    "preview",
    "read_original",
    "record_photos",
    "referenced_photos",
    "resolve_reference",
    "store_original",
    "tray_files",
    "tray_folder",
    "verify",
]

PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".png", ".heic", ".heif"}
"""File name endings picked up when a folder is imported (explicit files are always tried)."""

SHORT_ID_LEN = 12
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class PhotoInfo:
    """A stored photo's metadata, as the ``photos`` projection holds it.

    `duplicate` is True when an import found the same bytes already stored
    and reused them (nothing new was stored or logged).
    """

    sha256: str
    size: int
    format: str
    width: int
    height: int
    captured_at: str | None
    camera: str | None
    name: str | None
    has_gps: bool
    imported_event: str
    imported_at: str
    imported_by: str | None
    bound: int = 0
    duplicate: bool = False

    @property
    def ref(self) -> str:
        """The reference a record's photo field holds: ``sha256:<64 hex>``."""
        return reference(self.sha256)

    @property
    def short_id(self) -> str:
        """The tray id people type: the first 12 hex digits of the hash."""
        return self.sha256[:SHORT_ID_LEN]

    @property
    def extension(self) -> str:
        return FORMATS.get(self.format, "bin")

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        d["id"] = self.short_id
        return d


def _info(row: dict[str, Any], *, duplicate: bool = False) -> PhotoInfo:
    return PhotoInfo(
        sha256=row["sha256"],
        size=row["size"],
        format=row["format"],
        width=row["width"],
        height=row["height"],
        captured_at=row["captured_at"],
        camera=row["camera"],
        name=row["name"],
        has_gps=bool(row["has_gps"]),
        imported_event=row["imported_event"],
        imported_at=row["imported_at"],
        imported_by=row["imported_by"],
        bound=int(row.get("bound") or 0),
        duplicate=duplicate,
    )


_INFO_SQL = (
    "SELECT p.*, (SELECT count(*) FROM photo_bindings b WHERE b.sha256 = p.sha256"
    " AND b.unbound_event IS NULL) AS bound FROM photos p"
)


def get_info(store: Store, sha256_hex: str) -> PhotoInfo | None:
    rows = store.rows(_INFO_SQL + " WHERE p.sha256 = ?", (sha256_hex,))
    return _info(rows[0]) if rows else None


# -- import ----------------------------------------------------------------------------


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


# -- the tray folder -------------------------------------------------------------------

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


# -- references ------------------------------------------------------------------------


def find(store: Store, token: str) -> str:
    """The full hash of the stored photo `token` names: a full hash (with or
    without ``sha256:``) or a tray id / unique prefix of at least 8 hex digits."""
    t = token.strip().lower()
    if t.startswith("sha256:"):
        t = t[len("sha256:") :]
    if not (8 <= len(t) <= 64) or not _HEX.match(t):
        raise UsageError(
            f"photo {token!r} not understood: give @path/to/photo.jpg, a tray id "
            f"({SHORT_ID_LEN} hex digits, see `wardcrf photo list --tray`) or sha256:<64 hex>"
        )
    if len(t) == 64:
        if get_info(store, t) is None and not pstore.has_blob(store, t):
            raise Refused(f"unknown photo sha256:{t}: not in this photo store (import it first)")
        return t
    hits = [
        r[0]
        for r in store.execute(
            "SELECT sha256 FROM photos WHERE sha256 >= ? AND sha256 < ? ORDER BY sha256 LIMIT 3",
            (t, t + "g"),
        )
    ]
    if not hits:
        raise Refused(f"unknown photo {token!r}: no stored photo's hash starts with {t}")
    if len(hits) > 1:
        raise Refused(
            f"photo id {token!r} is ambiguous ({', '.join(h[:16] for h in hits)}...): give more digits"
        )
    return hits[0]


def resolve_reference(
    session: Session,
    raw: str,
    *,
    record_time: datetime | None = None,
    limits: PhotoLimits | None = None,
) -> str:
    """What a person typed for a photo field -> ``"sha256:<64 hex>"`` of a stored photo.

    ``@path/to/file.jpg`` imports the file first (validated; a duplicate is
    reused); a tray id or ``sha256:<hex>`` must name a stored photo.
    Adds a warning to the session (never blocks) when the photo's EXIF
    capture time is further than the configured span from `record_time`
    (default: now, the time the record is being made).
    """
    raw = (raw or "").strip()
    limits = limits or PhotoLimits.from_env()
    if raw.startswith("@"):
        if len(raw) == 1:
            raise UsageError("photo path missing after '@' (give @path/to/photo.jpg)")
        sha = import_photo(session, Path(raw[1:]).expanduser(), limits=limits).sha256
    else:
        sha = find(session.store, raw)
        if not pstore.has_blob(session.store, sha):
            raise Refused(f"photo sha256:{sha} is recorded but its original is not in this store")
    session.warnings.extend(
        capture_warnings(
            session.store,
            [reference(sha)],
            record_time or now_utc(),
            span=limits.capture_span,
            zone_name=session.ctx.zone,
        )
    )
    return reference(sha)


def _as_utc(text: str, zone_name: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:  # EXIF without OffsetTimeOriginal: the camera's local time
        dt = dt.replace(tzinfo=zone(zone_name))
    return dt


def capture_gap(captured_at: str | None, record_time: datetime | str, zone_name: str) -> timedelta | None:
    """|EXIF capture time - record time|, or None when the photo has no capture time."""
    if not captured_at:
        return None
    shot = _as_utc(captured_at, zone_name)
    if shot is None:
        return None
    when = parse_iso(record_time) if isinstance(record_time, str) else record_time
    return abs(when - shot)


def capture_warnings(
    store: Store,
    refs: Iterable[str],
    record_time: datetime | str,
    *,
    span: timedelta | None = None,
    zone_name: str = "UTC",
) -> list[str]:
    """One warning per referenced photo taken further than `span` from the record time."""
    span = span or PhotoLimits.from_env().capture_span
    out = []
    for ref in refs:
        if not is_reference(ref):
            continue
        info = get_info(store, digest_of(ref))
        if info is None:
            continue
        gap = capture_gap(info.captured_at, record_time, zone_name)
        if gap is not None and gap > span:
            out.append(
                f"photo {info.short_id} was taken {info.captured_at} (EXIF), "
                f"{_human(gap)} from the record's time; check it is the right photo"
            )
    return out


def _human(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 72 else f"{hours / 24:.0f} days"


def referenced_photos(event: Event) -> set[str]:
    """Hashes of the photos an event carries or references (what a bundle must ship).

    ``photo.imported`` names its photo; a record names the photos in its
    data; an amendment names the photos in its new (and old) values.
    """
    b = event.body
    out: set[str] = set()
    if event.type == "photo.imported" and isinstance(b.get("sha256"), str):
        out.add(b["sha256"])
    if event.type == "record.submitted":
        out |= {sha for _, sha in pstore.references_in(b.get("data") or {})}
    if event.type == "record.amended":
        for name, change in (b.get("changes") or {}).items():
            if isinstance(change, dict):
                for side in ("old", "new"):
                    out |= {sha for _, sha in pstore.references_in({name: change.get(side)})}
    return out


# -- originals -------------------------------------------------------------------------


def read_original(store: Store, sha256_hex: str) -> bytes:
    """The original bytes of a stored photo, after checking they hash to their name.

    Raises `VerificationFailed` naming the photo when the bytes were altered
    (or are missing although the photo was imported); `Refused` when no such
    photo exists. Never returns unchecked bytes.
    """
    sha = sha256_hex.lower().removeprefix("sha256:")
    data = pstore.get_blob(store, sha)
    if data is None:
        if get_info(store, sha) is not None:
            raise VerificationFailed(f"photo sha256:{sha}: recorded as imported but its original is missing")
        raise Refused(f"unknown photo sha256:{sha}: not in this photo store")
    if pstore.sha256_hex(data) != sha:
        raise VerificationFailed(
            f"photo sha256:{sha}: stored bytes do not match their hash (altered); not shown"
        )
    return data


def has_original(store: Store, sha256_hex: str) -> bool:
    """Whether the original bytes of a photo are held here (not checked: see `read_original`)."""
    return pstore.has_blob(store, sha256_hex.lower().removeprefix("sha256:"))


def store_original(
    store: Store,
    data: bytes,
    meta: dict[str, Any] | None = None,
    *,
    sha256: str | None = None,
    limits: PhotoLimits | None = None,
    hashed: bool = False,
) -> bool:
    """Store a photo that arrived from elsewhere (a sync bundle); True if newly stored.

    `meta` is the body of its ``photo.imported`` event (the event itself is
    ingested by sync through the event log, which projects the metadata).
    The bytes must hash to ``meta["sha256"]`` (or `sha256`) and match its
    size, else `VerificationFailed`. They come authenticated (hash plus the
    sending device's signature, and that device validated them fully on
    import), so here they get only a structural check (`check_structure`:
    format, pixel limit, header, truncation; `Refused` otherwise) and no
    preview: decoding every photo made hub imports slow, and the preview is
    derived on first view (`preview`). Runs in the caller's transaction.

    `hashed=True` is for a caller that has itself just hashed these bytes
    and found `sha256` (sync's bundle verification checks every member
    against the signed SHA256SUMS): the bytes are then not hashed again
    here. Reads still re-hash every time (`read_original`).
    """
    want = (sha256 or (meta or {}).get("sha256") or "").lower().removeprefix("sha256:")
    if not want:
        raise UsageError("store_original needs the photo's sha256 (from its photo.imported event)")
    actual = want if hashed else pstore.sha256_hex(data)
    if actual != want:
        raise VerificationFailed(f"photo sha256:{want}: received bytes hash to {actual}; not stored")
    if meta and meta.get("size") is not None and int(meta["size"]) != len(data):
        raise VerificationFailed(
            f"photo sha256:{want}: received {len(data)} bytes, its event says {meta['size']}"
        )
    if pstore.has_blob(store, want):
        return False
    _check_received(want, data, limits)
    with store.transaction():
        pstore.put_blob(store, want, data, hashed=True)  # hashed above, or by the caller
    return True


def archive_original(
    store: Store,
    data: bytes,
    *,
    sha256: str,
    bundle: str,
    member: str,
    offset: int,
    device: str,
    bundle_seq: int,
    limits: PhotoLimits | None = None,
) -> bool:
    """Record a photo a hub keeps inside the bundle that brought it; True if newly recorded.

    The same checks as `store_original` (the bytes were hashed against the
    signed SHA256SUMS by the caller; here their structure), then the photo's
    place in the kept bundle is noted instead of a second copy of its bytes
    (`archive`). Runs in the caller's transaction, with the bundle's events.
    """
    want = sha256.lower().removeprefix("sha256:")
    if pstore.has_blob(store, want):
        return False
    _check_received(want, data, limits)
    return archive.record(store, want, len(data), bundle, member, offset, device, bundle_seq)


def _check_received(sha: str, data: bytes, limits: PhotoLimits | None) -> None:
    """The structure check for authenticated bytes from a bundle (their size was checked on the ward)."""
    limits = limits or PhotoLimits.from_env()
    check_structure(
        f"photo sha256:{sha}",
        data,
        PhotoLimits(
            max_bytes=max(limits.max_bytes, len(data)),
            max_pixels=limits.max_pixels,
            capture_span=limits.capture_span,
        ),
    )


def bundle_member(store: Store, sha256_hex: str) -> str:
    """The archive member name of a photo in a sync bundle: ``photos/<sha256>.<ext>``."""
    info = get_info(store, sha256_hex)
    ext = info.extension if info else _sniff_ext(store, sha256_hex)
    return f"photos/{sha256_hex}.{ext}"


def _sniff_ext(store: Store, sha: str) -> str:
    from .validate import sniff

    row = store.one("SELECT substr(data, 1, 32) FROM photo_blobs WHERE sha256 = ?", (sha,))
    if row is None:
        loc = archive.locate(store, sha)
        return loc.extension if loc is not None else "bin"
    fmt = sniff(bytes(row[0]))
    return FORMATS.get(fmt or "", "bin")


# -- viewing and exporting -------------------------------------------------------------


def preview(session: Session, token: str) -> Preview:
    """The display preview of a stored photo, after verifying the original's hash.

    A photo whose original fails its hash is never shown (`VerificationFailed`).
    Photos that arrived by sync have no preview yet (the hub does not decode
    them on import): the first view derives it, with the full validation of a
    local import, and keeps it in the preview cache (a derived display cache,
    not a record: no event).
    """
    session.require("record.read", what="view photos")
    sha = find(session.store, token)
    original = read_original(session.store, sha)
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


def export_original(session: Session, token: str, out: Path, *, overwrite: bool = False) -> ExportResult:
    """Write the original bytes (hash-checked) to `out`; the file's SHA-256 is its name."""
    session.require("photo.export", what="export photos")
    sha = find(session.store, token)
    data = read_original(session.store, sha)
    out = Path(out)
    if out.is_dir():
        info = get_info(session.store, sha)
        out = out / f"{sha}.{info.extension if info else _sniff_ext(session.store, sha)}"
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
    info = get_info(session.store, sha)
    return ExportResult(out, sha, len(data), bool(info and info.has_gps))


def list_photos(session: Session, *, tray: bool = False) -> list[PhotoInfo]:
    """Every stored photo, oldest import first; `tray=True`: only those no record binds now."""
    session.require("record.read", what="list photos")
    sql = _INFO_SQL
    if tray:
        sql += (
            " WHERE NOT EXISTS (SELECT 1 FROM photo_bindings b WHERE b.sha256 = p.sha256"
            " AND b.unbound_event IS NULL)"
        )
    return [_info(r) for r in session.store.rows(sql + " ORDER BY p.imported_at, p.sha256")]


@dataclass
class VerifyResult:
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": self.problems}


def verify(session: Session) -> VerifyResult:
    """Re-hash every stored original and check every record's photo references."""
    session.require("audit.verify", what="verify photo evidence")
    checked, problems = pstore.verify_store(session.store)
    return VerifyResult(checked, problems)


# -- the auditor's view ----------------------------------------------------------------


@dataclass(frozen=True)
class RecordPhoto:
    """One photo bound (now or formerly) to a record, as an auditor checks it."""

    record_event: str
    field: str
    sha256: str
    current: bool
    bound_event: str
    bound_by: str | None
    bound_at: str
    unbound_event: str | None
    unbound_by: str | None
    unbound_at: str | None
    captured_at: str | None
    camera: str | None
    format: str | None
    width: int | None
    height: int | None
    size: int | None
    hash_ok: bool
    problem: str | None
    capture_warning: str | None

    @property
    def ref(self) -> str:
        return reference(self.sha256)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ref"] = self.ref
        return d


def record_photos(
    session: Session, record_event: str, *, limits: PhotoLimits | None = None
) -> list[RecordPhoto]:
    """For one record: every photo bound to it, current first, with its checks.

    Each item says who bound the photo and when (and which amendment
    replaced it, if one did), its EXIF capture time, whether its stored
    bytes hash to its name, and a warning when the capture time is further
    than the configured span from the record's time.
    """
    session.require("record.read", what="view records")
    store = session.store
    rec = store.one("SELECT created_at FROM records WHERE event_id = ?", (record_event,))
    if rec is None:
        raise Refused(f"unknown record {record_event}")
    span = (limits or PhotoLimits.from_env()).capture_span
    rows = store.rows(
        "SELECT * FROM photo_bindings WHERE record_event = ?"
        " ORDER BY unbound_event IS NOT NULL, field, bound_at, sha256",
        (record_event,),
    )
    out = []
    for r in rows:
        sha = r["sha256"]
        info = get_info(store, sha)
        problem = None
        try:
            read_original(store, sha)
        except WardError as exc:
            problem = exc.message
        warn = None
        if info is not None:
            gap = capture_gap(info.captured_at, rec[0], session.ctx.zone)
            if gap is not None and gap > span:
                warn = f"taken {info.captured_at}, {_human(gap)} from the record's time"
        out.append(
            RecordPhoto(
                record_event=record_event,
                field=r["field"],
                sha256=sha,
                current=r["unbound_event"] is None,
                bound_event=r["bound_event"],
                bound_by=r["bound_by"],
                bound_at=r["bound_at"],
                unbound_event=r["unbound_event"],
                unbound_by=r["unbound_by"],
                unbound_at=r["unbound_at"],
                captured_at=info.captured_at if info else None,
                camera=info.camera if info else None,
                format=info.format if info else None,
                width=info.width if info else None,
                height=info.height if info else None,
                size=info.size if info else None,
                hash_ok=problem is None,
                problem=problem,
                capture_warning=warn,
            )
        )
    return out


# -- hash status of any event's photos (the audit screen's photo panel) ------------------

INTACT, MISSING, MISMATCH = "intact", "MISSING", "MISMATCH"


def hash_status(store: Store, sha256_hex: str) -> tuple[str, str | None]:
    """(``intact`` | ``MISSING`` | ``MISMATCH``, the problem in one line) — re-hashed now."""
    status, problem, _data = checked_original(store, sha256_hex)
    return status, problem


def checked_original(store: Store, sha256_hex: str) -> tuple[str, str | None, bytes | None]:
    """`hash_status` plus the bytes when they are intact: one read for a check and a thumbnail.

    Never raises for the evidence itself: a hub's kept bundle that is missing
    or cannot be decrypted is MISSING or MISMATCH with the reason, so a
    report can say so and go on to the next photo.
    """
    sha = sha256_hex.lower().removeprefix("sha256:")
    try:
        data = pstore.get_blob(store, sha)
    except VerificationFailed as exc:  # a kept bundle missing, altered or unreadable
        text = str(exc)
        return (MISSING if "missing" in text else MISMATCH), text, None
    if data is None:
        return MISSING, f"photo sha256:{sha}: its original is not in this store", None
    if pstore.sha256_hex(data) != sha:
        return MISMATCH, f"photo sha256:{sha}: stored bytes do not match their hash (altered)", None
    return INTACT, None, data


@dataclass(frozen=True)
class PhotoCheck:
    """One photo an event references, with its hash checked at the time of reading."""

    sha256: str
    field: str | None
    """The record field that binds it (None for a photo.imported event or a non-record event)."""
    current: bool
    """Still bound now (False: replaced by a later amendment)."""
    size: int | None
    format: str | None
    width: int | None
    height: int | None
    name: str | None
    status: str
    problem: str | None

    @property
    def ref(self) -> str:
        return reference(self.sha256)

    @property
    def ok(self) -> bool:
        return self.status == INTACT


def _refs_in(value: Any) -> set[str]:
    """Every ``sha256:`` reference anywhere in an event body (records, cold-chain sheets...)."""
    if isinstance(value, dict):
        return set().union(*(_refs_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs_in(v) for v in value)) if value else set()
    return {digest_of(value)} if is_reference(value) else set()


def event_photos(session: Session, event_id: str) -> list[PhotoCheck]:
    """The photos an audit-trail entry concerns, each re-hashed now.

    A record's submission or amendment: every photo bound to that record,
    now or formerly (current first); a ``photo.imported`` event: that photo;
    any other event: the references in its body (cold-chain receipts and
    handovers carry photographed sheets). Reads only.
    """
    session.require("record.read", what="view photos")
    from wardcrf import eventlog

    store = session.store
    event = eventlog.get(store, event_id)
    if event is None:
        raise Refused(f"unknown event {event_id}")
    record = event.id if event.type == "record.submitted" else event.amends
    bound: list[tuple[str, str | None, bool]] = []
    if record and store.one("SELECT 1 FROM records WHERE event_id = ?", (record,)):
        rows = store.rows(
            "SELECT field, sha256, unbound_event FROM photo_bindings WHERE record_event = ?"
            " ORDER BY unbound_event IS NOT NULL, field, bound_at, sha256",
            (record,),
        )
        bound = [(r["sha256"], r["field"], r["unbound_event"] is None) for r in rows]
    else:
        bound = [(sha, None, True) for sha in sorted(_refs_in(event.body) | referenced_photos(event))]
    out = []
    for sha, field_name, current in bound:
        info = get_info(store, sha)
        status, problem = hash_status(store, sha)
        out.append(
            PhotoCheck(
                sha256=sha,
                field=field_name,
                current=current,
                size=info.size if info else None,
                format=info.format if info else None,
                width=info.width if info else None,
                height=info.height if info else None,
                name=info.name if info else None,
                status=status,
                problem=problem,
            )
        )
    return out
