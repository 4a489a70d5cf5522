"""A MEXCOVID-shaped cohort for export and report tests, written as ordinary records.

Seven participants with consent, screening, enrollment, demographics, five
doses with vitals before and after each, labs and CT scores at baseline and
after treatment, adverse events (one serious, reviewed by the DSMG), e-signatures
and an amendment after signing. Records are appended with `records.submit`
(real events, real projections); the workflow's sequencing rules have their
own tests, these tests are about reading the data back out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mexcovid_engine import CT_SEGMENTS

from wardcrf import records, signatures
from wardcrf.site import Session

PASSWORD = "test-password-1"
TZ = ZoneInfo("Asia/Shanghai")

SEGMENTS = list(CT_SEGMENTS)  # the CT form's segments, in its order (tests/mexcovid_engine.py)

# Per participant: sex, age, onset->admission days, onset->first dose days,
# (lym, crp, il6, ldh, alt, creat, ddimer) baseline and after, CT total before/after.
COHORT: list[dict[str, Any]] = [
    {
        "sex": "M",
        "age": 57,
        "adm": 30,
        "dose": 54,
        "before": (1.61, 12.0, 8.1, 260, 78, 70, 0.9),
        "after": (1.78, 4.0, 5.2, 220, 79, 68, 0.7),
        "ct": (51, 40),
    },
    {
        "sex": "F",
        "age": 43,
        "adm": 15,
        "dose": 34,
        "before": (1.20, 30.5, 20.0, 310, 40, 55, 1.5),
        "after": (1.50, 8.0, 9.0, 250, 35, 60, 1.1),
        "ct": (44, 30),
    },
    {
        "sex": "M",
        "age": 70,
        "adm": 40,
        "dose": 69,
        "before": (0.90, 55.0, 35.0, 400, 95, 88, 2.2),
        "after": (1.10, 20.0, 40.0, 380, 100, 90, 1.9),
        "ct": (60, 52),
    },
    {
        "sex": "F",
        "age": 66,
        "adm": 35,
        "dose": 60,
        "before": (1.70, 8.0, 4.0, 230, 60, 62, 0.6),
        "after": (1.90, 9.5, 3.0, 240, 61, 58, 0.5),
        "ct": (38, 38),
    },
    {
        "sex": "M",
        "age": 49,
        "adm": 20,
        "dose": 41,
        "before": (1.35, 22.0, 15.0, 290, 82, 75, 1.0),
        "after": (1.60, 6.0, 18.0, 260, 70, 73, 0.8),
        "ct": (55, 41),
    },
    {
        "sex": "F",
        "age": 72,
        "adm": 28,
        "dose": 50,
        "before": (1.10, 40.0, 25.0, 350, 30, 80, 3.0),
        "after": (1.30, 10.0, 12.0, 300, 33, 79, 2.0),
        "ct": (62, 49),
    },
    {
        "sex": "M",
        "age": 61,
        "adm": 33,
        "dose": 57,
        "before": (1.80, 15.0, 10.0, 270, 85, 66, 0.8),
        "after": (2.00, 5.0, 11.0, 265, 90, 64, 0.6),
        "ct": (48, 33),
    },
]
LAB_FIELDS = ("lym", "crp", "il6", "ldh", "alt", "creat", "ddimer")
LAB_UNITS = {
    "lym": "10^9/L",
    "crp": "mg/L",
    "il6": "pg/mL",
    "ldh": "U/L",
    "alt": "U/L",
    "creat": "umol/L",
    "ddimer": "mg/L FEU",
}


def at(day: date, hh: int = 9, mm: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).isoformat()


def photo_ref(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def u(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit}


def ct_values(total: int, timepoint: str, day: date, *, not_evaluable: bool = False) -> dict[str, Any]:
    """Spread `total` over 18 segments (0-4 each); the last segment not evaluable when asked (total < 68)."""
    values: dict[str, Any] = {"timepoint": timepoint, "date": day.isoformat()}
    ne = not_evaluable and total < 68
    left = total
    for i, seg in enumerate(SEGMENTS):
        if i == len(SEGMENTS) - 1 and ne:
            values[seg] = "ne"
            continue
        take = min(4, left)
        values[seg] = take
        left -= take
    values["total"] = total
    values["evaluable_segments"] = 17 if ne else 18
    return values


@dataclass
class Cohort:
    participants: list[str]
    kits: list[str]
    signed_record: str  # a dose record signed, then amended: "changed since signed"
    valid_signature_record: str
    serious_ae: str
    photo_refs: list[str] = field(default_factory=list)


def build(
    clin: Session, inv: Session, dsmg: Session, *, site: str = "WUH01", start: int = 1, n: int | None = None
) -> Cohort:
    """Write the cohort; returns the ids tests look for."""
    rows = COHORT[: n or len(COHORT)]
    pids, kits, photos = [], [], []
    first_dose_record = ""
    signed_valid = ""
    serious = ""
    base = date(2020, 3, 16)
    for i, c in enumerate(rows):
        pid = f"{site}-{start + i:03d}"
        pids.append(pid)
        subj = f"participant:{pid}"
        enrolled = base + timedelta(days=i)
        ref = photo_ref(f"consent page {pid}")
        photos.append(ref)
        records.submit(
            clin,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": at(enrolled - timedelta(days=1), 15),
                "witness_1": "investigator",
                "witness_2": "clinician",
                "photos": [ref],
            },
            subject=subj,
        )
        dob = date(enrolled.year - c["age"] - 1, 12, 1)
        records.submit(
            clin,
            "screening",
            {
                "date": (enrolled - timedelta(days=1)).isoformat(),
                "dob": dob.isoformat(),
                "sex": c["sex"],
                "pcr_confirmed": True,
                "severity": "severe",
                "age": u(c["age"], "years"),
                "eligible": True,
            },
            subject=subj,
        )
        records.submit(clin, "enrollment", {"date": enrolled.isoformat()}, subject=subj)
        first = enrolled + timedelta(days=1)
        onset = first - timedelta(days=c["dose"])
        admission = onset + timedelta(days=c["adm"])
        records.submit(
            clin,
            "demographics",
            {
                "symptoms": ["fever", "cough"],
                "comorbidities": ["hypertension"] if i % 2 else ["none"],
                "symptom_onset": onset.isoformat(),
                "admission": admission.isoformat(),
                "onset_to_admission": u(c["adm"], "days"),
            },
            subject=subj,
        )
        records.submit(
            clin,
            "labs",
            {
                "timepoint": "baseline",
                "date": enrolled.isoformat(),
                **{k: u(v, LAB_UNITS[k]) for k, v in zip(LAB_FIELDS, c["before"], strict=True)},
            },
            subject=subj,
        )
        records.submit(clin, "ct_score", ct_values(c["ct"][0], "baseline", enrolled), subject=subj)
        for d in range(1, 6):
            day = first + timedelta(days=d - 1)
            kit = f"KIT-{pid}-{d}"
            kits.append(kit)
            records.submit(
                clin,
                "vitals",
                {
                    "timepoint": "pre_dose",
                    "dose": d,
                    "time": at(day, 8, 50),
                    "temp": u(37.0 + 0.1 * (i % 3), "C"),
                    "pulse": u(80 + i, "beats/min"),
                    "resp": u(20 + d % 3, "breaths/min"),
                    "oxysat": u(93 + d % 3, "%"),
                },
                subject=subj,
            )
            ev = records.submit(
                clin,
                "dose",
                {
                    "kit_id": kit,
                    "lot": "LOT-A1",
                    "particles": u(2.0e8, "particles"),
                    "volume": u(6.0, "mL"),
                    "start": at(day, 9),
                    "end": at(day, 9, 30),
                    "given_by": "clinician",
                    "dose_number": d,
                    "day": d,
                },
                subject=subj,
            )
            if i == 0 and d == 1:
                first_dose_record = ev.id
            if i == 1 and d == 1:
                signed_valid = ev.id
            records.submit(
                clin,
                "vitals",
                {
                    "timepoint": "post_dose",
                    "dose": d,
                    "time": at(day, 9, 45),
                    "temp": u(37.2 + 0.1 * (i % 3), "C"),
                    "pulse": u(82 + i, "beats/min"),
                    "resp": u(19 + d % 3, "breaths/min"),
                    "oxysat": u(94 + d % 3, "%"),
                },
                subject=subj,
            )
            records.submit(
                clin, "post_dose_check", {"dose": d, "time": at(day, 10), "events": ["none"]}, subject=subj
            )
        after = first + timedelta(days=6)
        records.submit(
            clin,
            "labs",
            {
                "timepoint": "post_treatment",
                "date": after.isoformat(),
                **{k: u(v, LAB_UNITS[k]) for k, v in zip(LAB_FIELDS, c["after"], strict=True)},
            },
            subject=subj,
        )
        # The last participant's post-treatment scan has a segment not evaluable.
        ne = i == len(rows) - 1 and len(rows) == len(COHORT)
        records.submit(
            clin, "ct_score", ct_values(c["ct"][1], "post_treatment", after, not_evaluable=ne), subject=subj
        )
        if i == 1:
            records.submit(
                clin,
                "ae",
                {
                    "term": "Cough after inhalation 吸入后咳嗽",
                    "prespecified": "cough",
                    "dose": 2,
                    "onset": (first + timedelta(days=1)).isoformat(),
                    "grade": 1,
                    "serious": False,
                    "causality": "possible",
                    "action": "none",
                    "outcome": "recovered",
                    "first_known": (first + timedelta(days=1)).isoformat(),
                },
                subject=subj,
            )
        if i == 2:
            ev = records.submit(
                clin,
                "ae",
                {
                    "term": "Pulmonary embolism",
                    "prespecified": "no",
                    "onset": (first + timedelta(days=3)).isoformat(),
                    "grade": 3,
                    "serious": True,
                    "hospitalization": True,
                    "causality": "unlikely",
                    "action": "none",
                    "outcome": "recovering",
                    "first_known": (first + timedelta(days=3)).isoformat(),
                    "report_due": (first + timedelta(days=18)).isoformat(),
                },
                subject=subj,
            )
            serious = ev.id
            records.submit(
                dsmg,
                "dsmg_ae_review",
                {
                    "ae_event": ev.id,
                    "relatedness": "unlikely",
                    "unexpected": False,
                    "comment": "expected in severe COVID-19",
                },
                subject=subj,
            )
    # Signatures: one record signed and left alone, one signed and then corrected.
    signatures.sign(inv, target=signed_valid, meaning="reviewed", password=PASSWORD)
    signatures.sign(inv, target=first_dose_record, meaning="approved", password=PASSWORD)
    records.amend(
        clin,
        first_dose_record,
        {"volume": u(6.5, "mL")},
        reason="volume misread from the syringe; 6.5 mL drawn",
    )
    signatures.sign(inv, target=f"participant:{pids[-1]}", meaning="approved", password=PASSWORD)
    return Cohort(pids, kits, first_dose_record, signed_valid, serious, photos)


# -- sites for export tests: a ward with the cohort, and a hub fed by two wards -----------


ROLES = ("clinician", "investigator", "dsmg", "coordinator", "auditor")


@dataclass
class CohortSite:
    data_dir: Any
    cohort: Cohort
    users: dict[str, str]  # role -> username


def make_ward(
    data_dir: Any, site: str = "WUH01", *, prefix: str = "", n: int | None = None, start: int = 1
) -> CohortSite:
    """A ward with one user per role (named `<prefix><role>`) and the cohort recorded on it."""
    import mexcovid_engine

    from wardcrf import users
    from wardcrf.site import Site

    admin = f"{prefix}admin"
    result = Site.init(
        data_dir,
        site=site,
        device_name="lap1",
        admin=admin,
        password=PASSWORD,
        admin_full_name=f"{site} Admin",
        protocol_file=mexcovid_engine.site_protocol(),  # None: the shipped default
    )
    a = result.site.unlock(admin, PASSWORD)
    names = {"admin": admin}
    for role in ROLES:
        names[role] = f"{prefix}{role}"
        users.add_user(a, names[role], f"{role.title()} of {site}", role, PASSWORD)
    a.close()
    sessions = {
        r: Site.open(data_dir).unlock(names[r], PASSWORD) for r in ("clinician", "investigator", "dsmg")
    }
    try:
        import wardcrf.workflow  # noqa: F401  (form hooks: participants, doses, ...)

        cohort = _build_as(sessions, site, n, start)
    finally:
        for s in sessions.values():
            s.close()
    return CohortSite(data_dir, cohort, names)


def _build_as(sessions: dict[str, Session], site: str, n: int | None, start: int) -> Cohort:
    return build(
        sessions["clinician"], sessions["investigator"], sessions["dsmg"], site=site, n=n, start=start
    )


def make_hub(data_dir: Any, wards: list[Any]) -> Any:
    """A hub holding every event of the given ward data directories, ingested in chain order.

    Sync's own tests cover bundles, signatures and receipts; this gives the
    exports what a hub holds after sync: the wards' events, their projections.
    """
    import mexcovid_engine
    from wardcrf.sync import hub as sync_hub

    from wardcrf import eventlog
    from wardcrf.site import Site

    # `sync.hub.init`: under `hub_engines` a PostgreSQL hub (the wards' events go to its database).
    sync_hub.init(
        data_dir,
        site="HUB",
        name="hub1",
        admin="hubadmin",
        password=PASSWORD,
        full_name="Hub Admin",
        protocol_file=mexcovid_engine.site_protocol(),  # None: the shipped default
    )
    hub = Site.open(data_dir).unlock("hubadmin", PASSWORD)
    try:
        from wardcrf import users

        users.add_user(hub, "hubcoordinator", "Hub Coordinator", "coordinator", PASSWORD)
        users.add_user(hub, "hubauditor", "Hub Auditor", "auditor", PASSWORD)
        for ward_dir, username in wards:
            ward = Site.open(ward_dir).unlock(username, PASSWORD)
            try:
                with sync_hub.ledger_store(hub) as held, held.transaction():
                    for e in eventlog.iter_events(ward.store, order="device, seq"):
                        eventlog.ingest(held, e)
            finally:
                ward.close()
    finally:
        hub.close()
    return data_dir


def run_cli(
    data_dir: Any, *args: str, user: str = "coordinator", stdin_tty: bool = False
) -> tuple[int, str, str]:
    """Run `wardcrf ARGS` in-process against `data_dir` as `user`."""
    import contextlib
    import io
    import os

    from wardcrf.cli import main

    saved = {
        k: os.environ.get(k) for k in ("WARDCRF_DATA_DIR", "WARDCRF_USER", "WARDCRF_PASSWORD", "COLUMNS")
    }
    os.environ.update(
        {
            "WARDCRF_DATA_DIR": str(data_dir),
            "WARDCRF_USER": user,
            "WARDCRF_PASSWORD": PASSWORD,
            "COLUMNS": "200",
        }
    )
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()
