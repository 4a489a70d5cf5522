"""A ward ready to dose, built once under the fixed clock (09:00 on 2020-03-16 in the ward).

- WUH01-001 enrolled 2020-03-15: dose 1 is due now (on time).
- WUH01-002 enrolled 2020-03-14: dose 1 was due yesterday (giving it now is late).
- Kits KIT-A1 and KIT-L1 (lot LOT-A) are thawed at the bedside for a dose at 08:50;
  KIT-Q1 (lot LOT-Q) sat in the freezer during an excursion and awaits a disposition.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from tui_helpers import PASSWORD, enroll
from wardcrf.screens.app import WardApp, make_app
from wardcrf.screens.ward import Ward

from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"
P1, P2 = "WUH01-001", "WUH01-002"


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


@pytest.fixture(scope="session")
def _dose_template(_template_site, tmp_path_factory) -> Path:
    from wardcrf import workflow
    from wardcrf.coldchain import scenario, services

    base, _ = _template_site
    data = tmp_path_factory.mktemp("dose-template") / "site"
    shutil.copytree(base, data, ignore=shutil.ignore_patterns("*.lock"))
    work = tmp_path_factory.mktemp("dose-work")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        site = Site.open(data)
        pid = enroll(site, work, enrolled_on="2020-03-15")
        assert pid == P1
        dsmg = site.unlock("dsmg", PASSWORD)
        try:
            workflow.submit(
                dsmg,
                "dsmg_decision",
                {"decision": "continue", "rationale": "sentinel reviewed"},
                participant=P1,
            )
        finally:
            dsmg.close()
        assert enroll(site, work, enrolled_on="2020-03-14") == P2
        ph = site.unlock("pharmacist", PASSWORD)
        try:
            services.add_unit(ph, scenario.UNIT, name="-20 °C freezer", location="ward 3")
        finally:
            ph.close()
        clin = site.unlock("clinician", PASSWORD)
        try:
            signers = {u: PASSWORD for u in ("clinician", "clinician2", "investigator")}
            common = {"clinician": "clinician2", "workdir": work, "bedside": clin}
            scenario.ready_kits(
                clin,
                signers,
                lot="LOT-Q",
                kits=["KIT-Q1"],
                dose_times=[_local("2020-03-16T08:50")],
                received_at=_local("2020-03-14T10:00"),
                excursion=(_local("2020-03-14T14:00"), 30),
                **common,
            )
            scenario.ready_kits(
                clin,
                signers,
                lot="LOT-A",
                kits=["KIT-A1", "KIT-L1"],
                dose_times=[_local("2020-03-16T08:50"), _local("2020-03-16T08:50")],
                **common,
            )
            clin.store.checkpoint()
        finally:
            clin.close()
    return data


@pytest.fixture
def dose_site(_dose_template, tmp_path) -> Site:
    data = tmp_path / "dose-site"
    shutil.copytree(_dose_template, data, ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(data)


@pytest.fixture
def dose_app(dose_site):
    """`dose_app("clinician", language="zh")` -> an app signed in on the dose site."""

    def make(user: str, **kwargs) -> WardApp:
        ward = Ward(dose_site, dose_site.unlock(user, PASSWORD))
        return make_app(dose_site.data_dir, ward=ward, **kwargs)

    return make


class Driver:
    """How a test reaches the next dose's fields in the `AdministrationWizard` MEXCOVID's regimen drives (scan,
    vitals before, times, vitals after, the event check, review: six steps). A test asks for a part ("dose",
    "pre", "post", "check") and a field."""

    def __init__(self, wiz) -> None:
        self.wiz = wiz

    def _prefix(self, part: str) -> str:
        if part == "dose":
            return "adm-"
        keys = [s.key for s in self.wiz.steps]
        check = self.wiz.plan.check
        check_key = f"after:{check.code}" if check is not None else None
        if part == "pre":
            i = next(i for i, k in enumerate(keys) if k.startswith("before:"))
        elif part == "post":
            i = next(i for i, k in enumerate(keys) if k.startswith("after:") and k != check_key)
        else:  # the event check
            i = keys.index(check_key)
        return f"a{i}-"

    def field(self, part: str, name: str) -> str:
        """The id of a part's field (`dose`, `pre`, `post`, `check`), without '#'."""
        return f"{self._prefix(part)}field-{name}"

    def problem(self, part: str, name: str) -> str:
        return f"{self._prefix(part)}problem-{name}"

    @property
    def ae_note(self) -> str:
        """The line under the event check naming the AE forms expected."""
        return "check-ae"
