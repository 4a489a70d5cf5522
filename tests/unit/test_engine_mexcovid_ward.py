"""MEXCOVID 1.0 run by the engine (a format-2 version of its own, `tests/mexcovid_engine.py`): the
declarations the re-encoding gives its messages in are the ones the ward refuses with (issue 17).

Each case is a generic part of the format (docs/protocol.md) that MEXCOVID's file uses with the words
its format-1 tests read: a field's `required_when = { when, message }`, a form's `unique = { fields,
when, message }`, a dose assessment's `duplicate`. Accepted and refused, on a site started with
`Site.init(protocol_file=...)` as `wardcrf init --protocol FILE` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import mexcovid_engine
import pytest
from mexcovid_engine import CT_SEGMENTS
from site_users import ROLE_USERS
from wf_support import PASSWORD, Staff, _copy_site, at, make_ward, today

from wardcrf import protocol, users
from wardcrf.engine import loading
from wardcrf.errors import Refused, ValidationFailed
from wardcrf.site import Session, Site

# The oxygen form's clash declared only for days with oxygen given (`unique.when`): room air twice a day
# is accepted, a second record of support is refused in the declaration's words.
OXYGEN_UNIQUE = (
    'unique = { fields = ["date"], message = "oxygen support for {participant} on {date} is already recorded '
    '({record}); one record per day: amend it instead" }'
)
OXYGEN_UNIQUE_WHEN = OXYGEN_UNIQUE.replace(
    'fields = ["date"],', 'fields = ["date"], when = "support != \'room_air\'",'
)


def _template(root: Path, source: str) -> Path:
    m = loading.parse(source, "mexcovid.toml")
    result = Site.init(
        root / "site",
        site="WUH01",
        device_name="lap1",
        admin="admin",
        password=PASSWORD,
        admin_full_name="Ada Admin",
        protocol_file=m,
    )
    s = result.site.unlock("admin", PASSWORD)
    try:
        for role in ROLE_USERS:
            users.add_user(s, role, f"{role.title()} User", role, PASSWORD)
        users.add_user(s, "clinician2", "Second Doctor", "clinician", PASSWORD)
        s.store.checkpoint()
    finally:
        s.close()
    return root / "site"


@pytest.fixture(scope="session")
def _mex_engine_template(tmp_path_factory) -> Path:
    return _template(tmp_path_factory.mktemp("mexengine"), mexcovid_engine.own_version_source())


@pytest.fixture(scope="session")
def _mex_engine_when_template(tmp_path_factory) -> Path:
    source = mexcovid_engine.own_version_source()
    assert OXYGEN_UNIQUE in source
    return _template(
        tmp_path_factory.mktemp("mexenginewhen"), source.replace(OXYGEN_UNIQUE, OXYGEN_UNIQUE_WHEN, 1)
    )


@pytest.fixture
def site(data_dir: Path, _mex_engine_template: Path) -> Site:
    return _copy_site(_mex_engine_template, data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


@pytest.fixture
def ward_on(tmp_path) -> Iterator[Callable[[Path], Staff]]:
    """A ward on a copy of another template (a variant of the file), its sessions closed after the test."""
    opened: list[Session] = []

    def make(template: Path) -> Staff:
        copy = _copy_site(template, tmp_path / f"variant{len(opened)}" / "site")

        def open_(user: str) -> Session:
            opened.append(Site.open(copy.data_dir).unlock(user, PASSWORD))
            return opened[-1]

        return Staff(open_, tmp_path / "pages")

    yield make
    for s in opened:
        s.close()


def test_the_site_runs_mexcovid_1_0_as_a_format_2_version_of_its_own(ward):
    active = protocol.active(ward.clin.store)
    assert (active.id, active.version) == ("MEXCOVID", "1.0")
    assert active.engine is not None and not loading.reencodes(active.engine)


# -- required_when = { when, message } ----------------------------------------------------------------


def test_a_required_when_message_is_the_refusal_with_its_holes_filled(ward):
    pid = ward.consent()
    with pytest.raises(ValidationFailed) as info:
        ward.submit(
            "vitals", participant=pid, timepoint="pre_dose", temp="37.1", pulse="88", resp="20", oxysat="95"
        )
    assert info.value.problems == {"dose": "required for pre_dose vitals: which dose (1 to 5)"}


def test_a_required_when_that_does_not_hold_requires_nothing(ward):
    pid = ward.consent()
    ev = ward.submit("vitals", participant=pid, temp="37.1", pulse="88", resp="20", oxysat="95")
    assert ev.body["data"]["timepoint"] == "unscheduled" and "dose" not in ev.body["data"]


def test_a_required_when_without_a_message_says_its_condition(tmp_path, ward_on):
    """`required_when = "EXPR"` (no table): the default words name the condition."""
    source = mexcovid_engine.own_version_source()
    old = (
        "required_when = { when = \"timepoint in ['pre_dose', 'post_dose']\", "
        'message = "required for {timepoint} vitals: which dose (1 to 5)" }'
    )
    assert old in source
    w = ward_on(
        _template(
            tmp_path / "plain",
            source.replace(old, "required_when = \"timepoint in ['pre_dose', 'post_dose']\"", 1),
        )
    )
    pid = w.consent()
    with pytest.raises(ValidationFailed) as info:
        w.submit(
            "vitals", participant=pid, timepoint="post_dose", temp="37.1", pulse="88", resp="20", oxysat="95"
        )
    assert info.value.problems == {"dose": "required when timepoint in ['pre_dose', 'post_dose']"}


# -- unique = { fields, when, message } -------------------------------------------------------------------


def test_a_once_per_participant_form_is_refused_a_second_time_in_its_words(ward):
    pid = ward.consent()
    first = ward.screen(pid)
    with pytest.raises(Refused) as info:
        ward.screen(pid)
    assert str(info.value) == (
        f"{pid} was already screened (record {first.id}); correct it with `wardcrf amend`, "
        "an id is never screened twice"
    )


def test_one_record_per_value_names_the_value_and_the_record(ward):
    pid = ward.consent()
    day = today() - timedelta(days=2)
    first = ward.submit("oxygen", participant=pid, date=day.isoformat(), support="nasal_cannula", flow="3")
    ward.submit("oxygen", participant=pid, date=(day + timedelta(days=1)).isoformat(), support="room_air")
    with pytest.raises(Refused) as info:
        ward.submit("oxygen", participant=pid, date=day.isoformat(), support="room_air")
    assert str(info.value) == (
        f"oxygen support for {pid} on {day.isoformat()} is already recorded ({first.id}); "
        "one record per day: amend it instead"
    )


def test_unique_when_counts_only_the_records_it_holds_for(_mex_engine_when_template, ward_on):
    w = ward_on(_mex_engine_when_template)
    pid = w.consent()
    day = (today() - timedelta(days=2)).isoformat()
    w.submit("oxygen", participant=pid, date=day, support="room_air")
    w.submit("oxygen", participant=pid, date=day, support="room_air")  # `when` false: not counted
    first = w.submit("oxygen", participant=pid, date=day, support="hfnc", flow="40", fio2="50")
    w.submit("oxygen", participant=pid, date=day, support="room_air")  # the one in hand: `when` false
    with pytest.raises(Refused, match=rf"on {day} is already recorded \({first.id}\); one record per day"):
        w.submit("oxygen", participant=pid, date=day, support="niv", flow="30", fio2="60")


# -- a dose assessment's `duplicate` --------------------------------------------------------------------------


VITALS = {"temp": "37.1", "pulse": "88", "resp": "20", "oxysat": "95", "sysbp": "120", "diabp": "80"}


def _vitals(ward: Staff, pid: str, timepoint: str, n: int, when: str):
    return ward.submit("vitals", participant=pid, timepoint=timepoint, dose=str(n), time=when, **VITALS)


def test_a_second_pre_dose_record_of_a_dose_is_refused_in_the_declared_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    first = _vitals(ward, pid, "pre_dose", 1, at(day1, 8))
    with pytest.raises(Refused) as info:
        _vitals(ward, pid, "pre_dose", 1, at(day1, 8, 10))
    assert str(info.value) == (
        f"pre-dose vitals for dose 1 of {pid} are already recorded ({first.id}); amend that record "
        f"with a reason (wardcrf amend {first.id} --reason ...), or record a repeat measurement as "
        "timepoint=unscheduled"
    )
    ward.submit("vitals", participant=pid, time=at(day1, 8, 10), **VITALS)  # a repeat: unscheduled


# -- a dose assessment's `refusals` ---------------------------------------------------------------------------


def test_an_after_assessment_of_an_administration_not_given_is_refused_in_not_given_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    with pytest.raises(ValidationFailed) as info:
        _vitals(ward, pid, "post_dose", 1, at(day1, 10))
    assert info.value.problems == {
        "dose": f"dose 1 has not been recorded for {pid}; post-dose vitals follow it"
    }
    with pytest.raises(ValidationFailed) as info:
        ward.submit("post_dose_check", participant=pid, dose="1", events="none", time=at(day1, 10))
    assert info.value.problems == {"dose": f"dose 1 has not been recorded for {pid}"}


def test_an_after_assessment_before_the_end_is_refused_in_before_end_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ward.dose(pid, 1, day1)  # 09:00 to 09:30
    with pytest.raises(ValidationFailed) as info:
        _vitals(ward, pid, "post_dose", 1, at(day1, 9, 20))
    assert info.value.problems == {
        "time": f"{at(day1, 9, 20)[:16]}+08:00 is before dose 1 ended ({at(day1, 9, 30)[:16]}+08:00); "
        "post-dose vitals follow the dose"
    }
    assert _vitals(ward, pid, "post_dose", 1, at(day1, 9, 45)).id


def test_a_before_assessment_names_the_next_administration_in_not_next_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    with pytest.raises(ValidationFailed) as info:
        _vitals(ward, pid, "pre_dose", 3, at(day1, 8))
    assert info.value.problems == {"dose": f"the next dose for {pid} is dose 1, not 3"}
    assert _vitals(ward, pid, "pre_dose", 1, at(day1, 8)).id
    ward.dose(pid, 1, day1)
    assert _vitals(ward, pid, "pre_dose", 2, at(day1 + timedelta(days=1), 8)).id  # now the next is 2


def test_a_before_assessment_after_its_administration_started_is_refused_in_after_start_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ward.dose(pid, 1, day1)  # 09:00, with no pre-dose vitals (not blocking in MEXCOVID)
    with pytest.raises(ValidationFailed) as info:
        _vitals(ward, pid, "pre_dose", 1, at(day1, 9, 10))
    assert info.value.problems == {
        "time": f"{at(day1, 9, 10)[:16]}+08:00 is after dose 1 started ({at(day1, 9)[:16]}+08:00); "
        "pre-dose vitals precede it"
    }
    assert _vitals(ward, pid, "pre_dose", 1, at(day1, 8, 40)).id  # taken before it: accepted late


# -- an administration's `refusals`: the engine's built-in refusals in the trial's words ----------------------


def test_a_full_course_then_one_more_is_refused_in_course_complete_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    for n in range(1, 6):
        ev = ward.dose(pid, n, day0 + timedelta(days=n))
        assert ev.body["data"]["dose_number"] == n
    with pytest.raises(Refused) as info:
        ward.dose(pid, 6, day0 + timedelta(days=6))
    assert str(info.value) == f"{pid} has had all 5 doses; dose 6 is refused"


def test_a_second_administration_the_same_day_is_refused_in_per_day_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    first = ward.dose(pid, 1, day0 + timedelta(days=1))
    with pytest.raises(Refused) as info:
        ward.dose(pid, 2, day0 + timedelta(days=1), hh=17)
    day1 = (day0 + timedelta(days=1)).isoformat()
    assert str(info.value) == f"{pid} already had dose 1 on {day1} (record {first.id}); one dose per day"
    assert (
        ward.dose(pid, 2, day0 + timedelta(days=2)).body["data"]["dose_number"] == 2
    )  # the next day: accepted


def test_a_start_before_the_first_day_is_refused_in_before_first_day_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    with pytest.raises(ValidationFailed) as info:
        ward.dose(pid, 1, day0)
    assert info.value.problems == {
        "start": f"{day0.isoformat()} is not after the enrollment day {day0.isoformat()} (dose 1 is on day 1)"
    }
    assert ward.dose(pid, 1, day0 + timedelta(days=1), hh=0, mm=5).body["data"]["window"] == "early"


def test_a_kit_given_before_is_refused_in_kit_used_words(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    first = ward.dose(pid, 1, day0 + timedelta(days=1), kit="EXO-0001")
    with pytest.raises(ValidationFailed) as info:
        ward.dose(pid, 2, day0 + timedelta(days=2), kit="EXO-0001")
    assert info.value.problems == {"kit_id": f"kit EXO-0001 was already used for {pid} dose 1 ({first.id})"}
    assert ward.dose(pid, 2, day0 + timedelta(days=2), kit="EXO-0002").body["data"]["kit_id"] == "EXO-0002"


# -- the sentinel gate: its owner's words ----------------------------------------------------------------------


def test_the_sentinel_gate_names_the_sentinel_waiting_for_a_dsmg_continue(ward):
    p1, _ = ward.enrolled_participant()
    p2 = ward.consent()
    ward.screen(p2)
    with pytest.raises(Refused) as info:
        ward.enroll(p2, today() - timedelta(days=2))
    assert str(info.value) == (
        f"sentinel rule: {p2} cannot be enrolled until a DSMG member records a 'continue' decision on "
        f"{p1}'s safety data"
    )
    ward.continue_(p1)
    assert ward.enroll(p2, today() - timedelta(days=2)).id


# -- what a rule, a computed field and a declared deviation say ---------------------------------------------


def test_a_rule_without_a_field_is_the_forms_problem_and_names_the_participant(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    with pytest.raises(ValidationFailed) as info:
        ward.submit("labs", participant=pid, timepoint="baseline", date=day0.isoformat())
    assert set(info.value.problems) == {"labs"}
    assert info.value.problems["labs"].startswith("enter at least one laboratory value")
    with pytest.raises(ValidationFailed) as info:
        ward.submit("labs", participant=pid, timepoint="post_treatment", date=day0.isoformat(), crp="3")
    assert info.value.problems == {
        "timepoint": f"no dose recorded for {pid}; 'post_treatment' follows the last dose"
    }
    assert ward.submit("labs", participant=pid, timepoint="baseline", date=day0.isoformat(), crp="3").id


def test_a_surrogates_name_on_the_participants_own_consent_is_refused_by_the_declared_rule(ward):
    with pytest.raises(ValidationFailed) as info:
        ward.consent(surrogate_name="Someone Else")
    assert "surrogate_name" in info.value.problems
    assert ward.consent(consenter="surrogate", surrogate_name="Someone Else", surrogate_relationship="spouse")


def test_a_sum_counts_whole_number_choice_codes_and_skips_the_others(ward):

    pid, day0 = ward.enrolled_participant(days_ago=8)
    scores = dict.fromkeys(CT_SEGMENTS, "2")
    scores["r_upper_apical"] = "ne"
    ev = ward.submit(
        "ct_score",
        participant=pid,
        timepoint="baseline",
        date=day0.isoformat(),
        lesion_form="ground_glass",
        **scores,
    )
    assert (ev.body["data"]["total"], ev.body["data"]["evaluable_segments"]) == (34, 17)
    clear = dict.fromkeys(CT_SEGMENTS, "0")
    ev = ward.submit("ct_score", participant=pid, timepoint="other", date=day0.isoformat(), **clear)
    assert (ev.body["data"]["total"], ev.body["data"]["evaluable_segments"]) == (0, 18)


def test_a_declared_participant_deviation_is_listed_with_its_record_and_printed(ward, cli):
    from wardcrf import workflow

    pid, day0 = ward.enrolled_participant(days_ago=8)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    assert not [
        d
        for d in workflow.show(ward.clin, pid)["deviations"]
        if d.get("code") == "dosed_after_positive_skin_test"
    ]
    positive = ward.skin(pid, day0, result="positive")
    [dev] = [
        d
        for d in workflow.show(ward.clin, pid)["deviations"]
        if d.get("code") == "dosed_after_positive_skin_test"
    ]
    assert (dev["kind"], dev["event"]) == ("dosed after a positive skin test", positive.id)
    r = cli("participant", "show", pid, user="clinician")
    assert r.code == 0, r.err
    assert f"deviation: dosed after a positive skin test ({positive.id})" in r.out


def test_a_slot_whose_window_closed_without_a_record_is_a_missing_dose(ward, cli):
    from wardcrf import workflow

    pid, day0 = ward.enrolled_participant(days_ago=8)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    info = workflow.show(ward.clin, pid)
    assert [d["number"] for d in info["deviations"] if d["kind"] == "missing dose"] == [2, 3, 4, 5]
    assert info["next_dose"]["state"] == "overdue"  # still to give, late (late_until = course_end)
    ward.dose(pid, 2, day0 + timedelta(days=3))  # given late: no longer missing
    info = workflow.show(ward.clin, pid)
    assert [d["number"] for d in info["deviations"] if d["kind"] == "missing dose"] == [3, 4, 5]
    r = cli("participant", "show", pid, user="clinician")
    assert r.code == 0 and "deviation: missing dose 3 (due " in r.out, r.output


# -- the wizards' first step says what the save says ----------------------------------------------------


def test_the_day_check_and_the_wizards_plan_say_what_the_save_says(ward):
    """On the re-encoding, `dose_visit.check_day` is the engine's (the administration wizard's plan, then the
    save's own per-day and first-day rules in their declared words); the plan reads `required_when` tables."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from wardcrf.workflow import administration_visit, dose_visit

    tz = ZoneInfo("Asia/Shanghai")
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    plan = administration_visit.plan(
        ward.clin, pid, datetime(day1.year, day1.month, day1.day, 9, 30, tzinfo=tz)
    )
    assert plan.number == 1 and "interruption_note" not in plan.required  # `{ when = "interruptions > 0" }`
    got = dose_visit.check_day(ward.clin, pid, datetime(day1.year, day1.month, day1.day, 13, 30, tzinfo=tz))
    assert (got.ok, got.dose_number, got.window, got.minutes_outside) == (True, 1, "late", 150)
    on_day0 = dose_visit.check_day(
        ward.clin, pid, datetime(day0.year, day0.month, day0.day, 12, 0, tzinfo=tz)
    )
    assert not on_day0.ok and f"is not after the enrollment day {day0.isoformat()}" in str(on_day0.reason)
    first = ward.dose(pid, 1, day1)
    again = dose_visit.check_day(ward.clin, pid, datetime(day1.year, day1.month, day1.day, 18, 0, tzinfo=tz))
    assert not again.ok and again.reason == (
        f"{pid} already had dose 1 on {day1.isoformat()} (record {first.id}); one dose per day"
    )


