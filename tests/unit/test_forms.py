"""Field validation on its own: raw strings (CLI) and typed values (TUI) give the same stored values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from wardcrf import forms, protocol
from wardcrf.forms import _number

P = protocol.default_protocol()
NOW = datetime(2020, 3, 17, 2, 0, tzinfo=UTC)  # 10:00 in Wuhan


def ctx(**kw):
    return forms.Context(now=NOW, zone="Asia/Shanghai", **kw)


def test_raw_strings_and_typed_values_store_the_same():
    vitals = P.form("vitals")
    raw = forms.check(
        vitals,
        {"temp": "37.1", "pulse": "88", "resp": "20", "oxysat": "95", "time": "2020-03-17 09:30"},
        ctx(),
    )
    typed = forms.check(
        vitals,
        {"temp": 37.1, "pulse": 88, "resp": 20, "oxysat": 95, "time": datetime(2020, 3, 17, 9, 30)},
        ctx(),
    )
    assert raw.problems == typed.problems == {}
    assert raw.values == typed.values
    assert raw.values["time"] == "2020-03-17T09:30:00+08:00"
    assert raw.values["timepoint"] == "unscheduled"


def test_defaults_now_today_and_time_of_day():
    v = forms.check(
        P.form("vitals"), {"temp": "37", "pulse": "80", "resp": "18", "oxysat": "96"}, ctx()
    ).values
    assert v["time"] == "2020-03-17T10:00:00+08:00"
    v = forms.check(
        P.form("vitals"), {"temp": "37", "pulse": "80", "resp": "18", "oxysat": "96", "time": "08:15"}, ctx()
    ).values
    assert v["time"] == "2020-03-17T08:15:00+08:00"
    lab = forms.check(P.form("labs"), {"timepoint": "baseline", "crp": "3"}, ctx()).values
    assert lab["date"] == "2020-03-17"


def test_booleans_choices_and_multiple_choices():
    ae = P.form("ae")
    c = forms.check(
        ae,
        {
            "term": "x",
            "onset": date(2020, 3, 16),
            "grade": 2,
            "serious": True,
            "causality": "Possible",
            "outcome": "recovering",
            "hospitalization": "yes",
            "death": "否",
        },
        ctx(),
    )
    assert c.problems == {}
    assert c.values["serious"] is True and c.values["hospitalization"] is True and c.values["death"] is False
    assert c.values["causality"] == "possible" and c.values["action"] == "none"
    bad = forms.check(ae, {"serious": "maybe"}, ctx())
    assert bad.problems["serious"] == "'maybe' is not yes/no (use yes, no, true or false)"
    demo = forms.check(
        P.form("demographics"),
        {"symptoms": "cough, fever,cough", "symptom_onset": "2020-02-01", "admission": "2020-02-20"},
        ctx(),
    )
    assert demo.values["symptoms"] == ["fever", "cough"]
    one = forms.check(P.form("oxygen"), {"support": "hfnc,niv"}, ctx())
    assert one.problems["support"] == "only one choice allowed"


def test_partial_checks_only_given_fields():
    c = forms.check(P.form("vitals"), {"temp": "38"}, ctx(), partial=True)
    assert c.values == {"temp": {"value": 38.0, "unit": "C"}} and c.problems == {}
    c = forms.check(P.form("vitals"), {"temp": ""}, ctx(), partial=True)
    assert c.problems == {"temp": "required; it cannot be blank"}


def test_stored_unit_values_are_accepted_back_and_wrong_units_refused():
    f = P.form("vitals")
    assert (
        forms.check(f, {"temp": {"value": 37.2, "unit": "C"}}, ctx(), partial=True).values["temp"]["value"]
        == 37.2
    )
    c = forms.check(f, {"temp": {"value": 99.0, "unit": "F"}}, ctx(), partial=True)
    assert c.problems["temp"] == "unit 'F' differs from the field's unit 'C'"


def test_future_tolerance_and_before_birth():
    f = P.form("vitals")
    base = {"temp": "37", "pulse": "80", "resp": "18", "oxysat": "96"}
    ok = forms.check(f, {**base, "time": NOW + timedelta(minutes=4)}, ctx())
    assert "time" not in ok.problems
    late = forms.check(f, {**base, "time": NOW + timedelta(minutes=10)}, ctx())
    assert "is in the future" in late.problems["time"]
    born = forms.check(f, {**base, "time": "1950-01-01T10:00"}, ctx(dob=date(1960, 1, 1)))
    assert born.problems["time"] == "1950-01-01 is before the date of birth 1960-01-01"


def test_nan_infinity_and_non_numbers_are_refused():
    f = P.form("vitals")
    for bad in ("nan", "inf", "37,1", True):
        c = forms.check(f, {"temp": bad}, ctx(), partial=True)
        assert "temp" in c.problems


def test_photos_need_the_photo_store():
    c = forms.check(P.form("consent"), {"photos": "@x.jpg"}, ctx(), partial=True)
    assert c.problems["photos"] == "photos cannot be attached here"
    seen = []
    c = forms.check(
        P.form("consent"),
        {"photos": "@a.jpg, @b.jpg"},
        ctx(resolve_photo=lambda r: seen.append(r) or "sha256:" + "0" * 64),
        partial=True,
    )
    assert seen == ["@a.jpg", "@b.jpg"] and c.values["photos"] == ["sha256:" + "0" * 64]


def test_with_unit_renders_stored_values():
    assert forms.with_unit({"value": 2.0e8, "unit": "particles"}, None) == "2.0e8 particles"
    assert forms.with_unit(True, None) == "yes" and forms.with_unit(["a", "b"], None) == "a, b"


@pytest.mark.parametrize("text", ["37.1.2", "", "  "])
def test_blank_or_garbled_required_values(text):
    c = forms.check(P.form("vitals"), {"temp": text, "pulse": "80", "resp": "18", "oxysat": "96"}, ctx())
    assert "temp" in c.problems


# -- numbers as tired people in PPE type them --------------------------------------------------------
# The message says what to type instead: a dot for decimals, the number without its unit.


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("37,5", "'37,5' is not a number: use a dot for decimals (37.5)"),
        ("37.0C", "'37.0C' is not a number: type the number only (37.0); the unit is set by the form"),
        ("37 °C", "'37 °C' is not a number: type the number only (37); the unit is set by the form"),
        (
            "2.0e8particles",
            "'2.0e8particles' is not a number: type the number only (2.0e8); the unit is set by the form",
        ),
        ("3_7", "'3_7' is not a number"),
        ("hot", "'hot' is not a number"),
    ],
)
def test_mistyped_numbers_are_refused_with_what_to_type(typed, message):
    with pytest.raises(forms._Bad) as exc:
        _number(typed)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("typed", "value"), [("37.5", 37.5), (" 37 ", 37.0), ("2.0e8", 2.0e8), ("-1.5", -1.5)]
)
def test_numbers_are_read(typed, value):
    assert _number(typed) == value


def test_a_soft_range_problem_is_flagged_confirmable_and_a_hard_one_is_not():
    """Screens read the flag (`errors.is_confirmable`), not the words (issue 14)."""
    from wardcrf.errors import is_confirmable

    vitals = P.form("vitals")
    got = forms.check(vitals, {"temp": "40.1", "pulse": "260", "resp": "20", "oxysat": "95"}, ctx())
    assert "expected range" in got.problems["temp"] and is_confirmable(got.problems["temp"])
    assert "allowed range" in got.problems["pulse"] and not is_confirmable(got.problems["pulse"])
    assert not is_confirmable("40.1 C is outside the expected range 35 to 39.5 C")  # words alone: no flag
