"""What every SDTM dataset wardcrf writes holds: variables, labels, types, core status, origin.

One table owns the metadata; the builders fill rows against it, and the
XPT writer, Dataset-JSON, Define-XML and the conformance check all read it,
so a variable's label or type is stated once. Labels and core status are
SDTMIG 3.4's (Req = required, Exp = expected, Perm = permissible).

Origins (Define-XML 2.1 `def:Origin`): "Collected" (typed on a CRF page,
the page being the protocol form), "Derived" (computed by wardcrf from
collected values by a rule documented in docs/exports.md), "Assigned"
(set by the trial's design or the protocol file) and "Protocol" (from the
protocol file, for trial-design datasets).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial


@dataclass(frozen=True)
class Var:
    name: str
    label: str
    type: str = "Char"  # "Char" or "Num"
    core: str = "Perm"  # "Req", "Exp" or "Perm"
    codelist: str | None = None  # name of a codelist in wardcrf.cdisc (e.g. "NY")
    origin: str = "Collected"  # Collected | Derived | Assigned | Protocol
    form: str | None = None  # the protocol form a collected value comes from; None: the forms that fed the
    # dataset in this export (`Package.sources`: the forms declaring its tests, the administrations' forms)
    datatype: str | None = None  # Define-XML data type when not plain text/integer/float


@dataclass(frozen=True)
class Domain:
    name: str
    label: str
    structure: str
    klass: str  # SDTM observation class (Define-XML def:Class)
    keys: tuple[str, ...]
    variables: tuple[Var, ...]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    def var(self, name: str) -> Var | None:
        return next((v for v in self.variables if v.name == name), None)


def _ids(domain: str, seq: bool = True) -> tuple[Var, ...]:
    out = [
        Var("STUDYID", "Study Identifier", core="Req", origin="Protocol"),
        Var("DOMAIN", "Domain Abbreviation", core="Req", origin="Assigned"),
        Var("USUBJID", "Unique Subject Identifier", core="Req", origin="Derived"),
    ]
    if seq:
        out.append(Var(f"{domain}SEQ", "Sequence Number", "Num", "Req", origin="Derived"))
    return tuple(out)


def _spid(domain: str) -> Var:
    """--SPID, the sponsor-defined identifier every event, intervention and findings domain carries."""
    return Var(f"{domain}SPID", "Sponsor-Defined Identifier", origin="Assigned")


_EPOCH = Var("EPOCH", "Epoch", codelist="EPOCH", origin="Derived")
"""EPOCH as the subject-level domains derive it from the record's date (TE's own is the protocol's)."""


def _timing(
    domain: str, *, visit: bool, dtc: str | None, dtc_label: str = "", dy_label: str = ""
) -> tuple[Var, ...]:
    out: list[Var] = []
    if visit:
        out += [
            Var("VISITNUM", "Visit Number", "Num", "Exp", origin="Derived"),
            Var("VISIT", "Visit Name", origin="Derived"),
        ]
    out.append(_EPOCH)
    if dtc:
        out.append(Var(dtc, dtc_label, core="Exp", datatype="datetime"))
        out.append(Var(f"{domain}DY", dy_label, "Num", origin="Derived"))
    return tuple(out)


_DTC = "datetime"


def _start_end(
    domain: str, of: str, *, form: str | None = None, origin: str = "Collected"
) -> tuple[Var, ...]:
    """--STDTC, --ENDTC, --STDY and --ENDY of a domain whose rows have a start and an end.

    SDTMIG names and labels the four by one pattern ("Start Date/Time of X", "Study
    Day of End of X"): it is stated once here for the domains that carry all four
    (EX, AE, CM, SV), so their labels and types cannot drift apart. Both dates come
    from `form` (or are derived: `origin`); both study days are derived from them.
    """
    return (
        Var(
            f"{domain}STDTC", f"Start Date/Time of {of}", core="Exp", origin=origin, form=form, datatype=_DTC
        ),
        Var(f"{domain}ENDTC", f"End Date/Time of {of}", core="Exp", origin=origin, form=form, datatype=_DTC),
        Var(f"{domain}STDY", f"Study Day of Start of {of}", "Num", origin="Derived"),
        Var(f"{domain}ENDY", f"Study Day of End of {of}", "Num", origin="Derived"),
    )


