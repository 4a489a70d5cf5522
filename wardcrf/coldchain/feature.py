"""The cold chain as a feature: what it plugs into the core (`wardcrf.features`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import evidence, gate, projections, readings
from .services import FORM_ACTIONS

if TYPE_CHECKING:
    from ..features import Registry


def register(registry: Registry) -> None:
    """Logger-file audit check, custody dose gate and worklist, readings index, form projections and actions."""
    evidence.register(registry)
    gate.register(registry)
    readings.register(registry)
    projections.register(registry)
    for form, action in FORM_ACTIONS.items():
        registry.form_actions(form, submit=action)
