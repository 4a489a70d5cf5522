"""Finding 7: a receipt into an unmonitored place says how long the kits may stay there, and the clock shows.

Kits not moved into a monitored unit within the transit allowance (30 min)
can never be dosed. Before, a receipt into `pharmacy` said nothing and the
ward learnt it at the bedside. Now the receipt (and any handover to a place
outside a unit) says the deadline in local time, `coldchain status`, the
dashboard's read model and `today` count it down, and the default
destination of a receipt is the site's storage unit when it has one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from typed_support import assert_shape

from wardcrf import workflow
from wardcrf.clock import now_utc
from wardcrf.coldchain import custody, reports, services
from wardcrf.errors import UsageError

PW = "test-password-1"
SIGNERS = {u: PW for u in ("pharmacist", "investigator", "clinician", "coordinator")}
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def _now_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The laptop's clock stands still, so "N min left" is exact however long a loaded machine takes."""
    monkeypatch.setenv("WARDCRF_FAKE_NOW", datetime.now(UTC).replace(second=0, microsecond=0).isoformat())


@pytest.fixture
def ph(session_for):
    p = session_for("pharmacist")
    services.add_lot(
        p,
        "LOT1",
        product="haMSC-Exos",
        expiry="2099-01-01",
        release_ref="QP-1",
        kits=["K001", "K002"],
        quantity=2,
    )
    return p


def receipt_args(at: datetime, to: str | None = "pharmacy") -> dict:
    """A receipt of K001 and K002 at `at` into `to` (None: the receipt names no place)."""
    return dict(
        shipper_id="SH1",
        kits=["K001", "K002"],
        received_at=at.isoformat(timespec="seconds"),
        to_location=to,
        delivered_by_user="coordinator",
        dry_ice=True,
        container_intact=True,
        product_frozen=True,
        logger_serial="LG-9",
    )


def receive(ph, at: datetime, to: str | None = "pharmacy"):
    return services.receive_shipment(ph, **receipt_args(at, to), passwords=SIGNERS)


def local(t: datetime) -> str:
    t = t.astimezone(TZ)
    return t.strftime("%Y-%m-%d %H:%M +08:00")


def epoch(t: datetime) -> int:
    return int(t.timestamp())


def test_a_receipt_into_pharmacy_says_by_when_the_kits_must_be_in_a_unit(ph):
    arrived = (now_utc() - timedelta(minutes=10)).replace(microsecond=0)
    rec = receive(ph, arrived)
    assert rec.warnings == [
        f"2 kit(s) (K001, K002) at 'pharmacy', outside a monitored storage unit, since {local(arrived)}: "
        f"move them into a storage unit by {local(arrived + timedelta(minutes=30))} (20 min left of 30 min), "
        "or they can never be dosed"
    ]
    # the service returns the clocks it started, as the countdown shows them
    assert [(c.kit, c.location, c.deadline, c.left_s) for c in rec.clocks] == [
        ("K001", "pharmacy", epoch(arrived + timedelta(minutes=30)), 20 * 60),
        ("K002", "pharmacy", epoch(arrived + timedelta(minutes=30)), 20 * 60),
    ]
    clocks = reports.outside_units(ph.store, epoch(arrived + timedelta(minutes=10)))
    assert [(c["kit"], c["location"], c["minutes_left"], c["over_limit"]) for c in clocks] == [
        ("K001", "pharmacy", 20, False),
        ("K002", "pharmacy", 20, False),
    ]
    assert clocks[0]["deadline_local"] == local(arrived + timedelta(minutes=30))
    late = reports.outside_units(ph.store, epoch(arrived + timedelta(minutes=45)))
    assert [(c["minutes_left"], c["over_limit"]) for c in late] == [(-15, True), (-15, True)]
    # the dashboard's freezer panel and `coldchain status` carry it
    assert [c["kit"] for c in reports.freezers(ph)["outside_units"]] == ["K001", "K002"]
    assert [c["kit"] for c in reports.status(ph)["outside_units"]] == ["K001", "K002"]


def test_into_the_freezer_stops_the_clock_and_a_receipt_into_a_unit_starts_none(ph, session_for):
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    arrived = (now_utc() - timedelta(minutes=20)).replace(microsecond=0)
    receive(ph, arrived)
    moved = services.record_handover(
        ph,
        kits=["K001"],
        at=(arrived + timedelta(minutes=10)).isoformat(),
        from_location="pharmacy",
        to_location="FRZ-1",
        from_user="pharmacist",
        to_user="investigator",
        passwords=SIGNERS,
    )
    assert moved.warnings == []
    assert [c["kit"] for c in reports.outside_units(ph.store)] == ["K002"]
    services.add_lot(ph, "LOT2", product="p", expiry="2099-01-01", release_ref="r", kits=["K003"], quantity=1)
    direct = services.receive_shipment(
        ph,
        shipper_id="SH2",
        kits=["K003"],
        received_at=arrived.isoformat(),
        to_location="FRZ-1",
        delivered_by_user="coordinator",
        dry_ice=True,
        container_intact=True,
        product_frozen=True,
        logger_serial="LG-1",
        passwords=SIGNERS,
    )
    assert direct.warnings == []


