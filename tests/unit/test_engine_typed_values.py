"""A record's stored values read and typed for the interpreter: the same values whichever way they are read.

The ward queue's `derive` (`db rebuild`) reads and types every record of every participant. Its stored
data is read by msgspec where msgspec reads it (`eligibility.stored_values`, the standard library for what
msgspec refuses), and each value typed by its field's typer chosen once per form (`interpreter._typers`
for a model's frozen fields; `_typed` per value for a plain mapping). These hold both to the rule as
written: `json.loads`, and `_typed_as_written` below (the type, multiple and value rules of
docs/protocol.md, "Values and types", as they read before typers were chosen once per form).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.engine import eligibility, interpreter
from wardcrf.engine.model import freeze

TYPES = ("number", "integer", "boolean", "date", "datetime", "choice", "text", "signature", None)


def _typed_as_written(ftype: Any, multiple: bool, value: Any) -> Any:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    try:
        if ftype in ("number", "integer"):
            return None if isinstance(value, bool) else Decimal(str(value))
        if ftype == "boolean":
            return value if isinstance(value, bool) else None
        if ftype == "date":
            return date.fromisoformat(str(value)[:10])
        if ftype == "datetime":
            dt = datetime.fromisoformat(str(value))
            return dt if dt.tzinfo is not None else None
        if ftype == "choice" and multiple:
            return tuple(_code(v) for v in value) if isinstance(value, list) else (_code(value),)
        if ftype == "choice":
            return _code(value)
    except (ValueError, InvalidOperation, TypeError):
        return None
    return value if isinstance(value, str) else str(value)


def _code(v: Any) -> str:
    if isinstance(v, (float, Decimal)) and v == int(v):
        return str(int(v))
    return str(v)


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same type all the way down, a Decimal spelled the same (1 is not 1.0), NaN as NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    return bool(a == b) and (not isinstance(a, datetime) or a.utcoffset() == b.utcoffset())


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("gives", fn(*args))
    except Exception as exc:  # the kind of error is what is compared
        return ("raises", type(exc))


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "12",
            "-3.50",
            "1e3",
            "NaN",
            "2020-03-05",
            "2020-03-05T10:00:00+08:00",
            "2020-03-05T10:00:00",
            "2020-03-05T10:00:00Z",
            "2020-02-30",
            "pre_dose",
            "x",
        ]
    ),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.fixed_dictionaries({"value": SCALARS, "unit": st.sampled_from(["kg", "mg"])}),
    st.fixed_dictionaries({"unit": st.just("kg")}),
)


@settings(max_examples=600, deadline=None)
@given(
    spec=st.fixed_dictionaries({"type": st.sampled_from(TYPES), "multiple": st.booleans()}),
    raw=st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3),
)
def test_each_value_is_typed_as_the_rule_as_written_whether_the_fields_are_frozen_or_not(spec, raw) -> None:
    fields = {"a": {k: v for k, v in spec.items() if v is not None}, "b": {"type": "number"}}
    want = {
        k: _outcome(
            _typed_as_written,
            fields.get(k, {}).get("type", "text"),
            bool(fields.get(k, {}).get("multiple")),
            v,
        )
        for k, v in raw.items()
    }
    for given_fields in (fields, freeze(fields)):
        got = _outcome(interpreter.typed_values, given_fields, raw)
        if got[0] == "raises":  # a value the rule cannot type raises the same error either way
            assert got[1] in {w[1] for w in want.values() if w[0] == "raises"}
            continue
        assert list(got[1]) == list(raw)
        for k, v in got[1].items():
            assert want[k][0] == "gives" and _same(v, want[k][1]), (k, raw[k], v, want[k])


def test_frozen_fields_type_every_kind_of_value_as_written() -> None:
    fields = freeze(
        {
            "n": {"type": "number"},
            "i": {"type": "integer"},
            "b": {"type": "boolean"},
            "d": {"type": "date"},
            "t": {"type": "datetime"},
            "c": {"type": "choice"},
            "m": {"type": "choice", "multiple": True},
            "s": {"type": "text"},
        }
    )
    assert isinstance(fields, MappingProxyType)
    raw = {
        "n": {"value": 60, "unit": "kg"},
        "i": 7,
        "b": True,
        "d": "2020-03-05T10:00:00+08:00",
        "t": "2020-03-05T10:00:00",  # no offset: blank
        "c": 2.0,
        "m": [1, "2"],
        "s": 12,
        "x": "not a field",
        "e": "",
    }
    got = interpreter.typed_values(fields, raw)
    assert got == {
        "n": Decimal(60),
        "i": Decimal(7),
        "b": True,
        "d": date(2020, 3, 5),
        "t": None,
        "c": "2",
        "m": ("1", "2"),
        "s": "12",
        "x": "not a field",
        "e": None,
    }
    assert str(got["i"]) == "7" and str(interpreter.typed_values(fields, {"n": 1.50})["n"]) == "1.5"
    assert interpreter.typed_values(fields, {"n": True, "i": "x", "b": 1}) == {
        "n": None,
        "i": None,
        "b": None,
    }


# -- the stored data, read --------------------------------------------------------------------------


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(JSON, st.booleans())
def test_stored_data_reads_as_the_standard_library_reads_it(value, compact) -> None:
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=not compact)
    assert _same(eligibility.stored_values(text), json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"temp": NaN}',  # the standard library reads NaN and the infinities; msgspec refuses them
        '{"temp": Infinity, "pulse": -Infinity}',
        '{"temp": 1e400}',  # too large for a float: the standard library reads inf
        '{"note": "\\ud800"}',  # a lone surrogate escape
        '{"a": 1, "a": 2}',  # a repeated key: the last kept
        '{"n": 123456789012345678901234567890, "f": 0.1, "z": -0.0}',
        ' {"a": [1, 2.5, "x", null, true]} ',
        b'{"bytes": 1}',
    ],
)
def test_stored_data_msgspec_refuses_or_reads_otherwise_is_read_as_the_standard_library_reads_it(
    text,
) -> None:
    assert _same(eligibility.stored_values(text), json.loads(text))


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "[1,]"])
def test_stored_data_that_is_not_json_is_refused_as_before(text) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        eligibility.stored_values(text)


def test_two_versions_of_a_form_type_its_fields_each_by_its_own_declaration() -> None:
    """The typers are chosen once per form of a version: a form whose field is a number in one version
    and text in another types the same stored value by each one's declaration, in either order, however
    often (the fields of a version live as long as it; the same names are not the same form)."""
    as_number = freeze({"score": {"type": "number"}, "at": {"type": "datetime"}})
    as_text = freeze({"score": {"type": "text"}, "at": {"type": "date"}})
    raw = {"score": 40, "at": "2020-03-05T10:00:00+08:00"}
    for _ in range(2):
        assert interpreter.typed_values(as_number, raw) == {
            "score": Decimal(40),
            "at": datetime.fromisoformat("2020-03-05T10:00:00+08:00"),
        }
        assert interpreter.typed_values(as_text, raw) == {"score": "40", "at": date(2020, 3, 5)}


# -- typed when first read: the same records ------------------------------------------------------------


@pytest.fixture(scope="module")
def mexcovid():
    from pathlib import Path

    from wardcrf.engine import model

    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "mexcovid.toml").read_text("utf-8")
    return model.parse(text, "mexcovid.toml")


ROW_VALUES = st.fixed_dictionaries(
    {
        "timepoint": st.sampled_from(["pre_dose", "post_dose", "baseline", 3, None]),
        "dose": st.sampled_from([1, 2, "2", None, 2.5]),
        "time": st.sampled_from(["2020-03-05T10:00:00+08:00", "2020-03-05", "", None]),
        "pulse": st.one_of(  # NaN aside: a record holding it is not equal to itself
            st.none(),
            st.integers(0, 300),
            st.sampled_from(["80", "x", "", [], [1]]),
            st.fixed_dictionaries({"value": st.integers(0, 300), "unit": st.just("beats/min")}),
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["vitals", "dose", "screening", "labs", "not_a_form"]), ROW_VALUES),
        max_size=10,
    ),
    asked=st.lists(st.sampled_from(["labs", "vitals", "dose", "screening", "not_a_form", "ae"]), max_size=6),
)
def test_records_typed_when_their_form_is_first_read_are_the_records_typed_at_once(
    mexcovid, rows, asked
) -> None:
    parsed = [(form, f"e-{i}", values, i) for i, (form, values) in enumerate(rows)]
    eager = eligibility.typed_records(mexcovid, parsed)
    lazy = eligibility.TypedOnRead(mexcovid, parsed)
    for form in asked:  # in any order, each form's records as typed at once, the same each time asked
        assert (form in lazy) == (form in eager)
        assert lazy.get(form) == eager.get(form) and lazy.get(form, ()) == eager.get(form, ())
        if form in eager:
            assert lazy[form] == eager[form] and lazy[form] is lazy[form]
        else:
            with pytest.raises(KeyError):
                lazy[form]
    assert list(lazy) == list(eager) and len(lazy) == len(eager)
    assert dict(lazy.items()) == eager


# -- each value typed when first read: the same values ---------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(
    spec=st.fixed_dictionaries({"type": st.sampled_from(TYPES), "multiple": st.booleans()}),
    raw=st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3),
    asked=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=6),
)
def test_values_typed_when_first_read_are_the_values_typed_at_once(spec, raw, asked) -> None:
    fields = freeze({"a": {k: v for k, v in spec.items() if v is not None}, "b": {"type": "number"}})
    want = {k: _outcome(interpreter.typed_values, fields, {k: v}) for k, v in raw.items()}
    lazy = interpreter.values_on_read(fields)(raw)
    for name in asked:  # in any order, each value as typed at once, the same each time asked
        assert (name in lazy) == (name in raw)
        if name not in raw:
            assert lazy.get(name) is None and lazy.get(name, "absent") == "absent"
            with pytest.raises(KeyError):
                lazy[name]
            continue
        if want[name][0] == "raises":  # a value the rule cannot type raises as it did, when it is read
            assert _outcome(lazy.get, name) == want[name]
            continue
        assert _same(lazy.get(name), want[name][1][name]) and _same(lazy[name], want[name][1][name])
    assert list(lazy) == list(raw) and len(lazy) == len(raw)
    if all(w[0] == "gives" for w in want.values()):
        assert _same(dict(lazy.items()), interpreter.typed_values(fields, raw))


def test_a_value_is_typed_only_when_read_and_what_is_not_a_record_s_object_at_once() -> None:
    fields = freeze(
        {"timepoint": {"type": "choice"}, "route": {"type": "choice"}, "dose": {"type": "integer"}}
    )
    lazy = interpreter.values_on_read(fields)({"timepoint": "post_dose", "route": math.inf, "dose": 2})
    assert lazy.get("timepoint") == "post_dose" and lazy["dose"] == Decimal(2)
    assert {k: lazy[k] for k in ("timepoint", "dose")} == {"timepoint": "post_dose", "dose": Decimal(2)}
    with pytest.raises(OverflowError):  # as `typed_values` raises on it, once it is read
        lazy.get("route")
    with pytest.raises(OverflowError):
        interpreter.typed_values(fields, {"route": math.inf})
    # Fields that are not a model's (no typers chosen per form), or stored data that is not an object: typed
    # at once, as `typed_values` types them.
    plain = {"dose": {"type": "integer"}}
    assert type(interpreter.values_on_read(plain)({"dose": 2})) is dict
    assert interpreter.values_on_read(plain)({"dose": 2}) == {"dose": Decimal(2)}
    assert type(interpreter.values_on_read(freeze(plain))(MappingProxyType({"dose": 2}))) is dict
