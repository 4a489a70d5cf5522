"""The bedside administration of a product prepared at the pharmacy (issue 17), end to end on a ward.

The PALM demo ward seeded from the variant whose ZMapp is thawed and diluted at the pharmacy
(`tests/palm_pharmacy.py`): the demo's pharmacist prepares and signs each vial before it goes to the
bedside (`scenario.to_bedside`), so the vial left at the bedside for today's infusion passes the
administration's kit check without any thaw at the bedside. A vial handed to the bedside without that
preparation, or prepared longer ago than its use-within, is refused at the kit check (the wizard's scan
step asks the same engine gates as the save), naming the kit and what is missing.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from palm_pharmacy import VALUES, pharmacy_model
from site_users import PASSWORD

from wardcrf.coldchain import config, scenario, services
from wardcrf.site import Site
from wardcrf.workflow import administration_visit as av

SEEDED = "2020-03-16T01:00:00Z"
SIGNERS = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician", "coordinator")}


@pytest.fixture(scope="module")
def _template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from wardcrf.sync import engine_demo

    from wardcrf.randomization import lists

    data = tmp_path_factory.mktemp("palm-pharmacy") / "site"
    # The arms come from the hub's allocation list, drawn at random; which patient is due a ZMapp infusion
    # this morning is then chance (about one seeding in two had none). This list makes KIN01-003's.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lists, "new_seed", lambda: bytes([1]) * 32)
        mp.setattr(lists, "new_list_id", lambda: "LDEMO00000001")
        got = engine_demo.seed(data, pharmacy_model(), PASSWORD, now=datetime.fromisoformat(SEEDED))
    return data, got.ready


@pytest.fixture
def ward(_template, tmp_path, monkeypatch):
    """(clinician, pharmacist, a participant whose ZMapp infusion is due, its vial at the bedside)."""
    template, ready = _template
    data = tmp_path / "site"
    shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", SEEDED)
    site = Site.open(data)
    clinician, pharmacist = site.unlock("clinician", PASSWORD), site.unlock("pharmacist", PASSWORD)
    zmapp = [
        (pid, kit)
        for pid, kit in sorted(ready.items())
        if config.product_of_kit(clinician.store, kit).code == "ZMAPP"
    ]
    assert zmapp, "the PALM demo leaves a ZMapp infusion due with its vial at the bedside"
    yield clinician, pharmacist, *zmapp[0]
    clinician.close()
    pharmacist.close()


def now() -> datetime:
    return datetime.fromisoformat(SEEDED)


def new_vial(ph, kit: str, *, prepared_at: datetime | None = None) -> None:
    """A ZMapp vial received yesterday into the freezer, prepared at the pharmacy at `prepared_at` (or not),
    handed to the bedside 30 min ago."""
    scenario.receive_and_store(
        ph, SIGNERS, lot=f"LOT-{kit}", kits=[kit], received_at=now() - timedelta(days=1), product="ZMAPP"
    )
    scenario.download_freezer_log(ph, now() - timedelta(minutes=31), unit="FRZ-1")
    if prepared_at is not None:
        services.record_preparation(
            ph,
            kit,
            start=(prepared_at - timedelta(minutes=30)).isoformat(),
            end=prepared_at.isoformat(),
            values=VALUES,
            password=PASSWORD,
        )
    services.record_handover(
        ph,
        kits=[kit],
        at=(now() - timedelta(minutes=30)).isoformat(),
        from_location="FRZ-1",
        to_location="bedside",
        from_user="pharmacist",
        to_user="clinician",
        passwords=SIGNERS,
    )


def test_the_vial_prepared_at_the_pharmacy_is_given_without_a_bedside_thaw(ward) -> None:
    clinician, _ph, pid, kit = ward
    assert clinician.store.one("SELECT 1 FROM cc_preparations WHERE kit_id = ?", (kit,))
    assert clinician.store.one("SELECT 1 FROM cc_thaws WHERE kit_id = ?", (kit,)) is None
    assert av.plan(clinician, pid).refusal is None
    checked = av.check_kit(clinician, pid, kit)
    assert checked.ok, checked.reason


def test_a_vial_not_prepared_at_the_pharmacy_is_refused_at_the_bedside(ward) -> None:
    clinician, ph, pid, _kit = ward
    new_vial(ph, "VIAL-ZMAPP-9001")
    checked = av.check_kit(clinician, pid, "VIAL-ZMAPP-9001")
    assert not checked.ok
    assert checked.reason is not None and checked.reason.startswith(
        "custody gate: kit VIAL-ZMAPP-9001 has no preparation at the pharmacy before"
    )
    assert "ZMAPP step 'thaw' (Thaw the vials), 'dilute'" in checked.reason
    assert "`wardcrf coldchain prepare VIAL-ZMAPP-9001`" in checked.reason


def test_a_vial_prepared_longer_ago_than_its_use_within_is_refused(ward) -> None:
    clinician, ph, pid, _kit = ward
    new_vial(ph, "VIAL-ZMAPP-9002", prepared_at=now() - timedelta(hours=9))
    checked = av.check_kit(clinician, pid, "VIAL-ZMAPP-9002")
    assert not checked.ok and checked.reason is not None
    assert "kit VIAL-ZMAPP-9002 was prepared at the pharmacy at" in checked.reason
    assert "its use-within (480 min) passed at" in checked.reason


def test_a_vial_prepared_within_its_use_within_is_accepted(ward) -> None:
    clinician, ph, pid, _kit = ward
    new_vial(ph, "VIAL-ZMAPP-9003", prepared_at=now() - timedelta(hours=2))
    checked = av.check_kit(clinician, pid, "VIAL-ZMAPP-9003")
    assert checked.ok, checked.reason
