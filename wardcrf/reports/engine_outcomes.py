"""The outcomes report of a format-2 version: every declared endpoint per arm, from its declarations.

`wardcrf report outcomes` on a format-2 ward. What format 1's report
(`reports.outcomes`) takes from code, this one takes from the protocol's
`[analysis]` (docs/protocol.md, "[analysis] and endpoints"):

* the participants table: `[[analysis.characteristics]]`, each a participant
  expression over the analysis population (participants given at least one
  administration): a number, or a duration in days, as median (IQR) by the
  protocol's quartiles; a code, text or yes/no as counts per value;
* every `[[analysis.endpoints]]` per arm, as the endpoints report computes
  it (`engine_endpoints.report`, the one owner of each statistic): the
  `paired_change` ones with format 1's tables (each participant's values
  before and after, the values per visit, the exclusions and why, "improved
  in k of n", Kruskal–Wallis, the Wilcoxon signed-rank test and its plot
  where the endpoint asks for the paired test); proportions and mortality
  by day N as k of n with the interval and the difference between arms;
  time to event as Kaplan–Meier per arm with the log-rank test;
* `[[analysis.series]]`: number fields of a form recorded at declared dose
  assessments (vital signs before and after each administration), drawn per
  participant across the administrations, the values at the `compare`
  assessment compared across administrations by Kruskal–Wallis, per arm.

A protocol that declares none of these gets a report that says so; nothing
is invented. On a blinded ward no result is split by arm (as the endpoints
report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ..engine import interpreter
from ..engine.interpreter import EvalError
from ..errors import Refused
from ..protocol import tr
from . import endpoints, engine_endpoints, outcomes, stats
from .engine_endpoints import Person, Population
from .render import Doc, Table

if TYPE_CHECKING:
    from datetime import datetime

    from ..site import Session

POPULATION = "participants with at least one recorded administration"


class Characteristic(TypedDict, total=False):
    """One row of the participants table: counts per value, or a description of numbers."""

    label: str
    counts: dict[str, int]
    summary: stats.Description
    not_recorded: int


class SeriesArm(TypedDict):
    by_point: dict[str, dict[str, stats.Description]]
    """Each of the series' points (its label: before, after each administration), per administration."""
    by_administration: dict[str, stats.Description]
    """The compared point's values per administration (as `by_point[compared]`)."""
    kruskal: stats.Kruskal
    """The compared point's values across the administrations."""


class Series(TypedDict):
    """One number field across the administrations (`[[analysis.series]]`)."""

    code: str
    title: str
    """The declaration's label (or code): the section the series is shown in."""
    label: str
    field: str
    unit: str
    points: list[str]
    """The dose assessments drawn per administration, in order (their labels)."""
    compared: str
    axis: str
    """The plots' horizontal axis title: the declaration's `axis`, else "administration (POINT / POINT)"."""
    administrations: int
    arms: dict[str, SeriesArm]
    participants: dict[str, list[float | None]]
    """Per participant: administration 1's points, then administration 2's, ..."""


class ProtocolHead(TypedDict):
    id: str
    version: str
    title: str


class ArmRef(TypedDict):
    code: str
    label: str


class _MarkerArm(TypedDict):
    n: int
    before: stats.Description
    after: stats.Description
    improved: int
    n_paired: int
    summary: str
    kruskal: stats.Kruskal


class MarkerArm(_MarkerArm, total=False):
    """One arm of a paired endpoint, in format 1's words (`wilcoxon` where the endpoint asks for the test)."""

    wilcoxon: stats.SignedRankJson


class _Marker(TypedDict):
    key: str
    code: str
    form: str
    label: str
    unit: str
    improves: str
    primary: bool
    paired_test: bool
    participants: list[engine_endpoints.PairedParticipant]
    values: dict[str, outcomes.VisitCounts]
    excluded: list[engine_endpoints.PairedValue]
    not_assigned: int
    arms: dict[str, MarkerArm]


