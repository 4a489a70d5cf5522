"""Subject-level SDTM datasets from the records: DM, DS, EX, VS, LB, RS, AE, CM, MH, HO, SV, SUPP--.

Read protocol-first: a record is mapped through the CDISC names its form's
fields declare (`cdisc = "EXLOT"`, `"VSTESTCD=TEMP"`, `"SUPPEX.EXDEVICE"`),
read from the protocol version the record was captured under, so a trial
that adds a lab test or a collected value with no standard home gets it
exported without code changes. Every row gets its EPOCH, VISITNUM/VISIT
(findings and exposure) and study days from one `Timeline` per subject
(design.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ...protocol import Field, Protocol, tr
from ..dataset import Dataset, ProvenancedRecord, number, value_text
from ..progress import NullProgress, Progress
from . import ae as ae_map
from . import engine_visits
from .design import (
    BASELINE,
    FOLLOW_UP,
    POST_TREATMENT,
    SCREENING,
    TREATMENT,
    Design,
    Timeline,
    design_of,
)
from .metadata import DOMAINS

if TYPE_CHECKING:
    from ...engine.model import Model
    from .engine_design import ExTerms

CONSENT_TERM = "INFORMED CONSENT OBTAINED"
# The tests a form's fields declare (`cdisc = "LBTESTCD=CRP"`): each feeds its domain, whatever the form.
FINDINGS = ("VSTESTCD", "LBTESTCD", "RSTESTCD")
TPT = {"pre_dose": ("PRE-DOSE", 1), "post_dose": ("POST-DOSE", 2)}
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
DOSE_FORM = "SUSPENSION"  # EXDOSFRM when the product declares no dosage form
# Record date: the first of these fields a form has (documented in docs/exports.md).
DATE_FIELDS = ("time", "date", "start", "onset")


def dtc(value: Any) -> str:
    """ISO 8601 date/time without the UTC offset (local ward time), as SDTM expects."""
    text = value_text(value)
    if "T" in text and len(text) > 19:
        return text[:19]
    return text


@dataclass
class Built:
    """The datasets (rows per domain, SUPP-- included) and what a reviewer must be told."""

    rows: dict[str, list[dict[str, Any]]]
    uncoded_ae: int = 0
    coded_ae: int = 0
    dictionary_versions: dict[str, list[str]] = field(default_factory=dict)
    design: Design | None = None
    notes: list[str] = field(default_factory=list)
    ongoing: int = 0  # subjects without an end-of-study disposition, death or screen failure
    uncoded_cm: int = 0
    sources: dict[str, list[str]] = field(default_factory=dict)
    """Dataset -> the protocol forms its collected values came from, in first-seen order (define.xml's
    origin): the forms declaring its tests (VS, LB, RS), the administrations' forms (EX)."""

    def source(self, dataset: str, form: str) -> None:
        seen = self.sources.setdefault(dataset, [])
        if form not in seen:
            seen.append(form)


def cdisc_fields(proto: Protocol, form: str) -> dict[str, list[Field]]:
    """CDISC name -> the fields of `form` that declare it, in protocol order."""
    out: dict[str, list[Field]] = defaultdict(list)
    f = proto.forms.get(form)
    for fd in f.fields.values() if f else ():
        if fd.cdisc:
            out[fd.cdisc].append(fd)
    return out


def first_field(names: dict[str, list[Field]], var: str) -> Field | None:
    found = names.get(var)
    return found[0] if found else None


def mapped(rec: ProvenancedRecord, names: dict[str, list[Field]], var: str) -> Any:
    """The first non-empty value among the fields mapped to `var`."""
    for fd in names.get(var, ()):
        v = rec.data.get(fd.name)
        if v not in (None, "", []):
            return v
    return None


def choice_text(fd: Field, value: Any) -> str:
    """A stored choice as submission text: the choice's CDISC value, else its English label."""
    codes = value if isinstance(value, list) else [value]
    out = []
    for code in codes:
        c = fd.choice(code)
        out.append((c.cdisc or tr(c.label)) if c else value_text(code))
    return "; ".join(out)


def qval(fd: Field, value: Any) -> str:
    if fd.type == "choice":
        return choice_text(fd, value)
    if fd.type == "boolean":
        return ae_map.yn(value)
    if fd.type == "datetime":
        return dtc(value)
    return value_text(value)


class _Rows:
    def __init__(self, study: str) -> None:
        self.study = study
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.seq: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, domain: str, usubjid: str, **values: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"STUDYID": self.study, "DOMAIN": domain, "USUBJID": usubjid}
        if f"{domain}SEQ" in DOMAINS[domain].names:
            self.seq[(domain, usubjid)] += 1
            row[f"{domain}SEQ"] = self.seq[(domain, usubjid)]
        row.update(values)
        self.rows[domain].append(row)
        return row

    def supp(self, parent: dict[str, Any], qnam: str, label: str, value: str, origin: str = "CRF") -> None:
        if value in ("", None):
            return
        d = parent["DOMAIN"]
        idvar = f"{d}SEQ" if f"{d}SEQ" in parent else ""
        self.rows[f"SUPP{d}"].append(
            {
                "STUDYID": self.study,
                "RDOMAIN": d,
                "USUBJID": parent["USUBJID"],
                "IDVAR": idvar,
                "IDVARVAL": str(parent[idvar]) if idvar else "",
                "QNAM": qnam,
                "QLABEL": label,
                "QVAL": value,
                "QORIG": origin,
                "QEVAL": "",
            }
        )

    def protocol_supp(self, parent: dict[str, Any], rec: ProvenancedRecord, proto: Protocol) -> None:
        """SUPP-- values the protocol routes to the parent's domain (`cdisc = "SUPPEX.QNAM"`)."""
        prefix = f"SUPP{parent['DOMAIN']}."
        form = proto.forms.get(rec.form)
        for fd in form.fields.values() if form else ():
            if fd.cdisc and fd.cdisc.startswith(prefix):
                v = rec.data.get(fd.name)
                if v in (None, "", []):
                    continue
                qorig = "Derived" if fd.computed else "CRF"
                self.supp(parent, fd.cdisc[len(prefix) :], fd.cdisc_label or tr(fd.label), qval(fd, v), qorig)


