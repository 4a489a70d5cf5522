"""Pictures of the vitals chart after a dose (the administration wizard's are in
test_snapshots_administration.py; format 1's own dose wizard is gone).

80x24 and 120x40, English and Chinese, under the fixed clock on the dose
site of `dose_support` (nothing random is drawn: event ids stay off these
screens). Update with `pytest tests/tui/test_snapshots_dose.py --snapshot-update`
and review the SVGs before committing.
"""

from __future__ import annotations

import pytest
from dose_support import P1
from tui_helpers import PASSWORD, settle
from wardcrf.screens.participant import ParticipantScreen

SIZES = [(80, 24), (120, 40)]


def _dosed(site) -> None:
    """Dose 1 of WUH01-001 with its vitals, through the service (the chart's data)."""
    from wardcrf.workflow import dose_visit

    s = site.unlock("clinician", PASSWORD)
    try:
        dose_visit.record_dose_visit(
            s,
            P1,
            pre_vitals={"time": "08:40", "temp": "37.6", "pulse": "96", "resp": "24", "oxysat": "93"},
            dose={
                "kit_id": "KIT-A1",
                "lot": "LOT-A",
                "particles": "2.0e8",
                "volume": "6",
                "start": "08:45",
                "end": "08:55",
            },
            post_vitals={
                "time": "09:00",
                "temp": "37.2",
                "pulse": "90",
                "resp": "21",
                "oxysat": "96",
                "sysbp": "128",
                "diabp": "82",
            },
            post_dose_check={"events": ["none"]},
        )
    finally:
        s.close()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_vitals_chart(snap_compare, dose_site, dose_app, size, language):
    _dosed(dose_site)
    app = dose_app("clinician", language=language)

    async def chart(pilot):
        await settle(pilot)
        pilot.app.push_screen(ParticipantScreen(pilot.app.ward, P1))
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=chart)