class Marker(_Marker, total=False):
    """A paired endpoint as format 1's report shows it: per arm under `arms`; a single-arm trial's one arm
    also at the top level, with format 1's keys."""

    before: stats.Description
    after: stats.Description
    improved: int
    n_paired: int
    summary: str
    kruskal: stats.Kruskal
    wilcoxon: stats.SignedRankJson


class LabelledEndpoint(endpoints.EndpointResult):
    """An endpoint of another kind, as `report endpoints` gives it, with its label."""

    label: str


class OutcomesReport(TypedDict):
    """`wardcrf report outcomes` on a format-2 version (`compute`; `document` writes it)."""

    protocol: ProtocolHead
    format: int
    site: str
    source: str
    at: str
    population: str
    arms: list[ArmRef]
    blinded: bool
    enrolled: int
    methods: dict[str, Any]
    demographics: dict[str, Any]
    """`n`, `characteristics` (in declared order), `by_arm` with several arms, and each characteristic
    under its code (format 1's keys): keyed by the protocol's codes."""
    markers: list[Marker]
    endpoints: list[LabelledEndpoint]
    series: list[list[Series]]


def compute(
    session: Session,
    *,
    quartiles: str | None = None,
    paired_test: str | None = None,
    at: datetime | None = None,
) -> OutcomesReport:
    """Every number of the outcomes report of the active format-2 version, as data (the JSON output)."""
    if quartiles is not None and quartiles not in stats.QUARTILE_METHODS:
        raise Refused(f"unknown quartile method {quartiles!r} (allowed: {', '.join(stats.QUARTILE_METHODS)})")
    pop = engine_endpoints.read(session, at, quartiles=quartiles, paired_test=paired_test)
    plan = pop.proto.analysis
    overridden = []
    if quartiles and quartiles != plan.quartiles:
        overridden.append(f"quartiles {quartiles} (protocol: {plan.quartiles})")
    if paired_test and paired_test != plan.paired_test:
        overridden.append(f"paired test {paired_test} (protocol: {plan.paired_test})")
    report = engine_endpoints.report(pop)
    analysed = [p for p in pop.people if engine_endpoints.given_dates(pop, p)]
    analysis = pop.model.data.get("analysis", {})
    labels = {_code(ep): _text(ep.get("label")) for ep in analysis.get("endpoints", ())}
    markers: list[Marker] = []
    others: list[LabelledEndpoint] = []
    for result in report["endpoints"]:
        label = labels.get(result["code"], "")
        if result["kind"] == "paired_change":
            markers.append(_marker(pop, cast("engine_endpoints.PairedEndpoint", result), label))
        else:
            other = cast("endpoints.EndpointResult", result)
            others.append(LabelledEndpoint(**other, label=label or result["code"]))
    methods = outcomes.methods(pop.proto, pop.settings.quartiles, pop.settings.paired_test, overridden)
    methods.update(report["methods"])
    return {
        "protocol": {"id": pop.proto.id, "version": pop.proto.version, "title": tr(pop.proto.title)},
        "format": 2,
        "site": str(session.store.scalar("SELECT site FROM site WHERE id = 1") or ""),
        "source": "hub" if session.store.scalar("SELECT kind FROM site WHERE id = 1") == "hub" else "ward",
        "at": report["at"],
        "population": POPULATION,
        "arms": [
            {"code": str(a.get("code")), "label": _text(a.get("label")) or str(a.get("code"))}
            for a in pop.model.data.get("arms", ())
        ],
        "blinded": pop.blinded,
        "enrolled": sum(1 for p in pop.people if p.enrolled),
        "methods": methods,
        "demographics": _demographics(pop, analysed, analysis.get("characteristics", ())),
        "markers": markers,
        "endpoints": others,
        "series": [_series(pop, analysed, s) for s in analysis.get("series", ())],
    }


def _code(ep: Mapping[str, Any]) -> str:
    return str(ep.get("code") or f"{ep.get('form')}.{ep.get('field')}")


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return tr(dict(value))
    return str(value) if value else ""


# -- the participants table ----------------------------------------------------------------------


