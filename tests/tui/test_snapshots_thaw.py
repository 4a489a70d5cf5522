"""Pictures of the thaw screen at 80x24, in English and 中文.

The kit is scanned and the start typed under the fixed clock
(`WARDCRF_FAKE_NOW`: the end defaults to 09:00 local); nothing random is
on the screen. Update with
`pytest tests/tui/test_snapshots_thaw.py --snapshot-update` and review the
SVGs before committing.
"""

from __future__ import annotations

import pytest
from cc_helpers import cold_chain_site
from tui_helpers import settle


@pytest.mark.parametrize("language", ["en", "zh"])
def test_coldchain_thaw(snap_compare, app_for, site, tmp_path, language):
    cold_chain_site(site, tmp_path)
    app = app_for("clinician", language=language)

    async def thaw(pilot):
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        await pilot.press(*"k002", "enter", *"2020-03-16 08:42")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=thaw)
