"""`wardcrf export sdtm --check`: the structural conformance rules wardcrf can check offline.

Each finding names a rule. Where the rule is one of CDISC CORE's published
SDTMIG rules (cdisc-org/cdisc-open-rules), it carries CORE's id (and the
SDTMIG conformance rule id, CGnnnn); rules CORE has no SDTMIG id for carry
a WARDCRF- id. What CORE checks that this cannot (the CDISC Library's full
codelists and variable metadata, MedDRA versions, define.xml against the
data in every detail) is listed in docs/exports.md.

Severity: "error" (a reviewer or CORE would reject or query it) or "pending"
(work that remains, not a defect in the mapping: AE terms not yet coded,
which CORE-000356 reports as a null AEDECOD until a coder codes them).
The check is clean when there is no error.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ... import cdisc
from .design import study_day
from .files import columns_for
from .metadata import domain
from .trial import CT

ISO_DTC = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d+)?)?)?)?)?)?$"
)
ISO_DUR = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
SUBJECT_DOMAINS_WITHOUT_EPOCH = ("DM",)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error" | "pending"
    dataset: str
    message: str
    usubjid: str = ""
    seq: str = ""
    variable: str = ""

    def line(self) -> str:
        where = " ".join(
            x for x in (self.dataset, self.usubjid, f"{self.dataset}SEQ={self.seq}" if self.seq else "") if x
        )
        var = f" {self.variable}:" if self.variable else ""
        return f"{self.rule} [{self.severity}] {where}:{var} {self.message}"


def _empty(v: Any) -> bool:
    return v is None or v == ""


def check(pkg: Any) -> list[Finding]:
    rows: dict[str, list[dict[str, Any]]] = pkg.rows
    return list(_run(rows, pkg))


def _run(rows: dict[str, list[dict[str, Any]]], pkg: Any) -> Iterator[Finding]:
    names = pkg.names
    dm = {r["USUBJID"]: r for r in rows.get("DM", [])}
    yield from _trc(rows)
    for name in names:
        yield from _variables(name, rows[name])
        yield from _values(name, rows[name], dm, getattr(pkg, "extended_terms", {}))
    yield from _visits(rows, names)
    yield from _epochs(rows, names)
    yield from _dm(rows, dm)
    yield from _ae(rows, dm, pkg)


TS_CODELISTS = {"DOSFRQ": "FREQ", "ROUTE": "ROUTE"}
"""TS parameters whose value is a term of a CDISC codelist (`cdisc.<name>`) when the row cites CDISC CT."""


def _trc(rows: dict[str, list[dict[str, Any]]]) -> Iterator[Finding]:
    ts = rows.get("TS", [])
    sstdtc = [r for r in ts if r.get("TSPARMCD") == "SSTDTC"]
    if not ts or not sstdtc:
        yield Finding(
            "FDA-TRC-1734", "error", "TS", "TS is missing or has no study start date (TSPARMCD=SSTDTC)"
        )
    for r in sstdtc:
        if not ISO_DTC.match(str(r.get("TSVAL") or "")):
            yield Finding(
                "CORE-000505 (CG0285)", "error", "TS", "TSVAL of SSTDTC is not ISO 8601", variable="TSVAL"
            )
    seen = Counter((r.get("TSPARMCD"), r.get("TSSEQ")) for r in ts)
    for (code, seq), n in seen.items():
        if n > 1:
            yield Finding("CORE-000154 (CG0268)", "error", "TS", f"TSSEQ {seq} repeats for {code}")
    for p in ("SDTIGVER", "SDTMVER"):
        if not any(r.get("TSPARMCD") == p for r in ts):
            yield Finding("WARDCRF-TSVER", "error", "TS", f"TS does not name the standard version ({p})")
    for r in ts:
        codelist = TS_CODELISTS.get(str(r.get("TSPARMCD") or ""))
        if codelist and r.get("TSVCDREF") == CT and r.get("TSVAL") not in getattr(cdisc, codelist):
            yield Finding(
                "WARDCRF-TSCT",
                "error",
                "TS",
                f"TSVAL {r.get('TSVAL')!r} of {r.get('TSPARMCD')} cites CDISC CT but is not a term of its"
                f" {codelist} codelist (a sponsor term cites no reference terminology)",
                variable="TSVCDREF",
            )


def _variables(name: str, data: list[dict[str, Any]]) -> Iterator[Finding]:
    meta = domain(name)
    # The variables of the dataset as written: the columns the writers put out, and any stray key.
    present = {v.name for v in columns_for(meta, data)} | (
        set().union(*(r.keys() for r in data)) if data else set()
    )
    for v in meta.variables:
        if v.core == "Req" and v.name not in present:
            yield Finding("CORE-000355 (CG0014)", "error", name, "required variable missing", variable=v.name)
        if v.core == "Exp" and v.name not in present:
            yield Finding("CORE-000334 (CG0016)", "error", name, "expected variable missing", variable=v.name)
    unknown = present - set(meta.names)
    for var in sorted(unknown):
        yield Finding(
            "CORE-000550 (CG0013)", "error", name, "variable not in the SDTMIG domain", variable=var
        )
    for v in meta.variables:
        if len(v.name) > 8 or len(v.label) > 40:
            yield Finding("WARDCRF-XPT5", "error", name, "name > 8 or label > 40 characters", variable=v.name)


def _values(
    name: str,
    data: list[dict[str, Any]],
    dm: dict[str, dict[str, Any]],
    extended: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[Finding]:
    """Each value against its variable: required, ISO 8601, CDISC CT (or a sponsor term the protocol declares
    for an extensible codelist: `extended`), ASCII for XPT, study days, start before end, unique --SEQ."""
    meta = domain(name)
    seqvar = f"{name}SEQ" if meta.klass != "TRIAL DESIGN" else ""  # TSSEQ: CORE-000154 above
    seqs: Counter[tuple[str, Any]] = Counter()
    for r in data:
        u = str(r.get("USUBJID") or "")
        seq = str(r.get(seqvar) or "")
        if seqvar and seqvar in r:
            seqs[(u, r[seqvar])] += 1
        if u and dm and name not in ("DM",) and not name.startswith("T") and u not in dm:
            yield Finding("CORE-000201 (CG0029)", "error", name, "USUBJID is not in DM", u, seq)
        for v in meta.variables:
            value = r.get(v.name)
            if v.core == "Req" and _empty(value) and v.name != "AEDECOD":
                yield Finding(
                    "CORE-000356 (CG0014)", "error", name, "required variable is null", u, seq, v.name
                )
            if _empty(value):
                continue
            if v.datatype == "datetime" and not ISO_DTC.match(str(value)):
                yield Finding("WARDCRF-ISO8601", "error", name, f"{value!r} is not ISO 8601", u, seq, v.name)
            if v.datatype == "durationDatetime" and not ISO_DUR.match(str(value)):
                yield Finding(
                    "WARDCRF-ISO8601", "error", name, f"{value!r} is not an ISO 8601 duration", u, seq, v.name
                )
            if v.codelist:
                terms = getattr(cdisc, v.codelist)
                own = (extended or {}).get(v.codelist, {}) if v.codelist in cdisc.EXTENSIBLE else {}
                if str(value) not in terms and str(value) not in own:
                    yield Finding(
                        "WARDCRF-CT",
                        "error",
                        name,
                        f"{value!r} is not in CDISC CT {v.codelist}",
                        u,
                        seq,
                        v.name,
                    )
            if v.type == "Char":
                text = str(value)
                if len(text) > 200 or not all(" " <= ch <= "~" for ch in text):
                    yield Finding(
                        "WARDCRF-XPT5",
                        "error",
                        name,
                        "value is not ASCII of <= 200 characters",
                        u,
                        seq,
                        v.name,
                    )
        yield from _days(name, r, dm.get(u, {}), u, seq)
        st, en = r.get(f"{name}STDTC"), r.get(f"{name}ENDTC")
        if st and en and str(en) < str(st)[: len(str(en))]:
            yield Finding("CORE-000718", "error", name, f"{name}STDTC falls after {name}ENDTC", u, seq)
    for (u, seq), n in seqs.items():
        if n > 1:
            yield Finding(
                "WARDCRF-SEQ", "error", name, f"{seqvar} {seq} is not unique within the subject", u, str(seq)
            )


def _days(name: str, r: dict[str, Any], dmrow: dict[str, Any], u: str, seq: str) -> Iterator[Finding]:
    ref = str(dmrow.get("RFSTDTC") or "")
    for dy, dtc, rule in (
        (f"{name}DY", f"{name}DTC", "CORE-000529 (CG0006)"),
        (f"{name}STDY", f"{name}STDTC", "CORE-000552 (CG0220)"),
        (f"{name}ENDY", f"{name}ENDTC", "CORE-000553 (CG0222)"),
    ):
        if dy not in r:
            continue
        expected = study_day(ref, str(r.get(dtc) or ""))
        got = r.get(dy)
        if expected != (None if got is None or got == "" else int(got)):
            yield Finding(
                rule, "error", name, f"{dy} is {got}, the study day of {dtc} is {expected}", u, seq, dy
            )


def _visits(rows: dict[str, list[dict[str, Any]]], names: list[str]) -> Iterator[Finding]:
    sv = {(r["USUBJID"], r["VISITNUM"]) for r in rows.get("SV", [])}
    tv = {r["VISITNUM"] for r in rows.get("TV", [])}
    pairs: dict[str, dict[Any, set[Any]]] = defaultdict(lambda: defaultdict(set))
    for name in names:
        for r in rows[name]:
            if _empty(r.get("VISITNUM")):
                continue
            pairs[name][r["VISITNUM"]].add(r.get("VISIT"))
            if name not in ("SV", "TV") and (r["USUBJID"], r["VISITNUM"]) not in sv:
                yield Finding(
                    "CORE-000168 (CG0034)",
                    "error",
                    name,
                    f"VISITNUM {r['VISITNUM']} is not in SV",
                    r["USUBJID"],
                    str(r.get(f"{name}SEQ") or ""),
                    "VISITNUM",
                )
            if name == "SV" and r.get("SVPRESP") == "Y" and r["VISITNUM"] not in tv:
                yield Finding(
                    "CORE-000039 (CG0655)",
                    "error",
                    "SV",
                    f"planned VISITNUM {r['VISITNUM']} is not in TV",
                    r["USUBJID"],
                )
            if name == "SV" and r.get("SVPRESP") != "Y" and r["VISITNUM"] in tv:
                yield Finding(
                    "CORE-000040 (CG0656)",
                    "error",
                    "SV",
                    f"unplanned VISITNUM {r['VISITNUM']} is in TV",
                    r["USUBJID"],
                )
    for name, nums in pairs.items():
        for num, visits in nums.items():
            if len(visits) > 1:
                yield Finding(
                    "CORE-000361 (CG0035)",
                    "error",
                    name,
                    f"VISITNUM {num} has several VISIT names {sorted(visits)}",
                )


def _epochs(rows: dict[str, list[dict[str, Any]]], names: list[str]) -> Iterator[Finding]:
    ta = {r["EPOCH"] for r in rows.get("TA", [])}
    for name in names:
        meta = domain(name)
        if meta.klass in ("TRIAL DESIGN", "RELATIONSHIP") or name in SUBJECT_DOMAINS_WITHOUT_EPOCH:
            continue
        if "EPOCH" not in meta.names:
            yield Finding("WARDCRF-EPOCH", "error", name, "the dataset has no EPOCH variable")
            continue
        for r in rows[name]:
            seq = str(r.get(f"{name}SEQ") or "")
            dated = any(r.get(f"{name}{s}") for s in ("DTC", "STDTC")) or name == "SV"
            if _empty(r.get("EPOCH")):
                if dated and name not in ("CM", "MH", "HO"):
                    yield Finding(
                        "WARDCRF-EPOCH", "error", name, "EPOCH is null on a dated record", r["USUBJID"], seq
                    )
            elif ta and r["EPOCH"] not in ta:
                yield Finding(
                    "CORE-000271 (CG0009)",
                    "error",
                    name,
                    f"EPOCH {r['EPOCH']} is not in TA",
                    r["USUBJID"],
                    seq,
                )


def _dm(rows: dict[str, list[dict[str, Any]]], dm: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    consent: dict[str, list[str]] = defaultdict(list)
    deaths: dict[str, list[str]] = defaultdict(list)
    for r in rows.get("DS", []):
        if r.get("DSDECOD") == "INFORMED CONSENT OBTAINED":
            consent[r["USUBJID"]].append(str(r.get("DSSTDTC") or ""))
        if r.get("DSDECOD") == "DEATH":
            deaths[r["USUBJID"]].append(str(r.get("DSSTDTC") or ""))
    for u, r in dm.items():
        if _empty(r.get("ARMCD")) and _empty(r.get("ARMNRS")):
            yield Finding("CORE-000045 (CG0517)", "error", "DM", "ARMNRS is null while ARMCD is null", u)
        if _empty(r.get("ACTARMCD")) and _empty(r.get("ARMNRS")):
            yield Finding("CORE-000223 (CG0513)", "error", "DM", "ARMNRS is null while ACTARMCD is null", u)
        if r.get("ARMCD") and r.get("ACTARMCD") and r.get("ARMNRS"):
            yield Finding("CORE-000121 (CG0520)", "error", "DM", "ARMNRS is populated while both arms are", u)
        if consent.get(u) and r.get("RFICDTC") != min(consent[u]):
            yield Finding(
                "CORE-000363", "error", "DM", "RFICDTC is not the earliest informed consent in DS", u
            )
        if deaths.get(u) and r.get("DTHFL") != "Y":
            yield Finding("CORE-000252 (CG0136)", "error", "DM", "DS says DEATH but DTHFL is not Y", u)
        if deaths.get(u) and r.get("DTHDTC") and str(r["DTHDTC"]) not in deaths[u]:
            yield Finding("CORE-000034 (CG0069)", "error", "DS", "DSSTDTC of DEATH differs from DM.DTHDTC", u)
        if r.get("DTHDTC") and r.get("DTHFL") != "Y":
            yield Finding("CORE-000007 (CG0435)", "error", "DM", "DTHDTC is populated but DTHFL is not Y", u)
        if _empty(r.get("COUNTRY")):
            yield Finding(
                "CORE-000356 (CG0014)", "error", "DM", "required variable is null", u, variable="COUNTRY"
            )


def _ae(rows: dict[str, list[dict[str, Any]]], dm: dict[str, dict[str, Any]], pkg: Any) -> Iterator[Finding]:
    last_ds: dict[str, str] = {}
    for r in rows.get("DS", []):
        if r.get("DSCAT") == "DISPOSITION EVENT" and r.get("DSSTDTC"):
            last_ds[r["USUBJID"]] = max(last_ds.get(r["USUBJID"], ""), str(r["DSSTDTC"]))
    crit = ("AESCONG", "AESDISAB", "AESDTH", "AESHOSP", "AESLIFE", "AESMIE")
    for r in rows.get("AE", []):
        u, seq = r["USUBJID"], str(r.get("AESEQ") or "")
        if any(r.get(c) == "Y" for c in crit) and r.get("AESER") != "Y":
            yield Finding(
                "CORE-000022 (CG0041)", "error", "AE", "a seriousness criterion is Y but AESER is not", u, seq
            )
        if r.get("AESER") == "N" and any(r.get(c) == "Y" for c in crit):
            yield Finding(
                "CORE-000266 (CG0042)", "error", "AE", "AESER is N but a seriousness criterion is Y", u, seq
            )
        if r.get("AESDTH") == "Y" and dm.get(u, {}).get("DTHFL") != "Y":
            yield Finding("CORE-000253 (CG0135)", "error", "AE", "AESDTH is Y but DM.DTHFL is not", u, seq)
        if r.get("AEOUT") == "FATAL" and dm.get(u, {}).get("DTHFL") != "Y":
            yield Finding(
                "CORE-000254 (CG0134)", "error", "AE", "AEOUT is FATAL but DM.DTHFL is not Y", u, seq
            )
        start = str(r.get("AESTDTC") or "")
        if start and u in last_ds and start[:10] > last_ds[u][:10]:
            yield Finding(
                "WARDCRF-AEDS",
                "error",
                "AE",
                f"AESTDTC {start} falls after the last disposition ({last_ds[u]})",
                u,
                seq,
            )
        if _empty(r.get("AEDECOD")):
            yield Finding(
                "CORE-000356 (CG0014)",
                "pending",
                "AE",
                "uncoded: AEDECOD is null until the term is coded (wardcrf coding)",
                u,
                seq,
                "AEDECOD",
            )


def report(findings: list[Finding], pkg: Any) -> str:
    errors = [f for f in findings if f.severity == "error"]
    pending = [f for f in findings if f.severity == "pending"]
    lines = [
        f"SDTM conformance check: SDTMIG {cdisc.SDTMIG_VERSION}, {cdisc.CT_PACKAGE} {cdisc.CT_VERSION} "
        f"({date.today().isoformat()})",
        f"datasets: {', '.join(pkg.names)}",
        f"errors: {len(errors)}; pending: {len(pending)}",
    ]
    for codelist, terms in sorted(
        getattr(pkg, "extended_terms", {}).items()
    ):  # a reviewer is told, not left to find
        lines += [
            f"sponsor term of the extensible CDISC CT {codelist}: {value!r} ({meaning}); define.xml:"
            ' def:ExtendedValue="Yes"'
            for value, meaning in sorted(terms.items())
        ]
    lines += [f.line() for f in errors]
    lines += [f.line() for f in pending]
    lines.append("clean" if not errors else "NOT clean")
    return "\n".join(lines) + "\n"
