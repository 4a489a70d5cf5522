"""Calendar visits counted from the first dose or a declared `[[anchors]]` event (issue #17).

A visit whose anchor is `first_dose` (the start of the participant's first
administration given) or a protocol's own anchor (a date field of a recorded
form, `pick` and `where` choosing the record) is placed, owed and listed
exactly like one counted from enrollment or randomization: `participant
show`, `participant list --json` (`visits_owed`), `wardcrf today`, the ward
queue, `wardcrf report visits`. Before its anchor's event it is not yet
placed, and the ward says so ("day 8 after first dose — not yet placed"),
never leaves it out. Pure first (`engine.visits.timeline`, `waiting`, a
Hypothesis property over first doses given around midnight and across DST
changes), then the model's refusals (`FILE:LINE`), then a PALM variant
through the CLI.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from wardcrf.engine import model, visits
from wardcrf.engine.interpreter import Rec, Snapshot
from wardcrf.protocol_file import ProtocolFileError

KIN = ZoneInfo("Africa/Kinshasa")
INPT = '[[visits]]\ncode = "INPT"'
INPT_FORMS = (
    'forms = ["vitals", { form = "labs", required = false }, { form = "ebov_pcr", required = false }]'
)
# Declared before INPT, so a PCR of the confirmatory visit's day is its record (a record fills the first
# visit, in declared order, whose window holds it); INPT's vitals made optional, so what the ward owes in
# the test below is these visits' forms alone.
EXTRA = """[[anchors]]
name = "pcr_negative"
form = "ebov_pcr"
field = "date"
pick = "first"
where = "result == 'negative'"

[[visits]]
code = "FD8"
num = 18
label = "FIRST DOSE DAY 8"
epoch = "FOLLOW-UP"
anchor = "first_dose"
day = 8
window = ["-1d", "+1d"]
forms = ["vital_status"]

[[visits]]
code = "PCRC"
num = 19
label = "CONFIRMATORY PCR"
epoch = "TREATMENT"
anchor = "pcr_negative"
day = 3                                    # anchor_day 1: two days after the first negative PCR
window = ["0d", "+1d"]
forms = ["ebov_pcr"]

