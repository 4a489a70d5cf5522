"""The ward list's and the ward queue's words on a format-2 ward, as format 1 meant them (issue 17).

On MEXCOVID's re-encoding run by the engine (`tests/mexcovid_engine.py`):

- `post_dose_vitals_due`: the administrations given whose `after` assessment recorded on the
  `[safety] vital_signs` form is still owed (the post-dose vitals), not every `after` assessment (the
  post-dose check is owed on the worklist, `today`); none when the version declares no vital signs;
- the queue holds a participant whom a gate of their own holds (a positive skin test), as the list says
  "held";
- a consent without its signatures is "consent incomplete", as format 1 says.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import mexcovid_engine
import pytest
from test_engine_mexcovid_ward import _template, ward_on  # noqa: F401  (the fixture)
from wf_support import Staff, _copy_site, at, make_ward, today

from wardcrf import records, workflow
from wardcrf.clock import now_utc
from wardcrf.site import Site
from wardcrf.workflow import status, wardqueue

VITAL_SIGNS = (
    'vital_signs = { form = "vitals", time = "time", timepoint = "timepoint", fields = ["oxysat", "temp", '
    '"pulse", "resp", "sysbp", "diabp"] }\n'
)


@pytest.fixture(scope="session")
def _mex_engine_list_template(tmp_path_factory) -> Path:
    return _template(tmp_path_factory.mktemp("mexenginelist"), mexcovid_engine.own_version_source())


@pytest.fixture(scope="session")
def _mex_engine_no_vitals_template(tmp_path_factory) -> Path:
    source = mexcovid_engine.own_version_source()
    assert source.count(VITAL_SIGNS) == 1
    return _template(tmp_path_factory.mktemp("mexenginenovitals"), source.replace(VITAL_SIGNS, "", 1))


@pytest.fixture
def site(data_dir: Path, _mex_engine_list_template: Path) -> Site:
    return _copy_site(_mex_engine_list_template, data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def _row(ward: Staff, pid: str) -> dict:
    return next(r for r in status.list_rows(ward.clin.store, now_utc()) if r["id"] == pid)


def _queue(ward: Staff, pid: str) -> tuple[int, int]:
    """(held, vitals_owed) of the participant's ward queue row."""
    row = ward.clin.store.one("SELECT held, vitals_owed FROM ward_queue WHERE participant = ?", (pid,))
    assert row is not None
    return int(row[0]), int(row[1])


def _today(ward: Staff, pid: str) -> list[str]:
    return [i["what"] for i in workflow.today(ward.clin)["items"] if i["participant"] == pid]


def _post_vitals(ward: Staff, pid: str, n: int, when: str):
    return ward.submit(
        "vitals",
        participant=pid,
        timepoint="post_dose",
        dose=str(n),
        time=when,
        temp="36.8",
        pulse="80",
        resp="16",
        oxysat="97",
    )


def test_post_dose_vitals_due_are_the_doses_owing_their_vital_signs_not_the_post_dose_check(ward):
    pid, day0 = ward.enrolled_participant(days_ago=8)
    day1 = day0 + timedelta(days=1)
    ward.dose(pid, 1, day1)
    # owed: both the vitals and the check after dose 1; the list counts the vitals
    assert _row(ward, pid)["post_dose_vitals_due"] == [1]
    assert workflow.show(ward.clin, pid)["post_dose_vitals_due"] == [1]
    assert _queue(ward, pid) == (0, 1)
    _post_vitals(ward, pid, 1, at(day1, 10))
    # the vitals recorded: nothing on the list; the check is still owed, on the worklist
    assert _row(ward, pid)["post_dose_vitals_due"] == []
    assert _queue(ward, pid) == (0, 0)
    owed = _today(ward, pid)
    assert "post-dose prespecified events (dose 1)" in owed and "post-dose vitals (dose 1)" not in owed


def test_a_version_declaring_no_vital_signs_owes_no_post_dose_vitals_on_the_list(
    _mex_engine_no_vitals_template,
    ward_on,  # noqa: F811
):
    ward = ward_on(_mex_engine_no_vitals_template)
    pid, day0 = ward.enrolled_participant(days_ago=8)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    assert _row(ward, pid)["post_dose_vitals_due"] == []
    assert _queue(ward, pid) == (0, 0)
    # the after assessments are still owed where the ward works them
    assert "post-dose vitals (dose 1)" in _today(ward, pid)


def test_a_gate_of_the_participants_own_holds_them_in_the_queue_as_on_the_list(ward):
    negative, _ = ward.enrolled_participant(days_ago=1)
    ward.continue_(negative)  # the sentinel: the DSMG's "continue" opens enrollment
    positive = ward.consent()
    ward.screen(positive)
    ward.enroll(positive, today() - timedelta(days=1))
    ward.skin(positive, today() - timedelta(days=1), result="positive")
    held = _row(ward, positive)["next_dose"]
    assert held["state"] == "held" and held["hold"].startswith("positive skin test ")
    assert _queue(ward, positive)[0] == 1
    assert _row(ward, negative)["next_dose"]["state"] != "held"
    assert _queue(ward, negative)[0] == 0
    # the queue's order puts the held one after every participant with a dose to give
    ids = [r["id"] for r in workflow.ward_page(ward.clin)["rows"]]
    assert ids.index(negative) < ids.index(positive)
    assert wardqueue.count(ward.clin.store) == 2


def test_a_consent_without_its_signatures_is_consent_incomplete_and_a_signed_one_consented(ward):
    signed = ward.consent()
    with ward.clin.store.transaction():
        records.submit(
            ward.clin,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-01T08:00:00+08:00",
                "witness_1": "a",
                "witness_2": "b",
                "photos": [],
            },
            subject="participant:WUH01-900",
        )
    assert _row(ward, "WUH01-900")["status"] == "consent incomplete"
    assert _row(ward, signed)["status"] == "consented"