def _demographics(
    pop: Population, analysed: list[Person], declared: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(analysed), "characteristics": []}
    groups: dict[str, list[Person]] = {"all": analysed}
    if len(pop.arms) > 1 and not pop.blinded:  # blinded: no arm is known on the ward
        out["by_arm"] = {a: {"n": sum(1 for p in analysed if p.arm == a)} for a in pop.arms}
        for a in pop.arms:
            groups[a] = [p for p in analysed if p.arm == a]
    for item in declared:
        code, label = str(item["code"]), _text(item.get("label")) or str(item["code"])
        values = {p.id: _characteristic_value(pop, item, p) for p in analysed}
        for group, people in groups.items():
            row = _describe([values[p.id] for p in people], pop.settings.quartiles, label)
            if group == "all":
                out[code] = row.get("counts", row.get("summary"))
                out["characteristics"].append({"code": code, **row})
            else:
                out["by_arm"][group][code] = row
    return out


def _characteristic_value(pop: Population, item: Mapping[str, Any], person: Person) -> Any:
    try:
        v = interpreter.value_of(str(item["value"]), person.snap)
    except EvalError as exc:
        raise Refused(
            f"{pop.model.id} {pop.model.version}: characteristic {item['code']}: {exc}; nothing was written"
        ) from None
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, Decimal | int | float):
        return float(v)
    if isinstance(v, timedelta):
        return v.total_seconds() / 86400
    raise Refused(
        f"{pop.model.id} {pop.model.version}: characteristic {item['code']} gives {interpreter.show(v)!r}:"
        " a characteristic is a number, a duration (shown in days), a code, text or yes/no"
    )


def _describe(values: list[Any], quartiles: str, label: str) -> Characteristic:
    given = [v for v in values if v is not None]
    row: Characteristic = {"label": label, "not_recorded": len(values) - len(given)}
    if given and all(isinstance(v, float) for v in given):
        row["summary"] = stats.describe(given, quartiles)
        return row
    if not given:
        row["summary"] = stats.describe([], quartiles)
        return row
    shown = ["yes" if v is True else "no" if v is False else str(v) for v in given]
    row["counts"] = {k: shown.count(k) for k in sorted(set(shown))}
    return row


# -- paired endpoints: format 1's tables, per arm --------------------------------------------------


def _marker(pop: Population, result: engine_endpoints.PairedEndpoint, label: str) -> Marker:
    """A paired endpoint as format 1's report shows it; per arm under `arms`, and a single-arm trial's one
    arm also at the top level (format 1's keys)."""
    spec = next(
        e for e in pop.proto.analysis.endpoints if (e.form, e.field) == (result["form"], result["field"])
    )
    arms: dict[str, MarkerArm] = {}
    for arm, x in cast("dict[str, endpoints.PairedArm]", result.get("arms") or {}).items():
        one: MarkerArm = {
            "n": x["n"],
            "before": x["before"],
            "after": x["after"],
            "improved": x["improved"],
            "n_paired": x["pairs"],
            "summary": f"{result['improves']} in {x['improved']} of {x['pairs']}",
            "kruskal": x["kruskal"],
        }
        if spec.paired_test:
            one["wilcoxon"] = x["wilcoxon"]
        arms[arm] = one
    entry: Marker = {
        "key": result["field"],
        "code": result["code"],
        "form": result["form"],
        "label": label or tr(spec.label),
        "unit": result["unit"],
        "improves": result["improves"],
        "primary": result["primary"],
        "paired_test": spec.paired_test,
        "participants": result["participants"],
        "values": result["values"],
        "excluded": result["excluded"],
        "not_assigned": result["not_assigned"],
        "arms": arms,
    }
    if len(pop.arms) == 1 and not pop.blinded:
        only = arms[pop.arms[0]]
        entry["before"], entry["after"], entry["kruskal"] = only["before"], only["after"], only["kruskal"]
        entry["improved"], entry["n_paired"], entry["summary"] = (
            only["improved"],
            only["n_paired"],
            only["summary"],
        )
        if "wilcoxon" in only:
            entry["wilcoxon"] = only["wilcoxon"]
    return entry


