"""A demo ward for a shipped format-2 protocol of its own: `wardcrf demo --protocol palm|palm007`.

The ward is made as a trial's ward is (docs/engine.md, "Format 2 on a
ward"): `init` with the protocol, one user per role, the laptop registered at
the trial's hub, which issues it an allocation list (sealed to the laptop;
blinded lists also to its investigator's unblinding key), imported from the
hub's bundle as from a USB stick. That is why this lives beside sync: the
list is the hub's. Then, through the ward's own services, each at the time it
describes (`Timeline`: the audit-trail review reads a ward that typed as it
worked):

* PALM (Ebola; four open-label arms; infusions by weight): eight patients
  consented, screened (weight, Ct), enrolled and randomized over the three
  days before the working day and its morning, so every arm holds two; every
  infusion due on a day before the local one given on its day (a lot of vials
  of each product received into the unit its storage range asks for — ZMapp
  into the -20 °C freezer, MAb114 and REGN-EB3 into a 2-8 °C refrigerator,
  remdesivir into a 2-30 °C one — and handed to the bedside, vitals before and
  after), those due on the local day left due with their vial at the bedside,
  so the guided administration (`d` on the participant) has something to
  give; one screen failure (RT-PCR negative), one patient screened and not
  yet enrolled. Every randomized patient's daily ward round (the calendar
  visit INPT: vitals; PALM007's also lesions, and its baseline labs at
  screening) is recorded for each inpatient day before the local one, so the
  ward's list owes only today's (docs/engine.md, calendar visits).
* PALM007 (mpox; tecovirimat or placebo, double blind; capsules every 12 h by
  weight band): four patients randomized (a kit number each, the bottle
  dispensed from the pharmacy and handed to the bedside), every dose whose
  window has closed given with food, the next left due; one screen failure.

What is recorded about the trial is data: the trial's demo file
(`wardcrf/protocols/demo/palm.toml`, `palm007.toml`; read and checked by
`workflow.demo_file` before anything is created, docs/protocol.md "A trial's
demo file"): the patients (sex, age, weight, the day they were randomized,
their screening answers and stratum) and, for each moment of the story
(`STEPS`: consent, screening, enrollment, the daily round, the vitals around
an infusion, an infusion, a dose), the forms and values entered. This module
tells the story and times it.

The hub used is a temporary one unless `hub_dir` is given, where it stays and
receives the ward's bundles at the end (as `wardcrf demo --hub`).

The clock is explicit: `seed(..., now=)` is the moment of seeding (the CLI
passes the real clock, `clock.now_utc()`; tests pin it): nothing here reads the
real clock, every step runs pinned at its own time (`Timeline`), never after
`now`. The working day is the last whose morning round is over
(`MORNING_ROUND_ENDS`): between local midnight and 10:00 the newest patients
were admitted yesterday morning, and the list of the moment holds what a ward
expects then: yesterday's infusions given, today's due (the night before the
morning round), tablets due in a window closed by then given, none overdue.
"""

from __future__ import annotations

import functools
import heapq
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wardcrf import users
from wardcrf.clock import now_utc, pinned, zone
from wardcrf.engine.model import Model
from wardcrf.errors import Refused, WardError
from wardcrf.site import Session, Site
from wardcrf.workflow import demo_file

from . import hub, registry, ward

if TYPE_CHECKING:
    from wardcrf.workflow.status import AdministrationLine

ZONE = "Africa/Kinshasa"
MORNING_ROUND_ENDS = 10
"""Local hour by which the demo's morning round (randomizations, bottles to the bedside) is done."""
SITE = "KIN01"
USERS = (
    ("clinician", "Dr Jeanne Mbuyi", "clinician"),
    ("clinician2", "Dr Patrick Ilunga", "clinician"),
    ("pharmacist", "Grace Kabongo", "pharmacist"),
    ("investigator", "Dr Aimé Tshisekedi", "investigator"),
    ("dsmg", "Prof Marie Lukusa", "dsmg"),
    ("coordinator", "Olivier Mutombo", "coordinator"),
    ("auditor", "Esther Kalala", "auditor"),
    ("monitor", "Didier Nsimba", "monitor"),
)


