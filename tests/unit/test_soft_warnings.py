"""Soft warnings (wardcrf.plausibility): allowed but implausible values are told, with a reason, never refused.

Declared in the protocol (`[[warnings]]`, validated with file:line); MEXCOVID
1.0 declares none, so the built-in set applies: an inhalation far shorter
than the protocol's 30 min, a thaw shorter than the product's minimum, a time
ahead of the laptop's clock, the same photograph attached to a second record.
Each is stored in the record's event (what the person was told) and printed
by the CLI as one line on stderr.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_coldchain_custody import OUT, iso, setup_kits, to_bedside
from wf_support import Staff, _copy_site, at, ready_kit_on, today

from wardcrf import plausibility, protocol, workflow
from wardcrf.clock import now_utc
from wardcrf.coldchain import services
from wardcrf.site import Site
from wardcrf.workflow import dose_visit, service

P1 = "WUH01-001"
SRC = protocol.default_source()


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return Staff(session_for, tmp_path)


def codes(event) -> list[str]:
    return [w["code"] for w in event.body.get("warnings") or []]


# -- an inhalation far shorter than the protocol's duration ----------------------------------------


def test_a_short_inhalation_is_saved_with_a_warning_and_a_normal_one_without(ward):
    day = today() - timedelta(days=9)
    raw = {
        "kit_id": "EXO-0001",
        "lot": "L1",
        "particles": "2e8",
        "volume": "6",
        "start": at(day),
        "end": at(day, 9, 5),
    }
    ward.freezer()
    ward.custody("EXO-0001", at(day))
    prep = service.preview(ward.clin, "dose", raw, participant=P1)
    assert [w.code for w in prep.warnings] == ["short_inhalation"]
    assert prep.warnings[0].fields == ("start", "end")
    assert prep.warnings[0].message == (
        "the inhalation lasted 5 min, far shorter than the protocol's 30 min: "
        "correct the times, or record the interruption"
    )
    assert prep.warnings[0].text("zh").startswith("雾化仅持续 5 分钟")
    ev = ward.submit("dose", participant=P1, **raw)  # saved: a warning never refuses
    assert ev.body["warnings"] == [w.as_json() for w in prep.warnings]
    assert ward.clin.warnings[-1].startswith("dose: the inhalation lasted 5 min")
    ok = ward.dose(P1, 2, day + timedelta(days=1))  # 30 minutes
    assert "warnings" not in ok.body


def test_the_cli_prints_the_warning_on_stderr_and_saves(cli, site, tmp_path):
    day = today() - timedelta(days=9)
    ready_kit_on(site, "EXO-0001", at(day), tmp_path)
    r = cli(
        "submit", "dose", "--participant", P1, "kit_id=EXO-0001", "lot=L1", "particles=2e8", "volume=6",
        f"start={at(day)}", f"end={at(day, 9, 4)}", user="clinician",
    )  # fmt: skip
    assert r.code == 0, r.err
    lines = r.err.splitlines()
    assert lines == [
        "warning: dose: the inhalation lasted 4 min, far shorter than the protocol's 30 min: "
        "correct the times, or record the interruption"
    ]


def test_an_amendment_that_shortens_the_inhalation_is_told_and_one_that_does_not_is_not(ward):
    day = today() - timedelta(days=9)
    ev = ward.dose(P1, 1, day)
    am = workflow.amend(ward.clin, ev.id, {"end": at(day, 9, 10)}, reason="end time misread")
    assert codes(am) == ["short_inhalation"]
    again = workflow.amend(ward.clin, ev.id, {"volume": "6.2"}, reason="volume misread")
    assert codes(again) == []  # the record's old warning is not news


def test_a_dose_visit_carries_its_parts_warnings(ward):
    pid, day0 = ward.enrolled_participant(10)
    day = day0 + timedelta(days=1)
    ward.freezer()
    ward.custody("EXO-0077", at(day))
    visit = dose_visit.record_dose_visit(
        ward.clin,
        pid,
        pre_vitals={"time": at(day, 8, 40), "temp": "36.8", "pulse": "88", "resp": "20", "oxysat": "95"},
        dose={
            "kit_id": "EXO-0077",
            "lot": "L",
            "particles": "2e8",
            "volume": "6",
            "start": at(day),
            "end": at(day, 9, 3),
        },
        post_vitals={"time": at(day, 9, 30), "temp": "36.9", "pulse": "86", "resp": "19", "oxysat": "96"},
        post_dose_check={"events": "none"},
        dry_run=True,
    )
    assert [(w["part"], w["code"]) for w in visit.warnings] == [("dose", "short_inhalation")]
    assert not visit.saved and not any(
        "inhalation" in w for w in ward.clin.warnings
    )  # nothing saved, nothing told


# -- a thaw shorter than the product's minimum --------------------------------------------------------


def test_a_short_thaw_is_told(ph, tmp_path, session_for):
    setup_kits(ph, tmp_path, kits=("K001", "K002"))
    to_bedside(ph, "K001", thaw=False)
    ev = services.record_thaw(
        ph, "K001", start=iso(OUT + timedelta(minutes=5)), end=iso(OUT + timedelta(minutes=9))
    )
    assert codes(ev) == ["short_thaw"]
    assert ph.warnings[-1] == (
        "coldchain.thaw: the thaw took 4 min, shorter than the product's minimum of 10 min: "
        "is the product fully thawed?"
    )
    to_bedside(ph, "K002", out=OUT + timedelta(minutes=1), thaw=False)
    ok = services.record_thaw(
        ph, "K002", start=iso(OUT + timedelta(minutes=5)), end=iso(OUT + timedelta(minutes=25))
    )
    assert codes(ok) == []


@pytest.fixture
def ph(session_for):
    return session_for("pharmacist")


# -- a time in the future ----------------------------------------------------------------------------


def test_a_time_a_few_minutes_ahead_is_told_further_ahead_is_refused(ward):
    from wardcrf.errors import ValidationFailed

    soon = (now_utc() + timedelta(minutes=3)).astimezone().isoformat(timespec="seconds")
    ev = ward.submit("vitals", participant=P1, time=soon, temp="37", pulse="80", resp="18", oxysat="97")
    assert codes(ev) == ["time_ahead"]
    message = ev.body["warnings"][0]["message"]
    assert re.fullmatch(
        r"time \d{4}-\d\d-\d\d \d\d:\d\d \+08:00 is [34] min ahead of this laptop's clock: check the time typed \(or the clock\)",
        message,
    ), message
    now = ward.submit(
        "vitals", participant=P1, temp="37", pulse="80", resp="18", oxysat="97"
    )  # time defaults to now
    assert codes(now) == []
    with pytest.raises(ValidationFailed, match=r"time: .* is in the future"):
        later = (now_utc() + timedelta(minutes=20)).isoformat(timespec="seconds")
        ward.submit("vitals", participant=P1, time=later, temp="37", pulse="80", resp="18", oxysat="97")


# -- the same photo for a second record ---------------------------------------------------------------


def test_the_same_photograph_for_a_second_record_is_told(ward):
    page = ward.page()
    first = ward.consent(photos=page)
    second_event = ward.submit(
        "consent",
        consenter="participant",
        form_version="1.0",
        witness_1="investigator",
        witness_2="clinician2",
        photos=page,
        time=at(today() - timedelta(days=39)),
    )
    assert codes(second_event) == ["photo_reused"]
    message = second_event.body["warnings"][0]["message"]
    assert re.fullmatch(
        r"photo sha256:[0-9a-f]{12}… in photos is already attached to consent record \S+: is it the right photograph\?",
        message,
    ), message
    assert first != second_event.subject.removeprefix("participant:")
    fresh = ward.consent()  # a new photograph: nothing to say
    assert fresh


# -- the protocol declares them -----------------------------------------------------------------------


def _with(block: str) -> str:
    """The shipped protocol plus `block`: top-level keys go before the first table, tables at the end."""
    return block + "\n" + SRC if block.startswith("warnings =") else SRC + "\n" + block


def test_a_protocol_declares_its_own_warnings_or_none() -> None:
    p = protocol.parse(_with("warnings = []"), "t.toml")
    assert p.warnings == ()
    p = protocol.parse(
        _with(
            '[[warnings]]\ncode = "long_inhalation_gap"\nrule = "duration_below"\nform = "dose"\n'
            'from = "start"\nto = "end"\nminutes = 25\nreason = "only {minutes} of {expected} min"\n'
        ),
        "t.toml",
    )
    assert [(w.code, w.minutes, w.expected) for w in p.warnings] == [("long_inhalation_gap", 25.0, 25.0)]
    assert {w.code for w in protocol.default_protocol().warnings} == {
        "short_inhalation",
        "short_thaw",
        "time_ahead",
        "photo_reused",
    }


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("warnings = 3", "warnings: must be a list of tables"),
        (
            '[[warnings]]\ncode = "x"\nrule = "nope"\nform = "dose"\nreason = "r"',
            "warnings[0].rule: unknown rule 'nope'",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "future_time"\nform = "nope"\nreason = "r"',
            "warnings[0].form: unknown form 'nope'",
        ),
        (
            '[[warnings]]\ncode = "X-1"\nrule = "future_time"\nform = "*"\nreason = "r"',
            "warnings[0].code: warning codes are lower-case",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "future_time"\nform = "*"\nreason = "at {when}"',
            "warnings[0].reason.en: unknown placeholder {when}",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "future_time"\nform = "*"\nreason = "at {time"',
            "unknown placeholder {<unbalanced braces>}",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "duration_below"\nform = "dose"\nfrom = "kit_id"\nto = "end"\nminutes = 5\nreason = "r"',
            "warnings[0].from: 'kit_id' is not a date-time field of dose",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "duration_below"\nform = "dose"\nfrom = "start"\nto = "end"\nminutes = 0\nreason = "r"',
            "warnings[0].minutes: must be above 0",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "duration_below"\nform = "dose"\nfrom = "start"\nto = "end"\nreason = "r"',
            "give the threshold as minutes = N or minutes_of",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "duration_below"\nform = "coldchain.thaw"\nfrom = "start"\nto = "end"\n'
            'minutes_of = "product.thaw_min"\nreason = "r"',
            "warnings[0].minutes_of: the protocol does not state product.thaw_min: give default_minutes",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "duration_below"\nform = "*"\nfrom = "start"\nto = "end"\nminutes = 5\nreason = "r"',
            "warnings[0].form: a duration_below warning names one form",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "photo_reused"\nform = "*"\nminutes = 5\nreason = "r"',
            "warnings[0].minutes: applies to duration_below",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "photo_reused"\nform = "*"\ncolour = "red"\nreason = "r"',
            "warnings[0].colour: unknown warning key",
        ),
        (
            '[[warnings]]\ncode = "x"\nrule = "photo_reused"\nform = "*"\nreason = "r"\n'
            '[[warnings]]\ncode = "x"\nrule = "future_time"\nform = "*"\nreason = "r"',
            "warnings[1].code: duplicate warning code 'x'",
        ),
    ],
)
def test_protocol_warnings_are_validated_with_file_and_line(block: str, problem: str) -> None:
    with pytest.raises(protocol.ProtocolFileError) as err:
        protocol.parse(_with(block), "t.toml")
    hit = [p for p in err.value.problems if problem in p]
    assert hit, err.value.problems
    assert re.match(r"t\.toml(:\d+)?: ", hit[0])


def test_evaluation_never_raises_on_odd_values() -> None:
    p = protocol.default_protocol()
    now = datetime.now().astimezone()
    odd = {"start": "not a time", "end": 12, "photos": ["sha256:zz"], "time": "2020-01-01T09:00"}
    assert plausibility.evaluate(None, p, "dose", odd, now=now, zone_name="Asia/Shanghai") == []  # type: ignore[arg-type]
    backwards = {"start": "2020-01-01T10:00:00+08:00", "end": "2020-01-01T09:00:00+08:00"}
    assert plausibility.evaluate(None, p, "dose", backwards, now=now, zone_name="UTC") == []  # type: ignore[arg-type]
