"""A whole dose visit in one transaction: kit check, vitals, dose, post-dose check; the vitals series."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typed_support import assert_shape
from wf_support import PASSWORD, TZ, Staff, _copy_site, at, make_ward, on_format_two, today

from wardcrf import eventlog, records, workflow
from wardcrf.errors import PermissionDenied, Refused
from wardcrf.site import Site
from wardcrf.workflow import dose_visit, vitals_series

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago with a negative skin test."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def day(n: int):
    return today() - timedelta(days=10) + timedelta(days=n)


def visit_values(d, *, kit: str = "KIT-V1", hh: int = 9, mm: int = 0, pulse: str = "88"):
    start = datetime(d.year, d.month, d.day, hh, mm, tzinfo=TZ)
    iso = lambda delta: (start + timedelta(minutes=delta)).isoformat()  # noqa: E731
    return {
        "pre_vitals": {"time": iso(-10), "temp": "36.8", "pulse": pulse, "resp": "20", "oxysat": "94"},
        "dose": {
            "kit_id": kit,
            "lot": f"LOT-{kit}",
            "particles": "2.0e8",
            "volume": "6",
            "start": iso(0),
            "end": iso(30),
        },
        "post_vitals": {"time": iso(45), "temp": "36.9", "pulse": "90", "resp": "19", "oxysat": "96"},
        "post_dose_check": {"time": iso(50), "events": ["none"]},
    }


def ready(ward: Staff, kit: str, start: str) -> None:
    ward.freezer()
    ward.custody(kit, start)


def count_events(ward: Staff) -> int:
    return int(ward.clin.store.scalar("SELECT count(*) FROM events"))


def test_visit_records_four_records_in_the_rules_order(ward):
    values = visit_values(day(1), mm=5)
    ready(ward, "KIT-V1", values["dose"]["start"])
    visit = dose_visit.record_dose_visit(ward.clin, P1, **values)
    assert visit.saved and visit.dose_number == 1 and visit.window == "on_time"
    assert list(visit.events) == ["pre_vitals", "dose", "post_vitals", "post_dose_check"]
    pos = [ward.clin.store.scalar("SELECT pos FROM events WHERE id = ?", (e,)) for e in visit.events.values()]
    assert pos == sorted(pos)
    vit = records.for_subject(ward.aud.store, f"participant:{P1}", "vitals")
    assert sorted((v.data["timepoint"], v.data["dose"]) for v in vit) == [("post_dose", 1), ("pre_dose", 1)]
    check = records.for_subject(ward.aud.store, f"participant:{P1}", "post_dose_check")
    assert check[0].data["events"] == ["none"] and check[0].data["dose"] == 1
    # no timing deviation for this dose; later doses whose windows closed are still missing
    assert not [d for d in visit.deviations if d.get("dose") == 1]
    assert {d["kind"] for d in visit.deviations} == {"missing dose"}
    assert visit.ae_expected == []


def test_dry_run_saves_nothing_and_explains_a_late_dose(ward):
    values = visit_values(day(2))  # dose 1 was due on day 1
    ready(ward, "KIT-V1", values["dose"]["start"])
    before = count_events(ward)
    visit = dose_visit.record_dose_visit(ward.clin, P1, dry_run=True, **values)
    assert not visit.saved and visit.events == {}
    assert count_events(ward) == before
    late = [d for d in visit.deviations if d["kind"] == "late dose"]
    assert late and late[0]["dose"] == 1 and late[0]["minutes_outside"] == 24 * 60 - 120
    assert visit.window == "late"
    # The dose wizard reads the visit: each deviation is a `Deviation` (its window and minutes outside
    # included), no key its type does not name (issue #16).
    assert_shape(visit, dose_visit.DoseVisit)
    extras = {"code", "number"} if on_format_two(ward) else set()  # a format-2 deviation's code and number
    assert (
        set(late[0])
        == {"kind", "dose", "due", "given", "event", "window_minutes", "minutes_outside"} | extras
    )


def test_refused_post_dose_vitals_roll_back_the_whole_visit(ward):
    values = visit_values(day(1))
    values["post_vitals"]["time"] = values["dose"]["start"]  # before the inhalation ended
    ready(ward, "KIT-V1", values["dose"]["start"])
    before = count_events(ward)
    with pytest.raises(dose_visit.VisitPartRefused) as info:
        dose_visit.record_dose_visit(ward.clin, P1, **values)
    assert info.value.part == "post_vitals" and "time" in info.value.problems
    assert "nothing of this dose visit was saved" in info.value.message
    assert count_events(ward) == before
    assert ward.clin.store.scalar("SELECT count(*) FROM doses") == 0
    assert ward.clin.store.scalar("SELECT count(*) FROM vitals") == 0


def test_custody_gate_refusal_leaves_no_pre_dose_vitals(ward):
    values = visit_values(day(1), kit="KIT-NOWHERE")
    ward.freezer()
    with pytest.raises(
        dose_visit.VisitPartRefused, match="custody gate: kit KIT-NOWHERE is not registered"
    ) as info:
        dose_visit.record_dose_visit(ward.clin, P1, **values)
    assert info.value.part == "dose"
    assert ward.clin.store.scalar("SELECT count(*) FROM vitals") == 0


def test_soft_range_needs_a_reason_for_its_part(ward):
    values = visit_values(day(1), pulse="135")
    ready(ward, "KIT-V1", values["dose"]["start"])
    with pytest.raises(dose_visit.VisitPartRefused, match="expected range") as info:
        dose_visit.record_dose_visit(ward.clin, P1, **values)
    assert info.value.part == "pre_vitals"
    visit = dose_visit.record_dose_visit(
        ward.clin, P1, reasons={"pre_vitals": "anxious, rechecked"}, **values
    )
    pre = eventlog.get(ward.aud.store, visit.events["pre_vitals"])
    assert pre is not None and pre.body["overrides"] == {"pulse": "anxious, rechecked"}


def test_typed_timepoint_or_dose_must_match_the_visit(ward):
    values = visit_values(day(1))
    values["post_vitals"]["timepoint"] = "pre_dose"
    with pytest.raises(dose_visit.VisitPartRefused, match="does not match this visit") as info:
        dose_visit.record_dose_visit(ward.clin, P1, **values)
    assert info.value.part == "post_vitals"


def test_prespecified_events_checked_expect_ae_forms(ward):
    values = visit_values(day(1))
    values["post_dose_check"]["events"] = ["fever", "cough"]
    ready(ward, "KIT-V1", values["dose"]["start"])
    visit = dose_visit.record_dose_visit(ward.clin, P1, **values)
    assert visit.ae_expected == ["fever", "cough"]


def test_auditor_may_not_record_a_visit_or_check_kits(ward):
    values = visit_values(day(1))
    with pytest.raises(PermissionDenied):
        dose_visit.record_dose_visit(ward.aud, P1, **values)
    with pytest.raises(PermissionDenied):
        dose_visit.check_kit(ward.aud, P1, "KIT-V1")


def test_no_next_dose_after_the_last(ward):
    for n in range(1, 6):
        ward.dose(P1, n, day(n))
    with pytest.raises(Refused, match="has had all 5 doses"):
        dose_visit.record_dose_visit(ward.clin, P1, **visit_values(day(6)))


# -- the scan step -----------------------------------------------------------------------------


def test_scanned_kit_at_the_bedside_is_accepted_with_its_lot(ward):
    start = datetime.now(TZ) - timedelta(minutes=5)
    ready(ward, "KIT-S1", start.isoformat())
    got = dose_visit.check_kit(ward.clin, P1, "\x1dkit-s1\r\n", start)  # GS prefix, CR LF suffix
    assert got.ok and got.kit == "KIT-S1" and got.lot == "LOT-KIT-S1" and got.reason is None


def test_unknown_kit_is_refused_with_the_custody_reason(ward):
    got = dose_visit.check_kit(ward.clin, P1, "KIT-NOPE")
    assert not got.ok and "custody gate: kit KIT-NOPE is not registered in any lot" in (got.reason or "")


def test_malformed_scan_is_refused(ward):
    got = dose_visit.check_kit(ward.clin, P1, "KIT NOPE!")
    assert not got.ok and "KIT NOPE!" in (got.reason or "")


def test_used_kit_is_refused(ward):
    ward.dose(P1, 1, day(1), kit="KIT-U1")
    got = dose_visit.check_kit(ward.clin, P1, "kit-u1")
    assert not got.ok and "already used for WUH01-001 dose 1" in (got.reason or "")


def test_quarantined_kit_is_refused(ward):
    from wardcrf.coldchain import scenario

    start = datetime.now(TZ) - timedelta(minutes=5)
    ward.freezer()
    signers = {u: PASSWORD for u in ("clinician", "clinician2", "investigator")}
    scenario.ready_kits(
        ward.clin,
        signers,
        lot="LOT-Q",
        kits=["KIT-Q1"],
        dose_times=[start],
        clinician="clinician2",
        workdir=ward.tmp,
        bedside=ward.clin,
        excursion=(start - timedelta(hours=10), 30),
    )
    got = dose_visit.check_kit(ward.clin, P1, "KIT-Q1", start)
    assert not got.ok and "quarantined" in (got.reason or "")


def test_unknown_participant_is_refused(ward):
    with pytest.raises(Refused, match="unknown participant"):
        dose_visit.check_kit(ward.clin, "WUH01-999", "KIT-1")


# -- vitals series --------------------------------------------------------------------------


def test_vitals_by_dose_pre_and_post_with_amendments(ward):
    values = visit_values(day(1))
    ready(ward, "KIT-V1", values["dose"]["start"])
    visit = dose_visit.record_dose_visit(ward.clin, P1, **values)
    # one record per timepoint: a corrected reading is an amendment, and the series shows it
    workflow.amend(
        ward.clin,
        visit.events["post_vitals"],
        {"oxysat": "97", "sysbp": "120", "diabp": "80"},
        reason="misread the oximeter; blood pressure added",
    )
    ward.submit(
        "vitals",
        participant=P1,
        timepoint="unscheduled",
        time=at(day(1), 15),
        temp="38.0",
        pulse="84",
        resp="18",
        oxysat="90",
    )
    series = vitals_series.vitals_by_dose(ward.aud, P1)
    assert series.doses == 5 and series.doses_given == 1
    by = {m.name: m for m in series.measures}
    assert [m.name for m in series.measures] == ["oxysat", "temp", "pulse", "resp", "sysbp", "diabp"]
    assert by["oxysat"].pre == [94.0, None, None, None, None]
    assert by["oxysat"].post[0] == 97.0  # as amended, not 96
    assert by["sysbp"].pre[0] is None and by["sysbp"].post[0] == 120.0
    assert by["temp"].unit == "C" and by["temp"].measured


def test_vitals_by_dose_refuses_unknown_participant(ward):
    with pytest.raises(Refused, match="unknown participant"):
        vitals_series.vitals_by_dose(ward.aud, "WUH01-999")


# -- the day's rules, before anything is typed (issue 14, finding 6) -------------------------


def test_day_check_accepts_a_dose_in_its_window(ward):
    got = dose_visit.check_day(ward.clin, P1, datetime(*day(1).timetuple()[:3], 9, 30, tzinfo=TZ))
    assert got.ok and got.reason is None
    assert got.dose_number == 1 and got.window == "on_time" and got.minutes_outside == 0


def test_day_check_says_how_late_a_dose_outside_its_window_is(ward):
    got = dose_visit.check_day(ward.clin, P1, datetime(*day(1).timetuple()[:3], 13, 30, tzinfo=TZ))
    assert got.ok and got.window == "late" and got.minutes_outside == 150  # window closes 11:00


def test_day_check_refuses_a_second_dose_the_same_day_in_the_saves_words(ward):
    values = visit_values(day(1))
    ready(ward, "KIT-V1", values["dose"]["start"])
    dose_visit.record_dose_visit(ward.clin, P1, **values)
    got = dose_visit.check_day(ward.clin, P1, datetime(*day(1).timetuple()[:3], 18, 0, tzinfo=TZ))
    assert not got.ok and "one dose per day" in str(got.reason)
    later = visit_values(day(1), kit="KIT-V2", hh=18)
    ready(ward, "KIT-V2", later["dose"]["start"])
    with pytest.raises(Refused, match="one dose per day"):  # the save says the same
        dose_visit.record_dose_visit(ward.clin, P1, **later)


def test_day_check_refuses_dose_1_on_the_enrollment_day(ward):
    got = dose_visit.check_day(ward.clin, P1, datetime(*day(0).timetuple()[:3], 12, 0, tzinfo=TZ))
    assert not got.ok and "is not after the enrollment day" in str(got.reason)


def test_day_check_needs_the_dose_permission(ward):
    with pytest.raises(PermissionDenied):
        dose_visit.check_day(ward.aud, P1)