def _observation(
    klass: str,
    domain: str,
    label: str,
    structure: str,
    keys: tuple[str, ...],
    variables: tuple[Var, ...],
    dates: tuple[Var, ...],
) -> Domain:
    """A subject-level Events or Interventions domain (`klass`), its variables in SDTMIG's order.

    The identifiers (STUDYID, DOMAIN, USUBJID, --SEQ, --SPID) come first and the
    timing last: EPOCH, then the domain's `dates`. Stated once here for the domains
    that follow that order (DS, AE, CM, MH, HO), so each declares only what is its
    own: its topic variable and qualifiers (`variables`) and its dates.
    """
    return Domain(
        domain, label, structure, klass, keys, (*_ids(domain), _spid(domain), *variables, _EPOCH, *dates)
    )


_events = partial(_observation, "EVENTS")
"""An Events domain (DS, AE, MH, HO: its topic variable is --TERM), as `_observation` declares it."""


DOMAINS: dict[str, Domain] = {}


def _add(d: Domain) -> None:
    DOMAINS[d.name] = d


_add(
    Domain(
        "DM",
        "Demographics",
        "One record per subject",
        "SPECIAL PURPOSE",
        ("STUDYID", "USUBJID"),
        (
            *_ids("DM", seq=False),
            Var("SUBJID", "Subject Identifier for the Study", core="Req"),
            Var("RFSTDTC", "Subject Reference Start Date/Time", core="Exp", origin="Derived", datatype=_DTC),
            Var("RFENDTC", "Subject Reference End Date/Time", core="Exp", origin="Derived", datatype=_DTC),
            Var(
                "RFXSTDTC", "Date/Time of First Study Treatment", core="Exp", origin="Derived", datatype=_DTC
            ),
            Var("RFXENDTC", "Date/Time of Last Study Treatment", core="Exp", origin="Derived", datatype=_DTC),
            Var("RFICDTC", "Date/Time of Informed Consent", core="Exp", datatype=_DTC, form="consent"),
            Var("RFPENDTC", "Date/Time of End of Participation", core="Exp", origin="Derived", datatype=_DTC),
            Var("DTHDTC", "Date/Time of Death", core="Exp", datatype=_DTC, form="disposition"),
            Var("DTHFL", "Subject Death Flag", core="Exp", codelist="NY", origin="Derived"),
            Var("SITEID", "Study Site Identifier", core="Req", origin="Assigned"),
            Var("BRTHDTC", "Date/Time of Birth", datatype=_DTC, form="screening"),
            Var("AGE", "Age", "Num", "Exp", origin="Derived"),
            Var("AGEU", "Age Units", core="Exp", codelist="AGEU", origin="Assigned"),
            Var("SEX", "Sex", core="Req", codelist="SEX", form="screening"),
            Var("RACE", "Race", core="Exp", form="screening"),
            Var("ARMCD", "Planned Arm Code", core="Exp", origin="Assigned"),
            Var("ARM", "Description of Planned Arm", core="Exp", origin="Assigned"),
            Var("ACTARMCD", "Actual Arm Code", core="Exp", origin="Derived"),
            Var("ACTARM", "Description of Actual Arm", core="Exp", origin="Derived"),
            Var(
                "ARMNRS",
                "Reason Arm and/or Actual Arm is Null",
                core="Exp",
                codelist="ARMNULRS",
                origin="Derived",
            ),
            Var("ACTARMUD", "Description of Unplanned Actual Arm", core="Exp", origin="Derived"),
            Var("COUNTRY", "Country", core="Req", origin="Protocol"),
        ),
    )
)
_add(
    _events(
        "DS",
        "Disposition",
        "One record per disposition status or protocol milestone per subject",
        ("STUDYID", "USUBJID", "DSSTDTC", "DSDECOD"),
        (
            Var("DSTERM", "Reported Term for the Disposition Event", core="Req", form="disposition"),
            Var("DSDECOD", "Standardized Disposition Term", core="Req", form="disposition"),
            Var("DSCAT", "Category for Disposition Event", core="Exp", codelist="DSCAT", origin="Assigned"),
            Var("DSSCAT", "Subcategory for Disposition Event", form="disposition"),
        ),
        (
            Var(
                "DSSTDTC",
                "Start Date/Time of Disposition Event",
                core="Exp",
                datatype=_DTC,
                form="disposition",
            ),
            Var("DSSTDY", "Study Day of Start of Disposition Event", "Num", origin="Derived"),
        ),
    )
)
_add(
    Domain(
        "EX",
        "Exposure",
        "One record per constant dosing interval per subject",
        "INTERVENTIONS",
        ("STUDYID", "USUBJID", "EXTRT", "EXSTDTC"),
        (
            *_ids("EX"),
            Var("EXREFID", "Reference ID"),
            _spid("EX"),
            Var("EXTRT", "Name of Treatment", core="Req", origin="Protocol"),
            Var("EXDOSE", "Dose", "Num", "Exp"),
            Var("EXDOSU", "Dose Units", core="Exp"),
            Var("EXDOSFRM", "Dose Form", core="Exp", origin="Protocol"),
            Var("EXDOSFRQ", "Dosing Frequency per Interval", codelist="FREQ", origin="Protocol"),
            Var("EXROUTE", "Route of Administration", codelist="ROUTE", origin="Protocol"),
            Var("EXLOT", "Lot Number"),
            Var("EXTRTV", "Treatment Vehicle"),
            Var("EXVAMT", "Treatment Vehicle Amount", "Num"),
            Var("EXVAMTU", "Treatment Vehicle Amount Units"),
            *_timing("EX", visit=True, dtc=None),
            *_start_end("EX", "Treatment"),
        ),
    )
)