# -- the order and the words of an administration's refusals ---------------------------


def test_the_same_administration_sent_twice_is_refused_as_a_second_that_day_not_by_its_kit(ward):
    """The kit is asked after the day's refusals: a record submitted twice (same kit, same start) is named for
    what it is, a second administration that day; the same kit on another day is refused by its kit."""
    from wardcrf import eventlog

    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    first = ward.dose(pid, 1, day1, kit="EXO-0001")
    before = eventlog.count(ward.clin.store)
    with pytest.raises(Refused) as info:
        ward.dose(pid, 1, day1, kit="EXO-0001")
    assert (
        str(info.value)
        == f"{pid} already had dose 1 on {day1.isoformat()} (record {first.id}); one dose per day"
    )
    with pytest.raises(ValidationFailed) as failed:
        ward.dose(pid, 2, day0 + timedelta(days=2), kit="EXO-0001")
    assert failed.value.problems == {"kit_id": f"kit EXO-0001 was already used for {pid} dose 1 ({first.id})"}
    assert eventlog.count(ward.clin.store) == before
    assert ward.dose(pid, 2, day0 + timedelta(days=2), kit="EXO-0002").body["data"]["dose_number"] == 2


def test_an_administrations_own_field_checks_are_reported_with_the_forms_other_problems(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    with pytest.raises(ValidationFailed) as info:
        ward.dose(pid, 1, day1, end=at(day1, 8), given_by="ghost", volume="abc")
    problems = info.value.problems
    assert set(problems) == {"end", "given_by", "volume"}
    assert problems["given_by"] == "ghost is not an active user of this site"
    assert problems["end"].startswith(f"{day1.isoformat()}T08:00+08:00 is before the start ")
    with pytest.raises(ValidationFailed) as info:  # an auditor may not give a dose, whatever else is wrong
        ward.dose(pid, 1, day1, given_by="auditor", volume="abc")
    assert (
        set(info.value.problems) == {"given_by", "volume"}
        and "doses are given by" in (info.value.problems["given_by"])
    )
    ev = ward.dose(pid, 1, day1, given_by="clinician2")
    assert ev.body["data"]["given_by"] == "clinician2"


def test_the_dsmg_hold_is_refused_with_the_action_it_stops(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    second = ward.consent()
    ward.screen(second)
    stop = ward.submit("dsmg_decision", who=ward.dsmg, participant=pid, decision="stop", rationale="grade 4")
    held = f"the DSMG recorded 'stop' ({stop.id}, about {pid}): all dosing and enrollment are halted"
    with pytest.raises(Refused) as info:
        ward.dose(pid, 2, day0 + timedelta(days=2))
    assert str(info.value) == f"cannot record a dose: {held}"
    with pytest.raises(Refused) as info:
        ward.enroll(second, today() - timedelta(days=1))
    assert str(info.value) == f"cannot enroll participants: {held}"
    from wardcrf import workflow

    assert workflow.show(ward.clin, pid)["next_dose"]["hold"] == "DSMG hold"  # the worklist's words unchanged
    ward.continue_(pid)
    assert ward.dose(pid, 2, day0 + timedelta(days=2)).body["data"]["dose_number"] == 2


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("dose", "record a dose"),
        ("dose:exo_inhalation", "record a dose"),
        ("enroll", "enroll participants"),
        ("randomize", "randomize participants"),
        ("form:labs", "record labs"),
        ("signoff", "sign off casebooks"),
        ("", "proceed"),
        ("something_new", "something_new"),
    ],
)
def test_a_gate_action_is_worded_as_what_cannot_be_done(action, words):
    from wardcrf.workflow.gatefacts import action_words

    assert action_words(action) == words


