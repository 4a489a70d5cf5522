"""A trial's demo file (wardcrf/protocols/demo/*.toml): the seeded site holds what it says, and a bad
one is refused with one line naming the file and line, nothing created.

The seeder is generic (`workflow.demo`): the forms, fields and values come from the file, the dose
amount and the consent page's title from the protocol. Checked here as properties of the seeded site
against the file (each participant's forms, values, dose times and kits), not as a copy of the events.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from datetime import datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wardcrf.engine import model
from wardcrf.site import Site
from wardcrf.workflow import demo, demo_file

FAKE_NOW = "2026-03-16T02:00:00Z"  # 10:00 on the ward (as tests/unit/test_demo.py)
TZ = ZoneInfo("Asia/Shanghai")
NAME = "wardcrf/protocols/demo/mexcovid.toml"


def _shipped() -> str:
    return resources.files("wardcrf.protocols").joinpath("demo", "mexcovid.toml").read_text("utf-8")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    target = tmp_path_factory.mktemp("demo-file") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        result = demo.seed(target)
    s = Site.open(target).unlock("auditor", demo.DEMO_PASSWORD)
    try:
        rows = [
            (r[0], r[1], json.loads(r[2]), r[3])
            for r in s.store.execute(
                "SELECT r.subject, r.form, r.data, e.ts FROM records r JOIN events e ON e.id = r.event_id "
                "ORDER BY e.pos"
            )
        ]
        lots = {r[0]: r[1] for r in s.store.execute("SELECT lot, product FROM cc_lots")}
        signoffs = Counter(  # a signoff is the investigator's signature on the casebook, not a record
            r[0]
            for r in s.store.execute("SELECT subject, line FROM events WHERE type = 'signature.applied'")
            if json.loads(r[1])["body"].get("meaning") == "approved"
        )
    finally:
        s.close()
    rows.extend((subject, "signoff", {}, "") for subject, n in signoffs.items() for _ in range(n))
    return result, rows, lots


def _of(rows, pid: str, form: str) -> list[dict]:
    return [data for subject, f, data, _ts in rows if subject == f"participant:{pid}" and f == form]


def _num(v):
    return v["value"] if isinstance(v, dict) and "value" in v else v


def test_each_participant_has_the_forms_the_file_plans(seeded):
    result, rows, _lots = seeded
    spec = tomllib.loads(_shipped())
    planned_doses = 5
    assert len(result.participants) == len(spec["participants"]) == 7
    for pid, p in zip(result.participants, spec["participants"], strict=True):
        completed = len(p["doses"]) >= planned_doses
        want: Counter[str] = Counter()
        for rec in spec["records"]:
            if rec.get("if") == "completed" and not completed:
                continue
            want[rec["form"]] += len(p["doses"]) if rec.get("each_dose") else 1
        for rec in p.get("records", []):
            want[rec["form"]] += 1
        got = Counter(f for subject, f, _d, _ts in rows if subject == f"participant:{pid}")
        assert got == want, pid


def test_values_are_the_files(seeded):
    result, rows, _lots = seeded
    spec = tomllib.loads(_shipped())
    kit = 0
    for pid, p in zip(result.participants, spec["participants"], strict=True):
        [screening] = _of(rows, pid, "screening")
        assert (screening["sex"], screening["severity"], _num(screening["age"])) == (
            p["sex"],
            p["severity"],
            p["age"],
        )
        assert screening["dob"][5:] == p["born"]
        [baseline] = [d for d in _of(rows, pid, "labs") if d["timepoint"] == "baseline"]
        assert {k: _num(baseline[k]) for k in p["labs_before"]} == p["labs_before"]
        [ct] = [d for d in _of(rows, pid, "ct_score") if d["timepoint"] == "baseline"]
        assert {k: ct[k] for k in p["ct_before"]} == p["ct_before"]
        assert ct["total"] == sum(p["ct_before"].values())
        demog = _of(rows, pid, "demographics")[0]
        assert demog["symptoms"] == p["symptoms"] and demog["comorbidities"] == p["comorbidities"]
        pre = [d for d in _of(rows, pid, "vitals") if d["timepoint"] == "pre_dose"]
        assert [_num(d["oxysat"]) for d in pre] == [x["oxysat_pre"] for x in p["doses"]]
        assert all(_num(d["pulse"]) == p["vitals_pre"]["pulse"] for d in pre)
        doses = _of(rows, pid, "dose")
        assert [datetime.fromisoformat(d["start"]).astimezone(TZ).strftime("%H:%M") for d in doses] == [
            x["start"] for x in p["doses"]
        ]
        for d in doses:
            kit += 1
            assert d["kit_id"] == f"EXO-{kit:04d}" and d["lot"] == "HAMSC-2003-01"
            # the amount is the protocol's (its regimen's fixed dose), not the demo file's
            assert d["particles"] == {"unit": "particles", "value": 2.0e8}
            assert d["volume"] == {"unit": "mL", "value": 6.0}  # the administration's declared volume
            took = datetime.fromisoformat(d["end"]) - datetime.fromisoformat(d["start"])
            assert took.total_seconds() == 30 * 60  # the regimen's duration
        oxygen = _of(rows, pid, "oxygen")
        assert [{k: _num(v) for k, v in o.items() if k != "date"} for o in oxygen] == [
            x["oxygen"] for x in p["doses"]
        ]
        checks = _of(rows, pid, "post_dose_check")
        assert [c["events"] for c in checks] == [x["events"] for x in p["doses"]]


def test_records_are_entered_in_time_order(seeded):
    _result, rows, _lots = seeded
    stamps = [ts for *_x, ts in rows if ts]
    assert stamps == sorted(stamps)


def test_the_protocol_fills_in_what_follows_from_it(seeded):
    """The lot's label is the protocol's product and dose (amounts.quantity); the consent page's title
    names the protocol and its version (checked through the page the seeder draws)."""
    _result, _rows, lots = seeded
    assert lots == {"HAMSC-2003-01": "haMSC-Exos 2.0e8 particles"}
    assert demo.dose_amount(demo.ward_protocol()) == 2.0e8
    assert demo.dose_volume(demo.ward_protocol()) == 6.0
    palm = demo.ward_protocol(model.shipped("palm.toml"))
    assert demo.dose_amount(palm) is None and demo.dose_volume(palm) is None  # by weight, left to the ward


def test_every_shipped_protocol_has_a_demo_file_that_reads_clean():
    from wardcrf.sync import engine_demo

    for name in model.SHIPPED:
        assert demo_file.shipped_source(model.shipped(name).id) is not None, name
    for ward in (demo.ward_protocol(), demo.ward_protocol(model.shipped("mexcovid.toml"))):
        read = demo.read_demo(ward)
        assert read.protocol == ward.id == "MEXCOVID" and len(read.participants) == 7
    for name in ("palm.toml", "palm007.toml"):
        trial = model.shipped(name)
        read = engine_demo.read_demo(trial)
        assert read.protocol == trial.id and read.participants and read.at_step("consent")


def test_a_protocol_without_a_demo_file_is_refused_before_anything_is_created(tmp_path):
    from wardcrf import protocol
    from wardcrf.errors import Refused

    source = protocol.default_protocol().source.replace('id = "MEXCOVID"', 'id = "OTHERTRIAL"', 1)
    other = protocol.parse(source, "other.toml")
    with pytest.raises(
        Refused, match=r"OTHERTRIAL has no demo file \(wardcrf/protocols/demo/othertrial.toml\)"
    ):
        demo.seed(tmp_path / "site", protocol_file=other)
    assert not (tmp_path / "site").exists()
    # given a demo file, it must be that protocol's
    with pytest.raises(demo_file.DemoFileError, match="names 'MEXCOVID'; this is the demo of 'OTHERTRIAL'"):
        demo.seed(tmp_path / "site", protocol_file=other, demo_source=("other-demo.toml", _shipped()))
    assert not (tmp_path / "site").exists()


# -- a hostile demo file: one line naming file:line, nothing created -----------------------------------


def _refused(tmp_path: Path, text: str) -> str:
    target = tmp_path / "site"
    with pytest.raises(demo_file.DemoFileError) as info:
        demo.seed(target, demo_source=("hostile.toml", text))
    assert not target.exists()
    message = str(info.value)
    assert "\n" not in message and message.startswith("invalid demo file: hostile.toml")
    return message


def test_malformed_toml_is_refused(tmp_path):
    assert "not valid TOML" in _refused(tmp_path, _shipped() + "\n[[records]\nform = \n")


def test_an_unknown_form_is_refused_at_its_line(tmp_path):
    text = _shipped().replace('form = "skin_test"', 'form = "skin_tset"', 1)
    line = text.splitlines().index('form = "skin_tset"') + 1
    msg = _refused(tmp_path, text)
    assert f"hostile.toml:{line}:" in msg and "'skin_tset' is not a form of MEXCOVID" in msg


def test_a_field_the_protocol_does_not_declare_is_refused(tmp_path):
    text = _shipped().replace('result = "negative", wheal = 3', 'result = "negative", wheel = 3', 1)
    msg = _refused(tmp_path, text)
    assert "'wheel' is not a field of form skin_test" in msg and "hostile.toml:" in msg


def test_an_undeclared_field_in_a_participants_table_is_refused(tmp_path):
    text = _shipped().replace("labs_before = { wbc = 6.2,", "labs_before = { wbcc = 6.2,", 1)
    msg = _refused(tmp_path, text)
    assert "participant 1: wbcc not a field of form labs" in msg


def test_a_placeholder_naming_nothing_is_refused(tmp_path):
    text = _shipped().replace('severity = "{severity}"', 'severity = "{severty}"', 1)
    assert "'severty' is not a value of the participant" in _refused(tmp_path, text)


def test_control_characters_are_refused(tmp_path):
    text = _shipped().replace('name = "moxifloxacin"', 'name = "moxi\\u0007floxacin"', 1)
    line = next(i for i, x in enumerate(text.splitlines(), 1) if "moxi\\u0007" in x)
    msg = _refused(tmp_path, text)
    assert f"hostile.toml:{line}:" in msg
    raw = _shipped().replace("# -- the cohort", "# -- the \x1b[31mcohort", 1)
    assert "is not allowed" in _refused(tmp_path, raw)


def test_an_oversized_value_or_file_is_refused(tmp_path):
    text = _shipped().replace('name = "moxifloxacin"', f'name = "{"x" * 5000}"', 1)
    assert "5,000 characters" in _refused(tmp_path, text)
    assert "larger than" in _refused(tmp_path, _shipped() + "#" * (1024 * 1024))


def test_another_protocols_file_and_unknown_keys_are_refused(tmp_path):
    msg = _refused(tmp_path, _shipped().replace('protocol = "MEXCOVID"', 'protocol = "PALM"', 1))
    assert "this is the demo of 'MEXCOVID'" in msg
    msg = _refused(tmp_path, _shipped().replace('at = "09:30"', 'at = "09:30"\nwhen = "later"', 1))
    assert "records[3].when: unknown key" in msg
    msg = _refused(
        tmp_path, _shipped().replace('sex = "M"\nage = 57', 'sex = "M"\nkit = "mine"\nage = 57', 1)
    )
    assert "participants[0].kit: 'kit' is a value the seeder gives" in msg
    msg = _refused(tmp_path, _shipped().replace('at = "09:30"', 'at = "half past nine"', 1))
    assert "records[3].at: must be the time it is entered" in msg


# -- the format-2 demo wards (sync/engine_demo.py): their trials' values from palm.toml / palm007.toml ---


def _engine_source(name: str) -> str:
    return resources.files("wardcrf.protocols").joinpath("demo", f"{name}.toml").read_text("utf-8")


@pytest.fixture(scope="module")
def palm007_ward(tmp_path_factory):
    from wardcrf.sync import engine_demo

    target = tmp_path_factory.mktemp("palm007") / "site"
    now = "2026-03-16T14:00:00+01:00"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", now)
        result = engine_demo.seed(
            target, model.shipped("palm007.toml"), "demo-pass-phrase", now=datetime.fromisoformat(now)
        )
    s = Site.open(target).unlock("auditor", "demo-pass-phrase")
    try:
        rows = [
            (r[0], r[1], json.loads(r[2]))
            for r in s.store.execute("SELECT subject, form, data FROM records ORDER BY rowid")
        ]
        lots = {r[0] for r in s.store.execute("SELECT product FROM cc_lots")}
    finally:
        s.close()
    return result, rows, lots


def test_the_palm007_ward_records_what_its_demo_file_says(palm007_ward):
    result, rows, lots = palm007_ward
    spec = tomllib.loads(_engine_source("palm007"))
    assert len(result.participants) == len(spec["participants"])
    timed = [(*r, "") for r in rows]
    # the story consents patients in the order of their days: each is found by who they are
    who = {
        (d["sex"], _num(d["age"]), _num(d["weight"])): subject.removeprefix("participant:")
        for subject, f, d in rows
        if f == "screening"
    }
    for p in spec["participants"]:
        pid = who[(p["sex"], p["age"], p["weight"])]
        [consent] = _of(timed, pid, "consent")
        assert {k: consent[k] for k in p["consent"]} == p["consent"]
        [screening] = _of(timed, pid, "screening")
        assert {k: screening[k] for k in p["screening"]} == p["screening"]
        assert _of(timed, pid, "labs")[0]["timepoint"] == "baseline"
        treatments = _of(timed, pid, "treatment")
        assert all(t["preparation"] == p["preparation"] and t["with_food"] is True for t in treatments)
        assert bool(treatments) == p.get("eligible", True)  # every dose whose window closed is given
    rounds = [d for _s, f, d in rows if f == "lesions"]
    assert rounds and all((_num(d["total"]), _num(d["active"])) == (40, 12) for d in rounds)
    # a dose by weight band: the lot's label is the product's name alone
    assert lots == {"tecovirimat"}


def test_an_engine_demo_file_is_refused_before_anything_is_created(tmp_path):
    from wardcrf.sync import engine_demo

    palm = model.shipped("palm.toml")
    now = datetime.fromisoformat("2026-03-16T14:00:00+01:00")
    bad = {
        "a form PALM does not declare": (
            _engine_source("palm").replace('form = "infusion"', 'form = "infusoin"'),
            "'infusoin' is not a form of PALM",
        ),
        "a field it does not declare": (
            _engine_source("palm").replace("rate = 170", "rate_ml = 170"),
            "'rate_ml' is not a field of form infusion",
        ),
        "a moment the story has not": (
            _engine_source("palm").replace('step = "round"', 'step = "lunch"'),
            "'lunch' is not a moment of this demo",
        ),
        "a record timed by the file": (
            _engine_source("palm").replace('step = "enrollment"', 'step = "enrollment"\nat = "09:00"'),
            "give its step, not at",
        ),
        "a user the story has not": (
            _engine_source("palm").replace('step = "enrollment"', 'step = "enrollment"\nby = "dsmg"'),
            "'dsmg' is not a demo user",
        ),
        "control characters": (
            _engine_source("palm").replace("Parent of the patient", "Parent\\u0000"),
            "hostile.toml:",
        ),
    }
    for why, (text, expected) in bad.items():
        target = tmp_path / why.replace(" ", "-")
        with pytest.raises(demo_file.DemoFileError) as info:
            engine_demo.seed(target, palm, "demo-pass-phrase", now=now, demo_source=("hostile.toml", text))
        message = str(info.value)
        assert expected in message and "\n" not in message and "hostile.toml:" in message, (why, message)
        assert not target.exists(), why


def test_a_birthday_on_29_february_and_days_out_of_range():
    from datetime import date

    assert demo_file.birth_date(30, "02-29", date(2026, 3, 16)) == date(1996, 2, 29)
    assert demo_file.birth_date(31, "02-29", date(2026, 3, 16)) == date(1995, 2, 28)
    assert demo_file.birth_date(57, "06-04", date(2026, 3, 16)) == date(1968, 6, 4)  # not yet 58


def test_a_day_too_far_is_refused(tmp_path):
    msg = _refused(tmp_path, _shipped().replace("admission = -23", "admission = -99999999", 1))
    assert "'admission' is not a whole number of days (at most 36500 either way)" in msg


def test_a_value_the_ward_refuses_names_the_line_and_leaves_nothing(tmp_path, monkeypatch):
    """The file reads clean but the ward refuses a record while seeding (a sex the form has no choice for):
    one line naming the record's line and the participant, and the half-made site removed."""
    monkeypatch.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
    text = _shipped()
    third = text.index("[[participants]]  # 003")
    text = text[:third] + text[third:].replace('sex = "M"', 'sex = "X"', 1)
    line = text.splitlines().index('form = "screening"')  # the record's [[records]] header, the line before
    msg = _refused(tmp_path, text)
    assert msg.startswith(f"invalid demo file: hostile.toml:{line}: participant 3: screening: "), msg
    assert "sex: 'X' is not one of: M, F" in msg


