"""A participant's stratum levels, computed from their records as the list's protocol declares.

The list carries each factor's declaration (signed by the hub with the list,
from the protocol's `[[strata]]`, docs/protocol.md): a recorded choice field
(`field`) whose code is the level, or levels with a participant expression
(`when`) of which exactly one must hold, or nothing (asked only). The ward's
engine evaluates them over the participant's records (`engine.interpreter`),
typed by the site's active protocol version. The rules:

- a level the records give is the level; a level the user states that
  disagrees with it is refused naming both;
- a level the records cannot give yet (a blank field, an unknown `when`) is
  refused naming what is missing, unless the factor is `asked`: then the
  user's stated level is taken (and recorded as asked);
- two levels that hold at once, or none that holds over complete facts, is a
  refusal naming the factor and its levels (the protocol's levels overlap or
  leave a gap).

`site` is the allocating laptop's own site: a stated `site=` that differs is
refused naming both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Refused
from .design import SITE

if TYPE_CHECKING:
    from ..engine.interpreter import Snapshot
    from ..store import Store


@dataclass(frozen=True)
class Levels:
    """Every factor's level for one participant, and which the records gave (the rest were asked)."""

    levels: dict[str, str]
    computed: tuple[str, ...]
    asked: tuple[str, ...]


def snapshot(store: Store, pid: str) -> Snapshot:
    """What the factors read: the participant's records, typed by the site's active protocol version."""
    from ..clock import now_utc, zone
    from ..engine import eligibility, loading

    model = loading.model_of(store, None)
    site_zone = store.scalar("SELECT zone FROM site WHERE id = 1")
    tz = zone(model.calendar.zone or (str(site_zone) if site_zone else "UTC"))
    return eligibility.snapshot(store, model, pid, now=now_utc(), zone=tz)


def resolve(
    factors: Sequence[Mapping[str, Any]],
    stratify_by: Sequence[str],
    site: str,
    given: Mapping[str, str],
    snap: Snapshot | None,
    pid: str,
) -> Levels:
    """The participant's level of each factor (see the module docstring); `Refused` naming what is wrong."""
    by_code = {str(f["code"]): f for f in factors}
    stated = dict(given)
    own = stated.pop(SITE, None)
    if own is not None and own != site:
        raise Refused(
            f"stratum factor site: you gave {own[:40]!r}, but this laptop allocates for site {site}"
        )
    declared = [n for n in stratify_by if n != SITE]
    extra = sorted(set(stated) - set(declared))
    if extra:
        raise Refused(
            f"{extra[0][:40]!r} is not a stratification factor of this trial (factors: {', '.join(declared) or 'none'})"
        )
    levels: dict[str, str] = {}
    computed: list[str] = []
    asked: list[str] = []
    for name in declared:
        factor = by_code.get(name)
        if factor is None:  # a list made before the factors travelled: stated by the user
            if name in stated:
                levels[name] = stated[name]
                asked.append(name)
            continue
        codes = [str(lv["code"]) for lv in factor["levels"]]
        level, missing = _compute(factor, codes, snap, pid)
        mine = stated.get(name)
        if mine is not None and mine not in codes:
            raise Refused(
                f"{mine[:40]!r} is not a level of stratum factor {name} (levels: {', '.join(codes)})"
            )
        if level is not None:
            if mine is not None and mine != level:
                raise Refused(
                    f"stratum factor {name}: you gave {mine}, but {pid}'s records give {level} "
                    f"({_source(factor, level)}); nothing allocated"
                )
            levels[name] = level
            computed.append(name)
            continue
        if factor.get("asked"):
            if mine is None:
                raise Refused(
                    f"stratum factor {name} is asked at randomization: give its level "
                    f"(one of {', '.join(codes)}) (--stratum {name}=LEVEL)"
                )
            levels[name] = mine
            asked.append(name)
            continue
        raise Refused(
            f"stratum factor {name} cannot be computed for {pid}: {', '.join(missing) or 'its facts'} "
            f"{'is' if len(missing) == 1 else 'are'} not recorded yet; record {'it' if len(missing) <= 1 else 'them'} "
            "first (the protocol computes this level, it is not asked)"
        )
    return Levels(levels, tuple(computed), tuple(asked))


def known(factors: Sequence[Mapping[str, Any]], snap: Snapshot, pid: str) -> list[tuple[str, str, str]]:
    """(factor, level, source) for every factor the records give now; the others are left out."""
    out = []
    for factor in factors:
        codes = [str(lv["code"]) for lv in factor["levels"]]
        try:
            level, _missing = _compute(factor, codes, snap, pid)
        except Refused:
            continue
        if level is not None:
            out.append((str(factor["code"]), level, _source(factor, level)))
    return out


def settled(factor: Mapping[str, Any], snap: Snapshot | None, pid: str) -> bool:
    """Whether the records give this factor's level (or refuse it: `resolve` then says why)."""
    codes = [str(lv["code"]) for lv in factor["levels"]]
    try:
        level, _missing = _compute(factor, codes, snap, pid)
    except Refused:
        return True
    return level is not None


def _source(factor: Mapping[str, Any], level: str) -> str:
    if factor.get("field"):
        return str(factor["field"])
    for lv in factor["levels"]:
        if lv["code"] == level and lv.get("when"):
            return str(lv["when"])
    return "the records"


def _compute(
    factor: Mapping[str, Any], codes: list[str], snap: Snapshot | None, pid: str
) -> tuple[str | None, list[str]]:
    """(level, missing facts): the level the records give, or None and the blank names that stop it."""
    from ..engine import interpreter

    name = factor["code"]
    whens = [(str(lv["code"]), lv.get("when")) for lv in factor["levels"]]
    field = factor.get("field")
    if field is None and not any(w for _, w in whens):
        return None, []  # asked only
    if snap is None:
        return None, [str(field)] if field else []
    try:
        if field is not None:
            value = interpreter.value_of(str(field), snap)
            if value is None:
                return None, [str(field)]
            code = interpreter.show(value)
            if code not in codes:
                raise Refused(
                    f"stratum factor {name}: {pid}'s {field} is {code}, which is no level of it "
                    f"(levels: {', '.join(codes)})"
                )
            return code, []
        holding: list[str] = []
        missing: list[str] = []
        for code, when in whens:
            if not when:
                continue
            truth = interpreter.truth(str(when), snap)
            if truth is True:
                holding.append(code)
            elif truth is None:
                missing.extend(b for b in interpreter.blanks_of(str(when), snap) if b not in missing)
    except interpreter.EvalError as exc:
        raise Refused(f"stratum factor {name} cannot be evaluated for {pid}: {exc}") from None
    if len(holding) > 1:
        raise Refused(
            f"stratum factor {name}: levels {' and '.join(holding)} both hold for {pid}; "
            "exactly one must (the protocol's levels overlap)"
        )
    if holding:
        return holding[0], []
    if missing:
        return None, missing
    raise Refused(
        f"stratum factor {name}: no level holds for {pid} ({', '.join(codes)}); "
        "exactly one must (the protocol's levels leave a gap)"
    )