# -- series across the administrations -------------------------------------------------------------


def _series(pop: Population, analysed: list[Person], item: Mapping[str, Any]) -> list[Series]:
    """One `Series` per field of a `[[analysis.series]]` declaration."""
    from ..engine import due

    m = pop.model
    assessments = {str(a.get("code")): a for a in m.data.get("dose_assessments", ())}
    points = [assessments[str(c)] for c in item["points"]]
    compare = assessments[str(item["compare"])]
    n_adm = max((due.planned(m, a) for a in pop.arms), default=0)
    fields = (m.data.get("forms", {}).get(item["form"], {}) or {}).get("fields", {})
    width = len(points) * n_adm
    out: list[Series] = []
    for name in item["fields"]:
        spec = fields.get(name, {})
        series: dict[str, list[float | None]] = {}
        compared: dict[str, dict[int, float]] = {}
        at_points: dict[
            str, list[dict[int, float]]
        ] = {}  # per participant, per point: administration -> value
        for person in analysed:
            row: list[float | None] = [None] * width
            at_compare: dict[int, float] = {}
            per_point: list[dict[int, float]] = [{} for _ in points]
            for rec in person.snap.records.get(str(item["form"]), ()):
                x = rec.values.get(name)
                if not isinstance(x, Decimal | int | float) or isinstance(x, bool):
                    continue
                for j, a in enumerate(points):
                    n = _linked(pop, a, rec, person)
                    if n is not None and 1 <= n <= n_adm:
                        row[(n - 1) * len(points) + j] = float(x)
                        per_point[j][n] = float(x)
                n = _linked(pop, compare, rec, person)
                if n is not None and 1 <= n <= n_adm:
                    at_compare[n] = float(x)
            if any(v is not None for v in row):
                series[person.id] = row
            compared[person.id] = at_compare
            at_points[person.id] = per_point
        arms: dict[str, SeriesArm] = {}
        for arm in pop.arms if not pop.blinded else ["all"]:
            people = [p for p in analysed if pop.blinded or p.arm == arm]
            groups = {
                f"administration {n}": [compared[p.id][n] for p in people if n in compared[p.id]]
                for n in range(1, n_adm + 1)
            }
            across = outcomes.across_groups(groups, pop.settings.quartiles)
            by_point = {
                _point_label(a): {
                    f"administration {n}": stats.describe(
                        [at_points[p.id][j][n] for p in people if n in at_points[p.id][j]],
                        pop.settings.quartiles,
                    )
                    for n in range(1, n_adm + 1)
                }
                for j, a in enumerate(points)
            }
            arms[arm] = {
                "by_point": by_point,
                "by_administration": across["by_group"],
                "kruskal": across["kruskal"],
            }
        out.append(
            {
                "code": str(item["code"]),
                "title": _text(item.get("label")) or str(item["code"]),
                "label": _text(spec.get("label")) or name,
                "field": name,
                "unit": str(spec.get("unit") or ""),
                "points": [_point_label(a) for a in points],
                "compared": _point_label(compare),
                "axis": _text(item.get("axis"))
                or f"administration ({' / '.join(_point_label(a) for a in points)})",
                "administrations": n_adm,
                "arms": arms,
                "participants": series,
            }
        )
    return out


def _point_label(assessment: Mapping[str, Any]) -> str:
    """A dose assessment as the series names it: its label, or its code."""
    return _text(assessment.get("label")) or str(assessment.get("code"))


def _linked(pop: Population, assessment: Mapping[str, Any], rec: Any, person: Person) -> int | None:
    """The administration number a record of the assessment names, or None when it is not one of its
    records (its `match` does not hold) or names none."""
    match = assessment.get("match")
    try:
        if match and interpreter.truth(str(match), person.snap.with_record(rec)) is not True:
            return None
    except EvalError as exc:
        raise Refused(
            f"{pop.model.id} {pop.model.version}: dose assessment {assessment.get('code')}: {exc}"
        ) from None
    n = rec.values.get(str(assessment.get("link", "")))
    return int(n) if isinstance(n, Decimal | int) and not isinstance(n, bool) else None


