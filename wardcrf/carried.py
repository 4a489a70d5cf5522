"""What a sync bundle carries beside its events: the files each feature's events cite.

A bundle ships exactly the photos and evidence files (logger exports) its
events cite, and an importer requires exactly those (BUNDLE-FORMAT.md).
Which events cite a file, and where in their body, is the knowledge of the
feature that owns those events: the photos feature for ``photo.imported``,
the cold chain for its logger imports and shipment receipts. Each registers
an `Extractor` here (`features.Registry.carried_file`); sync's bundle code
asks the registered extractors and names no feature's events, so a new
feature whose events cite files ships them by registering one.

A leaf of the core (sync depends on it, never the reverse).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .registration import require_installed

PHOTO: Literal["photo"] = "photo"
"""Members ``photos/<sha256>.<jpg|png|heic>``: the photo store's originals."""
FILE: Literal["file"] = "file"
"""Members ``evidence/<sha256>.<ext>``: other evidence files (logger exports), kept with their names."""

Kind = Literal["photo", "file"]


@dataclass(frozen=True)
class Extractor:
    """How to find the files one kind of event cites."""

    kind: Kind
    marker: str
    """A substring of every event line this extractor reads (see `type_marker`, `form_marker`):
    a bundle parses only the lines that contain it, so checking a million events stays cheap."""
    extract: Callable[[dict[str, Any]], dict[str, str]]
    """The event's body -> {sha256 hex: the file's original name} (the name is ``""`` for photos).
    Given whatever the body holds: it must not raise on a body of the wrong shape."""


def type_marker(event_type: str) -> str:
    """The marker of an event type in a canonical event line: ``"type":"<type>"``."""
    return f'"type":{json.dumps(event_type)}'


def form_marker(form: str) -> str:
    """The marker of a record's form in a canonical event line: ``"form":"<form>"``."""
    return f'"form":{json.dumps(form)}'


_extractors: list[Extractor] = []


def add(extractor: Extractor) -> None:
    """Register one extractor (the same one twice is a no-op, so `features.install` is idempotent)."""
    if extractor not in _extractors:
        _extractors.append(extractor)


def extractors(kind: Kind) -> list[Extractor]:
    """The registered extractors of one kind, in registration order."""
    require_installed()
    return [x for x in _extractors if x.kind == kind]