def _findings(
    domain: str,
    label: str,
    test: str,
    test_name: str,
    dtc_label: str,
    dy_label: str,
    extra_after_cat: tuple[Var, ...] = (),
    ranges: bool = False,
) -> Domain:
    d = domain
    core_vars: list[Var] = [
        *_ids(d),
        _spid(d),
        Var(f"{d}TESTCD", f"{test} Short Name", core="Req", origin="Assigned"),
        Var(f"{d}TEST", test_name if test_name else f"{test} Name", core="Req", origin="Assigned"),
        Var(f"{d}CAT", f"Category for {test}", core="Exp" if ranges else "Perm", origin="Assigned"),
        *extra_after_cat,
        Var(f"{d}ORRES", "Result or Finding in Original Units", core="Exp"),
        Var(f"{d}ORRESU", "Original Units", core="Exp"),
    ]
    if ranges:
        core_vars += [
            Var(f"{d}ORNRLO", "Reference Range Lower Limit in Orig Unit", core="Exp", origin="Protocol"),
            Var(f"{d}ORNRHI", "Reference Range Upper Limit in Orig Unit", core="Exp", origin="Protocol"),
        ]
    core_vars += [
        Var(f"{d}STRESC", "Character Result/Finding in Std Format", core="Exp", origin="Derived"),
        Var(f"{d}STRESN", "Numeric Result/Finding in Standard Units", "Num", "Exp", origin="Derived"),
        Var(f"{d}STRESU", "Standard Units", core="Exp", origin="Derived"),
    ]
    if ranges:
        core_vars += [
            Var(f"{d}STNRLO", "Reference Range Lower Limit-Std Units", "Num", "Exp", origin="Protocol"),
            Var(f"{d}STNRHI", "Reference Range Upper Limit-Std Units", "Num", "Exp", origin="Protocol"),
            Var(f"{d}NRIND", "Reference Range Indicator", core="Exp", codelist="NRIND", origin="Derived"),
        ]
    core_vars += [
        Var(f"{d}STAT", "Completion Status", codelist="ND", origin="Derived"),
        Var(f"{d}REASND", "Reason Not Done"),
        Var(
            f"{d}LOBXFL", "Last Observation Before Exposure Flag", core="Exp", codelist="NY", origin="Derived"
        ),
        *_timing(d, visit=True, dtc=f"{d}DTC", dtc_label=dtc_label, dy_label=dy_label),
    ]
    return Domain(
        d,
        label,
        f"One record per {test.lower()} per visit per subject",
        "FINDINGS",
        ("STUDYID", "USUBJID", f"{d}TESTCD", "VISITNUM", f"{d}DTC"),
        tuple(core_vars),
    )


