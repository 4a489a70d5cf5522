"""The CT score's running summary: one total rule for the grid and the saved record."""

from __future__ import annotations

from wardcrf.workflow.clinical import CT_LOBES, CT_SEGMENTS, ct_summary, ct_total


def test_anatomy_is_right_ten_and_left_eight_by_lobe() -> None:
    right, left = CT_LOBES["right"], CT_LOBES["left"]
    assert {lobe: len(s) for lobe, s in right.items()} == {"upper": 3, "middle": 2, "lower": 5}
    assert {lobe: len(s) for lobe, s in left.items()} == {"upper": 4, "lower": 4}
    laid_out = [s for lung in (right, left) for segs in lung.values() for s in segs]
    assert laid_out == list(CT_SEGMENTS)  # every segment once, in the form's order


def test_summary_counts_scores_subtotals_ne_and_blanks() -> None:
    v = {s: 0 for s in CT_SEGMENTS} | {
        "r_upper_apical": 4,
        "r_lower_posterior_basal": 2,
        "l_upper_anterior": 3,
        "l_lower_superior": "ne",
        "r_middle_medial": None,
    }
    s = ct_summary(v)
    assert (s.total, s.right, s.left) == (9, 6, 3)
    assert (s.not_evaluable, s.blank, s.evaluable) == (1, 1, 16)
    assert not s.complete
    assert (s.total, s.evaluable) == ct_total(v)


def test_full_score_and_all_not_evaluable() -> None:
    assert ct_summary({s: 4 for s in CT_SEGMENTS}).total == 72
    every_ne = ct_summary({s: "ne" for s in CT_SEGMENTS})
    assert (every_ne.total, every_ne.evaluable, every_ne.not_evaluable, every_ne.complete) == (0, 0, 18, True)


def test_non_scores_never_count() -> None:
    """Only integers score: text, booleans and blanks add nothing (refused by the validator anyway)."""
    v = {"r_upper_apical": "3", "r_upper_posterior": True, "r_upper_anterior": "", "l_upper_anterior": 1}
    assert ct_total(v) == (1, 1)
    assert ct_summary(v).blank == 15  # "3", True and 1 are not blank
