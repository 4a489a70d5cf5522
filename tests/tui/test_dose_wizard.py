"""The guided dose: scan, vitals, times, vitals, events, review, save — and every refusal on the way."""

from __future__ import annotations

import pytest
from dose_support import P1, P2, Driver
from textual.widgets import Input, SelectionList, Static
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.administration_wizard import AdministrationWizard
from wardcrf.screens.ae_offer import AeOffer
from wardcrf.screens.dialogs.reason import ReasonDialog
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.lock import LockScreen
from wardcrf.screens.participant import ParticipantScreen
from wardcrf.screens.step_wizard import StepWizard
from wardcrf.screens.vitals_chart import VitalsChart

from wardcrf import records, workflow
from wardcrf.errors import PermissionDenied
from wardcrf.workflow import administration_visit


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


async def _open(pilot, pid: str = P1) -> StepWizard:
    """`d` on the participant: the administration wizard MEXCOVID's regimen drives (`Driver` names its fields)."""
    app = pilot.app
    await settle(pilot)
    app.push_screen(ParticipantScreen(app.ward, pid))
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    assert isinstance(app.screen, StepWizard)
    assert isinstance(app.screen, AdministrationWizard)
    return app.screen


def _d(pilot) -> Driver:
    return Driver(pilot.app.screen)


def _id(pilot, part: str, name: str) -> str:
    return _d(pilot).field(part, name)


async def _scan(pilot, code: str, *, enter: bool = True) -> None:
    """A barcode scanner: the code as a burst of key presses (optionally ending in Enter)."""
    await pilot.press(*code, *(["enter"] if enter else []))
    await pilot.pause(0.4)  # past the scan's quiet time when no Enter came
    await settle(pilot)


async def _type(pilot, widget_id: str, text: str) -> None:
    """Type into a field: `widget_id` is "part:name" (`Driver.field`) or a plain id."""
    if ":" in widget_id:
        widget_id = _id(pilot, *widget_id.split(":"))
    pilot.app.screen.query_one(f"#{widget_id}").focus()
    await pilot.press(*text)


async def _vitals(pilot, prefix: str, *, temp="36.8", pulse="88", resp="20", oxysat="95") -> None:
    for name, value in (("temp", temp), ("pulse", pulse), ("resp", resp), ("oxysat", oxysat)):
        await _type(pilot, f"{prefix}:{name}", value)
    await pilot.pause()


async def _next(pilot) -> None:
    await pilot.press("ctrl+n")
    await settle(pilot)


async def _choose_events(pilot, *codes: str) -> None:
    events = pilot.app.screen.query_one(f"#{_id(pilot, 'check', 'events')}", SelectionList)
    for code in codes:
        events.select(code)
    await pilot.pause()


async def _to_review(
    pilot, wiz: StepWizard, *, kit: str = "KIT-A1", events=("none",), post_time=None
) -> None:
    await _scan(pilot, kit)
    assert wiz.kit is not None and wiz.kit.ok, _text(pilot.app, "#kit-status")
    await _type(pilot, "dose:particles", "2.0e8")
    await _type(pilot, "dose:volume", "6")
    await _next(pilot)
    assert wiz.step == 1
    await _vitals(pilot, "pre")
    await _next(pilot)
    assert wiz.step == 2
    await _type(pilot, "dose:end", "")
    await pilot.press("ctrl+t")
    await _next(pilot)
    assert wiz.step == 3
    if post_time:
        await _type(pilot, "post:time", post_time)
    await _vitals(pilot, "post", oxysat="97")
    await _next(pilot)
    assert wiz.step == 4
    await _choose_events(pilot, *events)
    await _next(pilot)
    assert wiz.step == 5


