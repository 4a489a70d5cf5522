"""A complete demo site, seeded through the same services a ward uses.

Seven participants shaped like the published MEXCOVID cohort (4 male,
3 female, ages 43-70; symptom onset to admission around 30 days), each
consented with two witnesses and a photographed consent page, screened,
enrolled, skin-tested and dosed daily with vitals before and after every
inhalation and the post-dose question asked. Participant 1 is the sentinel:
the DSMG records "continue" on its data before participant 2 is enrolled.
Two participants step down from high-flow to nasal cannula (day 3 and day
4); one has a non-serious adverse event after an inhalation; one dose is
late (a deviation to see); the last participant is mid-course: two doses
given and dose 3 next, never overdue (see `_enrolled_days_ago`). Baseline
and follow-up labs and CT scores are recorded for the participants who
completed treatment; participant 1's casebook is signed off.

Cold chain (wardcrf.coldchain.scenario): one shipment of every kit arrives
two days before the first dose from an external courier (photo of the
signed delivery sheet, the shipper's logger file), goes into the -20 °C
freezer (signed by both, photographed), the freezer's logger shows one
15-minute excursion the night after, which the pharmacist releases with a
reason; before each dose the pharmacist downloads the freezer log, hands the
kit to the bedside (signed, photographed) and the clinician thaws it, so
every dosed kit passes the custody gate.

Dates are relative to the moment of seeding, so the demo always looks
current and tells the same story at any hour of the day. Every step is
entered a few minutes after what it records, in the order things happened
(`Timeline`): the site reads as a ward that typed as it worked, and its
audit-trail review (`wardcrf report audit-review`) finds nothing.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import protocol as protocols
from .. import users
from ..clock import now_utc, pinned, zone
from ..site import DEFAULT_ZONE, Session, Site
from . import service
from .clinical import CT_SEGMENTS

DEMO_PASSWORD = "demo-password"
DEMO_USERS = (
    ("clinician", "Li Wei", "clinician"),
    ("clinician2", "Zhang Min", "clinician"),
    ("pharmacist", "Chen Jing", "pharmacist"),
    ("investigator", "Wang Fang", "investigator"),
    ("dsmg", "Liu Yang", "dsmg"),
    ("coordinator", "Zhao Lei", "coordinator"),
    ("auditor", "Sun Li", "auditor"),
    ("monitor", "Zhou Qing", "monitor"),
)


@dataclass(frozen=True)
class Profile:
    """One demo participant: who they are and how their stay went."""

    sex: str
    age: int
    severity: str
    enrolled_days_ago: int | None  # None: mid-course, placed by the seeding time (`_enrolled_days_ago`)
    onset_to_admission: int
    admission_to_enrollment: int
    symptoms: tuple[str, ...]
    comorbidities: tuple[str, ...]
    oxygen: tuple[str, ...]  # support on days 1..5
    labs_before: dict[str, Any]
    labs_after: dict[str, Any]
    ct_before: int
    ct_after: int
    plasma: bool = False
    steroid: bool = False
    doses_given: int = 5


_NC = ("nasal_cannula",) * 5
COHORT = (
    Profile(
        "M",
        57,
        "severe",
        24,
        30,
        23,
        ("fever", "cough", "dyspnoea"),
        ("hypertension",),
        _NC,
        {
            "wbc": 6.2,
            "lym": 1.61,
            "crp": 12.5,
            "ldh": 265,
            "il6": 9.8,
            "ddimer": 0.9,
            "alt": 78,
            "creat": 62,
        },
        {
            "wbc": 5.9,
            "lym": 1.78,
            "crp": 4.1,
            "ldh": 231,
            "il6": 5.2,
            "ddimer": 0.6,
            "alt": 79,
            "creat": 60,
        },
        51,
        40,
    ),
    Profile(
        "F",
        43,
        "severe",
        17,
        15,
        19,
        ("fever", "cough", "fatigue"),
        ("none",),
        ("hfnc", "hfnc", "nasal_cannula", "nasal_cannula", "nasal_cannula"),
        {
            "wbc": 7.1,
            "lym": 1.20,
            "crp": 35.0,
            "ldh": 310,
            "il6": 21.4,
            "ddimer": 1.8,
            "alt": 45,
            "creat": 55,
        },
        {
            "wbc": 6.4,
            "lym": 1.52,
            "crp": 8.2,
            "ldh": 245,
            "il6": 7.9,
            "ddimer": 0.9,
            "alt": 40,
            "creat": 57,
        },
        58,
        44,
        steroid=True,
    ),
    Profile(
        "M",
        70,
        "critical",
        16,
        40,
        26,
        ("fever", "dyspnoea", "chest_tightness"),
        ("diabetes", "copd"),
        ("hfnc", "hfnc", "hfnc", "nasal_cannula", "nasal_cannula"),
        {
            "wbc": 9.8,
            "lym": 0.85,
            "crp": 56.0,
            "ldh": 420,
            "il6": 48.0,
            "ddimer": 3.2,
            "alt": 92,
            "creat": 98,
        },
        {
            "wbc": 8.1,
            "lym": 1.10,
            "crp": 60.5,
            "ldh": 380,
            "il6": 30.2,
            "ddimer": 2.1,
            "alt": 88,
            "creat": 95,
        },
        62,
        51,
        plasma=True,
    ),
    Profile(
        "F",
        63,
        "severe",
        14,
        28,
        24,
        ("cough", "fatigue", "anorexia"),
        ("hyperthyroidism",),
        _NC,
        {
            "wbc": 5.4,
            "lym": 1.75,
            "crp": 9.0,
            "ldh": 240,
            "il6": 6.1,
            "ddimer": 0.5,
            "alt": 81,
            "creat": 58,
        },
        {
            "wbc": 5.6,
            "lym": 1.95,
            "crp": 3.3,
            "ldh": 228,
            "il6": 6.8,
            "ddimer": 0.4,
            "alt": 77,
            "creat": 56,
        },
        40,
        32,
    ),
    Profile(
        "M",
        68,
        "severe",
        12,
        35,
        30,
        ("fever", "cough", "myalgia"),
        ("hypertension", "diabetes"),
        _NC,
        {
            "wbc": 6.8,
            "lym": 1.48,
            "crp": 18.7,
            "ldh": 290,
            "il6": 12.3,
            "ddimer": 1.1,
            "alt": 66,
            "creat": 71,
        },
        {
            "wbc": 6.1,
            "lym": 1.66,
            "crp": 6.0,
            "ldh": 250,
            "il6": 13.5,
            "ddimer": 0.8,
            "alt": 70,
            "creat": 69,
        },
        48,
        38,
    ),
    Profile(
        "F",
        52,
        "severe",
        10,
        20,
        21,
        ("dyspnoea", "fatigue"),
        ("none",),
        ("room_air", "room_air", "room_air", "room_air", "room_air"),
        {
            "wbc": 4.9,
            "lym": 1.88,
            "crp": 7.4,
            "ldh": 220,
            "il6": 4.4,
            "ddimer": 0.4,
            "alt": 35,
            "creat": 51,
        },
        {
            "wbc": 5.2,
            "lym": 2.05,
            "crp": 2.1,
            "ldh": 205,
            "il6": 3.9,
            "ddimer": 0.3,
            "alt": 33,
            "creat": 50,
        },
        36,
        30,
    ),
    Profile(
        "M",
        45,
        "critical",
        None,
        31,
        20,
        ("fever", "cough", "dyspnoea", "diarrhoea"),
        ("none",),
        _NC,
        {
            "wbc": 8.9,
            "lym": 1.05,
            "crp": 42.0,
            "ldh": 350,
            "il6": 26.0,
            "ddimer": 2.4,
            "alt": 58,
            "creat": 80,
        },
        {},
        55,
        0,
        doses_given=2,
    ),
)

# The mid-course participant's next dose moves to tomorrow when less than this
# is left of today's window: the demo is opened some minutes after seeding.
MID_COURSE_MARGIN = timedelta(minutes=30)


def _enrolled_days_ago(prof: Profile, now_local: datetime, schedule: protocols.Schedule) -> int:
    """How many days before the seeding day a participant was enrolled (study day 0).

    A participant who finished has a fixed history well in the past. The
    mid-course one has had `doses_given` doses and the next is due at the
    protocol's time (09:00 Asia/Shanghai, +/- 2 h), so which *day* it falls
    on decides what the ward sees. Seeded while today's window still has
    `MID_COURSE_MARGIN` to run, the next dose is today's (upcoming before
    07:00, due now until 11:00); seeded later, this morning's dose is
    already given (on time) and the next is due tomorrow. Either way the
    demo never shows an overdue or missing dose it does not narrate.
    """
    if prof.enrolled_days_ago is not None:
        return prof.enrolled_days_ago
    due_today = datetime.combine(now_local.date(), schedule.time, zone(schedule.zone))
    closes = due_today + timedelta(minutes=schedule.window_minutes) - MID_COURSE_MARGIN
    return prof.doses_given + 1 if now_local < closes else prof.doses_given


@dataclass
class DemoResult:
    data_dir: Path
    recovery_key: str
    participants: list[str] = field(default_factory=list)
    events: int = 0


def _when(day: date, hh: int, mm: int = 0) -> datetime:
    """Local ward time on `day`; minutes may run past 59 (09:50 + 30 min is fine)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone(DEFAULT_ZONE))
    return midnight + timedelta(hours=hh, minutes=mm)