# -- the document ----------------------------------------------------------------------------------


def _arm_label(data: Mapping[str, Any], code: str) -> str:
    """An arm as the tables name it: its code (the Participants section spells each out once); a blinded
    ward's one group of every participant (`engine_endpoints.ALL`) in words."""
    return "all participants" if code == engine_endpoints.ALL else code


def document(data: Mapping[str, Any]) -> Doc:
    """The report as a document (Markdown, HTML): format 1's tables, per arm, and every other endpoint."""
    from . import svg

    several = len(data["arms"]) > 1
    doc = Doc(
        f"Outcomes — {data['protocol']['id']} version {data['protocol']['version']}",
        f"{data['protocol']['title']}. Computed by wardcrf from the records on {data['source']} "
        f"{data['site']} as of {data['at']}; population: {data['population']} "
        f"({data['demographics']['n']} of {data['enrolled']} enrolled).",
    )
    m = data["methods"]
    s = doc.section("Methods")
    s.text += [f"Methods from the {m['source']}.", f"Continuous variables: {m['summary']}."]
    if data["markers"]:
        s.text += [
            *(f"Visit window, {t}." for t in m["windows"].values()),
            *(f"Incomplete measurements, {t}." for t in m["incomplete"].values()),
            "Per participant before and after; 'improved' means strictly in the endpoint's favourable "
            "direction (stated per endpoint); a participant counts when both values exist.",
            f"Paired endpoints before vs after: {m['paired']}; two-sided.",
        ]
    if data["markers"] or data["series"]:
        s.text.append(
            "Endpoints across time points and measures across administrations: Kruskal–Wallis H test "
            "(tie-corrected)."
        )
    if data["endpoints"]:
        s.text.append(
            f"Proportions: {m['proportion_ci']} interval at {m['ci_level']:g} confidence; differences between "
            f"arms: {m['difference_ci']} interval; time to event: Kaplan–Meier ({m['survival_ci']} interval), "
            "log-rank test."
        )
    s.text.append("P-values below 0.0001 are given as p < 0.0001.")
    if data["blinded"]:
        doc.section("Blinded").text.append(
            "The trial is blinded on this ward: no result is split by arm (the hub analyses after unblinding)."
        )
    _participants(doc, data, several)
    if data["markers"]:
        _paired_sections(doc, data, several, svg)
    for ep in data["endpoints"]:
        _endpoint_section(doc, data, ep)
    for group in data["series"]:
        _series_section(doc, data, group, several, svg)
    if not (data["markers"] or data["endpoints"] or data["series"]):
        doc.section("Endpoints").text.append(
            "The protocol declares no endpoint, characteristic or series in [analysis]: nothing is analysed."
        )
    return doc


def _participants(doc: Doc, data: Mapping[str, Any], several: bool) -> None:
    d = data["demographics"]
    s = doc.section("Participants")
    if several:
        s.text.append("Arms: " + "; ".join(f"{a['code']}, {a['label']}" for a in data["arms"]) + ".")
    arms = [a["code"] for a in data["arms"]] if several and "by_arm" in d else []
    head = (
        ["characteristic", "all", *(_arm_label(data, a) for a in arms)]
        if arms
        else ["characteristic", "value"]
    )
    rows: list[list[Any]] = [["participants", d["n"], *(d["by_arm"][a]["n"] for a in arms)]]
    for c in d["characteristics"]:
        rows.append([c["label"], _shown(c), *(_shown(d["by_arm"][a][c["code"]]) for a in arms)])
    s.tables.append(Table(head, rows))


def _shown(c: Mapping[str, Any]) -> str:
    if "counts" in c:
        text = ", ".join(f"{k}: {v}" for k, v in c["counts"].items()) or "—"
    else:
        text = outcomes.miqr(c["summary"])
    return text + (f" ({c['not_recorded']} not recorded)" if c.get("not_recorded") else "")


