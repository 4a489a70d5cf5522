"""AE mapping: one function from an AE record (and its coding, if any) to an AE row and its SUPPAE.

MedDRA coding is not wardcrf's to invent: the trial licenses the dictionary
and a coder codes each verbatim term (`wardcrf coding`). Until a term is
coded, AEDECOD and the hierarchy stay empty and the export says how many
are uncoded; a prespecified event's label ("Fever") is never written as a
preferred term (MedDRA's is "Pyrexia"), it marks AEPRESP = Y instead.

`ae_row` takes a `Coding` (anything with `ae_term(record_event_id, term)`),
so the coding store plugs in without this module knowing how it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ...protocol import Protocol as TrialProtocol
from ..dataset import Record, value_text

AESEV_BY_GRADE = {1: "MILD", 2: "MODERATE", 3: "SEVERE", 4: "SEVERE", 5: "SEVERE"}
AEOUT = {
    "recovered": "RECOVERED/RESOLVED",
    "recovering": "RECOVERING/RESOLVING",
    "not_recovered": "NOT RECOVERED/NOT RESOLVED",
    "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
    "unknown": "UNKNOWN",
}
# CDISC ACN (C66767) has no "delayed" term. A delayed dose is given in full,
# later: AEACN = DOSE NOT CHANGED, and SUPPAE.AEACNDLY = Y says it was delayed
# (AEACNOTH is for actions other than with the study treatment, SDTMIG 3.4
# AE assumption 5, so it is not used for this).
AEACN = {
    "none": "DOSE NOT CHANGED",
    "interrupted": "DRUG INTERRUPTED",
    "delayed": "DOSE NOT CHANGED",
    "withdrawn": "DRUG WITHDRAWN",
    "not_applicable": "NOT APPLICABLE",
}
DELAYED = "delayed"
AESERIOUS = {
    "death": "AESDTH",
    "life_threatening": "AESLIFE",
    "hospitalization": "AESHOSP",
    "disability": "AESDISAB",
    "congenital_anomaly": "AESCONG",
    "medically_important": "AESMIE",
}


@dataclass(frozen=True)
class Coded:
    """A MedDRA coding of one verbatim term (names and codes of each level)."""

    decod: str
    ptcd: int | None = None
    llt: str = ""
    lltcd: int | None = None
    hlt: str = ""
    hltcd: int | None = None
    hlgt: str = ""
    hlgtcd: int | None = None
    soc: str = ""
    soccd: int | None = None


class Coding(Protocol):
    """What the AE mapping needs from the coding store."""

    dictionary_version: str  # e.g. "MedDRA 27.1"; "" when no dictionary is loaded

    def ae_term(self, record_event_id: str, term: str) -> Coded | None: ...


class NoCoding:
    """No dictionary loaded: every term stays uncoded (and the export says so)."""

    dictionary_version = ""

    def ae_term(self, record_event_id: str, term: str) -> Coded | None:
        return None


def yn(value: Any) -> str:
    if value is None:
        return ""
    return "Y" if value is True or value == "true" else "N"


def ae_row(rec: Record, proto: TrialProtocol, coding: Coding) -> tuple[dict[str, Any], dict[str, str], bool]:
    """(AE values, SUPPAE values by QNAM, coded?) for one AE record; timing is added by the caller."""
    d = rec.data
    grade = d.get("grade")
    pre = value_text(d.get("prespecified"))
    term = value_text(d.get("term"))
    coded = coding.ae_term(rec.event_id, term)
    serious = d.get("serious")
    row: dict[str, Any] = {
        "AESPID": rec.event_id,
        "AETERM": term,
        "AEDECOD": coded.decod if coded else "",
        "AEPRESP": "Y" if pre and pre != "no" else "",
        "AESEV": AESEV_BY_GRADE.get(int(grade), "") if isinstance(grade, int) else "",
        "AESER": yn(serious),
        "AEACN": AEACN.get(value_text(d.get("action")), ""),
        "AEREL": value_text(d.get("causality")).upper(),
        "AEOUT": AEOUT.get(value_text(d.get("outcome")), ""),
        "AETOXGR": value_text(grade),
        **{col: yn(d.get(name)) if serious else "" for name, col in AESERIOUS.items()},
    }
    if coded:
        row.update(
            AELLT=coded.llt,
            AELLTCD=coded.lltcd,
            AEPTCD=coded.ptcd,
            AEHLT=coded.hlt,
            AEHLTCD=coded.hltcd,
            AEHLGT=coded.hlgt,
            AEHLGTCD=coded.hlgtcd,
            AEBODSYS=coded.soc,
            AEBDSYCD=coded.soccd,
            AESOC=coded.soc,
            AESOCCD=coded.soccd,
        )
    supp: dict[str, str] = {}
    if value_text(d.get("action")) == DELAYED:
        supp["AEACNDLY"] = "Y"
    return row, supp, coded is not None


SUPP_LABELS = {
    "AEACNDLY": "Study Treatment Dose Delayed Due to AE",
    "AERELDSM": "Causality Assessed by the DSMG",
    "AEUNXDSM": "Unexpected in the Disease per the DSMG",
}
