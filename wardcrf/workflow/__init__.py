"""The clinical workflow of a trial: forms, their rules, and what is due.

Services (each takes a `Session`; permissions are checked inside):

* `submit(session, form, raw, participant=..., reason=..., confirm=..., password_for=...)`
* `amend(session, event_id, raw, reason=..., confirm=...)`
* `amendments.apply(session, participant, version, reason)`: a newer protocol version applied to a participant
* `preflight(session, form, raw, participant=...)`: every rule of a signed form, before any password
* `status.show / list_participants / ward_page / today / safety_overview / dsmg_gate` read models
* `dose_gates` / `register_dose_gate`: pre-dose checks other features plug in
* `register_today_source`: worklist items other features add to `today`

A form's rule is the engine's, under the record's version (`engine_rules.rule_for`; format
1's own rules are gone: every format-1 version runs on the engine, docs/engine.md);
`register` plugs the workflow's projection hooks, checks and form actions in
(`wardcrf.features`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import amendments, dosing, idclash, participants, safety, sequencing, wardqueue
from .base import RULES
from .dosing import dose_gates, register_dose_gate
from .service import amend, preflight, submit
from .status import (
    dsmg_gate,
    list_participants,
    register_today_source,
    safety_overview,
    show,
    today,
    ward_page,
)

if TYPE_CHECKING:
    from ..features import Registry


def register(registry: Registry) -> None:
    """The workflow's form actions, hooks, checks and after-ingest holds (the ward queue's last: its hooks follow theirs)."""
    for form, rule in RULES.items():
        registry.form_actions(form, submit=rule.action, amend=rule.amend_action)
    from .base import rule_by_name_with
    from .engine_rules import import_actions, import_values, rule_by_name  # the engine's rules load on use

    rule_by_name_with(rule_by_name)
    registry.form_actions_of(import_actions)
    registry.record_values_check(import_values)
    for module in (amendments, dosing, idclash, participants, safety, sequencing, wardqueue):
        module.register(registry)


__all__ = [
    "amend",
    "dose_gates",
    "dsmg_gate",
    "list_participants",
    "preflight",
    "register",
    "register_dose_gate",
    "register_today_source",
    "safety_overview",
    "show",
    "submit",
    "today",
    "ward_page",
]
