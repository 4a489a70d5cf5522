"""Safety report: exposure, every adverse event with its assessments, prespecified events by dose.

Exposure is computed from the administrations recorded (count, and the sum
of each record's dose per unit), never from a typed total: the paper's
abstract misstates the cumulative dose, the records do not. The records are
those of the forms the protocol's administrations record on, read by role
(`record = { form, dose, number, window, ... }`; a format-1 version's dose
form as `engine.protocol_v1.upgrade` reads it: `workflow.declared`), so the
report names no form or field of one trial. A record of a dose not given
(`not_given`) is no exposure. Deviations are doses outside their window
(the `window` role early/late, computed when the dose was recorded),
interrupted administrations, and doses missed: a dose whose window closed
with no dose record, as of the moment the report is made (the workflow's
own rule, `workflow.status`: format 1's "missing dose", a format-2
version's deviations of kind `missed`). Doses of a participant still in
treatment that are not yet due are no deviation. On a blinded trial the
report shows counts and doses, never an arm, regimen or product.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .. import amounts
from ..errors import Refused
from ..exports.dataset import Dataset, number, value_text
from ..protocol import tr
from ..workflow import declared, status
from .render import Doc, Table

if TYPE_CHECKING:
    from ..engine.schedule import Deviation


FORMAT1_MISSED = "missing dose"  # format 1's deviation kind (`workflow.status`)


def _missed_doses(ds: Dataset, pid: str, missed: frozenset[str]) -> list[Deviation] | None:
    """Doses whose window has closed without a dose record, now; None when no enrollment is known here.

    `missed`: the codes of the version's deviations of kind `missed` (format 2)."""
    try:
        info = status.summary(ds.projections, pid)
    except Refused:
        return None
    if not info.get("enrolled_on"):
        return None
    return [d for d in info["deviations"] if d.get("kind") == FORMAT1_MISSED or d.get("code") in missed]


def _amount(total: dict[str, float]) -> str:
    return ", ".join(amounts.quantity(v, u) for u, v in total.items()) or "0"