# -- the worklist and the sign-off name what the protocol calls them (E4, E5) ---------------------------------


def _owed_words(ward, pid):
    from wardcrf import workflow

    return [i["what"] for i in workflow.today(ward.clin)["items"] if i["participant"] == pid]


def test_the_worklist_names_an_administration_by_its_worklist_text(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ward.dose(pid, 1, day1)
    owed = _owed_words(ward, pid)
    assert "post-dose vitals (dose 1)" in owed and "post-dose prespecified events (dose 1)" in owed
    assert not [w for w in owed if "administration" in w]
    check = ward.submit("post_dose_check", participant=pid, dose="1", events="fever", time=at(day1, 10))
    owed = _owed_words(ward, pid)
    assert "adverse event form for fever reported after dose 1" in owed
    assert "post-dose prespecified events (dose 1)" not in owed
    from wardcrf import workflow

    [expected] = workflow.show(ward.clin, pid)["ae_expected"]
    assert expected["detail"] == (
        f"AE form expected: fever reported after dose 1 ({check.id}); record an adverse event with "
        "prespecified=fever dose=1"
    )


def test_the_sign_off_names_the_check_records_by_the_checks_label(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ward.dose(pid, 1, day1)
    check = ward.submit("post_dose_check", participant=pid, dose="1", events="fever", time=at(day1, 10))
    with pytest.raises(Refused) as info:
        ward.submit("signoff", who=ward.inv, participant=pid)
    assert str(info.value) == (
        f"cannot sign off {pid}: adverse event form(s) expected for prespecified events reported in post-dose "
        f"checks: fever after dose 1 ({check.id}); record them (form ae, prespecified=..., dose=...) first"
    )
    ward.submit(
        "ae",
        participant=pid,
        term="Fever",
        prespecified="fever",
        dose="1",
        onset=day1.isoformat(),
        grade="1",
        serious="no",
        causality="possible",
        outcome="recovered",
        end=day1.isoformat(),
    )
    assert ward.submit("signoff", who=ward.inv, participant=pid).id


WORKLIST = 'worklist = "dose {n}"'
CHECK_LABEL = ', label = "post-dose checks"'


@pytest.fixture(scope="session")
def _mex_engine_unworded_template(tmp_path_factory) -> Path:
    """The re-encoding without the administration's `worklist` text and the check's `label`."""
    source = mexcovid_engine.own_version_source()
    assert source.count(WORKLIST) == 1 and source.count(CHECK_LABEL) == 1
    return _template(
        tmp_path_factory.mktemp("mexengineunworded"),
        source.replace(WORKLIST, "", 1).replace(CHECK_LABEL, "", 1),
    )


def test_without_worklist_text_or_check_label_the_engines_own_words_stand(
    _mex_engine_unworded_template, ward_on
):
    ward = ward_on(_mex_engine_unworded_template)
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ward.dose(pid, 1, day1)
    # an administration's `worklist` defaults to its code (docs/protocol.md): "daily", as its next dose item
    owed = _owed_words(ward, pid)
    assert "post-dose vitals (daily)" in owed and "daily" in owed
    check = ward.submit("post_dose_check", participant=pid, dose="1", events="fever", time=at(day1, 10))
    assert "adverse event form for fever reported after daily" in _owed_words(ward, pid)
    with pytest.raises(Refused) as info:
        ward.submit("signoff", who=ward.inv, participant=pid)
    assert f"reported in post_dose_check records: fever after dose 1 ({check.id})" in str(info.value)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ('""', "check.label"),  # empty
        ("42", "check.label"),  # not text
        ('"' + "x" * 2001 + '"', "check.label"),  # oversized
        ('{ zh = "检查" }', "check.label"),  # no English
    ],
)
def test_a_malformed_check_label_is_refused_at_load(label, expected):
    from wardcrf.engine import model

    source = model.shipped_source("mexcovid.toml").replace(
        'label = "post-dose checks"', f"label = {label}", 1
    )
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, "mexcovid.toml")
    assert any(p.startswith("mexcovid.toml:") and expected in p for p in info.value.problems), (
        info.value.problems
    )


