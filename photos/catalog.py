"""What the photo store holds: each photo's metadata (`PhotoInfo`) and how a typed id names one.

Every other photo job (import, tray, originals, the auditor's views) reads
metadata through here, so the one SQL that joins a photo to its current
bindings, and the one rule for turning a tray id or hash prefix into a full
hash, live in one place.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from wardcrf.errors import Refused, UsageError
from wardcrf.evidence import reference
from wardcrf.sqlstore import SqlStore

from . import store as pstore
from .validate import FORMATS

if TYPE_CHECKING:
    from wardcrf.site import Session

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


def get_info(store: SqlStore, sha256_hex: str) -> PhotoInfo | None:
    rows = store.rows(_INFO_SQL + " WHERE p.sha256 = ?", (sha256_hex,))
    return _info(rows[0]) if rows else None


def find(store: SqlStore, token: str) -> str:
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


def list_photos(session: Session, *, tray: bool = False, store: SqlStore | None = None) -> list[PhotoInfo]:
    """Every stored photo, oldest import first; `tray=True`: only those no record binds now.

    `store`: where the photo rows are when not in the session's file (a PostgreSQL hub's database,
    `sync.hub.reading_store`)."""
    session.require("record.read", what="list photos")
    sql = _INFO_SQL
    if tray:
        sql += (
            " WHERE NOT EXISTS (SELECT 1 FROM photo_bindings b WHERE b.sha256 = p.sha256"
            " AND b.unbound_event IS NULL)"
        )
    rows = store if store is not None else session.store
    return [_info(r) for r in rows.rows(sql + " ORDER BY p.imported_at, p.sha256")]
