"""The cold chain as a feature: what it plugs into the core (`wardcrf.features`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import carried
from . import evidence, gate, projections, readings, rejudge
from .readings import EVENT_LOGGER
from .services import AMEND_ACTIONS, FORM_ACTIONS, FORM_RECEIPT

if TYPE_CHECKING:
    from ..features import Registry


def register(registry: Registry) -> None:
    """Logger-file audit check, custody dose gate and worklist, readings index, form projections and actions,
    the logger files a sync bundle carries, and the readings judged again when a version adds products."""
    evidence.register(registry)
    registry.carried_file(
        carried.Extractor(carried.FILE, carried.type_marker(EVENT_LOGGER), evidence.cited_by_import)
    )
    registry.carried_file(
        carried.Extractor(carried.FILE, carried.form_marker(FORM_RECEIPT), evidence.cited_by_receipt)
    )
    gate.register(registry)
    readings.register(registry)
    projections.register(registry)
    for form, action in FORM_ACTIONS.items():
        registry.form_actions(form, submit=action, amend=AMEND_ACTIONS.get(form, "record.amend"))
    registry.after_protocol_load(rejudge.judge_loaded)