_vs = _findings(
    "VS",
    "Vital Signs",
    "Vital Signs Test",
    "Vital Signs Test Name",
    "Date/Time of Measurements",
    "Study Day of Vital Signs",
)
_add(
    Domain(
        _vs.name,
        _vs.label,
        "One record per vital sign measurement per time point per visit per subject",
        _vs.klass,
        ("STUDYID", "USUBJID", "VSTESTCD", "VISITNUM", "VSTPTNUM"),
        (
            *_vs.variables,
            Var("VSTPT", "Planned Time Point Name", origin="Assigned"),
            Var("VSTPTNUM", "Planned Time Point Number", "Num", origin="Derived"),
            Var("VSTPTREF", "Time Point Reference", origin="Derived"),
            Var("VSRFTDTC", "Date/Time of Reference Time Point", origin="Derived", datatype=_DTC),
        ),
    )
)
_add(
    _findings(
        "LB",
        "Laboratory Test Results",
        "Lab Test or Examination",
        "Lab Test or Examination Name",
        "Date/Time of Specimen Collection",
        "Study Day of Specimen Collection",
        ranges=True,
    )
)
_add(
    _findings(
        "RS",
        "Disease Response and Clin Classification",
        "Assessment",
        "Assessment Name",
        "Date/Time of Assessment",
        "Study Day of Assessment",
    )
)
_MEDDRA = (
    ("AELLT", "Lowest Level Term", "Char"),
    ("AELLTCD", "Lowest Level Term Code", "Num"),
    ("AEDECOD", "Dictionary-Derived Term", "Char"),
    ("AEPTCD", "Preferred Term Code", "Num"),
    ("AEHLT", "High Level Term", "Char"),
    ("AEHLTCD", "High Level Term Code", "Num"),
    ("AEHLGT", "High Level Group Term", "Char"),
    ("AEHLGTCD", "High Level Group Term Code", "Num"),
)
_add(
    _events(
        "AE",
        "Adverse Events",
        "One record per adverse event per subject",
        ("STUDYID", "USUBJID", "AEDECOD", "AESTDTC"),
        (
            Var("AETERM", "Reported Term for the Adverse Event", core="Req", form="ae"),
            *(Var(n, lbl, t, "Req" if n == "AEDECOD" else "Exp", origin="Assigned") for n, lbl, t in _MEDDRA),
            Var("AECAT", "Category for Adverse Event", origin="Assigned"),
            Var("AEPRESP", "Pre-Specified Adverse Event", codelist="NY", form="ae"),
            Var("AEBODSYS", "Body System or Organ Class", core="Exp", origin="Assigned"),
            Var("AEBDSYCD", "Body System or Organ Class Code", "Num", "Exp", origin="Assigned"),
            Var("AESOC", "Primary System Organ Class", core="Exp", origin="Assigned"),
            Var("AESOCCD", "Primary System Organ Class Code", "Num", "Exp", origin="Assigned"),
            Var("AESEV", "Severity/Intensity", codelist="AESEV", origin="Derived"),
            Var("AESER", "Serious Event", core="Exp", codelist="NY", form="ae"),
            Var("AEACN", "Action Taken with Study Treatment", core="Exp", codelist="ACN", form="ae"),
            Var("AEREL", "Causality", core="Exp", form="ae"),
            Var("AEOUT", "Outcome of Adverse Event", codelist="OUT", form="ae"),
            Var("AESCONG", "Congenital Anomaly or Birth Defect", codelist="NY", form="ae"),
            Var("AESDISAB", "Persist or Signif Disability/Incapacity", codelist="NY", form="ae"),
            Var("AESDTH", "Results in Death", codelist="NY", form="ae"),
            Var("AESHOSP", "Requires or Prolongs Hospitalization", codelist="NY", form="ae"),
            Var("AESLIFE", "Is Life Threatening", codelist="NY", form="ae"),
            Var("AESMIE", "Other Medically Important Serious Event", codelist="NY", form="ae"),
            Var("AETOXGR", "Standard Toxicity Grade", form="ae"),
        ),
        _start_end("AE", "Adverse Event", form="ae"),
    )
)
_add(
    _observation(
        "INTERVENTIONS",
        "CM",
        "Concomitant/Prior Medications",
        "One record per recorded intervention occurrence or constant-dosing interval per subject",
        ("STUDYID", "USUBJID", "CMTRT", "CMSTDTC"),
        (
            Var("CMTRT", "Reported Name of Drug, Med, or Therapy", core="Req"),
            Var("CMDECOD", "Standardized Medication Name", origin="Assigned"),
            Var("CMCAT", "Category for Medication"),
            Var("CMCLAS", "Medication Class", origin="Assigned"),
            Var("CMCLASCD", "Medication Class Code", origin="Assigned"),
            Var("CMDOSE", "Dose per Administration", "Num"),
            Var("CMDOSU", "Dose Units"),
        ),
        _start_end("CM", "Medication"),
    )
)
_add(
    _events(
        "MH",
        "Medical History",
        "One record per medical history event per subject",
        ("STUDYID", "USUBJID", "MHCAT", "MHTERM"),
        (
            Var("MHTERM", "Reported Term for the Medical History", core="Req"),
            Var("MHDECOD", "Dictionary-Derived Term", origin="Assigned"),
            Var("MHCAT", "Category for Medical History", origin="Protocol"),
            Var("MHPRESP", "Medical History Event Pre-Specified", codelist="NY", origin="Protocol"),
            Var("MHOCCUR", "Medical History Occurrence", codelist="NY"),
        ),
        (
            Var("MHSTDTC", "Start Date/Time of Medical History Event", datatype=_DTC),
            Var("MHSTDY", "Study Day of Start of Medical History", "Num", origin="Derived"),
        ),
    )
)
_add(
    _events(
        "HO",
        "Healthcare Encounters",
        "One record per healthcare encounter per subject",
        ("STUDYID", "USUBJID", "HOTERM", "HOSTDTC"),
        (
            Var("HOTERM", "Reported Term for Healthcare Encounter", core="Req", origin="Assigned"),
            Var("HODECOD", "Standardized Healthcare Encounter Name", origin="Assigned"),
        ),
        (
            Var(
                "HOSTDTC",
                "Start Date/Time of Healthcare Encounter",
                core="Exp",
                datatype=_DTC,
            ),
            Var(
                "HOENDTC",
                "End Date/Time of Healthcare Encounter",
                core="Exp",
                datatype=_DTC,
                origin="Derived",
            ),
            Var("HOSTDY", "Study Day of Start of Encounter", "Num", origin="Derived"),
        ),
    )
)
_add(
    Domain(
        "SV",
        "Subject Visits",
        "One record per actual or planned visit per subject",
        "SPECIAL PURPOSE",
        ("STUDYID", "USUBJID", "VISITNUM"),
        (
            *_ids("SV", seq=False),
            Var("VISITNUM", "Visit Number", "Num", "Req", origin="Derived"),
            Var("VISIT", "Visit Name", origin="Derived"),
            Var("SVPRESP", "Pre-specified", codelist="NY", origin="Derived"),
            Var("SVOCCUR", "Occurrence", codelist="NY", origin="Derived"),
            _EPOCH,
            *_start_end("SV", "Visit", origin="Derived"),
            Var("SVUPDES", "Description of Unplanned Visit", origin="Derived"),
        ),
    )
)
_TRIAL = (
    Var("STUDYID", "Study Identifier", core="Req", origin="Protocol"),
    Var("DOMAIN", "Domain Abbreviation", core="Req", origin="Assigned"),
)
_add(
    Domain(
        "TS",
        "Trial Summary",
        "One record per trial summary parameter value",
        "TRIAL DESIGN",
        ("STUDYID", "TSPARMCD", "TSSEQ"),
        (
            *_TRIAL,
            Var("TSSEQ", "Sequence Number", "Num", "Req", origin="Derived"),
            Var("TSPARMCD", "Trial Summary Parameter Short Name", core="Req", origin="Assigned"),
            Var("TSPARM", "Trial Summary Parameter", core="Req", origin="Assigned"),
            Var("TSVAL", "Parameter Value", core="Exp", origin="Protocol"),
            Var("TSVALNF", "Parameter Null Flavor", origin="Assigned"),
            Var("TSVALCD", "Parameter Value Code", core="Exp", origin="Assigned"),
            Var("TSVCDREF", "Name of the Reference Terminology", core="Exp", origin="Assigned"),
            Var("TSVCDVER", "Version of the Reference Terminology", core="Exp", origin="Assigned"),
        ),
    )
)
_add(
    Domain(
        "TA",
        "Trial Arms",
        "One record per planned Element per Arm",
        "TRIAL DESIGN",
        ("STUDYID", "ARMCD", "TAETORD"),
        (
            *_TRIAL,
            Var("ARMCD", "Planned Arm Code", core="Req", origin="Protocol"),
            Var("ARM", "Description of Planned Arm", core="Req", origin="Protocol"),
            Var("TAETORD", "Planned Order of Element within Arm", "Num", "Req", origin="Protocol"),
            Var("ETCD", "Element Code", core="Req", origin="Protocol"),
            Var("ELEMENT", "Description of Element", origin="Protocol"),
            Var("TABRANCH", "Branch", core="Exp", origin="Protocol"),
            Var("TATRANS", "Transition Rule", core="Exp", origin="Protocol"),
            Var("EPOCH", "Epoch", core="Req", codelist="EPOCH", origin="Protocol"),
        ),
    )
)
_add(
    Domain(
        "TE",
        "Trial Elements",
        "One record per planned Element",
        "TRIAL DESIGN",
        ("STUDYID", "ETCD"),
        (
            *_TRIAL,
            Var("ETCD", "Element Code", core="Req", origin="Protocol"),
            Var("ELEMENT", "Description of Element", core="Req", origin="Protocol"),
            Var("TESTRL", "Rule for Start of Element", core="Req", origin="Protocol"),
            Var("TEENRL", "Rule for End of Element", origin="Protocol"),
            Var("TEDUR", "Planned Duration of Element", origin="Protocol", datatype="durationDatetime"),
        ),
    )
)
_add(
    Domain(
        "TV",
        "Trial Visits",
        "One record per planned Visit per Arm",
        "TRIAL DESIGN",
        ("STUDYID", "ARMCD", "VISITNUM"),
        (
            *_TRIAL,
            Var("VISITNUM", "Visit Number", "Num", "Req", origin="Protocol"),
            Var("VISIT", "Visit Name", origin="Protocol"),
            Var("VISITDY", "Planned Study Day of Visit", "Num", origin="Protocol"),
            Var("ARMCD", "Planned Arm Code", core="Exp", origin="Protocol"),
            Var("ARM", "Description of Planned Arm", origin="Protocol"),
            Var("TVSTRL", "Visit Start Rule", core="Req", origin="Protocol"),
            Var("TVENRL", "Visit End Rule", origin="Protocol"),
        ),
    )
)
_add(
    Domain(
        "TI",
        "Trial Inclusion/Exclusion Criteria",
        "One record per I/E criterion",
        "TRIAL DESIGN",
        ("STUDYID", "IETESTCD"),
        (
            *_TRIAL,
            Var("IETESTCD", "Incl/Excl Criterion Short Name", core="Req", origin="Protocol"),
            Var("IETEST", "Inclusion/Exclusion Criterion", core="Req", origin="Protocol"),
            Var("IECAT", "Inclusion/Exclusion Category", core="Req", codelist="IECAT", origin="Protocol"),
            Var("TIRL", "Inclusion/Exclusion Criterion Rule", origin="Protocol"),
            Var("TIVERS", "Protocol Criteria Versions", origin="Protocol"),
        ),
    )
)


