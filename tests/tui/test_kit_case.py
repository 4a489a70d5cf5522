"""Finding 2 through the ward app: a kit dosed as `kit-a1` is refused at the scan for another participant as `Kit-A1 `."""

from __future__ import annotations

from dose_support import P1, P2
from test_dose_wizard import _open, _scan, _text
from tui_helpers import PASSWORD

from wardcrf import workflow


async def test_a_kit_given_in_lower_case_is_refused_at_the_scan_for_another_participant(dose_app, dose_site):
    clin = dose_site.unlock("clinician", PASSWORD)
    try:
        first = workflow.submit(
            clin,
            "dose",
            {
                "kit_id": "kit-a1",
                "lot": "lot-a",
                "particles": "2e8",
                "volume": "6",
                "start": "2020-03-16T08:50+08:00",
                "end": "2020-03-16T08:59+08:00",
            },
            participant=P1,
        )
    finally:
        clin.close()
    assert first.body["data"]["kit_id"] == "KIT-A1"
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot, P2)
        await _scan(pilot, "Kit-A1 ")
        assert wiz.kit is not None and not wiz.kit.ok
        said = f"kit KIT-A1 belongs to {P1} ({first.id}): a kit is never given to two participants"
        assert said in _text(app, "#kit-status")
