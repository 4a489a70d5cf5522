"""Trial-design datasets: TS (Trial Summary), TA, TE, TV (arms, elements, visits) and TI (criteria).

TS is what FDA's technical rejection criteria look for first (a submission
without TS, or without a study start date in it, is refused). Its values
come from the protocol file (`[protocol]`, `[trial]`, `[eligibility]`,
`[schedule]`, `[product]`) and, for the dates and counts only the data
know (study start, actual number of subjects), from the datasets built.
Values that are CDISC controlled terms name the CT package and version
in TSVCDREF/TSVCDVER, so TS itself states which terminology the
submission uses; TSPARMCD SDTIGVER/SDTMVER name the SDTM versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ... import cdisc
from ...protocol import Protocol, tr
from ..dataset import value_text
from .design import Design

CT = "CDISC CT"
ISO8601 = "ISO 8601"
ISO3166 = "ISO 3166-1 alpha-3"


def _yn(flag: bool | None) -> str | None:
    return None if flag is None else ("Y" if flag else "N")


def ts_rows(
    proto: Protocol, design: Design, dm: list[dict[str, Any]], now: datetime, *, all_ended: bool
) -> list[dict[str, Any]]:
    """TS rows; `all_ended`: every subject has ended participation (so a study end date exists)."""
    t = proto.trial
    sched = proto.schedule
    consented = sorted(r["RFICDTC"] for r in dm if r.get("RFICDTC") and r.get("ARMCD"))
    ended = [r.get("RFPENDTC") or "" for r in dm]
    params: list[tuple[str, str, Any, str, str]] = [
        # (TSPARMCD, TSPARM, value, TSVCDREF, TSVCDVER)
        ("SSTDTC", "Study Start Date", consented[0][:10] if consented else None, ISO8601, ""),
        ("SENDTC", "Study End Date", max(ended)[:10] if all_ended and any(ended) else None, ISO8601, ""),
        ("TITLE", "Trial Title", tr(proto.title), "", ""),
        ("SPONSOR", "Clinical Study Sponsor", t.sponsor, "", ""),
        ("TPHASE", "Trial Phase Classification", t.phase, CT, cdisc.CT_VERSION),
        ("INDIC", "Trial Disease/Condition Indication", t.indication, "", ""),
        ("TINDTP", "Trial Intent Type", t.indication_type, CT, cdisc.CT_VERSION),
        *(("TTYPE", "Trial Type", v, CT, cdisc.CT_VERSION) for v in t.trial_types),
        ("STYPE", "Study Type", t.study_type, CT, cdisc.CT_VERSION),
        ("INTTYPE", "Intervention Type", t.intervention_type, CT, cdisc.CT_VERSION),
        ("INTMODEL", "Intervention Model", t.intervention_model, CT, cdisc.CT_VERSION),
        ("TBLIND", "Trial Blinding Schema", t.blinding, CT, cdisc.CT_VERSION),
        ("TCNTRL", "Control Type", t.control, CT, cdisc.CT_VERSION),
        ("RANDOM", "Trial is Randomized", _yn(t.randomized), CT, cdisc.CT_VERSION),
        ("ADDON", "Added on to Existing Treatments", _yn(t.add_on), CT, cdisc.CT_VERSION),
        ("HLTSUBJI", "Healthy Subject Indicator", _yn(t.healthy_volunteers), CT, cdisc.CT_VERSION),
        ("SEXPOP", "Sex of Participants", t.sex_population, CT, cdisc.CT_VERSION),
        ("AGEMIN", "Planned Minimum Age of Subjects", f"P{proto.eligibility.age_min}Y", ISO8601, ""),
        ("AGEMAX", "Planned Maximum Age of Subjects", f"P{proto.eligibility.age_max}Y", ISO8601, ""),
        ("PLANSUB", "Planned Number of Subjects", t.planned_participants, "", ""),
        ("ACTSUB", "Actual Number of Subjects", sum(1 for r in dm if r.get("ARMCD")), "", ""),
        ("NARMS", "Planned Number of Arms", len(design.arms), "", ""),
        ("TRT", "Investigational Therapy or Treatment", proto.product.get("name"), "", ""),
        ("DOSE", "Dose per Administration", value_text(sched.particles_per_dose), "", ""),
        ("DOSU", "Dose Units", sched.particles_unit, "", ""),
        ("DOSFRQ", "Dosing Frequency", sched.frequency, CT, cdisc.CT_VERSION),
        ("ROUTE", "Route of Administration", sched.route, CT, cdisc.CT_VERSION),
        ("OBJPRIM", "Trial Primary Objective", t.primary_objective, "", ""),
        ("STOPRULE", "Study Stop Rules", t.stopping_rule, "", ""),
        *(("FCNTRY", "Planned Country of Investigational Sites", c, ISO3166, "") for c in t.countries),
        *(
            ("REGID", "Registry Identifier", r, "ClinicalTrials.gov" if r.startswith("NCT") else "", "")
            for r in proto.registry
        ),
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
    for code, name, value, ref, ver in params:
        if value in (None, ""):
            continue
        seq[code] = seq.get(code, 0) + 1
        text = value_text(value)
        rows.append(
            {
                "STUDYID": proto.id,
                "DOMAIN": "TS",
                "TSSEQ": seq[code],
                "TSPARMCD": code,
                "TSPARM": name,
                "TSVAL": text,
                "TSVALNF": "",
                # Coded values carry their code: CT submission values, ISO codes and registry ids.
                "TSVALCD": text if ref in (ISO3166, "ClinicalTrials.gov") else _ny_code(text, ref),
                "TSVCDREF": ref,
                "TSVCDVER": ver,
            }
        )
    return rows


def _ny_code(text: str, ref: str) -> str:
    """NCI C-codes of the CT NY codelist (C66742); other C-codes are left for the CT lookup."""
    return {"Y": "C49488", "N": "C49487"}.get(text, "") if ref == CT else ""


def design_rows(proto: Protocol, design: Design) -> dict[str, list[dict[str, Any]]]:
    base = {"STUDYID": proto.id}
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
        for i, e in enumerate(design.elements, 1)
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
        for v in design.visits
    ]
    return {"TE": te, "TA": ta, "TV": tv, "TI": list(ti_rows(proto))}


def ti_rows(proto: Protocol) -> Iterable[dict[str, Any]]:
    """The protocol's named criteria (`screening.failed_criteria` choices) with their rule."""
    scr = proto.forms.get("screening")
    fd = scr.fields.get("failed_criteria") if scr else None
    e = proto.eligibility
    rules = {
        "age": f"AGE >= {e.age_min} and AGE <= {e.age_max} (completed years at screening)",
        "pcr": "screening.pcr_confirmed = true" if e.pcr_required else "",
        "severity": "screening.severity in (" + ", ".join(e.severities) + ")",
    }
    for c in fd.choices if fd else ():
        yield {
            "STUDYID": proto.id,
            "DOMAIN": "TI",
            "IETESTCD": str(c.code).upper()[:8],
            "IETEST": tr(c.label)[:200],
            "IECAT": "INCLUSION",
            "TIRL": rules.get(str(c.code), ""),
            "TIVERS": proto.version,
        }
