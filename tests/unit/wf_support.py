"""Helpers for workflow tests: a ward with its people, and one-line clinical steps.

Dates are relative to the real today (in the past), so nothing depends on
the wall clock: a participant enrolled `days_ago` days ago has dose N due on
day N at 09:00 Asia/Shanghai.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from site_users import PASSWORD
from trial_staff import photo_file

from wardcrf import users, workflow
from wardcrf.site import Session, Site

TZ = ZoneInfo("Asia/Shanghai")


def today() -> date:
    return datetime.now(TZ).date()


def at(day: date, hh: int = 9, mm: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).isoformat()


def pw(_user: str) -> str:
    return PASSWORD


def on_format_two(staff: Staff) -> bool:
    """Whether the ward runs a format-2 version of its own (MEXCOVID's re-encoding under `pytest
    --mexcovid-engine`): its summaries then carry the keys their types declare optional for format 2
    (`status.FormatTwoExtras`, `NextDose.what`/`regimen`, a deviation's `code`/`number`), besides format 1's."""
    from wardcrf import protocol

    return protocol.active(staff.clin.store).engine is not None


class Staff:
    """The ward's people as sessions, opened on first use (each unlock costs a key derivation)."""

    def __init__(self, session_for, tmp: Path) -> None:
        self._open = session_for
        self._sessions: dict[str, Session] = {}
        self.tmp = tmp
        self._pages = 0

    def page(self) -> str:
        """`@path` of a freshly photographed (generated) consent page."""
        self._pages += 1
        return "@" + str(photo_file(self.tmp, f"consent page {self._pages}"))

    def session(self, user: str) -> Session:
        if user not in self._sessions:
            self._sessions[user] = self._open(user)
        return self._sessions[user]

    clin = property(lambda self: self.session("clinician"))
    inv = property(lambda self: self.session("investigator"))
    dsmg = property(lambda self: self.session("dsmg"))
    aud = property(lambda self: self.session("auditor"))
    admin = property(lambda self: self.session("admin"))

    def submit(self, form: str, who: Session | None = None, **kw: Any):
        participant = kw.pop("participant", None)
        reason = kw.pop("reason", None)
        confirm = kw.pop("confirm", False)
        return workflow.submit(
            who or self.clin,
            form,
            kw,
            participant=participant,
            reason=reason,
            confirm=confirm,
            password_for=pw,
        )

    def consent(self, **kw: Any) -> str:
        values = {
            "consenter": "participant",
            "form_version": "1.0",
            "witness_1": "investigator",
            "witness_2": "clinician2",
            "photos": self.page(),
            "time": at(today() - timedelta(days=40)),
        }
        values.update(kw)
        event = self.submit("consent", **values)
        return event.subject.removeprefix("participant:")

    def screen(self, pid: str, **kw: Any):
        values = {
            "date": (today() - timedelta(days=30)).isoformat(),
            "dob": "1965-05-01",
            "sex": "M",
            "pcr_confirmed": "yes",
            "severity": "severe",
        }
        values.update(kw)
        return self.submit("screening", participant=pid, **values)

    def enroll(self, pid: str, day: date):
        return self.submit("enrollment", participant=pid, date=day.isoformat())

    def skin(self, pid: str, day: date, result: str = "negative"):
        return self.submit("skin_test", participant=pid, time=at(day, 15), result=result)

    def dose(
        self,
        pid: str,
        n: int,
        day: date,
        *,
        hh: int = 9,
        mm: int = 0,
        kit: str | None = None,
        **kw: Any,
    ):
        values = {
            "kit_id": kit or f"KIT-{pid}-{n}",
            "lot": "LOT-A1",
            "particles": "2.0e8",
            "volume": "6",
            "start": at(day, hh, mm),
            "end": at(day, hh, mm + 30 if mm < 30 else 59),
        }
        values.update(kw)
        # One transaction: a refused dose leaves no trace of its kit's preparation either.
        self.freezer()
        with self.clin.store.transaction():
            self.custody(str(values.get("kit_id") or ""), str(values["start"]))
            return self.submit("dose", participant=pid, **values)

    def freezer(self) -> None:
        """The monitored freezer kits are stored in (registered once, by the pharmacist)."""
        from wardcrf.coldchain import scenario, services

        if self.clin.store.one("SELECT 1 FROM cc_units WHERE unit_id = ?", (scenario.UNIT,)) is None:
            services.add_unit(self.session("pharmacist"), scenario.UNIT, name="freezer", location="ward")

    def custody(
        self, kit: str, start: str, product: str | None = None, participant: str | None = None
    ) -> None:
        """Give a kit a complete cold chain up to the bedside before its dose (the custody gate).

        A kit already known keeps its record (reuse is the workflow's refusal to test); an id
        the scanner rules reject is left for the dose form to refuse.
        """
        from wardcrf.coldchain import scenario, services
        from wardcrf.errors import UsageError

        clin = self.clin
        try:
            kit_id = services.scanned_id(clin.store, kit)
        except UsageError:
            return
        if clin.store.one("SELECT 1 FROM cc_kits WHERE kit_id = ?", (kit_id,)):
            return
        scenario.ensure_unit(self.session("pharmacist"), scenario.product_of(clin, product))
        signers = {u: PASSWORD for u in ("clinician", "clinician2", "investigator")}
        scenario.ready_kit(
            clin,
            signers,
            kit_id,
            datetime.fromisoformat(start),
            clinician="clinician2",
            workdir=self.tmp,
            bedside=clin,
            product=product,
            participant=participant,
        )

    def continue_(self, pid: str):
        return self.submit(
            "dsmg_decision",
            who=self.dsmg,
            participant=pid,
            decision="continue",
            rationale="no safety concern in the sentinel's data",
        )

    def enrolled_participant(self, days_ago: int = 10) -> tuple[str, date]:
        """Consented, screened, enrolled `days_ago` days ago, skin test negative; returns (id, enrollment day)."""
        pid = self.consent()
        self.screen(pid)
        day0 = today() - timedelta(days=days_ago)
        self.enroll(pid, day0)
        self.skin(pid, day0)
        return pid, day0


def ready_kit_on(
    site: Site, kit: str, start: str, tmp: Path, product: str | None = None, participant: str | None = None
) -> None:
    """Complete cold chain for `kit` (of `product`, default the protocol's first) before a dose at
    `start`, on a site the CLI tests drive."""
    opened: list[Session] = []

    def open_(user: str) -> Session:
        opened.append(Site.open(site.data_dir).unlock(user, PASSWORD))
        return opened[-1]

    try:
        ward = Staff(open_, tmp)
        ward.freezer()
        ward.custody(kit, start, product, participant)
    finally:
        for s in opened:
            s.close()


def make_ward(session_for, tmp: Path) -> Staff:
    return Staff(session_for, tmp)


def _copy_site(src: Path, dst: Path) -> Site:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(dst)


@pytest.fixture(scope="session")
def _wf_template(_template_site, tmp_path_factory) -> tuple[Path, str]:
    """The shared template site plus a second ward doctor (consent needs three distinct doctors)."""
    base, recovery_key = _template_site
    site = _copy_site(base, tmp_path_factory.mktemp("wf") / "site")
    admin = site.unlock("admin", PASSWORD)
    try:
        users.add_user(admin, "clinician2", "Second Doctor", "clinician", PASSWORD)
        admin.store.checkpoint()
    finally:
        admin.close()
    return site.data_dir, recovery_key


@pytest.fixture(scope="session")
def _wf_sentinel_template(_wf_template, tmp_path_factory) -> tuple[Path, str]:
    """Additionally: WUH01-001 enrolled 10 days ago, negative skin test, DSMG 'continue' recorded."""
    base, recovery_key = _wf_template
    site = _copy_site(base, tmp_path_factory.mktemp("wfs") / "site")
    opened: list[Session] = []

    def open_(user: str) -> Session:
        opened.append(site.unlock(user, PASSWORD))
        return opened[-1]

    try:
        ward = Staff(open_, tmp_path_factory.mktemp("pages"))
        pid, _ = ward.enrolled_participant(10)
        ward.continue_(pid)
        ward.clin.store.checkpoint()
    finally:
        for s in opened:
            s.close()
    return site.data_dir, recovery_key


@pytest.fixture
def site(data_dir: Path, _wf_template) -> Site:
    """Overrides the shared `site`: the template with `clinician2` added."""
    return _copy_site(_wf_template[0], data_dir)


@pytest.fixture
def sentinel_site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


def evening_on_the_ward(monkeypatch: Any) -> None:
    """Pin the app's clock to 20:00 at the ward on `today()`.

    The generated sites record what happened today at the ward's hours (a
    skin test read at 15:00, a morning dose): before 15:00 in Asia/Shanghai
    — after 16:00 UTC — part of that day is still in the future, and the
    app rightly refuses it. Pinned, the tests mean the same at any hour.
    """
    from datetime import time as clock_time

    monkeypatch.setenv("WARDCRF_FAKE_NOW", datetime.combine(today(), clock_time(20, 0), TZ).isoformat())
