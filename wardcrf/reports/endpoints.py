"""Every declared endpoint of a format-2 protocol, per arm (issue 17, "the outcomes report").

The protocol's `[[analysis.endpoints]]` say what each endpoint is and how it
is analysed; this module turns participant-level outcomes into the per-arm
results the outcomes report prints, with each method named:

* `paired_change`: before/after per arm (median and IQR by the protocol's
  quartiles), "improved in k of n", the Kruskal–Wallis H test of the values
  before against those after, and the Wilcoxon signed-rank test of
  `stats.signed_rank` (exact with ties by default); `paired_arm` is the one
  owner of these numbers, format 1's outcomes report included;
* `proportion`: k of n per arm with its interval (`proportions`: Wilson by
  default, or Clopper–Pearson), and the difference between arms with its
  interval (Newcombe by default, or Wald); an endpoint read at a `day`
  counts in k of n only the participants whose day N is over (evaluable),
  the others as "not yet evaluable" (an event not yet recorded before the
  day is not yet false);
* `mortality` by day N: deaths on or before day N among participants whose
  status at day N is known (dead by then, or followed to day N at least),
  with the interval and the difference as for a proportion; participants
  censored alive before day N are counted and left out of that crude
  proportion, and the Kaplan–Meier estimate 1 − S(N), which uses them, is
  given beside it when someone was followed to day N (or the curve reached
  0), else not, with the reason: past the last follow-up S is not known;
  a difference without an estimate says which arm has nobody evaluable;
* `time_to_event`: Kaplan–Meier per arm (events after `horizon` censored at
  the horizon), the median, the log-rank test across every arm, and one per
  compared pair (`survival`).

Which arms are compared: each arm against `reference`, or the two arms of
`compare`, or, in a two-arm trial, the first against the second. A
participant without an arm (not allocated) is counted, never analysed.

What this module does not do: read outcomes out of records. The
endpoints' `event`, `event_at` and `censor_at` are expressions over the
records; evaluating them is the expression interpreter's (docs/engine.md),
which hands this module `Outcome`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from . import proportions, stats, survival
from .proportions import Proportion

KINDS = ("paired_change", "proportion", "mortality", "time_to_event")


@dataclass(frozen=True)
class Outcome:
    """One participant's outcome for one endpoint.

    `met`: a proportion endpoint's event happened (None: not known).
    `pending`: the endpoint's day is not over for the participant yet (not yet
    evaluable: neither k nor n, whatever `met` says).
    `time`/`event`: days from the endpoint's origin to the event (`event`
    True) or to the last time the participant was known free of it (False);
    None when nothing is recorded. `before`/`after`: a paired endpoint's values.
    """

    arm: str | None
    met: bool | None = None
    pending: bool = False
    time: float | None = None
    event: bool = False
    before: float | None = None
    after: float | None = None


@dataclass(frozen=True)
class Settings:
    level: float = 0.95
    proportion_ci: str = "wilson"
    difference_ci: str = "newcombe"
    survival_ci: str = "log-log"
    paired_test: str = "wilcoxon-exact"
    zeros: str = "wilcox"
    quartiles: str = "hf6"

    @classmethod
    def of(cls, analysis: Mapping[str, Any]) -> Settings:
        return cls(
            quartiles=analysis.get("quartiles", "hf6"),
            level=float(analysis.get("ci_level", 0.95)),
            proportion_ci=analysis.get("proportion_ci", "wilson"),
            difference_ci=analysis.get("difference_ci", "newcombe"),
            survival_ci=analysis.get("survival_ci", "log-log"),
            paired_test=analysis.get("paired_test", "wilcoxon-exact"),
            zeros=analysis.get("zero_differences", "wilcox"),
        )


def comparisons(endpoint: Mapping[str, Any], arms: Sequence[str]) -> list[tuple[str, str]]:
    """(arm, against) pairs the endpoint compares."""
    if "reference" in endpoint:
        ref = endpoint["reference"]
        return [(a, ref) for a in arms if a != ref]
    if "compare" in endpoint:
        a, b = endpoint["compare"]
        return [(a, b)]
    return [(arms[0], arms[1])] if len(arms) == 2 else []


def _split(arms: Sequence[str], outcomes: Iterable[Outcome]) -> tuple[dict[str, list[Outcome]], int]:
    by: dict[str, list[Outcome]] = {a: [] for a in arms}
    unassigned = 0
    for o in outcomes:
        if o.arm is None:
            unassigned += 1
        elif o.arm in by:
            by[o.arm].append(o)
        else:
            raise ValueError(f"arm {o.arm!r} is not an arm of the protocol ({', '.join(arms)})")
    return by, unassigned


class PairedArm(TypedDict):
    """One arm of a `paired_change` endpoint: before and after, how many improved, and the tests."""

    n: int
    pairs: int
    before: stats.Description
    """Of the participants with both values (as `after`)."""
    after: stats.Description
    improved: int
    """Participants whose value moved strictly in the endpoint's favourable direction."""
    kruskal: stats.Kruskal
    """Every value used before against every value used after (a participant with one of them counts)."""
    wilcoxon: stats.SignedRankJson


