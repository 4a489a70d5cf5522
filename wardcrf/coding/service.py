"""Coding services: load a dictionary, search it, code a verbatim term, list what waits.

Permissions (`wardcrf.roles`): a coder codes (``coding.code``); a coder or
an admin loads a dictionary (``coding.dictionary``); everyone may read the
queue and the codings (``record.read``). Coding is an event; re-coding a
field that already has a valid coding is an amendment and needs a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import protocol as protocols
from ..errors import Refused, UsageError
from ..eventlog import Event
from ..sqlstore import SqlStore
from ..store import Store
from . import meddra, whodrug
from .files import check_text
from .model import (
    MEDDRA,
    MEDDRA_CODES,
    WHODRUG,
    Coding,
    CodingIndex,
    Uncoded,
    coded_fields,
    uncoded,
    verbatim_of,
)
from .projection import EVENT_CODED, EVENT_LOADED

if TYPE_CHECKING:
    from ..site import Session

MAX_VERSION = 100


def _protocols(store: SqlStore) -> list[Any]:
    """The versions loaded, in load order (`rowid`: insertion order, a twin column on PostgreSQL, where a
    hub's own loads are projected without their events)."""
    rows = store.rows("SELECT source, protocol_id FROM protocols ORDER BY rowid")
    return [protocols.parse_cached(r["source"], f"{r['protocol_id']} (loaded)") for r in rows]


def dictionary_name(text: str) -> str:
    """``meddra`` / ``whodrug`` (any case) -> the dictionary's proper name."""
    for d in (MEDDRA, WHODRUG):
        if text.strip().lower() == d.lower():
            return d
    raise UsageError(f"unknown dictionary {text[:40]!r} (allowed: meddra, whodrug)")


@dataclass(frozen=True)
class Loaded:
    dictionary: str
    version: str
    language: str | None
    terms: int
    files: dict[str, dict[str, object]]
    event_id: str

    def as_json(self) -> dict[str, Any]:
        return {
            "dictionary": self.dictionary,
            "version": self.version,
            "language": self.language,
            "terms": self.terms,
            "files": self.files,
            "event": self.event_id,
        }


def load_dictionary(
    session: Session, dictionary: str, directory: Path, *, version: str | None = None
) -> Loaded:
    """Read a distribution folder, store its terms, record the load (all or nothing)."""
    session.require("coding.dictionary", what="load coding dictionaries")
    dictionary = dictionary_name(dictionary)
    store = session.store
    language: str | None
    if dictionary == MEDDRA:
        if version is not None:
            raise UsageError("MedDRA states its own version (meddra_release.asc); do not give --version")
        m = meddra.read(Path(directory))
        version, language, files = m.version, m.language, m.files
        rows, table, n = list(meddra.rows(m)), "coding_meddra", len(m.llts)
    else:
        if not version or not version.strip():
            raise UsageError(
                'WHODrug files state no version: give --version (e.g. "Global B3 March 1, 2024")'
            )
        version = check_text(version.strip(), "--version", 0, "version")
        if len(version) > MAX_VERSION:
            raise UsageError(f"--version is longer than {MAX_VERSION} characters")
        w = whodrug.read(Path(directory), version)
        language, files = None, w.files
        rows = list(whodrug.rows(w))
        table, n = "coding_whodrug", len(w.drugs)
    if store.one(f"SELECT 1 FROM {table} WHERE version = ? LIMIT 1", (version,)):
        raise Refused(f"{dictionary} {version} is already loaded on this device")
    marks = ",".join("?" * len(rows[0]))
    with store.transaction():
        store.conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        event = session.append(
            type=EVENT_LOADED,
            subject=f"dictionary:{dictionary}",
            body={
                "dictionary": dictionary,
                "version": version,
                "language": language,
                "terms": n,
                "files": {f.name: f.as_json() for f in files},
            },
        ).event
    return Loaded(dictionary, version, language, n, {f.name: f.as_json() for f in files}, event.id)


def loaded_versions(store: SqlStore) -> list[dict[str, Any]]:
    """Dictionary versions whose terms are on this device, with who loaded them."""
    out = []
    for dictionary, table in ((MEDDRA, "coding_meddra"), (WHODRUG, "coding_whodrug")):
        for version, terms in store.execute(
            f"SELECT version, count(*) FROM {table} GROUP BY version ORDER BY version"
        ):
            meta = store.one(
                "SELECT loaded_at, loaded_by, language, loaded_event FROM coding_dictionaries"
                " WHERE dictionary = ? AND version = ? ORDER BY loaded_at DESC LIMIT 1",
                (dictionary, version),
            )
            out.append(
                {
                    "dictionary": dictionary,
                    "version": version,
                    "terms": terms,
                    "language": meta[2] if meta else None,
                    "loaded_at": meta[0] if meta else None,
                    "loaded_by": meta[1] if meta else None,
                    "event": meta[3] if meta else None,
                }
            )
    return out


def current_version(store: Store, dictionary: str, version: str | None = None) -> str:
    """The version to code with: the one asked for, else the only (or newest) one loaded here."""
    table = "coding_meddra" if dictionary == MEDDRA else "coding_whodrug"
    have = [v for (v,) in store.execute(f"SELECT DISTINCT version FROM {table}")]
    if not have:
        raise Refused(
            f"no {dictionary} dictionary is loaded on this device "
            f"(`wardcrf coding load {dictionary.lower()} DIR`, from the licensed distribution files)"
        )
    if version is not None:
        if version not in have:
            raise Refused(f"{dictionary} {version} is not loaded here (loaded: {', '.join(sorted(have))})")
        return version
    if len(have) == 1:
        return have[0]
    # Several versions: the newest load. MedDRA versions compare numerically (26.1 < 27.0).
    row = store.one(
        "SELECT version FROM coding_dictionaries WHERE dictionary = ? AND version IN ({})"
        " ORDER BY loaded_at DESC LIMIT 1".format(",".join("?" * len(have))),
        (dictionary, *have),
    )
    return str(row[0]) if row else sorted(have)[-1]


def search(
    store: Store, dictionary: str, text: str, *, version: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Dictionary entries whose name contains `text` (exact matches first)."""
    dictionary = dictionary_name(dictionary)
    version = current_version(store, dictionary, version)
    needle = text.strip()
    if not needle:
        raise UsageError("give some text to search for")
    like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if dictionary == MEDDRA:
        rows = store.rows(
            "SELECT * FROM coding_meddra WHERE version = ? AND llt_name LIKE ? ESCAPE '\\'"
            " ORDER BY (lower(llt_name) = lower(?)) DESC, llt_current DESC, length(llt_name), llt_name LIMIT ?",
            (version, like, needle, limit),
        )
        return [{"version": version, **{k: v for k, v in r.items() if k != "version"}} for r in rows]
    rows = store.rows(
        "SELECT * FROM coding_whodrug WHERE version = ? AND drug_name LIKE ? ESCAPE '\\'"
        " ORDER BY (lower(drug_name) = lower(?)) DESC, length(drug_name), drug_name LIMIT ?",
        (version, like, needle, limit),
    )
    return [{**r, "atc": json.loads(r["atc"])} for r in rows]


def _meddra_codes(store: Store, version: str, llt: str) -> dict[str, Any]:
    if not llt.isdigit() or len(llt) != 8:
        raise UsageError(f"--llt must be an eight-digit MedDRA LLT code, not {llt[:20]!r}")
    r = store.rows("SELECT * FROM coding_meddra WHERE version = ? AND llt_code = ?", (version, int(llt)))
    if not r:
        raise Refused(f"LLT {llt} is not in MedDRA {version}")
    row = r[0]
    if not row["llt_current"]:
        raise Refused(
            f"LLT {llt} ({row['llt_name']}) is non-current in MedDRA {version}; choose a current LLT"
        )
    return {k: row[k] for k in MEDDRA_CODES}


def _whodrug_codes(store: Store, version: str, drug: str, atc: str | None) -> dict[str, Any]:
    r = store.rows(
        "SELECT * FROM coding_whodrug WHERE version = ? AND drug_code = ?", (version, drug.strip())
    )
    if not r:
        raise Refused(f"drug code {drug[:20]!r} is not in WHODrug {version}")
    row = r[0]
    classes = [tuple(p) for p in json.loads(row["atc"])]
    if atc is None and len(classes) > 1:
        raise UsageError(
            f"{row['drug_name']} has {len(classes)} ATC classes ({', '.join(c for c, _ in classes)}): choose one with --atc"
        )
    chosen = next((c for c in classes if c[0] == atc), None) if atc else (classes[0] if classes else None)
    if atc and chosen is None:
        raise Refused(
            f"ATC {atc} is not a class of {row['drug_name']} (classes: {', '.join(c for c, _ in classes) or 'none'})"
        )
    return {
        "drug_code": row["drug_code"],
        "drug_name": row["drug_name"],
        "preferred_code": row["preferred_code"],
        "preferred_name": row["preferred_name"],
        "atc_code": chosen[0] if chosen else "",
        "atc_text": chosen[1] if chosen else "",
    }


def code(
    session: Session,
    record: str,
    *,
    field: str | None = None,
    llt: str | None = None,
    drug: str | None = None,
    atc: str | None = None,
    version: str | None = None,
    reason: str | None = None,
    wards: SqlStore | None = None,
) -> Event:
    """Code one record's verbatim term (a coder); re-coding needs a reason.

    `wards`: where the records and codings are (a PostgreSQL hub's database, `sync.hub.ledger_store`); the
    site's file when not given. The licensed terms are read from the site's file, where alone they are,
    and the coding is appended there (a hub's own event, projected into its database before the next
    import: `sync.pghub.mirror_own_events`).
    """
    session.require("coding.code", what="code verbatim terms")
    store = session.store
    held = wards if wards is not None else store
    row = held.one("SELECT form, subject, data FROM records WHERE event_id = ?", (record,))
    if row is None:
        raise Refused(f"unknown record {record[:80]} (see `wardcrf coding queue`)")
    form, subject, data = row[0], row[1], json.loads(row[2])
    fields = {f: d for (fm, f), d in coded_fields(_protocols(held)).items() if fm == form}
    if not fields:
        raise Refused(f"record {record} is a {form} record, which has no coded field")
    if field is None:
        if len(fields) > 1:
            raise UsageError(
                f"{form} has several coded fields ({', '.join(fields)}): choose one with --field"
            )
        field = next(iter(fields))
    if field not in fields:
        raise UsageError(f"{form}.{field} is not coded (coded fields of {form}: {', '.join(fields)})")
    dictionary = fields[field]
    verbatim = verbatim_of(data.get(field))
    if not verbatim.strip():
        raise Refused(f"record {record} has no {field} to code")
    version = current_version(store, dictionary, version)
    if dictionary == MEDDRA:
        if llt is None or drug is not None:
            raise UsageError(
                f"{form}.{field} is coded with MedDRA: give --llt CODE (find it with `coding search`)"
            )
        codes = _meddra_codes(store, version, llt)
    else:
        if drug is None or llt is not None:
            raise UsageError(
                f"{form}.{field} is coded with WHODrug: give --drug CODE (find it with `coding search`)"
            )
        codes = _whodrug_codes(store, version, drug, atc)
    index = CodingIndex.load(held)
    current = index.latest(record, field)
    clean_reason = (reason or "").strip() or None
    if current is not None and current.verbatim == verbatim:
        if current.codes == codes and current.version == version:
            raise Refused(
                f"{form}.{field} of {record} is already coded to this term in {dictionary} {version}"
            )
        if not clean_reason:
            raise UsageError(
                "this term is already coded: changing its coding is an amendment and needs --reason"
            )
    body = {
        "record": record,
        "form": form,
        "field": field,
        "subject": subject,
        "verbatim": verbatim,
        "dictionary": dictionary,
        "version": version,
        "codes": codes,
        "replaces": current.event_id if current else None,
    }
    return session.append(type=EVENT_CODED, subject=f"coding:{record}", body=body, reason=clean_reason).event


def queue(store: SqlStore) -> list[Uncoded]:
    """Terms waiting for a coder, in the order they were recorded (either engine: a PostgreSQL hub's
    database holds the wards' records and the versions loaded)."""
    return uncoded(store, _protocols(store))


def codings(store: SqlStore) -> list[Coding]:
    """Every current coding (either engine)."""
    return CodingIndex.load(store).all()


def status(store: SqlStore, *, local: Store | None = None) -> dict[str, Any]:
    """Counts per dictionary: coded, uncoded, recode (verbatim changed since coded); versions in use.

    `store`: where the records and codings are (a PostgreSQL hub's database, else the site's file);
    `local`: the site's file, which alone holds the licensed terms (`loaded_here`); `store` when not given.
    """
    index = CodingIndex.load(store)
    waiting = uncoded(store, _protocols(store), index)
    out: dict[str, Any] = {"uncoded": 0, "recode": 0, "dictionaries": {}}
    for d in (MEDDRA, WHODRUG):
        entry = {
            "coded": sum(1 for c in index.all() if c.dictionary == d)
            - sum(1 for u in waiting if u.dictionary == d and u.stale is not None),
            "uncoded": sum(1 for u in waiting if u.dictionary == d and u.stale is None),
            "recode": sum(1 for u in waiting if u.dictionary == d and u.stale is not None),
            "versions_in_use": index.versions_in_use().get(d, []),
        }
        out["dictionaries"][d] = entry
        out["uncoded"] += entry["uncoded"]
        out["recode"] += entry["recode"]
    out["loaded_here"] = loaded_versions(local if local is not None else store)
    return out
