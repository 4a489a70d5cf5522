"""The administration wizard names an oral solid by the product's declared dosage form (eyes D14).

PALM007's tecovirimat and its placebo are `dosage_form = "CAPSULE"`: the
plan line reads "dose 7 (capsules, oral)", not "tablets". A `TABLET`
product reads "tablets"; a form the wizard cannot name, or one that would
tell a blinded allocation's products apart, falls back to the kind
("tablets or capsules"). In English and Chinese.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wardcrf.screens import i18n
from wardcrf.screens.administration_wizard import _kind_word

from wardcrf.engine import model
from wardcrf.workflow.administration_visit import shown_dosage_form

ENGINE = Path(model.__file__).parent.parent / "protocols" / "engine"


@pytest.fixture
def english():
    before = i18n.language()
    i18n.set_language("en")
    yield
    i18n.set_language(before)


def _palm007(placebo_form: str = "CAPSULE") -> model.Model:
    text = (ENGINE / "palm007.toml").read_text("utf-8")
    old = 'placebo_for = "TECOVIRIMAT"\ndosage_form = "CAPSULE"'
    assert text.count(old) == 1
    text = text.replace(old, f'placebo_for = "TECOVIRIMAT"\ndosage_form = "{placebo_form}"')
    return model.parse(text, "palm007.toml")


def test_a_capsule_is_called_capsules_and_a_tablet_tablets(english) -> None:
    assert _kind_word("tablets", "CAPSULE") == "capsules"
    assert _kind_word("tablets", "TABLET, FILM COATED") == "tablets"
    # refused to guess: no form shown (blinded, forms differ) or one that is neither -> the kind's word
    assert _kind_word("tablets", "") == "tablets or capsules"
    assert _kind_word("tablets", "POWDER") == "tablets or capsules"
    # other kinds keep their word whatever the form
    assert _kind_word("infusion", "CAPSULE") == "infusion"
    i18n.set_language("zh")
    assert _kind_word("tablets", "CAPSULE") == "胶囊"
    assert _kind_word("tablets", "TABLET") == "片剂"


def test_palm007s_blinded_capsules_are_named_and_a_telling_form_is_not() -> None:
    m = _palm007()
    teco = next(p for p in m.data["products"] if p["code"] == "TECOVIRIMAT")
    assert shown_dosage_form(m, teco, blinded=True) == "CAPSULE"  # placebo and active share the form
    # a placebo made as a tablet would tell the arms apart on a blinded ward: not shown there
    m = _palm007(placebo_form="TABLET")
    teco = next(p for p in m.data["products"] if p["code"] == "TECOVIRIMAT")
    assert shown_dosage_form(m, teco, blinded=True) == ""
    assert shown_dosage_form(m, teco, blinded=False) == "CAPSULE"  # open label: the product's own form
    assert shown_dosage_form(m, {}, blinded=False) == ""  # no form declared