"""


def _source(extra: str = EXTRA) -> str:
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")
    assert text.count(INPT) == 1 and text.count(INPT_FORMS) == 1
    text = text.replace(
        INPT_FORMS, INPT_FORMS.replace('forms = ["vitals"', 'forms = [{ form = "vitals", required = false }')
    )
    return text.replace(INPT, extra + INPT)


def _model() -> model.Model:
    return model.parse(_source(), "palm-anchored.toml")


def _infusion(start: datetime, n: int = 1, *, not_given: bool = False) -> Rec:
    return Rec("infusion", {"start": start, "not_given": not_given}, f"inf{n}", n)


def _pcr(day: date, result: str, n: int) -> Rec:
    return Rec("ebov_pcr", {"date": day, "result": result}, f"pcr{n}", n)


def _snap(records: dict[str, list[Rec]], at: datetime, tz: ZoneInfo = KIN) -> Snapshot:
    return Snapshot(records=records, now=at, zone=tz, anchors={}, anchor_day=1)


# -- pure: the timeline ---------------------------------------------------------------------------------


def test_the_first_dose_is_the_first_administration_given_and_a_declared_anchor_reads_its_record() -> None:
    m = _model()
    t1 = datetime(2020, 3, 16, 9, 0, tzinfo=KIN)
    at = t1 + timedelta(days=10)
    assert visits.timeline(m, _snap({}, at))["first_dose"] is None
    skipped = visits.timeline(m, _snap({"infusion": [_infusion(t1, not_given=True)]}, at))
    assert skipped["first_dose"] is None  # an administration not given is no dose
    both = {"infusion": [_infusion(t1 + timedelta(days=3), 2), _infusion(t1, 1)]}
    got = visits.timeline(m, _snap(both, at))
    assert got["first_dose"] == t1 and got.get("last_dose") is None  # the course is not over
    over = visits.timeline(m, _snap(both, at), course_end=date(2020, 3, 20))
    assert (over["last_dose"], over["treatment_end"]) == (t1 + timedelta(days=3), date(2020, 3, 20))
    # `where` chooses the records, `pick = "first"` the earliest by record date (not log order)
    pcrs = [_pcr(date(2020, 3, 22), "negative", 3), _pcr(date(2020, 3, 18), "positive", 1)]
    pcrs.append(_pcr(date(2020, 3, 20), "negative", 2))
    assert visits.timeline(m, _snap({"ebov_pcr": pcrs}, at))["pcr_negative"] == date(2020, 3, 20)
    positive_only = visits.timeline(m, _snap({"ebov_pcr": [pcrs[1]]}, at))
    assert positive_only["pcr_negative"] is None  # the event has not happened
    last = model.parse(_source(EXTRA.replace('pick = "first"', 'pick = "last"')), "last.toml")
    assert visits.timeline(last, _snap({"ebov_pcr": pcrs}, at))["pcr_negative"] == date(2020, 3, 22)


def test_a_visit_counted_from_an_event_not_yet_happened_is_waiting_then_placed() -> None:
    m = _model()
    t1 = datetime(2020, 3, 16, 9, 0, tzinfo=KIN)
    at = t1 + timedelta(hours=1)
    before = visits.timeline(m, _snap({}, at))
    assert not any(o.visit.code in ("FD8", "PCRC") for o in visits.dated(m, before, KIN, arm="MAB114"))
    waiting = {w.visit.code: w for w in visits.waiting(m, before, arm="MAB114")}
    assert waiting["FD8"].words == "day 8 after first dose" and waiting["FD8"].name == "FIRST DOSE DAY 8"
    assert waiting["PCRC"].words == "day 3 after pcr negative"
    assert "INPT" in waiting  # no randomization in these anchors: counted from it, not placed either
    after = visits.timeline(m, _snap({"infusion": [_infusion(t1)]}, at))
    fd8 = next(o for o in visits.dated(m, after, KIN, arm="MAB114") if o.visit.code == "FD8")
    assert (fd8.target, fd8.opens, fd8.closes, fd8.num) == (
        date(2020, 3, 23),
        date(2020, 3, 22),
        date(2020, 3, 24),
        18,
    )
    assert "FD8" not in {w.visit.code for w in visits.waiting(m, after, arm="MAB114")}


ZONES = ["Europe/Paris", "America/Santiago", "Australia/Lord_Howe", "Africa/Kinshasa", "America/Havana"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone_name=st.sampled_from(ZONES),
    first=st.datetimes(
        min_value=datetime(2019, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    record_after=st.integers(min_value=4 * 24 * 60, max_value=12 * 24 * 60),  # minutes after the first dose
    asked_after=st.integers(min_value=0, max_value=14 * 24 * 60),
)
def test_the_window_is_local_days_from_the_first_doses_local_date_across_midnight_and_dst(
    zone_name: str, first: datetime, record_after: int, asked_after: int
) -> None:
    """A first dose given at 23:50 is day 1 of its own local date, in every zone and across DST changes:
    the visit's window is the local dates `target - 1` to `target + 1`, a record fills it when its local date
    is inside, and what is owed at a moment follows that moment's local date."""
    m = _MODEL
    tz = ZoneInfo(zone_name)
    at = first + timedelta(minutes=asked_after)
    taken = first + timedelta(minutes=record_after)
    vitals = Rec("vital_status", {"date": taken.astimezone(tz).date(), "status": "alive"}, "vs1", 2)
    records = {"infusion": [_infusion(first)], "vital_status": [vitals]}
    anchors = visits.timeline(m, _snap(records, at, tz))
    fd8 = next(o for o in visits.dated(m, anchors, tz, arm="MAB114") if o.visit.code == "FD8")
    day1 = first.astimezone(tz).date()
    assert fd8.target == day1 + timedelta(days=7)
    assert (fd8.opens, fd8.closes) == (fd8.target - timedelta(days=1), fd8.target + timedelta(days=1))
    snap = Snapshot(records=records, now=at, zone=tz, anchors=anchors, anchor_day=1)
    got = next(d for d in visits.dated_owed([fd8], records, snap, at, tz))
    inside = fd8.opens <= taken.astimezone(tz).date() <= fd8.closes
    today = at.astimezone(tz).date()
    assert got.owed == (() if inside else ("vital_status",))
    if today < fd8.opens:
        assert got.state == "upcoming"
    elif inside:
        assert got.state == "done"
    else:
        assert got.state == (
            "overdue" if today > fd8.closes else "window closing" if today == fd8.closes else "due now"
        )


