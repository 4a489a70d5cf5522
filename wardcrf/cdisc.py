"""CDISC standards and controlled terms wardcrf writes, named once.

The protocol reader validates a trial's facts against these terms (a phase
or a blinding a submission could not carry is refused with the file's line),
and the SDTM exporter writes them; so both import from here, and the
versions below are what TS, Define-XML and docs/exports.md name.

Only the submission values wardcrf uses or validates are listed, each from
the CDISC SDTM Controlled Terminology package named in `CT_VERSION`.
"""

from __future__ import annotations

SDTM_VERSION = "2.0"
SDTMIG_VERSION = "3.4"
CT_PACKAGE = "SDTM Controlled Terminology"
CT_VERSION = "2024-09-27"
DEFINE_VERSION = "2.1.0"
DATASET_JSON_VERSION = "1.1.0"

# Trial Summary codelists (TS parameter values): codelist name -> submission values.
TPHASE = (
    "PHASE 0 TRIAL",
    "PHASE I TRIAL",
    "PHASE I/II TRIAL",
    "PHASE II TRIAL",
    "PHASE IIA TRIAL",
    "PHASE IIB TRIAL",
    "PHASE II/III TRIAL",
    "PHASE III TRIAL",
    "PHASE IIIA TRIAL",
    "PHASE IIIB TRIAL",
    "PHASE IV TRIAL",
    "NOT APPLICABLE",
)
TBLIND = ("OPEN LABEL", "SINGLE BLIND", "DOUBLE BLIND", "TRIPLE BLIND")
TCNTRL = ("NONE", "PLACEBO", "ACTIVE", "DOSE RESPONSE", "HISTORICAL")
TTYPE = (
    "BIO-AVAILABILITY",
    "BIO-EQUIVALENCE",
    "DIAGNOSIS",
    "EFFICACY",
    "PHARMACODYNAMIC",
    "PHARMACOKINETIC",
    "PREVENTION",
    "SAFETY",
    "TREATMENT",
)
INTMODEL = ("SINGLE GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL")
INTTYPE = ("DRUG", "BIOLOGIC", "DEVICE", "VACCINE", "PROCEDURE", "DIETARY SUPPLEMENT", "OTHER")
TINDTP = ("TREATMENT", "PREVENTION", "DIAGNOSIS", "CURE", "MITIGATION")
SEXPOP = ("BOTH", "F", "M")
STYPE = ("INTERVENTIONAL", "OBSERVATIONAL")

# Subject-level codelists wardcrf writes.
NY = ("N", "Y")
SEX = ("F", "M", "U", "UNDIFFERENTIATED")
AGEU = ("YEARS", "MONTHS", "WEEKS", "DAYS")
EPOCH = ("SCREENING", "TREATMENT", "FOLLOW-UP")
AESEV = ("MILD", "MODERATE", "SEVERE")
ACN = (
    "DOSE INCREASED",
    "DOSE NOT CHANGED",
    "DOSE RATE REDUCED",
    "DOSE REDUCED",
    "DRUG INTERRUPTED",
    "DRUG WITHDRAWN",
    "NOT APPLICABLE",
    "UNKNOWN",
)
OUT = (
    "FATAL",
    "NOT RECOVERED/NOT RESOLVED",
    "RECOVERED/RESOLVED",
    "RECOVERED/RESOLVED WITH SEQUELAE",
    "RECOVERING/RESOLVING",
    "UNKNOWN",
)
ROUTE = ("RESPIRATORY (INHALATION)", "INTRAVENOUS", "ORAL", "SUBCUTANEOUS", "INTRAMUSCULAR", "NASAL")
FREQ = ("QD", "BID", "TID", "QID", "ONCE", "Q2D", "QOD", "PRN", "CONTINUOUS")
# Codelists CDISC publishes as extensible ("Codelist Extensible: Yes"): a sponsor may add a term when no
# published one has its meaning, declared in define.xml (def:ExtendedValue="Yes"). FREQ is C71113.
EXTENSIBLE = frozenset({"FREQ"})
NRIND = ("LOW", "NORMAL", "HIGH", "ABNORMAL")
ND = ("NOT DONE",)
DSCAT = ("DISPOSITION EVENT", "PROTOCOL MILESTONE", "OTHER EVENT")
# NCOMPLT (completion/reason for non-completion) and PROTMLST (protocol milestones).
NCOMPLT = (
    "COMPLETED",
    "ADVERSE EVENT",
    "DEATH",
    "LACK OF EFFICACY",
    "LOST TO FOLLOW-UP",
    "PHYSICIAN DECISION",
    "PROTOCOL DEVIATION",
    "SCREEN FAILURE",
    "STUDY TERMINATED BY SPONSOR",
    "WITHDRAWAL BY SUBJECT",
    "WITHDRAWAL BY PARENT/GUARDIAN",
    "PREGNANCY",
    "PROGRESSIVE DISEASE",
    "RECOVERY",
    "OTHER",
)
PROTMLST = ("INFORMED CONSENT OBTAINED", "ELIGIBILITY CRITERIA MET", "ELIGIBILITY CRITERIA NOT MET")
ARMNULRS = ("SCREEN FAILURE", "NOT ASSIGNED", "ASSIGNED, NOT TREATED", "UNPLANNED TREATMENT")
IECAT = ("INCLUSION", "EXCLUSION")

# ISO 3166-1 alpha-3: the format is checked, the list is the standard's.
COUNTRY_PATTERN = r"^[A-Z]{3}$"