@dataclass
class EngineDemo:
    data_dir: Path
    recovery_key: str
    participants: list[str] = field(default_factory=list)
    arms: dict[str, str] = field(
        default_factory=dict
    )  # participant -> arm (open label) or "kit K..." (blinded)
    ready: dict[str, str] = field(default_factory=dict)  # participant -> kit at the bedside for what is due
    events: int = 0
    hub_events: int = 0


class Timeline:
    """Steps run in the order of their times, each at its time; a step may plan later ones (an arm
    allocated decides the infusions that follow). Never after `cap` (the moment of seeding)."""

    def __init__(self, cap: datetime) -> None:
        self.cap = cap
        self._steps: list[tuple[datetime, int, Callable[[], object]]] = []
        self._n = 0

    def at(self, when: datetime, step: Callable[[], object]) -> None:
        if when <= self.cap:
            heapq.heappush(self._steps, (when, self._n, step))
            self._n += 1

    def run(self) -> None:
        while self._steps:
            when, _, step = heapq.heappop(self._steps)
            with pinned(when):
                step()


def _local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone(ZONE)) + timedelta(hours=hh, minutes=mm)


def _page(directory: Path, name: str, trial: str) -> Path:
    """A photographed consent page; `trial`: the protocol's id and version as its title names them."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 900), "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 40), f"CONSENTEMENT ECLAIRE - {trial}", fill="black")
    draw.text((40, 80), f"Patient {name}", fill="black")
    for i, y in enumerate(range(140, 760, 24)):
        draw.line((40, y, 600 - (i * 11) % 140, y), fill=(90, 90, 90), width=2)
    path = directory / f"consent-{name}.jpg"
    img.save(path, "JPEG", quality=85)
    return path


def seed(
    data_dir: Path,
    trial: Model,
    password: str,
    *,
    now: datetime,
    hub_dir: Path | None = None,
    demo_source: tuple[str, str] | None = None,
) -> EngineDemo:
    """Create the demo ward of `trial` (PALM or PALM007) in `data_dir`, as it stands at `now` (the moment
    of seeding, with its zone: the CLI's real clock, a test's pinned instant); see the module doc. What
    is recorded comes from the trial's demo file (`demo_source`: (file name, text) instead of the
    shipped one)."""
    if trial.id not in STORIES:
        raise Refused(f"{trial.id} has no format-2 demo ward here (seeded here: {', '.join(STORIES)})")
    if now.tzinfo is None:
        raise ValueError("`now` must carry its zone")
    demo = read_demo(trial, demo_source)  # refused, each problem at its line, before anything is created
    # The ward's working day: the last whose morning round (randomizations from 07:00, the bedside after)
    # is over. Seeded just after local midnight, "this morning" would lie in the future and its steps be
    # dropped (`Timeline.cap`), leaving a bottle dispensed from a lot never received.
    today = (now.astimezone(zone(ZONE)) - timedelta(hours=MORNING_ROUND_ENDS)).date()
    start = _local(today - timedelta(days=5), 9)
    from wardcrf.workflow.demo import remove_half_made

    # Only a folder this call makes (new, or empty) is cleaned on a refusal: never a site or hub already there.
    folders = [
        (p, p.exists())
        for p in (Path(data_dir), hub_dir)
        if p is not None and (not p.exists() or not any(p.iterdir()))
    ]
    try:
        return _seed(data_dir, trial, demo, password, now, hub_dir, today, start)
    except WardError:  # a ward that refused part of its story is no demo: nothing is left
        for folder, existed in folders:
            remove_half_made(folder, existed)
        raise


def _seed(
    data_dir: Path,
    trial: Model,
    demo: demo_file.DemoFile,
    password: str,
    now: datetime,
    hub_dir: Path | None,
    today: date,
    start: datetime,
) -> EngineDemo:
    with tempfile.TemporaryDirectory(prefix="wardcrf-demo-") as tmp_name:
        tmp = Path(tmp_name)
        with pinned(start):
            made = Site.init(
                Path(data_dir),
                site=SITE,
                device_name="etc-laptop1",
                admin="admin",
                password=password,
                admin_full_name="Site Administrator",
                zone_name=ZONE,
                protocol_file=trial,
            )
            result = EngineDemo(Path(data_dir), made.recovery_key)
            _people(made.site, password)
            _list_from_hub(made.site, trial, password, hub_dir or tmp / "hub", tmp)
        with pinned(now):  # the sign-ins and the hub's import: at the moment of seeding, as the steps before
            sessions = {u: made.site.unlock(u, password) for u in ("clinician", "investigator", "pharmacist")}
            try:
                timeline = Timeline(cap=now)
                story = _Story(trial, demo, sessions, password, tmp, timeline, result, today)
                story.plan()
                timeline.run()
                result.events = int(sessions["clinician"].store.scalar("SELECT count(*) FROM events"))
            finally:
                for s in sessions.values():
                    s.close()
            if hub_dir is not None:
                result.hub_events = _feed_hub(made.site, hub_dir, password, tmp)
    return result


def _people(site: Site, password: str) -> None:
    admin = site.unlock("admin", password)
    try:
        for username, full_name, role in USERS:
            users.add_user(admin, username, full_name, role, password)
    finally:
        admin.close()


def _list_from_hub(site: Site, trial: Model, password: str, hub_dir: Path, tmp: Path) -> None:
    """The trial's hub registers the laptop and issues it an allocation list, imported on the ward."""
    from wardcrf.randomization import service

    h = hub.init(hub_dir, admin="admin", password=password, protocol_file=trial, zone_name=ZONE).site
    hs = h.unlock("admin", password)
    ws = site.unlock("admin", password)
    try:
        users.add_user(hs, "coordinator", "Olivier Mutombo", "coordinator", password)
        registry.register_device(hs, registry.own_card(ws.store))
        registry.set_hub(ws, registry.own_card(hs.store))
        device = registry.own_card(ws.store).device
    finally:
        ws.close()
        hs.close()
    # The investigator's first sign-in makes the laptop's unblinding key; a bundle takes it to the hub.
    site.unlock("investigator", password).close()
    ws = site.unlock("admin", password)
    hs = h.unlock("admin", password)
    try:
        out = tmp / "outbox"
        out.mkdir(exist_ok=True)
        for item in hub.import_files(hs, ward.export(ws, out).files):
            if item.result is None or not item.result.ok:
                raise Refused(f"demo hub: bundle {item.path.name} was not applied: {item.refused}")
    finally:
        ws.close()
        hs.close()
    cs = h.unlock("coordinator", password)
    try:
        service.make_list(cs, trial, SITE, device, 8)
    finally:
        cs.close()
    stick = tmp / "stick"
    stick.mkdir(exist_ok=True)
    hs = h.unlock("admin", password)
    try:
        files = hub.outbound_files(hs, device, stick)
    finally:
        hs.close()
    ws = site.unlock("admin", password)
    try:
        for f in files:
            ward.import_file(ws, f)
    finally:
        ws.close()