def test_a_control_character_in_the_check_label_is_refused_at_load():
    from wardcrf.engine import model

    source = model.shipped_source("mexcovid.toml").replace(
        'label = "post-dose checks"', 'label = "post-dose\\u0007checks"', 1
    )
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, "mexcovid.toml")
    assert any(p.startswith("mexcovid.toml:") for p in info.value.problems), info.value.problems


# -- applies_when: a refusal on a format-2 ward; the re-encoding declares it where format 1 refuses (E8) -------


def _ae_values(day0, **kw):
    values = {
        "term": "Fever",
        "onset": day0.isoformat(),
        "grade": "1",
        "serious": "no",
        "causality": "possible",
        "outcome": "recovering",
        "first_known": day0.isoformat(),
    }
    return {**values, **kw}


def test_values_format_1_accepts_where_its_applies_when_fails_are_accepted(ward):
    """Format 1's `applies_when` on these fields only codes a blank as not applicable; the re-encoding does
    not declare it there (on a format-2 ward it would refuse the value), so the ward accepts them as before."""
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ae = ward.submit("ae", participant=pid, **_ae_values(day0, end=day1.isoformat()))  # end while recovering
    assert ae.body["data"]["end"] == day1.isoformat()
    dose = ward.dose(pid, 1, day1, interruptions="0", interruption_note="paused to cough, no interruption")
    assert dose.body["data"]["interruption_note"] == "paused to cough, no interruption"
    vitals = ward.submit(
        "vitals",
        participant=pid,
        timepoint="unscheduled",
        dose="1",
        time=at(day1, 14),
        temp="36.8",
        pulse="80",
        resp="18",
        oxysat="96",
    )
    assert vitals.body["data"]["dose"] == 1
    decision = ward.submit(
        "dsmg_decision",
        who=ward.dsmg,
        participant=pid,
        decision="continue",
        rationale="ok",
        change="none asked",
    )
    assert decision.body["data"]["change"] == "none asked"


