"""The chest CT's 18 segments, in the first trial's form order.

Format 1's own rules of the clinical forms (labs, the CT total, oxygen, concomitant
therapy) are gone with its workflow: every format-1 version runs on the engine,
where the re-encoding declares them (`compute`, `[[rules]]`; docs/engine.md). The
segment names stay for the first trial's demo, which scores them (`workflow.demo`).
"""

from __future__ import annotations

CT_SEGMENTS = (
    "r_upper_apical",
    "r_upper_posterior",
    "r_upper_anterior",
    "r_middle_lateral",
    "r_middle_medial",
    "r_lower_superior",
    "r_lower_medial_basal",
    "r_lower_anterior_basal",
    "r_lower_lateral_basal",
    "r_lower_posterior_basal",
    "l_upper_apicoposterior",
    "l_upper_anterior",
    "l_upper_superior_lingular",
    "l_upper_inferior_lingular",
    "l_lower_superior",
    "l_lower_anteromedial_basal",
    "l_lower_lateral_basal",
    "l_lower_posterior_basal",
)
