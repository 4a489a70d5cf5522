"""A participant's vital signs around each administration, as series for a chart or a table.

For every scheduled administration (1..N) and every vital sign the protocol
declares (`[safety] vital_signs`, in the order the ward reads them; a
format-1 version's fixed vitals form: `workflow.declared`), the value measured
before the administration and after it: a format-2 version's
`[[dose_assessments]]` on that form say which record is before or after
which administration, format 1's pre-/post-dose timepoints and dose number.
The workflow keeps one record per timepoint and administration (a correction
is an amendment, already applied to the record); should older data hold two,
the later measurement counts, as on the ward chart. Measurements attached to
no administration (unscheduled, daily) are left out. A version that declares
no vital signs has no series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import amendments, declared
from .base import require_participant

if TYPE_CHECKING:
    from .. import protocol as protocols
    from ..site import Session


@dataclass
class Measure:
    """One vital sign: its field name, protocol label (per language) and unit."""

    name: str
    label: protocols.Text  # the protocol's words, per language (`protocols.tr`)
    unit: str
    soft: tuple[float, float] | None
    pre: list[float | None] = field(default_factory=list)  # index i: dose i + 1
    post: list[float | None] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return any(v is not None for v in self.pre + self.post)


@dataclass
class VitalsSeries:
    participant: str
    doses: int  # scheduled doses: the x axis
    doses_given: int
    measures: list[Measure]


def vitals_by_dose(session: Session, participant: str) -> VitalsSeries:
    """Pre- and post-administration values of each declared vital sign across the scheduled administrations."""
    session.require("record.read", what="read participants")
    p = require_participant(session.store, participant)
    proto = amendments.protocol_of(session.store, p)  # their version's ranges and schedule, not the site's
    exposure = declared.exposure(session.store, proto, p.id)
    planned = exposure["planned"]
    vs = declared.vital_signs(proto)
    measures: list[Measure] = []
    if vs is None or vs.form not in proto.forms:
        return VitalsSeries(p.id, planned, exposure["given"], measures)
    form = proto.form(vs.form)
    for name in vs.fields:
        f = form.fields.get(name)
        if f is None:
            continue
        measures.append(Measure(name, f.label, f.unit or "", f.soft, [None] * planned, [None] * planned))
    for r in declared.vitals_rows(session.store, proto, p.id):  # by time: a later recheck wins
        n = r["number"]
        if r["when"] not in ("before", "after") or n is None or not 1 <= n <= planned:
            continue
        for m in measures:
            value: Any = r["values"].get(m.name)
            if value is None:
                continue
            series = m.pre if r["when"] == "before" else m.post
            series[n - 1] = float(value)
    return VitalsSeries(p.id, planned, exposure["given"], measures)
