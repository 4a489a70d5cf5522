"""The preparation screen (`p` on the cold-chain home, issue 17): a kit of a product the protocol prepares at
the pharmacy, recorded and signed by the pharmacist, keys typed in a burst landing where they were typed;
the domain's refusals shown before anyone signs, nothing typed lost; a ward nurse is not offered it.

Under the fixed clock (2020-03-16 09:00 Asia/Shanghai), on the PALM variant whose ZMapp is thawed and
diluted at the pharmacy (`tests/palm_pharmacy.py`); Z1 was received and stored in FRZ-1 the day before.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from cc_helpers import PASSWORD, SIGNERS
from palm_pharmacy import pharmacy_model
from test_coldchain import fill, open_home, sign, text, until
from textual.widgets import Input, Select
from tui_helpers import burst, settle
from wardcrf.screens.coldchain.home import ColdChainScreen
from wardcrf.screens.coldchain.preparation import PreparationScreen
from wardcrf.screens.dialogs.sign import SignatureDialog

from wardcrf import signatures
from wardcrf.coldchain import scenario, services
from wardcrf.engine import loading
from wardcrf.errors import PermissionDenied

ZONE = ZoneInfo("Asia/Shanghai")


def stocked(session_for, tmp_path) -> None:
    loading.load(session_for("admin"), pharmacy_model())
    ph = session_for("pharmacist")
    scenario.receive_and_store(
        ph,
        SIGNERS,
        lot="LZ1",
        kits=["Z1"],
        received_at=datetime(2020, 3, 15, 8, 0, tzinfo=ZONE),
        workdir=tmp_path,
        product="ZMAPP",
    )
    scenario.download_freezer_log(
        ph,
        datetime(2020, 3, 16, 8, 45, tzinfo=ZONE),
        since=datetime(2020, 3, 15, 8, 0, tzinfo=ZONE),
        workdir=tmp_path,
    )


async def open_preparation(pilot) -> PreparationScreen:
    await open_home(pilot)
    await pilot.press("p")
    await settle(pilot)
    assert isinstance(pilot.app.screen, PreparationScreen)
    return pilot.app.screen


def preparations(session) -> list[dict]:
    return session.store.rows("SELECT * FROM cc_preparations ORDER BY event_id")


async def test_a_preparation_typed_in_a_burst_is_signed_and_saved(app_for, site, tmp_path, session_for):
    stocked(session_for, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_preparation(pilot)
        assert screen.query_one("#cc-end", Input).value == "2020-03-16 09:00"  # now, local
        labels = [f.label_in("en") for f in screen.form_fields()]
        assert labels[3:] == ["Diluted volume (mL)", "Diluent", "Note"], labels
        # the scanner's burst and its Enter, then the start, Enter, the end kept, Enter, the volume
        await burst(pilot, *"z1", "enter", *"2020-03-16 08:10", "enter", "enter", *"250")
        assert screen.query_one("#cc-kit", Input).value == "Z1"
        assert screen.query_one("#cc-start", Input).value == "2020-03-16 08:10"
        assert screen.query_one("#cc-end", Input).value == "2020-03-16 09:00"
        assert screen.query_one("#cc-volume_ml", Input).value == "250"
        fill(screen, diluent="saline")
        await pilot.press("ctrl+s")
        await sign(pilot)  # the pharmacist's own password, in the signature dialog
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen))
    s = session_for("auditor")
    [row] = preparations(s)
    assert (row["kit_id"], row["product"], row["by_user"]) == ("Z1", "ZMAPP", "pharmacist")
    assert json.loads(row["field_values"]) == {
        "volume_ml": {"value": 250.0, "unit": "mL"},
        "diluent": "saline",
    }
    assert row["use_by_t"] - row["end_t"] == 8 * 3600
    [sig] = signatures.for_target(s.store, row["event_id"])
    assert (sig.user, sig.meaning, sig.valid) == ("pharmacist", "authored", True)


async def test_refusals_come_before_the_signature_and_keep_what_was_typed(
    app_for, site, tmp_path, session_for
):
    stocked(session_for, tmp_path)
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_preparation(pilot)
        # a volume out of the protocol's range: marked, no signature asked
        fill(screen, kit="Z1", start="2020-03-16 08:10", volume_ml="5000", diluent="saline")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "5000 mL is outside the allowed range" in text(app, "#cc-form-message"))
        assert "5000 mL is outside the allowed range" in screen.problems.get("volume_ml", "")  # marked
        assert not isinstance(pilot.app.screen, SignatureDialog)
        assert pilot.app.screen is screen
        # an unknown kit
        fill(screen, kit="Z9", volume_ml="250")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "kit Z9 is not registered" in text(app, "#cc-form-message"))
        # an end before the start
        fill(screen, kit="Z1", end="2020-03-16 08:00")
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: "the preparation's end must be after its start" in text(app, "#cc-form-message")
        )
        assert screen.query_one("#cc-volume_ml", Input).value == "250"
        assert screen.query_one("#cc-diluent", Select).value == "saline"
        assert screen.query_one("#cc-start", Input).value == "2020-03-16 08:10"
    assert preparations(session_for("auditor")) == []


async def test_a_ward_nurse_is_not_offered_the_preparation(app_for, site, tmp_path, session_for):
    stocked(session_for, tmp_path)
    app = app_for("clinician")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        assert home.check_action("prepare", ()) is False
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ColdChainScreen)
    # and the service refuses anyway
    with pytest.raises(PermissionDenied, match="role clinician may not record a preparation at the pharmacy"):
        services.record_preparation(
            session_for("clinician"),
            "Z1",
            start="2020-03-16T08:10",
            end="2020-03-16T08:40",
            values={"volume_ml": "250", "diluent": "saline"},
            password=PASSWORD,
        )


async def test_no_preparation_key_when_the_protocol_prepares_nothing_at_the_pharmacy(app_for, site):
    """MEXCOVID thaws at the bedside: the pharmacist's home offers no `p`, and its footer is as before."""
    app = app_for("pharmacist")
    async with app.run_test(size=(120, 40)) as pilot:
        home = await open_home(pilot)
        assert home.check_action("prepare", ()) is False
        assert home.check_action("thaw", ()) is True
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ColdChainScreen)


