"""Every key in the footer is shown whole, in every shipped language, at 80 and 100 columns.

Textual's footer is one line and cut the keys past the right edge mid-word ("n Nouveau participan" on
the French dashboard at 80 columns, "r Re" for Reload on the English one at 100). `WardFooter` lays the
keys out on as many lines as they need; when they fit on one it is the one line it was. Checked on the
dashboard of a ward whose protocol declares French (PALM's demo ward) and of MEXCOVID (English, Chinese),
on the participant screen and MEXCOVID's administration wizard; keys sent in a burst while the ward's
panels are slow to fill; every wait is on a condition.
"""

from __future__ import annotations

import hashlib

import pytest
from test_administration_wizard import _palm_template, palm  # noqa: F401 (the PALM ward, French declared)
from textual.widgets._footer import FooterKey
from tui_helpers import PASSWORD, burst, screen_text, settle
from wardcrf.screens.app import make_app
from wardcrf.screens.dashboard import DashboardScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.ward import Ward
from wardcrf.screens.widgets import footer
from wardcrf.screens.widgets.footer import WardFooter

from wardcrf import workflow


def test_keys_go_to_the_next_line_whole_and_in_order() -> None:
    assert footer.rows([10, 10, 10], 30) == [[0, 1, 2]]  # fits: one line
    assert footer.rows([10, 10, 11], 30) == [[0, 1], [2]]  # the key that would be cut starts a line
    assert footer.rows([40, 5], 30) == [[0], [1]]  # wider than a line: alone (never an empty line)
    assert footer.rows([], 30) == [[]]
    assert footer.key_width("n", "Nouveau participant") == 23  # " n " + "Nouveau participant "
    assert footer.key_width("f2", "语言") == 4 + 5  # wide characters count two cells


def _footer_whole(app) -> None:
    """Every key of the footer inside the screen and as wide as its label: none cut."""
    screen = app.screen
    bar = screen.query_one(WardFooter)
    width = app.size.width
    keys = list(bar.query(FooterKey).results(FooterKey))
    assert keys, "the footer shows keys"
    shown = screen_text(app)
    for key in keys:
        region = key.region
        need = footer.key_width(key.key_display, key.description)
        if key.has_class("-command-palette"):
            need = footer.palette_width(key.key_display, key.description)
        assert region.right <= width and region.width >= need, (key.key_display, key.description, region)
        assert region.y >= bar.region.y and region.bottom <= bar.region.bottom, (key.description, region)
        assert key.description in shown, (key.description, shown[-400:])


def slow_panels(monkeypatch) -> None:
    """A loaded laptop: each dashboard panel's query does real CPU work first (no sleeps)."""

    def slowed(fn):
        def run(*args, **kwargs):
            block = b"\0" * (4 << 20)
            for _ in range(4):
                hashlib.sha256(block).digest()
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(workflow, "ward_page", slowed(workflow.ward_page))


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
@pytest.mark.parametrize("language", ["fr", "en"])
async def test_the_french_dashboard_footer_shows_every_key_whole(palm, size, language, monkeypatch) -> None:  # noqa: F811
    site, _ready = palm
    app = make_app(site.data_dir, ward=Ward(site, site.unlock("clinician", PASSWORD)), language=language)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        _footer_whole(app)
        said = screen_text(app)
        assert ("Nouveau participant" if language == "fr" else "New participant") in said
        assert ("n Nouveau participan▏" not in said) and ("r Re▏" not in said)
        # keys in a burst while the panels are slow: a participant opened; its own footer whole too
        slow_panels(monkeypatch)
        await burst(pilot, "r", *sorted(_ready)[0], "enter")
        assert isinstance(app.screen, ParticipantScreen), app.screen
        _footer_whole(app)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
@pytest.mark.parametrize("language", ["en", "zh"])
async def test_mexcovid_screens_footers_show_every_key_whole(dose_app, size, language) -> None:
    from dose_support import P1

    app = dose_app("clinician", language=language)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        _footer_whole(app)
        await burst(pilot, *P1, "enter", "d")
        assert not isinstance(app.screen, DashboardScreen | ParticipantScreen), app.screen
        _footer_whole(app)
        assert app.screen.query_one(WardFooter).region.height >= 1


async def test_a_resize_lays_the_keys_out_again(dose_app) -> None:
    app = dose_app("clinician")
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(WardFooter).region.height == 1  # every key on one line
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert app.screen.query_one(WardFooter).region.height > 1
        _footer_whole(app)


async def test_the_status_bar_never_cuts_the_time(dose_app, monkeypatch) -> None:
    """At 80 columns the wizard's top line (site, screen, participant, user, role, time) was wider than the
    bar and lost the time; now the year, then the role, give way. At 120 columns all of it is shown."""
    from dose_support import P1
    from wardcrf.screens.widgets.status import StatusBar

    for size, whole in (((80, 24), False), ((120, 40), True)):
        app = dose_app("clinician")
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            slow_panels(monkeypatch)
            await burst(pilot, *P1, "enter", "d")
            bar = str(app.screen.query_one(StatusBar).content)
            assert bar.endswith("09:00") and len(bar) <= size[0] - 2, bar
            assert ("(ward clinician) · 2020-03-16 09:00" in bar) == whole, bar
            assert f"WUH01 · Administration · {P1} · Clinician User" in bar
