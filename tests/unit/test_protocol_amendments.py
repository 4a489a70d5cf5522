"""Protocol amendments per participant (issue 17): `wardcrf protocol apply PARTICIPANT VERSION --reason`.

A participant stays on the version they were enrolled under when a newer one is loaded; an
investigator applies the newer one to them with a reason (`protocol.applied`, audited); from then on
their forms are checked against it, their new records captured under it and their schedule read
from it. Records already saved keep their version. Each refusal: one line, nothing saved.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
from wf_support import _copy_site, at, make_ward, today

from wardcrf import protocol
from wardcrf.site import Site
from wardcrf.workflow import amendments

P1 = "WUH01-001"
MEX = protocol.default_source()


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago under MEXCOVID 1.0, negative skin test, sentinel gate open."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _version(source: str, version: str, *, temp_min: int | None = None, doses: int | None = None) -> str:
    out = source.replace('version = "1.0"', f'version = "{version}"', 1)
    if temp_min is not None:
        old = 'unit = "C"\nrequired = true\nhard = [30, 45]\nsoft = [35.0, 39.5]'
        assert old in out
        out = out.replace(
            old, f'unit = "C"\nrequired = true\nhard = [{temp_min}, 45]\nsoft = [{temp_min + 0.5}, 39.5]', 1
        )
    if doses is not None:
        out = out.replace("[schedule]\ndoses = 5", f"[schedule]\ndoses = {doses}", 1)
    return out


def _load(cli, tmp_path: Path, source: str) -> None:
    path = tmp_path / "next.toml"
    path.write_text(source, "utf-8")
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err


def _load_1_1(cli, tmp_path: Path) -> None:
    """MEXCOVID 1.1: a temperature below 36 C refused (35.5 is plausible under 1.0), four doses instead of five."""
    _load(cli, tmp_path, _version(MEX, "1.1", temp_min=36, doses=4))


def _vitals(cli, temp: str):
    return cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        f"temp={temp}",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        "--json",
        user="clinician",
    )


def _captured_under(cli, event_id: str) -> dict[str, str]:
    r = cli("log", "--json", "--type", "record.", user="auditor")
    assert r.code == 0, r.err
    line = next(e for e in json.loads(r.out) if e["event_id"] == event_id)
    return line["protocol"]


def _show(cli, pid: str = P1) -> dict:
    r = cli("participant", "show", pid, "--json", user="auditor")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _applied(cli) -> int:
    r = cli("log", "--json", "--type", "protocol.applied", user="auditor")
    assert r.code == 0, r.err
    return len(json.loads(r.out))


def _event_id(out: str) -> str:
    data = json.loads(out)
    return str(data.get("event") or data.get("id"))


def test_the_format_1_amendment_is_run_by_the_engine_on_its_own_values(cli, tmp_path, session_for):
    """1.1 is written in format 1: it runs on the engine (docs/engine.md, "Format 1 files") with its range
    and its four doses, which the tests below assert as the user meets them."""
    _load_1_1(cli, tmp_path)
    p = protocol.loaded_version(session_for("auditor").store, "MEXCOVID", "1.1")
    assert p.engine is not None and p.forms["vitals"].fields["temp"].hard == (36, 45)
    (adm,) = p.engine.regimens["exo_inhalation"].administrations
    assert adm.schedule.count_max == 4


def test_an_enrolled_participant_stays_on_their_version_until_it_is_applied(cli, tmp_path):
    _load_1_1(cli, tmp_path)
    info = _show(cli)
    assert info["protocol"] == {"id": "MEXCOVID", "version": "1.0", "since": "enrollment"}
    assert info["amendments"] == [] and info["doses_planned"] == 5  # their schedule: 1.0's five doses
    # checked against 1.0 (35.5 C is inside 1.0's range, below 1.1's) and captured under it
    r = _vitals(cli, "35.5")
    assert r.code == 0, r.err
    before = _event_id(r.out)
    assert _captured_under(cli, before) == {"id": "MEXCOVID", "version": "1.0"}

    r = cli(
        "protocol",
        "apply",
        P1,
        "1.1",
        "--reason",
        "Amendment 1 approved by the EC on 2026-11-30; participant re-consented",
        user="investigator",
    )
    assert r.code == 0, r.err
    assert f"{P1}: MEXCOVID 1.0 -> 1.1" in r.out

    info = _show(cli)
    assert info["protocol"] == {"id": "MEXCOVID", "version": "1.1", "since": "amendment"}
    (a,) = info["amendments"]
    assert (a["from"], a["to"], a["by"]) == ("1.0", "1.1", "investigator")
    assert a["reason"].startswith("Amendment 1 approved")
    assert info["doses_planned"] == 4  # what is due now comes from their version
    r = cli("participant", "list", "--json", user="auditor")
    row = next(x for x in json.loads(r.out) if x["id"] == P1)
    assert row["doses_planned"] == 4
    r = cli("participant", "show", P1, user="auditor")
    assert "protocol: MEXCOVID 1.1 (amendment)" in r.out and "amendment 1.0 -> 1.1 by investigator" in r.out

    # now checked against 1.1 and captured under it; the earlier record keeps 1.0
    r = _vitals(cli, "35.5")
    assert r.code == 1 and "temp" in r.err
    r = _vitals(cli, "37")
    assert r.code == 0, r.err
    assert _captured_under(cli, _event_id(r.out)) == {"id": "MEXCOVID", "version": "1.1"}
    assert _captured_under(cli, before) == {"id": "MEXCOVID", "version": "1.0"}

    # the audit trail carries the event, its reason and the version it moved them to
    r = cli("log", "--json", "--type", "protocol.applied", user="auditor")
    (e,) = json.loads(r.out)
    assert e["subject"] == f"participant:{P1}" and e["role"] == "investigator"
    assert e["body"] == {
        "participant": P1,
        "protocol_id": "MEXCOVID",
        "from_version": "1.0",
        "to_version": "1.1",
    }
    assert e["reason"].startswith("Amendment 1 approved") and e["protocol"]["version"] == "1.1"
    # a rebuild replays the projection to the same rows
    r = cli("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.err
    # the ODM export's audit trail names the amendment, its versions and its reason
    out = tmp_path / "odm.xml"
    r = cli("export", "odm", "--out", str(out), user="auditor")
    assert r.code == 0, r.err
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    root = ET.parse(out).getroot()
    (rec,) = [
        a
        for a in root.iterfind(".//odm:AuditRecords/odm:AuditRecord", ns)
        if "protocol.applied" in (a.findtext("odm:SourceID", namespaces=ns) or "")
    ]
    assert rec.findtext("odm:SourceID", namespaces=ns).endswith(
        f"protocol.applied (participant:{P1}): protocol MEXCOVID 1.0 -> 1.1"
    )
    assert rec.findtext("odm:ReasonForChange", namespaces=ns).startswith("Amendment 1 approved")


def test_a_participant_enrolled_after_the_new_version_is_loaded_is_on_it(cli, tmp_path, session_for):
    _load_1_1(cli, tmp_path)
    ward = make_ward(session_for, tmp_path)
    pid = ward.consent(time=at(today() - timedelta(days=2)))
    assert _show(cli, pid)["protocol"] == {
        "id": "MEXCOVID",
        "version": "1.1",
        "since": "active (not enrolled)",
    }
    ward.screen(pid, date=(today() - timedelta(days=1)).isoformat())
    ward.enroll(pid, today())
    assert _show(cli, pid)["protocol"] == {"id": "MEXCOVID", "version": "1.1", "since": "enrollment"}
    # and the one enrolled before is still on 1.0
    assert amendments.participant_ref(ward.clin.store, _participant(ward, P1)) == {
        "id": "MEXCOVID",
        "version": "1.0",
    }


def _participant(ward, pid):
    from wardcrf.workflow.base import get_participant

    return get_participant(ward.clin.store, pid)


def _apply(cli, *args: str, user: str = "investigator", reason: str | None = "approved amendment"):
    extra = ("--reason", reason) if reason is not None else ()
    return cli("protocol", "apply", *args, *extra, user=user)


def _refused(r, code: int, words: str) -> None:
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == code, (r.out, r.err)
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert words in lines[0], lines[0]


def test_refused_unknown_version_same_version_and_older_version(cli, tmp_path):
    r = _apply(cli, P1, "9.9")
    _refused(r, 1, "protocol MEXCOVID version 9.9 is not loaded on this site (loaded: 1.0;")
    r = _apply(cli, P1, "1.0")
    _refused(r, 1, f"{P1} is already on MEXCOVID 1.0; nothing to apply")
    r = _apply(cli, P1, "PALM@1.0")
    _refused(r, 1, "PALM is another protocol")
    _load_1_1(cli, tmp_path)
    assert _apply(cli, P1, "MEXCOVID@1.1").code == 0
    r = _apply(cli, P1, "1.0")
    _refused(
        r,
        1,
        f"MEXCOVID 1.0 was loaded before 1.1, the version {P1} is on: a participant only moves to a newer",
    )
    assert _applied(cli) == 1


def test_refused_for_a_participant_not_enrolled_or_unknown(cli, tmp_path, session_for):
    _load_1_1(cli, tmp_path)
    ward = make_ward(session_for, tmp_path)
    pid = ward.consent(time=at(today() - timedelta(days=2)))
    _refused(_apply(cli, pid, "1.1"), 1, f"{pid} is not enrolled")
    _refused(_apply(cli, "WUH01-999", "1.1"), 1, "unknown participant WUH01-999")
    assert _applied(cli) == 0


@pytest.mark.parametrize(
    ("reason", "code", "words"),
    [
        ("", 2, "needs a reason (--reason)"),
        ("   ", 2, "needs a reason (--reason)"),
        (None, 2, "needs a reason (--reason)"),
        ("approved\x1b[2J", 1, "reason: character U+001B"),
        ("approved\u202egnirts", 1, "reason: character U+202E"),
        ("approved\nsecond line", 1, "reason: character"),
        ("x" * 2001, 1, "reason: 2,001 characters, at most 2,000 allowed"),
    ],
    ids=["empty", "blank", "missing", "escape", "bidi", "newline", "oversized"],
)
def test_refused_without_a_clean_reason(cli, tmp_path, reason, code, words):
    _load_1_1(cli, tmp_path)
    _refused(_apply(cli, P1, "1.1", reason=reason), code, words)
    assert _applied(cli) == 0
    assert _show(cli)["protocol"]["version"] == "1.0"


@pytest.mark.parametrize("user", ["clinician", "admin", "coordinator", "auditor", "dsmg", "pharmacist"])
def test_only_an_investigator_applies_an_amendment(cli, tmp_path, user):
    _load_1_1(cli, tmp_path)
    _refused(_apply(cli, P1, "1.1", user=user), 1, f"role {user} may not apply a protocol amendment")
    assert _applied(cli) == 0


def test_refused_when_a_form_holding_their_records_is_gone_from_the_new_version(cli, tmp_path, session_for):
    ward = make_ward(session_for, tmp_path)
    ward.submit(
        "disposition", participant=P1, stage="end_of_treatment", status="completed", date=today().isoformat()
    )
    cut = MEX.index("[forms.disposition]")
    _load(cli, tmp_path, _version(MEX[:cut], "1.2"))
    _refused(_apply(cli, P1, "1.2"), 1, f"MEXCOVID 1.2 has no disposition form, which holds records of {P1}")
    assert _applied(cli) == 0


def test_a_form_the_active_version_dropped_is_still_theirs_on_their_version(cli, tmp_path, session_for):
    """Active 1.2 has no disposition form; WUH01-001, still on 1.0, records one, captured under 1.0."""
    cut = MEX.index("[forms.disposition]")
    _load(cli, tmp_path, _version(MEX[:cut], "1.2"))
    ward = make_ward(session_for, tmp_path)
    ev = ward.submit(
        "disposition", participant=P1, stage="end_of_treatment", status="completed", date=today().isoformat()
    )
    assert ev.protocol == {"id": "MEXCOVID", "version": "1.0"}


# -- a format-2 version of its own (PALM): the engine reads the participant's version --------------


def _palm_version(version: str, *, without_arm: str | None = None) -> str:
    """PALM `version`: a temperature below 36 C refused (35.5 is plausible under 1.0); optionally an arm gone."""
    from wardcrf.engine import model

    src = model.shipped_source("palm.toml").replace('version = "1.0"', f'version = "{version}"', 1)
    old = 'unit = "C"\nrequired = true\nhard = [30, 45]\nsoft = [35, 40.5]'
    assert old in src
    src = src.replace(old, 'unit = "C"\nrequired = true\nhard = [36, 45]\nsoft = [36.5, 40.5]', 1)
    if without_arm:
        i = src.index(f'[[arms]]\ncode = "{without_arm}"')
        src = src[:i] + src[src.index("\n[", i + 1) + 1 :]
    return src


def _palm_vitals(w, pid: str, temp: str):
    return w.run(
        "submit",
        "vitals",
        "--participant",
        pid,
        "timepoint=daily",
        f"temp={temp}",
        "pulse=96",
        "resp=20",
        "sysbp=112",
        "diabp=70",
        "oxysat=97",
        "--json",
    )


def test_a_format_2_participant_follows_their_version_and_keeps_their_arm(cli, tmp_path, monkeypatch):
    from test_engine_ward_cli import _ward

    w = _ward(cli, tmp_path, monkeypatch, "palm")
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    arm = r.out.split("randomized: arm ", 1)[1].split()[0]
    for version, text_ in (("1.1", _palm_version("1.1")), ("1.2", _palm_version("1.2", without_arm=arm))):
        path = tmp_path / f"palm-{version}.toml"
        path.write_text(text_, "utf-8")
        r = w.run("protocol", "load", str(path), user="investigator")
        assert r.code == 0, r.err

    r = w.run("participant", "show", pid, "--json", user="auditor")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["protocol"] == {"id": "PALM", "version": "1.0", "since": "enrollment"} and info["arm"] == arm
    r = _palm_vitals(w, pid, "35.5")  # 1.0's range
    assert r.code == 0, r.err
    assert w.run("today", "--json").code == 0

    # the participant's arm is gone from 1.2: refused, naming it
    r = w.run("protocol", "apply", pid, "1.2", "--reason", "amendment 2", user="investigator")
    _refused(r, 1, f"{pid} was allocated arm {arm}, which PALM 1.2 does not have")

    r = w.run(
        "protocol", "apply", pid, "1.1", "--reason", "amendment 1 approved", "--json", user="investigator"
    )
    assert r.code == 0, r.err
    assert json.loads(r.out)["to_version"] == "1.1"
    info = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    assert info["protocol"] == {"id": "PALM", "version": "1.1", "since": "amendment"} and info["arm"] == arm
    r = _palm_vitals(w, pid, "35.5")  # 1.1's range: refused
    assert r.code == 1 and "temp" in r.err
    r = _palm_vitals(w, pid, "37.5")
    assert r.code == 0, r.err
    r = w.run("log", "--json", "--type", "record.", user="auditor")
    versions = [e["protocol"]["version"] for e in json.loads(r.out) if e["body"].get("form") == "vitals"]
    assert versions == ["1.0", "1.1"]
    r = w.run("today", "--json")
    assert r.code == 0, r.err
    # the ward queue kept after each record and amendment equals one derived from the log
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.err


FOLLOWUP = """
[forms.followup]
label = { en = "Day 28 follow-up call", zh = "第28天随访电话" }

