"""The paper's analyses, recomputed from what was recorded (never from typed totals or entry order).

The methods are the protocol's (``[analysis]``, `wardcrf.protocol_analysis`),
stated again in every report, and can be overridden for a sensitivity
analysis (`compute(..., quartiles=, paired_test=)`, the report then says so):

* continuous variables: median and interquartile range, quartiles by the
  protocol's Hyndman–Fan type (`stats.QUARTILE_METHODS`);
* endpoints before and after treatment, per participant, with "improved in
  k of n" (a participant counts when both values exist; improved means
  strictly in the endpoint's favourable direction);
* which value is "before" and which "after" is decided by the visit windows:
  a value labelled for the visit, sampled within the window around the
  participant's first or last dose (by sample date), after the full regimen
  when the window asks for it; among several, the latest (or earliest)
  sample date. Values outside the window, before the regimen was complete,
  without a sample date, or incomplete (not-evaluable parts, by the
  endpoint's rule) are excluded and listed with the reason; the counts of
  values used and excluded are shown;
* paired endpoints: Wilcoxon signed-rank, exact conditional distribution
  with ties by default (`stats.signed_rank`);
* endpoints across time points (baseline vs after treatment) and vital
  signs across the dosing days: Kruskal–Wallis H.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypedDict

from ..clock import zone
from ..errors import Refused
from ..exports.dataset import Dataset, ProvenancedRecord, number, value_text
from ..protocol import Protocol, tr
from ..protocol_analysis import Endpoint, Window
from . import stats
from .render import Doc, Section, Table


def vital_signs(proto: Protocol) -> tuple[set[str], list[tuple[str, str]]]:
    """The forms and (field, label) of the vital signs followed over the dosing days: every number field
    that declares a vital-sign test (`cdisc = "VSTESTCD=..."`), labelled as the protocol labels it."""
    forms: set[str] = set()
    fields: dict[str, str] = {}
    for form in proto.forms.values():
        for fd in form.fields.values():
            if fd.cdisc and fd.cdisc.startswith("VSTESTCD=") and fd.type in ("number", "integer"):
                forms.add(form.name)
                fields.setdefault(fd.name, tr(fd.label))
    return forms, list(fields.items())


@dataclass
class _Participant:
    pid: str
    sex: str | None = None
    age: float | None = None
    onset_to_admission: float | None = None
    onset_to_first_dose: float | None = None
    dose_dates: list[date] = field(default_factory=list)  # local dates of the recorded doses, in time order


def _local_date(value: Any, tz: str) -> date | None:
    """A stored date or datetime as the ward's calendar date (a datetime with an offset is converted)."""
    t = value_text(value)
    if not t:
        return None
    try:
        if "T" in t:
            dt = datetime.fromisoformat(t)
            return dt.astimezone(zone(tz)).date() if dt.tzinfo else dt.date()
        return date.fromisoformat(t)
    except ValueError:
        return None


def _last(recs: list[ProvenancedRecord], form: str) -> ProvenancedRecord | None:
    found = [r for r in recs if r.form == form]
    return found[-1] if found else None


@dataclass
class _Value:
    participant: str
    record: str
    visit: str
    sampled: date | None
    value: float
    note: str = ""  # e.g. "prorated from 17 of 18 evaluable segments"


@dataclass
class _Selection:
    """One endpoint's values per visit: the one used per participant, and every exclusion with its reason."""

    used: dict[str, dict[str, _Value]] = field(default_factory=lambda: {"baseline": {}, "post_treatment": {}})
    excluded: list[dict[str, Any]] = field(default_factory=list)
    not_selected: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "post_treatment": 0})
    candidates: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "post_treatment": 0})


def _exclude(sel: _Selection, v: _Value, reason: str) -> None:
    sel.excluded.append(
        {
            "participant": v.participant,
            "record": v.record,
            "visit": v.visit,
            "date": v.sampled.isoformat() if v.sampled else None,
            "value": v.value,
            "reason": reason,
        }
    )


