"""The auditor's desk (issue 22): a record beside its photographs, SDV marked from the screen.

Found: on the audit screen a photo "view" was an illegible thumbnail, there
was no way to look at the consent page beside the record it supports, and
nothing on screen recorded that a monitor compared a record with its source.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static
from tui_helpers import PASSWORD, burst, settle
from wardcrf.screens.audit_desk import DeskScreen
from wardcrf.screens.audit_screen import AuditScreen
from wardcrf.screens.dialogs.sign import SignatureDialog
from wardcrf.screens.photo_view import ExportDialog, PhotoImage, PhotoScreen, ProtocolPicture, human_size
from wardcrf.screens.widgets import photo_protocol

from wardcrf import eventlog, records, sdv, users
from wardcrf.reports import desk as desk_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_audit_photos import consent_with_two_pages
from test_photos_verify import _tamper


@pytest.fixture
def monitor(admin) -> str:
    users.add_user(admin, "monitor", "Mona Monitor", "monitor", PASSWORD)
    return "monitor"


def consent_record(session) -> str:
    return session.store.scalar("SELECT event_id FROM records WHERE form = 'consent'")


async def open_desk(pilot, record: str) -> DeskScreen:
    screen = DeskScreen(pilot.app.ward, record)
    await settle(pilot)
    await pilot.app.push_screen(screen)
    await settle(pilot)
    return screen


def field_rows(screen) -> list[list[str]]:
    table = screen.query_one("#desk-fields", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def busy(monkeypatch) -> None:
    """A loaded laptop: reading the desk and marking SDV each do real CPU work first (no sleeps)."""

    def slowed(fn):
        def run(*args, **kwargs):
            block = b"\0" * (4 << 20)
            for _ in range(8):
                hashlib.sha256(block).digest()
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(desk_model, "desk", slowed(desk_model.desk))
    monkeypatch.setattr(sdv, "verify", slowed(sdv.verify))


# -- layout: side by side at 120 columns, one above the other below ------------------------------


@pytest.mark.parametrize(("size", "wide"), [((120, 40), True), ((80, 24), False), ((119, 40), False)])
async def test_record_beside_its_photograph_at_120_columns_else_above_it(
    app_for, site, tmp_path, session_for, size, wide
):
    _pid, shas = consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    app = app_for("auditor")
    async with app.run_test(size=size) as pilot:
        screen = await open_desk(pilot, record)
        body = screen.query_one("#desk-body")
        assert body.has_class("-wide") is wide
        rec, src = screen.query_one("#desk-record").region, screen.query_one("#desk-source").region
        if wide:
            assert src.x >= rec.right and src.y == rec.y
        else:
            assert src.y >= rec.bottom and src.x == rec.x
        # values as the casebook prints them (the desk read model), each with its SDV state
        model = desk_model.desk(session_for("auditor"), record)
        rows = field_rows(screen)
        assert [r[1:] for r in rows] == [["unverified", f.label, f.shown] for f in model.fields]
        assert "Consent given by" in {r[2] for r in rows}  # a printed label, not the field's code
        photos = screen.query_one("#desk-photos", DataTable)
        assert photos.row_count == 2 and {str(photos.get_row_at(i)[3]) for i in range(2)} == {"intact"}
        assert screen.query_one("#desk-image", PhotoImage).image is not None  # the first one drawn
        assert str(screen.query_one("#desk-photo-line", Static).content) == f"sha256:{model.photos[0].sha256}"
        assert {p.sha256 for p in model.photos} == set(shas)


async def test_a_resize_across_120_columns_changes_the_layout(app_for, site, tmp_path, session_for):
    consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    app = app_for("auditor")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_desk(pilot, record)
        assert not screen.query_one("#desk-body").has_class("-wide")
        await pilot.resize_terminal(130, 40)
        await settle(pilot)
        assert screen.query_one("#desk-body").has_class("-wide")


# -- SDV from the screen: a monitor marks, amendments show, other roles are refused ---------------


async def test_monitor_marks_a_field_in_a_burst_while_busy_then_sees_changed_since_verified(
    app_for, site, tmp_path, session_for, monitor, monkeypatch
):
    """From the audit trail: d (desk), Space (choose the first field), m (mark), password, Enter —
    all typed before the app looks at the first, while reading and marking are slow."""
    pid, _ = consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    busy(monkeypatch)
    app = app_for(monitor)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        audit_screen = app.screen
        assert isinstance(audit_screen, AuditScreen)
        trail = audit_screen.query_one("#trail", DataTable)
        trail.focus()
        trail.move_cursor(row=next(i for i, e in enumerate(audit_screen.entries) if e.event_id == record))
        await settle(pilot)
        before = eventlog.count(session_for("admin").store)
        await burst(pilot, "d", "space", "m", *PASSWORD, "enter")
        screen = app.screen
        assert isinstance(screen, DeskScreen)
        (mark,) = [e for e in eventlog.iter_events(session_for("admin").store, "type = ?", ("sdv.verified",))]
        assert eventlog.count(session_for("admin").store) == before + 1
        first = desk_model.desk(session_for("auditor"), record).fields[0]
        assert (
            mark.user == "monitor" and mark.body["fields"] == [first.name] and mark.body["scope"] == "fields"
        )
        rows = field_rows(screen)
        assert rows[0][1] == "verified" and all(r[1] == "unverified" for r in rows[1:])
        assert "partly verified" in str(screen.query_one("#desk-state", Static).content)
        assert (
            str(screen.query_one("#desk-message", Static).content) == f"Verified: {first.name} ({mark.id})."
        )

        # The clinician amends that field: the desk shows it changed since verified, nothing carries over.
        changed = {"consenter": "lar"} if first.name == "consenter" else {first.name: "1.1"}
        records.amend(session_for("clinician"), record, changed, reason="the page says otherwise")
        screen.reload()
        await settle(pilot)
        rows = field_rows(screen)
        assert rows[0][1] == "CHANGED"
        assert "CHANGED SINCE VERIFIED" in str(screen.query_one("#desk-state", Static).content)
        # m with nothing chosen marks the whole record again, anew
        await burst(pilot, "m", *PASSWORD, "enter")
        assert {r[1] for r in field_rows(screen)} == {"verified"}
        assert sdv.record_status(session_for("auditor").store, record).state == sdv.VERIFIED
        assert pid


async def test_a_wrong_password_marks_nothing_and_keeps_the_dialog(
    app_for, site, tmp_path, session_for, monitor
):
    consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    app = app_for(monitor)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_desk(pilot, record)
        before = eventlog.count(session_for("admin").store)
        await burst(pilot, "m", *"not-the-password", "enter")
        assert isinstance(app.screen, SignatureDialog)
        assert str(app.screen.query_one("#sig-message", Static).content)  # the one-line reason
        store = session_for("admin").store
        # nothing verified (the failed attempt itself is logged, as every failed password is)
        assert list(eventlog.iter_events(store, "type = ?", ("sdv.verified",))) == []
        assert eventlog.count(store) <= before + 1
        await burst(pilot, "escape")
        assert isinstance(app.screen, DeskScreen)
        assert {r[1] for r in field_rows(app.screen)} == {"unverified"}


@pytest.mark.parametrize("role", ["clinician", "auditor", "investigator"])
async def test_other_roles_cannot_mark_sdv_and_are_told_before_a_password(
    app_for, site, tmp_path, session_for, role
):
    consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    app = app_for(role)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_desk(pilot, record)
        before = eventlog.count(session_for("admin").store)
        await burst(pilot, "space", "m")
        assert app.screen is screen  # no signature dialog: nothing to sign
        message = str(screen.query_one("#desk-message", Static).content)
        assert message.startswith(f"role {role} may not mark records source-verified")
        assert "monitor" in message
        assert eventlog.count(session_for("admin").store) == before


async def test_desk_from_an_entry_that_is_not_about_a_record_says_so(app_for, admin):
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#trail", DataTable).focus()
        await burst(pilot, "d")
        assert isinstance(app.screen, AuditScreen)
        assert "not about a record" in str(app.screen.query_one("#filter-message", Static).content)


async def test_desk_for_an_unknown_record_refuses_in_one_line(app_for):
    app = app_for("auditor")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_desk(pilot, "no-such-record")
        assert "no-such-record" in str(screen.query_one("#desk-message", Static).content)
        await burst(pilot, "space", "m", "e")  # nothing loaded: nothing to act on, nothing breaks
        assert app.screen is screen


# -- a legible photograph: the graphics protocol, and a verified copy ----------------------------


async def test_export_a_verified_copy_to_a_chosen_folder(app_for, site, tmp_path, session_for):
    _pid, shas = consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    out = tmp_path / "for the viewer [a]"
    out.mkdir()
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_desk(pilot, record)
        sha = desk_model.desk(session_for("auditor"), record).photos[0].sha256
        # a folder that does not exist is refused in the dialog, which stays
        await burst(pilot, "e")
        assert isinstance(app.screen, ExportDialog)
        app.screen.query_one("#export-folder", Input).value = str(tmp_path / "nope")
        await burst(pilot, "enter")
        assert isinstance(app.screen, ExportDialog)
        assert "is not a folder" in str(app.screen.query_one("#export-message", Static).content)
        app.screen.query_one("#export-folder", Input).value = str(out)
        await burst(pilot, "enter")
        assert app.screen is screen
        (written,) = out.iterdir()
        assert written.name.startswith(sha) and hashlib.sha256(written.read_bytes()).hexdigest() == sha
        said = str(screen.query_one("#desk-message", Static).content)
        assert said == f"Verified copy (SHA-256 checked) written to {written.resolve()}"
        # a second export of the same photo: the same verified bytes, no refusal
        await burst(pilot, "e", "enter")
        assert [p.name for p in out.iterdir()] == [written.name]
    assert set(shas) >= {sha}


async def test_an_altered_photo_is_neither_drawn_nor_exported(app_for, site, tmp_path, session_for):
    _pid, shas = consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    for sha in shas:
        _tamper(session_for("clinician"), sha, cover_tracks=True)
    out = tmp_path / "out"
    out.mkdir()
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_desk(pilot, record)
        photos = screen.query_one("#desk-photos", DataTable)
        assert {str(photos.get_row_at(i)[3]) for i in range(2)} == {"MISMATCH"}
        assert screen.query_one("#desk-image", PhotoImage).image is None
        assert "(altered)" in str(screen.query_one("#desk-photo-line", Static).content)
        await burst(pilot, "e")
        app.screen.query_one("#export-folder", Input).value = str(out)
        await burst(pilot, "enter")
        assert isinstance(app.screen, ExportDialog)
        assert "do not match their hash" in str(app.screen.query_one("#export-message", Static).content)
        assert list(out.iterdir()) == []


async def test_the_photo_view_offers_a_verified_copy(app_for, site, tmp_path, session_for):
    consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    out = tmp_path / "out"
    out.mkdir()
    app = app_for("auditor")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_desk(pilot, record)
        await burst(pilot, "v")
        view = app.screen
        assert isinstance(view, PhotoScreen)
        assert "e: export a verified copy" in str(view.query_one("#photo-status", Static).content)
        await burst(pilot, "e")
        app.screen.query_one("#export-folder", Input).value = str(out)
        await burst(pilot, "enter")
        assert app.screen is view
        (written,) = out.iterdir()
        assert str(view.query_one("#photo-status", Static).content).endswith(str(written.resolve()))


async def test_with_a_graphics_protocol_the_photo_is_drawn_in_pixels(app_for, site, tmp_path, session_for):
    """Where the terminal speaks Kitty graphics (decided before the app starts), textual-image draws it."""
    from textual_image.widget import TGPImage

    consent_with_two_pages(site, tmp_path)
    record = consent_record(session_for("auditor"))
    photo_protocol.use("kitty", TGPImage)
    try:
        app = app_for("auditor")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_desk(pilot, record)
            holder = screen.query_one("#desk-image", PhotoImage)
            assert isinstance(holder.image, ProtocolPicture) and holder.image.protocol == "kitty"
            (drawn,) = holder.query(TGPImage).results()
            assert drawn.image is not None and drawn.size.width > 20
    finally:
        photo_protocol.use(None)


# -- the protocol decision (no terminal is queried here) ------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"TERM": "xterm-kitty"},
        {"KITTY_WINDOW_ID": "1", "TERM": "xterm-256color"},
        {"TERM_PROGRAM": "WezTerm"},
        {"TERM_PROGRAM": "iTerm.app"},
        {"TERM": "foot"},
        {"TERM": "mlterm"},
        {"KONSOLE_VERSION": "230804"},
    ],
)
def test_terminals_that_may_speak_a_protocol_are_recognised(env):
    assert photo_protocol.may_have_graphics(env)


@pytest.mark.parametrize("env", [{}, {"TERM": "xterm-256color"}, {"TERM": "linux"}, {"TERM": "screen"}])
def test_plain_terminals_are_not_queried(env, monkeypatch):
    assert not photo_protocol.may_have_graphics(env)
    monkeypatch.setitem(sys.modules, "textual_image.widget", None)  # an import would raise
    assert photo_protocol.prepare(env, tty=True) is None
    assert photo_protocol.chosen() is None


def test_no_terminal_or_off_means_half_blocks(monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_image.widget", None)
    assert photo_protocol.prepare({"TERM": "xterm-kitty"}, tty=False) is None
    assert photo_protocol.prepare({"TERM": "xterm-kitty", "WARDCRF_IMAGES": "off"}, tty=True) is None


@pytest.mark.parametrize("value", ["yes", "kitty\x1b[31m", "x" * 5000, "sixel,kitty"])
def test_a_bad_images_setting_is_refused_in_one_line(value):
    from wardcrf.errors import UsageError

    with pytest.raises(UsageError) as caught:
        photo_protocol.setting({"WARDCRF_IMAGES": value})
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert "use auto, off, kitty, sixel" in message and len(message) < 200


@pytest.mark.parametrize("value", ["auto", "OFF", " kitty ", "sixel", ""])
def test_good_images_settings_are_accepted(value):
    assert photo_protocol.setting({"WARDCRF_IMAGES": value}) in photo_protocol.CHOICES


async def test_a_delivery_sheet_beside_the_cold_chain_receipt_it_supports(
    app_for, site, tmp_path, session_for
):
    """Not only consent: a kit receipt's photographed delivery sheet sits beside the receipt."""
    from cc_helpers import ARRIVE, SIGNERS, add_unit_and_lot, iso
    from test_audit_photos import _page

    from wardcrf.coldchain import services

    ph = session_for("pharmacist")
    add_unit_and_lot(ph)
    sheet = _page(tmp_path / "sheet.jpg", "delivery sheet SH1")
    receipt = services.receive_shipment(
        ph,
        shipper_id="SH1",
        kits=["K001"],
        received_at=iso(ARRIVE),
        to_location="pharmacy",
        delivered_by_user="coordinator",
        dry_ice=True,
        container_intact=True,
        product_frozen=True,
        logger_serial="LG-9",
        condition="-72 °C on the shipper display",
        passwords=SIGNERS,
        photos=[f"@{sheet}"],
    )
    sha = hashlib.sha256(sheet.read_bytes()).hexdigest()
    app = app_for("auditor")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_desk(pilot, receipt.event.id)
        assert screen.desk is not None and screen.query_one("#desk-body").has_class("-wide")
        photos = screen.query_one("#desk-photos", DataTable)
        assert [str(c) for c in photos.get_row_at(0)][1:] == [
            f"{sha[:16]}…",
            human_size(sheet.stat().st_size),
            "intact",
        ]
        assert screen.query_one("#desk-image", PhotoImage).image is not None
        assert "SH1" in {r[3] for r in field_rows(screen)}


def test_which_record_a_trail_entry_is_about():
    from wardcrf.screens.audit_screen import record_of

    from wardcrf.audit import TrailEntry

    def entry(type_: str, **kw) -> TrailEntry:
        return TrailEntry("EV-9", "DEV", 9, "", "", "u", "r", type_, "participant:P", "", [], None, **kw)

    assert record_of(entry("record.submitted")) == "EV-9"
    assert record_of(entry("record.amended", amends="EV-1")) == "EV-1"
    assert record_of(entry("sdv.verified", body={"target": "EV-2"})) == "EV-2"
    assert record_of(entry("signature.applied", body={"target": "EV-3"})) == "EV-3"
    assert (
        record_of(entry("signature.applied", body={"target": "participant:P"})) is None
    )  # a casebook sign-off
    assert record_of(entry("user.added", body={"target": "EV-4"})) is None
    assert (
        record_of(entry("sdv.verified", body={"target": ["EV-5"]})) is None
    )  # hostile body: not a record id
