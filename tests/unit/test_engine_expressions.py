"""The expression language's parser under hostile input (issue 17): refused with a column, never a crash.

An expression comes from a protocol file, i.e. from outside. Whatever its
text, `parse` returns a tree or raises `ExprError` naming a column; it never
evaluates anything, never recurses without bound, and refuses what is too
long or too deep.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.engine import expressions
from wardcrf.engine.expressions import ExprError


@pytest.mark.parametrize(
    "text",
    [
        "screening.age between 18 and 75",
        "years(screening.dob, @assessment) >= 18 and screening.pcr_confirmed == true",
        "count(vitals where timepoint == 'pre_dose') >= 1",
        "consenter in ['surrogate', 'participant'] or surrogate_name is blank",
        "screening.pcr_date >= @assessment - 2d",
        "not (a == 1)",
    ],
)
def test_well_formed_expressions_parse(text: str) -> None:
    assert expressions.parse(text)


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("a == == 1", 6, "expected a value"),
        ("a == 1)", 7, "after a complete expression"),
        ("__import__('os')", 1, "unexpected character '_'"),
        ("a == 'x\u202ey'", 6, "control character"),
        ("a\x00 == 1", 2, "control character U+0000"),
        ("", 1, ""),
    ],
)
def test_malformed_expressions_are_refused_with_their_column(text: str, column: int, problem: str) -> None:
    with pytest.raises(ExprError) as info:
        expressions.parse(text)
    assert info.value.column == column
    assert problem in info.value.problem


@pytest.mark.parametrize(
    "text",
    [
        "(" * 1000 + "1" + ")" * 1000,
        "not " * 499 + "a",
        "-" * 1999 + "1",
        "[" * 600 + "]" * 600,
        "f(" * 600 + ")" * 600,
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ExprError) as info:
        expressions.parse(text)
    assert "deeper" in str(info.value) or "longer" in str(info.value) or "expected" in str(info.value)


def test_an_expression_longer_than_the_limit_is_refused_before_tokenizing() -> None:
    with pytest.raises(ExprError, match="longer than 2000 characters"):
        expressions.parse("a" * 2001)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_with_a_column(text: str) -> None:
    try:
        expressions.parse(text)
    except ExprError as exc:
        assert 1 <= exc.column <= len(text) + 1


_ATOMS = st.sampled_from(["a", "b.c", "1", "2.5", "'x'", "true", "@enrollment", "3d", "count(f)", "[1, 2]"])
_OPS = st.sampled_from(
    [
        " and ",
        " or ",
        " == ",
        " != ",
        " < ",
        " + ",
        " - ",
        " * ",
        " / ",
        " in ",
        "(",
        ")",
        "not ",
        " where ",
        ",",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_ATOMS, _OPS), max_size=60))
def test_token_soup_parses_or_is_refused_with_a_column(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        expressions.parse(text)
    except ExprError as exc:
        assert 1 <= exc.column <= len(text) + 1