def test_an_engine_ward_refusing_a_value_leaves_nothing_and_an_existing_site_is_untouched(tmp_path):
    from wardcrf.sync import engine_demo

    palm007 = model.shipped("palm007.toml")
    now = datetime.fromisoformat("2026-03-16T14:00:00+01:00")
    text = _engine_source("palm007").replace("hb = 11.4", "hb = -3", 1)
    line = text.splitlines().index('step = "screening"')  # the record's [[records]] header
    target = tmp_path / "ward"
    with pytest.MonkeyPatch.context() as mp, pytest.raises(demo_file.DemoFileError) as info:
        mp.setenv("WARDCRF_FAKE_NOW", now.isoformat())
        engine_demo.seed(target, palm007, "demo-pass-phrase", now=now, demo_source=("hostile.toml", text))
    assert str(info.value).startswith(f"invalid demo file: hostile.toml:{line}: "), str(info.value)
    assert ": screening: " in str(info.value) and "\n" not in str(info.value)
    assert not target.exists()
    # a folder that already holds something else is never cleaned: what was there stays
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine", "utf-8")
    with pytest.MonkeyPatch.context() as mp, pytest.raises(demo_file.DemoFileError):
        mp.setenv("WARDCRF_FAKE_NOW", now.isoformat())
        engine_demo.seed(busy, palm007, "demo-pass-phrase", now=now, demo_source=("hostile.toml", text))
    assert (busy / "keep.txt").read_text("utf-8") == "mine"


def test_a_refused_demo_in_a_folder_holding_other_files_removes_none_of_them(tmp_path, monkeypatch):
    monkeypatch.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
    text = _shipped().replace('sex = "M"', 'sex = "X"', 1)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine", "utf-8")
    with pytest.raises(demo_file.DemoFileError, match="participant 1: screening: "):
        demo.seed(busy, demo_source=("hostile.toml", text))
    assert (busy / "keep.txt").read_text("utf-8") == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(demo_file.DemoFileError):
        demo.seed(empty, demo_source=("hostile.toml", text))
    assert empty.is_dir() and not any(empty.iterdir())  # the empty folder given stays, empty
