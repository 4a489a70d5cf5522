"""A participant's vital signs around each dose, as series for a chart or a table.

For every scheduled dose (1..N) and every vital sign the protocol's vitals
form measures (SpO2, temperature, heart rate, respiratory rate, blood
pressure), the value measured before the inhalation and after it. The
workflow keeps one record per timepoint and dose (a correction is an
amendment, already applied by the `vitals` projection); should older data
hold two, the later measurement counts, as on the ward chart. Unscheduled
measurements are not attached to a dose and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import amendments
from .base import require_participant

if TYPE_CHECKING:
    from .. import protocol as protocols
    from ..site import Session

MEASURES = ("oxysat", "temp", "pulse", "resp", "sysbp", "diabp")
"""Columns of the `vitals` projection, in the order a ward reads them."""

TIMEPOINTS = ("pre_dose", "post_dose")


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
    """Pre- and post-dose values of each vital sign across the scheduled doses."""
    session.require("record.read", what="read participants")
    p = require_participant(session.store, participant)
    proto = amendments.protocol_of(session.store, p)  # their version's ranges and schedule, not the site's
    planned = proto.schedule.doses
    form = proto.form("vitals")
    measures = []
    for name in MEASURES:
        f = form.fields.get(name)
        if f is None:
            continue
        measures.append(Measure(name, f.label, f.unit or "", f.soft, [None] * planned, [None] * planned))
    rows = session.store.rows(
        "SELECT v.* FROM vitals v JOIN events e ON e.id = v.event_id"
        " WHERE v.participant = ? AND v.timepoint IN ('pre_dose', 'post_dose') AND v.dose IS NOT NULL"
        " ORDER BY v.time, e.pos",
        (p.id,),
    )
    for r in rows:
        n = int(r["dose"])
        if not 1 <= n <= planned:
            continue
        for m in measures:
            value: Any = r[m.name]
            if value is None:
                continue
            series = m.pre if r["timepoint"] == "pre_dose" else m.post
            series[n - 1] = float(value)  # later rows (by time) win: the recheck
    given = int(session.store.scalar("SELECT count(*) FROM doses WHERE participant = ?", (p.id,)))
    return VitalsSeries(p.id, planned, given, measures)
