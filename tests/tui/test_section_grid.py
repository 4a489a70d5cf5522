"""The section grid on a protocol that is not MEXCOVID (tests/grid_protocol.py): a daily symptom score of
two sections of three scored symptoms, laid out, tallied, checked and saved from its declaration alone.

The site is made as `wardcrf init --protocol FILE` makes it; the participant is consented, screened and
enrolled through the services. Also: keys typed in one burst while the laptop is busy land in their
cells, and the picture at 100×30.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import grid_protocol
import pytest
from textual.widgets import Static
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.app import make_app
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.section_grid import GridCell, SectionGridScreen
from wardcrf.screens.ward import Ward

from wardcrf import forms, protocol, records, users, workflow
from wardcrf.site import Site
from wardcrf.workflow import service

SYMPTOMS = tuple(grid_protocol.SYMPTOMS)


@pytest.fixture(scope="module")
def _gridtest_template(tmp_path_factory) -> tuple[Path, str]:
    from PIL import Image

    root = tmp_path_factory.mktemp("gridtest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", "2020-03-16T01:00:00Z")
        made = Site.init(
            root / "site",
            site="KIN01",
            device_name="etc-laptop1",
            admin="admin",
            password=PASSWORD,
            zone_name="Africa/Kinshasa",
            protocol_file=grid_protocol.parsed(),
        )
        s = made.site.unlock("admin", PASSWORD)
        try:
            for name in ("clinician", "investigator"):
                users.add_user(s, name, name.title(), name, PASSWORD)
        finally:
            s.close()
        page = root / "page.jpg"
        Image.new("RGB", (64, 48), "white").save(page, "JPEG")
        c = Site.open(made.site.data_dir).unlock("clinician", PASSWORD)
        try:
            assert protocol.active(c.store).id == "GRIDTEST"
            consent = {
                "consenter": "participant",
                "form_version": "1.0",
                "witness_1": "investigator",
                "photos": f"@{page}",
                "time": "2020-03-16T01:30:00+01:00",
            }
            event = workflow.submit(c, "consent", consent, password_for=lambda _user: PASSWORD)
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
            c.store.checkpoint()
        finally:
            c.close()
    return made.site.data_dir, pid


@pytest.fixture
def gridtest(_gridtest_template, tmp_path) -> tuple[Site, str]:
    template, pid = _gridtest_template
    shutil.copytree(template, tmp_path / "site", ignore=shutil.ignore_patterns("*.lock"))
    return Site.open(tmp_path / "site"), pid


def _app(site: Site):
    return make_app(site.data_dir, ward=Ward(site, Site.open(site.data_dir).unlock("clinician", PASSWORD)))


def _total(app) -> str:
    return str(app.screen.query_one("#grid-total", Static).content)


def _values(app) -> list:
    return [app.screen.query_one(f"#field-{s}", GridCell).value for s in SYMPTOMS]


def _picker_keys(app, label: str) -> list[str]:
    labels = [str(o.prompt) for o in app.screen.query_one("#forms").options]
    return [*["down"] * labels.index(label), "enter"]


def busy(monkeypatch) -> None:
    """A loaded laptop: reading the participant's protocol version and checking each typed value do real
    CPU work first (no sleeps), so keys typed meanwhile queue up behind them."""

    def slowed(fn):
        def run(*args, **kwargs):
            block = b"\0" * (4 << 20)
            for _ in range(4):
                hashlib.sha256(block).digest()
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(service, "protocol_for", slowed(service.protocol_for))
    monkeypatch.setattr(forms, "check", slowed(forms.check))


async def test_a_second_protocols_grid_is_laid_out_tallied_and_saved_from_its_declaration(gridtest) -> None:
    site, pid = gridtest
    app = _app(site)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press(*_picker_keys(app, "Daily symptom score"))
        await settle(pilot)
        grid = app.screen
        assert isinstance(grid, SectionGridScreen)
        assert [str(s.content) for s in grid.query(".grid-section-title").results(Static)] == [
            "General · 0",
            "Digestive · 0",
        ]
        labels = [str(x.content).strip() for x in grid.query(".grid-label").results()]
        assert labels == list(grid_protocol.SYMPTOMS.values())  # untitled blocks: each label whole
        assert (
            _total(app)
            == "Symptom total (0-18) 0 · General 0 · Digestive 0 · cannot be assessed 0 · 6 to score"
        )
        assert "Each cell: 0-3, u = cannot be assessed" in str(grid.query_one("#grid-help", Static).content)
        await pilot.press("2", "1", "7")  # 7 is no code of the field: refused where it was typed
        assert app.focused is grid.query_one("#field-headache", GridCell)
        assert "'7' is not one of: 0, 1, 2, 3, u — type 0-3, u = cannot be assessed" in str(
            grid.query_one("#grid-problems", Static).content
        )
        await pilot.press("U", "3", "0", "2")  # a code's letter in either case
        assert _values(app) == [2, 1, "u", 3, 0, 2]
        assert _total(app) == "Symptom total (0-18) 8 · General 3 · Digestive 5 · cannot be assessed 1"
        # ← → move to the same row of the other section
        grid.query_one("#field-fatigue", GridCell).focus()
        await pilot.press("right")
        assert app.focused is grid.query_one("#field-vomiting", GridCell)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen), str(grid.query_one("#form-message", Static).content)
    s = Site.open(site.data_dir).unlock("investigator", PASSWORD)
    try:
        (saved,) = records.for_subject(s.store, f"participant:{pid}", "symptoms")
    finally:
        s.close()
    assert {k: saved.data[k] for k in SYMPTOMS} == dict(zip(SYMPTOMS, [2, 1, "u", 3, 0, 2], strict=True))
    assert saved.data["total"] == 8  # the engine's `compute`, the number the grid showed


async def test_keys_typed_in_one_burst_while_busy_land_in_their_cells(gridtest, monkeypatch) -> None:
    """From the participant screen: n (the picker), the form's place in it, Enter, then six scores — all
    posted before the app looks at the first, while opening the form and checking each key are slow."""
    site, pid = gridtest
    app = _app(site)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, pid))
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        keys = _picker_keys(app, "Daily symptom score")
        await pilot.press("escape")
        await settle(pilot)
        busy(monkeypatch)
        await burst(pilot, "n", *keys, *"3u1022")
        assert isinstance(app.screen, SectionGridScreen)
        assert _values(app) == [3, "u", 1, 0, 2, 2]
        assert _total(app) == "Symptom total (0-18) 8 · General 4 · Digestive 4 · cannot be assessed 1"


def test_the_symptom_grid_100x30(snap_compare, gridtest) -> None:
    site, pid = gridtest
    app = _app(site)

    async def typed(pilot):
        await settle(pilot)
        pilot.app.push_screen(SectionGridScreen(pilot.app.ward, "symptoms", pid))
        await settle(pilot)
        await pilot.press(*"21u3")
        await pilot.press("9")  # refused on the spot
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=typed)


async def test_sections_are_columns_when_they_fit_else_one_block_under_another(gridtest) -> None:
    site, pid = gridtest
    app = _app(site)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(SectionGridScreen(app.ward, "symptoms", pid))
        await settle(pilot)
        grid = app.screen
        general, digestive = grid.query_one("#section-general"), grid.query_one("#section-digestive")
        assert grid.query_one("#grid-sections").has_class("-columns")
        assert digestive.region.x > general.region.right - 1 and digestive.region.y == general.region.y
        await pilot.resize_terminal(30, 30)
        await settle(pilot)
        assert not grid.query_one("#grid-sections").has_class("-columns")
        assert digestive.region.y >= general.region.bottom and digestive.region.x == general.region.x
        await pilot.press("2", "1", "0", "3")  # typing order and arrows are the same either way
        assert _values(app)[:4] == [2, 1, 0, 3]
