"""The protocol's ``[audit_review]`` table: what the periodic audit-trail review flags, as data.

The EMA guideline on computerised systems in clinical trials (2023, §6.2.2)
expects a documented, risk-based, periodic review of the audit trail of
critical data. What counts as critical, as an unusual hour or as a late
entry differs per trial, so the thresholds live in the protocol, validated
with the rest of the file, and every key has a documented default
(docs/protocol.md) so a protocol without the table still gets a stated
review. `wardcrf.reports.audit_review` applies it.

```toml
[audit_review]
night = ["22:00", "06:00"]        # entries in this local span are "unusual hours"
late_entry_hours = 48             # a record entered this long after the time it describes
amendments_per_user = 10          # more amendments by one user in the review window
amendments_per_participant = 5    # more amendments to one participant's records
critical = ["consent.*", "dose.kit_id"]   # "form.field" or "form.*"; default: consent forms and id fields
[audit_review.roles]              # the roles expected to enter each form (default: the trial's doctor_roles)
coldchain_note = ["pharmacist"]
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocol import Form
    from .protocol_file import _Reader

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_KEYS = {
    "night",
    "late_entry_hours",
    "amendments_per_user",
    "amendments_per_participant",
    "critical",
    "roles",
}


@dataclass(frozen=True)
class ReviewPlan:
    """The review's thresholds (the defaults are the documented ones)."""

    night: tuple[int, int] = (22 * 60, 6 * 60)  # minutes after local midnight: from, to
    late_entry_hours: int = 48
    amendments_per_user: int = 10
    amendments_per_participant: int = 5
    critical: tuple[str, ...] = ()  # "form.field" / "form.*"; empty: the default rule (see `is_critical`)
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # form -> expected roles

    def at_night(self, minute: int) -> bool:
        start, end = self.night
        return start <= minute or minute < end if start > end else start <= minute < end

    def is_critical(self, form: Form | None, form_name: str, field_name: str) -> bool:
        """Declared critical; by default, every field of a consent form and every kit or lot id."""
        if self.critical:
            return f"{form_name}.{field_name}" in self.critical or f"{form_name}.*" in self.critical
        if form_name == "consent":
            return True
        f = form.fields.get(field_name) if form is not None else None
        return f is not None and f.id_kind is not None

    def describe(self) -> list[str]:
        def hhmm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        return [
            f"unusual hours: entries between {hhmm(self.night[0])} and {hhmm(self.night[1])}, site time",
            f"late entry: a record entered more than {self.late_entry_hours} h after the time it describes",
            f"many amendments: more than {self.amendments_per_user} by one user,"
            f" more than {self.amendments_per_participant} to one participant",
            "critical fields: "
            + (", ".join(self.critical) if self.critical else "consent forms and kit/lot ids"),
        ]


def parse(r: _Reader, data: dict[str, Any], forms: dict[str, Form]) -> ReviewPlan:
    """The ``[audit_review]`` table, validated; the documented defaults where it is silent."""
    if data.get("audit_review") is None:
        return ReviewPlan()
    p: tuple[str | int, ...] = ("audit_review",)
    t = r.table(data.get("audit_review"), p)
    for key in t:
        if key not in _KEYS:
            r.err((*p, key), f"unknown key (allowed: {', '.join(sorted(_KEYS))})")
    plan = ReviewPlan()
    night = plan.night
    raw = r.get(t, "night", p, list, required=False)
    if raw is not None:
        if len(raw) != 2 or not all(isinstance(x, str) and _HHMM.match(x) for x in raw):
            r.err((*p, "night"), 'must be two times "HH:MM", e.g. ["22:00", "06:00"]')
        elif raw[0] == raw[1]:
            r.err((*p, "night"), "from and to are the same time")
        else:
            night = tuple(int(x[:2]) * 60 + int(x[3:]) for x in raw)  # type: ignore[assignment]
    counts = {}
    for key, default, top in (
        ("late_entry_hours", plan.late_entry_hours, 24 * 365),
        ("amendments_per_user", plan.amendments_per_user, 100_000),
        ("amendments_per_participant", plan.amendments_per_participant, 100_000),
    ):
        v = r.get(t, key, p, int, required=False, default=default)
        if not 1 <= v <= top:
            r.err((*p, key), f"must be 1 to {top}")
            v = default
        counts[key] = v
    critical: list[str] = []
    for i, c in enumerate(r.get(t, "critical", p, list, required=False, default=[])):
        form_name, _, field_name = str(c).partition(".")
        form = forms.get(form_name)
        if not isinstance(c, str) or not field_name:
            r.err((*p, "critical", i), 'must be "form.field" or "form.*"')
        elif form is None:
            r.err((*p, "critical", i), f"no form {form_name!r}")
        elif field_name != "*" and field_name not in form.fields:
            r.err((*p, "critical", i), f"form {form_name!r} has no field {field_name!r}")
        else:
            critical.append(c)
    roles: dict[str, tuple[str, ...]] = {}
    from .roles import ROLES

    for form_name, listed in r.table(t.get("roles"), (*p, "roles"), required=False).items():
        if form_name not in forms:
            r.err((*p, "roles", form_name), f"no form {form_name!r}")
            continue
        if not isinstance(listed, list) or not listed or any(x not in ROLES for x in listed):
            r.err((*p, "roles", form_name), f"must list roles of {', '.join(ROLES)}")
            continue
        roles[form_name] = tuple(listed)
    return ReviewPlan(
        night=night,
        late_entry_hours=counts["late_entry_hours"],
        amendments_per_user=counts["amendments_per_user"],
        amendments_per_participant=counts["amendments_per_participant"],
        critical=tuple(critical),
        roles=roles,
    )