def _at(day: date, hh: int, mm: int = 0) -> str:
    return _when(day, hh, mm).isoformat()


def _consent_page(directory: Path, pid_hint: str) -> Path:
    """A photographed consent page, generated (Pillow) so each consent binds its own image."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 900), "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 40), "INFORMED CONSENT - MEXCOVID v1.0", fill="black")
    draw.text((40, 80), f"Participant {pid_hint}", fill="black")
    for i, y in enumerate(range(140, 760, 24)):
        draw.line((40, y, 600 - (i * 7) % 120, y), fill=(90, 90, 90), width=2)
    draw.text((40, 800), "signed: participant / doctor / witness / witness", fill="black")
    path = directory / f"consent-{pid_hint}.jpg"
    img.save(path, "JPEG", quality=85)
    return path


def _ct_segments(total: int, seed: int) -> dict[str, Any]:
    """Spread a total score over the 18 segments (each 0-4), lower lobes first like COVID-19."""
    order = sorted(
        range(len(CT_SEGMENTS)), key=lambda i: ("lower" not in CT_SEGMENTS[i], (i * 7 + seed) % 18)
    )
    scores = [0] * len(CT_SEGMENTS)
    left = total
    while left > 0:
        for i in order:
            if left and scores[i] < 4:
                scores[i] += 1
                left -= 1
    return dict(zip(CT_SEGMENTS, scores, strict=True))


def seed(
    data_dir: Path, password: str = DEMO_PASSWORD, *, site_code: str = "WUH01", protocol_file: Any = None
) -> DemoResult:
    """Create a demo site in `data_dir` and fill it through the workflow services.

    `protocol_file`: a read protocol (`engine.loading.read_file`) the site starts with, as
    `wardcrf init --protocol` (a format-2 re-encoding of the shipped one is recorded beside it).

    Every step runs at the time it describes (`Timeline`), so the site reads
    as if the ward had typed it as it happened: its audit-trail review is
    clean, and what a monitor finds in it is what a test plants.
    """
    real_now = now_utc()
    now_local = real_now.astimezone(zone(DEFAULT_ZONE))
    first_day = now_local.date() - timedelta(
        days=max(p.enrolled_days_ago or 0 for p in COHORT) + 3  # the site is set up before the shipment
    )
    with pinned(_when(first_day, 9)):
        init = Site.init(
            Path(data_dir),
            site=site_code,
            device_name="demo-laptop",
            admin="admin",
            password=password,
            admin_full_name="Site Administrator",
            protocol_file=protocol_file,
        )
        site = init.site
        result = DemoResult(Path(data_dir), init.recovery_key)
        admin = site.unlock("admin", password)
        try:
            for username, full_name, role in DEMO_USERS:
                users.add_user(admin, username, full_name, role, password)
        finally:
            admin.close()
        clin = site.unlock("clinician", password)
        inv = site.unlock("investigator", password)
        dsmg = site.unlock("dsmg", password)
        ph = site.unlock("pharmacist", password)
    try:
        with tempfile.TemporaryDirectory(prefix="wardcrf-demo-") as tmp:
            timeline = Timeline(cap=real_now)
            cold = _ColdChain(ph, clin, password, Path(tmp), timeline)
            _seed_cohort(clin, inv, dsmg, password, Path(tmp), result, timeline, cold, now_local)
            timeline.run()
        result.events = int(clin.store.scalar("SELECT count(*) FROM events"))
    finally:
        for s in (clin, inv, dsmg, ph):
            s.close()
    return result


class Timeline:
    """Steps of a seeded history, run in the order of the times they happen, each at its time.

    A step is entered a few minutes after what it describes (`when`), and
    never after `cap` (the moment of seeding): the last participant's
    morning dose, given today, is not entered in the future.
    """

    def __init__(self, cap: datetime) -> None:
        self.cap = cap
        self.steps: list[tuple[datetime, int, Callable[[], object]]] = []

    def at(self, when: datetime, step: Callable[[], object]) -> None:
        self.steps.append((when, len(self.steps), step))

    def run(self) -> None:
        for when, _, step in sorted(self.steps, key=lambda s: (s[0], s[1])):
            with pinned(min(when, self.cap)):
                step()
        self.steps.clear()


LOT = "HAMSC-2003-01"


class _ColdChain:
    """The demo's shipment, freezer log with one short excursion, and bedside handovers."""

    def __init__(self, ph: Session, clin: Session, password: str, tmp: Path, timeline: Timeline) -> None:
        self.ph, self.clin, self.tmp, self.timeline = ph, clin, tmp, timeline
        self.passwords = {u: password for u in ("pharmacist", "investigator", "clinician")}
        self.stored_at: datetime | None = None

    def receive(self, first_dose_day: date, kits: list[str]) -> None:
        """Delivered at 10:00 two days before the first dose; the night's excursion seen at 08:30."""
        arrive = _when(first_dose_day - timedelta(days=2), 10)
        self.timeline.at(arrive + timedelta(minutes=20), lambda: self._arrive(arrive, kits))
        morning = _when(first_dose_day - timedelta(days=1), 8, 30)
        self.timeline.at(morning + timedelta(minutes=5), lambda: self._excursion_seen(morning))

    def _arrive(self, arrive: datetime, kits: list[str]) -> None:
        from ..coldchain import scenario

        got = scenario.receive_and_store(
            self.ph, self.passwords, lot=LOT, kits=kits, received_at=arrive, workdir=self.tmp
        )
        self.stored_at = got.stored_at

    def _excursion_seen(self, morning: datetime) -> None:
        from ..coldchain import reports, scenario, services

        assert self.stored_at is not None
        hot = morning - timedelta(hours=6, minutes=20)  # 02:10, a door left ajar in the night
        scenario.download_freezer_log(
            self.ph,
            morning,
            since=self.stored_at - timedelta(minutes=30),
            workdir=self.tmp,
            excursion=(hot, 15),
        )
        for x in reports.excursions(self.ph):
            services.record_disposition(
                self.ph,
                x["id"],
                decision="release",
                reason="15 min up to -13.5 °C in a closed freezer (door alarm); within the sponsor's "
                "stability data for short excursions above -15 °C; QP informed by phone",
            )

    def to_bedside(self, kit: str, dose_start: datetime) -> None:
        """45 min before the dose the kit leaves the freezer; thawed by 15 min before it."""
        from ..coldchain import scenario

        self.timeline.at(
            dose_start - timedelta(minutes=14),
            lambda: scenario.to_bedside(
                self.ph, self.passwords, kit, dose_start, bedside=self.clin, workdir=self.tmp
            ),
        )