def _paired_sections(doc: Doc, data: Mapping[str, Any], several: bool, svg: Any) -> None:
    s = doc.section("Before and after treatment")
    rows = []
    for e in data["markers"]:
        word = "up" if e["improves"] == "up" else "down"
        for arm, x in e["arms"].items():
            rows.append(
                [
                    e["label"],
                    *([_arm_label(data, arm)] if several else []),
                    e["unit"],
                    outcomes.miqr(x["before"]),
                    outcomes.miqr(x["after"]),
                    f"{word} (improved) in {x['improved']} of {x['n_paired']}",
                    outcomes.kw_text(x["kruskal"]),
                ]
            )
    s.tables.append(
        Table(
            [
                "endpoint",
                *(["arm"] if several else []),
                "unit",
                "before median (IQR)",
                "after median (IQR)",
                "participants",
                "Kruskal–Wallis",
            ],
            rows,
        )
    )
    outcomes.paired_tables(s, data["markers"])
    arm_of = {}
    for e in data["markers"]:
        arm_of.update({r["participant"]: r.get("arm") for r in e["participants"]})
    for e in data["markers"]:
        if not e["paired_test"]:
            continue
        sec = doc.section(e["label"])
        for arm, x in e["arms"].items():
            w = x["wilcoxon"]
            who = f"{_arm_label(data, arm)}: " if several else ""
            if w.get("p") is not None:
                sec.text.append(
                    f"{who}Median {x['before']['median']:.4g} before and {x['after']['median']:.4g} after; "
                    f"Wilcoxon signed-rank W = {w['statistic']:.4g} (W+ = {w['w_plus']:.4g}, "
                    f"W− = {w['w_minus']:.4g}), {w['p_text']} ({w['n_nonzero']} non-zero of {w['n_pairs']} "
                    f"pairs; {w['method']})."
                )
            else:
                sec.text.append(f"{who}{w['method']}.")
        sec.svgs.append(
            svg.before_after(
                f"{e['label']} per participant",
                {
                    (f"{r['participant']} ({r['arm']})" if several and r.get("arm") else r["participant"]): (
                        r["before"],
                        r["after"],
                    )
                    for r in e["participants"]
                    if r["before"] is not None and r["after"] is not None
                },
                e["unit"],
                x_title="timepoint (baseline / after treatment)",
                y_title=f"{e['label']} ({e['unit']})" if e["unit"] else e["label"],
            )
        )


