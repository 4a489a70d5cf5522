"""The clinical workflow of a trial: forms, their rules, and what is due.

Services (each takes a `Session`; permissions are checked inside):

* `submit(session, form, raw, participant=..., reason=..., confirm=..., password_for=...)`
* `amend(session, event_id, raw, reason=..., confirm=...)`
* `status.show / list_participants / ward_page / today / safety_overview / dsmg_gate` read models
* `dose_gates` / `register_dose_gate`: pre-dose checks other features plug in
* `register_today_source`: worklist items other features add to `today`

Importing this package registers every form rule and projection hook.
"""

from __future__ import annotations

from . import clinical, dosing, idclash, participants, safety, status, wardqueue  # noqa: F401  (registers rules and hooks; wardqueue last: its hooks follow theirs)
from .dosing import dose_gates, register_dose_gate
from .service import amend, submit
from .status import (
    dsmg_gate,
    list_participants,
    register_today_source,
    safety_overview,
    show,
    today,
    ward_page,
)

__all__ = [
    "amend",
    "dose_gates",
    "dsmg_gate",
    "list_participants",
    "register_dose_gate",
    "register_today_source",
    "safety_overview",
    "show",
    "submit",
    "today",
    "ward_page",
]