def test_an_applies_when_the_re_encoding_keeps_still_refuses_and_the_ae_checks_are_reported_together(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    with pytest.raises(ValidationFailed) as info:  # oxygen flow on room air: format 1 refuses it too
        ward.submit("oxygen", participant=pid, date=day0.isoformat(), support="room_air", flow="2")
    assert "flow" in info.value.problems
    with pytest.raises(ValidationFailed) as info:  # no applies_when problem stops the AE's own checks
        ward.submit(
            "ae",
            participant=pid,
            **_ae_values(day0, serious="yes", grade="5", end=(day0 - timedelta(days=2)).isoformat()),
        )
    problems = info.value.problems
    assert "needs at least one criterion" in problems["serious"] and "before the onset" in problems["end"]


# -- deviations and the recorded day as format 1 keyed them (T1) ------------------------------------------------


def test_an_administrations_deviations_carry_its_dose_and_when_it_was_given(ward):
    from wardcrf import workflow

    pid, day0 = ward.enrolled_participant(days_ago=8)
    late = ward.dose(pid, 1, day0 + timedelta(days=1), hh=11, mm=1)
    [dev] = [d for d in workflow.show(ward.clin, pid)["deviations"] if d["kind"] == "late dose"]
    assert (dev["dose"], dev["number"], dev["given"], dev["event"]) == (
        1,
        1,
        late.body["data"]["start"],
        late.id,
    )
    missing = [d for d in workflow.show(ward.clin, pid)["deviations"] if d["kind"] == "missing dose"]
    assert [(d["dose"], d["number"], d["given"], d["event"]) for d in missing] == [
        (n, n, None, None) for n in (2, 3, 4, 5)
    ]


def test_the_recorded_day_is_the_study_day_the_dose_was_given(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    on_time = ward.dose(pid, 1, day0 + timedelta(days=1))
    assert (on_time.body["data"]["day"], on_time.body["data"]["window"]) == (1, "on_time")
    late = ward.dose(pid, 2, day0 + timedelta(days=3))  # dose 2 was due on day 2
    assert (late.body["data"]["dose_number"], late.body["data"]["day"], late.body["data"]["window"]) == (
        2,
        3,
        "late",
    )


# -- a registered dose gate of either shape (T3) ----------------------------------------------------------------


def test_a_dose_gate_of_the_plain_shape_is_asked_without_the_product_and_can_refuse(ward):
    from wardcrf import workflow

    pid, day0 = ward.enrolled_participant(days_ago=8)
    calls: list[tuple] = []

    def plain(store, kit_id, when):
        calls.append(("plain", kit_id))
        if kit_id == "EXO-WARM":
            raise Refused(f"kit {kit_id} had a temperature excursion; quarantined")

    def by_product(store, kit_id, when, *, product=None):
        calls.append(("by_product", kit_id, product))

    workflow.register_dose_gate(plain)
    workflow.register_dose_gate(by_product)
    try:
        with pytest.raises(Refused, match="temperature excursion"):
            ward.dose(pid, 1, day0 + timedelta(days=1), kit="EXO-WARM")
        assert ward.dose(pid, 1, day0 + timedelta(days=1), kit="EXO-COLD").id
    finally:
        workflow.dose_gates.remove(plain)
        workflow.dose_gates.remove(by_product)
    assert ("plain", "EXO-COLD") in calls and ("by_product", "EXO-COLD", "HAMSC_EXOS") in calls


def test_which_gates_take_the_product():
    from wardcrf.workflow.dosing import takes_product

    def plain(store, kit_id, when): ...

    def keyword(store, kit_id, when, *, product=None): ...

    def anything(store, kit_id, when, **more): ...

    def positional(store, kit_id, when, product=None): ...

    def other_name(store, kit_id, when, *, products=None): ...

    assert [takes_product(g) for g in (plain, keyword, anything, positional, other_name)] == [
        False,
        True,
        True,
        True,
        False,
    ]

    class Opaque:  # a callable whose signature Python cannot read: asked in the plain shape, never a crash
        __signature__ = "unreadable"

        def __call__(self, *args, **kwargs): ...

    assert takes_product(Opaque()) is False


# -- format 1's applies_when table in a format-2 file: run, and checked at load ------------------------------

FIO2 = '[forms.oxygen.fields.fio2]\ntype = "integer"\n'
FIO2_TABLE = 'applies_when = { field = "support", in = ["hfnc", "niv", "imv", "ecmo"] }'


def _fio2_under(table: str) -> tuple[str, int]:
    """The re-encoding with the oxygen form's FiO2 under `applies_when = TABLE`, and that line.

    The re-encoding declares FiO2's condition for the exports only (`exports_applies_when`, format 1 accepts
    a FiO2 on any support); the variant declares the refusing one instead (a field declares one of them)."""
    source = mexcovid_engine.own_version_source()
    exported = next(
        line for line in source.split("\n") if line.startswith('exports_applies_when = { field = "support"')
    )
    source = source.replace(exported + "\n", "", 1)
    assert source.count(FIO2) == 1
    at_ = source.index(FIO2) + len(FIO2)
    return source[:at_] + f"applies_when = {table}\n" + source[at_:], source[:at_].count("\n") + 1


@pytest.fixture(scope="session")
def _mex_engine_table_template(tmp_path_factory) -> Path:
    return _template(tmp_path_factory.mktemp("mexenginetable"), _fio2_under(FIO2_TABLE.split(" = ", 1)[1])[0])


def test_an_applies_when_table_refuses_a_value_where_it_does_not_apply(_mex_engine_table_template, ward_on):
    ward = ward_on(_mex_engine_table_template)
    pid, day0 = ward.enrolled_participant(days_ago=8)
    with pytest.raises(ValidationFailed) as info:
        ward.submit(
            "oxygen", participant=pid, date=day0.isoformat(), support="nasal_cannula", flow="2", fio2="30"
        )
    assert info.value.problems == {
        "fio2": "does not apply here (only when support in (hfnc, niv, imv, ecmo)); leave it blank"
    }
    assert ward.submit("oxygen", participant=pid, date=day0.isoformat(), support="nasal_cannula", flow="2").id
    day1 = (day0 + timedelta(days=1)).isoformat()
    ev = ward.submit("oxygen", participant=pid, date=day1, support="hfnc", flow="40", fio2="50")
    assert ev.body["data"]["fio2"] == {"value": 50, "unit": "%"}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('{ field = "suport", in = ["hfnc"] }', "the form has no other field 'suport' to depend on"),
        ('{ field = "fio2", in = ["hfnc"] }', "the form has no other field 'fio2' to depend on"),  # itself
        (
            '{ field = "support", in = ["hfnc"], not_in = ["room_air"] }',
            "give exactly one of in = [...] or not_in = [...]",
        ),
        ('{ field = "support" }', "give exactly one of in = [...] or not_in = [...]"),
        ('{ field = "support", in = [] }', "applies_when"),  # empty list: the schema's minItems
        ('{ field = "support", in = ["hfnc"], when = "x" }', "applies_when"),  # unknown key
    ],
)
def test_a_malformed_applies_when_table_is_refused_at_load_at_its_line(table, expected):
    from wardcrf.engine import model

    source, line = _fio2_under(table)
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, "mexcovid.toml")
    assert any(
        p.startswith(f"mexcovid.toml:{line}: forms.oxygen.fields.fio2.applies_when") and expected in p
        for p in info.value.problems
    ), info.value.problems


