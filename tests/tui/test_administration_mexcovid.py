"""MEXCOVID's administration wizard (MEXCOVID 1.0 runs on its format-2 file since the flip): an inhalation
said as an inhalation, its dose written as every amount is (`wardcrf.amounts`: 2.0e8 particles).

The ward is the dose ward of `dose_support` (09:00 in Wuhan: WUH01-001's dose 1 due now, kit KIT-A1 at
the bedside). Keys are sent in a burst (all posted before the app looks at the first) while the machine is
busy (the plan and the kit check do real CPU work first); every wait is on a condition.
"""

from __future__ import annotations

import hashlib

from dose_support import P1
from textual.widgets import Input, Static
from tui_helpers import burst, settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.participant import ParticipantScreen

from wardcrf.workflow import administration_visit


def busy(monkeypatch) -> None:
    """A loaded laptop: the plan and the kit check do real CPU work first (no sleeps)."""

    def slowed(fn):
        def run(*args, **kwargs):
            block = b"\0" * (4 << 20)
            for _ in range(6):
                hashlib.sha256(block).digest()
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(administration_visit, "plan", slowed(administration_visit.plan))
    monkeypatch.setattr(administration_visit, "check_kit", slowed(administration_visit.check_kit))


def _text(wiz, selector: str) -> str:
    return str(wiz.query_one(selector, Static).render())


async def _participant(pilot, pid: str = P1) -> None:
    await settle(pilot)
    pilot.app.push_screen(ParticipantScreen(pilot.app.ward, pid))
    await settle(pilot)


async def test_an_inhalation_is_said_as_one_and_its_dose_readably(dose_app, monkeypatch) -> None:
    """`d`, the kit scanned and ctrl+n typed in one burst on a busy laptop: the head says the inhalation's
    declared duration in an inhalation's words (never "Infused"), the dose as 2.0e8 particles, the field
    filled with 2.0e8 (saved as shown), and the times step asks for the inhalation's start and end."""
    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot)
        busy(monkeypatch)
        await burst(pilot, "d", *"KIT-A1", "enter", "ctrl+n")
        wiz = app.screen
        assert isinstance(wiz, AdministrationWizard), wiz
        head = _text(wiz, "#wizard-dose")
        assert "Inhaled over 30 min, as the protocol declares" in head, head
        assert "Infused" not in head and "200000000" not in head, head
        assert "Prescribed: 2.0e8 particles — 2.0e8 particles, fixed by the protocol" in head, head
        assert wiz.query_one("#adm-field-particles", Input).value == "2.0e8"
        assert wiz.kit is not None and wiz.kit.ok and wiz.step == 1  # the burst's ctrl+n ran after the check
        i = next(n for n, step in enumerate(wiz.steps) if step.key == "given")
        given = str(wiz.query_one(f"#step-{i}").query(Static).first().render())
        assert given.startswith("Start and end of the inhalation"), given


def _kit_for(site, pid: str, kit: str, tmp_path) -> None:
    """`kit` thawed at `pid`'s bedside (`bedside:<pid>`) for a dose at 08:50 in the ward."""
    from datetime import datetime

    from tui_helpers import PASSWORD

    from wardcrf.coldchain import scenario

    clin = site.unlock("clinician", PASSWORD)
    try:
        signers = {u: PASSWORD for u in ("clinician", "clinician2", "investigator")}
        scenario.ready_kit(
            clin,
            signers,
            kit,
            datetime.fromisoformat("2020-03-16T08:50+08:00"),
            clinician="clinician2",
            workdir=tmp_path,
            bedside=clin,
            participant=pid,
        )
    finally:
        clin.close()


async def test_a_kit_at_another_participants_bedside_is_refused_at_the_scan(
    dose_app, dose_site, monkeypatch, tmp_path
) -> None:
    """WUH01-002's vial scanned for WUH01-001, then ctrl+n, in one burst on a busy laptop: refused at the
    scan in one line naming both participants, the wizard kept on the kit step with the scan selected (the
    next scan replaces it); WUH01-001's own kit scanned next is accepted."""
    from dose_support import P2

    _kit_for(dose_site, P2, "KIT-P2", tmp_path)
    _kit_for(dose_site, P1, "KIT-P1", tmp_path)
    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot)
        busy(monkeypatch)
        await burst(pilot, "d", *"KIT-P2", "enter", "ctrl+n")
        wiz = app.screen
        assert isinstance(wiz, AdministrationWizard), wiz
        status = _text(wiz, "#kit-status")
        assert f"kit KIT-P2 was handed to {P2}'s bedside (bedside:{P2}), not {P1}'s" in status, status
        assert wiz.step == 0 and wiz.kit is not None and not wiz.kit.ok
        scan = wiz.query_one("#kit-scan", Input)
        assert app.focused is scan and scan.selected_text == "KIT-P2"
        await burst(pilot, *"KIT-P1", "enter")
        assert wiz.kit is not None and wiz.kit.ok, _text(wiz, "#kit-status")


