"""DM's arms from issue 20's allocations: open-label arms, blinded ones only once the trial is unblinded.

Real lists made at a hub, carried in hub bundles, taken on the ward
(rand_support's `trial`, a ward of the list's own trial), then `recorded_allocations` reads what an SDTM
export of that database may state.
"""

from __future__ import annotations

import pytest
from rand_support import OPEN_FOUR, Trial, blinded_two_to_one, send_ward_bundle, site, trial

from wardcrf.exports.dataset import Dataset
from wardcrf.exports.sdtm.build import recorded_allocations
from wardcrf.randomization import service, unblinded

__all__ = ["site", "trial"]


def _arms(store) -> dict[str, str]:
    return recorded_allocations(Dataset(store))


@pytest.mark.ward("palm")
def test_an_open_label_allocation_gives_the_participant_its_arm(trial: Trial, session_for) -> None:
    trial.make(OPEN_FOUR, per_stratum=4)
    clin = session_for("clinician")
    pid = trial.participant()
    assert _arms(clin.store) == {}  # consented and screened, not allocated: no arm
    a = service.allocate(clin, pid, {"ct_np": "HIGH"})
    assert a.arm in {"ZMAPP", "RDV", "MAB114", "REGNEB3"}
    assert _arms(clin.store) == {a.participant: a.arm}


@pytest.mark.ward("palm007")
def test_a_blinded_allocation_is_blinded_until_the_trial_is_unblinded_at_the_hub(
    trial: Trial, session_for
) -> None:
    trial.make(blinded_two_to_one(), per_stratum=3)
    clin = session_for("clinician")
    a = service.allocate(clin, trial.participant())
    # Allocated, so not NOT ASSIGNED; the arm is not the export's to state: BLINDED (issue 20).
    assert a.arm is None and _arms(clin.store) == {a.participant: "BLINDED"}  # the ward holds a kit only
    send_ward_bundle(trial)
    hs = trial.hub_session("admin")
    try:
        assert _arms(hs.store) == {a.participant: "BLINDED"}  # the hub knows the arm; still blinded
        unblinded.unblind_trial(hs, "PALM007", "database locked for the final analysis")
        got = _arms(hs.store)
        assert list(got) == [a.participant] and got[a.participant] in {"TECOVIRIMAT", "PLACEBO"}
    finally:
        hs.close()
