"""AE mapping: one function from an AE record (and its coding, if any) to an AE row and its SUPPAE.

MedDRA coding is not wardcrf's to invent: the trial licenses the dictionary
and a coder codes each verbatim term (`wardcrf coding`). Until a term is
coded, AEDECOD and the hierarchy stay empty and the export says how many
are uncoded; a prespecified event's label ("Fever") is never written as a
preferred term (MedDRA's is "Pyrexia"), it marks AEPRESP = Y instead.

`ae_row` takes a `Coding` (anything with `variables(record, field, verbatim,
prefix)`); `coding_for` adapts the coding store's `CodingIndex`, so the
store plugs in without this module knowing how it is kept.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...protocol import Protocol as TrialProtocol
from ..dataset import ProvenancedRecord, value_text

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


class Coding(Protocol):
    """What the SDTM export needs from the coding store (`wardcrf.coding`): SDTM variables per coded field.

    `variables(record, field, verbatim, prefix)` returns the dictionary-derived
    variables of a record's field (AEDECOD, AEPTCD, AEBODSYS... for prefix AE;
    CMDECOD, CMCLAS... for CM) when the field's *current* verbatim is coded,
    else None (uncoded, or coded for an earlier verbatim and so stale).
    """

    dictionary_versions: dict[str, list[str]]  # e.g. {"MedDRA": ["27.1"]}

    def variables(self, record: str, field: str, verbatim: str, prefix: str) -> dict[str, Any] | None: ...


class NoCoding:
    """No coding store: every term stays uncoded (and the export says so)."""

    def __init__(self) -> None:
        self.dictionary_versions: dict[str, list[str]] = {}

    def variables(self, record: str, field: str, verbatim: str, prefix: str) -> dict[str, Any] | None:
        return None


class IndexCoding:
    """Adapter over the coding store's `CodingIndex` (one lookup, read once per export)."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.dictionary_versions = index.versions_in_use()

    def variables(self, record: str, field: str, verbatim: str, prefix: str) -> dict[str, Any] | None:
        coding = self.index.get(record, field, verbatim=verbatim)
        return dict(coding.sdtm_variables(prefix)) if coding is not None else None


def coding_for(store: Any) -> Coding:
    """The site's codings when the coding store exists (it lands with `wardcrf coding`), else none."""
    import importlib

    try:
        model = importlib.import_module("wardcrf.coding.model")
    except ImportError:
        return NoCoding()
    return IndexCoding(model.CodingIndex.load(store))


def yn(value: Any) -> str:
    if value is None:
        return ""
    return "Y" if value is True or value == "true" else "N"


def ae_row(rec: ProvenancedRecord, proto: TrialProtocol, coding: Coding) -> tuple[dict[str, Any], dict[str, str], bool]:
    """(AE values, SUPPAE values by QNAM, coded?) for one AE record; timing is added by the caller."""
    d = rec.data
    grade = d.get("grade")
    pre = value_text(d.get("prespecified"))
    form = proto.forms.get(rec.form)
    term_field = (
        next((f.name for f in form.fields.values() if f.cdisc == "AETERM"), "term") if form else "term"
    )
    term = value_text(d.get(term_field))
    coded = coding.variables(rec.event_id, term_field, term, "AE")
    serious = d.get("serious")
    row: dict[str, Any] = {
        "AESPID": rec.event_id,
        "AETERM": term,
        "AEDECOD": "",
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
        row.update(coded)
    supp: dict[str, str] = {}
    if value_text(d.get("action")) == DELAYED:
        supp["AEACNDLY"] = "Y"
    return row, supp, coded is not None


SUPP_LABELS = {
    "AEACNDLY": "Study Treatment Dose Delayed Due to AE",
    "AERELDSM": "Causality Assessed by the DSMG",
    "AEUNXDSM": "Unexpected in the Disease per the DSMG",
}
