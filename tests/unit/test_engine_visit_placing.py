"""Placing a record in a visit per administration: what a visit answers of a record asked once, the same answer.

`engine.visits.place` gives the first occurrence, in the order given, that a record belongs to (its
administration's own record, a dose assessment linked to its number, or a record of a form it lists taken
on its day); `owed` lists the forms each occurrence still owes. The ward queue's `derive` places every
record of every participant this way (`db rebuild`), so what a visit answers of a record (its entry for
the form and that entry's `when`, whether the form records the administration, the assessments' `match`
and `link`) is asked once per visit and record rather than once per occurrence, and what a visit asks of a
form once per protocol version. These tests hold that to the rule as written before: `_place_as_written`
and `_owed_as_written` below ask every occurrence in turn, as the module's docstring states it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.engine import model, visits
from wardcrf.engine.interpreter import EvalError, Rec, Snapshot, truth

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2020, 3, 20, 2, 0, tzinfo=UTC)
DAYS = (date(2020, 3, 5), date(2020, 3, 6), date(2020, 3, 7))
EVENTS = ("e-1", "e-2", "e-3", "e-4")
FORMS = ("dose", "vitals", "post_dose_check", "labs", "ae")
UNS = '[[visits]]\ncode = "UNSCHED"'
DOSE_FORMS = 'forms = ["dose", { form = "vitals", when = "timepoint in [\'pre_dose\', \'post_dose\']" }, "post_dose_check"]'
SECOND = """[[visits]]
code = "DOSEX"
num = 40
label = "DOSE CHECK {n}"
epoch = "TREATMENT"
repeat = { per = "administration", regimen = "exo_inhalation", step = 0.5 }
forms = [{ form = "vitals", when = "timepoint == 'unscheduled'" }, "labs", { form = "post_dose_check", required = false }]