class ProportionArm(proportions.ProportionJson):
    """One arm of a `proportion` endpoint."""

    unknown: int
    """Participants whose event is not known (left out of k/n)."""
    day: int | None
    """The endpoint's day (None: read whenever the report is made)."""
    not_yet_evaluable: int
    """Participants whose day `day` is not over yet (left out of k/n; 0 without a day)."""


class KmPoint(TypedDict):
    estimate: float
    lower: float
    upper: float


class MortalityArm(proportions.ProportionJson):
    """One arm of a `mortality` endpoint: dead by `day` of those known, and the Kaplan–Meier estimate."""

    day: int
    censored_before_day: int
    no_follow_up: int
    kaplan_meier: KmPoint | None
    kaplan_meier_reason: str
    """Why there is no Kaplan–Meier estimate at `day` ("" when there is one): nobody followed, or nobody
    followed to the day while the curve is above 0 (the estimate past the last follow-up is not known)."""


class SurvivalArm(survival.KaplanMeierJson):
    """One arm of a `time_to_event` endpoint."""

    no_follow_up: int


class DifferenceComparison(proportions.Difference):
    """Two arms of a proportion or mortality endpoint compared."""

    arm: str
    against: str


class LogRankComparison(TypedDict):
    """Two arms of a time-to-event endpoint compared."""

    arm: str
    against: str
    log_rank: survival.LogRankJson


class _TimeToEvent(TypedDict):
    horizon_days: float | None
    arms: dict[str, SurvivalArm]
    log_rank: survival.LogRankJson
    """Every arm at once: are the curves all alike?"""
    comparisons: list[LogRankComparison]


class _EndpointParts(TypedDict, total=False):
    """What an endpoint's result holds by its kind (`analyse`)."""

    arms: dict[str, PairedArm] | dict[str, ProportionArm] | dict[str, MortalityArm] | dict[str, SurvivalArm]
    comparisons: list[DifferenceComparison] | list[LogRankComparison]
    horizon_days: float | None
    log_rank: survival.LogRankJson


class EndpointResult(_EndpointParts):
    """One endpoint's results per arm, its comparisons, and what was left out (`analyse`; the endpoints
    report's writers)."""

    code: str
    kind: str
    """paired_change, proportion, mortality or time_to_event."""
    primary: bool
    not_assigned: int
    level: float


def analyse(
    endpoint: Mapping[str, Any], arms: Sequence[str], outcomes: Iterable[Outcome], settings: Settings
) -> EndpointResult:
    """One endpoint's results per arm, its comparisons, and what was left out and why."""
    kind = endpoint.get("kind", "paired_change")
    if kind not in KINDS:
        raise ValueError(f"endpoint kind {kind!r}: one of {', '.join(KINDS)}")
    by, unassigned = _split(arms, outcomes)
    out: EndpointResult = {
        "code": endpoint.get("code") or f"{endpoint.get('form')}.{endpoint.get('field')}",
        "kind": kind,
        "primary": bool(endpoint.get("primary")),
        "not_assigned": unassigned,
        "level": settings.level,
    }
    if kind == "paired_change":
        improves = str(endpoint.get("improves", "down"))
        out["arms"] = {a: paired_arm(os, improves, settings) for a, os in by.items()}
        return out
    if kind == "time_to_event":
        tte = _time_to_event(endpoint, arms, by, settings)
        out["horizon_days"], out["arms"] = tte["horizon_days"], tte["arms"]
        out["log_rank"], out["comparisons"] = tte["log_rank"], tte["comparisons"]
        return out
    props: dict[str, tuple[Proportion, ProportionArm]] | dict[str, tuple[Proportion, MortalityArm]]
    day = int(endpoint["day"]) if "day" in endpoint else None
    if kind == "proportion":
        props = {a: _proportion(os, day, settings) for a, os in by.items()}
        out["arms"] = {a: p[1] for a, p in props.items()}
    else:
        props = {a: _mortality(os, int(endpoint["day"]), settings) for a, os in by.items()}
        out["arms"] = {a: p[1] for a, p in props.items()}
    compared: list[DifferenceComparison] = []
    for a, b in comparisons(endpoint, arms):
        diff = proportions.difference(props[a][0], props[b][0], settings.level, settings.difference_ci)
        if diff["estimate"] is None:  # which arm has nobody evaluable, and why
            diff["reason"] = "; ".join(
                no_estimate(x, len(by[x]), _waiting_day(kind, day, by[x]))
                for x in (a, b)
                if props[x][0].n == 0
            )
        compared.append(DifferenceComparison(arm=a, against=b, **diff))
    out["comparisons"] = compared
    return out