def _seed_cohort(
    clin: Session,
    inv: Session,
    dsmg: Session,
    password: str,
    tmp: Path,
    result: DemoResult,
    timeline: Timeline,
    cold: _ColdChain | None,
    now_local: datetime,
) -> None:
    """Plan every participant's stay on the timeline (run afterwards, in time order)."""
    today = now_local.date()
    schedule = protocols.active(clin.store).schedule
    day0s = [today - timedelta(days=_enrolled_days_ago(p, now_local, schedule)) for p in COHORT]
    if cold is not None:
        dose_days = [
            day0 + timedelta(days=d)
            for p, day0 in zip(COHORT, day0s, strict=True)
            for d in range(1, p.doses_given + 1)
        ]
        cold.receive(min(dose_days), [f"EXO-{k:04d}" for k in range(1, len(dose_days) + 1)])
    ids: dict[int, str] = {}

    def pw(_user: str) -> str:
        return password

    def submit(form: str, n: int | None, who: Session, values: dict[str, Any]) -> Any:
        pid = ids[n] if n is not None else None
        return service.submit(who, form, values, participant=pid, password_for=pw)

    def enter(when: datetime, form: str, n: int | None, who: Session = clin, **values: Any) -> None:
        """`form` entered at `when` (a few minutes after what it records)."""
        timeline.at(when, lambda: submit(form, n, who, values))

    def consent(n: int, when: datetime, page: Path) -> None:
        done = submit(
            "consent",
            None,
            clin,
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": when.isoformat(),
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": f"@{page}",
            },
        )
        ids[n] = (done.subject or "").removeprefix("participant:")
        result.participants.append(ids[n])

    kit = 0
    for n, (prof, day0) in enumerate(zip(COHORT, day0s, strict=True), start=1):
        page = _consent_page(tmp, f"{n:03d}")
        signed = _when(day0, 8, 30)
        timeline.at(signed + timedelta(minutes=10), functools.partial(consent, n, signed, page))
        dob = date(day0.year - prof.age, 1 + (n * 5) % 12, 1 + (n * 3) % 27)
        if (dob.month, dob.day) > (day0.month, day0.day):
            dob = date(dob.year - 1, dob.month, dob.day)
        admission = day0 - timedelta(days=prof.admission_to_enrollment)
        enter(
            _when(day0, 9),
            "screening",
            n,
            date=day0.isoformat(),
            dob=dob.isoformat(),
            sex=prof.sex,
            pcr_confirmed=True,
            pcr_date=admission.isoformat(),
            severity=prof.severity,
        )
        enter(
            _when(day0, 9, 15),
            "demographics",
            n,
            symptoms=list(prof.symptoms),
            comorbidities=list(prof.comorbidities),
            symptom_onset=(admission - timedelta(days=prof.onset_to_admission)).isoformat(),
            admission=admission.isoformat(),
        )
        enter(_when(day0, 9, 30), "enrollment", n, date=day0.isoformat())
        enter(_when(day0, 11), "labs", n, timepoint="baseline", date=day0.isoformat(), **prof.labs_before)
        enter(
            _when(day0, 12),
            "ct_score",
            n,
            timepoint="baseline",
            date=day0.isoformat(),
            lesion_form=["ground_glass", "consolidation"],
            lesion_shape=["patchy"],
            **_ct_segments(prof.ct_before, n),
        )
        enter(
            _when(day0, 13),
            "conmed",
            n,
            category="antiviral",
            name="umifenovir (arbidol)",
            start=(admission + timedelta(days=1)).isoformat(),
        )
        stopped = admission + timedelta(days=12)
        enter(
            max(_when(day0, 13, 5), _when(stopped, 17, 45)),  # a course is entered once it ended
            "conmed",
            n,
            category="antibiotic_antifungal",
            name="moxifloxacin",
            start=(admission + timedelta(days=2)).isoformat(),
            end=stopped.isoformat(),
        )
        if prof.steroid:
            enter(
                _when(day0 + timedelta(days=2), 17, 40),
                "conmed",
                n,
                category="corticosteroid",
                name="methylprednisolone 40 mg/day",
                start=(day0 - timedelta(days=5)).isoformat(),
                end=(day0 + timedelta(days=2)).isoformat(),
            )
        if prof.plasma:
            enter(
                _when(day0, 13, 15),
                "conmed",
                n,
                category="convalescent_plasma",
                name="convalescent plasma, one unit",
                plasma_volume=200,
                plasma_titre=640,
                plasma_time=_at(day0 - timedelta(days=1), 14),  # the day before enrollment
            )
        enter(_when(day0, 15, 35), "skin_test", n, time=_at(day0, 15), result="negative", wheal=3)
        for d in range(1, prof.doses_given + 1):
            day = day0 + timedelta(days=d)
            kit += 1
            late = n == 5 and d == 4
            hh, mm = (11, 40) if late else (9, (n * 4 + d) % 15)
            start = _when(day, hh, mm)
            enter(
                _when(day, hh - 1, 48),
                "vitals",
                n,
                timepoint="pre_dose",
                dose=d,
                time=_at(day, hh - 1, 45),
                temp=36.8 + (n % 3) / 10,
                pulse=82 + n,
                resp=20 + n % 4,
                oxysat=94 + d % 3,
                sysbp=128,
                diabp=78,
            )
            if cold is not None:
                cold.to_bedside(f"EXO-{kit:04d}", start)
            enter(
                start + timedelta(minutes=35),
                "dose",
                n,
                kit_id=f"EXO-{kit:04d}",
                lot="HAMSC-2003-01",
                particles=2.0e8,
                volume=6,
                diluent="normal_saline",
                device="aerogen_solo",
                start=start.isoformat(),
                end=(start + timedelta(minutes=30)).isoformat(),
                interruptions=0,
            )
            enter(
                _when(day, hh + 1, 18),
                "vitals",
                n,
                timepoint="post_dose",
                dose=d,
                time=_at(day, hh + 1, 15),
                temp=37.4 if (n == 3 and d == 2) else 36.9,
                pulse=84 + n,
                resp=20,
                oxysat=95 + d % 3,
            )
            fever = n == 3 and d == 2
            enter(
                _when(day, hh + 1, 22),
                "post_dose_check",
                n,
                dose=d,
                time=_at(day, hh + 1, 20),
                events=["fever"] if fever else ["none"],
            )
            if fever:
                enter(
                    _when(day + timedelta(days=1), 10),  # entered when it had resolved
                    "ae",
                    n,
                    term="Low-grade fever after inhalation",
                    prespecified="fever",
                    dose=d,
                    onset=day.isoformat(),
                    end=(day + timedelta(days=1)).isoformat(),
                    grade=1,
                    serious=False,
                    causality="possible",
                    action="none",
                    outcome="recovered",
                    first_known=day.isoformat(),
                )
            support = prof.oxygen[d - 1]
            flow: dict[str, Any] = {"room_air": {}, "nasal_cannula": {"flow": 3.0}}.get(
                support, {"flow": 40.0, "fio2": 50}
            )
            enter(_when(day, 17), "oxygen", n, date=day.isoformat(), support=support, **flow)
        if prof.labs_after:
            enter(
                _when(day0 + timedelta(days=6), 11),
                "labs",
                n,
                timepoint="post_treatment",
                date=(day0 + timedelta(days=6)).isoformat(),
                **prof.labs_after,
            )
            enter(
                _when(day0 + timedelta(days=7), 12),
                "ct_score",
                n,
                timepoint="post_treatment",
                date=(day0 + timedelta(days=7)).isoformat(),
                lesion_form=["ground_glass"],
                lesion_shape=["patchy"],
                **_ct_segments(prof.ct_after, n),
            )
        if prof.doses_given >= schedule.doses:
            # End of treatment after the last dose; end of study at discharge (all discharged, per the paper).
            last = day0 + timedelta(days=prof.doses_given)
            enter(
                _when(last, 17, 30),
                "disposition",
                n,
                stage="end_of_treatment",
                status="completed",
                date=last.isoformat(),
            )
            enter(
                _when(day0 + timedelta(days=8), 10),
                "disposition",
                n,
                stage="end_of_study",
                status="completed",
                date=(day0 + timedelta(days=8)).isoformat(),
                reason="discharged home",
            )
        if n == 1:
            enter(
                _when(day0 + timedelta(days=6), 16, 10),
                "dsmg_decision",
                n,
                who=dsmg,
                decision="continue",
                time=_at(day0 + timedelta(days=6), 16),
                rationale="Sentinel participant completed 5 inhalations without a serious adverse event or "
                "vital-sign instability; enrollment may continue.",
            )
            enter(_when(day0 + timedelta(days=8), 15), "signoff", n, who=inv, note="casebook reviewed")