# -- `exports_applies_when`: a blank coded NA in the exports where it fails, no value refused by it -----------


def _ae_end() -> tuple[str, str]:
    """The re-encoding's AE end date's `exports_applies_when` line, and the source."""
    source = mexcovid_engine.own_version_source()
    line = (
        'exports_applies_when = { field = "outcome", in = ["recovered", "recovered_with_sequelae", "fatal"] }'
    )
    assert source.count(line) == 1
    return line, source


def test_exports_applies_when_codes_a_blank_na_where_it_fails_and_unk_where_it_holds():
    from wardcrf.exports import missing

    _line, source = _ae_end()
    forms = protocol.forms_of(source, "mexcovid.toml")
    end = forms["ae"].fields["end"]
    assert end.applies_when is not None
    assert end.applies_when.describe() == "outcome in (recovered, recovered_with_sequelae, fatal)"
    assert missing.code(end, {"outcome": "not_recovered"}, asked=True) == "NA"  # ongoing: no end date
    assert missing.code(end, {"outcome": "recovered"}, asked=True) == "UNK"  # resolved, end not recorded
    assert missing.code(end, {"outcome": "recovered", "end": "2026-11-30"}, asked=True) == ""
    # an `applies_when` written as format 1's table codes NA too (and the engine refuses a value by it)
    name = forms["consent"].fields["surrogate_name"]
    assert name.applies_when is not None
    assert missing.code(name, {"consenter": "participant"}, asked=True) == "NA"


