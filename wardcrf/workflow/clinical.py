"""Clinical forms without sequencing of their own: labs, CT score, oxygen, concomitant therapy.

They still need valid consent first (every participant form does), and each
has a few rules of its own: labs carry at least one value; the CT total is
computed from the 18 segments (``ne`` = not evaluable counts as nothing and
is reported in ``evaluable_segments``); oxygen support is one record per day;
convalescent plasma records volume, titre and time.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ..errors import Refused
from .base import RuleContext, records_of, rule

LAB_CODES = ("wbc", "lym", "crp", "ldh", "il6", "ddimer", "alt", "creat")

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
NOT_EVALUABLE = "ne"


def check_timepoint(ctx: RuleContext, v: dict[str, Any]) -> None:
    """Baseline is before dose 1; "after treatment" is after the last dose recorded (and needs one)."""
    p = ctx.participant
    day = date.fromisoformat(v["date"]) if v.get("date") else None
    if p is None or day is None:
        return
    first, last = ctx.store.one(
        "SELECT min(start), max(start) FROM doses WHERE participant = ?", (p.id,)
    ) or (None, None)
    if v.get("timepoint") == "baseline" and first and day > ctx.local(first).date():
        ctx.problem("date", f"{day} is after dose 1 ({ctx.local(first).date()}); baseline precedes treatment")
    if v.get("timepoint") == "post_treatment":
        if not last:
            ctx.problem("timepoint", f"no dose recorded for {p.id}; 'post_treatment' follows the last dose")
        elif day < ctx.local(last).date():
            ctx.problem("date", f"{day} is before the last dose ({ctx.local(last).date()})")


@rule("labs")
def check_labs(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    check_timepoint(ctx, v)
    form = ctx.protocol.form("labs")
    values = [k for k, f in form.fields.items() if f.type == "number" and v.get(k) is not None]
    if not values and not ctx.problems:
        ctx.problem("labs", "enter at least one laboratory value (" + ", ".join(LAB_CODES) + ")")
    return {}


def ct_total(v: dict[str, Any], segments: tuple[str, ...] = CT_SEGMENTS) -> tuple[int, int]:
    """(total score, evaluable segments) over the 18 segments (or a subset of them).

    A segment scores when it holds an integer 0-4; ``ne`` (not evaluable)
    and a blank count as nothing. Format 1's rule saves it; the grid shows the
    same total live by the `compute` format1-workflow.toml gives its grid (`[grids]`)
    (`sum` and `count_numbers`, which skip blanks and `ne` alike).
    """
    scores = [v.get(s) for s in segments]
    evaluable = [s for s in scores if isinstance(s, int) and not isinstance(s, bool)]
    return sum(evaluable), len(evaluable)


@rule("ct_score")
def check_ct(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    check_timepoint(ctx, v)
    if any(v.get(s) is None for s in CT_SEGMENTS):
        return {}
    total, evaluable = ct_total(v)
    if total > 0 and not v.get("lesion_form"):
        ctx.problem("lesion_form", "required when any segment scores above 0 (ground_glass, consolidation)")
    return {"total": total, "evaluable_segments": evaluable}


@rule("oxygen")
def check_oxygen(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    p = ctx.participant
    assert p is not None
    day = v.get("date")
    same = [r for r in records_of(ctx.store, p.id, "oxygen", exclude=ctx.amending) if r.get("date") == day]
    if same:
        raise Refused(
            f"oxygen support for {p.id} on {day} is already recorded ({same[0]['_event']}); "
            "one record per day: amend it instead"
        )
    if v.get("support") == "room_air" and v.get("flow") is not None:
        ctx.problem("flow", "no oxygen flow on room air")
    return {}


@rule("conmed")
def check_conmed(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    if v.get("category") == "convalescent_plasma":
        for key in ("plasma_volume", "plasma_titre", "plasma_time"):
            if v.get(key) is None:
                ctx.problem(key, "required for convalescent plasma")
    else:
        if not v.get("name"):
            ctx.problem("name", "required: the drug given")
        for key in ("plasma_volume", "plasma_titre", "plasma_time"):
            if v.get(key) is not None:
                ctx.problem(key, "only for convalescent plasma")
    start, end = (date.fromisoformat(v[k]) if v.get(k) else None for k in ("start", "end"))
    if start and end and end < start:
        ctx.problem("end", f"{end} is before the start {start}")
    return {}
