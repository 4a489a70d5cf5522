"""The trial's design as SDTM sees it: arms, elements, epochs, visits; a subject's timeline.

A format-2 protocol (and every format-1 version the engine runs, on its
re-encoding) declares its epochs and visits: `engine_design` translates them.
This module holds what both share (`Design`, `Timeline`) and the documented
default for a version that declares none: a stored format-1 version the engine
cannot run (docs/engine.md, "Every format-1 version on the engine"), derived
from its `[schedule]` and its records, never from a form's name
(docs/exports.md, "Trial design"):

* one arm per declared arm, else one arm named after the product;
* three elements and epochs: SCREENING (consent to the first dose),
  TREATMENT (the first dose to the end of the day of the last dose) and
  FOLLOW-UP (after it, to the end of study);
* visits: 1 BASELINE (study day -1: what was recorded before the first
  administration's day), 1+n DOSE n for each scheduled administration (study
  day n: the administration and what was recorded on its day), `doses`+2
  POST-TREATMENT (what was recorded after the last administration's day once
  treatment is over); anything else dated is an unscheduled visit numbered
  after the last planned visit before it (2.01, 2.02...).

A record's epoch is its visit's epoch, else the epoch its date falls in.
`Timeline` owns these rules, so every domain, SV, TV and TA agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from ...protocol import Protocol

SCREENING, TREATMENT, FOLLOW_UP = "SCREENING", "TREATMENT", "FOLLOW-UP"
BASELINE, POST_TREATMENT = "BASELINE", "POST-TREATMENT"  # the default design's first and last visits


@dataclass(frozen=True)
class Element:
    code: str
    name: str
    epoch: str
    start_rule: str
    end_rule: str
    duration: str = ""


@dataclass(frozen=True)
class Visit:
    num: float
    name: str
    epoch: str
    day: int | None
    start_rule: str
    end_rule: str = ""
    arms: tuple[str, ...] = ()  # the arms that have this visit; () = every arm
    code: str = ""  # the protocol's visit code (format 2), shared by a repeating visit's rows


@dataclass(frozen=True)
class Design:
    arms: tuple[tuple[str, str], ...]
    elements: tuple[Element, ...]
    visits: tuple[Visit, ...]
    source: str  # "protocol" when the protocol declared the design, else "default"
    # Element codes per arm, in order (TA); empty: every arm walks every element.
    arm_elements: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def elements_of(self, arm: str) -> tuple[Element, ...]:
        codes = self.arm_elements.get(arm)
        if not codes:
            return self.elements
        by_code = {e.code: e for e in self.elements}
        return tuple(by_code[c] for c in codes)

    def visits_of(self, arm: str) -> tuple[Visit, ...]:
        return tuple(v for v in self.visits if not v.arms or arm in v.arms)

    def visit(self, name: str) -> Visit | None:
        return next((v for v in self.visits if v.name == name), None)


def arm_code_from(name: str) -> str:
    return (re.sub(r"[^A-Z0-9]", "", name.upper()) or "ARM1")[:20]


def design_of(proto: Protocol) -> Design:
    """The documented default design of a version that declares no visits (a stored format-1 version the
    engine cannot run): the protocol's arms if declared, else one named after the product."""
    product = str(proto.product.get("name") or "study treatment")
    arms = tuple((a.code, a.label) for a in proto.trial.arms) or ((arm_code_from(product), product),)
    n = proto.schedule.doses
    sched = proto.schedule
    when = f"{sched.time.strftime('%H:%M')} {sched.zone} +/- {sched.window_minutes} min"
    elements = (
        Element("SCRN", "Screening", SCREENING, "Informed consent", "First dose of study treatment"),
        Element(
            "TRT",
            product,
            TREATMENT,
            "First dose of study treatment",
            f"End of the day of the last of {n} doses",
            f"P{n}D",
        ),
        Element("FU", "Follow-up", FOLLOW_UP, "Day after the last dose", "End of study (disposition)"),
    )
    visits = [Visit(1, BASELINE, SCREENING, -1, "Before the day of the first dose (screening, baseline)")]
    for d in range(1, n + 1):
        visits.append(
            Visit(1 + d, f"DOSE {d}", TREATMENT, d, f"Dose {d} of {n}, due on study day {d} at {when}")
        )
    visits.append(
        Visit(
            n + 2, POST_TREATMENT, FOLLOW_UP, None, "After the day of the last dose, once treatment is over"
        )
    )
    return Design(arms, elements, tuple(visits), "protocol" if proto.trial.arms else "default")


def study_day(ref: str, dtc: str) -> int | None:
    """SDTM study day of `dtc` relative to RFSTDTC `ref`: no day 0 (day -1 is the day before day 1)."""
    if len(ref) < 10 or len(dtc) < 10:
        return None
    try:
        delta = (date.fromisoformat(dtc[:10]) - date.fromisoformat(ref[:10])).days
    except ValueError:
        return None
    return delta + 1 if delta >= 0 else delta


@dataclass
class Timeline:
    """One subject's reference dates: which epoch and study day an observation falls in."""

    consent: str = ""  # RFICDTC
    first_dose: str = ""  # RFXSTDTC
    last_dose: str = ""  # RFXENDTC
    treatment_over: bool = False  # all doses given, or an end-of-treatment disposition
    visit_dates: dict[float, list[str]] = field(default_factory=dict)
    # Format 2: the first day of FOLLOW-UP once treatment is over (the engine's end of treatment, not
    # before the day after the last dose); "" = format 1's rule, the day after the last dose.
    follow_up_from: str = ""

    def epoch(self, dtc: str) -> str:
        """The epoch a date/time falls in ('' before consent or when unknown).

        A date without a time on the first dose day counts as TREATMENT (an
        event that day is treatment-emergent unless its time says otherwise).
        """
        if not dtc or (self.consent and dtc[:10] < self.consent[:10]):
            return ""
        if not self.first_dose:
            return SCREENING
        first = self.first_dose if len(dtc) > 10 else self.first_dose[:10]
        if dtc < first:
            return SCREENING
        if self.follow_up_from:
            return FOLLOW_UP if dtc[:10] >= self.follow_up_from else TREATMENT
        if self.treatment_over and self.last_dose and dtc[:10] > self.last_dose[:10]:
            return FOLLOW_UP
        return TREATMENT

    def day(self, dtc: str) -> int | None:
        return study_day(self.first_dose, dtc)
