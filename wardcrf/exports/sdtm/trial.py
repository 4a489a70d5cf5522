"""Trial-design datasets: what TS (Trial Summary), TA, TE and TV share whatever the protocol's format.

TS is what FDA's technical rejection criteria look for first (a submission
without TS, or without a study start date in it, is refused). Its values
come from the protocol's declarations (`engine_design`: `[protocol]`,
`[trial]`, the arms' regimens, the criteria) and, for the dates and counts
only the data know (study start, actual number of subjects), from the
datasets built.
Values that are CDISC controlled terms name the CT package and version
in TSVCDREF/TSVCDVER, so TS itself states which terminology the
submission uses; TSPARMCD SDTIGVER/SDTMVER name the SDTM versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ... import cdisc
from ..dataset import value_text
from .design import Design

CT = "CDISC CT"
ISO8601 = "ISO 8601"
ISO3166 = "ISO 3166-1 alpha-3"


def _yn(flag: bool | None) -> str | None:
    return None if flag is None else ("Y" if flag else "N")


Param = tuple[str, str, Any, str, str]  # (TSPARMCD, TSPARM, value, TSVCDREF, TSVCDVER)
# Parameters FDA's Technical Conformance Guide expects even without a value: the null flavour SDTMIG gives.
NULL_FLAVOURS = {"AGEMAX": "PINF"}


def _trial_params(t: Any) -> list[Param]:
    """The `[trial]` facts both formats state the same way (format 2: the same keys, a mapping)."""
    get = t.get if isinstance(t, Mapping) else lambda k, d=None: getattr(t, k, d)
    return [
        ("SPONSOR", "Clinical Study Sponsor", get("sponsor"), "", ""),
        ("TPHASE", "Trial Phase Classification", get("phase"), CT, cdisc.CT_VERSION),
        ("INDIC", "Trial Disease/Condition Indication", get("indication"), "", ""),
        ("TINDTP", "Trial Intent Type", get("indication_type"), CT, cdisc.CT_VERSION),
        *(("TTYPE", "Trial Type", v, CT, cdisc.CT_VERSION) for v in get("trial_types") or ()),
        ("STYPE", "Study Type", get("study_type", "INTERVENTIONAL"), CT, cdisc.CT_VERSION),
        ("INTTYPE", "Intervention Type", get("intervention_type"), CT, cdisc.CT_VERSION),
        ("INTMODEL", "Intervention Model", get("intervention_model"), CT, cdisc.CT_VERSION),
        ("TBLIND", "Trial Blinding Schema", get("blinding"), CT, cdisc.CT_VERSION),
        ("TCNTRL", "Control Type", get("control"), CT, cdisc.CT_VERSION),
        ("RANDOM", "Trial is Randomized", _yn(get("randomized")), CT, cdisc.CT_VERSION),
        ("ADDON", "Added on to Existing Treatments", _yn(get("add_on")), CT, cdisc.CT_VERSION),
        ("HLTSUBJI", "Healthy Subject Indicator", _yn(get("healthy_volunteers")), CT, cdisc.CT_VERSION),
        ("SEXPOP", "Sex of Participants", get("sex_population"), CT, cdisc.CT_VERSION),
        ("PLANSUB", "Planned Number of Subjects", get("planned_participants"), "", ""),
        ("OBJPRIM", "Trial Primary Objective", get("primary_objective"), "", ""),
        ("STOPRULE", "Study Stop Rules", get("stopping_rule"), "", ""),
        *(
            ("FCNTRY", "Planned Country of Investigational Sites", c, ISO3166, "")
            for c in get("countries") or ()
        ),
    ]


def _registry(ids: Iterable[str]) -> list[Param]:
    return [
        ("REGID", "Registry Identifier", r, "ClinicalTrials.gov" if r.startswith("NCT") else "", "")
        for r in ids
    ]


def _ts(
    study: str,
    params: list[Param],
    design: Design,
    dm: list[dict[str, Any]],
    now: datetime,
    *,
    all_ended: bool,
) -> list[dict[str, Any]]:
    consented = sorted(r["RFICDTC"] for r in dm if r.get("RFICDTC") and r.get("ARMCD"))
    ended = [r.get("RFPENDTC") or "" for r in dm]
    every: list[Param] = [
        ("SSTDTC", "Study Start Date", consented[0][:10] if consented else None, ISO8601, ""),
        ("SENDTC", "Study End Date", max(ended)[:10] if all_ended and any(ended) else None, ISO8601, ""),
        *params,
        ("ACTSUB", "Actual Number of Subjects", sum(1 for r in dm if r.get("ARMCD")), "", ""),
        ("NARMS", "Planned Number of Arms", len(design.arms), "", ""),
        ("SDTMVER", "SDTM Version", cdisc.SDTM_VERSION, "", ""),
        ("SDTIGVER", "SDTM IG Version", cdisc.SDTMIG_VERSION, "", ""),
        ("DCUTDTC", "Data Cutoff Date", now.date().isoformat(), ISO8601, ""),
        (
            "DCUTDESC",
            "Data Cutoff Description",
            "Export of every record in the database at this date",
            "",
            "",
        ),
    ]
    rows: list[dict[str, Any]] = []
    seq: dict[str, int] = {}
    for code, name, value, ref, ver in every:
        flavour = NULL_FLAVOURS.get(code, "") if value in (None, "") else ""
        if value in (None, "") and not flavour:
            continue
        seq[code] = seq.get(code, 0) + 1
        text = value_text(value) if not flavour else ""
        rows.append(
            {
                "STUDYID": study,
                "DOMAIN": "TS",
                "TSSEQ": seq[code],
                "TSPARMCD": code,
                "TSPARM": name,
                "TSVAL": text,
                "TSVALNF": flavour,
                # Coded values carry their code: CT submission values, ISO codes and registry ids.
                "TSVALCD": text if ref in (ISO3166, "ClinicalTrials.gov") else _ny_code(text, ref),
                "TSVCDREF": ref if not flavour else "",
                "TSVCDVER": ver if not flavour else "",
            }
        )
    return rows


def _ny_code(text: str, ref: str) -> str:
    """NCI C-codes of the CT NY codelist (C66742); other C-codes are left for the CT lookup."""
    return {"Y": "C49488", "N": "C49487"}.get(text, "") if ref == CT else ""


def design_tables(study: str, design: Design) -> dict[str, list[dict[str, Any]]]:
    """TE, TA and TV of a design (either protocol format)."""
    base = {"STUDYID": study}
    te = [
        {
            **base,
            "DOMAIN": "TE",
            "ETCD": e.code,
            "ELEMENT": e.name,
            "TESTRL": e.start_rule,
            "TEENRL": e.end_rule,
            "TEDUR": e.duration,
        }
        for e in design.elements
    ]
    ta = [
        {
            **base,
            "DOMAIN": "TA",
            "ARMCD": code,
            "ARM": arm,
            "TAETORD": i,
            "ETCD": e.code,
            "ELEMENT": e.name,
            "TABRANCH": "",
            "TATRANS": "",
            "EPOCH": e.epoch,
        }
        for code, arm in design.arms
        for i, e in enumerate(design.elements_of(code), 1)
    ]
    tv = [
        {
            **base,
            "DOMAIN": "TV",
            "VISITNUM": v.num,
            "VISIT": v.name,
            "VISITDY": v.day,
            "ARMCD": code,
            "ARM": arm,
            "TVSTRL": v.start_rule,
            "TVENRL": v.end_rule,
        }
        for code, arm in design.arms
        for v in design.visits_of(code)
    ]
    return {"TE": te, "TA": ta, "TV": tv}
