"""A ward started on a shipped format-2 trial (PALM, PALM007) and its people recording that trial's own forms.

For tests whose subject needs a participant of the trial itself (a list made from PALM007's design is
taken by a PALM007 participant; the engine refuses an arm the participant's version does not plan):
`template(...)` starts a site on the shipped file with one user per role (and a second doctor), and
`Recorder` records consent (as many witnesses as the file's `[consent] witnesses`), a screening that
passes the trial's eligibility criteria, enrollment, and (where declared below) one administration of
the trial's first regimen at its scheduled slot. The values per trial are in `ELIGIBLE`/`GIVEN`: a test
states only what it changes (`recorder.screen(pid, sex="F")`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from site_users import PASSWORD, ROLE_USERS

from wardcrf import users, workflow
from wardcrf.engine import model
from wardcrf.site import Session, Site

ZONE = "Africa/Kinshasa"
KIN = ZoneInfo(ZONE)

ELIGIBLE: dict[str, Callable[[date], dict[str, str]]] = {
    "PALM": lambda day: {
        "date": day.isoformat(),
        "age": "34",
        "sex": "M",
        "pregnant": "no",
        "weight": "62",
        "symptom_onset": (day - timedelta(days=3)).isoformat(),
        "ebov_pcr_positive": "yes",
        "ct_np": "20",
        "prior_ebov_therapeutic": "no",
    },
    "PALM007": lambda day: {
        "date": day.isoformat(),
        "age": "29",
        "sex": "M",
        "weight": "62",
        "pregnant": "not_applicable",
        "pcr_positive": "yes",
        "pcr_date": (day - timedelta(days=1)).isoformat(),
        "active_lesion": "yes",
        "contraception": "agrees",
        "inpatient_agreed": "yes",
        "hb": "11.2",
        "meglitinide": "no",
        "midazolam_planned": "no",
        "other_investigational": "no",
        "investigator_excludes": "no",
    },
}
"""A screening each trial's criteria accept, on screening day `day` (a 62 kg adult)."""

GIVEN: dict[str, Callable[[datetime], dict[str, str]]] = {
    "PALM007": lambda when: {
        "time": when.isoformat(),
        "dose_mg": "600",  # 600 mg for 40-120 kg
        "preparation": "whole",
        "with_food": "yes",
    },
}
"""An administration given as prescribed at `when` (its form's fields besides `kit_id`), per trial."""


VARIANTS: dict[str, Callable[[], str]] = {
    "palm-levels": lambda: _gate_before(model.shipped_source("palm.toml"), "eligible", '["enroll"]'),
    "palm007-kit-per-dose": lambda: model.shipped_source("palm007.toml").replace(
        'kit = { use = "course" }', 'kit = { use = "administration" }'
    ),
}
"""Test trials derived from a shipped one, by name. `palm-levels`: PALM whose eligibility gate is before
enrollment only, so a participant consented and not yet screened may be randomized and the stratification
factors computed from screening are found missing (a ward's version may randomize before screening ends).
`palm007-kit-per-dose`: PALM007 whose products are one kit per administration, not one bottle per course."""


def _gate_before(source: str, code: str, before: str) -> str:
    marker = f'code = "{code}"\nkind = "eligibility"\nbefore = '
    at = source.index(marker) + len(marker)
    end = source.index("\n", at)
    return source[:at] + before + source[end:]


def trial_model(name: str) -> model.Model:
    """The shipped trial `name` (palm, palm007) or a test variant of one (`VARIANTS`)."""
    if name in VARIANTS:
        return model.parse(VARIANTS[name](), f"{name}.toml")
    return model.shipped(f"{name}.toml")


def start(data_dir: Path, protocol: str) -> Site:
    """`wardcrf init --protocol NAME` for site WUH01 in Kinshasa, with one user per role and `clinician2`."""
    made = Site.init(
        data_dir,
        site="WUH01",
        device_name="lap1",
        admin="admin",
        password=PASSWORD,
        admin_full_name="Ada Admin",
        zone_name=ZONE,
        protocol_file=trial_model(protocol),
    )
    s = made.site.unlock("admin", PASSWORD)
    try:
        for role in ROLE_USERS:
            users.add_user(s, role, f"{role.title()} User", role, PASSWORD)
        users.add_user(s, "clinician2", "Second Doctor", "clinician", PASSWORD)
        s.store.checkpoint()
    finally:
        s.close()
    return made.site


class Templates:
    """One started ward per shipped trial per test run (key derivations are slow), copied per test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Path] = {}

    def copy(self, protocol: str, data_dir: Path) -> Site:
        import shutil

        if protocol not in self._made:
            self._made[protocol] = start(self.root / protocol / "site", protocol).data_dir
        shutil.copytree(self._made[protocol], data_dir, ignore=shutil.ignore_patterns("*.lock"))
        return Site.open(data_dir)


def ward_marked(request: Any) -> str | None:
    """The trial a test's ward is started on: `@pytest.mark.ward("palm007")`, or None (the fixture site)."""
    marker = request.node.get_closest_marker("ward")
    return None if marker is None else str(marker.args[0])


def photo_file(directory: Path, text: str) -> Path:
    """A small JPEG of a signed page, different for every `text` (Pillow)."""
    from PIL import Image, ImageDraw

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (hashlib.sha256(text.encode()).hexdigest()[:12] + ".jpg")
    img = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(img).text((10, 10), text, fill="black")
    img.save(path, "JPEG", quality=80)
    return path


def photo(directory: Path, text: str) -> str:
    """`@path` of `photo_file`, as a photo field takes it."""
    return f"@{photo_file(directory, text)}"