[forms.followup.fields.date]
type = "date"
required = true
label = { en = "Date of the call", zh = "日期" }

[forms.followup.fields.status]
type = "choice"
required = true
label = { en = "Status", zh = "状态" }
choices = [
  { code = "well", label = { en = "Well", zh = "良好" } },
  { code = "unwell", label = { en = "Unwell", zh = "不适" } },
]
"""


def test_a_form_only_a_newer_version_has_waits_for_the_amendment(cli, tmp_path):
    _load(cli, tmp_path, _version(MEX, "1.1") + FOLLOWUP)
    args = ("submit", "followup", "--participant", P1, f"date={today().isoformat()}", "status=well")
    r = cli(*args, user="clinician")
    _refused(r, 1, f"{P1} is on protocol MEXCOVID 1.0, which has no followup form")
    assert "wardcrf protocol apply" in r.err
    assert _apply(cli, P1, "1.1").code == 0
    r = cli(*args, user="clinician")
    assert r.code == 0, r.err


def test_hostile_arguments_are_refused_in_one_line_and_spelled_out(cli, tmp_path):
    _load_1_1(cli, tmp_path)
    r = _apply(cli, P1, "1.\x1b[2J1")
    _refused(r, 1, "is not loaded on this site")
    assert "\x1b" not in r.err
    r = _apply(cli, "WUH01-\u202e999", "1.1")
    _refused(r, 1, "unknown participant")
    assert "\u202e" not in r.err
    r = _apply(cli, P1, "1" * 5000)
    _refused(r, 1, "(5,000 characters)")
    r = cli("protocol", "diff", "MEX\x1b[31m@1.0", "MEXCOVID@1.0", user="auditor")
    _refused(r, 1, "is not loaded on this site")
    assert "\x1b" not in r.err
    assert _applied(cli) == 0


def test_refused_when_the_doses_given_do_not_fit_the_new_schedule(cli, tmp_path, session_for):
    ward = make_ward(session_for, tmp_path)
    day0 = today() - timedelta(days=10)
    ward.dose(P1, 1, day0 + timedelta(days=1))
    ward.dose(P1, 2, day0 + timedelta(days=2))
    _load(cli, tmp_path, _version(MEX, "1.1", doses=1))
    _load(cli, tmp_path, _version(MEX, "1.2", doses=2))
    _refused(
        _apply(cli, P1, "1.1"),
        1,
        f"{P1} has 2 administrations recorded and MEXCOVID 1.1 plans 1: their course does not fit",
    )
    assert _applied(cli) == 0
    r = _apply(cli, P1, "1.2")  # two given, two planned: it fits
    assert r.code == 0, r.err
    assert _show(cli)["doses_planned"] == 2


def _versions_of_record(w, record: str) -> list[tuple[str, str]]:
    """(event type, version) of a record's submission and of each correction, in log order."""
    r = w.run("log", "--json", "--type", "record.", user="auditor")
    assert r.code == 0, r.err
    return [
        (e["type"], e["protocol"]["version"])
        for e in json.loads(r.out)
        if record in (e["event_id"], e.get("amends"))
    ]


