"""What a format-2 protocol says about allocation, as the generator and the ward need it.

The protocol owns arms, ratios, block sizes, strata and what the ward may
see (docs/protocol.md, `[randomization]`); this module only reads them from
`wardcrf.engine.model.Model` and refuses a design the generator cannot keep
exactly (a block size that is not a multiple of the ratio's sum could not
hold the ratio inside every block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.model import Model
from ..errors import Refused

SITE = "site"
"""The stratification factor the allocating site fills (docs/protocol.md: `stratify_by = ["site", ...]`)."""


@dataclass(frozen=True)
class Factor:
    """A stratification factor declared in `[[strata]]`: its code and its level codes, in file order.

    How the ward finds a participant's level (docs/protocol.md, `[[strata]]`):
    `field` (a recorded choice field whose code is the level), else each
    level's `when` (the one that holds), else asked. `asked` lets the
    clinician state the level when the records cannot give it yet.
    """

    code: str
    levels: tuple[str, ...]
    field: str | None = None
    whens: tuple[str | None, ...] = ()
    asked: bool = False

    def declaration(self) -> dict[str, Any]:
        """What the list carries so the ward computes the level (signed with the list)."""
        out: dict[str, Any] = {
            "code": self.code,
            "asked": self.asked,
            "levels": [
                {"code": c, **({"when": w} if w else {})}
                for c, w in zip(self.levels, self.whens or (None,) * len(self.levels), strict=True)
            ],
        }
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class Design:
    """One protocol version's allocation design."""

    protocol_id: str
    protocol_version: str
    protocol_sha256: str
    arms: tuple[tuple[str, int], ...]
    """(arm code, ratio weight) of every open arm, in file order."""
    block_sizes: tuple[int, ...]
    stratify_by: tuple[str, ...]
    factors: tuple[Factor, ...]
    """The `[[strata]]` factors named in `stratify_by` (not `site`), in `stratify_by` order."""
    reveal: str
    """'arm' (open label: the ward sees the arm) or 'kit' (blinded: a kit number only)."""
    unblinding: dict[str, Any]
    kit_use: str = "administration"
    """Blinded: 'course' when every product of the open arms is one kit for the whole course
    (`[[products]] kit = { use = "course" }`): the allocated kit serves all of the participant's doses."""

    @property
    def ratio_sum(self) -> int:
        return sum(w for _, w in self.arms)

    @property
    def blinded(self) -> bool:
        return self.reveal == "kit"

    def ratio_text(self) -> str:
        return ":".join(str(w) for _, w in self.arms)

    def strata(self, site: str) -> list[str]:
        """Every stratum of one site's list, as stable keys (`site=WUH01;ct_np=HIGH`)."""
        keys: list[list[str]] = [[]]
        for name in self.stratify_by:
            if name == SITE:
                keys = [[*k, f"{SITE}={site}"] for k in keys]
            else:
                factor = self.factor(name)
                keys = [[*k, f"{name}={level}"] for k in keys for level in factor.levels]
        return [";".join(k) if k else "all" for k in keys]

    def factor(self, code: str) -> Factor:
        for f in self.factors:
            if f.code == code:
                return f
        raise Refused(
            f"{code!r} is not a stratification factor of {self.protocol_id} {self.protocol_version}"
        )

    def stratum_of(self, site: str, levels: dict[str, str]) -> str:
        """The stratum key for a participant of `site` whose factor levels are `levels`.

        Every factor other than `site` must be given, with one of its declared
        levels; anything else is refused naming the factor and the levels allowed.
        """
        extra = sorted(set(levels) - {f.code for f in self.factors})
        if extra:
            allowed = ", ".join(f.code for f in self.factors) or "none"
            raise Refused(f"{extra[0]!r} is not a stratification factor of this trial (factors: {allowed})")
        parts = []
        for name in self.stratify_by:
            if name == SITE:
                parts.append(f"{SITE}={site}")
                continue
            factor = self.factor(name)
            level = levels.get(name)
            if level is None:
                raise Refused(
                    f"stratum factor {name} needs a level for allocation (one of {', '.join(factor.levels)})"
                )
            if level not in factor.levels:
                raise Refused(
                    f"{level!r} is not a level of stratum factor {name} (levels: {', '.join(factor.levels)})"
                )
            parts.append(f"{name}={level}")
        return ";".join(parts) if parts else "all"


def _kit_use(model: Model, open_arms: set[str]) -> str:
    """'course' when every product the open arms' administrations give is declared one kit per course."""
    products = {
        adm.product for arm in open_arms for reg in model.regimens_of(arm) for adm in reg.administrations
    }
    uses = {
        str((p.get("kit") or {}).get("use", "administration"))
        for p in model.data.get("products", ())
        if p.get("code") in products
    }
    return "course" if uses == {"course"} else "administration"


def design_of(model: Model) -> Design:
    """The allocation design of a protocol; refused when it has none or cannot keep its ratio."""
    data = model.data
    rand = data.get("randomization")
    where = f"{model.id} {model.version}"
    if rand is None:
        raise Refused(f"protocol {where} has no [randomization] table: nothing to allocate")
    arms = tuple(
        (str(a["code"]), int(a.get("ratio", 1))) for a in data.get("arms", ()) if not a.get("closed", False)
    )
    if len(arms) < 2:
        raise Refused(f"protocol {where} has {len(arms)} open arm(s): randomization needs two or more")
    total = sum(w for _, w in arms)
    sizes = tuple(int(b) for b in rand["block_sizes"])
    bad = [b for b in sizes if b % total]
    if bad:
        raise Refused(
            f"protocol {where}: block size {bad[0]} is not a multiple of the ratio "
            f"{':'.join(str(w) for _, w in arms)} (sum {total}); every block must hold the ratio exactly"
        )
    declared = {
        str(s["code"]): Factor(
            str(s["code"]),
            tuple(str(lv["code"]) for lv in s.get("levels", ())),
            field=None if s.get("field") is None else str(s["field"]),
            whens=tuple(None if lv.get("when") is None else str(lv["when"]) for lv in s.get("levels", ())),
            asked=bool(s.get("asked", False)),
        )
        for s in data.get("strata", ())
    }
    stratify_by = tuple(str(s) for s in rand.get("stratify_by", ()))
    factors = []
    for name in stratify_by:
        if name == SITE:
            continue
        if name not in declared:
            raise Refused(f"protocol {where}: stratify_by names {name!r}, which no [[strata]] declares")
        factors.append(declared[name])
    unblinding = rand.get("unblinding", {})
    return Design(
        kit_use=_kit_use(model, {c for c, _ in arms}) if rand["reveal"] == "kit" else "administration",
        protocol_id=model.id,
        protocol_version=model.version,
        protocol_sha256=model.sha256,
        arms=arms,
        block_sizes=tuple(sorted(set(sizes))),
        stratify_by=stratify_by,
        factors=tuple(factors),
        reveal=str(rand["reveal"]),
        unblinding={
            "roles": list(unblinding.get("roles", ())),
            "witness": bool(unblinding.get("witness", False)),
            "reasons": [str(r["code"]) for r in unblinding.get("reasons", ())],
        },
    )