def test_a_receipt_entered_after_the_limit_says_so(ph):
    arrived = (now_utc() - timedelta(minutes=50)).replace(microsecond=0)
    rec = receive(ph, arrived)
    assert rec.warnings[0].endswith(
        f"record their move into a storage unit if it happened by {local(arrived + timedelta(minutes=30))}; "
        "after 30 min outside one they can never be dosed"
    )


def test_at_the_bedside_the_clock_runs_to_the_dose(ph):
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    arrived = (now_utc() - timedelta(minutes=40)).replace(microsecond=0)
    receive(ph, arrived, to="FRZ-1")
    out = arrived + timedelta(minutes=5)
    h = services.record_handover(
        ph,
        kits=["K001"],
        at=out.isoformat(),
        from_location="FRZ-1",
        to_location="bedside:WUH01-001",
        from_user="pharmacist",
        to_user="clinician",
        passwords=SIGNERS,
    )
    assert h.warnings == [
        f"1 kit(s) (K001) at bedside:WUH01-001: dose by {local(out + timedelta(minutes=120))} "
        "(85 min left of the 120 min at the bedside), or they can no longer be dosed"
    ]
    clock = reports.outside_units(ph.store, epoch(out + timedelta(minutes=30)))
    assert [(c["kit"], c["bedside"], c["allowed_min"], c["minutes_left"]) for c in clock] == [
        ("K001", True, 120, 90)
    ]
    # a kit at disposal has no clock
    services.record_handover(
        ph,
        kits=["K001"],
        at=(out + timedelta(minutes=1)).isoformat(),
        from_location="bedside:WUH01-001",
        to_location="disposal",
        from_user="clinician",
        to_user="pharmacist",
        passwords=SIGNERS,
    )
    assert reports.outside_units(ph.store) == []


def test_today_lists_each_bedside_kit_on_its_own_row_under_the_participant_it_is_for(
    ph, session_for, monkeypatch
):
    """Two vials at the bedside are two rows: a nurse reads which vial goes to whom."""
    from wardcrf import kits

    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    arrived = (now_utc() - timedelta(minutes=40)).replace(microsecond=0)
    receive(ph, arrived, to="FRZ-1")
    out = arrived + timedelta(minutes=5)
    services.record_handover(
        ph,
        kits=["K001", "K002"],
        at=out.isoformat(),
        from_location="FRZ-1",
        to_location="bedside",
        from_user="pharmacist",
        to_user="clinician",
        passwords=SIGNERS,
    )
    by = local(out + timedelta(minutes=120))
    due = (out + timedelta(minutes=120)).astimezone(TZ).isoformat(timespec="minutes")

    def rows() -> list[tuple[str | None, str]]:
        items = workflow.today(session_for("clinician"))["items"]
        return [(i["participant"], i["what"]) for i in items if "kit" in i["what"]]

    # the records reserve neither kit for anyone: one row each, nobody named
    assert rows() == [
        (None, f"dose with kit K001 at bedside by {by} (120 min at the bedside)"),
        (None, f"dose with kit K002 at bedside by {by} (120 min at the bedside)"),
    ]
    # the records reserve K002 for WUH01-003 (as randomization's allocated kit does): its row says so
    monkeypatch.setattr(
        kits.kit_holders, "answers", [lambda _store, kit: "WUH01-003" if kit == "K002" else None]
    )
    assert rows() == [
        (None, f"dose with kit K001 at bedside by {by} (120 min at the bedside)"),
        ("WUH01-003", f"dose with kit K002 at bedside by {by} (120 min at the bedside)"),
    ]
    assert all(
        i["due"] == due for i in workflow.today(session_for("clinician"))["items"] if "kit" in i["what"]
    )


