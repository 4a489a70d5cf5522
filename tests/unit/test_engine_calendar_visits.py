"""Calendar visits (`[[visits]]` with `anchor` + `day` + `window`) on the ward's list (issue #17).

Each occurrence's required forms not yet recorded are owed: due now inside the window, window closing on its
last day, overdue once it has closed (docs/protocol.md); `worklist = false` and `required = false` are not
listed; a visit with `arms` is only those arms'. Pure (`engine.visits.dated`, `dated_owed`), then PALM's
D28 through the CLI: `participant show`, `participant list --json` (`visits_owed`), `wardcrf today`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from wardcrf.engine import model, visits
from wardcrf.engine.interpreter import Rec, Snapshot

KIN = ZoneInfo("Africa/Kinshasa")
RANDOMIZED = datetime(2020, 3, 16, 9, 0, tzinfo=UTC)  # 10:00 in Kinshasa: day 1 is 2020-03-16
D28 = date(2020, 3, 16) + timedelta(days=27)  # anchor_day 1: day 28 is 27 days on; window -1d, +3d

EXTRA = """[[visits]]
code = "D14Z"
num = 15.5
label = "ZMAPP DAY 14"
epoch = "FOLLOW-UP"
anchor = "randomization"
day = 14
window = ["0d", "0d"]
arms = ["ZMAPP"]
forms = ["vital_status"]