def test_a_value_where_exports_applies_when_fails_is_accepted(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    ev = ward.submit(
        "ae",
        participant=pid,
        term="Headache",
        onset=day0.isoformat(),
        end=(day0 + timedelta(days=1)).isoformat(),
        outcome="not_recovered",
        grade="1",
        serious="false",
        causality="unlikely",
        action="none",
    )
    assert ev.body["data"]["end"] == (day0 + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '{ field = "outcom", in = ["recovered"] }',
            "end.exports_applies_when.field: the form has no other field 'outcom' to depend on",
        ),
        (
            '{ field = "end", in = ["recovered"] }',
            "end.exports_applies_when.field: the form has no other field 'end' to depend on",
        ),  # itself
        (
            '{ field = "outcome" }',
            "end.exports_applies_when: give exactly one of in = [...] or not_in = [...]",
        ),
        ("\"outcome == 'recovered'\"", "end.exports_applies_when"),  # an expression: the exports read a table
        ('{ field = "outcome", in = ["recovered"], when = "x" }', "end.exports_applies_when"),  # unknown key
        ('{ field = "outcome", in = ["recovered\u0007"] }', "character U+0007 (BELL) is not allowed"),
    ],
)
def test_a_malformed_exports_applies_when_is_refused_at_load_at_its_line(table, expected):
    from wardcrf.engine import model

    line_text, source = _ae_end()
    line = source[: source.index(line_text)].count("\n") + 1
    source = source.replace(line_text, f"exports_applies_when = {table}")
    with pytest.raises((model.ProtocolFileError, protocol.ProtocolFileError)) as info:
        loading.parse(source, "mexcovid.toml")
    assert any(p.startswith(f"mexcovid.toml:{line}: ") and expected in p for p in info.value.problems), (
        info.value.problems
    )