def no_estimate(arm: str | None, participants: int, day: int | None) -> str:
    """Why a group gives no proportion (`arm` None: every participant): it has nobody, or nobody of it is
    evaluable at `day` (mortality) or has a known outcome (proportion) yet."""
    of = f" of {arm}" if arm else ""
    if participants == 0:
        return f"{arm} has no participant" if arm else "no participant"
    if day is not None:
        return f"no participant{of} evaluable at day {day} yet"
    return f"no participant{of} with a known outcome yet"


def _waiting_day(kind: str, day: int | None, os: Sequence[Outcome]) -> int | None:
    """The day a group's participants wait for (`no_estimate`): mortality's; a proportion's when one of them
    is not yet evaluable at it (else their outcome is what is missing)."""
    if kind == "mortality" or any(o.pending for o in os):
        return day
    return None


def _proportion(
    os: Sequence[Outcome], day: int | None, settings: Settings
) -> tuple[Proportion, ProportionArm]:
    """k of n of the participants evaluable (their day over, the event known): an event not recorded before
    the day is not yet false, so a participant before it is in neither k nor n."""
    ready = [o for o in os if not o.pending]
    known = [bool(o.met) for o in ready if o.met is not None]
    p = Proportion(sum(known), len(known), settings.level, settings.proportion_ci)
    return p, ProportionArm(
        **p.as_json(), unknown=len(ready) - len(known), day=day, not_yet_evaluable=len(os) - len(ready)
    )


def _mortality(os: list[Outcome], day: int, settings: Settings) -> tuple[Proportion, MortalityArm]:
    followed = [(float(o.time), o.event) for o in os if o.time is not None]
    dead = sum(1 for t, e in followed if e and t <= day)
    alive = sum(1 for t, e in followed if not (e and t <= day) and t >= day)
    known = dead + alive
    p = Proportion(dead, known, settings.level, settings.proportion_ci)
    km = survival.kaplan_meier(
        [t for t, _ in followed], [e for _, e in followed], settings.level, settings.survival_ci
    )
    s, lo, hi = km.survival_at(day)
    if not followed:
        why = "nobody followed yet"
    elif s > 0 and max(t for t, _ in followed) < day:  # past the last follow-up S is not known
        why = f"nobody followed to day {day} yet"
    else:
        why = ""
    return p, MortalityArm(
        **p.as_json(),
        day=day,
        censored_before_day=len(followed) - known,
        no_follow_up=len(os) - len(followed),
        kaplan_meier=None if why else KmPoint(estimate=1 - s, lower=1 - hi, upper=1 - lo),
        kaplan_meier_reason=why,
    )


def _time_to_event(
    endpoint: Mapping[str, Any], arms: Sequence[str], by: dict[str, list[Outcome]], settings: Settings
) -> _TimeToEvent:
    from ..engine.model import duration

    horizon = duration(endpoint["horizon"]).total_seconds() / 86400 if "horizon" in endpoint else None
    data: dict[str, tuple[list[float], list[bool]]] = {}
    missing: dict[str, int] = {}
    for a, os in by.items():
        times, events = [], []
        for o in os:
            if o.time is None:
                continue
            beyond = horizon is not None and o.time > horizon
            times.append(horizon if beyond and horizon is not None else float(o.time))
            events.append(o.event and not beyond)
        data[a] = (times, events)
        missing[a] = len(os) - len(times)
    kms = {a: survival.kaplan_meier(t, e, settings.level, settings.survival_ci) for a, (t, e) in data.items()}
    return {
        "horizon_days": horizon,
        "arms": {a: SurvivalArm(**kms[a].as_json(), no_follow_up=missing[a]) for a in arms},
        "log_rank": survival.logrank(data).as_json(),  # every arm: are the curves all alike?
        "comparisons": [
            LogRankComparison(arm=a, against=b, log_rank=survival.logrank({a: data[a], b: data[b]}).as_json())
            for a, b in comparisons(endpoint, arms)
        ],
    }


def paired_arm(os: Sequence[Outcome], improves: str, settings: Settings) -> PairedArm:
    """Before and after of one group of participants: medians (IQR) of those with both values, "improved in
    k of n" (strictly in the `improves` direction, up or down), Kruskal–Wallis of every value before against
    every value after, the signed-rank test of the pairs."""
    both = [(float(o.before), float(o.after)) for o in os if o.before is not None and o.after is not None]
    before = [b for b, _ in both]
    after = [a for _, a in both]
    improved = sum(1 for b, a in both if (a > b if improves == "up" else a < b))
    return {
        "n": len(os),
        "pairs": len(both),
        "before": stats.describe(before, settings.quartiles),
        "after": stats.describe(after, settings.quartiles),
        "improved": improved,
        "kruskal": stats.kruskal(
            {
                "baseline": [float(o.before) for o in os if o.before is not None],
                "post_treatment": [float(o.after) for o in os if o.after is not None],
            }
        ),
        "wilcoxon": stats.signed_rank(
            before, after, test=settings.paired_test, zeros=settings.zeros
        ).as_json(),
    }