def test_a_correction_is_captured_under_the_version_of_the_record_it_corrects(cli, tmp_path, monkeypatch):
    """PALM 1.0 and 1.1 loaded (1.1 active). A 1.0 record corrected, before and after the participant moves
    to 1.1: each correction's event names 1.0, the version the record was captured and checked under."""
    from test_engine_ward_cli import _ward

    w = _ward(cli, tmp_path, monkeypatch, "palm")
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    r = _palm_vitals(w, pid, "35.5")  # 1.0's range (1.1 refuses below 36)
    assert r.code == 0, r.err
    record = _event_id(r.out)
    path = tmp_path / "palm-1.1.toml"
    path.write_text(_palm_version("1.1"), "utf-8")
    assert w.run("protocol", "load", str(path), user="investigator").code == 0

    r = w.run("amend", record, "temp=35.6", "--reason", "thermometer read again")
    assert r.code == 0, r.err  # checked under 1.0: 35.6 C is in its range
    assert _versions_of_record(w, record) == [("record.submitted", "1.0"), ("record.amended", "1.0")]

    r = w.run("protocol", "apply", pid, "1.1", "--reason", "amendment 1 approved", user="investigator")
    assert r.code == 0, r.err
    r = w.run("amend", record, "temp=35.7", "--reason", "transcription corrected")
    assert r.code == 0, r.err  # still the record's version, not the participant's new one nor the active one
    assert _versions_of_record(w, record) == [
        ("record.submitted", "1.0"),
        ("record.amended", "1.0"),
        ("record.amended", "1.0"),
    ]
    # a value the record's version refuses is refused, nothing saved
    r = w.run("amend", record, "temp=29", "--reason", "typo")
    assert r.code == 1 and "temp" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert len(_versions_of_record(w, record)) == 3