# -- dose.cumulative: the ward list's column of one unit, named by the protocol ----------------------------


def test_the_list_names_the_cumulative_dose_as_the_protocol_does(ward, cli):
    import json

    pid, day0 = ward.enrolled_participant(days_ago=8)
    ward.dose(pid, 1, day0 + timedelta(days=1))
    ward.dose(pid, 2, day0 + timedelta(days=2))
    rows = {r["id"]: r for r in json.loads(cli("participant", "list", "--json", user="auditor").out)}
    assert rows[pid]["cumulative_particles"] == pytest.approx(4.0e8) and "cumulative_dose" not in rows[pid]
    r = cli("participant", "list", user="auditor", env={"COLUMNS": "250"})
    assert r.code == 0, r.err
    assert "cumulative particles" in r.out and "cumulative dose" not in r.out
    line = next(x for x in r.out.splitlines() if pid in x)
    assert "4.0e8" in line and "particles" not in line  # every amount as `amounts.shown` writes it
    r = cli("participant", "show", pid, user="auditor")
    assert r.code == 0 and "cumulative particles 4.0e8" in r.out, r.out


def _palm_with(*edits: tuple[str, str, int]) -> str:
    """palm.toml with each edit's `nth` remaining occurrence of `old` replaced, in turn."""
    from wardcrf.engine import model

    source = model.shipped_source("palm.toml")
    for old, new, nth in edits:
        parts = source.split(old)
        assert len(parts) > nth, old
        source = old.join(parts[:nth]) + new + old.join(parts[nth:])
    return source


ZMAPP_DOSE = 'dose = { per_kg = 50, unit = "mg",'


def test_a_named_column_of_the_one_unit_is_accepted_on_any_administration():
    from wardcrf.engine import model

    m = model.parse(
        _palm_with((ZMAPP_DOSE, 'dose = { cumulative = "cumulative mg", per_kg = 50, unit = "mg",', 1))
    )
    assert model.cumulative_column(m) == ("cumulative mg", "mg")
    assert model.cumulative_column(model.shipped("palm.toml")) is None  # the per-unit list


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (  # the per-unit column's own name
            [(ZMAPP_DOSE, 'dose = { cumulative = "cumulative dose", per_kg = 50, unit = "mg",', 1)],
            "is the ward list's per-unit column",
        ),
        (  # two names for one unit
            [
                (ZMAPP_DOSE, 'dose = { cumulative = "cumulative mg", per_kg = 50, unit = "mg",', 1),
                (ZMAPP_DOSE, 'dose = { cumulative = "cumulative milligrams", per_kg = 50, unit = "mg",', 1),
            ],
            "one cumulative column, one unit",
        ),
        (  # a column of mg beside a dose in mL
            [
                (ZMAPP_DOSE, 'dose = { cumulative = "cumulative mg", per_kg = 50, unit = "mg",', 1),
                (ZMAPP_DOSE, 'dose = { per_kg = 50, unit = "mL",', 1),
            ],
            "every dose in one unit",
        ),
    ],
)
def test_a_cumulative_column_that_cannot_count_every_dose_is_refused_at_its_line(edits, expected):
    from wardcrf.engine import model

    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(_palm_with(*edits), "palm.toml")
    found = [p for p in info.value.problems if expected in p]
    assert found and all(p.startswith("palm.toml:") and "dose.cumulative" in p for p in found), (
        info.value.problems
    )


@pytest.mark.parametrize(
    "name",
    [
        '"Cumulative Particles"',  # capitals
        '"cumulative particles\\u0007"',  # a control character
        '"cumulative\\nparticles"',  # a line break
        '"cumulative ' + "x" * 300 + '"',  # oversized
        '"particles"',  # not a cumulative column
        '""',
        "42",
    ],
)
def test_a_hostile_cumulative_name_is_refused_at_load(name):
    from wardcrf.engine import model

    source = model.shipped_source("mexcovid.toml").replace(
        'cumulative = "cumulative particles"', f"cumulative = {name}", 1
    )
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, "mexcovid.toml")
    assert any(p.startswith("mexcovid.toml:") and "cumulative" in p for p in info.value.problems), (
        info.value.problems
    )


# -- status: the course given is "treatment complete", whatever the disposition recorded after it ---------


def test_a_participant_given_the_whole_course_is_treatment_complete_after_the_end_of_study(ward):
    done, d0 = ward.enrolled_participant(days_ago=9)
    for n in range(1, 6):
        ward.dose(done, n, d0 + timedelta(days=n))
    ward.submit(
        "disposition",
        participant=done,
        stage="end_of_study",
        status="completed",
        date=(d0 + timedelta(days=8)).isoformat(),
        reason="discharged home",
    )
    row = _row(ward, done)
    assert (row["status"], row["next_dose"], row["doses_given"]) == ("treatment complete", None, 5)


def test_a_participant_off_study_before_the_course_ends_is_off_study(ward):
    early, d0 = ward.enrolled_participant(days_ago=9)
    ward.continue_(early)  # the sentinel
    ward.dose(early, 1, d0 + timedelta(days=1))
    ward.submit(
        "disposition",
        participant=early,
        stage="end_of_study",
        status="withdrawal_by_subject",
        date=(d0 + timedelta(days=1)).isoformat(),  # the day of dose 1: nothing due after it
        reason="asked to stop",
    )
    row = _row(ward, early)
    assert (row["status"], row["next_dose"]) == ("off study (withdrawal_by_subject)", None)
