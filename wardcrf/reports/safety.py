"""Safety report: exposure, every adverse event with its assessments, inhalation events by dose.

Exposure is computed from the administrations recorded (count and sum of
particles per dose record), never from a typed total: the paper's abstract
misstates the cumulative dose, the records do not. Deviations are doses
outside their window (``window`` early/late, computed when the dose was
recorded), interrupted inhalations, and doses missed: a dose whose window
closed with no dose record, as of the moment the report is made (the
workflow's own rule, `workflow.status`). Doses of a participant still in
treatment that are not yet due are no deviation.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..errors import Refused
from ..exports.dataset import Dataset, number, value_text
from ..protocol import tr
from ..workflow import status
from .render import Doc, Table

if TYPE_CHECKING:
    from ..engine.schedule import Deviation


def _missed_doses(ds: Dataset, pid: str) -> list[Deviation] | None:
    """Doses whose window has closed without a dose record, now; None when no enrollment is known here."""
    try:
        info = status.summary(ds.store, pid)
    except Refused:
        return None
    if not info.get("enrolled_on"):
        return None
    return [d for d in info["deviations"] if d.get("kind") == "missing dose"]


def compute(ds: Dataset) -> dict[str, Any]:
    proto = ds.active_protocol
    sched = proto.schedule
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
        declared = proto.engine.data.get("safety", {})
        review = declared.get("dsmg_review") or {}
        review_form, ae_field = str(review.get("form", "")), str(review.get("ae_field", ""))
        rel, unexp = str(review.get("relatedness", "")), str(review.get("unexpected", ""))
        check = declared.get("check") or {}
        check_form, check_field = str(check.get("form", "")), str(check.get("field", ""))
        check_link, ae_link = str(check.get("link", "")), str(declared.get("ae_link", ""))
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
    for pid in ds.participants():
        recs = list(ds.records(participant=pid))
        doses = [r for r in recs if r.form == "dose"]
        if not doses and not any(r.form == "ae" for r in recs):
            continue
        particles = [number(r.data.get("particles")) for r in doses]
        deviations = []
        for r in doses:
            n = value_text(r.data.get("dose_number")) or "?"
            w = value_text(r.data.get("window"))
            if w in ("early", "late"):
                deviations.append(
                    f"dose {n} {w} (due {value_text(r.data.get('due'))}, "
                    f"given {value_text(r.data.get('start'))})"
                )
            if r.data.get("interruptions"):
                deviations.append(
                    f"dose {n} interrupted: {value_text(r.data.get('interruptions'))}"
                    + (
                        f" ({value_text(r.data.get('interruption_note'))})"
                        if r.data.get("interruption_note")
                        else ""
                    )
                )
        missed = _missed_doses(ds, pid)
        if missed is not None:
            deviations += [f"dose {m['dose']} missed (due {m['due']})" for m in missed]
        elif doses and len(doses) < sched.doses:
            # No enrollment here to know which doses fell due: say what is known, and why.
            deviations.append(
                f"{len(doses)} of {sched.doses} scheduled doses recorded (no enrollment record here "
                "to tell which were due)"
            )
        exposure.append(
            {
                "participant": pid,
                "doses": len(doses),
                "cumulative_particles": sum(p for p in particles if p is not None),
                "unit": sched.particles_unit,
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
    return {
        "protocol": {"id": proto.id, "version": proto.version},
        "site": ds.site_row["site"],
        "source": "hub" if ds.is_hub else "ward",
        "schedule": {
            "doses": sched.doses,
            "particles_per_dose": sched.particles_per_dose,
            "unit": sched.particles_unit,
            "route": sched.route,
        },
        "exposure": exposure,
        "totals": {
            "participants_dosed": sum(1 for e in exposure if e["doses"]),
            "doses": total_doses,
            "particles": sum(e["cumulative_particles"] for e in exposure),
            "deviations": sum(len(e["deviations"]) for e in exposure),
        },
        "adverse_events": aes,
        "serious": sum(1 for a in aes if a["serious"]),
        # Emergency unblindings (issue 20) for the DSMG and the coordinator: who, why, when; the arm
        # itself stays in the unblinding event and `report randomization`.
        "emergency_unblindings": ds.store.rows(
            "SELECT participant, kit, reason, detail, user, witness, site, ts, event_id"
            " FROM rand_unblindings ORDER BY ts, event_id"
        ),
        "prespecified_by_dose": {
            code: {
                "label": pre_labels[code],
                "ae_records": dict(by_dose[code]),
                "post_dose_checks": dict(checks_by_dose[code]),
            }
            for code in pre_labels
        },
    }


def document(data: dict[str, Any]) -> Doc:
    doc = Doc(
        f"Safety — {data['protocol']['id']} version {data['protocol']['version']}",
        f"Computed by wardcrf from the records on {data['source']} {data['site']}.",
    )
    t = data["totals"]
    sc = data["schedule"]
    s = doc.section("Exposure")
    s.text.append(
        f"{t['participants_dosed']} participants dosed, {t['doses']} doses recorded, "
        f"{t['particles']:.3g} {sc['unit']} in total (schedule: {sc['doses']} × "
        f"{sc['particles_per_dose']:.3g} {sc['unit']}, {sc['route']}); {t['deviations']} deviation(s)."
    )
    s.tables.append(
        Table(
            ["participant", "doses", f"cumulative ({sc['unit']})", "deviations"],
            [
                [
                    e["participant"],
                    e["doses"],
                    f"{e['cumulative_particles']:.3g}",
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
    s = doc.section("Prespecified inhalation-associated events by dose")
    n = sc["doses"]
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
