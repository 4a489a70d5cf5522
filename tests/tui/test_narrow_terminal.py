"""80x24 shows the meaning (issue 14, finding 8), in English and Chinese.

Found at 80x24: the dashboard's Status column cut mid-word ("in treatm") and
gone once a due time showed; the cold-chain unit status (in range / open
excursion / unmonitored) only at 110 columns; the audit screen's filters
about 8 characters wide. Each case is checked on what the terminal shows
(`screen_text`), and pictured in the snapshot tests.
"""

from __future__ import annotations

import pytest
from cc_helpers import cold_chain_site
from tui_helpers import PASSWORD, burst, screen_text, settle
from wardcrf.screens.i18n import t


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if start in line)


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_dashboard_status_shows_whole_beside_a_due_time(busy_site, language):
    from wardcrf.screens.app import make_app
    from wardcrf.screens.ward import Ward

    ward = Ward(busy_site, busy_site.unlock("clinician", PASSWORD))
    app = make_app(busy_site.data_dir, ward=ward, language=language)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        row = _row(screen_text(app), "WUH01-001")
        assert "2h 00m" in row  # the due time shows...
        assert t("status_short.in_treatment") in row  # ...and so does the status, whole


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_coldchain_unit_status_shows_at_80_columns(app_for, site, tmp_path, language):
    cold_chain_site(site, tmp_path)
    app = app_for("pharmacist", language=language)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        row = _row(screen_text(app), "FRZ-1")
        assert t("cc_status.in_range") + " · " + t("cc.awaiting_short", n=1) in row


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_audit_filters_take_a_whole_id_and_dates(app_for, language):
    app = app_for("auditor", language=language)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#f-participant").focus()
        await settle(pilot)
        await burst(pilot, *"WUH01-001", "tab", *"clinician2", "tab", *"2020-03-01", "tab", *"2020-03-16")
        text = screen_text(app)
        for typed in ("WUH01-001", "clinician2", "2020-03-01", "2020-03-16"):
            assert typed in text, (typed, text)