def _window_check(w: Window, p: _Participant, sampled: date, doses_n: int) -> str | None:
    """Why a value sampled on `sampled` does not count for window `w`, or None when it does."""
    given = sum(1 for d in p.dose_dates if d <= sampled)
    if w.regimen_complete and (len(p.dose_dates) < doses_n or given < doses_n):
        return f"before the regimen was complete ({given} of {doses_n} doses given by the sample date)"
    anchor = p.dose_dates[0] if w.relative_to == "first_dose" else p.dose_dates[-1]
    day = (sampled - anchor).days
    lo, hi = w.days
    if not lo <= day <= hi:
        which = "first" if w.relative_to == "first_dose" else "last"
        return f"outside the {w.name.replace('_', '-')} window (day {day:+d} from the {which} dose; window {lo:+d} to {hi:+d})"
    return None


def _select(
    ep: Endpoint,
    windows: dict[str, Window],
    people: dict[str, _Participant],
    recs_by: dict[str, list[ProvenancedRecord]],
    doses_n: int,
    tz: str,
) -> _Selection:
    sel = _Selection()
    by_label = {w.timepoint: w for w in windows.values()}
    for pid, p in people.items():
        valid: dict[str, list[_Value]] = {"baseline": [], "post_treatment": []}
        for rec in recs_by.get(pid, []):
            if rec.form != ep.form:
                continue
            x = number(rec.data.get(ep.field))
            w = by_label.get(value_text(rec.data.get(ep.timepoint_field)))
            if x is None or w is None:
                continue  # no value, or labelled for no analysed visit (e.g. "other")
            sel.candidates[w.name] += 1
            v = _Value(pid, rec.event_id, w.name, _local_date(rec.data.get(ep.date_field), tz), x)
            if v.sampled is None:
                _exclude(sel, v, "no sample date")
                continue
            why = _window_check(w, p, v.sampled, doses_n)
            if why:
                _exclude(sel, v, why)
                continue
            if ep.evaluable is not None:
                ev = ep.evaluable
                got = number(rec.data.get(ev.field))
                what = ev.field.replace("_", " ")
                if got is None or got < ev.of:
                    shown = "unknown" if got is None else f"{int(got)} of {ev.of}"
                    if ev.rule == "exclude" or got is None or got <= 0:
                        _exclude(sel, v, f"incomplete: {shown} {what}")
                        continue
                    if ev.rule == "prorate":
                        if ev.of - got > ev.max_missing:
                            _exclude(
                                sel, v, f"incomplete: {shown} {what} (more than {ev.max_missing} missing)"
                            )
                            continue
                        v.value = round(x * ev.of / got, 2)
                        v.note = f"prorated from {shown} {what} ({x:g} × {ev.of} / {int(got)})"
                    else:
                        v.note = f"used as recorded with {shown} {what}"
            valid[w.name].append(v)
        for visit, values in valid.items():
            if not values:
                continue
            w = windows[visit]
            dates = sorted({v.sampled for v in values if v.sampled})
            chosen_date = dates[-1] if w.pick == "last" else dates[0]
            same = [v for v in values if v.sampled == chosen_date]
            if len({v.value for v in same}) > 1:
                for v in same:
                    _exclude(sel, v, f"conflicting values sampled the same day ({chosen_date.isoformat()})")
                sel.not_selected[visit] += len(values) - len(same)
                continue
            sel.used[visit][pid] = same[-1]
            sel.not_selected[visit] += len(values) - 1
    return sel


# The selection of before/after values, shared with a format-2 ward's paired endpoints (`engine_endpoints`).
Participant = _Participant
Selection = _Selection
select = _select


def endpoint_unit(ds: Dataset, ep: Endpoint) -> str:
    for fd in ds.form_fields(ep.form):
        if fd.name == ep.field:
            return fd.unit or ""
    return ""


def methods(proto: Protocol, quartiles: str, paired_test: str, overridden: list[str]) -> dict[str, Any]:
    plan = proto.analysis
    out: dict[str, Any] = {
        "summary": f"median and interquartile range (25th–75th percentile; {stats.QUARTILE_METHODS[quartiles][1]})",
        "quartiles": quartiles,
        "paired_test": paired_test,
        "paired": f"{stats.PAIRED_TESTS[paired_test]}; {stats.ZERO_METHODS[plan.zero_differences]}",
        "zero_differences": plan.zero_differences,
        "across_time_points": "Kruskal–Wallis H test (tie-corrected)",
        "windows": {name: w.describe() for name, w in plan.windows.items()},
        "incomplete": {
            f"{ep.form}.{ep.field}": ep.evaluable.describe(tr(ep.label))
            for ep in plan.endpoints
            if ep.evaluable
        },
        "source": "protocol [analysis]",
    }
    if overridden:
        out["source"] = (
            "protocol [analysis], with "
            + ", ".join(overridden)
            + " chosen for this report (sensitivity analysis)"
        )
    return out


