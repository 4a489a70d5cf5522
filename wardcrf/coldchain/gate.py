"""Plug the custody check into the workflow's pre-dose gate list.

Imported with the cold-chain projections (every session loads them), so a
dose can never be recorded in a build that has the cold chain without its
custody check. In a build without the workflow there is nothing to plug into.
"""

from __future__ import annotations

import importlib

from .custody import check_dose


def register() -> bool:
    try:
        workflow = importlib.import_module("wardcrf.workflow")
    except ImportError:
        return False
    workflow.register_dose_gate(check_dose)
    return True


REGISTERED = register()