class Recorder:
    """The ward's people recording its trial's forms through the services the CLI's `submit` calls."""

    WITNESSES = ("investigator", "clinician2")

    def __init__(self, session_for: Callable[[str], Session], pages: Path) -> None:
        self._open = session_for
        self._sessions: dict[str, Session] = {}
        self.pages = pages
        self._photos = 0

    def session(self, user: str) -> Session:
        if user not in self._sessions:
            self._sessions[user] = self._open(user)
        return self._sessions[user]

    clin = property(lambda self: self.session("clinician"))

    @property
    def trial(self) -> model.Model:
        from wardcrf import protocol

        m = protocol.active(self.clin.store).engine
        assert m is not None, "a ward started on a format-2 trial"
        return m

    def submit(self, form: str, participant: str | None = None, **values: Any):
        return workflow.submit(
            self.clin, form, values, participant=participant, password_for=lambda _user: PASSWORD
        )

    def consent(self, day: date | None = None, **kw: Any) -> str:
        day = day or days_ago(10)
        self._photos += 1
        witnesses = int(self.trial.data.get("consent", {}).get("witnesses", 1))
        values: dict[str, Any] = {
            "consenter": "participant",
            "form_version": "1.0",
            "photos": photo(self.pages, f"consent page {self._photos}"),
            "time": datetime.combine(day, time(0, 30), KIN).isoformat(),  # early: `day` may be today
            **{f"witness_{i + 1}": who for i, who in enumerate(self.WITNESSES[:witnesses])},
        }
        values.update(kw)
        return self.submit("consent", **values).subject.removeprefix("participant:")

    def screen(self, pid: str, day: date | None = None, **kw: Any):
        values: dict[str, Any] = ELIGIBLE[self.trial.id](day or days_ago(10))
        values.update(kw)
        return self.submit("screening", participant=pid, **values)

    def enroll(self, pid: str, day: date):
        return self.submit("enrollment", participant=pid, date=day.isoformat())

    def eligible(self, day: date | None = None, **screening: Any) -> str:
        """Consented and screened eligible on `day` (default ten days ago): randomizable, not yet enrolled."""
        day = day or days_ago(10)
        pid = self.consent(day)
        self.screen(pid, day, **screening)
        return pid

    def enrolled(self, day: date | None = None, **screening: Any) -> str:
        """Consented, screened eligible and enrolled the same day (default ten days ago)."""
        day = day or days_ago(10)
        pid = self.eligible(day, **screening)
        self.enroll(pid, day)
        return pid

    def slot(self, pid: str, n: int):
        """The participant's `n`-th scheduled administration (1-based) from their anchors and arm."""
        from wardcrf.engine import due, schedule
        from wardcrf.randomization import levels
        from wardcrf.workflow.base import get_participant
        from wardcrf.workflow.engine_rules import plan_inputs

        store = self.clin.store
        anchors, arm = plan_inputs(store, self.trial, get_participant(store, pid), ZONE)
        facts = due.conditions(self.trial, levels.snapshot(store, pid), arm)  # the weight band, as recorded
        plan = schedule.plan(self.trial, anchors, arm=arm, zone=ZONE, conditions=facts)
        slots = sorted((s for adms in plan.values() for _adm, ss in adms for s in ss), key=lambda s: s.due)
        return slots[n - 1]

    def give(self, pid: str, n: int, kit: str, clock: Callable[[datetime], None]):
        """Administration `n` with `kit` at its slot's due time, the app's clock (`clock`) just after it; the
        kit's cold chain complete first (the custody gate), in one transaction with the administration: a
        refused one leaves no trace of its kit's preparation either. The form is the trial's first regimen's."""
        due = self.slot(pid, n).due
        clock(due + timedelta(minutes=10))
        adm = self.trial.regimens_of(self.trial.arms[0].code)[0].administrations[0]
        self.storage(adm.product)
        with self.clin.store.transaction():
            self.custody(kit, due, adm.product)
            return self.submit(
                str(adm.record["form"]), participant=pid, kit_id=kit, **GIVEN[self.trial.id](due)
            )

    def given(self, pid: str) -> int:
        """How many records of the trial's first administration form the participant has."""
        adm = self.trial.regimens_of(self.trial.arms[0].code)[0].administrations[0]
        return int(
            self.clin.store.scalar(
                "SELECT COUNT(*) FROM records WHERE subject = ? AND form = ?",
                (f"participant:{pid}", str(adm.record["form"])),
            )
        )

    def storage(self, product: str) -> None:
        """The monitored unit `product` is stored in (registered once, by the pharmacist)."""
        from wardcrf.coldchain import scenario

        scenario.ensure_unit(self.session("pharmacist"), scenario.product_of(self.clin, product))

    def custody(self, kit: str, start: datetime, product: str) -> None:
        """A complete cold chain for `kit` up to the bedside before `start` (nothing for a kit already known;
        its storage unit registered first, `storage`)."""
        from wardcrf.coldchain import scenario, services
        from wardcrf.errors import UsageError

        clin = self.clin
        try:
            kit_id = services.scanned_id(clin.store, kit)
        except UsageError:
            return
        if clin.store.one("SELECT 1 FROM cc_kits WHERE kit_id = ?", (kit_id,)):
            return
        scenario.ready_kit(
            clin,
            {u: PASSWORD for u in ("clinician", "clinician2", "investigator")},
            kit_id,
            start,
            clinician="clinician2",
            workdir=self.pages,
            bedside=clin,
            product=product,
        )

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()


def days_ago(n: int) -> date:
    """`n` days before today at the ward, by the app's clock (a test may have set it: `WARDCRF_FAKE_NOW`)."""
    from wardcrf.clock import now_utc

    return now_utc().astimezone(KIN).date() - timedelta(days=n)
