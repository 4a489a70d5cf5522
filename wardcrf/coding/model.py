"""What a coding is, which fields are coded, and the lookup every export uses.

A field is coded when its protocol CDISC name is a verbatim-term variable:
``AETERM`` and ``MHTERM`` take MedDRA, ``CMTRT`` takes WHODrug. A protocol
that adds a history or medication field with one of these names gets it
coded without code changes.

A coding is valid for the verbatim it was made for: when the verbatim is
later amended, the coding is *stale* and the term is back in the queue (the
old coding stays in the log). `CodingIndex` is the one lookup: SDTM fills
AEDECOD/AEBODSYS/AEPTCD/... and CMDECOD/CMCLAS from `sdtm_variables`, and
reads the dictionary versions in use (for TS) from `versions_in_use`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..sqlstore import SqlStore

MEDDRA = "MedDRA"
WHODRUG = "WHODrug"
DICTIONARIES = (MEDDRA, WHODRUG)
CODED_VARIABLES = {"AETERM": MEDDRA, "MHTERM": MEDDRA, "CMTRT": WHODRUG}
"""CDISC verbatim-term variable -> the dictionary that codes it."""

MEDDRA_CODES: dict[str, type] = {
    "llt_code": int,
    "llt_name": str,
    "pt_code": int,
    "pt_name": str,
    "hlt_code": int,
    "hlt_name": str,
    "hlgt_code": int,
    "hlgt_name": str,
    "soc_code": int,
    "soc_name": str,
    "soc_abbrev": str,
}
WHODRUG_CODES: dict[str, type] = {
    "drug_code": str,
    "drug_name": str,
    "preferred_code": str,
    "preferred_name": str,
    "atc_code": str,
    "atc_text": str,
}
CODE_KEYS: dict[str, dict[str, type]] = {MEDDRA: MEDDRA_CODES, WHODRUG: WHODRUG_CODES}


def coded_fields(protocols: Iterable[Any]) -> dict[tuple[str, str], str]:
    """(form, field) -> dictionary, over every given protocol version (oldest first)."""
    out: dict[tuple[str, str], str] = {}
    for proto in protocols:
        for form in proto.forms.values():
            for fd in form.fields.values():
                dictionary = CODED_VARIABLES.get((fd.cdisc or "").strip())
                if dictionary and fd.type == "text":
                    out[(form.name, fd.name)] = dictionary
    return out


def verbatim_of(value: Any) -> str:
    """A stored text value as the verbatim a coding is compared with."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Coding:
    """One field's current coding: who coded which verbatim, with which dictionary version, to what."""

    record: str
    field: str
    form: str
    subject: str | None
    verbatim: str
    dictionary: str
    version: str
    codes: dict[str, Any]
    coded_by: str | None
    coded_at: str
    event_id: str
    codings: int

    @property
    def term(self) -> str:
        """The standard term: MedDRA's preferred term, WHODrug's preferred name."""
        key = "pt_name" if self.dictionary == MEDDRA else "preferred_name"
        return str(self.codes.get(key) or "")

    @property
    def code(self) -> str:
        key = "llt_code" if self.dictionary == MEDDRA else "drug_code"
        return str(self.codes.get(key) or "")

    def sdtm_variables(self, prefix: str) -> dict[str, Any]:
        """SDTMIG 3.4 dictionary-derived variables for domain `prefix` (AE, MH, CM).

        MedDRA: --LLT/--LLTCD, --DECOD (PT)/--PTCD, --HLT/--HLTCD,
        --HLGT/--HLGTCD, --BODSYS/--BDSYCD (primary SOC), --SOC/--SOCCD.
        WHODrug: --DECOD (preferred name), --CLAS/--CLASCD (ATC class).
        """
        c, p = self.codes, prefix.upper()
        if self.dictionary == MEDDRA:
            return {
                f"{p}LLT": c["llt_name"],
                f"{p}LLTCD": c["llt_code"],
                f"{p}DECOD": c["pt_name"],
                f"{p}PTCD": c["pt_code"],
                f"{p}HLT": c["hlt_name"],
                f"{p}HLTCD": c["hlt_code"],
                f"{p}HLGT": c["hlgt_name"],
                f"{p}HLGTCD": c["hlgt_code"],
                f"{p}BODSYS": c["soc_name"],
                f"{p}BDSYCD": c["soc_code"],
                f"{p}SOC": c["soc_name"],
                f"{p}SOCCD": c["soc_code"],
            }
        return {f"{p}DECOD": c["preferred_name"], f"{p}CLAS": c["atc_text"], f"{p}CLASCD": c["atc_code"]}

    def as_json(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "form": self.form,
            "field": self.field,
            "subject": self.subject,
            "verbatim": self.verbatim,
            "dictionary": self.dictionary,
            "version": self.version,
            "term": self.term,
            "codes": self.codes,
            "coded_by": self.coded_by,
            "coded_at": self.coded_at,
            "event": self.event_id,
            "codings": self.codings,
        }


