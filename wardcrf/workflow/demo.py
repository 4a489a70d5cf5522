"""A complete demo site, seeded through the same services a ward uses.

What the site holds about the trial is data: the protocol's demo file
(`wardcrf/protocols/demo/<id>.toml`, read and checked by `demo_file` before
anything is created; docs/protocol.md, "A trial's demo file"): its cohort,
each participant's values, and the records entered for each, with the forms
and fields the protocol declares. This module is generic: it creates the
site and its users, places each participant's day 0 (a participant without
`enrolled_days_ago` is mid-course, placed by the seeding time so its next
dose is never overdue: `_enrolled_days_ago`), and enters every record at its
time. What follows from the protocol is read from it: the dose amount (the
regimen's fixed dose) and the consent page's title (protocol id and version).

Cold chain (wardcrf.coldchain.scenario): one shipment of every kit (the
demo file's `[supply]`) arrives two days before the first dose from an
external courier (photo of the signed delivery sheet, the shipper's logger
file), goes into the -20 °C
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import protocol as protocols
from .. import users
from ..clock import now_utc, pinned, zone
from ..errors import WardError
from ..site import DEFAULT_ZONE, Session, Site
from . import demo_file, service

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


# The mid-course participant's next dose moves to tomorrow when less than this
# is left of today's window: the demo is opened some minutes after seeding.
MID_COURSE_MARGIN = timedelta(minutes=30)


def _enrolled_days_ago(prof: Mapping[str, Any], now_local: datetime, schedule: protocols.Schedule) -> int:
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
    if prof.get("enrolled_days_ago") is not None:
        return int(prof["enrolled_days_ago"])
    given = len(prof.get("doses", ()))
    due_today = datetime.combine(now_local.date(), schedule.time, zone(schedule.zone))
    closes = due_today + timedelta(minutes=schedule.window_minutes) - MID_COURSE_MARGIN
    return given + 1 if now_local < closes else given


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


def _consent_page(directory: Path, pid_hint: str, title: str) -> Path:
    """A photographed consent page, generated (Pillow) so each consent binds its own image."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 900), "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 40), title, fill="black")
    draw.text((40, 80), f"Participant {pid_hint}", fill="black")
    for i, y in enumerate(range(140, 760, 24)):
        draw.line((40, y, 600 - (i * 7) % 120, y), fill=(90, 90, 90), width=2)
    draw.text((40, 800), "signed: participant / doctor / witness / witness", fill="black")
    path = directory / f"consent-{pid_hint}.jpg"
    img.save(path, "JPEG", quality=85)
    return path


GIVEN = (
    "dob",
    "consent_page",
    "completed",
    "kit",
    "lot",
    "dose_amount",
    "dose_volume",
    "dose_number",
    "dose_end",
)
"""The values the seeder gives a demo file's records (docs/protocol.md, "A trial's demo file")."""


def ward_protocol(protocol_file: Any = None) -> protocols.Protocol:
    """The protocol a demo site starts with, as the ward runs it (`protocol_file` None: the default)."""
    from ..engine import loading

    return protocols.run_as(loading.first_protocol(protocol_file).of)


def read_demo(ward: protocols.Protocol, source: tuple[str, str] | None = None) -> demo_file.DemoFile:
    """The protocol's demo file (`source`: (file name, text) instead of the shipped one), checked against
    its forms; `Refused` naming why when it has none, `DemoFileError` naming each problem at its line."""
    if source is None:
        text = demo_file.shipped_source(ward.id)
        if text is None:
            raise _no_demo(ward.id)
        source = (f"wardcrf/protocols/{demo_file.DIRECTORY}/{demo_file.name_for(ward.id)}", text)
    planned = ward.schedule.doses
    amount, volume = dose_amount(ward), dose_volume(ward)

    def given(p: Mapping[str, Any]) -> Mapping[str, Any]:
        sample: dict[str, Any] = dict.fromkeys(GIVEN, "")
        return sample | {
            "completed": len(p.get("doses", ())) >= planned,
            "dose_amount": amount,
            "dose_volume": volume,
        }

    return demo_file.read(source[1], source[0], ward, given=given)


def _no_demo(protocol_id: str) -> Exception:
    from ..errors import Refused

    return Refused(
        f"{protocol_id} has no demo file (wardcrf/protocols/{demo_file.DIRECTORY}/{demo_file.name_for(protocol_id)})"
    )


def cohort(protocol_file: Any = None) -> tuple[Mapping[str, Any], ...]:
    """The participants of a protocol's shipped demo file (the default protocol's when None)."""
    return read_demo(ward_protocol(protocol_file)).participants


