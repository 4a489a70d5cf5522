"""ODM 1.3.2 StudyEventDefs for the visits of a format-2 protocol, each with the forms due at it.

The clinical data stay in the one "Casebook" event (`odm.STUDY_EVENT`): a
record is not yet filed under a visit when it is captured. What the sponsor's
tools read from the metadata is the schedule of assessments: one
StudyEventDef per `[[visits]]` entry, `Repeating="Yes"` for a visit that
repeats (daily, or once per administration), `Type` Scheduled / Unscheduled
/ Common as the protocol says, `Category` its epoch, a Description saying
its VISITNUMs and when it is due (the words TV uses), and one FormRef per
form of `forms`, Mandatory unless the protocol makes the form optional
(`required = false`) or conditional (`when`), or the visit is unscheduled. A visit's form the
MetaDataVersion has no FormDef for (a form with no fields) is left out,
never referenced dangling.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .sdtm.engine_design import design_from_model

if TYPE_CHECKING:
    from ..engine.model import Model

TYPES = {"scheduled": "Scheduled", "unscheduled": "Unscheduled", "common": "Common"}


def event_oid(code: str) -> str:
    return f"SE.{re.sub(r'[^A-Za-z0-9_.-]', '_', code)}"


def _nums(model: Model) -> dict[str, list[float]]:
    """VISITNUMs of each visit code, in TV's numbering (one per repeat)."""
    out: dict[str, list[float]] = {}
    for tv in design_from_model(model).visits:
        out.setdefault(tv.code, []).append(tv.num)
    return out


def study_events(model: Model, form_oids: Mapping[str, str]) -> Iterator[tuple[dict[str, Any], ET.Element]]:
    """(StudyEventRef attributes without OrderNumber, StudyEventDef) per visit, in protocol order.

    `form_oids`: the FormOID of every form the MetaDataVersion defines.
    """
    nums = _nums(model)
    for v in model.data.get("visits", ()):
        kind = v.get("type", "scheduled")
        repeating = "repeat" in v or kind != "scheduled"
        attrs = {
            "OID": event_oid(v["code"]),
            "Name": v["label"].replace("{day}", "d").replace("{n}", "n"),
            "Repeating": "Yes" if repeating else "No",
            "Type": TYPES[kind],
        }
        if "epoch" in v:
            attrs["Category"] = v["epoch"]
        sed = ET.Element("StudyEventDef", attrs)
        desc = _description(v, nums.get(v["code"], []))
        if desc:
            tt = ET.SubElement(ET.SubElement(sed, "Description"), "TranslatedText", {"xml:lang": "en"})
            tt.text = desc
        order = 0
        for entry in v["forms"]:
            form = entry if isinstance(entry, str) else entry["form"]
            if form not in form_oids:
                continue
            optional = kind != "scheduled" or (
                not isinstance(entry, str) and (entry.get("required") is False or "when" in entry)
            )
            order += 1
            ET.SubElement(
                sed,
                "FormRef",
                {
                    "FormOID": form_oids[form],
                    "OrderNumber": str(order),
                    "Mandatory": "No" if optional else "Yes",
                },
            )
        if order:
            yield {"StudyEventOID": attrs["OID"], "Mandatory": "Yes" if kind == "scheduled" else "No"}, sed


def _description(v: Any, nums: list[float]) -> str:
    parts = []
    if nums:
        shown = [str(n) for n in nums]
        parts.append(f"VISITNUM {shown[0]}" if len(shown) == 1 else f"VISITNUM {shown[0]} to {shown[-1]}")
    if "anchor" in v and "day" in v:
        named = v["anchor"]
        anchor = named if isinstance(named, str) else ", else ".join(named)
        parts.append(f"day {v['day']} after {anchor}")
    if "window" in v:
        parts.append(f"window {v['window'][0]} to {v['window'][1]}")
    rep = v.get("repeat", {})
    if "every" in rep:
        parts.append(f"every {rep['every']}, {rep['count']} times")
    if "per" in rep:
        parts.append(f"once per administration of regimen {rep['regimen']}")
    return "; ".join(parts)