@dataclass(frozen=True)
class Uncoded:
    """A verbatim term waiting for a coder (never coded, or amended since it was coded)."""

    record: str
    form: str
    field: str
    subject: str | None
    verbatim: str
    dictionary: str
    stale: Coding | None  # the coding made for an earlier verbatim, if any

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record": self.record,
            "form": self.form,
            "field": self.field,
            "subject": self.subject,
            "verbatim": self.verbatim,
            "dictionary": self.dictionary,
            "status": "recode: verbatim changed since coded" if self.stale else "uncoded",
        }
        if self.stale:
            out["coded_verbatim"] = self.stale.verbatim
        return out


class CodingIndex:
    """Every current coding of a site, for lookups by record and field (read once, small).

    >>> idx = CodingIndex.load(store)
    >>> c = idx.get(record_event_id, "term", verbatim=current_term)  # None: uncoded or stale
    >>> c.sdtm_variables("AE")["AEDECOD"]
    """

    def __init__(self, codings: dict[tuple[str, str], Coding]) -> None:
        self._codings = codings

    @classmethod
    def load(cls, store: SqlStore) -> CodingIndex:
        """Every current coding, from either engine (its catalogue asked through `SqlStore.has_table`)."""
        if not store.has_table("codings"):  # a database from before coding existed, opened read-only
            return cls({})
        out = {}
        for r in store.rows("SELECT * FROM codings"):
            out[(r["record_event"], r["field"])] = Coding(
                record=r["record_event"],
                field=r["field"],
                form=r["form"],
                subject=r["subject"],
                verbatim=r["verbatim"],
                dictionary=r["dictionary"],
                version=r["version"],
                codes=json.loads(r["codes"]),
                coded_by=r["coded_by"],
                coded_at=r["coded_at"],
                event_id=r["coding_event"],
                codings=r["codings"],
            )
        return cls(out)

    def __len__(self) -> int:
        return len(self._codings)

    def latest(self, record: str, field: str) -> Coding | None:
        """The newest coding of the field, whatever verbatim it was made for."""
        return self._codings.get((record, field))

    def get(self, record: str, field: str, *, verbatim: Any) -> Coding | None:
        """The coding valid for `verbatim` (the field's current value), else None (uncoded or stale)."""
        c = self._codings.get((record, field))
        if c is None or c.verbatim != verbatim_of(verbatim):
            return None
        return c

    def all(self) -> list[Coding]:
        return sorted(self._codings.values(), key=lambda c: (c.coded_at, c.event_id))

    def versions_in_use(self) -> dict[str, list[str]]:
        """Dictionary -> the versions its current codings were made with (for TS and define.xml)."""
        out: dict[str, set[str]] = {}
        for c in self._codings.values():
            out.setdefault(c.dictionary, set()).add(c.version)
        return {d: sorted(v) for d, v in sorted(out.items())}


def field_value(data: str, field: str) -> Any:
    """A record's field as SQLite's ``json_extract(data, '$.' || field)`` gave it, read in Python (both
    engines): text and numbers as they are, true/false as 1/0, an object or a list as its compact JSON."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    value = doc.get(field) if isinstance(doc, dict) else None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def uncoded(
    store: SqlStore,
    protocols: Iterable[Any],
    index: CodingIndex | None = None,
    *,
    records: SqlStore | None = None,
) -> list[Uncoded]:
    """Every coded field with a verbatim and no valid coding, in log order.

    `records`: where the records are when not in `store` (a PostgreSQL hub's database, read beside the
    hub's file). Their values are read in Python (`field_value`), as both engines can.
    """
    index = index or CodingIndex.load(store)
    fields = coded_fields(protocols)
    db = store if records is None else records
    out: list[Uncoded] = []
    for (form, field), dictionary in fields.items():
        rows = db.execute(
            "SELECT r.event_id, r.subject, r.data FROM records r"
            " JOIN events e ON e.id = r.event_id WHERE r.form = ? ORDER BY e.pos",
            (form,),
        )
        for event_id, subject, data in rows:
            value = field_value(data, field)
            verbatim = verbatim_of(value).strip()
            if not verbatim:
                continue
            if index.get(event_id, field, verbatim=verbatim_of(value)) is not None:
                continue
            out.append(
                Uncoded(
                    event_id,
                    form,
                    field,
                    subject,
                    verbatim_of(value),
                    dictionary,
                    index.latest(event_id, field),
                )
            )
    return out