[[visits]]
code = "D21"
num = 15.6
label = "DAY 21"
epoch = "FOLLOW-UP"
anchor = "randomization"
day = 21
window = ["0d", "0d"]
worklist = false
forms = ["vital_status"]
"""


UNS = '[[visits]]\ncode = "UNS"'


def _source() -> str:
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")
    assert text.count(UNS) == 1
    return text.replace(UNS, EXTRA + "\n" + UNS)


def _model() -> model.Model:
    return model.parse(_source(), "palm-calendar.toml")


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=KIN)


def _status(day: date, n: int = 1) -> Rec:
    return Rec("vital_status", {"date": day, "status": "alive"}, f"ev{n}", n)


def _owed(m: model.Model, arm: str, at: datetime, recs: list[Rec]) -> dict[str, visits.DatedOwed]:
    found = visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm=arm)
    records = {"vital_status": recs}
    snap = Snapshot(records=records, now=at, zone=KIN, anchors={"randomization": RANDOMIZED})
    return {d.occurrence.name: d for d in visits.dated_owed(found, records, snap, at, KIN)}


def test_the_d28_forms_are_owed_across_the_window_closing_on_its_last_day_and_overdue_after() -> None:
    m = _model()
    d28 = next(
        o for o in visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="RDV") if o.visit.code == "D28"
    )
    assert (d28.target, d28.opens, d28.closes, d28.num) == (
        D28,
        D28 - timedelta(days=1),
        D28 + timedelta(3),
        16,
    )
    states = {
        day: (_owed(m, "RDV", _at(day), [])["DAY 28"].state, _owed(m, "RDV", _at(day), [])["DAY 28"].owed)
        for day in (
            D28 - timedelta(days=2),
            D28 - timedelta(days=1),
            D28,
            D28 + timedelta(3),
            D28 + timedelta(4),
        )
    }
    assert states == {
        D28 - timedelta(days=2): ("upcoming", ("vital_status",)),
        D28 - timedelta(days=1): ("due now", ("vital_status",)),
        D28: ("due now", ("vital_status",)),
        D28 + timedelta(days=3): ("window closing", ("vital_status",)),
        D28 + timedelta(days=4): ("overdue", ("vital_status",)),
    }


def test_a_record_inside_the_window_fills_the_visit_and_one_outside_does_not() -> None:
    m = _model()
    late = _at(D28 + timedelta(days=10))
    done = _owed(m, "RDV", late, [_status(D28 + timedelta(days=2))])["DAY 28"]
    assert (done.state, done.owed, done.filled) == ("done", (), ("vital_status",))
    outside = _owed(m, "RDV", late, [_status(D28 + timedelta(days=5))])["DAY 28"]
    assert (outside.state, outside.owed) == ("overdue", ("vital_status",))


def test_worklist_false_and_required_false_are_not_listed_and_arms_are_honoured() -> None:
    m = _model()
    at = _at(date(2020, 3, 16) + timedelta(days=13))  # day 14
    rdv = _owed(m, "RDV", at, [])
    zmapp = _owed(m, "ZMAPP", at, [])
    assert "ZMAPP DAY 14" in zmapp and zmapp["ZMAPP DAY 14"].state == "window closing"
    assert "ZMAPP DAY 14" not in rdv  # the arm restriction
    assert not any(
        d.visit.code == "D14Z" for d in visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm=None)
    )
    assert "DAY 21" in {
        o.name for o in visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="RDV", worklist_only=False)
    }
    assert not any(
        o.visit.code == "D21" for o in visits.dated(m, {"randomization": RANDOMIZED}, KIN, arm="RDV")
    )
    day14 = rdv["DAY 14"]  # INPT repeats daily: vitals required, labs and PCR `required = false`
    assert (day14.occurrence.num, day14.owed, day14.state) == (15, ("vitals",), "window closing")


def test_no_anchor_yet_no_occurrence_and_a_malformed_record_date_is_ignored() -> None:
    m = _model()
    assert visits.dated(m, {"randomization": None}, KIN, arm="RDV") == [
        o for o in visits.dated(m, {}, KIN, arm="RDV")
    ]
    assert not any(o.visit.anchor == "randomization" for o in visits.dated(m, {}, KIN, arm="RDV"))
    odd = Rec("vital_status", {"date": None, "status": Decimal(1)}, "ev9", 9)
    got = _owed(m, "RDV", _at(D28), [odd])["DAY 28"]
    assert got.owed == ("vital_status",)


def test_palm_day_28_through_the_cli(cli, tmp_path: Path, monkeypatch) -> None:
    from test_engine_ward_cli import _ward
    from typed_support import assert_shape

    from wardcrf.workflow.status import VisitLine

    w = _ward(cli, tmp_path, monkeypatch, "palm")
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    day28 = w.now.astimezone(KIN).date() + timedelta(days=27)
    w.at(datetime(day28.year, day28.month, day28.day, 9, tzinfo=KIN))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())

    def show() -> dict[str, VisitLine]:
        r = w.run("participant", "show", pid, "--json", user="auditor")
        assert r.code == 0, r.err
        lines = json.loads(r.out)["visits"]
        assert_shape(lines, list[VisitLine])
        return {v["name"]: v for v in lines}

    d28 = show()["DAY 28"]
    assert (d28["state"], d28["owed"], d28["due"]) == ("due now", ["vital_status"], day28.isoformat())
    assert d28["window"] == [(day28 - timedelta(days=1)).isoformat(), (day28 + timedelta(days=3)).isoformat()]
    text = w.run("participant", "show", pid, user="auditor").out
    assert f"visit DAY 28 ({day28.isoformat()}, window" in text and "due now; owed: vital_status" in text
    rows = json.loads(w.run("participant", "list", "--json", user="auditor").out)
    row = next(x for x in rows if x["id"] == pid)
    assert "DAY 28: vital_status (due now)" in row["visits_owed"]
    items = json.loads(w.run("today", "--json").out)["items"]
    assert {"participant": pid, "what": "vital_status (DAY 28)", "state": "due now"}.items() <= next(
        i for i in items if i["what"] == "vital_status (DAY 28)"
    ).items()
    assert not any("DAY 58" in i["what"] for i in items)  # not open yet

    r = w.run("submit", "vital_status", "--participant", pid, f"date={day28.isoformat()}", "status=alive")
    assert r.code == 0, r.err
    assert show()["DAY 28"]["state"] == "done" and show()["DAY 28"]["owed"] == []
    items = json.loads(w.run("today", "--json").out)["items"]
    assert not any(i["what"] == "vital_status (DAY 28)" for i in items)


BAD = {
    "no day": 'anchor = "randomization"\n',
    "a window not a duration": 'anchor = "randomization"\nday = 3\nwindow = ["x", "1d"]\n',
    "an anchor not declared": 'anchor = "nowhere"\nday = 3\n',
    "an oversized repeat": 'anchor = "randomization"\nday = 3\nrepeat = { every = "1d", count = 100000 }\n',
    "a control character in the label": 'anchor = "randomization"\nday = 3\nlabel = "DAY\\u0007"\n',
}


def test_a_malformed_calendar_visit_is_refused_at_load_naming_the_file_and_line() -> None:
    """What `dated` reads (`day`, `window`, `anchor`, `repeat`) is checked when the file is read: a ward never
    meets a calendar visit it cannot date."""
    import pytest

    from wardcrf.protocol_file import ProtocolFileError

    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")
    for why, body in BAD.items():
        label = "" if "label" in body else 'label = "X"\n'
        visit = f'[[visits]]\ncode = "X"\nnum = 40\n{label}epoch = "FOLLOW-UP"\n{body}forms = ["vital_status"]\n\n'
        with pytest.raises(ProtocolFileError, match=r"x\.toml:\d+: visits\[4\]") as got:
            model.parse(text.replace(UNS, visit + UNS), "x.toml")
        assert "\n" not in str(got.value).strip(), why