def compute(ds: Dataset, *, quartiles: str | None = None, paired_test: str | None = None) -> dict[str, Any]:
    """Every number of the outcomes report, as data (the JSON output)."""
    proto = ds.active_protocol
    if proto.engine is not None:  # a format-2 version: its declarations, read with the session
        raise Refused(
            f"{proto.id} {proto.version} is a format-2 protocol: its outcomes report is read from its"
            " declarations (reports.engine_outcomes.compute, `wardcrf report outcomes`)"
        )
    plan = proto.analysis
    overridden = []
    if quartiles and quartiles != plan.quartiles:
        overridden.append(f"quartiles {quartiles} (protocol: {plan.quartiles})")
    if paired_test and paired_test != plan.paired_test:
        overridden.append(f"paired test {paired_test} (protocol: {plan.paired_test})")
    quartiles = quartiles or plan.quartiles
    paired_test = paired_test or plan.paired_test
    if quartiles not in stats.QUARTILE_METHODS:
        raise ValueError(f"unknown quartile method {quartiles!r}")
    tz = proto.schedule.zone
    doses_n = proto.schedule.doses
    people: dict[str, _Participant] = {}
    recs_by: dict[str, list[ProvenancedRecord]] = {}
    vs_forms, vs_fields = vital_signs(proto)
    vitals: dict[str, dict[str, list[float | None]]] = {k: {} for k, _ in vs_fields}
    vital_units: dict[str, str] = {}
    for pid in ds.participants():
        recs = list(ds.records(participant=pid))
        dose_dates = sorted(
            d for d in (_local_date(r.data.get("start"), tz) for r in recs if r.form == "dose") if d
        )
        if not dose_dates:
            continue  # the analysis population: participants who received the product
        p = _Participant(pid, dose_dates=dose_dates)
        scr = _last(recs, "screening")
        if scr:
            p.sex = value_text(scr.data.get("sex")) or None
            p.age = number(scr.data.get("age"))
        demo = _last(recs, "demographics")
        if demo:
            onset = _local_date(demo.data.get("symptom_onset"), tz)
            adm = _local_date(demo.data.get("admission"), tz)
            if onset and adm:
                p.onset_to_admission = float((adm - onset).days)
            if onset:
                p.onset_to_first_dose = float((dose_dates[0] - onset).days)
        people[pid] = p
        recs_by[pid] = recs
        _collect_vitals(recs, doses_n, pid, vitals, vital_units, (vs_forms, vs_fields))
    plist = list(people.values())
    sexes = {s: sum(1 for p in plist if p.sex == s) for s in sorted({p.sex for p in plist if p.sex})}
    demographics = {
        "n": len(plist),
        "sex": sexes,
        "age": stats.describe([p.age for p in plist if p.age is not None], quartiles),
        "onset_to_admission_days": stats.describe(
            [p.onset_to_admission for p in plist if p.onset_to_admission is not None], quartiles
        ),
        "onset_to_first_dose_days": stats.describe(
            [p.onset_to_first_dose for p in plist if p.onset_to_first_dose is not None], quartiles
        ),
    }
    endpoints = [
        _endpoint(
            ds,
            ep,
            _select(ep, plan.windows, people, recs_by, doses_n, tz),
            list(people),
            quartiles,
            paired_test,
            plan.zero_differences,
        )
        for ep in plan.endpoints
    ]
    vital_tests = {}
    for k, label in vs_fields:
        groups: dict[str, list[float]] = {}
        for d in range(1, doses_n + 1):
            after_dose = (series[2 * (d - 1) + 1] for series in vitals[k].values())
            groups[f"day {d}"] = [v for v in after_dose if v is not None]
        across = across_groups(groups, quartiles)
        vital_tests[k] = {
            "label": label,
            "unit": vital_units.get(k, ""),
            "after_inhalation_by_day": across["by_group"],
            "kruskal": across["kruskal"],
        }
    return {
        "protocol": {"id": proto.id, "version": proto.version, "title": tr(proto.title)},
        "site": ds.site_row["site"],
        "source": "hub" if ds.is_hub else "ward",
        "population": "participants with at least one recorded dose",
        "methods": methods(proto, quartiles, paired_test, overridden),
        "demographics": demographics,
        "markers": endpoints,
        "vitals": vital_tests,
        "vital_series": vitals,
        "doses_per_participant": doses_n,
    }


