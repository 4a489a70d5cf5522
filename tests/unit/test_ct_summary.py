"""Format 1's CT total rule (`clinical.ct_total`, saved by its `ct_score` rule): the grid shows the same
numbers live by its declared `compute` (tests/unit/test_form_sections.py compares the two)."""

from __future__ import annotations

from wardcrf.workflow.clinical import CT_SEGMENTS, ct_total


def test_scores_add_up_and_ne_counts_as_nothing() -> None:
    assert ct_total({s: 4 for s in CT_SEGMENTS}) == (72, 18)
    assert ct_total({s: "ne" for s in CT_SEGMENTS}) == (0, 0)
    assert ct_total({"r_upper_apical": 4, "l_lower_superior": "ne", "r_middle_medial": None}) == (4, 1)


def test_non_scores_never_count() -> None:
    """Only integers score: text, booleans and blanks add nothing (refused by the validator anyway)."""
    v = {"r_upper_apical": "3", "r_upper_posterior": True, "r_upper_anterior": "", "l_upper_anterior": 1}
    assert ct_total(v) == (1, 1)