_MODEL = _model()


def test_a_first_dose_just_before_midnight_on_a_dst_night_counts_from_its_own_local_date() -> None:
    paris = ZoneInfo("Europe/Paris")
    first = datetime(2024, 3, 30, 23, 50, tzinfo=paris)  # clocks go forward at 02:00 that night
    anchors = visits.timeline(_MODEL, _snap({"infusion": [_infusion(first)]}, first, paris))
    fd8 = next(o for o in visits.dated(_MODEL, anchors, paris, arm="RDV") if o.visit.code == "FD8")
    assert (fd8.opens, fd8.target, fd8.closes) == (date(2024, 4, 5), date(2024, 4, 6), date(2024, 4, 7))


# -- the model: accepted and refused at load -----------------------------------------------------------


BAD_ANCHORS = {
    "a visit counted from an anchor that does not exist": (
        EXTRA.replace('anchor = "pcr_negative"', 'anchor = "pcr_nowhere"'),
        r"visits\[\d+\]\.anchor: anchor 'pcr_nowhere' is not declared",
    ),
    "an anchor named as a built-in one": (
        EXTRA.replace('name = "pcr_negative"', 'name = "first_dose"').replace(
            'anchor = "pcr_negative"', 'anchor = "first_dose"'
        ),
        r"anchors\[0\]\.name: 'first_dose' is a built-in anchor",
    ),
    "an anchor on a field that is not a date": (
        EXTRA.replace('field = "date"', 'field = "result"'),
        r"anchors\[0\]\.field: ebov_pcr\.result is a choice field: an anchor is a date or datetime field",
    ),
    "an anchor on a field the form lacks": (
        EXTRA.replace('field = "date"', 'field = "when"'),
        r"anchors\[0\]\.field: form ebov_pcr has no field 'when'",
    ),
    "an anchor on a form not declared": (
        EXTRA.replace('form = "ebov_pcr"\nfield', 'form = "pcr"\nfield'),
        r"anchors\[0\]\.form: form 'pcr' is not declared",
    ),
    "a repeated form without pick": (
        EXTRA.replace('pick = "first"\n', ""),
        r"anchors\[0\]\.form: form ebov_pcr can be recorded more than once: say which record",
    ),
    "a where naming a field the form lacks": (
        EXTRA.replace("result == 'negative'", "outcome == 'negative'"),
        r"anchors\[0\]\.where: .*outcome",
    ),
    "a pick that is neither first nor last": (
        EXTRA.replace('pick = "first"', 'pick = "median"'),
        r"anchors\[0\]\.pick",
    ),
    "a control character in the where": (
        EXTRA.replace("result == 'negative'", "result == 'neg\\u0007'"),
        r"anchors\[0\]\.where",
    ),
}


@pytest.mark.parametrize("why", sorted(BAD_ANCHORS))
def test_a_bad_anchor_is_refused_at_load_naming_the_file_and_line(why: str) -> None:
    extra, problem = BAD_ANCHORS[why]
    with pytest.raises(ProtocolFileError, match=r"x\.toml:\d+: " + problem) as got:
        model.parse(_source(extra), "x.toml")
    assert "\n" not in str(got.value).strip(), why


