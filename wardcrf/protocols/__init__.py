"""Protocol files shipped with wardcrf (`protocol.default_protocol()` names the default), and format 1's
shape (`format1-workflow.toml`) for every module that reads it.

The shape is read here, below everything that imports it (the protocol reader, the event schemas, the
grids, the ward queue), so none of them imports another to reach it: this package imports nothing of
wardcrf's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

FORMAT1_WORKFLOW = "format1-workflow.toml"


@cache
def format1_shape() -> Mapping[str, Any]:
    """format1-workflow.toml, parsed once for every reader of format 1's shape (the protocol reader, the
    grids, the ward queue, the safety declarations, the event schemas). Shared: never mutate it."""
    text = resources.files(__name__).joinpath(FORMAT1_WORKFLOW).read_text("utf-8")
    return MappingProxyType(tomllib.loads(text))


@cache
def format1_vocabulary() -> Mapping[str, Any]:
    """Format 1's file keys by meaning, its defaults, its confirmation criterion and its dose form's fields
    by administration role: format 1's shape is data, so its reader names no trial's fields."""
    parts = ("keys", "defaults", "confirmation", "record_roles")
    return MappingProxyType({part: MappingProxyType(format1_shape()[part]) for part in parts})