def _collect_vitals(
    recs: list[ProvenancedRecord],
    doses_n: int,
    pid: str,
    vitals: dict[str, dict[str, list[float | None]]],
    units: dict[str, str],
    declared: tuple[set[str], list[tuple[str, str]]],
) -> None:
    """Each vital sign's values before and after each dose (`declared`: `vital_signs`), one series a
    participant; a record is placed by its dose number and pre- or post-dose timepoint."""
    forms, fields = declared
    series: dict[str, list[float | None]] = {k: [None] * (2 * doses_n) for k, _ in fields}
    for r in recs:
        if r.form not in forms:
            continue
        d = number(r.data.get("dose"))
        tp = r.data.get("timepoint")
        if d is None or not 1 <= d <= doses_n or tp not in ("pre_dose", "post_dose"):
            continue
        slot = 2 * (int(d) - 1) + (0 if tp == "pre_dose" else 1)
        for k, _ in fields:
            v = number(r.data.get(k))
            if v is not None:
                series[k][slot] = v
                raw = r.data.get(k)
                if isinstance(raw, dict) and raw.get("unit"):
                    units.setdefault(k, raw["unit"])
    for k, _ in fields:
        if any(v is not None for v in series[k]):
            vitals[k][pid] = series[k]


class Across(TypedDict):
    """One measure in several groups (the administrations): each described, Kruskal–Wallis across them."""

    by_group: dict[str, stats.Description]
    kruskal: stats.Kruskal


def across_groups(groups: dict[str, list[float]], quartiles: str) -> Across:
    """Median (IQR) per group and the Kruskal–Wallis H test across the groups: format 1's vital signs across
    the dosing days and a format-2 version's `[[analysis.series]]` (`engine_outcomes`)."""
    return {
        "by_group": {g: stats.describe(v, quartiles) for g, v in groups.items()},
        "kruskal": stats.kruskal(groups),
    }


class PairedRow(TypedDict):
    """One participant of a paired endpoint: the values used before and after, and where they came from."""

    participant: str
    before: float | None
    after: float | None
    change: float | None
    improved: bool | None
    before_date: str | None
    after_date: str | None
    before_record: str | None
    after_record: str | None
    notes: list[str]


class VisitCounts(TypedDict):
    labelled: int
    used: int
    excluded: int
    not_selected: int


def merge(into: _Selection, sel: _Selection) -> None:
    """Add one selection (e.g. one participant's, chosen against their own regimen) to another."""
    for visit in ("baseline", "post_treatment"):
        into.used[visit].update(sel.used[visit])
        into.not_selected[visit] += sel.not_selected[visit]
        into.candidates[visit] += sel.candidates[visit]
    into.excluded.extend(sel.excluded)


def paired_rows(sel: _Selection, order: list[str], improves: str) -> list[PairedRow]:
    """Per participant (in `order`) with a value used before or after: both values, the change, improved."""
    base, post = sel.used["baseline"], sel.used["post_treatment"]
    rows: list[PairedRow] = []
    for pid in (x for x in order if x in base or x in post):
        b, a = base.get(pid), post.get(pid)
        change = (a.value - b.value) if a and b else None
        rows.append(
            {
                "participant": pid,
                "before": b.value if b else None,
                "after": a.value if a else None,
                "change": change,
                "improved": None if change is None else (change > 0 if improves == "up" else change < 0),
                "before_date": b.sampled.isoformat() if b and b.sampled else None,
                "after_date": a.sampled.isoformat() if a and a.sampled else None,
                "before_record": b.record if b else None,
                "after_record": a.record if a else None,
                "notes": [x.note for x in (b, a) if x and x.note],
            }
        )
    return rows


def value_counts(sel: _Selection) -> dict[str, VisitCounts]:
    """Per visit: values labelled for it, used (one per participant), excluded, in window but not selected."""
    return {
        visit: {
            "labelled": sel.candidates[visit],
            "used": len(sel.used[visit]),
            "excluded": sum(1 for x in sel.excluded if x["visit"] == visit),
            "not_selected": sel.not_selected[visit],
        }
        for visit in ("baseline", "post_treatment")
    }


