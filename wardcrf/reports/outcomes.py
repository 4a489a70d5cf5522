"""The paper's analyses, recomputed from what was recorded (never from typed totals).

Methods (as in the MEXCOVID pilot, stated again in every report):
* continuous variables: median and interquartile range, 25th and 75th
  percentiles by linear interpolation (numpy's default, R type 7);
* before/after per participant for lymphocytes, CRP, IL-6, LDH, ALT,
  creatinine, D-dimer and the CT score, with "improved in k of n" (a
  participant counts when both values exist; improved means strictly in the
  favourable direction: lymphocytes up, the others down);
* CT score before vs after: Wilcoxon signed-rank, two-sided, zero
  differences dropped (Wilcoxon's method); the exact null distribution when
  there are at most 50 non-zero differences and no tied absolute
  differences, else the normal approximation — the report names which;
* biomarkers across time points (baseline vs after treatment) and vital
  signs across the five dosing days: Kruskal–Wallis H test.

"Baseline" is a participant's earliest baseline record of the form, "after"
their latest post-treatment record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..exports.dataset import Dataset, Record, number, value_text
from ..protocol import tr
from .render import Doc, Table

MARKERS: list[tuple[str, str, str, str]] = [
    # key, label, form, direction that counts as improvement
    ("lym", "Lymphocytes", "labs", "up"),
    ("crp", "C-reactive protein", "labs", "down"),
    ("il6", "Interleukin-6", "labs", "down"),
    ("ldh", "Lactate dehydrogenase", "labs", "down"),
    ("alt", "Alanine aminotransferase", "labs", "down"),
    ("creat", "Creatinine", "labs", "down"),
    ("ddimer", "D-dimer", "labs", "down"),
    ("total", "CT score (0-72)", "ct_score", "down"),
]
VITALS = [
    ("temp", "Temperature"),
    ("pulse", "Heart rate"),
    ("resp", "Respiratory rate"),
    ("oxysat", "Oxygen saturation"),
]
EXACT_MAX_N = 50


def describe(values: list[float]) -> dict[str, Any]:
    """n, median, 25th and 75th percentile (linear interpolation)."""
    import numpy as np

    if not values:
        return {"n": 0, "median": None, "q1": None, "q3": None}
    arr = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return {"n": len(values), "median": float(med), "q1": float(q1), "q3": float(q3)}


def wilcoxon(before: list[float], after: list[float]) -> dict[str, Any]:
    """Paired two-sided Wilcoxon signed-rank test, exact when valid; names the method used."""
    from scipy import stats

    diffs = [a - b for b, a in zip(before, after, strict=True)]
    nonzero = [d for d in diffs if d != 0]
    out: dict[str, Any] = {
        "n_pairs": len(diffs),
        "n_nonzero": len(nonzero),
        "statistic": None,
        "p": None,
        "method": "",
    }
    if len(nonzero) < 1:
        out["method"] = "not computed: no non-zero differences"
        return out
    abs_d = [abs(d) for d in nonzero]
    ties = len(set(abs_d)) != len(abs_d)
    method = "exact" if len(nonzero) <= EXACT_MAX_N and not ties else "approx"
    res = stats.wilcoxon(before, after, zero_method="wilcox", alternative="two-sided", method=method)
    out["statistic"] = float(res.statistic)
    out["p"] = float(res.pvalue)
    why = (
        []
        if method == "exact"
        else (["tied absolute differences"] if ties else [])
        + ([f"more than {EXACT_MAX_N} non-zero differences"] if len(nonzero) > EXACT_MAX_N else [])
    )
    out["method"] = "Wilcoxon signed-rank, two-sided, zero differences dropped; " + (
        "exact null distribution"
        if method == "exact"
        else "normal approximation without continuity correction (" + ", ".join(why) + ")"
    )
    out["scipy_method"] = method
    return out


def kruskal(groups: dict[str, list[float]]) -> dict[str, Any]:
    """Kruskal–Wallis H across groups (tie-corrected, as scipy computes it)."""
    from scipy import stats

    used = {k: v for k, v in groups.items() if v}
    out: dict[str, Any] = {
        "groups": {k: len(v) for k, v in used.items()},
        "H": None,
        "p": None,
        "method": "Kruskal-Wallis H test (tie-corrected)",
    }
    if len(used) < 2:
        out["note"] = "not computed: fewer than two groups with values"
        return out
    values = [x for v in used.values() for x in v]
    if len(set(values)) == 1:
        out["note"] = "not computed: all values identical"
        return out
    res = stats.kruskal(*used.values())
    out["H"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


@dataclass
class _Participant:
    pid: str
    sex: str | None = None
    age: float | None = None
    onset_to_admission: float | None = None
    onset_to_first_dose: float | None = None


def _local_date(text: Any) -> date | None:
    t = value_text(text)
    if not t:
        return None
    try:
        return datetime.fromisoformat(t).date() if "T" in t else date.fromisoformat(t)
    except ValueError:
        return None


def _first(
    recs: list[Record], form: str, timepoint: str | None = None, *, last: bool = False
) -> Record | None:
    found = [
        r for r in recs if r.form == form and (timepoint is None or r.data.get("timepoint") == timepoint)
    ]
    if not found:
        return None
    return found[-1] if last else found[0]


def compute(ds: Dataset) -> dict[str, Any]:
    """Every number of the outcomes report, as data (the JSON output)."""
    proto = ds.active_protocol
    people: list[_Participant] = []
    paired: dict[str, dict[str, tuple[float | None, float | None]]] = {k: {} for k, *_ in MARKERS}
    units: dict[str, str] = {}
    vitals: dict[str, dict[str, list[float | None]]] = {k: {} for k, _ in VITALS}
    vital_units: dict[str, str] = {}
    doses_n = proto.schedule.doses
    for pid in ds.participants():
        recs = list(ds.records(participant=pid))
        dosed = sorted((r for r in recs if r.form == "dose"), key=lambda r: value_text(r.data.get("start")))
        if not dosed:
            continue  # the analysis population: participants who received the product
        p = _Participant(pid)
        scr = _first(recs, "screening", last=True)
        if scr:
            p.sex = value_text(scr.data.get("sex")) or None
            p.age = number(scr.data.get("age"))
        demo = _first(recs, "demographics", last=True)
        if demo:
            onset = _local_date(demo.data.get("symptom_onset"))
            adm = _local_date(demo.data.get("admission"))
            first = _local_date(dosed[0].data.get("start"))
            if onset and adm:
                p.onset_to_admission = float((adm - onset).days)
            if onset and first:
                p.onset_to_first_dose = float((first - onset).days)
        people.append(p)
        for key, _label, form, _dir in MARKERS:
            before = _first(recs, form, "baseline")
            after = _first(recs, form, "post_treatment", last=True)
            b = number(before.data.get(key)) if before else None
            a = number(after.data.get(key)) if after else None
            for r in (before, after):
                v = r.data.get(key) if r else None
                if isinstance(v, dict) and v.get("unit"):
                    units.setdefault(key, v["unit"])
            if b is not None or a is not None:
                paired[key][pid] = (b, a)
        series: dict[str, list[float | None]] = {k: [None] * (2 * doses_n) for k, _ in VITALS}
        for r in recs:
            if r.form != "vitals":
                continue
            d = number(r.data.get("dose"))
            tp = r.data.get("timepoint")
            if d is None or not 1 <= d <= doses_n or tp not in ("pre_dose", "post_dose"):
                continue
            slot = 2 * (int(d) - 1) + (0 if tp == "pre_dose" else 1)
            for k, _ in VITALS:
                v = number(r.data.get(k))
                if v is not None:
                    series[k][slot] = v
                    raw = r.data.get(k)
                    if isinstance(raw, dict) and raw.get("unit"):
                        vital_units.setdefault(k, raw["unit"])
        for k, _ in VITALS:
            if any(v is not None for v in series[k]):
                vitals[k][pid] = series[k]
    n = len(people)
    sexes = {s: sum(1 for p in people if p.sex == s) for s in sorted({p.sex for p in people if p.sex})}
    demographics = {
        "n": n,
        "sex": sexes,
        "age": describe([p.age for p in people if p.age is not None]),
        "onset_to_admission_days": describe(
            [p.onset_to_admission for p in people if p.onset_to_admission is not None]
        ),
        "onset_to_first_dose_days": describe(
            [p.onset_to_first_dose for p in people if p.onset_to_first_dose is not None]
        ),
    }
    markers = []
    for key, label, form, direction in MARKERS:
        rows = []
        both_b: list[float] = []
        both_a: list[float] = []
        for pid, (b, a) in paired[key].items():
            change = (a - b) if a is not None and b is not None else None
            improved = None if change is None else (change > 0 if direction == "up" else change < 0)
            rows.append({"participant": pid, "before": b, "after": a, "change": change, "improved": improved})
            if a is not None and b is not None:
                both_b.append(b)
                both_a.append(a)
        k_improved = sum(1 for r in rows if r["improved"])
        entry: dict[str, Any] = {
            "key": key,
            "label": label,
            "form": form,
            "unit": units.get(key, ""),
            "improves": direction,
            "participants": rows,
            "before": describe(both_b),
            "after": describe(both_a),
            "improved": k_improved,
            "n_paired": len(both_b),
            "summary": f"{'up' if direction == 'up' else 'down'} in {k_improved} of {len(both_b)}",
            "kruskal": kruskal(
                {
                    "baseline": [b for b, _ in paired[key].values() if b is not None],
                    "post_treatment": [a for _, a in paired[key].values() if a is not None],
                }
            ),
        }
        if key == "total":
            entry["wilcoxon"] = (
                wilcoxon(both_b, both_a)
                if both_b
                else {
                    "n_pairs": 0,
                    "n_nonzero": 0,
                    "statistic": None,
                    "p": None,
                    "method": "not computed: no participant has both values",
                }
            )
        markers.append(entry)
    vital_tests = {}
    for k, label in VITALS:
        groups: dict[str, list[float]] = {}
        for d in range(1, doses_n + 1):
            after_dose = (series_k[2 * (d - 1) + 1] for series_k in vitals[k].values())
            groups[f"day {d}"] = [v for v in after_dose if v is not None]
        vital_tests[k] = {
            "label": label,
            "unit": vital_units.get(k, ""),
            "after_inhalation_by_day": {g: describe(v) for g, v in groups.items()},
            "kruskal": kruskal(groups),
        }
    return {
        "protocol": {"id": proto.id, "version": proto.version, "title": tr(proto.title)},
        "site": ds.site_row["site"],
        "source": "hub" if ds.is_hub else "ward",
        "population": "participants with at least one recorded dose",
        "methods": {
            "summary": "median (IQR, 25th-75th percentile, linear interpolation)",
            "paired": "Wilcoxon signed-rank (see wilcoxon.method)",
            "across_time_points": "Kruskal-Wallis H test",
        },
        "demographics": demographics,
        "markers": markers,
        "vitals": vital_tests,
        "vital_series": {k: v for k, v in vitals.items()},
        "doses_per_participant": doses_n,
    }


def _miqr(d: dict[str, Any], unit: str = "") -> str:
    if not d.get("n"):
        return "—"
    u = f" {unit}" if unit else ""
    return f"{d['median']:.4g}{u} (IQR {d['q1']:.4g}–{d['q3']:.4g}), n={d['n']}"


def document(data: dict[str, Any]) -> Doc:
    from . import svg

    doc = Doc(
        f"Outcomes — {data['protocol']['id']} version {data['protocol']['version']}",
        f"{data['protocol']['title']}. Computed by wardcrf from the records on {data['source']} "
        f"{data['site']}; population: {data['population']}.",
    )
    s = doc.section("Methods")
    s.text += [
        "Continuous variables: median and interquartile range (25th–75th percentile, linear interpolation).",
        "Per participant before (earliest baseline record) and after (latest post-treatment record); "
        "'improved' means lymphocytes up, every other marker and the CT score down.",
        "CT score before vs after: "
        + (
            next(m for m in data["markers"] if m["key"] == "total").get("wilcoxon", {}).get("method")
            or "not computed"
        )
        + ".",
        "Biomarkers across time points and vital signs across dosing days: Kruskal–Wallis H test.",
    ]
    d = data["demographics"]
    s = doc.section("Participants")
    s.tables.append(
        Table(
            ["characteristic", "value"],
            [
                ["participants", d["n"]],
                ["sex", ", ".join(f"{k}: {v}" for k, v in d["sex"].items()) or "—"],
                ["age, years", _miqr(d["age"])],
                ["symptom onset to admission, days", _miqr(d["onset_to_admission_days"])],
                ["symptom onset to first dose, days", _miqr(d["onset_to_first_dose_days"])],
            ],
        )
    )
    s = doc.section("Before and after treatment")
    summary_rows = []
    for m in data["markers"]:
        kw = m["kruskal"]
        summary_rows.append(
            [
                m["label"],
                m["unit"],
                _miqr(m["before"]),
                _miqr(m["after"]),
                f"improved in {m['improved']} of {m['n_paired']}",
                "—" if kw["p"] is None else f"H={kw['H']:.3f}, p={kw['p']:.4f}",
            ]
        )
    s.tables.append(
        Table(
            ["marker", "unit", "before median (IQR)", "after median (IQR)", "participants", "Kruskal–Wallis"],
            summary_rows,
        )
    )
    for m in data["markers"]:
        rows = [
            [
                r["participant"],
                r["before"],
                r["after"],
                r["change"],
                "—" if r["improved"] is None else "yes" if r["improved"] else "no",
            ]
            for r in m["participants"]
        ]
        s.tables.append(
            Table(
                ["participant", "before", "after", "change", "improved"],
                rows,
                caption=f"{m['label']} ({m['unit'] or 'no unit'}): improved in "
                f"{m['improved']} of {m['n_paired']}",
            )
        )
    ct = next(m for m in data["markers"] if m["key"] == "total")
    s = doc.section("CT score")
    w = ct.get("wilcoxon") or {}
    if w.get("p") is not None:
        s.text.append(
            f"Median {ct['before']['median']:.4g} before and {ct['after']['median']:.4g} after; "
            f"Wilcoxon signed-rank W = {w['statistic']:.4g}, p = {w['p']:.4f} "
            f"({w['n_nonzero']} non-zero of {w['n_pairs']} pairs; {w['method']})."
        )
    else:
        s.text.append(f"Wilcoxon signed-rank: {w.get('method') or 'not computed'}.")
    s.svgs.append(
        svg.before_after(
            "CT score per participant",
            {
                r["participant"]: (r["before"], r["after"])
                for r in ct["participants"]
                if r["before"] is not None and r["after"] is not None
            },
            "",
            x_title="timepoint (baseline / after treatment)",
            y_title="CT severity score (0-72)",
        )
    )
    s = doc.section("Vital signs over the five dosing days")
    rows = []
    for v in data["vitals"].values():
        kw = v["kruskal"]
        rows.append(
            [
                v["label"],
                v["unit"],
                ", ".join(f"{g}: {_miqr(x)}" for g, x in v["after_inhalation_by_day"].items() if x["n"])
                or "—",
                "—" if kw["p"] is None else f"H={kw['H']:.3f}, p={kw['p']:.4f}",
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
