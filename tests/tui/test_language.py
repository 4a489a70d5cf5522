"""UI language: per-user setting, runtime switch, the palette lists actions."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList, Static
from tui_helpers import PASSWORD, screen_text, settle, sign_in
from wardcrf.screens import i18n
from wardcrf.screens.app import make_app
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.ward import Ward

from wardcrf import users
from wardcrf.site import Site


async def test_switch_language_at_runtime_is_saved_for_user(app_for, session_for):
    app = app_for("clinician")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        assert i18n.language() == "zh"
        places = app.screen.query_one("#places", OptionList)
        assert str(places.get_option_at_index(0).prompt) == "[a] 稽查轨迹"
    row = users.get(session_for("admin").store, "clinician")
    assert row is not None and row["language"] == "zh"


async def test_saved_language_applies_at_sign_in(app_for, session_for):
    users.set_language(session_for("clinician"), "zh")
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        assert i18n.language() == "en"  # before sign-in: the start-up default
        await sign_in(pilot, "clinician")
        assert isinstance(app.screen, DashboardScreen)
        assert i18n.language() == "zh"
        titles = [str(w.content) for w in app.screen.query(".section-title").results(Static)]
        assert titles == ["前往"]
        panels = [str(w.content).split(" · ")[0] for w in app.screen.query(".panel-title").results(Static)]
        assert panels == [
            "[1] 受试者",
            "[2] 安全性",
            "[3] 冷冻柜",
            "[4] 同步",
            "[5] DSMG 门控",
            "[6] 最近活动",
        ]


async def test_palette_lists_actions_and_switches_language(app_for):
    app = app_for("auditor")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Audit trail" in titles and "Lock screen" in titles and "Language: 中文" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Language: 中文")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert i18n.language() == "zh"


async def test_high_contrast_toggle(app_for):
    app = app_for("auditor")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
        app.action_toggle_contrast()
        assert app.theme == "ward-high-contrast"


async def test_a_panel_result_arriving_while_the_screen_is_rebuilt_is_dropped_not_a_crash(app_for):
    """Found under load: a language switch recomposed the dashboard while a panel's load ran."""
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        await dash.query_one("#sync").remove()  # as mid-recompose: the panel is gone
        dash.post_message(DashboardScreen.SyncLoaded({"events_pending": 1}))  # as a worker posts it
        await pilot.pause()
        assert app._exception is None  # the late result was dropped (`unless_rebuilt`)
        await pilot.press("f2")  # the switch reloads every panel on the rebuilt screen
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.query_one("#sync") is not None
    assert app._exception is None


def test_the_sync_panel_says_the_hub_received_the_events_a_receipt_covers():
    """A receipt by file (no online sync ever ran) is not "not synced yet" (sync.ward.sync_label)."""
    state = DashboardScreen._sync_state  # the panel's wording of `sync.ward.status`'s state
    try:
        i18n.set_language("en")
        assert state(None, "received by the hub up to #241") == "received by the hub up to #241"  # type: ignore[arg-type]
        assert state(None, "not synced yet") == "not synced yet"  # type: ignore[arg-type]
        i18n.set_language("zh")
        assert state(None, "received by the hub up to #241") == "中心已收到至 #241"  # type: ignore[arg-type]
        assert state(None, "not synced yet") == "尚未同步"  # type: ignore[arg-type]
    finally:
        i18n.set_language("en")


@pytest.fixture
def palm007_site(tmp_path) -> Site:
    from wardcrf.engine import model

    made = Site.init(
        tmp_path / "p7",
        site="KIN01",
        device_name="etc-laptop1",
        admin="admin",
        password=PASSWORD,
        zone_name="Africa/Kinshasa",
        protocol_file=model.shipped("palm007.toml"),
    )
    s = made.site.unlock("admin", PASSWORD)
    try:
        users.add_user(s, "clinician", "Clinician", "clinician", PASSWORD)
    finally:
        s.close()
    return made.site


def _language_commands(app) -> list[str]:
    return [
        c.title
        for c in app.get_system_commands(app.screen)
        if c.title.startswith(("Language", "语言", "Langue"))
    ]


async def test_palm007_offers_french_and_switching_shows_its_french_labels(palm007_site):
    """eyes D12: PALM007's `fr` labels were selectable by nobody; 中文 (MEXCOVID's) was offered in Kinshasa."""
    from wardcrf.screens.form_screen import FormScreen

    ward = Ward(palm007_site, palm007_site.unlock("clinician", PASSWORD))
    app = make_app(palm007_site.data_dir, ward=ward)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert _language_commands(app) == ["Language: English", "Language: Français"]
        app.push_screen(FormScreen(app.ward, "consent"))
        await settle(pilot)
        assert "Informed consent" in screen_text(app)
        await pilot.press("f2")  # cycles the protocol's languages: en -> fr
        await settle(pilot)
        assert i18n.language() == "fr"
        shown = screen_text(app)
        assert "Consentement éclairé" in shown and "Consentement donné par" in shown  # the protocol's French
        assert "Informed consent" not in shown
        assert "obligatoire" in shown and "Échap revient sans enregistrer" in shown  # the screen's own words
        assert _language_commands(app) == ["Langue : English", "Langue : Français"]
        await pilot.press("f2")  # and back: never to 中文, which PALM007 does not declare
        await settle(pilot)
        assert i18n.language() == "en"
    admin = palm007_site.unlock("admin", PASSWORD)
    try:
        row = users.get(admin.store, "clinician")
    finally:
        admin.close()
    assert row is not None and row["language"] == "en"  # each switch saved for the user, the last one en


async def test_mexcovid_offers_its_own_languages_and_not_french(app_for):
    app = app_for("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert _language_commands(app) == ["Language: English", "Language: 中文"]


async def test_a_start_up_language_the_protocol_does_not_declare_is_english_and_said(palm007_site):
    ward = Ward(palm007_site, palm007_site.unlock("clinician", PASSWORD))
    app = make_app(palm007_site.data_dir, ward=ward, language="zh")
    # Kept as told, not read back from the toasts: a toast expires after 5 s of wall time, which a
    # busy machine spends before `settle` returns (it failed so under load).
    told: list[str] = []
    notify = app.notify
    app.notify = lambda message, *a, **kw: (told.append(str(message)), notify(message, *a, **kw))[1]  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert i18n.language() == "en"
        assert any("中文 is not a language this ward's protocol declares" in m for m in told), told


@pytest.mark.parametrize("bad", ["fr\x1b[31m", "../x", "[bold]fr", "a" * 300])
def test_a_hostile_start_up_language_is_refused_in_one_line(palm007_site, bad):
    from wardcrf.errors import UsageError

    with pytest.raises(UsageError) as refused:
        make_app(palm007_site.data_dir, language=bad)
    assert (
        "\n" not in str(refused.value) and "\x1b" not in str(refused.value) and len(str(refused.value)) < 160
    )