def _endpoint(
    ds: Dataset, ep: Endpoint, sel: _Selection, order: list[str], quartiles: str, paired_test: str, zeros: str
) -> dict[str, Any]:
    from . import endpoints

    base, post = sel.used["baseline"], sel.used["post_treatment"]
    rows = paired_rows(sel, order, ep.improves)
    group = endpoints.paired_arm(
        [
            endpoints.Outcome(
                None,
                before=base[r["participant"]].value if r["participant"] in base else None,
                after=post[r["participant"]].value if r["participant"] in post else None,
            )
            for r in rows
        ],
        ep.improves,
        endpoints.Settings(quartiles=quartiles, paired_test=paired_test, zeros=zeros),
    )
    k, n = group["improved"], group["pairs"]
    entry: dict[str, Any] = {
        "key": ep.field,
        "form": ep.form,
        "label": tr(ep.label),
        "unit": endpoint_unit(ds, ep),
        "improves": ep.improves,
        "participants": rows,
        "before": group["before"],
        "after": group["after"],
        "improved": k,
        "n_paired": n,
        "summary": f"{ep.improves} in {k} of {n}",
        "values": value_counts(sel),
        "excluded": sel.excluded,
        "kruskal": group["kruskal"],
    }
    if ep.paired_test:
        entry["wilcoxon"] = group["wilcoxon"]
    return entry


def miqr(d: dict[str, Any], unit: str = "") -> str:
    if not d.get("n"):
        return "—"
    u = f" {unit}" if unit else ""
    return f"{d['median']:.4g}{u} (IQR {d['q1']:.4g}–{d['q3']:.4g}), n={d['n']}"


def kw_text(kw: dict[str, Any]) -> str:
    """H and p, or why the test was not computed (fewer than two groups with values, all values identical)."""
    if kw["p"] is None:
        return str(kw.get("note") or "not computed")
    return f"H={kw['H']:.3f}, {stats.format_p(kw['p'])}"


def paired_tables(s: Section, markers: list[dict[str, Any]]) -> None:
    """The paired endpoints' values per visit, the values excluded and why, and each participant's values
    (format 1's report and a format-2 version's: `engine_outcomes`)."""
    count_rows = []
    for e in markers:
        for visit, c in e["values"].items():
            count_rows.append(
                [
                    e["label"],
                    visit.replace("_", "-"),
                    c["labelled"],
                    c["used"],
                    c["excluded"],
                    c["not_selected"],
                ]
            )
    s.tables.append(
        Table(
            ["endpoint", "visit", "values labelled", "used", "excluded", "in window, not selected"],
            count_rows,
            caption="Values per visit: used (one per participant) and excluded by the stated rules",
        )
    )
    excluded = [
        [
            e["label"],
            x["participant"],
            x["visit"].replace("_", "-"),
            x["date"] or "—",
            x["value"],
            x["reason"],
        ]
        for e in markers
        for x in e["excluded"]
    ]
    if excluded:
        s.tables.append(
            Table(
                ["endpoint", "participant", "visit", "sample date", "value", "excluded because"],
                excluded,
                caption="Excluded values",
            )
        )
    for e in markers:
        several = len(e.get("arms") or {}) > 1
        rows = [
            [
                f"{r['participant']} ({r.get('arm') or 'no arm'})" if several else r["participant"],
                r["before"],
                r["before_date"] or "—",
                r["after"],
                r["after_date"] or "—",
                r["change"],
                "—" if r["improved"] is None else "yes" if r["improved"] else "no",
                "; ".join(r["notes"]) or "",
            ]
            for r in e["participants"]
        ]
        s.tables.append(
            Table(
                ["participant", "before", "sampled", "after", "sampled", "change", "improved", "note"],
                rows,
                caption=f"{e['label']} ({e['unit'] or 'no unit'}): "
                + (
                    f"improved in {e['improved']} of {e['n_paired']}"
                    if "n_paired" in e
                    else "; ".join(
                        f"{a}: improved in {x['improved']} of {x['n_paired']}" for a, x in e["arms"].items()
                    )
                ),
            )
        )