def dose_amount(ward: protocols.Protocol) -> float | None:
    """The dose every administration gives, as the protocol declares it (its regimens' one fixed dose)."""
    if ward.engine is None:
        return None
    fixed = {
        a.dose.fixed
        for r in ward.engine.regimens.values()
        for a in r.administrations
        if a.dose.fixed is not None
    }
    return float(fixed.pop()) if len(fixed) == 1 else None


def dose_volume(ward: protocols.Protocol) -> float | None:
    """The volume every administration is given in, as the protocol declares it (`volume = { value,
    unit }`: its regimens' one value), or None when it declares none or several."""
    if ward.engine is None:
        return None
    found = {
        float(v["value"])
        for r in ward.engine.data.get("regimens", ())
        for a in r.get("administrations", ())
        if isinstance(v := a.get("volume"), Mapping)
        and isinstance(v.get("value"), int | float)
        and not isinstance(v.get("value"), bool)
    }
    return found.pop() if len(found) == 1 else None


def dose_duration(ward: protocols.Protocol) -> timedelta | None:
    """How long every administration takes, as the protocol declares it (its regimens' one `duration`)."""
    from ..engine.model import duration

    if ward.engine is None:
        return None
    found = {
        duration(str(a["duration"]))
        for r in ward.engine.data.get("regimens", ())
        for a in r.get("administrations", ())
        if a.get("duration")
    }
    return found.pop() if len(found) == 1 else None


def seed(
    data_dir: Path,
    password: str = DEMO_PASSWORD,
    *,
    site_code: str = "WUH01",
    protocol_file: Any = None,
    demo_source: tuple[str, str] | None = None,
) -> DemoResult:
    """Create a demo site in `data_dir` and fill it through the workflow services.

    `protocol_file`: a read protocol (`engine.loading.read_file`) the site starts with, as
    `wardcrf init --protocol` (a format-2 re-encoding of the shipped one is recorded beside it).
    What the site holds comes from the protocol's demo file (`demo_file`; `demo_source`: (file name,
    text) instead of the shipped one), read and checked before anything is created.

    Every step runs at the time it describes (`Timeline`), so the site reads
    as if the ward had typed it as it happened: its audit-trail review is
    clean, and what a monitor finds in it is what a test plants.
    """
    demo = read_demo(ward_protocol(protocol_file), demo_source)  # refused before anything is created
    real_now = now_utc()
    now_local = real_now.astimezone(zone(DEFAULT_ZONE))
    first_day = now_local.date() - timedelta(
        days=max(int(p.get("enrolled_days_ago") or 0) for p in demo.participants)
        + 3  # the site is set up before the shipment
    )
    target = Path(data_dir)
    existed = target.exists()
    ours = not existed or not any(target.iterdir())  # only a folder this call fills is cleaned on a refusal
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
            cold = _ColdChain(ph, clin, password, Path(tmp), timeline, str(demo.supply.get("lot", "LOT-1")))
            sessions = {"clinician": clin, "investigator": inv, "dsmg": dsmg}
            _seed_cohort(demo, sessions, password, Path(tmp), result, timeline, cold, now_local)
            timeline.run()
        result.events = int(clin.store.scalar("SELECT count(*) FROM events"))
    except BaseException:
        for s in (clin, inv, dsmg, ph):
            s.close()
        if ours:
            remove_half_made(target, existed)  # a demo the ward refused part of is no demo: nothing is left
        raise
    for s in (clin, inv, dsmg, ph):
        s.close()
    return result


def remove_half_made(target: Path, existed: bool) -> None:
    """Remove the demo site a call created: its folder, or what it put in the empty folder it was given
    (the caller checks the folder was new or empty: nothing else is ever removed)."""
    import shutil

    if not existed:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


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