def _feed_hub(site: Site, hub_dir: Path, password: str, tmp: Path) -> int:
    """The ward's bundles since the list, imported at the hub (`--hub`)."""
    h = Site.open(hub_dir)
    ws = site.unlock("admin", password)
    hs = h.unlock("admin", password)
    try:
        out = tmp / "outbox-end"
        out.mkdir(exist_ok=True)
        exported = ward.export(ws, out)
        for item in hub.import_files(hs, exported.files):
            if item.result is None or not item.result.ok:
                raise Refused(f"demo hub: bundle {item.path.name} was not applied: {item.refused}")
            if item.result.receipt is not None:
                _name, data, sig = item.result.receipt
                ward.apply_receipt(ws, data, sig)
        return int(exported.events)
    finally:
        ws.close()
        hs.close()


STORIES = ("PALM", "PALM007")
"""The trials whose story is told here: PALM's infusions, PALM007's capsules (each with its demo file)."""
STEPS = frozenset(
    {"consent", "screening", "enrollment", "round", "pre_infusion", "infusion", "post_infusion", "dose"}
)
"""The moments of the story a demo file's records are entered at (its `step`)."""
GIVEN = ("signed", "consent_page", "date", "dob", "time", "dose_number", "kit", "lot", "dose", "start", "end")
"""What the story gives a record's placeholders, besides the patient's own values."""