def document(data: dict[str, Any]) -> Doc:
    from . import svg

    doc = Doc(
        f"Outcomes — {data['protocol']['id']} version {data['protocol']['version']}",
        f"{data['protocol']['title']}. Computed by wardcrf from the records on {data['source']} "
        f"{data['site']}; population: {data['population']}.",
    )
    m = data["methods"]
    s = doc.section("Methods")
    s.text += [
        f"Methods from the {m['source']}.",
        f"Continuous variables: {m['summary']}.",
        *(f"Visit window, {t}." for t in m["windows"].values()),
        *(f"Incomplete measurements, {t}." for t in m["incomplete"].values()),
        "Per participant before and after; 'improved' means strictly in the endpoint's favourable direction "
        "(stated per endpoint); a participant counts when both values exist.",
        f"Paired endpoints before vs after: {m['paired']}; two-sided.",
        "Endpoints across time points and vital signs across dosing days: Kruskal–Wallis H test (tie-corrected).",
        "P-values below 0.0001 are given as p < 0.0001.",
    ]
    d = data["demographics"]
    s = doc.section("Participants")
    s.tables.append(
        Table(
            ["characteristic", "value"],
            [
                ["participants", d["n"]],
                ["sex", ", ".join(f"{k}: {v}" for k, v in d["sex"].items()) or "—"],
                ["age, years", miqr(d["age"])],
                ["symptom onset to admission, days", miqr(d["onset_to_admission_days"])],
                ["symptom onset to first dose, days", miqr(d["onset_to_first_dose_days"])],
            ],
        )
    )
    s = doc.section("Before and after treatment")
    summary_rows = []
    for e in data["markers"]:
        word = "up" if e["improves"] == "up" else "down"
        summary_rows.append(
            [
                e["label"],
                e["unit"],
                miqr(e["before"]),
                miqr(e["after"]),
                f"{word} (improved) in {e['improved']} of {e['n_paired']}",
                kw_text(e["kruskal"]),
            ]
        )
    s.tables.append(
        Table(
            [
                "endpoint",
                "unit",
                "before median (IQR)",
                "after median (IQR)",
                "participants",
                "Kruskal–Wallis",
            ],
            summary_rows,
        )
    )
    paired_tables(s, data["markers"])
    for e in data["markers"]:
        w = e.get("wilcoxon")
        if w is None:
            continue
        s = doc.section(e["label"])
        if w.get("p") is not None:
            s.text.append(
                f"Median {e['before']['median']:.4g} before and {e['after']['median']:.4g} after; "
                f"Wilcoxon signed-rank W = {w['statistic']:.4g} (W+ = {w['w_plus']:.4g}, W− = {w['w_minus']:.4g}), "
                f"{w['p_text']} ({w['n_nonzero']} non-zero of {w['n_pairs']} pairs; {w['method']})."
            )
        else:
            s.text.append(f"{w['method']}.")
        s.svgs.append(
            svg.before_after(
                f"{e['label']} per participant",
                {
                    r["participant"]: (r["before"], r["after"])
                    for r in e["participants"]
                    if r["before"] is not None and r["after"] is not None
                },
                e["unit"],
                x_title="timepoint (baseline / after treatment)",
                y_title=f"{e['label']} ({e['unit']})" if e["unit"] else e["label"],
            )
        )
    s = doc.section("Vital signs over the dosing days")
    rows = []
    for v in data["vitals"].values():
        rows.append(
            [
                v["label"],
                v["unit"],
                ", ".join(f"{g}: {miqr(x)}" for g, x in v["after_inhalation_by_day"].items() if x["n"])
                or "—",
                kw_text(v["kruskal"]),
            ]
        )
    s.tables.append(
        Table(["vital sign", "unit", "after inhalation, median (IQR) per day", "Kruskal–Wallis"], rows)
    )
    n_doses = data["doses_per_participant"]
    labels = [f"{'pre' if i % 2 == 0 else 'post'}{i // 2 + 1}" for i in range(2 * n_doses)]
    for k, v in data["vitals"].items():
        s.svgs.append(
            svg.lines(
                v["label"],
                labels,
                data["vital_series"][k],
                v["unit"],
                x_title="dose (pre / post inhalation)",
                y_title=f"{v['label']} ({v['unit']})" if v["unit"] else v["label"],
            )
        )
    return doc


def outcomes(ds: Dataset) -> dict[str, Any]:
    return compute(ds)
