"""The photo store's tables: originals, previews, metadata and bindings.

- ``photo_blobs`` — the original bytes, named by SHA-256, inside the SQLCipher
  database (encrypted at rest with the database key, atomic with the
  ``photo.imported`` event, inside every backup). Insert-only: triggers refuse
  updates and deletes; `verify_store` re-hashes every blob to catch edits made
  around wardcrf with the raw key.
- ``photo_archive`` — at a hub, where each original sits inside the signed,
  encrypted bundle that brought it (`archive`): the hub keeps those bundles
  as the original record and does not copy their photos a second time.
  Reads and `verify_store` decrypt the bundle and re-hash the bytes.
- ``photo_previews`` — derived JPEG previews, a display cache.
- ``photos`` — projection of ``photo.imported`` events (metadata).
- ``photo_bindings`` — projection of every record field that holds
  ``sha256:`` references, with who bound each photo and when, and which
  amendment unbound it. Driven by a batch hook for every form
  (`records.add_batch_hook`), so it works for any form (consent, handover, ...)
  without knowing the form.

Projectors here are deterministic and idempotent (`db rebuild --check`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wardcrf import audit
from wardcrf.errors import Refused, VerificationFailed
from wardcrf.eventlog import Event
from wardcrf.evidence import REF_PREFIX, digest_of, is_reference
from wardcrf.records import Record
from wardcrf.sqlstore import SqlStore, common_dialect, own_keys_store
from wardcrf.store import Store

from . import archive

if TYPE_CHECKING:
    from wardcrf.features import Registry

HASH_CHUNK = 1 << 20


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- originals -------------------------------------------------------------------------


def has_blob(store: SqlStore, sha: str) -> bool:
    """Whether the original is held here: in the database, or (hub) in a kept bundle.

    A hub's PostgreSQL database (`holds_projections` false) has no ``photo_blobs``:
    its photos are always in the kept bundles (`archive`).
    """
    if not store.holds_projections:
        return store.one("SELECT 1 FROM photo_archive WHERE sha256 = ?", (sha,)) is not None
    return (
        store.one(
            "SELECT 1 FROM photo_blobs WHERE sha256 = ? UNION ALL SELECT 1 FROM photo_archive WHERE sha256 = ?",
            (sha, sha),
        )
        is not None
    )


def put_blob(store: Store, sha: str, data: bytes, *, hashed: bool = False) -> bool:
    """Store original bytes under their hash (checked here); False if already held.

    `hashed=True` when the caller has just computed `sha` from these very
    bytes itself (`api.store_original` does, or sync's bundle verification):
    hashing megabytes a second time in the same call chain proves nothing new.
    """
    if not hashed and sha256_hex(data) != sha:
        raise VerificationFailed(f"photo sha256:{sha}: the bytes given do not hash to that name; not stored")
    if has_blob(store, sha):
        return False
    store.execute("INSERT INTO photo_blobs (sha256, size, data) VALUES (?,?,?)", (sha, len(data), data))
    return True


def get_blob(store: SqlStore, sha: str, *, keys: Store | None = None) -> bytes | None:
    """The stored bytes (not hash-checked here: `api.read_original` does), or None if not held.

    A photo a hub keeps in a bundle is read from that bundle now; a bundle
    that is missing or cannot be decrypted raises `VerificationFailed`.
    `keys`: the hub's SQLCipher file when `store` is its PostgreSQL database
    (the identity that opens the kept bundles stays in the file); when not
    given, the file a hub's database works beside (`sqlstore.own_keys_store`).
    """
    if store.holds_projections:
        row = store.one("SELECT data FROM photo_blobs WHERE sha256 = ?", (sha,))
        if row is not None:
            return bytes(row[0])
    loc = archive.locate(store, sha)
    if loc is None:
        return None
    if keys is None:
        own = own_keys_store(store)  # a hub's database read directly: the hub's file it works beside
        if not isinstance(own, Store):
            raise TypeError("a photo in a kept bundle is opened with the hub's SQLCipher file: pass `keys`")
        keys = own
    return archive.read(keys, loc)


def put_preview(store: Store, sha: str, data: bytes, width: int, height: int) -> None:
    store.execute(
        "INSERT INTO photo_previews (sha256, width, height, data) VALUES (?,?,?,?)"
        " ON CONFLICT(sha256) DO UPDATE SET width = excluded.width, height = excluded.height,"
        " data = excluded.data",
        (sha, width, height, data),
    )


def get_preview(store: Store, sha: str) -> tuple[bytes, int, int] | None:
    row = store.one("SELECT data, width, height FROM photo_previews WHERE sha256 = ?", (sha,))
    return None if row is None else (bytes(row[0]), int(row[1]), int(row[2]))


# -- metadata projection ---------------------------------------------------------------


@common_dialect
def _imported(store: Store, e: Event) -> None:
    b = e.body
    sha = b.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise Refused(f"event {e.id}: photo.imported without a valid sha256")
    # The first import of a hash (in log order) is the one the store shows; a
    # second device importing the same photo adds an event, not a new photo.
    store.execute(
        "INSERT INTO photos (sha256, size, format, width, height, captured_at, camera, name,"
        " has_gps, imported_event, imported_at, imported_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(sha256) DO NOTHING",
        (
            sha,
            int(b.get("size") or 0),
            str(b.get("format") or ""),
            int(b.get("width") or 0),
            int(b.get("height") or 0),
            b.get("captured_at"),
            b.get("camera"),
            b.get("name"),
            1 if b.get("has_gps") else 0,
            e.id,
            e.ts,
            e.user,
        ),
    )


# -- bindings projection ---------------------------------------------------------------


def references_in(data: dict[str, Any]) -> set[tuple[str, str]]:
    """(field, sha256) for every photo reference in a record's field values.

    A photo field holds a list of ``sha256:<hex>`` strings (a single string
    is accepted too); other values are not photo fields.
    """
    pairs: set[tuple[str, str]] = set()
    for name, value in data.items():
        # Most values are numbers, measurements or plain text: tested for the prefix before the
        # full pattern (every record of a rebuild or an import passes through here).
        if isinstance(value, str):
            if value.startswith(REF_PREFIX) and is_reference(value):
                pairs.add((name, digest_of(value)))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and item.startswith(REF_PREFIX) and is_reference(item):
                    pairs.add((name, digest_of(item)))
    return pairs


def _last_author(store: Store, rec: Record) -> tuple[str | None, str]:
    """Who made the record's latest event and when, from projections only.

    (Projections are replayed into a scratch database without the events
    table by `db rebuild --check`, so this must not read `events`.)
    """
    if rec.last_event == rec.event_id:
        return rec.created_by, rec.created_at
    row = store.one("SELECT user_id, ts FROM amendments WHERE event_id = ? LIMIT 1", (rec.last_event,))
    if row is None:
        return rec.created_by, rec.created_at
    return row[0], row[1]


def _may_reference(rec: Record) -> bool:
    """Could the record's values hold a photo reference? False when the text it is stored as lacks the
    prefix every reference starts with (JSON escapes none of its characters): most records hold none,
    and one substring search of their text answers for all their values."""
    return rec.data_json is None or REF_PREFIX in rec.data_json


@common_dialect
def _bindings(store: Store, recs: Sequence[Record]) -> None:
    """The bindings of a run of records (a batch hook, `records.add_batch_hook`), each in turn as its state
    says, in log order: an amended record's earlier state binds, its later one unbinds and binds. A record
    just submitted holding no reference is passed over without a query (its bindings are keyed by its own
    event id and only this hook makes them)."""
    for rec in recs:
        if rec.version == 1 and not _may_reference(rec):
            continue
        _bind(store, rec)


def _bind(store: Store, rec: Record) -> None:
    current = references_in(rec.data) if _may_reference(rec) else set()
    if not current and rec.version == 1:
        return
    active = {
        (r[0], r[1])
        for r in store.execute(
            "SELECT field, sha256 FROM photo_bindings WHERE record_event = ? AND unbound_event IS NULL",
            (rec.event_id,),
        )
    }
    if current == active:
        return
    by, at = _last_author(store, rec)
    for field, sha in sorted(active - current):
        store.execute(
            "UPDATE photo_bindings SET unbound_event = ?, unbound_by = ?, unbound_at = ?"
            " WHERE record_event = ? AND field = ? AND sha256 = ? AND unbound_event IS NULL",
            (rec.last_event, by, at, rec.event_id, field, sha),
        )
    for field, sha in sorted(current - active):
        store.execute(
            "INSERT INTO photo_bindings"
            " (record_event, field, sha256, bound_event, bound_by, bound_at)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (rec.event_id, field, sha, rec.last_event, by, at),
        )


# -- integrity -------------------------------------------------------------------------


def verify_store(store: SqlStore, *, keys: Store | None = None) -> tuple[int, list[str]]:
    """Re-hash every stored original; check every record reference resolves.

    Returns (items checked, problems), each problem naming the photo and,
    for references, the record and field. `store` may be a hub's PostgreSQL
    database (its photos all in kept bundles), `keys` then the hub's file.
    """
    problems: list[str] = []
    checked = 0
    held: set[str] = set()
    blobs = (
        store.execute("SELECT sha256, size, data FROM photo_blobs ORDER BY sha256")
        if store.holds_projections
        else ()
    )
    for sha, size, data in blobs:
        checked += 1
        held.add(sha)
        blob = bytes(data)
        if sha256_hex(blob) != sha:
            problems.append(f"photo sha256:{sha}: stored bytes do not match their hash (altered)")
        elif len(blob) != size:
            problems.append(f"photo sha256:{sha}: stored size {size} differs from the bytes ({len(blob)})")
    for loc, got in archive.read_all(store, keys):
        checked += 1
        held.add(loc.sha256)
        if isinstance(got, VerificationFailed):
            problems.append(str(got))
        elif sha256_hex(got) != loc.sha256:
            problems.append(
                f"photo sha256:{loc.sha256}: the bytes in {loc.bundle} do not match their hash (altered)"
            )
    for (sha,) in store.execute("SELECT sha256 FROM photos ORDER BY sha256"):
        checked += 1
        if sha not in held:
            problems.append(f"photo sha256:{sha}: recorded as imported but its original is missing")
    seen: set[tuple[str, str, str]] = set()
    refs = store.rows(
        "SELECT record_event, field, sha256 FROM photo_bindings ORDER BY record_event, field, sha256"
    )
    for r in refs:
        key = (r["record_event"], r["field"], r["sha256"])
        if key in seen:
            continue
        seen.add(key)
        checked += 1
        if r["sha256"] not in held:
            problems.append(
                f"record {r['record_event']} field {r['field']}: references photo "
                f"sha256:{r['sha256']} which is not in the photo store"
            )
    return checked, problems


def _audit_check(store: Store) -> audit.CheckResult:
    checked, problems = verify_store(store)
    return audit.CheckResult("photo evidence", checked, problems)


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_imported, "photo.imported")
    # A batch hook: a bundle's or a replay's records are bound once their run ends, before anything reads
    # or writes the bindings. Its other read, `_last_author`'s of `amendments`, asks for the row of the
    # record state's own last event: written (insert-only, never updated) before that state reached the
    # hook, and the same whenever it is read, so later amendments need not run the hook first.
    registry.record_batch_hook(_bindings, tables=("photo_bindings",))
    registry.audit_check("photo evidence", _audit_check)