async def test_main_path_records_the_whole_visit(dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        assert "Step 1/6" in _text(app, "#wizard-steps")
        assert "dose 1 (inhalation" in _text(app, "#wizard-dose")
        await _scan(pilot, "KIT-A1")
        status = _text(app, "#kit-status")
        assert "✓ Kit KIT-A1 (lot LOT-A)" in status
        assert app.screen.query_one(f"#{_id(pilot, 'dose', 'lot')}", Input).value == "LOT-A"  # from the kit
        # Issue 14 (finding 6): not to the lot the scan filled; the product is complete
        # (particles and volume are the protocol's, pre-filled), so the scan field keeps it.
        particles = app.screen.query_one(f"#{_id(pilot, 'dose', 'particles')}", Input).value
        assert float(particles) == 2.0e8  # the protocol's dose
        assert app.screen.query_one(f"#{_id(pilot, 'dose', 'volume')}", Input).value == "6"
        assert app.screen.focused is app.screen.query_one("#kit-scan")
        await _type(pilot, "dose:particles", "2.0e8")
        await _type(pilot, "dose:volume", "6")
        await _next(pilot)
        assert "Step 2/6" in _text(app, "#wizard-steps")
        await _vitals(pilot, "pre")
        await _next(pilot)
        assert (
            app.screen.query_one(f"#{_id(pilot, 'pre', 'time')}", Input).value == "2020-03-16 09:00"
        )  # stamped
        assert app.screen.query_one(f"#{_id(pilot, 'dose', 'start')}", Input).value == "2020-03-16 09:00"
        app.screen.query_one(f"#{_id(pilot, 'dose', 'end')}").focus()
        await pilot.press("ctrl+t")
        assert app.screen.query_one(f"#{_id(pilot, 'dose', 'end')}", Input).value == "2020-03-16 09:00"
        await _next(pilot)
        await _vitals(pilot, "post", oxysat="97")
        await _next(pilot)
        await _choose_events(pilot, "none")
        assert _text(app, f"#{_d(pilot).ae_note}") == ""
        await _next(pilot)
        review = _text(app, "#review")
        assert "Timing: on time" in review and "No deviation." in review
        assert "Ready: ctrl+s saves" in review
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        assert wiz.saved is not None
        assert wiz.saved.timing == "on_time"
    s = dose_site.unlock("auditor", PASSWORD)
    try:
        shown = workflow.show(s, P1)
        assert shown["doses_given"] == 1
        [dose] = records.for_subject(s.store, f"participant:{P1}", "dose")  # either format's dose record
        assert dose.data["kit_id"] == "KIT-A1"
        vitals = records.for_subject(s.store, f"participant:{P1}", "vitals")
        assert sorted((v.data["timepoint"], v.data["dose"]) for v in vitals) == [
            ("post_dose", 1),
            ("pre_dose", 1),
        ]
        check = records.for_subject(s.store, f"participant:{P1}", "post_dose_check")
        assert check[0].data["events"] == ["none"]
    finally:
        s.close()


async def test_save_key_before_review_goes_to_review_first(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _to_review(pilot, wiz)
        await pilot.press("ctrl+b")
        await settle(pilot)
        assert wiz.step == 4
        await pilot.press("ctrl+s")  # from the checklist: to the review, not saved yet
        await settle(pilot)
        assert wiz.step == 5 and wiz.saved is None
        assert "Ready" in _text(app, "#review")


async def test_unknown_kit_refused_inline_and_step_blocked(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-ZZZ9", enter=False)  # no Enter
        refused = "✗ Not usable: custody gate: kit KIT-ZZZ9 is not registered in any lot"
        await _next(pilot)
        await _next(pilot)  # that ctrl+n started the check ("still being checked"): once more, answered
        assert refused in _text(app, "#kit-status")
        assert wiz.step == 0
        assert "Scan a kit the custody check accepts" in _text(app, "#wizard-message")
        assert app.screen.query_one("#kit-scan", Input).value == "KIT-ZZZ9"


async def test_quarantined_kit_refused_with_the_custody_reason(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        await _open(pilot)
        await _scan(pilot, "kit-q1")
        status = _text(app, "#kit-status")
        assert "✗ Not usable: custody gate: kit KIT-Q1 is quarantined" in status


async def test_hard_range_vital_refused_inline_and_kept(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-A1")
        await _type(pilot, "dose:particles", "2.0e8")
        await _type(pilot, "dose:volume", "6")
        await _next(pilot)
        await _vitals(pilot, "pre", temp="50")
        assert (
            _text(app, f"#{_d(pilot).problem('pre', 'temp')}")
            == "50 C is outside the allowed range 30 to 45 C"
        )
        await _next(pilot)
        assert wiz.step == 1
        assert "Correct the marked fields" in _text(app, "#wizard-message")
        assert app.screen.query_one(f"#{_id(pilot, 'pre', 'temp')}", Input).value == "50"


async def test_late_dose_deviation_explained_before_saving(dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot, P2)
        assert "overdue" in _text(app, "#wizard-dose")
        await _to_review(pilot, wiz, kit="KIT-L1")
        review = _text(app, "#review")
        assert "Timing: LATE, after its window (a deviation)" in review, review
        assert wiz.saved is None  # explained, not saved
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wiz.saved is not None and wiz.saved.timing == "late"
    s = dose_site.unlock("auditor", PASSWORD)
    try:
        assert [d["kind"] for d in workflow.show(s, P2)["deviations"]] == ["late dose"]
    finally:
        s.close()


async def test_refusal_at_review_and_save_keeps_everything(dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _to_review(pilot, wiz, post_time="2020-03-16 08:00")  # before the dose ended
        review = _text(app, "#review")
        assert "Not ready" in review and "post-dose vitals: vitals not saved: time:" in review
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is wiz and wiz.saved is None
        said = _text(app, "#wizard-message")  # "... of this dose visit" / "... of this administration"
        assert "nothing of this" in said and "was saved" in said, said
        assert wiz.step == 3  # back at the post-dose vitals, the time marked
        assert "before dose 1 ended" in _text(app, f"#{_d(pilot).problem('post', 'time')}")
        assert app.screen.query_one(f"#{_id(pilot, 'post', 'oxysat')}", Input).value == "97"
        assert app.screen.query_one("#kit-scan", Input).value == "KIT-A1"
    s = dose_site.unlock("auditor", PASSWORD)
    try:
        assert workflow.show(s, P1)["doses_given"] == 0
        assert records.for_subject(s.store, f"participant:{P1}", "vitals") == []
    finally:
        s.close()


async def test_soft_range_asks_one_reason_on_save(dose_app, dose_site):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-A1")
        await _type(pilot, "dose:particles", "2.0e8")
        await _type(pilot, "dose:volume", "6")
        await _next(pilot)
        await _vitals(pilot, "pre", pulse="135")
        assert "expected range" in _text(app, f"#{_d(pilot).problem('pre', 'pulse')}")
        await _next(pilot)
        assert wiz.step == 2  # soft values do not block
        await _type(pilot, "dose:end", "")
        await pilot.press("ctrl+t")
        await _next(pilot)
        await _vitals(pilot, "post")
        await _next(pilot)
        await _choose_events(pilot, "none")
        await _next(pilot)
        assert "Unusual values" in _text(app, "#review") and "Ready" in _text(app, "#review")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"anxious, rechecked", "enter")
        await settle(pilot)
        assert wiz.saved is not None
    s = dose_site.unlock("auditor", PASSWORD)
    try:
        pre = [
            r
            for r in records.for_subject(s.store, f"participant:{P1}", "vitals")
            if r.data["timepoint"] == "pre_dose"
        ]
        from wardcrf import eventlog

        ev = eventlog.get(s.store, pre[0].event_id)
        assert ev is not None and ev.body["overrides"] == {"pulse": "anxious, rechecked"}
    finally:
        s.close()


async def test_checked_events_offer_the_ae_form(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-A1")
        await _type(pilot, "dose:particles", "2.0e8")
        await _type(pilot, "dose:volume", "6")
        await _next(pilot)
        await _vitals(pilot, "pre")
        await _next(pilot)
        await _type(pilot, "dose:end", "")
        await pilot.press("ctrl+t")
        await _next(pilot)
        await _vitals(pilot, "post")
        await _next(pilot)
        await _choose_events(pilot, "cough")
        await settle(pilot)
        assert "An adverse event form is expected for each event checked: Cough after inhalation" in _text(
            app, f"#{_d(pilot).ae_note}"
        )
        await _next(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, AeOffer)
        await pilot.press("enter")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, FormScreen) and form.form_name == "ae"
        assert form.values["prespecified"] == "cough" and form.values["dose"] == "1"
        assert wiz.saved is not None and wiz.saved.ae_expected == ["cough"]


async def test_lock_and_language_switch_keep_the_wizard(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-A1")
        await _type(pilot, "dose:particles", "2.0e8")
        await _type(pilot, "dose:volume", "6")
        await _next(pilot)
        await _type(pilot, "pre:temp", "37.1")
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
        await pilot.press(*PASSWORD, "enter")
        await settle(pilot)
        assert app.screen is wiz and wiz.step == 1
        assert wiz.query_one(f"#{_id(pilot, 'pre', 'temp')}", Input).value == "37.1"
        await pilot.press("f2")
        await settle(pilot)
        assert wiz.step == 1 and "第 2/6 步" in _text(app, "#wizard-steps")
        assert wiz.query_one(f"#{_id(pilot, 'pre', 'temp')}", Input).value == "37.1"
        assert wiz.query_one("#kit-scan", Input).value == "KIT-A1"
        assert "✓ 药盒 KIT-A1" in _text(app, "#kit-status")
        await pilot.press("ctrl+b")
        await settle(pilot)
        assert wiz.query_one(f"#{_id(pilot, 'dose', 'particles')}", Input).value == "2.0e8"


async def test_role_without_dosing_is_not_offered_and_the_domain_refuses(dose_app):
    app = dose_app("auditor")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, P1))
        await settle(pilot)
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "dose_wizard" not in shown and "vitals_chart" in shown
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        # Opened directly anyway: the service refuses the plan before the wizard exists (no screen to
        # scan a kit into), and the kit check too.
        with pytest.raises(PermissionDenied, match="role auditor may not record doses"):
            AdministrationWizard(app.ward, P1)
        with pytest.raises(PermissionDenied, match="role auditor may not record doses"):
            app.ward.call(administration_visit.check_kit, P1, "KIT-A1")


async def test_pharmacist_is_not_offered_the_dose(dose_app):
    app = dose_app("pharmacist")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ParticipantScreen(app.ward, P1))
        await settle(pilot)
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "dose_wizard" not in shown


async def test_vitals_chart_after_a_dose(dose_app):
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _to_review(pilot, wiz)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ParticipantScreen)
        await pilot.press("c")
        await settle(pilot)
        chart = app.screen
        assert isinstance(chart, VitalsChart)
        assert "1 of 5 doses given" in _text(app, "#chart-legend")
        assert "Oxygen saturation (SpO2)" in _text(app, "#chart-legend")
        from textual.widgets import DataTable

        table = chart.query_one("#chart-table", DataTable)
        assert table.row_count == 6
        assert table.get_row_at(0)[1] == "95→97" and table.get_row_at(0)[2] == "—"
        await pilot.press("m")
        await settle(pilot)
        assert "Temperature" in _text(app, "#chart-legend")


async def test_gap_scanner_profile_checks_a_kit_burst_with_no_enter_like_an_enter(dose_app, dose_site):
    """Issue 14, Scanner input: a laptop whose scanner sends no Enter (profile `gap`).

    The burst the gap ends is one complete scan: checked at once, like an Enter (a refused kit is
    left selected, so the next scan replaces it; an accepted one fills the lot).
    """
    import asyncio

    from wardcrf import scanner

    s = dose_site.unlock("admin", PASSWORD)
    try:
        scanner.set_profile(s, "gap", 30)
    finally:
        s.close()

    async def until(pilot, condition) -> None:
        end = asyncio.get_running_loop().time() + 60  # a bound for a broken app, not a timing
        while not condition() and asyncio.get_running_loop().time() < end:
            await pilot.pause(0.01)
        assert condition()

    from tui_helpers import burst

    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        scan = wiz.query_one("#kit-scan", Input)
        assert wiz.scan_gap_s == 0.03 and app.screen.focused is scan
        await burst(pilot, *"KIT-ZZZ9")
        await until(pilot, lambda: wiz.kit_error is not None or wiz.kit is not None)
        await settle(pilot)
        assert "kit KIT-ZZZ9 is not registered in any lot" in _text(app, "#kit-status")
        assert app.screen.focused is scan and tuple(scan.selection) == (0, len("KIT-ZZZ9"))
        await burst(pilot, *"KIT-A1")  # the next scan replaces the refused one
        await until(pilot, lambda: wiz.kit is not None and wiz.kit.ok)
        await settle(pilot)
        assert scan.value == "KIT-A1" and "✓ Kit KIT-A1 (lot LOT-A)" in _text(app, "#kit-status")
        assert wiz.query_one(f"#{_id(pilot, 'dose', 'lot')}", Input).value == "LOT-A"


async def test_gap_scanner_profile_only_shows_the_answer_for_a_kit_typed_slowly(dose_app, dose_site):
    """A person typing the kit id key by key under a gap profile: no scan is cut from it; the kit
    is checked to show the answer only (the focus stays where they type, nothing is selected)."""
    import asyncio

    from tui_helpers import burst
    from wardcrf.screens.widgets.scan_field import ScanField

    from wardcrf import scanner

    s = dose_site.unlock("admin", PASSWORD)
    try:
        scanner.set_profile(s, "gap", 30)
    finally:
        s.close()
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        scan = wiz.query_one("#kit-scan", ScanField)
        loop = asyncio.get_running_loop()
        for key in "KIT-A1":
            await burst(pilot, key)
            end = loop.time() + 60  # a bound for a broken app, not a timing
            while scan.in_burst and loop.time() < end:
                await pilot.pause(0.01)
        end = loop.time() + 60
        while not (wiz.kit is not None and wiz.kit.kit == "KIT-A1") and loop.time() < end:
            await pilot.pause(0.01)
        await settle(pilot)
        assert wiz.kit is not None and wiz.kit.ok and scan.value == "KIT-A1"
        assert app.screen.focused is scan and scan.selection.is_empty  # shown, not taken as a scan


async def test_keys_typed_while_the_review_runs_wait_for_its_verdict(dose_app, monkeypatch):
    """The dry run is a worker that posts its verdict (`StepWizard.Reviewed`); a ctrl+s typed
    while it runs waits for it (the keys are held), then saves what was reviewed."""
    import threading

    from tui_helpers import key_event, keys_run

    running, go_on = threading.Event(), threading.Event()

    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _to_review(pilot, wiz)
        await pilot.press("ctrl+b")
        await settle(pilot)
        assert wiz.step == 4
        module, name = administration_visit, "record"  # the service the wizard's review calls
        real = getattr(module, name)

        def gated(session, participant, **kwargs):
            if kwargs.get("dry_run"):
                running.set()
                assert go_on.wait(60), "the test never let the review finish"  # a bound, not a timing
            return real(session, participant, **kwargs)

        monkeypatch.setattr(module, name, gated)
        for key in ("ctrl+n", "ctrl+s"):  # to the review, and save: typed together
            event = key_event(key)
            event.set_sender(app)
            app.post_message(event)
        for _ in range(10_000):  # a bound for a broken app: the loop waits on the event
            if running.is_set():
                break
            await pilot.pause()
        assert running.is_set()
        await pilot.pause()
        assert wiz.step == 5 and wiz.checking_review and wiz.saved is None
        assert app.keys.waiting == 1  # the ctrl+s, held for the verdict
        go_on.set()
        await keys_run(pilot)
        assert not wiz.checking_review and wiz.preview_error is None
        assert wiz.saved is not None
        assert isinstance(app.screen, ParticipantScreen)


VITALS_TYPED = {"temp": "37.2", "pulse": "90", "resp": "20", "oxysat": "97", "sysbp": "110", "diabp": "70"}


def _vitals_burst(pilot) -> tuple[list[str], dict[str, str]]:
    """`ctrl+t`, then Tab and a value for each vital sign the step shows, in the order the focus goes, and
    `ctrl+n`: what a nurse typed in one burst (a new user's pass, D6: each value landed one field down)."""
    wiz = pilot.app.screen
    ids = {n: _id(pilot, "pre", n) for n in VITALS_TYPED}
    chain = [w.id for w in wiz.focus_chain]
    names = sorted((n for n, i in ids.items() if i in chain), key=lambda n: chain.index(ids[n]))
    keys = ["ctrl+t"]
    for n in names:
        keys += ["tab", *VITALS_TYPED[n]]
    return [*keys, "ctrl+n"], {n: VITALS_TYPED[n] for n in names}


@pytest.mark.parametrize("mode", ["burst", "press"])
async def test_ctrl_t_tab_and_the_vitals_land_each_in_its_own_field(dose_app, mode):
    """The vitals step opens on its time (the first field on screen), in either wizard; `ctrl+t` stamps it and
    keeps the focus there, so `Tab 37.2 Tab 90 ...` puts each value in its field. As a burst (every key posted
    before the app looks at the first: a busy laptop) and key by key (the app idle between keys)."""
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-A1")
        await _next(pilot)
        assert wiz.step == 1
        time = wiz.query_one(f"#{_id(pilot, 'pre', 'time')}", Input)
        assert wiz.focused is time  # predictable: the step's first field, its time
        keys, want = _vitals_burst(pilot)
        assert len(want) >= 4, want
        if mode == "burst":
            await burst(pilot, *keys)
        else:
            for key in keys:
                await pilot.press(key)
            await settle(pilot)
        assert wiz.step == 2, wiz.message  # every value in range: on to the times
        assert time.value == "2020-03-16 09:00"
        got = {n: wiz.query_one(f"#{_id(pilot, 'pre', n)}", Input).value for n in want}
        assert got == want


async def test_ctrl_t_on_a_vitals_step_stamps_its_time_and_leaves_the_focus_where_it_is(dose_app):
    """In the shared wizard: the vitals step's one time field is stamped from the temperature."""
    app = dose_app("clinician")
    async with app.run_test(size=(100, 40)) as pilot:
        wiz = await _open(pilot)
        await _scan(pilot, "KIT-A1")
        await _next(pilot)
        assert wiz.step == 1
        temp = wiz.query_one(f"#{_id(pilot, 'pre', 'temp')}", Input)
        await burst(pilot, "tab")  # from the time, blank, to the temperature
        assert wiz.focused is temp
        await burst(pilot, "ctrl+t", *"37.1")
        assert wiz.query_one(f"#{_id(pilot, 'pre', 'time')}", Input).value == "2020-03-16 09:00"
        assert wiz.focused is temp and temp.value == "37.1"
        assert wiz.message == ""