def test_the_variant_loads_and_a_once_form_needs_no_pick() -> None:
    assert {a["name"] for a in _model().data["anchors"]} == {"pcr_negative"}
    onset = (
        '[[anchors]]\nname = "onset"\nform = "screening"\nfield = "symptom_onset"\n\n'
        '[[visits]]\ncode = "ON21"\nnum = 20\nlabel = "ONSET DAY 21"\nepoch = "FOLLOW-UP"\n'
        'anchor = "onset"\nday = 21\nwindow = ["0d", "+2d"]\nforms = ["vital_status"]\n\n'
    )
    m = model.parse(_source(EXTRA + onset), "onset.toml")
    screening = Rec("screening", {"date": date(2020, 3, 16), "symptom_onset": date(2020, 3, 12)}, "s1", 1)
    at = datetime(2020, 3, 16, 12, tzinfo=KIN)
    anchors = visits.timeline(m, _snap({"screening": [screening]}, at))
    assert (anchors["onset"], anchors["screening"]) == (date(2020, 3, 12), date(2020, 3, 16))
    on21 = next(o for o in visits.dated(m, anchors, KIN, arm="ZMAPP") if o.visit.code == "ON21")
    assert on21.target == date(2020, 4, 1)  # day 21 counted from onset (day 1)


def test_a_malformed_record_date_never_dates_an_anchor() -> None:
    m = _model()
    at = datetime(2020, 3, 16, 12, tzinfo=KIN)
    odd = [
        Rec("ebov_pcr", {"date": None, "result": "negative"}, "p1", 1),
        Rec("ebov_pcr", {"date": "2020-03-16", "result": "negative"}, "p2", 2),  # text, not a typed date
        Rec("ebov_pcr", {"date": Decimal(3), "result": "negative"}, "p3", 3),
    ]
    naive = Rec("infusion", {"start": "2020-03-16T09:00", "not_given": None}, "i1", 4)
    got = visits.timeline(m, _snap({"ebov_pcr": odd, "infusion": [naive]}, at))
    assert got["pcr_negative"] is None and got["first_dose"] is None


# -- a ward through the CLI --------------------------------------------------------------------------


def _show(w: Any, pid: str) -> dict[str, Any]:
    from typed_support import assert_shape

    from wardcrf.workflow.status import VisitLine

    r = w.run("participant", "show", pid, "--json", user="auditor")
    assert r.code == 0, r.err
    lines = json.loads(r.out)["visits"]
    assert_shape(lines, list[VisitLine])
    return {v["visit"]: v for v in lines if v["visit"] in ("FD8", "PCRC")}


def _attention(w: Any, pid: str) -> tuple[bool, list[str]]:
    """Whether `pid` is among the participants needing attention now, and the ward order."""
    from conftest import PASSWORD

    from wardcrf import workflow

    s = w.site().unlock("clinician", PASSWORD)
    try:
        page = workflow.ward_page(s, limit=None, at=w.now)
    finally:
        s.close()
    ids = [r["id"] for r in page["rows"]]
    return pid in ids[: page["attention"]], ids


def _owed(w: Any, pid: str) -> list[str]:
    r = w.run("participant", "list", "--json", user="auditor")
    assert r.code == 0, r.err
    return next(x for x in json.loads(r.out) if x["id"] == pid).get("visits_owed", [])


def _today(w: Any, pid: str) -> list[tuple[str, str]]:
    r = w.run("today", "--json")
    assert r.code == 0, r.err
    return [(i["what"], i["state"]) for i in json.loads(r.out)["items"] if i["participant"] == pid]