def record_dtc(rec: ProvenancedRecord, proto: Protocol) -> str:
    form = proto.forms.get(rec.form)
    for name in DATE_FIELDS:
        fd = form.fields.get(name) if form else None
        if fd and fd.type in ("date", "datetime") and rec.data.get(name):
            return dtc(rec.data[name])
    return ""


def build(
    ds: Dataset,
    progress: Progress | None = None,
    coding: ae_map.Coding | None = None,
    arms: tuple[tuple[str, str], ...] | None = None,
    allocations: Mapping[str, str] | None = None,
    ex_terms: Mapping[tuple[str, str], ExTerms] | None = None,
    administrations: Mapping[str, Mapping[str, str]] | None = None,
    model: Model | None = None,
    eligibility: Mapping[str, Any] | None = None,
) -> Built:
    """The subject datasets; `arms`: the protocol's (format 2) arms, `allocations`: participant -> ARMCD.

    DM's planned arm is the participant's allocation when one is recorded,
    else the only arm of a one-arm trial once enrolled; a participant of a
    trial with several arms and no allocation is NOT ASSIGNED (SDTMIG 3.4
    ARMNRS). The actual arm is the planned one once a dose is recorded.
    `ex_terms`: EXTRT, EXROUTE, EXDOSFRQ, EXDOSFRM and the default EXDOSU of
    the participant's arm's administration recorded on the form.
    `administrations`: recording form -> its roles (`start`, `end`,
    `not_given`, ...): EX has one row per administration given on those forms.
    `eligibility`: the protocol's `[eligibility]` (its form, and its `date`,
    `eligible` and `failed` fields): DM's screen failures and DS's SCREEN FAILURE.
    `model` (the engine's: a format-2 version, or a format-1 one on its
    re-encoding): the design is the protocol's (its visits, named as TV names
    them), and each record's visit is the occurrence whose window holds it
    (`engine_visits`); without one (a stored format-1 version the engine cannot
    run) the documented default (`design.design_of`).
    """
    progress = progress or NullProgress()
    coding = coding or ae_map.NoCoding()
    proto = ds.active_protocol
    if model is not None:
        from .engine_design import design_from_model

        design = design_from_model(model)
    else:
        design = design_of(proto)
    if arms is not None:
        design = replace(design, arms=arms)
    out = _Rows(proto.id)
    built = Built(out.rows, dictionary_versions=coding.dictionary_versions, design=design)
    reviews = _dsmg_reviews(ds, model)
    pids = ds.participants()
    progress.start("participants", len(pids))
    for pid in pids:
        by_form: dict[str, list[ProvenancedRecord]] = defaultdict(list)
        for rec in ds.records(participant=pid):
            by_form[rec.form].append(rec)
        subject = _Subject(
            ds, proto, design, out, built, coding, reviews, pid, by_form, administrations, model, eligibility
        )
        subject.allocated = (allocations or {}).get(pid)
        subject.ex_terms = ex_terms or {}
        subject.build()
        progress.advance(1)
    return built


BLINDED = ("BLINDED", "Blinded")
"""DM's ARMCD/ARM (and ACTARMCD/ACTARM once dosed) of a participant allocated in a blinded trial
that is not unblinded yet: allocated, so not "NOT ASSIGNED", and the arm is not the export's to state."""


def recorded_allocations(ds: Dataset) -> dict[str, str]:
    """Participant -> ARMCD of every recorded allocation (issue 20's projection); `BLINDED` where hidden.

    An open-label list's allocation names its arm. A blinded list's does not
    on the ward (a kit only), and the hub, which knows it, states it only once
    the trial is unblinded there (`randomization.trial_unblinded`): before
    that, the participant is allocated, to an arm the export shows as BLINDED.
    """
    # The trial unblinded at the hub: its own event, in whichever log holds it (a PostgreSQL hub's file).
    unblinded = {
        str(subject)
        for db in ds.logs()
        for (subject,) in db.execute(
            "SELECT subject FROM events WHERE type = 'randomization.trial_unblinded'"
        )
    }
    rows = ds.data.rows(
        "SELECT a.participant, a.arm, l.reveal, l.protocol_id FROM rand_allocations a"
        " JOIN rand_lists l ON l.list_id = a.list_id"
    )
    return {
        str(r["participant"]).removeprefix("participant:"): (
            str(r["arm"])
            if (r["reveal"] == "arm" or f"protocol:{r['protocol_id']}" in unblinded) and r["arm"] is not None
            else BLINDED[0]
        )
        for r in rows
    }


Review = tuple[ProvenancedRecord, str, str]
"""The DSMG's review of an AE: its record, and the names of its relatedness and unexpected fields."""