def test_a_field_declaring_both_applies_when_and_exports_applies_when_is_refused_at_load():
    from wardcrf.engine import model

    line_text, source = _ae_end()
    line = source[: source.index(line_text)].count("\n") + 1
    both = line_text + '\napplies_when = { field = "outcome", in = ["recovered"] }'
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source.replace(line_text, both), "mexcovid.toml")
    assert any(
        p.startswith(f"mexcovid.toml:{line}: forms.ae.fields.end.exports_applies_when")
        and "declare one of" in p
        for p in info.value.problems
    ), info.value.problems


# -- `[safety] vital_signs` `timepoint`: a record no dose assessment holds is named by its own timepoint ------


def test_an_unscheduled_vital_sign_out_of_range_is_named_by_its_timepoint_on_the_dsmg_board(ward):
    from wardcrf.workflow import dsmg

    pid, day0 = ward.enrolled_participant(days_ago=8)
    ward.submit(
        "vitals",
        participant=pid,
        time=at(day0 + timedelta(days=2), 10),
        temp="39.8",
        pulse="80",
        resp="18",
        oxysat="96",
        reason="confirmed on repeat",
        confirm=True,
    )
    store = ward.clin.store
    [flag] = dsmg.participant_safety(store, protocol.active(store), pid, today=today())["vitals_flags"]
    # no dose assessment holds it: the record's own timepoint (format 1's "Unscheduled" on the board)
    assert (flag["sign"], flag["value"], flag["timepoint"], flag["dose"]) == (
        "temp",
        39.8,
        "unscheduled",
        None,
    )


@pytest.mark.parametrize(
    ("timepoint", "problem"),
    [
        ('"timepont"', "form vitals has no field 'timepont'"),
        ('"temp"', "vitals.temp is a number field: the timepoint is a choice field"),
        ("3", "safety.vital_signs.timepoint"),
        ('"Time Point"', "safety.vital_signs.timepoint"),  # not a name
    ],
)
def test_a_vital_signs_timepoint_that_is_not_a_choice_field_of_the_form_is_refused_at_load(
    timepoint, problem
):
    from wardcrf.engine import model

    source = mexcovid_engine.own_version_source()
    declared = 'timepoint = "timepoint", fields = ["oxysat"'
    assert source.count(declared) == 1
    line = source[: source.index(declared)].count("\n") + 1
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source.replace(declared, f'timepoint = {timepoint}, fields = ["oxysat"'), "mexcovid.toml")
    assert any(p.startswith(f"mexcovid.toml:{line}: ") and problem in p for p in info.value.problems), (
        info.value.problems
    )


# -- the built-in short-administration warning reads the administration's `duration` ----------------------------


def test_an_administration_far_shorter_than_its_duration_is_saved_with_a_warning(ward):
    from wardcrf.engine import ward as engine_ward

    assert protocol.active(ward.clin.store).schedule.duration_minutes == 30  # `duration = "30min"`
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    short = ward.dose(pid, 1, day1, end=at(day1, 9, 5))  # 5 of 30 minutes: saved, told
    assert [w["code"] for w in short.body["warnings"]] == ["short_inhalation"]
    assert short.body["warnings"][0]["message"].startswith(
        "the inhalation lasted 5 min, far shorter than the protocol's 30 min"
    )
    normal = ward.dose(pid, 2, day0 + timedelta(days=2))  # 30 minutes: no warning
    assert "warnings" not in normal.body
    # a file whose first administration states no duration: 0, and the built-in warning has no threshold
    m = mexcovid_engine.own_version()
    source = m.source.replace('duration = "30min"\n', "", 1)
    assert source != m.source
    assert engine_ward.of(loading.parse(source, "mexcovid.toml")).schedule.duration_minutes == 0