def test_visits_from_the_first_dose_and_a_declared_anchor_through_the_cli(
    cli, tmp_path: Path, monkeypatch
) -> None:
    from test_engine_ward_cli import _infusion as infuse
    from test_engine_ward_cli import _product, _vitals, _ward
    from wf_support import ready_kit_on

    w = _ward(cli, tmp_path, monkeypatch, "palm", source=_source())
    chosen: tuple[str, str] | None = None
    others: list[str] = []
    for _ in range(8):  # randomized until one is on a single infusion (MAb114 or REGN-EB3)
        pid = w.consent()
        assert w.screen(pid).code == 0
        assert (
            w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
        )
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        arm = r.out.split("randomized: arm ", 1)[1].split()[0]
        if arm in ("MAB114", "REGNEB3"):
            chosen = (pid, arm)
            break
        others.append(pid)
    assert chosen is not None, "a block of at most 8 holds every arm"
    pid, arm = chosen
    waiting_one = w.consent()  # enrolled, not randomized: no first dose, nothing counted from randomization
    assert w.screen(waiting_one).code == 0
    r = w.run("submit", "enrollment", "--participant", waiting_one, f"date={w.now.date().isoformat()}")
    assert r.code == 0, r.err
    others.append(waiting_one)
    inpt = {
        v["visit"]: v for v in json.loads(w.run("participant", "show", waiting_one, "--json").out)["visits"]
    }
    assert (inpt["INPT"]["state"], inpt["INPT"]["placed_from"]) == (
        "not yet placed",
        "days 1 to 14 after randomization",
    )
    day1 = w.now.astimezone(KIN).date()

    def on(day: int, hour: int) -> datetime:
        d = day1 + timedelta(days=day - 1)
        return datetime(d.year, d.month, d.day, hour, tzinfo=KIN)

    # before the first dose: not yet placed, and said so; nothing owed, nothing on today's list
    waiting = _show(w, pid)
    assert (waiting["FD8"]["state"], waiting["FD8"]["placed_from"], waiting["FD8"]["due"]) == (
        "not yet placed",
        "day 8 after first dose",
        "",
    )
    assert waiting["PCRC"]["placed_from"] == "day 3 after pcr negative"
    text = w.run("participant", "show", pid, user="auditor").out
    assert "visit FIRST DOSE DAY 8 (day 8 after first dose) — not yet placed" in text, text
    assert not [x for x in _owed(w, pid) if "FIRST DOSE" in x or "CONFIRMATORY" in x]
    assert not [x for x in _today(w, pid) if "FIRST DOSE" in x[0]]

    # the single infusion, given at 09:00 on day 1: the visit is placed 7 days on (anchor_day 1)
    start = on(1, 9)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root, _product(arm))
    assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = infuse(w, pid, "VIAL-0001", start, "3100" if arm == "MAB114" else "9300")
    assert r.code == 0, r.err
    assert _vitals(w, pid, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0
    fd8 = _show(w, pid)["FD8"]
    day8 = day1 + timedelta(days=7)
    assert (fd8["state"], fd8["due"], fd8["owed"]) == ("upcoming", day8.isoformat(), ["vital_status"])
    assert fd8["window"] == [(day8 - timedelta(days=1)).isoformat(), (day8 + timedelta(days=1)).isoformat()]
    assert "placed_from" not in fd8
    for other in others:  # no first dose: still waiting
        assert _show(w, other)["FD8"]["state"] == "not yet placed"

    # PCRs: a positive one does not date the anchor, the first negative one does
    w.at(on(2, 10))
    assert (
        w.run(
            "submit",
            "ebov_pcr",
            "--participant",
            pid,
            f"date={on(2, 10).date()}",
            "result=positive",
            "ct_np=24",
        ).code
        == 0
    )
    assert _show(w, pid)["PCRC"]["state"] == "not yet placed"
    w.at(on(4, 10))
    r = w.run("submit", "ebov_pcr", "--participant", pid, f"date={on(4, 10).date()}", "result=negative")
    assert r.code == 0, r.err
    pcrc = _show(w, pid)["PCRC"]
    assert (pcrc["state"], pcrc["due"]) == ("upcoming", on(6, 0).date().isoformat())

    # the ward queue: nothing counted before a window opens ...
    w.at(on(5, 12))
    counted, order = _attention(w, pid)
    assert not counted and pid in order
    assert not [x for x in _today(w, pid) if "CONFIRMATORY" in x[0]]
    # ... counted, and on every list, once it has
    w.at(on(6, 12))
    counted, _order = _attention(w, pid)
    assert counted
    assert "CONFIRMATORY PCR: ebov_pcr (due now)" in _owed(w, pid)
    assert ("ebov_pcr (CONFIRMATORY PCR)", "due now") in _today(w, pid)
    r = w.run("submit", "ebov_pcr", "--participant", pid, f"date={on(6, 12).date()}", "result=negative")
    assert r.code == 0, r.err
    assert _show(w, pid)["PCRC"]["state"] == "done"
    counted, _order = _attention(w, pid)
    assert not counted  # the first-dose visit's window opens tomorrow
    w.at(on(7, 8))
    counted, _order = _attention(w, pid)
    assert counted and "FIRST DOSE DAY 8: vital_status (due now)" in _owed(w, pid)
    assert ("vital_status (FIRST DOSE DAY 8)", "due now") in _today(w, pid)
    # overdue once the window has closed: still counted, first among the visit-only participants
    w.at(on(10, 8))
    counted, _order = _attention(w, pid)
    assert counted and "FIRST DOSE DAY 8: vital_status (overdue)" in _owed(w, pid)

    # the coordinator's report lists the same
    r = w.run("report", "visits", "--format", "json", user="coordinator")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert {
        "participant": pid,
        "name": "FIRST DOSE DAY 8",
        "state": "overdue",
        "owed": ["vital_status"],
    }.items() <= next(x for x in rep["owed"] if x["participant"] == pid and x["visit"] == "FD8").items()
    assert {(x["participant"], x["placed_from"]) for x in rep["not_placed"] if x["visit"] == "FD8"} == {
        (o, "day 8 after first dose") for o in others
    }
    md = w.run("report", "visits", user="coordinator").out
    assert "## Not yet placed" in md and "day 8 after first dose" in md

    r = w.run("submit", "vital_status", "--participant", pid, f"date={on(10, 8).date()}", "status=alive")
    assert r.code == 0, r.err
    assert _show(w, pid)["FD8"]["state"] == "overdue"  # a record outside the window does not fill it

    # SDTM SV places the records with the same anchors: the confirmatory PCR in its visit, the late
    # vital status unscheduled
    out = w.root / "exports" / "sdtm"
    r = w.run("export", "sdtm", "--out", str(out), user="auditor")
    assert r.code == 0, r.err
    sv_json = json.loads((out / "sv.json").read_text("utf-8"))
    cols = [c["name"] for c in sv_json["columns"]]
    sv = {
        str(row["VISIT"]): row
        for row in (dict(zip(cols, x, strict=True)) for x in sv_json["rows"])
        if row["USUBJID"] == f"PALM-{pid}"
    }
    assert str(sv["CONFIRMATORY PCR"]["SVSTDTC"])[:10] == on(6, 12).date().isoformat()
    assert sv["CONFIRMATORY PCR"]["VISITNUM"] == 19
    assert "FIRST DOSE DAY 8" not in sv
    r = w.run("db", "rebuild", "--check", user="admin")  # the queue's visit columns re-derive the same
    assert r.code == 0, r.out + r.err

    # a site upgraded through the migration that added them derives them when it is next opened
    from conftest import PASSWORD

    from wardcrf.workflow import wardqueue

    rows = "SELECT * FROM ward_queue ORDER BY participant"
    s = w.site().unlock("admin", PASSWORD)
    try:
        before = s.store.rows(rows)
        assert {r["participant"] for r in before if r["visit_due"]} >= {pid}
        with s.store.transaction():
            s.store.execute("DROP INDEX ward_queue_visits")
            s.store.execute("ALTER TABLE ward_queue DROP COLUMN visit_until")
            s.store.execute("ALTER TABLE ward_queue DROP COLUMN visit_due")
            s.store.execute("DELETE FROM schema_migrations WHERE name = ?", (wardqueue.MIGRATION,))
    finally:
        s.close()
    s = w.site().unlock("auditor", PASSWORD)
    try:
        assert s.store.rows(rows) == before
    finally:
        s.close()
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.out + r.err


def test_the_visits_report_refuses_a_format_1_ward_in_one_line(cli, tmp_path, monkeypatch) -> None:
    from format1_stored import stored_before, unrunnable

    # the active version: a format-1 MEXCOVID stored before the engine ran format 1, which it cannot run
    stored_before(cli, tmp_path, monkeypatch, unrunnable("1.5"), "old.toml")
    r = cli("report", "visits", user="coordinator")
    assert r.code == 1 and "format-1 protocol, which declares no visits" in r.err, (r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    r = cli("report", "visits", "--format", "xml\x07", user="coordinator")
    assert r.code == 2 and "Traceback" not in r.err