def _dsmg_reviews(ds: Dataset, model: Model | None = None) -> dict[str, Review]:
    """AE record id -> the DSMG's latest review of it: format 1's `dsmg_ae_review`, or the form a format-2
    version declares (`[safety] dsmg_review`; none declared: no reviews)."""
    form, ae_field, rel, unexp = "dsmg_ae_review", "ae_event", "relatedness", "unexpected"
    if model is not None:
        declared = model.data.get("safety", {}).get("dsmg_review")
        if not declared:
            return {}
        form, ae_field = str(declared["form"]), str(declared["ae_field"])
        rel, unexp = str(declared.get("relatedness", "")), str(declared.get("unexpected", ""))
    out: dict[str, Review] = {}
    for rec in ds.records(form):
        target = value_text(rec.data.get(ae_field))
        if target:
            out[target] = (rec, rel, unexp)
    return out


class _Subject:
    """One participant's rows across every domain (shares the timeline and visit numbering)."""

    def __init__(
        self,
        ds: Dataset,
        proto: Protocol,
        design: Design,
        out: _Rows,
        built: Built,
        coding: ae_map.Coding,
        reviews: dict[str, Review],
        pid: str,
        by_form: dict[str, list[ProvenancedRecord]],
        administrations: Mapping[str, Mapping[str, str]] | None = None,
        model: Model | None = None,
        eligibility: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        el = eligibility or {}
        # The eligibility record: the protocol's `[eligibility] form` and its roles (not a form by name).
        self.screening = by_form.get(str(el.get("form", "")), []) if el else []
        self.el_date, self.el_eligible = str(el.get("date", "")), str(el.get("eligible", ""))
        self.el_failed = str(el.get("failed", ""))
        self.ds, self.proto, self.design, self.out, self.built = ds, proto, design, out, built
        self.coding, self.reviews, self.pid, self.by_form = coding, reviews, pid, by_form
        self.allocated: str | None = None  # ARMCD of the participant's recorded allocation
        self.arm: str | None = None  # the planned ARMCD, once DM has it
        self.ex_terms: Mapping[tuple[str, str], ExTerms] = {}
        self.u = f"{proto.id}-{pid}"
        # The administrations given on the regimens' recording forms (the model's, or a stored format-1
        # version's regimen as `engine.protocol_v1` reads its [schedule]): form -> its roles.
        self.roles: Mapping[str, Mapping[str, str]] = administrations or {}
        self.doses = sorted(
            (
                r
                for form, roles in self.roles.items()
                for r in by_form.get(form, [])
                if r.data.get(roles.get("not_given", "")) is not True
            ),
            key=lambda r: value_text(self._start(r)),
        )
        consent = by_form.get("consent", [])
        # The disposition records: every form declaring DSDECOD (the protocol's disposition form), by date.
        self.dispositions = sorted(
            self.declaring("DSDECOD"),
            key=lambda r: dtc(mapped(r, cdisc_fields(self.proto_of(r), r.form), "DSSTDTC")),
        )
        eot = any(self._disp(r, "DSSCAT") == "STUDY TREATMENT" for r in self.dispositions)
        first = dtc(self._start(self.doses[0])) if self.doses else ""
        last = dtc(self._end(self.doses[-1]) or self._start(self.doses[-1])) if self.doses else ""
        # Format 2: the participant's visits and anchors as the engine places them (`engine_visits`). The
        # course is over when the engine's `treatment_end` is known (the disposition's end of treatment, or
        # every administration of the participant's arm recorded or missed), not after format 1's count;
        # FOLLOW-UP then begins when the course ended (the day after its last administration, given or
        # missed, or the disposition's end of treatment if earlier), never before the day after the last
        # dose given.
        self.found: engine_visits.Visits | None = None
        follow_up = ""
        if model is not None:
            zone = ZoneInfo(str(ds.site_row.get("zone") or "UTC"))
            self.found = engine_visits.of_participant(ds.data, pid, by_form, model, zone)
            ended = self.found.snap.anchors.get("treatment_end")
            over = isinstance(ended, date)
            if isinstance(ended, date) and self.doses:
                ends = [ended.isoformat()[:10]]
                if self.found.course_completed is not None:
                    ends.append(self.found.course_completed.isoformat())
                after_last = (date.fromisoformat(last[:10]) + timedelta(days=1)).isoformat()
                follow_up = max(min(ends), after_last)
        else:
            over = len(self.doses) >= proto.schedule.doses or eot
        self.t = Timeline(
            consent=dtc(consent[0].data.get("time")) if consent else "",
            first_dose=first,
            last_dose=last,
            treatment_over=bool(self.doses) and over,
            follow_up_from=follow_up,
        )
        self.visit_info = self._assign_visits()

    # -- helpers ---------------------------------------------------------------------------

    def proto_of(self, rec: ProvenancedRecord) -> Protocol:
        return self.ds.protocol_for(rec)

    def _disp(self, rec: ProvenancedRecord, var: str) -> str:
        names = cdisc_fields(self.proto_of(rec), rec.form)
        fd = first_field(names, var)
        v = rec.data.get(fd.name) if fd else None
        return choice_text(fd, v) if fd and v is not None and fd.type == "choice" else value_text(v)

    def timing(
        self, domain: str, dtc_value: str, *, end: str = "", visit: str | None = None
    ) -> dict[str, Any]:
        """EPOCH, --DY / --STDY / --ENDY (and VISITNUM/VISIT when the domain has them)."""
        names = DOMAINS[domain].names
        out: dict[str, Any] = {}
        name = self.record_visit.get(visit) if visit else None
        vinfo = self.visit_info.get(name) if name else None
        out["EPOCH"] = vinfo[2] if vinfo and vinfo[2] else self.t.epoch(dtc_value)
        if "VISITNUM" in names and vinfo:
            out["VISITNUM"], out["VISIT"] = vinfo[0], vinfo[1]
        if f"{domain}DY" in names:
            out[f"{domain}DY"] = self.t.day(dtc_value)
        if f"{domain}STDY" in names:
            out[f"{domain}STDY"] = self.t.day(dtc_value)
        if f"{domain}ENDY" in names:
            out[f"{domain}ENDY"] = self.t.day(end)
        return out

    # -- visits ----------------------------------------------------------------------------

    def _blinded_terms(self, form: str) -> ExTerms | None:
        """A blinded participant's EX terms: every arm's product on the form ("tecovirimat or placebo"),
        so EX neither unblinds nor names a product the participant may not have had; the rest is shared
        (a blinded trial's regimens repeat each other, `same_as`)."""
        if self.arm != BLINDED[0]:
            return None
        found = [t for (_arm, f), t in self.ex_terms.items() if f == form]
        if not found:
            return None
        names = " or ".join(dict.fromkeys(t.treatment for t in found))
        return replace(found[0], treatment=names)

    def _form_terms(self, form: str) -> ExTerms | None:
        """The EX terms of the first arm recording on `form`: a participant given an administration without
        a planned arm (not enrolled, an arm code the regimen's upgrade does not name)."""
        return next((t for (_arm, f), t in self.ex_terms.items() if f == form), None)

    def _start(self, rec: ProvenancedRecord) -> Any:
        return rec.data.get(self.roles.get(rec.form, {}).get("start", "start"))

    def _end(self, rec: ProvenancedRecord) -> Any:
        return rec.data.get(self.roles.get(rec.form, {}).get("end", "end"))

    def _number(self, rec: ProvenancedRecord) -> int | None:
        """An administration's number: its `number` role, else its place among those given."""
        n = rec.data.get(self.roles.get(rec.form, {}).get("number", ""))
        if not isinstance(n, int):
            n = self.doses.index(rec) + 1 if rec in self.doses else None
        return n

    def _planned_visit(self, rec: ProvenancedRecord, when: str) -> str | None:
        """The default design's visit of a record (a version that declares no visits), or None
        (unscheduled): by its date against the administrations, never by its form's name."""
        n_doses = self.proto.schedule.doses
        if rec.form in self.roles:
            n = self._number(rec)
            return f"DOSE {n}" if n is not None and 1 <= n <= n_doses else None
        day = when[:10]
        if not day:
            return None
        if not self.t.first_dose or day < self.t.first_dose[:10]:
            return BASELINE
        for dose in self.doses:
            n = self._number(dose)
            if dtc(self._start(dose))[:10] == day and n is not None and 1 <= n <= n_doses:
                return f"DOSE {n}"
        if self.t.treatment_over and day > self.t.last_dose[:10]:
            return POST_TREATMENT
        return None

    def _assign_visits(self) -> dict[str, tuple[float, str, str]]:
        """Visit name -> (VISITNUM, VISIT, EPOCH) of the visits that happened; fills `record_visit`.

        Format 2: the engine places each record (`engine_visits.place`, the occurrence TV names)."""
        self.record_visit: dict[str, str] = {}
        dates: dict[str, list[str]] = defaultdict(list)
        unscheduled: list[tuple[str, ProvenancedRecord]] = []
        # A version that declares no visits: consent, enrollment, the administrations and the forms that
        # declare findings tests (VS, LB, RS) are visits.
        visit_forms = {"consent", "enrollment", *self.roles} | {
            form
            for form, recs in self.by_form.items()
            if any(self._findings_tests(r, p) for r in recs for p in FINDINGS)
        }
        found = self.found
        if self.model is not None:
            # Records of the forms a planned visit collects (and the administrations) are visits: placed,
            # or unscheduled. A form only an unscheduled or common visit lists (conmeds, AEs, dispositions:
            # any time) is no visit of its own: no SV row, no VISITNUM, as its domain has none.
            visit_forms = {
                str(f if isinstance(f, str) else f["form"])
                for v in self.model.data.get("visits", ())
                if v.get("type") not in ("unscheduled", "common")
                for f in v.get("forms", ())
            }
            visit_forms |= set(self.roles)
        for form, recs in self.by_form.items():
            if form not in visit_forms:
                continue
            for rec in recs:
                when = record_dtc(rec, self.proto_of(rec))
                name: str | None
                if self.model is not None and found is not None:
                    occ = (
                        engine_visits.place(
                            self.model,
                            found,
                            form,
                            rec.data,
                            rec.event_id,
                            date.fromisoformat(when[:10]),
                            administrations=True,
                        )
                        if len(when) >= 10
                        else None
                    )
                    name = occ.name if occ is not None else None  # the visit as TV names it
                else:
                    name = self._planned_visit(rec, when)
                if name:
                    self.record_visit[rec.event_id] = name
                    if when:
                        dates[name].append(when)
                elif when:
                    unscheduled.append((when, rec))
        info: dict[str, tuple[float, str, str]] = {}
        for v in self.design.visits:
            if v.name in dates:
                info[v.name] = (v.num, v.name, v.epoch)
        starts = sorted((min(dates[v.name]), v.num) for v in self.design.visits if v.name in dates)
        counter: dict[float, list[str]] = defaultdict(list)
        for when, rec in sorted(unscheduled, key=lambda x: x[0]):
            base = max((num for start, num in starts if start[:10] <= when[:10]), default=1.0)
            day = when[:10]
            if day not in counter[base]:
                counter[base].append(day)
            num = round(base + 0.01 * (counter[base].index(day) + 1), 2)
            name = f"UNSCHEDULED {num:.2f}"
            self.record_visit[rec.event_id] = name
            info[name] = (num, name, self.t.epoch(when))
            dates[name].append(when)
        self.visit_dates = dates
        return info

    def visit_of(self, rec: ProvenancedRecord) -> str | None:
        return self.record_visit.get(rec.event_id)

    # -- domains ---------------------------------------------------------------------------

    def build(self) -> None:
        self.dm()
        self.ds_()
        self.ex()
        self.vs()
        self.lb()
        self.rs()
        self.ae()
        self.cm()
        self.mh()
        self.ho()
        self.sv()

    def _subject_value(self, var: str) -> Any:
        """A subject characteristic (SEX, AGE, BRTHDTC) from the last record of a form declaring it."""
        found = [(r, cdisc_fields(self.proto_of(r), r.form)) for r in self.declaring(var)]
        return mapped(found[-1][0], found[-1][1], var) if found else None

    def dm(self) -> None:
        consent = self.by_form.get("consent", [])
        screening = self.screening
        enrolled = bool(self.by_form.get("enrollment"))
        scr = screening[-1].data if screening else {}
        age = number(self._subject_value("AGE"))
        arms = self.design.arms
        labels = dict(arms)
        planned: tuple[str, str] | None = None
        if self.allocated in labels:
            planned = (self.allocated, labels[self.allocated])
        elif self.allocated == BLINDED[0]:
            planned = BLINDED
        elif enrolled and len(arms) == 1:
            planned = arms[0]
        actual = planned if self.doses else None
        self.arm = planned[0] if planned else None
        if planned and actual:
            nrs = ""
        elif not planned and (not screening or not enrolled):
            failed = bool(screening) and scr.get(self.el_eligible) is False
            nrs = "SCREEN FAILURE" if failed else "NOT ASSIGNED"
        elif planned:
            nrs = "ASSIGNED, NOT TREATED"
        else:
            nrs = "NOT ASSIGNED"
        death = self._death()
        ended = any(self._disp(r, "DSSCAT") == "STUDY PARTICIPATION" for r in self.dispositions)
        if not death and not ended and nrs != "SCREEN FAILURE":
            self.built.ongoing += 1
        firsts = consent or screening
        site = firsts[0].site if firsts else ""
        row = self.out.add(
            "DM",
            self.u,
            SUBJID=self.pid,
            RFSTDTC=self.t.first_dose,
            RFENDTC=self.t.last_dose,
            RFXSTDTC=self.t.first_dose,
            RFXENDTC=self.t.last_dose,
            RFICDTC=self.t.consent,
            RFPENDTC=self._end_of_participation(death),
            DTHDTC=death,
            DTHFL="Y" if death or self._fatal_ae() else "",
            SITEID=site,
            BRTHDTC=value_text(self._subject_value("BRTHDTC")),
            AGE=int(age) if age is not None else None,
            AGEU="YEARS" if age is not None else "",
            SEX=value_text(self._subject_value("SEX")),
            RACE="",
            ARMCD=planned[0] if planned else "",
            ARM=planned[1] if planned else "",
            ACTARMCD=actual[0] if actual else "",
            ACTARM=actual[1] if actual else "",
            ARMNRS=nrs,
            ACTARMUD="",
            COUNTRY=self.proto.trial.country_of(site),
        )
        for rec in screening[-1:]:
            self.out.protocol_supp(row, rec, self.proto_of(rec))

    def _death(self) -> str:
        for rec in self.dispositions:
            names = cdisc_fields(self.proto_of(rec), rec.form)
            when = mapped(rec, names, "DTHDTC")
            if when or self._disp(rec, "DSDECOD") == "DEATH":
                return dtc(when or mapped(rec, names, "DSSTDTC"))
        return ""

    def _fatal_ae(self) -> bool:
        return any(
            r.data.get("outcome") == "fatal" or (r.data.get("serious") and r.data.get("death"))
            for r in self.by_form.get("ae", [])
        )

    def _end_of_participation(self, death: str) -> str:
        ends = [
            dtc(mapped(r, cdisc_fields(self.proto_of(r), r.form), "DSSTDTC"))
            for r in self.dispositions
            if self._disp(r, "DSSCAT") == "STUDY PARTICIPATION"
        ]
        if death:
            ends.append(death)
        if ends:
            return max(e for e in ends if e) if any(ends) else ""
        # Still participating: the last date anything was recorded about the subject (last contact).
        dates = [record_dtc(r, self.proto_of(r)) for recs in self.by_form.values() for r in recs]
        return max((d for d in dates if d), default="")

    def ds_(self) -> None:
        for rec in self.by_form.get("consent", []):
            when = dtc(rec.data.get("time"))
            row = self.out.add(
                "DS",
                self.u,
                DSSPID=rec.event_id,
                DSTERM=CONSENT_TERM,
                DSDECOD=CONSENT_TERM,
                DSCAT="PROTOCOL MILESTONE",
                DSSCAT="",
                DSSTDTC=when,
                EPOCH=SCREENING,
                DSSTDY=self.t.day(when),
            )
            self.out.protocol_supp(row, rec, self.proto_of(rec))
        for rec in self.screening[-1:]:
            if rec.data.get(self.el_eligible) is False and not self.by_form.get("enrollment"):
                when = dtc(rec.data.get(self.el_date))
                failed = rec.data.get(self.el_failed) or []
                form = self.proto_of(rec).forms.get(rec.form)
                fd = form.fields.get(self.el_failed) if form else None
                why = choice_text(fd, failed) if fd and failed else ""
                self.out.add(
                    "DS",
                    self.u,
                    DSSPID=rec.event_id,
                    DSTERM=f"SCREEN FAILURE: {why}"[:200] if why else "SCREEN FAILURE",
                    DSDECOD="SCREEN FAILURE",
                    DSCAT="DISPOSITION EVENT",
                    DSSCAT="STUDY PARTICIPATION",
                    DSSTDTC=when,
                    EPOCH=SCREENING,
                    DSSTDY=self.t.day(when),
                )
        for rec in self.dispositions:
            names = cdisc_fields(self.proto_of(rec), rec.form)
            when = dtc(mapped(rec, names, "DSSTDTC"))
            decod = self._disp(rec, "DSDECOD")
            scat = self._disp(rec, "DSSCAT")
            reason = value_text(mapped(rec, names, "DSTERM"))
            if scat == "STUDY TREATMENT":
                epoch = TREATMENT if self.doses else SCREENING
            else:
                epoch = self.t.epoch(when) or SCREENING
            row = self.out.add(
                "DS",
                self.u,
                DSSPID=rec.event_id,
                DSTERM=reason if reason and decod != "COMPLETED" else decod,
                DSDECOD=decod,
                DSCAT="DISPOSITION EVENT",
                DSSCAT=scat,
                DSSTDTC=when,
                EPOCH=epoch,
                DSSTDY=self.t.day(when),
            )
            self.out.protocol_supp(row, rec, self.proto_of(rec))

    def ex(self) -> None:
        for rec in self.doses:
            self.built.source("EX", rec.form)
            p = self.proto_of(rec)
            terms = (
                self.ex_terms.get((self.arm or "", rec.form))
                or self._blinded_terms(rec.form)
                or self._form_terms(rec.form)
            )
            names = cdisc_fields(p, rec.form)
            dose = mapped(rec, names, "EXDOSE")
            vamt = mapped(rec, names, "EXVAMT")
            vehicle_fd = first_field(names, "EXTRTV")
            vehicle = mapped(rec, names, "EXTRTV")
            start = dtc(mapped(rec, names, "EXSTDTC"))
            end = dtc(mapped(rec, names, "EXENDTC"))
            row = self.out.add(
                "EX",
                self.u,
                EXREFID=value_text(mapped(rec, names, "EXREFID")),
                EXSPID=rec.event_id,
                EXTRT=terms.treatment if terms else "",
                EXDOSE=number(dose),
                EXDOSU=(dose.get("unit") if isinstance(dose, dict) else None)
                or (terms.unit if terms else _unit(dose, names, "EXDOSE")),
                EXDOSFRM=(terms.dosage_form if terms else "") or DOSE_FORM,
                EXDOSFRQ=terms.frequency if terms else "",
                EXROUTE=terms.route if terms else "",
                EXLOT=value_text(mapped(rec, names, "EXLOT")),
                EXTRTV=choice_text(vehicle_fd, vehicle).upper() if vehicle_fd and vehicle else "",
                EXVAMT=number(vamt),
                EXVAMTU=(vamt.get("unit") if isinstance(vamt, dict) else "")
                or ("mL" if vamt is not None else ""),
                EXSTDTC=start,
                EXENDTC=end,
                **self.timing("EX", start, end=end, visit=rec.event_id),
            )
            self.out.protocol_supp(row, rec, p)

    def _findings_tests(self, rec: ProvenancedRecord, prefix: str) -> list[tuple[Field, str]]:
        form = self.proto_of(rec).forms.get(rec.form)
        return [
            (fd, fd.cdisc.split("=", 1)[1])
            for fd in (form.fields.values() if form else ())
            if fd.cdisc and fd.cdisc.startswith(prefix + "=")
        ]

    def declaring(self, *variables: str) -> Iterator[ProvenancedRecord]:
        """Every record of a form whose fields (under the record's own version) declare one of `variables`
        (`cdisc = "CMTRT"`): a domain reads what the forms declare for it, not a form by its name."""
        for recs in self.by_form.values():
            for rec in recs:
                names = cdisc_fields(self.proto_of(rec), rec.form)
                if any(v in names for v in variables):
                    yield rec

    def findings(self, prefix: str) -> Iterator[tuple[ProvenancedRecord, str, list[tuple[Field, str]]]]:
        """(record, --DTC, its tests) of every record of a form whose fields declare `prefix=CODE` tests
        (`cdisc = "LBTESTCD=CRP"`): a domain is fed by what the forms declare, not by a form's name. --DTC is
        the field mapped to `--DTC`, else the record's date."""
        domain = prefix[:2]
        for recs in self.by_form.values():
            for rec in recs:
                tests = self._findings_tests(rec, prefix)
                if tests:
                    self.built.source(domain, rec.form)
                    p = self.proto_of(rec)
                    when = dtc(mapped(rec, cdisc_fields(p, rec.form), f"{domain}DTC")) or record_dtc(rec, p)
                    yield rec, when, tests

    def vs(self) -> None:
        dose_start = {self._number(rec) or i: dtc(self._start(rec)) for i, rec in enumerate(self.doses, 1)}
        rows: list[dict[str, Any]] = []
        for rec, when, tests in self.findings("VSTESTCD"):
            d = rec.data
            tp = value_text(d.get("timepoint"))
            tpt, tptnum = TPT.get(tp, ("", None))
            n = d.get("dose")
            for fd, code in tests:
                v = d.get(fd.name)
                if v is None:
                    continue
                unit = (v.get("unit") if isinstance(v, dict) else "") or fd.unit or ""
                rows.append(
                    self.out.add(
                        "VS",
                        self.u,
                        VSSPID=rec.event_id,
                        VSTESTCD=code,
                        VSTEST=fd.cdisc_label or VS_TESTS.get(code, tr(fd.label)[:40]),
                        VSCAT="",
                        VSORRES=value_text(v),
                        VSORRESU=unit,
                        VSSTRESC=value_text(v),
                        VSSTRESN=number(v),
                        VSSTRESU=unit,
                        VSDTC=when,
                        VSTPT=tpt,
                        VSTPTNUM=tptnum,
                        VSTPTREF=f"DOSE {n}" if tpt and n else "",
                        VSRFTDTC=dose_start.get(n, "") if tpt and n else "",
                        **self.timing("VS", when, visit=rec.event_id),
                    )
                )
        self._lobxfl("VS", rows)

    def _lobxfl(self, domain: str, rows: list[dict[str, Any]]) -> None:
        """--LOBXFL = Y on each test's last non-missing result before the first dose."""
        first = self.t.first_dose
        if not first:
            return
        last: dict[str, dict[str, Any]] = {}
        for row in rows:
            when = row.get(f"{domain}DTC") or ""
            before = when < first if len(when) > 10 else when < first[:10] or row.get("VISIT") == "BASELINE"
            if not when or not before or row.get(f"{domain}STAT"):
                continue
            key = row[f"{domain}TESTCD"]
            if key not in last or when >= last[key][f"{domain}DTC"]:
                last[key] = row
        for row in last.values():
            row[f"{domain}LOBXFL"] = "Y"

    def lb(self) -> None:
        sex = value_text(self._subject_value("SEX"))
        rows: list[dict[str, Any]] = []
        for rec, when, tests in self.findings("LBTESTCD"):
            for fd, code in tests:
                v = rec.data.get(fd.name)
                if v is None:
                    continue
                unit = (v.get("unit") if isinstance(v, dict) else "") or fd.unit or ""
                lo, hi = _reference(fd, sex)
                val = number(v)
                nrind = ""
                if val is not None and lo is not None and hi is not None:
                    nrind = "LOW" if val < lo else "HIGH" if val > hi else "NORMAL"
                rows.append(
                    self.out.add(
                        "LB",
                        self.u,
                        LBSPID=rec.event_id,
                        LBTESTCD=code,
                        LBTEST=fd.cdisc_label or LB_TESTS.get(code, tr(fd.label)[:40]),
                        LBCAT=fd.cdisc_cat or "",
                        LBORRES=value_text(v),
                        LBORRESU=unit,
                        LBORNRLO=value_text(lo) if lo is not None else "",
                        LBORNRHI=value_text(hi) if hi is not None else "",
                        LBSTRESC=value_text(v),
                        LBSTRESN=val,
                        LBSTRESU=unit,
                        LBSTNRLO=lo,
                        LBSTNRHI=hi,
                        LBNRIND=nrind,
                        LBDTC=when,
                        **self.timing("LB", when, visit=rec.event_id),
                    )
                )
        self._lobxfl("LB", rows)

    def rs(self) -> None:
        rows: list[dict[str, Any]] = []
        for rec, when, tests in self.findings("RSTESTCD"):
            p = self.proto_of(rec)
            total_row = None
            for fd, code in tests:
                v = rec.data.get(fd.name)
                if v is None:
                    continue
                choice = fd.choice(v) if fd.type == "choice" else None
                not_done = bool(choice and choice.cdisc == "NOT DONE")
                row = self.out.add(
                    "RS",
                    self.u,
                    RSSPID=rec.event_id,
                    RSTESTCD=code,
                    RSTEST=fd.cdisc_label or tr(fd.label)[:40],
                    RSCAT=fd.cdisc_cat or "",
                    RSORRES="" if not_done else value_text(v),
                    RSORRESU="",
                    RSSTRESC="" if not_done else value_text(v),
                    RSSTRESN=None if not_done else number(v),
                    RSSTRESU="",
                    RSSTAT="NOT DONE" if not_done else "",
                    RSREASND=tr(choice.label).upper() if not_done and choice else "",
                    RSDTC=when,
                    **self.timing("RS", when, visit=rec.event_id),
                )
                rows.append(row)
                if fd.computed:
                    total_row = row
            if total_row is not None:
                self.out.protocol_supp(total_row, rec, p)
        self._lobxfl("RS", rows)

    def ae(self) -> None:
        for rec in self.by_form.get("ae", []):
            p = self.proto_of(rec)
            values, supp, coded = ae_map.ae_row(rec, p, self.coding)
            if coded:
                self.built.coded_ae += 1
            else:
                self.built.uncoded_ae += 1
            start = dtc(rec.data.get("onset"))
            end = dtc(rec.data.get("end"))
            row = self.out.add(
                "AE", self.u, AESTDTC=start, AEENDTC=end, **values, **self.timing("AE", start, end=end)
            )
            for qnam, value in supp.items():
                self.out.supp(row, qnam, ae_map.SUPP_LABELS[qnam], value)
            self.out.protocol_supp(row, rec, p)
            found = self.reviews.get(rec.event_id)
            if found is not None:
                review, rel_field, unexpected_field = found
                rel = value_text(review.data.get(rel_field)).upper() if rel_field else ""
                self.out.supp(row, "AERELDSM", ae_map.SUPP_LABELS["AERELDSM"], rel, "Assigned")
                unexpected = review.data.get(unexpected_field) if unexpected_field else None
                self.out.supp(
                    row, "AEUNXDSM", ae_map.SUPP_LABELS["AEUNXDSM"], ae_map.yn(unexpected), "Assigned"
                )

    def cm(self) -> None:
        for rec in self.declaring("CMTRT", "CMCAT"):
            self.built.source("CM", rec.form)
            p = self.proto_of(rec)
            names = cdisc_fields(p, rec.form)
            cat_fd = first_field(names, "CMCAT")
            cat = mapped(rec, names, "CMCAT")
            cat_text = choice_text(cat_fd, cat).upper() if cat_fd and cat is not None else ""
            dose = mapped(rec, names, "CMDOSE")
            start = dtc(mapped(rec, names, "CMSTDTC"))
            end = dtc(mapped(rec, names, "CMENDTC"))
            trt_field = first_field(names, "CMTRT")
            verbatim = value_text(rec.data.get(trt_field.name)) if trt_field else ""
            coded = (
                self.coding.variables(rec.event_id, trt_field.name, verbatim, "CM")
                if verbatim and trt_field
                else None
            )
            if verbatim and not coded:
                self.built.uncoded_cm += 1
            row = self.out.add(
                "CM",
                self.u,
                CMSPID=rec.event_id,
                CMTRT=verbatim or cat_text,
                **(coded or {"CMDECOD": ""}),
                CMCAT=cat_text,
                CMDOSE=number(dose),
                CMDOSU=_unit(dose, names, "CMDOSE"),
                CMSTDTC=start,
                CMENDTC=end,
                **self.timing("CM", start, end=end),
            )
            self.out.protocol_supp(row, rec, p)

    def mh(self) -> None:
        for rec in self.declaring("MHTERM", "MHSTDTC"):
            self.built.source("MH", rec.form)
            p = self.proto_of(rec)
            names = cdisc_fields(p, rec.form)
            onset = dtc(mapped(rec, names, "MHSTDTC"))
            if onset and p.trial.indication:
                self.out.add(
                    "MH",
                    self.u,
                    MHSPID=rec.event_id,
                    MHTERM=p.trial.indication,
                    MHCAT="PRIMARY DIAGNOSIS",
                    MHPRESP="",
                    MHOCCUR="",
                    EPOCH=SCREENING,
                    MHSTDTC=onset,
                    MHSTDY=self.t.day(onset),
                )
            for fd in names.get("MHTERM", []):
                v = rec.data.get(fd.name)
                codes = v if isinstance(v, list) else [v] if v not in (None, "") else []
                for code in codes:
                    if str(code) == "none":  # "none of these": nothing to record
                        continue
                    c = fd.choice(code) if fd.type == "choice" else None
                    self.out.add(
                        "MH",
                        self.u,
                        MHSPID=rec.event_id,
                        MHTERM=tr(c.label) if c else value_text(code),
                        MHCAT=fd.cdisc_cat or "",
                        MHPRESP="Y" if c else "",
                        MHOCCUR="Y" if c else "",
                        EPOCH=SCREENING,
                        MHSTDTC="",
                        MHSTDY=None,
                    )

    def ho(self) -> None:
        for rec in self.declaring("HOSTDTC"):
            self.built.source("HO", rec.form)
            names = cdisc_fields(self.proto_of(rec), rec.form)
            start = dtc(mapped(rec, names, "HOSTDTC"))
            if start:
                self.out.add(
                    "HO",
                    self.u,
                    HOSPID=rec.event_id,
                    HOTERM="HOSPITAL",
                    HODECOD="HOSPITAL",
                    EPOCH="",
                    HOSTDTC=start,
                    HOENDTC="",
                    HOSTDY=self.t.day(start),
                )

    def sv(self) -> None:
        planned = {v.name: v for v in self.design.visits}
        for name in sorted(self.visit_info, key=lambda n: self.visit_info[n][0]):
            num, vname, epoch = self.visit_info[name]
            dates = sorted(self.visit_dates[name])
            start, end = dates[0], dates[-1]
            self.out.add(
                "SV",
                self.u,
                VISITNUM=num,
                VISIT=vname,
                SVPRESP="Y" if vname in planned else "",
                SVOCCUR="Y" if vname in planned else "",
                EPOCH=epoch,
                SVSTDTC=start,
                SVENDTC=end,
                SVSTDY=self.t.day(start),
                SVENDY=self.t.day(end),
                SVUPDES="" if vname in planned else "Unscheduled assessment",
            )


def _unit(value: Any, names: dict[str, list[Field]], var: str) -> str:
    """The unit stored with a value, else the unit its field declares ('' when there is no value)."""
    if value is None:
        return ""
    if isinstance(value, dict) and value.get("unit"):
        return str(value["unit"])
    f = first_field(names, var)
    return (f.unit or "") if f else ""


def _reference(fd: Field, sex: str) -> tuple[float | None, float | None]:
    rr = fd.reference_range or {}
    rng = rr.get(sex) or rr.get("")
    return (rng[0], rng[1]) if rng else (None, None)


# Epoch names re-exported for the trial-design builder and tests.
__all__ = ["FOLLOW_UP", "SCREENING", "TREATMENT", "Built", "build", "dtc"]