def read_demo(trial: Model, source: tuple[str, str] | None = None) -> demo_file.DemoFile:
    """The trial's demo file, checked against its forms (`DemoFileError` naming each problem at its line)."""
    from wardcrf.workflow import demo as ward_demo

    ward_p = ward_demo.ward_protocol(trial)
    if source is None:
        text = demo_file.shipped_source(trial.id)
        if text is None:
            raise Refused(
                f"{trial.id} has no demo file ({demo_file.DIRECTORY}/{demo_file.name_for(trial.id)})"
            )
        source = (f"wardcrf/protocols/{demo_file.DIRECTORY}/{demo_file.name_for(trial.id)}", text)
    return demo_file.read(
        source[1],
        source[0],
        ward_p,
        given=lambda _p: dict.fromkeys(GIVEN, ""),
        steps=STEPS,
        users=frozenset({"clinician", "investigator"}),
    )


class _Story:
    """Each patient's stay, planned on the timeline (randomization plans the administrations)."""

    def __init__(
        self,
        trial: Model,
        demo: demo_file.DemoFile,
        sessions: dict[str, Session],
        password: str,
        tmp: Path,
        timeline: Timeline,
        result: EngineDemo,
        today: date,
    ) -> None:
        self.trial, self.demo, self.s, self.password, self.tmp = trial, demo, sessions, password, tmp
        self.timeline, self.result, self.today = timeline, result, today
        self.passwords = {u: password for u, _n, _r in USERS}
        self.vials: dict[str, int] = {}  # product -> vials of its lot used so far
        self.stored: dict[str, datetime] = {}  # lot -> when its kits went into their unit
        self.lot_of: dict[str, str] = {}  # a vial or dispensed bottle -> its lot
        self.patients: dict[str, Mapping[str, Any]] = {}  # participant -> the demo file's patient

    @property
    def palm(self) -> bool:
        return self.trial.id == "PALM"

    def plan(self) -> None:
        patients = self.demo.participants
        if self.palm:
            self.timeline.at(_local(self.today - timedelta(days=4), 10), self._vials_arrive)
        for n, pt in enumerate(patients, start=1):
            day = self.today - timedelta(days=int(pt["day"]))
            base = _local(day, 8 if self.palm else 7, 5 * n)
            if (
                pt["day"] == 0
            ):  # this morning's patients are seen before the moment of seeding, whatever the hour
                base = min(base, self.timeline.cap - timedelta(minutes=90 - 5 * n))
            self.timeline.at(base, functools.partial(self._admit, n, pt, base))

    # -- the cold chain --------------------------------------------------------------------------
    VIALS = 12  # per product

    def _lot(self, product: str = "", kit: str = "") -> str:
        """The lot a product's vials (PALM) or a patient's bottle (PALM007) come in: the demo file's
        `[supply] lot`, its `{product}` / `{kit}` the product's code / the bottle's kit number."""
        lot = str(self.demo.supply.get("lot", "LOT-{product}{kit}"))
        return lot.replace("{product}", product).replace("{kit}", kit)

    def _kit(self, product: str, k: int) -> str:
        """A vial's id: the demo file's `[supply] kit_prefix`, its product and its number."""
        return f"{self.demo.supply.get('kit_prefix', 'KIT-')}{product}-{k:04d}"

    def _vials_arrive(self) -> None:
        """One lot of each product, each received into the unit its storage range asks for."""
        from wardcrf.coldchain import scenario

        for product in sorted({str(p["code"]) for p in self.trial.data.get("products", ())}):
            lot = self._lot(product)
            got = scenario.receive_and_store(
                self.s["pharmacist"],
                self.passwords,
                lot=lot,
                kits=[self._kit(product, k) for k in range(1, self.VIALS + 1)],
                received_at=now_utc() - timedelta(minutes=20),
                workdir=self.tmp,
                product=product,
            )
            self.stored[lot] = got.stored_at

    def _vial(self, pid: str) -> str:
        """The next vial of the product the participant's arm gives (its lot noted)."""
        arm = self.result.arms[pid]
        product = self.trial.regimens_of(arm)[0].administrations[0].product
        self.vials[product] = self.vials.get(product, 0) + 1
        kit = self._kit(product, self.vials[product])
        self.lot_of[kit] = self._lot(product)
        return kit

    def _to_bedside(self, kit: str, start: datetime, pid: str) -> None:
        from wardcrf.coldchain import scenario

        self.timeline.at(
            min(start - timedelta(minutes=14), self.timeline.cap - timedelta(minutes=1)),
            lambda: scenario.to_bedside(
                self.s["pharmacist"],
                self.passwords,
                kit,
                start,
                bedside=self.s["clinician"],
                workdir=self.tmp,
                since=self.stored[self.lot_of[kit]] - timedelta(minutes=30),
                participant=pid,
            ),
        )

    # -- a patient --------------------------------------------------------------------------------
    def _submit(self, form: str, pid: str | None, values: dict[str, Any], who: str = "clinician") -> Any:
        from wardcrf.workflow import service

        return service.submit(
            self.s[who], form, values, participant=pid, password_for=lambda _u: self.password
        )

    def _step(
        self,
        step: str,
        pid: str | None,
        pt: Mapping[str, Any],
        day: date,
        form: str | None = None,
        **given: Any,
    ) -> Any:
        """Enter the demo file's records of `step` (of `form` only, when given) for a patient on `day`,
        their values filled in from the patient's and what the story gives; the last one's answer."""
        scope = demo_file.Scope(day, day, zone(ZONE), {**self.patients.get(pid or "", {}), **pt, **given})
        done = None
        for rec in self.demo.at_step(step):
            if form is None or rec.form == form:
                values = dict(demo_file.values_of(rec, scope))
                try:
                    done = self._submit(rec.form, pid, values, who=rec.by)
                except WardError as exc:  # the ward refused the file's values: its line and the patient
                    raise demo_file.DemoFileError(
                        [f"{rec.where}: {pid or 'a new patient'}: {rec.form}: {exc}"]
                    ) from None
        return done

    def _admit(self, n: int, pt: Mapping[str, Any], at: datetime) -> None:
        page = _page(self.tmp, f"{n:03d}", f"{self.trial.id} v{self.trial.version}")
        signed = at - timedelta(minutes=10)
        day = at.date()
        done = self._step("consent", None, pt, day, signed=signed.isoformat(), consent_page=f"@{page}")
        pid = (done.subject or "").removeprefix("participant:")
        self.result.participants.append(pid)
        self.patients[pid] = pt
        self.timeline.at(at + timedelta(minutes=15), lambda: self._screen(pid, pt, day))
        if pt.get("eligible", True) and pt.get("enrolled", True):
            self.timeline.at(
                at + timedelta(minutes=25),
                lambda: self._step("enrollment", pid, pt, day, date=day.isoformat()),
            )
            self.timeline.at(at + timedelta(minutes=30), lambda: self._randomize(pid))

    def _screen(self, pid: str, pt: Mapping[str, Any], day: date) -> None:
        weight = int(pt["weight"])
        born = date(day.year - int(pt["age"]), 1 + (len(pid) * 7 + weight) % 12, 1 + weight % 27)
        self._step("screening", pid, pt, day, date=day.isoformat(), dob=born.isoformat())

    def _randomize(self, pid: str) -> None:
        from wardcrf.randomization import service

        strata = self.patients[pid].get("strata")  # the patient's stratum, as the demo file gives it
        got = service.allocate(self.s["investigator"], pid, dict(strata) if strata else None)
        self.result.arms[pid] = got.arm or f"kit {got.kit}"
        self._rounds(pid)
        if self.palm:
            self._plan_infusions(pid)
        else:
            self._plan_doses(pid, str(got.kit))

    def _rounds(self, pid: str) -> None:
        """The daily ward round of every inpatient day before the local one (the calendar visits counted from
        randomization, `engine.visits.dated`): the forms they require, at 16:00, after the day's doses."""
        from wardcrf.engine import visits

        local_day = self.timeline.cap.astimezone(zone(ZONE)).date()
        rounds = {r.form for r in self.demo.at_step("round")}  # what the demo file records on a round
        for occ in visits.dated(self.trial, {"randomization": now_utc()}, zone(ZONE), arm=None):
            if occ.visit.anchor != "randomization" or occ.closes >= local_day:
                continue
            at = _local(occ.opens, 16)
            for entry in occ.visit.forms:
                if entry.required and entry.form in rounds:
                    self.timeline.at(at, functools.partial(self._round, pid, entry.form, at))

    def _round(self, pid: str, form: str, at: datetime) -> None:
        self._step("round", pid, {}, at.date(), form, date=at.date().isoformat(), time=at.isoformat())

    def _slots(self, pid: str) -> list[AdministrationLine]:
        from wardcrf.workflow import status

        return list(status.summary(self.s["clinician"].store, pid)["administrations"])

    def _plan_infusions(self, pid: str) -> None:
        """Every infusion due on a day before the local one (the moment of seeding's, not the working day's:
        before the morning round is over, yesterday's infusions were given yesterday) given at 11:00 on its
        day, vitals before and after; those of the local day left due, the vial at the bedside."""
        local_day = self.timeline.cap.astimezone(zone(ZONE)).date()
        for item in self._slots(pid):
            due = datetime.fromisoformat(item["due"]).astimezone(zone(ZONE))
            n = int(item["number"])
            kit = self._vial(pid)
            if due.date() < local_day:
                start = _local(due.date(), 11)
                self._to_bedside(kit, start, pid)
                self._infusion(pid, n, kit, start)
            elif due.date() == local_day:
                self._to_bedside(kit, self.timeline.cap + timedelta(minutes=10), pid)
                self.result.ready[pid] = kit
                break  # given at the bedside, with the guided administration

    def _infusion(self, pid: str, n: int, kit: str, start: datetime) -> None:
        end = start + timedelta(hours=1, minutes=30)
        day = start.astimezone(zone(ZONE)).date()

        def pre() -> None:
            at = (start - timedelta(minutes=20)).isoformat()
            self._step("pre_infusion", pid, {}, day, dose_number=n, time=at)

        def given() -> None:
            from wardcrf.workflow import status

            nd = status.summary(self.s["clinician"].store, pid)
            item = next(a for a in nd["administrations"] if a["number"] == n)
            self._step(
                "infusion",
                pid,
                {},
                day,
                dose_number=n,
                kit=kit,
                lot=self.lot_of[kit],
                dose=self._prescribed(pid, item),
                start=start.isoformat(),
                end=end.isoformat(),
            )

        def post() -> None:
            at = (end + timedelta(minutes=20)).isoformat()
            self._step("post_infusion", pid, {}, day, dose_number=n, time=at)

        self.timeline.at(start - timedelta(minutes=15), pre)
        self.timeline.at(end + timedelta(minutes=5), given)
        self.timeline.at(end + timedelta(minutes=25), post)

    def _prescribed(self, pid: str, item: AdministrationLine) -> Any:
        from wardcrf.workflow import administration_visit

        p = administration_visit.plan(self.s["clinician"], pid)
        assert p.number == item["number"], (p.number, item)
        return p.prescribed["value"] if p.prescribed else None

    def _plan_doses(self, pid: str, kit: str) -> None:
        """The bottle received from the trial's pharmacy and, for a patient of an earlier day, handed to the
        bedside for the first dose; every dose of an earlier day given with food. A bottle of this morning
        waits in the freezer: the pharmacist hands it over (the cold chain screens) before its first dose."""
        slots = self._slots(pid)
        moment = now_utc()

        def arrive() -> None:
            from wardcrf.coldchain import scenario

            got = scenario.receive_and_store(
                self.s["pharmacist"],
                self.passwords,
                lot=self._lot(kit=kit),
                kits=[kit],
                received_at=moment,
                workdir=self.tmp,
            )
            self.stored[self._lot(kit=kit)] = got.stored_at

        self.lot_of[kit] = self._lot(kit=kit)
        self.timeline.at(moment + timedelta(minutes=30), arrive)
        first = True
        for item in slots:
            due = datetime.fromisoformat(item["due"])
            if due + self._window_after() >= self.timeline.cap:
                continue  # its window is still open (or ahead): left due for the ward
            taken = (
                max(due + timedelta(minutes=10), moment + timedelta(minutes=90))
                if first
                else due + timedelta(minutes=10)
            )
            if first:
                self._to_bedside(kit, taken, pid)
                first = False
            self.timeline.at(
                taken + timedelta(minutes=5),
                functools.partial(self._dose, pid, kit, taken),
            )

    def _window_after(self) -> timedelta:
        return max(a.window[1] for r in self.trial.regimens.values() for a in r.administrations)

    def _dose(self, pid: str, kit: str, taken: datetime) -> None:
        from wardcrf.workflow import administration_visit

        p = administration_visit.plan(self.s["clinician"], pid)
        self._step(
            "dose",
            pid,
            {},
            taken.astimezone(zone(ZONE)).date(),
            kit=kit,
            time=taken.isoformat(),
            dose=p.prescribed["value"] if p.prescribed else None,
        )
