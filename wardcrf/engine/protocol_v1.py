"""Format-1 protocols (docs/protocol-v1.md) upgraded to the engine's model.

Every `protocol.loaded` event holds its file's text and records are read
with the version they were captured under, so the engine reads format-1
sources forever. Format 1 states one regimen in its `[schedule]` table and
keeps the rest of the regimen in code (`workflow.dosing`: dose N on day N
after enrollment at the scheduled local time, ± the window, the Nth dose
given is dose N, a missed dose may still be given late); the upgrade writes
that code's rules as the format-2 declaration they become
(docs/engine.md, section 8), so a participant enrolled under a format-1
version gets the same schedule from the engine as from `workflow.status`.

Format 1 names no regimen, administration or product code: the upgrade
names them after format 1's own table and form (`schedule`, `dose`) and the
product's name in capitals. What is translated today: the calendar, the
arms, the product and the regimen (what the schedule engine runs). Forms,
criteria, rules and the rest stay in the format-1 `Protocol` until the parts
of the engine that run them are built.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from wardcrf import protocol as format1
from wardcrf.engine.model import (
    Administration,
    Arm,
    Calendar,
    Dose,
    Model,
    Regimen,
    ScheduleSpec,
    freeze,
)
from wardcrf.protocols import format1_vocabulary

REGIMEN = "schedule"  # format 1's [schedule] table
ADMINISTRATION = "dose"  # format 1's dose form


ELIGIBILITY_FORM = "screening"  # format 1's eligibility record


def _literal(code: str) -> str:
    return f'"{code}"' if "'" in code else f"'{code}'"


def criteria(el: format1.Eligibility) -> list[dict[str, Any]]:
    """Format 1's `[eligibility]` table as the criteria it always meant, in the order the workflow
    named failures (`age`, `pcr`, `severity`): the engine assesses them as any protocol's."""
    out: list[dict[str, Any]] = [
        {
            "code": "age",
            "category": "inclusion",
            "label": f"Age {el.age_min} to {el.age_max} years",
            "expr": f"years({ELIGIBILITY_FORM}.dob, @assessment) between {el.age_min} and {el.age_max}",
        }
    ]
    if el.confirmation_required:
        confirmation = format1_vocabulary()["confirmation"]
        out.append(
            {
                "code": "pcr",
                "category": "inclusion",
                "label": confirmation["label"],
                "expr": f"{confirmation['form']}.{confirmation['field']} == true",
            }
        )
    levels = ", ".join(_literal(c) for c in el.severities)
    out.append(
        {
            "code": "severity",
            "category": "inclusion",
            "label": f"Severity: {', '.join(el.severities)}",
            "expr": f"{ELIGIBILITY_FORM}.severity in [{levels}]",
        }
    )
    return out


def product_code(name: str) -> str:
    """A product's code from its name: `haMSC-Exos` -> `HAMSC_EXOS` (format 2's visit/product code rule)."""
    code = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")[:20]
    return code or "PRODUCT"


def upgrade(p: format1.Protocol) -> Model:
    """The engine's model of a format-1 protocol (the parts listed in the module docstring)."""
    s = p.schedule
    product = product_code(str(p.product.get("name", "")))
    record = {
        "form": ADMINISTRATION,
        **{role: f for role, f in format1_vocabulary()["record_roles"].items() if f in p.form("dose").fields},
    }
    window = timedelta(minutes=s.window_minutes)
    adm = Administration(
        code=ADMINISTRATION,
        product=product,
        route=s.route,
        frequency=s.frequency,
        dose=Dose(unit=s.dose_unit, fixed=Decimal(str(s.dose_amount))),
        schedule=ScheduleSpec(
            anchor="enrollment",
            first_day=1,
            every_days=1,
            count_min=s.doses,
            count_max=s.doses,
            times=(s.time,),
        ),
        window=(-window, window),
        closing=timedelta(0),  # format 1 has no "window closing"
        late_until="course_end",  # workflow.dosing accepts a missed dose late, until the course is complete
        numbering="given",  # dose N is the Nth given
        worklist="dose {n}",
        record=MappingProxyType(record),
    )
    arms = p.trial.arms or (format1.Arm(code="ARM", label=""),)
    data: dict[str, Any] = {
        "protocol": {"id": p.id, "version": p.version, "format": 1, "upgraded": True},
        "calendar": {"zone": s.zone, "anchor_day": 0},
        "arms": [{"code": a.code, "regimens": [REGIMEN]} for a in arms],
        "products": [{"code": product, "name": p.product.get("name", "")}],
        "forms": {
            name: {"fields": {f.name: {"type": f.type, "multiple": f.multiple} for f in form.fields.values()}}
            for name, form in p.forms.items()
        },
        "eligibility": {
            "form": ELIGIBILITY_FORM,
            "date": "date",
            "eligible": "eligible",
            "failed": "failed_criteria",
            "reassess_at": ["enrollment"],
        },
        "criteria": criteria(p.eligibility),
    }
    return Model(
        id=p.id,
        version=p.version,
        sha256=p.sha256,
        source=p.source,
        calendar=Calendar(anchor_day=0, zone=s.zone),
        arms=tuple(Arm(a.code, (REGIMEN,)) for a in arms),
        regimens=MappingProxyType(
            {REGIMEN: Regimen(REGIMEN, str(p.trial.arms[0].label if p.trial.arms else ""), (adm,))}
        ),
        products=frozenset({product}),
        data=freeze(data),
    )