def supp_domain(parent: str) -> Domain:
    """SUPP-- for a parent domain: the collected values SDTMIG gives no standard variable."""
    return Domain(
        f"SUPP{parent}",
        f"Supplemental Qualifiers for {parent}",
        "One record per IDVAR, IDVARVAL, and QNAM value per subject",
        "RELATIONSHIP",
        ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"),
        (
            Var("STUDYID", "Study Identifier", core="Req", origin="Protocol"),
            Var("RDOMAIN", "Related Domain Abbreviation", core="Req", origin="Assigned"),
            Var("USUBJID", "Unique Subject Identifier", core="Req", origin="Derived"),
            Var("IDVAR", "Identifying Variable", core="Exp", origin="Assigned"),
            Var("IDVARVAL", "Identifying Variable Value", core="Exp", origin="Derived"),
            Var("QNAM", "Qualifier Variable Name", core="Req", origin="Assigned"),
            Var("QLABEL", "Qualifier Variable Label", core="Req", origin="Assigned"),
            Var("QVAL", "Data Value", core="Req"),
            Var("QORIG", "Origin", core="Req", origin="Assigned"),
            Var("QEVAL", "Evaluator", core="Exp", origin="Assigned"),
        ),
    )


def domain(name: str) -> Domain:
    if name.startswith("SUPP") and name not in DOMAINS:
        return supp_domain(name[4:])
    return DOMAINS[name]


# Datasets in the order a reviewer reads them (trial design first, as in define.xml).
ORDER = ("TS", "TA", "TE", "TV", "TI", "DM", "SV", "CM", "EX", "AE", "DS", "HO", "MH", "LB", "RS", "VS")