"""


def _mexcovid() -> str:
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "mexcovid.toml").read_text("utf-8")
    assert text.count(UNS) == 1 and text.count(DOSE_FORMS) == 1
    return text


@pytest.fixture(scope="module")
def two_visits() -> model.Model:
    """MEXCOVID with a second visit per inhalation listing vital signs (another `when`), labs and the
    post-dose check: a record may belong to either visit, the first in order wins."""
    return model.parse(_mexcovid().replace(UNS, SECOND + UNS), "two-visits.toml")


@pytest.fixture(scope="module")
def labs_at_dose() -> model.Model:
    """MEXCOVID whose DOSE visit lists labs instead of vital signs: another version of the same visit."""
    return model.parse(
        _mexcovid().replace(DOSE_FORMS, 'forms = ["dose", "labs", "post_dose_check"]'), "b.toml"
    )


# -- the rule as written: every occurrence asked in turn ---------------------------------------------


def _true(expr: str, snap: Snapshot, rec: Rec) -> bool:
    try:
        return truth(expr, snap.with_record(rec)) is True
    except EvalError:
        return False


def _place_as_written(
    m: model.Model, found: Sequence[visits.Occurrence], rec: Rec, day: date | None, snap: Snapshot
) -> visits.Occurrence | None:
    for occ in found:
        v = occ.visit
        entry = next((e for e in v.forms if e.form == rec.form), None)
        if entry is None or (entry.when is not None and not _true(entry.when, snap, rec)):
            continue
        recording = rec.form in {str(a.record.get("form")) for a in m.regimens[v.regimen].administrations}
        if recording:
            if occ.record is not None and occ.record == rec.event_id:
                return occ
            continue
        linked = False
        for a in m.data.get("dose_assessments", ()):
            if a.get("form") != rec.form or (a.get("regimens") and not v.twins & set(a["regimens"])):
                continue
            if a.get("match") and not _true(str(a["match"]), snap, rec):
                continue
            n = rec.values.get(str(a.get("link", "")))
            if isinstance(n, Decimal | int):
                linked = True
                if int(n) == occ.n:
                    return occ
        if not linked and day is not None and day == occ.local_date:
            return occ
    return None


def _owed_as_written(
    m: model.Model, found: Sequence[visits.Occurrence], records: Mapping[str, Sequence[Rec]]
) -> list[visits.Owed]:
    snap = Snapshot(records=records, now=NOW, zone=TZ)
    filled: dict[tuple[str, int], set[str]] = {}
    for form, recs in records.items():
        for rec in recs:
            taken = rec.when()
            local = taken.astimezone(TZ).date() if isinstance(taken, datetime) else taken
            occ = _place_as_written(m, found, rec, local, snap)
            if occ is not None:
                filled.setdefault((occ.visit.code, occ.n), set()).add(form)
    out = []
    for occ in found:
        v = occ.visit
        skip = {str(a.record.get("form")) for a in m.regimens[v.regimen].administrations} | {
            str(a.get("form"))
            for a in m.data.get("dose_assessments", ())
            if not a.get("regimens") or v.twins & set(a["regimens"])
        }
        for entry in v.forms:
            if (
                entry.required
                and entry.form not in skip
                and entry.form not in filled.get((v.code, occ.n), set())
            ):
                out.append(visits.Owed(occ, entry.form, visits._state(occ, NOW)))
    return out


def _outcome(fn: Any, *args: Any) -> Any:
    """What a call gives, or the kind of error it raises (a link of NaN cannot be a number)."""
    try:
        return ("gives", fn(*args))
    except (ValueError, ArithmeticError) as exc:
        return ("raises", type(exc))


# -- generated occurrences and records ------------------------------------------------------------------


def _occurrence(v: visits.PerAdministration, n: int, day: date, record: str | None) -> visits.Occurrence:
    at = datetime.combine(day, time(10), TZ) if record is not None else None
    opens = at or datetime.combine(day, time(8), TZ)
    return visits.Occurrence(
        visit=v,
        n=n,
        num=v.number(n),
        name=v.name(n, n),
        day=n,
        due=None,
        opens=opens,
        closes=datetime.combine(day + timedelta(days=1), time(0), TZ),
        state="given" if record is not None else "upcoming",
        record=record,
        at=at,
        local_date=day,
    )


LINKS = st.sampled_from([None, 1, 2, 3, Decimal(2), Decimal(3), "2", True, 2.0, Decimal("NaN")])
TIMES = st.sampled_from([None, *DAYS, *(datetime.combine(d, time(23, 30), UTC) for d in DAYS)])


@st.composite
def _records(draw: Any) -> list[Rec]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        values = {
            "timepoint": draw(st.sampled_from([None, "pre_dose", "post_dose", "unscheduled", "baseline", 1])),
            "dose": draw(LINKS),
            "time": draw(TIMES),
        }
        out.append(Rec(draw(st.sampled_from(FORMS)), values, draw(st.sampled_from(EVENTS)), i))
    return out


@st.composite
def _occurrences(draw: Any, m: model.Model) -> list[visits.Occurrence]:
    found = [
        _occurrence(v, n, draw(st.sampled_from(DAYS)), draw(st.sampled_from([None, *EVENTS])))
        for v in visits.declared(m)
        for n in range(1, draw(st.integers(1, 4)) + 1)
    ]
    return draw(st.permutations(found)) if draw(st.booleans()) else found


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_each_record_is_placed_in_the_occurrence_the_rule_as_written_gives(two_visits, data) -> None:
    found = data.draw(_occurrences(two_visits))
    recs = data.draw(_records())
    snap = Snapshot(records={}, now=NOW, zone=TZ)
    for rec in recs:
        day = data.draw(st.sampled_from([None, *DAYS]))
        got = _outcome(visits.place, two_visits, found, rec, day, snap)
        want = _outcome(_place_as_written, two_visits, found, rec, day, snap)
        assert got == want and (got[0] != "gives" or got[1] is want[1]), rec


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_forms_owed_are_those_the_rule_as_written_gives(two_visits, data) -> None:
    found = data.draw(_occurrences(two_visits))
    records: dict[str, list[Rec]] = {}
    for rec in data.draw(_records()):
        records.setdefault(rec.form, []).append(rec)
    snap = Snapshot(records=records, now=NOW, zone=TZ)
    got = _outcome(visits.owed, two_visits, found, records, snap, NOW, TZ)
    assert got == _outcome(_owed_as_written, two_visits, found, records)


def test_a_record_placed_in_the_first_visit_whose_when_holds_and_by_its_link_not_its_day(two_visits) -> None:
    dose, second = visits.declared(two_visits)
    found = [_occurrence(dose, n, DAYS[n - 1], None) for n in (1, 2, 3)] + [
        _occurrence(second, n, DAYS[n - 1], None) for n in (1, 2, 3)
    ]
    snap = Snapshot(records={}, now=NOW, zone=TZ)
    linked = Rec("vitals", {"timepoint": "post_dose", "dose": Decimal(3)}, "e-1", 1)
    assert visits.place(two_visits, found, linked, DAYS[0], snap) is found[2]  # dose 3, not the day's dose 1
    unscheduled = Rec("vitals", {"timepoint": "unscheduled", "dose": Decimal(3)}, "e-2", 2)
    assert visits.place(two_visits, found, unscheduled, DAYS[1], snap) is found[4]  # DOSEX on its day
    # the same values on another form: labs are DOSEX's only, by day (no assessment links them)
    labs = Rec("labs", {"timepoint": "post_dose", "dose": Decimal(3)}, "e-3", 3)
    assert visits.place(two_visits, found, labs, DAYS[0], snap) is found[3]
    assert visits.place(two_visits, found, Rec("ae", dict(labs.values), "e-4", 4), DAYS[0], snap) is None


def test_two_versions_of_one_visit_each_place_by_their_own_forms(two_visits, labs_at_dose) -> None:
    """What a visit asks of a form is kept per version: DOSE lists vital signs in one and labs in the other,
    and asking one version never answers for the other, in either order, however often."""
    snap = Snapshot(records={}, now=NOW, zone=TZ)
    vitals = Rec("vitals", {"timepoint": "pre_dose", "dose": Decimal(1)}, "e-1", 1)
    labs = Rec("labs", {"timepoint": "baseline", "time": DAYS[0]}, "e-2", 2)
    for _ in range(2):
        a = [_occurrence(visits.declared(two_visits)[0], 1, DAYS[0], None)]
        b = [_occurrence(visits.declared(labs_at_dose)[0], 1, DAYS[0], None)]
        assert visits.place(two_visits, a, vitals, DAYS[0], snap) is a[0]
        assert visits.place(labs_at_dose, b, vitals, DAYS[0], snap) is None
        assert visits.place(labs_at_dose, b, labs, DAYS[0], snap) is b[0]
        assert visits.place(two_visits, a, labs, DAYS[0], snap) is None
    assert [e.form for e in visits.declared(labs_at_dose)[0].forms] == ["dose", "labs", "post_dose_check"]
    assert visits.owed(labs_at_dose, b, {"labs": [labs]}, snap, NOW, TZ) == []
    assert [o.form for o in visits.owed(two_visits, a, {"labs": [labs]}, snap, NOW, TZ)] == []
    assert [o.form for o in visits.owed(labs_at_dose, b, {}, snap, NOW, TZ)] == ["labs"]


@pytest.fixture(scope="module")
def mexcovid() -> model.Model:
    return model.parse(_mexcovid(), "mexcovid.toml")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_visit_listing_only_its_administrations_own_items_owes_nothing_as_written(mexcovid, data) -> None:
    """MEXCOVID's DOSE 1-5 lists the dose, its vital signs and its post-dose check: the administration's
    items, never the visit's. Whatever the records (a link that is no number aside: the rule as written
    raises placing it), nothing is owed, as the rule as written gives, without placing any record."""
    found = data.draw(_occurrences(mexcovid))
    records: dict[str, list[Rec]] = {}
    for rec in data.draw(_records()):
        link = rec.values["dose"]
        if not (isinstance(link, Decimal) and link.is_nan()):
            records.setdefault(rec.form, []).append(rec)
    snap = Snapshot(records=records, now=NOW, zone=TZ)
    assert (
        visits.owed(mexcovid, found, records, snap, NOW, TZ)
        == _owed_as_written(mexcovid, found, records)
        == []
    )
