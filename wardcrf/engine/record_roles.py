"""The forms and fields `[dsmg]` and `[disposition]` give a role, checked when a format-2 file is read.

Both tables name a form, its fields and codes of its choice fields (docs/protocol.md,
"`[dsmg]`, `[disposition]`, `[safety]`"): the DSMG gates read the decision form by
them, the schedule ends treatment and the study by the disposition, the endpoints
read death and its date from it. A name that matches nothing would not refuse a
record: it would silently make a gate never hold, a course never end, a death never
count. So each is checked against the file's own forms, every problem reported as
`err(key path, problem)` (the reader adds `FILE:LINE`).

`[disposition] not_seen_alive` lists the records that do not show the participant
alive on their date (a vital-status contact that did not reach them): the mortality
and time-to-event endpoints follow a participant not known dead up to the latest date
of any other record (`reports.engine_endpoints`). Each entry names a form and, as a
visit's form entry does, an optional `when` over the record (checked with the other
expressions, `model._names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .form_sections import Err

DSMG_FIELDS: Mapping[str, tuple[str, ...]] = {"field": ("continue", "stop", "alter")}
"""`[dsmg]`: its field, and the keys naming codes of that field's choices."""
DISPOSITION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "stage": ("end_of_treatment", "end_of_study"),
    "status": ("death",),
    "date": (),
    "death_date": (),
}
"""`[disposition]`: its fields, and the keys naming codes of each one's choices."""
DATED = ("date", "death_date")
"""`[disposition]` keys whose field holds a date (read as one by the schedule and the endpoints)."""


def check(err: Err, data: Mapping[str, Any], forms: Mapping[str, Any]) -> None:
    """Every problem of `[dsmg]` and `[disposition]` against the file's forms."""
    dsmg = data.get("dsmg")
    if isinstance(dsmg, Mapping):
        _role(err, "dsmg", dsmg, forms, DSMG_FIELDS)
    disposition = data.get("disposition")
    if isinstance(disposition, Mapping):
        _role(err, "disposition", disposition, forms, DISPOSITION_FIELDS)
        for i, entry in enumerate(disposition.get("not_seen_alive") or ()):
            form = entry.get("form") if isinstance(entry, Mapping) else None
            if form not in forms:
                err(("disposition", "not_seen_alive", i, "form"), f"form {form!r} is not declared")


def _role(
    err: Err,
    table: str,
    spec: Mapping[str, Any],
    forms: Mapping[str, Any],
    fields: Mapping[str, tuple[str, ...]],
) -> None:
    form_name = spec.get("form")
    form = forms.get(form_name) if isinstance(form_name, str) else None
    if not isinstance(form, Mapping):
        err((table, "form"), f"form {form_name!r} is not declared ({', '.join(sorted(forms)) or 'none'})")
        return
    declared: Mapping[str, Any] = form.get("fields") or {}
    for key, code_keys in fields.items():
        name = spec.get(key)
        if name is None:
            continue
        field = declared.get(name)
        if not isinstance(field, Mapping):
            err((table, key), f"form {form_name} has no field {name!r}")
            continue
        if key in DATED and field.get("type") not in ("date", "datetime"):
            err((table, key), f"{form_name}.{name} is read as a date: a date or datetime field")
        for code_key in code_keys:
            code = spec.get(code_key)
            if code is None:
                continue
            if field.get("type") != "choice":
                err((table, key), f"{form_name}.{name} is read by its codes ({code_key}): a choice field")
                break
            codes = [str(c.get("code")) for c in field.get("choices", []) if isinstance(c, Mapping)]
            if code not in codes:
                err((table, code_key), f"{code!r} is not a choice of {form_name}.{name} ({', '.join(codes)})")