def test_ctrl_t_stamps_the_focused_time_field_else_the_end():
    """The thaw and preparation screens share one rule for ctrl+t (`shared.stamped_field`)."""
    from wardcrf.screens.coldchain.shared import stamped_field

    assert stamped_field("cc-start") == "start"
    assert stamped_field("cc-end") == "end"
    assert stamped_field("cc-kit") == "end"  # not a time field: the end
    assert stamped_field(None) == "end"  # nothing focused


async def test_an_amended_preparation_is_signed_again_from_the_pending_list_in_a_burst(
    app_for, site, tmp_path, session_for, monkeypatch
):
    """The preparation's record amended (its signature invalidated): the home lists it as pending, and the
    pharmacist signs it again with `s` and the password typed in one burst while the home reloads slowly
    (`services.sign_preparation`); the list empties and the signature holds."""
    import hashlib

    from wardcrf import records
    from wardcrf.coldchain import reports

    stocked(session_for, tmp_path)
    ph = session_for("pharmacist")
    rec = services.record_preparation(
        ph, "Z1", start="2020-03-16T08:10", end="2020-03-16T08:40",
        values={"volume_ml": "250", "diluent": "saline"}, password=PASSWORD,
    )  # fmt: skip
    records.amend(ph, rec.event.id, {"end": "2020-03-16T00:45:00Z"}, "the end was typed 5 min early")
    real = reports.pending_signatures

    def slow(store):
        block = b"\0" * (4 << 20)
        for _ in range(6):
            hashlib.sha256(block).digest()
        return real(store)

    monkeypatch.setattr(reports, "pending_signatures", slow)
    app = app_for("pharmacist")
    async with app.run_test(size=(100, 30)) as pilot:
        home = await open_home(pilot)
        assert [p["kind"] for p in home.pending] == ["preparation"], home.pending
        await burst(pilot, "s", *PASSWORD, "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ColdChainScreen) and not home.pending)
    s = session_for("auditor")
    sigs = signatures.for_target(s.store, rec.event.id)
    assert [(x.user, x.meaning, x.valid) for x in sigs] == [
        ("pharmacist", "authored", False),
        ("pharmacist", "authored", True),
    ]
