"""A ward with something in every dashboard panel, built under the fixed clock.

The clock reads 2020-03-16 09:00 in Asia/Shanghai (`FAKE_NOW`). WUH01-001 was
enrolled on 03-14 and had dose 1 on 03-15 at 09:00 (post-dose vitals not
recorded yet), so dose 2 is due now; a life-threatening SAE known on 03-15
has its expedited report due on 03-22; the sentinel gate waits for the
DSMG. WUH01-002 is consented only. A second lot sits in the freezer, where
a spot reading of -8 °C on 03-15 at 22:00 made an excursion whose two kits
await a disposition.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from tui_helpers import PASSWORD, enroll, page_photo

from wardcrf.site import Site

P1 = "WUH01-001"
P2 = "WUH01-002"
FAKE_NOW = "2020-03-16T01:00:00Z"  # as tests/tui/conftest.py


def _populate(site: Site, tmp: Path) -> None:
    from wardcrf import workflow
    from wardcrf.coldchain import scenario, services

    pid = enroll(site, tmp, enrolled_on="2020-03-14")
    assert pid == P1
    passwords = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician")}
    ph = site.unlock("pharmacist", PASSWORD)
    clin = site.unlock("clinician", PASSWORD)
    try:
        start = datetime.fromisoformat("2020-03-15T09:00:00+08:00")
        scenario.ready_kit(ph, passwords, "KIT-A1", start, workdir=tmp, bedside=clin)
        workflow.submit(
            clin,
            "dose",
            {
                "kit_id": "KIT-A1",
                "lot": "LOT-KIT-A1",
                "particles": "2.0e8",
                "volume": "6",
                "start": "2020-03-15T09:00:00+08:00",
                "end": "2020-03-15T09:30:00+08:00",
            },
            participant=P1,
        )
        workflow.submit(
            clin,
            "ae",
            {
                "term": "Bronchospasm",
                "onset": "2020-03-15",
                "first_known": "2020-03-15",
                "grade": "3",
                "serious": "yes",
                "life_threatening": "yes",
                "causality": "possible",
                "action": "interrupted",
                "outcome": "recovering",
            },
            participant=P1,
        )
        workflow.submit(
            clin,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-16T08:00:00+08:00",
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": page_photo(tmp / "page2.jpg"),
            },
            password_for=lambda _u: PASSWORD,
        )
        scenario.receive_and_store(
            ph,
            passwords,
            lot="LOT-B",
            kits=["KIT-B1", "KIT-B2"],
            received_at=datetime.fromisoformat("2020-03-15T10:00:00+08:00"),
            workdir=tmp,
        )
        services.record_reading(ph, scenario.UNIT, at="2020-03-15T22:00:00+08:00", temp_c=-8.0)
        clin.store.checkpoint()
    finally:
        ph.close()
        clin.close()


@pytest.fixture(scope="module")
def _busy_template(_template_site, tmp_path_factory) -> Path:
    """The TUI template site plus the ward above (built once per module, copied per test)."""
    base, _key = _template_site
    root = tmp_path_factory.mktemp("busy")
    data_dir = root / "site"
    shutil.copytree(base, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        _populate(Site.open(data_dir), root)
    return data_dir


@pytest.fixture
def busy_site(_busy_template, data_dir) -> Site:
    shutil.copytree(_busy_template, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(data_dir)