def _endpoint_section(doc: Doc, data: Mapping[str, Any], ep: Mapping[str, Any]) -> None:
    kind = ep["kind"]
    sec = doc.section(f"{ep['label']} ({kind.replace('_', ' ')}{', primary' if ep.get('primary') else ''})")
    level = f"{ep['level'] * 100:g}% CI"
    arms = ep.get("arms") or {}
    if kind in ("proportion", "mortality"):
        head = ["arm", "k of n", "proportion", level]
        if kind == "mortality":
            head += ["censored alive before the day", "no follow-up", f"Kaplan–Meier 1 − S, {level}"]
        else:
            head += ["not known"]
        day = arms and next(iter(arms.values())).get("day")
        if kind == "proportion" and day:
            head += [f"not yet evaluable (day {day} not over)"]
        rows = []
        for arm, x in arms.items():
            row = [_arm_label(data, arm), f"{x['k']} of {x['n']}", _pct(x.get("estimate")), _ci(x)]
            if kind == "mortality":
                km = x.get("kaplan_meier")
                row += [
                    x["censored_before_day"],
                    x["no_follow_up"],
                    f"{_pct(km['estimate'])} ({_pct(km['lower'])}–{_pct(km['upper'])})"
                    if km
                    else f"not estimable: {x.get('kaplan_meier_reason') or 'nobody followed yet'}",
                ]
            else:
                row.append(x["unknown"])
                if day:
                    row.append(x.get("not_yet_evaluable", 0))
            rows.append(row)
        caption = f"by day {day}" if kind == "mortality" else f"at day {day}" if day else ""
        sec.tables.append(Table(head, rows, caption=caption))
        comp = [
            [
                f"{_arm_label(data, c['arm'])} − {_arm_label(data, c['against'])}",
                _pct(c.get("estimate")),
                _ci(c),
                c.get("method", "") if c.get("estimate") is not None else c.get("reason") or "not computed",
            ]
            for c in ep.get("comparisons") or []
        ]
        if comp:
            sec.tables.append(
                Table(["difference", "estimate", level, "method"], comp, caption="Between arms")
            )
    elif kind == "time_to_event":
        rows = [
            [
                _arm_label(data, arm),
                x["n"],
                x["events"],
                x["n"] - x["events"],
                x.get("no_follow_up", 0),
                _num(x["median"])
                if x.get("median") is not None
                else "not reached"
                if x["n"]
                else "not estimable: nobody followed yet",
            ]
            for arm, x in arms.items()
        ]
        horizon = ep.get("horizon_days")
        sec.tables.append(
            Table(
                ["arm", "participants", "events", "censored", "no follow-up", "median, days"],
                rows,
                caption=f"Kaplan–Meier per arm{f', to day {horizon:g}' if horizon else ''}",
            )
        )
        if len(arms) > 1:  # a blinded ward's one group: nothing to compare
            sec.text.append(f"Log-rank test across every arm: {_logrank(ep.get('log_rank') or {})}.")
        for c in ep.get("comparisons") or []:
            sec.text.append(
                f"{_arm_label(data, c['arm'])} vs {_arm_label(data, c['against'])}: {_logrank(c['log_rank'])}."
            )
    if not data["blinded"]:
        sec.text.append(f"Not assigned to an arm: {ep.get('not_assigned', 0)}.")


def _series_section(
    doc: Doc, data: Mapping[str, Any], group: list[Mapping[str, Any]], several: bool, svg: Any
) -> None:
    if not group:
        return
    first = group[0]
    s = doc.section(first["title"])
    rows = []
    for x in group:
        for arm, a in x["arms"].items():
            by_point = a.get("by_point") or {x["compared"]: a["by_administration"]}
            for point, values in by_point.items():
                rows.append(
                    [
                        x["label"],
                        *([_arm_label(data, arm)] if several else []),
                        x["unit"],
                        point,
                        ", ".join(f"{g}: {outcomes.miqr(d)}" for g, d in values.items() if d["n"])
                        or "no values yet",
                        outcomes.kw_text(a["kruskal"])
                        if point == x["compared"]
                        else f"not compared (the protocol compares {x['compared']})",
                    ]
                )
    s.text.append(
        f"Median (IQR) per administration at each point; Kruskal–Wallis compares the values "
        f"{first['compared']} across the administrations."
    )
    s.tables.append(
        Table(
            [
                "measure",
                *(["arm"] if several else []),
                "unit",
                "when",
                "median (IQR) per administration",
                "Kruskal–Wallis across administrations",
            ],
            rows,
        )
    )
    labels = [
        f"{n}" if j == 0 else ""
        for n in range(1, first["administrations"] + 1)
        for j in range(len(first["points"]))
    ]
    for x in group:
        s.svgs.append(
            svg.lines(
                x["label"],
                labels,
                x["participants"],
                x["unit"],
                x_title=x["axis"],
                y_title=f"{x['label']} ({x['unit']})" if x["unit"] else x["label"],
            )
        )


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.1f}%"


def _ci(x: Mapping[str, Any]) -> str:
    lo, hi = x.get("lower"), x.get("upper")
    return "—" if lo is None or hi is None else f"{_pct(lo)} to {_pct(hi)}"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _logrank(lr: Mapping[str, Any]) -> str:
    if lr.get("p") is None:
        return f"not computed ({lr.get('reason') or 'no events'})"
    return f"chi-square {lr['statistic']:.3f} on {lr['df']} df, {stats.format_p(lr['p'])}"