class _ColdChain:
    """The demo's shipment, freezer log with one short excursion, and bedside handovers."""

    def __init__(
        self, ph: Session, clin: Session, password: str, tmp: Path, timeline: Timeline, lot: str
    ) -> None:
        self.ph, self.clin, self.tmp, self.timeline, self.lot = ph, clin, tmp, timeline, lot
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
            self.ph, self.passwords, lot=self.lot, kits=kits, received_at=arrive, workdir=self.tmp
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
    demo: demo_file.DemoFile,
    sessions: dict[str, Session],
    password: str,
    tmp: Path,
    result: DemoResult,
    timeline: Timeline,
    cold: _ColdChain | None,
    now_local: datetime,
) -> None:
    """Plan every participant's records (the demo file's) on the timeline, run afterwards in time order.

    The first record registers the participant (the ward's answer names it); a per-dose record is
    entered for each of the participant's `doses`, its kit handed to the bedside before the
    administration; a record with `if` only when that value is true (`completed`: every dose the
    protocol plans was given).
    """
    today = now_local.date()
    active = protocols.active(sessions["clinician"].store)
    schedule = active.schedule
    people = demo.participants
    day0s = [today - timedelta(days=_enrolled_days_ago(p, now_local, schedule)) for p in people]
    prefix = str(demo.supply.get("kit_prefix", "KIT-"))
    if cold is not None:
        dose_days = [
            day0 + timedelta(days=d)
            for p, day0 in zip(people, day0s, strict=True)
            for d in range(1, len(p.get("doses", ())) + 1)
        ]
        if dose_days:
            cold.receive(min(dose_days), [f"{prefix}{k:04d}" for k in range(1, len(dose_days) + 1)])
    ids: dict[int, str] = {}
    zone_ = zone(DEFAULT_ZONE)
    title = f"INFORMED CONSENT - {active.id} v{active.version}"
    takes = dose_duration(active)
    given: dict[str, Any] = {
        "lot": str(demo.supply.get("lot", "")),
        "dose_amount": dose_amount(active),
        "dose_volume": dose_volume(active),
    }

    def pw(_user: str) -> str:
        return password

    def submit(form: str, n: int, who: Session, values: dict[str, Any]) -> None:
        service.submit(who, form, values, participant=ids[n], password_for=pw)

    def register(n: int, form: str, who: Session, values: dict[str, Any]) -> None:
        done = service.submit(who, form, values, participant=None, password_for=pw)
        ids[n] = (done.subject or "").removeprefix("participant:")
        result.participants.append(ids[n])

    kit = 0
    for n, (prof, day0) in enumerate(zip(people, day0s, strict=True), start=1):
        doses = list(prof.get("doses", ()))
        values: dict[str, Any] = {
            **given,
            "consent_page": f"@{_consent_page(tmp, f'{n:03d}', title)}",
            "completed": len(doses) >= schedule.doses,
        }
        if prof.get("age") is not None and prof.get("born") is not None:
            values["dob"] = demo_file.birth_date(int(prof["age"]), str(prof["born"]), day0).isoformat()
        scope = demo_file.Scope(day0, day0, zone_, {**values, **prof})
        records = (*demo.records, *demo.own_records[n - 1])
        i = 0
        while i < len(records):
            if records[i].each_dose:  # a run of per-dose records: entered dose by dose
                group = []
                while i < len(records) and records[i].each_dose:
                    group.append(records[i])
                    i += 1
                for d, dose in enumerate(doses, start=1):
                    kit += 1
                    scope.dose = dose
                    hh, mm = (int(x) for x in str(dose["start"]).split(":"))
                    scope.start = scope.at(day0 + timedelta(days=d), hh, mm)
                    scope.values = {
                        **scope.values,
                        "dose_number": d,
                        "kit": f"{prefix}{kit:04d}",
                        "dose_end": (scope.start + takes).isoformat() if takes is not None else None,
                    }
                    for rec in group:
                        scope.day = day0 + timedelta(days=d + rec.day)
                        if rec.administration and cold is not None:
                            cold.to_bedside(f"{prefix}{kit:04d}", scope.start)
                        _plan(rec, n, scope, sessions, timeline, submit, register, first=False)
                scope.dose, scope.start = None, None
                continue
            rec = records[i]
            scope.day = day0 + timedelta(days=rec.day)
            _plan(rec, n, scope, sessions, timeline, submit, register, first=i == 0)
            i += 1


def _plan(
    rec: demo_file.Record,
    n: int,
    scope: demo_file.Scope,
    sessions: dict[str, Session],
    timeline: Timeline,
    submit: Callable[[str, int, Session, dict[str, Any]], None],
    register: Callable[[int, str, Session, dict[str, Any]], None],
    *,
    first: bool,
) -> None:
    """One record of one participant on the timeline, its values filled in now (the scope moves on)."""
    if rec.only_if is not None and not scope.lookup(rec.only_if):
        return
    values = dict(demo_file.values_of(rec, scope))
    who = sessions[rec.by]
    if first:
        call = functools.partial(register, n, rec.form, who, values)
    else:
        call = functools.partial(submit, rec.form, n, who, values)
    timeline.at(demo_file.entered_at(rec, scope), functools.partial(_entered, rec, n, call))


def _entered(rec: demo_file.Record, n: int, call: Callable[[], object]) -> None:
    """Enter one record; the ward's refusal names the demo file's line and the participant."""
    try:
        call()
    except WardError as exc:
        raise demo_file.DemoFileError([f"{rec.where}: participant {n}: {rec.form}: {exc}"]) from None