def test_today_lists_kits_on_the_clock(ph, session_for):
    arrived = (now_utc() - timedelta(minutes=10)).replace(microsecond=0)
    receive(ph, arrived)
    worklist = workflow.today(session_for("clinician"))
    assert_shape(worklist, workflow.status.Worklist)  # the cold chain's items are WorklistItems (issue #16)
    items = [i for i in worklist["items"] if "kit" in i["what"]]
    assert items == [
        {
            "participant": None,
            "what": "move kit(s) K001, K002 from pharmacy into a monitored storage unit by "
            f"{local(arrived + timedelta(minutes=30))} (30 min)",
            "due": (arrived + timedelta(minutes=30)).astimezone(TZ).isoformat(timespec="minutes"),
            "state": "due now",
        }
    ]


def test_a_receipt_defaults_to_the_sites_one_storage_unit(ph):
    assert services.default_receipt_location(ph.store) is None  # none registered: the person chooses
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    assert services.default_receipt_location(ph.store) == "FRZ-1"
    services.add_unit(ph, "FRZ-2", name="second freezer", location="ward 4")
    assert services.default_receipt_location(ph.store) is None  # two: no safe guess


def test_cli_receive_status_and_today_show_the_countdown(cli, ph):
    arrived = (now_utc() - timedelta(minutes=5)).replace(microsecond=0)
    r = cli(
        "coldchain", "receive", "--shipper", "SH1", "-k", "K001", "-k", "k002 ", "--at", arrived.isoformat(),
        "--to", "pharmacy", "--dry-ice", "--intact", "--frozen", "--courier-user", "coordinator",
        "--logger-serial", "LG-9", user="pharmacist",
        env={"WARDCRF_PASSWORD_COORDINATOR": PW},
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "move them into a storage unit by" in " ".join(r.out.split())
    r = cli("coldchain", "status", user="auditor")
    assert "Outside a monitored unit" in r.out and "K002" in r.out
    st = json.loads(cli("coldchain", "status", "--json", user="auditor").out)
    assert [c["kit"] for c in st["outside_units"]] == ["K001", "K002"]
    assert 24 <= st["outside_units"][0]["minutes_left"] <= 25
    r = cli("today", user="clinician")
    assert r.code == 0 and "move kit(s) K001, K002" in " ".join(r.out.split())


def test_clock_is_told_in_domain_words_for_an_unknown_place(ph):
    assert custody.clock_warning(ph.store, ["K001"], "disposal", 0, 0) is None
    text = custody.clock_warning(ph.store, ["K001"] * 5, "corridor", 0, 0)
    assert text and "5 kit(s) (K001, K001, K001 and 2 more) at 'corridor'" in text


def test_a_receipt_naming_no_place_goes_into_the_sites_one_unit_and_starts_no_clock(ph):
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    rec = receive(ph, now_utc() - timedelta(minutes=5), to=None)
    assert rec.event.body["data"]["to_location"] == "FRZ-1"
    assert rec.warnings == [] and rec.clocks == []
    assert reports.outside_units(ph.store) == []


@pytest.mark.parametrize("units", [(), ("FRZ-1", "FRZ-2")])
def test_a_receipt_naming_no_place_is_refused_when_there_is_no_one_unit(ph, units):
    """Before: the ward app filled in 'pharmacy', and the kits silently started a 30 min clock."""
    for u in units:
        services.add_unit(ph, u, name="freezer", location="ward 3")
    before = ph.store.scalar("SELECT count(*) FROM events")
    with pytest.raises(UsageError) as refused:
        services.preflight(
            ph, services.receive_shipment, **receipt_args(now_utc() - timedelta(minutes=5), to="  ")
        )
    text = refused.value.message
    assert text.startswith("say where the kits go (--to): ")
    assert ("a storage unit (FRZ-1, FRZ-2) or a place outside one" in text) == bool(units)
    assert ("no storage unit is registered" in text) == (not units)
    assert "'pharmacy', where they may stay 30 min before they must be in a monitored unit" in text
    assert ph.store.scalar("SELECT count(*) FROM events") == before


def test_cli_receive_without_to_uses_the_one_unit_or_asks_for_the_place(cli, ph):
    args = (
        "coldchain", "receive", "--shipper", "SH1", "-k", "K001", "--at", now_utc().isoformat(),
        "--dry-ice", "--intact", "--frozen", "--courier-user", "coordinator", "--logger-serial", "LG-9",
    )  # fmt: skip
    env = {"WARDCRF_PASSWORD_COORDINATOR": PW}
    r = cli(*args, user="pharmacist", env=env)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "say where the kits go (--to): a place (no storage unit is registered)" in r.err
    services.add_unit(ph, "FRZ-1", name="freezer", location="ward 3")
    r = cli(*args, user="pharmacist", env=env)
    assert r.code == 0, r.err
    assert custody.location_at(ph.store, "K001", int(now_utc().timestamp())) == "FRZ-1"
