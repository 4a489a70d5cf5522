"""The ward app on a format-2 protocol of its own (PALM): the dashboard, a participant, a form (Pilot).

The site is made as `wardcrf init --protocol palm` makes it; the participant is
consented, screened and enrolled through the services. The dashboard lists
them as the engine says (enrolled, not randomized: no arm, so nothing is due
yet), their screen opens, and the vital-signs form is PALM's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input
from tui_helpers import PASSWORD, settle
from wardcrf.screens.app import make_app
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.ward import Ward

from wardcrf import protocol, users, workflow
from wardcrf.engine import model
from wardcrf.site import Site

# The suite's clock is fixed (conftest): 2020-03-16 01:00 UTC, 02:00 in Kinshasa; the records precede it.


@pytest.fixture
def palm_site(tmp_path: Path) -> tuple[Site, str]:
    from PIL import Image

    made = Site.init(
        tmp_path / "palm",
        site="KIN01",
        device_name="etc-laptop1",
        admin="admin",
        password=PASSWORD,
        zone_name="Africa/Kinshasa",
        protocol_file=model.shipped("palm.toml"),
    )
    s = made.site.unlock("admin", PASSWORD)
    try:
        for name, role in (("clinician", "clinician"), ("investigator", "investigator")):
            users.add_user(s, name, name.title(), role, PASSWORD)
    finally:
        s.close()
    page = tmp_path / "page.jpg"
    Image.new("RGB", (64, 48), "white").save(page, "JPEG")
    c = Site.open(made.site.data_dir).unlock("clinician", PASSWORD)
    try:
        assert protocol.active(c.store).engine is not None
        event = workflow.submit(
            c,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "witness_1": "investigator",
                "photos": f"@{page}",
                "time": "2020-03-16T01:30:00+01:00",
            },
            password_for=lambda _user: PASSWORD,
        )
        pid = (event.subject or "").removeprefix("participant:")
        facts = {
            "date": "2020-03-16",
            "age": "30",
            "sex": "F",
            "pregnant": "no",
            "weight": "60",
            "symptom_onset": "2020-03-13",
            "ebov_pcr_positive": "yes",
            "ct_np": "20",
            "prior_ebov_therapeutic": "no",
        }
        workflow.submit(c, "screening", facts, participant=pid)
        workflow.submit(c, "enrollment", {"date": "2020-03-16"}, participant=pid)
    finally:
        c.close()
    return made.site, pid


async def test_the_ward_app_runs_on_palm(palm_site) -> None:
    site, pid = palm_site
    ward = Ward(site, Site.open(site.data_dir).unlock("clinician", PASSWORD))
    app = make_app(site.data_dir, ward=ward)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = pilot.app.screen.query_one("#participants", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        status = [str(c.label) for c in table.columns.values()].index(
            "Status"
        )  # the visit forms owed are last
        assert rows[0][0] == pid and rows[0][status] == "enrolled, not randomized"
        pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
        await settle(pilot)
        assert isinstance(pilot.app.screen, ParticipantScreen)
        await pilot.press("v")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, FormScreen)
        form.query_one("#field-oxysat", Input)  # PALM's vital signs (SpO2), not format 1's form
        form.query_one("#field-temp", Input).focus()
        await pilot.press(*"50")
        await pilot.pause()
        assert "outside the allowed range 30 to 45" in str(form.query_one("#problem-temp").render())


async def test_the_dsmg_board_on_palm_reads_its_declarations(palm_site) -> None:
    """The DSMG screen on PALM: the dose in mg (none given yet), the declared vital signs flagged by PALM's
    own labels and units, nothing of format 1's particles or vitals timepoints."""
    from wardcrf.screens.dsmg import DsmgScreen

    site, pid = palm_site
    s = Site.open(site.data_dir).unlock("admin", PASSWORD)
    try:
        users.add_user(s, "dsmg", "Dee Esemgee", "dsmg", PASSWORD)
    finally:
        s.close()
    c = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        workflow.submit(
            c,
            "vitals",
            {
                "timepoint": "daily",
                "time": "2020-03-16T01:45:00+01:00",
                "temp": "41.0",
                "pulse": "80",
                "resp": "18",
                "oxysat": "88",
            },
            participant=pid,
            reason="rechecked",
            confirm=True,
        )
    finally:
        c.close()
    ward = Ward(site, Site.open(site.data_dir).unlock("dsmg", PASSWORD))
    app = make_app(site.data_dir, ward=ward)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        pilot.app.push_screen(DsmgScreen(pilot.app.ward))
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, DsmgScreen)
        row = [str(c) for c in screen.query_one("#dsmg-participants", DataTable).get_row_at(0)]
        assert row[0] == pid and row[5] == "2"  # two signs outside their soft range
        detail = str(screen.query_one("#dsmg-detail").render())
        vitals = model.shipped("palm.toml").data["forms"]["vitals"]["fields"]
        assert "0 mg" in detail and "particles" not in detail
        assert vitals["temp"]["label"]["en"] in detail and "41" in detail
        assert vitals["oxysat"]["label"]["en"] in detail and "88" in detail
