"""Amounts as the ward reads and types them (`wardcrf.amounts`): one owner for every screen, report and command."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wardcrf import amounts, forms


@pytest.mark.parametrize(
    ("x", "shown"),
    [
        (2.0e8, "2.0e8"),  # format 1's spelling of MEXCOVID's dose, for any trial's unit
        (200000000, "2.0e8"),
        (1.0e9, "1.0e9"),
        (1.25e9, "1.25e9"),
        (1.2345e9, "1.23e9"),  # three significant digits to read
        (-2.0e8, "-2.0e8"),
        (4.0e-4, "4.0e-4"),
        (1.0e6, "1.0e6"),  # the first number written with an exponent
        (999999.0, "999999"),  # the last one without
        (6200.0, "6200"),
        (3100, "3100"),
        (37.5, "37.5"),
        (0.25, "0.25"),
        (0.1 + 0.2, "0.3"),
        (0, "0"),
        (0.0, "0"),
        (Decimal("2E+8"), "2.0e8"),
    ],
)
def test_shown_reads_at_a_glance(x, shown):
    assert amounts.shown(x) == shown
    assert "e+" not in amounts.shown(x) and "000000" not in amounts.shown(x)


@pytest.mark.parametrize(
    ("x", "exact"), [(2.0e8, "2.0e8"), (1.2345e9, "1.2345e9"), (6.0, "6"), (2950.0, "2950"), (12.5, "12.5")]
)
def test_exact_keeps_every_digit_and_parses_back(x, exact):
    """What the wizard fills into a field is saved as shown: the text is the value itself."""
    assert amounts.exact(x) == exact
    assert float(exact) == x


@pytest.mark.parametrize(
    "hostile", [True, None, "abc", "nan", "inf", float("nan"), float("inf"), [1], "\x1b[2J"]
)
def test_not_a_number_is_text_never_an_error(hostile):
    """Stored data of another shape (older records, free text) is shown as it is, never raises."""
    assert amounts.shown(hostile) == str(hostile) and amounts.exact(hostile) == str(hostile)


def test_quantity_takes_the_unit_from_what_it_is_given():
    assert amounts.quantity({"value": 2.0e8, "unit": "particles"}) == "2.0e8 particles"
    assert amounts.quantity(6200.0, "mg") == "6200 mg" and amounts.quantity(6.0, None) == "6"


def test_forms_write_amounts_as_the_owner_does():
    """A record's value and a range refusal say the amount as every screen does (not 2e+08)."""
    assert forms.with_unit({"value": 2.0e8, "unit": "particles"}, None) == amounts.quantity(
        2.0e8, "particles"
    )
    assert forms.with_unit(2.0e12, "particles") == "2.0e12 particles"
