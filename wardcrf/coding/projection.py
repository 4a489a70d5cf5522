"""Projections of the coding events; every body is checked before anything is written.

Coding events travel in bundles like every event, so the projectors read
them as hostile input: a body of the wrong shape, a dictionary wardcrf
does not know, codes of the wrong type, or an event from a role that may
not code refuses the event (and with it the bundle), never a crash.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import roles
from ..canonical import dumps
from ..errors import Refused
from ..eventlog import Event
from ..sqlstore import common_dialect
from ..store import Store
from .model import CODE_KEYS, DICTIONARIES

if TYPE_CHECKING:
    from ..features import Registry

EVENT_CODED = "coding.coded"
EVENT_LOADED = "coding.dictionary_loaded"
MAX_TEXT = 2000


def _text(body: dict[str, Any], key: str, e: Event, *, limit: int = MAX_TEXT, empty: bool = False) -> str:
    v = body.get(key)
    if not isinstance(v, str) or (not empty and not v.strip()) or len(v) > limit:
        raise Refused(f"event {e.id} ({e.type}): body.{key} must be a text of 1 to {limit} characters")
    return v


def check_coded(e: Event) -> dict[str, Any]:
    """The body of a `coding.coded` event, checked; `Refused` naming the problem otherwise."""
    if not roles.allowed(e.role or "", "coding.code"):
        raise Refused(f"event {e.id}: role {e.role} may not code terms (allowed: coder)")
    b = e.body
    if not isinstance(b, dict):
        raise Refused(f"event {e.id} ({e.type}): body must be an object")
    for key in ("record", "form", "field", "dictionary", "version"):
        _text(b, key, e, limit=200)
    _text(b, "verbatim", e)
    if b["dictionary"] not in DICTIONARIES:
        raise Refused(
            f"event {e.id}: unknown dictionary {b['dictionary'][:40]!r} (known: {', '.join(DICTIONARIES)})"
        )
    codes = b.get("codes")
    spec = CODE_KEYS[b["dictionary"]]
    if not isinstance(codes, dict) or set(codes) != set(spec):
        raise Refused(f"event {e.id}: body.codes must hold exactly {', '.join(spec)}")
    for key, typ in spec.items():
        v = codes[key]
        if isinstance(v, bool) or not isinstance(v, typ) or (isinstance(v, str) and len(v) > MAX_TEXT):
            raise Refused(
                f"event {e.id}: body.codes.{key} must be {'an integer' if typ is int else 'a text'}"
            )
    replaces = b.get("replaces")
    if replaces is not None and not isinstance(replaces, str):
        raise Refused(f"event {e.id}: body.replaces must be an event id or null")
    return b


@common_dialect
def _coded(store: Store, e: Event) -> None:
    b = check_coded(e)
    row = store.one(
        "SELECT hlc, coding_event FROM codings WHERE record_event = ? AND field = ?",
        (b["record"], b["field"]),
    )
    if row is not None and (row[0], row[1]) > (e.hlc, e.id):
        # An older coding arriving after a newer one (sync order): counted, not shown.
        store.execute(
            "UPDATE codings SET codings = codings + 1 WHERE record_event = ? AND field = ?",
            (b["record"], b["field"]),
        )
        return
    store.execute(
        "INSERT INTO codings (record_event, field, coding_event, subject, form, verbatim, dictionary,"
        " version, codes, coded_by, coded_at, hlc, codings) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1)"
        " ON CONFLICT (record_event, field) DO UPDATE SET coding_event = excluded.coding_event,"
        " subject = excluded.subject, form = excluded.form, verbatim = excluded.verbatim,"
        " dictionary = excluded.dictionary, version = excluded.version, codes = excluded.codes,"
        " coded_by = excluded.coded_by, coded_at = excluded.coded_at, hlc = excluded.hlc,"
        " codings = codings.codings + 1",
        (
            b["record"],
            b["field"],
            e.id,
            b.get("subject") if isinstance(b.get("subject"), str) else None,
            b["form"],
            b["verbatim"],
            b["dictionary"],
            b["version"],
            dumps(b["codes"]),
            e.user,
            e.ts,
            e.hlc,
        ),
    )


@common_dialect
def _loaded(store: Store, e: Event) -> None:
    if not roles.allowed(e.role or "", "coding.dictionary"):
        raise Refused(f"event {e.id}: role {e.role} may not load dictionaries")
    b = e.body
    if not isinstance(b, dict):
        raise Refused(f"event {e.id} ({e.type}): body must be an object")
    dictionary = _text(b, "dictionary", e, limit=40)
    if dictionary not in DICTIONARIES:
        raise Refused(f"event {e.id}: unknown dictionary {dictionary!r}")
    version = _text(b, "version", e, limit=100)
    files, terms = b.get("files"), b.get("terms")
    if not isinstance(files, dict) or isinstance(terms, bool) or not isinstance(terms, int):
        raise Refused(f"event {e.id}: body.files must be an object and body.terms an integer")
    language = b.get("language") if isinstance(b.get("language"), str) else None
    store.execute(
        "INSERT INTO coding_dictionaries (dictionary, version, device, language, loaded_event, loaded_at,"
        " loaded_by, files, terms) VALUES (?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (dictionary, version, device) DO UPDATE SET loaded_event = excluded.loaded_event,"
        " loaded_at = excluded.loaded_at, loaded_by = excluded.loaded_by, files = excluded.files,"
        " terms = excluded.terms, language = excluded.language",
        (
            dictionary,
            version,
            e.device,
            language,
            e.id,
            e.ts,
            e.user,
            json.dumps(files, sort_keys=True),
            terms,
        ),
    )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_coded, EVENT_CODED)
    registry.projector(_loaded, EVENT_LOADED)