def _palm_perfusion(version: str) -> str:
    """PALM `version` whose administration form is `perfusion` (1.0: `infusion`), its kit field `vial_id`."""
    from wardcrf.engine import model

    src = model.shipped_source("palm.toml").replace('version = "1.0"', f'version = "{version}"', 1)
    for old, new in (
        ('form = "infusion"', 'form = "perfusion"'),
        ('on = "infusion"', 'on = "perfusion"'),
        ('kit = "kit_id"', 'kit = "vial_id"'),
        ("[forms.infusion.fields.kit_id]", "[forms.perfusion.fields.vial_id]"),
        ("[forms.infusion", "[forms.perfusion"),
    ):
        assert old in src, old
        src = src.replace(old, new)
    return src


def _enrolled_and_randomized(w) -> tuple[str, str]:
    """(participant, the arm allocated: random, so a vial's product is the arm's)."""
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    return pid, r.out.split("randomized: arm ", 1)[1].split()[0]


def test_a_kit_given_under_an_older_version_is_refused_to_another_participant_on_a_newer_one(
    cli, tmp_path, monkeypatch
):
    """A vial given to A under PALM 1.0 (form `infusion`, field `kit_id`); 1.1 renames both (`perfusion`,
    `vial_id`) and B moves to it: the vial is refused to B, at the scan and at the save, named as A's; the
    cold chain sees it used. Another vial is accepted. The lookup is one indexed search by the kit."""
    from datetime import timedelta

    from site_users import PASSWORD
    from test_engine_ward_cli import _infusion, _product, _vitals, _ward
    from wf_support import ready_kit_on

    from wardcrf import kits
    from wardcrf.engine import schedule as sched
    from wardcrf.workflow import administration_visit

    w = _ward(cli, tmp_path, monkeypatch, "palm")
    (a, arm_a), (b, arm_b) = _enrolled_and_randomized(w), _enrolled_and_randomized(w)
    first = min(
        s.opens
        for adms in sched.plan(
            model_palm(), {"randomization": w.now}, arm="ZMAPP", zone="Africa/Kinshasa", conditions={}
        ).values()
        for _adm, ss in adms
        for s in ss
    )
    start = max(first, w.now) + timedelta(minutes=30)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root, _product(arm_a))
    assert _vitals(w, a, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = _infusion(w, a, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    given_to_a = r.out.strip().splitlines()[0]

    path = tmp_path / "palm-1.1.toml"
    path.write_text(_palm_perfusion("1.1"), "utf-8")
    assert w.run("protocol", "load", str(path), user="investigator").code == 0
    r = w.run("protocol", "apply", b, "1.1", "--reason", "amendment 1 approved", user="investigator")
    assert r.code == 0, r.err
    assert _vitals(w, b, "pre_infusion", 1, start - timedelta(minutes=10)).code == 0

    def perfusion(kit: str):
        return w.run(
            "submit",
            "perfusion",
            "--participant",
            b,
            f"vial_id={kit}",
            "lot=LOT-P1",
            "dose_mg=3100",
            "volume=250",
            "rate=125",
            f"start={start.isoformat()}",
            f"end={(start + timedelta(hours=2)).isoformat()}",
        )

    r = perfusion("vial-0001")  # as typed in lower case: the same kit
    _refused(r, 1, f"kit VIAL-0001 belongs to {a}")
    s = Site.open(w.dir).unlock("clinician", PASSWORD)
    try:
        scanned = administration_visit.check_kit(s, b, "VIAL-0001", start)
        assert not scanned.ok and f"belongs to {a}" in str(scanned.reason)
        use = kits.kit_use(s.store, "VIAL-0001")  # the cold chain's question: used, by A
        assert use is not None and use.participant == a
        # one indexed search by the kit's key, whatever else the site holds
        seen: list[str] = []
        s.store.conn.set_trace_callback(seen.append)
        try:
            kits.administration_uses(s.store, "VIAL-0001")
        finally:
            s.store.conn.set_trace_callback(None)
        (sql,) = [q for q in seen if "administration_kits" in q]
        plan = " ".join(str(row[3]) for row in s.store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SEARCH administration_kits USING INDEX administration_kits_kit (kit_id=?)" in plan, plan
        assert "SCAN" not in plan, plan
    finally:
        s.close()

    ready_kit_on(w.site(), "VIAL-0002", start.isoformat(), w.root, _product(arm_b))
    r = perfusion("VIAL-0002")
    assert r.code == 0, r.err
    # A's vial corrected (a label misread): the lookup follows the record's current kit
    r = w.run("amend", given_to_a, "kit_id=VIAL-0003", "--reason", "vial label misread at the bedside")
    assert r.code == 0, r.err
    s = Site.open(w.dir).unlock("admin", PASSWORD)
    try:
        assert kits.kit_use(s.store, "VIAL-0001") is None
        assert [u.participant for u in kits.administration_uses(s.store, "VIAL-0003")] == [a]
        assert [u.participant for u in kits.administration_uses(s.store, "VIAL-0002")] == [b]
        # a site upgraded through the migration is filled from its records: the same rows
        rows = "SELECT event_id, participant, form, field, kit_id FROM administration_kits ORDER BY event_id"
        before = s.store.rows(rows)
        assert {(x["participant"], x["form"], x["field"], x["kit_id"]) for x in before} == {
            (a, "infusion", "kit_id", "VIAL-0003"),
            (b, "perfusion", "vial_id", "VIAL-0002"),
        }
        with s.store.transaction():
            s.store.execute("DELETE FROM administration_kits")
        assert kits.fill(s.store) == 2 and s.store.rows(rows) == before
        # as the site was before the migration: opened again, it is migrated and filled
        with s.store.transaction():
            s.store.execute("DROP TABLE administration_kits")
            s.store.execute("DELETE FROM schema_migrations WHERE name = ?", (kits.MIGRATION,))
    finally:
        s.close()
    s = Site.open(w.dir).unlock("auditor", PASSWORD)
    try:
        assert s.store.rows(rows) == before
    finally:
        s.close()
    r = w.run("db", "rebuild", "--check", user="admin")  # the projection replays from the log
    assert r.code == 0, r.out + r.err


def model_palm():
    from wardcrf.engine import model

    return model.shipped("palm.toml")
