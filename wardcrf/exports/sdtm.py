"""SDTM-shaped CSV datasets: DM, DS, EX, VS, LB, AE and RS (the CT score).

"Shaped" because wardcrf is not a submission tool: the datasets use SDTM
variable names, one record per observation and the controlled terms in
docs/exports.md (../shared/STANDARDS.md), so a statistician's SDTM-aware
tools read them, but there is no define.xml and no MedDRA coding (AEDECOD
is left blank unless the event is one of the protocol's prespecified events).

Tests for VS and LB come from the protocol: every field whose CDISC name is
``VSTESTCD=<code>`` or ``LBTESTCD=<code>`` becomes a test, so a protocol
that adds a measurement gets it exported without code changes.

--DTC values are the ward's local date/time as recorded, without the UTC
offset (the SDTM convention); the offset is in the CSV and ODM exports.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol import Protocol, tr
from .csv_export import prepare_dir, write_checksums
from .dataset import Dataset, Record, number, value_text
from .progress import NullProgress, Progress

DOMAIN_COLUMNS: dict[str, list[str]] = {
    "DM": [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "SUBJID",
        "SITEID",
        "RFSTDTC",
        "RFENDTC",
        "RFXSTDTC",
        "RFXENDTC",
        "RFICDTC",
        "BRTHDTC",
        "AGE",
        "AGEU",
        "SEX",
        "ARMCD",
        "ARM",
        "ACTARMCD",
        "ACTARM",
    ],
    "DS": ["STUDYID", "DOMAIN", "USUBJID", "DSSEQ", "DSSPID", "DSTERM", "DSDECOD", "DSCAT", "DSSTDTC"],
    "EX": [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "EXSEQ",
        "EXSPID",
        "EXTRT",
        "EXDOSE",
        "EXDOSU",
        "EXDOSFRM",
        "EXDOSFRQ",
        "EXROUTE",
        "EXLOT",
        "EXSTDTC",
        "EXENDTC",
        "EXDY",
    ],
    "VS": [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "VSSEQ",
        "VSSPID",
        "VSTESTCD",
        "VSTEST",
        "VSORRES",
        "VSORRESU",
        "VSSTRESC",
        "VSSTRESN",
        "VSSTRESU",
        "VSTPT",
        "VSTPTREF",
        "VSDTC",
    ],
    "LB": [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "LBSEQ",
        "LBSPID",
        "LBTESTCD",
        "LBTEST",
        "LBORRES",
        "LBORRESU",
        "LBSTRESC",
        "LBSTRESN",
        "LBSTRESU",
        "LBBLFL",
        "VISIT",
        "LBDTC",
    ],
    "AE": [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "AESEQ",
        "AESPID",
        "AETERM",
        "AEDECOD",
        "AESEV",
        "AESER",
        "AEACN",
        "AEREL",
        "AEOUT",
        "AESDTH",
        "AESLIFE",
        "AESHOSP",
        "AESDISAB",
        "AESCONG",
        "AESMIE",
        "AESTDTC",
        "AEENDTC",
        "AETOXGR",
    ],
    "RS": [
        "STUDYID",
        "DOMAIN",
        "USUBJID",
        "RSSEQ",
        "RSSPID",
        "RSTESTCD",
        "RSTEST",
        "RSCAT",
        "RSORRES",
        "RSSTRESC",
        "RSSTRESN",
        "RSSTAT",
        "RSREASND",
        "RSBLFL",
        "VISIT",
        "RSDTC",
    ],
}

VS_TESTS = {
    "TEMP": "Temperature",
    "PULSE": "Pulse Rate",
    "RESP": "Respiratory Rate",
    "OXYSAT": "Oxygen Saturation",
    "SYSBP": "Systolic Blood Pressure",
    "DIABP": "Diastolic Blood Pressure",
    "HR": "Heart Rate",
    "WEIGHT": "Weight",
    "HEIGHT": "Height",
}
LB_TESTS = {
    "WBC": "Leukocytes",
    "LYM": "Lymphocytes",
    "CRP": "C Reactive Protein",
    "LDH": "Lactate Dehydrogenase",
    "IL6": "Interleukin 6",
    "DDIMER": "D-Dimer",
    "ALT": "Alanine Aminotransferase",
    "AST": "Aspartate Aminotransferase",
    "CREAT": "Creatinine",
}
ROUTE_INHALATION = "RESPIRATORY (INHALATION)"
DOSE_FORM = "SUSPENSION"
CONSENT_TERM = "INFORMED CONSENT OBTAINED"
CONSENT_CAT = "PROTOCOL MILESTONE"
AESEV_BY_GRADE = {1: "MILD", 2: "MODERATE", 3: "SEVERE", 4: "SEVERE", 5: "SEVERE"}
AEOUT = {
    "recovered": "RECOVERED/RESOLVED",
    "recovering": "RECOVERING/RESOLVING",
    "not_recovered": "NOT RECOVERED/NOT RESOLVED",
    "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
    "unknown": "UNKNOWN",
}
AEACN = {
    "none": "DOSE NOT CHANGED",
    "interrupted": "DRUG INTERRUPTED",
    "delayed": "DRUG INTERRUPTED",
    "withdrawn": "DRUG WITHDRAWN",
    "not_applicable": "NOT APPLICABLE",
}
AESERIOUS = {
    "death": "AESDTH",
    "life_threatening": "AESLIFE",
    "hospitalization": "AESHOSP",
    "disability": "AESDISAB",
    "congenital_anomaly": "AESCONG",
    "medically_important": "AESMIE",
}
VISITS = {"baseline": "BASELINE", "post_treatment": "POST-TREATMENT", "other": "UNSCHEDULED"}
TPT = {"pre_dose": "PRE-DOSE", "post_dose": "POST-DOSE", "unscheduled": "UNSCHEDULED"}
CT_CATEGORY = "CHEST CT SEVERITY SCORE"
CT_TOTAL_CODE = "CTTOTAL"
ARMCD, ARM = "HAMSCEXO", "Nebulized haMSC-Exos"


def dtc(value: Any) -> str:
    """ISO 8601 date/time without the UTC offset (local ward time), as SDTM expects."""
    text = value_text(value)
    if "T" in text and len(text) > 19:
        return text[:19]
    return text


def yn(value: Any) -> str:
    if value is None:
        return ""
    return "Y" if value is True or value == "true" else "N"


@dataclass
class SdtmExport:
    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "datasets": self.rows}


class _Domain:
    def __init__(self, name: str, study: str) -> None:
        self.name = name
        self.study = study
        self.rows: list[dict[str, Any]] = []
        self._seq: dict[str, int] = {}

    def add(self, usubjid: str, **values: Any) -> None:
        row: dict[str, Any] = {"STUDYID": self.study, "DOMAIN": self.name, "USUBJID": usubjid}
        if f"{self.name}SEQ" in DOMAIN_COLUMNS[self.name]:
            self._seq[usubjid] = self._seq.get(usubjid, 0) + 1
            row[f"{self.name}SEQ"] = self._seq[usubjid]
        row.update(values)
        self.rows.append(row)


def usubjid(study: str, pid: str) -> str:
    return f"{study}-{pid}"


def _tests(proto: Protocol, form: str, prefix: str) -> list[tuple[str, str]]:
    """(field, test code) for every field whose CDISC name is `<prefix>=<code>`."""
    f = proto.forms.get(form)
    if f is None:
        return []
    out = []
    for fd in f.fields.values():
        if fd.cdisc and fd.cdisc.startswith(prefix + "="):
            out.append((fd.name, fd.cdisc.split("=", 1)[1]))
    return out


def build(ds: Dataset, progress: Progress | None = None) -> dict[str, list[dict[str, Any]]]:
    progress = progress or NullProgress()
    proto = ds.active_protocol
    study = proto.id
    product = str(proto.product.get("name") or "investigational product")
    dom = {name: _Domain(name, study) for name in DOMAIN_COLUMNS}
    pids = ds.participants()
    progress.start("participants", len(pids))
    ct_form = proto.forms.get("ct_score")
    segments = (
        [
            fd
            for fd in ct_form.fields.values()
            if fd.type == "choice" and fd.name not in ("timepoint", "lesion_form", "lesion_shape")
        ]
        if ct_form
        else []
    )
    for pid in pids:
        u = usubjid(study, pid)
        by_form: dict[str, list[Record]] = {}
        for rec in ds.records(participant=pid):
            by_form.setdefault(rec.form, []).append(rec)
        consent = by_form.get("consent", [])
        screening = by_form.get("screening", [])
        doses = sorted(by_form.get("dose", []), key=lambda r: value_text(r.data.get("start")))
        for rec in consent:
            dom["DS"].add(
                u,
                DSSPID=rec.event_id,
                DSTERM=CONSENT_TERM,
                DSDECOD=CONSENT_TERM,
                DSCAT=CONSENT_CAT,
                DSSTDTC=dtc(rec.data.get("time")),
            )
        first = dtc(doses[0].data.get("start")) if doses else ""
        last = dtc(doses[-1].data.get("end") or doses[-1].data.get("start")) if doses else ""
        scr = screening[-1].data if screening else {}
        age = number(scr.get("age"))
        dom["DM"].add(
            u,
            SUBJID=pid,
            SITEID=(consent or screening)[0].site if (consent or screening) else "",
            RFSTDTC=first,
            RFENDTC=last,
            RFXSTDTC=first,
            RFXENDTC=last,
            RFICDTC=dtc(consent[0].data.get("time")) if consent else "",
            BRTHDTC=value_text(scr.get("dob")),
            AGE=value_text(int(age)) if age is not None else "",
            AGEU="YEARS" if age is not None else "",
            SEX=value_text(scr.get("sex")) or "",
            ARMCD=ARMCD if doses else "SCRNFAIL" if screening else "",
            ARM=ARM if doses else "Screen Failure" if screening else "",
            ACTARMCD=ARMCD if doses else "NOTTRT",
            ACTARM=ARM if doses else "Not Treated",
        )
        first_day = first[:10]
        for rec in doses:
            d = rec.data
            particles = d.get("particles")
            start = dtc(d.get("start"))
            dom["EX"].add(
                u,
                EXSPID=rec.event_id,
                EXTRT=product,
                EXDOSE=value_text(particles),
                EXDOSU=(particles.get("unit") if isinstance(particles, dict) else None) or "particles",
                EXDOSFRM=DOSE_FORM,
                EXDOSFRQ="QD",
                EXROUTE=ROUTE_INHALATION,
                EXLOT=value_text(d.get("lot")),
                EXSTDTC=start,
                EXENDTC=dtc(d.get("end")),
                EXDY=_study_day(first_day, start[:10]),
            )
        vs_tests = _tests(proto, "vitals", "VSTESTCD")
        for rec in by_form.get("vitals", []):
            d = rec.data
            tpt = TPT.get(value_text(d.get("timepoint")), value_text(d.get("timepoint")).upper())
            for fname, code in vs_tests:
                v = d.get(fname)
                if v is None:
                    continue
                res, unit = value_text(v), (v.get("unit") if isinstance(v, dict) else "") or ""
                dom["VS"].add(
                    u,
                    VSSPID=rec.event_id,
                    VSTESTCD=code,
                    VSTEST=VS_TESTS.get(code, code.title()),
                    VSORRES=res,
                    VSORRESU=unit,
                    VSSTRESC=res,
                    VSSTRESN=res,
                    VSSTRESU=unit,
                    VSTPT=tpt,
                    VSTPTREF=f"DOSE {value_text(d.get('dose'))}" if d.get("dose") else "",
                    VSDTC=dtc(d.get("time")),
                )
        lb_tests = _tests(proto, "labs", "LBTESTCD")
        for rec in by_form.get("labs", []):
            d = rec.data
            tp = value_text(d.get("timepoint"))
            for fname, code in lb_tests:
                v = d.get(fname)
                if v is None:
                    continue
                res, unit = value_text(v), (v.get("unit") if isinstance(v, dict) else "") or ""
                dom["LB"].add(
                    u,
                    LBSPID=rec.event_id,
                    LBTESTCD=code,
                    LBTEST=LB_TESTS.get(code, code),
                    LBORRES=res,
                    LBORRESU=unit,
                    LBSTRESC=res,
                    LBSTRESN=res,
                    LBSTRESU=unit,
                    LBBLFL="Y" if tp == "baseline" else "",
                    VISIT=VISITS.get(tp, tp.upper()),
                    LBDTC=dtc(d.get("date")),
                )
        for rec in by_form.get("ae", []):
            d = rec.data
            grade = d.get("grade")
            pre = value_text(d.get("prespecified"))
            decod = ""
            if pre and pre != "no":
                choice = next((c for c in proto.prespecified_events if str(c.code) == pre), None)
                decod = tr(choice.label).upper() if choice else pre.upper()
            dom["AE"].add(
                u,
                AESPID=rec.event_id,
                AETERM=value_text(d.get("term")),
                AEDECOD=decod,
                AESEV=AESEV_BY_GRADE.get(int(grade), "") if isinstance(grade, int) else "",
                AESER=yn(d.get("serious")),
                AEACN=AEACN.get(value_text(d.get("action")), ""),
                AEREL=value_text(d.get("causality")).upper(),
                AEOUT=AEOUT.get(value_text(d.get("outcome")), ""),
                **{col: yn(d.get(name)) if d.get("serious") else "" for name, col in AESERIOUS.items()},
                AESTDTC=dtc(d.get("onset")),
                AEENDTC=dtc(d.get("end")),
                AETOXGR=value_text(grade),
            )
        for rec in by_form.get("ct_score", []):
            d = rec.data
            tp = value_text(d.get("timepoint"))
            common = {
                "RSSPID": rec.event_id,
                "RSCAT": CT_CATEGORY,
                "RSBLFL": "Y" if tp == "baseline" else "",
                "VISIT": VISITS.get(tp, tp.upper()),
                "RSDTC": dtc(d.get("date")),
            }
            for i, fd in enumerate(segments, 1):
                v = d.get(fd.name)
                if v is None:
                    continue
                test = f"CT Score {tr(fd.label)}"[:40]
                if v == "ne":
                    dom["RS"].add(
                        u,
                        RSTESTCD=f"CTSEG{i:02d}",
                        RSTEST=test,
                        RSORRES="",
                        RSSTRESC="",
                        RSSTRESN="",
                        RSSTAT="NOT DONE",
                        RSREASND="NOT EVALUABLE",
                        **common,
                    )
                else:
                    dom["RS"].add(
                        u,
                        RSTESTCD=f"CTSEG{i:02d}",
                        RSTEST=test,
                        RSORRES=value_text(v),
                        RSSTRESC=value_text(v),
                        RSSTRESN=value_text(v),
                        RSSTAT="",
                        RSREASND="",
                        **common,
                    )
            total = d.get("total")
            if total is not None:
                dom["RS"].add(
                    u,
                    RSTESTCD=CT_TOTAL_CODE,
                    RSTEST="CT Score Total (0-72)",
                    RSORRES=value_text(total),
                    RSSTRESC=value_text(total),
                    RSSTRESN=value_text(total),
                    RSSTAT="",
                    RSREASND="",
                    **common,
                )
        progress.advance(1)
    return {name: d.rows for name, d in dom.items()}


def _study_day(first: str, day: str) -> str:
    from datetime import date

    if not first or not day:
        return ""
    delta = (date.fromisoformat(day) - date.fromisoformat(first)).days
    return str(delta + 1 if delta >= 0 else delta)


def write(rows: Iterable[dict[str, Any]], columns: list[str], path: Path) -> int:
    n = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="raise")
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in columns})
            n += 1
    return n


def export_sdtm(ds: Dataset, out: Path, progress: Progress | None = None) -> SdtmExport:
    out = prepare_dir(out)
    result = SdtmExport(out)
    domains = build(ds, progress)
    for name, rows in domains.items():
        result.rows[f"{name.lower()}.csv"] = write(rows, DOMAIN_COLUMNS[name], out / f"{name.lower()}.csv")
    write_checksums(out, list(result.rows))
    return result
