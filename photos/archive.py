"""Photo originals a hub keeps inside the bundles that brought them.

A hub keeps every bundle it applies, signed by the ward and encrypted to the
hub's age identity, under ``<data_dir>/sync/applied/``: that file is the
original record an auditor checks with `age`, `minisign` and `sha256sum`.
Its photos are therefore not copied into the database a second time (that
held the same evidence twice and made every import re-encrypt it page by
page); ``photo_archive`` records where each one sits instead.

A read decrypts the kept bundle with the hub's identity (kept inside the
encrypted database) and slices the member out. At a hub whose wards' data is
in PostgreSQL (docs/hub-postgres.md) the rows are in that database while the
identity and the kept bundles stay with the hub's SQLCipher file: the rows
are read from the one (`store`), the bundle opened with the other (`keys`). The caller re-hashes the
bytes (`api.read_original`, `store.verify_store`), so a damaged, swapped or
missing bundle file is caught on every read, as for any evidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wardcrf import devicekeys
from wardcrf.errors import VerificationFailed
from wardcrf.sqlstore import SqlStore
from wardcrf.store import Store


@dataclass(frozen=True)
class Location:
    """Where a photo's original sits: a member of a kept bundle."""

    sha256: str
    size: int
    bundle: str  # relative to <data_dir>/sync, e.g. applied/WUH01-<device>-000001.tar.age
    member: str  # photos/<sha256>.<ext>
    offset: int  # first byte of the member's data in the decrypted archive

    @property
    def extension(self) -> str:
        return self.member.rsplit(".", 1)[-1]


def record(
    store: SqlStore,
    sha: str,
    size: int,
    bundle: str,
    member: str,
    offset: int,
    device: str,
    bundle_seq: int,
) -> bool:
    """Note where an authenticated photo sits (in the caller's transaction); False if known already."""
    cur = store.execute(
        "INSERT INTO photo_archive (sha256, size, bundle, member, data_offset, device, bundle_seq)"
        " VALUES (?,?,?,?,?,?,?) ON CONFLICT (sha256) DO NOTHING",
        (sha, size, bundle, member, offset, device, bundle_seq),
    )
    return bool(cur.rowcount)


def locate(store: SqlStore, sha: str) -> Location | None:
    row = store.one(
        "SELECT sha256, size, bundle, member, data_offset FROM photo_archive WHERE sha256 = ?", (sha,)
    )
    return None if row is None else Location(*row)


def locations(store: SqlStore) -> list[Location]:
    """Every archived photo, grouped by bundle so that each bundle is decrypted once."""
    return [
        Location(*row)
        for row in store.execute(
            "SELECT sha256, size, bundle, member, data_offset FROM photo_archive ORDER BY bundle, data_offset"
        )
    ]


def read(keys: Store, loc: Location) -> bytes:
    """The bytes recorded at `loc`, read from disk now (not yet hash-checked: the caller does that).

    `keys`: the hub's SQLCipher file, which holds its age identity and beside
    which the kept bundles are (`<data_dir>/sync/`), whichever store `loc` came from.
    """
    try:
        return _slice(_decrypted(keys, loc.bundle), loc)
    except _Unreadable as exc:
        raise VerificationFailed(f"photo sha256:{loc.sha256}: {exc}") from None


def read_all(
    store: SqlStore, keys: Store | None = None
) -> Iterator[tuple[Location, bytes | VerificationFailed]]:
    """(location, bytes or why they cannot be read) for every archived photo; each bundle decrypted once.

    The rows are read from `store`, the bundles opened with `keys` (the hub's file; `store` itself by default).
    """
    opener = keys if keys is not None else _file(store)
    plain: bytes | _Unreadable = b""
    current = None
    for loc in locations(store):
        try:
            if loc.bundle != current:
                current = loc.bundle
                try:
                    plain = _decrypted(opener, loc.bundle)
                except _Unreadable as exc:
                    plain = exc
            if isinstance(plain, _Unreadable):
                raise plain
            yield loc, _slice(plain, loc)
        except _Unreadable as exc:
            yield loc, VerificationFailed(f"photo sha256:{loc.sha256}: {exc}")


def _file(store: SqlStore) -> Store:
    if not isinstance(store, Store):
        raise TypeError("the kept bundles are opened with the hub's SQLCipher file: pass it as `keys`")
    return store


class _Unreadable(Exception):
    """Why a kept bundle (or a member in it) cannot be read; worded to follow "photo sha256:...: "."""


def _slice(plain: bytes, loc: Location) -> bytes:
    data = plain[loc.offset : loc.offset + loc.size]
    if len(data) != loc.size:
        raise _Unreadable(f"the kept bundle {loc.bundle} is shorter than recorded (altered)")
    return bytes(data)


def _decrypted(store: Store, bundle: str) -> bytes:
    # The two pyrage calls of `sync.bundle.decrypt`, written here because the
    # photo store sits below sync (sync imports photos, never the reverse).
    import pyrage

    path = Path(store.path).parent / "sync" / bundle
    if not path.is_file():
        raise _Unreadable(f"the kept bundle {bundle} that holds it is missing")
    device = store.scalar("SELECT device FROM site WHERE id = 1")
    keys = devicekeys.load(store, device)
    if keys is None:
        raise _Unreadable(f"this hub has no age identity to open {bundle}")
    try:
        cipher = path.read_bytes()
    except OSError as exc:
        raise _Unreadable(f"the kept bundle {bundle} cannot be read ({exc.strerror or exc})") from None
    try:
        return bytes(pyrage.decrypt(cipher, [pyrage.x25519.Identity.from_str(keys.age_identity)]))
    except Exception:
        raise _Unreadable(f"the kept bundle {bundle} cannot be decrypted (altered or damaged)") from None