# -- step 1 refuses what the day's rules refuse (test_dose_preflight, ported to the engine) -------------


def _dose_today(site) -> None:
    """WUH01-001's dose 1 given at 08:50 today, with its vitals and check (the engine's one transaction)."""
    from tui_helpers import PASSWORD

    s = site.unlock("clinician", PASSWORD)
    try:
        vitals = {"temp": "36.8", "pulse": "88", "resp": "20", "oxysat": "95"}
        administration_visit.record(
            s,
            P1,
            before={"pre_dose_vitals": {"time": "2020-03-16 08:40", **vitals}},
            administration={
                "kit_id": "KIT-A1",
                "lot": "LOT-A",
                "particles": "2.0e8",
                "volume": "6",
                "start": "2020-03-16 08:50",
                "end": "2020-03-16 08:55",
            },
            after={
                "post_dose_vitals": {"time": "2020-03-16 08:58", **vitals},
                "post_dose_check": {"time": "2020-03-16 08:59", "events": ["none"]},
            },
        )
    finally:
        s.close()


async def test_a_second_dose_today_is_refused_at_step_1_in_the_engines_words(
    dose_app, dose_site, monkeypatch
) -> None:
    """Dose 1 given this morning: the wizard for the next says, on opening, the protocol's `per_day` refusal
    (not only the review, after every step is typed); a kit scanned and ctrl+n typed in one burst on a busy
    laptop stay on the kit step, the refusal on the message line."""
    _dose_today(dose_site)
    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot)
        busy(monkeypatch)
        await burst(pilot, "d", *"KIT-L1", "enter", "ctrl+n")
        wiz = app.screen
        assert isinstance(wiz, AdministrationWizard), wiz
        head = _text(wiz, "#wizard-dose")
        assert f"Not now: {P1} already had dose 1 on 2020-03-16 (record " in head, head
        assert "one dose per day" in head
        assert wiz.step == 0
        assert "one dose per day" in _text(wiz, "#wizard-message")


async def test_a_late_dose_is_said_at_step_1_and_may_go_on(dose_app, monkeypatch) -> None:
    """WUH01-002's dose 1 was due yesterday: the wizard says it will be recorded LATE (a deviation), and
    lets the kit step go on (a late dose may still be given until the course ends: `late_until`)."""
    from dose_support import P2

    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot, P2)
        busy(monkeypatch)
        await burst(pilot, "d", *"KIT-L1", "enter", "ctrl+n")
        wiz = app.screen
        assert isinstance(wiz, AdministrationWizard), wiz
        head = _text(wiz, "#wizard-dose")
        assert "Starting now, dose 1 is 22 h after its window: it will be recorded as LATE" in head, head
        assert "Not now" not in head
        assert wiz.step == 1  # on to the vitals before


async def test_on_time_dose_says_nothing_more(dose_app) -> None:
    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot)
        await burst(pilot, "d")
        head = _text(app.screen, "#wizard-dose")
        assert "Not now" not in head and "LATE" not in head and "EARLY" not in head, head


async def test_a_dose_not_due_yet_is_refused_at_step_1(dose_app, monkeypatch) -> None:
    """On the enrollment day (20:00), dose 1 — due on day 1 — is refused on opening in the protocol's
    `before_first_day` words, as the record would be; the kit step does not go on."""
    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot)
        monkeypatch.setenv("WARDCRF_FAKE_NOW", "2020-03-15T12:00:00Z")  # 20:00 on the 15th in Wuhan
        busy(monkeypatch)
        await burst(pilot, "d", *"KIT-L1", "enter", "ctrl+n")
        wiz = app.screen
        assert isinstance(wiz, AdministrationWizard), wiz
        head = _text(wiz, "#wizard-dose")
        assert (
            "Not now: 2020-03-15 is not after the enrollment day 2020-03-15 (dose 1 is on day 1)" in head
        ), head
        assert wiz.step == 0 and "(dose 1 is on day 1)" in _text(wiz, "#wizard-message")


async def test_early_the_day_it_is_due_is_said_and_may_go_on(dose_app, dose_site, monkeypatch) -> None:
    """Dose 2 at 06:00 on its day, before its 07:00–11:00 window: said EARLY (a deviation), not refused."""
    _dose_today(dose_site)
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2020-03-16T22:00:00Z")  # 06:00 on the 17th in Wuhan
    app = dose_app("clinician")
    async with app.run_test(size=(100, 30)) as pilot:
        await _participant(pilot)
        await burst(pilot, "d")
        head = _text(app.screen, "#wizard-dose")
        assert "Starting now, dose 2 is 1 h before its window: it will be recorded as EARLY" in head, head
        assert "Not now" not in head
