"""A condition of a record's own fields answered once for all records holding the same values.

Placing records in visits and counting the vital signs owed ask `timepoint == 'post_dose'` of every
vital-signs record of every participant (`engine.visits.place`, `engine.gates.owed_after`; a rebuild
derives every participant's ward-queue row this way). `interpreter.record_truth` keeps such an answer by
the values the expression reads (`interpreter.own_fields`): it must give exactly what evaluating it gives,
for any values, and keep nothing for an expression that reads anything but the record's own fields.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.engine import interpreter
from wardcrf.engine.interpreter import EvalError, Rec, Snapshot, own_fields, record_truth, truth

NOW = datetime(2020, 3, 20, 2, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")


def _snap(**kw) -> Snapshot:
    return Snapshot(records={}, now=NOW, zone=TZ, **kw)


def _rec(**values) -> Rec:
    return Rec("vitals", values, "e-1", 1)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("timepoint == 'post_dose'", ("timepoint",)),
        ("timepoint in ['pre_dose', 'post_dose']", ("timepoint",)),
        ("not (pulse > 100 or temp between 36 and 38) and note is blank", ("pulse", "temp", "note")),
        ("-pulse < -60 and pulse != pulse", ("pulse",)),
    ],
)
def test_an_expression_of_the_records_own_fields_names_them(text, names):
    assert own_fields(text) == names


@pytest.mark.parametrize(
    "text",
    [
        "today > date",  # the clock
        "now > time",
        "@enrollment < date",  # an anchor
        "screening.severity == 'severe'",  # another form's record
        "exists(skin_test where result == 'positive')",  # a function over the participant's records
        "pulse + 1 > 100",  # arithmetic
        "participant.arm == 'A'",
        "timepoint ==",  # does not parse
    ],
)
def test_an_expression_reading_anything_else_is_not_kept_by_values(text):
    assert own_fields(text) is None


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["pre_dose", "post_dose", "1", "", "true"]),
    st.integers(-2, 2).map(Decimal),
    st.sampled_from([Decimal("1.0"), Decimal("100"), Decimal("100.00")]),
    st.sampled_from([date(2020, 3, 1), datetime(2020, 3, 1, tzinfo=UTC)]),
    st.sampled_from([("1",), ("1", "2"), ()]),
)
CONDITIONS = [
    "timepoint == 'post_dose'",
    "timepoint in ['pre_dose', 'post_dose']",
    "flag == true",
    "flag == 1",
    "flag in [1, 2]",
    "flag between 0 and 1",
    "flag is blank",
    "not (flag == 1) or timepoint != 'pre_dose'",
    "flag > 0",
    "flag == 2020-03-01",
]


def _evaluated(text: str, snap: Snapshot, rec: Rec):
    try:
        return truth(text, snap.with_record(rec))
    except EvalError as exc:
        return ("clash", str(exc))


def _kept(text: str, snap: Snapshot, rec: Rec):
    try:
        return record_truth(text, snap, rec)
    except EvalError as exc:
        return ("clash", str(exc))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CONDITIONS), VALUES, VALUES), min_size=1, max_size=12))
def test_a_kept_answer_is_what_evaluating_gives_for_any_values(asked):
    # One run of questions in a row, as a rebuild asks them: an answer kept for one record's values
    # is given to a later record only when it is the answer evaluating that record gives.
    snap = _snap()
    for text, timepoint, flag in asked:
        rec = _rec(timepoint=timepoint, flag=flag)
        assert _kept(text, snap, rec) == _evaluated(text, snap, rec)


def test_true_and_one_are_not_one_value():
    # `True == Decimal(1)` in Python, with one hash: the kept answers tell them apart by type.
    snap = _snap()
    assert record_truth("flag == true", snap, _rec(flag=True)) is True
    with pytest.raises(EvalError):
        record_truth("flag == true", snap, _rec(flag=Decimal(1)))
    assert record_truth("flag == 1", snap, _rec(flag=Decimal(1))) is True


def test_inside_an_enclosing_record_a_name_is_not_only_the_records_own():
    # Inside a record (a `where` within a record's rule) a name the record lacks is the enclosing
    # record's field: nothing is kept there, the answer follows the enclosing record.
    interpreter._TRUTHS.clear()
    outer_a = Rec("dose", {"timepoint": "post_dose"}, "e-a", 1)
    outer_b = Rec("dose", {"timepoint": "pre_dose"}, "e-b", 2)
    inner = _rec(pulse=Decimal(80))
    assert record_truth("timepoint == 'post_dose'", _snap(record=outer_a), inner) is True
    assert record_truth("timepoint == 'post_dose'", _snap(record=outer_b), inner) is False
    assert not interpreter._TRUTHS


def test_a_type_clash_is_raised_every_time_never_kept():
    interpreter._TRUTHS.clear()
    snap = _snap()
    for _ in range(2):
        with pytest.raises(EvalError):
            record_truth("flag > 0", snap, _rec(flag="text"))
    assert not interpreter._TRUTHS


def test_a_second_record_with_the_same_values_is_not_evaluated_again(monkeypatch):
    interpreter._TRUTHS.clear()
    snap = _snap()
    assert (
        record_truth("timepoint == 'post_dose'", snap, _rec(timepoint="post_dose", pulse=Decimal(90))) is True
    )
    evaluated: list[str] = []
    real = interpreter.truth
    monkeypatch.setattr(interpreter, "truth", lambda text, s: evaluated.append(text) or real(text, s))
    # another record, other fields, the same timepoint: the kept answer
    assert record_truth("timepoint == 'post_dose'", snap, Rec("vitals", {"timepoint": "post_dose"}, "e-2", 2))
    assert evaluated == []
    # another timepoint: evaluated
    assert record_truth("timepoint == 'post_dose'", snap, _rec(timepoint="pre_dose")) is False
    assert evaluated == ["timepoint == 'post_dose'"]