def compute(ds: Dataset) -> dict[str, Any]:
    proto = ds.active_protocol
    sched = proto.schedule
    # the number of administrations a participant is given: one regimen's; None when arms differ
    planned = sched.doses if len(declared.model_of(proto).arms) == 1 else None
    pre_labels = {str(c.code): tr(c.label) for c in proto.prespecified_events}
    exposure: list[dict[str, Any]] = []
    aes = []
    reviews: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_dose: dict[str, dict[int, int]] = {code: defaultdict(int) for code in pre_labels}
    checks_by_dose: dict[str, dict[int, int]] = {code: defaultdict(int) for code in pre_labels}
    # the forms by their declaration on a format-2 version (`[safety] check`, `dsmg_review`, `ae_link`)
    review_form, ae_field, rel, unexp = "dsmg_ae_review", "ae_event", "relatedness", "unexpected"
    check_form, check_field, check_link, ae_link = "post_dose_check", "events", "dose", "dose"
    if proto.engine is not None:
        safety_ = proto.engine.data.get("safety", {})
        review = safety_.get("dsmg_review") or {}
        review_form, ae_field = str(review.get("form", "")), str(review.get("ae_field", ""))
        rel, unexp = str(review.get("relatedness", "")), str(review.get("unexpected", ""))
        check = safety_.get("check") or {}
        check_form, check_field = str(check.get("form", "")), str(check.get("field", ""))
        check_link, ae_link = str(check.get("link", "")), str(safety_.get("ae_link", ""))
    for rec in ds.records(review_form) if review_form else ():
        d = rec.data
        reviews[value_text(d.get(ae_field))].append(
            {
                "record": rec.event_id,
                "relatedness": value_text(d.get(rel)),
                "unexpected": d.get(unexp),
                "comment": value_text(d.get("comment")),
                "by": ds.full_name(rec.created_by),
                "at": rec.created_at,
            }
        )
    forms = declared.administration_forms(proto)  # form -> {role: field} of every administration
    unit = declared.dose_unit(proto)
    missed_codes = frozenset(
        str(d["code"])
        for d in (proto.engine.data.get("deviations", ()) if proto.engine is not None else ())
        if d.get("kind") == "missed"
    )
    for pid in ds.participants():
        recs = list(ds.records(participant=pid))
        doses = [
            r
            for r in recs
            if r.form in forms
            and not (forms[r.form].get("not_given") and r.data.get(forms[r.form]["not_given"]))
        ]
        if not doses and not any(r.form == "ae" for r in recs):
            continue
        total: dict[str, float] = {}
        deviations = []
        for r in doses:
            roles = forms[r.form]

            def role(name: str, r: Any = r, roles: Any = roles) -> Any:
                return r.data.get(roles[name]) if name in roles else None

            q = declared.quantity(role("dose"), unit)
            if q is not None:
                total[q[1]] = total.get(q[1], 0.0) + q[0]
            n = value_text(role("number")) or "?"
            w = value_text(role("window"))
            if w in ("early", "late"):
                deviations.append(
                    f"dose {n} {w} (due {value_text(role('due'))}, given {value_text(role('start'))})"
                )
            if role("interruptions"):
                note = role("interruption_note")
                deviations.append(
                    f"dose {n} interrupted: {value_text(role('interruptions'))}"
                    + (f" ({value_text(note)})" if note else "")
                )
        missed = _missed_doses(ds, pid, missed_codes)
        if missed is not None:
            deviations += [f"dose {m.get('dose', m.get('number'))} missed (due {m['due']})" for m in missed]
        elif doses and planned is not None and len(doses) < planned:
            # No enrollment here to know which doses fell due: say what is known, and why.
            deviations.append(
                f"{len(doses)} of {planned} scheduled doses recorded (no enrollment record here "
                "to tell which were due)"
            )
        exposure.append(
            {
                "participant": pid,
                "doses": len(doses),
                "cumulative_dose": [{"value": v, "unit": u} for u, v in (total or {unit: 0.0}).items()],
                "deviations": deviations,
            }
        )
        for r in recs:
            if r.form == "ae":
                d = r.data
                dose = number(d.get(ae_link)) if ae_link else None
                pre = value_text(d.get("prespecified"))
                if pre in by_dose and dose is not None:
                    by_dose[pre][int(dose)] += 1
                criteria = [
                    k
                    for k in (
                        "death",
                        "life_threatening",
                        "hospitalization",
                        "disability",
                        "congenital_anomaly",
                        "medically_important",
                    )
                    if d.get(k)
                ]
                aes.append(
                    {
                        "participant": pid,
                        "record": r.event_id,
                        "term": value_text(d.get("term")),
                        "prespecified": pre if pre and pre != "no" else None,
                        "dose": dose,
                        "onset": value_text(d.get("onset")),
                        "end": value_text(d.get("end")),
                        "grade": number(d.get("grade")),
                        "serious": bool(d.get("serious")),
                        "serious_criteria": criteria,
                        "causality": value_text(d.get("causality")),
                        "outcome": value_text(d.get("outcome")),
                        "action": value_text(d.get("action")),
                        "report_due": value_text(d.get("report_due")),
                        "dsmg": reviews.get(r.event_id, []),
                        "amended": r.amended,
                    }
                )
            elif check_form and r.form == check_form:
                dose = number(r.data.get(check_link))
                for code in r.data.get(check_field) or []:
                    if str(code) in checks_by_dose and dose is not None:
                        checks_by_dose[str(code)][int(dose)] += 1
    total_doses = sum(e["doses"] for e in exposure)
    given: dict[str, float] = {}
    for e in exposure:
        for c in e["cumulative_dose"]:
            given[c["unit"]] = given.get(c["unit"], 0.0) + c["value"]
    return {
        "protocol": {"id": proto.id, "version": proto.version},
        "site": ds.site_row["site"],
        "source": "hub" if ds.is_hub else "ward",
        "schedule": {
            # format 1's one regimen; a format-2 version's first arm's first administration (`engine.ward`)
            "doses": planned,
            "dose_per_administration": declared.fixed_dose(proto),
            "unit": unit,
            "route": sched.route,
        },
        "exposure": exposure,
        "totals": {
            "participants_dosed": sum(1 for e in exposure if e["doses"]),
            "doses": total_doses,
            "cumulative_dose": [{"value": v, "unit": u} for u, v in given.items()],
            "deviations": sum(len(e["deviations"]) for e in exposure),
        },
        "adverse_events": aes,
        "serious": sum(1 for a in aes if a["serious"]),
        # Emergency unblindings (issue 20) for the DSMG and the coordinator: who, why, when; the arm
        # itself stays in the unblinding event and `report randomization`.
        "emergency_unblindings": ds.data.rows(
            "SELECT participant, kit, reason, detail, user, witness, site, ts, event_id"
            " FROM rand_unblindings ORDER BY ts, event_id"
        ),
        # the AE form's own words for its prespecified events ("Prespecified inhalation-associated event")
        "prespecified_heading": _heading(proto),
        "prespecified_by_dose": {
            code: {
                "label": pre_labels[code],
                "ae_records": dict(by_dose[code]),
                "post_dose_checks": dict(checks_by_dose[code]),
            }
            for code in pre_labels
        },
    }


def _heading(proto: Any) -> str:
    """The section title: the `ae.prespecified` field's label, as a plural, "by dose"."""
    field = proto.form("ae").fields.get("prespecified")
    label = tr(field.label) if field is not None else ""
    if not label:
        return "Prespecified events by dose"
    return f"{label}{'' if label.endswith('s') else 's'} by dose"


def document(data: dict[str, Any]) -> Doc:
    doc = Doc(
        f"Safety — {data['protocol']['id']} version {data['protocol']['version']}",
        f"Computed by wardcrf from the records on {data['source']} {data['site']}.",
    )
    t = data["totals"]
    sc = data["schedule"]
    s = doc.section("Exposure")
    if sc["doses"] is None:
        per = "each arm's regimen"
    elif sc["dose_per_administration"] is not None:
        per = f"{sc['doses']} × {amounts.quantity(sc['dose_per_administration'], sc['unit'])}"
    else:
        per = f"{sc['doses']} administrations, the dose by weight"
    total = {c["unit"]: c["value"] for c in t["cumulative_dose"]} or {sc["unit"]: 0.0}
    s.text.append(
        f"{t['participants_dosed']} participants dosed, {t['doses']} doses recorded, "
        f"{_amount(total)} in total (schedule: {per}, {sc['route']}); {t['deviations']} deviation(s)."
    )
    units = sorted({c["unit"] for e in data["exposure"] for c in e["cumulative_dose"]}) or [sc["unit"]]
    one = len(units) == 1
    s.tables.append(
        Table(
            ["participant", "doses", f"cumulative ({units[0]})" if one else "cumulative", "deviations"],
            [
                [
                    e["participant"],
                    e["doses"],
                    ", ".join(
                        amounts.shown(c["value"]) if one else amounts.quantity(c)
                        for c in e["cumulative_dose"]
                    ),
                    "; ".join(e["deviations"]) or "none",
                ]
                for e in data["exposure"]
            ],
        )
    )
    s = doc.section("Adverse events")
    s.text.append(f"{len(data['adverse_events'])} adverse event(s), {data['serious']} serious.")
    s.tables.append(
        Table(
            ["participant", "term", "onset", "grade", "serious", "causality", "outcome", "DSMG assessment"],
            [
                [
                    a["participant"],
                    a["term"] + (" (amended)" if a["amended"] else ""),
                    a["onset"],
                    None if a["grade"] is None else int(a["grade"]),
                    ("yes: " + ", ".join(a["serious_criteria"]) if a["serious_criteria"] else "yes")
                    if a["serious"]
                    else "no",
                    a["causality"],
                    a["outcome"],
                    "; ".join(
                        f"{r['relatedness']}, {'unexpected' if r['unexpected'] else 'expected'} ({r['by']})"
                        for r in a["dsmg"]
                    )
                    or ("awaiting review" if a["serious"] else "—"),
                ]
                for a in data["adverse_events"]
            ],
        )
    )
    if data.get("emergency_unblindings"):
        s = doc.section("Emergency unblindings")
        s.tables.append(
            Table(
                ["participant", "kit", "reason", "explanation", "by", "witness", "site", "when", "event"],
                [
                    [
                        u["participant"],
                        u["kit"] or "—",
                        u["reason"],
                        u["detail"],
                        u["user"],
                        u["witness"] or "—",
                        u["site"],
                        u["ts"],
                        u["event_id"],
                    ]
                    for u in data["emergency_unblindings"]
                ],
            )
        )
    s = doc.section(data.get("prespecified_heading") or "Prespecified events by dose")
    seen = [
        int(d)
        for v in data["prespecified_by_dose"].values()
        for k in ("ae_records", "post_dose_checks")
        for d in v[k]
    ]
    n = max([sc["doses"] or 1, *seen])
    rows = []
    for _code, v in data["prespecified_by_dose"].items():
        rows.append(
            [
                v["label"],
                *[
                    f"{v['ae_records'].get(d, 0)} / {v['post_dose_checks'].get(d, 0)}"
                    for d in range(1, n + 1)
                ],
            ]
        )
    s.tables.append(
        Table(
            ["event", *[f"dose {d}" for d in range(1, n + 1)]],
            rows,
            caption="adverse-event records / post-dose checks reporting the event",
        )
    )
    return doc
